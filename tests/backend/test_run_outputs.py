"""What a run does before step 0 and when its outputs go wrong: the step compiled ahead of
time and refused when it cannot fit the device, a damaged final checkpoint written again,
malformed checkpoint metadata, a disk that fills up mid-run."""

from __future__ import annotations

import errno
import json

import pytest
from click.testing import CliRunner

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

from genaisdk.backend.jax.metrics import read_metrics  # noqa: E402
from genaisdk.cli import cli  # noqa: E402

SPEC = """genai 1

project "tiny-outputs" {{
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
    micro_batch   = 8
    steps         = {steps}
    learning_rate = 0.01
  }}
}}
"""


@pytest.fixture(autouse=True)
def _no_compilation_cache_in_home(monkeypatch):
    monkeypatch.setenv("GENAISDK_COMPILATION_CACHE", "0")


def _spec(tmp_path, steps=6):
    path = tmp_path / "tiny.genai"
    path.write_text(SPEC.format(steps=steps))
    return path


def _invoke(*args, **kwargs):
    return CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False, **kwargs)


# -- the step compiled ahead of time ----------------------------------------------------------------


def test_dry_run_compile_shows_xla_memory_next_to_the_plan_and_the_device(tmp_path):
    result = _invoke(_spec(tmp_path), "--dry-run", "--compile", "--json", "--devices", "2", "--device-memory", "1MB")
    assert result.exit_code == 1  # 1 MB is less than this step needs
    data = json.loads(result.stdout)
    compiled = data["compiled"]
    xla = compiled["xla"]
    assert compiled["need"] == xla["peak"] == xla["arguments"] + xla["temporaries"] + xla["outputs"] - xla["aliased"]
    assert 0 < compiled["plan_without_overheads"] < compiled["plan"]
    assert 0.3 < compiled["ratio"] < 3  # XLA and the plan agree on the size of this step
    assert (compiled["plan_devices"], compiled["devices"]) == (1, 2)
    assert compiled["capacity"] == {"bytes": 1_000_000, "source": "--device-memory"} and compiled["fits"] is False
    suggestion = compiled["suggestion"]
    assert suggestion["micro_batch"] < 4 and suggestion["bytes"] <= 1_000_000
    assert data["problems"] and data["problems"][0].startswith("the compiled train step needs")
    assert "more than the 1 MB one device has (--device-memory)" in result.stderr
    assert f"--set train.micro_batch={suggestion['micro_batch']}" in result.stderr


