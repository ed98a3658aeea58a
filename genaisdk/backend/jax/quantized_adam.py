"""AdamW whose two moments are stored in 8 bits, quantized block by block.

After Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization" (ICLR):

- each moment tensor is cut into blocks (here: runs of `block_size` elements along the last
  axis, or whole rows where the last axis does not divide), and each block is normalized
  by its largest magnitude (Sec. 2.1, block-wise quantization), so one outlier only costs
  precision in its own block;
- the normalized values are rounded to the nearest entry of a fixed 256-entry codebook
  with a dynamic (exponent + fraction) layout (Sec. 2.2): dense near zero, coarser near
  one, so both the tiny and the large values of a moment keep a few significant digits.
  The first moment uses a signed codebook, the second (never negative) an unsigned one
  that spends the sign bit on resolution (Sec. 2.2, "dynamic quantization").
- every step dequantizes, applies the fp32 Adam update, and quantizes again (Sec. 2).

Blocks run along the last axis (not over the flattened tensor) so that the int8 codes have
the parameter's shape and the per-block scales its leading axes: both shard exactly like
the parameter they belong to. State per parameter: 2 bytes of codes plus 8/block_size
bytes of fp32 scales.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

DECADES = 7
"""Magnitudes covered: 1e-6 .. 1 relative to the block's maximum."""


def _dynamic_codebook(signed: bool) -> np.ndarray:
    """256 sorted values in [-1, 1] (signed) or [0, 1] (unsigned).

    Decade k (values in (10^(k-7), 10^(k-6)], k = 1..7) holds 2^(k-1) evenly spaced points
    (2^k when unsigned): each higher decade has twice the points of the one below, so the
    relative spacing stays within about a factor of two across the range, the property the
    dynamic data type is built for.
    """
    magnitudes = [0.0]
    for k in range(1, DECADES + 1):
        count = 2 ** (k - 1) if signed else 2**k
        low, high = 10.0 ** (k - 1 - DECADES), 10.0 ** (k - DECADES)
        step = (high - low) / count
        magnitudes += list(low + step * (np.arange(count) + 1))
    values = np.asarray(sorted(set(magnitudes)), np.float64)
    if signed:
        values = np.concatenate([-values[:0:-1], values])
    values = values[:256]
    if len(values) < 256:  # pad with the top value so the table always has 256 entries
        values = np.concatenate([values, np.full(256 - len(values), values[-1])])
    return np.sort(values).astype(np.float32)


SIGNED_CODEBOOK = _dynamic_codebook(signed=True)
UNSIGNED_CODEBOOK = _dynamic_codebook(signed=False)


def _block(last: int, block_size: int) -> int:
    return block_size if last % block_size == 0 else last


