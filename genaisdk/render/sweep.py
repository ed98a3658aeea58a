"""`genai plan --sweep` as a rich table or Markdown: the Pareto front, the plan's own row
marked `plan`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from genaisdk.planning.sweep import SweepResult, SweepRow

COLUMNS = ("", "params", "shape", "precision", "strategy", "devices", "micro", "recompute", "memory", "days", "cost", "loss")
RIGHT = {"params", "devices", "micro", "memory", "days", "cost", "loss"}


def _cells(r: SweepRow) -> list[str]:
    return [
        "plan" if r.is_plan else "",
        fmt_count(r.params),
        f"{r.layers} x {r.d_model}",
        r.precision,
        r.strategy,
        str(r.devices),
        str(r.micro_batch),
        r.recompute,
        fmt_bytes(r.memory),
        f"{r.days:,.1f}",
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


def render_sweep(result: SweepResult, console: Console, top: int = 10) -> None:
    from rich import box
    from rich.table import Table

    rows = result.shown(top)
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"Pareto front: predicted loss vs time vs cost ({len(result.front)} configurations, {len(rows)} shown)",
        title_justify="left",
    )
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in RIGHT else "left")
    for r in rows:
        table.add_row(*_cells(r), style="bold" if r.is_plan else None)
    console.print(table)
    console.print(f"[dim]{_summary(result)}[/]")
