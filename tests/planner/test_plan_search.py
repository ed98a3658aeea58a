"""The vectorized search: the grid's numbers are the estimators' numbers, and the choice
follows the documented preference order."""

from __future__ import annotations

import numpy as np
import pytest

from genaisdk.estimate import activations as act
from genaisdk.estimate.memory import training_memory
from genaisdk.planning.grid import Grid, choose, evaluate, pareto_mask, powers_of_two


@pytest.fixture(scope="module")
def fitted():
    import genaisdk
    from genaisdk.planning import plan_stages

    from .conftest import spec_text

    spec = genaisdk.loads(spec_text(model="size = 7B\ncontext = 2048 tokens", data="tokens = 140B tokens", budget="hardware = 8 x a100-80gb"))
    return plan_stages(spec).stages


def test_grid_cell_equals_a_scalar_estimate(fitted):
    case = fitted.fitted.case
    r = fitted.ctx.resolved
    grid = Grid(precisions=r.precisions[:5], strategies=r.strategies, devices=(1, 8, 64), micro_batches=(1, 2, 4), recomputes=("none", "selective", "full"))
    result = evaluate(case, grid)
    assert result.total.shape == grid.shape
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = tuple(int(rng.integers(n)) for n in grid.shape)
        p, s = grid.precisions[idx[0]], grid.strategies[idx[1]]
        d, mb, rc = grid.devices[idx[2]], grid.micro_batches[idx[3]], grid.recomputes[idx[4]]
        parts = case.architecture.activation_bytes(case.dims, seq=case.seq, micro_batch=mb, recompute=rc, flash=case.flash, bytes_per_value=p.activation_bytes)
        mem = training_memory(
            params=case.params, weight_bytes=p.weight_bytes, gradient_bytes=p.gradient_bytes,
            optimizer_bytes=case.optimizer.state_bytes, master_bytes=p.master_bytes, trainable_params=case.trainable,
            update_bytes=case.optimizer.update_buffers * 4.0, accumulates=case.global_batch_sequences > mb * d,
            largest_layer=case.largest_layer, dp=d, shards_optimizer=s.shards_optimizer, shards_gradients=s.shards_gradients,
            shards_weights=s.shards_weights, offload_optimizer=s.offload_optimizer, offload_weights=s.offload_weights,
            stored_activations=act.stored_bytes(parts), loss_buffers=act.loss_bytes(parts), backward_buffers=act.backward_bytes(parts),
        )
        assert float(result.total[idx]) == pytest.approx(float(mem.total), rel=1e-12)
        assert float(result.weights[idx]) == pytest.approx(float(mem.weights), rel=1e-12)


def test_sharded_memory_falls_with_devices(fitted):
    case, r = fitted.fitted.case, fitted.ctx.resolved
    grid = Grid(precisions=(fitted.ctx.precision,), strategies=r.strategies, devices=(1, 2, 4, 8, 16), micro_batches=(1,), recomputes=("full",))
    result = evaluate(case, grid)
    keys = [s.key for s in r.strategies]
    ddp, zero1, zero2, fsdp = (result.total[0, keys.index(k), :, 0, 0, 0] for k in ("ddp", "zero1", "zero2", "fsdp"))
    assert np.all(np.diff(fsdp) < 0) and np.all(np.diff(zero1) < 0)
    assert np.allclose(ddp, ddp[0])
    assert np.all(fsdp[1:] <= zero2[1:]) and np.all(zero2 <= zero1 + 1) and np.all(zero1 <= ddp + 1)


def test_choice_is_the_fastest_that_fits(fitted):
    case, r = fitted.fitted.case, fitted.ctx.resolved
    grid = Grid(precisions=(fitted.ctx.precision,), strategies=r.strategies, devices=(8,), micro_batches=powers_of_two(1, 64), recomputes=("none", "selective", "full"))
    result = evaluate(case, grid)
    c = choose(result)
    assert c.fits
    offload = np.array([s.offload_optimizer or s.offload_weights for s in grid.strategies])
    no_offload = result.fits & ~offload[None, :, None, None, None, None]
    assert float(result.seconds[c.index]) == float(np.min(np.where(no_offload, result.seconds, np.inf)))
    # On a tie the cheaper strategy wins: none cheaper is as fast.
    order = [s.key for s in grid.strategies]
    for j in range(order.index(c.strategy.key)):
        assert not np.any(no_offload[0, j] & (result.seconds[0, j] <= result.seconds[c.index])), order[j]


def test_without_the_step_time_model_the_choice_prefers_fitting_then_cheap(fitted):
    import attrs

    case, r = attrs.evolve(fitted.fitted.case, cluster=None), fitted.ctx.resolved
    grid = Grid(precisions=(fitted.ctx.precision,), strategies=r.strategies, devices=(8,), micro_batches=powers_of_two(1, 64), recomputes=("none", "selective", "full"))
    result = evaluate(case, grid)
    assert result.step is None
    c = choose(result)
    assert c.fits
    order = [s.key for s in grid.strategies]
    for j, s in enumerate(grid.strategies[: order.index(c.strategy.key)]):
        assert not result.fits[0, j, 0, :, :2].any(), f"{s.key} fits without full recomputation"
    mb = list(grid.micro_batches)
    i = mb.index(c.micro_batch)
    if i + 1 < len(mb):
        ri = list(grid.recomputes).index(c.recompute)
        assert not result.fits[0, order.index(c.strategy.key), 0, i + 1, ri]


def test_pareto_mask():
    pts = np.array([[1, 5], [2, 2], [3, 1], [3, 3], [1, 6], [2, 2]], dtype=float)
    mask = pareto_mask(pts)
    assert mask.tolist() == [True, True, True, False, False, True]


def test_powers_of_two():
    assert powers_of_two(1, 8) == (1, 2, 4, 8)
    assert powers_of_two(1, 12) == (1, 2, 4, 8, 12)
    assert powers_of_two(4, 4) == (4,)
