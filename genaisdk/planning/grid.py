"""Vectorized search over training configurations.

One model (`ModelCase`) is evaluated over a grid of precisions x strategies x device counts
x micro-batches x recomputation levels in a handful of numpy calls: activation bytes from the
architecture record, per-device memory from `genaisdk.estimate.memory.training_memory`, time
from `genaisdk.estimate.cost.training_seconds`. Nothing here has a formula of its own: the
grid only broadcasts the estimators' arguments, so a configuration picked from the grid has
exactly the numbers the plan then reports for it.

`choose` picks the configuration the planner fills `auto` with (`preference_keys` says in
which order); `genaisdk.planning.sweep` evaluates several model sizes for `genai plan
--sweep` and keeps the Pareto front (`pareto_mask`). This module imports only the
estimators, the records and the dimensions: it is a leaf of the planner.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate import activations as act
from genaisdk.estimate.memory import optimizer_state_bytes, optimizer_state_dtype, training_memory, update_buffer_bytes
from genaisdk.records import Architecture, Hardware, Optimizer, ParamCount, Precision, Strategy

RECOMPUTE_ORDER = ("none", "selective", "full")
"""Cheapest first: selective recomputation repeats only the attention core (a few percent of
the step), full recomputation one whole forward pass (about a third more work; Korthikanti
et al. 2022, Table 4)."""

STRATEGY_ORDER = ("ddp", "zero1", "zero2", "fsdp", "zero1-offload", "zero2-offload", "fsdp-offload")
"""Cheapest first. DDP, ZeRO-1 and ZeRO-2 move the same 2Ψ per step; ZeRO-3/FSDP 3Ψ
(Rajbhandari et al. 2020, Sec. 7); offload adds host-device traffic over PCIe every step
(Ren et al. 2021, Sec. 4). A strategy a plugin adds is ranked by its flags after these."""

PHASES = ("forward", "backward", "step")
"""The transient phases of a step (`genaisdk.estimate.memory.TrainingMemory.phases`)."""


def strategy_rank(strategy: Strategy) -> tuple[int, int, int, str]:
    """Order strategies by cost: offload last, then weight sharding (more traffic), then
    the built-in order, then name."""
    offload = int(strategy.offload_optimizer or strategy.offload_weights)
    try:
        builtin = STRATEGY_ORDER.index(strategy.key)
    except ValueError:
        builtin = len(STRATEGY_ORDER)
    return (offload, int(strategy.shards_weights), builtin, strategy.key)


@attrs.frozen(kw_only=True)
class ModelCase:
    """One model to train, with everything the memory and time estimates need.

    `params` is every parameter resident on the devices (RLHF: all four models); `trainable`
    those with gradients and optimizer state; `frozen_weight_bytes` the bytes per frozen
    parameter (QLoRA's 4-bit base; None: the training precision's) and `kept_params` the
    frozen ones a k-bit base keeps at the working precision. `largest_layer` is the unit a
    fully sharded step gathers. `model_flops` are the run's training model FLOPs.
    `optimizer_state` is the spec's optimizer-state dtype (None: each precision's default).
    `extra_activations(dims, seq=, micro_batch=, recompute=, bytes_per_value=)` gives the
    activation parts adapters add (`Trainable.activation_parts`)."""

    dims: Dimensions
    family: str
    architecture: Architecture
    count: ParamCount
    params: float
    trainable: float
    frozen_weight_bytes: float | None
    optimizer: Optimizer
    hardware: Hardware
    seq: int
    global_batch_sequences: int
    flash: bool
    mfu: float
    model_flops: float
    largest_layer: float
    runtime_bytes: float | None = None
    kept_params: float = 0.0
    host_capacity: float | None = None
    """Host memory per device for what offload moves there; None: not known (unchecked)."""
    optimizer_state: str | None = None
    extra_activations: Callable[..., Mapping[str, Any]] | None = None


@attrs.frozen(kw_only=True)
class Grid:
    """The candidate values of each axis."""

    precisions: tuple[Precision, ...] = attrs.field(converter=tuple)
    strategies: tuple[Strategy, ...] = attrs.field(converter=tuple)
    devices: tuple[int, ...] = attrs.field(converter=tuple)
    micro_batches: tuple[int, ...] = attrs.field(converter=tuple)
    recomputes: tuple[str, ...] = attrs.field(converter=tuple)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.precisions), len(self.strategies), len(self.devices), len(self.micro_batches), len(self.recomputes))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _axis(values, axis: int, ndim: int = 5) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values).reshape(shape)


@attrs.frozen(kw_only=True)
class GridResult:
    """Per-configuration arrays of shape `grid.shape` (axes: precision, strategy, devices, micro-batch, recompute)."""

    grid: Grid
    weights: np.ndarray
    gradients: np.ndarray
    optimizer: np.ndarray
    activations: np.ndarray
    overheads: dict[str, np.ndarray]
    total: np.ndarray
    host: np.ndarray
    peak_phase: np.ndarray
    """Index into PHASES of the phase that sets the peak."""
    at_peak: dict[str, np.ndarray]
    """'gradients' and 'activations' alive in that phase (`TrainingMemory.at_peak`)."""
    capacity: float
    fits: np.ndarray
    valid: np.ndarray
    """The configuration is meaningful: the precision trains and the hardware runs it, and the
    micro-batch is no larger than one device's share of the global batch."""
    seconds: np.ndarray

    def index(self, precision: str, strategy: str, devices: int, micro_batch: int, recompute: str) -> tuple[int, ...]:
        g = self.grid
        return (
            [p.key for p in g.precisions].index(precision),
            [s.key for s in g.strategies].index(strategy),
            list(g.devices).index(devices),
            list(g.micro_batches).index(micro_batch),
            list(g.recomputes).index(recompute),
        )


