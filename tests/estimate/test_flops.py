"""FLOP counts against GPT-3 Table D.1, PaLM App. B and Korthikanti et al. 2022."""

from __future__ import annotations

import numpy as np
import pytest

from genaisdk.dims import Dimensions
from genaisdk.estimate.cost import achieved_mfu
from genaisdk.estimate.flops import (
    TABLE_D1_FLOPS_PER_PARAM,
    chinchilla_training_flops_per_sequence,
    hardware_flops_per_token,
    model_flops_per_token,
    pf_days,
    training_flops,
)
from genaisdk.estimate.params import count_params

GPT3_PRESETS = ["gpt3-125m", "gpt3-350m", "gpt3-760m", "gpt3-1.3b", "gpt3-2.7b", "gpt3-6.7b", "gpt3-13b", "gpt3-175b"]


def test_gpt3_table_d1_pf_days_for_all_eight_sizes(published, presets):
    """6·N·D with N counted exactly from Table 2.1's dimensions reproduces Table D.1's
    petaflop/s-days within 2% for every size."""
    rows = published["gpt3_table_2_1_and_d_1"]["rows"]
    assert len(rows) == 8
    for row, name in zip(rows, GPT3_PRESETS):
        dims = presets[name].dims
        assert (dims.layers, dims.d_model, dims.d_ff, dims.context, dims.vocab) == (
            row["n_layers"], row["d_model"], row["d_ff"], row["n_ctx"], row["vocab_size"]
        )
        n = count_params(dims).total
        assert n == pytest.approx(row["n_params_tableD1"], rel=0.02), name
        flops = training_flops(n, row["training_tokens"])
        assert float(pf_days(flops)) == pytest.approx(row["train_compute_pf_days"], rel=0.02), name
        assert float(flops) == pytest.approx(row["train_compute_flops"], rel=0.02), name


def test_table_d1_counts_encoder_decoders_at_three_flops_per_param(published):
    for row in published["table_d_1_other_models"]["rows"]:
        family = "encoder_decoder" if row["name"].startswith("T5") else "encoder"
        per_param = TABLE_D1_FLOPS_PER_PARAM[family]
        assert per_param == row["flops_per_param_per_token"]
        flops = training_flops(row["params"], row["training_tokens"], flops_per_param=per_param)
        assert float(flops) == pytest.approx(row["train_compute_flops"], rel=0.02), row["name"]
        assert float(pf_days(flops)) == pytest.approx(row["train_compute_pf_days"], rel=0.02), row["name"]


def test_encoder_decoder_dense_flops_are_about_three_per_param(presets):
    """With equal input and target lengths, a T5 token passes through about half the model."""
    for name in ("t5-base", "t5-11b", "flan-t5-xl"):
        dims = presets[name].dims
        n = count_params(dims, "encoder_decoder").total
        dense = float(model_flops_per_token(dims, family="encoder_decoder").dense)
        assert dense / n == pytest.approx(3.0, rel=0.05), name


def test_palm_formula_is_six_n_plus_twelve_lhqt(presets):
    dims = presets["palm-540b"].dims  # tied embeddings, rotary: every parameter is in a matmul
    n = count_params(dims).total
    flops = model_flops_per_token(dims, context=2048)
    assert float(flops.dense) == 6 * n
    assert float(flops.attention) == 12 * 118 * 48 * 256 * 2048
    assert flops.causal_halving is False


def test_palm_appendix_b_worked_examples(published):
    """PaLM App. B: 238.3K tokens/s on 6144 TPU v4 (275 TFLOP/s) is 45.7% MFU without the
    attention term and 46.2% with it; MT-NLG's 65.43K tokens/s on 2240 A100 (312) is 29.7%
    and 30.2%."""
    palm = Dimensions(
        layers=118, d_model=18432, heads=48, kv_heads=1, head_dim=256, d_ff=73728, vocab=256000, context=2048,
        ffn="gated", positions="rotary", biases=False, parallel_block=True,
    )
    flops = model_flops_per_token(palm, context=2048)
    tokens_per_s = 238.3e3
    without = achieved_mfu(tokens_per_s * flops.dense, seconds=1.0, devices=6144, peak_flops=275e12)
    with_attention = achieved_mfu(tokens_per_s * flops.total, seconds=1.0, devices=6144, peak_flops=275e12)
    assert float(without) == pytest.approx(0.457, abs=0.001)
    assert float(with_attention) == pytest.approx(0.462, abs=0.001)
    # MT-NLG 530B: 105 layers, 128 heads of 160, published N = 530B.
    attention = 12 * 105 * 128 * 160 * 2048
    assert 65.43e3 * 6 * 530e9 / (2240 * 312e12) == pytest.approx(0.297, abs=0.001)
    assert 65.43e3 * (6 * 530e9 + attention) / (2240 * 312e12) == pytest.approx(0.302, abs=0.001)
    assert published["palm_mfu"]["gpt3_mfu"] == 0.213


