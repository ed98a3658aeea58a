"""Storage of weight-only quantized formats: bytes per parameter, scale constants included.

The formats are the ones `genai generate --precision` and `genai eval --precision` run
(`genaisdk.backend.jax.quantize`); a plan that counts only the integer codes
(`records.DTYPE_BYTES`: 1 byte for int8, 0.5 for int4) is low by the constants below.

- **int8, per-channel absmax** (vector-wise quantization, Dettmers et al. 2022,
  "LLM.int8()", Sec. 3.1): one int8 code per weight and one scale per output channel,
  shared by the `contraction` weights that feed that channel:
  ``1 + scale_bytes / contraction`` bytes per parameter (bf16 scales: 2 bytes).
- **NF4, block-wise with double quantization** (Dettmers et al. 2023, "QLoRA", Sec. 3):
  a 4-bit code per weight, one absmax per block of 64 weights quantized to 8 bits, and one
  fp32 constant per 256 such absmaxes: ``0.5 + 1/64 + 4/(64·256)`` bytes = 4.127 bits per
  parameter, QLoRA's "0.127 bits per parameter" of constants.

Every numeric argument broadcasts over numpy arrays.
"""

from __future__ import annotations

import numpy as np

INT8_SCALE_BYTES = 2
"""A bf16 scale per output channel."""

NF4_BLOCK = 64
"""Weights per absmax block (QLoRA, Sec. 3, "blocksize of 64 for W")."""
NF4_GROUP = 256
"""First-level absmaxes per second-level constant (QLoRA, Sec. 3, "blocksize of 256 for c2")."""
NF4_ABSMAX_BYTES = 1
"""A first-level absmax stored as an 8-bit code."""
NF4_CONSTANT_BYTES = 4
"""A second-level constant stored in fp32."""


def int8_bytes_per_param(contraction, *, scale_bytes=INT8_SCALE_BYTES):
    """``1 + scale_bytes / contraction``: the int8 code plus the weight's share of its
    output channel's scale (Dettmers et al. 2022, Sec. 3.1)."""
    return 1.0 + np.asarray(scale_bytes, dtype=float) / np.asarray(contraction, dtype=float)


def nf4_bytes_per_param(*, block=NF4_BLOCK, group=NF4_GROUP):
    """``0.5 + 1/block + 4/(block·group)``: the 4-bit code, the 8-bit absmax of its block and
    the fp32 constant of its group of absmaxes (Dettmers et al. 2023, Sec. 3: 0.127 bits
    per parameter of constants at block 64, group 256)."""
    block = np.asarray(block, dtype=float)
    return 0.5 + NF4_ABSMAX_BYTES / block + NF4_CONSTANT_BYTES / (block * np.asarray(group, dtype=float))
