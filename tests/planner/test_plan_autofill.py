"""Every `auto` is filled, with a reason that says why."""

from __future__ import annotations

import pytest

from genaisdk.planning.grid import STRATEGY_ORDER


def test_family_and_objective_from_the_task(make_plan):
    plan = make_plan(
        task="summarization",
        model="family = auto\nobjective = auto\nsize = 1B\ncontext = 1024 tokens",
        data="tokens = 20B tokens",
        budget="hardware = 8 x a100-80gb",
    )
    assert plan.model.family == "encoder_decoder"
    assert plan.model.objective == "span-corruption"
    assert "summarization" in plan.reason("model.family").reason
    assert plan.reason("model.objective") is not None
    cls = make_plan(
        task="sentiment-analysis",
        model="size = 300M\ncontext = 512 tokens",
        data="tokens = 5B tokens",
        budget="hardware = 1 x a100-80gb",
    )
    assert cls.model.family == "encoder" and cls.model.objective == "masked-lm"


def test_explicit_size_is_proposed_dims(make_plan):
    plan = make_plan(model="size = 3B\ncontext = 2048 tokens", data="tokens = 60B tokens", budget="hardware = 8 x a100-80gb")
    assert plan.model.params == pytest.approx(3e9, rel=0.05)
    assert plan.reason("model.size").value == 3e9
    assert "GPT-3 Table 2.1" in plan.reason("model.dims").reason


def test_size_auto_is_compute_optimal_for_the_budget(make_plan):
    """64 A100s for 30 days at 40% MFU buy ~2.1e22 model FLOPs; Chinchilla's ~20 tokens per
    parameter puts the optimum near sqrt(C/120) with C the 6·N·D the budget affords."""
    plan = make_plan(
        model="size = auto\ncontext = 2048 tokens",
        budget="hardware = 64 x a100-80gb\ntime = 30 days",
    )
    budget = 64 * 312e12 * 0.40 * 30 * 86400
    assert plan.scaling.budget_flops == pytest.approx(budget, rel=1e-6)
    n = plan.model.params
    # Data defaults to 20 tokens per parameter; the run then fills the budget.
    assert plan.scaling.tokens_per_param == pytest.approx(20, rel=0.05)
    assert plan.compute.model_flops == pytest.approx(budget, rel=0.10)
    assert 10e9 < n < 20e9
    reason = plan.reason("model.size").reason
    assert "time budget" in reason and "20" in reason


def test_size_auto_is_limited_by_the_data(make_plan):
    plan = make_plan(
        model="size = auto\ncontext = 2048 tokens",
        data="tokens = 20B tokens",
        budget="hardware = 64 x a100-80gb\ntime = 30 days",
    )
    assert plan.model.params == pytest.approx(1e9, rel=0.1)
    assert "limited by the data" in plan.reason("model.size").reason
    assert any(d.code == "GP102" for d in plan.diagnostics)


def test_cost_budget_binds_when_it_buys_less(make_plan):
    plan = make_plan(
        model="size = auto\ncontext = 2048 tokens",
        budget="hardware = 64 x a100-80gb\ntime = 30 days\ncost = $10k",
    )
    # $10k at the catalog's $1.89/h buys 5,291 device-hours.
    price = 1.89
    assert plan.scaling.budget_flops == pytest.approx(10_000 / price * 3600 * 312e12 * 0.4, rel=1e-6)
    assert "cost budget" in plan.reason("model.size").reason
    assert plan.cost.usd <= 10_000 * 1.1


def test_cheapest_strategy_that_fits(make_plan):
    small = make_plan(model="size = 350M\ncontext = 1024 tokens", data="tokens = 7B tokens", budget="hardware = 8 x a100-80gb")
    assert small.train.strategy == "ddp"
    big = make_plan(model="size = 30B\ncontext = 2048 tokens", data="tokens = 600B tokens", budget="hardware = 64 x a100-80gb")
    assert big.train.strategy in ("zero2", "fsdp")
    assert big.memory.fits
    # Every cheaper strategy in the table does not fit.
    order = [s for s in STRATEGY_ORDER]
    cheaper = order[: order.index(big.train.strategy)]
    for option in big.memory.options:
        if option.precision == big.train.precision and option.strategy in cheaper and option.recompute == big.train.recompute:
            assert not option.fits
    assert "cheapest strategy that fits" in big.reason("train.sharding").reason


def test_largest_micro_batch_that_fits(make_plan):
    plan = make_plan(model="size = 1B\ncontext = 2048 tokens", data="tokens = 20B tokens", train="batch = 1M tokens", budget="hardware = 8 x a100-80gb")
    mb = plan.train.micro_batch
    assert mb >= 1
    assert plan.memory.fits
    # Doubling it would not fit, or would exceed one device's share of the global batch.
    doubled = make_plan(
        model="size = 1B\ncontext = 2048 tokens",
        data="tokens = 20B tokens",
        train=f"batch = 1M tokens\nmicro_batch = {mb * 2}\nrecompute = {plan.train.recompute}\nsharding = {plan.train.strategy}",
        budget="hardware = 8 x a100-80gb",
    )
    share = plan.train.global_batch_sequences / plan.train.devices
    assert (not doubled.memory.fits) or mb * 2 > share
    assert plan.reason("train.micro_batch") is not None


