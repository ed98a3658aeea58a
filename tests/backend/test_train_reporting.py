"""metrics.jsonl and the progress display."""

from __future__ import annotations

import io
import json

import pytest

from genaisdk.backend.jax.metrics import MetricsLog, read_metrics
from genaisdk.backend.jax.progress import PlainProgress, SilentProgress, format_rate, format_seconds, make_progress


def _entry(step, loss=1.0):
    return {"kind": "train", "step": step, "loss": loss, "tokens_per_s": 1234.0, "lr": 1e-3, "mfu": None}


def test_metrics_resume_keeps_entries_through_the_restored_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as log:
        for step in range(1, 8):
            log.write(_entry(step))
        log.write({"kind": "eval", "step": 4, "eval_loss": 1.0, "perplexity": 2.7})
    with path.open("a") as handle:
        handle.write('{"kind": "train", "step": 8, "lo')  # torn by a kill mid-write
    with MetricsLog(path, keep_through_step=5) as log:
        log.write(_entry(6, loss=0.5))
    entries = read_metrics(path)
    assert [(e["kind"], e["step"]) for e in entries] == [
        ("train", 1), ("train", 2), ("train", 3), ("train", 4), ("train", 5), ("eval", 4), ("train", 6)
    ]
    assert entries[-1]["loss"] == 0.5


def test_metrics_fresh_run_truncates_and_non_finite_values_stay_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n')
    with MetricsLog(path) as log:
        log.write(_entry(1, loss=float("nan")))
        log.write(_entry(2, loss=float("inf")))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["loss"] for line in lines] == ["nan", "inf"]


def test_metrics_disabled_on_other_processes_writes_nothing(tmp_path):
    with MetricsLog(tmp_path / "m.jsonl", enabled=False) as log:
        log.write(_entry(1))
    assert not (tmp_path / "m.jsonl").exists()


def test_plain_progress_prints_a_bounded_number_of_lines():
    out = io.StringIO()
    progress = PlainProgress(out, lines=10)
    progress.start(first_step=0, total_steps=100)
    for step in range(1, 101):
        progress.step(_entry(step, loss=5.0 - step / 50))
    progress.evaluation({"step": 100, "eval_loss": 3.0, "perplexity": 20.09})
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 13
    assert lines[0].startswith("step 1/100  loss 4.9800  1.2k tok/s")
    assert lines[-2].startswith("step 100/100")
    assert lines[-1] == "eval at step 100: held-out loss 3.0000  perplexity 20.09"


def test_progress_choice_follows_the_output():
    assert isinstance(make_progress(stream=io.StringIO()), PlainProgress)
    assert isinstance(make_progress(primary=False), SilentProgress)
    assert type(make_progress(tty=True, stream=io.StringIO())).__name__ == "RichProgress"


def test_formats():
    assert format_rate(2_500_000) == "2.5M tok/s" and format_rate(950) == "950 tok/s"
    assert format_seconds(3725) == "1:02:05" and format_seconds(65) == "1:05" and format_seconds(None) == "-"


@pytest.mark.parametrize(
    "device_kind, record",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb"),
        ("NVIDIA H200", "h200"),
        ("TPU v5 lite", "tpu-v5e"),
        ("TPU v5p", "tpu-v5p"),
        ("cpu", None),
    ],
)
def test_device_kinds_find_their_hardware_record_for_mfu(device_kind, record):
    from genaisdk.backend.jax.devices import match_hardware
    from genaisdk.registry import get_registry

    found = match_hardware(device_kind, get_registry().catalog("hardware").values())
    assert (found.key if found else None) == record


def _result(**changes):
    from pathlib import Path

    from genaisdk.backend.jax.train import TrainResult

    fields = dict(
        status="completed", project="p", start_step=0, steps=40, total_steps=40, final_loss=1.25, eval_loss=1.5,
        perplexity=4.4817, tokens_per_s=2.0e6, mfu=0.4125, peak_flops=8e15, peak_memory_bytes=3 * 2**30,
        planned_memory_bytes=2 * 2**30, planned_devices=8, seconds=12.0, devices=8, processes=1, platform="gpu",
        out_dir=Path("o"), checkpoint_dir=Path("o/checkpoints"), last_checkpoint=40, metrics_path=Path("o/metrics.jsonl"),
    )
    fields.update(changes)
    return TrainResult(**fields)


def test_summary_shows_mfu_and_measured_against_planned_memory():
    from genaisdk.render.run import train_summary as format_summary

    text = format_summary(_result())
    assert "final loss      1.2500   held-out loss 1.5000   perplexity 4.48" in text
    assert "2.0M tok/s   MFU 41.2%" in text
    # One byte convention everywhere: decimal units, as genai plan shows memory.
    assert "measured peak 3.22 GB per device vs planned 2.15 GB (x1.50)" in text
    assert "planned for" not in text
    other = format_summary(_result(planned_devices=64))
    assert "planned for 64 device(s), run on 8" in other


def test_summary_on_cpu_says_what_is_unknown():
    from genaisdk.render.run import train_summary as format_summary

    text = format_summary(_result(platform="cpu", mfu=None, peak_flops=None, peak_memory_bytes=None))
    assert "MFU - (no peak FLOP/s known for cpu)" in text
    assert "memory          not reported by cpu devices" in text


def test_exit_codes_follow_the_status():
    import signal

    assert _result().exit_code == 0
    assert _result(status="interrupted", signal_number=signal.SIGINT).exit_code == 130
    assert _result(status="diverged").exit_code == 1
