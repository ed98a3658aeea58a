"""Which tensors a safetensors checkpoint holds, where, and in what dtype and shape.

The safetensors format (Hugging Face, `safetensors` docs, "Format"): an 8-byte little-endian
header length N, N bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]},
"__metadata__": {str: str}}``, then the raw little-endian tensor bytes, each tensor at
``8 + N + begin``. A checkpoint folder holds one ``model.safetensors`` or several shards
listed by ``model.safetensors.index.json`` (``{"metadata": {"total_size"}, "weight_map":
{tensor: shard file}}``).

This module parses headers itself (no `safetensors` import, no JAX) so that the planner can
count a checkpoint's parameters from its shapes, and so that a damaged file gets an error
naming it instead of a library's panic. Reading tensor data is `open_tensors`' job, through
`safetensors.safe_open` (lazily, one tensor at a time); writing is `save_tensors`', the
one place genaisdk writes a safetensors file.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.checkpoints import CheckpointFormatError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100 * 2**20
"""safetensors refuses headers above 100 MB; so does this reader."""

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FLOAT_DTYPES = ("F32", "F16", "BF16")
"""Weight dtypes a checkpoint may store (F64 and integer tensors are refused as weights)."""


def save_tensors(tensors: Mapping[str, Any], path: str | Path, *, metadata: Mapping[str, str] | None = None) -> Path:
    """Writes NumPy arrays `tensors` to the safetensors file `path` with `metadata` (the
    ``__metadata__`` header; Hugging Face loaders want ``{"format": "pt"}``), with the
    permissions of any new file (`genaisdk.core.files.honour_umask`: the library itself
    creates it 0600). Returns `path`."""
    from safetensors.numpy import save_file

    from genaisdk.core.files import honour_umask

    path = Path(path)
    save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata is not None else None)
    honour_umask(path)
    return path


@attrs.frozen(kw_only=True)
class TensorInfo:
    """One tensor's entry in a safetensors header."""

    name: str
    dtype: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    file: Path
    offset: int
    """Byte offset of the data from the start of the file."""

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES[self.dtype]


def _corrupt(path: Path, why: str) -> CheckpointFormatError:
    return CheckpointFormatError(f"{path}: not a valid safetensors file ({why}); re-download or re-export it")


def read_header(path: str | Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Every tensor of one safetensors file (name -> TensorInfo) and its `__metadata__`.

    Raises CheckpointFormatError naming the file when the header is truncated, not JSON, or
    describes data outside the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise _corrupt(path, f"{size} bytes, shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise _corrupt(path, f"header length {length} does not fit in a file of {size} bytes")
            raw = handle.read(length)
    except OSError as exc:
        raise CheckpointFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + length
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        try:
            dtype = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _corrupt(path, f"tensor {name!r} has no dtype, shape and data_offsets") from None
        if dtype not in DTYPE_BYTES:
            raise _corrupt(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        info = TensorInfo(name=name, dtype=dtype, shape=shape, file=path, offset=data_start + begin)
        if begin < 0 or end - begin != info.nbytes or data_start + end > size:
            raise _corrupt(path, f"tensor {name!r} {list(shape)} {dtype} lies outside the file or has the wrong size")
        tensors[name] = info
    return tensors, {str(k): str(v) for k, v in dict(metadata).items()}


def weight_files(folder: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint folder (the index's shards, or model.safetensors).

    Raises CheckpointFormatError when there are none (naming a PyTorch pickle if that is
    what the folder holds) or the index is unreadable."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        return sorted({folder / shard for shard in _weight_map(index).values()})
    single = folder / SINGLE_FILE
    if single.is_file():
        return [single]
    pickles = sorted(p.name for p in folder.glob("pytorch_model*.bin"))
    if pickles:
        raise CheckpointFormatError(
            f"{folder}: holds {pickles[0]}, a PyTorch pickle that cannot be read without PyTorch; "
            f"convert it to {SINGLE_FILE} (transformers: model.save_pretrained(dir, safe_serialization=True))"
        )
    raise CheckpointFormatError(f"{folder}: no {SINGLE_FILE} or {INDEX_FILE}")


def _weight_map(index: Path) -> dict[str, str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointFormatError(f"{index}: not a safetensors index (expected JSON with a 'weight_map' object)") from None
    return {str(k): str(v) for k, v in weight_map.items()}


def stored_dtype(folder: str | Path) -> str | None:
    """The dtype a checkpoint folder stores its weights in, as NumPy names it ('bfloat16',
    'float16', 'float32'): the floating dtype that holds the most bytes (a checkpoint may
    keep a few tensors, e.g. norms, wider). None when it stores no floating tensor.
    CheckpointFormatError as `read_tensors`."""
    totals: dict[str, int] = {}
    for info in read_tensors(folder).values():
        if info.dtype in FLOAT_DTYPES:
            totals[info.dtype] = totals.get(info.dtype, 0) + info.nbytes
    if not totals:
        return None
    return {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[max(totals, key=totals.__getitem__)]


def read_tensors(folder: str | Path) -> dict[str, TensorInfo]:
    """Every tensor of a checkpoint folder, from its headers only (no tensor data is read).

    With an index, each tensor must be in the shard the index names; a tensor in two
    shards is an error."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    found: dict[str, TensorInfo] = {}
    for file in weight_files(folder):
        if not file.is_file():
            raise CheckpointFormatError(f"{index}: names shard {file.name}, which is not in {folder}")
        tensors, _ = read_header(file)
        for name, info in tensors.items():
            if name in found:
                raise CheckpointFormatError(f"{file}: tensor {name} is also in {found[name].file.name}")
            found[name] = info
    if index.is_file():
        for name, shard in _weight_map(index).items():
            info = found.get(name)
            if info is None or info.file.name != shard:
                raise CheckpointFormatError(f"{index}: maps tensor {name} to {shard}, which does not hold it")
    return found


class TensorReader:
    """Tensors of a checkpoint as read-only NumPy views of the memory-mapped files, in their
    stored dtype (bf16 as `ml_dtypes.bfloat16`): `get` copies nothing, and the pages of a
    tensor are read from disk only when the caller copies them (into genaisdk's layout).
    The offsets are those `read_header` checked against the file size. Use as a context
    manager; views must not outlive it."""

    def __init__(self, tensors: Mapping[str, TensorInfo]):
        self.tensors = dict(tensors)
        self._maps: dict[Path, Any] = {}

    def _map(self, file: Path) -> Any:
        mapped = self._maps.get(file)
        if mapped is None:
            import numpy as np

            try:
                mapped = np.memmap(file, dtype=np.uint8, mode="r")
            except (OSError, ValueError) as exc:
                raise CheckpointFormatError(f"{file}: cannot be read ({exc})") from None
            self._maps[file] = mapped
        return mapped

    def get(self, name: str) -> Any:
        """Tensor `name` (a view into the file, little-endian, shaped as stored)."""
        info = self.tensors[name]
        dtype = numpy_dtype(info.dtype)
        data = self._map(info.file)[info.offset : info.offset + info.nbytes]
        return data.view(dtype).reshape(info.shape)

    def close(self) -> None:
        self._maps.clear()

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def numpy_dtype(name: str) -> Any:
    """The little-endian NumPy dtype of a safetensors dtype name ('BF16' -> ml_dtypes.bfloat16)."""
    import numpy as np

    if name == "BF16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype({"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                     "I8": "i1", "U8": "u1", "BOOL": "?"}[name])
