"""Hugging Face checkpoints in and out of the JAX backend: weights placed in their sharding.

Loading (`load_params`): every genaisdk parameter is built with
`jax.make_array_from_callback` over its target sharding. The callback takes the Hugging
Face tensors behind the device's slice one at a time as views of the memory-mapped file
(`TensorReader`), in genaisdk's layout where a view can express it
(`genaisdk.checkpoints.hf_map.Rule.view_ours`: split, transpose, reshape), and copies only
the requested index, once, into a buffer of the slice's size. So no device's host copy
exceeds its own shard, a fully replicated parameter is read once for all devices (JAX
calls the callback once for it), and a stacked `[layers, ...]` parameter is assembled layer
by layer into that one buffer, never as a list of layers plus their stack. Several
parameters load at once, on `LOAD_THREADS` threads.

Before any data is read the headers are checked against the map (a missing, unexpected or
misshapen tensor, an output matrix that contradicts `tie_word_embeddings`: one
`CheckpointFormatError` naming the file and tensor); copies of tied tensors are compared
with what they copy.

Export (`export_hf`): the reverse map, one parameter at a time on the host, into
`model.safetensors` (or `model-0000k-of-0000n.safetensors` shards plus the index above
`max_shard_bytes`) with the `{"format": "pt"}` metadata that transformers requires, the
config.json of `genaisdk.checkpoints.hf_config.to_hf_config`, generation_config.json and
the tokenizer's files. Embedding rows past `vocab` (padding added for sharding) are not
written. The exporter walks `ParamMap` rules, so adapter export (PEFT's `lora_A`/`lora_B`
under `base_model.model.<hf name>`) can reuse the same names per target.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import SingleDeviceSharding

from genaisdk.backend.jax.model import is_spec, path_name
from genaisdk.checkpoints import CheckpointFormatError
from genaisdk.checkpoints.hf_config import GENERATION_CONFIG_FILE, HFModel, TokenIds, hf_model_type, to_hf_config
from genaisdk.checkpoints.hf_map import ParamMap, Rule, legacy_names, param_map
from genaisdk.checkpoints.safetensors_files import INDEX_FILE, SINGLE_FILE, TensorReader
from genaisdk.dims import Dimensions

VOCAB_PATHS = {"embed/token": 0, "output/kernel": 1, "mlm_head/output_bias": 0}
"""Parameters with a vocabulary axis (and which), padded on load and cut on export."""

LOAD_THREADS = min(8, os.cpu_count() or 1)
"""Parameters read and placed at the same time while loading."""

DEFAULT_MAX_SHARD_BYTES = 5 * 10**9
"""transformers' default `max_shard_size` ("5GB")."""


@attrs.frozen(kw_only=True)
class LoadReport:
    """What loading noticed: tensors skipped (not modelled), tied copies verified, padding."""

    skipped: tuple[str, ...] = ()
    tied_copies: tuple[str, ...] = ()
    padded_rows: int = 0

    def notes(self) -> list[str]:
        out = []
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} tensor(s) genaisdk does not model: {', '.join(self.skipped)}")
        if self.padded_rows:
            out.append(f"padded the vocabulary with {self.padded_rows} zero rows")
        return out


_STORED = {"F32": np.dtype(np.float32), "F16": np.dtype(np.float16), "BF16": np.dtype(jnp.bfloat16)}


def _host_dtype(dtype: Any) -> np.dtype:
    return np.dtype(jnp.dtype(dtype)) if dtype is not None else None


