"""`load_model(path)`: a trained or downloaded model, ready to run, from one function.

    >>> from genaisdk.backend.jax.load import load_model
    >>> m = load_model("runs/tiny-gpt")                  # a `genai train` run folder
    >>> m = load_model("checkpoints/llama-3.2-1b")       # a Hugging Face checkpoint folder
    >>> logits = m.logits(m.tokenizer.encode("Hello")[None])     # [1, tokens, vocab], fp32
    >>> m.model.apply(m.params, ids, policy=m.policy)            # the same, by hand

`path` may be:

- a Hugging Face checkpoint folder (config.json + model.safetensors or a sharded index):
  weights read lazily and placed in their sharding (`genaisdk.backend.jax.hf`), the
  tokenizer from the folder (`tokenizer.json` or a SentencePiece model);
- a `genai train` run folder (run.json + checkpoints/): the newest verified step's
  parameters only (no optimizer state), with the tokenizer the run trained with (a copy in
  ``<run>/tokenizer/``, or the byte tokenizer);
- a run's ``checkpoints/`` folder or one step folder in it.

`adapters=DIR` merges a PEFT LoRA adapter folder into either (`genaisdk.backend.jax.peft`).

The result, a `LoadedModel`, carries everything generation, evaluation and export need:
the model (`Transformer`: `specs()`, `apply(...)`), the parameters, `Dimensions`, the
family, the tokenizer, the special ids, the real vocabulary (`vocab`; rows past it are
padding), and for a model that came from Hugging Face the config.json it was read from
(kept on export). Errors are `LoadError`s (a `CheckpointFormatError` for a bad Hugging Face
folder) with one line naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import jax
import jax.numpy as jnp

from genaisdk.backend.jax.checkpoint import CheckpointError, restore_params
from genaisdk.backend.jax.hf import load_params, padded_vocab
from genaisdk.backend.jax.model import build, is_spec
from genaisdk.backend.jax.precision import Policy
from genaisdk.backend.jax.tokenizer import ByteTokenizer, TokenizerError, check_vocabulary, find_tokenizer_file, load_tokenizer
from genaisdk.checkpoints import CheckpointFormatError
from genaisdk.checkpoints.hf_config import TokenIds, is_checkpoint_folder, read_checkpoint
from genaisdk.dims import Dimensions

RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"
TOKENIZER_FOLDER = "tokenizer"
"""Where a run keeps a copy of the tokenizer files it trained with."""


class LoadError(CheckpointFormatError):
    """A path that is neither a Hugging Face checkpoint nor a run, or one that cannot be read."""


@attrs.frozen(kw_only=True)
class LoadedModel:
    """A model with its parameters and tokenizer (see the module docstring)."""

    source: Path
    kind: str
    """'hf' (a Hugging Face folder) or 'run' (a `genai train` run)."""
    family: str
    """'decoder', 'encoder' or 'encoder_decoder'."""
    architecture: str
    """The registry architecture name ('encoder-decoder' for T5)."""
    dims: Dimensions
    """The model's dimensions; `dims.vocab` counts padded rows too."""
    model: Any
    params: Any = attrs.field(repr=False)
    tokenizer: Any
    ids: TokenIds = attrs.field(factory=TokenIds)
    vocab: int
    """Rows that are real tokens' (the checkpoint's vocab_size); `dims.vocab - vocab` are padding."""
    hf_config: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    """The config.json the weights came from (a run keeps its base model's), for export."""
    model_type: str | None = None
    """The Hugging Face `model_type` the weights came from, if any."""
    step: int | None = None
    """The run's checkpoint step that was loaded."""
    adapter: Any = None
    """An adapter run's `genaisdk.backend.jax.config.AdapterConfig` (LoRA, QLoRA), or that of
    PEFT adapters loaded over the model (`adapters=`); `params` are then the frozen base
    merged with the adapters (W + alpha/r·A·B, in fp32 or `dtype`)."""
    adapters: Any = attrs.field(default=None, repr=False)
    """The adapters ({kernel path: {'lora_a', 'lora_b'}}) of an adapter run or of loaded
    PEFT adapters, for `genai export --adapters`; None otherwise."""
    base_source: str | None = None
    """The folder the adapters' frozen base was read from (None: a run's random base)."""
    base_dtype: str | None = None
    """The dtype that base folder stores its weights in ('bfloat16', ...; None: no such
    folder): what the user downloaded, and what `genai export --merge` writes by default."""
    notes: tuple[str, ...] = ()
    _forward: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def policy(self) -> Policy:
        """fp32 computation (what parity checks and CPU runs use)."""
        return Policy(name="fp32")

    def logits(self, inputs: Any, decoder_inputs: Any = None, *, token_types: Any = None) -> jax.Array:
        """Logits [batch, length, dims.vocab] (fp32) of token ids [batch, length], from one
        compiled forward pass (compiled once per input shape)."""
        if self._forward is None:
            model, policy = self.model, self.policy

            def forward(params: Any, inputs: Any, decoder_inputs: Any, token_types: Any) -> jax.Array:
                return model.apply(params, inputs, decoder_inputs, policy=policy, token_types=token_types)

            object.__setattr__(self, "_forward", jax.jit(forward))
        return self._forward(
            self.params,
            jnp.asarray(inputs),
            None if decoder_inputs is None else jnp.asarray(decoder_inputs),
            None if token_types is None else jnp.asarray(token_types),
        )


