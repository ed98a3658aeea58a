"""Offload moves state to the host: the plan checks it fits there, or says it could not."""

from __future__ import annotations

import pytest

import genaisdk

from .conftest import spec_text


def trillion(budget: str) -> str:
    return spec_text(model="size = 1T\ncontext = 2048 tokens", data="tokens = 1B tokens", budget=budget)


def test_a_host_without_a_memory_figure_is_unchecked_not_infinite():
    plan = genaisdk.plan(trillion("hardware = 1 x a100-80gb"))
    assert plan.train.strategy.endswith("-offload")
    assert plan.memory.per_device.host > 10e12  # 16 bytes per parameter of 1T
    assert plan.memory.host_capacity is None and plan.memory.host_fits is None
    warning = next(d for d in plan.diagnostics if d.code == "GP206")
    assert warning.severity == "warning" and "unchecked" in warning.message
    assert "host_memory" in warning.hint


@pytest.mark.parametrize("budget", ["hardware = 1 x a100-80gb\nhost_memory = 512 GB", "hardware = 1 x h100-sxm"])
def test_offload_that_overflows_the_host_does_not_fit(budget):
    """Per device: the spec's `budget.host_memory`, else the record's (DGX H100: 2 TB / 8)."""
    plan = genaisdk.plan(trillion(budget))
    assert not plan.memory.fits
    assert plan.memory.host_capacity in (512e9, 2 * 2**40 / 8)
    error = next(d for d in plan.diagnostics if d.code == "GP202")
    assert "of host memory per device" in error.message
    assert "GP206" not in {d.code for d in plan.diagnostics}


def test_offload_that_fits_the_host_is_planned():
    plan = genaisdk.plan(spec_text(model="size = 13B\ncontext = 2048 tokens", data="tokens = 1B tokens", budget="hardware = 1 x h100-sxm"))
    assert plan.memory.fits and plan.train.strategy.endswith("-offload")
    assert plan.memory.host_fits is True
    assert plan.memory.per_device.host <= plan.memory.host_capacity
    assert plan.to_json()["memory"]["host_capacity"] == int(plan.memory.host_capacity)
