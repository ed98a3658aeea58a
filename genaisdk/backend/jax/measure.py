"""`genai measure`: compile the planned training step ahead of time and put XLA's own
numbers next to the plan's.

Nothing is allocated: the step is lowered on `jax.ShapeDtypeStruct`s that carry their
shardings and compiled for N virtual CPU devices (`genaisdk.backend.jax.compile.compile_step`,
the same helper `genai train` compiles its step with), so a 7B model on 64 devices is
measured on a laptop. The compiled executable reports

- `memory_analysis()`: bytes per device of the arguments (train state and batch), the
  outputs (the new state, aliased onto the donated arguments), the temporaries (gradients,
  activations, the working copy of mixed-precision weights, collectives' buffers) and the
  generated code;
- `cost_analysis()`: FLOPs per device. XLA counts the body of a loop once, not once per
  iteration, so the scanned layers and micro-steps would be undercounted. The FLOPs are
  therefore taken from the same step compiled with every loop unrolled at depth 1 and 2
  (and 1-2 or 2-3 micro-steps): FLOPs are exactly affine in each depth and in the number
  of micro-steps (with a depth × micro-step cross term), so a least-squares fit over those
  points, evaluated at the real depth and micro-steps, is XLA's count for the real step.

An adapter run (LoRA, QLoRA) adds the plan's adaptation memory beside the run's own
arrays, per device: the trainable parameters (the adapter leaves), the adapters' bytes
(fp32 under mixed precision, by the one rule both sides follow:
`genaisdk.estimate.adaptation.adapter_state_bytes`), the frozen base's bytes as the step
receives it (NF4 codes and constants, or the compute dtype) and the optimizer state's
bytes (the moments of the adapters; the scalar step counter is not counted).

The plan is made for the same configuration (devices, strategy, precision, micro-batch,
accumulation) with `train.attention = materialized`, since this backend computes the
attention scores in full; its per-device memory and its hardware FLOPs per step are shown
beside XLA's with the ratio.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from genaisdk.backend.jax.config import BackendError, RunConfig, UnsupportedError
from genaisdk.core.serialize import fields_json

FLAG = "--xla_force_host_platform_device_count"


@attrs.frozen(kw_only=True)
class Row:
    """One line of the comparison: a plan estimate and XLA's figure (either may be None)."""

    name: str
    plan: float | None
    xla: float | None
    unit: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.plan in (None, 0) or self.xla is None:
            return None
        return self.xla / self.plan

    def to_json(self) -> dict[str, Any]:
        return {**fields_json(self), "ratio": self.ratio}


@attrs.frozen(kw_only=True)
class Measurement:
    """XLA's compiled numbers for one configuration, next to the plan's."""

    devices: int
    config: Mapping[str, Any]
    xla: Mapping[str, float]
    plan: Mapping[str, float]
    rows: tuple[Row, ...]
    fit_points: tuple[Mapping[str, float], ...] = ()
    notes: tuple[str, ...] = ()

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return fields_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(
            devices=data["devices"],
            config=data["config"],
            xla=data["xla"],
            plan=data["plan"],
            rows=tuple(Row(**{k: v for k, v in r.items() if k != "ratio"}) for r in data["rows"]),
            fit_points=tuple(data.get("fit_points", ())),
            notes=tuple(data.get("notes", ())),
        )


# ----------------------------------------------------------------------------- configuration


def _planned(spec: Any, devices: int | None, registry: Any) -> tuple[Any, Any]:
    """The spec with the device count and the attention the backend runs, and its plan."""
    from genaisdk.planning.pipeline import plan as make_plan

    project = spec.project
    budget = project.budget if devices is None else attrs.evolve(project.budget, devices=devices)
    train = attrs.evolve(project.train, attention="materialized")
    spec = attrs.evolve(spec, project=attrs.evolve(project, budget=budget, train=train))
    return spec, make_plan(spec, registry=registry)


def config_for_plan(spec: Any, plan: Any, *, registry: Any) -> RunConfig:
    """The run the plan describes, through the one bridge (`genaisdk.planning.run_settings`):
    its family, objective, precision, strategy, micro-batch, accumulation and devices, with
    the model's exact dimensions. A plan without a step count compiles one step."""
    from genaisdk.planning.run_settings import NothingToTrain, RunSettingsError, run_settings

    try:
        settings = run_settings(plan, spec, steps=None if plan.train.steps else 1, registry=registry)
    except NothingToTrain:
        raise  # a valid plan with no step to compile: `genai measure` says so and succeeds
    except RunSettingsError as exc:
        raise BackendError(str(exc)) from None
    return RunConfig.from_settings(settings, registry=registry)