def _place(specs: Any, mesh: Any, rules: Any, shardings: Any) -> Any:
    if shardings is not None or mesh is None:
        return shardings
    from genaisdk.backend.jax.sharding import tree_shardings

    placed, _ = tree_shardings(specs, tuple(rules or ()), mesh)
    return placed


def load_model(
    path: str | Path,
    *,
    mesh: Any = None,
    rules: Any = None,
    shardings: Any = None,
    dtype: Any = None,
    vocab_multiple: int | None = None,
    step: int | None = None,
    adapters: str | Path | None = None,
) -> LoadedModel:
    """A model from a Hugging Face checkpoint folder or a `genai train` run (module docstring).

    Placement: `shardings` (a tree like `model.specs()` of NamedShardings), else `mesh` and
    `rules` (a strategy's 'params' partition rules, `genaisdk.backend.jax.sharding`; no
    rules: replicated), else the first device. `dtype`: the parameters' dtype (None: as
    stored in a Hugging Face folder; fp32 for a run). `vocab_multiple`: pad the embedding rows (and output) with zeros up to a multiple
    (for sharding the vocabulary); the padding is never exported. `step`: a run's step
    (default: the newest that verifies). `adapters`: a PEFT LoRA adapter folder
    (adapter_config.json + adapter_model.safetensors) merged into the parameters
    (`genaisdk.backend.jax.peft`; of a checkpoint folder, checked before any weight is read);
    the result's `adapter` and `adapters` then describe it.

    Raises LoadError / CheckpointFormatError (one line naming the file and tensor) and
    TokenizerError for a tokenizer that does not fit the embedding rows."""
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder")
    if is_checkpoint_folder(path):
        return _load_hf(
            path, mesh=mesh, rules=rules, shardings=shardings, dtype=dtype, vocab_multiple=vocab_multiple, adapters=adapters
        )
    run = _run_folder(path)
    if run is not None:
        folder, step_from_path = run
        loaded = _load_run(folder, mesh=mesh, rules=rules, shardings=shardings, dtype=dtype, step=step if step is not None else step_from_path)
        if adapters is None:
            return loaded
        from genaisdk.backend.jax.peft import apply_peft

        return apply_peft(loaded, adapters)
    raise LoadError(
        f"{path}: neither a Hugging Face checkpoint (config.json + model.safetensors) nor a genai train run (run.json + checkpoints/)"
    )


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_id", None)
    return -1 if pad is None else int(pad)


