"""The warnings a senior engineer gives, each with a stable code pointing at the spec line."""

from __future__ import annotations

import pytest


def codes(plan):
    return {d.code for d in plan.diagnostics}


def find(plan, code):
    return next(d for d in plan.diagnostics if d.code == code)


def test_under_trained_points_at_the_data_line(make_plan):
    plan = make_plan(model="size = 7B\ncontext = 2048 tokens", data="tokens = 20B tokens", budget="hardware = 64 x a100-80gb")
    d = find(plan, "GP101")
    assert d.severity == "warning"
    assert "2.9 tokens per parameter" in d.message
    assert d.span is not None and d.span.line == 9  # `tokens = 20B tokens` in the data block
    assert "1B" in d.hint  # the size 20B tokens train compute-optimally


def test_compute_optimal_run_is_not_under_trained(make_plan):
    plan = make_plan(model="size = 1B\ncontext = 2048 tokens", data="tokens = 20B tokens", budget="hardware = 8 x a100-80gb")
    assert "GP101" not in codes(plan)


def test_fine_tuning_is_not_judged_by_chinchilla(make_plan):
    plan = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = finetune", budget="hardware = 8 x a100-80gb")
    assert "GP101" not in codes(plan)


def test_fp16_overflow_risk(make_plan):
    plan = make_plan(model="size = 1B", data="tokens = 20B tokens", train="precision = fp16", budget="hardware = 8 x a100-80gb")
    d = find(plan, "GP201")
    assert "65,504" in d.message and "loss scaling" in d.message
    assert "bf16" in d.hint  # an A100 runs bf16 at the same speed
    bf16 = make_plan(model="size = 1B", data="tokens = 20B tokens", train="precision = bf16", budget="hardware = 8 x a100-80gb")
    assert "GP201" not in codes(bf16)


def test_does_not_fit_at_any_setting_says_what_would(make_plan):
    plan = make_plan(model="size = 500B\ncontext = 2048 tokens", data="tokens = 1T tokens", budget="hardware = 1 x rtx-4090")
    assert not plan.memory.fits
    d = find(plan, "GP202")
    assert d.severity == "error"
    assert "does not fit" in d.message
    # Even fully offloaded, two gathered 500B/layers layers exceed 24 GB: only a larger device helps.
    assert "a larger device" in d.hint
    assert plan.errors
    # "At best": the configuration that needs the least memory, not the first one tried.
    same_precision = [o for o in plan.memory.options if o.precision == plan.train.precision]
    assert plan.memory.per_device.total <= min(o.per_device.total for o in same_precision)


def test_no_larger_device_is_suggested_when_none_is_large_enough(make_plan):
    plan = make_plan(model="size = 100T\ncontext = 2048 tokens", data="tokens = 1T tokens", budget="hardware = 1 x a100-80gb")
    d = find(plan, "GP202")
    assert plan.memory.per_device.total > 1e12  # more than any registered device holds
    assert "larger device" not in d.hint and "smaller model" in d.hint


def test_fine_tune_that_fits_only_with_offload_suggests_qlora(make_plan):
    plan = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = finetune", budget="hardware = 1 x rtx-4090")
    assert plan.memory.fits
    assert plan.train.strategy.endswith("offload")
    d = find(plan, "GP205")
    assert "qlora" in d.hint
    qlora = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = qlora", budget="hardware = 1 x rtx-4090")
    assert qlora.memory.fits and not qlora.train.strategy.endswith("offload")


def test_fixed_settings_that_do_not_fit(make_plan):
    plan = make_plan(
        model="size = 13B\ncontext = 2048 tokens",
        data="tokens = 260B tokens",
        train="sharding = ddp\nmicro_batch = 1\ntensor = 1\npipeline = 1",
        budget="hardware = 64 x a100-80gb",
    )
    assert not plan.memory.fits
    d = find(plan, "GP203")
    assert "fits" in d.hint
    assert d.span is not None and d.span.line == 15  # `sharding = ddp`


def test_time_and_cost_budgets_exceeded_by_how_much(make_plan):
    plan = make_plan(
        model="size = 7B\ncontext = 2048 tokens",
        data="tokens = 140B tokens",
        budget="hardware = 8 x a100-80gb\ntime = 7 days\ncost = $5k",
    )
    t, c = find(plan, "GP401"), find(plan, "GP402")
    assert plan.budget.time_ratio > 1 and plan.budget.cost_ratio > 1
    assert f"{plan.budget.time_ratio:.2f}x" in t.message
    assert f"{plan.budget.cost_ratio:.2f}x" in c.message
    assert "devices" in t.hint
    assert not plan.budget.within
    # More devices take less time; time x devices x MFU is the model FLOPs over the peak, so
    # the cost moves only as much as the derived MFU does.
    more = make_plan(
        model="size = 7B\ncontext = 2048 tokens",
        data="tokens = 140B tokens",
        budget="hardware = 64 x a100-80gb\ntime = 10 days\ncost = $5k",
    )
    assert more.time.model == plan.time.model == "step-time"
    assert more.time.seconds < plan.time.seconds
    assert more.time.seconds * 64 * more.train.mfu == pytest.approx(plan.time.seconds * 8 * plan.train.mfu, rel=1e-9)
    assert more.cost.usd == pytest.approx(plan.cost.usd * plan.train.mfu / more.train.mfu, rel=1e-9)
    assert "GP401" not in codes(more) and "GP402" in codes(more)


