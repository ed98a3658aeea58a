"""`genaisdk.train(spec, ...)`: train the spec'd model with the JAX backend.

    >>> result = genaisdk.train("specs/tiny-gpt.genai", steps=40, out="runs/tiny")
    >>> result.final_loss, result.tokens_per_s, result.checkpoint_dir

One call does what `genai train` does: load the spec (with `--set` style overrides), plan
it, take the run from the plan (`genaisdk.planning.run_settings`: the plan's model,
precision, strategy, devices, batch, micro-batch, accumulation and recomputation, changed
only by the named options `devices`, `steps` and `precision`), join the multi-host runtime
where asked, build the `Trainer`, read the data, restore the latest good checkpoint when
resuming, run the loop, and report.

The output folder holds:

- ``spec.genai``: the spec as written, and ``run.json``: the overrides, the run settings
  (the plan's names), each deviation from the plan with why, the resolved configuration
  (dimensions, batch, schedule, strategy), devices and versions;
- ``metrics.jsonl``: one JSON object per optimizer step and one per evaluation;
- ``result.json``: what the run measured when it stopped (status, steps, losses,
  tokens/s, MFU, the devices' peak memory next to the plan's, the hardware record the
  devices match), rewritten by every resume;
- ``checkpoints/``: orbax checkpoints, one folder per saved step;
- ``tokenizer/``: a copy of the tokenizer files the data was tokenized with (a checkpoint's
  or `data.tokenizer`'s; none for the byte tokenizer).

A spec with `model { from = "..." }` trains the checkpoint's model: its dimensions, its
weights as the starting point (loaded straight into the run's sharding), and its tokenizer
(unless `data.tokenizer` names another). `genaisdk.backend.jax.load.load_model` opens the
run folder again as a model, and `genai export` writes it as a Hugging Face checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

MISSING_JAX = "the JAX backend needs JAX, optax and orbax: pip install 'genaisdk[jax]'"
RUN_FILE = "run.json"
RESULT_FILE = "result.json"
SPEC_COPY = "spec.genai"
CHECKPOINTS = "checkpoints"
TOKENIZER_COPY = "tokenizer"
DEFAULT_OUT_ROOT = "runs"


class TrainError(Exception):
    """A run that cannot start or go on; the message says why. `exit_code` is the CLI's."""

    def __init__(self, message: str, *, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class MissingExtraError(TrainError):
    def __init__(self, missing: str):
        super().__init__(f"{MISSING_JAX} ({missing} is not installed)", exit_code=2)


@attrs.frozen(kw_only=True)
class TrainResult:
    """What a run did and measured. Losses are token means; memory is per device, bytes."""

    status: str
    """'completed', 'interrupted' (SIGINT/SIGTERM; resumable) or 'diverged'."""
    project: str
    start_step: int
    steps: int
    """Optimizer steps complete (counted from the start of training, not of this call)."""
    total_steps: int
    final_loss: float | None
    eval_loss: float | None
    perplexity: float | None
    tokens_per_s: float | None
    mfu: float | None
    """Model-FLOPs utilization; None where the device's peak FLOP/s is unknown (CPU)."""
    peak_flops: float | None
    peak_memory_bytes: int | None
    """The devices' own peak-bytes-in-use counter (largest device); None where not reported."""
    planned_memory_bytes: int | None
    """The plan's memory per device (for its configuration; the run's deviations aside)."""
    planned_devices: int | None
    """The device count of the plan, which differs from `devices` only through `--devices`."""
    hardware: str | None = None
    """The hardware record the devices match (its rated power gives the run's energy), or None."""
    seconds: float
    devices: int
    processes: int
    platform: str
    out_dir: Path
    checkpoint_dir: Path
    last_checkpoint: int | None
    metrics_path: Path
    message: str = ""
    notes: tuple[str, ...] = ()
    """What the run noticed on the way: sharding fallbacks, damaged checkpoints passed over,
    a changed configuration or data on resume."""
    config: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    state: Any = attrs.field(default=None, repr=False, eq=False)
    """The final TrainState (its arrays live on the devices)."""
    signal_number: int | None = None
    """The signal that stopped an interrupted run."""

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def params(self) -> Any:
        """The final parameters (a pytree of arrays on the training devices), or None when
        the run kept no state (diverged). `genaisdk.generate(result, ...)` and
        `genaisdk.evaluate(result, ...)` use them directly."""
        return None if self.state is None else self.state.params

    @property
    def exit_code(self) -> int:
        """0 completed; 1 diverged; 128 + signal number when stopped by a signal."""
        if self.status == "completed":
            return 0
        if self.status == "interrupted":
            return 128 + int(self.signal_number or 15)
        return 1


class TrainingDiverged(TrainError):
    """The loss or gradient norm became NaN or infinite; `.result` tells what was kept."""

    def __init__(self, result: TrainResult):
        super().__init__(result.message, exit_code=1)
        self.result = result


def require_jax() -> None:
    """Raises MissingExtraError unless the [jax] extra is installed."""
    for module, package in (("jax", "jax"), ("optax", "optax"), ("orbax.checkpoint", "orbax-checkpoint")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise MissingExtraError(package)


# ----------------------------------------------------------------------------- the spec


def _override_list(overrides: Mapping[str, Any] | Iterable[str] | None) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={value}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def load_spec(spec: Any, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Any:
    """A Spec from a path, a Spec object, or spec text (`genaisdk.spec.is_path` tells a
    path from text); overrides applied (`train.sharding=fsdp`)."""
    from genaisdk.spec import is_path, load, loads
    from genaisdk.spec.model import Spec

    items = _override_list(overrides) or None
    if isinstance(spec, Spec):
        if not items:
            return spec
        return loads(spec.source, filename=spec.filename, overrides=items)
    if isinstance(spec, (str, os.PathLike)) and is_path(spec):
        path = Path(spec)
        if not path.exists():
            raise TrainError(f"no such spec file: {path}", exit_code=2)
        return load(str(path), overrides=items)
    if isinstance(spec, str):
        return loads(spec, filename="<spec>", overrides=items)
    raise TypeError(f"spec must be a path, spec text or a genaisdk Spec, got {type(spec).__name__}")


def _spec_folder(spec: Any) -> Path:
    path = Path(getattr(spec, "filename", "") or "")
    return path.parent.absolute() if path.name and path.exists() else Path.cwd()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


# ----------------------------------------------------------------------------- config records


def config_record(config: Any) -> dict[str, Any]:
    """The resolved configuration as JSON-ready data (written to run.json, digested for resume)."""
    return {
        "dims": attrs.asdict(config.dims),
        "architecture": config.architecture.name,
        "objective": config.objective.name,
        "optimizer": config.optimizer.name,
        "precision": config.precision.name,
        "strategy": config.strategy.name,
        "devices": config.devices,
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


def config_digest(record: Mapping[str, Any]) -> str:
    """What a checkpoint must agree with to be resumed as the same run (the step count and
    the device count may change: the schedule stretches, the state re-shards on restore)."""
    essential = {k: v for k, v in record.items() if k not in ("total_steps", "warmup_steps", "devices", "micro_batch", "accumulation")}
    return hashlib.sha256(json.dumps(essential, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- devices


def match_hardware(device_kind: str, records: Iterable[Any]) -> Any:
    """The hardware record a JAX `device_kind` (e.g. 'NVIDIA H100 80GB HBM3') refers to, or None.

    A record matches when its model token (``h100``, ``a100``, ``v5p``) is in the device
    kind; among matches the one sharing most remaining tokens (memory size, form factor)
    wins; a PCIe record is preferred for a PCIe device and avoided otherwise.
    """
    kind = device_kind.lower().replace("v5 lite", "v5e").replace("v5lite", "v5e")
    tokens = set(re.split(r"[^a-z0-9]+", kind)) - {""}
    best, best_score = None, None
    for record in records:
        for name in (record.key, *getattr(record, "aliases", ())):
            parts = [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]
            if not parts:
                continue
            model_index = 1 if parts[0] == "tpu" and len(parts) > 1 else 0
            if parts[model_index] not in tokens:
                continue
            rest = parts[model_index + 1 :]
            score = sum(part in tokens for part in rest) - 0.1 * sum(part not in tokens for part in rest)
            if ("pcie" in rest) != ("pcie" in tokens):
                score -= 1.0  # PCIe cards run at lower clocks than their SXM siblings
            if best_score is None or score > best_score:
                best, best_score = record, score
    return best


def device_hardware(devices: list, registry: Any) -> Any:
    """The hardware record the training devices are, or None (CPU, or a device no hardware
    record describes)."""
    if not devices or devices[0].platform == "cpu":
        return None
    return match_hardware(devices[0].device_kind, registry.catalog("hardware").values())


def peak_flops_per_device(devices: list, compute_dtype: str, registry: Any) -> float | None:
    """The datasheet peak FLOP/s of one training device for `compute_dtype`, or None (CPU,
    or a device no hardware record describes)."""
    record = device_hardware(devices, registry)
    if record is None:
        return None
    return record.peak_flops.get(compute_dtype) or record.peak_flops.get("bf16")


def measured_peak_memory(devices: list) -> int | None:
    """Largest `peak_bytes_in_use` over this process's training devices, where reported."""
    peaks = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # some backends raise instead of returning None
            stats = None
        if stats and stats.get("peak_bytes_in_use"):
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


def default_checkpoint_every(total_steps: int) -> int:
    """A tenth of the run (at most every 1000 steps): a killed run loses at most that much."""
    return max(1, min(1000, total_steps // 10))


def enable_compilation_cache() -> None:
    """Keeps XLA's compiled steps on disk so a rerun or a resume skips compilation.

    Uses JAX's persistent compilation cache in ``$XDG_CACHE_HOME/genaisdk/xla`` (default
    ``~/.cache``), unless a cache folder is already configured (``JAX_COMPILATION_CACHE_DIR``)
    or ``GENAISDK_COMPILATION_CACHE=0``. Only compilations slower than JAX's threshold
    (one second) are stored.
    """
    import jax

    if os.environ.get("GENAISDK_COMPILATION_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    jax.config.update("jax_compilation_cache_dir", os.path.join(base, "genaisdk", "xla"))


# ----------------------------------------------------------------------------- the run


def train(
    spec: Any,
    *,
    steps: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    checkpoint_every: int | None = None,
    eval_every: int | None = None,
    eval_batches: int | None = None,
    devices: int | None = None,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    dp_impl: str | None = None,
    precision: str | None = None,
    adaptation: str | None = None,
    quiet: bool = False,
    progress: Any = None,
    stream: Any = None,
) -> TrainResult:
    """Train the spec'd model as its plan says; see the module docstring.

    `spec`: a path, spec text or a Spec. `steps`: optimizer steps in all (default: the
    spec's `train.steps`, else data.tokens / batch). `out`: the output folder (default
    ``runs/<project>``). `resume`: continue from the latest good checkpoint in `out`.
    `overrides`: ``{"train.sharding": "fsdp"}`` or ``["train.sharding=fsdp"]``.
    `devices`: devices per process (on CPU, creates that many; default: the plan's count).
    `precision`: train in another precision than the plan's. `adaptation`: another
    adaptation method (`finetune` runs a LoRA plan as a full fine-tune). `devices`, `steps`,
    `precision` and `adaptation` are the named options a run may differ from its plan by; each field that
    then deviates is printed and recorded in run.json. `coordinator`,
    `num_processes`, `process_id`: join a multi-host run explicitly. `quiet`: print nothing.
    `progress`: force the progress bar on (True) or plain lines (False); None: a bar on a
    TTY; or an object with the `genaisdk.backend.jax.progress.Progress` methods.

    Returns a TrainResult (status 'completed' or 'interrupted'); raises TrainingDiverged
    when the loss becomes NaN or infinite, TrainError for settings that cannot run,
    `genaisdk.SpecError` for an invalid spec.
    """
    if steps is not None and steps < 1:
        raise TrainError(f"steps must be at least 1, got {steps}", exit_code=2)
    require_jax()
    from genaisdk.backend.jax import distributed
    from genaisdk.planning.pipeline import plan as make_plan
    from genaisdk.planning.run_settings import RunSettingsError, run_settings

    # Planning needs no JAX: the plan decides how many devices to bring up.
    spec_obj = load_spec(spec, overrides)
    the_plan = make_plan(spec_obj)
    if the_plan.errors:
        problems = "; ".join(f"{d.code}: {d.message}" for d in the_plan.errors)
        raise TrainError(f"the plan has errors, so there is nothing to run ({problems}); `genai plan` shows them")
    multi_host = coordinator is not None or distributed._auto_environment() is not None
    per_process = devices
    if per_process is None and not multi_host:
        per_process = the_plan.train.devices
    try:
        runtime = distributed.setup(
            devices=per_process, coordinator=coordinator, num_processes=num_processes, process_id=process_id
        )
    except distributed.DistributedError as exc:
        if devices is None and not multi_host:
            raise TrainError(
                f"the plan trains on {the_plan.train.devices} x {the_plan.train.hardware}, more devices than this "
                f"process has: pass --devices N to run it on fewer (the global batch is kept; the change is recorded)",
                exit_code=2,
            ) from None
        raise TrainError(str(exc), exit_code=2) from None
    why = None
    if devices is not None:
        why = f"--devices {devices}" + (f" x {runtime.process_count} processes" if runtime.process_count > 1 else "")
    elif runtime.global_devices != the_plan.train.devices:
        why = f"the devices of this {runtime.process_count}-process run"
    try:
        settings = run_settings(
            the_plan,
            spec_obj,
            devices=runtime.global_devices,
            steps=steps,
            precision=precision,
            adaptation=adaptation,
            devices_why=why,
        )
    except RunSettingsError as exc:
        raise TrainError(str(exc)) from None
    enable_compilation_cache()
    try:
        return _run(
            spec_obj,
            plan=the_plan,
            planned_run=settings,
            runtime=runtime,
            out=out,
            resume=resume,
            overrides=_override_list(overrides),
            checkpoint_every=checkpoint_every,
            eval_every=eval_every,
            eval_batches=eval_batches,
            dp_impl=dp_impl,
            quiet=quiet,
            progress=progress,
            stream=stream,
        )
    except TrainError:
        raise
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        raise TrainError(user_error) from exc


def _user_error(exc: Exception) -> str | None:
    """The message of an error caused by the spec, the data or the checkpoints (shown without
    a traceback), or None for a bug."""
    from genaisdk.backend.jax.checkpoint import CheckpointError
    from genaisdk.backend.jax.config import BackendError
    from genaisdk.backend.jax.sources import DataError
    from genaisdk.backend.jax.tokenizer import TokenizerError
    from genaisdk.checkpoints import CheckpointFormatError

    if isinstance(exc, (BackendError, DataError, CheckpointError, TokenizerError, CheckpointFormatError)):
        return str(exc)
    return None


def run_tokenizer(spec: Any, checkpoint: Any, vocab: int) -> tuple[Any, list[str]]:
    """The tokenizer a run tokenizes its text with: `data.tokenizer` (relative to the spec),
    else the checkpoint's, else None (the byte tokenizer); and notes on how its ids fit
    the model's `vocab` embedding rows (more ids than rows: a TokenizerError)."""
    from genaisdk.backend.jax.tokenizer import check_vocabulary, find_tokenizer_file, load_tokenizer
    from genaisdk.checkpoints.hf_config import spec_folder

    ids = checkpoint.ids if checkpoint is not None else None
    if spec.project.data.tokenizer:
        tokenizer = load_tokenizer(spec_folder(spec, spec.project.data.tokenizer), ids=ids)
        where = "data.tokenizer"
    elif checkpoint is not None and find_tokenizer_file(checkpoint.folder) is not None:
        tokenizer = load_tokenizer(checkpoint.folder, ids=ids)
        where = "the checkpoint"
    else:
        return None, []
    fit = check_vocabulary(tokenizer, vocab, where="the model")
    return tokenizer, [f"tokenizer from {where}: {tokenizer.describe()}; {fit.describe()}"]


def _run(
    spec: Any,
    *,
    plan: Any,
    planned_run: Any,
    runtime: Any,
    out: str | Path | None,
    resume: bool,
    overrides: list[str],
    checkpoint_every: int | None,
    eval_every: int | None,
    eval_batches: int | None,
    dp_impl: str | None,
    quiet: bool,
    progress: Any,
    stream: Any,
) -> TrainResult:
    from genaisdk.backend.jax import distributed
    from genaisdk.backend.jax.checkpoint import Checkpointer, layout_digest
    from genaisdk.backend.jax.config import RunConfig, read_spec_checkpoint
    from genaisdk.backend.jax.data import build_pipeline
    from genaisdk.backend.jax.loop import DEFAULT_EVAL_BATCHES, DIVERGED, LoopSettings, TrainingLoop
    from genaisdk.backend.jax.metrics import FILENAME as METRICS_FILE
    from genaisdk.backend.jax.metrics import MetricsLog
    from genaisdk.backend.jax.progress import SilentProgress, make_progress
    from genaisdk.backend.jax.sharding import make_mesh
    from genaisdk.backend.jax.step import Trainer
    from genaisdk.registry import get_registry

    registry = get_registry()
    project = spec.project
    train_spec = project.train
    stream = stream or sys.stdout
    primary = runtime.is_primary

    for name, value in (("checkpoint_every", checkpoint_every), ("eval_every", eval_every)):
        if value is not None and value < 1:
            raise TrainError(f"{name} must be at least 1, got {value}", exit_code=2)

    config = RunConfig.from_settings(planned_run, registry=registry)
    if dp_impl is not None:
        config = config.evolve(dp_impl=dp_impl)
    record = config_record(config)
    digest = config_digest(record)

    out_dir = Path(out) if out is not None else Path(DEFAULT_OUT_ROOT) / _slug(project.name)
    out_dir = out_dir.absolute()
    checkpoint_dir = out_dir / CHECKPOINTS
    metrics_path = out_dir / METRICS_FILE

    checkpoint = read_spec_checkpoint(spec) if project.model.checkpoint else None
    tokenizer, tokenizer_notes = run_tokenizer(spec, checkpoint, config.dims.vocab)

    training_devices = distributed.training_devices(runtime)
    mesh = make_mesh(training_devices)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(config, mesh, tokenizer=tokenizer)
    notes = [str(w.message) for w in caught] + tokenizer_notes

    pipeline = build_pipeline(
        project.data.source,
        seq_len=trainer.row_length,
        rows_per_step=config.global_batch,
        vocab_size=config.dims.vocab,
        seed=config.seed,
        held_out=project.data.held_out,
        base_dir=_spec_folder(spec),
        tokenizer=tokenizer,
    )

    checkpointer = Checkpointer(checkpoint_dir)
    existing = checkpointer.latest_step()
    if existing is not None and not resume:
        checkpointer.close()
        raise TrainError(
            f"{out_dir} already holds checkpoints (latest step {existing}): pass --resume to "
            f"continue that run, or --out another folder",
            exit_code=2,
        )

    state = None
    start_step = 0
    resume_notes: list[str] = []
    abstract_state = trainer.abstract_state()
    layout = layout_digest(abstract_state)
    if resume and existing is not None:
        if _saved_layout(checkpointer, existing) not in (None, layout):
            checkpointer.close()
            raise TrainError(
                f"the checkpoints in {checkpoint_dir} hold a state of other shapes than this run's "
                "(the model, vocabulary, optimizer or precision changed): resume with the settings "
                "they were saved with, or --out another folder",
                exit_code=2,
            )
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                restored = checkpointer.restore(abstract_state)
        except BaseException:
            checkpointer.close()
            raise
        resume_notes.extend(str(w.message) for w in caught)
        state, start_step = restored.state, restored.step
        meta = restored.meta
        if meta.get("config_digest") not in (None, digest):
            resume_notes.append(
                "the configuration differs from the checkpoint's (model, objective, precision, "
                "strategy, batch or optimizer changed); continuing with the new one"
            )
        fingerprint = (meta.get("data") or {}).get("fingerprint")
        if fingerprint not in (None, pipeline.fingerprint):
            resume_notes.append("the training data changed since the checkpoint; batches will differ")
        resume_notes.append(f"resuming from step {start_step} ({checkpoint_dir / str(start_step)})")
    elif resume:
        resume_notes.append(f"nothing to resume in {checkpoint_dir}; starting from step 0")
    if state is None:
        params = None
        if checkpoint is not None:
            from genaisdk.backend.jax.hf import load_params

            params, report = load_params(
                checkpoint, trainer.param_specs, shardings=trainer.state_shardings.params, dtype=trainer.policy.param_dtype
            )
            resume_notes.append(f"starting from the {checkpoint.model_type} checkpoint {checkpoint.folder}")
            resume_notes.extend(report.notes())
        state = trainer.init(config.seed, params=params)

    if progress is None or isinstance(progress, bool):
        display = make_progress(primary=primary, tty=progress, stream=stream, quiet=quiet)
    else:
        display = progress if primary else SilentProgress()

    if primary:
        _write_run_files(
            out_dir, spec, overrides, record, runtime, pipeline, planned_run, checkpoint=checkpoint, tokenizer=tokenizer
        )
    metrics = MetricsLog(metrics_path, keep_through_step=start_step if start_step else None, enabled=primary)

    compute_dtype = config.precision.compute_dtype
    per_device_peak = peak_flops_per_device(training_devices, compute_dtype, registry)
    settings = LoopSettings(
        total_steps=config.total_steps,
        seed=config.seed,
        eval_every=eval_every or train_spec.eval_every,
        eval_batches=eval_batches or DEFAULT_EVAL_BATCHES,
        checkpoint_every=checkpoint_every or train_spec.checkpoint_every or default_checkpoint_every(config.total_steps),
        peak_flops=per_device_peak * len(training_devices) if per_device_peak else None,
        process_count=runtime.process_count,
    )

    def checkpoint_meta(step: int) -> dict[str, Any]:
        return {
            "seed": config.seed,
            "data": pipeline.position(step),
            "config_digest": digest,
            "layout": layout,
            "total_steps": config.total_steps,
            "project": project.name,
        }

    deviations = [
        f"the run differs from the plan: {d.field} {d.plan} -> {d.run} ({d.why})" for d in planned_run.deviations
    ]
    notes = deviations + notes
    for note in notes + resume_notes:
        display.note(f"note: {note}")
    display.note(
        f"training {project.name}: {config.architecture.name} {_params_text(state)} params, "
        f"{config.objective.name}, {config.precision.name}, {config.strategy.name} on "
        f"{runtime.global_devices} {runtime.platform} device(s)"
        + (f" x {runtime.process_count} processes" if runtime.process_count > 1 else "")
        + f"; {config.global_batch} x {config.seq_len} tokens per step"
        + (f" ({config.accumulation} micro-steps)" if config.accumulation > 1 else "")
    )
    display.note(f"data: {pipeline.description}")

    loop = TrainingLoop(
        trainer=trainer,
        pipeline=pipeline,
        settings=settings,
        checkpointer=checkpointer,
        metrics=metrics,
        progress=display,
        checkpoint_meta=checkpoint_meta,
    )
    try:
        outcome = loop.run(state, start_step)
    finally:
        metrics.close()
        checkpointer.close()

    planned_total = plan.memory.per_device.total
    result = TrainResult(
        status=outcome.status,
        project=project.name,
        start_step=start_step,
        steps=outcome.step,
        total_steps=config.total_steps,
        final_loss=outcome.final_loss,
        eval_loss=outcome.eval_loss,
        perplexity=outcome.perplexity,
        tokens_per_s=outcome.tokens_per_s,
        mfu=outcome.mfu,
        peak_flops=settings.peak_flops,
        peak_memory_bytes=measured_peak_memory(distributed.local_devices(runtime)),
        planned_memory_bytes=int(planned_total) if planned_total else None,
        planned_devices=int(plan.train.devices),
        hardware=getattr(device_hardware(training_devices, registry), "key", None),
        seconds=outcome.seconds,
        devices=runtime.global_devices,
        processes=runtime.process_count,
        platform=runtime.platform,
        out_dir=out_dir,
        checkpoint_dir=checkpoint_dir,
        last_checkpoint=outcome.last_checkpoint,
        metrics_path=metrics_path,
        message=outcome.message,
        notes=tuple(notes + resume_notes),
        config=record,
        state=outcome.state,
        signal_number=outcome.signal_number,
    )
    if primary:
        _write_result(out_dir, result)
    if not quiet and primary:
        print(format_summary(result), file=stream, flush=True)
    if outcome.status == DIVERGED:
        raise TrainingDiverged(result)
    return result


def _saved_layout(checkpointer: Any, step: int) -> str | None:
    """The state layout recorded with `step`, or None (older checkpoints, unreadable meta:
    restoring then finds out)."""
    try:
        return checkpointer.read_meta(step).get("layout")
    except Exception:  # a damaged step: `restore` passes over it with a warning
        return None


def _params_text(state: Any) -> str:
    import jax

    from genaisdk.core.numbers import fmt_count

    return fmt_count(sum(int(math.prod(x.shape)) for x in jax.tree.leaves(state.params)))


def _write_run_files(
    out_dir: Path,
    spec: Any,
    overrides: list[str],
    record: dict,
    runtime: Any,
    pipeline: Any,
    settings: Any,
    *,
    checkpoint: Any = None,
    tokenizer: Any = None,
) -> None:
    import jax

    from genaisdk import __version__

    out_dir.mkdir(parents=True, exist_ok=True)
    if getattr(spec, "source", ""):
        (out_dir / SPEC_COPY).write_text(spec.source, encoding="utf-8")
    run = {
        "project": spec.project.name,
        "spec_file": str(getattr(spec, "filename", "")),
        "overrides": overrides,
        "settings": settings.to_json(),
        "deviations": settings.to_json()["deviations"],
        "config": record,
        "data": {
            "sources": list(spec.project.data.source),
            "base_dir": str(_spec_folder(spec)),
            "held_out": pipeline.settings.held_out,
            "description": pipeline.description,
            "fingerprint": pipeline.fingerprint,
        },
        "runtime": {
            "platform": runtime.platform,
            "devices": runtime.global_devices,
            "processes": runtime.process_count,
            "device_kind": jax.devices()[0].device_kind,
        },
        "versions": {"genaisdk": __version__, "jax": jax.__version__},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if checkpoint is not None:
        # What export needs to write the run back as its base model's family.
        run["checkpoint"] = {
            "from": str(checkpoint.folder),
            "model_type": checkpoint.model_type,
            "vocab": checkpoint.dims.vocab,
            "config": dict(checkpoint.config),
        }
    if tokenizer is not None and tokenizer.files:
        copies = tokenizer.save(out_dir / TOKENIZER_COPY)
        ids = attrs.asdict(checkpoint.ids) if checkpoint is not None else {
            "bos": tokenizer.bos_id, "eos": list(tokenizer.stop_ids), "pad": tokenizer.pad_id, "decoder_start": None,
        }
        run["tokenizer"] = {"name": tokenizer.name, "file": f"{TOKENIZER_COPY}/{copies[0].name}", "ids": ids}
    (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")


def result_record(result: TrainResult) -> dict[str, Any]:
    """The measured part of a TrainResult as JSON-ready data (``result.json``); NaN and
    infinity are written as null."""

    def number(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int)):
            return value
        value = float(value)
        return value if math.isfinite(value) else None

    return {
        "status": result.status,
        "project": result.project,
        "start_step": result.start_step,
        "steps": result.steps,
        "total_steps": result.total_steps,
        "final_loss": number(result.final_loss),
        "eval_loss": number(result.eval_loss),
        "perplexity": number(result.perplexity),
        "tokens_per_s": number(result.tokens_per_s),
        "mfu": number(result.mfu),
        "peak_flops": number(result.peak_flops),
        "peak_memory_bytes": result.peak_memory_bytes,
        "planned_memory_bytes": result.planned_memory_bytes,
        "planned_devices": result.planned_devices,
        "hardware": result.hardware,
        "seconds": number(result.seconds),
        "devices": result.devices,
        "processes": result.processes,
        "platform": result.platform,
        "last_checkpoint": result.last_checkpoint,
        "message": result.message,
        "notes": list(result.notes),
    }


def _write_result(out_dir: Path, result: TrainResult) -> None:
    path = out_dir / RESULT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result_record(result), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file


# ----------------------------------------------------------------------------- the summary


def format_summary(result: TrainResult) -> str:
    """The lines printed at the end of a run."""
    from genaisdk.core.numbers import fmt_bytes, fmt_percent, fmt_rate

    def number(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"{result.status}: {result.project}, steps {result.start_step} -> {result.steps} of "
        f"{result.total_steps} in {result.seconds:.1f} s"
    ]
    if result.message:
        lines.append(f"  {result.message}")
    lines.append(
        f"  final loss      {number(result.final_loss)}   held-out loss {number(result.eval_loss)}   "
        f"perplexity {number(result.perplexity, 2)}"
    )
    mfu = fmt_percent(result.mfu) if result.mfu is not None else f"- (no peak FLOP/s known for {result.platform})"
    lines.append(f"  throughput      {fmt_rate(result.tokens_per_s)}   MFU {mfu}")
    if result.peak_memory_bytes is not None:
        memory = f"measured peak {fmt_bytes(result.peak_memory_bytes)} per device"
        if result.planned_memory_bytes:
            ratio = result.peak_memory_bytes / result.planned_memory_bytes
            memory += f" vs planned {fmt_bytes(result.planned_memory_bytes)} (x{ratio:.2f})"
            if result.planned_devices not in (None, result.devices):
                memory += f"; planned for {result.planned_devices} device(s), run on {result.devices}"
    else:
        memory = f"not reported by {result.platform} devices"
    lines.append(f"  memory          {memory}")
    latest = f" (latest step {result.last_checkpoint})" if result.last_checkpoint is not None else ""
    lines.append(f"  checkpoints     {result.checkpoint_dir}{latest}")
    lines.append(f"  metrics         {result.metrics_path}")
    return "\n".join(lines)