def activation_parts(case: ModelCase, *, micro_batch, recompute: str, bytes_per_value) -> dict[str, Any]:
    """The architecture's activation bytes of one micro-batch, by part (Korthikanti et al.
    2022 accounting; see `genaisdk.estimate.activations`), with what adapters add."""
    parts = dict(
        case.architecture.activation_bytes(
            case.dims,
            seq=case.seq,
            micro_batch=micro_batch,
            recompute=recompute,
            flash=case.flash,
            bytes_per_value=bytes_per_value,
        )
    )
    if case.extra_activations is not None:
        parts.update(
            case.extra_activations(case.dims, seq=case.seq, micro_batch=micro_batch, recompute=recompute, bytes_per_value=bytes_per_value)
        )
    return parts


def memory_for(
    case: ModelCase,
    *,
    precision_arrays: dict[str, np.ndarray],
    strategy_arrays: dict[str, np.ndarray],
    dp,
    micro_batch,
    recompute: str,
):
    """`training_memory` for one recomputation level, every other argument broadcast."""
    parts = activation_parts(case, micro_batch=micro_batch, recompute=recompute, bytes_per_value=precision_arrays["activation_bytes"])
    extra = {} if case.runtime_bytes is None else {"runtime_bytes": case.runtime_bytes}
    return training_memory(
        params=case.params,
        weight_bytes=precision_arrays["weight_bytes"],
        gradient_bytes=precision_arrays["gradient_bytes"],
        optimizer_bytes=precision_arrays["optimizer_bytes"],
        update_bytes=precision_arrays["update_bytes"],
        master_bytes=precision_arrays["master_bytes"],
        trainable_params=case.trainable,
        frozen_weight_bytes=case.frozen_weight_bytes,
        kept_params=case.kept_params,
        largest_layer=case.largest_layer,
        dp=dp,
        shards_optimizer=strategy_arrays["shards_optimizer"],
        shards_gradients=strategy_arrays["shards_gradients"],
        shards_weights=strategy_arrays["shards_weights"],
        offload_optimizer=strategy_arrays["offload_optimizer"],
        offload_weights=strategy_arrays["offload_weights"],
        stored_activations=act.stored_bytes(parts),
        loss_buffers=act.loss_bytes(parts),
        backward_buffers=act.backward_bytes(parts),
        # Gradients stay through later forward passes only when micro-batches accumulate.
        accumulates=np.ceil(case.global_batch_sequences / (np.asarray(micro_batch, dtype=float) * np.asarray(dp, dtype=float))) > 1,
        **extra,
    ), parts


