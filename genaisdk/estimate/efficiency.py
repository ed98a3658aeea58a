"""Achievable fractions of a device's peak: matrix multiplications and memory traffic.

The time of one operation on one device is its arithmetic at the fraction of the peak FLOP/s
an operation of that size reaches, plus its memory traffic at the fraction of the memory
bandwidth a transfer of that size reaches, without overlap:

    seconds = F / (η_flop(F) · peak FLOP/s) + B / (η_mem(B) · memory bandwidth)

This is Calculon's processing model (Isaev et al. 2023, "Calculon: a Methodology and Tool
for High-Level Co-Design of Systems and Large Language Models", SC23, Sec. 3; its
`no_overlap` processing mode) with the efficiency tables of its A100 and H100 system
descriptions (`systems/a100_80g.json`, `systems/h100_80g_nvl8.json`, identical tables),
which reproduce Megatron-LM's measured iteration times on Selene (Korthikanti et al. 2022,
Table 5) within a few percent:

    η_flop (matrix units):  F >= 128 GFLOP: 0.95,  >= 16: 0.90,  >= 1: 0.60,  below: 0.10
    η_mem (memory):         B >= 100 MB: 0.90,   >= 10 MB: 0.75, >= 1 MB: 0.60, below: 0.30

So the efficiency depends on the matrices' sizes after tensor-parallel sharding and on the
micro-batch's tokens (through F and B), and on the device (through its peak, its memory
bandwidth and the ratio of the two: a device with more FLOP/s per byte spends a larger
share of each operation on its memory term). Cross-check against measurements: the best
GEMM shape a brute-force search finds on an A100 SXM (M = 6912, N = 16384, K = 2048:
464 GFLOP, 322 MB) gets 1.57 ms of arithmetic at 0.95 and 0.18 ms of memory at 0.90, so
266.5 TFLOP/s, where 267.9 is measured; on an H100 SXM (6144 x 17920 x 2816) 797 TFLOP/s,
where 792.1 is measured (Bekman, "Machine Learning Engineering", Maximum Achievable Matmul
FLOPS table).

Element-wise kernels (layer norm, bias-dropout-residual, activation functions, softmax,
the optimizer's update) are counted as memory traffic only; their arithmetic is a few
FLOPs per byte, far below any device's FLOP/s-to-bandwidth ratio.

Every function broadcasts over numpy arrays.
"""

from __future__ import annotations

import numpy as np

MATMUL_EFFICIENCY: tuple[tuple[float, float], ...] = (
    (128e9, 0.95),
    (16e9, 0.90),
    (1e9, 0.60),
    (0.0, 0.10),
)
"""(smallest FLOPs of an operation, fraction of the peak it reaches), largest first.
Calculon's A100 and H100 system descriptions (Isaev et al. 2023), `matrix.gflops_efficiency`."""

MEMORY_EFFICIENCY: tuple[tuple[float, float], ...] = (
    (100e6, 0.90),
    (10e6, 0.75),
    (1e6, 0.60),
    (0.0, 0.30),
)
"""(smallest bytes of a transfer, fraction of the memory bandwidth it reaches), largest
first. Calculon's A100 and H100 system descriptions, `mem1.MB_efficiency`."""

FLASH_ATTENTION_EFFICIENCY = 0.60
"""Fraction of the peak FLOP/s a fused attention kernel reaches, forward and backward:
FlashAttention-2 reaches 50-73% of the A100's peak (Dao 2023, arXiv:2307.08691,
abstract and Sec. 4.1); 0.60 is inside that range. An assumption, used only with
`flash=True`."""

FLASH_BACKWARD_FACTOR = 2.5
"""Backward over forward time of fused attention: the backward pass recomputes the scores
and runs five matrix products against the forward's two (Dao 2023, Sec. 3.1.2, Alg. 2)."""


def _tiers(size, table) -> np.ndarray:
    size = np.asarray(size, dtype=float)
    out = np.full(size.shape, table[-1][1])
    # Smallest tier first, so that each larger threshold overwrites it.
    for threshold, value in reversed(table[:-1]):
        out = np.where(size >= threshold, value, out)
    return out


def matmul_efficiency(flops, table=MATMUL_EFFICIENCY) -> np.ndarray:
    """Fraction of the peak FLOP/s a matrix operation of `flops` FLOPs reaches
    (`MATMUL_EFFICIENCY`, Calculon)."""
    return _tiers(flops, table)


def memory_efficiency(nbytes, table=MEMORY_EFFICIENCY) -> np.ndarray:
    """Fraction of the memory bandwidth a transfer of `nbytes` bytes reaches
    (`MEMORY_EFFICIENCY`, Calculon)."""
    return _tiers(nbytes, table)


def gemm_flops(m, n, k):
    """2·M·N·K: one multiply and one add per term of an (M x K)·(K x N) product."""
    return 2.0 * np.asarray(m, dtype=float) * np.asarray(n, dtype=float) * np.asarray(k, dtype=float)


def gemm_bytes(m, n, k, bytes_per_value=2.0):
    """Bytes a GEMM reads and writes once each: A (M x K), B (K x N), C (M x N)."""
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    return np.asarray(bytes_per_value, dtype=float) * (m * k + k * n + m * n)


def memory_seconds(nbytes, *, memory_bandwidth):
    """Seconds to move `nbytes` through device memory: B / (η_mem(B) · bandwidth)."""
    nbytes = np.asarray(nbytes, dtype=float)
    return nbytes / (memory_efficiency(nbytes) * np.asarray(memory_bandwidth, dtype=float))


def matmul_seconds(flops, nbytes, *, peak_flops, memory_bandwidth, efficiency=None):
    """F / (η_flop(F) · peak) + B / (η_mem(B) · bandwidth) (module docstring). `efficiency`
    replaces the size-dependent η_flop (fused attention kernels)."""
    flops = np.asarray(flops, dtype=float)
    eta = matmul_efficiency(flops) if efficiency is None else np.asarray(efficiency, dtype=float)
    return flops / (eta * np.asarray(peak_flops, dtype=float)) + memory_seconds(nbytes, memory_bandwidth=memory_bandwidth)


def gemm_seconds(m, n, k, *, peak_flops, memory_bandwidth, bytes_per_value=2.0):
    """One (M x K)·(K x N) product: `matmul_seconds` of `gemm_flops` and `gemm_bytes`."""
    return matmul_seconds(
        gemm_flops(m, n, k), gemm_bytes(m, n, k, bytes_per_value), peak_flops=peak_flops, memory_bandwidth=memory_bandwidth
    )
