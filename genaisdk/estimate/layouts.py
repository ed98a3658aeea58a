"""Vectorized evaluation of parallel layouts: memory, fit and step time of a whole grid.

One model on one kind of device is evaluated over tensor x pipeline x data-parallel degrees x
ZeRO stages x micro-batches x recomputation levels x sequence parallelism x interleaved
chunks in three calls, each over the whole grid: per-device memory of the first and of the
last pipeline stage (`genaisdk.estimate.parallel.stage_memory`), step time and its parts
(`genaisdk.estimate.steptime.step_time`). Nothing here has a formula of its own: the grid
only broadcasts those functions' arguments, so a layout picked from the grid has exactly
the numbers a direct call gives for it.

A layout is valid when it can run (`layout_valid`): t divides the heads and the FFN width
(and t > 1 where sequence parallelism is on), p·v <= layers, interleaving (v > 1) needs p > 1
and m a multiple of p (Megatron-LM's interleaved schedule), a pipeline goes with ZeRO stage 0
or 1 only, the micro-batch is no larger than
one replica's share of the global batch, and, when `devices` is given, t·p·d uses exactly
those devices.
"""

from __future__ import annotations

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.activations import RECOMPUTE_KINDS
from genaisdk.estimate.comm import Cluster
from genaisdk.estimate.parallel import RECOMPUTE_CODES, micro_batches, stage_memory
from genaisdk.estimate.steptime import PARTS, StepTime, step_time

AXES = ("tensor", "pipeline", "data", "zero_stage", "micro_batch", "recompute", "sequence_parallel", "virtual_stages")
"""Axis order of every array of a `LayoutResult`."""


def _axis(values, axis: int, ndim: int = len(AXES)) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values).reshape(shape)


@attrs.frozen(kw_only=True)
class LayoutGrid:
    """The candidate values of each axis (`AXES` order)."""

    tensor: tuple[int, ...] = attrs.field(converter=tuple)
    pipeline: tuple[int, ...] = attrs.field(converter=tuple)
    data: tuple[int, ...] = attrs.field(converter=tuple)
    zero_stages: tuple[int, ...] = attrs.field(default=(0, 1, 2, 3), converter=tuple)
    micro_batches: tuple[int, ...] = attrs.field(default=(1,), converter=tuple)
    recomputes: tuple[str, ...] = attrs.field(default=RECOMPUTE_KINDS, converter=tuple)
    sequence_parallel: tuple[bool, ...] = attrs.field(default=(False, True), converter=tuple)
    virtual_stages: tuple[int, ...] = attrs.field(default=(1,), converter=tuple)

    @property
    def shape(self) -> tuple[int, ...]:
        return (
            len(self.tensor), len(self.pipeline), len(self.data), len(self.zero_stages),
            len(self.micro_batches), len(self.recomputes), len(self.sequence_parallel), len(self.virtual_stages),
        )

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def layout(self, index) -> dict:
        """The axis values at a grid index, by name."""
        values = (
            self.tensor, self.pipeline, self.data, self.zero_stages,
            self.micro_batches, self.recomputes, self.sequence_parallel, self.virtual_stages,
        )
        out = {name: vals[i] for name, vals, i in zip(AXES, values, index)}
        out = {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}
        return out


@attrs.frozen(kw_only=True)
class LayoutResult:
    """Per-layout arrays of shape `grid.shape` (axes in `AXES` order).

    `memory`: bytes per device of the most loaded stage; `first_stage`, `last_stage`: each
    stage's; `seconds`: step time (its terms: `part`, `parts_at`); `mfu`; `devices` t·p·d;
    `fits`: valid and `memory` <= the device's capacity."""

    grid: LayoutGrid
    memory: np.ndarray
    first_stage: np.ndarray
    last_stage: np.ndarray
    seconds: np.ndarray
    mfu: np.ndarray
    devices: np.ndarray
    micro_batches: np.ndarray
    valid: np.ndarray
    fits: np.ndarray
    capacity: float
    step: StepTime = attrs.field(repr=False)
    """The `StepTime` over the grid (its arrays broadcast to `grid.shape`)."""

    def part(self, name: str) -> np.ndarray:
        """One term of the step time (`steptime.PARTS`) over the grid."""
        return np.broadcast_to(self.step.parts[name], self.grid.shape)

    def parts_at(self, index) -> dict[str, float]:
        """Every term of the step time of the layout at `index`, in seconds."""
        return {name: float(self.part(name)[tuple(index)]) for name in PARTS}

    def fastest(self) -> tuple[int, ...] | None:
        """Index of the fastest layout that fits (ties: less memory, then fewer devices);
        None when none fits."""
        if not self.fits.any():
            return None
        seconds = np.where(self.fits, self.seconds, np.inf)
        best = np.flatnonzero(seconds == seconds.min())
        flat = best[np.argmin(self.memory.ravel()[best])]
        return tuple(int(i) for i in np.unravel_index(int(flat), self.grid.shape))


