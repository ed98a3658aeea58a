"""`genai explain`: derivations from the same numbers, and the teaching case."""

from __future__ import annotations

import pytest

from .conftest import SPECS


def terms(plan, topic):
    return {t.name: t for t in plan.derivations[topic]}


def test_teaching_case_1b_fp32_adam(make_plan):
    """1B parameters are 4 GB of fp32 weights; full-precision Adam needs 16 bytes per
    parameter of model state (weights 4, gradients 4, two moments 8) plus activations."""
    plan = make_plan(
        model="size = 1B\ncontext = 1024 tokens",
        data="tokens = 20B tokens",
        train="precision = fp32\noptimizer = adam\nsharding = ddp\nmicro_batch = 1",
        budget="hardware = 1 x a100-80gb",
    )
    n = plan.model.params
    mem = terms(plan, "memory")
    assert mem["weights"].value == pytest.approx(4 * n)
    assert mem["weights"].value / n == 4.0
    assert "× 4 B (fp32)" in mem["weights"].substituted
    assert mem["gradients"].value == pytest.approx(4 * n)
    assert mem["optimizer"].value == pytest.approx(8 * n)
    assert mem["model state per parameter"].value == 16
    assert plan.memory.per_device.weights + plan.memory.per_device.gradients + plan.memory.per_device.optimizer == pytest.approx(16 * n)
    # Training takes several times the memory of inference.
    assert plan.memory.per_device.total > 4 * plan.memory.per_device.weights
    assert mem["training / inference weights"].value > 4
    from genaisdk.render.explain import explain_text

    text = explain_text(plan, ["memory"])
    assert f"{n / 1e9:.3g}" in text or "1.01e9" in text
    assert "4.05 GB" in text or "4 GB" in text


def test_mixed_precision_adam_is_also_16_bytes(make_plan):
    plan = make_plan(model="size = 1B", data="tokens = 20B tokens", train="precision = bf16\noptimizer = adamw", budget="hardware = 1 x a100-80gb")
    mem = terms(plan, "memory")
    assert mem["model state per parameter"].value == 16  # 2 + 2 + 8 + 4 (ZeRO's K = 12)
    assert "adamw 8 in fp32 + master 4" in mem["optimizer"].substituted


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_derivation_matches_its_number(path):
    """Each term's substituted expression evaluates to the value the plan reports."""
    import genaisdk

    plan = genaisdk.plan(str(path))
    for topic, items in plan.derivations.items():
        for t in items:
            if t.check is not None:
                assert t.check == pytest.approx(t.value, rel=1e-6, abs=1e-6), f"{path.name} {topic}: {t.name}: {t.substituted}"


def test_derivations_reproduce_the_plans_numbers():
    import genaisdk

    plan = genaisdk.plan(str(next(p for p in SPECS if p.name == "legal.genai")))
    mem, flops, time, inf = (terms(plan, t) for t in ("memory", "flops", "time", "inference"))
    assert mem["weights"].value == plan.memory.per_device.weights
    assert mem["peak total"].value == plan.memory.per_device.total
    assert flops["training FLOPs C"].value == plan.compute.flops
    assert flops["model FLOPs"].value == plan.compute.model_flops
    assert time["seconds"].value == plan.time.seconds
    assert inf["KV cache"].value == plan.inference.memory.kv_cache
    assert "2 (K and V)" in inf["KV cache"].substituted


def test_gqa_kv_cache_counts_kv_heads(make_plan):
    plan = make_plan(
        model="preset = llama2-70b",
        adapt="method = prompt",
        budget="hardware = 8 x h100-sxm",
        serve="precision = bf16\ncontext = 4096 tokens\nbatch = 1",
    )
    kv = terms(plan, "inference")["KV cache"]
    # LLaMA 2 70B: 80 layers, 8 kv heads of 128: 2·80·8·128·4096·2 bytes = 1.34 GB.
    assert kv.value == pytest.approx(2 * 80 * 8 * 128 * 4096 * 2)
    assert "8 kv heads" in kv.substituted
