"""Every spec in specs/ plans without error, with numbers in sane ranges."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import SPECS


@pytest.fixture(scope="module")
def plans():
    import genaisdk

    return {path.name: genaisdk.plan(str(path)) for path in SPECS}


def test_there_are_example_specs():
    assert any(p.name == "legal.genai" for p in SPECS)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_plans_with_sane_numbers(path, plans):
    plan = plans[path.name]
    assert not plan.errors, [d.message for d in plan.errors]
    m, mem, c = plan.model, plan.memory, plan.compute
    assert m.params > 0 and m.layers > 0 and m.d_model > 0 and m.heads > 0 and m.vocab > 0 and m.context > 0
    assert m.trainable_params <= m.params * 4  # RLHF keeps at most four models
    assert c.flops >= 0 and c.model_flops >= 0
    assert c.hardware_flops >= c.model_flops
    b = mem.per_device
    for part in (b.weights, b.gradients, b.optimizer, b.activations, b.total):
        assert part >= 0
    assert b.total >= b.weights + b.gradients + b.optimizer
    assert mem.fits == (b.total <= mem.device_capacity)
    assert plan.time.seconds >= 0 and math.isfinite(plan.time.seconds)
    if plan.data.tokens and plan.train.adaptation != "prompt":
        assert plan.time.seconds > 0
        assert plan.train.micro_batch >= 1
    i = plan.inference.memory
    assert i.total >= i.weights + i.kv_cache
    # The JSON form is strict JSON (no NaN or infinity).
    json.dumps(plan.to_json(derivations=True), allow_nan=False)


def test_every_auto_in_every_spec_has_a_reason(plans):
    """A field written as `auto` in a spec gets a reason in its plan."""
    import re

    for path in SPECS:
        text = path.read_text()
        plan = plans[path.name]
        block = None
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            opened = re.match(r"\s*(\w+)\s*\{", code)
            if opened and opened.group(1) != "project":
                block = opened.group(1)
            match = re.match(r"\s*(\w+)\s*=\s*auto\b", code)
            if match and block:
                field = f"{block}.{match.group(1)}"
                if field == "train.sharding" or field.startswith(("model.", "train.")):
                    assert plan.reason(field) is not None, f"{path.name}: no reason for {field}"
            auto_devices = re.match(r"\s*hardware\s*=\s*auto\s*x", code)
            if auto_devices:
                assert plan.reason("budget.devices") is not None, f"{path.name}: no reason for budget.devices"


def test_gpt3_175b_reproduces_table_d1(plans):
    """GPT-3 175B on 300B tokens: 3.14e23 FLOPs, 3640 PF-days (Brown et al. 2020, Table D.1)."""
    plan = plans.get("gpt3-175b.genai")
    if plan is None:
        pytest.skip("no gpt3-175b spec")
    assert plan.compute.pf_days == pytest.approx(3640, rel=0.02)
    assert plan.scaling.tokens_per_param < 10  # under-trained by Chinchilla's measure
    assert any(d.code == "GP101" for d in plan.diagnostics)
    assert any(d.code == "GP201" for d in plan.diagnostics)  # fp16 on V100s


def test_llama_65b_is_compute_optimal_ish(plans):
    plan = plans.get("llama-65b.genai")
    if plan is None:
        pytest.skip("no llama-65b spec")
    assert plan.model.params == pytest.approx(65.2e9, rel=0.01)
    assert 15 < plan.scaling.tokens_per_param < 30
    assert plan.memory.fits
    # 6·N·D for 65.2B params and 1.4T tokens.
    assert plan.compute.flops == pytest.approx(6 * 65.2e9 * 1.4e12, rel=0.01)


def test_chat_qlora_fits_one_24gb_gpu(plans):
    plan = plans.get("chat-qlora.genai")
    if plan is None:
        pytest.skip("no chat-qlora spec")
    assert plan.train.devices == 1
    assert plan.memory.fits
    assert plan.memory.device_capacity < 26e9
    assert plan.model.trainable_params < 0.05 * plan.model.params
    # The 4-bit base holds about half a byte per parameter, the adapters 4 bytes (fp32).
    assert plan.memory.per_device.weights < 0.6 * plan.model.params + plan.model.trainable_params * 4


def test_bloomberggpt_gets_the_domain_pretraining_note(plans):
    plan = plans.get("bloomberggpt.genai")
    if plan is None:
        pytest.skip("no bloomberggpt spec")
    assert any(d.code == "GP302" for d in plan.diagnostics)
    assert not any(d.code == "GP301" for d in plan.diagnostics)


def test_a_lora_plan_counts_no_weight_gradients_for_the_frozen_base(plans):
    """Model FLOPs per token of a QLoRA plan: the architecture's 6·N_matmul + attention, less
    the frozen base's weight gradients (2·N_matmul), plus the adapters' 6·N_adapters (Hu et al.
    2021, Sec. 4.2); the same spec fine-tuning every weight counts the full 6·N_matmul."""
    import genaisdk
    from genaisdk.estimate.flops import model_flops_per_token

    plan = plans["chat-qlora.genai"]
    full = model_flops_per_token(plan.model.dims, family=plan.model.family, context=plan.model.context)
    expected = float(full.total) - float(full.dense) / 3 + 6 * plan.model.trainable_params
    assert plan.compute.flops_per_token == pytest.approx(expected, rel=1e-9)
    path = next(p for p in SPECS if p.name == "chat-qlora.genai")
    finetune = genaisdk.plan(genaisdk.load(path, overrides=["adapt.method=finetune"]))
    assert finetune.compute.flops_per_token == pytest.approx(float(full.total), rel=1e-9)
    assert 0.6 < plan.compute.flops_per_token / finetune.compute.flops_per_token < 0.8
    # Timed by the step-time model (one device), not an assumed MFU.
    assert plan.time.model == "step-time" and plan.time.step is not None
    assert plan.train.mfu == pytest.approx(plan.time.step.mfu, rel=1e-9)
