"""`genaisdk.train` in process: outputs, evaluation, resume, stop signals, divergence."""

from __future__ import annotations

import json
import math
import signal

import pytest

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

from genaisdk.backend.jax.metrics import read_metrics  # noqa: E402
from genaisdk.backend.jax.train import TrainError, TrainingDiverged  # noqa: E402
from genaisdk.training import train  # noqa: E402

SPEC = """genai 1

project "tiny-loop" {{
  model {{
    family  = decoder
    layers  = 1
    d_model = 32
    heads   = 2
    d_ff    = 64
    vocab   = 384
    context = 32 tokens
  }}
  data {{
    source = "synthetic"
  }}
  train {{
    precision     = fp32
    sharding      = ddp
    batch         = 256 tokens
    steps         = {steps}
    learning_rate = {lr}
  }}
}}
"""



@pytest.fixture(autouse=True)
def _no_compilation_cache_in_home(monkeypatch):
    """`train` would otherwise keep compiled steps under ~/.cache; tests leave no trace there."""
    monkeypatch.setenv("GENAISDK_COMPILATION_CACHE", "0")


def _spec(tmp_path, *, steps=12, lr=0.01):
    path = tmp_path / "tiny.genai"
    path.write_text(SPEC.format(steps=steps, lr=lr))
    return path


class StopAt:
    """A progress display that sends this process a signal once a given step is shown."""

    def __init__(self, step, signum):
        self.step_to_stop, self.signum, self.steps = step, signum, []

    def start(self, *, first_step, total_steps):
        pass

    def step(self, entry):
        self.steps.append(entry["step"])
        if entry["step"] == self.step_to_stop:
            signal.raise_signal(self.signum)

    def evaluation(self, entry):
        pass

    def note(self, text):
        pass

    def close(self):
        pass


def test_a_run_learns_and_writes_metrics_checkpoints_and_run_files(tmp_path):
    out = tmp_path / "run"
    result = train(_spec(tmp_path), out=out, devices=2, eval_every=4, checkpoint_every=4, quiet=True)
    assert result.status == "completed" and result.ok and result.exit_code == 0
    assert (result.start_step, result.steps, result.total_steps) == (0, 12, 12)

    entries = read_metrics(out / "metrics.jsonl")
    steps = [e for e in entries if e["kind"] == "train"]
    evals = [e for e in entries if e["kind"] == "eval"]
    assert [e["step"] for e in steps] == list(range(1, 13))
    for entry in steps:
        assert {"step", "loss", "tokens_per_s", "lr", "grad_norm", "loss_scale", "skipped"} <= set(entry)
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5  # the Markov source is learnable
    assert [e["step"] for e in evals] == [4, 8, 12]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]

    assert result.final_loss == steps[-1]["loss"]
    assert result.eval_loss == evals[-1]["eval_loss"]
    assert result.perplexity == pytest.approx(math.exp(result.eval_loss))
    assert result.tokens_per_s > 0 and result.mfu is None  # no peak FLOP/s for CPU
    assert result.last_checkpoint == 12
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == [4, 8, 12]

    run = json.loads((out / "run.json").read_text())
    assert run["config"]["strategy"] == "ddp" and run["config"]["global_batch"] == 8
    assert run["runtime"]["devices"] == 2
    assert "tiny-loop" in (out / "spec.genai").read_text()
    measured = json.loads((out / "result.json").read_text())
    assert measured["status"] == "completed" and measured["steps"] == 12
    assert measured["final_loss"] == result.final_loss and measured["eval_loss"] == result.eval_loss
    assert measured["tokens_per_s"] == result.tokens_per_s and measured["mfu"] is None
    assert measured["hardware"] is None and measured["peak_memory_bytes"] is None  # CPU: no record, no counter

    # The same folder again without --resume would overwrite a run: refused.
    with pytest.raises(TrainError, match="already holds checkpoints") as info:
        train(_spec(tmp_path), out=out, devices=2, quiet=True)
    assert info.value.exit_code == 2

    # Damage the latest checkpoint: resuming (with more steps) passes over it to step 8, says
    # so, drops the metrics of steps 9-12 and trains them again.
    for path in (out / "checkpoints" / "12" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    more = train(_spec(tmp_path), out=out, devices=2, steps=14, resume=True, quiet=True)
    assert (more.start_step, more.steps) == (8, 14)
    fallback = [note for note in more.notes if "damaged" in note]
    assert len(fallback) == 1 and fallback[0].startswith("checkpoint step 12 is damaged")
    assert "resuming from step 8" in fallback[0]
    # The damaged step is set aside, and step 12 trained again is saved afresh.
    assert "set aside as 12.damaged" in fallback[0]
    assert [e["step"] for e in read_metrics(out / "metrics.jsonl") if e["kind"] == "train"] == list(range(1, 15))


def test_sigterm_saves_at_the_next_step_boundary_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    stopper = StopAt(5, signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    result = train(_spec(tmp_path, steps=20), out=out, devices=2, progress=stopper)
    assert result.status == "interrupted" and result.exit_code == 128 + signal.SIGTERM
    assert result.steps == result.last_checkpoint and 5 <= result.steps <= 6
    assert "SIGTERM" in result.message
    # The run's handler is gone once it returns.
    assert signal.getsignal(signal.SIGTERM) is before

    resumed = train(_spec(tmp_path, steps=20), out=out, devices=2, resume=True, quiet=True)
    assert (resumed.start_step, resumed.steps, resumed.status) == (result.steps, 20, "completed")
    steps = [e["step"] for e in read_metrics(out / "metrics.jsonl") if e["kind"] == "train"]
    assert steps == list(range(1, 21))


def test_divergence_stops_without_saving_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="training diverged at step") as info:
        train(_spec(tmp_path, lr=1e30), out=out, devices=2, checkpoint_every=1, quiet=True)
    result = info.value.result
    assert result.status == "diverged" and result.exit_code == 1
    kept = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert kept and kept[-1] == result.last_checkpoint < result.total_steps
    assert f"last good checkpoint is step {kept[-1]}" in str(info.value)


def test_resuming_with_another_model_shape_is_refused_before_restoring(tmp_path, recwarn):
    out = tmp_path / "run"
    train(_spec(tmp_path, steps=2), out=out, devices=2, quiet=True)
    with pytest.raises(TrainError, match=r"saved with other settings \(model d_model 32 -> 64\).*--out a new folder") as info:
        train(_spec(tmp_path, steps=4), out=out, devices=2, quiet=True, resume=True, overrides=["model.d_model=64"])
    assert info.value.exit_code == 1
    assert not [w for w in recwarn if "damaged" in str(w.message)]


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    result = train(_spec(tmp_path, steps=2), out=tmp_path / "fresh", devices=2, resume=True, quiet=True)
    assert (result.start_step, result.steps) == (0, 2)


def test_data_problems_are_train_errors_without_traceback(tmp_path):
    spec = _spec(tmp_path).read_text().replace('"synthetic"', '"missing/*.txt"')
    with pytest.raises(TrainError, match=r"data source 'missing/\*\.txt': no file matches"):
        train(spec, out=tmp_path / "x", devices=2, quiet=True)
