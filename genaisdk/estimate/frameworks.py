"""Training software, by the throughput it reaches against the step-time model.

The step-time model (`genaisdk.estimate.steptime`) is calibrated on Megatron-LM: it gives
Narayanan et al. 2021 Table 1 within 0.92-1.09 and Korthikanti et al. 2022 Table 5 within
10% on Selene. Runs on DeepSpeed's pipeline engine, with the same layouts, the same GPUs and
the same FLOP counting, measured a steady fraction of that:

    efficiency = measured throughput / the step-time model's, for the run's own layout

and the step takes `seconds / efficiency`; the difference is the step's `framework` part.

`deepspeed-pipeline` is calibrated on one run and checked on two others it was not fitted to
(tests/estimate/test_steptime.py, docs/accuracy.md):

- calibration: Megatron-Turing NLG 530B, Megatron-DeepSpeed on Selene (Smith et al. 2022,
  "Using DeepSpeed and Megatron to Train Megatron-Turing NLG 530B", arXiv:2201.11990,
  Sec. 2.4: 60.1, 50.2 and 44.4 s per iteration on 280, 350 and 420 DGX A100 servers;
  tensor 8, pipeline 35, batch 1,920 sequences of 2,048, micro-batch 1). The model gives
  44.6, 36.9 and 31.7 s: ratios 0.743, 0.735 and 0.715, mean 0.73;
- check: GPT-NeoX-20B (Black et al. 2022, arXiv:2204.06745, Sec. 3: 117 TFLOP/s per GPU
  on 96 A100-40GB, tensor 2, pipeline 4): the model x 0.73 gives 116;
- check: BLOOM-176B (BigScience 2022, arXiv:2211.05100: about 150 TFLOP/s per GPU on
  Jean Zay, tensor 4, pipeline 12): the model x 0.73 gives 145.

`hf-trainer` (Hugging Face transformers' Trainer on PyTorch, PEFT for adapters) is
calibrated on full fine-tuning and checked on LoRA:

- calibration: fms-acceleration's reference benchmark on one A100-80GB
  (foundation-model-stack/fms-acceleration, scripts/benchmarks/refs/a100_80gb.csv):
  Mistral-7B, 4096-token sequences, gradient checkpointing, flash attention, full
  fine-tuning at 2,775 and 3,049 tokens/s (micro-batches 4 and 8) where the model gives
  4,022 and 4,077: 0.690 and 0.748, mean 0.72;
- check: the same benchmark's LoRA rows (rank 16 on q, k, v, o), 3,598 and 3,632 tokens/s,
  where the model x 0.72 gives 3,646 and 3,664 (within 1.5%);
- not covered: its QLoRA rows (bitsandbytes NF4) run 26-31% slower than its LoRA rows,
  where the model's dequantization traffic adds 1-2% (docs/accuracy.md).

Pure Python: `genai plan` reads it without numpy.
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class Framework:
    """One training stack: its name in `train.framework`, its throughput as a fraction of the
    step-time model's (1.0: the model's own calibration), and the source of that fraction."""

    key: str
    description: str
    efficiency: float
    source: str
    model_parallel: bool = True
    """Whether the software splits layers over devices (Megatron-style tensor and pipeline
    parallelism); the Hugging Face Trainer shards data only (DDP, FSDP, DeepSpeed ZeRO)."""


_DEEPSPEED_SOURCE = (
    "DeepSpeed's pipeline engine measured 0.73 of the step-time model on Megatron-Turing NLG 530B "
    "(Smith et al. 2022, Sec. 2.4: 60.1/50.2/44.4 s per iteration where the model gives 44.6/36.9/31.7 s); "
    "GPT-NeoX-20B's 117 TFLOP/s per GPU (Black et al. 2022) and BLOOM's 150 agree"
)

FRAMEWORKS: dict[str, Framework] = {
    f.key: f
    for f in (
        Framework(
            key="megatron-lm",
            description="Megatron-LM (its own 1F1B and interleaved pipeline schedules)",
            efficiency=1.0,
            source="the step-time model's calibration: Narayanan et al. 2021 Table 1 and Korthikanti et al. 2022 Table 5 on Selene",
        ),
        Framework(
            key="hf-trainer",
            description="Hugging Face transformers' Trainer on PyTorch (PEFT for adapters)",
            efficiency=0.72,
            source="fms-acceleration's A100-80GB benchmark (scripts/benchmarks/refs/a100_80gb.csv): Mistral-7B full "
            "fine-tuning measured 0.690 and 0.748 of the step-time model at micro-batches 4 and 8; its LoRA rows agree within 1.5%",
            model_parallel=False,
        ),
        Framework(
            key="megatron-deepspeed",
            description="Megatron-DeepSpeed (Megatron's layers on DeepSpeed's pipeline engine)",
            efficiency=0.73,
            source=_DEEPSPEED_SOURCE,
        ),
        Framework(
            key="gpt-neox",
            description="GPT-NeoX (Megatron's layers on DeepSpeed's pipeline engine)",
            efficiency=0.73,
            source=_DEEPSPEED_SOURCE,
        ),
    )
}
"""Every stack `train.framework` names; `megatron-lm` is the default."""

DEFAULT_FRAMEWORK = "megatron-lm"


def framework(key: str | None) -> Framework:
    """The record of `key` (None: the default).

    Raises:
        KeyError: `key` is not in `FRAMEWORKS` (the spec's schema refuses it first).
    """
    return FRAMEWORKS[key or DEFAULT_FRAMEWORK]