def test_causal_halving_is_an_explicit_itemized_option(presets):
    dims = presets["llama-7b"].dims
    full = model_flops_per_token(dims, context=2048)
    halved = model_flops_per_token(dims, context=2048, causal_halving=True)
    assert halved.dense == full.dense
    assert float(halved.attention) == float(full.attention) / 2
    assert halved.causal_halving is True


def test_untied_input_embedding_costs_no_flops(presets):
    dims = presets["llama-7b"].dims
    n = count_params(dims).total
    assert float(model_flops_per_token(dims).dense) == 6 * (n - 32000 * 4096)


def test_encoder_attention_is_never_halved(presets):
    dims = presets["bert-base"].dims
    assert model_flops_per_token(dims, family="encoder", causal_halving=True).attention == pytest.approx(
        model_flops_per_token(dims, family="encoder").attention
    )


def test_model_flops_grow_linearly_with_context(presets):
    dims = presets["gpt3-175b"].dims
    contexts = np.array([1024, 2048, 4096])
    attention = model_flops_per_token(dims, context=contexts).attention
    assert np.allclose(np.diff(attention), 12 * 96 * 96 * 128 * np.diff(contexts))


def test_hardware_flops_add_recomputation(presets):
    dims = presets["gpt3-175b"].dims
    model = model_flops_per_token(dims, context=2048)
    none = hardware_flops_per_token(dims, context=2048, recompute="none")
    selective = hardware_flops_per_token(dims, context=2048, recompute="selective")
    full = hardware_flops_per_token(dims, context=2048, recompute="full")
    assert float(none.total) == float(model.total)
    assert float(selective.recompute) == pytest.approx(4 * 96 * 96 * 128 * 2048)
    assert float(model.total) < float(selective.total) < float(full.total)


def test_full_recomputation_matches_korthikanti(presets):
    """Korthikanti et al. 2022, Sec. 6: hardware/model FLOPs with full recomputation =
    96(1 + s/6h + V/16hL) / 72(1 + s/6h + V/12hL)."""
    dims = presets["gpt3-175b"].dims
    s, h, V, L = 2048, 12288, 50257, 96
    expected = 96 * (1 + s / (6 * h) + V / (16 * h * L)) / (72 * (1 + s / (6 * h) + V / (12 * h * L)))
    full = hardware_flops_per_token(dims, context=s, recompute="full")
    assert float(full.total / (full.dense + full.attention)) == pytest.approx(expected, rel=0.003)


def test_chinchilla_table_a4_largest_row(published):
    """What App. F's counting reproduces: with the paper's 32k vocabulary and 2048-token
    sequences, the 6.8B row's ratio to 6·N·D (0.99) within 4%. The smaller rows are not
    reproduced from the printed dimensions: App. F counts the embedding lookup as a matmul
    (2·s·V·d), which at 73M parameters alone adds about half of 6·N, so the table's ratios near
    1.0 there imply settings the table does not print."""
    row = published["chinchilla_table_a4"]["rows"][-1]
    flops = chinchilla_training_flops_per_sequence(
        layers=row["n_layers"], d_model=row["d_model"], ffw_size=row["ffw_size"], heads=row["n_heads"],
        kv_size=row["kq_size"], vocab=32000, seq=2048,
    )
    assert float(flops / (6 * row["params"] * 2048)) == pytest.approx(row["flop_ratio_ours_over_6ND"], rel=0.04)
