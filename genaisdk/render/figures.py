"""The numbers behind the report's pictures, computed from a Plan (and its Spec) through the
public API and the estimate functions only; `genaisdk.render.plots` draws them.

- `memory_bars`: each strategy x precision row of `plan.memory.options`, stacked the way its
  peak is made: persistent state (weights, optimizer state, runtime) plus what the phase
  that sets the peak holds (the gradients alive then; the activations and gather buffers of
  a forward or backward pass; the optimizer step's fp32 gradient copy and update buffer)
  plus allocator fragmentation. The parts add up to the row's `total`
  (`genaisdk.estimate.memory.training_memory`, `MemoryBreakdown.at_peak`).
- `isoflop_picture`: loss against model size at fixed compute, L(N, C / 6N), from the
  Chinchilla approach-3 fit (`genaisdk.estimate.scaling.CHINCHILLA`), for budgets around the
  run's, with the fit's minimum and the 20-tokens-per-parameter rule the planner sizes with.
- `scaling_picture`: the spec planned again at other device counts (`genaisdk.plan` on the
  spec with the plan's model fixed), one series per parallel layout (`LAYOUTS`), with the
  budget and the Pareto front of (time, cost) over the configurations that fit.
- `serve_picture`: one serving replica's memory (weights, KV cache, workspace and runtime)
  against context and against batch, at the serving precision
  (`genaisdk.estimate.inference.inference_memory`, bytes per value read off the plan).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from genaisdk.estimate.inference import inference_memory, model_kv_cache_bytes, prefill_workspace_bytes
from genaisdk.estimate.scaling import CHINCHILLA, ChinchillaFit, chinchilla_loss, chinchilla_optimal, tokens_per_param_optimal

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.plans import MemoryBreakdown, Plan
    from genaisdk.spec.model import Spec

# ----------------------------------------------------------------------------- memory

MEMORY_PARTS = (
    ("weights", "weights"),
    ("gradients", "gradients"),
    ("optimizer", "optimizer state"),
    ("activations", "activations and buffers"),
    ("step_buffers", "optimizer-step buffers"),
    ("runtime", "runtime"),
    ("fragmentation", "fragmentation"),
)
"""Stack order (bottom first) and legend labels."""


@attrs.frozen(kw_only=True)
class MemoryBar:
    """One strategy x precision at the plan's device count; `parts` maps a MEMORY_PARTS key
    to bytes per device and adds up to `total`."""

    strategy: str
    precision: str
    recompute: str
    micro_batch: int
    parts: dict[str, float]
    total: float
    fits: bool
    chosen: bool
    peak_phase: str
    host: float = 0.0


def peak_parts(per_device: MemoryBreakdown) -> dict[str, float]:
    """The bytes that are alive at the peak, by part (see the module docstring)."""
    over = dict(per_device.overheads)
    alive = dict(per_device.at_peak)
    parts = {
        "weights": per_device.weights,
        "gradients": alive.get("gradients", per_device.gradients),
        "optimizer": per_device.optimizer,
        "activations": 0.0,
        "step_buffers": 0.0,
        "runtime": over.get("runtime", 0.0),
        "fragmentation": over.get("fragmentation", 0.0),
    }
    if per_device.peak_phase == "step":
        parts["step_buffers"] = over.get("step_buffers", 0.0) + over.get("update_buffer", 0.0)
    else:
        # A forward or backward pass holds its activations plus a fully sharded step's
        # gathered layers, and the backward pass the gradient bucket awaiting its
        # reduce-scatter (a serving-only breakdown's activations are its KV cache and workspace).
        bucket = over.get("gradient_bucket", 0.0) if per_device.peak_phase != "forward" else 0.0
        parts["activations"] = alive.get("activations", per_device.activations) + over.get("gather_buffers", 0.0) + bucket
    return {k: float(v) for k, v in parts.items()}


def memory_bars(plan: Plan) -> list[MemoryBar]:
    """One bar per row of `plan.memory.options` (the chosen configuration alone when the plan
    has no alternatives, as for prompting)."""
    bars = []
    for option in plan.memory.options:
        bars.append(
            MemoryBar(
                strategy=option.strategy,
                precision=option.precision,
                recompute=option.recompute,
                micro_batch=option.micro_batch,
                parts=peak_parts(option.per_device),
                total=float(option.per_device.total),
                fits=bool(option.fits),
                chosen=bool(option.chosen),
                peak_phase=option.per_device.peak_phase,
                host=float(option.per_device.host),
            )
        )
    if not bars:
        per = plan.memory.per_device
        bars.append(
            MemoryBar(
                strategy=plan.train.strategy,
                precision=plan.train.precision,
                recompute=plan.train.recompute,
                micro_batch=plan.train.micro_batch,
                parts=peak_parts(per),
                total=float(per.total),
                fits=bool(plan.memory.fits),
                chosen=True,
                peak_phase=per.peak_phase,
                host=float(per.host),
            )
        )
    return bars


# ----------------------------------------------------------------------------- IsoFLOP


@attrs.frozen(kw_only=True)
class IsoFlopCurve:
    """Loss against parameters at fixed compute C = 6·N·D. `role`: 'context' (a budget around
    the run's, for scale), 'run' or 'budget'."""

    flops: float
    params: np.ndarray
    loss: np.ndarray
    role: str
    fit_optimum: tuple[float, float]
    """(N, L) minimizing the fit's loss at this compute (Hoffmann et al. 2022, Eq. 4)."""
    rule_optimum: tuple[float, float]
    """(N, L) at 20 tokens per parameter, the rule the planner sizes with."""


@attrs.frozen(kw_only=True)
class IsoFlopPicture:
    curves: tuple[IsoFlopCurve, ...]
    chosen: tuple[float, float]
    """(N, L) of the planned model on its data: N = model.active_params, D = loss_tokens."""
    tokens: float
    """D of the chosen point."""
    data_params: float | None
    """The N the data trains compute-optimally (D / 20), for a run from scratch."""
    budget_params: float | None
    """The compute-optimal N for what the budget buys, where the planner sized for a budget."""
    basis: str
    """'run': the run trains from scratch; 'base': an adaptation, the curve places the base
    model's pretraining."""
    fit: ChinchillaFit = CHINCHILLA


def isoflop_picture(plan: Plan, *, decades: Sequence[float] = (-2, -1, 1, 2), points: int = 121) -> IsoFlopPicture | None:
    """The IsoFLOP curves around the plan's compute, or None when the plan has no D to place
    the model with (an adaptation of a model whose pretraining tokens are unknown)."""
    s = plan.scaling
    n = float(plan.model.active_params or plan.model.params)
    tokens = s.loss_tokens
    if not tokens or not n or not math.isfinite(n):
        return None
    basis = "run" if plan.train.adaptation == "pretrain" else "base"
    center = 6.0 * n * float(tokens)
    budget = None
    if s.optimal_params_for_budget and s.optimal_tokens_for_budget:
        budget = 6.0 * float(s.optimal_params_for_budget) * float(s.optimal_tokens_for_budget)

    def curve(flops: float, role: str) -> IsoFlopCurve:
        n_fit, d_fit = chinchilla_optimal(flops)
        n_rule, d_rule = tokens_per_param_optimal(flops)
        lo = min(float(n_fit), float(n_rule)) / 30.0
        hi = max(float(n_fit), float(n_rule)) * 30.0
        grid = np.geomspace(lo, hi, points)
        loss = chinchilla_loss(grid, flops / (6.0 * grid))
        return IsoFlopCurve(
            flops=float(flops),
            params=grid,
            loss=np.asarray(loss, dtype=float),
            role=role,
            fit_optimum=(float(n_fit), float(chinchilla_loss(n_fit, d_fit))),
            rule_optimum=(float(n_rule), float(chinchilla_loss(n_rule, d_rule))),
        )

    curves = [curve(center * 10.0**k, "context") for k in decades]
    curves.append(curve(center, "run"))
    if budget and not math.isclose(budget, center, rel_tol=0.05):
        curves.append(curve(budget, "budget"))
    curves.sort(key=lambda c: c.flops)
    return IsoFlopPicture(
        curves=tuple(curves),
        chosen=(n, float(chinchilla_loss(n, tokens))),
        tokens=float(tokens),
        data_params=float(tokens) / 20.0 if basis == "run" else None,
        budget_params=float(s.optimal_params_for_budget) if budget else None,
        basis=basis,
    )


# ----------------------------------------------------------------------------- devices


@attrs.frozen(kw_only=True)
class DevicePoint:
    """The plan of one configuration: time in seconds, cost in USD (None without a price)."""

    devices: int
    seconds: float
    usd: float | None
    fits: bool
    strategy: str
    micro_batch: int
    chosen: bool = False
    pareto: bool = False


@attrs.frozen(kw_only=True)
class Layout:
    """A way to spread the model over devices. `apply(spec, plan, devices)` returns the spec
    to plan at that count, or None when the layout cannot use that many devices."""

    name: str
    description: str
    apply: Callable[[Any, Any, int], Any]


@attrs.frozen(kw_only=True)
class LayoutSeries:
    layout: str
    description: str
    points: tuple[DevicePoint, ...]


@attrs.frozen(kw_only=True)
class ScalingPicture:
    series: tuple[LayoutSeries, ...]
    budget_seconds: float | None
    budget_usd: float | None
    chosen: DevicePoint
    has_cost: bool

    @property
    def pareto(self) -> list[tuple[str, DevicePoint]]:
        return [(s.layout, p) for s in self.series for p in s.points if p.pareto]


def fixed_model_spec(spec: Spec, plan: Plan, devices: int) -> Spec:
    """The spec with the plan's model written out (so `size = auto` is not re-sized for another
    budget) and `devices` devices; everything else the planner chooses again."""
    from genaisdk.spec.model import is_auto

    m = plan.model
    model = spec.project.model
    changes: dict[str, Any] = dict(
        layers=m.layers,
        d_model=m.d_model,
        heads=m.heads,
        kv_heads=m.kv_heads,
        head_dim=m.head_dim,
        d_ff=m.d_ff,
        vocab=m.vocab,
        decoder_layers=m.decoder_layers,
    )
    if is_auto(model.size):
        changes["size"] = m.params
    if model.context is None or is_auto(model.context):
        changes["context"] = m.context
    budget = attrs.evolve(spec.project.budget, devices=int(devices))
    project = attrs.evolve(spec.project, model=attrs.evolve(model, **changes), budget=budget)
    return attrs.evolve(spec, project=project)


def _as_planned(spec: Spec, plan: Plan, devices: int) -> Spec:
    return fixed_model_spec(spec, plan, devices)


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="as planned",
        description="the planner picks the layout (tensor, pipeline and data parallelism, where the spec leaves them "
        "auto), strategy, micro-batch and recomputation, the fastest that fits at each count",
        apply=_as_planned,
    ),
)
"""The layouts the scaling panel plans. Another way to spread the model is one more entry
here: its `apply` writes that layout into the spec (`train.tensor`, `train.pipeline`)."""


