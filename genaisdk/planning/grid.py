"""Vectorized search over training configurations.

One model (`ModelCase`) is evaluated over a grid of precisions x strategies x device counts
x micro-batches x recomputation levels x parallel layouts (tensor t, pipeline p, sequence
parallelism, interleaved chunks v; data parallelism d = devices / (t·p) takes the rest) in a
handful of numpy calls. Nothing here has a formula of its own: the grid only broadcasts the
estimators' arguments, so a configuration picked from the grid has exactly the numbers the
plan then reports for it.

Two estimator paths, decided per model (`ModelCase.layouts`):

- parallel layouts (dense single-stack transformers trained in full, whose counts are the
  built-in ones): per-device memory of the first and the last pipeline stage from
  `genaisdk.estimate.parallel.stage_memory`, validity from
  `genaisdk.estimate.layouts.layout_valid`, and, where the hardware record has the figures
  (`ModelCase.cluster`), time per step from `genaisdk.estimate.steptime.step_time`;
- everything else (encoder-decoders, adapters, several resident models, plugin
  architectures): one device's memory from the architecture's own activation bytes and
  `genaisdk.estimate.memory.training_memory`, t = p = 1.

Without the step-time model, time is `genaisdk.estimate.cost.training_seconds` at the
plan's MFU (the spec's `train.mfu` or the documented default).

`choose` picks the configuration the planner fills `auto` with (`preference_keys` says in
which order: what fits, then the fastest); `genaisdk.planning.sweep` evaluates several model
sizes for `genai plan --sweep` and keeps the Pareto front (`pareto_mask`). This module
imports only the estimators, the records and the dimensions: it is a leaf of the planner.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate import activations as act
from genaisdk.estimate.comm import Cluster
from genaisdk.estimate.layouts import layout_valid
from genaisdk.estimate.memory import TrainingMemory, optimizer_state_bytes, optimizer_state_dtype, training_memory, update_buffer_bytes
from genaisdk.estimate.parallel import RECOMPUTE_CODES, micro_batches, stage_memory
from genaisdk.estimate.steptime import LoraTiming, StepTime, step_time
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

NDIM = 6
"""Axes of every grid array: precision, strategy, devices, micro-batch, recompute, layout."""


@attrs.frozen(kw_only=True, order=True)
class Layout:
    """How one model replica is split: tensor-parallel degree t (Shoeybi et al. 2019),
    pipeline stages p (Narayanan et al. 2021), sequence parallelism (Korthikanti et al.
    2022) and interleaved chunks per stage v. The data-parallel degree is what the devices
    leave: d = devices / (t·p)."""

    tensor: int = 1
    pipeline: int = 1
    sequence_parallel: bool = False
    virtual_stages: int = 1

    @property
    def model_parallel(self) -> int:
        """t·p: the devices one replica spans."""
        return self.tensor * self.pipeline

    def describe(self, data_parallel: int | None = None) -> str:
        """'t 8 x p 2 x d 4, sequence parallel, 2 chunks per stage'."""
        text = f"t {self.tensor} x p {self.pipeline}" + (f" x d {data_parallel}" if data_parallel is not None else "")
        if self.sequence_parallel:
            text += ", sequence parallel"
        if self.virtual_stages > 1:
            text += f", {self.virtual_stages} chunks per stage"
        return text


ONE_DEVICE_LAYOUT = Layout()
"""No model parallelism: every device holds the whole model (data parallelism only)."""


def zero_stage(strategy: Strategy) -> int:
    """The ZeRO stage a strategy's flags amount to (Rajbhandari et al. 2020, Sec. 5): 3 when
    it shards weights (FSDP), 2 gradients, 1 the optimizer state, else 0."""
    if strategy.shards_weights:
        return 3
    if strategy.shards_gradients:
        return 2
    return 1 if strategy.shards_optimizer else 0


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
    tokens: float = 0.0
    """Training tokens: the steps the step-time model multiplies its step time by."""
    layouts: bool = False
    """The parallel-layout estimators apply to this model (module docstring): tensor and
    pipeline layouts are searched and memory is per pipeline stage."""
    cluster: Cluster | None = None
    """The hardware's figures for the step-time model; None: time at `mfu`."""
    framework_efficiency: float = 1.0
    """The training software's throughput against the step-time model's Megatron-LM
    (`genaisdk.estimate.frameworks`)."""
    lora: LoraTiming | None = None
    """Adapters over a frozen base for the step-time model (t = p = 1; None: every weight
    trains, or the step-time model does not time this case)."""
    time_limit: float | None = None
    """The spec's time budget in seconds (a configuration beyond it ranks later)."""
    adapters: bool = False
    """The trainable parameters are LoRA adapters, kept at their own precision
    (`genaisdk.estimate.adaptation.adapter_state_bytes`)."""


