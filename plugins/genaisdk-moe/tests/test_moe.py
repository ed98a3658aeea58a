"""genaisdk-moe: counts against the published Mixtral figures, FLOPs, activations, checks."""

from __future__ import annotations

import types

import attrs
import pytest
from genaisdk_moe import plugin
from genaisdk_moe.counting import moe_activation_bytes, moe_count_params, moe_flops_per_token, routing

from genaisdk.diagnostics import Span
from genaisdk.estimate.activations import activation_memory
from genaisdk.estimate.flops import model_flops_per_token
from genaisdk.estimate.params import count_params, ffn_params
from genaisdk.testing import registry_with


@pytest.fixture(scope="module")
def registry():
    with registry_with(plugin, strict=True, install=False) as registry:
        registry.names("architectures")
        yield registry


def _dims(registry, preset: str):
    return registry.get("presets", preset).dims


@pytest.mark.parametrize(
    "preset, total, active",
    [("mixtral-8x7b", 46.7e9, 12.9e9), ("mixtral-8x22b", 141e9, 39e9)],
)
def test_counts_match_the_published_ones(registry, preset: str, total: float, active: float) -> None:
    count = moe_count_params(_dims(registry, preset))
    assert count.total == pytest.approx(total, rel=0.005)
    assert count.active == pytest.approx(active, rel=0.01)
    assert sum(count.breakdown.values()) == count.total


def test_mixtral_8x7b_exact_count(registry) -> None:
    dims = _dims(registry, "mixtral-8x7b")
    # per layer: attention 4096·(4096 + 2·1024 + 4096), 8 SwiGLU experts 3·4096·14336 each,
    # router 4096·8, two RMSNorms; plus untied 32000 x 4096 embedding and output, final norm
    attention = 4096 * (4096 + 2 * 1024 + 4096)
    layer = attention + 8 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096
    total = 32 * layer + 2 * 32000 * 4096 + 4096
    active = 32 * (attention + 2 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096) + 2 * 32000 * 4096 + 4096
    count = moe_count_params(dims)
    assert (count.total, count.active) == (total, active) == (46_702_792_704, 12_879_925_248)
    assert count.largest_layer == layer


def test_one_expert_top_one_is_the_dense_decoder_plus_a_router(registry) -> None:
    dims = attrs.evolve(_dims(registry, "mixtral-8x7b"), extra={"experts": 1, "top_k": 1})
    dense = count_params(dims, "decoder")
    moe = moe_count_params(dims)
    assert moe.total == moe.active == dense.total + dims.layers * dims.d_model


def test_flops_follow_active_parameters(registry) -> None:
    dims = _dims(registry, "mixtral-8x7b")
    dense = model_flops_per_token(dims, family="decoder", context=4096).total
    moe = moe_flops_per_token(dims, 4096)
    assert moe == pytest.approx(dense + 6 * 32 * (ffn_params(dims) + 4096 * 8))
    wider = attrs.evolve(dims, extra={**dims.extra, "experts": 64})
    assert moe_flops_per_token(wider, 4096) - moe == pytest.approx(6 * 32 * 4096 * 56)  # only the router grows
    assert moe_count_params(wider).total > 7 * moe_count_params(dims).total


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_activations_grow_with_routed_copies(registry, recompute: str) -> None:
    dims = _dims(registry, "mixtral-8x7b")
    kw = dict(seq=4096, micro_batch=2, recompute=recompute, flash=True, bytes_per_value=2.0)
    dense = activation_memory(dims, family="decoder", **kw)
    moe = moe_activation_bytes(dims, **kw)
    router = 8.0 * 8 * 4096 * 2
    if recompute == "full":
        one_layer_ffn = activation_memory(dims, family="decoder", **{**kw, "recompute": "selective"})["ffn"] / 32
        assert moe["recompute_buffer"] == pytest.approx(dense["recompute_buffer"] + one_layer_ffn + router)
        assert "ffn" not in moe
    else:
        assert moe["ffn"] == pytest.approx(2 * dense["ffn"] + 32 * router)
    for part in set(dense) - {"ffn", "recompute_buffer"}:
        assert moe[part] == pytest.approx(dense[part])


@pytest.mark.parametrize(
    "extra, message",
    [({"experts": 8, "top_k": 9}, "top_k must be between 1 and experts"), ({"experts": 0}, "experts must be")],
)
def test_bad_routing_is_an_error(registry, extra: dict, message: str) -> None:
    dims = attrs.evolve(_dims(registry, "mixtral-8x7b"), extra=extra)
    with pytest.raises(ValueError, match=message):
        routing(dims)


def _spec(family: str, **extra):
    model = types.SimpleNamespace(family=family, extra=extra)
    return types.SimpleNamespace(project=types.SimpleNamespace(model=model), spans={"model.top_k": Span(line=7)})


def test_validate_checks_top_k_against_experts(registry) -> None:
    (error,) = registry.validate(_spec("moe-decoder", experts=4, top_k=6))
    assert (error.code, error.severity, error.span.line) == ("MOE001", "error", 7)
    (warning,) = registry.validate(_spec("moe", experts=4, top_k=4))
    assert (warning.code, warning.severity) == ("MOE002", "warning")
    assert registry.validate(_spec("moe-decoder", experts=8, top_k=2)) == []
    assert registry.validate(_spec("decoder", experts=1, top_k=5)) == []


def test_validate_refuses_a_capacity_factor_below_one(registry) -> None:
    # The counting functions raise for it, so a spec with it must not pass `genai check`.
    (error,) = registry.validate(_spec("moe-decoder", experts=8, top_k=2, capacity_factor=0.5))
    assert (error.code, error.severity) == ("MOE003", "error")
    assert registry.validate(_spec("moe-decoder", experts=8, top_k=2, capacity_factor=1.25)) == []


def test_the_architecture_declares_its_spec_keys(registry) -> None:
    architecture = registry.get("architectures", "MoE")
    assert architecture.name == "moe-decoder" and architecture.family == "decoder"
    assert [f.name for f in architecture.extra_dims] == ["experts", "top_k", "capacity_factor"]
    assert architecture.jax_model is None
    assert registry.get("presets", "mixtral-8x7b").provider == "genaisdk_moe.plugin"
