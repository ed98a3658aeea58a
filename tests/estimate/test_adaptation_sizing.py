"""LoRA/QLoRA parameters and memory, alignment's resident models, dimensions for a size."""

from __future__ import annotations

import pytest

from genaisdk.estimate.activations import activation_memory, loss_bytes, stored_bytes
from genaisdk.estimate.adaptation import alignment_params, expand_targets, lora_params
from genaisdk.estimate.constants import NF4_DOUBLE_QUANT_BYTES
from genaisdk.estimate.memory import training_memory
from genaisdk.estimate.params import count_params
from genaisdk.estimate.sizing import propose_dimensions


def test_lora_on_q_and_v(presets):
    """LLaMA 7B, r = 8 on q and v: 2 x 8 x (4096 + 4096) x 32 layers = 4,194,304."""
    assert lora_params(presets["llama-7b"].dims, rank=8, targets=("q", "v")) == 4_194_304


def test_lora_on_all_linear_layers(presets):
    dims = presets["llama-7b"].dims
    r = 64
    per_layer = r * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    assert lora_params(dims, rank=r, targets=("all",)) == 32 * per_layer
    assert expand_targets(["attention", "down"]) == ("q", "k", "v", "o", "down")
    with pytest.raises(ValueError, match="LoRA target"):
        expand_targets(["qq"])


def test_lora_respects_gqa_and_cross_attention(presets):
    gqa = presets["llama2-70b"].dims
    assert lora_params(gqa, rank=1, targets=("k",)) == 80 * (8192 + 1024)
    t5 = presets["t5-base"].dims
    assert lora_params(t5, rank=1, targets=("q",), family="encoder_decoder") == (12 + 12 + 12) * (768 + 768)


def test_qlora_7b_fits_a_24gb_gpu(presets):
    """QLoRA (Dettmers et al. 2023): a 7B decoder with a 4-bit base and r = 64 adapters on
    every linear layer trains on one 24 GB GPU at a short context."""
    dims = presets["llama-7b"].dims
    base = count_params(dims).total
    adapters = lora_params(dims, rank=64, targets=("all",))
    acts = activation_memory(dims, seq=512, micro_batch=1, recompute="full", dropout=False)
    mem = training_memory(
        params=base + adapters,
        trainable_params=adapters,
        frozen_weight_bytes=NF4_DOUBLE_QUANT_BYTES,
        weight_bytes=2, gradient_bytes=2, optimizer_bytes=8, master_bytes=4,
        stored_activations=stored_bytes(acts), loss_buffers=loss_bytes(acts),
    )
    assert float(mem.weights) == pytest.approx(base * NF4_DOUBLE_QUANT_BYTES + adapters * 2)
    assert float(mem.total) < 24e9
    # the same model fully fine-tuned in bf16 with Adam needs 16 B/param of state alone
    assert 16 * base > 100e9


def test_rlhf_keeps_four_models_dpo_two():
    ppo = alignment_params("rlhf", policy_params=7e9)
    assert set(ppo.models) == {"policy", "value", "reference", "reward"}
    assert ppo.trainable_params == 14e9 and ppo.frozen_params == 14e9
    dpo = alignment_params("dpo", policy_params=7e9)
    assert set(dpo.models) == {"policy", "reference"}
    assert dpo.trainable_params == 7e9 and dpo.total == 14e9
    instruct = alignment_params("ppo", policy_params=175e9, value_params=6e9, reward_params=6e9)
    assert instruct.total == 175e9 * 2 + 12e9
    with pytest.raises(ValueError, match="alignment method"):
        alignment_params("grpo-x", policy_params=1e9)


def test_alignment_memory_is_bigger_than_plain_fine_tuning():
    kw = dict(weight_bytes=2, gradient_bytes=2, optimizer_bytes=8, master_bytes=4)
    ppo = alignment_params("rlhf", policy_params=1e9)
    dpo = alignment_params("dpo", policy_params=1e9)
    plain = training_memory(params=1e9, **kw)
    with_dpo = training_memory(params=dpo.total, trainable_params=dpo.trainable_params, **kw)
    with_ppo = training_memory(params=ppo.total, trainable_params=ppo.trainable_params, **kw)
    assert float(plain.total) < float(with_dpo.total) < float(with_ppo.total)


@pytest.mark.parametrize("family", ["decoder", "encoder", "encoder_decoder"])
@pytest.mark.parametrize("target", [125e6, 1e9, 3e9, 7e9, 70e9])
def test_proposed_dimensions_hit_the_target(family, target):
    dims = propose_dimensions(target, family=family)
    assert count_params(dims, family).total == pytest.approx(target, rel=0.05)
    assert dims.d_model % dims.d_head == 0 and dims.heads * dims.d_head == dims.d_model
    # aspect ratio inside the range GPT-3's table spans (d_model / layers from 43 to 128)
    layers = dims.layers if family != "encoder_decoder" else 2 * dims.layers
    assert 20 <= dims.d_model / layers <= 200


def test_proposed_decoder_follows_llama_shape():
    dims = propose_dimensions(6.7e9, family="decoder")
    assert dims.ffn == "gated" and dims.d_ff % 256 == 0 and dims.d_head == 128
    assert dims.d_model == 4096
