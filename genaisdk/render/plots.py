"""The report's plots as inline SVG, drawn with matplotlib from `genaisdk.render.figures`.

Output is deterministic, so a report can be compared byte for byte: every figure is drawn
inside one fixed style (`STYLE`: the DejaVu Sans font matplotlib ships, so text is measured
the same everywhere; text kept as SVG text; a fixed `svg.hashsalt`, so generated ids are the
same on every run), saved without a date (`metadata={'Date': None}`), stripped of the XML
prologue and metadata block, and its ids prefixed with the figure's name, so several figures
can sit inside one HTML page. Only the object-oriented API is used (no pyplot, no global state):
figures never touch the caller's matplotlib settings.

Every function returns the `<svg>` element as text; units are on every axis.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genaisdk.render.figures import MEMORY_PARTS
from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_sci, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.render.figures import IsoFlopPicture, MemoryBar, ScalingPicture, ServePicture
    from genaisdk.render.inputs import Run

STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#d8dde3",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#5b6670",
    "axes.labelcolor": "#1f2933",
    "axes.labelsize": 10,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "xtick.color": "#3e4c59",
    "ytick.color": "#3e4c59",
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "path.simplify": False,
    "text.parse_math": False,  # "$250k" is money, not mathtext
}
"""One look for every plot; applied with `matplotlib.rc_context`, never globally."""

PART_COLORS = {
    "weights": "#3b6ea5",
    "gradients": "#f28e2b",
    "optimizer": "#59a14f",
    "activations": "#e15759",
    "step_buffers": "#edc948",
    "runtime": "#9c755f",
    "fragmentation": "#bab0ac",
}
SERIES_COLORS = ("#3b6ea5", "#59a14f", "#af7aa1", "#f28e2b", "#76b7b2")
BUDGET_COLOR = "#c0392b"
CHOSEN_COLOR = "#f4b400"
INK = "#1f2933"


def _figure(width: float, height: float, **margins: float):
    """A figure with fixed margins (fractions of its size). A layout engine would place
    things the same way each time too, but costs more than the drawing itself."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(**{"left": 0.07, "right": 0.98, "bottom": 0.16, "top": 0.9, **margins})
    return fig


_PROLOGUE = re.compile(r"\A.*?(?=<svg)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_SIZE = re.compile(r'(<svg\b[^>]*?)\s+width="[^"]*"\s+height="[^"]*"')


def _svg(fig: Any, name: str, label: str) -> str:
    """The figure as an inline `<svg>` element: no prologue, no metadata, scalable."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = _METADATA.sub("", _PROLOGUE.sub("", buffer.getvalue(), count=1), count=1)
    text = _SIZE.sub(r"\1", text, count=1)
    # Element ids (figure_1, axes_1, clip paths) repeat from figure to figure: give each its
    # figure's prefix so that several plots share one page.
    text = text.replace(' id="', f' id="{name}-').replace("url(#", f"url(#{name}-").replace('href="#', f'href="#{name}-')
    safe = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg class="plot" role="img" aria-label="{safe}" data-figure="{name}" ', 1).strip() + "\n"


def _draw(name: str, label: str, draw) -> str:
    """Run `draw()` (which returns a Figure) inside the fixed style and return its SVG."""
    import matplotlib

    with matplotlib.rc_context({**STYLE, "svg.hashsalt": f"genaisdk-{name}"}):
        return _svg(draw(), name, label)


# ----------------------------------------------------------------------------- formatters


def _gb(value: float) -> float:
    return value / 1e9


def _count_ticks(ax: Any, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda v, _: fmt_count(v) if v > 0 else "0")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(formatter)


def _power_two_ticks(ax: Any, values: Sequence[float], *, binary: bool = False) -> None:
    """A log-2 axis labelled at `values`: plain integers (devices), or with `binary` in
    multiples of 1024 written `k` (context lengths: 4k = 4096)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    values = sorted(set(float(v) for v in values))
    if len(values) > 9:  # every other power of two keeps the labels apart
        values = values[::2] if values[-1] in values[::2] else values[1::2]

    def label(v: float, _: Any) -> str:
        if binary and v >= 1024 and v % 1024 == 0:
            return f"{int(v) // 1024}k"
        return f"{int(round(v))}"

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(label))


