"""The train step compiled ahead of time, its memory, and whether it fits the device.

`compile_step(trainer)` is the one lowering helper: `genai train` compiles the step with it
before step 0 (and then runs that executable), `genai train --dry-run --compile` compiles
the same step without running it, and `genai measure` compiles the planned step and its
unrolled samples with it. The step is lowered on `jax.ShapeDtypeStruct`s that carry their
shardings (`Trainer.abstract_state`, `Trainer.abstract_batch`), so compiling allocates no
device memory: the same pattern as MaxText's ahead-of-time `train_compile`.

XLA's `memory_analysis()` of an SPMD executable is per device: the arguments (train state
and batch), the outputs (the new state, aliased onto the donated arguments), the
temporaries (gradients, activations, collectives' buffers) and the generated code. A
step needs ``arguments + temporaries + outputs - aliased`` bytes per device at its peak
(`StepMemory.peak`). `check_memory` puts that next to the plan's per-device figure and the
device's capacity (`genaisdk.backend.jax.devices.device_capacity`); a step that does not
fit is refused before it runs (`refusal`), with the plan's cheapest configuration that
would fit (`fitting_configuration`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from genaisdk.core.numbers import fmt_bytes

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.backend.jax.devices import Capacity
    from genaisdk.plans import MemoryOption, Plan
    from genaisdk.planning.run_settings import RunSettings


@attrs.frozen(kw_only=True)
class StepMemory:
    """XLA's memory_analysis() of a compiled step, bytes per device."""

    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    generated_code: int

    @property
    def peak(self) -> int:
        """What the step holds at once: its inputs, its temporaries, and the outputs that
        do not reuse a donated input's buffer."""
        return self.arguments + self.temporaries + self.outputs - self.aliased

    @classmethod
    def of(cls, compiled: Any) -> StepMemory:
        analysis = compiled.memory_analysis()
        return cls(
            arguments=int(analysis.argument_size_in_bytes),
            outputs=int(analysis.output_size_in_bytes),
            aliased=int(analysis.alias_size_in_bytes),
            temporaries=int(analysis.temp_size_in_bytes),
            generated_code=int(analysis.generated_code_size_in_bytes),
        )

    def to_json(self) -> dict[str, int]:
        return {**attrs.asdict(self), "peak": self.peak}


@attrs.frozen(kw_only=True)
class CompiledStep:
    """A train step compiled for its mesh: the executable and the compile time."""

    executable: Any = attrs.field(repr=False)
    seconds: float

    @property
    def memory(self) -> StepMemory:
        """XLA's memory_analysis, per device."""
        return StepMemory.of(self.executable)


def compile_step(trainer: Any) -> CompiledStep:
    """Lower `trainer`'s train step on its abstract state and batch, and compile it.

    Allocates nothing on the devices. Raises what XLA raises for a step it cannot compile.
    """
    started = time.perf_counter()
    executable = trainer.lower().compile()
    return CompiledStep(executable=executable, seconds=time.perf_counter() - started)


# ----------------------------------------------------------------------------- the check


@attrs.frozen(kw_only=True)
class Suggestion:
    """A configuration from the plan's memory options, with its estimated bytes per device."""

    strategy: str
    precision: str
    micro_batch: int
    bytes: float
    """The plan's figure for it (weights, gradients, optimizer state and activations at
    this micro-batch) scaled by the compiled step's XLA / plan ratio."""
    overrides: tuple[str, ...]
    """The `--set` overrides that ask the plan for it."""

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class MemoryCheck:
    """The compiled step's memory next to the plan's and the device's (bytes per device)."""

    memory: StepMemory
    planned: float | None
    """The plan's total per device (runtime overheads included)."""
    planned_without_overheads: float | None
    """The plan's total less its runtime overheads (CUDA context, fragmentation), which
    XLA's figure does not count: the number to compare with `memory.peak`."""
    planned_devices: int
    run_devices: int
    capacity: Capacity | None
    suggestion: Suggestion | None = None
    """Where the step does not fit: the plan's cheapest configuration that would."""

    @property
    def need(self) -> int:
        return self.memory.peak

    @property
    def fits(self) -> bool | None:
        """None when the capacity is unknown."""
        return None if self.capacity is None else self.need <= self.capacity.bytes

    @property
    def ratio(self) -> float | None:
        """XLA's need over the plan's figure without overheads."""
        if not self.planned_without_overheads:
            return None
        return self.need / self.planned_without_overheads

    def to_json(self) -> dict[str, Any]:
        return {
            "xla": self.memory.to_json(),
            "need": self.need,
            "plan": self.planned,
            "plan_without_overheads": self.planned_without_overheads,
            "ratio": self.ratio,
            "plan_devices": self.planned_devices,
            "devices": self.run_devices,
            "capacity": self.capacity.to_json() if self.capacity is not None else None,
            "fits": self.fits,
            "suggestion": self.suggestion.to_json() if self.suggestion is not None else None,
        }

    def describe(self) -> str:
        """One line for the run's log: XLA's need, the plan's, the device's."""
        m = self.memory
        text = (
            f"compiled step: XLA needs {fmt_bytes(self.need)} per device (arguments {fmt_bytes(m.arguments)} + "
            f"temporaries {fmt_bytes(m.temporaries)} + outputs {fmt_bytes(m.outputs)} - aliased {fmt_bytes(m.aliased)})"
        )
        if self.planned_without_overheads:
            text += (
                f"; the plan: {fmt_bytes(self.planned_without_overheads)} without runtime overheads "
                f"(x{self.ratio:.2f}), {fmt_bytes(self.planned)} with them"
            )
            if self.planned_devices != self.run_devices:
                text += f", for {self.planned_devices} device(s)"
        if self.capacity is None:
            text += "; the device's memory is unknown, so it is not checked"
        else:
            text += f"; the device has {fmt_bytes(self.capacity.bytes)} ({self.capacity.source})"
        return text


