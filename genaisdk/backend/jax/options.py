"""`TrainOptions`: everything about one `genai train` invocation that is not in the spec.

    >>> options = TrainOptions(steps=40, out="runs/tiny", devices=2)
    >>> genaisdk.train("specs/tiny-gpt.genai", options)        # or the same as keywords

The command line, the Python API and the backend share this one frozen object; nothing
passes these settings one by one. Six of them change the run the plan describes and are
recorded as deviations (`devices`, `tensor_parallel`, `sequence_parallel`, `steps`,
`precision`, `adaptation`); the others say where
the run writes, how it reports, how it joins other hosts and what it may read. Each value
is checked here, so a mistake is a `TrainError` (exit status 2) before JAX starts.

Imports nothing heavy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.backend.jax.config import DP_IMPLS, MAX_STEPS
from genaisdk.backend.jax.errors import TrainError

DEVICE_MEMORY_ENV = "GENAISDK_DEVICE_MEMORY"
"""Environment variable with the memory of one device (`64MB`, `80GiB`), as `--device-memory`."""


def override_list(overrides: Mapping[str, Any] | Iterable[str] | None) -> tuple[str, ...]:
    """`{"train.sharding": "fsdp"}` or `["train.sharding=fsdp"]` as ``key=value`` strings."""
    if not overrides:
        return ()
    if isinstance(overrides, Mapping):
        return tuple(f"{key}={value}" for key, value in overrides.items())
    if isinstance(overrides, str):
        return (overrides,)
    return tuple(str(item) for item in overrides)


def parse_bytes(value: Any, *, what: str = "--device-memory") -> int | None:
    """A byte count from an int or text with a unit (`64MB`, `80 GiB`, decimal or binary);
    None for None. TrainError (exit status 2) for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TrainError(f"{what} must be a size such as 64MB or 80GiB, got {value!r}", exit_code=2)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        from genaisdk.spec.units import QuantityError, parse_quantity

        try:
            quantity = parse_quantity(str(value).strip())
        except QuantityError as exc:
            raise TrainError(f"{what} {value!r}: {exc}; write a size such as 64MB or 80GiB", exit_code=2) from None
        if quantity.dimension not in ("bytes", "count"):
            raise TrainError(f"{what} {value!r} is not a size: write one such as 64MB or 80GiB", exit_code=2)
        number = float(quantity.value)
    if not (math.isfinite(number) and number >= 1):
        raise TrainError(f"{what} must be a positive size such as 64MB, got {value!r}", exit_code=2)
    return int(number)


def _at_least_one(name: str):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainError(f"{name} must be a whole number of at least 1, got {value!r}", exit_code=2)

    return check


def _steps(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    _at_least_one("steps")(instance, attribute, value)
    if value is not None and value > MAX_STEPS:
        raise TrainError(
            f"steps must be at most {MAX_STEPS:,} (the step counter is a 32-bit integer), got {value:,}", exit_code=2
        )


def _dp_impl(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and value not in DP_IMPLS:
        raise TrainError(f"dp_impl must be one of {', '.join(DP_IMPLS)}, got {value!r}", exit_code=2)


def _path(value: Any) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen(kw_only=True)
class TrainOptions:
    """One run's options (see the module docstring). Every field has a default: the plan's
    run, written to ``runs/<project>``, with a progress display."""

    steps: int | None = attrs.field(default=None, validator=_steps)
    """Optimizer steps in all (default: the plan's: `train.steps`, else data.tokens / batch)."""
    out: Path | None = attrs.field(default=None, converter=_path)
    """The output folder (default: ``runs/<project name as a slug>``)."""
    resume: bool = False
    """Continue from the latest good checkpoint in `out`."""
    overrides: tuple[str, ...] = attrs.field(default=(), converter=override_list)
    """Spec overrides (``train.sharding=fsdp``); the plan is made with them."""
    checkpoint_every: int | None = attrs.field(default=None, validator=_at_least_one("checkpoint_every"))
    eval_every: int | None = attrs.field(default=None, validator=_at_least_one("eval_every"))
    eval_batches: int | None = attrs.field(default=None, validator=_at_least_one("eval_batches"))
    devices: int | None = attrs.field(default=None, validator=_at_least_one("devices"))
    """Devices per process (on CPU, creates that many); default: the plan's count."""
    tensor_parallel: int | None = attrs.field(default=None, validator=_at_least_one("tensor_parallel"))
    """Split each layer over groups of this many devices (heads, d_ff, vocabulary; Shoeybi
    et al. 2019); the other devices / tensor_parallel are data-parallel groups. Default: the
    plan's layout (a deviation otherwise, the global batch kept)."""
    sequence_parallel: bool | None = None
    """Also split the residual stream's positions over the tensor-parallel group
    (Korthikanti et al. 2022, Sec. 4.2.2). Default: the plan's (a deviation otherwise)."""
    precision: str | None = None
    """Train in another precision than the plan's (a deviation)."""
    adaptation: str | None = None
    """Another adaptation method than the plan's (`finetune` runs a LoRA plan in full; a deviation)."""
    coordinator: str | None = None
    num_processes: int | None = attrs.field(default=None, validator=_at_least_one("num_processes"))
    process_id: int | None = None
    dp_impl: str | None = attrs.field(default=None, validator=_dp_impl)
    device_memory: int | None = attrs.field(default=None, converter=parse_bytes)
    """The memory of one device in bytes (``64MB`` is read too), instead of what the device
    reports; default: `GENAISDK_DEVICE_MEMORY`, else the device's own figure."""
    allow_data_outside: bool = False
    """Read `data.source` entries outside the spec's folder (a spec alone never can)."""
    quiet: bool = False
    progress: Any = None
    """True: a progress bar; False: plain lines; None: a bar on a terminal; or an object
    with the `genaisdk.backend.jax.progress.Progress` methods."""
    stream: Any = None
    """Where the progress display writes (default: standard output)."""

    def evolve(self, **changes: Any) -> TrainOptions:
        return attrs.evolve(self, **changes)

    def configured_device_memory(self) -> tuple[int, str] | None:
        """The device memory set by the user, and where: `device_memory`, else the
        environment; None when neither is set."""
        if self.device_memory is not None:
            return self.device_memory, "--device-memory"
        text = os.environ.get(DEVICE_MEMORY_ENV, "").strip()
        if not text:
            return None
        return parse_bytes(text, what=DEVICE_MEMORY_ENV), DEVICE_MEMORY_ENV