# ----------------------------------------------------------------------------- compiling


def _cost_flops(compiled: Any) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float(cost.get("flops", 0.0))


def _depth_fields(config: RunConfig) -> tuple[str, ...]:
    if config.architecture.family == "encoder_decoder":
        return ("layers", "decoder_layers")
    return ("layers",)


def _real_depths(config: RunConfig) -> tuple[int, ...]:
    dims = config.dims
    if config.architecture.family == "encoder_decoder":
        return (dims.layers, dims.n_decoder_layers)
    return (dims.layers,)


def fitted_flops(config: RunConfig, mesh: Any) -> tuple[float, list[dict[str, float]]]:
    """XLA's FLOPs per device for the real step, from unrolled compiles at small depths.

    Basis: 1, each depth L_i, the micro-steps A, and A·L_i (module docstring). Micro-step
    counts are {1} when the real step has one (it then has no accumulation loop at all),
    else {2, 3}, so that every sample has the same structure as the real step.
    """
    import numpy as np

    from genaisdk.backend.jax.compile import compile_step
    from genaisdk.backend.jax.step import Trainer

    fields = _depth_fields(config)
    accumulations = (1,) if config.accumulation == 1 else (2, 3)
    rows, values, points = [], [], []
    for depths in itertools.product((1, 2), repeat=len(fields)):
        for accumulation in accumulations:
            dims = config.dims.evolve(**dict(zip(fields, depths)))
            sample = config.evolve(
                dims=dims,
                accumulation=accumulation,
                global_batch=config.micro_batch * config.data_parallel * accumulation,
            )
            flops = _cost_flops(compile_step(Trainer(sample, mesh, unroll=True)).executable)
            rows.append([1.0, *depths, accumulation, *(accumulation * d for d in depths)])
            values.append(flops)
            points.append({**dict(zip(fields, depths)), "accumulation": accumulation, "flops": flops})
    basis = np.asarray(rows)
    keep = [j for j in range(basis.shape[1]) if np.ptp(basis[:, j]) > 0 or j == 0]
    coefficients, *_ = np.linalg.lstsq(basis[:, keep], np.asarray(values), rcond=None)
    real = np.asarray(
        [1.0, *_real_depths(config), config.accumulation, *(config.accumulation * d for d in _real_depths(config))]
    )
    return float(real[keep] @ coefficients), points


def _compile(config: RunConfig, mesh: Any) -> tuple[Any, Any]:
    from genaisdk.backend.jax.compile import compile_step
    from genaisdk.backend.jax.step import Trainer

    trainer = Trainer(config, mesh)
    return trainer, compile_step(trainer)


def _cpu_mesh(devices: int, tensor_parallel: int = 1, kv_heads: int | None = None) -> Any:
    import jax

    from genaisdk.backend.jax.sharding import make_mesh

    cpus = jax.devices("cpu")
    if len(cpus) < devices:
        raise BackendError(f"{devices} CPU devices needed, {len(cpus)} available in this process")
    return make_mesh(cpus[:devices], tensor_parallel=tensor_parallel, kv_heads=kv_heads)


def device_bytes(tree: Any, device: int = 0) -> int:
    """Bytes of a tree's arrays held on one device: for placed `jax.Array`s, the nbytes of
    the shards on `jax.devices()[device]`; for `ShapeDtypeStruct`s carrying a sharding,
    the shard shape's size times the itemsize (what placing them would hold). A
    `QuantizedArray`'s codes and constants count as its leaves."""
    import math

    import jax

    total = 0
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            target = leaf.sharding.mesh.devices.flat[device] if hasattr(leaf.sharding, "mesh") else jax.devices()[device]
            total += sum(s.data.nbytes for s in leaf.addressable_shards if s.device == target)
        else:
            shape = leaf.sharding.shard_shape(leaf.shape) if getattr(leaf, "sharding", None) is not None else leaf.shape
            total += math.prod(shape) * leaf.dtype.itemsize
    return total