def _load_hf(
    path: Path, *, mesh: Any, rules: Any, shardings: Any, dtype: Any, vocab_multiple: int | None, adapters: Any = None
) -> LoadedModel:
    checkpoint = read_checkpoint(path)
    notes: list[str] = []
    tokenizer = None
    if find_tokenizer_file(path) is not None:
        tokenizer = load_tokenizer(path, ids=checkpoint.ids)
        fit = check_vocabulary(tokenizer, checkpoint.dims.vocab, where=str(path / "config.json"))
        if fit.padding:
            notes.append(fit.describe())
    else:
        notes.append(f"{path} holds no tokenizer file; pass token ids directly")
    rows = padded_vocab(checkpoint.dims.vocab, vocab_multiple)
    dims = checkpoint.dims.evolve(vocab=rows)
    model = build(dims, family=checkpoint.family, pad_id=_pad_id(tokenizer))
    specs = model.specs()
    adapter = None
    if adapters is not None:  # a bad adapter is refused before the base's weights are read
        from genaisdk.backend.jax.peft import read_peft

        adapter = read_peft(adapters, model, dims=checkpoint.dims, model_type=checkpoint.model_type)
    params, report = load_params(checkpoint, specs, shardings=_place(specs, mesh, rules, shardings), dtype=dtype)
    notes.extend(report.notes())
    loaded = LoadedModel(
        source=path,
        kind="hf",
        family=checkpoint.family,
        architecture=checkpoint.architecture,
        dims=dims,
        model=model,
        params=params,
        tokenizer=tokenizer,
        ids=checkpoint.ids,
        vocab=checkpoint.dims.vocab,
        hf_config=dict(checkpoint.config),
        model_type=checkpoint.model_type,
        notes=tuple(notes),
    )
    if adapter is None:
        return loaded
    from genaisdk.backend.jax.peft import apply_peft

    return apply_peft(loaded, adapter)


def _run_folder(path: Path) -> tuple[Path, int | None] | None:
    """(the run folder, a step named by the path) for a run, its checkpoints/ or a step folder."""
    for candidate, step in ((path, None), (path.parent, None), (path.parent.parent, path.name)):
        if (candidate / RUN_FILE).is_file() and (candidate / CHECKPOINTS).is_dir():
            if step is not None and not str(step).isdigit():
                return None
            return candidate, (int(step) if step is not None else None)
    return None


def read_run(folder: str | Path) -> dict[str, Any]:
    """A run's run.json."""
    path = Path(folder) / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path}: cannot be read ({exc})") from None


