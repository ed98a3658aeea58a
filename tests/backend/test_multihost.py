"""Two local processes with two CPU devices each train the losses of one four-device process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

from genaisdk.backend.jax.metrics import read_metrics  # noqa: E402

SPEC = """genai 1

project "tiny-hosts" {
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
    source = "synthetic"
  }
  train {
    precision     = fp32
    sharding      = fsdp
    batch         = 512 tokens
    steps         = 8
    learning_rate = 0.01
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(spec, out, devices, *extra):
    return [sys.executable, "-m", "genaisdk", "train", str(spec), "--out", str(out), "--devices", str(devices),
            "--eval-every", "4", "--plain", *extra]


def _train_entries(out):
    return [e for e in read_metrics(out / "metrics.jsonl") if e["kind"] == "train"]


def test_two_processes_reproduce_one_process_losses(tmp_path):
    spec = tmp_path / "tiny.genai"
    spec.write_text(SPEC)
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "xla-cache")

    single = subprocess.run(_command(spec, tmp_path / "one", 4), env=env, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-2000:]

    port = _free_port()
    out = tmp_path / "two"
    workers = [
        subprocess.Popen(
            _command(spec, out, 2, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(rank)),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=240))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    # Only process 0 reports; both take part in every step and in the checkpoint.
    assert "x 2 processes" in outputs[0][0] and "completed:" in outputs[0][0]
    assert "step 1/8" not in outputs[1][0] and "completed:" not in outputs[1][0]

    one, two = _train_entries(tmp_path / "one"), _train_entries(out)
    assert [e["step"] for e in two] == list(range(1, 9))
    np.testing.assert_allclose([e["loss"] for e in two], [e["loss"] for e in one], rtol=1e-5)
    evals = [e["eval_loss"] for e in read_metrics(out / "metrics.jsonl") if e["kind"] == "eval"]
    evals_one = [e["eval_loss"] for e in read_metrics(tmp_path / "one" / "metrics.jsonl") if e["kind"] == "eval"]
    np.testing.assert_allclose(evals, evals_one, rtol=1e-5)
    assert (out / "checkpoints" / "8").is_dir()