@attrs.frozen(kw_only=True)
class Grid:
    """The candidate values of each axis."""

    precisions: tuple[Precision, ...] = attrs.field(converter=tuple)
    strategies: tuple[Strategy, ...] = attrs.field(converter=tuple)
    devices: tuple[int, ...] = attrs.field(converter=tuple)
    micro_batches: tuple[int, ...] = attrs.field(converter=tuple)
    recomputes: tuple[str, ...] = attrs.field(converter=tuple)
    layouts: tuple[Layout, ...] = attrs.field(default=(ONE_DEVICE_LAYOUT,), converter=tuple)

    @property
    def shape(self) -> tuple[int, ...]:
        return (
            len(self.precisions), len(self.strategies), len(self.devices), len(self.micro_batches), len(self.recomputes),
            len(self.layouts),
        )

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _axis(values, axis: int, ndim: int = NDIM) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values).reshape(shape)


@attrs.frozen(kw_only=True)
class GridResult:
    """Per-configuration arrays of shape `grid.shape` (axes: precision, strategy, devices,
    micro-batch, recompute, layout). Memory fields are the most loaded pipeline stage's, the
    device's figure; `first_stage` and `last_stage` are each stage's total."""

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
    """The configuration is meaningful: the precision trains and the hardware runs it, the
    layout can run the model on these devices (`layouts.layout_valid`, d a whole number),
    and the micro-batch is no larger than one replica's share of the global batch."""
    seconds: np.ndarray
    """Wall-clock seconds of the whole run: steps x the step-time model's step, or model
    FLOPs / (devices x peak x MFU) without it."""
    data_parallel: np.ndarray
    """d = devices / (t·p) (1 where that is not a whole number: such cells are invalid)."""
    micro_batches: np.ndarray
    """m: micro-batches per replica per step (accumulation steps)."""
    mfu: np.ndarray
    """Model FLOP/s per device over the peak: derived from `seconds`."""
    first_stage: np.ndarray
    last_stage: np.ndarray
    most_loaded_stage: np.ndarray
    """0 where the first stage sets the device's figure, p - 1 where the last does."""
    step: StepTime | None = None
    """The step-time model over the grid (None without it): seconds per step and its parts."""
    time_limit: float | None = None
    """The spec's time budget in seconds (`ModelCase.time_limit`)."""
    global_batch: int = 1
    """The global batch the spec asks for, in sequences (`ModelCase.global_batch_sequences`)."""

    @property
    def step_seconds(self) -> np.ndarray | None:
        return None if self.step is None else np.broadcast_to(self.step.seconds, self.grid.shape)

    def index(
        self, precision: str, strategy: str, devices: int, micro_batch: int, recompute: str, layout: Layout = ONE_DEVICE_LAYOUT
    ) -> tuple[int, ...]:
        g = self.grid
        return (
            [p.key for p in g.precisions].index(precision),
            [s.key for s in g.strategies].index(strategy),
            list(g.devices).index(devices),
            list(g.micro_batches).index(micro_batch),
            list(g.recomputes).index(recompute),
            list(g.layouts).index(layout),
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
        adapters=case.adapters,
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
    ndim: int = NDIM,
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


def strategy_arrays(strategies: Sequence[Strategy], axis: int = 1, ndim: int = NDIM) -> dict[str, np.ndarray]:
    out = {
        flag: _axis([bool(getattr(s, flag)) for s in strategies], axis, ndim)
        for flag in ("shards_optimizer", "shards_gradients", "shards_weights", "offload_optimizer", "offload_weights")
    }
    out["zero_stage"] = _axis([zero_stage(s) for s in strategies], axis, ndim)
    return out


def evaluate(case: ModelCase, grid: Grid) -> GridResult:
    """Memory per device, fit and wall-clock time of every configuration of `grid`."""
    if case.layouts:
        return _evaluate_layouts(case, grid)
    if any(layout != ONE_DEVICE_LAYOUT for layout in grid.layouts):
        raise ValueError(f"the layout estimators do not cover this {case.family} model: its grid has one layout, t = p = 1")
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
        return np.concatenate([np.broadcast_to(get(m), shape[:4] + (1, 1)) for m in per_r], axis=4)

    total = stack(lambda m: m.total)
    host = stack(lambda m: m.host)
    capacity = float(case.hardware.memory_bytes)
    # What offload moves to the host must fit there too, where the host's memory is known.
    host_ok = host <= case.host_capacity if case.host_capacity is not None else np.ones(shape, dtype=bool)
    per_device_batch = np.maximum(1, np.ceil(case.global_batch_sequences / dp))
    valid = np.broadcast_to(prec["trainable"] & prec["supported"] & (mb <= per_device_batch), shape)
    step = None
    if case.cluster is not None and case.lora is not None:
        # Adapters: memory as above, time by the step-time model over data parallelism.
        common, memory = estimator_arguments(case, grid)
        peak = np.where(np.isfinite(prec["peak"]), prec["peak"], np.inf)
        step = step_time(case.dims, attrs.evolve(case.cluster, peak_flops=peak), causal=case.family == "decoder",
                         framework_efficiency=case.framework_efficiency, lora=case.lora, **offload_arguments(memory), **common)
        m = micro_batches(global_batch=common["global_batch"], data_parallel=common["data_parallel"], micro_batch=common["micro_batch"])
        seconds = case.tokens / (m * common["data_parallel"] * common["micro_batch"] * case.seq) * step.seconds
        with np.errstate(divide="ignore", invalid="ignore"):
            mfu = np.broadcast_to(case.model_flops / (seconds * dp * peak), shape)
        seconds = np.broadcast_to(np.where(prec["supported"] & ~np.isfinite(prec["peak"]), np.nan, seconds), shape)
    else:
        seconds = np.broadcast_to(_mfu_seconds(case, prec, dp), shape)
        mfu = np.broadcast_to(np.asarray(case.mfu, dtype=float), shape)
    ones = np.ones(shape)
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
        data_parallel=np.broadcast_to(dp, shape),
        micro_batches=np.broadcast_to(np.maximum(1.0, np.ceil(case.global_batch_sequences / (dp * mb))), shape),
        mfu=mfu,
        step=step,
        first_stage=total,
        last_stage=total,
        most_loaded_stage=0.0 * ones,
        time_limit=case.time_limit,
        global_batch=case.global_batch_sequences,
    )


