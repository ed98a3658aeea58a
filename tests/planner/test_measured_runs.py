"""Practitioners' measured runs, planned: each within 10% of its measured peak.

The figures and the configuration each run used are in tests/fixtures/measured_runs.json
with their sources. Measured peaks are peak *allocated* bytes, which hold neither the
runtime context nor the allocator's fragmentation: the plan's comparable figure is its total
less those two overhead lines (`allocated` below).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import genaisdk

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "measured_runs.json").read_text())
FMS = FIXTURE["fms_acceleration"]["runs"]

ADAPT = {
    "finetune": "method = finetune",
    "lora": "method = lora; rank = 16; targets = [q, k, v, o]",
    "qlora": "method = qlora; rank = 16; targets = [q, k, v, o]",
}
# A bf16 model trained by PyTorch's AdamW keeps bf16 moments and no master copy; the
# adapters of LoRA and QLoRA train in mixed precision (PEFT keeps them in fp32).
TRAIN = {
    "finetune": "precision = bf16-pure\n    optimizer_state = bf16",
    "lora": "precision = bf16",
    "qlora": "precision = bf16",
}


def mistral_spec(method: str, micro_batch: int) -> str:
    """The runs' configuration: one A100-80GB, 4096-token sequences, one micro-batch per step
    (the global batch is the micro-batch), full recomputation, flash attention."""
    return f"""genai 1
