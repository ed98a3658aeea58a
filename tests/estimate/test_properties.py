"""Properties the estimation math must have for any input (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genaisdk.dims import Dimensions
from genaisdk.estimate.activations import activation_memory, backward_bytes, loss_bytes, stored_bytes
from genaisdk.estimate.constants import DTYPE_BYTES
from genaisdk.estimate.cost import (
    device_hours,
    flops_to_pf_days,
    pf_days_to_flops,
    seconds_to_days,
    training_seconds,
)
from genaisdk.estimate.inference import inference_memory
from genaisdk.estimate.memory import model_state, training_memory
from genaisdk.estimate.params import count_params
from genaisdk.estimate.scaling import chinchilla_optimal, tokens_per_param_optimal

SETTINGS = settings(max_examples=60, deadline=None)
MIXED = dict(weight_bytes=2, gradient_bytes=2, optimizer_bytes=8, master_bytes=4)
STRATEGIES = {
    "ddp": dict(),
    "zero1": dict(shards_optimizer=True),
    "zero2": dict(shards_optimizer=True, shards_gradients=True),
    "fsdp": dict(shards_optimizer=True, shards_gradients=True, shards_weights=True),
}

params_st = st.floats(min_value=1e6, max_value=1e12)
dp_st = st.integers(min_value=1, max_value=4096)
layers_st = st.integers(min_value=8, max_value=128)


@st.composite
def dims_st(draw):
    heads = draw(st.sampled_from([4, 8, 16, 32]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    kv = draw(st.sampled_from([None, 1, heads // 2]))
    return Dimensions(
        layers=draw(st.integers(min_value=1, max_value=48)),
        d_model=heads * head_dim,
        heads=heads,
        kv_heads=kv,
        d_ff=draw(st.integers(min_value=64, max_value=8192)),
        vocab=draw(st.integers(min_value=256, max_value=64000)),
        context=2048,
        ffn=draw(st.sampled_from(["gelu", "gated"])),
        norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
        tied_embeddings=draw(st.booleans()),
    )


def _total(params, *, micro_batch=1.0, seq=1024.0, dims=None, dp=1, layers=32, strategy="ddp", **kw):
    dims = dims or Dimensions(layers=4, d_model=512, heads=8, d_ff=2048, vocab=32000, context=2048)
    acts = activation_memory(dims, seq=seq, micro_batch=micro_batch)
    return training_memory(
        params=params, **MIXED, dp=dp, largest_layer=params / layers, **STRATEGIES[strategy],
        stored_activations=stored_bytes(acts), loss_buffers=loss_bytes(acts), backward_buffers=backward_bytes(acts), **kw,
    ).total


@SETTINGS
@given(params_st, st.floats(min_value=1.01, max_value=10), st.sampled_from(list(STRATEGIES)), dp_st)
def test_memory_grows_with_parameters(params, factor, strategy, dp):
    assert float(_total(params * factor, strategy=strategy, dp=dp)) > float(_total(params, strategy=strategy, dp=dp))


@SETTINGS
@given(params_st, st.integers(min_value=1, max_value=64), st.integers(min_value=1, max_value=8), dims_st())
def test_memory_grows_with_micro_batch(params, batch, extra, dims):
    """Activations grow strictly; the peak never falls (it stays put when the optimizer step,
    not the backward pass, sets it)."""
    assert float(_total(params, micro_batch=batch + extra, dims=dims)) >= float(_total(params, micro_batch=batch, dims=dims))
    small = activation_memory(dims, seq=1024, micro_batch=batch)
    large = activation_memory(dims, seq=1024, micro_batch=batch + extra)
    assert float(stored_bytes(large)) > float(stored_bytes(small))
    # with a model whose state is negligible, the activations set the peak and it grows
    assert float(_total(1e3, micro_batch=batch + extra, dims=dims)) > float(_total(1e3, micro_batch=batch, dims=dims))


@SETTINGS
@given(params_st, st.integers(min_value=16, max_value=8192), st.integers(min_value=1, max_value=4096), dims_st(),
       st.sampled_from(["none", "selective", "full"]), st.booleans())
def test_activations_grow_with_context(params, seq, extra, dims, recompute, flash):
    small = activation_memory(dims, seq=seq, micro_batch=1, recompute=recompute, flash=flash)
    large = activation_memory(dims, seq=seq + extra, micro_batch=1, recompute=recompute, flash=flash)
    for name in small:
        assert float(large[name]) >= float(small[name])
    assert float(stored_bytes(large) + loss_bytes(large)) > float(stored_bytes(small) + loss_bytes(small))
    assert float(_total(params, seq=seq + extra, dims=dims)) >= float(_total(params, seq=seq, dims=dims))


@SETTINGS
@given(params_st, dp_st, layers_st, st.floats(min_value=0, max_value=1e11))
def test_strategies_are_ordered_per_device(params, dp, layers, activations):
    """fsdp <= zero2 <= zero1 <= ddp, for a model of at least eight equal-size layers (a
    shallower one can lose more to FSDP's two gathered layers than sharding at dp = 2 saves)."""
    totals = {
        name: float(training_memory(params=params, **MIXED, dp=dp, largest_layer=params / layers, **flags,
                                    stored_activations=activations).total)
        for name, flags in STRATEGIES.items()
    }
    tol = 1e-9 * totals["ddp"]
    assert totals["fsdp"] <= totals["zero2"] + tol
    assert totals["zero2"] <= totals["zero1"] + tol
    assert totals["zero1"] <= totals["ddp"] + tol
    states = {name: float(model_state(params=params, **MIXED, dp=dp, **flags).device) for name, flags in STRATEGIES.items()}
    assert states["fsdp"] <= states["zero2"] <= states["zero1"] <= states["ddp"]


@SETTINGS
@given(params_st, st.integers(min_value=1, max_value=1024), st.integers(min_value=2, max_value=64))
def test_sharded_parts_scale_as_one_over_devices(params, dp, factor):
    for flags, part in (
        (STRATEGIES["zero1"], "optimizer"),
        (STRATEGIES["zero2"], "gradients"),
        (STRATEGIES["fsdp"], "weights"),
    ):
        a = float(getattr(model_state(params=params, **MIXED, dp=dp, **flags), part))
        b = float(getattr(model_state(params=params, **MIXED, dp=dp * factor, **flags), part))
        assert b * factor == pytest.approx(a, rel=1e-12)
    # unsharded parts do not move
    a = model_state(params=params, **MIXED, dp=dp, **STRATEGIES["zero1"])
    b = model_state(params=params, **MIXED, dp=dp * factor, **STRATEGIES["zero1"])
    assert float(a.weights) == float(b.weights) and float(a.gradients) == float(b.gradients)


@SETTINGS
@given(params_st, dims_st(), st.integers(min_value=1, max_value=32768), st.integers(min_value=1, max_value=64))
def test_weights_order_with_precision(params, dims, context, batch):
    order = ["int4", "int8", "bf16", "fp32"]
    served = [float(inference_memory(dims, params=params, weight_bytes=DTYPE_BYTES[p], context=context, batch=batch).weights) for p in order]
    assert served[0] < served[1] < served[2] < served[3]
    trained = [float(model_state(params=params, weight_bytes=DTYPE_BYTES[p], gradient_bytes=0, optimizer_bytes=0).weights) for p in order]
    assert trained == sorted(trained) and len(set(trained)) == 4


@SETTINGS
@given(st.floats(min_value=1e15, max_value=1e27))
def test_compute_optimal_allocation_spends_the_budget(flops):
    n, d = chinchilla_optimal(flops)
    assert float(6 * n * d) == pytest.approx(flops, rel=1e-9)
    n, d = tokens_per_param_optimal(flops)
    assert float(6 * n * d) == pytest.approx(flops, rel=1e-9)


@SETTINGS
@given(st.floats(min_value=1e18, max_value=1e26), st.integers(min_value=1, max_value=100000),
       st.integers(min_value=2, max_value=64), st.floats(min_value=1e12, max_value=5e15), st.floats(min_value=0.05, max_value=1.0))
def test_time_times_devices_is_constant_at_fixed_mfu(flops, devices, factor, peak, mfu):
    t1 = training_seconds(flops, devices=devices, peak_flops=peak, mfu=mfu)
    t2 = training_seconds(flops, devices=devices * factor, peak_flops=peak, mfu=mfu)
    assert float(t1 * devices) == pytest.approx(float(t2 * devices * factor), rel=1e-12)
    assert float(device_hours(t1, devices)) == pytest.approx(float(device_hours(t2, devices * factor)), rel=1e-12)


@SETTINGS
@given(st.floats(min_value=1e-3, max_value=1e30))
def test_unit_conversions_round_trip(x):
    assert float(pf_days_to_flops(flops_to_pf_days(x))) == pytest.approx(x, rel=1e-12)
    assert float(seconds_to_days(x * 86400.0)) == pytest.approx(x, rel=1e-12)


@SETTINGS
@given(dims_st(), st.sampled_from(["decoder", "encoder", "encoder_decoder"]))
def test_breakdown_sums_to_total_and_tying_saves_one_matrix(dims, family):
    count = count_params(dims, family)
    assert sum(count.breakdown.values()) == count.total
    tied = count_params(dims.evolve(tied_embeddings=True), family).total
    untied = count_params(dims.evolve(tied_embeddings=False), family).total
    assert untied - tied == dims.vocab * dims.d_model


def test_grid_evaluation_is_vectorized():
    """One call over a million configurations returns a million totals."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    mem = training_memory(
        params=rng.uniform(1e8, 1e11, n), **MIXED, dp=rng.integers(1, 512, n),
        shards_optimizer=rng.random(n) < 0.5, shards_gradients=rng.random(n) < 0.5, shards_weights=rng.random(n) < 0.5,
        largest_layer=1e8, stored_activations=rng.uniform(0, 1e10, n),
    )
    assert mem.total.shape == (n,)
    assert np.all(np.isfinite(mem.total))


@SETTINGS
@given(
    dims_st(),
    st.integers(min_value=1, max_value=256),
    st.lists(st.sampled_from(["q", "k", "v", "o", "gate", "up", "down"]), min_size=1, max_size=7, unique=True),
    st.sampled_from([0.5, 0.516, 1.0, 2.0]),
    st.booleans(),
    st.sampled_from(list(STRATEGIES)),
    dp_st,
    st.sampled_from([0.0, 4.0, 8.0]),
)
def test_frozen_parameters_have_no_gradients_and_no_optimizer_state(dims, rank, targets, frozen_bytes, kbit, strategy, dp, state):
    """Gradients and optimizer state are the trainable parameters' alone: growing the frozen
    base (quantized or kept at the working precision) changes the weights, never them."""
    from genaisdk.estimate.adaptation import kbit_kept_params, lora_params

    count = count_params(dims)
    trainable = float(lora_params(dims, rank=rank, targets=targets))
    kept = kbit_kept_params(count) if kbit else 0.0
    kw = dict(**MIXED | {"optimizer_bytes": state}, trainable_params=trainable, frozen_weight_bytes=frozen_bytes, dp=dp,
              **STRATEGIES[strategy])
    base = model_state(params=count.total + trainable, kept_params=kept, **kw)
    bigger = model_state(params=2 * count.total + trainable, kept_params=2 * kept, **kw)
    for state_ in (base, bigger):
        grads = trainable * 2 / (dp if strategy in ("zero2", "fsdp") else 1)
        opt = trainable * (state + 4) / (dp if strategy != "ddp" else 1)
        assert float(state_.gradients) == pytest.approx(grads)
        assert float(state_.optimizer) == pytest.approx(opt)
    assert float(bigger.weights) > float(base.weights)