def _mfu_seconds(case: ModelCase, prec: dict[str, np.ndarray], devices) -> np.ndarray:
    """Wall-clock seconds at the case's MFU, model FLOPs / (devices x peak x MFU) (Chowdhery
    et al. 2022, App. B); NaN, unknown, where the device quotes no throughput for a precision
    it is taken to run (`precision_arrays`' "supported"), and 0 for one it cannot run (such
    cells are invalid)."""
    peak = np.where(np.isfinite(prec["peak"]), prec["peak"], np.inf)
    seconds = case.model_flops / (devices * peak * case.mfu)
    return np.where(prec["supported"] & ~np.isfinite(prec["peak"]), np.nan, seconds)


def estimator_arguments(case: ModelCase, grid: Grid) -> tuple[dict, dict]:
    """The arguments of `stage_memory` and `step_time` over `grid`, each broadcast on its
    axis: (arguments both take, the memory-only ones). One place, so the search, the plan's
    every-stage memory and the explanations call the estimators with the same numbers."""
    prec = precision_arrays(grid.precisions, case.hardware, optimizer=case.optimizer, optimizer_state=case.optimizer_state)
    strat = strategy_arrays(grid.strategies)
    devices = _axis(np.asarray(grid.devices, dtype=float), 2)
    t = _axis(np.asarray([x.tensor for x in grid.layouts], dtype=float), 5)
    p = _axis(np.asarray([x.pipeline for x in grid.layouts], dtype=float), 5)
    exact = devices / (t * p)
    d = np.where((exact >= 1) & (exact == np.floor(exact)), exact, 1.0)
    b = _axis(np.asarray(grid.micro_batches, dtype=float), 3)
    # Every replica runs whole micro-batches: the batch trained is the request rounded up
    # to m·d·b sequences (`planning.assemble.batch`), and a step's model FLOPs are those.
    m = micro_batches(global_batch=case.global_batch_sequences, data_parallel=d, micro_batch=b)
    trained = m * d * b
    common = dict(
        family=case.family,
        seq=case.seq,
        global_batch=trained,
        micro_batch=b,
        tensor_parallel=t,
        pipeline_parallel=p,
        data_parallel=d,
        virtual_stages=_axis(np.asarray([x.virtual_stages for x in grid.layouts], dtype=float), 5),
        sequence_parallel=_axis(np.asarray([x.sequence_parallel for x in grid.layouts], dtype=bool), 5),
        recompute=_axis(np.asarray([RECOMPUTE_CODES[r] for r in grid.recomputes]), 4),
        zero_stage=strat["zero_stage"],
        flash=case.flash,
        activation_bytes=prec["activation_bytes"],
        weight_bytes=prec["weight_bytes"],
        gradient_bytes=prec["gradient_bytes"],
        optimizer_bytes=prec["optimizer_bytes"],
        master_bytes=prec["master_bytes"],
    )
    memory = dict(
        offload_optimizer=strat["offload_optimizer"],
        offload_weights=strat["offload_weights"],
        update_bytes=prec["update_bytes"],
        # Gradients stay through later forward passes only when micro-batches accumulate.
        accumulates=m > 1,
    )
    if case.runtime_bytes is not None:
        memory["runtime_bytes"] = case.runtime_bytes
    return common, memory


