"""Dynamic loss scaling for fp16 training.

fp16 has five exponent bits: gradients below about 6e-8 flush to zero and values above
65504 overflow. Multiplying the loss by a scale S shifts every gradient up by S, and the
gradients are divided by S again (in fp32) before the optimizer sees them (Micikevicius et
al. 2018, "Mixed Precision Training", Sec. 3.2). The dynamic variant picks S on the fly:

- start high (2^15);
- after ``growth_interval`` consecutive steps with finite gradients, multiply S by
  ``factor`` (bounded by ``max_scale``);
- on a step whose gradients hold an inf or NaN, divide S by ``factor`` (bounded below by
  ``min_scale``) and skip the step: parameters AND optimizer state keep their old values,
  and the skip is counted.

The state is a small pytree (`LossScaleState`) carried in the train state, so that it is
checkpointed and restored with everything else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import attrs
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LossScaleState:
    """Current scale, good steps since the last change, and steps skipped so far."""

    scale: jax.Array
    good_steps: jax.Array
    skipped: jax.Array


jax.tree_util.register_dataclass(LossScaleState, data_fields=["scale", "good_steps", "skipped"], meta_fields=[])


@attrs.frozen(kw_only=True)
class DynamicLossScale:
    """The scaling rule. With ``enabled=False`` the scale stays 1 and no step is skipped."""

    enabled: bool = True
    initial_scale: float = 2.0**15
    growth_interval: int = 2000
    factor: float = 2.0
    min_scale: float = 1.0
    max_scale: float = 2.0**24

    def __attrs_post_init__(self) -> None:
        if not (self.min_scale <= self.initial_scale <= self.max_scale):
            raise ValueError(
                f"loss scale bounds must satisfy min <= initial <= max, got "
                f"{self.min_scale} <= {self.initial_scale} <= {self.max_scale}"
            )
        if self.factor <= 1.0 or self.growth_interval < 1:
            raise ValueError("loss scale factor must be > 1 and growth_interval >= 1")

    def init(self) -> LossScaleState:
        scale = self.initial_scale if self.enabled else 1.0
        return LossScaleState(
            scale=jnp.asarray(scale, jnp.float32),
            good_steps=jnp.asarray(0, jnp.int32),
            skipped=jnp.asarray(0, jnp.int32),
        )

    def update(self, state: LossScaleState, finite: jax.Array) -> LossScaleState:
        """The state after a step whose gradients were (or were not) all finite."""
        if not self.enabled:
            return state
        good = jnp.where(finite, state.good_steps + 1, 0)
        grow = good >= self.growth_interval
        scale = jnp.where(
            finite,
            jnp.where(grow, jnp.minimum(state.scale * self.factor, self.max_scale), state.scale),
            jnp.maximum(state.scale / self.factor, self.min_scale),
        )
        return LossScaleState(
            scale=scale.astype(jnp.float32),
            good_steps=jnp.where(grow, 0, good).astype(jnp.int32),
            skipped=(state.skipped + jnp.where(finite, 0, 1)).astype(jnp.int32),
        )


def all_finite(tree: Any) -> jax.Array:
    """True when no leaf of ``tree`` holds an inf or a NaN."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.stack(leaves).all()


def select(finite: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where the step was finite, else ``old``, leaf by leaf (keeps shardings)."""
    return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
