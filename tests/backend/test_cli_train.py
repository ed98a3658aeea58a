"""`genai train` on the command line: exit codes, messages, outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli

SPEC = """genai 1

project "tiny-cli" {
  model {
    family  = decoder
    layers  = 1
    d_model = 32
    heads   = 2
    d_ff    = 64
    vocab   = 384
    context = 32 tokens
  }
  data {
    source = "SOURCE"
  }
  train {
    precision     = fp32
    sharding      = ddp
    batch         = 256 tokens
    steps         = 3
    learning_rate = 0.01
  }
}
"""



@pytest.fixture(autouse=True)
def _no_compilation_cache_in_home(monkeypatch):
    """`train` would otherwise keep compiled steps under ~/.cache; tests leave no trace there."""
    monkeypatch.setenv("GENAISDK_COMPILATION_CACHE", "0")


def _spec(tmp_path, source="synthetic"):
    path = tmp_path / "tiny.genai"
    path.write_text(SPEC.replace("SOURCE", source))
    return str(path)


def _invoke(*args):
    return CliRunner().invoke(cli, ["train", *args], catch_exceptions=False)


def test_without_the_jax_extra_the_error_says_what_to_install(tmp_path, monkeypatch):
    import genaisdk.backend.jax.train as train_module

    real = train_module.importlib.util.find_spec
    monkeypatch.setattr(
        train_module.importlib.util, "find_spec", lambda name, *a: None if name == "orbax.checkpoint" else real(name, *a)
    )
    result = _invoke(_spec(tmp_path))
    assert result.exit_code == 2
    assert "pip install 'genaisdk[jax]'" in result.output and "orbax-checkpoint is not installed" in result.output


@pytest.mark.jax
def test_a_run_with_a_sharding_override_then_a_refused_rerun(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    out = tmp_path / "run"
    spec = _spec(tmp_path)
    result = _invoke(spec, "--out", str(out), "--devices", "2", "--set", "train.sharding=fsdp", "--plain")
    assert result.exit_code == 0, result.output
    assert "fsdp on 2 cpu device(s)" in result.output
    assert "step 3/3" in result.output and "completed: tiny-cli, steps 0 -> 3 of 3" in result.output
    assert "final loss" in result.output and "checkpoints" in result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["strategy"] == "fsdp" and run["overrides"] == ["train.sharding=fsdp"]
    # The plan is for one device (the spec names no hardware count): --devices 2 is the
    # one deviation asked for, and what follows from it; each is printed and recorded.
    assert run["settings"]["train"]["strategy"] == "fsdp"
    deviations = {d["field"]: d for d in run["deviations"]}
    assert deviations["devices"] == {"field": "devices", "plan": 1, "run": 2, "why": "--devices 2"}
    assert set(deviations) <= {"devices", "data_parallel", "micro_batch", "grad_accumulation", "global_batch_sequences"}
    assert "the run differs from the plan: devices 1 -> 2 (--devices 2)" in result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4  # 3 steps + the final evaluation

    again = _invoke(spec, "--out", str(out), "--devices", "2")
    assert again.exit_code == 2
    assert "already holds checkpoints (latest step 3): pass --resume" in again.output


def test_spec_mistakes_in_overrides_are_diagnostics(tmp_path):
    result = _invoke(_spec(tmp_path), "--set", "train.shardin=fsdp")
    assert result.exit_code == 1
    assert "--set:1:1" in result.output and "did you mean `sharding`" in result.output


def test_a_prompting_plan_trains_nothing_writes_nothing_and_succeeds(tmp_path):
    """adapt.method = prompt is a valid plan in which nothing trains: `genai train` says so
    and what to use instead, exits 0, and neither starts a run nor writes its folder; the
    Python API raises NothingTrains (a TrainError whose exit status is 0)."""
    pytest.importorskip("orbax.checkpoint")
    import genaisdk
    from genaisdk.backend.jax.errors import NothingTrains

    spec = tmp_path / "tiny.genai"
    spec.write_text(SPEC.replace("SOURCE", "synthetic").replace("  train {", "  adapt {\n    method = prompt\n  }\n  train {"))
    out = tmp_path / "run"
    result = _invoke(str(spec), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("adapt.method = prompt: nothing is trained and nothing is written")
    assert "`genai generate MODEL" in result.output and "`genai eval MODEL" in result.output
    assert not out.exists()
    with pytest.raises(NothingTrains) as raised:
        genaisdk.train(str(spec), out=out, quiet=True)
    assert raised.value.exit_code == 0 and not out.exists()


def test_missing_data_is_a_one_line_error(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    result = _invoke(_spec(tmp_path, source="corpus/*.txt"), "--out", str(tmp_path / "x"), "--devices", "2")
    assert result.exit_code == 1
    assert result.output.startswith("error: data source 'corpus/*.txt': no file matches")
    assert "Traceback" not in result.output


def test_a_vocabulary_without_room_for_sentinels_is_a_one_line_error(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    spec = _spec(tmp_path)
    text = Path(spec).read_text().replace("decoder", "encoder_decoder").replace("vocab   = 384", "vocab   = 262")
    Path(spec).write_text(text.replace("context = 32 tokens", "context = 256 tokens"))
    result = _invoke(spec, "--out", str(tmp_path / "x"), "--devices", "2")
    assert result.exit_code == 1
    assert result.output.startswith("error: span corruption of ") and "raise model.vocab" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "0 is not in the range 1<=x<=2147483647"),
        # More steps than the 32-bit step counter (and the schedule) can count: refused, not an overflow.
        (["--steps", "3000000000"], "3000000000 is not in the range 1<=x<=2147483647"),
        (["--coordinator", "127.0.0.1:1234"], "--coordinator, --num-processes and --process-id go together"),
        # More devices than any process has: refused at once, not after starting 100,000 CPU devices.
        (["--devices", "100000"], "--devices 100,000 is more devices than one process can have"),
        (["--device-memory", "lots"], "--device-memory 'lots'"),
    ],
)
def test_bad_usage_exits_2(tmp_path, args, message):
    pytest.importorskip("orbax.checkpoint")
    started = time.perf_counter()
    result = _invoke(_spec(tmp_path), "--out", str(tmp_path / "run"), *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            b'{"prompt": "Where is it?", "response": "unterminated}',
            "chat.jsonl:7: not valid JSON: Unterminated string starting at: line 7 column 40",
        ),
        (b'{"prompt": "Caf\xe9?", "response": "yes"}', "chat.jsonl:7: not valid UTF-8: byte 0xe9 at column 16"),
    ],
)
def test_a_broken_json_line_is_named_by_its_line_and_the_decoders_reason(tmp_path, line, message):
    """`genai train` and `genai eval --data` read JSON lines alike: a broken line 7 is
    reported at line 7 (the decoder parses one line and would say "line 1"), with the
    decoder's whole reason and column, exit 1, no traceback."""
    pytest.importorskip("orbax.checkpoint")
    lines = [json.dumps({"prompt": f"Question {i}?", "response": f"Answer {i}."}).encode() for i in range(9)]
    lines[6] = line
    (tmp_path / "chat.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = _invoke(_spec(tmp_path, source="chat.jsonl"), "--out", str(tmp_path / "x"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.output and result.output.count("\n") == 1, result.output

    # genai eval reads the file with the same reader (a checkpoint folder is a model too).
    model = Path(__file__).resolve().parents[1] / "fixtures" / "hf" / "llama"
    result = CliRunner().invoke(
        cli, ["eval", str(model), "--data", str(tmp_path / "chat.jsonl"), "--no-baseline", "--out", str(tmp_path / "e.json")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.output and result.output.count("\n") == 1, result.output
