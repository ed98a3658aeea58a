"""Checks across keys and against the plugin registry: the one validation layer.

`validate(spec, registry)` runs in `genai check` (through `genaisdk.spec.build`) and in
`genaisdk.plan` (for a Spec built in code, which no builder has seen), so a spec that the
planner rejects for a reason that needs no configuration search is rejected by `genai
check` too, with the same code and severity (`genaisdk.core.codes`). Each check says
what to write instead.

Checked here: names (task, family, objective, preset, adaptation, optimizer, precisions,
hardware, strategy, LoRA targets), family / objective / preset consistency, model
dimensions, precision against adaptation and hardware, the data mix and held-out share,
what `size = auto` can size from, and settings a method or family ignores.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from genaisdk.core import codes
from genaisdk.core.codes import diagnostic
from genaisdk.core.names import did_you_mean, one_of
from genaisdk.records import FLOAT_DTYPES

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic, Span
    from genaisdk.registry import Registry
    from genaisdk.spec.model import Spec

DEFAULT_HARDWARE = "a100-80gb"
"""The device planned for when a spec names none (the planner says so with GP003): the most
widely published training GPU of the reference runs (LLaMA, BloombergGPT, OPT on A100s)."""

STANDARD_DTYPES = ("bf16", "fp16", "fp32")
"""What `precision = auto` can fall back on (genaisdk.planning.resolve.auto_precision)."""


def span_of(spec: Spec, path: str | None) -> Span | None:
    """Where `path` ("train.precision") was written; else its nearest written parent
    ("train"); else the project header; None for a spec built in code."""
    spans = spec.spans or {}
    while path:
        if path in spans:
            return spans[path]
        path = path.rpartition(".")[0]
    return spans.get("project") or spans.get("name")


def _auto(value: Any) -> bool:
    from genaisdk.spec.model import is_auto

    return is_auto(value)


class _Checks:
    def __init__(self, spec: Spec, registry: Registry | None):
        self.spec = spec
        self.registry = registry
        self.found: list[Diagnostic] = []

    def add(self, code: str, message: str, path: str | None, hint: str | None = None) -> None:
        self.found.append(diagnostic(code, message, span_of(self.spec, path), hint))

    def get(self, kind: str, name: Any, path: str, what: str) -> Any:
        """The record `name` of `kind`, or None (a GS301 when it is named but unknown)."""
        if self.registry is None or not isinstance(name, str) or not name:
            return None
        record = self.registry.get(kind, name)
        if record is None:
            names = self.registry.names(kind)
            aliases = getattr(self.registry, "aliases", None)
            hint = did_you_mean(name, names, aliases=aliases(kind) if aliases else None)
            self.add(codes.UNKNOWN_NAME, f"unknown {what} `{name}`", path, hint or f"known: {one_of(names)}")
        return record

    def hardware(self) -> Any:
        """The budget's device as a Hardware record: a described device's own record, else
        the catalog's (a GS301 when the name is unknown), else the default device's."""
        named = self.spec.project.budget.hardware
        if named is not None and not isinstance(named, str):
            return named.record()
        return self.get("hardware", named or DEFAULT_HARDWARE, "budget.hardware", "hardware")


def validate(spec: Spec, registry: Registry | None) -> list[Diagnostic]:
    """Every cross-key and registry problem of `spec` (errors and warnings), in the order
    found; `registry=None` checks only what needs no names."""
    c = _Checks(spec, registry)
    _names_and_families(c)
    _dimensions(c)
    _adaptation_and_precision(c)
    _data(c)
    _sizing(c)
    return c.found


def _names_and_families(c: _Checks) -> None:
    project = c.spec.project
    model = project.model
    task = c.get("tasks", project.task, "task", "task")
    family = None if _auto(model.family) else c.get("architectures", model.family, "model.family", "model family")
    preset_path = "model.preset" if model.preset else "adapt.base"
    preset = c.get("presets", model.preset or project.adapt.base, preset_path, "preset")
    objective = None if _auto(model.objective) else c.get("objectives", model.objective, "model.objective", "objective")
    c.get("optimizers", project.train.optimizer, "train.optimizer", "optimizer")
    if not _auto(project.train.sharding):
        c.get("strategies", project.train.sharding, "train.sharding", "sharding strategy")
    if project.serve is not None:
        c.get("precisions", project.serve.precision, "serve.precision", "precision")
    if c.registry is None:
        return

    # The family the planner will use: the spec's, else the preset's, else the task's.
    preset_architecture = c.registry.get("architectures", preset.architecture) if preset is not None else None
    chosen = family or preset_architecture
    stack = getattr(chosen, "family", None)
    if stack is None and task is not None:
        stack = task.family
    if preset is not None and family is not None and preset_architecture is not None:
        if preset_architecture.key != family.key and preset_architecture.family != family.family:
            c.add(
                codes.PRESET_FAMILY,
                f"the preset `{preset.key}` is a {preset_architecture.key} model, but `family = {model.family}`",
                "model.family",
                f"drop `family` (the preset decides it) or choose a {model.family} preset",
            )
    if objective is not None and stack is not None and stack not in objective.families:
        fits = ", ".join(f.replace("_", "-") for f in objective.families)
        c.add(
            codes.OBJECTIVE_FAMILY,
            f"the {objective.key} objective trains {fits} models, not {stack.replace('_', '-')} ones",
            "model.objective",
            "set `objective = auto` to use the family's usual objective",
        )
    if objective is None and _auto(model.objective) and stack is not None:
        if not any(stack in o.families for o in c.registry.catalog("objectives").values()):
            c.add(codes.OBJECTIVE_FAMILY, f"no registered objective trains {stack.replace('_', '-')} models", "model.objective")
    if model.preset is not None and not _auto(model.size):
        c.add(
            codes.IGNORED_SIZE, "`size` is ignored: the preset decides the size", "model.size",
            "remove `size`, or remove `preset` and give the size",
        )
    if model.decoder_layers is not None and stack is not None and stack != "encoder_decoder":
        c.add(
            codes.IGNORED_FOR_FAMILY, f"`decoder_layers` is ignored for a {stack.replace('_', '-')} model",
            "model.decoder_layers", "only encoder-decoder models have a separate decoder stack",
        )
    if _auto(model.family) and model.preset is None and model.checkpoint is None and project.task is None and project.adapt.base is None:
        c.add(
            codes.NO_TASK, "with no `task` and no preset, `family = auto` has nothing to go on",
            "model.family", "name the task (e.g. `task = summarization`) or the family",
        )


def _dimensions(c: _Checks) -> None:
    model = c.spec.project.model
    if model.heads is not None and model.kv_heads is not None and model.heads % model.kv_heads:
        c.add(
            codes.INCONSISTENT_DIMS, f"`kv_heads = {model.kv_heads}` does not divide `heads = {model.heads}`",
            "model.kv_heads", "each key/value head serves a whole group of query heads",
        )
    if model.heads is not None and model.d_model is not None and model.head_dim is None and model.d_model % model.heads:
        c.add(
            codes.INCONSISTENT_DIMS, f"`d_model = {model.d_model}` is not a multiple of `heads = {model.heads}`",
            "model.heads", "choose heads that divide d_model, or set `head_dim`",
        )


def _adaptation_and_precision(c: _Checks) -> None:
    from genaisdk.estimate.adaptation import FROZEN_PRECISIONS, TARGET_NAMES

    project = c.spec.project
    adapt, train = project.adapt, project.train
    method = c.get("adaptations", adapt.method or "pretrain", "adapt.method", "adaptation method")
    trains = method is None or method.trains
    precision = None if _auto(train.precision) else c.get("precisions", train.precision, "train.precision", "precision")
    hardware = c.hardware()

    if method is not None:
        if not method.trains and "train" in (c.spec.spans or {}):
            c.add(
                codes.NOTHING_TRAINS, f"the `train` block is ignored: `{adapt.method}` trains nothing",
                "train", "remove it, or choose a method that trains (finetune, lora, ...)",
            )
        adapter_keys = [
            f"adapt.{key}"
            for key, value in (
                ("rank", adapt.rank), ("targets", adapt.targets), ("alpha", adapt.alpha), ("dropout", adapt.dropout),
                ("frozen_precision", adapt.frozen_precision),
            )
            if value not in (None, ())
        ]
        if method.full and adapter_keys:
            which = adapter_keys[0]
            c.add(
                codes.IGNORED_ADAPTER, f"`{which.split('.')[1]}` is ignored: `{adapt.method}` trains every weight",
                which, "rank, targets, alpha, dropout and frozen_precision apply to lora and qlora",
            )
        if adapt.frozen_precision is not None and adapt.frozen_precision not in FROZEN_PRECISIONS and not method.full:
            c.add(
                codes.CONFLICT,
                f"`frozen_precision = {adapt.frozen_precision}` does not quantize the frozen base",
                "adapt.frozen_precision",
                f"choose {' or '.join(FROZEN_PRECISIONS)} (int4 is 4-bit NormalFloat); leave it out to keep the base "
                "at the training precision",
            )
        if method.trains and not method.full and len(method.resident_models) <= 1:
            unknown = [t for t in adapt.targets if str(t).strip().lower() not in TARGET_NAMES]
            if unknown:
                hint = did_you_mean(str(unknown[0]), TARGET_NAMES)
                c.add(
                    codes.UNKNOWN_NAME,
                    f"unknown LoRA target{'s' if len(unknown) > 1 else ''} {', '.join(f'`{t}`' for t in unknown)}",
                    "adapt.targets",
                    hint or f"known: {', '.join(TARGET_NAMES)}",
                )
    if precision is not None and trains and not precision.trainable:
        c.add(
            codes.NOT_TRAINABLE, f"`{precision.key}` is for frozen or served weights; training cannot run in it",
            "train.precision", "train in bf16 or fp16; to keep a 4-bit frozen base, use `adapt { method = qlora }`",
        )
    if hardware is not None and trains and not any(d in FLOAT_DTYPES for d in hardware.peak_flops or {}):
        # A device that quotes no floating-point throughput (described inline without it):
        # no format stands in for training arithmetic, so memory is answered, time is not (GP406);
        # only a device count to be found from a time budget cannot do without it.
        budget = project.budget
        if _auto(budget.devices) and budget.time is not None:
            c.add(
                codes.MISSING_FIGURE,
                f"`auto x` devices sized by the time budget need the device's throughput, which `{hardware.key}` does not give",
                "budget.hardware", "add e.g. `bf16 = 150 TFLOP/s` to the device, or give the number of devices",
            )
    elif hardware is not None and trains:
        peaks = hardware.peak_flops or {}
        usable = [d for d in ("bf16", "fp16", "tf32", "fp32", "fp8") if d in peaks]
        if precision is not None and precision.compute_dtype not in peaks:
            stand_in, dtype = hardware.peak_for(precision.compute_dtype)
            c.add(
                codes.NO_PEAK_FOR_PRECISION,
                f"{hardware.key} quotes no {precision.compute_dtype} throughput for precision `{precision.key}`: "
                + (
                    f"time uses its {dtype} peak ({stand_in / 1e12:.0f} TFLOP/s), so it is a lower bound"
                    if dtype
                    else "memory is planned, time is not"
                ),
                "train.precision", f"{hardware.key} computes in {', '.join(usable) or 'no format it quotes'}",
            )
        elif precision is None and _auto(train.precision) and not any(d in peaks for d in STANDARD_DTYPES):
            c.add(
                codes.NO_TRAINING_FORMAT, f"{hardware.key} quotes no peak for bf16, fp16 or fp32",
                "budget.hardware", "name the precision it computes in (`train { precision = ... }`)",
            )
    optimizer = c.registry.get("optimizers", train.optimizer) if (c.registry is not None and train.optimizer) else None
    if optimizer is not None and train.optimizer_state and trains:
        if optimizer.state_dtype != "fp32" and train.optimizer_state != optimizer.state_dtype:
            c.add(
                codes.STATE_FORMAT,
                f"`{optimizer.key}` keeps its state in {optimizer.state_dtype}, not {train.optimizer_state}",
                "train.optimizer_state", f"use adamw with `optimizer_state = {train.optimizer_state}`, or drop the key",
            )
        elif optimizer.state_bytes == 0:
            c.add(
                codes.IGNORED_STATE, f"`optimizer_state` is ignored: `{optimizer.key}` keeps no state",
                "train.optimizer_state", "remove it, or choose an optimizer with moments (adamw, lion, ...)",
            )
    model = project.model
    if train.batch is not None and isinstance(model.context, int) and not _auto(model.context) and train.batch < model.context:
        c.add(
            codes.BATCH_BELOW_CONTEXT, f"a global batch of {train.batch:g} tokens is less than one sequence of {model.context}",
            "train.batch", "the batch counts tokens: e.g. 512 sequences x 2048 tokens = 1M tokens",
        )


def _data(c: _Checks) -> None:
    data = c.spec.project.data
    if data.mix:
        total = sum(data.mix.values())
        if abs(total - 1.0) > 1e-9:
            c.add(codes.MIX_TOTAL, f"the shares in `mix` add up to {total * 100:g}%, not 100%", "data.mix", "make them sum to 100%")
    if data.held_out is not None and not 0 <= data.held_out < 1:
        c.add(
            codes.OUT_OF_RANGE, f"`held_out` must be at least 0% and less than 100%, not {data.held_out * 100:g}%",
            "data.held_out", "hold out a share of the data for evaluation, e.g. `held_out = 5%`",
        )


CHECKPOINT_HINT = "point `from` at a Hugging Face checkpoint folder (config.json + model.safetensors)"


def checkpoint_hint(spec: Spec) -> str:
    """The fix for an unreadable `model.from`, saying where a relative path is read from
    (`genai check` and `genai plan` give the same)."""
    from genaisdk.checkpoints.hf_config import spec_folder

    value = spec.project.model.checkpoint or ""
    if os.path.isabs(os.path.expanduser(value)):
        return CHECKPOINT_HINT
    return f"{CHECKPOINT_HINT}; a relative path is read from the spec's folder, {spec_folder(spec, '.')}"


def files(spec: Spec) -> list[Diagnostic]:
    """The checks that read the disk, which `validate` (and so `genaisdk.loads`) leaves out
    and `genai check` adds: `model.from` names a checkpoint the planner can read (its
    config.json and weight headers; no weights are loaded), reported as the GP009 `genai
    plan` gives. A relative path is read from the spec's folder."""
    c = _Checks(spec, None)
    value = spec.project.model.checkpoint
    if not value:
        return c.found
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.checkpoints.hf_config import read_checkpoint, spec_folder

    folder = spec_folder(spec, value)
    try:
        read_checkpoint(folder, weights=any(folder.glob("*.safetensors*")))
    except CheckpointFormatError as exc:
        c.add(codes.CHECKPOINT, str(exc), "model.from", checkpoint_hint(spec))
    return c.found


