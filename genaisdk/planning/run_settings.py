"""The one bridge from a plan to a run: `run_settings(plan, spec) -> RunSettings`.

`genai train` (and its `--dry-run`), `genai measure` and every later consumer read the run
they execute from here, never from the spec: the model's exact dimensions, the family,
objective and adaptation, the precision, optimizer, strategy, device count, parallel layout
(`tensor_parallel`, `pipeline_parallel`, `data_parallel`, `sequence_parallel`,
`virtual_stages`), global batch, micro-batch, accumulation, recomputation, attention and
context are the plan's, field by field, under the plan's JSON names. This module decides
only what the plan does not: the
optimizer schedule a run needs (learning rate, warmup, weight decay, the cosine floor),
each with its source, in one place.

A run may differ from its plan only through a named option (`devices`, `tensor_parallel`,
`sequence_parallel`, `steps`, `precision`, `adaptation`): a CPU laptop run of a 64-GPU
spec, another tensor-parallel layout of the same devices, a short smoke run, a precision
the machine cannot compute in, a LoRA plan run as a full fine-tune (or a fine-tuning plan
run with adapters). Each field that then deviates is listed in `RunSettings.deviations` with
the planned value, the run's and why; `genai train` prints them and records them in
`run.json`. Nothing here imports JAX (a dry run is well under a second).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from genaisdk.core.serialize import COUNT, fields_json
from genaisdk.dims import Dimensions
from genaisdk.plans import AdaptSection, Plan

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.registry import Registry
    from genaisdk.spec.model import Spec

SCHEMA = "genaisdk.run/1"

DEFAULT_LEARNING_RATE = 6e-4
"""GPT-3 Small's peak learning rate (Brown et al. 2020, Table 2.1): a safe default for a
spec that names none."""

DEFAULT_MIN_LR_RATIO = 0.1
"""Cosine decay to 10% of the peak (Hoffmann et al. 2022, Sec. 3 / Appendix B; GPT-3 Sec. 2.3)."""

DEFAULT_WEIGHT_DECAY = 0.1
"""GPT-3's weight decay (Brown et al. 2020, Appendix B), where the optimizer record names none."""

WARMUP_SHARE = 0.05
"""Warmup, where the spec names none: 5% of the steps ..."""

MAX_DEFAULT_WARMUP = 2000
"""... and at most 2000 steps (LLaMA, Touvron et al. 2023, Sec. 2.2)."""


class RunSettingsError(ValueError):
    """The plan cannot be run (nothing trains, no step count, an option out of range)."""


class NothingToTrain(RunSettingsError):
    """The adaptation method trains nothing (`prompt`): a valid plan with no run, by design.
    The message says so and what to do instead (`genai generate`, `genai eval`);
    `genai train` prints it and exits 0, writing nothing."""


def trains_nothing(plan: Any) -> bool:
    """Whether `plan` trains nothing (prompting: no micro-batch, no strategy)."""
    return plan.train.micro_batch < 1 or plan.train.strategy == "none"


def nothing_to_train(method: str, spec: Any = None) -> NothingToTrain:
    """The message for a method that trains nothing: the model is prompted as it is, and
    `genai generate` and `genai eval` are how to use it."""
    model = getattr(getattr(getattr(spec, "project", None), "model", None), "checkpoint", None)
    target = f'the checkpoint folder model.from = "{model}"' if model else "a checkpoint folder or a run folder"
    return NothingToTrain(
        f"adapt.method = {method}: nothing is trained and nothing is written; the model is used as it is, "
        f"with the task shown in the prompt (in-context). `genai generate MODEL --prompt \"...\"` continues a "
        f"prompt with {target} (KV-cache decoding, at --precision bf16, int8 or int4), and "
        "`genai eval MODEL --data FILE` measures it (loss, perplexity, the task's metric); to train, choose "
        "adapt.method = finetune, lora or qlora"
    )


@attrs.frozen(kw_only=True)
class Deviation:
    """A field where the run differs from its plan, and the named option that asked."""

    field: str
    """The plan JSON's name (`devices`, `grad_accumulation`, ...)."""
    plan: Any
    run: Any
    why: str


