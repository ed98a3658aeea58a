"""A Plan as Markdown (GitHub tables): for design documents, pull requests and wikis."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from genaisdk.core.numbers import fmt_amount, fmt_bytes, fmt_count, fmt_fraction, fmt_ratio, fmt_sci, fmt_seconds, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.plans import Plan


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]], align: str | None = None) -> list[str]:
    align = align or "l" * len(header)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _why(plan: Plan, field: str) -> str:
    r = plan.reason(field)
    return r.reason if r else ""


def to_markdown(plan: Plan) -> str:
    m, d, s, c, t, mem = plan.model, plan.data, plan.scaling, plan.compute, plan.train, plan.memory
    lines = [f"# Plan: {plan.project.name}", ""]
    if plan.project.scope:
        lines += [f"_{plan.project.scope}_", ""]
    lines += [f"Spec: `{plan.spec_file}`", "", "## Select", ""]
    lines += _table(
        ["", "value", "why"],
        [
            ["task", plan.project.task or "-", ""],
            ["architecture", m.family, _why(plan, "model.family")],
            ["objective", m.objective, _why(plan, "model.objective")],
            ["size", fmt_count(m.params, "params") + (f" ({m.preset})" if m.preset else ""), _why(plan, "model.size")],
            [
                "shape",
                f"{m.layers} layers, d_model {m.d_model}, {m.heads} heads ({m.kv_heads} kv), d_ff {m.d_ff}, vocab {m.vocab}",
                _why(plan, "model.dims"),
            ],
            ["context", f"{m.context} tokens", _why(plan, "model.context")],
            ["data", fmt_count(d.tokens, "tokens"), _why(plan, "data.tokens")],
        ]
        + (
            [
                ["compute-optimal", f"{fmt_count(s.optimal_params, 'params')} on {fmt_count(s.optimal_tokens, 'tokens')}", "Chinchilla"],
                ["tokens per parameter", fmt_amount(s.tokens_per_param), "about 20 is compute-optimal"],
            ]
            if t.adaptation == "pretrain" and c.flops
            else []
        )
        + (
            [
                [
                    "predicted loss",
                    f"{s.predicted_loss:.3g}",
                    "uniform over the vocabulary (the fit is far outside its range)"
                    if (s.fit_loss is not None and s.fit_loss > s.predicted_loss)
                    else "Chinchilla approach 3" + ("" if s.loss_in_fit_range is not False else ", extrapolated"),
                ]
            ]
            if math.isfinite(s.predicted_loss)
            else []
        ),
    )
    lines += ["", "## Fit", ""]
    lines += _table(
        ["", "value", "why"],
        [
            ["hardware", f"{t.devices} x {t.hardware}", _why(plan, "budget.devices")],
            ["precision", t.precision, _why(plan, "train.precision")],
            ["strategy", t.strategy, _why(plan, "train.sharding")],
            ["layout", t.layout, _why(plan, "train.tensor") or _why(plan, "train.pipeline")],
            ["micro-batch", t.micro_batch, _why(plan, "train.micro_batch")],
            ["recompute", t.recompute, _why(plan, "train.recompute")],
        ],
    )
    lines += [""]
    b = mem.per_device
    rows = [[k, fmt_bytes(v)] for k, v in (("weights", b.weights), ("gradients", b.gradients), ("optimizer", b.optimizer), ("activations", b.activations))]
    rows += [[f"overhead: {k}", fmt_bytes(v)] for k, v in b.overheads.items()]
    rows += [["**peak total**", f"**{fmt_bytes(b.total)}** of {fmt_bytes(mem.device_capacity)} ({'fits' if mem.fits else 'does not fit'})"]]
    lines += _table(["per device", "bytes"], rows, "lr")
    if len(mem.stages) > 1:
        lines += ["", "Memory per device by pipeline stage:", ""]
        lines += _table(
            ["stage", "layers", "weights", "grads", "optimizer", "activations", "total", "fits"],
            [
                [
                    f"{st.stage}" + (" (device's figure)" if st.stage == mem.most_loaded_stage else ""),
                    st.layers,
                    fmt_bytes(st.weights),
                    fmt_bytes(st.gradients),
                    fmt_bytes(st.optimizer),
                    fmt_bytes(st.activations),
                    fmt_bytes(st.total),
                    "yes" if st.fits else "no",
                ]
                for st in mem.stages
            ],
            "lrrrrrrc",
        )
    if mem.options:
        lines += ["", "Memory per device by strategy and precision:", ""]
        lines += _table(
            ["strategy", "precision", "recompute", "micro", "weights", "grads", "optimizer", "activations", "total", "fits"],
            [
                [
                    o.strategy + (" (chosen)" if o.chosen else ""),
                    o.precision,
                    o.recompute,
                    o.micro_batch,
                    fmt_bytes(o.per_device.weights),
                    fmt_bytes(o.per_device.gradients),
                    fmt_bytes(o.per_device.optimizer),
                    fmt_bytes(o.per_device.activations),
                    fmt_bytes(o.per_device.total),
                    "yes" if o.fits else "no",
                ]
                for o in mem.options
            ],
            "lllrrrrrrc",
        )
    bud = plan.budget
    lines += ["", "## Cost", ""]
    lines += _table(
        ["", "value", "note"],
        [
            ["training FLOPs (6·N·D)", fmt_sci(c.flops), ""],
            ["model FLOPs", fmt_sci(c.model_flops), "with attention, PaLM appendix B"],
            ["hardware FLOPs", fmt_sci(c.hardware_flops), "with recomputation"],
            ["petaflop/s-days", fmt_amount(c.pf_days), ""],
            [plan.time.mfu_label, fmt_fraction(t.mfu), _why(plan, "train.mfu")],
            *(
                [["step", fmt_seconds(plan.time.step.seconds), ", ".join(f"{k.replace('_', ' ')} {fmt_seconds(v)}" for k, v in plan.time.step.parts.items() if v > 0)]]
                if plan.time.step is not None
                else []
            ),
            ["wall-clock", fmt_seconds(plan.time.seconds), f"budget {fmt_seconds(bud.time_seconds)} ({fmt_ratio(bud.time_ratio)})" if bud.time_seconds else ""],
            ["device-hours", fmt_amount(plan.time.gpu_hours), ""],
            ["cost", fmt_usd(plan.cost.usd), f"budget {fmt_usd(bud.cost_usd)} ({fmt_ratio(bud.cost_ratio)})" if bud.cost_usd else ""],
            ["price", f"{fmt_usd(plan.cost.price_per_hour)}/h" if plan.cost.price_per_hour is not None else "-", plan.cost.price_source or "no price known"],
        ],
    )
    i = plan.inference
    lines += ["", "## Serve", ""]
    lines += _table(
        ["", "bytes"],
        [
            [f"weights ({i.precision}" + (f", incl. {fmt_bytes(i.memory.weight_constants)} quantization constants" if i.memory.weight_constants else "") + ")",
             fmt_bytes(i.memory.weights)],
            [f"KV cache ({i.kv_precision}, context {i.context}, batch {i.batch})", fmt_bytes(i.memory.kv_cache)],
            [f"workspace (a step of {i.step_tokens} tokens)", fmt_bytes(i.memory.workspace)],
            ["runtime", fmt_bytes(i.memory.runtime)],
            ["total per replica", fmt_bytes(i.memory.total) + ("" if i.fits else f" ({i.devices_per_replica} devices)")],
        ],
        "lr",
    )
    if plan.reasons:
        lines += ["", "## Why", ""]
        lines += _table(["field", "value", "reason"], [[r.field, r.value, r.reason] for r in plan.reasons])
    if plan.diagnostics:
        lines += ["", "## Diagnostics", ""]
        for diag in plan.diagnostics:
            where = f"line {diag.span.line}: " if diag.span else ""
            hint = f" ({diag.hint})" if diag.hint else ""
            lines.append(f"- **{diag.severity}** `{diag.code}` {where}{diag.message}{hint}")
    return "\n".join(lines) + "\n"
