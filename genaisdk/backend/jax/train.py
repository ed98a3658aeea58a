"""`train(spec, options)`: train the spec'd model with the JAX backend, as its plan says.

    >>> from genaisdk.backend.jax.options import TrainOptions
    >>> result = train("specs/tiny-gpt.genai", TrainOptions(steps=40, out="runs/tiny"))
    >>> result.final_loss, result.tokens_per_s, result.checkpoint_dir

(`genaisdk.train(spec, steps=40, out=...)` is the same call with the options as keywords,
and prints the summary.) A run goes through these jobs, each in its own place:

1. the spec and its plan (`load_spec`, `genaisdk.planning.pipeline.plan`);
2. the output folder: where, whether this run may write there, its lock
   (`genaisdk.backend.jax.run_folder`);
3. the devices, and the run from the plan (`start_runtime`; `genaisdk.planning.run_settings`:
   the plan's model, precision, strategy, devices, batch, micro-batch, accumulation and
   recomputation, changed only by the named options `devices`, `tensor_parallel`,
   `sequence_parallel`, `steps`, `precision`, `adaptation`, each deviation printed and
   recorded);
4. the mesh and the trainer (`build`), then the data (`genaisdk.backend.jax.data`, confined
   to the spec's folder);
5. the step compiled ahead of time, its memory per device next to the plan's and the
   device's, and a refusal when it cannot fit (`compile_and_check`,
   `genaisdk.backend.jax.compile`);
6. where to start: fresh, pretrained, or resumed (`genaisdk.backend.jax.resume`);
7. ``run.json`` and the other run files, then the loop (`genaisdk.backend.jax.loop`);
8. the result (`TrainResult`, written as ``result.json``; `genaisdk.render.run.train_summary`
   words it).

The output folder holds ``spec.genai``, ``run.json``, ``metrics.jsonl``, ``result.json``,
``checkpoints/`` and ``tokenizer/`` (see `genaisdk.backend.jax.run_folder`). A spec with
`model { from = "..." }` trains the checkpoint's model from its weights, with its tokenizer
(unless `data.tokenizer` names another); `genaisdk.backend.jax.load.load_model` opens the
run folder again as a model, and `genai export` writes it as a Hugging Face checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import stat
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.backend.jax.errors import (  # noqa: F401 (the errors a caller catches live here too)
    MISSING_JAX,
    MissingExtraError,
    NothingTrains,
    TrainError,
    TrainingDiverged,
    TrainingFailed,
)
from genaisdk.backend.jax.options import TrainOptions
from genaisdk.backend.jax.run_folder import CHECKPOINTS, RESULT_FILE, RUN_FILE, SPEC_COPY, TOKENIZER_COPY, RunFolder  # noqa: F401

DEFAULT_OUT_ROOT = "runs"


@attrs.frozen(kw_only=True)
class TrainResult:
    """What a run did and measured. Losses are token means; memory is per device, bytes."""

    status: str
    """'completed', 'interrupted' (SIGINT/SIGTERM; resumable), 'diverged' or 'failed'
    (its output could not be written)."""
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
    compiled_memory_bytes: int | None = None
    """What XLA's memory_analysis says the compiled step needs per device."""
    process_index: int = 0
    """This process's rank; only rank 0 reports."""

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def params(self) -> Any:
        """The final parameters (a pytree of arrays on the training devices), or None when
        the run kept no state (diverged, failed). `genaisdk.generate(result, ...)` and
        `genaisdk.evaluate(result, ...)` use them directly."""
        return None if self.state is None else self.state.params

    @property
    def exit_code(self) -> int:
        """0 completed; 1 diverged or failed; 128 + signal number when stopped by a signal."""
        if self.status == "completed":
            return 0
        if self.status == "interrupted":
            return 128 + int(self.signal_number or 15)
        return 1


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


