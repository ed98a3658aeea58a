"""Fixtures for the report, the model card and the terminal views: every example spec
planned once, a recorded training run and its evaluation.

tests/fixtures/runs/tiny-gpt is the output folder of
`genai train specs/tiny-gpt.genai --steps 60 --eval-every 10` on one CPU device (its
checkpoints left out); tests/fixtures/eval/tiny-gpt-eval.json holds that run's held-out
evaluation at step 60 (metrics.jsonl's last eval entry) in the layout of an eval.json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.genai"))
FIXTURES = ROOT / "tests" / "fixtures"
RUN = FIXTURES / "runs" / "tiny-gpt"
EVAL = FIXTURES / "eval" / "tiny-gpt-eval.json"


@pytest.fixture(scope="session")
def planned():
    """spec file name -> (Spec, Plan), each spec planned once per session."""
    import genaisdk

    out = {}
    for path in SPECS:
        spec = genaisdk.load(path)
        out[path.name] = (spec, genaisdk.plan(spec))
    return out


@pytest.fixture(scope="session")
def run():
    from genaisdk.render.inputs import read_run

    return read_run(RUN)


@pytest.fixture(scope="session")
def evaluation():
    from genaisdk.render.inputs import read_eval

    return read_eval(EVAL)


@pytest.fixture(scope="session")
def full_report(tmp_path_factory):
    """The report of specs/legal.genai with the run and the evaluation, written by the CLI."""
    from click.testing import CliRunner

    from genaisdk.cli import cli

    pytest.importorskip("matplotlib")
    pytest.importorskip("jinja2")
    out = tmp_path_factory.mktemp("report") / "legal.html"
    result = CliRunner().invoke(cli, ["report", str(ROOT / "specs" / "legal.genai"), "--run", str(RUN), "--eval", str(EVAL),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out