TIME_UNITS = ((86400.0, "days"), (3600.0, "hours"), (60.0, "minutes"), (1.0, "seconds"))


def time_unit(seconds: float) -> tuple[float, str]:
    """The largest unit in which `seconds` is at least 1 (days, hours, minutes, seconds)."""
    for scale, name in TIME_UNITS:
        if seconds >= scale:
            return scale, name
    return 1.0, "seconds"


# ----------------------------------------------------------------------------- memory


def memory_svg(bars: Sequence[MemoryBar], *, capacity: float, hardware: str, devices: int) -> str:
    """Stacked bars, one per strategy x precision, grouped by precision; the device's memory
    as a dashed line; the chosen configuration outlined and labelled; bars that do not fit
    hatched, and bars beyond the top clipped with their total written at the edge."""

    def draw():
        fig = _figure(10.5, 4.6, left=0.065, right=0.78, bottom=0.2, top=0.96)
        ax = fig.add_subplot()
        groups: dict[str, list[MemoryBar]] = {}
        for bar in bars:
            groups.setdefault(bar.precision, []).append(bar)
        xs, labels, order = [], [], []
        x = 0.0
        centers = []
        for precision, members in groups.items():
            start = x
            for bar in members:
                xs.append(x)
                labels.append(bar.strategy)
                order.append(bar)
                x += 1.0
            centers.append(((start + x - 1.0) / 2.0, precision, start - 0.5, x - 0.5))
            x += 0.8
        xs_arr = np.asarray(xs)
        totals = np.asarray([b.total for b in order])
        cap = _gb(capacity)
        highest = _gb(float(totals.max()))
        # Zoom in when every bar is far below the device's memory (the parts stay readable),
        # and stop at three times the memory when some are far above it (bars are clipped).
        zoomed = highest < cap * 0.3
        top = highest * 1.25 if zoomed else max(cap * 1.3, min(highest * 1.12, cap * 3.0))
        bottom = np.zeros(len(order))
        for key, label in MEMORY_PARTS:
            heights = np.asarray([_gb(b.parts.get(key, 0.0)) for b in order])
            if not heights.any():
                continue
            shown = np.clip(bottom + heights, 0, top) - np.clip(bottom, 0, top)  # stacks stop at the top
            ax.bar(xs_arr, shown, 0.72, bottom=np.minimum(bottom, top), color=PART_COLORS[key], label=label, linewidth=0)
            bottom = bottom + heights
        for x_, bar in zip(xs, order):
            total = _gb(bar.total)
            if not bar.fits:
                ax.bar([x_], [min(total, top)], 0.72, color="none", edgecolor="#7a1f1f", hatch="///", linewidth=0.6)
            if total > top:  # clipped: the total runs down the bar
                ax.text(x_, top * 0.97, f"{fmt_bytes(bar.total)} ▲", ha="center", va="top", rotation=90, fontsize=8,
                        color="white", fontweight="bold")
            else:
                ax.text(x_, total + top * 0.012, fmt_bytes(bar.total), ha="center", va="bottom", fontsize=7.5,
                        color=INK if bar.fits else "#9b1c1c", clip_on=False,
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})
            if bar.chosen:
                ax.bar([x_], [min(total, top)], 0.72, color="none", edgecolor=INK, linewidth=2.0)
                ax.annotate("chosen", xy=(x_, min(total, top) + top * 0.07), xytext=(x_, min(total, top) + top * 0.16),
                            ha="center", fontsize=8.5, fontweight="bold", color=INK,
                            arrowprops={"arrowstyle": "-|>", "color": INK, "lw": 1.0}, annotation_clip=False)
        device = f"device memory {fmt_bytes(capacity)}\n({hardware})"
        if zoomed:
            from matplotlib.lines import Line2D

            capacity_handle = Line2D([], [], color=INK, linestyle="--", linewidth=1.3)
            device += ", far above"
        else:
            capacity_handle = ax.axhline(cap, color=INK, linestyle="--", linewidth=1.3)
        for center, precision, left, right in centers:
            ax.text(center, top * 1.1, precision, ha="center", va="center", fontsize=9.5, fontweight="bold", color="#3e4c59")
            if left > -0.5:
                ax.axvline(left - 0.4, color="#c9d1d9", linewidth=0.8)
        ax.set_xticks(xs, labels, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.7, xs[-1] + 0.7)
        ax.set_ylim(0, top * 1.2)
        ax.set_ylabel("memory per device (GB)")
        ax.grid(axis="x", visible=False)
        handles, names = ax.get_legend_handles_labels()
        from matplotlib.patches import Patch

        handles = [capacity_handle, *handles, Patch(facecolor="white", edgecolor="#7a1f1f", hatch="///")]
        names = [device, *names, "does not fit"]
        fig.legend(handles, names, loc="upper left", bbox_to_anchor=(0.79, 0.96),
                   title=f"at the peak, {devices} device{'s' if devices != 1 else ''}", title_fontsize=8.5)
        return fig

    return _draw("memory", "Memory per device by strategy and precision", draw)