def run_adaptation(trainer: Any) -> dict[str, float]:
    """An adapter run's own adaptation memory, per device (module docstring): `trainable`
    parameters (the adapter leaves' sizes), `frozen_bytes` (the frozen base as the step
    receives it), `optimizer_bytes` (the optimizer state's non-scalar leaves). Empty for a
    run that trains every weight."""
    import math

    import jax

    if trainer.adapters is None:
        return {}
    state = trainer.abstract_state()
    moments = [leaf for leaf in jax.tree.leaves(state.opt_state) if len(leaf.shape) > 0]
    return {
        "trainable": float(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state.params))),
        "adapter_bytes": float(device_bytes(state.params)),
        "frozen_bytes": float(device_bytes(trainer.abstract_frozen())),
        "optimizer_bytes": float(device_bytes(moments)),
    }


def planned_adaptation(plan: Any, registry: Any) -> dict[str, float]:
    """The plan's adaptation memory, per device, split out of its weights and optimizer
    figures by the records it was made with (`genaisdk.planning.derive` writes the same
    terms): `trainable` parameters; `adapter_bytes` = trainable x the adapters' bytes per
    weight (`genaisdk.estimate.adaptation.adapter_state_bytes`: fp32 under mixed
    precision); `frozen_bytes` = weights - adapter_bytes (the frozen base, a k-bit base's
    constants and unquantized tensors included); `optimizer_bytes` = the optimizer
    figure's state share, state / (state + the adapters' master bytes, 0 under mixed
    precision). Empty when every weight trains."""
    from genaisdk.estimate.adaptation import adapter_state_bytes
    from genaisdk.estimate.memory import optimizer_state_bytes

    trainable = float(plan.model.trainable_params)
    if not plan.train.adaptation or trainable >= float(plan.model.params):
        return {}
    precision = registry.get("precisions", plan.train.precision)
    optimizer = registry.get("optimizers", plan.train.optimizer)
    strategy = registry.get("strategies", plan.train.strategy)
    devices = float(plan.train.devices)
    per_device = plan.memory.per_device
    weight, _, master = (float(x) for x in adapter_state_bytes(precision.weight_bytes, precision.gradient_bytes, precision.master_bytes))
    adapters = trainable * weight / (devices if strategy.shards_weights else 1.0)
    state = float(optimizer_state_bytes(optimizer.state_bytes, optimizer.state_dtype, plan.train.optimizer_state))
    share = state / (state + master) if state else 0.0
    return {
        "trainable": trainable,
        "adapter_bytes": adapters,
        "frozen_bytes": float(per_device.weights) - adapters,
        "optimizer_bytes": float(per_device.optimizer) * share,
    }


