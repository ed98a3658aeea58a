"""A trained model for generation and evaluation: what MODEL names on the command line.

`resolve_model(source)` is the one place a MODEL argument becomes a `LoadedModel`: a
`genai train` run directory or a Hugging Face checkpoint folder (`load`, through
`genaisdk.backend.jax.load.load_model`), a `TrainResult` from `genaisdk.train`, or a model
already loaded. A run directory gives its model configuration (``run.json``), the
parameters of its latest checkpoint that verifies (an earlier one, with a note, when the
latest is damaged), its tokenizer, and what evaluation needs to rebuild the run's held-out
split (data sources, seed, held-out fraction, the spec's task). A checkpoint folder gives
its weights and tokenizer; its loss is its family's pretraining objective's.

Errors a user can fix raise `ModelLoadError` with a message naming the folder or file.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.backend.jax.config import BackendError

RUN_FILE = "run.json"
SPEC_COPY = "spec.genai"
CHECKPOINTS = "checkpoints"


class ModelLoadError(BackendError):
    """A MODEL that cannot be loaded (missing folder, no checkpoint, mismatched tokenizer)."""


@attrs.frozen(kw_only=True)
class LoadedModel:
    """A model, its parameters and tokenizer, and the run they came from."""

    model: Any
    """The architecture's JAX model (`model.Transformer` for the built-in families)."""
    params: Any = attrs.field(repr=False)
    """The parameters (a run's fp32 master weights; a checkpoint's as stored), on one device."""
    tokenizer: Any
    config: Mapping[str, Any] = attrs.field(repr=False)
    """The run's resolved configuration (`run.json`'s ``config``); for a Hugging Face
    checkpoint, its dimensions with the checkpoint's context as `seq_len`."""
    objective: Any
    """The objective object (`genaisdk.backend.jax.objectives`) its loss is measured with:
    the run's, or the family's pretraining objective for a checkpoint."""
    precision: Any
    """The precision record of the weights' compute dtype (the run's training precision)."""
    family: str
    kind: str = "run"
    """'run' (a `genai train` run), 'hf' (a Hugging Face checkpoint folder) or 'fresh'."""
    run_dir: Path | None = None
    """The folder the model came from."""
    step: int | None = None
    """The checkpoint's optimizer step (None for parameters handed over in memory)."""
    task: str | None = None
    """The spec's `task`, where it names one."""
    data_sources: tuple[str, ...] = ()
    held_out: float | None = None
    mix: dict[str, float] | None = None
    """The run's `data.mix` (group -> share), so its held-out split is rebuilt the same."""
    base_dir: Path | None = None
    """The folder the run's relative data sources are resolved against."""
    decoder_start: int | None = None
    """An encoder-decoder's first decoder input (None: the model's padding id)."""
    notes: tuple[str, ...] = ()

    @property
    def dims(self) -> Any:
        return self.model.dims

    @property
    def seq_len(self) -> int:
        return int(self.config["seq_len"])

    @property
    def name(self) -> str:
        return str(self.run_dir) if self.run_dir is not None else "<in memory>"


def _registry() -> Any:
    from genaisdk.registry import get_registry

    return get_registry()


