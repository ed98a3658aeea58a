"""Planning on a device described in the spec: memory is answered from what is given, and
the plan says what it cannot answer without more figures."""

from __future__ import annotations

import json

import pytest

A6000_FIGURES = "memory = 48 GB"


def llama_7b_fsdp(make_plan, device: str, **budget):
    extra = "".join(f"\n{k} = {v}" for k, v in budget.items())
    return make_plan(
        model="preset = llama-7b\ncontext = 2048 tokens",
        data="tokens = 100M tokens",
        adapt="method = finetune",
        train="precision = bf16\nsharding = fsdp\nmicro_batch = 2\nrecompute = full",
        budget=f"hardware = 2 x {{ name = rtx-a6000, {device} }}{extra}",
    )


def codes(plan) -> list[str]:
    return [d.code for d in plan.diagnostics]


def test_llama_7b_full_fine_tune_on_two_48_gb_cards_does_not_fit(make_plan):
    """People report out-of-memory: FSDP shards the 16 B/param of mixed-precision AdamW
    state over two cards, 6.74B x 16 / 2 = 53.9 GB per card before any activation."""
    plan = llama_7b_fsdp(make_plan, A6000_FIGURES)
    b = plan.memory.per_device
    assert plan.train.hardware == "rtx-a6000" and plan.memory.device_capacity == 48e9
    assert b.weights + b.gradients + b.optimizer == pytest.approx(6.738e9 * 16 / 2, rel=1e-3)
    assert not plan.memory.fits and "GP202" in codes(plan)
    # Without a throughput or a price: no time and no cost, and the plan says which figure is missing.
    assert plan.time.seconds is None and plan.time.gpu_hours is None and plan.cost.usd is None
    gp406 = next(d for d in plan.diagnostics if d.code == "GP406")
    assert "no throughput" in gp406.message and "bf16 = " in gp406.hint
    assert "GP403" in codes(plan)
    json.dumps(plan.to_json(derivations=True), allow_nan=False)


def test_with_throughput_and_price_the_plan_has_time_and_cost_like_a_catalog_device(make_plan):
    """Given the RTX A6000's catalog figures, the described device plans exactly as the record does."""
    described = llama_7b_fsdp(make_plan, "memory = 48 GiB, bf16 = 154.8 TFLOP/s, price_per_hour = $0.49")
    catalog = make_plan(
        model="preset = llama-7b\ncontext = 2048 tokens",
        data="tokens = 100M tokens",
        adapt="method = finetune",
        train="precision = bf16\nsharding = fsdp\nmicro_batch = 2\nrecompute = full",
        budget="hardware = 2 x rtx-a6000",
    )
    assert described.time.seconds == pytest.approx(catalog.time.seconds)
    assert described.memory.per_device.total == pytest.approx(catalog.memory.per_device.total)
    assert described.cost.usd == pytest.approx(catalog.cost.usd)
    assert "inline device" in described.cost.price_source
    assert "GP406" not in codes(described) and "GP403" not in codes(described)


def test_a_price_without_throughput_still_has_no_cost_and_says_why(make_plan):
    plan = llama_7b_fsdp(make_plan, "memory = 48 GB, price_per_hour = $0.49")
    assert plan.cost.price_per_hour == 0.49 and plan.cost.usd is None
    assert "GP406" in codes(plan) and "GP403" not in codes(plan)
    cost = next(t for t in plan.derivations["cost"] if t.name == "cost")
    assert "GP406" in cost.formula


def test_check_and_plan_agree_on_a_described_device(tmp_path):
    from click.testing import CliRunner

    from genaisdk.cli import cli

    path = tmp_path / "a6000.genai"
    path.write_text(
        'genai 1\nproject "p" {\n  model {\n    preset = llama-7b\n  }\n  data {\n    tokens = 10M tokens\n  }\n'
        "  adapt {\n    method = finetune\n  }\n  budget {\n    hardware = 2 x { memory = 48 GB, fp16 = 150 TFLOP/s }\n  }\n"
        "  train {\n    precision = bf16\n  }\n}\n"
    )
    checked = CliRunner().invoke(cli, ["check", str(path)], catch_exceptions=False)
    planned = CliRunner().invoke(cli, ["plan", str(path)], catch_exceptions=False)
    # bf16 on a device quoting only fp16 is planned, its time on the fp16 peak: both warn, neither refuses.
    assert checked.exit_code == planned.exit_code == 0
    assert "GS306" in checked.output and "GS306" in planned.output
    assert "fp16 peak" in checked.output


def test_every_view_of_a_plan_without_time_says_so(make_plan):
    from genaisdk.render.markdown import to_markdown
    from genaisdk.render.summary import key_figures, sections
    from genaisdk.render.text import to_text

    plan = llama_7b_fsdp(make_plan, A6000_FIGURES)
    for width in (80, 120):
        text = to_text(plan, width=width)
        assert "quotes no" in text and "throughput" in text
    assert "rtx-a6000" in to_markdown(plan)
    rows = {r.label: r for s in sections(plan) for r in s.rows}
    assert rows["device-hours"].value == "-" and "no throughput" in rows["device-hours"].why
    assert next(f for f in key_figures(plan) if f.label == "wall-clock").value == "-"


def test_the_plan_names_the_source_and_date_of_its_price(make_plan):
    from genaisdk.render.text import to_text

    plan = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = finetune",
                     budget="hardware = 8 x tpu-v6e")
    assert plan.cost.price_per_hour == 2.70 and plan.cost.price_date == "2024-12-11"
    assert "Trillium" in plan.cost.price_source and "2024-12-11" in plan.cost.price_source
    cost = next(t for t in plan.derivations["cost"] if t.name == "cost")
    assert cost.source == plan.cost.price_source
    assert "2024-12-11" in to_text(plan, width=160)
    own = make_plan(model="preset = llama-7b", data="tokens = 10M tokens", adapt="method = finetune",
                    budget="hardware = 8 x tpu-v6e\nprice_per_hour = $1.35")
    assert own.cost.price_source == "the spec's budget.price_per_hour" and own.cost.price_date is None


def test_a_described_cluster_is_timed_by_the_step_time_model_across_nodes(make_plan):
    """With its link, network and node size an inline device spans nodes: the step-time model
    times it (no default MFU), and a slower network makes the same layout slower."""
    def described(network: str):
        return make_plan(
            model="preset = llama-7b\ncontext = 2048 tokens",
            data="tokens = 1B tokens",
            train="precision = bf16\nsharding = zero1\nmicro_batch = 1\nrecompute = full\ntensor = 1\npipeline = 1\nbatch = 1M tokens",
            budget=f"hardware = 16 x {{ memory = 80 GiB, bf16 = 312 TFLOP/s, bandwidth = 2039 GB/s, link = 300 GB/s, "
            f"network = {network}, node = 8, host_link = 32 GB/s }}",
        )

    fast, slow = described("25 GB/s"), described("6.25 GB/s")
    assert fast.time.model == slow.time.model == "step-time"
    assert slow.time.step.parts["data_parallel"] > fast.time.step.parts["data_parallel"] > 0
    assert slow.time.seconds > fast.time.seconds
