"""Built-in numeric precisions: bytes per piece of training state, and how to compute.

Per parameter: `weight_bytes` (the working copy used in forward and backward),
`gradient_bytes`, `master_bytes` (a full-precision copy the optimizer updates). Per stored
activation value: `activation_bytes`. Optimizer moments are the optimizer record's business
(fp32 unless it says otherwise).

Mixed precision with Adam is ZeRO's accounting: 2 + 2 bytes of fp16/bf16 weights and
gradients, and K = 12 bytes of fp32 master weights, momentum and variance, 16 bytes per
parameter in all (Rajbhandari et al. 2020, Sec. 3.1).
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import DTYPE_BYTES, Precision

_MIXED = (
    "Micikevicius et al. 2018, 'Mixed Precision Training', Sec. 3.1 (fp32 master copy) and 3.2 (loss scaling); "
    "Rajbhandari et al. 2020 (ZeRO), Sec. 3.1"
)


@hookimpl
def genaisdk_precisions() -> Iterator[Precision]:
    yield Precision(
        name="fp32",
        description="Single precision everywhere",
        weight_bytes=DTYPE_BYTES["fp32"],
        gradient_bytes=DTYPE_BYTES["fp32"],
        master_bytes=0.0,
        activation_bytes=DTYPE_BYTES["fp32"],
        compute_dtype="fp32",
        param_dtype="fp32",
        source="IEEE 754 binary32",
        aliases=("float32", "full"),
    )
    yield Precision(
        name="tf32",
        description="fp32 storage; matrix products on tensor cores with a 10-bit mantissa",
        weight_bytes=DTYPE_BYTES["tf32"],
        gradient_bytes=DTYPE_BYTES["fp32"],
        master_bytes=0.0,
        activation_bytes=DTYPE_BYTES["fp32"],
        compute_dtype="tf32",
        param_dtype="fp32",
        source="NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), 'TF32'",
    )
    yield Precision(
        name="fp16",
        description="Mixed fp16: fp16 weights, gradients and activations, fp32 master weights, dynamic loss scaling",
        weight_bytes=DTYPE_BYTES["fp16"],
        gradient_bytes=DTYPE_BYTES["fp16"],
        master_bytes=DTYPE_BYTES["fp32"],
        activation_bytes=DTYPE_BYTES["fp16"],
        compute_dtype="fp16",
        param_dtype="fp16",
        loss_scaling=True,
        source=_MIXED,
        aliases=("fp16-mixed", "float16"),
    )
    yield Precision(
        name="bf16",
        description="Mixed bf16: bf16 weights, gradients and activations, fp32 master weights; no loss scaling "
        "(bf16 has fp32's exponent range)",
        weight_bytes=DTYPE_BYTES["bf16"],
        gradient_bytes=DTYPE_BYTES["bf16"],
        master_bytes=DTYPE_BYTES["fp32"],
        activation_bytes=DTYPE_BYTES["bf16"],
        compute_dtype="bf16",
        param_dtype="bf16",
        source="Kalamkar et al. 2019, 'A Study of BFLOAT16 for Deep Learning Training', Sec. 3; " + _MIXED,
        aliases=("bf16-mixed", "bfloat16"),
    )
    yield Precision(
        name="bf16-pure",
        description="bf16 weights updated in place: no fp32 master copy (optimizer moments still fp32)",
        weight_bytes=DTYPE_BYTES["bf16"],
        gradient_bytes=DTYPE_BYTES["bf16"],
        master_bytes=0.0,
        activation_bytes=DTYPE_BYTES["bf16"],
        compute_dtype="bf16",
        param_dtype="bf16",
        source="Kalamkar et al. 2019, Sec. 3; without the master copy of " + _MIXED,
        aliases=("pure-bf16",),
    )
    yield Precision(
        name="fp8",
        description="fp8 matrix products (E4M3 forward, E5M2 gradients, per-tensor scales) with bf16 gradients, "
        "an fp32 master copy, and bf16 activations outside the matrix products",
        weight_bytes=DTYPE_BYTES["fp8"],
        gradient_bytes=DTYPE_BYTES["bf16"],
        master_bytes=DTYPE_BYTES["fp32"],
        # Only the inputs of the fp8 matrix products are stored in fp8; norms, softmax and
        # residuals keep bf16, so 2 bytes is the figure the activation accounting can use.
        activation_bytes=DTYPE_BYTES["bf16"],
        compute_dtype="fp8",
        param_dtype="fp8",
        source="Micikevicius et al. 2022, 'FP8 Formats for Deep Learning', arXiv:2209.05433, Sec. 3-4",
    )
    yield Precision(
        name="int8",
        description="8-bit integer weights for frozen or served models (vector-wise absmax scales, fp16 outliers)",
        weight_bytes=DTYPE_BYTES["int8"],
        gradient_bytes=0.0,
        master_bytes=0.0,
        activation_bytes=DTYPE_BYTES["fp16"],
        compute_dtype="int8",
        param_dtype="int8",
        trainable=False,
        source="Dettmers et al. 2022, 'LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale', Sec. 3",
    )
    yield Precision(
        name="int4",
        description="4-bit NormalFloat (NF4) frozen weights, dequantized to bf16 for each product; the "
        "double-quantized block constants add 0.127 bits per parameter (about 3%), which the Serve "
        "weights count (genaisdk.estimate.quantization) and weight_bytes leaves out",
        weight_bytes=DTYPE_BYTES["int4"],
        gradient_bytes=0.0,
        master_bytes=0.0,
        activation_bytes=DTYPE_BYTES["bf16"],
        compute_dtype="bf16",
        param_dtype="int4",
        trainable=False,
        source="Dettmers et al. 2023, 'QLoRA: Efficient Finetuning of Quantized LLMs', Sec. 3 (NF4, double "
        "quantization: 0.127 bits per parameter of constants)",
        aliases=("nf4",),
    )