@attrs.frozen(kw_only=True)
class RunModel:
    """The model, as `genai plan --json` names it in `model`."""

    architecture: str
    """The architecture record the backend builds (`decoder`, `encoder-decoder`, a plugin's)."""
    family: str
    objective: str
    params: float = attrs.field(metadata=COUNT)
    """The architecture's exact count for `dims`, the number the backend must build."""
    preset: str | None
    context: int
    dims: Dimensions = attrs.field(metadata={"genaisdk.json.name": "dimensions"})


@attrs.frozen(kw_only=True)
class RunTrain:
    """The training configuration, as `genai plan --json` names it in `train`, plus the
    schedule the run needs (learning rate, warmup, weight decay, clipping, seed)."""

    precision: str
    optimizer: str
    optimizer_state: str
    """The dtype the optimizer's moments are kept in (the plan's `train.optimizer_state`)."""
    strategy: str
    devices: int
    hardware: str
    micro_batch: int
    tensor_parallel: int
    """t: the devices each layer is split over (the backend's tensor-parallel mesh group)."""
    pipeline_parallel: int
    """p: pipeline stages (the JAX backend runs p = 1 only)."""
    data_parallel: int
    """d = devices / (t·p): the replicas the global batch is divided over."""
    sequence_parallel: bool
    """The residual stream's positions split over the tensor-parallel group too."""
    virtual_stages: int
    grad_accumulation: int
    global_batch_sequences: int
    global_batch_tokens: float = attrs.field(metadata=COUNT)
    recompute: str
    attention: str
    adaptation: str
    steps: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    min_lr_ratio: float
    grad_clip: float | None
    seed: int


@attrs.frozen(kw_only=True)
class RunSettings:
    """One run, fully resolved from its plan (see the module docstring)."""

    project: str
    spec_file: str
    model: RunModel
    adapt: AdaptSection
    train: RunTrain
    deviations: tuple[Deviation, ...] = attrs.field(default=(), converter=tuple)

    def to_json(self) -> dict[str, Any]:
        """`genai train --dry-run --json`: the plan JSON's names, plus `deviations`."""
        return {"schema": SCHEMA, **fields_json(self)}


