"""Stage 1: the spec's names as registry records, and the `auto`s that follow from names
alone: the family (the spec's, the preset's, the task's, else decoder), the objective (the
task's, else the family's standard one) and `precision = auto` (`auto_precision`).

The spec has passed `genaisdk.spec.validate` (the planner runs it on a Spec built in code),
so every name is registered and consistent; a lookup that still fails is reported as GS301.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from genaisdk.core import codes
from genaisdk.core.names import did_you_mean, one_of
from genaisdk.planning.defaults import DEFAULT_HARDWARE
from genaisdk.planning.grid import strategy_rank
from genaisdk.planning.notes import Notes
from genaisdk.records import (
    Adaptation,
    Architecture,
    Hardware,
    Objective,
    Optimizer,
    Precision,
    Preset,
    Strategy,
    Task,
)
from genaisdk.spec.model import Spec, is_auto

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.registry import Registry

DEFAULT_SERVE_PRECISION = "bf16"
"""The serving precision when the spec names none: 16-bit weights, as released checkpoints ship."""

FAMILY_OBJECTIVE = {"encoder": "masked-lm", "decoder": "causal-lm", "encoder_decoder": "span-corruption"}
"""The pretraining objective each family is known for: BERT's masked LM (Devlin et al. 2019),
GPT's causal LM (Radford et al. 2018), T5's span corruption (Raffel et al. 2020)."""


@attrs.frozen(kw_only=True)
class Resolved:
    """The records one plan is made from (frozen; every later stage reads these)."""

    task: Task | None
    architecture: Architecture
    objective: Objective
    adaptation: Adaptation
    optimizer: Optimizer
    precision: Precision | None
    """None when the spec says `auto` (chosen later from the hardware)."""
    serve_precision: Precision
    """The serving precision, after the check against the hardware (`serving_types`)."""
    kv_dtype: str
    """The KV cache's type (a key of DTYPE_BYTES): the spec's `serve.kv_precision`, else the
    serving activations' type."""
    hardware: Hardware
    preset: Preset | None
    strategy: Strategy | None
    """None when the spec says `auto`."""
    strategies: tuple[Strategy, ...]
    """Every registered strategy, cheapest first."""
    precisions: tuple[Precision, ...]
    checkpoint: Any = None
    """The `genaisdk.checkpoints.hf_config.HFModel` that `model.from` names, if any."""

    @property
    def family(self) -> str:
        return self.architecture.family


def _get(registry: Registry, kind: str, name: str | None, notes: Notes, path: str, what: str) -> Any:
    if name is None:
        return None
    record = registry.get(kind, str(name))
    if record is None:
        names = registry.names(kind)
        hint = did_you_mean(str(name), names) or f"known: {one_of(names) or 'none registered'}"
        notes.diag(codes.UNKNOWN_NAME, f"unknown {what} `{name}`", path, hint=hint)
    return record


