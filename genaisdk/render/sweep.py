"""`genai plan --sweep` as a rich table or Markdown: the Pareto front, the plan's own row
marked `plan`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genaisdk.core.numbers import fmt_amount, fmt_bytes, fmt_count, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from genaisdk.planning.sweep import SweepResult, SweepRow

COLUMNS = ("", "params", "shape", "precision", "strategy", "devices", "layout", "micro", "recompute", "memory", "days", "cost", "loss")
RIGHT = {"params", "devices", "micro", "memory", "days", "cost", "loss"}


def _cells(r: SweepRow) -> list[str]:
    return [
        "plan" if r.is_plan else "",
        fmt_count(r.params),
        f"{r.layers} x {r.d_model}",
        r.precision,
        r.strategy,
        str(r.devices),
        f"{r.tensor_parallel}x{r.pipeline_parallel}x{r.data_parallel}" + ("+sp" if r.sequence_parallel else "")
        + (f"+v{r.virtual_stages}" if r.virtual_stages > 1 else ""),
        str(r.micro_batch),
        r.recompute,
        fmt_bytes(r.memory),
        # Two significant figures keep the narrow table within 80 columns; under a minute
        # (a laptop-sized spec) the days are a power of ten, not a run of zeros.
        fmt_amount(r.days, 2) if r.days is None or r.days >= 1e-3 else f"{r.days:.0e}",
        fmt_usd(r.usd),
        f"{r.loss:.3f}",
    ]


def _summary(result: SweepResult) -> str:
    varied = ", ".join(result.varied) or "nothing (the spec fixes every axis)"
    return (
        f"{result.configurations:,} configurations searched in {result.seconds * 1e3:.1f} ms "
        f"({result.rate:,.0f} per second); varied: {varied}; tokens: {result.tokens_rule}; "
        f"memory limit {fmt_bytes(result.capacity)} per device"
    )


def sweep_markdown(result: SweepResult, top: int = 10) -> str:
    lines = [
        _summary(result) + ".",
        "",
        "| " + " | ".join(c or "row" for c in COLUMNS) + " |",
        "|" + "|".join("---:" if c in RIGHT else "---" for c in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in result.shown(top)]
    return "\n".join(lines) + "\n"


NARROW_HIDDEN = ("shape", "layout", "micro", "recompute")
"""Columns the table leaves out under 120 columns (they are in --json and --markdown)."""


def render_sweep(result: SweepResult, console: Console, top: int = 10, *, narrow: bool | None = None) -> None:
    """The front as a table. Narrow (under 120 columns, or `narrow=True`) leaves out shape,
    layout, micro-batch and recomputation, so that no cell is cut at 80 columns; the layout
    column shows only where some row splits the model."""
    from rich import box
    from rich.table import Table

    if narrow is None:
        narrow = console.width < 120
    rows = result.shown(top)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=not narrow,
        pad_edge=not narrow,
        title=f"Pareto front: predicted loss vs time vs cost ({len(result.front)} configuration"
        f"{'' if len(result.front) == 1 else 's'}, {len(rows)} shown)",
        title_justify="left",
    )
    # The layout column only where some row splits the model (tensor, pipeline).
    split = any(r.tensor_parallel * r.pipeline_parallel > 1 or r.sequence_parallel for r in rows)
    shown = [
        i for i, column in enumerate(COLUMNS)
        if not (narrow and column in NARROW_HIDDEN) and (split or column != "layout")
    ]
    for i in shown:
        table.add_column(COLUMNS[i], justify="right" if COLUMNS[i] in RIGHT else "left", no_wrap=True)
    for r in rows:
        cells = _cells(r)
        table.add_row(*(cells[i] for i in shown), style="bold" if r.is_plan else None)
    console.print(table)
    if narrow:
        hidden = "shape, layout, micro-batch and recomputation" if split else "shape, micro-batch and recomputation"
        console.print(f"[dim]{hidden}: at 120 columns or more, or with --json[/]")
    console.print(f"[dim]{_summary(result)}[/]")
