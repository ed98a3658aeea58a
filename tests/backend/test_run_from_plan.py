"""The JAX backend builds the model the plan counted, from the plan's run settings."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("jax")

import genaisdk  # noqa: E402
from genaisdk.backend.jax.config import RunConfig, UnsupportedError  # noqa: E402
from genaisdk.backend.jax.model import build  # noqa: E402
from genaisdk.planning.run_settings import run_settings  # noqa: E402

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.mark.parametrize("name", ["bert-sentiment", "t5-translation", "legal", "tiny-gpt", "llama-65b"])
def test_the_backend_model_has_the_planned_parameter_count(name):
    spec = genaisdk.load(SPECS / f"{name}.genai")
    plan = genaisdk.plan(spec)
    if plan.train.pipeline_parallel > 1:
        # The backend runs no pipeline: refused with the option that plans without, and
        # the same model planned on one stage without tensor parallelism is what it builds.
        with pytest.raises(UnsupportedError, match=r"--set train\.pipeline=1"):
            RunConfig.from_settings(run_settings(plan, spec))
        spec = genaisdk.load(SPECS / f"{name}.genai", overrides=["train.pipeline=1", "train.tensor=1", "train.sequence_parallel=false"])
        plan = genaisdk.plan(spec)
    config = RunConfig.from_settings(run_settings(plan, spec))
    model = build(config.dims, family=config.architecture.family)
    assert model.num_params() == int(plan.model.params)
    t = plan.train
    assert (config.strategy.key, config.micro_batch, config.accumulation, config.recompute, config.devices) == (
        t.strategy, t.micro_batch, t.grad_accumulation, t.recompute, t.devices
    )
    assert (config.precision.key, config.seq_len, config.global_batch) == (t.precision, plan.model.context, t.global_batch_sequences)


def test_adapters_are_run_as_planned_not_as_something_else():
    spec = genaisdk.load(SPECS / "chat-qlora.genai")
    plan = genaisdk.plan(spec)
    config = RunConfig.from_settings(run_settings(plan, spec))
    assert (config.adapter.method, config.adapter.rank, config.adapter.frozen) == ("qlora", plan.adapt.rank, "nf4")
    assert set(config.adapter.targets) == {"q", "k", "v", "o", "gate", "up", "down"}
