"""The JSON form of frozen attrs values, driven by field metadata.

    >>> weights: float = attrs.field(metadata=BYTES)
    >>> to_json(plan.memory)            # {"weights": 13476839424, ...}

A field's metadata says how its value is written (`JSON_KIND`): `bytes` as an integer
rounded up (int4 halves count whole), `count` (parameters, tokens, devices) as a rounded
integer; anything else by its type: finite numbers as numbers and NaN or infinity as None,
attrs values field by field, mappings and sequences item by item (a mapping's values take
the field's kind), objects with a `to_json()` method by it. `JSON_NAME` renames a key,
`JSON_SKIP` leaves a field out. Read-only figures derived from other fields (`headroom`) are
fields with `init=False` and a default computed from the others, so they serialize the
same way.

This is the one serializer of the plan, the sweep, the run settings and the measurements;
no class writes its JSON by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

JSON_KIND = "genaisdk.json.kind"
JSON_NAME = "genaisdk.json.name"
JSON_SKIP = "genaisdk.json.skip"

BYTES = {JSON_KIND: "bytes"}
"""Bytes: an integer, rounded up."""
COUNT = {JSON_KIND: "count"}
"""Parameters, tokens, devices, sequences: an integer."""
SKIP = {JSON_SKIP: True}


def _bytes(value: Any) -> int | None:
    if value is None:
        return None
    f = float(value)
    return int(math.ceil(f - 1e-9)) if math.isfinite(f) else None


def _count(value: Any) -> int | None:
    if value is None:
        return None
    f = float(value)
    return int(round(f)) if math.isfinite(f) else None


def number(value: Any) -> Any:
    """A JSON-safe number: numpy scalars become Python floats; NaN and infinity become None."""
    if value is None or isinstance(value, (bool, int)):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return f if math.isfinite(f) else None


_KINDS = {"bytes": _bytes, "count": _count}


def to_json(value: Any, kind: str | None = None) -> Any:
    """`value` as plain JSON data (dict, list, str, int, float, bool, None). A value with a
    `to_json()` method of its own (a Diagnostic) is written by it."""
    if kind is not None and value is not None and not isinstance(value, (Mapping, list, tuple)):
        return _KINDS[kind](value)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    method = getattr(value, "to_json", None)
    if callable(method):
        return method()
    if attrs.has(type(value)):
        return fields_json(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, kind) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, kind) for v in value]
    try:
        return number(float(value))
    except (TypeError, ValueError):
        return str(value)


def fields_json(value: Any) -> dict[str, Any]:
    """An attrs value's fields, each by its metadata (the module docstring)."""
    out: dict[str, Any] = {}
    for field in attrs.fields(type(value)):
        meta = field.metadata
        if meta.get(JSON_SKIP):
            continue
        out[meta.get(JSON_NAME, field.name)] = to_json(getattr(value, field.name), meta.get(JSON_KIND))
    return out
