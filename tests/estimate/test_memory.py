"""Training memory: ZeRO Table 1, the teaching case, itemized dtypes, peak = state + worst phase."""

from __future__ import annotations

import numpy as np
import pytest

from genaisdk.dims import Dimensions
from genaisdk.estimate.activations import (
    activation_memory,
    backward_bytes,
    korthikanti_layer_bytes,
    loss_bytes,
    stored_bytes,
)
from genaisdk.estimate.memory import model_state, training_memory, weights_bytes

GB = 1e9
STAGES = {
    "P_os": dict(shards_optimizer=True),
    "P_os_g": dict(shards_optimizer=True, shards_gradients=True),
    "P_os_g_p": dict(shards_optimizer=True, shards_gradients=True, shards_weights=True),
}
MIXED_ADAM = dict(weight_bytes=2, gradient_bytes=2, optimizer_bytes=8, master_bytes=4)


def _printed_tolerance(printed: float) -> float:
    """Half a unit of the last digit the table prints (0.12 stands for 0.115 to 0.125)."""
    text = repr(float(printed))
    decimals = len(text.split(".")[1].rstrip("0")) if "." in text else 0
    return 0.5 * 10.0**-decimals


def test_zero_table_1_every_row(published):
    """Every cell within 1%, or within the table's printed rounding for the smallest cells
    (DP = 1024, 7.5B, P_os+g+p: 0.1171875 GB printed as 0.12)."""
    table = published["zero_table_1"]
    checked = 0
    for row in table["rows"]:
        for model, psi in table["params"].items():
            for stage, flags in STAGES.items():
                state = model_state(params=psi, dp=row["dp_degree"], **MIXED_ADAM, **flags)
                printed = row[model][stage]
                ours = float(state.device) / GB
                tolerance = max(0.01 * printed, _printed_tolerance(printed))
                assert abs(ours - printed) <= tolerance, (row["dp_degree"], model, stage, ours, printed)
                checked += 1
    assert checked == 6 * 3 * 3


def test_zero_figure_1_example(published):
    example = published["zero_table_1"]["figure_1_example"]
    psi, nd = example["psi"], example["Nd"]
    assert float(model_state(params=psi, dp=1, **MIXED_ADAM).device) / GB == pytest.approx(example["baseline_GB"])
    for stage, key in (("P_os", "P_os_GB"), ("P_os_g", "P_os_g_GB"), ("P_os_g_p", "P_os_g_p_GB")):
        state = model_state(params=psi, dp=nd, **MIXED_ADAM, **STAGES[stage])
        assert float(state.device) / GB == pytest.approx(example[key], rel=0.02)


def test_teaching_case_fp32():
    """1B parameters: 4 GB of fp32 weights; full-precision Adam needs 16 bytes per parameter
    of model state (weights 4, gradients 4, two moments 8)."""
    assert float(weights_bytes(1e9, 4)) == 4 * GB
    state = model_state(params=1e9, weight_bytes=4, gradient_bytes=4, optimizer_bytes=8)
    assert (float(state.weights), float(state.gradients), float(state.optimizer)) == (4 * GB, 4 * GB, 8 * GB)
    assert float(state.device) == 16 * GB


def test_gradient_dtype_is_itemized():
    """fp32 main gradients (Megatron-LM) make mixed Adam 18 bytes per parameter, not ZeRO's 16."""
    zero = model_state(params=1.0, **MIXED_ADAM)
    megatron = model_state(params=1.0, weight_bytes=2, gradient_bytes=4, optimizer_bytes=8, master_bytes=4)
    assert float(zero.device) == 16
    assert float(megatron.device) == 18
    assert float(megatron.optimizer) == 12  # ZeRO's K: master copy plus two moments


