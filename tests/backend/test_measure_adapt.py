"""The plan's adaptation memory against a LoRA or QLoRA run of the committed tiny LLaMA:
trainable parameters, the frozen base's bytes on the device and the optimizer state."""

from __future__ import annotations

from pathlib import Path

import pytest

jax = pytest.importorskip("jax")

import genaisdk  # noqa: E402
from genaisdk.backend.jax.measure import (  # noqa: E402
    _planned,
    config_for_plan,
    device_bytes,
    measure,
    planned_adaptation,
    run_adaptation,
)
from genaisdk.backend.jax.step import Trainer  # noqa: E402
from genaisdk.registry import get_registry  # noqa: E402

SPEC = Path(__file__).resolve().parents[2] / "specs" / "support-lora.genai"
OVERRIDES = {
    "lora": [],
    "qlora": ["adapt.method=qlora"],
    "qlora-int8": ["adapt.method=qlora", "adapt.frozen_precision=int8"],
    "lora-bf16-pure": ["train.precision=bf16-pure"],
    "lora-fp32": ["train.precision=fp32"],
}
"""The spec trains in bf16 with an fp32 master copy; pure bf16 has none, fp32 needs none."""


def _run(method: str, devices: int = 1):
    registry = get_registry()
    spec = genaisdk.load(SPEC, overrides=OVERRIDES[method])
    spec, plan = _planned(spec, devices, registry)
    config = config_for_plan(spec, plan, registry=registry)
    return plan, Trainer(config), planned_adaptation(plan, registry)


@pytest.mark.parametrize("method", list(OVERRIDES))
def test_plan_and_run_agree_on_adaptation_memory(method):
    """Trainable parameters and optimizer-state bytes equal exactly; the frozen base's bytes
    too: the plan counts a k-bit base tensor by tensor as the backend stores it."""
    plan, trainer, planned = _run(method)
    ran = run_adaptation(trainer)
    assert ran["trainable"] == planned["trainable"] == plan.model.trainable_params > 0
    assert ran["frozen_bytes"] == pytest.approx(planned["frozen_bytes"], rel=1e-9)
    assert ran["optimizer_bytes"] == planned["optimizer_bytes"] > 0


@pytest.mark.parametrize("method", list(OVERRIDES))
def test_plan_and_run_keep_the_adapters_in_one_precision(method):
    """The adapters' bytes, their gradients' and the absence of a second master copy follow
    one rule on both sides (`genaisdk.estimate.adaptation.adapter_state_bytes`): under
    mixed precision the run keeps them in fp32 and the plan counts 4 bytes each (not a
    bf16 working copy plus an fp32 master); in pure bf16, 2 bytes; in fp32, 4."""
    import jax.numpy as jnp

    plan, trainer, planned = _run(method)
    ran = run_adaptation(trainer)
    assert ran["adapter_bytes"] == planned["adapter_bytes"] > 0
    itemsize = {jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(trainer.abstract_state().params)}
    assert itemsize == {2 if method == "lora-bf16-pure" else 4}
    # Gradients have their leaves' dtype; the plan counts them at the same bytes.
    assert float(plan.memory.per_device.gradients) == plan.model.trainable_params * itemsize.pop()
    # Adam's two moments and nothing else: no master copy beside fp32 adapters.
    state = planned["optimizer_bytes"] / plan.model.trainable_params
    assert float(plan.memory.per_device.optimizer) / plan.model.trainable_params == state == 8


def test_qlora_base_bytes_on_device_match_the_plan():
    """The frozen NF4 base placed on the devices (its arrays' shards on device 0, codes and
    constants) holds exactly the plan's frozen-weight bytes, below a 16-bit base's."""
    plan, trainer, planned = _run("qlora", devices=2)
    trainer.freeze(seed=0)
    placed = device_bytes(trainer.frozen)
    assert placed == pytest.approx(planned["frozen_bytes"], rel=1e-9)
    assert placed == device_bytes(trainer.abstract_frozen())
    _, _, lora_planned = _run("lora")
    assert placed < 0.6 * lora_planned["frozen_bytes"]


def test_measure_shows_the_adaptation_rows():
    """`genai measure` of a QLoRA spec compiles its step and puts the three rows beside the
    plan's, each at a ratio of 1."""
    spec = genaisdk.load(SPEC, overrides=OVERRIDES["qlora"])
    measured = measure(spec, devices=1, fit_flops=False)
    for name in ("trainable parameters", "adapter bytes", "frozen-weight bytes", "optimizer-state bytes"):
        assert measured.row(name).ratio == pytest.approx(1.0, rel=1e-9), name


@pytest.mark.slow
def test_lora_flops_per_layer_saving_equals_xlas_count():
    """Per layer, a LoRA step computes 2·N_matmul fewer FLOPs per token than a fine-tune (the
    frozen weights' gradients) and 6·N_adapters more: the plan's rule and the backend's
    `flops_per_step` against XLA's own count of the compiled steps (unrolled, two and three
    layers, so that what autodiff prunes below the lowest adapter cancels): 1.003 of it."""
    from genaisdk.backend.jax.measure import _cost_flops
    from genaisdk.estimate.adaptation import lora_flops_per_token

    per_token, planned = {}, {}
    for method, overrides in {"lora": [], "finetune": ["adapt.method=finetune"]}.items():
        spec = genaisdk.load(SPEC, overrides=overrides)
        spec, plan = _planned(spec, 1, get_registry())
        config = config_for_plan(spec, plan, registry=get_registry())
        for layers in (2, 3):
            sample = config.evolve(dims=config.dims.evolve(layers=layers), accumulation=1, global_batch=config.micro_batch)
            step = Trainer(sample, unroll=True)
            per_token[method, layers] = _cost_flops(step.lower().compile()) / sample.tokens_per_step
            planned[method, layers] = step.flops_per_step / sample.tokens_per_step
        if method == "lora":
            adapter = config.adapter
    xla_saving = (per_token["finetune", 3] - per_token["finetune", 2]) - (per_token["lora", 3] - per_token["lora", 2])
    backend_saving = (planned["finetune", 3] - planned["finetune", 2]) - (planned["lora", 3] - planned["lora", 2])
    dims = config.dims
    rule = [lora_flops_per_token(dims.evolve(layers=n), rank=adapter.rank, targets=adapter.targets, context=config.seq_len) for n in (2, 3)]
    rule_saving = (rule[1][0] - rule[0][0]) - (rule[1][1] - rule[0][1])
    assert backend_saving == pytest.approx(rule_saving, rel=1e-9)
    assert xla_saving == pytest.approx(rule_saving, rel=0.02)


def test_measure_of_a_prompting_plan_says_there_is_nothing_to_compile():
    """A prompting plan is valid and trains nothing: `genai measure` says so and exits 0, as
    `genai train` does."""
    from click.testing import CliRunner

    from genaisdk.cli import cli

    result = CliRunner().invoke(cli, ["measure", str(SPEC), "--set", "adapt.method=prompt", "--no-flops"])
    assert result.exit_code == 0, result.output
    assert "nothing to measure" in result.output and "genai generate" in result.output