def padded_vocab(vocab: int, multiple: int | None) -> int:
    """`vocab` rounded up to a multiple of `multiple` (None or 1: unchanged)."""
    if not multiple or multiple <= 1:
        return vocab
    return -(-vocab // multiple) * multiple


def load_params(
    checkpoint: HFModel,
    specs: Mapping[str, Any],
    *,
    shardings: Any = None,
    dtype: Any = None,
) -> tuple[dict, LoadReport]:
    """The checkpoint's weights as genaisdk parameters shaped like `specs` (a model's
    `specs()` tree, whose vocabulary may be padded past the checkpoint's), each placed in
    its sharding (a tree like `specs` of NamedShardings; None: the first device).
    `dtype`: the parameters' dtype (None keeps each tensor's stored dtype).

    Raises CheckpointFormatError (one line naming the file and tensor) before reading any
    tensor data when the headers do not match the config."""
    if checkpoint.tensors is None:
        raise CheckpointFormatError(f"{checkpoint.folder}: no weights were read")
    dims = checkpoint.dims
    tensors = legacy_names(checkpoint.tensors)
    pmap = param_map(checkpoint.model_type, dims, tensors)
    skipped = pmap.check(tensors, where=str(checkpoint.folder), tied=dims.tied_embeddings)
    rules = pmap.by_path()
    flat, treedef = jax.tree_util.tree_flatten_with_path(specs, is_leaf=is_spec)
    paths = [path_name(p) for p, _ in flat]
    unmapped = [p for p in paths if p not in rules]
    if unmapped:
        raise CheckpointFormatError(f"{checkpoint.folder}: genaisdk parameter {unmapped[0]} has no {checkpoint.model_type} tensor")
    placements = [None] * len(flat) if shardings is None else treedef.flatten_up_to(shardings)
    default = SingleDeviceSharding(jax.devices()[0])
    padded = 0
    jobs = []
    with TensorReader(tensors) as reader:
        tied = _verify_copies(pmap, reader, tensors)
        for (path, spec), sharding in zip(zip(paths, (s for _, s in flat)), placements, strict=True):
            rule = rules[path]
            target = tuple(spec.shape)
            if target != rule.full_shape:
                axis = VOCAB_PATHS.get(path)
                grown = list(rule.full_shape)
                if axis is not None:
                    grown[axis] = target[axis]
                if axis is None or tuple(grown) != target or target[axis] < rule.full_shape[axis]:
                    raise CheckpointFormatError(
                        f"{checkpoint.folder}: {rule.name} maps to {path} {list(rule.full_shape)}, the model has {list(target)}"
                    )
                if path == "embed/token":
                    padded = target[axis] - rule.full_shape[axis]
            stored = _STORED[tensors[rule.names()[0]].dtype] if dtype is None else _host_dtype(dtype)
            jobs.append((target, sharding or default, _slice_reader(rule, reader, target, stored)))
        # Parameters are independent: several are read and placed at once (NumPy's copies
        # and JAX's transfers release the GIL). Each thread holds one parameter's slice.
        with concurrent.futures.ThreadPoolExecutor(max_workers=LOAD_THREADS) as pool:
            leaves = list(pool.map(lambda job: jax.make_array_from_callback(*job), jobs))
    report = LoadReport(
        skipped=tuple(skipped),
        tied_copies=tuple(tied),
        padded_rows=padded,
    )
    return jax.tree.unflatten(treedef, leaves), report


def _verify_copies(pmap: ParamMap, reader: TensorReader, tensors: Mapping[str, Any]) -> list[str]:
    """Tensors a checkpoint stores twice (T5's embed_tokens, a tied lm_head) must be equal."""
    seen = []
    for alias, target in pmap.aliases.items():
        if alias not in tensors:
            continue
        if not np.array_equal(reader.get(alias), reader.get(target)):
            info = tensors[alias]
            if alias.endswith("lm_head.weight") or alias.endswith("decoder.weight"):
                raise CheckpointFormatError(
                    f"{info.file}: holds {alias} with other values than {target} although config.json says "
                    "tie_word_embeddings = true; set it to false if the output matrix is its own"
                )
            raise CheckpointFormatError(f"{info.file}: tensor {alias} should equal {target} but differs")
        seen.append(alias)
    return seen


def _copy_into(dest: np.ndarray, source: np.ndarray) -> None:
    """dest[...] = source, converting the dtype; 16-bit floats of the same dtype move as
    uint16 (NumPy's own integer copy loops beat ml_dtypes' bfloat16 ones)."""
    if dest.dtype == source.dtype and dest.dtype.itemsize == 2:
        np.copyto(dest.view(np.uint16), source.view(np.uint16))
    else:
        np.copyto(dest, source, casting="unsafe")


def _clipped(index: tuple[slice, ...], shape: tuple[int, ...], available: tuple[int, ...]) -> tuple[tuple, tuple]:
    """For a requested `index` of an array of `shape` whose first `available` entries per
    axis exist (the rest is vocabulary padding): (index into the source, index into the
    destination buffer) of the part that exists."""
    source, dest = [], []
    for s, size, have in zip(index, shape, available):
        start, stop, _ = s.indices(size)
        end = max(start, min(stop, have))
        source.append(slice(start, end))
        dest.append(slice(0, end - start))
    return tuple(source), tuple(dest)


def _slice_reader(rule: Rule, reader: TensorReader, target: tuple[int, ...], dtype: np.dtype) -> Callable:
    """The make_array_from_callback callback of one parameter: a buffer of the requested
    index's size, filled one Hugging Face tensor (one layer) at a time, each copied once
    from the memory-mapped file into the buffer in genaisdk's layout."""
    names = rule.names()
    stacked = bool(rule.layers)
    per_layer = target[1:] if stacked else target

    def fill(dest: np.ndarray, name: str, inner: tuple[slice, ...]) -> None:
        source = rule.view_ours(reader.get(name))
        if source.shape == per_layer:
            _copy_into(dest, source[inner])
            return
        dest[...] = 0  # padded vocabulary rows
        source_index, dest_index = _clipped(inner, per_layer, source.shape)
        _copy_into(dest[dest_index], source[source_index])

    def callback(index: tuple[slice, ...]) -> np.ndarray:
        index = tuple(index) + (slice(None),) * (len(target) - len(index))
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(index, target))
        out = np.empty(shape, dtype)
        if not stacked:
            fill(out, names[0], index)
            return out
        for k, layer in enumerate(range(rule.layers)[index[0]]):
            fill(out[k], names[layer], index[1:])
        return out

    return callback


# ----------------------------------------------------------------------------- export