def test_sharding_uses_the_data_parallel_degree():
    """With 8-way tensor parallelism on 64 devices ZeRO shards over 8, not 64."""
    world, tp = 64, 8
    state = model_state(params=8e9 / tp, dp=world // tp, **MIXED_ADAM, shards_optimizer=True)
    assert float(state.optimizer) == pytest.approx(1e9 * 12 / 8)


def test_offload_reports_host_bytes_apart():
    on_device = model_state(params=1e9, dp=4, **MIXED_ADAM, shards_optimizer=True, shards_gradients=True)
    offloaded = model_state(params=1e9, dp=4, **MIXED_ADAM, shards_optimizer=True, shards_gradients=True, offload_optimizer=True)
    assert float(offloaded.optimizer) == 0 and float(offloaded.gradients) == 0
    assert float(offloaded.weights) == float(on_device.weights)
    assert float(offloaded.host) == float(on_device.optimizer + on_device.gradients)
    weights_off = model_state(params=1e9, dp=4, **MIXED_ADAM, shards_optimizer=True, shards_gradients=True,
                              shards_weights=True, offload_optimizer=True, offload_weights=True)
    assert float(weights_off.device) == 0
    assert float(weights_off.host) == pytest.approx(16e9 / 4)


def test_frozen_weights_have_no_gradients_or_optimizer_state():
    """A LoRA-style run: 7B frozen in 4 bits, 20M trainable adapters in bf16 with Adam."""
    state = model_state(params=7e9 + 20e6, trainable_params=20e6, frozen_weight_bytes=0.5, **MIXED_ADAM)
    assert float(state.weights) == pytest.approx(7e9 * 0.5 + 20e6 * 2)
    assert float(state.gradients) == pytest.approx(20e6 * 2)
    assert float(state.optimizer) == pytest.approx(20e6 * 12)


def test_peak_is_persistent_state_plus_the_worst_phase_not_a_max():
    mem = training_memory(
        params=1e9, **MIXED_ADAM, stored_activations=5e9, loss_buffers=1e9, runtime_bytes=1e9, fragmentation=0.0
    )
    # Weights 2 GB + master copy and moments 12 GB + runtime; gradients (2 GB) are live in the
    # phases, here in every one (micro-batches accumulate by default).
    assert float(mem.persistent) == 14e9 + 1e9
    assert float(mem.phases["backward"]) == 2e9 + 6e9
    assert float(mem.phases["step"]) == 2e9 + 4e9  # gradients + their fp32 copy
    assert float(mem.total) == 16e9 + 1e9 + 6e9
    assert float(mem.total) > max(float(mem.weights), float(mem.gradients), float(mem.optimizer), float(mem.activations))
    assert mem.worst_phase in ("forward", "backward")


def test_optimizer_step_can_set_the_peak():
    mem = training_memory(params=1e9, **MIXED_ADAM, stored_activations=1e8, runtime_bytes=0.0, fragmentation=0.0)
    assert float(mem.phases["step"]) == 2e9 + 4e9  # the gradients and their fp32 copy
    assert mem.worst_phase == "step"
    assert float(mem.total) == 16e9 + 4e9


def test_the_optimizer_steps_temporaries_are_a_phase():
    """bf16 weights, bf16 Adam moments, no master copy (a PyTorch bf16 model): the step holds
    the gradients and one moment-sized sqrt(v) + eps buffer (multi-tensor Adam)."""
    pure = dict(weight_bytes=2, gradient_bytes=2, optimizer_bytes=4, master_bytes=0)
    mem = training_memory(params=1e9, **pure, update_bytes=2, stored_activations=1e8, runtime_bytes=0.0, fragmentation=0.0)
    assert float(mem.overheads["update_buffer"]) == 2e9
    assert float(mem.overheads["step_buffers"]) == 0
    assert float(mem.phases["step"]) == 2e9 + 2e9
    assert float(mem.total) == 2e9 + 4e9 + 4e9
    assert mem.worst_phase == "step"


def test_gradients_live_from_the_backward_pass_to_the_step():
    """Without accumulation no gradient exists in the forward pass: a larger micro-batch
    grows the backward pass, and the step phase can still set the peak (as measured for a
    bf16 full fine-tune, where micro-batch 4 and 8 peak alike)."""
    pure = dict(weight_bytes=2, gradient_bytes=2, optimizer_bytes=4, master_bytes=0, update_bytes=2,
                runtime_bytes=0.0, fragmentation=0.0)
    one = training_memory(params=1e9, **pure, stored_activations=1.5e9, loss_buffers=0.6e9, accumulates=False)
    assert float(one.phases["forward"]) == pytest.approx(2.1e9)
    assert float(one.phases["backward"]) == pytest.approx(2.1e9)
    assert one.worst_phase == "step"  # gradients 2 GB + sqrt(v) buffer 2 GB
    held = training_memory(params=1e9, **pure, stored_activations=1.5e9, loss_buffers=0.6e9, accumulates=True)
    assert float(held.phases["backward"]) == pytest.approx(2e9 + 2.1e9)
    assert held.worst_phase == "backward"
    # The backward pass ends with every gradient and the last layer rebuilt.
    end = training_memory(params=1e9, **pure, stored_activations=0.1e9, backward_buffers=0.5e9, accumulates=False)
    assert float(end.phases["backward"]) == pytest.approx(2e9 + 0.5e9)


def test_loss_buffers_and_the_rebuilt_layer_do_not_coexist():
    mem = training_memory(params=1e6, **MIXED_ADAM, stored_activations=4e9, loss_buffers=3e9, backward_buffers=2e9)
    assert float(mem.activations) == 4e9 + 3e9


def test_overheads_are_their_own_lines():
    mem = training_memory(
        params=7e9, **MIXED_ADAM, dp=8, shards_optimizer=True, shards_gradients=True, shards_weights=True,
        largest_layer=200e6, stored_activations=2e9,
    )
    assert set(mem.overheads) == {"runtime", "gather_buffers", "gradient_bucket", "step_buffers", "update_buffer", "fragmentation"}
    assert float(mem.overheads["gather_buffers"]) == pytest.approx(2 * 200e6 * 2)
    assert float(mem.overheads["gradient_bucket"]) == pytest.approx(200e6 * 2)
    assert float(mem.overheads["fragmentation"]) == pytest.approx(0.05 * (float(mem.total) - float(mem.overheads["fragmentation"])))
    ddp = training_memory(params=7e9, **MIXED_ADAM, largest_layer=200e6, stored_activations=2e9)
    assert float(ddp.overheads["gather_buffers"]) == 0


def test_broadcasts_over_a_configuration_grid():
    params = np.array([1e9, 7e9])[:, None, None]
    dp = np.array([1, 8, 64])[None, :, None]
    fsdp = np.array([False, True])[None, None, :]
    mem = training_memory(params=params, dp=dp, shards_optimizer=fsdp, shards_gradients=fsdp, shards_weights=fsdp,
                          **MIXED_ADAM, stored_activations=1e9)
    assert mem.total.shape == (2, 3, 2)
    assert mem.overheads["runtime"].shape == (2, 3, 2)
    assert np.all(mem.total[:, :, 1] <= mem.total[:, :, 0])


def test_rejects_a_data_parallel_degree_below_one():
    with pytest.raises(ValueError, match="data-parallel"):
        model_state(params=1e9, dp=0, **MIXED_ADAM)


# Activations -----------------------------------------------------------------------------


def _mha(layers=1, h=1024, a=16, V=50000):
    return Dimensions(layers=layers, d_model=h, heads=a, d_ff=4 * h, vocab=V, context=2048)


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_activations_reproduce_korthikanti(recompute):
    dims = _mha(layers=24)
    parts = activation_memory(dims, seq=2048, micro_batch=4, recompute=recompute, flash=False)
    layers_only = stored_bytes(parts) - parts["embedding"] - parts["final_norm"]
    expected = 24 * korthikanti_layer_bytes(seq=2048, micro_batch=4, hidden=1024, heads=16, recompute=recompute)
    assert float(layers_only) == pytest.approx(float(expected))


def test_flash_attention_drops_the_score_term():
    dims = _mha()
    materialized = activation_memory(dims, seq=2048, micro_batch=1, recompute="none", flash=False)
    flash = activation_memory(dims, seq=2048, micro_batch=1, recompute="none", flash=True)
    assert float(materialized["attention_scores"]) == 5 * 16 * 2048 * 2048
    assert float(flash["attention_scores"]) == 4 * 16 * 2048  # the fp32 log-sum-exp per row and head


def test_logits_buffer_its_fp32_copy_and_the_loss_gradients():
    """12 + p bytes per position and vocabulary entry at the start of the loss's backward."""
    dims = _mha(V=32000)
    parts = activation_memory(dims, seq=1024, micro_batch=2, bytes_per_value=2)
    assert float(parts["logits"]) == 1024 * 2 * 32000 * 2
    assert float(parts["logits_fp32"]) == 1024 * 2 * 32000 * 4
    assert float(parts["loss_gradients"]) == 1024 * 2 * 32000 * 8
    assert float(loss_bytes(parts)) == 1024 * 2 * 32000 * 14


def test_gqa_and_gated_ffn_generalize_the_count():
    base = Dimensions(layers=1, d_model=4096, heads=32, d_ff=11008, vocab=32000, context=4096, ffn="gated")
    mha = activation_memory(base, seq=4096, micro_batch=1, dropout=False)
    gqa = activation_memory(base.evolve(kv_heads=8), seq=4096, micro_batch=1, dropout=False)
    # K and V are kv_heads·head_dim wide: 2 x 2 bytes x (4096 - 1024) less per token
    assert float(mha["attention"] - gqa["attention"]) == 4096 * 2 * 2 * (4096 - 1024)
    # gated: input plus gate, up, activation and product
    assert float(mha["ffn"]) == 4096 * 2 * (4096 + 4 * 11008)


def test_encoder_decoder_keeps_cross_attention_and_the_encoder_output():
    t5 = Dimensions(layers=2, d_model=512, heads=8, d_ff=2048, vocab=32128, context=512, ffn="relu")
    parts = activation_memory(t5, family="encoder_decoder", seq=512, micro_batch=1, decoder_seq=128)
    assert float(parts["encoder_output"]) == 2 * 512 * 512
    assert float(parts["cross_attention"]) > 0
    # the logits are over the decoder's 128 target positions
    assert float(parts["logits"]) == 128 * 32128 * 2


def test_full_recomputation_rebuilds_one_layer_during_backward():
    dims = _mha(layers=24)
    parts = activation_memory(dims, seq=2048, micro_batch=1, recompute="full", flash=True)
    one = activation_memory(_mha(layers=1), seq=2048, micro_batch=1, recompute="none", flash=True)
    one_layer = sum(float(one[k]) for k in ("attention", "attention_scores", "ffn", "norms"))
    assert float(backward_bytes(parts)) == pytest.approx(one_layer)
    assert float(parts["layer_inputs"]) == 24 * 2 * 1024 * 2048


def test_tensor_parallel_divides_activations():
    dims = _mha()
    one = activation_memory(dims, seq=2048, micro_batch=1)
    eight = activation_memory(dims, seq=2048, micro_batch=1, tensor_parallel=8)
    assert float(stored_bytes(eight)) == pytest.approx(float(stored_bytes(one)) / 8)


def test_activations_broadcast():
    dims = _mha()
    parts = activation_memory(dims, seq=np.array([512, 1024])[:, None], micro_batch=np.array([1, 2, 4])[None, :])
    assert stored_bytes(parts).shape == (2, 3)


def test_unknown_recompute_is_a_clear_error():
    with pytest.raises(ValueError, match="recompute"):
        activation_memory(_mha(), seq=16, micro_batch=1, recompute="some")
