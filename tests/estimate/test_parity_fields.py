"""The Dimensions fields pretrained checkpoints differ on: defaults keep today's model, only
q/k/v biases change a count, and inconsistent combinations are refused."""

from __future__ import annotations

import pytest

from genaisdk.dims import Dimensions, RotaryScaling
from genaisdk.estimate.params import count_params

BASE = dict(layers=2, d_model=64, heads=4, d_ff=256, vocab=512, context=128)


def test_defaults_are_the_behaviour_of_a_preset():
    dims = Dimensions(**BASE)
    assert dims.eps == 1e-5 and dims.evolve(norm="rmsnorm").eps == 1e-6
    assert dims.ffn_activation == "gelu_tanh" and dims.evolve(ffn="gated").ffn_activation == "silu"
    assert dims.score_scale == 1 / 4 and dims.rotary_base == 10_000 and dims.rotary_scaling is None
    assert (dims.position_offset, dims.relative_max_distance, dims.output_scale) == (0, 128, 1.0)
    assert dims.has_qkv_biases and not dims.evolve(biases=False).has_qkv_biases


def test_numerics_do_not_change_the_count():
    base = count_params(Dimensions(**BASE, positions="rotary"), "decoder").total
    tuned = Dimensions(
        **BASE, positions="rotary", activation="gelu", norm_eps=1e-12, rotary_base=5e5,
        rotary_scaling={"kind": "llama3", "factor": 8.0}, attention_scale=1.0, output_scale=0.125,
    )
    assert count_params(tuned, "decoder").total == base
    assert tuned.rotary_scaling == RotaryScaling(kind="llama3", factor=8.0)


def test_qkv_biases_alone_are_counted():
    plain = Dimensions(**BASE, biases=False, kv_heads=2, norm="rmsnorm")
    qwen = plain.evolve(qkv_biases=True)
    # q: heads x head size, k and v: kv_heads x head size each, per layer; no output or FFN bias.
    assert count_params(qwen, "decoder").total - count_params(plain, "decoder").total == 2 * (64 + 2 * 32)


def test_learned_positions_with_an_offset_keep_their_table():
    roberta = Dimensions(**BASE, position_table=130, position_offset=2)
    assert count_params(roberta, "encoder").breakdown["embedding.position"] == 130 * 64


@pytest.mark.parametrize(
    "fields",
    [{"ffn": "gelu", "activation": "silu"}, {"ffn": "relu", "activation": "gelu"}, {"position_offset": -1},
     {"rotary_scaling": {"kind": "yarn", "factor": 2.0}}, {"norm_eps": 0.0}],
)
def test_inconsistent_fields_are_refused(fields):
    with pytest.raises(ValueError):
        Dimensions(**{**BASE, **fields})


def test_tensor_parallel_stages_count_qkv_biases_too():
    from genaisdk.estimate.parallel import stage_params

    qwen = Dimensions(**BASE, biases=False, qkv_biases=True, kv_heads=2, norm="rmsnorm", positions="rotary",
                      ffn="gated", tied_embeddings=False)
    one = stage_params(qwen, tensor_parallel=1)
    total = count_params(qwen, "decoder").total
    assert float(one.block) * qwen.layers + float(one.first_extra) + float(one.last_extra) == total