def resolve(spec: Spec, registry: Registry, notes: Notes) -> Resolved | None:
    """The records of `spec`, or None after recording GS301 errors."""
    p = spec.project
    task = _get(registry, "tasks", p.task, notes, "task", "task") if p.task else None
    preset_name = p.model.preset or p.adapt.base
    preset = _get(registry, "presets", preset_name, notes, "model.preset" if p.model.preset else "adapt.base", "preset")
    checkpoint = _checkpoint(spec, notes) if p.model.checkpoint else None

    # Family: the spec's; else the checkpoint's; else the preset's; else the task's; else decoder.
    if not is_auto(p.model.family) and p.model.family:
        architecture = _get(registry, "architectures", p.model.family, notes, "model.family", "model family")
        if architecture is not None and checkpoint is not None and architecture.family != checkpoint.family:
            notes.diag(
                codes.CHECKPOINT,
                f"model.family is {architecture.key} but the checkpoint is a {checkpoint.architecture} ({checkpoint.model_type})",
                "model.family",
                hint="remove `family`: the checkpoint decides it",
            )
    elif checkpoint is not None:
        architecture = _get(registry, "architectures", checkpoint.architecture, notes, "model.from", "architecture")
        if architecture is not None:
            notes.reason(
                "model.family", architecture.key, f"the architecture of the {checkpoint.model_type} checkpoint {checkpoint.folder}"
            )
    elif preset is not None:
        architecture = _get(registry, "architectures", preset.architecture, notes, "model.preset", "architecture")
        if architecture is not None:
            notes.reason("model.family", architecture.key, f"the architecture of preset `{preset.key}`")
    elif task is not None:
        architecture = _get(registry, "architectures", task.family, notes, "task", "model family")
        if architecture is not None:
            examples = f" (as for {', '.join(task.examples[:2])})" if task.examples else ""
            notes.reason(
                "model.family",
                architecture.key,
                f"task `{task.key}` is served by {'an' if architecture.key[:1] in 'aeiou' else 'a'} {architecture.key} model{examples}; "
                f"{task.source or 'task record'}",
            )
    else:
        architecture = _get(registry, "architectures", "decoder", notes, "model.family", "model family")
        if architecture is not None:
            notes.reason("model.family", architecture.key, "no task or preset says otherwise: a decoder generates and can be prompted for most tasks")

    objective = None
    if architecture is not None:
        if not is_auto(p.model.objective) and p.model.objective:
            objective = _get(registry, "objectives", p.model.objective, notes, "model.objective", "objective")
        else:
            candidates = []
            if task is not None:
                candidates.append((task.objective, f"the objective of task `{task.key}`"))
            candidates.append((FAMILY_OBJECTIVE.get(architecture.family, "causal-lm"), f"the standard objective of {architecture.family} models"))
            for name, why in candidates:
                record = registry.get("objectives", name)
                if record is not None and architecture.family in record.families:
                    objective = record
                    source = f"; {record.source}" if record.source else ""
                    notes.reason("model.objective", record.key, why + source)
                    break
            if objective is None:
                fitting = [o for o in registry.catalog("objectives").values() if architecture.family in o.families]
                if fitting:
                    objective = fitting[0]
                    notes.reason("model.objective", objective.key, f"the first registered objective for {architecture.family} models")
                else:
                    notes.diag(codes.OBJECTIVE_FAMILY, f"no registered objective trains {architecture.family} models", "model.objective")

    adaptation = _get(registry, "adaptations", p.adapt.method or "pretrain", notes, "adapt.method", "adaptation method")
    optimizer = _get(registry, "optimizers", p.train.optimizer or "adamw", notes, "train.optimizer", "optimizer")
    precision = None
    if not is_auto(p.train.precision) and p.train.precision:
        precision = _get(registry, "precisions", p.train.precision, notes, "train.precision", "precision")
    serve_name = (p.serve.precision if p.serve is not None else None) or DEFAULT_SERVE_PRECISION
    serve_precision = _get(registry, "precisions", serve_name, notes, "serve.precision", "precision")

    hardware_name = p.budget.hardware
    if hardware_name is None:
        hardware_name = DEFAULT_HARDWARE
        notes.diag(
            codes.DEFAULT_HARDWARE,
            f"the budget names no hardware; planning for `{DEFAULT_HARDWARE}`",
            "budget",
            hint="write e.g. `hardware = 8 x h100-sxm` in the budget block",
        )
    if isinstance(hardware_name, str):
        hardware = _get(registry, "hardware", hardware_name, notes, "budget.hardware", "hardware")
    else:
        hardware = hardware_name.record()  # a device described inline (genaisdk.spec.model.DeviceSpec)
        notes.reason("budget.hardware", hardware.key, f"described in the spec ({hardware.note or 'every figure given'})")

    strategy = None
    if not is_auto(p.train.sharding) and p.train.sharding:
        strategy = _get(registry, "strategies", p.train.sharding, notes, "train.sharding", "sharding strategy")
    strategies = tuple(sorted(registry.catalog("strategies").values(), key=strategy_rank))
    precisions = tuple(registry.catalog("precisions").values())

    required = (architecture, objective, adaptation, optimizer, serve_precision, hardware)
    if any(r is None for r in required) or notes.has_errors:
        return None
    serve_precision, kv_dtype = serving_types(spec, hardware, serve_precision, registry, notes)
    return Resolved(
        task=task,
        architecture=architecture,
        objective=objective,
        adaptation=adaptation,
        optimizer=optimizer,
        precision=precision,
        serve_precision=serve_precision,
        kv_dtype=kv_dtype,
        hardware=hardware,
        preset=preset,
        strategy=strategy,
        strategies=strategies,
        precisions=precisions,
        checkpoint=checkpoint,
    )


CHECKPOINT_FIXED = ("preset", "size", "layers", "decoder_layers", "d_model", "heads", "kv_heads", "head_dim", "d_ff",
                    "vocab", "ffn", "norm", "positions", "tied_embeddings", "biases")
"""`model` keys a checkpoint decides: with `from`, writing one of them is an error."""


