"""Per-device memory under tensor, pipeline and sequence parallelism: Korthikanti et al. 2022
Table 2 exactly, Megatron-LM's pipeline rules, per-stage parameters, K/V replication."""

from __future__ import annotations

import numpy as np
import pytest

from genaisdk.dims import Dimensions
from genaisdk.estimate.activations import activation_memory, korthikanti_layer_bytes
from genaisdk.estimate.memory import model_state
from genaisdk.estimate.parallel import (
    every_stage_memory,
    in_flight,
    parallel_memory,
    stage_layers,
    stage_memory,
    stage_params,
)
from genaisdk.estimate.params import count_params

def _gpt(layers=1, h=2048, a=16, V=51200):
    """A GPT block as Korthikanti et al. count it: multi-head attention, d_ff = 4h, dropout."""
    return Dimensions(layers=layers, d_model=h, heads=a, d_ff=4 * h, vocab=V, context=2048)


def _layer_bytes(parts) -> float:
    """The per-layer parts (what Table 2 counts), without embedding, final norm and loss."""
    return float(sum(parts[k] for k in ("attention", "attention_scores", "ffn", "norms", "layer_inputs") if k in parts))


# Korthikanti et al. 2022, Table 2, one case per row: (recompute, t, sequence parallel)
TABLE_2 = [
    ("none", 1, False),       # no parallelism: sbh(34 + 5as/h)
    ("none", 8, False),       # tensor parallel: sbh(10 + 24/t + 5as/(ht))
    ("none", 8, True),        # tensor + sequence parallel: sbh(34/t + 5as/(ht))
    ("selective", 8, False),  # tensor parallel + selective recomputation: sbh(10 + 24/t)
    ("selective", 8, True),   # tensor + sequence parallel + selective: sbh·34/t
    ("full", 1, False),       # full recomputation: 2sbh
    ("full", 8, False),
    ("full", 8, True),        # full recomputation with sequence parallelism: 2sbh/t
]


@pytest.mark.parametrize("recompute,t,sp", TABLE_2)
@pytest.mark.parametrize("s,b,h,a", [(2048, 1, 6144, 64), (2048, 4, 12288, 96), (4096, 2, 2048, 16)])
def test_korthikanti_table_2_every_row_exactly(recompute, t, sp, s, b, h, a):
    parts = activation_memory(
        _gpt(h=h, a=a), seq=s, micro_batch=b, recompute=recompute, flash=False, tensor_parallel=t, sequence_parallel=sp
    )
    expected = korthikanti_layer_bytes(
        seq=s, micro_batch=b, hidden=h, heads=a, recompute=recompute, tensor_parallel=t, sequence_parallel=sp
    )
    assert _layer_bytes(parts) == pytest.approx(float(expected), rel=1e-12)


def test_table_2_closed_forms_are_the_papers():
    """The closed forms themselves, written out as the paper prints them."""
    s, b, h, a, t = 2048, 1, 12288, 96, 8
    sbh = s * b * h
    k = korthikanti_layer_bytes
    assert float(k(seq=s, micro_batch=b, hidden=h, heads=a)) == pytest.approx(sbh * (34 + 5 * a * s / h))
    assert float(k(seq=s, micro_batch=b, hidden=h, heads=a, tensor_parallel=t)) == pytest.approx(
        sbh * (10 + 24 / t + 5 * a * s / (h * t)))
    assert float(k(seq=s, micro_batch=b, hidden=h, heads=a, tensor_parallel=t, sequence_parallel=True)) == pytest.approx(
        sbh * (34 / t + 5 * a * s / (h * t)))
    assert float(k(seq=s, micro_batch=b, hidden=h, heads=a, recompute="selective", tensor_parallel=t)) == pytest.approx(
        sbh * (10 + 24 / t))
    assert float(k(seq=s, micro_batch=b, hidden=h, heads=a, recompute="selective", tensor_parallel=t,
                   sequence_parallel=True)) == pytest.approx(sbh * 34 / t)
    assert float(k(seq=s, micro_batch=b, hidden=h, heads=a, recompute="full")) == pytest.approx(2 * sbh)


def test_sequence_parallel_is_the_default_and_splits_everything():
    """Existing callers pass tensor_parallel alone and get every term divided by t."""
    dims = _gpt(layers=4)
    one = activation_memory(dims, seq=2048, micro_batch=1, flash=False, recompute="none")
    eight = activation_memory(dims, seq=2048, micro_batch=1, flash=False, recompute="none", tensor_parallel=8)
    for name in one:
        assert float(eight[name]) == pytest.approx(float(one[name]) / 8)