def test_recompute_auto_prefers_none_then_selective(make_plan):
    plan = make_plan(model="size = 125M\ncontext = 1024 tokens", data="tokens = 2.5B tokens", budget="hardware = 1 x a100-80gb")
    assert plan.train.recompute == "none"
    assert plan.reason("train.recompute").value == "none"


def test_devices_auto_meets_the_time_budget(make_plan):
    plan = make_plan(
        model="size = 7B\ncontext = 2048 tokens",
        data="tokens = 140B tokens",
        budget="hardware = auto x a100-80gb\ntime = 14 days",
    )
    assert plan.time.days <= 14.0 + 1e-9
    # One device fewer than the time floor would miss it.
    floor = plan.compute.model_flops / (312e12 * plan.train.mfu * 14 * 86400)
    assert plan.train.devices >= floor
    assert plan.reason("budget.devices") is not None
    assert "time budget" in plan.reason("budget.devices").reason


def test_precision_auto_follows_the_hardware(make_plan):
    a100 = make_plan(model="size = 125M", data="tokens = 2.5B tokens", train="precision = auto", budget="hardware = 1 x a100-80gb")
    assert a100.train.precision == "bf16"
    v100 = make_plan(model="size = 125M", data="tokens = 2.5B tokens", train="precision = auto", budget="hardware = 1 x v100-32gb")
    assert v100.train.precision == "fp16"
    assert "loss scaling" in v100.reason("train.precision").reason


def test_context_auto_is_the_longest_that_fits():
    """`context = auto` (a Spec built in code: the spec language does not accept it yet)."""
    import attrs

    import genaisdk
    from genaisdk.spec.model import AUTO

    from .conftest import spec_text

    spec = genaisdk.loads(
        spec_text(
            model="size = 7B",
            data="tokens = 140B tokens",
            train="micro_batch = 1\nrecompute = none\nsharding = ddp\nattention = materialized",
            budget="hardware = 1 x h100-sxm",
            adapt="method = lora",
        )
    )
    spec = attrs.evolve(spec, project=attrs.evolve(spec.project, model=attrs.evolve(spec.project.model, context=AUTO)))
    plan = genaisdk.plan(spec)
    assert plan.memory.fits
    assert plan.reason("model.context").value == plan.model.context
    assert plan.model.context >= 512
    # Twice as long does not fit (materialized attention grows with the square of it).
    longer = attrs.evolve(spec, project=attrs.evolve(spec.project, model=attrs.evolve(spec.project.model, context=plan.model.context * 2)))
    assert not genaisdk.plan(longer).memory.fits


def test_preset_dimensions_are_used(make_plan):
    plan = make_plan(model="preset = llama-7b", data="tokens = 1T tokens", budget="hardware = 64 x a100-80gb")
    assert plan.model.preset == "llama-7b"
    assert plan.model.params == pytest.approx(6.74e9, rel=0.01)
    assert plan.model.layers == 32 and plan.model.d_model == 4096
    assert "llama-7b" in plan.reason("model.dims").reason


def test_fine_tune_default_batch_leaves_optimizer_steps(make_plan):
    # A 7B model's pretraining batch (2M tokens, GPT-3 Table 2.1) would make a 20M-token
    # fine-tune ten optimizer steps; adapting a pretrained model uses a fine-tuning batch.
    plan = make_plan(
        task="chat",
        model="preset = llama2-7b\ncontext = 2048 tokens",
        data="tokens = 20M tokens",
        adapt="method = lora",
        budget="hardware = 1 x a100-80gb",
    )
    assert plan.train.global_batch_sequences == 128
    assert plan.train.steps >= 70
    assert "Hu et al. 2021" in plan.reason("train.batch").reason
    pretrain = make_plan(model="size = 7B\ncontext = 2048 tokens", data="tokens = 140B tokens", budget="hardware = 64 x a100-80gb")
    assert pretrain.train.global_batch_tokens >= 2e6


def test_strategy_reason_names_a_cheaper_strategy_that_needs_full_recomputation(make_plan):
    # 30B on 64 x 80 GB: ZeRO-2 fits only with full recomputation, so FSDP without it wins;
    # the reason must not claim ZeRO-2 does not fit.
    plan = make_plan(model="size = 30B\ncontext = 2048 tokens", data="tokens = 20B tokens", budget="hardware = 64 x a100-80gb")
    assert plan.train.strategy == "fsdp" and plan.train.recompute != "full"
    why = plan.reason("train.sharding").reason
    assert "ddp, zero1 would not fit" in why
    assert "zero2 would fit only with full recomputation" in why
