"""Serving memory (KV cache), time and cost, data arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from genaisdk.estimate.cost import (
    co2_grams,
    cost_usd,
    device_hours,
    devices_for_time,
    energy_kwh,
    flops_to_pf_days,
    pf_days_to_flops,
    seconds_to_days,
    training_seconds,
)
from genaisdk.estimate.data import mix_tokens, raw_tokens_needed, usable_tokens
from genaisdk.estimate.inference import inference_memory, kv_cache_bytes, model_kv_cache_bytes


def test_kv_cache_has_the_factor_two_and_uses_kv_heads(presets):
    """Llama 2 70B: 80 layers, 8 KV heads of 128; 4096 tokens x batch 1 in bf16 = 1.34 GB."""
    dims = presets["llama2-70b"].dims
    cache = model_kv_cache_bytes(dims, context=4096, batch=1, bytes_per_value=2)
    assert float(cache) == 2 * 80 * 8 * 128 * 4096 * 1 * 2
    assert float(cache) == pytest.approx(1.342e9, rel=1e-3)
    # with all 64 heads cached it would be 8x as much
    mha = model_kv_cache_bytes(dims.evolve(kv_heads=None), context=4096, batch=1, bytes_per_value=2)
    assert float(mha / cache) == 8


def test_kv_cache_llama_7b():
    # 2 x 32 layers x 32 heads x 128 x 2 bytes = 0.5 MiB per token
    assert float(kv_cache_bytes(layers=32, kv_heads=32, head_dim=128, context=1, batch=1, bytes_per_value=2)) == 524288


def test_encoder_decoder_caches_cross_attention(presets):
    dims = presets["t5-base"].dims
    self_only = kv_cache_bytes(layers=12, kv_heads=12, head_dim=64, context=512, batch=4, bytes_per_value=2)
    both = model_kv_cache_bytes(dims, family="encoder_decoder", context=512, batch=4, bytes_per_value=2)
    assert float(both) == 2 * float(self_only)
    assert float(model_kv_cache_bytes(dims, family="encoder", context=512, batch=4, bytes_per_value=2)) == 0


def test_serving_weights_order_with_precision(presets):
    dims = presets["llama-7b"].dims
    totals = [
        float(inference_memory(dims, params=6.74e9, weight_bytes=b, context=2048, batch=1).weights)
        for b in (0.5, 1, 2, 4)
    ]
    assert totals == sorted(totals) and len(set(totals)) == 4
    fp16 = inference_memory(dims, params=6.74e9, weight_bytes=2, context=2048, batch=1)
    assert float(fp16.total) == pytest.approx(float(fp16.weights + fp16.kv_cache + fp16.workspace + fp16.overheads["runtime"]))


def test_time_and_cost():
    # GPT-3 175B: 3.14e23 FLOPs on 1024 A100 (312 TFLOP/s bf16) at 40% MFU
    seconds = training_seconds(3.14e23, devices=1024, peak_flops=312e12, mfu=0.4)
    assert float(seconds_to_days(seconds)) == pytest.approx(3.14e23 / (1024 * 312e12 * 0.4) / 86400)
    hours = device_hours(seconds, 1024)
    assert float(hours) == pytest.approx(float(seconds) * 1024 / 3600)
    assert float(cost_usd(hours, 2.0)) == pytest.approx(2.0 * float(hours))
    assert float(energy_kwh(3600.0, devices=8, power_watts=400)) == pytest.approx(3.2)
    assert float(energy_kwh(3600.0, devices=8, power_watts=400, pue=1.1)) == pytest.approx(3.52)
    assert float(devices_for_time(3.14e23, seconds=seconds, peak_flops=312e12, mfu=0.4)) == 1024


def test_emissions_are_energy_times_grid_intensity():
    # Patterson et al. 2021, Table 4, GPT-3: 1,287 MWh at 0.429 kg CO2e/kWh is 552 tCO2e.
    assert float(co2_grams(1287e3, 429)) / 1e6 == pytest.approx(552, rel=1e-3)
    assert np.allclose(co2_grams(np.array([1.0, 2.0]), 400), [400, 800])


def test_pf_day_round_trip():
    assert float(flops_to_pf_days(8.64e19)) == 1.0
    assert float(flops_to_pf_days(pf_days_to_flops(3640.0))) == pytest.approx(3640.0)


def test_bad_time_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="devices"):
        training_seconds(1e20, devices=0, peak_flops=1e12)
    with pytest.raises(ValueError, match="mfu"):
        training_seconds(1e20, devices=1, peak_flops=1e12, mfu=1.5)


def test_quality_filter_and_raw_text():
    assert float(usable_tokens(2e12, 0.03)) == pytest.approx(60e9)
    assert float(raw_tokens_needed(60e9, 0.03)) == pytest.approx(2e12)
    assert float(raw_tokens_needed(60e9, 0.03, epochs=2)) == pytest.approx(1e12)
    with pytest.raises(ValueError, match="keep"):
        usable_tokens(1e9, 0)


def test_mix():
    parts = mix_tokens(569e9, {"financial": 0.51, "public": 0.49})
    assert float(parts["financial"]) == pytest.approx(0.51 * 569e9)
    with pytest.raises(ValueError, match="sum"):
        mix_tokens(1e9, {"a": 0.5, "b": 0.3})
    assert np.asarray(usable_tokens(np.array([1e9, 2e9]), 0.5)).shape == (2,)
