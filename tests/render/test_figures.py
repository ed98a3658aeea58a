"""The numbers behind the report's plots agree with the plan they come from."""

from __future__ import annotations

import numpy as np
import pytest

from genaisdk.estimate.scaling import chinchilla_loss
from genaisdk.render import figures

from .conftest import SPECS

NAMES = [p.name for p in SPECS]


@pytest.mark.parametrize("name", NAMES)
def test_memory_bars_add_up_to_each_peak(planned, name):
    _, plan = planned[name]
    bars = figures.memory_bars(plan)
    assert len(bars) == max(1, len(plan.memory.options))
    assert sum(b.chosen for b in bars) == 1
    for bar in bars:
        assert sum(bar.parts.values()) == pytest.approx(bar.total, rel=1e-9), (bar.strategy, bar.precision)
        assert all(v >= 0 for v in bar.parts.values())
    chosen = next(b for b in bars if b.chosen)
    assert chosen.total == pytest.approx(plan.memory.per_device.total)


@pytest.mark.parametrize("name", NAMES)
def test_serving_curves_pass_through_the_plans_point(planned, name):
    _, plan = planned[name]
    picture = figures.serve_picture(plan)
    weights, kv, other, total = picture.point
    memory = plan.inference.memory
    assert weights == pytest.approx(memory.weights) and kv == pytest.approx(memory.kv_cache)
    assert total == pytest.approx(memory.total)
    by_context = picture.curves[0]
    at = list(by_context.x).index(plan.inference.context)
    assert by_context.total[at] == pytest.approx(memory.total)
    assert np.all(np.diff(by_context.kv_cache) >= 0) and np.ptp(by_context.weights) == 0


def test_isoflop_curves_have_their_minimum_where_the_fit_says(planned):
    _, plan = planned["legal.genai"]
    picture = figures.isoflop_picture(plan)
    assert picture.basis == "run" and picture.data_params == pytest.approx(plan.data.tokens / 20)
    for curve in picture.curves:
        n, loss = curve.fit_optimum
        assert loss <= curve.loss.min() + 1e-9
        assert curve.params[0] < n < curve.params[-1]
        assert np.allclose(6 * curve.params * (curve.flops / (6 * curve.params)), curve.flops)
    run = next(c for c in picture.curves if c.role == "run")
    n, loss = picture.chosen
    assert run.flops == pytest.approx(6 * n * picture.tokens)
    assert loss == pytest.approx(plan.scaling.predicted_loss, rel=1e-6)
    assert loss == pytest.approx(float(chinchilla_loss(n, picture.tokens)))
    assert any(c.role == "budget" for c in picture.curves)
    assert picture.budget_params == pytest.approx(plan.scaling.optimal_params_for_budget)


def test_an_adaptation_places_its_base_model(planned):
    _, plan = planned["chat-qlora.genai"]
    picture = figures.isoflop_picture(plan)
    assert picture.basis == "base" and picture.data_params is None
    assert picture.tokens == plan.scaling.loss_tokens


def test_the_device_sweep_replans_the_same_model(planned):
    spec, plan = planned["legal.genai"]
    picture = figures.scaling_picture(spec, plan)
    points = picture.series[0].points
    assert [p.devices for p in points] == figures.device_counts(64) == [4, 8, 16, 32, 64, 128, 256, 512]
    chosen = picture.chosen
    assert chosen.devices == 64 and chosen.seconds == plan.time.seconds and chosen.usd == plan.cost.usd
    for p in points:  # same model, same FLOPs: time scales as 1 / devices at a fixed MFU
        assert p.seconds * p.devices == pytest.approx(plan.time.seconds * 64)
    front = [p for p in points if p.pareto]
    fitting = [p for p in points if p.fits]
    for p in front:
        assert not any(q.seconds <= p.seconds and q.usd <= p.usd and (q.seconds < p.seconds or q.usd < p.usd) for q in fitting)
    assert picture.budget_seconds == plan.budget.time_seconds and picture.has_cost


def test_extra_layouts_become_extra_series(planned):
    spec, plan = planned["tiny-gpt.genai"]
    half = figures.Layout(name="half the devices", description="a test layout",
                          apply=lambda s, p, n: figures.fixed_model_spec(s, p, max(1, n // 2)))
    picture = figures.scaling_picture(spec, plan, counts=[1, 2, 4], layouts=(*figures.LAYOUTS, half))
    assert [s.layout for s in picture.series] == ["as planned", "half the devices"]
    assert [p.devices for p in picture.series[1].points] == [1, 1, 2]


def test_pareto_front():
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 3.0), (4.0, 1.0), (5.0, 5.0), (1.0, 5.0)]
    assert figures.pareto_front(points) == [0, 1, 3, 5]


def test_device_counts():
    assert figures.device_counts(1) == [1, 2, 4, 8]
    assert figures.device_counts(1560)[:2] == [128, 256] and 1560 in figures.device_counts(1560)
