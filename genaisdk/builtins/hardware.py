"""Built-in accelerators: memory, dense peak FLOP/s per dtype, bandwidth, power, price.

Figures are vendor datasheet values as collected, with their sources, in a reference table of
published figures (each record's `source` names the original). Conventions:

- Peak FLOP/s are dense (no 2:4 structured sparsity), per device (a GPU, or a TPU chip), in
  FLOP/s; int8 figures are OP/s. A dtype a device does not accelerate is left out.
  `fp16` and `bf16` are the tensor-core rates with fp32 accumulation, the ones training uses.
- Memory is in bytes. HBM and GDDR capacities are powers of two, and the vendors' "GB" on
  these parts is the binary capacity: an "A100 80GB" holds 80 GiB = 85,899,345,920 bytes
  (the driver reports 81920 MiB); Google's TPU documents write GiB outright. So
  `memory_bytes` is the stated figure times 2**30. What a program can use is less (driver
  and runtime reservations); the planner's memory overheads account for that.
- Bandwidth is HBM/GDDR bandwidth in bytes/s (vendors' GB/s are decimal).
- `power_watts` is the board TDP (TPU: the largest measured chip power Google documents).
- `price_per_hour` is an indicative on-demand USD price per device-hour where a published
  figure exists; prices are volatile and `price_note` says where each comes from.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Hardware

GIB = 2**30
TERA = 1e12
GB_PER_S = 1e9

_NO_PRICE = "no published per-device price in the reference figures"
_V100 = "NVIDIA Tesla V100 datasheet (SXM2)"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet r4 (SXM4)"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet and Hopper architecture whitepaper (dense figures)"
_PRICE_A100_40 = "MosaicML MPT-7B training cost at $2.00 per A100-40GB hour"
_PRICE_A100_80 = "$1.50 per A100-80GB hour, the rate behind the Llama 2 pretraining cost estimate (3,311,616 GPU-hours)"
_PRICE_H100 = "low end of a 2026 snapshot of $1.65 (Vast.ai) to $6.88 (AWS) per H100 SXM hour"


def _tflops(**figures: float) -> dict[str, float]:
    """Datasheet TFLOP/s (TOP/s for int8) to FLOP/s."""
    return {dtype: value * TERA for dtype, value in figures.items()}


def _v100(memory_gib: int) -> Hardware:
    return Hardware(
        name=f"v100-{memory_gib}gb",
        description=f"NVIDIA V100 SXM2 {memory_gib} GB HBM2; fp16 tensor cores, no bf16",
        vendor="NVIDIA",
        memory_bytes=memory_gib * GIB,
        peak_flops=_tflops(fp32=15.7, fp16=125),
        bandwidth_bytes_per_s=900 * GB_PER_S,
        power_watts=300,
        price_note=_NO_PRICE,
        source=_V100,
    )


@hookimpl
def genaisdk_hardware() -> Iterator[Hardware]:
    yield _v100(16)
    yield _v100(32)
    yield Hardware(
        name="a100-40gb",
        description="NVIDIA A100 SXM4 40 GB HBM2",
        vendor="NVIDIA",
        memory_bytes=40 * GIB,
        peak_flops=_tflops(fp32=19.5, tf32=156, bf16=312, fp16=312, int8=624),
        bandwidth_bytes_per_s=1555 * GB_PER_S,
        power_watts=400,
        price_per_hour=2.00,
        price_note=_PRICE_A100_40,
        source=_A100,
    )
    yield Hardware(
        name="a100-80gb",
        description="NVIDIA A100 SXM4 80 GB HBM2e",
        vendor="NVIDIA",
        memory_bytes=80 * GIB,
        peak_flops=_tflops(fp32=19.5, tf32=156, bf16=312, fp16=312, int8=624),
        bandwidth_bytes_per_s=2039 * GB_PER_S,
        power_watts=400,
        price_per_hour=1.50,
        price_note=_PRICE_A100_80,
        source=_A100,
    )
    yield Hardware(
        name="h100-sxm",
        description="NVIDIA H100 SXM5 80 GB HBM3",
        vendor="NVIDIA",
        memory_bytes=80 * GIB,
        peak_flops=_tflops(fp32=67, tf32=494.7, bf16=989.4, fp16=989.4, fp8=1979, int8=1979),
        bandwidth_bytes_per_s=3350 * GB_PER_S,
        power_watts=700,
        price_per_hour=1.65,
        price_note=_PRICE_H100,
        source=_H100,
        aliases=("h100", "h100-80gb", "h100-sxm5"),
    )
    yield Hardware(
        name="h100-pcie",
        description="NVIDIA H100 PCIe 80 GB HBM2e; tensor figures are the datasheet's sparse ones halved",
        vendor="NVIDIA",
        memory_bytes=80 * GIB,
        peak_flops=_tflops(fp32=51, tf32=378, bf16=756, fp16=756, fp8=1513, int8=1513),
        bandwidth_bytes_per_s=2000 * GB_PER_S,
        power_watts=350,
        price_note=_NO_PRICE,
        source="NVIDIA H100 PCIe datasheet (sparse tensor figures; dense = sparse / 2)",
    )
    yield Hardware(
        name="h200",
        description="NVIDIA H200 SXM 141 GB HBM3e; the H100 SXM's compute with more and faster memory",
        vendor="NVIDIA",
        memory_bytes=141 * GIB,
        peak_flops=_tflops(fp32=67, tf32=494.7, bf16=989.4, fp16=989.4, fp8=1979, int8=1979),
        bandwidth_bytes_per_s=4800 * GB_PER_S,
        power_watts=700,
        price_note=_NO_PRICE,
        source="NVIDIA H200 Tensor Core GPU datasheet",
        aliases=("h200-sxm", "h200-141gb"),
    )
    yield Hardware(
        name="l4",
        description="NVIDIA L4 24 GB GDDR6; tensor figures are the datasheet's sparse ones halved",
        vendor="NVIDIA",
        memory_bytes=24 * GIB,
        peak_flops=_tflops(fp32=30.3, tf32=60, bf16=121, fp16=121, fp8=242.5, int8=242.5),
        bandwidth_bytes_per_s=300 * GB_PER_S,
        power_watts=72,
        price_note=_NO_PRICE,
        source="NVIDIA L4 Tensor Core GPU datasheet",
    )
    yield Hardware(
        name="a10g",
        description=(
            "NVIDIA A10G 24 GB GDDR6 (AWS G5). Compute figures are the A10's datasheet values, which the "
            "reference marks unverified; the A10G's tensor throughput is lower than the A10's, so read them "
            "as an upper bound. No TDP is published for the A10G (the A10's is 150 W)."
        ),
        vendor="NVIDIA",
        memory_bytes=24 * GIB,
        peak_flops=_tflops(fp32=31.2, tf32=62.5, bf16=125, fp16=125, int8=250),
        bandwidth_bytes_per_s=600 * GB_PER_S,
        power_watts=None,
        price_note=_NO_PRICE,
        source="NVIDIA A10 datasheet (compute); Baseten, 'NVIDIA A10 vs A10G for ML model inference' (memory)",
    )
    yield Hardware(
        name="rtx-4090",
        description=(
            "NVIDIA GeForce RTX 4090 24 GB GDDR6X; fp16/bf16/fp8 at the fp32-accumulate rate "
            "(GeForce halves it against fp16 accumulation)"
        ),
        vendor="NVIDIA",
        memory_bytes=24 * GIB,
        peak_flops=_tflops(fp32=82.6, tf32=82.6, bf16=165.2, fp16=165.2, fp8=330.3, int8=660.6),
        bandwidth_bytes_per_s=1008 * GB_PER_S,
        power_watts=450,
        price_note=_NO_PRICE,
        source="NVIDIA Ada Lovelace GPU architecture whitepaper (GeForce RTX 4090)",
    )
    yield Hardware(
        name="tpu-v4",
        description="Google Cloud TPU v4 chip (2 TensorCores), 32 GiB HBM2; power is the largest measured",
        vendor="Google",
        kind="tpu",
        memory_bytes=32 * GIB,
        peak_flops=_tflops(bf16=275, int8=275),
        bandwidth_bytes_per_s=1200 * GB_PER_S,
        power_watts=192,
        price_note=_NO_PRICE,
        source="Google Cloud TPU documentation, 'TPU v4' (per chip; measured power 90/170/192 W min/mean/max)",
    )
    yield Hardware(
        name="tpu-v5e",
        description="Google Cloud TPU v5e chip, 16 GiB HBM2; Google publishes no chip power",
        vendor="Google",
        kind="tpu",
        memory_bytes=16 * GIB,
        peak_flops=_tflops(bf16=197, int8=393),
        bandwidth_bytes_per_s=819 * GB_PER_S,
        power_watts=None,
        price_note=_NO_PRICE,
        source="Google Cloud TPU documentation, 'TPU v5e' (per chip)",
    )
    yield Hardware(
        name="tpu-v5p",
        description=(
            "Google Cloud TPU v5p chip, 95 GiB HBM2e; Google publishes no chip power, and its int8 "
            "figure is not verified, so it is left out"
        ),
        vendor="Google",
        kind="tpu",
        memory_bytes=95 * GIB,
        peak_flops=_tflops(bf16=459),
        bandwidth_bytes_per_s=2765 * GB_PER_S,
        power_watts=None,
        price_note=_NO_PRICE,
        source="Google Cloud TPU documentation, 'TPU v5p' (per chip)",
    )
    yield Hardware(
        name="mi300x",
        description="AMD Instinct MI300X 192 GB HBM3 (about 1.3 PF fp16 and 2.6 PF fp8 dense)",
        vendor="AMD",
        memory_bytes=192 * GIB,
        peak_flops=_tflops(fp32=163.4, tf32=653.7, bf16=1307.4, fp16=1307.4, fp8=2614.9, int8=2614.9),
        bandwidth_bytes_per_s=5300 * GB_PER_S,
        power_watts=750,
        price_note=_NO_PRICE,
        source="AMD Instinct MI300X accelerator datasheet",
    )
