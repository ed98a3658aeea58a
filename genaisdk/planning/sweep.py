"""`genai plan SPEC --sweep`: the configurations around the plan, on every axis the spec
leaves `auto`, evaluated with `genaisdk.planning.grid.evaluate` (one vectorized call per
model size).

Whatever the spec fixes is held: the preset or dimensions (a size is swept only for `size =
auto`), the adaptation and its base, the device count and kind, the precision, the strategy,
the micro-batch, the recomputation, the parallel layout (tensor, pipeline, sequence
parallelism, interleaving) and the context. The tokens and the batch of each size
follow the plan's own rules (`planning.tokens`), so the plan's configuration is one of the
rows, with the plan's numbers, marked `is_plan`. Each (size, precision, device count) keeps
its preferred fitting configuration (`grid.preference_keys`); the front is the Pareto front
of predicted loss, cost (device-hours where no price is known) and, with a time budget, the
device count among the configurations that meet the time and cost budgets, or, without
one, wall-clock days. The sweep plans nothing: it reads the stages of the plan it is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import attrs
import numpy as np

from genaisdk.core.serialize import BYTES, COUNT, fields_json
from genaisdk.planning.assemble import predicted_loss
from genaisdk.planning.fit import LAYOUT_KEYS, layout_candidates, model_case
from genaisdk.planning.grid import RECOMPUTE_ORDER, Grid, evaluate, pareto_mask, powers_of_two, preferred
from genaisdk.planning.sizing import for_size
from genaisdk.planning.stages import Planned, Stages
from genaisdk.planning.tokens import batch_tokens, training_tokens
from genaisdk.spec.model import is_auto

SIZE_STEPS = 13
"""Sizes from 1/8x to 8x the planned one, in steps of sqrt(2)."""

MAX_SWEEP_MICRO_BATCH = 64


@attrs.frozen(kw_only=True)
class SweepRow:
    """One configuration: the model, its settings and its predicted loss, time and cost."""

    params: float = attrs.field(metadata=COUNT)
    layers: int
    d_model: int
    precision: str
    strategy: str
    devices: int
    micro_batch: int
    recompute: str
    memory: float = attrs.field(metadata=BYTES)
    """Peak bytes per device (the most loaded pipeline stage's)."""
    fits: bool
    loss: float
    days: float | None
    """None where the device quotes no throughput."""
    usd: float | None
    tokens: float = attrs.field(metadata=COUNT)
    is_plan: bool = False
    """The plan's own configuration (its numbers are the plan's)."""
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    sequence_parallel: bool = False
    virtual_stages: int = 1


@attrs.frozen(kw_only=True)
class SweepResult:
    configurations: int
    seconds: float
    front: tuple[SweepRow, ...]
    """Pareto-optimal configurations (loss, days, cost), best loss first; the plan's row is
    always among them (marked `is_plan`), on the front or not."""
    capacity: float
    tokens_rule: str
    varied: tuple[str, ...] = ()
    """The axes the spec leaves `auto` (the others are held at the spec's values)."""

    @property
    def rate(self) -> float:
        return self.configurations / self.seconds if self.seconds > 0 else math.inf

    @property
    def plan_row(self) -> SweepRow:
        return next(r for r in self.front if r.is_plan)

    def shown(self, top: int = 10) -> list[SweepRow]:
        """The best `top` rows, the plan's row included even when it ranks lower."""
        rows = list(self.front[:top])
        if not any(r.is_plan for r in rows):
            rows.append(self.plan_row)
        return rows

    def to_json(self, top: int = 10) -> dict:
        return {
            "configurations": self.configurations,
            "seconds": self.seconds,
            "configurations_per_second": self.rate,
            "tokens": self.tokens_rule,
            "varied": list(self.varied),
            "front": [fields_json(r) for r in self.shown(top)],
        }


def sweep_sizes(planned: float) -> list[float]:
    return [planned * 2 ** ((k - SIZE_STEPS // 2) / 2) for k in range(SIZE_STEPS)]


def sweep_devices(planned: int) -> tuple[int, ...]:
    """Powers of two from an eighth to eight times the plan's count, and the count itself."""
    lo = max(1, planned // 8)
    return tuple(sorted(set(powers_of_two(lo, max(planned * 8, 8))) | {planned}))


def _best_per_group(result, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """For each (precision, devices): the preferred fitting configuration over (strategy,
    micro-batch, recompute, layout), as flat indices into that sub-grid, and whether one fits."""
    return preferred(result, groups=(0, 2))


def _plan_row(planned: Planned) -> SweepRow:
    p = planned.plan
    return SweepRow(
        params=p.model.params,
        layers=p.model.layers,
        d_model=p.model.d_model,
        precision=p.train.precision,
        strategy=p.train.strategy,
        devices=p.train.devices,
        micro_batch=p.train.micro_batch,
        recompute=p.train.recompute,
        memory=p.memory.per_device.total,
        fits=p.memory.fits,
        loss=p.scaling.predicted_loss,
        days=p.time.days,
        usd=p.cost.usd,
        tokens=p.data.tokens,
        is_plan=True,
        tensor_parallel=p.train.tensor_parallel,
        pipeline_parallel=p.train.pipeline_parallel,
        data_parallel=p.train.data_parallel,
        sequence_parallel=p.train.sequence_parallel,
        virtual_stages=p.train.virtual_stages,
    )


def _axes(stages: Stages) -> tuple[Grid, tuple[str, ...]]:
    """Each axis: the spec's value where it fixes one, else the candidates around the plan."""
    ctx, f = stages.ctx, stages.fitted
    assert f is not None
    t, r, hw = ctx.project.train, ctx.resolved, ctx.hardware
    c = f.choice
    varied = []
    if r.precision is None:
        varied.append("precision")
        precisions = (ctx.precision,) + tuple(
            p for p in r.precisions if p.trainable and p.compute_dtype in hw.peak_flops and p.key != ctx.precision.key
        )
    else:
        precisions = (ctx.precision,)
    strategies = (r.strategy,) if r.strategy is not None else r.strategies
    if r.strategy is None:
        varied.append("strategy")
    if ctx.devices_fixed is None:
        varied.append("devices")
        devices = sweep_devices(c.devices)
    else:
        devices = (ctx.devices_fixed,)
    if not is_auto(t.micro_batch) and t.micro_batch:
        micro: tuple[int, ...] = (int(t.micro_batch),)
    else:
        varied.append("micro_batch")
        micro = tuple(sorted(set(powers_of_two(1, MAX_SWEEP_MICRO_BATCH)) | {c.micro_batch}))
    if not is_auto(t.recompute) and t.recompute:
        recomputes: tuple[str, ...] = (t.recompute,)
    else:
        varied.append("recompute")
        recomputes = RECOMPUTE_ORDER
    if f.case.layouts:
        varied.extend(k for k in LAYOUT_KEYS if is_auto(getattr(t, k)))
    grid = Grid(precisions=precisions, strategies=strategies, devices=devices, micro_batches=micro, recomputes=recomputes)
    return grid, tuple(varied)


def run_sweep(planned: Planned, *, sizes: Sequence[float] | None = None) -> SweepResult:
    """The sweep around `planned` (see the module docstring). `sizes` (parameter counts)
    replace the default 1/8x-8x steps; they are used only when the spec leaves the size
    `auto`. A plan that trains nothing has one row, its own."""
    stages = planned.stages
    ctx = stages.ctx
    plan_row = _plan_row(planned)
    if stages.fitted is None:
        return SweepResult(configurations=0, seconds=0.0, front=(plan_row,), capacity=float(ctx.hardware.memory_bytes), tokens_rule="nothing trains")
    if not ctx.peak:
        return SweepResult(configurations=0, seconds=0.0, front=(plan_row,), capacity=float(ctx.hardware.memory_bytes),
                           tokens_rule="the device quotes no throughput: no time to trade against")
    grid_axes, varied = _axes(stages)
    arch = ctx.resolved.architecture
    seq = stages.context
    if stages.size.auto:
        varied = ("size", *varied)
        targets = list(sizes) if sizes else sweep_sizes(planned.plan.model.params)
        shapes = [for_size(n, ctx.project.model, ctx.resolved, context=seq, vocab=ctx.vocab) for n in targets]
    else:
        shapes = []
    shapes = [stages.dims] + [d for d in shapes if d != stages.dims]

    rows: list[SweepRow] = []
    points: list[tuple[float, float, float, float]] = []
    configurations = 0
    elapsed = 0.0
    price = ctx.price
    for dims in shapes:
        count = arch.count_params(dims)
        n = float(count.active)
        if dims == stages.dims:
            tokens, requested = stages.tokens, stages.batch_tokens
        else:
            tokens = training_tokens(ctx, count, stages.size.tokens_for(dims, arch, seq), None)
            requested = batch_tokens(ctx, count, seq, None)
        case = model_case(ctx, stages.trainable, dims, seq, tokens=tokens, batch_tokens=requested)
        layouts = layout_candidates(ctx, case, grid_axes.devices)
        widest = max(x.model_parallel for x in layouts)
        cap = max(1, math.ceil(case.global_batch_sequences / max(1, min(grid_axes.devices) // widest)))
        grid = attrs.evolve(grid_axes, micro_batches=tuple(m for m in grid_axes.micro_batches if m <= cap) or (1,), layouts=layouts)
        start = time.perf_counter()
        result = evaluate(case, grid)
        best, ok = _best_per_group(result, grid)
        elapsed += time.perf_counter() - start
        configurations += grid.size
        loss = predicted_loss(ctx, n, tokens, dims.vocab)[0]
        m_n, r_n, l_n = grid.shape[3], grid.shape[4], grid.shape[5]
        for i, p in enumerate(grid.precisions):
            for k, d in enumerate(grid.devices):
                is_plan = dims == stages.dims and p.key == plan_row.precision and d == plan_row.devices
                if is_plan:
                    # The plan's own configuration, with the plan's own numbers.
                    rows.append(plan_row)
                    points.append(_point(plan_row, price))
                    continue
                if not ok[i, k]:
                    continue
                j, mi, ri, li = np.unravel_index(int(best[i, k]), (grid.shape[1], m_n, r_n, l_n))
                idx = (i, int(j), k, int(mi), int(ri), int(li))
                layout = grid.layouts[li]
                seconds = float(result.seconds[idx])
                hours = seconds * d / 3600.0
                row = SweepRow(
                    params=float(count.total),
                    layers=dims.layers,
                    d_model=dims.d_model,
                    precision=p.key,
                    strategy=grid.strategies[j].key,
                    devices=int(d),
                    micro_batch=int(grid.micro_batches[mi]),
                    recompute=grid.recomputes[ri],
                    memory=float(result.total[idx]),
                    fits=True,
                    loss=loss,
                    days=seconds / 86400.0,
                    usd=hours * price if price is not None else None,
                    tokens=tokens,
                    tensor_parallel=layout.tensor,
                    pipeline_parallel=layout.pipeline,
                    data_parallel=int(result.data_parallel[idx]),
                    sequence_parallel=layout.sequence_parallel,
                    virtual_stages=layout.virtual_stages,
                )
                rows.append(row)
                points.append(_point(row, price))
    front = _front(rows, points, ctx)
    data_tokens = ctx.project.data.tokens
    return SweepResult(
        configurations=configurations,
        seconds=elapsed,
        front=tuple(front),
        capacity=float(ctx.hardware.memory_bytes),
        tokens_rule=(
            f"{data_tokens:.3g} (the spec's data) for every size" + (", capped at what the budget buys" if stages.size.sized_by == "budget" else "")
            if data_tokens
            else "the plan's rule for each size (20 per parameter from scratch)"
        ),
        varied=varied,
    )


def _point(row: SweepRow, price: float | None) -> tuple[float, float, float, float]:
    hours = row.days * 24.0 * row.devices
    return (row.loss, row.usd if (row.usd is not None and price is not None) else hours, float(row.devices), row.days * 86400.0)


def _front(rows: list[SweepRow], points: list[tuple[float, float, float, float]], ctx) -> list[SweepRow]:
    """The Pareto front within the budgets (all rows when none meets them), the plan's row
    kept whatever its rank."""
    if not rows:
        return []
    budget = ctx.project.budget
    limit_s = budget.time.value if budget.time else None
    limit_usd = budget.cost.value if budget.cost else None
    pts = np.asarray(points, dtype=float)
    pts[~np.isfinite(pts)] = np.inf
    within = np.ones(len(rows), dtype=bool)
    if limit_s is not None:
        within &= pts[:, 3] <= limit_s
    if limit_usd is not None and ctx.price is not None:
        within &= pts[:, 1] <= limit_usd
    within &= np.asarray([r.fits for r in rows])
    if not within.any():
        within[:] = True
    objectives = pts[:, [0, 1, 2]] if limit_s is not None else pts[:, [0, 1, 3]]
    # Equal objectives (bf16 and fp16 on the same device count): keep the first.
    _, first = np.unique(objectives, axis=0, return_index=True)
    candidates = np.intersect1d(np.nonzero(within)[0], first)
    mask = np.zeros(len(rows), dtype=bool)
    mask[candidates[pareto_mask(objectives[candidates])]] = True
    for i, r in enumerate(rows):
        if r.is_plan:
            mask[i] = True
    return sorted((r for r, keep in zip(rows, mask) if keep), key=lambda r: (r.loss, r.usd or 0.0, r.devices, not r.is_plan))
