"""Optimizers named by the records, the schedule, clipping, and 8-bit Adam's quantization."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from genaisdk.backend.jax import optimizers, quantized_adam  # noqa: E402
from genaisdk.backend.jax.step import resolve  # noqa: E402


def _problem(seed: int = 0):
    """A least-squares fit with the naming of a model: a matrix, a bias and a norm scale."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(64, 16)), jnp.float32)
    true = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
    y = x @ true + 0.5
    wi = jnp.asarray(0.1 * rng.normal(size=(16, 8)), jnp.float32)
    params = {"mlp": {"wi": wi, "bi": jnp.zeros((8,))}, "norm": {"scale": jnp.ones((8,))}}

    def loss(p):
        return jnp.mean(jnp.square(x @ p["mlp"]["wi"] * p["norm"]["scale"] + p["mlp"]["bi"] - y))

    return params, loss


def _train(transform, steps: int = 60):
    params, loss = _problem()
    state = transform.init(params)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    values = []
    for _ in range(steps):
        params, state, value = step(params, state)
        values.append(float(value))
    return np.asarray(values), params


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "sgd-momentum", "adafactor", "lion", "adam-8bit"])
def test_every_optimizer_record_builds_and_descends(registry, name):
    record = registry.get("optimizers", name)
    factory = resolve(record.optax_factory, name)
    options = {k: v for k, v in record.defaults.items() if k != "weight_decay"}
    lr = {"sgd": 0.05, "sgd-momentum": 0.02, "lion": 0.02, "adafactor": 0.05}.get(name, 0.05)
    transform = optimizers.build(factory, optax.constant_schedule(lr), weight_decay=0.01, options=options)
    values, _ = _train(transform)
    assert np.all(np.isfinite(values))
    assert values[-1] < 0.2 * values[0], f"{name}: {values[0]:.3f} -> {values[-1]:.3f}"


def test_weight_decay_skips_biases_and_norm_scales():
    params, _ = _problem()
    mask = optimizers.decay_mask(
        {**params, "attn": {"q": 0, "q_bias": 0}, "encoder": {"relative_bias": 0}, "mlm_head": {"output_bias": 0}}
    )
    assert mask["mlp"] == {"wi": True, "bi": False}
    assert mask["norm"] == {"scale": False}
    assert mask["attn"] == {"q": True, "q_bias": False}
    assert mask["encoder"]["relative_bias"] is False and mask["mlm_head"]["output_bias"] is False


def test_warmup_then_cosine_to_the_floor():
    schedule = optimizers.warmup_cosine(1.0, warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(9)) == pytest.approx(1.0)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(60)) == pytest.approx(0.55)  # halfway through the cosine: the mean of peak and floor
    assert float(schedule(110)) == pytest.approx(0.1)
    assert float(schedule(500)) == pytest.approx(0.1)
    values = [float(schedule(s)) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_clipping_by_global_norm():
    tree = {"a": jnp.full((4,), 3.0), "b": jnp.full((1,), 4.0)}  # norm sqrt(36 + 16) = sqrt(52)
    norm = optimizers.global_norm(tree)
    assert float(norm) == pytest.approx(np.sqrt(52.0))
    clipped = optimizers.clip_by_global_norm(tree, norm, 1.0)
    assert float(optimizers.global_norm(clipped)) == pytest.approx(1.0, rel=1e-6)
    assert optimizers.clip_by_global_norm(tree, norm, 100.0) is not tree
    np.testing.assert_allclose(optimizers.clip_by_global_norm(tree, norm, 100.0)["a"], tree["a"])


def test_block_quantization_is_accurate_where_it_matters():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_t(3, size=(6, 4096)), jnp.float32)  # heavy-tailed, like moments
    codes, scale = quantize = quantized_adam.quantize(x, quantized_adam.SIGNED_CODEBOOK, 2048)
    assert codes.shape == x.shape and codes.dtype == jnp.uint8 and scale.shape == (6, 2)
    back = quantized_adam.dequantize(codes, scale, quantized_adam.SIGNED_CODEBOOK, x.shape)
    blocks_max = jnp.repeat(scale, 2048, axis=1)
    # Error at most half the widest codebook gap (top decade: 0.9 / 64) of each block's maximum.
    assert float(jnp.max(jnp.abs(back - x) / blocks_max)) <= 0.9 / 64 / 2 + 1e-6
    big = jnp.abs(x) > 0.1 * blocks_max
    assert float(jnp.max(jnp.abs(back - x)[big] / jnp.abs(x)[big])) < 0.08
    assert len(quantize) == 2
    assert quantized_adam.UNSIGNED_CODEBOOK.min() == 0.0 and quantized_adam.UNSIGNED_CODEBOOK.max() == 1.0


def test_eight_bit_adam_follows_full_precision_adam():
    full, _ = _train(optimizers.adamw(optax.constant_schedule(0.05), b2=0.999), steps=80)
    eight, _ = _train(optimizers.adam_8bit(optax.constant_schedule(0.05), b2=0.999), steps=80)
    assert eight[-1] < 0.05 * eight[0]
    np.testing.assert_allclose(eight[:20], full[:20], rtol=0.1)


# -- the optimizer state's dtype follows the plan ------------------------------------------


def _state_leaves(trainer):
    """The optimizer state's array leaves (shapes and dtypes only: nothing is compiled)."""
    return [leaf for leaf in jax.tree.leaves(trainer.abstract_state().opt_state) if leaf.ndim > 0]


@pytest.mark.parametrize("state, dtype", [(None, jnp.float32), ("fp32", jnp.float32), ("bf16", jnp.bfloat16)])
def test_the_optimizer_state_dtype_is_the_plans(make_config, state, dtype):
    from genaisdk.backend.jax.step import Trainer

    trainer = Trainer(make_config(precision="bf16-pure", optimizer_state=state))
    leaves = _state_leaves(trainer)
    assert leaves and all(leaf.dtype == dtype for leaf in leaves)


def test_an_int8_state_runs_adamw_block_quantized(make_config):
    from genaisdk.backend.jax.step import Trainer

    trainer = Trainer(make_config(optimizer="adamw", optimizer_state="int8"))
    codes = [leaf for leaf in _state_leaves(trainer) if leaf.dtype == jnp.uint8]
    # Two moments of 8-bit codes per parameter, each with the parameter's shape.
    params = [leaf for leaf in jax.tree.leaves(trainer.abstract_state().params)]
    assert len(codes) == 2 * len(params)


def test_an_int8_state_without_an_8bit_form_is_refused(make_config):
    from genaisdk.backend.jax.config import UnsupportedError

    with pytest.raises(UnsupportedError, match="no 8-bit form"):
        make_config(optimizer="lion", optimizer_state="int8")
