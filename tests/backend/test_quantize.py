"""Weight-only int8 and NF4: the code book, round trips, layer slicing, measured bytes
against the plan, and the quality cost on a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from genaisdk.backend.jax import quantize as Q  # noqa: E402
from genaisdk.backend.jax.config import UnsupportedError  # noqa: E402
from genaisdk.dims import Dimensions  # noqa: E402
from genaisdk.estimate.inference import inference_memory  # noqa: E402
from genaisdk.estimate.quantization import int8_bytes_per_param, nf4_bytes_per_param  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_nf4_code_book_is_qloras():
    published = json.loads((FIXTURES / "nf4_code_book.json").read_text())
    np.testing.assert_allclose(Q.nf4_code_book(), published["values"], atol=1e-6)
    # 4 bits + an 8-bit absmax per 64 weights + an fp32 constant per 256 absmaxes.
    assert (nf4_bytes_per_param() - 0.5) * 8 == pytest.approx(published["bits_per_parameter_of_constants"], abs=5e-4)


def test_int8_round_trip_and_per_channel_scales():
    w = jax.random.normal(jax.random.key(0), (3, 64, 4, 8)) * 0.05  # [layers, e, h, d] like q
    q = Q.quantize_int8(w, axes=(1,))
    assert q.codes.dtype == jnp.int8 and q.scales[0].shape == (3, 1, 4, 8)
    scale = np.asarray(q.scales[0], np.float32)
    error = np.abs(np.asarray(q.dequantize(jnp.float32)) - np.asarray(w))
    assert (error <= scale / 2 + 1e-6).all()  # rounding to the nearest code
    assert q.nbytes == w.size + 3 * 4 * 8 * 2  # a byte per weight, a bf16 scale per channel


def test_nf4_round_trip_blocks_and_slicing_by_layer():
    w = jax.random.normal(jax.random.key(1), (2, 96, 40)) * 0.02
    q = Q.quantize_nf4(w, lead=1)
    assert q.shape == (2, 96, 40) and q.codes.shape == (2, 96 * 40 // 2)
    dense = np.asarray(q.dequantize(jnp.float32))
    # Every weight is a code-book value times its block's (double-quantized) absmax.
    blocks = dense.reshape(2, -1, 64)
    absmax = np.abs(blocks).max(axis=-1, keepdims=True)
    ratios = blocks / np.where(absmax > 0, absmax, 1)
    assert np.abs(ratios[..., None] - Q.nf4_code_book()).min(axis=-1).max() < 1e-5
    relative = np.linalg.norm(dense - np.asarray(w)) / np.linalg.norm(np.asarray(w))
    assert relative < 0.12
    # A scan over the layers axis slices every child, and gives each layer's weights.
    summed, _ = jax.lax.scan(lambda c, layer: (c + layer.dequantize(jnp.float32).sum(), None), 0.0, q)
    assert float(summed) == pytest.approx(float(dense.sum()), rel=1e-4)


def test_serving_formats_from_precision_records(registry):
    formats = {name: Q.serving_format(registry.get("precisions", name)) for name in ("fp32", "bf16", "int8", "nf4")}
    assert (formats["fp32"].weights, formats["bf16"].weights) == ("fp32", "bf16")
    assert (formats["int8"].weights, formats["int8"].compute) == ("int8", "bf16")
    assert (formats["nf4"].precision, formats["nf4"].weights) == ("int4", "nf4")
    with pytest.raises(UnsupportedError, match="cannot serve"):
        Q.serving_format(registry.get("precisions", "fp8"))


def test_measured_weight_bytes_equal_the_plan(registry):
    """Measured bytes of the served weights equal the plan's (`inference_memory`, codes +
    constants + 16-bit vectors) to the byte; against the codes alone int8 is 0.8% above
    (a bf16 scale per 256 weights) and NF4 3.2% (QLoRA's 0.127 bits per parameter)."""
    from genaisdk.backend.jax.runs import fresh_model

    dims = Dimensions(layers=2, d_model=256, heads=4, d_ff=1024, vocab=384, context=64, ffn="gated", norm="rmsnorm", biases=False)
    loaded = fresh_model(dims)
    params = loaded.model.num_params()
    specs = loaded.model.specs()
    for name in ("int8", "int4"):
        fmt = Q.serving_format(registry.get("precisions", name))
        measured = Q.tree_bytes(Q.prepare_params(loaded.params, specs, fmt))
        planned = inference_memory(dims, params=params, weight_bytes=fmt.planned_weight_bytes, weight_format=fmt.weights, context=1, batch=1)
        assert measured == planned.weights
        codes_only = params * fmt.planned_weight_bytes
        if name == "int8":
            assert measured / codes_only == pytest.approx(float(int8_bytes_per_param(dims.d_model)), rel=0.002)
        else:
            assert measured / params == pytest.approx(float(nf4_bytes_per_param()), rel=0.01)


def test_the_estimates_tensor_inventory_is_the_models():
    """`genaisdk.estimate.tensors` (what the plan counts) lists the backend's parameters:
    the same paths, shapes and logical axes, for every layout option."""
    from genaisdk.backend.jax.model import Transformer, is_spec, path_name
    from genaisdk.estimate.tensors import weight_tensors
    from tests.estimate.test_serving_weights import SHAPES

    for name, (dims, family) in SHAPES.items():
        flat = jax.tree_util.tree_flatten_with_path(Transformer(dims=dims, family=family).specs(), is_leaf=is_spec)[0]
        backend = {path_name(path): (spec.shape, spec.axes) for path, spec in flat}
        estimate = {t.name: (t.shape, t.axes) for t in weight_tensors(dims, family)}
        assert backend == estimate, name


@pytest.mark.parametrize("fmt_name", ["int8", "int4"])
def test_each_quantized_tensor_holds_the_bytes_the_estimate_gives_it(registry, fmt_name):
    """Tensor by tensor, the backend quantizes what `quantized_weight` names, and stores the
    codes and constants `int8_tensor_bytes` / `nf4_tensor_bytes` count; the rest stays bf16."""
    from genaisdk.backend.jax.model import path_name
    from genaisdk.backend.jax.runs import fresh_model
    from genaisdk.estimate import quantization as E
    from genaisdk.estimate.tensors import weight_tensors
    from tests.estimate.test_serving_weights import SHAPES

    fmt = Q.serving_format(registry.get("precisions", fmt_name))
    assert jnp.dtype(Q.QUANTIZED_COMPUTE).itemsize == E.QUANTIZED_VECTOR_BYTES
    for name in ("llama-like decoder", "bert-like encoder", "t5-like encoder-decoder", "xl-relative parallel decoder"):
        dims, family = SHAPES[name]
        loaded = fresh_model(dims, family=family)
        served = Q.prepare_params(loaded.params, loaded.model.specs(), fmt)
        leaves = jax.tree_util.tree_flatten_with_path(served, is_leaf=Q.is_quantized)[0]
        measured = {path_name(path): leaf for path, leaf in leaves}
        for t in weight_tensors(dims, family):
            leaf = measured[t.name]
            if not E.quantized_weight(t.axes):
                assert not Q.is_quantized(leaf) and leaf.nbytes == t.size * E.QUANTIZED_VECTOR_BYTES, (name, t.name)
                continue
            codes, constants = (E.int8_tensor_bytes if fmt.weights == "int8" else E.nf4_tensor_bytes)(t.shape, t.axes)
            assert Q.is_quantized(leaf) and leaf.format == fmt.weights, (name, t.name)
            assert (leaf.codes.nbytes, leaf.nbytes - leaf.codes.nbytes) == (codes, constants), (name, t.name)


def test_quantized_perplexity_within_1_and_5_percent_of_bf16(trained_model):
    from genaisdk.backend.jax.evaluate import evaluate

    int8 = evaluate(trained_model, precision="int8")
    int4 = evaluate(trained_model, precision="int4")
    bf16 = int8.baseline["perplexity"]
    assert int8.baseline["precision"] == int4.baseline["precision"] == "bf16"
    assert int4.baseline["perplexity"] == bf16  # the same data, batches and weights
    assert int8.perplexity / bf16 == pytest.approx(int8.baseline["perplexity_ratio"])
    assert abs(int8.perplexity / bf16 - 1) < 0.01
    assert abs(int4.perplexity / bf16 - 1) < 0.05
    assert int4.memory["weight_bytes"] < int8.memory["weight_bytes"] < int8.memory["params"] * 2
