"""The transformer pytree: parameter counts equal the records', masks and positions behave."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from genaisdk.backend.jax import layers  # noqa: E402
from genaisdk.backend.jax.model import build, is_spec  # noqa: E402
from genaisdk.backend.jax.precision import Policy  # noqa: E402
from genaisdk.dims import Dimensions  # noqa: E402

FP32 = Policy(name="fp32")

BASE = dict(layers=3, d_model=48, heads=6, d_ff=96, vocab=300, context=24)
VARIANTS = {
    "gpt2-like": {},
    "llama-like": dict(ffn="gated", norm="rmsnorm", positions="rotary", biases=False, tied_embeddings=False),
    "gqa": dict(kv_heads=2, positions="rotary"),
    "multi-query": dict(kv_heads=1, head_dim=16, positions="alibi"),
    "t5-like": dict(positions="relative", norm="rmsnorm", biases=False, relative_buckets=16, decoder_layers=2),
    "bert-like": dict(
        final_norm=False, embedding_norm=True, token_types=2, pooler=True, mlm_head=True, position_table=26
    ),
    "palm-like": dict(parallel_block=True, biases=False, ffn="gated", positions="rotary"),
    "xl-relative": dict(positions="xl-relative", ffn="relu"),
    "sinusoidal": dict(positions="sinusoidal", biases=False, norm="layernorm"),
}


@pytest.mark.parametrize("family", ["decoder", "encoder", "encoder-decoder"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parameter_count_equals_the_architecture_records(registry, family, variant):
    dims = Dimensions(**BASE, **VARIANTS[variant])
    record = registry.get("architectures", family)
    model = build(dims, family=record.family)
    assert model.num_params() == record.count_params(dims).total


def test_every_preset_builds_with_the_records_parameter_count(registry):
    """All published presets, 7B to 540B included: counted from the specs, nothing allocated."""
    presets = registry.catalog("presets")
    checked = 0
    for name, preset in presets.items():
        record = registry.get("architectures", preset.architecture)
        if record.jax_model != "genaisdk.backend.jax.model:build":
            continue  # a plugin architecture with its own (or no) JAX model
        checked += 1
        model = build(preset.dims, family=record.family)
        assert model.num_params() == record.count_params(preset.dims).total, name
    assert checked >= 40


def test_every_parameter_names_its_logical_axes():
    model = build(Dimensions(**BASE, **VARIANTS["t5-like"]), family="encoder_decoder")
    allowed = {None, "layers", "embed", "q_heads", "kv_heads", "kv", "mlp", "vocab", "length"}
    flat = jax.tree_util.tree_flatten_with_path(model.specs(), is_leaf=is_spec)[0]
    for path, spec in flat:
        assert set(spec.axes) <= allowed, path
        if "layers" in jax.tree_util.keystr(path):
            assert spec.axes[0] == "layers" and spec.shape[0] in (2, 3)
    q = model.specs()["decoder"]["layers"]["attn"]["q"]
    assert q.axes == ("layers", "embed", "q_heads", "kv") and q.shape == (2, 48, 6, 8)
    assert model.specs()["decoder"]["layers"]["cross"]["k"].axes == ("layers", "embed", "kv_heads", "kv")


_FORWARD: dict = {}


def _logits(model, params, ids, decoder_ids=None):
    """Logits from one jitted forward per model (compiled once per input shape)."""
    key = id(model)
    if key not in _FORWARD:
        _FORWARD[key] = (model, jax.jit(lambda p, i, d: model.apply(p, i, d, policy=FP32)))
    return _FORWARD[key][1](params, ids, decoder_ids)


@pytest.mark.parametrize("variant", ["gpt2-like", "gqa", "multi-query", "xl-relative", "t5-like"])
def test_decoder_positions_never_see_the_future(variant):
    dims = Dimensions(**{**BASE, "layers": 2}, **VARIANTS[variant])
    model = build(dims, family="decoder")
    params = model.init(jax.random.key(0))
    ids = jnp.asarray(np.random.default_rng(0).integers(3, 259, size=(2, 12)), jnp.int32)
    changed = ids.at[:, 8:].set(7)
    a, b = _logits(model, params, ids), _logits(model, params, changed)
    np.testing.assert_allclose(a[:, :8], b[:, :8], atol=1e-5)
    assert not np.allclose(a[:, 8:], b[:, 8:])


def test_encoder_ignores_padding_and_sees_both_directions():
    model = build(Dimensions(**BASE, **VARIANTS["bert-like"]), family="encoder")
    params = model.init(jax.random.key(1))
    ids = jnp.asarray(np.random.default_rng(1).integers(3, 259, size=(1, 10)), jnp.int32)
    padded = jnp.concatenate([ids, jnp.zeros((1, 4), jnp.int32)], axis=1)
    other_pad = padded.at[:, 10:].set(0)
    np.testing.assert_allclose(_logits(model, params, padded)[:, :10], _logits(model, params, other_pad)[:, :10])
    changed = ids.at[:, 9].set(5)
    assert not np.allclose(_logits(model, params, ids)[:, 0], _logits(model, params, changed)[:, 0])


def test_encoder_decoder_decoder_is_causal_and_reads_the_encoder():
    model = build(Dimensions(**{**BASE, "layers": 2}, **VARIANTS["t5-like"]), family="encoder_decoder")
    params = model.init(jax.random.key(2))
    rng = np.random.default_rng(2)
    enc = jnp.asarray(rng.integers(3, 259, size=(1, 10)), jnp.int32)
    dec = jnp.asarray(rng.integers(3, 259, size=(1, 6)), jnp.int32)
    base = _logits(model, params, enc, dec)
    assert base.shape == (1, 6, 300) and base.dtype == jnp.float32
    future = _logits(model, params, enc, dec.at[:, 4:].set(9))
    np.testing.assert_allclose(base[:, :4], future[:, :4], atol=1e-5)
    other_input = _logits(model, params, enc.at[:, 0].set(11), dec)
    assert not np.allclose(base[:, 0], other_input[:, 0])


def test_init_is_deterministic_and_per_parameter():
    dims = Dimensions(**BASE)
    a = build(dims, family="decoder").init(jax.random.key(3))
    b = build(dims.evolve(tied_embeddings=False), family="decoder").init(jax.random.key(3))
    np.testing.assert_array_equal(a["decoder"]["layers"]["attn"]["q"], b["decoder"]["layers"]["attn"]["q"])
    assert float(jnp.std(a["embed"]["token"])) == pytest.approx(0.02, rel=0.05)
    assert float(jnp.abs(a["decoder"]["layers"]["attn"]["q_bias"]).max()) == 0.0


def test_relative_buckets_follow_t5():
    buckets = np.asarray(layers.relative_buckets(1, 200, bidirectional=True, num_buckets=32))[0]
    # Key j relative to query 0: exact buckets for small offsets, log-spaced after, capped.
    assert buckets[0] == 0 and list(buckets[1:8]) == [17, 18, 19, 20, 21, 22, 23]
    assert buckets[199] == 31 and np.all(np.diff(buckets[1:]) >= 0)
    causal = np.asarray(layers.relative_buckets(200, 1, bidirectional=False, num_buckets=32))[:, 0]
    assert list(causal[:16]) == list(range(16)) and causal[199] == 31


def test_alibi_slopes_follow_press_et_al():
    np.testing.assert_allclose(layers.alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)])
    slopes = np.asarray(layers.alibi_slopes(12))
    np.testing.assert_allclose(slopes[:8], [2.0 ** -(i + 1) for i in range(8)])
    np.testing.assert_allclose(slopes[8:], [2.0 ** -(0.5 + i) for i in range(4)])


def test_rotary_preserves_norms_and_encodes_relative_offsets():
    rng = np.random.default_rng(4)
    q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)

    def score(i: int, j: int) -> float:
        qi = layers.rotary(q, jnp.full((1, 1), i))
        kj = layers.rotary(k, jnp.full((1, 1), j))
        return float(jnp.sum(qi * kj))

    assert float(jnp.linalg.norm(layers.rotary(q, jnp.full((1, 1), 5)))) == pytest.approx(float(jnp.linalg.norm(q)))
    assert score(7, 3) == pytest.approx(score(14, 10), rel=1e-5)
