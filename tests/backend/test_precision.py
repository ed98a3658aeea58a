"""Precision policies from the records, the dynamic loss scaler, and mixed-precision training."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from genaisdk.backend.jax.loss_scale import DynamicLossScale, all_finite, select  # noqa: E402
from genaisdk.backend.jax.precision import UnsupportedPrecision, policy_from_record  # noqa: E402
from genaisdk.backend.jax.step import Trainer  # noqa: E402


@pytest.mark.parametrize(
    "name, param, compute, scaling, matmul",
    [
        ("fp32", jnp.float32, jnp.float32, False, "highest"),
        ("tf32", jnp.float32, jnp.float32, False, "tensorfloat32"),
        ("bf16", jnp.float32, jnp.bfloat16, False, None),
        ("bf16-pure", jnp.bfloat16, jnp.bfloat16, False, None),
        ("fp16", jnp.float32, jnp.float16, True, None),
    ],
)
def test_policy_follows_the_record(registry, name, param, compute, scaling, matmul):
    policy = policy_from_record(registry.get("precisions", name))
    assert jnp.dtype(policy.param_dtype) == jnp.dtype(param)
    assert jnp.dtype(policy.compute_dtype) == jnp.dtype(compute)
    assert jnp.dtype(policy.output_dtype) == jnp.dtype(jnp.float32)
    assert policy.loss_scaling is scaling
    assert policy.matmul_precision == matmul


@pytest.mark.parametrize("name", ["fp8", "int8", "int4"])
def test_formats_the_backend_cannot_train_in_are_refused_clearly(registry, name):
    with pytest.raises(UnsupportedPrecision, match=name) as info:
        policy_from_record(registry.get("precisions", name))
    assert isinstance(info.value, NotImplementedError)


def test_scaler_halves_on_overflow_grows_after_good_steps_and_stays_bounded():
    scaler = DynamicLossScale(initial_scale=8.0, growth_interval=2, min_scale=2.0, max_scale=16.0)
    state = scaler.init()
    history = []
    for finite in [True, True, True, True, False, False, False, True]:
        state = scaler.update(state, jnp.asarray(finite))
        history.append((float(state.scale), int(state.good_steps), int(state.skipped)))
    assert history == [
        (8.0, 1, 0),
        (16.0, 0, 0),  # two good steps: doubled
        (16.0, 1, 0),
        (16.0, 0, 0),  # doubling capped at max_scale
        (8.0, 0, 1),  # overflow: halved, counted
        (4.0, 0, 2),
        (2.0, 0, 3),  # floor
        (2.0, 1, 3),
    ]


def test_disabled_scaler_never_changes():
    scaler = DynamicLossScale(enabled=False)
    state = scaler.update(scaler.init(), jnp.asarray(False))
    assert float(state.scale) == 1.0 and int(state.skipped) == 0


def test_finite_check_and_select():
    good = {"a": jnp.ones(3), "b": jnp.zeros((2, 2))}
    bad = {"a": jnp.array([1.0, jnp.inf, 0.0]), "b": jnp.full((2, 2), jnp.nan)}
    assert bool(all_finite(good)) and not bool(all_finite(bad))
    kept = select(all_finite(bad), bad, good)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), kept, good))


def test_bf16_mixed_keeps_fp32_master_weights_and_trains(make_config, run_steps):
    trainer = Trainer(make_config("decoder", precision="bf16", accumulation=1, micro_batch=2))
    losses, state, _ = run_steps(trainer, 8)
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
    assert losses[-1] < 0.8 * losses[0]


def test_pure_bf16_stores_bf16_weights_with_fp32_optimizer_moments(make_config, run_steps):
    trainer = Trainer(make_config("decoder", precision="bf16-pure", accumulation=1, micro_batch=2))
    losses, state, _ = run_steps(trainer, 8)
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.bfloat16)}
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
    assert moments and {x.dtype for x in moments} == {jnp.dtype(jnp.float32)}
    assert losses[-1] < 0.8 * losses[0]


def test_fp16_loss_scaling_recovers_from_a_forced_overflow(make_config, run_steps):
    """A scale of 2^40 overflows fp16 gradients for certain: the first steps are skipped,
    parameters and optimizer state untouched, the scale halved each time, until the
    gradients fit; then training proceeds and the loss falls."""
    config = make_config(
        "decoder", precision="fp16", accumulation=1, micro_batch=2, initial_loss_scale=2.0**40, loss_scale_interval=3
    )
    trainer = Trainer(config)
    initial = trainer.init()
    before = jax.device_get((initial.params, initial.opt_state))
    losses, state, history = run_steps(trainer, 1, state=initial)
    assert history[0]["skipped"] == 1.0
    after = jax.device_get((state.params, state.opt_state))
    assert jax.tree.all(jax.tree.map(np.array_equal, after, before)), "a skipped step changed the state"
    assert float(state.loss_scale.scale) == 2.0**39

    losses, state, history = run_steps(trainer, 40, state=state)
    skipped = [h["skipped"] for h in history]
    first_good = skipped.index(0.0)
    assert int(state.loss_scale.skipped) == 1 + sum(skipped)
    assert float(state.loss_scale.scale) < 2.0**39
    assert all(np.isfinite(losses))
    trained = losses[first_good:]
    assert trained[-1] < 0.8 * trained[0]
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
