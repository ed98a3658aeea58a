"""Serving weights of quantized formats, tensor by tensor: the inventory adds up to the
parameter count, the per-tensor constants follow the formats' definitions, and a model
whose tensors are not itemized falls back to the per-parameter figures."""

from __future__ import annotations

import math

import pytest

from genaisdk.dims import Dimensions
from genaisdk.estimate import quantization as Q
from genaisdk.estimate.params import count_params
from genaisdk.estimate.tensors import weight_tensors

SHAPES = {
    "llama-like decoder": (Dimensions(layers=3, d_model=64, heads=4, kv_heads=2, d_ff=160, vocab=300, context=32,
                                      ffn="gated", norm="rmsnorm", positions="rotary", biases=False, qkv_biases=True), "decoder"),
    "gpt-2-like untied decoder": (Dimensions(layers=2, d_model=48, heads=3, d_ff=192, vocab=320, context=40,
                                             tied_embeddings=False), "decoder"),
    "xl-relative parallel decoder": (Dimensions(layers=2, d_model=32, heads=4, d_ff=64, vocab=288, context=16,
                                                positions="xl-relative", parallel_block=True), "decoder"),
    "bert-like encoder": (Dimensions(layers=2, d_model=32, heads=4, d_ff=64, vocab=272, context=24, token_types=2,
                                     embedding_norm=True, final_norm=False, pooler=True, mlm_head=True), "encoder"),
    "t5-like encoder-decoder": (Dimensions(layers=2, decoder_layers=3, d_model=32, heads=4, d_ff=64, vocab=288, context=16,
                                           positions="relative", norm="rmsnorm", biases=False), "encoder_decoder"),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_tensor_inventory_adds_up_to_the_parameter_count(name):
    dims, family = SHAPES[name]
    tensors = weight_tensors(dims, family)
    assert sum(t.size for t in tensors) == count_params(dims, family).total
    assert len({t.name for t in tensors}) == len(tensors)


def test_which_tensors_are_quantized():
    dims, family = SHAPES["llama-like decoder"]
    kinds = {t.name: Q.quantized_weight(t.axes) for t in weight_tensors(dims, family)}
    for name in ("embed/token", "decoder/layers/attn/q", "decoder/layers/attn/o", "decoder/layers/mlp/wi_gate"):
        assert kinds[name], name
    for name in ("decoder/layers/attn/q_bias", "decoder/layers/attn_norm/scale", "decoder/final_norm/scale"):
        assert not kinds[name], name
    bert = {t.name: Q.quantized_weight(t.axes) for t in weight_tensors(*SHAPES["bert-like encoder"])}
    assert bert["encoder/position"] and bert["mlm_head/kernel"] and bert["pooler/kernel"]
    assert not bert["embed/token_types"] and not bert["mlm_head/output_bias"]
    t5 = {t.name: Q.quantized_weight(t.axes) for t in weight_tensors(*SHAPES["t5-like encoder-decoder"])}
    assert not t5["decoder/relative_bias"] and t5["decoder/layers/cross/k"]


def test_int8_scales_are_one_per_output_channel_and_layer():
    # q [layers, e, h, d] contracts e; o [layers, h, d, e] contracts h and d; the embedding
    # [V, e] keeps a scale per row.
    assert Q.int8_tensor_bytes((3, 64, 4, 16), ("layers", "embed", "heads", "kv")) == (3 * 64 * 64, 3 * 4 * 16 * 2)
    assert Q.int8_tensor_bytes((3, 4, 16, 64), ("layers", "heads", "kv", "embed")) == (3 * 64 * 64, 3 * 64 * 2)
    assert Q.int8_tensor_bytes((300, 64), ("vocab", "embed")) == (300 * 64, 300 * 2)
    # The per-parameter formula is the same thing for one matrix.
    codes, scales = Q.int8_tensor_bytes((128, 512), ("embed", "mlp"))
    assert (codes + scales) / (128 * 512) == pytest.approx(float(Q.int8_bytes_per_param(128)))


def test_nf4_constants_per_layer_slice_with_padding():
    # 100 x 10 = 1,000 weights a layer: 16 blocks of 64 (the last padded), one group.
    codes, constants = Q.nf4_tensor_bytes((2, 100, 10), ("layers", "embed", "mlp"))
    assert codes == 2 * 16 * 32
    assert constants == 2 * (16 * 1 + 1 * 4 + 4)
    # A large slice approaches QLoRA's 4.127 bits per parameter (the one mean aside).
    n = 64 * 256 * 40
    codes, constants = Q.nf4_tensor_bytes((n // 1024, 1024), ("embed", "mlp"))
    assert (codes + constants) / n == pytest.approx(float(Q.nf4_bytes_per_param()), rel=2e-5)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("fmt", ["int8", "nf4"])
def test_serving_weights_sum_the_tensors(name, fmt):
    dims, family = SHAPES[name]
    params = count_params(dims, family).total
    served = Q.serving_weights(dims, params=params, weight_bytes=1.0 if fmt == "int8" else 0.5, fmt=fmt, family=family)
    assert served.per_tensor
    tensors = weight_tensors(dims, family)
    quantized = [t for t in tensors if Q.quantized_weight(t.axes)]
    assert served.quantized_params == sum(t.size for t in quantized)
    assert served.unquantized == 2 * (params - served.quantized_params)
    per = Q.int8_tensor_bytes if fmt == "int8" else Q.nf4_tensor_bytes
    assert served.constants == sum(per(t.shape, t.axes)[1] for t in quantized) > 0
    assert served.total == served.codes + served.constants + served.unquantized


def test_a_count_the_tensors_do_not_describe_uses_the_per_parameter_constants():
    dims, _ = SHAPES["llama-like decoder"]
    params = count_params(dims).total + 1_000  # e.g. a plugin's experts
    int8 = Q.serving_weights(dims, params=params, weight_bytes=1.0, fmt="int8")
    nf4 = Q.serving_weights(dims, params=params, weight_bytes=0.5, fmt="nf4")
    assert not int8.per_tensor and not nf4.per_tensor
    assert int8.total == pytest.approx(params * float(Q.int8_bytes_per_param(dims.d_model)))
    assert nf4.total == pytest.approx(params * float(Q.nf4_bytes_per_param()))
    dense = Q.serving_weights(dims, params=params, weight_bytes=2.0)
    assert (dense.total, dense.constants) == (2.0 * params, 0.0)
    with pytest.raises(ValueError, match="unknown weight format"):
        Q.serving_weights(dims, params=params, weight_bytes=1.0, fmt="int3")


def test_the_plan_counts_the_constants_and_explains_them():
    from genaisdk.render.figures import plan_dimensions
    from tests.planner.conftest import plan_text, spec_text

    model = "layers = 4\nd_model = 128\nheads = 4\nd_ff = 512\nvocab = 384\ncontext = 128 tokens"
    plans = {
        p: plan_text(spec_text(model=model, adapt="method = prompt", budget="hardware = 1 x a100-80gb", serve=f"precision = {p}"))
        for p in ("bf16", "int8", "int4")
    }
    params = plans["bf16"].model.params
    dims = plan_dimensions(plans["bf16"])
    assert plans["bf16"].inference.memory.weights == 2 * params
    assert plans["bf16"].inference.memory.weight_constants == 0
    for p, fmt, code_bytes in (("int8", "int8", 1.0), ("int4", "nf4", 0.5)):
        m = plans[p].inference.memory
        served = Q.serving_weights(dims, params=params, weight_bytes=code_bytes, fmt=fmt)
        assert m.weights == served.total > params * code_bytes
        assert m.weight_constants == served.constants
    # d_model 128: a bf16 scale per 128 weights is 1.6%; NF4's block constants 3.2%.
    assert plans["int8"].inference.memory.weights / params == pytest.approx(1 + 2 / 128, abs=0.003)
    assert plans["int4"].inference.memory.weights / (params * 0.5) == pytest.approx(float(Q.nf4_bytes_per_param()) / 0.5, abs=0.004)
    terms = {t.name: t for t in plans["int8"].derivations["inference"]}
    assert terms["quantization constants"].value == plans["int8"].inference.memory.weight_constants
    assert terms["weights"].check == pytest.approx(terms["weights"].value)
    assert "16-bit vectors" in terms and "Dettmers" in terms["quantization constants"].source
    dense_terms = {t.name for t in plans["bf16"].derivations["inference"]}
    assert "quantization constants" not in dense_terms
    assert math.isclose(sum(t.value for t in plans["int8"].derivations["inference"] if t.name in ("weight codes", "quantization constants", "16-bit vectors")),
                        plans["int8"].inference.memory.weights)
