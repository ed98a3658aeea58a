"""Stage 6, the configuration search: strategy, micro-batch, recomputation, device count
and (`context = auto`) the longest context that fits, each `auto` searched over a grid
(`genaisdk.planning.grid`) and the preferred configuration chosen, with its reason."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

from genaisdk.estimate import cost as cost_math
from genaisdk.planning.defaults import MAX_AUTO_CONTEXT, MAX_AUTO_MICRO_BATCH, MAX_DEVICE_DOUBLINGS, MIN_AUTO_CONTEXT
from genaisdk.planning.grid import RECOMPUTE_ORDER, Choice, Grid, GridResult, ModelCase, choose, evaluate, powers_of_two
from genaisdk.planning.notes import Notes
from genaisdk.spec.model import is_auto

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.dims import Dimensions
    from genaisdk.planning.context import PlanContext
    from genaisdk.planning.trainable import Trainable


@attrs.frozen(kw_only=True)
class Fitted:
    """The chosen configuration and the grid it was chosen from."""

    case: ModelCase
    grid: Grid
    result: GridResult
    choice: Choice
    devices_why: str = ""
    """Why the device count was searched from where it was (empty when the spec fixes it)."""


def model_case(ctx: PlanContext, trainable: Trainable, dims: Dimensions, seq: int, *, tokens: float, batch_tokens: float) -> ModelCase:
    """One model at one context, with everything the memory and time estimates need."""
    arch = ctx.resolved.architecture
    count = arch.count_params(dims)
    per_token = float(arch.flops_per_token(dims, seq))
    params, trained = trainable.resident(dims, count)
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
        hardware=ctx.hardware,
        seq=int(seq),
        global_batch_sequences=max(1, int(round(batch_tokens / seq))),
        flash=ctx.flash,
        mfu=ctx.mfu,
        model_flops=per_token * tokens,
        largest_layer=float(count.largest_layer),
    )


def spec_grid(ctx: PlanContext, case: ModelCase, devices: tuple[int, ...]) -> Grid:
    """Each axis: the spec's value where it fixes one, else every candidate."""
    t, r = ctx.project.train, ctx.resolved
    strategies = (r.strategy,) if r.strategy is not None else r.strategies
    if not is_auto(t.micro_batch) and t.micro_batch:
        micro = (int(t.micro_batch),)
    else:
        cap = max(1, min(MAX_AUTO_MICRO_BATCH, math.ceil(case.global_batch_sequences / min(devices))))
        micro = powers_of_two(1, cap)
    recompute = (t.recompute,) if not is_auto(t.recompute) and t.recompute else RECOMPUTE_ORDER
    return Grid(precisions=(ctx.precision,), strategies=strategies, devices=devices, micro_batches=micro, recomputes=recompute)


def device_candidates(ctx: PlanContext, case: ModelCase) -> tuple[tuple[int, ...], str]:
    """The spec's device count, or the count the time budget needs and its doublings."""
    if ctx.devices_fixed is not None:
        return (ctx.devices_fixed,), ""
    b = ctx.project.budget
    if b.time is not None and case.model_flops > 0:
        need = int(cost_math.devices_for_time(case.model_flops, seconds=b.time.value, peak_flops=ctx.peak, mfu=ctx.mfu))
        why = (
            f"the {b.time.value / 86400:.3g}-day time budget needs {need} x {ctx.hardware.key}: "
            f"{case.model_flops:.3g} model FLOPs / ({ctx.peak / 1e12:.0f} TFLOP/s x {ctx.mfu:.0%} MFU x {b.time.value:.3g} s)"
        )
    else:
        need, why = 1, "no time budget: the fewest devices that fit"
    return tuple(need * 2**k for k in range(MAX_DEVICE_DOUBLINGS + 1)), why


def fit_at(ctx: PlanContext, trainable: Trainable, dims: Dimensions, seq: int, *, tokens: float, batch_tokens: float) -> Fitted:
    case = model_case(ctx, trainable, dims, seq, tokens=tokens, batch_tokens=batch_tokens)
    devices, why = device_candidates(ctx, case)
    grid = spec_grid(ctx, case, devices)
    result = evaluate(case, grid)
    return Fitted(case=case, grid=grid, result=result, choice=choose(result), devices_why=why)


def fit(ctx: PlanContext, trainable: Trainable, dims: Dimensions, *, tokens: float, batch_tokens: float, notes: Notes) -> Fitted:
    """The preferred configuration (`grid.preference_keys`), reasons recorded for every
    value the spec left `auto`."""
    if is_auto(ctx.project.model.context):
        fitted = _fit_longest_context(ctx, trainable, dims, tokens=tokens, batch_tokens=batch_tokens, notes=notes)
    else:
        fitted = fit_at(ctx, trainable, dims, ctx.context, tokens=tokens, batch_tokens=batch_tokens)
    _fit_reasons(ctx, fitted, notes)
    return fitted


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


def _fit_reasons(ctx: PlanContext, f: Fitted, notes: Notes) -> None:
    c, g, res = f.choice, f.grid, f.result
    t = ctx.project.train
    cap = res.capacity
    total = float(res.total[c.index])
    if is_auto(t.sharding) or t.sharding is None:
        if c.fits:
            why = f"the cheapest strategy that fits: {total / 1e9:.3g} GB of {cap / 1e9:.3g} GB per device"
            # A cheaper strategy that fits at these devices lost only to full recomputation
            # (`grid.preference_keys` ranks avoiding it above the strategy's cost).
            i, _, k, _, _ = c.index
            cheaper = g.strategies[: g.strategies.index(c.strategy)]
            full_only = [s.key for j, s in enumerate(cheaper) if res.fits[i, j, k].any()]
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
        if c.fits:
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
        notes.reason("train.recompute", c.recompute, why)
    if ctx.devices_fixed is None:
        why = f.devices_why
        need = g.devices[0]
        if c.devices > need:
            why += f"; {c.devices} so that the model fits in memory"
        notes.reason("budget.devices", c.devices, why)
