"""`genai check` and `genai fmt`: output, exit codes, JSON, stdin, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.commands.check import colourize

from .conftest import SPECS

BAD = 'genai 1\nproject "x" {\n  task = chatt\n  train {\n    precision = fp61\n  }\n}\n'


@pytest.fixture
def runner():
    return CliRunner()


def test_check_ok(runner):
    result = runner.invoke(cli, ["check", str(SPECS / "legal.genai")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("legal.genai: ok")


def test_check_reports_every_error_and_exits_1(runner, tmp_path):
    path = tmp_path / "bad.genai"
    path.write_text(BAD)
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3:10: error[GS301]: unknown task `chatt`" in result.output
    assert "= help: did you mean `fp16`?" in result.output
    assert result.output.strip().endswith("bad.genai: 2 errors")
    assert "\x1b[" not in result.output  # no colour when not on a terminal


def test_check_json(runner, tmp_path):
    path = tmp_path / "bad.genai"
    path.write_text(BAD)
    result = runner.invoke(cli, ["check", "--json", str(path), str(SPECS / "legal.genai")])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["ok"] is False
    first, second = payload["files"]
    assert first["errors"] == 2 and second["errors"] == 0
    assert first["diagnostics"][0] == {
        "code": "GS301",
        "severity": "error",
        "message": "unknown task `chatt`",
        "hint": "did you mean `chat`?",
        "file": str(path),
        "line": 3,
        "column": 10,
    }


def test_check_stdin_and_overrides(runner):
    result = runner.invoke(cli, ["check", "-", "--set", "train.precision=fp61"], input=(SPECS / "legal.genai").read_text())
    assert result.exit_code == 1
    assert "--set:1:17: error[GS301]: unknown precision `fp61`" in result.output
    assert "   1 | train.precision=fp61" in result.output


@pytest.mark.parametrize(
    "override, code, caret",
    [
        ("train.micro_batch=banana", "GS205", "^^^^^^"),  # a bad value
        ("train.precison=bf16", "GS105", "^^^^^^^^^^^^^^"),  # an unknown key
        ("data.tokens=3 days", "GS201", "^^^^^^"),  # a unit of another dimension
        ("model.heads=7", "GS210", "^"),  # a check across keys (d_model 128 is no multiple of 7)
        ("train.optimizer_state=bf16", "GS308", "^^^^"),  # across keys: adam-8bit keeps int8 state
    ],
)
def test_override_errors_point_at_the_override(runner, override, code, caret):
    """Every kind of error an override makes is shown under the override's own text."""
    args = ["plan", str(SPECS / "tiny-gpt.genai"), "--set", override]
    if code == "GS308":
        args += ["--set", "train.optimizer=adam-8bit"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    position = result.output.index(f"error[{code}]")
    line = result.output[: position].rsplit("\n", 1)[-1]
    assert line.startswith("--set:1:"), result.output
    shown = result.output[position:].splitlines()
    assert f"   1 | {override}" in shown[1]
    assert shown[2].rstrip().endswith(caret) and "^" * (len(caret) + 1) not in shown[2]


def test_check_missing_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli, ["check", str(tmp_path / "nope.genai")])
    assert result.exit_code == 2


def test_fmt_check_and_diff(runner, tmp_path):
    canonical = runner.invoke(cli, ["fmt", "--check", str(SPECS / "tiny-gpt.genai")])
    assert canonical.exit_code == 0
    messy = tmp_path / "m.genai"
    messy.write_text('project "x" {\ntask=chat\n}\n')
    result = runner.invoke(cli, ["fmt", "--check", str(messy)])
    assert result.exit_code == 1 and "would reformat" in result.output
    result = runner.invoke(cli, ["fmt", "--diff", str(messy)])
    assert result.exit_code == 0
    assert "-task=chat" in result.output and "+  task = chat" in result.output
    assert messy.read_text() == 'project "x" {\ntask=chat\n}\n'


def test_fmt_rewrites_in_place_and_formats_stdin(runner, tmp_path):
    messy = tmp_path / "m.genai"
    messy.write_text('project "x" {\ntask=chat # keep me\n}\n')
    result = runner.invoke(cli, ["fmt", str(messy)])
    assert result.exit_code == 0
    assert messy.read_text() == 'project "x" {\n  task = chat  # keep me\n}\n'
    result = runner.invoke(cli, ["fmt", "-"], input='project "x" {\ntask=chat\n}\n')
    assert result.output == 'project "x" {\n  task = chat\n}\n'


def test_fmt_refuses_a_file_with_a_syntax_error(runner, tmp_path):
    broken = tmp_path / "b.genai"
    broken.write_text('project "x" {\n  task = \n}\n')
    result = runner.invoke(cli, ["fmt", str(broken)])
    assert result.exit_code == 1
    assert "missing a value after `=`" in result.output
    assert broken.read_text() == 'project "x" {\n  task = \n}\n'


def test_colour_marks_severity_carets_and_help():
    rendered = "f:1:1: error[GS301]: unknown\n   1 | x = y\n     |     ^\n  = help: did you mean"
    coloured = colourize(rendered)
    assert "\x1b[" in coloured
    assert "unknown" in coloured and "did you mean" in coloured


@pytest.mark.parametrize(
    "text",
    ["", "{", "}", '"', "project", 'project "x" {', "genai", "= = =", "\x00\x01", "project \"x\" { a = [ { } ] }", "\u2028x = 1"],
)
def test_no_traceback_for_bad_input(runner, tmp_path, text):
    path = tmp_path / "x.genai"
    path.write_text(text)
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code in (0, 1)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_check_runs_as_a_real_process():
    completed = subprocess.run(
        [sys.executable, "-m", "genaisdk", "check", str(SPECS / "legal.genai")],
        capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("ok")


def test_check_reports_an_unreadable_checkpoint_as_plan_does(tmp_path):
    """`genai check` reads what `genai plan` reads before it searches: a `model.from` folder
    that is missing is the same GP009 at the same place, exit 1; the committed fixture is ok."""
    spec = SPECS / "support-lora.genai"
    ok = CliRunner().invoke(cli, ["check", str(spec)])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(cli, ["check", str(spec), "--set", 'model.from="no/such/folder"'])
    assert bad.exit_code == 1
    assert "GP009" in bad.output and "no such checkpoint folder" in bad.output
    assert "relative path is read from the spec's folder" in bad.output
    planned = CliRunner().invoke(cli, ["plan", str(spec), "--set", 'model.from="no/such/folder"'])
    assert planned.exit_code == 1 and "GP009" in planned.output
