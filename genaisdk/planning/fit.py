"""Stage 6, the configuration search: strategy, micro-batch, recomputation, the parallel
layout (tensor, pipeline, sequence parallelism, interleaving), device count and
(`context = auto`) the longest context that fits, each `auto` searched over a grid
(`genaisdk.planning.grid`) and the preferred configuration chosen (the fastest that fits),
with its reason."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import numpy as np

from genaisdk.core import codes
from genaisdk.core.numbers import fmt_bytes, fmt_recompute
from genaisdk.diagnostics import SpecError
from genaisdk.estimate import cost as cost_math
from genaisdk.estimate.flops import model_flops_per_token
from genaisdk.estimate.frameworks import framework
from genaisdk.estimate.params import count_params
from genaisdk.estimate.steptime import LoraTiming
from genaisdk.planning.defaults import (
    AUTO_VIRTUAL_STAGES,
    MAX_AUTO_CONTEXT,
    MAX_AUTO_MICRO_BATCH,
    MAX_AUTO_TENSOR,
    MAX_DEVICE_DOUBLINGS,
    MIN_AUTO_CONTEXT,
)
from genaisdk.planning.grid import (
    ONE_DEVICE_LAYOUT,
    RECOMPUTE_ORDER,
    Choice,
    Grid,
    GridResult,
    Layout,
    ModelCase,
    choose,
    evaluate,
    powers_of_two,
    preference_keys,
)
from genaisdk.planning.notes import Notes
from genaisdk.spec.model import AUTO, is_auto

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.dims import Dimensions
    from genaisdk.planning.context import PlanContext
    from genaisdk.planning.trainable import Trainable
    from genaisdk.records import ParamCount

LAYOUT_KEYS = ("tensor", "pipeline", "sequence_parallel", "virtual_stages")
"""The `train` keys of a parallel layout."""


@attrs.frozen(kw_only=True)
class Fitted:
    """The chosen configuration and the grid it was chosen from."""

    case: ModelCase
    grid: Grid
    result: GridResult
    choice: Choice
    devices_why: str = ""
    """Why the device count was searched from where it was (empty when the spec fixes it)."""
    layouts_why: str = ""
    """Why only t = p = 1 was searched (empty when layouts were)."""


def layout_coverage(ctx: PlanContext, trainable: Trainable, dims: Dimensions, count: ParamCount, seq: int) -> str:
    """'' when the parallel-layout and step-time estimators (`genaisdk.estimate.parallel`,
    `steptime`) model this training run, else why not: they know one stack of dense
    transformer blocks, counted from the dimensions, every weight trained."""
    family = ctx.resolved.family
    if family not in ("decoder", "encoder"):
        return "the layout estimators split one stack of layers into pipeline stages; an encoder-decoder's two stacks have no stage assignment there"
    if trainable.lora is not None:
        return (f"{trainable.method} trains adapters on a frozen base, which the step-time model times on one device or data "
                "parallelism; the tensor and pipeline layout estimators model every weight trained")
    if trainable.alignment:
        return f"{trainable.method} keeps several models resident; the layout estimators model one"
    arch = ctx.resolved.architecture
    if abs(float(count_params(dims, family).total) - float(count.total)) > 0.5 or not math.isclose(
        float(arch.flops_per_token(dims, seq)), float(model_flops_per_token(dims, family=family, context=seq).total), rel_tol=1e-9
    ):
        return f"architecture `{arch.key}` counts its parameters or FLOPs its own way; the layout estimators know dense transformer blocks"
    return ""


def model_case(ctx: PlanContext, trainable: Trainable, dims: Dimensions, seq: int, *, tokens: float, batch_tokens: float) -> ModelCase:
    """One model at one context, with everything the memory and time estimates need."""
    arch = ctx.resolved.architecture
    count = arch.count_params(dims)
    per_token = trainable.flops_per_token(dims, float(arch.flops_per_token(dims, seq)), context=seq)
    params, trained = trainable.resident(dims, count)
    layouts = not layout_coverage(ctx, trainable, dims, count, seq)
    lora = None
    if trainable.lora is not None and trainable.trains and not layout_coverage(ctx, attrs.evolve(trainable, lora=None), dims, count, seq):
        # The step-time model times adapters over a frozen base on one device or data
        # parallelism (t = p = 1), the layouts this case searches.
        lora = LoraTiming(rank=trainable.lora.rank, targets=trainable.lora.targets,
                          frozen_weight_bytes=trainable.frozen_weight_bytes if trainable.kbit else None)
    budget = ctx.project.budget
    return ModelCase(
        dims=dims,
        family=ctx.resolved.family,
        architecture=arch,
        count=count,
        params=params,
        trainable=trained,
        frozen_weight_bytes=trainable.frozen_weight_bytes,
        kept_params=trainable.kept(count),
        host_capacity=ctx.host_capacity,
        optimizer=ctx.resolved.optimizer,
        optimizer_state=ctx.project.train.optimizer_state,
        extra_activations=trainable.activation_parts if trainable.lora is not None else None,
        adapters=trainable.lora is not None,
        hardware=ctx.hardware,
        seq=int(seq),
        global_batch_sequences=max(1, int(round(batch_tokens / seq))),
        flash=ctx.flash,
        mfu=ctx.mfu,
        model_flops=per_token * tokens,
        largest_layer=float(count.largest_layer),
        tokens=float(tokens),
        layouts=layouts,
        cluster=ctx.cluster if (layouts or lora is not None) else None,
        lora=lora,
        framework_efficiency=framework(ctx.project.train.framework).efficiency,
        time_limit=budget.time.value if budget.time is not None else None,
    )


def _fixed(value) -> bool:
    return value is not None and not is_auto(value)


def layout_candidates(ctx: PlanContext, case: ModelCase, devices: tuple[int, ...], *, free: bool = False) -> tuple[Layout, ...]:
    """Each layout key: the spec's value where it fixes one, else every candidate: t a power
    of two dividing the heads, up to `MAX_AUTO_TENSOR` and a node's devices; p a divisor of
    the device count (a power of two when the count is searched), up to the layers; sequence
    parallelism off and on (with t > 1); v in
    `AUTO_VIRTUAL_STAGES` (with p > 1). Only t = p = 1 where the estimators do not cover the
    model (`layout_coverage`). `free`: every candidate, whatever the spec fixes (what
    would fit with the settings relaxed)."""
    if not case.layouts:
        return (ONE_DEVICE_LAYOUT,)
    t = ctx.project.train
    if free:
        t = attrs.evolve(t, tensor=AUTO, pipeline=AUTO, sequence_parallel=AUTO, virtual_stages=AUTO)
    most = max(devices)
    per_node = ctx.hardware.devices_per_node
    if _fixed(t.tensor):
        tensors: tuple[int, ...] = (int(t.tensor),)
    else:
        cap = min(MAX_AUTO_TENSOR, per_node) if per_node else MAX_AUTO_TENSOR
        tensors = tuple(x for x in powers_of_two(1, cap) if case.dims.heads % x == 0 and x <= most)
    if _fixed(t.pipeline):
        pipelines: tuple[int, ...] = (int(t.pipeline),)
    elif len(devices) == 1:
        pipelines = tuple(q for q in range(1, min(devices[0], case.dims.layers) + 1) if devices[0] % q == 0)
    else:
        # A searched count: powers of two, which divide the whole-node counts tried.
        pipelines = powers_of_two(1, min(most, case.dims.layers))
        pipelines = tuple(q for q in pipelines if q & (q - 1) == 0)
    sequence = (bool(t.sequence_parallel),) if _fixed(t.sequence_parallel) else (False, True)
    chunks = (int(t.virtual_stages),) if _fixed(t.virtual_stages) else AUTO_VIRTUAL_STAGES
    return tuple(
        Layout(tensor=a, pipeline=b, sequence_parallel=sp, virtual_stages=v)
        for a in tensors
        for b in pipelines
        for sp in sequence
        if a > 1 or not sp
        for v in chunks
        if b > 1 or v == 1
        if a * b <= most
    )


def spec_grid(ctx: PlanContext, case: ModelCase, devices: tuple[int, ...]) -> Grid:
    """Each axis: the spec's value where it fixes one, else every candidate."""
    t, r = ctx.project.train, ctx.resolved
    strategies = (r.strategy,) if r.strategy is not None else r.strategies
    layouts = layout_candidates(ctx, case, devices)
    if not is_auto(t.micro_batch) and t.micro_batch:
        micro = (int(t.micro_batch),)
    else:
        widest = max((x.model_parallel for x in layouts), default=1)
        replicas = max(1, min(devices) // widest)
        cap = max(1, min(MAX_AUTO_MICRO_BATCH, math.ceil(case.global_batch_sequences / replicas)))
        micro = powers_of_two(1, cap)
    recompute = (t.recompute,) if not is_auto(t.recompute) and t.recompute else RECOMPUTE_ORDER
    return Grid(
        precisions=(ctx.precision,), strategies=strategies, devices=devices, micro_batches=micro, recomputes=recompute,
        layouts=layouts or (ONE_DEVICE_LAYOUT,),
    )


def device_candidates(ctx: PlanContext, case: ModelCase) -> tuple[tuple[int, ...], str]:
    """The spec's device count, or the count the time budget needs at the plan's MFU and
    its doublings (rounded up to whole nodes where layouts are searched, so that a tensor-
    parallel group fits a node)."""
    if ctx.devices_fixed is not None:
        return (ctx.devices_fixed,), ""
    b = ctx.project.budget
    if b.time is not None and case.model_flops > 0:
        need = int(cost_math.devices_for_time(case.model_flops, seconds=b.time.value, peak_flops=ctx.peak, mfu=ctx.mfu))
        why = (
            f"the {b.time.value / 86400:.3g}-day time budget needs {need} x {ctx.hardware.key}: "
            f"{case.model_flops:.3g} model FLOPs / ({ctx.peak / 1e12:.0f} TFLOP/s x {ctx.mfu:.0%} MFU x {b.time.value:.3g} s)"
        )
        per_node = ctx.hardware.devices_per_node
        if case.layouts and per_node and need > per_node:
            need = per_node * math.ceil(need / per_node)
    else:
        need, why = 1, "no time budget: the fewest devices that fit"
    return tuple(need * 2**k for k in range(MAX_DEVICE_DOUBLINGS + 1)), why


def _meets(result: GridResult, choice: Choice) -> bool:
    limit = result.time_limit
    return choice.fits and (limit is None or float(result.seconds[choice.index]) <= limit * (1 + 1e-9))


def _fewest_devices(ctx: PlanContext, case: ModelCase, grid: Grid, choice: Choice) -> int | None:
    """With the step-time model and a time budget: the fewest devices (whole nodes) that fit
    and meet it, searched by bisection between the count no MFU could beat (the peak
    itself) and the count the search chose; None when that is already the fewest."""
    limit = case.time_limit
    step = ctx.hardware.devices_per_node or 1
    floor = max(1, math.ceil(case.model_flops / (ctx.peak * limit)))
    lo = max(1, math.ceil(floor / step)) if choice.devices > step else floor
    hi = choice.devices // step if choice.devices > step else choice.devices
    unit = step if choice.devices > step else 1
    best = None
    while lo < hi:
        mid = (lo + hi) // 2
        devices = (mid * unit,)
        probe = evaluate(case, spec_grid(ctx, case, devices))
        if _meets(probe, choose(probe)):
            hi, best = mid, mid * unit
        else:
            lo = mid + 1
    return best


def fit_at(ctx: PlanContext, trainable: Trainable, dims: Dimensions, seq: int, *, tokens: float, batch_tokens: float) -> Fitted:
    case = model_case(ctx, trainable, dims, seq, tokens=tokens, batch_tokens=batch_tokens)
    devices, why = device_candidates(ctx, case)
    grid = spec_grid(ctx, case, devices)
    result = evaluate(case, grid)
    choice = choose(result)
    if ctx.devices_fixed is None and case.cluster is not None and case.time_limit and _meets(result, choice):
        fewer = _fewest_devices(ctx, case, grid, choice)
        if fewer is not None and fewer < choice.devices:
            devices = tuple(sorted(set(devices) | {fewer}))
            grid = spec_grid(ctx, case, devices)
            result = evaluate(case, grid)
            choice = choose(result)
            why += f"; by the step-time model {fewer} already meet it"
    return Fitted(
        case=case, grid=grid, result=result, choice=choice, devices_why=why,
        layouts_why=layout_coverage(ctx, trainable, case.dims, case.count, seq),
    )


def fit(ctx: PlanContext, trainable: Trainable, dims: Dimensions, *, tokens: float, batch_tokens: float, notes: Notes) -> Fitted:
    """The preferred configuration (`grid.preference_keys`), reasons recorded for every
    value the spec left `auto`."""
    _check_fixed_layout(ctx, trainable, dims, notes)
    if is_auto(ctx.project.model.context):
        fitted = _fit_longest_context(ctx, trainable, dims, tokens=tokens, batch_tokens=batch_tokens, notes=notes)
    else:
        fitted = fit_at(ctx, trainable, dims, ctx.context, tokens=tokens, batch_tokens=batch_tokens)
    if not fitted.result.valid.any():
        _no_valid_layout(ctx, fitted, notes)
    if fitted.case.layouts and fitted.case.cluster is None and ctx.cluster_missing and not ctx.mfu_given:
        notes.diag(
            codes.NO_STEP_TIME_MODEL,
            f"time from the default {ctx.mfu:.0%} MFU: the step-time model needs {', '.join(ctx.cluster_missing)} of "
            f"{ctx.hardware.key}, which its hardware record leaves unset",
            "budget.hardware",
            hint="state the MFU with train.mfu, or use a hardware record that has these figures (`genai catalog hardware`)",
        )
    _fit_reasons(ctx, fitted, notes)
    return fitted


def _check_fixed_layout(ctx: PlanContext, trainable: Trainable, dims: Dimensions, notes: Notes) -> None:
    """A layout the spec fixes that the estimators cannot model, or that cannot split this
    model at all, is an error at its line (GP210)."""
    t = ctx.project.train
    fixed = {k: getattr(t, k) for k in LAYOUT_KEYS if _fixed(getattr(t, k))}
    parallel = {k: v for k, v in fixed.items() if (v is True) or (not isinstance(v, bool) and int(v) > 1)}
    problems = []
    if parallel:
        count = ctx.resolved.architecture.count_params(dims)
        why = layout_coverage(ctx, trainable, dims, count, ctx.context)
        if why:
            key = next(iter(parallel))
            problems.append((key, f"train.{key} = {_word(parallel[key])}: {why}", f"remove it (or set it to {'false' if key == 'sequence_parallel' else 1})"))
    tensor = int(fixed.get("tensor", 1))
    if "tensor" in fixed and (dims.heads % tensor or dims.d_ff % tensor):
        problems.append(("tensor", f"train.tensor = {tensor} does not divide the {dims.heads} heads and the FFN width {dims.d_ff}",
                         "a divisor of both, or auto"))
    if fixed.get("sequence_parallel") is True and "tensor" in fixed and tensor == 1:
        problems.append(("sequence_parallel", "sequence_parallel = true splits activations over the tensor-parallel group: it needs tensor > 1", "tensor = 2 or more, or auto"))
    pipeline, chunks = int(fixed.get("pipeline", 1)), int(fixed.get("virtual_stages", 1))
    if "pipeline" in fixed and pipeline * chunks > dims.layers:
        problems.append(("pipeline", f"train.pipeline = {pipeline} x {chunks} chunks per stage is more than the model's {dims.layers} layers", f"at most {dims.layers}"))
    if chunks > 1 and "pipeline" in fixed and pipeline == 1:
        problems.append(("virtual_stages", "virtual_stages > 1 interleaves chunks of layers between pipeline stages: it needs pipeline > 1", "pipeline = 2 or more, or auto"))
    devices = ctx.devices_fixed
    if devices is not None and devices % (tensor * pipeline):
        key = "tensor" if "tensor" in fixed else "pipeline"
        problems.append((key, f"tensor x pipeline = {tensor * pipeline} does not divide the {devices} devices", "a divisor of the device count, or auto"))
    strategy = ctx.resolved.strategy
    if strategy is not None and "pipeline" in fixed and pipeline > 1 and (strategy.shards_gradients or strategy.shards_weights):
        problems.append(("pipeline", f"train.pipeline = {pipeline} with `{strategy.key}`: a pipeline accumulates gradients over its micro-batches, "
                         "which ZeRO-2/3 partition; it runs with ddp or zero1", "sharding = zero1, or pipeline = 1"))
    for key, message, hint in problems:
        notes.diag(codes.LAYOUT_CANNOT_RUN, message, f"train.{key}", hint=hint)
    if problems:
        raise SpecError(notes.diagnostics, ctx.spec.sources)


def _word(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _no_valid_layout(ctx: PlanContext, fitted: Fitted, notes: Notes) -> None:
    """Nothing in the grid can run (the spec's fixed layout, micro-batch and devices
    together, e.g. an interleaved schedule whose micro-batches are not a multiple of p)."""
    t = ctx.project.train
    if _fixed(t.micro_batch):
        # Every layout's d·b must fit in the global batch: say so at the micro-batch when it
        # alone is what no layout can satisfy.
        b, sequences = int(t.micro_batch), fitted.case.global_batch_sequences
        replicas = min(n // layout.model_parallel for n in fitted.grid.devices for layout in fitted.grid.layouts
                       if n % layout.model_parallel == 0) if fitted.grid.layouts else 1
        if replicas * b > sequences:
            notes.diag(
                codes.LAYOUT_CANNOT_RUN,
                f"train.micro_batch = {b}: {replicas} data-parallel {'replica' if replicas == 1 else 'replicas'} (the fewest any "
                f"layout leaves) need {replicas * b} sequences per step, more than the global batch of {sequences} "
                f"(train.batch / context {fitted.case.seq})",
                "train.micro_batch",
                hint=f"at most {max(1, sequences // replicas)}, or auto",
            )
            raise SpecError(notes.diagnostics, ctx.spec.sources)
    fixed = [f"train.{k}" for k in LAYOUT_KEYS + ("micro_batch",) if _fixed(getattr(t, k))]
    notes.diag(
        codes.LAYOUT_CANNOT_RUN,
        f"no configuration can run with the spec's {', '.join(fixed) or 'settings'} on {fitted.grid.devices[0]} x {ctx.hardware.key}",
        fixed[0] if fixed else "budget.hardware",
        hint="an interleaved schedule needs its micro-batches per step to be a multiple of pipeline; set these to auto",
    )
    raise SpecError(notes.diagnostics, ctx.spec.sources)


def _fit_longest_context(ctx: PlanContext, trainable: Trainable, dims: Dimensions, *, tokens: float, batch_tokens: float, notes: Notes) -> Fitted:
    cap = MAX_AUTO_CONTEXT
    if dims.positions == "learned":
        cap = min(cap, dims.position_table or dims.context)
    best = None
    for seq in reversed(powers_of_two(MIN_AUTO_CONTEXT, cap)):
        fitted = fit_at(ctx, trainable, dims.evolve(context=seq), seq, tokens=tokens, batch_tokens=batch_tokens)
        best = best or fitted
        if fitted.choice.fits:
            best = fitted
            break
    assert best is not None
    notes.reason(
        "model.context",
        best.case.seq,
        f"the longest context up to {cap} that fits with micro-batch {best.choice.micro_batch}"
        if best.choice.fits
        else f"no context from {MIN_AUTO_CONTEXT} up fits; planning the shortest",
    )
    return best


_OUTRANKED = ("offloads to host memory", "misses the time budget", "needs more devices", "trains twice the spec's batch or more")
"""Why a fitting configuration lost on a key above the time (`grid.preference_keys` 2-5)."""


def alternatives(result: GridResult, choice: Choice, axis: int) -> list[tuple[int, float | None, float, str]]:
    """For each value of `axis` (index into the grid's axes), at the chosen precision and
    devices: (value index, seconds of its fastest configuration that fits and ties with the
    choice on every key ranked above the time, or None; the least memory any of its valid
    configurations needs; why its fitting configurations ranked lower, '' if they did not)."""
    i, k = choice.index[0], choice.index[2]
    before, _, _ = preference_keys(result)
    keys = np.stack([np.asarray(key[i, :, k], dtype=np.int64) for key in before[1:]])  # offload, over, devices, inflated
    mine = keys[(slice(None),) + tuple(choice.index[a] for a in (1, 3, 4, 5))]
    fits = result.fits[i, :, k]
    ties = fits & np.all(keys == mine[:, None, None, None, None], axis=0)
    seconds = np.where(ties, result.seconds[i, :, k], np.inf)
    memory = np.where(result.valid[i, :, k], result.total[i, :, k], np.inf)
    # After fixing precision and devices the axes are (strategy, micro, recompute, layout).
    local = {1: 0, 3: 1, 4: 2, 5: 3}[axis]
    others = tuple(a for a in range(4) if a != local)
    best = np.min(seconds, axis=others)
    least = np.min(memory, axis=others)
    rows = []
    for j in range(len(best)):
        why = ""
        if not np.isfinite(best[j]):
            fitting = np.take(fits, j, axis=local)
            if fitting.any():
                worse = np.take(keys, j, axis=local + 1)[:, fitting]
                # Its best fitting configuration, lexicographically, and the first key it loses on.
                top = worse[:, np.lexsort(worse[::-1])[0]]
                why = next((_OUTRANKED[n] for n in range(len(mine)) if top[n] > mine[n]), "")
        rows.append((j, float(best[j]) if np.isfinite(best[j]) else None, float(least[j]), why))
    return rows


def compare_text(result: GridResult, choice: Choice, axis: int, label, limit: int = 4, skip=None) -> str:
    """'zero1 2% slower; fsdp 9% slower; ddp does not fit (at best 95 GB)' for the other
    values of one axis, fastest first (with the step-time model), each at its own best;
    `skip(j)` leaves a value out."""
    here = float(result.seconds[choice.index])
    rows = [r for r in alternatives(result, choice, axis) if r[0] != choice.index[axis] and not (skip and skip(r[0]))]
    fitting = sorted((r for r in rows if r[1] is not None), key=lambda r: r[1])
    outranked = [r for r in rows if r[1] is None and r[3]]
    missing = sorted((r for r in rows if r[1] is None and not r[3] and math.isfinite(r[2])), key=lambda r: r[2])
    parts = []
    for j, seconds, _, _ in fitting[:limit]:
        change = seconds / here - 1.0 if here else 0.0
        parts.append(f"{label(j)} {abs(change):.0%} {'slower' if change >= 0 else 'faster'}" if abs(change) >= 0.005 else f"{label(j)} as fast")
    for j, _, _, why in outranked[:1]:
        parts.append(f"{label(j)} fits but {why}")
    for j, _, least, _ in missing[: max(1, limit - len(parts))]:
        parts.append(f"{label(j)} does not fit (at best {fmt_bytes(least)})")
    return "; ".join(parts)


def _fit_reasons(ctx: PlanContext, f: Fitted, notes: Notes) -> None:
    c, g, res = f.choice, f.grid, f.result
    t = ctx.project.train
    cap = res.capacity
    total = float(res.total[c.index])
    timed = f.case.cluster is not None
    if timed and c.fits:
        fastest = (f"the fastest configuration that fits: {res.step_seconds[c.index]:.3g} s per step"  # type: ignore[index]
                   f" ({float(res.mfu[c.index]):.0%} MFU), {total / 1e9:.3g} GB of {cap / 1e9:.3g} GB per device")
    else:
        fastest = ""
    if is_auto(t.sharding) or t.sharding is None:
        if c.fits and timed:
            offload = c.strategy.offload_optimizer or c.strategy.offload_weights
            others = compare_text(
                res, c, 1, lambda j: g.strategies[j].key,
                # Offload ranks last (host transfers are not in its time): not worth naming.
                skip=None if offload else (lambda j: g.strategies[j].offload_optimizer or g.strategies[j].offload_weights),
            )
            why = fastest + (f" ({others})" if others else "")
        elif c.fits:
            why = f"the cheapest strategy that fits: {total / 1e9:.3g} GB of {cap / 1e9:.3g} GB per device"
            # A cheaper strategy that fits at these devices lost only to full recomputation
            # (`grid.preference_keys` ranks avoiding it above the strategy's cost).
            i, k, li = c.index[0], c.index[2], c.index[5]
            cheaper = g.strategies[: g.strategies.index(c.strategy)]
            full_only = [s.key for j, s in enumerate(cheaper) if res.fits[i, j, k, :, :, li].any()]
            no_fit = [s.key for s in cheaper if s.key not in full_only]
            parts = ([f"{', '.join(no_fit)} would not fit"] if no_fit else []) + (
                [f"{', '.join(full_only)} would fit only with full recomputation"] if full_only else []
            )
            if parts:
                why += f" ({'; '.join(parts)})"
        else:
            why = "nothing fits; the configuration that comes closest"
        notes.reason("train.sharding", c.strategy.key, why)
    if is_auto(t.micro_batch) or not t.micro_batch:
        biggest = max(g.micro_batches)
        if c.fits and timed:
            others = compare_text(res, c, 3, lambda j: f"micro-batch {g.micro_batches[j]}", limit=2)
            noun = "sequence" if c.micro_batch == 1 else "sequences"
            why = f"the fastest that fits ({c.micro_batch} {noun} of {f.case.seq} tokens per device)" + (f"; {others}" if others else "")
        elif c.fits:
            why = f"the largest micro-batch that fits ({c.micro_batch} sequences of {f.case.seq} tokens per device)"
            if c.micro_batch == biggest:
                why = f"one device's whole share of the global batch ({f.case.global_batch_sequences} sequences / {c.devices} devices), and it fits"
        else:
            why = "nothing fits; the smallest micro-batch"
        notes.reason("train.micro_batch", c.micro_batch, why)
    if is_auto(t.recompute) or not t.recompute:
        why = {
            "none": "no recomputation needed: the activations fit",
            "selective": "selective recomputation of the attention core (a few percent more compute, Korthikanti et al. 2022) makes it fit",
            "full": "only full recomputation (one more forward pass, about a third more compute) makes it fit",
        }.get(c.recompute, "")
        if c.fits and timed:
            others = compare_text(res, c, 4, lambda j: g.recomputes[j], limit=2)
            why = f"{fmt_recompute(c.recompute)} is the fastest that fits" + (f" ({others})" if others else "")
        notes.reason("train.recompute", c.recompute, why)
    _layout_reasons(ctx, f, notes)
    if ctx.devices_fixed is None:
        why = f.devices_why
        need = g.devices[0]
        if c.devices > need:
            why += f"; {c.devices} so that the model fits in memory" + (" and meets the time budget" if timed and f.case.time_limit else "")
        notes.reason("budget.devices", c.devices, why)


def _layout_reasons(ctx: PlanContext, f: Fitted, notes: Notes) -> None:
    """Why each layout key the spec left `auto` has its value."""
    c, g, res = f.choice, f.grid, f.result
    t = ctx.project.train
    auto = [k for k in LAYOUT_KEYS if not _fixed(getattr(t, k))]
    if not auto:
        return
    lay = c.layout
    values = {"tensor": lay.tensor, "pipeline": lay.pipeline, "sequence_parallel": lay.sequence_parallel, "virtual_stages": lay.virtual_stages}
    if f.layouts_why:
        for key in auto:
            notes.reason(f"train.{key}", values[key], f"no model parallelism: {f.layouts_why}")
        return
    if len(g.layouts) == 1:
        for key in auto:
            notes.reason(f"train.{key}", values[key], f"the only layout on {c.devices} device(s)")
        return
    layout = lay.describe(c.data_parallel)
    if c.fits and f.case.cluster is not None:
        others = compare_text(res, c, 5, lambda j: g.layouts[j].describe(), limit=3)
        head = f"{layout} is the fastest layout that fits ({res.step_seconds[c.index]:.3g} s per step)"  # type: ignore[index]
        why = head + (f"; {others}" if others else "")
    elif c.fits:
        why = f"{layout}: the least model parallelism that fits (no step-time model to rank layouts by speed)"
    else:
        stages = f"first stage {fmt_bytes(float(res.first_stage[c.index]))}, last {fmt_bytes(float(res.last_stage[c.index]))}"
        why = f"nothing fits; {layout} needs the least memory ({stages} of {fmt_bytes(res.capacity)})"
    # The whole comparison once, on the first key left auto; the others point to it.
    notes.reason(f"train.{auto[0]}", values[auto[0]], why)
    for key in auto[1:]:
        notes.reason(f"train.{key}", values[key], f"{layout}: the layout chosen for train.{auto[0]}")