def run_settings(
    plan: Plan,
    spec: Spec,
    *,
    devices: int | None = None,
    tensor_parallel: int | None = None,
    sequence_parallel: bool | None = None,
    steps: int | None = None,
    precision: str | None = None,
    adaptation: str | None = None,
    devices_why: str | None = None,
    registry: Registry | None = None,
) -> RunSettings:
    """The run of `plan` (made from `spec`), with the named options applied.

    `devices`: run on this many devices instead of the plan's; `tensor_parallel`: split each
    layer over groups of this many of them. Either way the global batch is kept, so each
    data-parallel group (devices / tensor_parallel of them) takes its share in micro-steps
    of at most the plan's micro-batch. `sequence_parallel`: split the residual stream's
    positions over the tensor-parallel group too. `steps`: optimizer steps in all.
    `precision`: a precision record's name. `adaptation`: an adaptation record's name
    (`finetune` trains every weight of a LoRA plan; `lora` trains adapters, with the
    record's defaults, on a fine-tuning plan). `devices_why`
    words the devices deviation when the option came from elsewhere (a multi-host runtime).
    Raises NothingToTrain (a RunSettingsError) for a plan that trains nothing, RunSettingsError
    for one with no step count.
    """
    t, m = plan.train, plan.model
    if trains_nothing(plan):
        raise nothing_to_train(t.adaptation, spec)
    if m.dims is None or m.architecture is None:
        raise RunSettingsError("this plan does not carry the model's dimensions (made by another genaisdk?)")
    if registry is None:
        from genaisdk.registry import get_registry

        registry = get_registry()
    for name, value in (("devices", devices), ("tensor_parallel", tensor_parallel), ("steps", steps)):
        if value is not None and value < 1:
            raise RunSettingsError(f"{name} must be at least 1, got {value}")
    deviations: list[Deviation] = []

    def deviate(field: str, planned: Any, run: Any, why: str) -> None:
        if planned != run:
            deviations.append(Deviation(field=field, plan=planned, run=run, why=why))

    # The plan's layout: d = devices / (tensor x pipeline) data-parallel replicas.
    planned_tensor = int(t.tensor_parallel)
    planned_sequence = bool(t.sequence_parallel)
    run_devices, micro, accumulation = t.devices, t.micro_batch, int(t.grad_accumulation or 1)
    run_tensor = planned_tensor if tensor_parallel is None else int(tensor_parallel)
    pipeline = int(t.pipeline_parallel)
    replicas = int(t.data_parallel)
    global_seq = int(t.global_batch_sequences or micro * replicas * accumulation)
    reasons = []
    if devices is not None and devices != t.devices:
        reasons.append(devices_why or f"--devices {devices}")
        run_devices = int(devices)
    if run_tensor != planned_tensor:
        reasons.append(f"--tensor-parallel {run_tensor}")
    model_parallel = run_tensor * pipeline
    if pipeline > 1 and run_devices % model_parallel:
        raise RunSettingsError(
            f"{', '.join(reasons)}: the plan splits each replica over tensor x pipeline = {run_tensor} x {pipeline}"
            f" = {model_parallel} devices, which {run_devices} is not a multiple of; use a multiple, or plan it with"
            " --set train.tensor=1 --set train.pipeline=1"
        )
    if run_devices % run_tensor:
        raise RunSettingsError(
            f"tensor parallel {run_tensor} does not divide the {run_devices} devices; pick a divisor of {run_devices} "
            "with --tensor-parallel"
        )
    if reasons:
        why = ", ".join(reasons)
        replicas = run_devices // model_parallel
        per_group = max(1, math.ceil(global_seq / replicas))
        micro = max(1, min(t.micro_batch, per_group))
        accumulation = math.ceil(per_group / micro)
        unit = "device" if model_parallel == 1 else "data-parallel group"
        deviate("devices", t.devices, run_devices, why)
        deviate("tensor_parallel", planned_tensor, run_tensor, why)
        deviate("data_parallel", t.data_parallel, replicas, f"{why}: devices / (tensor x pipeline)")
        deviate("micro_batch", t.micro_batch, micro, f"{why}: at most {per_group} sequences per {unit} per step")
        deviate("grad_accumulation", t.grad_accumulation, accumulation, f"{why}: the global batch kept over fewer {unit}s")
        deviate("global_batch_sequences", global_seq, micro * replicas * accumulation, f"{why}: whole micro-batches per {unit}")
        global_seq = micro * replicas * accumulation
    run_sequence = planned_sequence if sequence_parallel is None else bool(sequence_parallel)
    flag = "--sequence-parallel" if run_sequence else "--no-sequence-parallel"
    deviate("sequence_parallel", planned_sequence, run_sequence, flag)

    run_precision = t.precision
    if precision is not None:
        record = registry.get("precisions", precision)
        if record is None:
            raise RunSettingsError(f"unknown precision {precision!r}; known: {', '.join(registry.names('precisions'))}")
        run_precision = record.key
        deviate("precision", t.precision, run_precision, f"--precision {precision}")

    adapt = plan.adapt or AdaptSection(method=t.adaptation)
    if adaptation is not None:
        record = registry.get("adaptations", adaptation)
        if record is None:
            raise RunSettingsError(f"unknown adaptation {adaptation!r}; known: {', '.join(registry.names('adaptations'))}")
        if record.key != adapt.method:
            if not record.trains:
                raise nothing_to_train(record.key, spec)
            deviate("adaptation", adapt.method, record.key, f"--adapt {adaptation}")
            adapt = _adapted(record, adapt)

    run_steps = t.steps
    if steps is not None:
        deviate("steps", t.steps, int(steps), f"--steps {steps}")
        run_steps = int(steps)
    if run_steps is None:
        raise RunSettingsError("the plan has no step count (no data.tokens and no train.steps): give one of them, or --steps N")
    _tokens_deviation(spec, run_steps, global_seq, int(m.context), steps, deviate)

    schedule = _schedule(spec, registry, t.optimizer, run_steps)
    return RunSettings(
        project=plan.project.name,
        spec_file=plan.spec_file,
        model=RunModel(
            architecture=m.architecture,
            family=m.family,
            objective=m.objective,
            params=m.params,
            preset=m.preset,
            context=m.context,
            dims=m.dims,
        ),
        adapt=adapt,
        train=RunTrain(
            precision=run_precision,
            optimizer=t.optimizer,
            optimizer_state=t.optimizer_state,
            strategy=t.strategy,
            devices=run_devices,
            hardware=t.hardware,
            micro_batch=micro,
            tensor_parallel=run_tensor,
            pipeline_parallel=t.pipeline_parallel,
            data_parallel=replicas,
            sequence_parallel=run_sequence,
            virtual_stages=t.virtual_stages,
            grad_accumulation=accumulation,
            global_batch_sequences=global_seq,
            global_batch_tokens=float(global_seq * m.context),
            recompute=t.recompute,
            attention=t.attention,
            adaptation=adapt.method,
            steps=run_steps,
            **schedule,
        ),
        deviations=tuple(deviations),
    )