def load_spec(spec: Any, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Any:
    """A Spec from a path, a Spec object, or spec text (`genaisdk.spec.is_path` tells a
    path from text); overrides applied (`train.sharding=fsdp`)."""
    from genaisdk.backend.jax.options import override_list
    from genaisdk.spec import is_path, load, loads
    from genaisdk.spec.model import Spec

    items = list(override_list(overrides)) or None
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


def spec_folder(spec: Any) -> Path:
    """The folder of the spec's file (its data and tokenizer paths are relative to it), or
    the working directory for a spec given as text."""
    path = Path(getattr(spec, "filename", "") or "")
    return path.parent.absolute() if path.name and path.exists() else Path.cwd()


def plan_of(spec: Any, adaptation: str | None = None) -> Any:
    """The spec's plan; TrainError when it has errors (nothing to run), NothingTrains
    (exit status 0) when it is valid and trains nothing (`adapt.method = prompt`, or
    `adaptation`, the --adapt option, names such a method), before any device is started
    or any file written."""
    from genaisdk.planning.pipeline import plan as make_plan
    from genaisdk.planning.run_settings import nothing_to_train, trains_nothing

    plan = make_plan(spec)
    if plan.errors:
        problems = "; ".join(f"{d.code}: {d.message}" for d in plan.errors)
        raise TrainError(f"the plan has errors, so there is nothing to run ({problems}); `genai plan` shows them")
    if trains_nothing(plan):
        raise NothingTrains(str(nothing_to_train(plan.train.adaptation, spec)))
    if adaptation is not None:
        from genaisdk.registry import get_registry

        record = get_registry().get("adaptations", adaptation)
        if record is not None and not record.trains:
            raise NothingTrains(str(nothing_to_train(record.key, spec)))
    return plan


# ----------------------------------------------------------------------------- devices


def default_checkpoint_every(total_steps: int) -> int:
    """A tenth of the run (at most every 1000 steps): a killed run loses at most that much."""
    return max(1, min(1000, total_steps // 10))


def _private_folder(path: str) -> bool:
    """Creates `path` (mode 0700) if needed; True when it is a folder only this user can
    write: compiled programs read from it are machine code, run as they are."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError:
        return False
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def enable_compilation_cache() -> str | None:
    """Keeps XLA's compiled steps on disk so a rerun or a resume skips compilation.

    Uses JAX's persistent compilation cache in ``$XDG_CACHE_HOME/genaisdk/xla`` (default
    ``~/.cache``), unless a cache folder is already configured (``JAX_COMPILATION_CACHE_DIR``)
    or ``GENAISDK_COMPILATION_CACHE=0``. Only compilations slower than JAX's threshold
    (one second) are stored. A cache entry is a compiled program that runs as it is, so the
    folder must be this user's alone: one that others can write is not used (the returned
    note says so).
    """
    import jax

    if os.environ.get("GENAISDK_COMPILATION_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "genaisdk", "xla")
    if not _private_folder(folder):
        return f"the compilation cache {folder} is not a folder only you can write; compiling without it"
    jax.config.update("jax_compilation_cache_dir", folder)
    return None


def _multi_host(options: TrainOptions) -> bool:
    from genaisdk.backend.jax import distributed

    return options.coordinator is not None or distributed._auto_environment() is not None


def start_runtime(plan: Any, options: TrainOptions) -> Any:
    """Brings JAX up on the plan's device count (or `options.devices` per process) and
    joins the multi-host runtime where asked or detected. TrainError (exit 2) for devices
    this machine cannot give, checked before JAX starts where possible."""
    from genaisdk.backend.jax import distributed

    per_process = _devices_per_process(plan, options)
    try:
        return distributed.setup(
            devices=per_process,
            coordinator=options.coordinator,
            num_processes=options.num_processes,
            process_id=options.process_id,
        )
    except distributed.DistributedError as exc:
        if options.devices is None and not _multi_host(options):
            raise TrainError(
                f"the plan trains on {plan.train.devices} x {plan.train.hardware}, more devices than this "
                f"process has: pass --devices N to run it on fewer (the global batch is kept; the change is recorded)",
                exit_code=2,
            ) from None
        raise TrainError(str(exc), exit_code=2) from None


def _devices_per_process(plan: Any, options: TrainOptions) -> int | None:
    """The devices this process brings up: `options.devices`, else (one process) the
    plan's count; TrainError (exit 2) for a count no process can have, before JAX starts."""
    from genaisdk.backend.jax import distributed

    per_process = options.devices
    if per_process is None and not _multi_host(options):
        per_process = plan.train.devices
    try:
        distributed.check_device_count(per_process, what="--devices" if options.devices else "the plan's device count")
    except distributed.DistributedError as exc:
        raise TrainError(str(exc), exit_code=2) from None
    return per_process


def settings_for(plan: Any, spec: Any, runtime: Any, options: TrainOptions) -> Any:
    """The run of `plan` on `runtime`'s devices (`genaisdk.planning.run_settings`), with the
    named options applied and each deviation worded."""
    from genaisdk.planning.run_settings import NothingToTrain, RunSettingsError, run_settings

    why = None
    if options.devices is not None:
        why = f"--devices {options.devices}" + (f" x {runtime.process_count} processes" if runtime.process_count > 1 else "")
    elif runtime.global_devices != plan.train.devices:
        why = f"the devices of this {runtime.process_count}-process run"
    try:
        return run_settings(
            plan,
            spec,
            devices=runtime.global_devices,
            tensor_parallel=options.tensor_parallel,
            sequence_parallel=options.sequence_parallel,
            steps=options.steps,
            precision=options.precision,
            adaptation=options.adaptation,
            devices_why=why,
        )
    except NothingToTrain as exc:  # --adapt prompt
        raise NothingTrains(str(exc)) from None
    except RunSettingsError as exc:
        raise TrainError(str(exc)) from None


# ----------------------------------------------------------------------------- the trainer


@attrs.frozen(kw_only=True)
class Built:
    """A run's configuration, trainer and what it was built from."""

    config: Any
    trainer: Any = attrs.field(repr=False)
    tokenizer: Any = attrs.field(repr=False)
    pretrained: Any = attrs.field(repr=False)
    """The `model.from` checkpoint (`genaisdk.checkpoints.hf_config.HFModel`), or None."""
    devices: list = attrs.field(repr=False)
    """The mesh's devices, every process's."""
    notes: tuple[str, ...] = ()


def build(spec: Any, settings: Any, runtime: Any, options: TrainOptions, registry: Any) -> Built:
    """The configuration (`RunConfig.from_settings`), the tokenizer, the mesh over the
    runtime's devices and the `Trainer` (its sharding notes kept as notes)."""
    from genaisdk.backend.jax import distributed
    from genaisdk.backend.jax.config import RunConfig, read_spec_checkpoint
    from genaisdk.backend.jax.sharding import make_mesh
    from genaisdk.backend.jax.step import Trainer

    config = RunConfig.from_settings(settings, registry=registry)
    if options.dp_impl is not None:
        config = config.evolve(dp_impl=options.dp_impl)
    pretrained = read_spec_checkpoint(spec) if spec.project.model.checkpoint else None
    tokenizer, tokenizer_notes = run_tokenizer(spec, pretrained, config.dims.vocab)
    devices = distributed.training_devices(runtime)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mesh = make_mesh(devices, tensor_parallel=config.tensor_parallel, kv_heads=config.dims.n_kv_heads)
        trainer = Trainer(config, mesh, tokenizer=tokenizer)
    notes = tuple(str(w.message) for w in caught) + tuple(tokenizer_notes)
    return Built(config=config, trainer=trainer, tokenizer=tokenizer, pretrained=pretrained, devices=devices, notes=notes)


def run_tokenizer(spec: Any, checkpoint: Any, vocab: int) -> tuple[Any, list[str]]:
    """The tokenizer a run tokenizes its text with: `data.tokenizer` (relative to the spec),
    else the checkpoint's, else None (the byte tokenizer); and notes on how its ids fit
    the model's `vocab` embedding rows (more ids than rows: a TokenizerError)."""
    from genaisdk.backend.jax.tokenizer import check_vocabulary, find_tokenizer_file, load_tokenizer
    from genaisdk.checkpoints.hf_config import spec_folder as checkpoint_folder

    ids = checkpoint.ids if checkpoint is not None else None
    if spec.project.data.tokenizer:
        tokenizer = load_tokenizer(checkpoint_folder(spec, spec.project.data.tokenizer), ids=ids)
        where = "data.tokenizer"
    elif checkpoint is not None and find_tokenizer_file(checkpoint.folder) is not None:
        tokenizer = load_tokenizer(checkpoint.folder, ids=ids)
        where = "the checkpoint"
    else:
        return None, []
    fit = check_vocabulary(tokenizer, vocab, where="the model")
    return tokenizer, [f"tokenizer from {where}: {tokenizer.describe()}; {fit.describe()}"]


def data_scope(spec: Any, options: TrainOptions) -> Any:
    """Where the spec's data entries may lead: the spec's folder; the entries the user gave
    on the command line (`--set data.source=...`, not in the spec's own text) anywhere; and
    everywhere with `allow_data_outside`."""
    from genaisdk.backend.jax.sources import DataScope

    entries = tuple(spec.project.data.source)
    own = entries
    if getattr(spec, "override_source", "") and getattr(spec, "source", ""):
        from genaisdk.diagnostics import SpecError
        from genaisdk.spec import loads

        try:  # the spec's own text, without the command line's overrides
            own = tuple(loads(spec.source, filename=spec.filename).project.data.source)
        except SpecError:  # it needs its overrides to load: trust nothing extra
            own = entries
    trusted = frozenset(entries) - frozenset(own)
    return DataScope(roots=(spec_folder(spec),), trusted=trusted, anywhere=options.allow_data_outside)


def read_data(spec: Any, built: Built, options: TrainOptions) -> Any:
    """The run's `DataPipeline` (its sources resolved against, and confined to, the spec's folder)."""
    from genaisdk.backend.jax.data import build_pipeline

    config = built.config
    project = spec.project
    return build_pipeline(
        project.data.source,
        seq_len=built.trainer.row_length,
        rows_per_step=config.global_batch,
        vocab_size=config.dims.vocab,
        seed=config.seed,
        held_out=project.data.held_out,
        base_dir=spec_folder(spec),
        scope=data_scope(spec, options),
        tokenizer=built.tokenizer,
        mix=dict(project.data.mix) or None,
    )


# ----------------------------------------------------------------------------- compiling


def compile_and_check(built: Built, *, plan: Any, settings: Any, options: TrainOptions, registry: Any) -> tuple[Any, Any]:
    """The train step compiled ahead of time (`genaisdk.backend.jax.compile.compile_step`)
    and its memory against the plan's and the device's (`check_memory`); the capacity is
    `options.device_memory` (or `GENAISDK_DEVICE_MEMORY`), else the device's own."""
    import jax

    from genaisdk.backend.jax.compile import check_memory, compile_step
    from genaisdk.backend.jax.devices import device_capacity

    compiled = compile_step(built.trainer)
    local = [d for d in built.devices if d.process_index == jax.process_index()]
    capacity = device_capacity(local, registry, options.configured_device_memory())
    check = check_memory(compiled, plan=plan, settings=settings, capacity=capacity, registry=registry)
    return compiled, check


def compile_dry_run(spec: Any, options: TrainOptions | None = None) -> tuple[Any, Any]:
    """`genai train --dry-run --compile`: the run's settings and its compiled step's
    `MemoryCheck`, on the run's devices, allocating nothing and writing nothing."""
    from genaisdk.registry import get_registry

    options = options or TrainOptions()
    require_jax()
    spec = load_spec(spec, options.overrides)
    plan = plan_of(spec, options.adaptation)
    try:
        runtime = start_runtime(plan, options)
        settings = settings_for(plan, spec, runtime, options)
        registry = get_registry()
        built = build(spec, settings, runtime, options, registry)
        return settings, compile_and_check(built, plan=plan, settings=settings, options=options, registry=registry)[1]
    except Exception as exc:
        _reraise_for_user(exc)
        raise


# ----------------------------------------------------------------------------- the run


def train(spec: Any, options: TrainOptions | None = None) -> TrainResult:
    """Train the spec'd model as its plan says; see the module docstring.

    `spec`: a path, spec text or a Spec. `options`: a `TrainOptions` (default: the plan's
    run into ``runs/<project>``).

    Returns a TrainResult (status 'completed' or 'interrupted'); raises TrainingDiverged
    when the loss becomes NaN or infinite, TrainingFailed when the disk refuses a
    checkpoint or a metrics line, NothingTrains (a TrainError whose exit status is 0) for a
    plan that trains nothing (`adapt.method = prompt`: nothing is started or written),
    TrainError for settings that cannot run (among them a
    compiled step larger than the device), `genaisdk.SpecError` for an invalid spec. Prints
    progress, never the summary (`genaisdk.train` and `genai train` print that).
    """
    options = options or TrainOptions()
    require_jax()
    spec = load_spec(spec, options.overrides)
    plan = plan_of(spec, options.adaptation)
    _devices_per_process(plan, options)
    folder = None
    try:
        if not _multi_host(options):  # one process: lock the folder before JAX starts
            folder = RunFolder.open(options.out, project=spec.project.name, resume=options.resume)
        runtime = start_runtime(plan, options)
        if folder is None:
            folder = RunFolder.open(options.out, project=spec.project.name, resume=options.resume, primary=runtime.is_primary)
        settings = settings_for(plan, spec, runtime, options)
        cache_note = enable_compilation_cache()
        return _run(spec, plan, settings, runtime, folder, options, extra_notes=(cache_note,) if cache_note else ())
    except Exception as exc:
        _reraise_for_user(exc)
        raise
    finally:
        if folder is not None:
            folder.close()


def _run(spec: Any, plan: Any, settings: Any, runtime: Any, folder: RunFolder, options: TrainOptions, *, extra_notes: tuple[str, ...]) -> TrainResult:
    """Steps 4 to 8 of the module docstring, on an open run folder."""
    from genaisdk.backend.jax.checkpoint import Checkpointer, layout_digest
    from genaisdk.backend.jax.compile import refusal
    from genaisdk.backend.jax.loop import DEFAULT_EVAL_BATCHES, DIVERGED, FAILED, LoopSettings, TrainingLoop
    from genaisdk.backend.jax.metrics import MetricsLog
    from genaisdk.backend.jax.run_folder import checkpoint_steps
    from genaisdk.backend.jax.resume import check_resumable, config_digest, config_record, start_state, tokenizer_identity
    from genaisdk.registry import get_registry

    registry = get_registry()
    built = build(spec, settings, runtime, options, registry)
    config, trainer = built.config, built.trainer
    record = config_record(config)
    record["tokenizer"] = tokenizer_identity(built.tokenizer, config.dims.vocab)
    # Opened early only to check a resumed run's checkpoints (opening creates checkpoints/,
    # which a run refused before step 0 must not leave behind).
    checkpointer = Checkpointer(folder.checkpoints) if options.resume and checkpoint_steps(folder.path) else None
    metrics = None
    try:
        if checkpointer is not None:  # before reading data and compiling: a refusal costs nothing
            check_resumable(checkpointer, record, _saved_config(folder))
        pipeline = read_data(spec, built, options)
        compiled, check = compile_and_check(built, plan=plan, settings=settings, options=options, registry=registry)
        if check.fits is False:
            raise TrainError(refusal(check))
        trainer.use_compiled(compiled.executable)

        digest = config_digest(record)
        layout = layout_digest(trainer.abstract_state())
        if checkpointer is None:
            checkpointer = Checkpointer(folder.checkpoints)
        start = start_state(
            trainer=trainer,
            checkpointer=checkpointer,
            resume=options.resume,
            digest=digest,
            layout=layout,
            data_fingerprint=pipeline.fingerprint,
            record=record,
            saved_record=_saved_config(folder),
            pretrained=built.pretrained,
            primary=runtime.is_primary,
        )
        if runtime.is_primary:
            _write_run_record(folder, spec, options, settings, record, runtime, pipeline, check, built)
            metrics = MetricsLog(folder.metrics, keep_through_step=start.step or None)
        else:
            metrics = MetricsLog(folder.metrics, enabled=False)
        display = _display(options, runtime.is_primary)
        deviations = tuple(
            f"the run differs from the plan: {d.field} {d.plan} -> {d.run} ({d.why})" for d in settings.deviations
        )
        notes = deviations + built.notes + tuple(folder.notes) + extra_notes + start.notes + _repeat_notes(pipeline, config)
        for note in notes:
            display.note(f"note: {note}")
        display.note(_headline(spec, config, runtime, start.state))
        display.note(f"data: {pipeline.description}")
        display.note(check.describe())

        from genaisdk.backend.jax.devices import device_hardware, peak_flops_per_device

        per_device_peak = peak_flops_per_device(built.devices, config.precision.compute_dtype, registry)
        train_spec = spec.project.train
        loop_settings = LoopSettings(
            total_steps=config.total_steps,
            seed=config.seed,
            eval_every=options.eval_every or train_spec.eval_every,
            eval_batches=options.eval_batches or DEFAULT_EVAL_BATCHES,
            checkpoint_every=options.checkpoint_every or train_spec.checkpoint_every or default_checkpoint_every(config.total_steps),
            peak_flops=per_device_peak * len(built.devices) if per_device_peak else None,
            process_count=runtime.process_count,
        )

        def checkpoint_meta(step: int) -> dict[str, Any]:
            return {
                "seed": config.seed,
                "data": pipeline.position(step),
                "config_digest": digest,
                "config": record,
                "layout": layout,
                "total_steps": config.total_steps,
                "project": spec.project.name,
            }

        loop = TrainingLoop(
            trainer=trainer,
            pipeline=pipeline,
            settings=loop_settings,
            checkpointer=checkpointer,
            metrics=metrics,
            progress=display,
            checkpoint_meta=checkpoint_meta,
        )
        outcome = loop.run(start.state, start.step)
    finally:
        if metrics is not None:
            metrics.close()
        if checkpointer is not None:
            _close_quietly(checkpointer)

    result = _result(
        spec, plan, config, runtime, folder, outcome, start.step, check, loop_settings.peak_flops, notes, record,
        hardware=getattr(device_hardware(built.devices, registry), "key", None),
    )
    if runtime.is_primary:
        folder.write_result(result_record(result))
    if outcome.status == DIVERGED:
        raise TrainingDiverged(result)
    if outcome.status == FAILED:
        raise TrainingFailed(result)
    return result


def _repeat_notes(pipeline: Any, config: Any) -> tuple[str, ...]:
    """One note when the run reads its training data more than once (epochs > 1): how many
    sequences it draws from how many, so that a repeated corpus is never a surprise."""
    from genaisdk.backend.jax.data import epochs

    drawn = config.total_steps * config.global_batch
    repeats = {name: e for name, e in epochs(pipeline, config.total_steps).items() if e > 1.0}
    if not repeats:
        return ()
    if "" in repeats:
        n = pipeline.num_train_sequences
        return (
            f"the run repeats its training data: {drawn:,} sequences drawn from {n:,} training sequences, "
            f"{repeats['']:.1f} epochs (each sequence about {repeats['']:.1f} times); more data or fewer steps "
            "would not repeat it",
        )
    groups = ", ".join(f"{name} {e:.1f}" for name, e in repeats.items())
    return (f"the run repeats its training data: of the {drawn:,} sequences drawn, the data.mix groups {groups} epochs (expected)",)


def _epochs_record(pipeline: Any, record: Mapping[str, Any]) -> Any:
    """run.json's data.epochs: the times the run reads its training split (a number, or
    one per data.mix group; None for an endless synthetic stream)."""
    from genaisdk.backend.jax.data import epochs

    found = epochs(pipeline, int(record["total_steps"]))
    if not found:
        return None
    return round(found[""], 4) if "" in found else {name: round(e, 4) for name, e in found.items()}


def _saved_config(folder: RunFolder) -> dict[str, Any] | None:
    """The configuration record in the run folder's run.json (what checkpoints written
    before their metadata carried it were saved with), or None."""
    try:
        config = json.loads((folder.path / RUN_FILE).read_text(encoding="utf-8")).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    return config if isinstance(config, dict) else None


def _close_quietly(checkpointer: Any) -> None:
    """Closes the checkpointer; a save that failed has been reported by the loop already."""
    from genaisdk.backend.jax.checkpoint import CheckpointWriteError

    try:
        checkpointer.close()
    except CheckpointWriteError:
        pass


def _display(options: TrainOptions, primary: bool) -> Any:
    from genaisdk.backend.jax.progress import SilentProgress, make_progress

    progress = options.progress
    if progress is None or isinstance(progress, bool):
        return make_progress(primary=primary, tty=progress, stream=options.stream or sys.stdout, quiet=options.quiet)
    return progress if primary else SilentProgress()


def _headline(spec: Any, config: Any, runtime: Any, state: Any) -> str:
    return (
        f"training {spec.project.name}: {config.architecture.name} {_params_text(config, state)}, "
        f"{config.objective.name}, {config.precision.name}, {config.strategy.name} on "
        f"{runtime.global_devices} {runtime.platform} device(s)"
        + (f" x {runtime.process_count} processes" if runtime.process_count > 1 else "")
        + f"; {config.global_batch} x {config.seq_len} tokens per step"
        + (f" ({config.accumulation} micro-steps)" if config.accumulation > 1 else "")
    )


def _params_text(config: Any, state: Any) -> str:
    import jax

    from genaisdk.core.numbers import fmt_count

    trained = fmt_count(sum(int(math.prod(x.shape)) for x in jax.tree.leaves(state.params)))
    adapter = config.adapter
    if adapter is None:
        return f"{trained} params"
    frozen = f", base frozen in {adapter.frozen.upper()}" if adapter.frozen else ", base frozen"
    return (
        f"{adapter.method} rank {adapter.rank} (alpha {adapter.alpha:g}) on {', '.join(adapter.targets)}: "
        f"{trained} adapter params trained{frozen}"
    )


def _write_run_record(
    folder: RunFolder, spec: Any, options: TrainOptions, settings: Any, record: dict, runtime: Any, pipeline: Any, check: Any, built: Built
) -> None:
    """run.json (with spec.genai and the tokenizer's files): what this run is."""
    import jax

    from genaisdk import __version__

    settings_json = settings.to_json()
    run: dict[str, Any] = {
        "project": spec.project.name,
        "spec_file": str(getattr(spec, "filename", "")),
        "overrides": list(options.overrides),
        "settings": settings_json,
        "deviations": settings_json["deviations"],
        "config": record,
        "compiled": check.to_json(),
        "data": {
            "sources": list(spec.project.data.source),
            "base_dir": str(spec_folder(spec)),
            "held_out": pipeline.settings.held_out,
            "mix": dict(spec.project.data.mix) or None,
            "description": pipeline.description,
            "epochs": _epochs_record(pipeline, record),
            "fingerprint": pipeline.fingerprint,
            "files": [f.to_json() for f in pipeline.files],
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
    checkpoint = built.pretrained
    if checkpoint is not None:
        # What export needs to write the run back as its base model's family.
        run["checkpoint"] = {
            "from": str(Path(checkpoint.folder).absolute()),
            "model_type": checkpoint.model_type,
            "vocab": checkpoint.dims.vocab,
            "config": dict(checkpoint.config),
        }
    tokenizer = built.tokenizer
    ids = None
    if tokenizer is not None:
        ids = attrs.asdict(checkpoint.ids) if checkpoint is not None else {
            "bos": tokenizer.bos_id, "eos": list(tokenizer.stop_ids), "pad": tokenizer.pad_id, "decoder_start": None,
        }
    folder.write_run_files(run, spec_source=getattr(spec, "source", ""), tokenizer=tokenizer, ids=ids)


def _result(
    spec: Any, plan: Any, config: Any, runtime: Any, folder: RunFolder, outcome: Any, start_step: int, check: Any,
    peak_flops: float | None, notes: tuple[str, ...], record: dict, *, hardware: str | None,
) -> TrainResult:
    from genaisdk.backend.jax import distributed
    from genaisdk.backend.jax.devices import measured_peak_memory

    planned_total = plan.memory.per_device.total
    return TrainResult(
        status=outcome.status,
        project=spec.project.name,
        start_step=start_step,
        steps=outcome.step,
        total_steps=config.total_steps,
        final_loss=outcome.final_loss,
        eval_loss=outcome.eval_loss,
        perplexity=outcome.perplexity,
        tokens_per_s=outcome.tokens_per_s,
        mfu=outcome.mfu,
        peak_flops=peak_flops,
        peak_memory_bytes=measured_peak_memory(distributed.local_devices(runtime)),
        planned_memory_bytes=int(planned_total) if planned_total else None,
        planned_devices=int(plan.train.devices),
        hardware=hardware,
        seconds=outcome.seconds,
        devices=runtime.global_devices,
        processes=runtime.process_count,
        platform=runtime.platform,
        out_dir=folder.path,
        checkpoint_dir=folder.checkpoints,
        last_checkpoint=outcome.last_checkpoint,
        metrics_path=folder.metrics,
        message=outcome.message,
        notes=notes,
        config=record,
        state=outcome.state,
        signal_number=outcome.signal_number,
        compiled_memory_bytes=check.need,
        process_index=runtime.process_index,
    )


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
        "compiled_memory_bytes": result.compiled_memory_bytes,
        "hardware": result.hardware,
        "seconds": number(result.seconds),
        "devices": result.devices,
        "processes": result.processes,
        "platform": result.platform,
        "last_checkpoint": result.last_checkpoint,
        "message": result.message,
        "notes": list(result.notes),
    }


def _reraise_for_user(exc: Exception) -> None:
    """Raises a TrainError in place of an error the user can fix (the spec, the data, the
    devices, the checkpoints: shown without a traceback); returns for anything else (a bug,
    a TrainError or SpecError already), which the caller re-raises as it is."""
    converted = _as_train_error(exc)
    if converted is not exc:
        raise converted from exc


def _as_train_error(exc: Exception) -> Exception:
    """A TrainError for an error caused by the spec, the data, the devices, the checkpoints
    or the disk (shown without a traceback); `exc` itself for a bug."""
    from genaisdk.backend.jax.checkpoint import CheckpointError
    from genaisdk.backend.jax.config import BackendError
    from genaisdk.backend.jax.distributed import DistributedError
    from genaisdk.backend.jax.sources import DataError
    from genaisdk.backend.jax.tokenizer import TokenizerError
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.diagnostics import SpecError

    if isinstance(exc, (SpecError, TrainError)):
        return exc
    if isinstance(exc, (BackendError, DataError, CheckpointError, TokenizerError, CheckpointFormatError)):
        return TrainError(str(exc))
    if isinstance(exc, DistributedError):
        return TrainError(str(exc), exit_code=2)
    return exc