project "measured" {{
  model {{
    preset = mistral-7b
    context = 4096 tokens
  }}
  data {{
    tokens = 100M tokens
  }}
  adapt {{
    {ADAPT[method]}
  }}
  train {{
    {TRAIN[method]}
    optimizer = adamw
    sharding = ddp
    micro_batch = {micro_batch}
    batch = {micro_batch * 4096} tokens
    recompute = full
    attention = flash
  }}
  budget {{
    hardware = 1 x a100-80gb
  }}
}}
"""


def allocated(memory) -> float:
    """The plan's peak without the runtime context and fragmentation (what a framework's
    peak-allocated counter sees)."""
    return memory.total - memory.overheads["runtime"] - memory.overheads["fragmentation"]


@pytest.fixture(scope="module")
def plans():
    return {(r["method"], r["micro_batch"]): genaisdk.plan(mistral_spec(r["method"], r["micro_batch"])) for r in FMS}


@pytest.mark.parametrize("run", FMS, ids=lambda r: f"{r['method']}-mb{r['micro_batch']}")
def test_peak_within_ten_percent_of_the_measured_run(plans, run):
    plan = plans[run["method"], run["micro_batch"]]
    m = plan.memory.per_device
    assert allocated(m) == pytest.approx(run["peak_bytes"], rel=0.10)
    # What stays between steps (weights and optimizer state) is the measured steady state.
    assert m.weights + m.optimizer == pytest.approx(run["steady_bytes"], rel=0.02)
    assert plan.memory.fits


def test_a_bf16_full_fine_tune_peaks_in_the_optimizer_step(plans):
    """Micro-batch 4 and 8 peak alike: the step (gradients + Adam's sqrt(v) buffer), not the
    activations, sets the peak; bf16 moments are 4 bytes per parameter, no master copy."""
    four, eight = plans["finetune", 4], plans["finetune", 8]
    assert four.memory.per_device.peak_phase == eight.memory.per_device.peak_phase == "step"
    assert four.memory.per_device.total == eight.memory.per_device.total
    assert four.train.optimizer_state == "bf16" and four.train.master_weights is None
    params = four.model.params
    assert four.memory.per_device.optimizer == pytest.approx(4 * params)
    assert four.memory.per_device.overheads["update_buffer"] == pytest.approx(2 * params)


def test_fp32_moments_do_not_fit_the_same_run():
    plan = genaisdk.plan(mistral_spec("finetune", 4).replace("optimizer_state = bf16", "optimizer_state = fp32"))
    assert plan.train.optimizer_state == "fp32"
    assert not plan.memory.fits


def _per_token(plans, method: str) -> float:
    """Activation bytes per token, from the two micro-batches (the slope, as measured)."""
    four, eight = plans[method, 4].memory.per_device, plans[method, 8].memory.per_device
    return (eight.activations - four.activations) / (4 * 4096)


def test_activation_bytes_per_token_are_the_measured_slopes(plans):
    """LoRA 735 KB and QLoRA 997 KB per token measured (the difference between micro-batch 8
    and 4); the k-bit-prepared model's fp32 residual stream is the 262 KB between them."""
    measured = {}
    for method in ("lora", "qlora"):
        runs = {r["micro_batch"]: r["peak_bytes"] for r in FMS if r["method"] == method}
        measured[method] = (runs[8] - runs[4]) / (4 * 4096)
        assert _per_token(plans, method) == pytest.approx(measured[method], rel=0.05)
    upcast = _per_token(plans, "qlora") - _per_token(plans, "lora")
    assert upcast == pytest.approx(32 * 4096 * 2 + 4096 * 2, rel=0.05)
    assert upcast == pytest.approx(measured["qlora"] - measured["lora"], rel=0.05)


def test_qlora_keeps_embeddings_and_output_in_16_bits(plans):
    """262M embedding and output parameters: 0.52 GB in bf16 where NF4 would take 0.14 GB.
    The quantized matrices take NF4's 0.5 + 1/64 + 4/(64·256) bytes per parameter (QLoRA's
    "0.127 bits" of constants, unrounded) and a 4-byte mean per layer slice."""
    from genaisdk.estimate.quantization import nf4_bytes_per_param

    plan = plans["qlora", 4]
    kept = next(a for a in plan.assumptions if a.name == "kbit_unquantized_params").value
    assert kept == pytest.approx(2 * 32000 * 4096, rel=0.01)
    nf4 = float(nf4_bytes_per_param())
    adapters = plan.model.trainable_params
    quantized = plan.model.params - kept  # model.params is the base model's
    means = 4 * 32 * 7  # an fp32 mean per layer slice of q, k, v, o, gate, up, down
    # The unquantized tensors in bf16, the adapters in fp32 (`adapter_state_bytes`).
    assert plan.memory.per_device.weights == pytest.approx(quantized * nf4 + means + kept * 2 + adapters * 4, rel=1e-9)
    assert kept * (2 - nf4) == pytest.approx(0.39e9, rel=0.02)


# -- a precision the device cannot compute: the memory question is still answered -----------


TPU = FIXTURE["llama7b_tpu_v4"]
TPU_SPEC = """genai 1
project "llama-tpu" {
  model {
    preset = llama-7b
    context = 2048 tokens
  }
  data {
    tokens = 1T tokens
  }
  train {
    precision = fp32
    sharding = fsdp
    micro_batch = 8
    recompute = none
    attention = materialized
    tensor = 1     # EasyLM's run: fully sharded data parallelism only
    pipeline = 1
  }
  budget {
    hardware = 128 x tpu-v4
  }
}
"""


def test_fp32_on_tpu_v4_answers_memory_and_times_with_a_stand_in(tmp_path):
    plan = genaisdk.plan(TPU_SPEC)
    m = plan.memory
    assert not m.fits
    # XLA wanted 87 GiB after its own rematerialization; the spec asks for none.
    assert m.per_device.total >= TPU["program_bytes_wanted"]
    assert m.headroom == pytest.approx(m.device_capacity - m.per_device.total)
    codes = {d.code: d for d in plan.diagnostics}
    assert codes["GS306"].severity == "warning" and "bf16 peak" in codes["GS306"].message
    assert codes["GP202"].severity == "error"
    assert "GB per device of 34.4 GB" in codes["GP202"].message
    assert plan.time.seconds > 0
    # Full recomputation would fit: the plan's options say how.
    assert codes["GP202"].hint and "would fit" in codes["GP202"].hint

    from genaisdk.cli import cli

    path = tmp_path / "tpu.genai"
    path.write_text(TPU_SPEC)
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 1
    assert "GP202" in result.output and "GS306" in result.output


# ------------------------------------------------------------------------------------------
# Throughput: the step-time model with `train.framework = hf-trainer`

THROUGHPUT = FIXTURE["fms_acceleration_throughput"]["runs"]


def _tokens_per_second(run, framework: str | None = None) -> float:
    text = mistral_spec(run["method"], run["micro_batch"])
    if framework:
        text = text.replace("    recompute = full\n", f"    recompute = full\n    framework = {framework}\n")
    plan = genaisdk.plan(text)
    assert plan.time.model == "step-time"
    return run["micro_batch"] * 4096 / plan.time.step.seconds


def test_hf_trainer_efficiency_is_the_full_fine_tunes_measured_over_modelled_throughput():
    """Calibration: `hf-trainer`'s efficiency is the mean of measured / modelled tokens per
    second of the two full fine-tuning rows (genaisdk.estimate.frameworks)."""
    from genaisdk.estimate.frameworks import FRAMEWORKS

    rows = [r for r in THROUGHPUT if r["method"] == "finetune"]
    ratios = [r["tokens_per_second"] / _tokens_per_second(r) for r in rows]
    assert FRAMEWORKS["hf-trainer"].efficiency == pytest.approx(sum(ratios) / len(ratios), abs=0.01)


@pytest.mark.parametrize("run", [r for r in THROUGHPUT if r["method"] == "lora"], ids=lambda r: f"mb{r['micro_batch']}")
def test_lora_throughput_within_5_percent_with_hf_trainer(run):
    """A check the efficiency was not fitted to: LoRA's frozen base (no weight gradients) and
    its adapters' products, timed by the step-time model."""
    assert _tokens_per_second(run, "hf-trainer") == pytest.approx(run["tokens_per_second"], rel=0.05)


@pytest.mark.parametrize("run", [r for r in THROUGHPUT if r["method"] == "qlora"], ids=lambda r: f"mb{r['micro_batch']}")
def test_qlora_throughput_documented_gap(run):
    """bitsandbytes' NF4 training path runs 26-31% slower than LoRA where the model's
    dequantization traffic adds 1-2%: the plan is 1.2-1.35x too fast (docs/accuracy.md).
    Pinned so a change that moves it is seen."""
    ratio = _tokens_per_second(run, "hf-trainer") / run["tokens_per_second"]
    assert 1.15 <= ratio <= 1.35