def test_fewer_kv_heads_than_t_replicates_k_and_v():
    """8 K/V heads over t = 16: every device holds one K/V head (a copy), not half of one."""
    dims = Dimensions(layers=1, d_model=8192, heads=64, kv_heads=8, d_ff=28672, vocab=128256, context=8192,
                      ffn="gated", biases=False, norm="rmsnorm", positions="rotary", tied_embeddings=False)
    d_head = 128
    s = 8192
    t8 = activation_memory(dims, seq=s, micro_batch=1, tensor_parallel=8, dropout=False)
    t16 = activation_memory(dims, seq=s, micro_batch=1, tensor_parallel=16, dropout=False)
    # attention part: Q and output input 2·q_width/t + K and V 2·kv/t + QKV input h/t, 2 bytes
    kv_t8 = 2 * 2 * (8 * d_head) / 8 * s
    kv_t16 = 2 * 2 * (16 * d_head) / 16 * s  # one head per device
    assert kv_t8 == kv_t16
    q_t8 = 2 * (2 * 64 * d_head + 8192) / 8 * s
    q_t16 = 2 * (2 * 64 * d_head + 8192) / 16 * s
    assert float(t8["attention"]) == pytest.approx(q_t8 + kv_t8)
    assert float(t16["attention"]) == pytest.approx(q_t16 + kv_t16)
    # weights: K and V projections are h x d_head per device at t = 8 and at t = 16
    p8 = stage_params(dims, tensor_parallel=8)
    p16 = stage_params(dims, tensor_parallel=16)
    q_and_out = 2 * 8192 * 64 * d_head
    ffn = 3 * 8192 * 28672
    assert float(p8.block) == pytest.approx((q_and_out + ffn) / 8 + 2 * 8192 * d_head + 2 * 8192)
    assert float(p16.block) == pytest.approx((q_and_out + ffn) / 16 + 2 * 8192 * d_head + 2 * 8192)


def test_stage_parameters_add_up_to_the_model():
    dims = Dimensions(layers=30, d_model=1024, heads=16, d_ff=4096, vocab=50257, context=2048)
    total = count_params(dims).total
    embedding = count_params(dims).breakdown["embedding.token"]
    for p in (1, 2, 3, 4, 7):
        sp = stage_params(dims, pipeline_parallel=p)
        layers = [float(stage_layers(30, pipeline_parallel=p, stage=r)) for r in range(p)]
        assert sum(layers) == 30
        stages = [float(sp.block) * n for n in layers]
        summed = sum(stages) + float(sp.first_extra) + float(sp.last_extra)
        # tied embeddings: the last stage keeps its own copy for the output layer when p > 1
        assert summed == total + (embedding if p > 1 else 0)


def test_tensor_parallel_splits_all_but_norms_and_row_biases():
    dims = Dimensions(layers=2, d_model=1024, heads=16, d_ff=4096, vocab=50000, context=1024)
    one = stage_params(dims, tensor_parallel=1)
    four = stage_params(dims, tensor_parallel=4)
    replicated = 2 * 2 * 1024 + 2 * 1024  # two LayerNorms (scale, bias), attention-out and FFN-out biases
    assert float(four.block) == pytest.approx((float(one.block) - replicated) / 4 + replicated)
    assert float(four.first_extra) == pytest.approx(50000 * 1024 / 4 + 1024 * 1024)  # position table whole


def test_uneven_layers_go_to_the_first_chunks():
    assert [float(stage_layers(70, pipeline_parallel=12, stage=r)) for r in range(12)] == [6.0] * 10 + [5.0] * 2
    assert float(stage_layers(105, pipeline_parallel=35, virtual_stages=3, stage=0)) == 3
    assert float(stage_layers(10, pipeline_parallel=2, virtual_stages=2, stage=1)) == 5  # chunks 3, 3, 2, 2


def test_1f1b_first_stage_holds_all_layers_whatever_p():
    """Megatron-LM's pipeline rule: p micro-batches in flight x L/p layers = L layers' worth,
    times min(1, m/p) when there are fewer micro-batches than stages."""
    for p in (1, 2, 4, 8, 16):
        flight = float(in_flight(pipeline_parallel=p, micro_batches=64, stage=0))
        assert flight * 64 / p == 64
    assert float(in_flight(pipeline_parallel=8, micro_batches=3, stage=0)) == 3
    # stage r holds p - r
    assert [float(in_flight(pipeline_parallel=4, micro_batches=64, stage=r)) for r in range(4)] == [4, 3, 2, 1]