def device_counts(planned: int, *, below: int = 4, above: int = 3) -> list[int]:
    """Powers of two from planned / 2**below to planned * 2**above, and the planned count."""
    planned = max(1, int(planned))
    base = 2 ** round(math.log2(planned))
    counts = {max(1, base // 2**k) for k in range(below + 1)} | {base * 2**k for k in range(above + 1)}
    counts.add(planned)
    return sorted(counts)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (lower is better; a tie
    in one and a win in the other dominates)."""
    front = []
    for i, (a, b) in enumerate(points):
        dominated = any(
            (c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def scaling_picture(
    spec: Spec,
    plan: Plan,
    *,
    counts: Sequence[int] | None = None,
    layouts: Sequence[Layout] = LAYOUTS,
    planner: Callable[[Any], Any] | None = None,
) -> ScalingPicture | None:
    """Plan the spec at each count for each layout. None when nothing trains (prompting) or
    the plan has no training time."""
    if not plan.time.seconds or plan.train.adaptation == "prompt":
        return None
    if planner is None:
        from genaisdk import plan as planner
    import warnings

    counts = list(counts or device_counts(plan.train.devices))
    series = []
    for layout in layouts:
        points = []
        for n in counts:
            if n == plan.train.devices and layout is layouts[0]:
                p = plan
            else:
                candidate = layout.apply(spec, plan, n)
                if candidate is None:
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        p = planner(candidate)
                except Exception:  # a count the planner refuses is left out of the picture
                    continue
            if not p.time.seconds:
                continue
            points.append(
                DevicePoint(
                    devices=int(p.train.devices),
                    seconds=float(p.time.seconds),
                    usd=None if p.cost.usd is None else float(p.cost.usd),
                    fits=bool(p.memory.fits),
                    strategy=p.train.strategy,
                    micro_batch=int(p.train.micro_batch),
                    chosen=p is plan,
                )
            )
        series.append(LayoutSeries(layout=layout.name, description=layout.description, points=tuple(points)))

    has_cost = plan.cost.usd is not None
    flat = [(i, j, p) for i, s in enumerate(series) for j, p in enumerate(s.points) if p.fits]
    coords = [(p.seconds, p.usd if has_cost and p.usd is not None else 0.0) for _, _, p in flat]
    front = {(flat[k][0], flat[k][1]) for k in pareto_front(coords)}
    series = [
        attrs.evolve(s, points=tuple(attrs.evolve(p, pareto=(i, j) in front) for j, p in enumerate(s.points)))
        for i, s in enumerate(series)
    ]
    chosen = next((p for s in series for p in s.points if p.chosen), None)
    if chosen is None:  # pragma: no cover - the plan itself is always in the first series
        return None
    return ScalingPicture(
        series=tuple(series),
        budget_seconds=plan.budget.time_seconds,
        budget_usd=plan.budget.cost_usd,
        chosen=chosen,
        has_cost=has_cost,
    )


# ----------------------------------------------------------------------------- serving


@attrs.frozen(kw_only=True)
class ServeCurve:
    """Bytes of one replica as `axis` ('context' or 'batch') varies, the other held at the
    serving value."""

    axis: str
    x: np.ndarray
    weights: np.ndarray
    kv_cache: np.ndarray
    other: np.ndarray
    """Prefill workspace plus the runtime context."""

    @property
    def total(self) -> np.ndarray:
        return self.weights + self.kv_cache + self.other


@attrs.frozen(kw_only=True)
class ServePicture:
    precision: str
    context: int
    batch: int
    capacity: float
    curves: tuple[ServeCurve, ...]
    point: tuple[float, float, float, float]
    """(weights, kv_cache, other, total) at the serving context and batch."""


def plan_dimensions(plan: Plan):
    """The plan's model as `genaisdk.dims.Dimensions` (the fields the memory formulas read)."""
    from genaisdk.dims import Dimensions

    m = plan.model
    return Dimensions(
        layers=m.layers,
        d_model=m.d_model,
        heads=m.heads,
        d_ff=m.d_ff,
        vocab=m.vocab,
        context=m.context,
        kv_heads=m.kv_heads,
        head_dim=m.head_dim,
        decoder_layers=m.decoder_layers,
        ffn=m.ffn,
        norm=m.norm,
        positions=m.positions,
        tied_embeddings=m.tied_embeddings,
        biases=m.biases,
    )


def serve_picture(plan: Plan, *, contexts: Sequence[int] | None = None, batches: Sequence[int] | None = None) -> ServePicture:
    """Serving memory against context and batch. Bytes per weight, per cached value and per
    workspace value are read off the plan's own Serve figures (each figure over its element
    count), so the curves pass through the plan's point exactly."""
    inf = plan.inference
    dims = plan_dimensions(plan)
    family = plan.model.family
    params = float(plan.model.params)
    weight_bytes = float(inf.memory.weights) / params if params else 0.0
    # The workspace is s·b·bytes·width + b·vocab·4 (fp32 logits): solve it for bytes.
    chunk = inf.prefill_tokens or None
    fixed = float(prefill_workspace_bytes(dims, context=inf.context, batch=inf.batch, bytes_per_value=0.0, prefill_tokens=chunk))
    per_byte = float(prefill_workspace_bytes(dims, context=inf.context, batch=inf.batch, bytes_per_value=1.0, prefill_tokens=chunk)) - fixed
    activation_bytes = (float(inf.memory.workspace) - fixed) / per_byte if per_byte else 2.0
    elements = float(model_kv_cache_bytes(dims, family=family, context=inf.context, batch=inf.batch, bytes_per_value=1.0))
    kv_bytes = float(inf.memory.kv_cache) / elements if elements else activation_bytes
    runtime = float(inf.memory.runtime)

    def at(context, batch):
        return inference_memory(
            dims,
            params=params,
            family=family,
            weight_bytes=weight_bytes,
            context=np.asarray(context, dtype=float),
            batch=np.asarray(batch, dtype=float),
            kv_bytes=kv_bytes,
            activation_bytes=activation_bytes,
            prefill_tokens=chunk,
            runtime_bytes=runtime,
        )

    if contexts is None:
        hi = max(inf.context * 4, 8192)
        contexts = sorted({2**k for k in range(7, int(math.log2(hi)) + 1)} | {inf.context})
    if batches is None:
        hi = max(inf.batch * 8, 64)
        batches = sorted({2**k for k in range(0, int(math.log2(hi)) + 1)} | {inf.batch})
    curves = []
    for axis, values in (("context", contexts), ("batch", batches)):
        x = np.asarray(values, dtype=float)
        mem = at(x, inf.batch) if axis == "context" else at(inf.context, x)
        shape = x.shape
        curves.append(
            ServeCurve(
                axis=axis,
                x=x,
                weights=np.broadcast_to(np.asarray(mem.weights, dtype=float), shape).copy(),
                kv_cache=np.broadcast_to(np.asarray(mem.kv_cache, dtype=float), shape).copy(),
                other=np.broadcast_to(np.asarray(mem.workspace, dtype=float) + runtime, shape).copy(),
            )
        )
    point = at(inf.context, inf.batch)
    return ServePicture(
        precision=inf.precision,
        context=inf.context,
        batch=inf.batch,
        capacity=float(plan.memory.device_capacity),
        curves=tuple(curves),
        point=(float(point.weights), float(point.kv_cache), float(point.workspace) + runtime, float(point.total)),
    )
