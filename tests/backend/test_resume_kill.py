"""A run killed with SIGKILL and resumed trains exactly the losses of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

from genaisdk.backend.jax.metrics import read_metrics  # noqa: E402

STEPS = 60
SPEC = f"""genai 1

project "tiny-resume" {{
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
    batch         = 256 tokens
    steps         = {STEPS}
    learning_rate = 0.01
  }}
}}
"""


def _env(cache):
    env = dict(os.environ)
    # The three runs compile the same programs: share them through XLA's persistent cache.
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def _train_command(spec, out, *extra):
    return [sys.executable, "-m", "genaisdk", "train", str(spec), "--out", str(out), "--devices", "2",
            "--checkpoint-every", "5", "--plain", *extra]


def _losses(out):
    return [(e["step"], e["loss"], e["grad_norm"]) for e in read_metrics(out / "metrics.jsonl") if e["kind"] == "train"]


def test_sigkill_then_resume_reproduces_the_uninterrupted_losses(tmp_path):
    spec = tmp_path / "tiny.genai"
    spec.write_text(SPEC)
    env = _env(tmp_path / "xla-cache")

    reference = subprocess.run(_train_command(spec, tmp_path / "reference"), env=env, capture_output=True, text=True, timeout=240)
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = _losses(tmp_path / "reference")
    assert [s for s, _, _ in expected] == list(range(1, STEPS + 1))

    out = tmp_path / "killed"
    victim = subprocess.Popen(_train_command(spec, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and victim.poll() is None:
            seen = _losses(out) if (out / "metrics.jsonl").exists() else []
            if seen and seen[-1][0] >= 12:
                break
            time.sleep(0.005)
        assert victim.poll() is None, "the run ended before it could be killed"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    interrupted = _losses(out)
    assert 12 <= interrupted[-1][0] < STEPS

    resumed = subprocess.run(_train_command(spec, out, "--resume"), env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    restored = int(resumed.stdout.split("resuming from step ", 1)[1].split()[0])
    assert 5 <= restored <= interrupted[-1][0] and restored % 5 == 0
    # Bit-for-bit: the same steps, losses and gradient norms as the run never interrupted.
    assert _losses(out) == expected
