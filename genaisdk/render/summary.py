"""A plan in rows of words: the verdict, the key figures, and the Select / Fit / Cost / Serve
sections as (label, value, why) rows, for the HTML report and the model card.

Everything comes from the Plan's public sections; numbers are worded by
`genaisdk.core.numbers` the way `genai plan` prints them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_fraction, fmt_ratio, fmt_sci, fmt_seconds, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.plans import Plan


@attrs.frozen(kw_only=True)
class Row:
    label: str
    value: str
    why: str = ""
    status: str = ""
    """'ok', 'over' or '' (no judgement)."""

    @property
    def why_short(self) -> str:
        """The reason's first clause (`first_clause`)."""
        return first_clause(self.why)


@attrs.frozen(kw_only=True)
class Section:
    title: str
    rows: tuple[Row, ...]


@attrs.frozen(kw_only=True)
class Verdict:
    level: str
    """'ok' (fits, within budget, no warnings), 'warn' (fits, but over budget or with
    warnings) or 'error' (does not fit, or the plan has errors)."""
    headline: str
    details: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Figure:
    """One key figure: 'memory per device' = '72 GB' ('of 85.9 GB')."""

    label: str
    value: str
    note: str = ""
    status: str = ""



def serve_weights_why(plan: Plan) -> str:
    """The Serve weights line's explanation: parameters at the serving precision, and a
    quantized format's scales and block constants, which the bytes include."""
    i = plan.inference
    text = f"{fmt_count(plan.model.params, 'params')} at {i.precision}"
    if i.memory.weight_constants:
        text += f", incl. {fmt_bytes(i.memory.weight_constants)} quantization constants"
    return text