def precision_arrays(
    precisions: Sequence[Precision],
    hardware: Hardware,
    axis: int = 0,
    ndim: int = 5,
    *,
    optimizer: Optimizer | None = None,
    optimizer_state: str | None = None,
) -> dict[str, np.ndarray]:
    """Per precision: bytes per element, the peak FLOP/s (`Hardware.peak_for`: the nearest
    format the hardware quotes stands in for one it does not), and, given the optimizer,
    its state and update-buffer bytes in the dtype each precision keeps them in.

    `supported` marks the precisions the plan answers on this hardware. Memory never
    depends on the arithmetic, so every precision is answered; where no quoted format
    stands in (a device described without throughput) the peak is NaN and the time is
    unknown (GP406), not the precision refused."""
    peak = [hardware.peak_for(p.compute_dtype)[0] or math.nan for p in precisions]
    dtypes = [
        optimizer_state_dtype(optimizer.state_dtype, p.optimizer_state_dtype, optimizer_state) if optimizer is not None else "fp32"
        for p in precisions
    ]
    state = [float(optimizer_state_bytes(optimizer.state_bytes, optimizer.state_dtype, d)) if optimizer is not None else 0.0 for d in dtypes]
    update = [float(update_buffer_bytes(optimizer.update_buffers, d)) if optimizer is not None else 0.0 for d in dtypes]
    return {
        "supported": _axis([True] * len(precisions), axis, ndim),
        "weight_bytes": _axis([float(p.weight_bytes) for p in precisions], axis, ndim),
        "gradient_bytes": _axis([float(p.gradient_bytes) for p in precisions], axis, ndim),
        "master_bytes": _axis([float(p.master_bytes) for p in precisions], axis, ndim),
        "activation_bytes": _axis([float(p.activation_bytes) for p in precisions], axis, ndim),
        "optimizer_bytes": _axis(state, axis, ndim),
        "update_bytes": _axis(update, axis, ndim),
        "peak": _axis(np.asarray(peak, dtype=float), axis, ndim),
        "trainable": _axis([bool(p.trainable) for p in precisions], axis, ndim),
    }


def strategy_arrays(strategies: Sequence[Strategy], axis: int = 1, ndim: int = 5) -> dict[str, np.ndarray]:
    return {
        flag: _axis([bool(getattr(s, flag)) for s in strategies], axis, ndim)
        for flag in ("shards_optimizer", "shards_gradients", "shards_weights", "offload_optimizer", "offload_weights")
    }


def evaluate(case: ModelCase, grid: Grid) -> GridResult:
    """Memory per device, fit and wall-clock time of every configuration of `grid`."""
    prec = precision_arrays(grid.precisions, case.hardware, optimizer=case.optimizer, optimizer_state=case.optimizer_state)
    strat = strategy_arrays(grid.strategies)
    dp = _axis(np.asarray(grid.devices, dtype=float), 2)
    mb = _axis(np.asarray(grid.micro_batches, dtype=float), 3)

    per_r = [
        memory_for(case, precision_arrays=prec, strategy_arrays=strat, dp=dp, micro_batch=mb, recompute=r)[0]
        for r in grid.recomputes
    ]
    shape = grid.shape

    def stack(get) -> np.ndarray:
        return np.concatenate([np.broadcast_to(get(m), shape[:4] + (1,)) for m in per_r], axis=-1)

    total = stack(lambda m: m.total)
    host = stack(lambda m: m.host)
    capacity = float(case.hardware.memory_bytes)
    # What offload moves to the host must fit there too, where the host's memory is known.
    host_ok = host <= case.host_capacity if case.host_capacity is not None else np.ones(shape, dtype=bool)
    per_device_batch = np.maximum(1, np.ceil(case.global_batch_sequences / dp))
    valid = np.broadcast_to(prec["trainable"] & prec["supported"] & (mb <= per_device_batch), shape)
    seconds = case.model_flops / (dp * np.where(np.isfinite(prec["peak"]), prec["peak"], np.inf) * case.mfu)
    seconds = np.broadcast_to(np.where(prec["supported"] & ~np.isfinite(prec["peak"]), np.nan, seconds), shape)
    return GridResult(
        grid=grid,
        weights=stack(lambda m: m.weights),
        gradients=stack(lambda m: m.gradients),
        optimizer=stack(lambda m: m.optimizer),
        activations=stack(lambda m: m.activations),
        overheads={k: stack(lambda m, k=k: m.overheads[k]) for k in per_r[0].overheads},
        total=total,
        host=host,
        peak_phase=stack(_peak_phase),
        at_peak={k: stack(lambda m, k=k: m.at_peak[k]) for k in per_r[0].at_peak},
        capacity=capacity,
        fits=(total <= capacity) & host_ok & valid,
        valid=valid,
        seconds=seconds,
    )


