"""`genai catalog [KIND] [--json]`: the registered records of one kind.

Without KIND, the kinds and how many records each has. `presets` also show each preset's
parameter count as its architecture computes it (`params`), next to the published one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import click

from genaisdk.core.names import suggest
from genaisdk.core.numbers import fmt_bytes, fmt_count
from genaisdk.records import RECORD_KINDS, Record

BUILTIN_PREFIX = "genaisdk.builtins."


def plain(value: Any) -> Any:
    """A JSON-ready copy of a record field: attrs classes and mappings as dicts, tuples as
    lists, callables by their dotted name ("module:qualname")."""
    if attrs.has(type(value)):
        return {field.name: plain(getattr(value, field.name)) for field in attrs.fields(type(value))}
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if callable(value):
        module = getattr(value, "__module__", None) or "?"
        name = getattr(value, "__qualname__", None) or type(value).__name__
        return f"{module}:{name}"
    return repr(value)


def preset_params(registry: Any, preset: Any) -> tuple[dict[str, int | None], str | None]:
    """({'params': total, 'active_params': active}, error) for a preset, by its architecture."""
    architecture = registry.get("architectures", preset.architecture)
    if architecture is None:
        return {"params": None, "active_params": None}, f"unknown architecture {preset.architecture!r}"
    try:
        counts = architecture.count_params(preset.dims)
    except Exception as exc:  # a plugin's counting function: report, do not crash the listing
        return {"params": None, "active_params": None}, f"{type(exc).__name__}: {exc}"
    return {"params": int(counts.total), "active_params": int(counts.active)}, None


def catalog_to_json(registry: Any, kind: str) -> dict[str, Any]:
    """{'kind': kind, 'records': [...]} with every field of every record of `kind`."""
    out = []
    for record in registry.catalog(kind).values():
        item = plain(record)
        if kind == "presets":
            counts, error = preset_params(registry, record)
            item.update(counts)
            if error:
                item["params_error"] = error
        out.append(item)
    return {"kind": kind, "records": out}


def _provider(record: Record) -> str:
    return "built-in" if record.provider.startswith(BUILTIN_PREFIX) else record.provider


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def _tflops(record: Any, dtype: str) -> str:
    value = record.peak_flops.get(dtype)
    return "-" if value is None else f"{value / 1e12:.4g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


# kind -> (columns, row builder)
_Row = Callable[[Any, Any], list[str]]

PROSE: dict[str, tuple[str, ...]] = {"presets": ("source",), "tasks": ("examples",)}
"""Columns of long text a compact listing leaves out at any width: a citation per preset
would turn 52 rows into hundreds of lines."""

DROP_FIRST: dict[str, tuple[str, ...]] = {
    "tasks": ("examples", "aliases"),
    "architectures": ("description", "extra dims"),
    "objectives": ("loss fraction", "JAX loss", "mean span"),
    "precisions": ("loss scaling", "activations B", "compute", "master B"),
    "optimizers": ("state", "optax"),
    "strategies": ("comm (x model)", "offload"),
    "hardware": ("vendor", "host", "net GB/s", "link GB/s", "node", "int8 TOP/s", "fp32 TF/s", "W", "mem TB/s",
                 "fp8 TF/s", "price date"),
    "presets": ("source", "heads", "architecture", "published"),
    "adaptations": ("resident", "targets", "frozen at", "trains"),
}
"""The columns a compact listing leaves out when the terminal is too narrow, least needed
first (`--wide` shows them all; `--json` has every field)."""

NUMERIC = {"layers", "d_model", "heads", "params", "published", "rank", "noise", "mean span", "loss fraction",
           "memory", "fp32 TF/s", "bf16 TF/s", "fp8 TF/s", "int8 TOP/s", "mem TB/s", "W", "$/h",
           "weights B", "grads B", "master B", "activations B", "state B/param", "comm (x model)", "node", "link GB/s",
           "net GB/s", "host"}


def _price_sources(registry: Any) -> list[str]:
    """The distinct price sources of the hardware catalog, in catalog order (footnotes [1], [2], ...)."""
    sources: list[str] = []
    for record in registry.catalog("hardware").values():
        if record.price_source and record.price_source not in sources:
            sources.append(record.price_source)
    return sources


def _hardware_row(registry: Any, r: Any) -> list[str]:
    if r.price_per_hour is None:
        price = "-"
    else:
        price = f"{r.price_per_hour:.2f} [{_price_sources(registry).index(r.price_source) + 1}]"
    return [
        r.name,
        r.vendor,
        fmt_bytes(r.memory_bytes),
        _tflops(r, "fp32"),
        _tflops(r, "bf16"),
        _tflops(r, "fp8"),
        _tflops(r, "int8"),
        "-" if r.bandwidth_bytes_per_s is None else f"{r.bandwidth_bytes_per_s / 1e12:.3g}",
        _num(r.power_watts, 4),
        "-" if r.devices_per_node is None else f"{r.devices_per_node} x",
        "-" if r.intra_node_bytes_per_s is None else f"{r.intra_node_bytes_per_s / 1e9:.4g}",
        "-" if r.inter_node_bytes_per_s is None else f"{r.inter_node_bytes_per_s / 1e9:.4g}",
        fmt_bytes(r.host_memory_bytes),
        price,
        r.price_date or "-",
    ]


def _preset_row(registry: Any, r: Any) -> list[str]:
    counts, error = preset_params(registry, r)
    return [
        r.name,
        r.architecture,
        str(r.dims.layers),
        str(r.dims.d_model),
        str(r.dims.heads),
        fmt_count(counts["params"], digits=4) if not error else "error",
        fmt_count(r.published_params, digits=4),
        r.source,
    ]


_TABLES: dict[str, tuple[tuple[str, ...], _Row]] = {
    "tasks": (
        ("name", "family", "objective", "examples", "aliases"),
        lambda reg, r: [r.name, r.family, r.objective, "; ".join(r.examples), ", ".join(r.aliases)],
    ),
    "architectures": (
        ("name", "family", "extra dims", "JAX model", "description"),
        lambda reg, r: [
            r.name,
            r.family,
            ", ".join(f.name for f in r.extra_dims) or "-",
            _yes(r.jax_model is not None),
            r.description,
        ],
    ),
    "objectives": (
        ("name", "families", "noise", "mean span", "loss fraction", "JAX loss"),
        lambda reg, r: [
            r.name,
            ", ".join(r.families),
            _num(r.noise_density),
            _num(r.mean_span),
            _num(r.loss_fraction),
            _yes(r.jax_loss is not None),
        ],
    ),
    "precisions": (
        ("name", "weights B", "grads B", "master B", "activations B", "compute", "loss scaling", "trainable"),
        lambda reg, r: [
            r.name,
            _num(r.weight_bytes),
            _num(r.gradient_bytes),
            _num(r.master_bytes),
            _num(r.activation_bytes),
            r.compute_dtype,
            _yes(r.loss_scaling),
            _yes(r.trainable),
        ],
    ),
    "optimizers": (
        ("name", "state B/param", "state", "optax"),
        lambda reg, r: [r.name, _num(r.state_bytes), r.state_note, _yes(r.optax_factory is not None)],
    ),
    "strategies": (
        ("name", "shards optimizer", "shards grads", "shards weights", "offload", "comm (x model)"),
        lambda reg, r: [
            r.name,
            _yes(r.shards_optimizer),
            _yes(r.shards_gradients),
            _yes(r.shards_weights),
            ", ".join(n for n, on in (("optimizer", r.offload_optimizer), ("weights", r.offload_weights)) if on)
            or "-",
            _num(r.communication),
        ],
    ),
    "hardware": (
        (
            "name", "vendor", "memory", "fp32 TF/s", "bf16 TF/s", "fp8 TF/s", "int8 TOP/s", "mem TB/s", "W",
            "node", "link GB/s", "net GB/s", "host", "$/h", "price date",
        ),
        lambda reg, r: _hardware_row(reg, r),
    ),
    "presets": (
        ("name", "architecture", "layers", "d_model", "heads", "params", "published", "source"),
        _preset_row,
    ),
    "adaptations": (
        ("name", "trains", "weights", "rank", "targets", "frozen at", "resident"),
        lambda reg, r: [
            r.name,
            ", ".join(r.trained_models) if r.trains else "-",
            "all" if r.full else ("adapters" if r.trains else "-"),
            "-" if r.default_rank is None else str(r.default_rank),
            ", ".join(r.default_targets) or "-",
            r.frozen_precision or "-",
            ", ".join(r.resident_models),
        ],
    ),
}


def _console() -> Any:
    """A rich console as wide as the terminal, or as COLUMNS says when the output is piped."""
    from genaisdk.render.text import make_console

    return make_console()


def _kind_or_usage_error(kind: str) -> str:
    key = kind.strip().lower()
    if key in RECORD_KINDS:
        return key
    if key + "s" in RECORD_KINDS:  # `genai catalog preset`
        return key + "s"
    close = suggest(key, RECORD_KINDS)
    hint = f" Did you mean {close!r}?" if close else ""
    raise click.UsageError(f"unknown kind {kind!r}.{hint} Kinds: {', '.join(RECORD_KINDS)}.")


@click.command(name="catalog")
@click.argument("kind", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON instead of a table.")
@click.option("--wide", is_flag=True, help="Every column, however wide the lines get (default: the columns that fit).")
def command(kind: str | None, as_json: bool, wide: bool) -> None:
    """List the registered records of KIND: tasks, architectures, objectives, precisions,
    optimizers, strategies, hardware, presets or adaptations. Without KIND, list the kinds.

    The table fits the terminal (or COLUMNS when piped), leaving out the least needed
    columns and saying which; --wide shows them all. Figures come from each record's source
    (see --json for every field).
    """
    from genaisdk.registry import get_registry

    registry = get_registry()
    if kind is None:
        counts = {k: len(registry.catalog(k)) for k in RECORD_KINDS}
        if as_json:
            click.echo(json.dumps(counts, indent=2))
        else:
            for k, n in counts.items():
                click.echo(f"{k:<14} {n:>4}")
        return
    kind = _kind_or_usage_error(kind)
    if as_json:
        click.echo(json.dumps(catalog_to_json(registry, kind), indent=2, allow_nan=False))
        return

    from rich.markup import escape

    from genaisdk.render.tables import print_fitted

    columns, row = _TABLES[kind]
    records = list(registry.catalog(kind).values())
    show_provider = any(not r.provider.startswith(BUILTIN_PREFIX) for r in records)
    names = list(columns) + (["provider"] if show_provider else [])
    rows = []
    for record in records:
        cells = [escape(str(cell)) for cell in row(registry, record)]
        if show_provider:
            cells.append(escape(_provider(record)))
        rows.append(cells)
    console = _console()
    prose = () if wide else PROSE.get(kind, ())
    shown = [n for n in names if n not in prose]
    rows = [[cell for name, cell in zip(names, cells) if name not in prose] for cells in rows]
    hidden = list(prose) + print_fitted(console, f"{kind} ({len(records)})", shown, rows, drop=DROP_FIRST.get(kind, ()),
                                        wide=wide, right=NUMERIC)
    if hidden:
        console.print(f"[dim]not shown: {', '.join(hidden)} (--wide or --json)[/]")
    if kind == "hardware":
        from rich.text import Text

        console.print(Text(
            "Peak dense TFLOP/s (int8: TOP/s); memory and host memory per device in decimal units (1 GB = 1e9 bytes), as `genai plan` shows them. "
            "link: the intra-node link, net: the network between nodes, both per device in GB/s in one "
            "direction; node: devices per node of the reference system (--json: `system`). "
            "$/h: on-demand list price per device-hour on its date, from:"
        ))
        for number, source in enumerate(_price_sources(registry), start=1):
            console.print(Text(f"  [{number}] {source}"))
        console.print(Text("A device without a price says why in --json `price_note`; budget.price_per_hour overrides any."))
