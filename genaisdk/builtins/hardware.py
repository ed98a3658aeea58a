"""Built-in accelerators, from `data/hardware.toml`: memory, dense peak FLOP/s, bandwidth, node, price.

A plugin module like any other (see `genaisdk.hookspecs.genaisdk_hardware`); its records are
data. The file states figures in the units datasheets print (GiB, TFLOP/s, GB/s; its header
says which), and `catalog()` converts them to the SI units of `genaisdk.records.Hardware`:

- `memory_gib` -> `memory_bytes` (x 2**30: the vendors' "GB" of HBM and GDDR is binary);
- `peak_tflops` -> `peak_flops` (x 1e12, dense, per dtype);
- `bandwidth_gb_s`, `intra_node_gb_s`, `inter_node_gb_s` -> the `..._bytes_per_s` fields (x 1e9);
  link figures are per device and per direction (a vendor's bidirectional figure halved);
- `host_memory_gib` (x 2**30) or `host_memory_gb` (x 1e9) -> `host_memory_bytes`, per device;
- every other key is the `Hardware` field of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from genaisdk.builtins.datafiles import DataFileError, check_keys, entries, records
from genaisdk.hookspecs import hookimpl
from genaisdk.records import Hardware

FILE = "hardware"
"""`data/hardware.toml`."""

GIB = 2**30
TERA = 1e12
GB_PER_S = 1e9

CONVERTED = {
    "memory_gib": ("memory_bytes", lambda gib: int(round(gib * GIB))),
    "peak_tflops": ("peak_flops", lambda table: {dtype: value * TERA for dtype, value in table.items()}),
    "bandwidth_gb_s": ("bandwidth_bytes_per_s", lambda gb_s: gb_s * GB_PER_S),
    "intra_node_gb_s": ("intra_node_bytes_per_s", lambda gb_s: gb_s * GB_PER_S),
    "inter_node_gb_s": ("inter_node_bytes_per_s", lambda gb_s: gb_s * GB_PER_S),
    "host_link_gb_s": ("host_link_bytes_per_s", lambda gb_s: gb_s * GB_PER_S),
    "host_memory_gib": ("host_memory_bytes", lambda gib: int(round(gib * GIB))),
    "host_memory_gb": ("host_memory_bytes", lambda gb: int(round(gb * 1e9))),
}
"""File key -> (Hardware field, conversion to the field's unit)."""

_FIELDS = tuple(field.name for field in attrs.fields(Hardware) if field.name not in ("name", "provider"))
_CONVERTED_FIELDS = tuple(field for field, _ in CONVERTED.values())
KEYS = (*CONVERTED, *(name for name in _FIELDS if name not in _CONVERTED_FIELDS))
"""The keys an entry may have besides `template`."""


def catalog() -> list[Hardware]:
    """Every built-in accelerator, in the file's order (built once per process while the file is unchanged)."""
    return list(records("hardware", FILE, _build))


def _build(table: dict[str, Any]) -> list[Hardware]:
    return [_hardware(name, fields) for name, fields in entries(f"{FILE}.toml", table, "hardware")]


def _hardware(name: str, fields: dict[str, Any]) -> Hardware:
    where = f"hardware.{name}"
    check_keys(f"{FILE}.toml", where, fields, KEYS)
    values: dict[str, Any] = {}
    for key, value in fields.items():
        field, convert = CONVERTED.get(key, (key, None))
        if field in values:
            raise DataFileError(f"{FILE}.toml: {where}: {field} is given twice (as {key!r} and another unit)")
        values[field] = convert(value) if convert is not None else value
    try:
        return Hardware(name=name, provider=__name__, **values)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{FILE}.toml: {where}: {exc}") from exc


@hookimpl
def genaisdk_hardware() -> Iterator[Hardware]:
    yield from catalog()