def offload_arguments(memory: dict) -> dict:
    """The offload flags of `estimator_arguments`' memory-only arguments, for `step_time`."""
    return {k: memory[k] for k in ("offload_optimizer", "offload_weights")}


def _evaluate_layouts(case: ModelCase, grid: Grid) -> GridResult:
    dims = case.dims
    shape = grid.shape
    prec = precision_arrays(grid.precisions, case.hardware)
    common, memory_options = estimator_arguments(case, grid)
    t, p, d = common["tensor_parallel"], common["pipeline_parallel"], common["data_parallel"]
    b = common["micro_batch"]
    devices = _axis(np.asarray(grid.devices, dtype=float), 2)
    first = stage_memory(dims, stage=0, **common, **memory_options)
    last = stage_memory(dims, stage=p - 1, **common, **memory_options)
    use_last = last.total > first.total

    def pick(a, z):
        return np.broadcast_to(np.where(use_last, z, a), shape)

    total = pick(first.total, last.total)
    m = micro_batches(global_batch=common["global_batch"], data_parallel=d, micro_batch=b)
    whole = devices == t * p * d
    valid = (
        prec["trainable"] & prec["supported"] & whole
        & layout_valid(
            dims, tensor_parallel=t, pipeline_parallel=p, sequence_parallel=common["sequence_parallel"],
            virtual_stages=common["virtual_stages"], micro_batches=m, zero_stage=common["zero_stage"],
        )
        & (b <= np.maximum(1, np.ceil(case.global_batch_sequences / d)))
    )
    valid = np.broadcast_to(valid, shape)
    peak = np.where(np.isfinite(prec["peak"]), prec["peak"], np.inf)
    step = None
    if case.cluster is not None:
        cluster = attrs.evolve(case.cluster, peak_flops=peak)
        step = step_time(dims, cluster, causal=case.family == "decoder", framework_efficiency=case.framework_efficiency,
                         **offload_arguments(memory_options), **common)
        # The run is steps of m·d·b sequences: tokens / (m·d·b·s) steps of `step.seconds`.
        seconds = case.tokens / (m * d * b * case.seq) * step.seconds
        with np.errstate(divide="ignore", invalid="ignore"):
            mfu = case.model_flops / (seconds * devices * peak)
    else:
        seconds = _mfu_seconds(case, prec, devices)
        mfu = np.asarray(case.mfu, dtype=float)
    capacity = float(case.hardware.memory_bytes)
    host = pick(first.host, last.host)
    # What offload moves to the host must fit there too, where the host's memory is known.
    host_ok = host <= case.host_capacity if case.host_capacity is not None else np.ones(shape, dtype=bool)
    return GridResult(
        grid=grid,
        weights=pick(first.weights, last.weights),
        gradients=pick(first.gradients, last.gradients),
        optimizer=pick(first.optimizer, last.optimizer),
        activations=pick(first.activations, last.activations),
        overheads={k: pick(first.overheads[k], last.overheads[k]) for k in first.overheads},
        total=total,
        host=host,
        peak_phase=np.where(use_last, _peak_phase(last), _peak_phase(first)),
        at_peak={k: pick(first.at_peak[k], last.at_peak[k]) for k in first.at_peak},
        capacity=capacity,
        fits=(total <= capacity) & host_ok & valid,
        valid=valid,
        seconds=np.broadcast_to(seconds, shape),
        data_parallel=np.broadcast_to(d, shape),
        micro_batches=np.broadcast_to(m, shape),
        mfu=np.broadcast_to(mfu, shape),
        first_stage=np.broadcast_to(first.total, shape),
        last_stage=np.broadcast_to(last.total, shape),
        most_loaded_stage=np.broadcast_to(np.where(use_last, p - 1, 0.0), shape),
        step=step,
        time_limit=case.time_limit,
        global_batch=case.global_batch_sequences,
    )


