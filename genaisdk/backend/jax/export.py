"""`export_model`: write a loaded model (a run or a checkpoint) in another tool's format.

    >>> from genaisdk.backend.jax.load import load_model
    >>> from genaisdk.backend.jax.export import export_model
    >>> export_model(load_model("runs/tiny-gpt"), "out/tiny-gpt-hf")

One entry per format in `FORMATS`, each a function `(loaded, out, options) -> ExportResult`:

- ``hf``: full weights as a Hugging Face checkpoint folder (`genaisdk.backend.jax.hf.export_hf`):
  config.json, model.safetensors (``{"format": "pt"}`` metadata; shards plus an index above
  the shard size), generation_config.json and the tokenizer's files. transformers'
  `from_pretrained` loads it; padded vocabulary rows are not written; loading the folder
  again gives the same arrays.

  Of a LoRA or QLoRA run (`LoadedModel.adapter`), the merged weights: the frozen base
  plus alpha/r·A·B at every adapted matrix (a QLoRA base dequantized first: the weights the
  adapters were trained against), a plain checkpoint of the base model's family, written
  by default in the dtype the base checkpoint stores (`LoadedModel.base_dtype`: a bf16
  download gives a bf16 merged model of the same size, not an fp32 one of twice it).
- ``peft``: a LoRA or QLoRA run's adapters alone, in PEFT's folder (adapter_config.json +
  adapter_model.safetensors, `genaisdk.backend.jax.peft.write_peft`), the tensor names
  those of `genaisdk.checkpoints.hf_map`; `peft.PeftModel.from_pretrained` loads them
  over the base model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class ExportOptions:
    dtype: Any = None
    """Weights' dtype on disk (None: as the parameters are; merged adapters: as their base
    checkpoint stores its weights)."""
    max_shard_bytes: int | None = None
    """Largest safetensors file before the weights are split into shards (None: 5 GB)."""


@attrs.frozen(kw_only=True)
class ExportResult:
    out: Path
    files: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def _hf(loaded: Any, out: Path, options: ExportOptions) -> ExportResult:
    from genaisdk.backend.jax.hf import DEFAULT_MAX_SHARD_BYTES, export_hf

    tokenizer = loaded.tokenizer if getattr(loaded.tokenizer, "files", ()) else None
    notes = []
    if tokenizer is None:
        notes.append("the model uses genaisdk's byte tokenizer, which has no Hugging Face tokenizer file: none written")
    if loaded.dims.vocab != loaded.vocab:
        notes.append(f"{loaded.dims.vocab - loaded.vocab} padded vocabulary rows left out")
    dtype = options.dtype
    if dtype is None and loaded.adapter is not None and getattr(loaded, "base_dtype", None):
        dtype = loaded.base_dtype
        notes.append(f"merged weights written in {dtype}, as the base checkpoint stores them (--dtype to choose)")
    files = export_hf(
        out,
        params=loaded.params,
        dims=loaded.dims,
        family=loaded.family,
        tokenizer=tokenizer,
        ids=loaded.ids,
        base_config=loaded.hf_config,
        vocab=loaded.vocab,
        dtype=dtype,
        max_shard_bytes=options.max_shard_bytes or DEFAULT_MAX_SHARD_BYTES,
    )
    return ExportResult(out=out, files=tuple(files), notes=tuple(notes))


def _peft(loaded: Any, out: Path, options: ExportOptions) -> ExportResult:
    from genaisdk.backend.jax.peft import write_peft
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.checkpoints.hf_config import hf_model_type

    if loaded.adapter is None or loaded.adapters is None:
        raise CheckpointFormatError(
            f"{loaded.source} trained every weight, so it has no adapters to write: export it whole (--format hf)"
        )
    real = loaded.dims.evolve(vocab=loaded.vocab)
    model_type = loaded.model_type or hf_model_type(real, loaded.family)
    files = write_peft(
        out,
        loaded.adapters,
        loaded.adapter,
        dims=real,
        family=loaded.family,
        model_type=model_type,
        base=loaded.base_source,
        dtype=options.dtype,
    )
    notes = []
    if loaded.base_source is None:
        notes.append("the adapters were trained on a randomly initialized base, which PEFT cannot load: export --merge keeps both")
    if loaded.adapter.frozen:
        notes.append(
            f"the adapters were trained over a {loaded.adapter.frozen.upper()} base: load the base in 4-bit "
            "(bitsandbytes nf4) for the same model" if loaded.adapter.frozen == "nf4" else
            f"the adapters were trained over a {loaded.adapter.frozen.upper()} base"
        )
    return ExportResult(out=out, files=tuple(files), notes=tuple(notes))


FORMATS: dict[str, Callable[[Any, Path, ExportOptions], ExportResult]] = {"hf": _hf, "peft": _peft}
"""Format name -> writer."""


def export_model(loaded: Any, out: str | Path, *, format: str = "hf", options: ExportOptions | None = None) -> ExportResult:
    """Write `loaded` (a `genaisdk.backend.jax.load.LoadedModel`) to folder `out` in `format`.

    Raises ValueError for an unknown format and `CheckpointFormatError` when the format
    cannot express the model (e.g. ALiBi positions have no Hugging Face family here)."""
    writer = FORMATS.get(format)
    if writer is None:
        raise ValueError(f"unknown export format {format!r}; known: {', '.join(sorted(FORMATS))}")
    return writer(loaded, Path(out), options or ExportOptions())