def measure_config(
    config: RunConfig,
    *,
    plan: Any = None,
    fit_flops: bool = True,
    notes: tuple[str, ...] = (),
    compiled: tuple[Any, Any] | None = None,
    adaptation: Mapping[str, float] | None = None,
) -> Measurement:
    """Compile `config`'s train step on `config.devices` virtual CPU devices and compare.

    `compiled`: a (Trainer, `compile_step(trainer)`) pair for `config` already built (the
    compiled step also trains: `Trainer.use_compiled`), measured as it is. `adaptation`:
    the plan's adaptation memory (`planned_adaptation`), shown beside the run's for an
    adapter run."""
    import numpy as np

    if compiled is None:
        mesh = _cpu_mesh(config.devices, config.tensor_parallel, config.dims.n_kv_heads)
        trainer, step = _compile(config, mesh)
    else:
        trainer, step = compiled
        mesh = trainer.mesh
    memory = step.memory
    batch_bytes = sum(
        int(np.prod(s.sharding.shard_shape(s.shape))) * s.dtype.itemsize for s in trainer.abstract_batch().values()
    )
    args = float(memory.arguments)
    temps = float(memory.temporaries)
    xla = {
        "arguments": args,
        "state": args - batch_bytes,
        "batch": float(batch_bytes),
        "outputs": float(memory.outputs),
        "aliased": float(memory.aliased),
        "temporaries": temps,
        "generated_code": float(memory.generated_code),
        "peak": float(memory.peak),
        "flops_loop_bodies_once": _cost_flops(step.executable),
        "params": float(trainer.model.num_params()),
        "model_flops_per_device": trainer.flops_per_step / config.devices,
    }
    ran = run_adaptation(trainer)
    xla.update({f"adapt_{k}": v for k, v in ran.items()})
    points: list[dict[str, float]] = []
    if fit_flops:
        xla["flops"], points = fitted_flops(config, mesh)

    if config.precision.compute_dtype in ("bf16", "fp16"):
        notes = (
            *notes,
            "the CPU compiler runs 16-bit matrix products in fp32 (it inserts converts), so its "
            "temporaries overstate an accelerator's",
        )
    planned: dict[str, float] = {}
    if plan is not None:
        per_device = plan.memory.per_device
        overheads = sum(float(v) for v in per_device.overheads.values())
        tokens_per_step = float(config.tokens_per_step)
        hardware_per_token = float(plan.compute.hardware_flops) / float(plan.data.tokens)
        planned = {
            "params": float(plan.model.params),
            "weights": float(per_device.weights),
            "gradients": float(per_device.gradients),
            "optimizer": float(per_device.optimizer),
            "activations": float(per_device.activations),
            "overheads": overheads,
            "total": float(per_device.total),
            "flops": hardware_per_token * tokens_per_step / config.devices,
        }
        planned.update({f"adapt_{k}": float(v) for k, v in (adaptation or {}).items()})
    rows = [
        Row(name="parameters", plan=planned.get("params"), xla=xla["params"], unit="params", note="JAX model"),
        Row(
            name="state (weights + optimizer)",
            plan=_sum(planned, "weights", "optimizer"),
            xla=xla["state"],
            unit="bytes",
            note="XLA: arguments less the batch",
        ),
        Row(
            name="transients (gradients + activations)",
            plan=_sum(planned, "gradients", "activations"),
            xla=temps,
            unit="bytes",
            note="XLA: temporaries",
        ),
        Row(
            name="total per device",
            plan=(planned["total"] - planned["overheads"]) if planned else None,
            xla=xla["peak"],
            unit="bytes",
            note="plan without runtime overheads; XLA: arguments + temporaries + unaliased outputs",
        ),
        Row(
            name="FLOPs per device per step",
            plan=planned.get("flops"),
            xla=xla.get("flops"),
            unit="FLOPs",
            note="plan: hardware FLOPs (recompute included)",
        ),
    ]
    if ran:
        rows += [
            Row(
                name="trainable parameters",
                plan=planned.get("adapt_trainable"),
                xla=ran["trainable"],
                unit="params",
                note="run: the adapter leaves",
            ),
            Row(
                name="adapter bytes",
                plan=planned.get("adapt_adapter_bytes"),
                xla=ran["adapter_bytes"],
                unit="bytes",
                note="run: the adapter leaves in their dtype (fp32 under mixed precision, the master copy itself)",
            ),
            Row(
                name="frozen-weight bytes",
                plan=planned.get("adapt_frozen_bytes"),
                xla=ran["frozen_bytes"],
                unit="bytes",
                note="run: the frozen base as the step receives it, per device",
            ),
            Row(
                name="optimizer-state bytes",
                plan=planned.get("adapt_optimizer_bytes"),
                xla=ran["optimizer_bytes"],
                unit="bytes",
                note="run: the adapters' optimizer moments",
            ),
        ]
    summary = {
        "family": config.architecture.family,
        "objective": config.objective.key,
        "precision": config.precision.key,
        "optimizer": config.optimizer.key,
        "strategy": config.strategy.key,
        "recompute": config.recompute,
        "devices": config.devices,
        "tensor_parallel": config.tensor_parallel,
        "sequence_parallel": config.sequence_parallel,
        "seq_len": config.seq_len,
        "micro_batch": config.micro_batch,
        "accumulation": config.accumulation,
        "global_batch": config.global_batch,
        "layers": config.dims.layers,
        "d_model": config.dims.d_model,
    }
    return Measurement(
        devices=config.devices,
        config=summary,
        xla=xla,
        plan=planned,
        rows=tuple(rows),
        fit_points=tuple(points),
        notes=notes,
    )


def _sum(values: Mapping[str, float], *keys: str) -> float | None:
    if not values:
        return None
    return float(sum(values[k] for k in keys))


# ----------------------------------------------------------------------------- entry points


def _backends_initialized() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True


def _prepare_devices(devices: int) -> bool:
    """Make `devices` CPU devices available in this process if JAX has not started yet;
    False when it has started with fewer (the caller then runs in a subprocess)."""
    if not _backends_initialized():
        flags = os.environ.get("XLA_FLAGS", "")
        parts = [p for p in flags.split() if not p.startswith(FLAG)]
        os.environ["XLA_FLAGS"] = " ".join(parts + [f"{FLAG}={devices}"])
        import jax

        jax.config.update("jax_platforms", "cpu")
        return True
    import jax

    return len(jax.devices("cpu")) >= devices