def test_a_run_whose_compiled_step_does_not_fit_is_refused_before_step_0(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAISDK_DEVICE_MEMORY", "64kB")
    out = tmp_path / "run"
    result = _invoke(_spec(tmp_path), "--out", out, "--devices", "2", "--plain")
    assert result.exit_code == 1
    assert result.stdout == ""  # not one step, not one note
    message = result.stderr
    assert message.startswith("error: the compiled train step needs ") and "per device (XLA memory_analysis" in message
    assert "more than the 64 kB one device has (GENAISDK_DEVICE_MEMORY)" in message
    assert "the plan estimated " in message and "None of the plan's configurations fits that memory" in message
    assert message.rstrip().endswith("Nothing was run.") and "Traceback" not in message
    assert not out.exists()  # no metrics line, no checkpoint, no folder


# -- a damaged final checkpoint, resumed --------------------------------------------------------------------


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_damaged_last_checkpoint_is_passed_over_in_one_line_and_written_again(tmp_path, capsys):
    import jax

    import genaisdk
    from genaisdk.backend.jax.checkpoint import Checkpointer

    out = tmp_path / "run"
    first = genaisdk.train(_spec(tmp_path), out=out, devices=2, checkpoint_every=3, quiet=True)
    assert first.last_checkpoint == 6
    # Damage the last step's index: every read of it fails, in TensorStore's background threads too.
    manifest = out / "checkpoints" / "6" / "state" / "manifest.ocdbt"
    manifest.write_bytes(manifest.read_bytes()[:10])
    capsys.readouterr()

    again = genaisdk.train(_spec(tmp_path), out=out, devices=2, checkpoint_every=3, resume=True, steps=6, progress=False)
    captured = capsys.readouterr()
    assert (again.start_step, again.steps, again.last_checkpoint) == (3, 6, 6)
    damaged = [line for line in captured.out.splitlines() if line.startswith("note:") and "damaged" in line]
    assert len(damaged) == 1 and damaged[0].startswith("note: checkpoint step 6 is damaged (step 6 cannot be read")
    assert "set aside as 6.damaged" in damaged[0] and "resuming from step 3" in damaged[0]
    assert "Traceback" not in captured.err and len(captured.err.splitlines()) <= 1
    assert "(latest step 6)" in captured.out
    # The new step 6 is whole: it restores without passing over anything.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["3", "6", "6.damaged"]
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), again.state)
    with Checkpointer(out / "checkpoints") as checkpoints:
        restored = checkpoints.restore(abstract)
    assert (restored.step, restored.skipped) == (6, ())
    assert [e["step"] for e in read_metrics(out / "metrics.jsonl") if e["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_malformed_checkpoint_metadata_is_passed_over_not_a_crash(tmp_path):
    import jax
    import jax.numpy as jnp

    from genaisdk.backend.jax.checkpoint import CheckpointError, Checkpointer, CorruptCheckpointWarning

    state = {"w": jnp.arange(8.0)}
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    with Checkpointer(tmp_path / "ckpt", async_save=False) as checkpoints:
        checkpoints.save(1, state, {"data": {"fingerprint": "a"}})
        checkpoints.save(2, state, {"data": {"fingerprint": "a"}})
    meta = tmp_path / "ckpt" / "2" / "meta" / "metadata"
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps({**record, "data": "notadict"}))
    with Checkpointer(tmp_path / "ckpt") as checkpoints:
        with pytest.raises(CheckpointError, match="step 2 has malformed metadata: 'data' is str 'notadict'"):
            checkpoints.read_meta(2)
        with pytest.warns(CorruptCheckpointWarning, match="step 2 has malformed metadata"):
            restored = checkpoints.restore(abstract)
        assert (restored.step, restored.skipped) == (1, (2,))
        (tmp_path / "ckpt" / "1" / "meta" / "metadata").write_text('"notadict"')
        with pytest.warns(CorruptCheckpointWarning), pytest.raises(CheckpointError, match="no usable checkpoint"):
            checkpoints.restore(abstract)


# -- a full disk ------------------------------------------------------------------------------------------------


def test_a_full_disk_mid_run_ends_cleanly_naming_the_last_good_checkpoint(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    real_save = ocp.CheckpointManager.save
    saves = []

    def save(self, step, *args, **kwargs):
        saves.append(step)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    out = tmp_path / "run"
    result = _invoke(_spec(tmp_path, steps=6), "--out", out, "--devices", "2", "--checkpoint-every", "2", "--plain")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    expected = (
        f"cannot write checkpoint step 4 to {out / 'checkpoints'}: [Errno 28] No space left on device; stopped after "
        f"step 4 (the last good checkpoint is step 2 ({out / 'checkpoints' / '2'}): free space or make the folder "
        "writable, then --resume)"
    )
    assert f"error: {expected}" in result.stderr
    assert f"failed: tiny-outputs, steps 0 -> 4 of 6" in result.stdout and "(latest step 2)" in result.stdout
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]


def test_a_metrics_line_the_disk_refuses_is_a_metrics_write_error(tmp_path):
    from genaisdk.backend.jax.metrics import MetricsLog, MetricsWriteError

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log._handle.close()
    log._handle = FullDisk()
    with pytest.raises(MetricsWriteError, match="No space left on device") as info:
        log.write({"step": 1})
    assert info.value.errno == errno.ENOSPC and str(tmp_path / "metrics.jsonl") in info.value.strerror
    log.close()  # the failure was reported once; closing says nothing more