def _host(array: Any) -> np.ndarray:
    """A (possibly sharded, multi-host) array as one host NumPy array."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        from jax.experimental import multihost_utils

        array = multihost_utils.process_allgather(array, tiled=True)
    return np.asarray(jax.device_get(array))


def hf_tensors(
    params: Mapping[str, Any], dims: Dimensions, model_type: str, *, vocab: int | None = None, dtype: Any = None
):
    """(name, array) of every Hugging Face tensor of `params`, one parameter on the host at
    a time; GPT-2's fused c_attn is assembled from q, k and v. `vocab`: the rows to write
    (padding past it is dropped). Yields in the map's order."""
    vocab = dims.vocab if vocab is None else vocab
    real = dims.evolve(vocab=vocab)
    pmap = param_map(model_type, real)
    flat = {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    missing = [r.path for r in pmap.rules if r.path not in flat]
    if missing:
        raise CheckpointFormatError(f"the parameters have no {missing[0]}, which a {model_type} checkpoint needs")
    pending: dict[str, dict[str, np.ndarray]] = {}
    parts: dict[str, int] = {}
    for rule in pmap.rules:
        value = _host(flat[rule.path])
        axis = VOCAB_PATHS.get(rule.path)
        if axis is not None and value.shape[axis] != vocab:
            value = np.take(value, np.arange(vocab), axis=axis)
        if dtype is not None:
            value = value.astype(_host_dtype(dtype))
        slices = list(value) if rule.layers else [value]
        for name, piece in zip(rule.names(), slices, strict=True):
            hf = rule.to_hf(piece)
            if rule.split is None:
                yield name, hf
                continue
            pending.setdefault(name, {})[rule.path] = hf
            parts[name] = rule.split[2]
            if len(pending[name]) == parts[name]:
                yield name, pmap.fuse(name, pending.pop(name))


def export_hf(
    out: str | Path,
    *,
    params: Mapping[str, Any],
    dims: Dimensions,
    family: str,
    tokenizer: Any = None,
    ids: TokenIds | None = None,
    base_config: Mapping[str, Any] | None = None,
    vocab: int | None = None,
    dtype: Any = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> list[Path]:
    """Writes a Hugging Face checkpoint folder `out` (config.json, model.safetensors or
    shards + index, generation_config.json, the tokenizer's files); returns the files.

    `vocab`: the vocabulary to write (default dims.vocab; rows past it are padding and are
    not exported). `base_config`: the config.json the model was loaded from (its other keys
    are kept). Raises CheckpointFormatError when no Hugging Face family runs the model."""
    from genaisdk.checkpoints.safetensors_files import save_tensors

    vocab = dims.vocab if vocab is None else vocab
    real = dims.evolve(vocab=vocab)
    model_type = hf_model_type(real, family)
    config = to_hf_config(real, family, ids=ids, base=base_config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("model-*-of-*.safetensors"), out / SINGLE_FILE, out / INDEX_FILE]:
        if stale.exists():
            stale.unlink()
    written: list[Path] = []
    weight_map: dict[str, str] = {}
    temp_names: list[Path] = []
    shard: dict[str, np.ndarray] = {}
    size = total = 0
    written_dtype = None

    def flush() -> None:
        nonlocal shard, size
        if not shard:
            return
        path = out / f"model-{len(temp_names) + 1:05d}.partial.safetensors"
        save_tensors(shard, path, metadata={"format": "pt"})
        temp_names.append(path)
        for name in shard:
            weight_map[name] = path.name
        shard, size = {}, 0

    for name, tensor in hf_tensors(params, dims, model_type, vocab=vocab, dtype=dtype):
        written_dtype = written_dtype or np.dtype(tensor.dtype).name  # float32, float16, bfloat16: transformers' names
        if shard and size + tensor.nbytes > max_shard_bytes:
            flush()
        shard[name] = np.ascontiguousarray(tensor)
        size += tensor.nbytes
        total += tensor.nbytes
    flush()
    config["dtype"] = written_dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = written_dtype
    if len(temp_names) == 1:
        final = out / SINGLE_FILE
        os.replace(temp_names[0], final)
        written.append(final)
    else:
        count = len(temp_names)
        renamed = {}
        for k, path in enumerate(temp_names, start=1):
            final = out / f"model-{k:05d}-of-{count:05d}.safetensors"
            os.replace(path, final)
            renamed[path.name] = final.name
            written.append(final)
        index = {"metadata": {"total_size": total}, "weight_map": {n: renamed[f] for n, f in sorted(weight_map.items())}}
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        written.append(out / INDEX_FILE)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written.append(out / "config.json")
    generation = {
        key: value
        for key, value in (
            ("bos_token_id", ids.bos if ids else None),
            ("eos_token_id", (ids.eos[0] if len(ids.eos) == 1 else list(ids.eos)) if ids and ids.eos else None),
            ("pad_token_id", ids.pad if ids else None),
            ("decoder_start_token_id", ids.decoder_start if ids else None),
        )
        if value is not None
    }
    if generation:
        (out / GENERATION_CONFIG_FILE).write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
        written.append(out / GENERATION_CONFIG_FILE)
    if tokenizer is not None:
        written.extend(tokenizer.save(out))
    return written