def _parts(option: MemoryOption, micro_batch: int) -> float:
    """The plan's weights, gradients, optimizer state and activations of `option`, with its
    activations scaled to `micro_batch` (they are linear in it; Korthikanti et al. 2022,
    Sec. 4, Eq. 2)."""
    p = option.per_device
    share = micro_batch / max(1, option.micro_batch)
    return float(p.weights + p.gradients + p.optimizer + p.activations * share)


def _runnable(option: MemoryOption, registry: Any) -> bool:
    """Whether the JAX backend runs this option (no offload; a precision it computes in)."""
    from genaisdk.backend.jax.config import UnsupportedError
    from genaisdk.backend.jax.precision import policy_from_record

    strategy = registry.get("strategies", option.strategy)
    precision = registry.get("precisions", option.precision)
    if strategy is None or precision is None or strategy.offload_optimizer or strategy.offload_weights:
        return False
    try:
        policy_from_record(precision)
    except UnsupportedError:
        return False
    return True


def fitting_configuration(plan: Plan, settings: RunSettings, need: int, capacity: int, registry: Any) -> Suggestion | None:
    """The plan's cheapest configuration whose step would fit `capacity` bytes per device.

    The plan lists the same model under each strategy and precision (`memory.options`, in
    the planner's order of preference: the chosen precision first, then the strategies
    from least to most communication), each at its largest micro-batch. Each option and
    each smaller power-of-two micro-batch is estimated as the plan's figure scaled by this
    step's XLA / plan ratio (measured on the run's own configuration); the first that fits,
    in that order and from the largest micro-batch down, is the cheapest in step time. None
    when no option fits.
    """
    options = [o for o in plan.memory.options if _runnable(o, registry)]
    if not options:
        return None
    t = settings.train
    base = next((o for o in options if (o.strategy, o.precision) == (t.strategy, t.precision)), None)
    base = base or next((o for o in options if o.chosen), options[0])
    ratio = need / max(_parts(base, t.micro_batch), 1.0)
    for option in options:
        micro = option.micro_batch
        while micro >= 1:
            estimate = _parts(option, micro) * ratio
            if estimate <= capacity and (option.strategy, option.precision, micro) != (t.strategy, t.precision, t.micro_batch):
                overrides = []
                if option.strategy != t.strategy:
                    overrides.append(f"train.sharding={option.strategy}")
                if option.precision != t.precision:
                    overrides.append(f"train.precision={option.precision}")
                if micro != t.micro_batch:
                    overrides.append(f"train.micro_batch={micro}")
                return Suggestion(
                    strategy=option.strategy, precision=option.precision, micro_batch=micro, bytes=estimate,
                    overrides=tuple(overrides),
                )
            micro //= 2
    return None


def check_memory(
    compiled: CompiledStep, *, plan: Plan, settings: RunSettings, capacity: Capacity | None, registry: Any
) -> MemoryCheck:
    """The compiled step against the plan and the device (see the module docstring)."""
    per_device = plan.memory.per_device
    overheads = sum(float(v) for v in per_device.overheads.values())
    planned = float(per_device.total) if per_device.total else None
    check = MemoryCheck(
        memory=compiled.memory,
        planned=planned,
        planned_without_overheads=(planned - overheads) if planned else None,
        planned_devices=int(plan.train.devices),
        run_devices=int(settings.train.devices),
        capacity=capacity,
    )
    if check.fits is False:
        suggestion = fitting_configuration(plan, settings, check.need, capacity.bytes, registry)
        check = attrs.evolve(check, suggestion=suggestion)
    return check


def refusal(check: MemoryCheck) -> str:
    """The message of a run refused because its compiled step does not fit the device."""
    assert check.capacity is not None
    capacity = check.capacity
    text = (
        f"the compiled train step needs {fmt_bytes(check.need)} per device (XLA memory_analysis: arguments "
        f"{fmt_bytes(check.memory.arguments)}, temporaries {fmt_bytes(check.memory.temporaries)}, outputs "
        f"{fmt_bytes(check.memory.outputs)} of which {fmt_bytes(check.memory.aliased)} reuse the inputs), more than the "
        f"{fmt_bytes(capacity.bytes)} one device has ({capacity.source})"
    )
    if check.planned_without_overheads:
        text += f"; the plan estimated {fmt_bytes(check.planned_without_overheads)} without runtime overheads"
    s = check.suggestion
    if s is not None:
        text += (
            f". The plan's cheapest configuration that fits: {s.strategy}, {s.precision}, micro-batch {s.micro_batch} "
            f"(about {fmt_bytes(s.bytes)} per device): rerun with "
            + " ".join(f"--set {o}" for o in s.overrides)
        )
    else:
        text += (
            ". None of the plan's configurations fits that memory: train on more devices with a sharded strategy "
            "(--devices N --set train.sharding=fsdp), with train.recompute=full, or on a device with more memory"
        )
    return text + ". Nothing was run."