# ----------------------------------------------------------------------------- IsoFLOP


def isoflop_svg(picture: IsoFlopPicture) -> str:
    """Loss against parameters at fixed compute (log N), one curve per budget; the fit's minima
    and the 20-tokens-per-parameter points; the planned model as a star; the data's
    compute-optimal size as a vertical line."""

    def draw():
        from matplotlib import colormaps

        fig = _figure(10.5, 4.8, left=0.07, right=0.655, bottom=0.12, top=0.97)
        ax = fig.add_subplot()
        context = [c for c in picture.curves if c.role == "context"]
        cmap = colormaps["Blues"]
        shades = {id(c): cmap(0.35 + 0.5 * i / max(1, len(context) - 1)) for i, c in enumerate(context)}
        lows = [float(np.min(c.loss)) for c in picture.curves]
        span = max(lows) - min(lows) + 0.15
        for c in picture.curves:
            if c.role == "run":
                label = ("this run: " if picture.basis == "run" else "base model's pretraining: ") + f"{fmt_sci(c.flops)} FLOPs"
                ax.plot(c.params, c.loss, color=INK, linewidth=2.4, label=label, zorder=3)
            elif c.role == "budget":
                ax.plot(c.params, c.loss, color=BUDGET_COLOR, linewidth=2.0, linestyle="--",
                        label=f"what the budget buys: {fmt_sci(c.flops)} FLOPs", zorder=3)
            else:
                ax.plot(c.params, c.loss, color=shades[id(c)], linewidth=1.3, label=f"{fmt_sci(c.flops)} FLOPs", zorder=2)
        fit = sorted(c.fit_optimum for c in picture.curves)
        rule = sorted(c.rule_optimum for c in picture.curves)
        ax.plot([p[0] for p in fit], [p[1] for p in fit], linestyle=":", color="#52606d", marker="o", markersize=4.5,
                markerfacecolor="white", label="minimum of the fit", zorder=4)
        ax.plot([p[0] for p in rule], [p[1] for p in rule], linestyle="--", color="#8a6d3b", marker="D", markersize=4,
                linewidth=1.0, label="20 tokens per parameter (the planner's rule)", zorder=4)
        n, loss = picture.chosen
        ax.scatter([n], [loss], marker="*", s=300, color=CHOSEN_COLOR, edgecolor=INK, linewidth=1.0, zorder=6,
                   label=f"planned: {fmt_count(n)} params on {fmt_count(picture.tokens)} tokens, L = {loss:.3f}")
        if picture.data_params:
            ax.axvline(picture.data_params, color="#3b6ea5", linestyle="-.", linewidth=1.1,
                       label=f"the data's optimal size: {fmt_count(picture.tokens)} tokens / 20 = {fmt_count(picture.data_params)}")
        if picture.budget_params:
            budget_curve = next(c for c in picture.curves if c.role == "budget") if any(
                c.role == "budget" for c in picture.curves) else None
            if budget_curve is not None:
                bn, bl = budget_curve.rule_optimum
                ax.annotate(f"budget's optimum\n{fmt_count(bn)} params", xy=(bn, bl), xytext=(bn * 3.5, bl - 0.12 * span),
                            fontsize=8, color=BUDGET_COLOR, ha="left",
                            arrowprops={"arrowstyle": "-|>", "color": BUDGET_COLOR, "lw": 0.9})
        ax.set_xscale("log")
        _count_ticks(ax)
        ax.set_ylim(min(lows) - 0.1 * span, max(lows) + 0.55 * span)
        all_n = np.concatenate([c.params for c in picture.curves])
        ax.set_xlim(float(all_n.min()), float(all_n.max()))
        ax.set_xlabel("parameters N (log scale)")
        ax.set_ylabel("predicted loss (nats/token)")
        fig.legend(loc="upper left", bbox_to_anchor=(0.665, 0.97), title="compute C = 6·N·D", title_fontsize=8.5)
        return fig

    return _draw("isoflop", "IsoFLOP curves of the Chinchilla fit", draw)