def first_clause(text: str) -> str:
    """`text` up to its first '; ' outside parentheses (a clause cut inside a parenthesis
    would leave it open)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0 and text[i + 1 : i + 2] == " ":
            return text[:i]
    return text


def why(plan: Plan, field: str) -> str:
    reason = plan.reason(field)
    return reason.reason if reason else ""


def _ratio_status(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return "over" if ratio > 1 else "ok"


def _hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:,.0f}" if hours >= 10 else f"{hours:.3g}"


def verdict(plan: Plan) -> Verdict:
    mem, b, t = plan.memory, plan.budget, plan.train
    details = []
    where = f"{t.devices} x {t.hardware}"
    if plan.errors:
        first = plan.errors[0]
        return Verdict(level="error", headline=f"The plan has {len(plan.errors)} error(s): {first.message}",
                       details=tuple(d.message for d in plan.errors[1:]))
    if not mem.fits:
        headline = f"Does not fit: {fmt_bytes(mem.per_device.total)} per device of {fmt_bytes(mem.device_capacity)} on {where}"
        return Verdict(level="error", headline=headline, details=())
    over = []
    if b.time_ratio is not None and b.time_ratio > 1:
        over.append(f"time {fmt_seconds(plan.time.seconds)} of {fmt_seconds(b.time_seconds)} ({fmt_ratio(b.time_ratio)})")
    if b.cost_ratio is not None and b.cost_ratio > 1:
        over.append(f"cost {fmt_usd(plan.cost.usd)} of {fmt_usd(b.cost_usd)} ({fmt_ratio(b.cost_ratio)})")
    if b.time_ratio is not None and b.time_ratio <= 1:
        details.append(f"{fmt_seconds(plan.time.seconds)} of the {fmt_seconds(b.time_seconds)} budget ({fmt_fraction(b.time_ratio)})")
    if b.cost_ratio is not None and b.cost_ratio <= 1:
        details.append(f"{fmt_usd(plan.cost.usd)} of the {fmt_usd(b.cost_usd)} budget ({fmt_fraction(b.cost_ratio)})")
    warnings = [d for d in plan.diagnostics if d.severity == "warning"]
    fit = f"Fits on {where}: {fmt_bytes(mem.per_device.total)} of {fmt_bytes(mem.device_capacity)} per device"
    if over:
        return Verdict(level="warn", headline=f"{fit}, but over budget: " + "; ".join(over), details=tuple(details))
    has_budget = b.time_ratio is not None or b.cost_ratio is not None
    headline = fit + (", within budget" if has_budget else "")
    if warnings:
        details.append(f"{len(warnings)} warning(s): see Diagnostics")
        return Verdict(level="warn", headline=headline, details=tuple(details))
    return Verdict(level="ok", headline=headline, details=tuple(details))


def key_figures(plan: Plan, *, carbon_intensity: float | None = None) -> list[Figure]:
    """The handful of numbers a budget meeting asks for first."""
    from genaisdk.estimate.cost import co2_grams

    m, d, t, mem, b = plan.model, plan.data, plan.train, plan.memory, plan.budget
    figures = [
        Figure(label="model", value=fmt_count(m.params, "params"), note=f"{m.family.replace('_', '-')}, {m.objective}"),
        Figure(
            label="data",
            value=fmt_count(d.tokens, "tokens") if d.tokens else "-",
            note=f"{plan.scaling.tokens_per_param:.1f} tokens per parameter" if d.tokens and plan.train.adaptation == "pretrain" else t.adaptation,
        ),
        Figure(label="hardware", value=f"{t.devices} x {t.hardware}", note=f"{t.strategy}, {t.precision}"),
        Figure(
            label="memory per device",
            value=fmt_bytes(mem.per_device.total),
            note=f"of {fmt_bytes(mem.device_capacity)}",
            status="ok" if mem.fits else "over",
        ),
        Figure(
            label="wall-clock",
            value=fmt_seconds(plan.time.seconds),
            note=f"budget {fmt_seconds(b.time_seconds)}" if b.time_seconds else (
                f"{plan.time.gpu_hours:,.0f} device-hours" if plan.time.gpu_hours is not None else "no throughput known"),
            status=_ratio_status(b.time_ratio),
        ),
        Figure(
            label="cost",
            value=fmt_usd(plan.cost.usd) if plan.cost.usd is not None else "no price",
            note=f"budget {fmt_usd(b.cost_usd)}" if b.cost_usd else (
                f"at {fmt_usd(plan.cost.price_per_hour)}/device-hour" if plan.cost.price_per_hour else "set budget.price_per_hour"),
            status=_ratio_status(b.cost_ratio),
        ),
    ]
    energy = plan.cost.energy_kwh
    if energy is not None:
        note = "devices x rated power x time"
        if carbon_intensity:
            note = f"{fmt_mass(float(co2_grams(energy, carbon_intensity)))} CO2-eq at {carbon_intensity:g} g/kWh"
        figures.append(Figure(label="energy", value=f"{energy:,.0f} kWh" if energy >= 10 else f"{energy:.3g} kWh", note=note))
    if math.isfinite(plan.scaling.predicted_loss):
        figures.append(Figure(label="predicted loss", value=f"{plan.scaling.predicted_loss:.3f}", note="nats/token, Chinchilla fit"))
    return figures


def fmt_mass(grams: float) -> str:
    """CO2 mass in words: 950 g, 12.3 kg, 4.5 t (metric tonnes)."""
    if grams >= 1e6:
        return f"{grams / 1e6:,.3g} t"
    if grams >= 1e3:
        return f"{grams / 1e3:,.3g} kg"
    return f"{grams:,.3g} g"


def sections(plan: Plan) -> list[Section]:
    """Select, Fit, Cost and Serve as rows (label, value, why)."""
    m, d, s, c, t, mem, b = plan.model, plan.data, plan.scaling, plan.compute, plan.train, plan.memory, plan.budget
    select = [
        Row(label="task", value=plan.project.task or "-"),
        Row(label="architecture", value=m.family.replace("_", "-"), why=why(plan, "model.family")),
        Row(label="objective", value=m.objective, why=why(plan, "model.objective")),
        Row(label="size", value=fmt_count(m.params, "params") + (f" ({m.preset})" if m.preset else ""), why=why(plan, "model.size")),
        Row(
            label="shape",
            value=f"{m.layers} layers" + (f" + {m.decoder_layers} decoder" if m.decoder_layers else "")
            + f", d_model {m.d_model}, {m.heads} heads" + (f" ({m.kv_heads} kv)" if m.kv_heads != m.heads else "")
            + f", d_ff {m.d_ff} ({m.ffn}), vocab {m.vocab}",
            why=why(plan, "model.dims"),
        ),
        Row(label="context", value=f"{m.context} tokens", why=why(plan, "model.context")),
    ]
    if m.trainable_params and abs(m.trainable_params - m.params) > 0.5:
        select.append(Row(label="trainable", value=fmt_count(m.trainable_params, "params"), why=t.adaptation))
    data = fmt_count(d.tokens, "tokens") if d.tokens else "-"
    if d.mix:
        data += " (" + ", ".join(f"{k} {fmt_fraction(v)}" for k, v in d.mix.items()) + ")"
    select.append(Row(label="data", value=data, why=why(plan, "data.tokens")))
    if t.adaptation == "pretrain" and c.flops:
        select.append(Row(label="compute-optimal", value=f"{fmt_count(s.optimal_params, 'params')} on {fmt_count(s.optimal_tokens, 'tokens')}",
                          why=f"Chinchilla, for the {fmt_sci(c.flops)} FLOPs of this run"))
        select.append(Row(label="tokens per parameter", value=f"{s.tokens_per_param:.1f}", why="about 20 is compute-optimal (Hoffmann et al. 2022)"))
    if math.isfinite(s.predicted_loss):
        select.append(Row(label="predicted loss", value=f"{s.predicted_loss:.3f} nats/token", why="Chinchilla approach 3, L(N, D)"))

    fit = [
        Row(label="hardware", value=f"{t.devices} x {t.hardware}", why=why(plan, "budget.devices")),
        Row(label="precision", value=t.precision, why=why(plan, "train.precision")),
        Row(label="optimizer", value=t.optimizer),
        Row(label="strategy", value=t.strategy, why=why(plan, "train.sharding")),
        Row(label="micro-batch", value=f"{t.micro_batch} sequences", why=why(plan, "train.micro_batch")),
        Row(label="recompute", value=t.recompute, why=why(plan, "train.recompute")),
    ]
    if t.global_batch_sequences:
        fit.append(Row(label="global batch", value=f"{t.global_batch_sequences} sequences ({fmt_count(t.global_batch_tokens, 'tokens')})",
                       why=f"{t.grad_accumulation} accumulation step(s) of {t.micro_batch} x {t.devices}"))
    fit.append(Row(label="memory per device", value=f"{fmt_bytes(mem.per_device.total)} of {fmt_bytes(mem.device_capacity)}",
                   why=f"peak in the {mem.per_device.peak_phase} phase" if mem.per_device.peak_phase else "",
                   status="ok" if mem.fits else "over"))
    if mem.per_device.host:
        fit.append(Row(label="host memory", value=fmt_bytes(mem.per_device.host), why="offloaded state per device"))

    cost = [
        Row(label="training FLOPs", value=fmt_sci(c.flops), why="6·N·D"),
        Row(label="model FLOPs", value=fmt_sci(c.model_flops), why="(6·N + 12·L·H·Q·T)·D, PaLM appendix B"),
        Row(label="petaflop/s-days", value=f"{c.pf_days:,.1f}" if c.pf_days >= 1 else f"{c.pf_days:.3g}", why="1 PF-day = 8.64e19 FLOPs"),
        Row(label=plan.time.mfu_label, value=fmt_fraction(t.mfu), why=why(plan, "train.mfu")),
        Row(label="wall-clock", value=fmt_seconds(plan.time.seconds),
            why=f"budget {fmt_seconds(b.time_seconds)}: {fmt_ratio(b.time_ratio)}" if b.time_seconds else "",
            status=_ratio_status(b.time_ratio)),
        Row(label="device-hours", value=_hours(plan.time.gpu_hours),
            why="" if plan.time.seconds is not None else f"{t.hardware} quotes no throughput: no time"),
        Row(label="cost", value=fmt_usd(plan.cost.usd),
            why=f"budget {fmt_usd(b.cost_usd)}: {fmt_ratio(b.cost_ratio)}" if b.cost_usd and plan.cost.usd is not None else (
                f"at {fmt_usd(plan.cost.price_per_hour)}/device-hour" if plan.cost.price_per_hour else "no price per device-hour known"),
            status=_ratio_status(b.cost_ratio)),
    ]
    if plan.cost.price_source:
        cost.append(Row(label="price", value=f"{fmt_usd(plan.cost.price_per_hour)}/h", why=plan.cost.price_source))
    if plan.cost.energy_kwh is not None:
        cost.append(Row(label="energy", value=f"{plan.cost.energy_kwh:,.3g} kWh", why="devices x rated power x time"))

    i = plan.inference
    serve = [
        Row(label="precision", value=i.precision, why=why(plan, "serve.precision")),
        Row(label="weights", value=fmt_bytes(i.memory.weights), why=serve_weights_why(plan)),
        Row(label="KV cache", value=fmt_bytes(i.memory.kv_cache), why=f"{i.kv_precision}, context {i.context} x batch {i.batch}"),
        Row(label="workspace", value=fmt_bytes(i.memory.workspace), why=f"one step of {i.step_tokens} tokens + logits (chunked prefill)"),
        Row(label="runtime", value=fmt_bytes(i.memory.runtime), why="CUDA context and library workspaces"),
        Row(label="per replica", value=fmt_bytes(i.memory.total),
            why="fits one device" if i.fits else f"needs {i.devices_per_replica} x {t.hardware} per replica",
            status="ok" if i.fits else "over"),
    ]
    return [
        Section(title="Select", rows=tuple(select)),
        Section(title="Fit", rows=tuple(fit)),
        Section(title="Cost", rows=tuple(cost)),
        Section(title="Serve", rows=tuple(serve)),
    ]
