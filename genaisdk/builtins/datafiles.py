"""The built-in catalogs' data files (`genaisdk/builtins/data/*.toml`), read fast.

The figures of the built-in hardware and presets are data, kept as TOML files beside this
module and read with the standard library's `tomllib`. `tomllib` is written in Python: the
catalogs take it about 20 ms to parse, plus about 5 ms to import, on every command that
reads a catalog. So, as Python does for modules with their bytecode, a parsed file is kept
as JSON in a `__pycache__` folder beside it (or under `sys.pycache_prefix`), and read back
with the C-accelerated `json` module (under 1 ms) while the TOML file is unchanged.

Why the cache is safe:

- it is JSON: reading it can build only dicts, lists, strings, numbers and booleans, never run
  code (unlike the pickles and bytecode other caches hold);
- it is keyed by the TOML file's size and CRC-32, so an edited file is parsed again;
- it is written to a temporary file and renamed into place, so a reader never sees half a file;
- anything wrong with it (absent, unreadable, not JSON, not a table, written for other
  bytes) means the TOML file is parsed instead, and a cache that cannot be written is not;
- it is skipped when Python is told not to write bytecode (`PYTHONDONTWRITEBYTECODE`).

Every record built from these tables is still checked by its class's validators and by the
registry, exactly like a third-party plugin's.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Where the built-in catalogs' TOML files live (installed as package data)."""

FORMAT = 1
"""Bump when the cached form changes meaning, so that old caches are ignored."""


class DataFileError(ValueError):
    """A built-in data file that does not parse or does not have the expected shape."""


_parsed: dict[Path, tuple[str, dict[str, Any]]] = {}
"""path -> (key, table): files already read by this process (every registry built in one
process, a test suite's many included, reads each file once while it is unchanged)."""

_built: dict[tuple[str, Path], tuple[str, tuple[Any, ...]]] = {}


def read_table(name: str, folder: Path = DATA_DIR) -> dict[str, Any]:
    """The parsed contents of `folder/name.toml` (a table), from the JSON cache when it is current.

    The table is shared by every caller in the process: read it, never change it. Raises
    `DataFileError` naming the file (and, from `tomllib`, the line) when it is not valid TOML.
    """
    path = folder / f"{name}.toml"
    return _read(path)[1]


def records(kind: str, name: str, build: Any, folder: Path = DATA_DIR) -> tuple[Any, ...]:
    """`build(table)` for `folder/name.toml`, built once per process while the file is unchanged.

    For the built-in catalogs: their records are frozen, so one tuple can serve every registry
    the process makes.
    """
    path = folder / f"{name}.toml"
    key, table = _read(path)
    done = _built.get((kind, path))
    if done is not None and done[0] == key:
        return done[1]
    built = tuple(build(table))
    _built[(kind, path)] = (key, built)
    return built


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    raw = path.read_bytes()
    key = f"{FORMAT}-{len(raw)}-{zlib.crc32(raw):08x}"
    known = _parsed.get(path)
    if known is not None and known[0] == key:
        return known
    cache = _cache_path(path)
    table = _read_cache(cache, key)
    if table is None:
        table = _parse(path, raw)
        if not sys.dont_write_bytecode:
            _write_cache(cache, key, table)
    _parsed[path] = (key, table)
    return key, table


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: {exc}") from exc


def _cache_path(path: Path) -> Path:
    """`data/__pycache__/name.toml.json`, or the same under `sys.pycache_prefix` when it is set."""
    if sys.pycache_prefix:
        folder = Path(sys.pycache_prefix) / path.parent.relative_to(path.anchor)
    else:
        folder = path.parent / "__pycache__"
    return folder / f"{path.name}.json"


def _read_cache(cache: Path, key: str) -> dict[str, Any] | None:
    try:
        with open(cache, encoding="utf-8") as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key or not isinstance(stored.get("table"), dict):
        return None
    return stored["table"]


def _write_cache(cache: Path, key: str, table: dict[str, Any]) -> None:
    import tempfile

    from genaisdk.core.files import honour_umask

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache.parent, prefix=cache.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"key": key, "table": table}, out, separators=(",", ":"), allow_nan=False)
            honour_umask(temporary)  # mkstemp makes it 0600
            os.replace(temporary, cache)
        except BaseException:
            os.unlink(temporary)
            raise
    except (OSError, TypeError, ValueError):
        pass  # a read-only or full disk, or a value JSON cannot hold: parse again next time


def entries(file: str, table: Mapping[str, Any], section: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, fields) of each entry of `table[section]`, its template's fields merged under it.

    An entry may name a template (`template = "llama2"`): a table of `[templates]` whose
    fields it inherits, each overridden by the entry's own; the two `dims` (and `peak_tflops`)
    tables are merged key by key. Templates do not nest.
    """
    templates = table.get("templates", {})
    for name, fields in table.get(section, {}).items():
        fields = dict(fields)
        template = fields.pop("template", None)
        if template is not None:
            if template not in templates:
                raise DataFileError(
                    f"{file}: {section}.{name}: unknown template {template!r}; templates: {', '.join(templates)}"
                )
            base = dict(templates[template])
            for key in MERGED_TABLES:
                if key in base and key in fields:
                    fields[key] = {**base[key], **fields[key]}
            fields = {**base, **fields}
        yield name, fields


MERGED_TABLES = ("dims", "peak_tflops")
"""Fields that are tables: an entry's keys are merged into its template's instead of replacing them."""


def check_keys(file: str, where: str, fields: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise `DataFileError` for a key that is not one of `known` (a typo would otherwise be lost)."""
    known = tuple(known)
    for key in fields:
        if key not in known:
            raise DataFileError(f"{file}: {where}: unknown key {key!r}; known keys: {', '.join(known)}")