# ----------------------------------------------------------------------------- devices


def scaling_svg(picture: ScalingPicture, *, hardware: str) -> str:
    """Three panels: time and cost against the number of devices (log 2), and time against
    cost with the Pareto front; budgets as dashed lines; the plan as a star; configurations
    that do not fit as grey crosses."""

    def draw():
        scale, unit = time_unit(picture.chosen.seconds)
        fig = _figure(11.5, 4.0, left=0.065, right=0.99, bottom=0.14, top=0.91, wspace=0.32)
        axes = fig.subplots(1, 3 if picture.has_cost else 2)
        counts = sorted({p.devices for s in picture.series for p in s.points if p.devices & (p.devices - 1) == 0})
        ax_t, ax_c = axes[0], axes[1]
        ax_t.set_title("wall-clock time")
        ax_c.set_title("cost" if picture.has_cost else "cost: no price known")
        ax_p = axes[2] if picture.has_cost else None
        misfit_labelled = False
        for k, series in enumerate(picture.series):
            color = SERIES_COLORS[k % len(SERIES_COLORS)]
            good = [p for p in series.points if p.fits]
            bad = [p for p in series.points if not p.fits]
            ax_t.plot([p.devices for p in good], [p.seconds / scale for p in good], marker="o", markersize=4.5,
                      color=color, label=series.layout, zorder=3)
            if picture.has_cost:
                ax_c.plot([p.devices for p in good], [p.usd for p in good], marker="o", markersize=4.5, color=color, zorder=3)
                ax_p.scatter([p.seconds / scale for p in good], [p.usd for p in good], s=22, color=color, zorder=3)
            if bad:
                label = None if misfit_labelled else "does not fit"
                misfit_labelled = True
                ax_t.scatter([p.devices for p in bad], [p.seconds / scale for p in bad], marker="x", color="#9aa5b1",
                             s=30, label=label, zorder=3)
                if picture.has_cost:
                    ax_c.scatter([p.devices for p in bad], [p.usd for p in bad], marker="x", color="#9aa5b1", s=30, zorder=3)
        chosen = picture.chosen
        star = {"marker": "*", "s": 260, "color": CHOSEN_COLOR, "edgecolor": INK, "linewidth": 1.0, "zorder": 6}
        ax_t.scatter([chosen.devices], [chosen.seconds / scale], label=f"planned: {chosen.devices} devices", **star)
        if picture.budget_seconds:
            ax_t.axhline(picture.budget_seconds / scale, color=BUDGET_COLOR, linestyle="--", linewidth=1.2,
                         label=f"time budget {picture.budget_seconds / scale:,.3g} {unit}")
        front = sorted((p for _, p in picture.pareto), key=lambda p: p.seconds)
        if picture.has_cost:
            ax_c.scatter([chosen.devices], [chosen.usd], **star)
            if picture.budget_usd:
                ax_c.axhline(picture.budget_usd, color=BUDGET_COLOR, linestyle="--", linewidth=1.2,
                             label=f"cost budget {fmt_usd(picture.budget_usd)}")
            ax_p.set_title("time against cost")
            ax_p.plot([p.seconds / scale for p in front], [p.usd for p in front], color="#e8710a", linewidth=2.2,
                      marker="o", markersize=9, markerfacecolor="none", markeredgewidth=1.6, zorder=4, label="Pareto front")
            ax_p.scatter([chosen.seconds / scale], [chosen.usd], **star)
            if picture.budget_seconds:
                ax_p.axvline(picture.budget_seconds / scale, color=BUDGET_COLOR, linestyle="--", linewidth=1.2)
            if picture.budget_usd:
                ax_p.axhline(picture.budget_usd, color=BUDGET_COLOR, linestyle="--", linewidth=1.2)
            ax_p.set_xscale("log")
            _log_labels(ax_p, "x")
            ax_p.set_xlabel(f"wall-clock time ({unit}, log scale)")
            ax_p.set_ylabel("cost (USD, log scale)")
            costs = [p.usd for s in picture.series for p in s.points if p.usd] + [picture.budget_usd or 0.0]
            low, high = min(c for c in costs if c > 0), max(costs)
            for ax in (ax_c, ax_p):
                ax.set_yscale("log")
                ax.set_ylim(low / 2.5, high * 2.5)
                _log_labels(ax, "y", fmt_usd)
            ax_p.legend(loc="best")
            ax_c.set_ylabel("cost (USD, log scale)")
            if picture.budget_usd:
                ax_c.legend(loc="best")
        else:
            ax_c.axis("off")
            ax_c.text(0.5, 0.5, f"No price per device-hour is known\nfor {hardware}: write\nbudget {{ price_per_hour = $2 }}\nto see cost",
                      ha="center", va="center", fontsize=10, color="#52606d", transform=ax_c.transAxes)
        ax_t.set_yscale("log")
        _log_labels(ax_t, "y")
        ax_t.set_ylabel(f"wall-clock time ({unit}, log scale)")
        for ax in (ax_t, ax_c) if picture.has_cost else (ax_t,):
            _power_two_ticks(ax, counts)
            ax.set_xlabel("devices (log scale)")
        ax_t.legend(loc="best")
        return fig

    return _draw("scaling", "Time and cost against the number of devices", draw)


