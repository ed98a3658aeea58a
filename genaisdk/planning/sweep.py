"""`genai plan SPEC --sweep`: model sizes x precisions x strategies x devices x micro-batches
x recomputation, evaluated with `genaisdk.search.evaluate` (one vectorized call per size).

The sweep keeps the spec's hardware, data, optimizer and adaptation, and explores every other
axis whatever the spec fixes (that is its point). Each (size, precision, device count) keeps
its preferred fitting configuration (`search.preference_keys`); the result is the Pareto
front of predicted loss, cost (device-hours where no price is known) and, with a time
budget, the device count among the configurations that meet the time and cost budgets, or,
without one, wall-clock days."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

import numpy as np

from genaisdk.estimate import scaling
from genaisdk.estimate.constants import CHINCHILLA_TOKENS_PER_PARAM
from genaisdk.planning import model as model_choice
from genaisdk.search import (
    RECOMPUTE_ORDER,
    Grid,
    ModelCase,
    evaluate,
    pareto_mask,
    powers_of_two,
    preference_score,
)

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

@attrs.frozen(kw_only=True)
class SweepRow:
    params: float
    layers: int
    d_model: int
    precision: str
    strategy: str
    devices: int
    micro_batch: int
    recompute: str
    memory: float
    fits: bool
    loss: float
    days: float
    usd: float | None
    tokens: float

    def to_json(self) -> dict[str, Any]:
        from genaisdk.plans import _json_value

        return {k: _json_value(v) for k, v in attrs.asdict(self).items()}


@attrs.frozen(kw_only=True)
class SweepResult:
    configurations: int
    seconds: float
    front: tuple[SweepRow, ...]
    """Pareto-optimal configurations (loss, days, cost), best loss first."""
    capacity: float
    tokens_rule: str

    @property
    def rate(self) -> float:
        return self.configurations / self.seconds if self.seconds > 0 else math.inf

    def to_json(self, top: int = 10) -> dict[str, Any]:
        return {
            "configurations": self.configurations,
            "seconds": self.seconds,
            "configurations_per_second": self.rate,
            "tokens": self.tokens_rule,
            "front": [r.to_json() for r in self.front[:top]],
        }

    def to_markdown(self, top: int = 10) -> str:
        from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_usd

        lines = [
            f"Searched {self.configurations:,} configurations in {self.seconds * 1e3:.1f} ms "
            f"({self.rate:,.0f} per second). Tokens: {self.tokens_rule}.",
            "",
            "| params | shape | precision | strategy | devices | micro | recompute | memory | days | cost | loss |",
            "|---:|---|---|---|---:|---:|---|---:|---:|---:|---:|",
        ]
        for r in self.front[:top]:
            lines.append(
                f"| {fmt_count(r.params)} | {r.layers} x {r.d_model} | {r.precision} | {r.strategy} | {r.devices} | "
                f"{r.micro_batch} | {r.recompute} | {fmt_bytes(r.memory)} | {r.days:.1f} | {fmt_usd(r.usd)} | {r.loss:.3f} |"
            )
        return "\n".join(lines) + "\n"

    def render(self, console: Console, top: int = 10) -> None:
        from rich import box
        from rich.table import Table

        from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_usd

        table = Table(
            box=box.SIMPLE_HEAD,
            title=f"Pareto front: predicted loss vs time vs cost ({len(self.front)} configurations, best {min(top, len(self.front))} shown)",
            title_justify="left",
        )
        for col in ("params", "shape", "precision", "strategy", "devices", "micro", "recompute", "memory", "days", "cost", "loss"):
            table.add_column(col, justify="right" if col in ("params", "devices", "micro", "memory", "days", "cost", "loss") else "left")
        for r in self.front[:top]:
            table.add_row(
                fmt_count(r.params),
                f"{r.layers} x {r.d_model}",
                r.precision,
                r.strategy,
                str(r.devices),
                str(r.micro_batch),
                r.recompute,
                fmt_bytes(r.memory),
                f"{r.days:,.1f}",
                fmt_usd(r.usd),
                f"{r.loss:.3f}",
            )
        console.print(table)
        console.print(
            f"[dim]{self.configurations:,} configurations searched in {self.seconds * 1e3:.1f} ms "
            f"({self.rate:,.0f} per second); tokens: {self.tokens_rule}; memory limit {fmt_bytes(self.capacity)} per device[/]"
        )


SIZE_STEPS = 13
"""Sizes from 1/8x to 8x the planned one, in steps of sqrt(2)."""


def sweep_sizes(planned: float) -> list[float]:
    return [planned * 2 ** ((k - SIZE_STEPS // 2) / 2) for k in range(SIZE_STEPS)]


def sweep_devices(planned: int) -> tuple[int, ...]:
    lo = max(1, planned // 8)
    return powers_of_two(lo, max(planned * 8, 8))


def _best_per_group(result, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """For each (precision, devices): the preferred fitting configuration over (strategy,
    micro-batch, recompute), as flat indices into that sub-grid, and whether one fits."""
    score = np.where(result.fits, preference_score(result), np.iinfo(np.int64).max)
    # (P, S, D, M, R) -> (P, D, S*M*R)
    moved = np.moveaxis(score, 2, 1).reshape(grid.shape[0], grid.shape[2], -1)
    best = np.argmin(moved, axis=-1)
    ok = np.take_along_axis(moved, best[..., None], axis=-1)[..., 0] < np.iinfo(np.int64).max
    return best, ok


def run_sweep(spec: Any, *, plan: Any = None, registry: Any = None, sizes: Sequence[float] | None = None) -> SweepResult:
    from genaisdk.planner import planner_for

    if registry is None:
        from genaisdk.registry import get_registry

        registry = get_registry()
    planner = planner_for(spec, registry)
    the_plan = planner.plan
    hw = planner.hw
    # The plan's precision first, so that it wins ties (bf16 and fp16 cost the same).
    precisions = (planner.precision,) + tuple(
        p for p in planner.r.precisions if p.trainable and p.compute_dtype in hw.peak_flops and p.key != planner.precision.key
    )
    strategies = planner.r.strategies
    devices = sweep_devices(the_plan.train.devices)
    seq = the_plan.model.context
    data_tokens = planner.p.data.tokens
    sizes = list(sizes) if sizes else sweep_sizes(the_plan.model.params)

    rows: list[SweepRow] = []
    points: list[tuple[float, float, float]] = []
    configurations = 0
    elapsed = 0.0
    price = planner.price
    for target in sizes:
        dims = model_choice.for_size(target, planner.p.model, planner.r, context=seq, vocab=planner.vocab)
        count = planner.r.architecture.count_params(dims)
        n = float(count.active)
        tokens = float(data_tokens) if data_tokens else CHINCHILLA_TOKENS_PER_PARAM * n
        planner.tokens = tokens
        case: ModelCase = planner._case(dims, seq)
        cap = max(1, math.ceil(case.global_batch_sequences / min(devices)))
        grid = Grid(
            precisions=precisions,
            strategies=strategies,
            devices=devices,
            micro_batches=powers_of_two(1, min(cap, 64)),
            recomputes=RECOMPUTE_ORDER,
        )
        start = time.perf_counter()
        result = evaluate(case, grid)
        best, ok = _best_per_group(result, grid)
        elapsed += time.perf_counter() - start
        configurations += grid.size
        loss = float(scaling.chinchilla_loss(n, tokens))
        m_n, r_n = grid.shape[3], grid.shape[4]
        for i, p in enumerate(grid.precisions):
            for k, d in enumerate(grid.devices):
                if not ok[i, k]:
                    continue
                j, rest = divmod(int(best[i, k]), m_n * r_n)
                mi, ri = divmod(rest, r_n)
                idx = (i, j, k, mi, ri)
                seconds = float(result.seconds[idx])
                hours = seconds * d / 3600.0
                usd = hours * price if price is not None else None
                rows.append(
                    SweepRow(
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
                        usd=usd,
                        tokens=tokens,
                    )
                )
                points.append((loss, usd if usd is not None else hours, float(d), seconds))
    budget = planner.p.budget
    limit_s = budget.time.value if budget.time else None
    limit_usd = budget.cost.value if budget.cost else None
    front: list[SweepRow] = []
    if rows:
        pts = np.asarray(points)
        within = np.ones(len(rows), dtype=bool)
        if limit_s is not None:
            within &= pts[:, 3] <= limit_s
        if limit_usd is not None and price is not None:
            within &= pts[:, 1] <= limit_usd
        if not within.any():
            within[:] = True
        objectives = pts[:, [0, 1, 2]] if limit_s is not None else pts[:, [0, 1, 3]]
        # Equal objectives (bf16 and fp16 on the same device count): keep the first.
        _, first = np.unique(objectives, axis=0, return_index=True)
        candidates = np.intersect1d(np.nonzero(within)[0], first)
        mask = np.zeros(len(rows), dtype=bool)
        mask[candidates[pareto_mask(objectives[candidates])]] = True
        front = sorted((r for r, keep in zip(rows, mask) if keep), key=lambda r: (r.loss, r.usd or 0.0, r.devices))
    return SweepResult(
        configurations=configurations,
        seconds=elapsed,
        front=tuple(front),
        capacity=float(hw.memory_bytes),
        tokens_rule=f"{data_tokens:.3g} (the spec's data) for every size" if data_tokens else "20 per parameter (Chinchilla)",
    )