def measure(spec: Any, *, devices: int | None = None, registry: Any = None, fit_flops: bool = True) -> Measurement:
    """Measure a spec's planned training step (see the module docstring).

    `devices` overrides the plan's device count. Runs in this process when it can give JAX
    that many CPU devices, else in a fresh Python process.
    """
    if registry is None:
        from genaisdk.registry import get_registry

        registry = get_registry()
    from genaisdk.backend.jax.distributed import DistributedError, check_device_count

    planned_spec, plan = _planned(spec, devices, registry)
    count = int(plan.train.devices)
    try:
        check_device_count(count, what="--devices" if devices is not None else "the plan's device count")
    except DistributedError as exc:
        raise BackendError(str(exc)) from None
    if not _prepare_devices(count):
        return _in_subprocess(spec, devices=count, fit_flops=fit_flops)
    config = config_for_plan(planned_spec, plan, registry=registry)
    notes = ["attention computed in full (materialized); the plan is made the same way"]
    return measure_config(
        config, plan=plan, fit_flops=fit_flops, notes=tuple(notes), adaptation=planned_adaptation(plan, registry)
    )


def spec_request(spec: Any, *, devices: int, fit_flops: bool) -> dict[str, Any]:
    """What the measuring subprocess needs, as JSON data: the spec's own text, its file name
    and its `--set` overrides (the subprocess parses them again, like any spec), never a
    serialized Python object (a pickle would run whatever code its bytes name)."""
    source = getattr(spec, "source", "")
    if not source:
        raise BackendError("this spec has no source text to measure in a fresh process; load it from a file or text")
    overrides = [line for line in (getattr(spec, "override_source", "") or "").splitlines() if line.strip()]
    return {
        "source": source,
        "filename": str(getattr(spec, "filename", "<spec>")),
        "overrides": overrides,
        "devices": int(devices),
        "fit_flops": bool(fit_flops),
    }


def spec_from_request(request: Any) -> Any:
    """The spec of a `spec_request` (read as JSON); BackendError for anything malformed."""
    from genaisdk.spec import loads

    if not isinstance(request, dict) or not isinstance(request.get("source"), str):
        raise BackendError("the measuring subprocess got a malformed request")
    overrides = request.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise BackendError("the measuring subprocess got malformed overrides")
    return loads(request["source"], filename=str(request.get("filename", "<spec>")), overrides=overrides or None)


def _in_subprocess(spec: Any, *, devices: int, fit_flops: bool) -> Measurement:
    env = dict(os.environ)
    flags = [p for p in env.get("XLA_FLAGS", "").split() if not p.startswith(FLAG)]
    env["XLA_FLAGS"] = " ".join(flags + [f"{FLAG}={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    payload = json.dumps(spec_request(spec, devices=devices, fit_flops=fit_flops)).encode()
    result = subprocess.run(
        [sys.executable, "-m", "genaisdk.backend.jax.measure"],
        input=payload,
        capture_output=True,
        env=env,
        check=False,
    )
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    reply = json.loads(lines[-1]) if result.returncode in (0, _USER_ERROR) and lines else None
    if reply is None:
        raise BackendError(f"measuring in a subprocess failed:\n{result.stderr.decode(errors='replace')[-4000:]}")
    if "error" in reply:
        # The configuration's own problem (an unsupported precision or strategy): the same
        # one-line error as in this process, not the subprocess's traceback.
        raise (UnsupportedError if reply.get("unsupported") else BackendError)(reply["error"])
    return Measurement.from_json(reply)


_USER_ERROR = 3
"""The subprocess's exit status for a BackendError, reported as a JSON line."""


def _main() -> None:
    from genaisdk.diagnostics import SpecError

    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        spec = spec_from_request(request)
        measurement = measure(spec, devices=int(request["devices"]), fit_flops=bool(request["fit_flops"]))
    except (BackendError, SpecError, ValueError, KeyError, TypeError) as exc:
        sys.stdout.write(json.dumps({"error": str(exc), "unsupported": isinstance(exc, UnsupportedError)}) + "\n")
        sys.exit(_USER_ERROR)
    sys.stdout.write(json.dumps(measurement.to_json()) + "\n")


if __name__ == "__main__":
    _main()