def evaluate_layouts(
    dims: Dimensions,
    cluster: Cluster,
    grid: LayoutGrid,
    *,
    family: str = "decoder",
    seq,
    global_batch,
    devices=None,
    flash: bool = True,
    causal: bool = True,
    dropout: bool = True,
    activation_bytes=2.0,
    weight_bytes=2.0,
    gradient_bytes=2.0,
    optimizer_bytes=8.0,
    master_bytes=4.0,
    accumulate_bytes=4.0,
    overlap_data_parallel=False,
    framework_efficiency=1.0,
    **memory_options,
) -> LayoutResult:
    """Memory per device, fit and step time of every layout of `grid` (module docstring).
    `memory_options` go to `training_memory` (`runtime_bytes`, `fragmentation`)."""
    ndim = len(AXES)
    t = _axis(np.asarray(grid.tensor, dtype=float), 0)
    p = _axis(np.asarray(grid.pipeline, dtype=float), 1)
    d = _axis(np.asarray(grid.data, dtype=float), 2)
    zero = _axis(np.asarray(grid.zero_stages), 3)
    b = _axis(np.asarray(grid.micro_batches, dtype=float), 4)
    sp = _axis(np.asarray(grid.sequence_parallel, dtype=bool), 6)
    v = _axis(np.asarray(grid.virtual_stages, dtype=float), 7)
    common = dict(
        family=family, seq=seq, global_batch=global_batch, micro_batch=b, tensor_parallel=t,
        pipeline_parallel=p, data_parallel=d, virtual_stages=v, sequence_parallel=sp, zero_stage=zero,
        flash=flash, dropout=dropout, activation_bytes=activation_bytes, weight_bytes=weight_bytes,
        gradient_bytes=gradient_bytes, optimizer_bytes=optimizer_bytes, master_bytes=master_bytes,
    )
    codes = _axis(np.asarray([RECOMPUTE_CODES[kind] for kind in grid.recomputes]), 5)
    shape = grid.shape
    first_stage = np.broadcast_to(stage_memory(dims, recompute=codes, stage=0, **common, **memory_options).total, shape)
    last_stage = np.broadcast_to(stage_memory(dims, recompute=codes, stage=p - 1, **common, **memory_options).total, shape)
    step = step_time(
        dims, cluster, recompute=codes, causal=causal, accumulate_bytes=accumulate_bytes,
        overlap_data_parallel=overlap_data_parallel, framework_efficiency=framework_efficiency,
        offload_optimizer=memory_options.get("offload_optimizer", False), offload_weights=memory_options.get("offload_weights", False),
        **common,
    )
    memory = np.maximum(first_stage, last_stage)
    m = micro_batches(global_batch=global_batch, data_parallel=d, micro_batch=b)
    valid = layout_valid(
        dims, tensor_parallel=t, pipeline_parallel=p, sequence_parallel=sp, virtual_stages=v, micro_batches=m, zero_stage=zero
    )
    valid = valid & (d * b <= global_batch)
    if devices is not None:
        valid = valid & (t * p * d == devices)
    valid = np.broadcast_to(valid, shape)
    capacity = float(cluster.memory_bytes)
    return LayoutResult(
        grid=grid,
        memory=memory,
        first_stage=first_stage,
        last_stage=last_stage,
        seconds=np.broadcast_to(step.seconds, shape),
        mfu=np.broadcast_to(step.mfu, shape),
        devices=np.broadcast_to(t * p * d, shape),
        micro_batches=np.broadcast_to(m, shape),
        valid=valid,
        fits=valid & (memory <= capacity),
        capacity=capacity,
        step=step,
    )


def layout_valid(
    dims: Dimensions, *, tensor_parallel, pipeline_parallel, sequence_parallel=False, virtual_stages=1, micro_batches=1, zero_stage=0
):
    """Whether a model split this way can run (module docstring): t divides the heads and the
    FFN width, sequence parallelism has t > 1, p·v <= layers, interleaving (v > 1) has p > 1
    and m micro-batches a multiple of p, and a pipeline (p > 1) shards no more than the
    optimizer state over d: ZeRO-2 and ZeRO-3 partition the gradients every micro-batch
    accumulates into, which a pipeline schedule cannot do (DeepSpeed's pipeline engine
    refuses them; Megatron-LM's distributed optimizer shards only the optimizer state).
    Broadcasts over numpy arrays."""
    t = np.asarray(tensor_parallel, dtype=float)
    p = np.asarray(pipeline_parallel, dtype=float)
    v = np.asarray(virtual_stages, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    sp = np.asarray(sequence_parallel, dtype=bool)
    return (
        (dims.heads % t == 0) & (dims.d_ff % t == 0) & ((t > 1) | ~sp)
        & (p * v <= dims.layers) & ((v == 1) | ((p > 1) & (m % p == 0)))
        & ((np.asarray(zero_stage) < 2) | (p == 1))
    )


def divisors(n: int) -> tuple[int, ...]:
    """The divisors of n, ascending: the data-parallel degrees a fixed device count allows."""
    return tuple(i for i in range(1, n + 1) if n % i == 0)