def quantize(x: jax.Array, codebook: np.ndarray, block_size: int) -> tuple[jax.Array, jax.Array]:
    """(uint8 codes with x's shape, fp32 per-block absolute maxima [..., blocks])."""
    last = x.shape[-1]
    block = _block(last, block_size)
    blocks = x.astype(jnp.float32).reshape(*x.shape[:-1], last // block, block)
    scale = jnp.max(jnp.abs(blocks), axis=-1)
    normalized = blocks / jnp.where(scale > 0, scale, 1.0)[..., None]
    table = jnp.asarray(codebook)
    midpoints = (table[1:] + table[:-1]) / 2
    codes = jnp.searchsorted(midpoints, normalized).astype(jnp.uint8)
    return codes.reshape(x.shape), scale


def dequantize(codes: jax.Array, scale: jax.Array, codebook: np.ndarray, shape: tuple[int, ...]) -> jax.Array:
    last = codes.shape[-1]
    blocks = scale.shape[-1]
    values = jnp.asarray(codebook)[codes.astype(jnp.int32)].reshape(*codes.shape[:-1], blocks, last // blocks)
    return (values * scale[..., None]).reshape(shape)


@dataclasses.dataclass(frozen=True)
class QuantizedAdamState:
    count: jax.Array
    mu_codes: Any
    mu_scale: Any
    nu_codes: Any
    nu_scale: Any


jax.tree_util.register_dataclass(
    QuantizedAdamState, data_fields=["count", "mu_codes", "mu_scale", "nu_codes", "nu_scale"], meta_fields=[]
)


def scale_by_quantized_adam(b1: float, b2: float, eps: float, block_size: int) -> optax.GradientTransformation:
    """Adam's direction m̂ / (√v̂ + ε) (Kingma & Ba 2015, Algorithm 1) with int8 moments."""

    def init(params: Any) -> QuantizedAdamState:
        if any(p.ndim == 0 for p in jax.tree.leaves(params)):
            raise ValueError("8-bit Adam quantizes along the last axis; every parameter needs rank >= 1")

        def zeros(p: jax.Array, codebook: np.ndarray) -> tuple[jax.Array, jax.Array]:
            return quantize(jnp.zeros(p.shape, jnp.float32), codebook, block_size)

        mu = jax.tree.map(lambda p: zeros(p, SIGNED_CODEBOOK), params)
        nu = jax.tree.map(lambda p: zeros(p, UNSIGNED_CODEBOOK), params)
        first = lambda t: jax.tree.map(lambda pair: pair[0], t, is_leaf=lambda x: isinstance(x, tuple))  # noqa: E731
        second = lambda t: jax.tree.map(lambda pair: pair[1], t, is_leaf=lambda x: isinstance(x, tuple))  # noqa: E731
        return QuantizedAdamState(
            count=jnp.zeros([], jnp.int32),
            mu_codes=first(mu),
            mu_scale=second(mu),
            nu_codes=first(nu),
            nu_scale=second(nu),
        )

    def update(updates: Any, state: QuantizedAdamState, params: Any = None) -> tuple[Any, QuantizedAdamState]:
        count = state.count + 1
        t = count.astype(jnp.float32)

        def one(g, mc, ms, nc, ns):
            shape = g.shape
            m = dequantize(mc, ms, SIGNED_CODEBOOK, shape)
            v = dequantize(nc, ns, UNSIGNED_CODEBOOK, shape)
            g32 = g.astype(jnp.float32)
            m = b1 * m + (1.0 - b1) * g32
            v = b2 * v + (1.0 - b2) * jnp.square(g32)
            direction = (m / (1.0 - b1**t)) / (jnp.sqrt(v / (1.0 - b2**t)) + eps)
            mc, ms = quantize(m, SIGNED_CODEBOOK, block_size)
            nc, ns = quantize(v, UNSIGNED_CODEBOOK, block_size)
            return direction.astype(g.dtype), mc, ms, nc, ns

        flat_g, treedef = jax.tree.flatten(updates)
        leaves = [
            one(*args)
            for args in zip(
                flat_g,
                treedef.flatten_up_to(state.mu_codes),
                treedef.flatten_up_to(state.mu_scale),
                treedef.flatten_up_to(state.nu_codes),
                treedef.flatten_up_to(state.nu_scale),
            )
        ]
        pick = lambda i: treedef.unflatten([leaf[i] for leaf in leaves])  # noqa: E731
        return pick(0), QuantizedAdamState(
            count=count, mu_codes=pick(1), mu_scale=pick(2), nu_codes=pick(3), nu_scale=pick(4)
        )

    return optax.GradientTransformation(init, update)


def adamw_8bit(
    learning_rate: Any,
    *,
    b1: float = 0.9,
    b2: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mask: Any = None,
    block_size: int = 2048,
) -> optax.GradientTransformation:
    """AdamW (decoupled weight decay, Loshchilov & Hutter 2019) over 8-bit moments."""
    parts = [scale_by_quantized_adam(b1, b2, eps, block_size)]
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay, mask=mask))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)
