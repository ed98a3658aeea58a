"""Every `auto` is filled, with a reason that says why."""

from __future__ import annotations

import pytest


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


def _fastest_fitting(spec_blocks: dict):
    """The plan's stages and the least step time of any fitting, non-offload configuration
    at the chosen precision and devices."""
    import numpy as np

    import genaisdk
    from genaisdk.planning import plan_stages

    from .conftest import spec_text

    planned = plan_stages(genaisdk.loads(spec_text(**spec_blocks)))
    f = planned.stages.fitted
    offload = np.array([s.offload_optimizer or s.offload_weights for s in f.grid.strategies])
    i, k = f.choice.index[0], f.choice.index[2]
    ok = f.result.fits[i, :, k] & ~offload[:, None, None, None]
    return planned, float(np.min(np.where(ok, f.result.seconds[i, :, k], np.inf)))


def test_the_fastest_configuration_that_fits(make_plan):
    small = make_plan(model="size = 350M\ncontext = 1024 tokens", data="tokens = 7B tokens", budget="hardware = 8 x a100-80gb")
    assert small.train.strategy in ("ddp", "zero1") and small.memory.fits
    assert small.time.model == "step-time"
    blocks = dict(model="size = 30B\ncontext = 2048 tokens", data="tokens = 600B tokens", budget="hardware = 64 x a100-80gb")
    planned, fastest = _fastest_fitting(blocks)
    big, f = planned.plan, planned.stages.fitted
    assert big.memory.fits
    # No fitting configuration on these devices is faster (offload ranks last whatever its time).
    assert float(f.result.seconds[f.choice.index]) == pytest.approx(fastest, rel=1e-12)
    assert big.time.seconds == pytest.approx(fastest, rel=1e-9)
    why = big.reason("train.sharding").reason
    assert "the fastest configuration that fits" in why
    # A strategy the reason says does not fit fits with no micro-batch, recomputation or layout.
    keys = [s.key for s in f.grid.strategies]
    for name in keys:
        if f"{name} does not fit" in why:
            assert not f.result.fits[0, keys.index(name), 0].any()


def test_the_micro_batch_is_the_fastest_that_fits(make_plan):
    plan = make_plan(model="size = 1B\ncontext = 2048 tokens", data="tokens = 20B tokens", train="batch = 1M tokens", budget="hardware = 8 x a100-80gb")
    mb = plan.train.micro_batch
    assert mb >= 1
    assert plan.memory.fits
    # Doubling it would not fit, would exceed one replica's share of the global batch, or is not faster.
    t = plan.train
    doubled = make_plan(
        model="size = 1B\ncontext = 2048 tokens",
        data="tokens = 20B tokens",
        train=f"batch = 1M tokens\nmicro_batch = {mb * 2}\nrecompute = {t.recompute}\nsharding = {t.strategy}\n"
        f"tensor = {t.tensor_parallel}\npipeline = {t.pipeline_parallel}",
        budget="hardware = 8 x a100-80gb",
    )
    share = t.global_batch_sequences / t.data_parallel
    assert (not doubled.memory.fits) or mb * 2 > share or doubled.time.seconds >= plan.time.seconds * (1 - 1e-9)
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


def test_strategy_reason_without_the_step_time_model_names_a_cheaper_strategy_that_needs_full_recomputation(make_plan):
    # Without the step-time model (h100-pcie's record has no node figures: GP410), every
    # configuration on the same devices takes the same time and the cheapest wins: 30B on 64 x
    # 80 GB, ZeRO-2 fits only with full recomputation, so FSDP without it wins; the reason
    # must not claim ZeRO-2 does not fit.
    plan = make_plan(model="size = 30B\ncontext = 2048 tokens", data="tokens = 20B tokens", budget="hardware = 64 x h100-pcie")
    assert plan.time.model == "default-mfu" and "GP410" in [d.code for d in plan.diagnostics]
    assert plan.train.strategy == "fsdp" and plan.train.recompute != "full"
    assert plan.train.tensor_parallel == plan.train.pipeline_parallel == 1
    why = plan.reason("train.sharding").reason
    assert "cheapest strategy that fits" in why
    assert "zero2 would fit only with full recomputation" in why