def _checkpoint(spec: Any, notes: Notes) -> Any:
    """The checkpoint `model.from` names (config.json and weight headers, no JAX), or None
    after a GP009 error (unreadable, or contradicted by another `model` key)."""
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.checkpoints.hf_config import read_checkpoint, spec_folder
    from genaisdk.spec.validate import checkpoint_hint

    model = spec.project.model
    folder = spec_folder(spec, model.checkpoint)
    try:
        checkpoint = read_checkpoint(folder, weights=any(folder.glob("*.safetensors*")))
    except CheckpointFormatError as exc:
        notes.diag(codes.CHECKPOINT, str(exc), "model.from", hint=checkpoint_hint(spec))
        return None
    fixed = [key for key in CHECKPOINT_FIXED if getattr(model, key) is not None and not is_auto(getattr(model, key))]
    for key in fixed:
        notes.diag(codes.CHECKPOINT, f"model.{key} cannot be set with `from`: the checkpoint decides it",
                   f"model.{key}", hint=f"remove `{key}`")
    return checkpoint


def auto_precision(hardware: Hardware, precisions: tuple[Precision, ...]) -> tuple[Precision | None, str]:
    """bf16 mixed precision where the hardware computes in bf16 (same range as fp32, no loss
    scaling; Kalamkar et al. 2019), else fp16 mixed precision with loss scaling (Micikevicius
    et al. 2018), else fp32."""
    by_key = {p.key: p for p in precisions}
    if not hardware.peak_flops and "bf16" in by_key:
        return by_key["bf16"], f"{hardware.key} quotes no throughput: bf16 mixed precision assumed, what current accelerators train in"
    for key, why in (
        ("bf16", f"{hardware.key} computes in bf16 ({hardware.peak_flops.get('bf16', 0) / 1e12:.0f} TFLOP/s): fp32 range, no loss scaling (Kalamkar et al. 2019), fp32 master weights"),
        ("fp16", f"{hardware.key} has no bf16: fp16 mixed precision with dynamic loss scaling (Micikevicius et al. 2018)"),
        ("fp32", f"{hardware.key} has neither bf16 nor fp16 throughput"),
    ):
        record = by_key.get(key)
        if record is not None and record.compute_dtype in hardware.peak_flops:
            return record, why
    return None, f"{hardware.key} quotes no peak for bf16, fp16 or fp32"



def serving_types(spec: Spec, hardware: Hardware, precision: Precision, registry: Registry, notes: Notes) -> tuple[Precision, str]:
    """(serving precision, KV cache type), checked against what the hardware computes in.

    A 16-bit brain-float precision on a device with fp16 but no bf16 arithmetic (V100, T4)
    is served in fp16: the same two bytes per value, fp16's narrower range being no issue
    for inference of a trained model (Micikevicius et al. 2018 train in it). A weight-only
    format the device has no arithmetic for (int8 or fp8 weights on a device without int8
    or fp8 units) keeps its storage: the weights are dequantized to 16-bit as they are read,
    as weight-only kernels do, so the memory is unchanged. A device that quotes no
    throughput at all (described inline) is taken to run what the spec says."""
    serve = spec.project.serve
    written = serve is not None and serve.precision is not None
    peaks = hardware.peak_flops
    fp16 = registry.get("precisions", "fp16")
    half = "bf16" if ("bf16" in peaks or not peaks) else "fp16"
    why = "the spec's" if written else f"no serving precision given: {DEFAULT_SERVE_PRECISION}, the weights as released"
    chosen = precision
    if peaks and precision.compute_dtype not in peaks:
        if precision.compute_dtype == "bf16" and precision.weight_bytes == 2 and "fp16" in peaks and fp16 is not None:
            chosen = fp16
            why = f"{hardware.key} has no bf16 arithmetic: served in fp16, the same 2 bytes per value"
            if written:
                notes.diag(
                    codes.ADJUSTED_VALUE, f"`serve.precision = {precision.key}`: {hardware.key} has no bf16 arithmetic, so the plan serves in fp16 (the same memory)",
                    "serve.precision", hint="write `precision = fp16` in the serve block",
                )
        else:
            why = (f"{why}; {hardware.key} has no {precision.compute_dtype} arithmetic: the {precision.param_dtype} weights are "
                   f"dequantized to {half} as they are read (weight-only), so the memory is the same")
    notes.reason("serve.precision", chosen.key, why)

    kv = serve.kv_precision if serve is not None else None
    if kv is None:
        kv = "fp32" if chosen.activation_bytes == 4 else ("fp16" if chosen.compute_dtype == "fp16" else half)
        notes.reason("serve.kv_precision", kv, f"the KV cache in the serving activations' type ({kv}); `kv_precision = fp8` halves a 16-bit cache")
    elif kv == "bf16" and peaks and "bf16" not in peaks and "fp16" in peaks:
        notes.diag(
            codes.ADJUSTED_VALUE, f"`serve.kv_precision = bf16`: {hardware.key} has no bf16 arithmetic, so the cache is fp16 (the same memory)",
            "serve.kv_precision", hint="write `kv_precision = fp16`",
        )
        kv = "fp16"
    return chosen, kv
