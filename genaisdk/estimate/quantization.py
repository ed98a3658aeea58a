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

Which tensors are quantized, and over which axes an int8 scale is shared, is decided here
(`quantized_weight`, `int8_contracted_axes`) and nowhere else: the backend quantizes by
these rules, and `serving_weights` counts a model's served bytes tensor by tensor with them
(`genaisdk.estimate.tensors`), the integer codes, the constants as stored (an NF4 block's
padding and a layer's fp32 mean included) and the tensors left in 16 bits, so the plan's
Serve weights equal the bytes `genai generate --bench` measures.

Every numeric argument of the per-parameter formulas broadcasts over numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.tensors import weight_tensors

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


QUANTIZED_FORMATS = {"int8": "int8", "int4": "nf4"}
"""Weight-only format served for a precision record's `param_dtype`: per-channel int8, and
NF4 for 4-bit weights (the 4-bit format QLoRA serves and trains against)."""

QUANTIZED_VECTOR_BYTES = 2
"""Bytes of each value of a tensor that stays unquantized beside quantized weights: bf16,
the dtype the quantized products are computed in."""

NF4_MEAN_BYTES = 4
"""Double quantization centres a layer's absmaxes on their mean, kept in fp32 (one per
layer slice of each tensor)."""


def weight_format(param_dtype: str) -> str | None:
    """'int8' or 'nf4' for a quantized precision's `param_dtype`; None for a dense one."""
    return QUANTIZED_FORMATS.get(param_dtype)


def _own_axes(axes: Sequence[str | None]) -> tuple[str | None, ...]:
    axes = tuple(axes)
    return axes[1:] if axes and axes[0] == "layers" else axes


def quantized_weight(axes: Sequence[str | None]) -> bool:
    """Whether a tensor with these logical axes (`genaisdk.estimate.tensors`) is stored
    quantized: the matrices products read, i.e. tensors of rank 2 and more (beyond a stacked
    'layers' axis) with a d_model ('embed') axis: projections, FFN kernels, the token
    embedding, an output projection, a learned position table. Vectors (norm scales,
    biases, per-head [heads, kv] biases and Transformer-XL's u, v) and small tables with
    unnamed rows (BERT's token types, T5's relative-bias buckets) stay in 16 bits: a few
    thousandths of the weights, where one scale for a whole bias would cost accuracy."""
    own = _own_axes(axes)
    return len(own) >= 2 and "embed" in own and own[0] is not None


def kbit_base_quantized(axes: Sequence[str | None]) -> bool:
    """Whether a frozen k-bit base (QLoRA's NF4, an int8 base) stores a tensor quantized: the
    blocks' matrices only (`quantized_weight` with a stacked 'layers' axis), as bitsandbytes
    quantizes linear layers; the embeddings, the output head and every vector stay at the
    working precision (Dettmers et al. 2023, Sec. 3; transformers `get_keys_to_not_convert`)."""
    axes = tuple(axes)
    return bool(axes) and axes[0] == "layers" and quantized_weight(axes)


def int8_contracted_axes(axes: Sequence[str | None]) -> tuple[int, ...]:
    """Positions of the axes an int8 scale is shared over: those the product contracts, so
    each output channel keeps its own scale (Dettmers et al. 2022, Sec. 3.1). Tables
    ([vocab or length, embed]) are read by row (a tied output projection contracts
    `embed`, so a row is its output channel); the attention output [q_heads, kv, embed]
    contracts the heads and kv; every other kernel contracts its first (input) axis. A stacked
    'layers' axis is never contracted: each layer has its own scales."""
    axes = tuple(axes)
    offset = 1 if axes and axes[0] == "layers" else 0
    own = axes[offset:]
    if own[-1:] == ("embed",) and own[0] in ("vocab", "length"):
        return (offset + len(own) - 1,)
    if own[:2] in (("q_heads", "kv"), ("heads", "kv")):
        return (offset, offset + 1)
    return (offset,)


def int8_tensor_bytes(shape: Sequence[int], axes: Sequence[str | None], *, scale_bytes=INT8_SCALE_BYTES) -> tuple[int, int]:
    """(code bytes, scale bytes) of one int8 tensor: a byte per weight, and `scale_bytes`
    per position of the axes not contracted (`int8_contracted_axes`)."""
    size = math.prod(shape)
    contraction = math.prod(shape[i] for i in int8_contracted_axes(axes))
    return size, (size // contraction) * int(scale_bytes)


def nf4_tensor_bytes(shape: Sequence[int], axes: Sequence[str | None], *, block=NF4_BLOCK, group=NF4_GROUP) -> tuple[int, int]:
    """(code bytes, constant bytes) of one NF4 tensor, each layer slice quantized on its
    own: its n weights padded to whole blocks, ceil(n/block) blocks of block/2 code bytes;
    per block an 8-bit absmax code, per group of absmaxes an fp32 constant, per slice an
    fp32 mean (Dettmers et al. 2023, Sec. 3, double quantization)."""
    shape = tuple(shape)
    slices = shape[0] if tuple(axes)[:1] == ("layers",) else 1
    n = math.prod(shape) // slices
    blocks = -(-n // block)
    groups = -(-blocks // group)
    codes = blocks * block // 2
    constants = blocks * NF4_ABSMAX_BYTES + groups * NF4_CONSTANT_BYTES + NF4_MEAN_BYTES
    return slices * codes, slices * constants


@attrs.frozen(kw_only=True)
class ServingWeights:
    """Bytes of a model's weights as one serving format stores them.

    `codes`: the quantized tensors' integer codes (a dense format: every weight);
    `constants`: their scales, absmaxes, group constants and means; `unquantized`: the
    tensors kept in 16 bits beside them; `quantized_params` the parameters stored as codes.
    `per_tensor` is False where the model's tensors
    are not known (an architecture from a plugin): the constants are then the format's
    per-parameter share (`int8_bytes_per_param` at d_model, `nf4_bytes_per_param`) over
    every parameter."""

    codes: float
    constants: float = 0.0
    unquantized: float = 0.0
    quantized_params: float = 0.0
    per_tensor: bool = True

    @property
    def total(self) -> float:
        return self.codes + self.constants + self.unquantized


def serving_weights(
    dims: Dimensions, *, params, weight_bytes, fmt: str | None = None, family: str = "decoder", blocks_only: bool = False
) -> ServingWeights:
    """Bytes of the served weights: `params` × `weight_bytes` for a dense format (`fmt`
    None); for 'int8' or 'nf4', tensor by tensor (`genaisdk.estimate.tensors`) when the
    tensors of `dims` and `family` hold exactly `params` parameters: `quantized_weight`
    ones as codes plus constants (`int8_tensor_bytes`, `nf4_tensor_bytes`), the rest at
    `QUANTIZED_VECTOR_BYTES`. Otherwise (another architecture's count, or no dims) the
    codes at `weight_bytes` and the per-parameter constants over every parameter.
    `params` and `weight_bytes` of a dense format may be numpy arrays (the result
    broadcasts). `blocks_only`: quantize only the blocks' matrices (`kbit_base_quantized`),
    as a frozen k-bit base under QLoRA is stored. Raises ValueError for an unknown format."""
    if fmt is None:
        return ServingWeights(codes=np.asarray(params, dtype=float) * np.asarray(weight_bytes, dtype=float))
    if fmt not in ("int8", "nf4"):
        raise ValueError(f"unknown weight format {fmt!r}; expected int8 or nf4")
    tensors = weight_tensors(dims, family)
    if sum(t.size for t in tensors) == params:
        codes = constants = unquantized = quantized = 0
        quantized_tensor = kbit_base_quantized if blocks_only else quantized_weight
        for t in tensors:
            if not quantized_tensor(t.axes):
                unquantized += t.size * QUANTIZED_VECTOR_BYTES
                continue
            c, k = (int8_tensor_bytes if fmt == "int8" else nf4_tensor_bytes)(t.shape, t.axes)
            codes, constants, quantized = codes + c, constants + k, quantized + t.size
        return ServingWeights(
            codes=float(codes), constants=float(constants), unquantized=float(unquantized), quantized_params=float(quantized)
        )
    params = float(params)
    if fmt == "int8":
        # Most weights feed a product contracting d_model (q, k, v, the FFN's input).
        share = float(int8_bytes_per_param(dims.d_model)) - 1.0
    else:
        share = float(nf4_bytes_per_param()) - 0.5
    return ServingWeights(codes=params * float(weight_bytes), constants=params * share, quantized_params=params, per_tensor=False)