def chosen_arguments(case: ModelCase, grid: Grid, index: tuple[int, ...]) -> tuple[dict, dict]:
    """`estimator_arguments` of one cell of `grid`, as scalars (the plan's every-stage memory
    and the explanations call the estimators with these)."""
    one = Grid(
        precisions=(grid.precisions[index[0]],),
        strategies=(grid.strategies[index[1]],),
        devices=(grid.devices[index[2]],),
        micro_batches=(grid.micro_batches[index[3]],),
        recomputes=(grid.recomputes[index[4]],),
        layouts=(grid.layouts[index[5]],),
    )
    common, memory = estimator_arguments(case, one)

    def scalar(value):
        if isinstance(value, np.ndarray):
            return value.reshape(()).item()
        return value

    return {k: scalar(v) for k, v in common.items()}, {k: scalar(v) for k, v in memory.items()}


def chosen_step(case: ModelCase, grid: Grid, index: tuple[int, ...]) -> StepTime | None:
    """The step-time model of the configuration at `index`, scalars (None without it):
    `step_time` with the grid's own arguments, so its numbers are the grid's."""
    if case.cluster is None or not (case.layouts or case.lora is not None):
        return None
    common, memory = chosen_arguments(case, grid, index)
    peak = case.hardware.peak_flops.get(grid.precisions[index[0]].compute_dtype)
    cluster = attrs.evolve(case.cluster, peak_flops=float(peak)) if peak else case.cluster
    return step_time(case.dims, cluster, causal=case.family == "decoder", framework_efficiency=case.framework_efficiency,
                     lora=case.lora, **offload_arguments(memory), **common)


def stage_memories(case: ModelCase, grid: Grid, index: tuple[int, ...]) -> TrainingMemory:
    """Every pipeline stage's memory (one array entry per stage) of the configuration at
    `index`: `genaisdk.estimate.parallel.stage_memory` with the grid's own arguments."""
    common, memory = chosen_arguments(case, grid, index)
    stages = np.arange(int(common["pipeline_parallel"]))
    return stage_memory(case.dims, stage=stages, **common, **memory)


def _peak_phase(memory) -> np.ndarray:
    """Index into PHASES of the phase that sets the peak: `TrainingMemory.worst_phase`
    (on a tie the backward pass, then the step), compared as numbers."""
    forward, backward, step = (np.asarray(memory.phases[k], dtype=float) for k in PHASES)
    index = np.where(backward >= np.maximum(step, forward), PHASES.index("backward"),
                     np.where(step >= forward, PHASES.index("step"), PHASES.index("forward")))
    return index.astype(np.int8)


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
    layout: Layout = ONE_DEVICE_LAYOUT
    data_parallel: int = 1
    """d = devices / (t·p): the data-parallel degree ZeRO shards over and the batch divides by."""