def _tokens_deviation(spec: Any, run_steps: int, global_seq: int, context: int, option: int | None, deviate: Any) -> None:
    """The spec's `data.tokens` against what the run trains (steps x global batch x
    context) when a step count decides the length instead (`train.steps`, or `--steps`):
    a deviation whenever they differ by a step's batch or more, so that a run of 20.5k
    tokens under `data.tokens = 100k` says so rather than replacing it silently."""
    from genaisdk.core.numbers import fmt_count

    wanted = getattr(getattr(spec.project, "data", None), "tokens", None)
    if not wanted:
        return
    batch = global_seq * context
    trained = run_steps * batch
    if abs(trained - wanted) < batch:
        return
    source = f"--steps {option}" if option is not None else f"train.steps = {run_steps}"
    deviate(
        "tokens",
        int(wanted),
        int(trained),
        f"{source}: {run_steps} steps x {global_seq} sequences x {context} tokens; data.tokens = "
        f"{fmt_count(wanted)} would take {math.ceil(wanted / batch)} steps",
    )


def _adapted(record: Any, planned: AdaptSection) -> AdaptSection:
    """The adaptation section of a run whose method differs from its plan's: every weight
    trains (finetune, pretrain), or adapters with the method record's defaults (a LoRA run
    of a fine-tuning plan: rank, targets, alpha, dropout and frozen precision of `record`)."""
    if record.full or len(record.resident_models) > 1:
        return AdaptSection(method=record.key, base=planned.base)
    rank = int(record.default_rank or 8)
    return AdaptSection(
        method=record.key,
        base=planned.base,
        rank=rank,
        targets=tuple(record.default_targets) or ("q", "v"),
        frozen_precision=record.frozen_precision,
        alpha=float(record.default_alpha if record.default_alpha is not None else rank),
        dropout=float(record.default_dropout),
    )


def _schedule(spec: Spec, registry: Registry, optimizer: str, steps: int) -> dict[str, Any]:
    """The spec's learning rate, warmup, weight decay, clipping and seed; where it names
    none, the defaults above (weight decay: the optimizer record's, else GPT-3's)."""
    train = spec.project.train
    warmup = int(train.warmup) if train.warmup is not None else min(MAX_DEFAULT_WARMUP, int(steps * WARMUP_SHARE))
    weight_decay = train.weight_decay
    if weight_decay is None:
        record = registry.get("optimizers", optimizer)
        defaults = getattr(record, "defaults", None) or {}
        weight_decay = float(defaults.get("weight_decay", DEFAULT_WEIGHT_DECAY))
    return {
        "learning_rate": float(train.learning_rate or DEFAULT_LEARNING_RATE),
        "warmup_steps": min(warmup, steps),
        "weight_decay": float(weight_decay),
        "min_lr_ratio": DEFAULT_MIN_LR_RATIO,
        "grad_clip": train.grad_clip,
        "seed": int(train.seed),
    }
