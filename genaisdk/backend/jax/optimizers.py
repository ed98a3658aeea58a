"""Optimizers, the learning-rate schedule and gradient clipping.

Each optimizer record's `optax_factory` names one function here
("genaisdk.backend.jax.optimizers:adamw"). A factory is called as
`factory(learning_rate, weight_decay=..., **options)` with `learning_rate` a schedule
(step -> rate) and `options` the record's `defaults` overridden by the run's
`optimizer_options`; it returns an `optax.GradientTransformation`. Weight decay never
applies to biases, normalization scales or T5's relative-bias table (`decay_mask`), the
usual practice since Loshchilov & Hutter 2019 (AdamW) and GPT-2/3 training code.

Clipping by global norm (Pascanu et al. 2013, Sec. 3.2) is applied by the train step
before the optimizer, with the norm it also reports (`clip_by_global_norm`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from genaisdk.backend.jax import quantized_adam
from genaisdk.backend.jax.config import UnsupportedError

NO_DECAY = frozenset({"scale", "bias", "relative_bias", "bi", "bo", "bi_gate"})
"""Leaf names never decayed (with every name ending in `_bias`): biases, norm scales,
T5's relative-bias table."""


def decay_mask(params: Any) -> Any:
    """True for the leaves weight decay applies to: matrices and embeddings."""

    def decays(path: tuple, leaf: Any) -> bool:
        name = str(getattr(path[-1], "key", path[-1])) if path else ""
        return not (name in NO_DECAY or name.endswith("_bias"))

    return jax.tree_util.tree_map_with_path(decays, params)


def warmup_cosine(peak: float, *, warmup_steps: int, total_steps: int, min_ratio: float) -> optax.Schedule:
    """Linear warmup from 0 to `peak` over `warmup_steps`, then cosine decay to
    `min_ratio × peak` at `total_steps` (Loshchilov & Hutter 2017, SGDR Eq. 5, without
    restarts; warmup as in Goyal et al. 2017, Sec. 2.2; decay to 10% as in Hoffmann et al.
    2022). Held at the floor after `total_steps`."""
    peak = float(peak)
    floor = peak * float(min_ratio)
    # Python floats, not ints: a step count past 2**31 must not become an int32 constant.
    warmup = float(max(int(warmup_steps), 0))
    decay = float(max(int(total_steps) - int(warmup), 1))

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        warm = peak * jnp.minimum(step + 1.0, max(warmup, 1.0)) / max(warmup, 1.0)
        progress = jnp.clip((step - warmup) / decay, 0.0, 1.0)
        cosine = floor + 0.5 * (peak - floor) * (1.0 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warmup, warm, cosine)

    return schedule


def global_norm(tree: Any) -> jax.Array:
    """√(Σ x²) over every leaf, accumulated in fp32."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def clip_by_global_norm(tree: Any, norm: jax.Array, max_norm: float | None) -> Any:
    """Scale every leaf by min(1, max_norm / norm) (Pascanu et al. 2013, Algorithm 1)."""
    if max_norm is None or max_norm <= 0:
        return tree
    factor = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda g: (g * factor).astype(g.dtype), tree)


def _decayed(inner: optax.GradientTransformation, learning_rate: Any, weight_decay: float) -> Any:
    parts = [inner]
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)


def adamw(
    learning_rate: Any, *, weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.95, eps: float = 1e-8, **_: Any
):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2); β₂ = 0.95
    as in GPT-3 (Brown et al. 2020, Appendix B)."""
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask)


def adam(
    learning_rate: Any, *, weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, **_: Any
):
    """Adam (Kingma & Ba 2015, Algorithm 1); weight decay, if any, as L2 added to the
    gradient before the moments (the original coupling)."""
    parts = []
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
    parts += [optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.scale_by_learning_rate(learning_rate)]
    return optax.chain(*parts)


def sgd(learning_rate: Any, *, weight_decay: float = 0.0, **_: Any):
    """Plain stochastic gradient descent: no optimizer state."""
    return _decayed(optax.identity(), learning_rate, weight_decay)


def sgd_momentum(
    learning_rate: Any, *, weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False, **_: Any
):
    """SGD with heavy-ball momentum (Polyak 1964; Sutskever et al. 2013, Eq. 1), one fp32
    buffer per parameter."""
    return _decayed(optax.trace(decay=momentum, nesterov=nesterov), learning_rate, weight_decay)


def adafactor(
    learning_rate: Any, *, weight_decay: float = 0.0, decay_rate: float = 0.8, clipping_threshold: float = 1.0, **_: Any
):
    """Adafactor (Shazeer & Stern 2018, Algorithms 4-5): factored second moments (a row and
    a column vector per matrix), no first moment, update clipping at 1.0."""
    return optax.adafactor(
        learning_rate,
        decay_rate=decay_rate,
        clipping_threshold=clipping_threshold,
        weight_decay_rate=weight_decay or None,
        weight_decay_mask=decay_mask,
    )


def lion(learning_rate: Any, *, weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.99, **_: Any):
    """Lion (Chen et al. 2023, Algorithm 2): sign of an interpolated momentum, one buffer."""
    return optax.lion(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay, mask=decay_mask)


def adam_8bit(
    learning_rate: Any,
    *,
    weight_decay: float = 0.0,
    b1: float = 0.9,
    b2: float = 0.95,
    eps: float = 1e-8,
    block_size: int = 2048,
    **_: Any,
):
    """AdamW with both moments stored as block-wise quantized int8 (Dettmers et al. 2022,
    "8-bit Optimizers via Block-wise Quantization"); see `quantized_adam`."""
    return quantized_adam.adamw_8bit(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask, block_size=block_size
    )


def build(
    factory: Any, schedule: optax.Schedule, *, weight_decay: float, options: dict[str, Any]
) -> optax.GradientTransformation:
    """Call an optimizer factory, with a clear error when it is not usable for training."""
    try:
        return factory(schedule, weight_decay=weight_decay, **options)
    except NotImplementedError as exc:
        raise UnsupportedError(str(exc)) from exc