def preference_keys(result: GridResult) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """The order configurations are preferred in, most significant first, as (integer keys
    before the time, the time, integer keys after it), each broadcast to the grid's shape:

    1. fits (a configuration that fits beats one that does not);
    2. no offload (host traffic every step is the slowest way to fit, and the step-time
       model does not count it);
    3. within the time budget, where the spec has one;
    4. fewer devices (when the count is searched: the time budget set the floor, more
       devices only to make the model fit or meet the budget);
    5. a trained batch (micro-batches x micro-batch x replicas) under twice the spec's (more
       is another batch, in fewer steps, not the spec's rounded up);
    6. fewer seconds (the step-time model; without it every configuration on the same
       devices takes the same time), equal within 1e-9;
    7. less model parallelism (t·p, then p): on a tie, fewer devices per replica;
    8. no full recomputation (a third more compute; Korthikanti et al. 2022);
    9. the strategy's cost rank (`strategy_rank`: ddp, zero1, zero2, fsdp);
    10. the recomputation level (none, then selective);
    11. the largest micro-batch (better device utilization, fewer accumulation steps);
    12. the precision order given (the spec's or the planner's first choice);
    13. no sequence parallelism, then fewer interleaved chunks (the simpler schedule).
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
    simpler = sorted(range(len(g.layouts)), key=lambda i: (g.layouts[i].model_parallel, g.layouts[i].pipeline))
    parallel_rank = np.empty(len(g.layouts), dtype=np.int64)
    parallel_rank[simpler] = np.arange(len(g.layouts))
    schedule = np.array([2 * int(x.sequence_parallel) + int(x.virtual_stages > 1) for x in g.layouts])
    limit = result.time_limit
    over = np.zeros((1,) * NDIM, dtype=bool) if limit is None else result.seconds > limit * (1 + 1e-9)
    # A batch trained at twice the spec's or more (more replicas than it has sequences) is
    # not a rounding of it but another batch: fewer, larger steps. Only where nothing else fits.
    trained = result.data_parallel * _axis(np.asarray(g.micro_batches, dtype=float), 3) * result.micro_batches
    inflated = trained >= 2 * max(1, result.global_batch)
    before = [~result.fits, _axis(offload, 1), over, _axis(device_rank, 2), inflated]
    after = [
        _axis(parallel_rank, 5),
        _axis(rec_rank >= 2, 4),
        _axis(strat_rank, 1),
        _axis(rec_rank, 4),
        _axis(micro_rank, 3),
        _axis(np.arange(len(g.precisions)), 0),
        _axis(schedule, 5),
    ]
    return (
        [np.broadcast_to(k, shape) for k in before],
        # Unknown time (a device that quotes no throughput, NaN) ranks no configuration
        # before another: the keys after it decide.
        np.broadcast_to(np.where(result.valid & ~np.isnan(result.seconds), result.seconds, np.inf), shape),
        [np.broadcast_to(k, shape) for k in after],
    )


def _fold(keys: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Integer keys folded into one (mixed radix, most significant first): lower is preferred."""
    score = np.zeros(shape, dtype=np.int64)
    for key in keys:
        key = np.asarray(key, dtype=np.int64)
        radix = int(key.max()) + 1 if key.size else 1
        score = score * radix + key
    return score


def preferred(result: GridResult, groups: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """For each combination of the `groups` axes (none: the whole grid), the preferred
    fitting configuration over the other axes (`preference_keys`), as a flat index into
    those axes in their order, and whether any fits. Each key is applied in turn over the
    configurations the keys before it left, so the time compares as a real number."""
    shape = result.grid.shape
    before, seconds, after = preference_keys(result)
    rest = tuple(a for a in range(NDIM) if a not in groups)
    order = tuple(groups) + rest
    count = int(np.prod([shape[a] for a in groups])) if groups else 1

    def flat(array) -> np.ndarray:
        return np.transpose(np.broadcast_to(array, shape), order).reshape(count, -1)

    fits = flat(result.fits)
    worst = np.iinfo(np.int64).max
    high = np.where(fits, flat(_fold(before, shape)), worst)
    keep = high == high.min(axis=1, keepdims=True)
    time = np.where(keep, flat(seconds), np.inf)
    fastest = time.min(axis=1, keepdims=True)
    keep &= (time <= fastest * (1 + 1e-9)) | ~np.isfinite(fastest)
    low = np.where(keep, flat(_fold(after, shape)), worst)
    best = np.argmin(low, axis=1)
    ok = fits.any(axis=1)
    out = [shape[a] for a in groups]
    return best.reshape(out), ok.reshape(out)


def choice_at(result: GridResult, idx: tuple[int, ...]) -> Choice:
    """The configuration at a grid index."""
    g = result.grid
    idx = tuple(int(i) for i in idx)
    return Choice(
        precision=g.precisions[idx[0]],
        strategy=g.strategies[idx[1]],
        devices=int(g.devices[idx[2]]),
        micro_batch=int(g.micro_batches[idx[3]]),
        recompute=g.recomputes[idx[4]],
        index=idx,
        fits=bool(result.fits[idx]),
        layout=g.layouts[idx[5]],
        data_parallel=int(result.data_parallel[idx]),
    )


def choose(result: GridResult) -> Choice:
    """The preferred configuration (`preference_keys`) among those that fit; when none
    fits, the valid one that needs the least memory (the plan says by how much it misses)."""
    if result.fits.any():
        flat = int(preferred(result)[0])
    else:
        flat = int(np.argmin(np.where(result.valid, result.total, np.inf)))
    return choice_at(result, np.unravel_index(flat, result.grid.shape))


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