def _sizing(c: _Checks) -> None:
    """`size = auto` needs something to size from: a budget that bounds compute (time on a
    fixed device count, cost at a known price, compute) or the data's token count."""
    project = c.spec.project
    model, budget = project.model, project.budget
    sized_elsewhere = (
        model.preset is not None
        or model.checkpoint is not None
        or project.adapt.base is not None
        or (model.layers is not None and model.d_model is not None)
        or (not _auto(model.size) and bool(model.size))
    )
    if sized_elsewhere:
        return
    devices_fixed = (isinstance(budget.devices, int) and not _auto(budget.devices)) or (budget.devices is None and budget.time is None)
    price = budget.price_per_hour
    hardware = None
    if isinstance(budget.hardware, str) or budget.hardware is None:
        if c.registry is not None:
            hardware = c.registry.get("hardware", budget.hardware or DEFAULT_HARDWARE)
    else:
        hardware = budget.hardware.record()
    if price is None:
        price = getattr(hardware, "price_per_hour", None)
    # Time and money bound the size only through the device's throughput.
    rated = hardware is None or bool(getattr(hardware, "peak_flops", None))
    bounded = (
        (budget.time is not None and devices_fixed and rated)
        or (budget.cost is not None and bool(price) and rated)
        or budget.compute is not None
    )
    if not bounded and not project.data.tokens:
        c.add(
            codes.NOTHING_TO_SIZE,
            "`size = auto` needs a budget (time with a device count, cost, or compute) or data.tokens"
            + ("" if rated else f"; `{getattr(hardware, 'key', 'the device')}` gives no throughput, so time and cost cannot size it"),
            "model.size",
            "give `size = 7B`, a `preset`, or a budget",
        )
