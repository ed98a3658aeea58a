"""Weights for serving: a dtype cast, or weight-only int8 / NF4 quantization.

A quantized weight is a `QuantizedArray`, a pytree node whose children are its integer
codes and scales (so `jax.lax.scan` slices a stacked one layer by layer, and its bytes are
the sum of its children's). It becomes numbers in exactly one place,
`genaisdk.backend.jax.layers.dense`, which every weight product (`layers.einsum`) and table
lookup (`layers.lookup`) calls: the weight is dequantized to the compute dtype inside the
compiled step, one layer at a time, and never stored dequantized.

Formats (storage per parameter in `genaisdk.estimate.quantization`):

- ``int8``: per-channel absmax (Dettmers et al. 2022, "LLM.int8()", Sec. 3.1, vector-wise
  quantization applied to the weights): for every output channel, scale = max|w| / 127 over
  the weights that feed it (the contracted axes), codes = round(w / scale). Tables
  (token and position embeddings) get one scale per row, which is also the output channel
  of a tied output projection. Scales are bf16.
- ``nf4``: 4-bit NormalFloat (Dettmers et al. 2023, "QLoRA", Sec. 3): blocks of 64
  consecutive weights are divided by their absmax and rounded to the nearest of the 16
  NF4 values (`nf4_code_book`), two codes per byte. The absmaxes are themselves quantized
  ("double quantization"): per layer, their mean is subtracted and each group of 256 is
  stored as int8 codes with one fp32 scale. QLoRA stores the absmaxes as 8-bit floats; a
  linear int8 code takes the same 8 bits.

Which tensors are quantized, and over which axes an int8 scale is shared, are
`genaisdk.estimate.quantization`'s rules (`quantized_weight`, `int8_contracted_axes`), the
ones the plan's Serve weights count with: matrices with a d_model axis are; vectors (norm
scales, biases) and small unnamed-row tables (token types, T5's relative bias) stay in the
compute dtype, a few thousandths of the weights. Dequantized products run in bf16, the dtype NF4
weights are dequantized to in QLoRA, so the quality cost of a format is measured against
bf16 serving (`genai eval --precision int8` prints both perplexities).

qwix (google/qwix) implements both formats, but it brings flax in as a dependency, and its
int4/NF4 arrays occupy a byte per weight on CPU, so measured bytes would be twice the
format's; this module is the ~200 lines the backend needs instead.
"""

from __future__ import annotations

import functools
import math
import statistics
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from genaisdk.backend.jax.config import UnsupportedError
from genaisdk.backend.jax.precision import Policy
from genaisdk.estimate.quantization import (
    NF4_BLOCK,
    NF4_GROUP,
    QUANTIZED_FORMATS,
    int8_contracted_axes,
    quantized_weight,
)

_DENSE = {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}
QUANTIZED_COMPUTE = jnp.bfloat16
"""The dtype quantized weights are dequantized to, and their products computed in."""
_SCALE_DTYPE = jnp.bfloat16  # a numpy dtype too (ml_dtypes)


@functools.cache
def nf4_code_book() -> np.ndarray:
    """The 16 NF4 values in [−1, 1], ascending (Dettmers et al. 2023, Sec. 3, Eq. 4).

    Quantiles of N(0, 1), normalized to [−1, 1], asymmetric so that 0 is exact: 8 positive
    values at the quantiles of 9 points evenly spaced from `offset` to 1/2, 7 negative ones
    at 8 points, and 0. `offset` = 1 − (1/(2·15) + 1/(2·16))/2 puts the extreme codes
    halfway between the outer quantiles of 15 and 16 equal-probability bins.
    """
    normal = statistics.NormalDist()
    offset = 1.0 - (1.0 / (2 * 15) + 1.0 / (2 * 16)) / 2
    positive = [normal.inv_cdf(p) for p in np.linspace(offset, 0.5, 9)[:-1]]
    negative = [-normal.inv_cdf(p) for p in np.linspace(offset, 0.5, 8)[:-1]]
    values = np.sort(np.asarray(positive + [0.0] + negative))
    return (values / values.max()).astype(np.float32)


