"""`genai plan` and `genai explain` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from genaisdk.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LEGAL = str(ROOT / "specs" / "legal.genai")


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_text_view_has_the_four_sections_and_the_reasons():
    result = run("plan", LEGAL, "--width", "160")
    assert result.exit_code == 0, result.output
    out = result.output
    for section in ("Select", "Fit", "Cost", "Serve", "Why"):
        assert section in out
    assert "memory per device by strategy and precision" in out
    assert "cheapest strategy that fits" in out
    assert "peak total" in out


def test_json_and_markdown():
    result = run("plan", LEGAL, "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["schema"] == "genaisdk.plan/1"
    md = run("plan", LEGAL, "--markdown")
    assert md.exit_code == 0
    assert md.output.startswith("# Plan: legal-summarizer")
    assert "| strategy | precision |" in md.output
    both = run("plan", LEGAL, "--json", "--markdown")
    assert both.exit_code == 2


def test_set_overrides_a_field():
    plain = json.loads(run("plan", LEGAL, "--json").output)
    fp16 = json.loads(run("plan", LEGAL, "--json", "--set", "train.precision=fp16").output)
    assert plain["train"]["precision"] == "bf16"
    assert fp16["train"]["precision"] == "fp16"
    assert any(d["code"] == "GP201" for d in fp16["diagnostics"])
    more = json.loads(run("plan", LEGAL, "--json", "--set", "train.sharding=fsdp", "--set", "budget.hardware=8 x h100-sxm").output)
    assert more["train"]["strategy"] == "fsdp" and more["train"]["devices"] == 8 and more["train"]["hardware"] == "h100-sxm"


def test_same_plan_from_python_and_from_the_cli():
    import genaisdk

    api = genaisdk.plan(genaisdk.load(LEGAL, overrides=["train.precision=fp16"]))
    cli_json = json.loads(run("plan", LEGAL, "--json", "--set", "train.precision=fp16").output)
    assert cli_json == api.to_json()


def test_spec_errors_are_rendered_and_exit_1(tmp_path):
    bad = tmp_path / "bad.genai"
    bad.write_text(Path(LEGAL).read_text().replace("precision   = bf16", "precision   = bf61"))
    result = run("plan", str(bad))
    assert result.exit_code == 1
    assert "bad.genai:" in result.output and "bf61" in result.output and "^" in result.output
    assert "Traceback" not in result.output
    override = run("plan", LEGAL, "--set", "train.precision=fp61")
    assert override.exit_code == 1
    assert "--set" in override.output and "fp16" in override.output


def test_unknown_lora_target_is_a_diagnostic_not_a_traceback(tmp_path):
    spec = tmp_path / "lora.genai"
    spec.write_text(
        'genai 1\nproject "t" {\n  model {\n    preset = llama2-7b\n  }\n  data {\n    tokens = 1M tokens\n  }\n'
        "  adapt {\n    method  = lora\n    targets = [q, ffn]\n  }\n}\n"
    )
    result = CliRunner().invoke(cli, ["plan", str(spec)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "GS301" in result.output and "`ffn`" in result.output and "lora.genai:11:" in result.output
    assert "attention" in result.output  # the hint lists the names it accepts


def test_a_plan_with_errors_exits_1(tmp_path):
    spec = tmp_path / "huge.genai"
    spec.write_text(
        'genai 1\nproject "huge" {\n  model {\n    size = 500B\n  }\n  data {\n    tokens = 1T tokens\n  }\n'
        "  budget {\n    hardware = 1 x rtx-4090\n  }\n}\n"
    )
    result = run("plan", str(spec))
    assert result.exit_code == 1
    assert "GP202" in result.output


def test_stdin():
    result = run("plan", "-", "--json", input=Path(LEGAL).read_text())
    assert result.exit_code == 0
    assert json.loads(result.output)["spec_file"] == "<stdin>"


def test_sweep_prints_the_pareto_front():
    result = run("plan", LEGAL, "--sweep", "--width", "160")
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.output and "configurations searched" in result.output
    data = json.loads(run("plan", LEGAL, "--sweep", "--json").output)
    front = data["front"]
    # legal fixes 64 devices, bf16 and selective recomputation: size, strategy and
    # micro-batch are what the sweep varies.
    assert front and data["configurations"] > 100 and data["varied"] == ["size", "strategy", "micro_batch"]
    losses = [row["loss"] for row in front]
    assert losses == sorted(losses)
    # No row of the front is dominated by another (the plan's row is shown whatever its rank).
    for a in front:
        for b in front:
            if a is b or a["is_plan"]:
                continue
            assert not (b["loss"] <= a["loss"] and b["usd"] <= a["usd"] and b["devices"] <= a["devices"]
                        and (b["loss"], b["usd"], b["devices"]) != (a["loss"], a["usd"], a["devices"]))


def test_explain_topics():
    result = run("explain", LEGAL, "memory", "--width", "160")
    assert result.exit_code == 0, result.output
    assert "weights = params × bytes per weight" in result.output
    assert "peak total" in result.output
    every = run("explain", LEGAL, "--json")
    data = json.loads(every.output)
    assert set(data) == {"params", "flops", "memory", "activations", "scaling", "parallelism", "time", "cost", "inference"}
    assert run("explain", LEGAL, "memroy").exit_code == 2


def test_python_m_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "genaisdk", "plan", LEGAL, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_plan_accepts_a_spec_a_path_or_text():
    import genaisdk
    from genaisdk.registry import get_registry

    text = Path(LEGAL).read_text()
    from_path = genaisdk.plan(Path(LEGAL))
    from_str_path = genaisdk.plan(LEGAL)
    from_text = genaisdk.plan(text)
    from_spec = genaisdk.plan(genaisdk.loads(text), registry=get_registry())
    assert from_path.to_json() == from_str_path.to_json()
    assert from_text.to_json()["memory"] == from_spec.to_json()["memory"] == from_path.to_json()["memory"]
    with_override = genaisdk.plan(LEGAL, overrides={"train.precision": "fp32"})
    assert with_override.train.precision == "fp32"


def test_a_closed_pipe_ends_genai_plan_quietly_with_its_own_status():
    """`genai plan SPEC | head`: the reader goes away; no traceback, and exit status 141
    (128 + SIGPIPE), not 1, which means the plan has errors."""
    spec = ROOT / "specs" / "legal.genai"
    proc = subprocess.Popen([sys.executable, "-m", "genaisdk", "plan", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before it writes anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err