def _plain(v: float) -> str:
    """1,000 / 20 / 1.5 / 0.05: no exponents on an axis."""
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if v >= 0.01 else f"{v:.1e}"


def _log_labels(ax: Any, axis: str, text=_plain) -> None:
    """Plain numbers on a log axis (matplotlib writes powers of ten in mathtext, which the
    report keeps off), with the minor ticks at 2 and 5 of each decade labelled too."""
    from matplotlib.ticker import FuncFormatter

    def major(v: float, _: Any) -> str:
        return text(v) if v > 0 else ""

    def minor(v: float, _: Any) -> str:
        if v <= 0:
            return ""
        return text(v) if round(v / 10 ** math.floor(math.log10(v)), 6) in (2.0, 5.0) else ""

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(major))
    target.set_minor_formatter(FuncFormatter(minor))


# ----------------------------------------------------------------------------- serving


def serve_svg(picture: ServePicture) -> str:
    """One serving replica's memory stacked (weights, KV cache, workspace and runtime) against
    context at the serving batch, and against batch at the serving context."""

    def draw():
        fig = _figure(10.5, 3.9, left=0.07, right=0.75, bottom=0.16, top=0.9, wspace=0.08)
        axes = fig.subplots(1, 2, sharey=True)
        cap = _gb(picture.capacity)
        tops = []
        for ax, curve in zip(axes, picture.curves):
            ax.stackplot(
                curve.x,
                _gb(curve.weights),
                _gb(curve.kv_cache),
                _gb(curve.other),
                colors=(PART_COLORS["weights"], "#af7aa1", "#c9c2bc"),
                labels=(f"weights ({picture.precision})", "KV cache", "workspace and runtime"),
                alpha=0.9,
            )
            x0 = picture.context if curve.axis == "context" else picture.batch
            ax.scatter([x0], [_gb(picture.point[3])], marker="*", s=240, color=CHOSEN_COLOR, edgecolor=INK, zorder=5,
                       label=f"served: context {picture.context}, batch {picture.batch}")
            ax.axhline(cap, color=INK, linestyle="--", linewidth=1.2, label=f"device memory {fmt_bytes(picture.capacity)}")
            needed = math.ceil(picture.point[3] / picture.capacity) if picture.capacity else 1
            if needed > 1:
                ax.axhline(cap * needed, color=INK, linestyle=":", linewidth=1.2,
                           label=f"{needed} devices: {fmt_bytes(picture.capacity * needed)}")
            _power_two_ticks(ax, curve.x, binary=curve.axis == "context")
            if curve.axis == "context":
                ax.set_title(f"against context (batch {picture.batch})")
                ax.set_xlabel("context (tokens, log scale)")
            else:
                ax.set_title(f"against batch (context {picture.context})")
                ax.set_xlabel("sequences served at once (log scale)")
            tops.append(float(_gb(curve.total).max()))
        axes[0].set_ylabel("memory per replica (GB)")
        axes[0].set_ylim(0, max(max(tops), cap) * 1.1)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.76, 0.9))
        return fig

    return _draw("serve", "Serving memory against context and batch", draw)


