"""Built-in presets: published models with their dimensions and sources, from `data/presets.toml`.

A plugin module like any other (see `genaisdk.hookspecs.genaisdk_presets`); its records are
data. Each entry of `[presets]` in the file gives a `Preset` field by field:

- `architecture`, `description`, `source`, `note`, `aliases`, `published_params`,
  `training_tokens`: the `Preset` fields of the same names;
- `dims`: a table of `genaisdk.dims.Dimensions` fields, passed through as they are, so any
  field `Dimensions` has (today's or one added later) can be written without changing this
  module; `extra` inside it holds an architecture's extra dimensions;
- `template`: the name of a `[templates]` table whose fields (and `dims`) the entry inherits.

Each preset carries the dimensions its paper or released configuration states, the
parameter count its source states and, where `genaisdk.estimate.params.count_params` does not
give exactly that count, a note saying why (a test keeps the two within 2%, or 7% with a note).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from genaisdk.builtins.datafiles import DataFileError, check_keys, entries, records
from genaisdk.dims import Dimensions
from genaisdk.hookspecs import hookimpl
from genaisdk.records import Preset

FILE = "presets"
"""`data/presets.toml`."""

FIELDS = ("architecture", "description", "source", "note", "aliases", "published_params", "training_tokens", "dims")
"""The keys an entry may have besides `template`."""

_DIMENSION_FIELDS = tuple(field.name for field in attrs.fields(Dimensions))


def catalog() -> list[Preset]:
    """Every built-in preset, in the file's order (built once per process while the file is unchanged)."""
    return list(records("presets", FILE, _build))


def _build(table: dict[str, Any]) -> list[Preset]:
    return [_preset(name, fields) for name, fields in entries(f"{FILE}.toml", table, "presets")]


def _preset(name: str, fields: dict[str, Any]) -> Preset:
    where = f"presets.{name}"
    check_keys(f"{FILE}.toml", where, fields, FIELDS)
    dims = dict(fields.pop("dims", {}))
    check_keys(f"{FILE}.toml", f"{where}.dims", dims, _DIMENSION_FIELDS)
    try:
        return Preset(name=name, provider=__name__, dims=Dimensions(**dims), **fields)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{FILE}.toml: {where}: {exc}") from exc


@hookimpl
def genaisdk_presets() -> Iterator[Preset]:
    yield from catalog()
