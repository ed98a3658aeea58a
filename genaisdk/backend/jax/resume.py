"""Where a run starts: a fresh state, a pretrained checkpoint's weights, or the latest good
checkpoint of the run it resumes, and whether that checkpoint belongs to this run.

A checkpoint is resumed only into a state of the same layout (every leaf's path, shape and
dtype: `genaisdk.backend.jax.checkpoint.layout_digest`); another layout is refused before
anything is restored. A changed configuration (`config_digest`: everything but the step
count and the device layout, which may change on resume) or changed training data is
allowed and said. A damaged latest step is passed over for the newest one that verifies,
in one line, and set aside so that the run writes that step afresh.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from genaisdk.backend.jax.errors import TrainError

_MAY_CHANGE_ON_RESUME = (
    "total_steps",
    "warmup_steps",
    "devices",
    "tensor_parallel",
    "sequence_parallel",
    "micro_batch",
    "accumulation",
)


def config_record(config: Any) -> dict[str, Any]:
    """The resolved configuration as JSON-ready data (written to run.json, digested for resume)."""
    record: dict[str, Any] = {
        "dims": attrs.asdict(config.dims),
        "architecture": config.architecture.name,
        "objective": config.objective.name,
        "optimizer": config.optimizer.name,
        "precision": config.precision.name,
        "strategy": config.strategy.name,
        "devices": config.devices,
        "tensor_parallel": config.tensor_parallel,
        "sequence_parallel": config.sequence_parallel,
        "global_batch": config.global_batch,
        "micro_batch": config.micro_batch,
        "accumulation": config.accumulation,
        "seq_len": config.seq_len,
        "tokens_per_step": config.tokens_per_step,
        "learning_rate": config.learning_rate,
        "warmup_steps": config.warmup_steps,
        "total_steps": config.total_steps,
        "min_lr_ratio": config.min_lr_ratio,
        "weight_decay": config.weight_decay,
        "grad_clip": config.grad_clip,
        "seed": config.seed,
        "dp_impl": config.dp_impl,
        "recompute": config.recompute,
        "optimizer_options": dict(config.optimizer_options),
    }
    if config.adapter is not None:  # only adapter runs carry the key: other runs' digests stay as they were
        record["adapter"] = config.adapter.to_json()
    return record


def config_digest(record: Mapping[str, Any]) -> str:
    """What a checkpoint must agree with to be resumed as the same run (the step count and
    the device layout may change: the schedule stretches, the state re-shards on restore)."""
    essential = {k: v for k, v in record.items() if k not in _MAY_CHANGE_ON_RESUME}
    return hashlib.sha256(json.dumps(essential, sort_keys=True, default=str).encode()).hexdigest()[:16]


@attrs.frozen(kw_only=True)
class Start:
    """The state a run starts from, its step, and what to tell the user about it."""

    state: Any = attrs.field(repr=False)
    step: int
    notes: tuple[str, ...] = ()


def start_state(
    *,
    trainer: Any,
    checkpointer: Any,
    resume: bool,
    digest: str,
    layout: str,
    data_fingerprint: str,
    pretrained: Any = None,
    primary: bool = True,
) -> Start:
    """The state to train from (module docstring). `pretrained`: the `model.from`
    checkpoint, whose weights a fresh run starts from. TrainError for checkpoints that do
    not belong to this run or none of which is usable."""
    from genaisdk.backend.jax.checkpoint import CheckpointError, CorruptCheckpointWarning

    base_notes: list[str] = []
    base = None
    if pretrained is not None and (getattr(trainer, "adapters", None) is not None or not resume or checkpointer.latest_step() is None):
        base, base_notes = _pretrained_params(trainer, pretrained)
    if getattr(trainer, "adapters", None) is not None:
        # An adapter run's checkpoints hold its adapters; the frozen base is the checkpoint's
        # (or the seed's random one), the same on every start.
        trainer.freeze(base)
    existing = checkpointer.latest_step() if resume else None
    if existing is not None:
        saved = _saved_layout(checkpointer, existing)
        if saved not in (None, layout):
            raise TrainError(
                f"the checkpoints in {checkpointer.directory} hold a state of other shapes than this run's "
                "(the model, vocabulary, optimizer or precision changed): resume with the settings "
                "they were saved with, or --out another folder",
                exit_code=2,
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                restored = checkpointer.restore(trainer.abstract_state())
            except CheckpointError as exc:
                raise TrainError(f"{exc}: start again in another folder (--out), or without --resume") from None
        damaged = [str(w.message) for w in caught if issubclass(w.category, CorruptCheckpointWarning)]
        others = [str(w.message) for w in caught if not issubclass(w.category, CorruptCheckpointWarning)]
        step = restored.step
        where = checkpointer.directory / str(step)
        if restored.skipped:
            passed = ", ".join(str(s) for s in restored.skipped)
            reason = damaged[0].split(" is damaged ", 1)[-1] if damaged else ""
            moved = checkpointer.set_aside(restored.skipped) if primary else []
            aside = f"; set aside as {', '.join(p.name for p in moved)}, to be written again" if moved else ""
            notes = [f"checkpoint step {passed} is damaged {reason}{aside}; resuming from step {step} ({where})"]
        else:
            notes = [f"resuming from step {step} ({where})"]
        notes.extend(others)
        meta = restored.meta
        if meta.get("config_digest") not in (None, digest):
            notes.append(
                "the configuration differs from the checkpoint's (model, objective, precision, "
                "strategy, batch or optimizer changed); continuing with the new one"
            )
        fingerprint = (meta.get("data") or {}).get("fingerprint")
        if fingerprint not in (None, data_fingerprint):
            notes.append("the training data changed since the checkpoint; batches will differ")
        return Start(state=restored.state, step=step, notes=tuple(notes))

    notes = []
    if resume:
        notes.append(f"nothing to resume in {checkpointer.directory}; starting from step 0")
    if pretrained is not None:
        notes.extend(base_notes)
    params = base if getattr(trainer, "adapters", None) is None else None
    return Start(state=trainer.init(trainer.config.seed, params=params), step=0, notes=tuple(notes))


def _pretrained_params(trainer: Any, pretrained: Any) -> tuple[Any, list[str]]:
    """The `model.from` checkpoint's weights in the trainer's model layout: a full
    fine-tune's starting parameters, or an adapter run's frozen base (in `base_dtype`)."""
    from genaisdk.backend.jax.hf import load_params

    params, report = load_params(pretrained, trainer.param_specs, shardings=trainer.model_shardings, dtype=trainer.base_dtype)
    return params, [f"starting from the {pretrained.model_type} checkpoint {pretrained.folder}", *report.notes()]


def _saved_layout(checkpointer: Any, step: int) -> str | None:
    """The state layout recorded with `step`, or None (older checkpoints, unreadable or
    malformed metadata: restoring then finds out, and passes over a damaged step)."""
    from genaisdk.backend.jax.checkpoint import CheckpointError

    try:
        return checkpointer.read_meta(step).get("layout")
    except CheckpointError:
        return None