# ----------------------------------------------------------------------------- runs


def run_svg(run: Run, *, planned_bytes: float | None, planned_label: str) -> str:
    """Three panels: training and held-out loss against steps; tokens/s against steps; the
    plan's memory per device next to the devices' measured peak."""

    def draw():
        fig = _figure(11.5, 3.7, left=0.06, right=0.98, bottom=0.16, top=0.9, wspace=0.42)
        ax_l, ax_s, ax_m = fig.subplots(1, 3, width_ratios=(1.2, 1.0, 0.9))
        ax_l.set_title("loss")
        steps = run.steps
        ax_l.plot(steps, [np.nan if v is None else v for v in run.losses], color="#3b6ea5", linewidth=1.4, label="training")
        if run.evals:
            ax_l.plot(run.eval_steps, [np.nan if v is None else v for v in run.eval_losses], color="#e15759",
                      marker="o", markersize=4.5, linewidth=1.4, label="held-out")
        ax_l.set_xlabel("optimizer step")
        ax_l.set_ylabel("loss (nats/token)")
        ax_l.legend(loc="upper right")

        ax_s.set_title("throughput")
        rates = run.tokens_per_s_series
        start = 1 if len(rates) > 2 else 0  # the first step includes compilation
        ax_s.plot(steps[start:], [np.nan if v is None else v for v in rates[start:]], color="#59a14f", linewidth=1.3)
        if run.tokens_per_s:
            ax_s.axhline(run.tokens_per_s, color=INK, linestyle=":", linewidth=1.0,
                         label=f"run: {fmt_count(run.tokens_per_s)} tokens/s")
            ax_s.legend(loc="lower right")
        ax_s.set_xlabel("optimizer step" + (" (from step 2: step 1 compiles)" if start else ""))
        ax_s.set_ylabel("tokens per second")
        ax_s.set_ylim(bottom=0)
        _count_ticks(ax_s, "y")

        ax_m.set_title("memory per device")
        names = [planned_label, "measured peak"]
        values = [planned_bytes, run.peak_memory_bytes]
        colors = ("#3b6ea5", "#f28e2b")
        known = [v for v in values if v]
        top = max(known) if known else 1.0
        for i, (name, value) in enumerate(zip(names, values)):
            if value:
                ax_m.barh([i], [_gb(value)], color=colors[i], height=0.5)
                ax_m.text(_gb(value), i, f" {fmt_bytes(value)}", va="center", fontsize=8.5, color=INK)
            else:
                reason = "no plan" if i == 0 else f"not reported by {run.platform or 'these'} devices"
                ax_m.text(0.05 * _gb(top), i, reason, va="center", fontsize=8.5, color="#52606d", style="italic")
        ax_m.set_yticks([0, 1], names)
        ax_m.set_ylim(1.7, -0.7)
        ax_m.set_xlim(0, _gb(top) * 1.45)
        ax_m.set_xlabel("GB per device")
        ax_m.grid(axis="y", visible=False)
        return fig

    return _draw("run", "Training run: loss, throughput and memory", draw)


def svg_ids(svg: str) -> list[str]:
    """The element ids an SVG defines (to check that figures on one page never share one)."""
    return re.findall(r'\sid="([^"]+)"', svg)