def run_dims(record: Mapping[str, Any], where: Path) -> Dimensions:
    """The Dimensions a run.json records (written by `attrs.asdict`)."""
    try:
        return Dimensions(**dict(record["config"]["dims"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadError(f"{where}: config.dims is not a model's dimensions ({exc})") from None


def run_tokenizer(folder: Path, record: Mapping[str, Any], dims: Dimensions) -> Any:
    """The tokenizer a run trained with: its copy under tokenizer/, or the byte tokenizer."""
    info = record.get("tokenizer") or {}
    ids = TokenIds(**info["ids"]) if isinstance(info.get("ids"), dict) else None
    if info.get("file"):
        return load_tokenizer(folder / info["file"], ids=ids)
    return ByteTokenizer(vocab_size=dims.vocab)


def _load_run(folder: Path, *, mesh: Any, rules: Any, shardings: Any, dtype: Any, step: int | None) -> LoadedModel:
    from genaisdk.registry import get_registry

    record = read_run(folder)
    run_file = folder / RUN_FILE
    dims = run_dims(record, run_file)
    name = record.get("config", {}).get("architecture", "decoder")
    architecture = get_registry().get("architectures", name)
    if architecture is None or not architecture.jax_model:
        raise LoadError(f"{run_file}: architecture {name!r} is not installed or has no JAX model")
    try:
        tokenizer = run_tokenizer(folder, record, dims)
    except (TokenizerError, ValueError) as exc:
        raise LoadError(f"{run_file}: {exc}") from None
    from genaisdk.backend.jax.step import resolve

    factory = resolve(architecture.jax_model, f"architecture '{architecture.name}'")
    model = factory(dims, family=architecture.family, pad_id=_pad_id(tokenizer))
    specs = model.specs()
    placed = _place(specs, mesh, rules, shardings)
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    stored = jnp.dtype(dtype) if dtype is not None else jnp.float32
    flat, treedef = jax.tree_util.tree_flatten(specs, is_leaf=is_spec)
    places = [default] * len(flat) if placed is None else treedef.flatten_up_to(placed)
    abstract = jax.tree.unflatten(
        treedef, [jax.ShapeDtypeStruct(s.shape, stored, sharding=p) for s, p in zip(flat, places, strict=True)]
    )
    base = record.get("checkpoint") or {}
    adapter_record = (record.get("config") or {}).get("adapter")
    adapted: dict[str, Any] = {}
    if adapter_record:
        restored, params, adapted = _load_adapted(folder, record, model, abstract, adapter_record, step=step)
    else:
        try:
            restored = restore_params(folder / CHECKPOINTS, abstract, step=step)
        except CheckpointError as exc:
            raise LoadError(f"{folder}: {exc}") from None
        params = restored.state
    info = record.get("tokenizer") or {}
    ids = TokenIds(**info["ids"]) if isinstance(info.get("ids"), dict) else TokenIds(
        eos=tuple(getattr(tokenizer, "stop_ids", ())), pad=getattr(tokenizer, "pad_id", None)
    )
    return LoadedModel(
        source=folder,
        kind="run",
        family=architecture.family,
        architecture=architecture.name,
        dims=dims,
        model=model,
        params=params,
        tokenizer=tokenizer,
        ids=ids,
        vocab=int(base.get("vocab", dims.vocab)),
        hf_config=base.get("config"),
        model_type=base.get("model_type"),
        step=restored.step,
        notes=tuple(f"passed over damaged step {s}" for s in restored.skipped),
        **adapted,
    )


def _load_adapted(
    folder: Path, record: Mapping[str, Any], model: Any, abstract: Any, adapter_record: Mapping[str, Any], *, step: int | None
) -> tuple[Any, Any, dict[str, Any]]:
    """An adapter run's checkpoint (its adapters) and its frozen base, merged: the base as
    training held it (the `model.from` checkpoint, or the seed's random initialization, in
    the compute dtype, quantized for QLoRA), plus alpha/r·A·B at every adapted kernel, in
    the dtype and placement of `abstract`. Returns (the restore, the merged parameters, the
    `LoadedModel` fields of the adapters)."""
    from genaisdk.backend.jax.config import AdapterConfig, BackendError
    from genaisdk.backend.jax.lora import Adapters, base_dtype
    from genaisdk.backend.jax.precision import policy_from_record
    from genaisdk.checkpoints.hf_config import read_checkpoint
    from genaisdk.registry import get_registry

    run_file = folder / RUN_FILE
    config = record.get("config") or {}
    try:
        adapter = AdapterConfig.from_json(adapter_record)
        adapters = Adapters(model, adapter)
    except (TypeError, ValueError, BackendError) as exc:
        raise LoadError(f"{run_file}: config.adapter is not an adapter configuration ({exc})") from None
    precision = get_registry().get("precisions", config.get("precision", "fp32"))
    if precision is None:
        raise LoadError(f"{run_file}: precision {config.get('precision')!r} is not installed")
    frozen_dtype = base_dtype(policy_from_record(precision))
    placement = jax.tree.leaves(abstract)[0].sharding
    abstract_adapters = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, jnp.float32, sharding=placement), adapters.specs(), is_leaf=is_spec
    )
    try:
        restored = restore_params(folder / CHECKPOINTS, abstract_adapters, step=step)
    except CheckpointError as exc:
        raise LoadError(f"{folder}: {exc}") from None
    source = (record.get("checkpoint") or {}).get("from")
    if source:
        if not Path(source).is_dir():
            raise LoadError(
                f"{run_file}: the adapters were trained on the base model {source}, which is no longer there: "
                "put the checkpoint folder back, or export the merged model where it is"
            )
        checkpoint = read_checkpoint(source)
        base, _ = load_params(checkpoint, model.specs(), dtype=frozen_dtype)
    else:  # a random base, drawn again from the run's seed exactly as training drew it
        seed = int(config.get("seed", 0))
        base = model.init(jax.random.fold_in(jax.random.key(seed), 0), frozen_dtype)
    dtype = jax.tree.leaves(abstract)[0].dtype
    merged = adapters.merge(adapters.freeze(base), restored.state, dtype=dtype)
    merged = jax.tree.map(lambda x, a: jax.device_put(x, a.sharding), merged, abstract)
    from genaisdk.checkpoints.safetensors_files import stored_dtype

    fields = {"adapter": adapter, "adapters": restored.state, "base_source": source,
              "base_dtype": stored_dtype(source) if source else None}
    return restored, merged, fields