def test_data_smaller_than_the_budgets_optimum(make_plan):
    plan = make_plan(
        model="size = auto\ncontext = 2048 tokens",
        data="tokens = 10B tokens",
        budget="hardware = 64 x a100-80gb\ntime = 30 days",
    )
    d = find(plan, "GP102")
    assert "epochs" in d.hint


def test_pretraining_from_scratch_when_fine_tuning_would_do(make_plan):
    plan = make_plan(task="summarization", model="size = 3B", data="tokens = 60B tokens", budget="hardware = 64 x a100-80gb")
    d = find(plan, "GP301")
    assert "fine-tuning" in d.message and "finetune" in d.hint


def test_domain_pretraining_pays_with_a_bloomberg_style_mix(make_plan):
    plan = make_plan(
        task="summarization",
        domain="legal",
        model="size = 3B",
        data="tokens = 600B tokens\nmix = { legal = 51%, web = 49% }",
        budget="hardware = 64 x a100-80gb",
    )
    assert "GP301" not in codes(plan)
    d = find(plan, "GP302")
    assert "BloombergGPT" in d.message and "51%" in d.message
    assert plan.data.domain_tokens == pytest.approx(0.51 * 600e9)


def test_a_small_domain_share_gets_the_fine_tune_advice(make_plan):
    plan = make_plan(
        task="summarization",
        domain="legal",
        model="size = 3B",
        data="tokens = 60B tokens\nmix = { legal = 5%, web = 95% }",
        budget="hardware = 64 x a100-80gb",
    )
    assert "GP301" in codes(plan) and "GP302" not in codes(plan)


def test_serving_replica_larger_than_a_device(make_plan):
    plan = make_plan(
        model="preset = llama-65b",
        data="tokens = 10M tokens",
        adapt="method = finetune",
        budget="hardware = 64 x a100-80gb",
        serve="precision = bf16\ncontext = 2048 tokens\nbatch = 1",
    )
    d = find(plan, "GP204")
    assert plan.inference.devices_per_replica == 2
    assert "int8" in d.hint
    int4 = make_plan(
        model="preset = llama-65b",
        data="tokens = 10M tokens",
        adapt="method = finetune",
        budget="hardware = 64 x a100-80gb",
        serve="precision = int4\ncontext = 2048 tokens\nbatch = 1",
    )
    assert int4.inference.fits


def test_prompt_only_plans_the_serving_footprint(make_plan):
    plan = make_plan(model="preset = llama-7b", adapt="method = prompt", budget="hardware = 1 x a100-80gb")
    assert "GP303" in codes(plan)
    assert plan.compute.flops == 0 and plan.time.seconds == 0
    assert plan.memory.per_device.gradients == 0 and plan.memory.per_device.optimizer == 0
    assert plan.model.trainable_params == 0


def test_rlhf_keeps_four_models_resident(make_plan):
    dpo = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = dpo", budget="hardware = 8 x a100-80gb")
    ppo = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = rlhf", budget="hardware = 8 x a100-80gb")
    n = dpo.model.params
    assert dpo.model.trainable_params == pytest.approx(n)
    assert ppo.model.trainable_params == pytest.approx(2 * n)  # policy and value train
    # DPO holds policy + reference; PPO adds value and reward: twice the weights.
    ddp_dpo = next(o for o in dpo.memory.options if o.strategy == "ddp" and o.precision == "bf16")
    ddp_ppo = next(o for o in ppo.memory.options if o.strategy == "ddp" and o.precision == "bf16")
    assert ddp_ppo.per_device.weights == pytest.approx(2 * ddp_dpo.per_device.weights)


def test_diagnostics_are_sorted_by_position(make_plan):
    plan = make_plan(
        model="size = 7B\ncontext = 2048 tokens",
        data="tokens = 20B tokens",
        train="precision = fp16",
        budget="hardware = 8 x a100-80gb\ntime = 1 days",
    )
    lines = [d.span.line for d in plan.diagnostics if d.span]
    assert lines == sorted(lines)