# ----------------------------------------------------------------------------- the array


@jax.tree_util.register_pytree_node_class
class QuantizedArray:
    """A quantized weight: `codes` and `scales` (arrays), `format` and the logical `inner`
    shape of one slice (static). Leading axes of the codes beyond a slice (the stacked
    'layers' axis) are leading axes of the weight.

    int8: codes int8 of the weight's shape, scales (bf16,) broadcastable to it.
    nf4: codes uint8 [..., ceil(n/64)·32] (two per byte), scales (absmax codes int8
    [..., blocks], group constants fp32 [..., groups], mean fp32 [..., 1]).
    """

    def __init__(self, format: str, inner: tuple[int, ...], codes: jax.Array, scales: tuple):
        self.format = format
        self.inner = tuple(inner)
        self.codes = codes
        self.scales = tuple(scales)

    def tree_flatten(self) -> tuple[tuple, tuple]:
        return (self.codes, *self.scales), (self.format, self.inner)

    @classmethod
    def tree_unflatten(cls, aux: tuple, children: tuple) -> QuantizedArray:
        return cls(aux[0], aux[1], children[0], children[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        if self.format == "int8":
            return tuple(self.codes.shape)
        return tuple(self.codes.shape[:-1]) + self.inner

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes held: codes and every scale (what serving keeps in memory)."""
        return int(sum(x.size * x.dtype.itemsize for x in (self.codes, *self.scales)))

    def dequantize(self, dtype: Any) -> jax.Array:
        """The weight in `dtype`, shape `self.shape`."""
        if self.format == "int8":
            (scale,) = self.scales
            return (self.codes.astype(jnp.float32) * scale.astype(jnp.float32)).astype(dtype)
        absmax_codes, constants, mean = self.scales
        lead = self.codes.shape[:-1]
        high = (self.codes >> 4).astype(jnp.int32)
        low = (self.codes & 0xF).astype(jnp.int32)
        index = jnp.stack([high, low], axis=-1).reshape(*lead, -1)
        values = jnp.asarray(nf4_code_book())[index]
        absmax = _stored_absmax(absmax_codes.astype(jnp.float32), constants, mean)
        weights = values.reshape(*lead, -1, NF4_BLOCK) * absmax[..., None]
        size = math.prod(self.inner)
        return weights.reshape(*lead, -1)[..., :size].reshape(*lead, *self.inner).astype(dtype)


def _stored_absmax(codes: Any, constants: Any, mean: Any, xp: Any = jnp) -> Any:
    """Block absmaxes [..., blocks] back from their int8 codes [..., blocks] (as floats), the
    groups' constants [..., groups] and the slice's mean [..., 1]; never negative. `xp`:
    jax.numpy inside the compiled step, numpy while quantizing."""
    blocks, groups = codes.shape[-1], constants.shape[-1]
    lead = codes.shape[:-1]
    padded = xp.pad(codes, [(0, 0)] * len(lead) + [(0, groups * NF4_GROUP - blocks)])
    absmax = (padded.reshape(*lead, groups, NF4_GROUP) * constants[..., None]).reshape(*lead, -1)
    return xp.maximum(absmax[..., :blocks] + mean, 0.0)


def is_quantized(x: Any) -> bool:
    return isinstance(x, QuantizedArray)


# ----------------------------------------------------------------------------- quantizing


def quantize_int8(w: Any, axes: tuple[int, ...]) -> QuantizedArray:
    """Per-channel absmax int8 of `w`, one scale per position of the axes not in `axes`.
    Computed on the host with numpy (nothing to compile), once per served model."""
    w = np.asarray(jax.device_get(w), np.float32)
    absmax = np.max(np.abs(w), axis=axes, keepdims=True)
    scale = (np.where(absmax > 0, absmax, 1.0) / 127.0).astype(_SCALE_DTYPE)
    codes = np.clip(np.round(w / scale.astype(np.float32)), -127, 127).astype(np.int8)
    return QuantizedArray("int8", w.shape, jnp.asarray(codes), (jnp.asarray(scale),))


def quantize_nf4(w: Any, lead: int) -> QuantizedArray:
    """Block-wise NF4 of `w` with double-quantized absmaxes; the first `lead` axes (a
    stacked 'layers' axis) are kept, each slice quantized on its own. On the host, numpy."""
    w = np.asarray(jax.device_get(w), np.float32)
    inner = w.shape[lead:]
    outer = w.shape[:lead]
    flat = w.reshape(*outer, -1)
    n = flat.shape[-1]
    blocks = -(-n // NF4_BLOCK)
    flat = np.pad(flat, [(0, 0)] * lead + [(0, blocks * NF4_BLOCK - n)])
    grouped = flat.reshape(*outer, blocks, NF4_BLOCK)
    absmax = np.max(np.abs(grouped), axis=-1)

    # Double quantization of the absmaxes: per slice, centred on their mean, int8 codes with
    # one fp32 constant per group of NF4_GROUP.
    mean = np.mean(absmax, axis=-1, keepdims=True)
    groups = -(-blocks // NF4_GROUP)
    centred = np.pad(absmax - mean, [(0, 0)] * lead + [(0, groups * NF4_GROUP - blocks)])
    centred = centred.reshape(*outer, groups, NF4_GROUP)
    constants = np.max(np.abs(centred), axis=-1) / 127.0
    constants = np.where(constants > 0, constants, 1.0).astype(np.float32)
    absmax_codes = np.clip(np.round(centred / constants[..., None]), -127, 127).reshape(*outer, -1)[..., :blocks]
    # Normalize by the absmax the weights will be dequantized with, so that its rounding
    # error is not added to theirs.
    stored = _stored_absmax(absmax_codes.astype(np.float32), constants, mean.astype(np.float32), xp=np)
    normalized = grouped / np.where(stored > 0, stored, 1.0)[..., None]

    book = nf4_code_book()
    midpoints = (book[1:] + book[:-1]) / 2
    index = np.searchsorted(midpoints, normalized.reshape(*outer, -1)).astype(np.uint8)
    pairs = index.reshape(*outer, -1, 2)
    codes = (pairs[..., 0] << 4) | pairs[..., 1]
    return QuantizedArray(
        "nf4",
        inner,
        jnp.asarray(codes),
        (jnp.asarray(absmax_codes.astype(np.int8)), jnp.asarray(constants), jnp.asarray(mean.astype(np.float32))),
    )


def abstract_quantized(spec: Any, format: str) -> QuantizedArray:
    """The `QuantizedArray` that `quantize_nf4` (format 'nf4', a leading 'layers' axis
    kept) or `quantize_int8` ('int8', per-channel scales) makes of a weight of ParamSpec
    `spec`, as ShapeDtypeStructs: its shapes and dtypes without quantizing anything."""
    shape = tuple(spec.shape)
    if format == "int8":
        axes = int8_contracted_axes(tuple(spec.axes))
        scale = tuple(1 if i in axes else n for i, n in enumerate(shape))
        return QuantizedArray(
            "int8", shape, jax.ShapeDtypeStruct(shape, jnp.int8), (jax.ShapeDtypeStruct(scale, _SCALE_DTYPE),)
        )
    lead = 1 if spec.axes and spec.axes[0] == "layers" else 0
    outer, inner = shape[:lead], shape[lead:]
    blocks = -(-math.prod(inner) // NF4_BLOCK)
    groups = -(-blocks // NF4_GROUP)
    return QuantizedArray(
        "nf4",
        inner,
        jax.ShapeDtypeStruct((*outer, blocks * NF4_BLOCK // 2), jnp.uint8),
        (
            jax.ShapeDtypeStruct((*outer, blocks), jnp.int8),
            jax.ShapeDtypeStruct((*outer, groups), jnp.float32),
            jax.ShapeDtypeStruct((*outer, 1), jnp.float32),
        ),
    )


# ----------------------------------------------------------------------------- serving formats


@attrs.frozen(kw_only=True)
class ServingFormat:
    """How one serving precision stores the weights and computes."""

    precision: str
    """The precision record's name (fp32, bf16, int8, int4, ...)."""
    weights: str
    """'fp32', 'bf16', 'fp16' (a cast), 'int8' or 'nf4'."""
    compute: str
    """The dtype of activations, products and the KV cache: 'fp32', 'bf16' or 'fp16'."""
    planned_weight_bytes: float
    """The record's bytes per parameter (what `genai plan` multiplies the parameters by)."""

    @property
    def quantized(self) -> bool:
        return self.weights in ("int8", "nf4")

    @property
    def compute_dtype(self) -> Any:
        return _DENSE[self.compute]

    def policy(self) -> Policy:
        """The precision policy of the serving step: weights and math in `compute`, logits,
        softmax and norms in fp32. fp32 products ask for full fp32 on accelerators (whose
        default may be TF32); a CPU computes them in fp32 at any setting, and XLA's CPU
        backend runs HIGHEST-precision matrix-vector products about 3x slower, so there the
        default is kept."""
        dtype = self.compute_dtype
        full = jnp.dtype(dtype) == jnp.float32 and jax.default_backend() != "cpu"
        return Policy(
            name=self.precision,
            param_dtype=dtype,
            compute_dtype=dtype,
            output_dtype=jnp.float32,
            matmul_precision="highest" if full else None,
        )


def serving_format(record: Any) -> ServingFormat:
    """The serving format a `genaisdk.records.Precision` asks for; UnsupportedError for a
    format the backend cannot serve (fp8)."""
    param = record.param_dtype
    if param in QUANTIZED_FORMATS:
        return ServingFormat(
            precision=record.key,
            weights=QUANTIZED_FORMATS[param],
            compute="bf16",
            planned_weight_bytes=float(record.weight_bytes),
        )
    if param in _DENSE:
        # A mixed-precision record keeps fp32 master weights for training; serving keeps
        # only the working copy, in the compute dtype.
        compute = "fp32" if record.compute_dtype == "tf32" else record.compute_dtype
        if compute not in _DENSE:
            compute = param
        return ServingFormat(
            precision=record.key, weights=compute, compute=compute, planned_weight_bytes=float(record.weight_bytes)
        )
    raise UnsupportedError(
        f"precision '{record.key}' stores weights in {param}, which the JAX backend cannot serve; "
        "serve in fp32, bf16, fp16, int8 or int4 (NF4)"
    )


def prepare_params(params: Any, specs: Any, fmt: ServingFormat) -> Any:
    """The parameters as `fmt` serves them: cast to its dtype, or quantized (the tensors
    `genaisdk.estimate.quantization.quantized_weight` names, which the plan counts the same
    way) with the rest in the compute dtype. `specs` is the model's `specs()` tree."""
    from genaisdk.backend.jax.model import is_spec

    dtype = fmt.compute_dtype
    flat, treedef = jax.tree.flatten(params)
    spec_leaves = treedef.flatten_up_to(specs)
    out = []
    for leaf, spec in zip(flat, spec_leaves, strict=True):
        assert is_spec(spec)
        if fmt.quantized and quantized_weight(spec.axes):
            if fmt.weights == "int8":
                out.append(quantize_int8(leaf, axes=int8_contracted_axes(spec.axes)))
            else:
                out.append(quantize_nf4(leaf, lead=1 if spec.axes[0] == "layers" else 0))
        else:
            out.append(leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf)
    return jax.tree.unflatten(treedef, out)


def tree_bytes(tree: Any) -> int:
    """Bytes of every array in `tree` (a quantized weight counts its codes and scales)."""
    return int(sum(x.size * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))
