"""Where training text comes from: the entries of a spec's `data { source = [...] }`.

An entry is one of

- a path to a text file (read as bytes; ``.gz`` files are decompressed),
- a glob (``corpus/*.txt``, ``**`` recurses),
- a JSON-lines file (``.jsonl``, ``.jsonl.gz``, ``.ndjson``): one JSON object per line whose
  ``text`` field is a document,
- ``synthetic`` or ``synthetic:<kind>``: generated tokens, see `genaisdk.backend.jax.synthetic`.

Relative paths are resolved against the spec file's folder (so a spec and its corpus move
together), or the working directory for a spec given as text. Every problem is a
`DataError` whose message names the entry and the path, never a bare traceback.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
TEXT_FIELD = "text"
SYNTHETIC = "synthetic"


class DataError(Exception):
    """A data source that cannot be read; the message says which and why."""


@attrs.frozen(kw_only=True)
class Document:
    """One document's raw bytes and where it came from (``path`` or ``path:line``)."""

    origin: str
    data: bytes


def is_synthetic(entry: str) -> bool:
    return entry == SYNTHETIC or entry.startswith(SYNTHETIC + ":")


def _has_magic(entry: str) -> bool:
    return glob.has_magic(entry)


def resolve_files(entries: Sequence[str], base_dir: Path | None = None) -> list[Path]:
    """The files named by path and glob entries, in a stable order, each file once.

    Globs are expanded in sorted order; a file reached twice (two globs, or a symlink and its
    target, as ``/usr/share/common-licenses/GPL`` -> ``GPL-3``) is read once, so that a
    duplicated document does not leak between the training and held-out splits.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    files: list[Path] = []
    seen: set[Path] = set()
    for entry in entries:
        if is_synthetic(entry):
            continue
        expanded = os.path.expanduser(entry)
        pattern = expanded if os.path.isabs(expanded) else str(base / expanded)
        if _has_magic(entry):
            matches = sorted(glob.glob(pattern, recursive=True))
            matches = [m for m in matches if os.path.isfile(m)]
            if not matches:
                raise DataError(_missing_message(entry, pattern, is_glob=True))
        else:
            if not os.path.exists(pattern):
                raise DataError(_missing_message(entry, pattern, is_glob=False))
            if os.path.isdir(pattern):
                matches = sorted(str(p) for p in Path(pattern).rglob("*") if p.is_file())
                if not matches:
                    raise DataError(f"data source {entry!r}: the folder {pattern} holds no files")
            else:
                matches = [pattern]
        for match in matches:
            real = Path(match).resolve()
            if real not in seen:
                seen.add(real)
                files.append(Path(match))
    return files


def _missing_message(entry: str, pattern: str, *, is_glob: bool) -> str:
    what = "no file matches" if is_glob else "no such file or folder:"
    message = f"data source {entry!r}: {what} {pattern}"
    if pattern.startswith("/usr/share/common-licenses"):
        message += (
            " (Debian-based systems ship their license texts there; on other systems point "
            "`data { source = ... }` at any folder of text files)"
        )
    return message


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read data file {path}: {exc}") from None


def _json_lines(path: Path) -> Iterator[Document]:
    raw = _read_bytes(path)
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
        if not isinstance(record, dict) or TEXT_FIELD not in record:
            raise DataError(f"{path}:{number}: a JSON-lines record needs a {TEXT_FIELD!r} field")
        text = record[TEXT_FIELD]
        if not isinstance(text, str):
            raise DataError(f"{path}:{number}: the {TEXT_FIELD!r} field must be a string")
        yield Document(origin=f"{path}:{number}", data=text.encode("utf-8"))


def is_json_lines(path: Path) -> bool:
    return path.name.lower().endswith(JSONL_SUFFIXES)


def read_documents(files: Sequence[Path]) -> Iterator[Document]:
    """Each file's documents: a text file is one document, a JSON-lines file one per line."""
    for path in files:
        if is_json_lines(path):
            yield from _json_lines(path)
        else:
            yield Document(origin=str(path), data=_read_bytes(path))


def corpus_fingerprint(documents: Sequence[Document]) -> str:
    """A short digest of the documents' bytes and order; a resumed run checks it is unchanged."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(len(doc.data).to_bytes(8, "little"))
        digest.update(doc.data)
    return digest.hexdigest()[:16]