def _peak_phase(memory) -> np.ndarray:
    """Index into PHASES of the phase that sets the peak (`TrainingMemory.worst_phase`)."""
    names = np.asarray(memory.worst_phase)
    index = np.zeros(names.shape, dtype=np.int8)
    for i, phase in enumerate(PHASES):
        index[names == phase] = i
    return index


@attrs.frozen(kw_only=True)
class Choice:
    """A configuration picked from a grid, with its index into the result arrays."""

    precision: Precision
    strategy: Strategy
    devices: int
    micro_batch: int
    recompute: str
    index: tuple[int, ...]
    fits: bool


def preference_keys(result: GridResult) -> list[np.ndarray]:
    """Sort keys, most significant first, each broadcast to the grid's shape:

    1. fits (a configuration that fits beats one that does not);
    2. no offload (host traffic every step is the slowest way to fit);
    3. fewer devices (when the count is searched: the time budget set the floor, more
       devices only to make the model fit);
    4. no full recomputation (a third more compute; Korthikanti et al. 2022);
    5. the strategy's cost rank (`strategy_rank`: ddp, zero1, zero2, fsdp);
    6. the recomputation level (none, then selective);
    7. the largest micro-batch (better device utilization, fewer accumulation steps);
    8. the precision order given (the spec's or the planner's first choice).
    """
    g = result.grid
    shape = g.shape
    by_cost = sorted(range(len(g.strategies)), key=lambda i: strategy_rank(g.strategies[i]))
    strat_rank = np.empty(len(g.strategies), dtype=np.int64)
    strat_rank[by_cost] = np.arange(len(g.strategies))
    offload = np.array([s.offload_optimizer or s.offload_weights for s in g.strategies])
    rec_rank = np.array([RECOMPUTE_ORDER.index(r) if r in RECOMPUTE_ORDER else len(RECOMPUTE_ORDER) for r in g.recomputes])
    device_rank = np.argsort(np.argsort(np.asarray(g.devices)))
    micro_rank = np.argsort(np.argsort(-np.asarray(g.micro_batches)))
    return [
        np.broadcast_to(~result.fits, shape),
        np.broadcast_to(_axis(offload, 1), shape),
        np.broadcast_to(_axis(device_rank, 2), shape),
        np.broadcast_to(_axis(rec_rank >= 2, 4), shape),
        np.broadcast_to(_axis(strat_rank, 1), shape),
        np.broadcast_to(_axis(rec_rank, 4), shape),
        np.broadcast_to(_axis(micro_rank, 3), shape),
        np.broadcast_to(_axis(np.arange(len(g.precisions)), 0), shape),
    ]


def preference_score(result: GridResult) -> np.ndarray:
    """`preference_keys` folded into one integer per configuration (mixed radix, most
    significant key first): lower is preferred. Invalid configurations rank last."""
    keys = [np.asarray(k, dtype=np.int64) for k in preference_keys(result)]
    score = np.zeros(result.grid.shape, dtype=np.int64)
    for key in keys:
        radix = int(key.max()) + 1 if key.size else 1
        score = score * radix + key
    worst = int(score.max()) + 1 if score.size else 1
    return np.where(result.valid, score, worst)


def choose(result: GridResult) -> Choice:
    """The preferred configuration (`preference_keys`) among those that fit; when none
    fits, the valid one that needs the least memory (the plan says by how much it misses)."""
    if result.fits.any():
        flat = int(np.argmin(preference_score(result)))
    else:
        flat = int(np.argmin(np.where(result.valid, result.total, np.inf)))
    idx = np.unravel_index(flat, result.grid.shape)
    g = result.grid
    return Choice(
        precision=g.precisions[idx[0]],
        strategy=g.strategies[idx[1]],
        devices=int(g.devices[idx[2]]),
        micro_batch=int(g.micro_batches[idx[3]]),
        recompute=g.recomputes[idx[4]],
        index=tuple(int(i) for i in idx),
        fits=bool(result.fits[idx]),
    )


def powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
    """1, 2, 4, ... from lo to hi inclusive (hi itself added when it is not a power)."""
    out = []
    v = 1
    while v <= hi:
        if v >= lo:
            out.append(v)
        v *= 2
    if hi >= lo and (not out or out[-1] != hi):
        out.append(hi)
    return tuple(out)


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Rows of `points` (n x k, all minimized) that no other row dominates."""
    n = len(points)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep
