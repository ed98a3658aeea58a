"""The terminal view of a Plan: the verdict, then sections Select, Fit, Cost, Serve, the
reasons and the diagnostics, as rich tables. rich is imported here only, when a plan is
printed.

Two layouts: `wide` (a terminal of `WIDE_COLUMNS` or more) puts every strategy x precision
of the memory options in one table; `narrow` (80 columns) stacks one table per precision
with fewer, shorter columns. Neither truncates a cell: text wraps between words, and the
verdict (fits or not, within budget or not) is the line after the title, so it is always
on screen.

Nothing here is rich markup: every cell is a `rich.text.Text`, styled explicitly, so a
project called `[/]` prints as written, and control characters from a spec are shown
escaped (`genaisdk.core.safe.printable`)."""

from __future__ import annotations

import math
from typing import IO, TYPE_CHECKING

from genaisdk.core.safe import printable
from genaisdk.render.summary import first_clause, serve_weights_why
from genaisdk.core.numbers import (
    fmt_amount,
    fmt_bytes,
    fmt_count,
    fmt_fraction,
    fmt_items,
    fmt_ratio,
    fmt_recompute,
    fmt_sci,
    fmt_seconds,
    fmt_usd,
)

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.text import Text

    from genaisdk.plans import Plan

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_VERDICT_STYLE = {"ok": "bold green", "warn": "bold yellow", "error": "bold red"}

WIDE_COLUMNS = 120
"""From this terminal width on, the wide layout."""


def _text(value: object, style: str = "") -> Text:
    """A cell or line as written: no markup, control characters escaped."""
    from rich.text import Text

    if isinstance(value, Text):
        return value
    return Text(printable(str(value)), style=style)


def _add(table: object, *cells: object, **options: object) -> None:
    table.add_row(*(_text(c) for c in cells), **options)  # type: ignore[attr-defined]


def _kv_table():
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_header=False, pad_edge=False, expand=False)
    # Labels never wrap; values wrap only when the terminal is narrow; reasons take the rest.
    table.add_column(style="bold", no_wrap=True, min_width=15)
    table.add_column(min_width=12, ratio=2)
    table.add_column(style="dim", ratio=3)
    return table


def _why(plan: Plan, field: str) -> str:
    """The reason's first clause; the full text (with sources) is in the Why section."""
    reason = plan.reason(field)
    return first_clause(reason.reason) if reason else ""


def _select(plan: Plan) -> object:
    m, s, d = plan.model, plan.scaling, plan.data
    table = _kv_table()
    _add(table, "task", plan.project.task or "-", "")
    _add(table, "architecture", m.family, _why(plan, "model.family"))
    _add(table, "objective", m.objective, _why(plan, "model.objective"))
    size = fmt_count(m.params, "params")
    if m.preset:
        size += f" ({m.preset})"
    _add(table, "size", size, _why(plan, "model.size"))
    dims = f"{m.layers} layers" + (f" + {m.decoder_layers} decoder" if m.decoder_layers else "")
    dims += f", d_model {m.d_model}, {m.heads} heads"
    if m.kv_heads != m.heads:
        dims += f" ({m.kv_heads} kv)"
    dims += f", d_ff {m.d_ff} ({m.ffn}), vocab {m.vocab}"
    _add(table, "shape", dims, _why(plan, "model.dims"))
    _add(table, "context", f"{m.context} tokens", _why(plan, "model.context"))
    if m.trainable_params and abs(m.trainable_params - m.params) > 0.5:
        _add(table, "trainable", fmt_count(m.trainable_params, "params"), f"{plan.train.adaptation}")
    data = fmt_count(d.tokens, "tokens")
    if d.mix:
        data += "  (" + ", ".join(f"{k} {fmt_fraction(v)}" for k, v in d.mix.items()) + ")"
    _add(table, "data", data, _why(plan, "data.tokens"))
    if d.raw_tokens_needed:
        _add(table, "raw text", fmt_count(d.raw_tokens_needed, "tokens"), f"for the optimal D at keep = {fmt_fraction(d.keep)}")
    if plan.train.adaptation == "pretrain" and plan.compute.flops:
        _add(table, 
            "compute-optimal",
            f"{fmt_count(s.optimal_params, 'params')} on {fmt_count(s.optimal_tokens, 'tokens')}",
            f"Chinchilla, for the {fmt_sci(plan.compute.flops)} FLOPs of this run",
        )
        _add(table, "tokens/param", fmt_amount(s.tokens_per_param), "about 20 is compute-optimal (Hoffmann et al. 2022)")
    if math.isfinite(s.predicted_loss):
        basis = "this run" if plan.train.adaptation == "pretrain" else f"the base model's {fmt_count(s.loss_tokens, 'tokens')} of pretraining"
        why = f"Chinchilla approach 3, L(N, D) with D from {basis}"
        value = f"{s.predicted_loss:.3g} nats/token"
        if s.fit_loss is not None and s.fit_loss > s.predicted_loss:
            value = f"at most {s.predicted_loss:.3g} nats/token"
            why = f"a uniform guess over {plan.model.vocab} tokens; the fit's {s.fit_loss:.3g} is far outside its range"
        elif s.loss_in_fit_range is False:
            why += "; extrapolated outside the fitted 70M-16B parameters, 5B-500B tokens"
        _add(table, "predicted loss", value, why)
    return table


def _memory_table(plan: Plan) -> object:
    from rich import box
    from rich.table import Table

    mem = plan.memory.per_device
    table = Table(box=box.SIMPLE_HEAD, title=None, pad_edge=False)
    table.add_column("per device", style="bold")
    table.add_column("bytes", justify="right")
    for name, value in (
        ("weights", mem.weights),
        ("gradients", mem.gradients),
        ("optimizer", mem.optimizer),
        ("activations", mem.activations),
        *((f"overhead: {k}", v) for k, v in mem.overheads.items() if v),
    ):
        _add(table, name, fmt_bytes(value))
    fits = plan.memory.fits
    _add(table, 
        "peak total",
        _text(fmt_bytes(mem.total), "green" if fits else "bold red") + f" of {fmt_bytes(plan.memory.device_capacity)}",
        end_section=True,
    )
    if mem.host:
        cap = plan.memory.host_capacity
        room = f" of {fmt_bytes(cap)}" if cap is not None else " (host memory unknown: unchecked)"
        _add(table, "host (offloaded)", fmt_bytes(mem.host) + room)
    return table


def _options_table(plan: Plan) -> object | None:
    """Rows: strategies. Columns: the chosen precision's breakdown, then the peak total of each
    other precision, with whether it fits (one compact table: rich lays out every cell, so
    fewer cells keep `genai plan` fast)."""
    if not plan.memory.options:
        return None
    from rich import box
    from rich.table import Table
    from rich.text import Text

    chosen = plan.train.precision
    others = list(dict.fromkeys(o.precision for o in plan.memory.options if o.precision != chosen))
    by = {(o.strategy, o.precision): o for o in plan.memory.options}
    strategies = list(dict.fromkeys(o.strategy for o in plan.memory.options))
    table = Table(
        box=box.SIMPLE_HEAD,
        title=_text(
            f"memory per device by strategy and precision ({fmt_items(plan.train.devices, 'device')}, {plan.train.layout}, "
            f"{fmt_recompute(plan.train.recompute)})"
        ),
        title_justify="left",
    )
    table.add_column("strategy", no_wrap=True)
    for col in ("micro", "weights", "grads", "optimizer", "activations", f"{chosen} total"):
        table.add_column(col, justify="right", no_wrap=True)
    for p in others:
        table.add_column(f"{p} total", justify="right", no_wrap=True)

    def total(o, *, micro: bool = False) -> Text:
        label = fmt_bytes(o.per_device.total) + (f" (mb {o.micro_batch})" if micro else "") + (" ok" if o.fits else f" {_fit_word(o)}")
        return Text(label, style="green" if o.fits else "red")

    for name in strategies:
        o = by.get((name, chosen))
        if o is None:
            continue
        b = o.per_device
        cells = [
            Text(name + (" *" if o.chosen else ""), style="bold" if o.chosen else ""),
            str(o.micro_batch),
            fmt_bytes(b.weights),
            fmt_bytes(b.gradients),
            fmt_bytes(b.optimizer),
            fmt_bytes(b.activations),
            total(o),
        ]
        cells += [total(by[(name, p)], micro=True) if (name, p) in by else "-" for p in others]
        _add(table, *cells)
    return table


_VERDICTS = {"not runnable": "n/a", "host memory": "host"}
"""The short form of `MemoryOption.why_not` in the tables; `options_note` explains them."""


def _fit_word(option) -> str:
    return _VERDICTS.get(option.why_not, "no")


def options_note(plan: Plan) -> str:
    """One line under the strategy tables saying what their short verdicts mean ('' when
    every row that does not fit is simply over capacity)."""
    shown = {o.why_not for o in plan.memory.options if not o.fits}
    parts = []
    if "not runnable" in shown:
        parts.append("n/a: cannot run with this layout (ZeRO-2/3 and FSDP partition the gradients a pipeline accumulates; "
                     "a pipeline runs with ddp or zero1)")
    if "host memory" in shown:
        parts.append("host: what it offloads does not fit the host's memory (budget.host_memory)")
    return "; ".join(parts)


def _options_tables(plan: Plan) -> list[object]:
    """The narrow layout of the strategy x precision options: one table per precision
    (the plan's first), the verdict (`fits`) next to the strategy so it is never off screen."""
    if not plan.memory.options:
        return []
    from rich import box
    from rich.table import Table
    from rich.text import Text

    chosen = plan.train.precision
    precisions = list(dict.fromkeys([chosen, *(o.precision for o in plan.memory.options)]))
    tables = []
    for precision in precisions:
        rows = [o for o in plan.memory.options if o.precision == precision]
        if not rows:
            continue
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            title=_text(f"{precision}: memory per device by strategy ({fmt_items(plan.train.devices, 'device')}, {fmt_recompute(plan.train.recompute)})"),
            title_justify="left",
        )
        table.add_column("strategy", no_wrap=True)
        table.add_column("fits", no_wrap=True)
        for col in ("peak", "micro", "weights", "grads", "optim.", "activ."):
            table.add_column(col, justify="right", no_wrap=True)
        for o in rows:
            b = o.per_device
            table.add_row(
                Text(o.strategy + (" *" if o.chosen else ""), style="bold" if o.chosen else ""),
                Text("yes" if o.fits else _fit_word(o), style="green" if o.fits else "red"),
                fmt_bytes(b.total),
                str(o.micro_batch),
                fmt_bytes(b.weights),
                fmt_bytes(b.gradients),
                fmt_bytes(b.optimizer),
                fmt_bytes(b.activations),
            )
        tables.append(table)
    return tables


def _fit(plan: Plan) -> object:
    t = plan.train
    table = _kv_table()
    _add(table, "hardware", f"{t.devices} x {t.hardware}", _why(plan, "budget.devices"))
    _add(table, "precision", t.precision, _why(plan, "train.precision"))
    _add(table, "optimizer", t.optimizer, _why(plan, "train.optimizer"))
    _add(table, "strategy", t.strategy, _why(plan, "train.sharding"))
    _add(table, "layout", plan.train.layout, _why(plan, "train.tensor") or _why(plan, "train.pipeline"))
    _add(table, "micro-batch", f"{t.micro_batch} sequences", _why(plan, "train.micro_batch"))
    _add(table, "recompute", t.recompute, _why(plan, "train.recompute"))
    if t.global_batch_sequences:
        replicas = f"{t.data_parallel} replicas" if t.data_parallel != t.devices else f"{t.devices}"
        _add(table, 
            "global batch",
            f"{t.global_batch_sequences} sequences ({fmt_count(t.global_batch_tokens, 'tokens')})",
            f"{t.grad_accumulation} accumulation step(s) of {t.micro_batch} x {replicas}",
        )
    return table


def _stages_table(plan: Plan) -> object | None:
    """One row per pipeline stage (only when there are several)."""
    stages = plan.memory.stages
    if len(stages) <= 1:
        return None
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=_text("memory per device, by pipeline stage"), title_justify="left")
    for col in ("stage", "layers", "weights", "grads", "optimizer", "activations", "peak total"):
        table.add_column(col, justify="right", no_wrap=True)
    for st in stages:
        mark = " *" if st.stage == plan.memory.most_loaded_stage else ""
        _add(table, f"{st.stage}{mark}", str(st.layers), fmt_bytes(st.weights), fmt_bytes(st.gradients), fmt_bytes(st.optimizer),
             fmt_bytes(st.activations), _text(fmt_bytes(st.total), "green" if st.fits else "bold red"))
    return table


def _cost(plan: Plan) -> object:
    c, tm, co, b = plan.compute, plan.time, plan.cost, plan.budget
    table = _kv_table()
    _add(table, "training FLOPs", fmt_sci(c.flops), "6·N·D")
    _add(table, "model FLOPs", fmt_sci(c.model_flops), "(6·N + 12·L·H·Q·T)·D, PaLM appendix B")
    _add(table, "hardware FLOPs", fmt_sci(c.hardware_flops), "model FLOPs + recomputation")
    _add(table, "petaflop/s-days", fmt_amount(c.pf_days), "1 PF-day = 8.64e19 FLOPs")
    step = tm.step
    _add(table, tm.mfu_label, fmt_fraction(plan.train.mfu), _why(plan, "train.mfu"))
    if step is not None:
        parts = ", ".join(f"{k.replace('_', ' ')} {fmt_seconds(v)}" for k, v in step.parts.items() if v > 0)
        _add(table, "step", f"{fmt_seconds(step.seconds)} x {plan.train.steps or 0:,} steps", parts)
    over_time = b.time_ratio is not None and b.time_ratio > 1
    time_text = fmt_seconds(tm.seconds)
    if b.time_seconds is not None:
        time_text = _text(time_text, "bold red" if over_time else "green")
        limit = f"budget {fmt_seconds(b.time_seconds)}: {fmt_ratio(b.time_ratio)}"
    else:
        limit = ""
    _add(table, "wall-clock", time_text, limit)
    _add(table, "device-hours", fmt_amount(tm.gpu_hours),
         "" if tm.seconds is not None else f"{plan.train.hardware} quotes no throughput: no time")
    cost_text = fmt_usd(co.usd)
    if b.cost_usd is not None and co.usd is not None:
        over = b.cost_ratio is not None and b.cost_ratio > 1
        cost_text = _text(cost_text, "bold red" if over else "green")
        limit = f"budget {fmt_usd(b.cost_usd)}: {fmt_ratio(b.cost_ratio)}"
    else:
        limit = f"at {fmt_usd(co.price_per_hour)}/device-hour" if co.price_per_hour else "no price known"
    _add(table, "cost", cost_text, limit)
    if co.price_source:
        _add(table, "price", f"{fmt_usd(co.price_per_hour)}/h", co.price_source)
    if co.energy_kwh is not None:
        _add(table, "energy", f"{fmt_amount(co.energy_kwh)} kWh", "devices x power x time")
    return table


def _serve(plan: Plan) -> object:
    i = plan.inference
    m = i.memory
    table = _kv_table()
    _add(table, "precision", i.precision, _why(plan, "serve.precision"))
    _add(table, "weights", fmt_bytes(m.weights), serve_weights_why(plan))
    _add(table, "KV cache", fmt_bytes(m.kv_cache), f"{i.kv_precision}, context {i.context} x batch {i.batch}")
    _add(table, "workspace", fmt_bytes(m.workspace), f"one step of {i.step_tokens} tokens + logits (chunked prefill)")
    _add(table, "runtime", fmt_bytes(m.runtime), "CUDA context and library workspaces")
    fits = "fits one device" if i.fits else f"needs {i.devices_per_replica} x {plan.train.hardware} per replica"
    _add(table, "total", _text(fmt_bytes(m.total), "green" if i.fits else "yellow"), fits)
    return table


def _reasons(plan: Plan) -> object:
    table = _kv_table()
    for r in plan.reasons:
        if isinstance(r.value, bool):
            value = "true" if r.value else "false"
        else:
            value = r.value if isinstance(r.value, str) else fmt_count(r.value) if isinstance(r.value, (int, float)) else str(r.value)
        _add(table, r.field, value, r.reason)
    return table


def _diagnostics(plan: Plan, console: Console) -> None:
    for d in plan.diagnostics:
        where = f"{d.span.file}:{d.span.line}:{d.span.column}: " if d.span else ""
        line = _text(where)
        line.append(f"{d.severity}[{d.code}]", style=_SEVERITY_STYLE.get(d.severity, ""))
        line.append(printable(f": {d.message}"))
        console.print(line)
        if d.hint:
            console.print(_text(f"    = help: {d.hint}", "dim"))


def heading(plan: Plan) -> Text:
    """The project's name in bold and the spec file dimmed, both as written."""
    return _text(plan.project.name, "bold") + "  " + _text(plan.spec_file or "", "dim")


def _verdict(plan: Plan) -> object:
    from rich.text import Text

    from genaisdk.render.summary import verdict

    found = verdict(plan)
    line = Text(printable(found.headline), style=_VERDICT_STYLE.get(found.level, ""))
    if found.details:
        line.append(printable("; " + "; ".join(found.details)), style="")
    return line


def render_text(plan: Plan, console: Console, *, layout: str | None = None) -> None:
    """Print the plan to a rich Console. `layout`: 'wide', 'narrow', or None for the one the
    console's width suits (wide from WIDE_COLUMNS on)."""
    from rich.rule import Rule
    from rich.text import Text

    if layout is None:
        layout = "wide" if console.width >= WIDE_COLUMNS else "narrow"
    p = plan.project
    console.print(heading(plan))
    if p.scope:
        console.print(_text(p.scope, "dim"))
    console.print(_verdict(plan))
    console.print(Rule("Select", align="left"))
    console.print(_select(plan))
    console.print(Rule("Fit", align="left"))
    console.print(_fit(plan))
    console.print(_memory_table(plan))
    stages = _stages_table(plan)
    if stages is not None:
        console.print(stages)
    if layout == "wide":
        options = _options_table(plan)
        if options is not None:
            console.print(options)
    else:
        for table in _options_tables(plan):
            console.print(table)
    note = options_note(plan)
    if note:
        console.print(Text(note, style="dim"))
    console.print(Rule("Cost", align="left"))
    console.print(_cost(plan))
    console.print(Rule("Serve", align="left"))
    console.print(_serve(plan))
    if plan.reasons:
        console.print(Rule("Why", align="left"))
        console.print(_reasons(plan))
    if plan.diagnostics:
        console.print(Rule("Diagnostics", align="left"))
        _diagnostics(plan, console)


def make_console(file: IO[str] | None = None, *, width: int | None = None, color: bool | None = None) -> Console:
    """A rich Console for the commands' output: no markup guessing, no emoji, and a closed
    pipe (`genai plan ... | head`) ends the command quietly with `PIPE_CLOSED`."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            import os
            import sys

            from genaisdk.core.safe import PIPE_CLOSED

            self.quiet = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(PIPE_CLOSED)

    return _Console(file=file, width=width, force_terminal=color, no_color=color is False, highlight=False, emoji=False, soft_wrap=False)


def to_text(plan: Plan, *, width: int = 120, color: bool = False, layout: str | None = None) -> str:
    """The terminal view as a string (for tests and for embedding)."""
    import io

    buffer = io.StringIO()
    render_text(plan, make_console(buffer, width=width, color=color), layout=layout)
    return buffer.getvalue()