@pytest.mark.parametrize("p,v", [(2, 2), (4, 2), (8, 3), (8, 4), (16, 2)])
def test_interleaved_penalty_is_one_plus_p_minus_one_over_pv(p, v):
    """First stage under the interleaved schedule: L·(1 + (p-1)/(p·v)) layers' worth."""
    layers = p * v * 4
    flight = float(in_flight(pipeline_parallel=p, micro_batches=64 * p, virtual_stages=v, stage=0))
    held = flight * float(stage_layers(layers, pipeline_parallel=p, virtual_stages=v, stage=0))
    assert held == pytest.approx(layers * (1 + (p - 1) / (p * v)))


def test_first_stage_activations_match_megatrons_theoretical_memory():
    """Stage 0 with 1F1B: L layers' activations + the embedding dropout mask of p micro-batches."""
    dims = _gpt(layers=32, h=4096, a=32)
    kw = dict(seq=2048, global_batch=512, micro_batch=1, tensor_parallel=4, pipeline_parallel=4,
              data_parallel=2, recompute="selective", sequence_parallel=True, flash=True, dropout=True)
    first = stage_memory(dims, stage=0, **kw)
    one = activation_memory(dims.evolve(layers=1), seq=2048, micro_batch=1, recompute="selective", flash=True,
                            tensor_parallel=4, sequence_parallel=True)
    per_layer = float(one["attention"] + one["attention_scores"] + one["ffn"] + one["norms"])
    expected = 32 * per_layer + 4 * float(one["embedding"])
    assert float(first.activations) == pytest.approx(expected)


def test_model_state_is_sharded_by_zero_over_d_only():
    dims = _gpt(layers=8, h=2048)
    kw = dict(seq=2048, global_batch=64, micro_batch=1, tensor_parallel=2, pipeline_parallel=2, data_parallel=4)
    sp = stage_params(dims, tensor_parallel=2, pipeline_parallel=2)
    params = float(sp.block) * 4 + float(sp.first_extra)
    for zero, flags in ((0, {}), (1, dict(shards_optimizer=True)), (2, dict(shards_optimizer=True, shards_gradients=True)),
                        (3, dict(shards_optimizer=True, shards_gradients=True, shards_weights=True))):
        mem = stage_memory(dims, stage=0, zero_stage=zero, **kw)
        state = model_state(params=params, weight_bytes=2, gradient_bytes=2, optimizer_bytes=8, master_bytes=4, dp=4, **flags)
        assert float(mem.model_state) == pytest.approx(float(state.device))


def test_every_stage_and_the_most_loaded():
    dims = _gpt(layers=24, h=2048, V=250000)
    kw = dict(seq=2048, global_batch=256, micro_batch=1, tensor_parallel=2, pipeline_parallel=4, data_parallel=2,
              recompute="full")
    stages = every_stage_memory(dims, **kw)
    assert stages.total.shape == (4,)
    both = parallel_memory(dims, **kw)
    assert float(both.first.total) == pytest.approx(float(stages.total[0]))
    assert float(both.last.total) == pytest.approx(float(stages.total[3]))
    assert float(both.total) == pytest.approx(float(np.max(stages.total)))
    # middle stages hold no embedding and fewer micro-batches than the first
    assert float(stages.total[1]) < float(stages.total[0]) and float(stages.total[2]) < float(stages.total[0])


def test_broadcasts_over_a_layout_grid():
    dims = _gpt(layers=16, h=2048)
    t = np.array([1, 2, 4, 8])[:, None, None]
    p = np.array([1, 2, 4])[None, :, None]
    zero = np.array([0, 1, 2, 3])[None, None, :]
    mem = parallel_memory(dims, seq=2048, global_batch=256, micro_batch=1, tensor_parallel=t, pipeline_parallel=p,
                          data_parallel=2, zero_stage=zero)
    assert mem.total.shape == (4, 3, 4)
    # more tensor parallelism never needs more memory here, nor do ZeRO stages 1 and 2 (stage 3
    # at d = 2 can lose more to its two gathered layers than it saves)
    assert np.all(np.diff(mem.total, axis=0) <= 0)
    assert np.all(np.diff(mem.total[..., :3], axis=2) <= 0)


def test_encoder_decoder_layouts_are_refused_clearly():
    t5 = Dimensions(layers=2, d_model=512, heads=8, d_ff=2048, vocab=32128, context=512)
    with pytest.raises(ValueError, match="single-stack"):
        parallel_memory(t5, family="encoder_decoder", seq=512, global_batch=8, micro_batch=1)