def run_config(record: Mapping[str, Any], registry: Any = None) -> Any:
    """A one-device `RunConfig` from a run's configuration record: the model, objective,
    optimizer and precision it trained with (what its checkpoints' state is made of)."""
    from genaisdk.backend.jax.config import AdapterConfig, RunConfig
    from genaisdk.dims import Dimensions

    registry = registry if registry is not None else _registry()
    try:
        dims = Dimensions(**record["dims"])
        rows = int(record["global_batch"])
        return RunConfig.from_names(
            dims=dims,
            architecture=record["architecture"],
            objective=record["objective"],
            optimizer=record["optimizer"],
            precision=record["precision"],
            strategy=record["strategy"],
            registry=registry,
            devices=1,
            global_batch=rows,
            micro_batch=rows,
            accumulation=1,
            seq_len=int(record["seq_len"]),
            total_steps=int(record.get("total_steps", 1)),
            warmup_steps=min(int(record.get("warmup_steps", 0)), int(record.get("total_steps", 1))),
            weight_decay=float(record.get("weight_decay", 0.0)),
            seed=int(record.get("seed", 0)),
            optimizer_options=record.get("optimizer_options") or {},
            adapter=AdapterConfig.from_json(record.get("adapter")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"the run's configuration cannot be rebuilt: {exc}") from None


def check_tokenizer(tokenizer: Any, vocab: int, where: str = "the model") -> None:
    """Raises ModelLoadError when `tokenizer` can produce ids beyond `vocab` rows of the
    embedding table (a tokenizer of another model)."""
    size = getattr(tokenizer, "vocab_size", None)
    if size is None or size > vocab:
        raise ModelLoadError(
            f"the tokenizer does not match {where}: it has {size} ids but the model's vocabulary has "
            f"{vocab} rows; use the tokenizer the model was trained with"
        )


def _objective(record: Any, vocab: int, tokenizer: Any, decoder_start: int | None = None) -> Any:
    """The objective object of `record` for a model of `vocab` rows, with the tokenizer's ids
    (only a tokenizer other than the byte tokenizer passes them, as `Trainer` does)."""
    from genaisdk.backend.jax.step import resolve
    from genaisdk.backend.jax.tokenizer import TokenLayout, token_layout

    make = resolve(record.jax_loss, f"objective '{record.name}'")
    layout = token_layout(tokenizer, decoder_start=decoder_start)
    return make(vocab_size=vocab, record=record, **({"ids": layout} if layout != TokenLayout() else {}))


def load(path: str | Path, adapters: str | Path | None = None) -> LoadedModel:
    """The model of a `genai train` run directory (its newest checkpoint that verifies; only
    the parameters are read) or of a Hugging Face checkpoint folder, through
    `genaisdk.backend.jax.load.load_model`, with what generation and evaluation add: the
    run's objective, precision, task and data. `adapters`: a PEFT LoRA adapter folder merged
    into the model (`genaisdk.backend.jax.peft`).

    Raises ModelLoadError for a missing folder, a bad adapter folder, a folder that is neither, a run without
    checkpoints, checkpoints that do not match run.json, or a tokenizer that does not fit.
    """
    from genaisdk.backend.jax.load import load_model
    from genaisdk.backend.jax.tokenizer import TokenizerError
    from genaisdk.checkpoints import CheckpointFormatError

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"no such run directory or checkpoint folder: {path}")
    if path.is_dir() and (path / RUN_FILE).is_file():
        checkpoints = path / CHECKPOINTS
        if not checkpoints.is_dir() or not any(p.name.isdigit() for p in checkpoints.iterdir()):
            raise ModelLoadError(
                f"{path} holds no checkpoint (nothing in {checkpoints}): the run saved none yet; "
                "let `genai train` finish or save with --checkpoint-every"
            )
        _check_layout(path)
    try:
        base = load_model(path, adapters=adapters)
    except (CheckpointFormatError, TokenizerError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from None
    return from_loaded(base)


def _check_layout(run_dir: Path) -> None:
    """The newest checkpoint's recorded layout (every array's path, shape and dtype) must be
    the state run.json describes: checked before any array is read."""
    import jax

    from genaisdk.backend.jax.checkpoint import Checkpointer, layout_digest
    from genaisdk.backend.jax.sharding import make_mesh
    from genaisdk.backend.jax.step import Trainer

    try:
        record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{run_dir / RUN_FILE} cannot be read: {exc}") from None
    config = run_config(record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        abstract = Trainer(config, make_mesh(jax.devices()[:1])).abstract_state()
    checkpointer = Checkpointer(run_dir / CHECKPOINTS, async_save=False)
    try:
        steps = checkpointer.steps()
        try:
            saved = checkpointer.read_meta(steps[-1]).get("layout") if steps else None
        except Exception:  # a damaged step: loading passes over it with a note
            saved = None
    finally:
        checkpointer.close()
    if saved not in (None, layout_digest(abstract)):
        raise ModelLoadError(
            f"the checkpoints in {run_dir / CHECKPOINTS} hold arrays of other shapes than {RUN_FILE} describes "
            "(the model, vocabulary, optimizer or precision in it was changed)"
        )


def from_loaded(base: Any) -> LoadedModel:
    """A LoadedModel from `genaisdk.backend.jax.load.load_model`'s result."""
    registry = _registry()
    tokenizer = base.tokenizer
    if tokenizer is None:
        raise ModelLoadError(f"{base.source} holds no tokenizer: generation and evaluation need one")
    decoder_start = getattr(base.ids, "decoder_start", None)
    if base.kind == "run":
        run = json.loads((Path(base.source) / RUN_FILE).read_text(encoding="utf-8"))
        record = run["config"]
        config = run_config(record, registry)
        data = run.get("data") or {}
        spec_info = _spec_info(Path(base.source) / SPEC_COPY)
        base_dir = data.get("base_dir") or (str(Path(run["spec_file"]).parent) if run.get("spec_file") else None)
        return LoadedModel(
            model=base.model,
            params=base.params,
            tokenizer=tokenizer,
            config=dict(record),
            objective=_objective(config.objective, config.dims.vocab, tokenizer, decoder_start),
            precision=config.precision,
            family=config.architecture.family,
            kind="run",
            run_dir=Path(base.source).absolute(),
            step=base.step,
            task=spec_info.get("task"),
            data_sources=tuple(data.get("sources") or ()),
            held_out=data.get("held_out", spec_info.get("held_out")),
            mix=data.get("mix"),
            base_dir=Path(base_dir) if base_dir else None,
            decoder_start=decoder_start,
            notes=tuple(base.notes),
        )
    import jax

    from genaisdk.backend.jax.config import _family_objective

    architecture = registry.get("architectures", base.architecture)
    if architecture is None:
        raise ModelLoadError(f"{base.source}: architecture {base.architecture!r} is not installed")
    dtype = str(jax.tree.leaves(base.params)[0].dtype)
    precision = registry.get("precisions", {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, "fp32"))
    dims = base.dims
    record = {"dims": attrs.asdict(dims), "architecture": architecture.name, "seq_len": dims.context, "global_batch": 8, "seed": 0}
    return LoadedModel(
        model=base.model,
        params=base.params,
        tokenizer=tokenizer,
        config=record,
        objective=_objective(_family_objective(registry, architecture), dims.vocab, tokenizer, decoder_start),
        precision=precision,
        family=base.family,
        kind=base.kind,
        run_dir=Path(base.source).absolute(),
        decoder_start=decoder_start,
        notes=tuple(base.notes),
    )


def _spec_info(path: Path) -> dict[str, Any]:
    """The task and held-out fraction of the run's spec copy; empty where it cannot be read
    (a plugin it names is gone): they are defaults, not requirements."""
    if not path.is_file():
        return {}
    try:
        from genaisdk.spec import loads

        spec = loads(path.read_text(encoding="utf-8"), filename=str(path))
    except Exception:
        return {}
    project = spec.project
    return {"task": project.task or None, "held_out": project.data.held_out}


def from_train_result(result: Any) -> LoadedModel:
    """A `genaisdk.train` result's final parameters (moved to one device), or its latest
    checkpoint when it kept none in memory."""
    import jax

    from genaisdk.backend.jax.load import run_tokenizer
    from genaisdk.backend.jax.step import resolve

    if result.state is None or (result.config or {}).get("adapter"):
        # An adapter run's state holds its adapters alone: the model is its frozen base
        # merged with them, as its run folder loads.
        return load(result.out_dir)
    out_dir = Path(result.out_dir)
    config = run_config(result.config)
    run = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8")) if (out_dir / RUN_FILE).is_file() else {}
    tokenizer = run_tokenizer(out_dir, run, config.dims)
    data = run.get("data") or {}
    spec_info = _spec_info(out_dir / SPEC_COPY)
    pad = getattr(tokenizer, "pad_id", None)
    factory = resolve(config.architecture.jax_model, f"architecture '{config.architecture.name}'")
    model = factory(config.dims, family=config.architecture.family, pad_id=-1 if pad is None else int(pad))
    return LoadedModel(
        model=model,
        params=jax.device_put(result.state.params, jax.devices()[0]),
        tokenizer=tokenizer,
        config=dict(result.config),
        objective=_objective(config.objective, config.dims.vocab, tokenizer),
        precision=config.precision,
        family=config.architecture.family,
        run_dir=out_dir,
        step=int(result.steps),
        task=spec_info.get("task"),
        data_sources=tuple(data.get("sources") or ()),
        held_out=data.get("held_out", spec_info.get("held_out")),
        mix=data.get("mix"),
        base_dir=Path(data["base_dir"]) if data.get("base_dir") else None,
    )


def resolve_model(source: Any, adapters: str | Path | None = None) -> LoadedModel:
    """MODEL as the commands and the Python API accept it: a run directory or a Hugging
    Face checkpoint folder (str or Path), a `TrainResult`, a `load_model` result, or a
    `LoadedModel`. The one place a new kind of MODEL is added. `adapters`: a PEFT LoRA
    adapter folder merged into a MODEL given as a folder or a `load_model` result."""
    if adapters is not None:
        if isinstance(source, (str, Path)):
            return load(source, adapters)
        if hasattr(source, "kind") and hasattr(source, "tokenizer") and hasattr(source, "params") and hasattr(source, "adapter"):
            from genaisdk.backend.jax.peft import apply_peft
            from genaisdk.checkpoints import CheckpointFormatError

            try:
                return from_loaded(apply_peft(source, adapters))
            except CheckpointFormatError as exc:
                raise ModelLoadError(str(exc)) from None
        raise ModelLoadError(
            f"adapters go over a MODEL given as a folder (a checkpoint or a run) or a load_model result, not {type(source).__name__}"
        )
    if isinstance(source, LoadedModel):
        return source
    if hasattr(source, "out_dir") and hasattr(source, "state"):
        return from_train_result(source)
    if isinstance(source, (str, Path)):
        return load(source)
    if hasattr(source, "kind") and hasattr(source, "tokenizer") and hasattr(source, "params"):
        return from_loaded(source)
    raise ModelLoadError(
        f"MODEL must be a run directory, a checkpoint folder, a TrainResult or a LoadedModel, not {type(source).__name__}"
    )


def fresh_model(
    dims: Any,
    *,
    family: str = "decoder",
    seed: int = 0,
    precision: str = "fp32",
    seq_len: int | None = None,
    registry: Any = None,
) -> LoadedModel:
    """A model of `dims` with freshly initialized parameters (no run behind it): what
    benchmarks and tests generate from when trained weights do not matter. The values
    follow each parameter's `ParamSpec` (normal with its std, zeros, ones), drawn with
    numpy on the host, so building one compiles nothing."""
    import zlib

    import jax
    import numpy as np

    from genaisdk.backend.jax.config import RunConfig
    from genaisdk.backend.jax.model import is_spec, path_name
    from genaisdk.backend.jax.step import resolve
    from genaisdk.backend.jax.tokenizer import ByteTokenizer
    from genaisdk.backend.jax.resume import config_record

    config = RunConfig.from_names(
        dims=dims,
        architecture=family,
        precision=precision,
        registry=registry if registry is not None else _registry(),
        devices=1,
        global_batch=1,
        micro_batch=1,
        seq_len=seq_len or dims.context,
        seed=seed,
    )
    record = config_record(config)
    factory = resolve(config.architecture.jax_model, f"architecture '{config.architecture.name}'")
    tokenizer = ByteTokenizer(vocab_size=dims.vocab)
    loaded = LoadedModel(
        model=factory(dims, family=config.architecture.family),
        params=None,
        tokenizer=tokenizer,
        config=record,
        objective=_objective(config.objective, dims.vocab, tokenizer),
        precision=config.precision,
        family=config.architecture.family,
        kind="fresh",
    )

    def draw(path: tuple, spec: Any) -> Any:
        if spec.init in ("zeros", "ones"):
            return jax.numpy.full(spec.shape, 0.0 if spec.init == "zeros" else 1.0, jax.numpy.float32)
        rng = np.random.default_rng([seed, zlib.crc32(path_name(path).encode())])
        return jax.numpy.asarray(rng.normal(0.0, spec.std, spec.shape).astype(np.float32))

    params = jax.tree_util.tree_map_with_path(draw, loaded.model.specs(), is_leaf=is_spec)
    return attrs.evolve(loaded, params=params)
