"""Where a run starts: a fresh state, a pretrained checkpoint's weights, or the latest good
checkpoint of the run it resumes, and whether that checkpoint belongs to this run.

What a resumed run may change is decided here, field by field of the configuration record
(`config_record`) that each checkpoint carries in its metadata (a run's run.json for
checkpoints written before it did), and the tokenizer that made its token ids:

- **refused** (`MUST_MATCH`, exit status 1, one line naming each field, the saved value and
  the new one): what gives the saved state its meaning. The model (architecture, every
  dimension, the vocabulary), the tokenizer, the precision the state is kept in, the
  optimizer and the dtype of its moments, and for an adapter run the adaptation itself:
  method (a LoRA run resumed as QLoRA would train its adapters against another base),
  rank, alpha (the adapters' scale alpha / r, Hu et al. 2021, Sec. 4.1), targets and the
  base's storage. A full fine-tune resumed with adapters, or the reverse, is refused too;
- **allowed and said** in one note: what changes only how training goes on from here:
  the learning-rate schedule (peak, floor, weight decay, clipping), the objective, the
  batch and sequence length, the seed, the optimizer's options (betas, epsilon) and LoRA
  dropout;
- **allowed silently**: the step count (the schedule stretches) and the device layout
  (devices, tensor and sequence parallelism, sharding strategy, micro-batch and
  accumulation: the state re-shards on restore), recomputation and the data-parallel
  implementation.

Changed training data is allowed and said. Independently, a checkpoint is resumed only
into a state of the same layout (every leaf's path, shape and dtype:
`genaisdk.backend.jax.checkpoint.layout_digest`), checked before anything is restored. A
damaged latest step is passed over for the newest one that verifies, in one line, and set
aside so that the run writes that step afresh.
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

MUST_MATCH: dict[str, str] = {
    "architecture": "model.family",
    "dims": "the model's dimensions",
    "precision": "train.precision",
    "optimizer": "train.optimizer",
    "optimizer_state": "train.optimizer_state",
    "adapter.method": "adapt.method",
    "adapter.rank": "adapt.rank",
    "adapter.alpha": "adapt.alpha",
    "adapter.targets": "adapt.targets",
    "adapter.frozen": "adapt.frozen_precision",
    "tokenizer": "the tokenizer",
}
"""Configuration record keys (dotted into `adapter`) whose change changes what a saved state
means, with the name the user knows them by: resuming with another value is refused."""

_SILENT = frozenset({*_MAY_CHANGE_ON_RESUME, "dp_impl", "recompute", "tokens_per_step", "strategy"})
"""Keys that change nothing a note should mention (how the step is computed or its state
placed; tokens_per_step follows the batch and sequence length, which are said)."""

_NAMES = {
    "adapter.dropout": "adapt.dropout",
    "learning_rate": "train.learning_rate",
    "global_batch": "the global batch (sequences)",
    "seq_len": "the sequence length",
}
"""How a note names the allowed changes that have a spec name."""


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
    record["optimizer_state"] = config.state_dtype
    return record


def tokenizer_identity(tokenizer: Any, vocab: int) -> str:
    """What names a tokenizer's token ids: a digest of its files (tokenizer.json, a
    SentencePiece model), or ``bytes/<vocab>`` for the byte tokenizer (None: `vocab` rows)."""
    files = tuple(getattr(tokenizer, "files", ()) or ())
    if not files:
        return f"bytes/{vocab}"
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return f"{getattr(tokenizer, 'name', 'tokenizer')}/{digest.hexdigest()[:16]}"


def _flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with `adapter` spread into ``adapter.<key>`` entries (`adapter.method` is
    'none' for a run that trains every weight, so that the two kinds compare)."""
    flat = {k: v for k, v in record.items() if k != "adapter"}
    adapter = record.get("adapter") or {}
    flat["adapter.method"] = adapter.get("method", "none")
    for key, value in adapter.items():
        flat[f"adapter.{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return "none" if value is None else str(value)


def resume_changes(saved: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(refused, allowed): each field that differs between the configuration record a
    checkpoint was saved with and this run's, worded ``name saved -> new`` (module
    docstring). Keys either record lacks (older runs) are not compared."""
    # Compared as JSON holds them (tuples as lists), as the saved record was read back.
    old, now = (_flat(json.loads(json.dumps(r, default=str))) for r in (saved, new))
    shared = set(old) & set(now)
    refused: list[str] = []
    allowed: list[str] = []
    for key in [*(k for k in MUST_MATCH if k in shared), *sorted(shared - set(MUST_MATCH) - _SILENT)]:
        a, b = old[key], now[key]
        if a == b:
            continue
        if key == "dims" and isinstance(a, Mapping) and isinstance(b, Mapping):
            refused.extend(
                f"model {dim} {_shown(a.get(dim))} -> {_shown(b.get(dim))}"
                for dim in sorted(set(a) | set(b)) if a.get(dim) != b.get(dim)
            )
        elif key == "adapter.method":
            every = "finetune (every weight trained)"
            refused.append(f"adapt.method {every if a == 'none' else a} -> {every if b == 'none' else b}")
        elif key == "tokenizer":
            refused.append(f"the tokenizer ({a} -> {b})")
        elif key in MUST_MATCH:
            refused.append(f"{MUST_MATCH[key]} {_shown(a)} -> {_shown(b)}")
        else:
            allowed.append(f"{_NAMES.get(key, key)} {_shown(a)} -> {_shown(b)}")
    return refused, allowed


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
    record: Mapping[str, Any] | None = None,
    saved_record: Mapping[str, Any] | None = None,
    pretrained: Any = None,
    primary: bool = True,
) -> Start:
    """The state to train from (module docstring). `record`: this run's configuration
    record (`config_record` plus its `tokenizer_identity`); `saved_record`: the one the run
    folder's run.json holds, for checkpoints whose metadata carries none. `pretrained`: the
    `model.from` checkpoint, whose weights a fresh run starts from. TrainError (exit status
    1) for checkpoints that do not belong to this run (`resume_changes`) or none of which
    is usable."""
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
        saved_meta = _saved_meta(checkpointer, existing)
        if record is not None:
            check_resumable(checkpointer, record, saved_record)
        saved = saved_meta.get("layout")
        if saved not in (None, layout):
            raise TrainError(
                f"the checkpoints in {checkpointer.directory} hold a state of other shapes than this run's "
                "(the model, vocabulary, optimizer or precision changed): resume with the settings "
                "they were saved with, or --out another folder",
                exit_code=1,
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
        saved_config = meta.get("config") or saved_record
        if record is not None and isinstance(saved_config, Mapping):
            _, allowed = resume_changes(saved_config, record)
            if allowed:
                notes.append(f"resuming with changed settings ({'; '.join(allowed)}): training goes on with the new ones")
        elif meta.get("config_digest") not in (None, digest):
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


def check_resumable(checkpointer: Any, record: Mapping[str, Any], saved_record: Mapping[str, Any] | None = None) -> None:
    """Refuses to resume `checkpointer`'s latest step into a run of configuration record
    `record` when a field that gives the saved state its meaning differs (`resume_changes`);
    `saved_record` stands in for checkpoints whose metadata carries no record. Cheap (one
    metadata file), so a run checks it before compiling its step. TrainError, exit status 1,
    naming each field and both fixes; nothing when there is nothing to resume."""
    step = checkpointer.latest_step()
    if step is None:
        return
    saved = _saved_meta(checkpointer, step).get("config") or saved_record
    if not isinstance(saved, Mapping):
        return
    refused, _ = resume_changes(saved, record)
    if refused:
        raise TrainError(
            f"cannot resume {checkpointer.directory}: its checkpoints were saved with other settings "
            f"({'; '.join(refused)}), which change what the saved state means: resume with the settings "
            "they were saved with, or --out a new folder for the new settings",
            exit_code=1,
        )


def _saved_meta(checkpointer: Any, step: int) -> dict[str, Any]:
    """The metadata recorded with `step`, or {} (unreadable or malformed metadata:
    restoring then finds out, and passes over a damaged step)."""
    from genaisdk.backend.jax.checkpoint import CheckpointError

    try:
        return dict(checkpointer.read_meta(step))
    except CheckpointError:
        return {}
