"""`genai report`: a plan (and optionally a training run and an evaluation) as one
self-contained HTML page with plots, for people who would rather look than read.

The page is rendered from a Jinja2 template shipped with the package
(`genaisdk/render/templates/report.html.j2`) with every plot inline as SVG
(`genaisdk.render.plots`) and its style inline: no script, no font, nothing fetched, so the
file opens offline and prints. The same inputs give the same bytes (no dates; plots drawn
deterministically), so a report can be diffed and tested.

Panels (`PANELS`): the verdict and the key figures; the plan's Select / Fit / Cost / Serve
summary; memory per device by strategy and precision; the compute-optimal picture (IsoFLOP
curves); time and cost against the number of devices; serving memory; with a run, its loss
curves, throughput and memory against the plan; with an evaluation, its table; then the
planner's reasons, the assumptions and the diagnostics.

Needs the `[report]` extra (matplotlib, jinja2): `MissingExtra` says so in one line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from genaisdk.render import figures, summary
from genaisdk.render.inputs import LOWER_IS_BETTER, Evaluation, Run, as_evaluation, as_run
from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_seconds, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.plans import Plan
    from genaisdk.spec.model import Spec

INSTALL_HINT = "pip install 'genaisdk[report]'"


class MissingExtra(Exception):
    """The report's optional dependencies are not installed."""


def require_report_extra() -> None:
    """Raise MissingExtra naming what is missing and how to install it."""
    missing = [name for name in ("matplotlib", "jinja2") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"genai report needs {' and '.join(missing)}: {INSTALL_HINT}")


@attrs.frozen(kw_only=True)
class Panel:
    id: str
    title: str
    always: bool = True
    """False: only with a run (or an evaluation)."""


PANELS: tuple[Panel, ...] = (
    Panel(id="summary", title="Plan summary: Select, Fit, Cost, Serve"),
    Panel(id="memory", title="Memory per device by strategy and precision"),
    Panel(id="isoflop", title="Compute-optimal size: IsoFLOP curves"),
    Panel(id="scaling", title="Time and cost against the number of devices"),
    Panel(id="serve", title="Serving memory: weights and KV cache"),
    Panel(id="run", title="Training run: loss, throughput, memory", always=False),
    Panel(id="evaluation", title="Evaluation", always=False),
    Panel(id="reasons", title="Why: the planner's reasons"),
    Panel(id="assumptions", title="Assumptions"),
    Panel(id="diagnostics", title="Diagnostics"),
)
"""The report's sections in page order; each is an `<section id=...>` with an `<h2>` title."""


def _time(seconds: float | None) -> str:
    return fmt_seconds(seconds) if seconds else "-"


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}g}"


def _memory_context(plan: Plan) -> dict[str, Any]:
    from genaisdk.render import plots

    bars = figures.memory_bars(plan)
    return {
        "svg": plots.memory_svg(bars, capacity=plan.memory.device_capacity, hardware=plan.train.hardware,
                                devices=plan.train.devices),
        "devices": plan.train.devices,
        "recompute": plan.train.recompute,
        "hardware": plan.train.hardware,
        "capacity": fmt_bytes(plan.memory.device_capacity),
        "rows": [
            {
                "strategy": b.strategy,
                "precision": b.precision,
                "micro_batch": b.micro_batch,
                "parts": [fmt_bytes(b.parts[k]) for k, _ in figures.MEMORY_PARTS],
                "total": fmt_bytes(b.total),
                "host": fmt_bytes(b.host) if b.host else "",
                "fits": b.fits,
                "chosen": b.chosen,
                "phase": b.peak_phase,
            }
            for b in bars
        ],
        "columns": [label for _, label in figures.MEMORY_PARTS],
    }


def _isoflop_context(plan: Plan) -> dict[str, Any]:
    from genaisdk.render import plots

    picture = figures.isoflop_picture(plan)
    fit = figures.CHINCHILLA
    law = {
        "formula": "L(N, D) = E + A / N^α + B / D^β",
        "constants": f"E = {fit.E}, A = {fit.A}, B = {fit.B}, α = {fit.alpha}, β = {fit.beta}",
        "source": fit.source,
    }
    if picture is None:
        return {"svg": None, "law": law,
                "missing": "The base model's pretraining tokens are not known, so its place on the curves is not either."}
    return {
        "svg": plots.isoflop_svg(picture),
        "law": law,
        "basis": picture.basis,
        "chosen_params": fmt_count(picture.chosen[0], "params"),
        "chosen_loss": f"{picture.chosen[1]:.3f}",
        "tokens": fmt_count(picture.tokens, "tokens"),
        "data_params": fmt_count(picture.data_params, "params") if picture.data_params else None,
        "budget_params": fmt_count(picture.budget_params, "params") if picture.budget_params else None,
        "run_flops": next(f"{c.flops:.3g}" for c in picture.curves if c.role == "run"),
        "missing": None,
    }


def _scaling_context(spec: Spec, plan: Plan) -> dict[str, Any]:
    from genaisdk.render import plots

    picture = figures.scaling_picture(spec, plan)
    if picture is None:
        return {"svg": None, "missing": "Nothing trains in this plan, so there is no training time or cost to scale."}
    rows = []
    for series in picture.series:
        for p in series.points:
            within_time = picture.budget_seconds is None or p.seconds <= picture.budget_seconds
            within_cost = picture.budget_usd is None or p.usd is None or p.usd <= picture.budget_usd
            rows.append(
                {
                    "layout": series.layout,
                    "devices": p.devices,
                    "strategy": p.strategy,
                    "micro_batch": p.micro_batch,
                    "fits": p.fits,
                    "time": fmt_seconds(p.seconds),
                    "cost": fmt_usd(p.usd) if p.usd is not None else "-",
                    "within": within_time and within_cost,
                    "pareto": p.pareto,
                    "chosen": p.chosen,
                }
            )
    return {
        "svg": plots.scaling_svg(picture, hardware=plan.train.hardware),
        "rows": rows,
        "layouts": [{"name": s.layout, "description": s.description} for s in picture.series],
        "mfu": f"{plan.train.mfu:.0%}",
        "time_model": plan.time.model,
        "has_cost": picture.has_cost,
        "missing": None,
    }


def _serve_context(plan: Plan) -> dict[str, Any]:
    from genaisdk.render import plots

    picture = figures.serve_picture(plan)
    i = plan.inference
    return {
        "svg": plots.serve_svg(picture),
        "precision": i.precision,
        "context": i.context,
        "batch": i.batch,
        "weights": fmt_bytes(i.memory.weights),
        "kv_cache": fmt_bytes(i.memory.kv_cache),
        "total": fmt_bytes(i.memory.total),
        "fits": i.fits,
        "devices_per_replica": i.devices_per_replica,
        "capacity": fmt_bytes(plan.memory.device_capacity),
        "family": plan.model.family,
    }


def _run_context(run: Run, plan: Plan) -> dict[str, Any]:
    from genaisdk.render import plots

    planned = run.planned_memory_bytes
    planned_devices = run.planned_devices
    if planned is None:
        planned, planned_devices = plan.memory.per_device.total, plan.train.devices
    label = "planned" + (f" ({planned_devices} dev.)" if planned_devices else "")
    measured = run.peak_memory_bytes
    rows = [
        ("status", run.status),
        ("steps", f"{run.steps_done:,}" + (f" ({fmt_count(run.tokens_trained, 'tokens')})" if run.tokens_trained else "")),
        ("wall-clock", _time(run.seconds)),
        ("devices", f"{run.devices or '-'} x {run.device_kind or run.platform or '?'}"),
        ("final training loss", _number(run.final_loss)),
        ("held-out loss", _number(run.eval_loss)),
        ("held-out perplexity", _number(run.perplexity)),
        ("throughput", f"{fmt_count(run.tokens_per_s)} tokens/s" if run.tokens_per_s else "-"),
        ("MFU", f"{run.mfu:.1%}" if run.mfu is not None else "not known (no peak FLOP/s for these devices)"),
        ("memory per device", (f"measured peak {fmt_bytes(measured)} vs planned {fmt_bytes(planned)} (x{measured / planned:.2f})"
                               if measured and planned else f"planned {fmt_bytes(planned)}; measured peak not reported by "
                               f"{run.platform or 'these'} devices")),
    ]
    if run.data_description:
        rows.append(("data", run.data_description))
    if run.overrides:
        rows.append(("overrides", ", ".join(run.overrides)))
    mismatch = None
    if run.project and run.project != plan.project.name:
        mismatch = f"This run is of project `{run.project}`, the spec of `{plan.project.name}`: the plan's figures are not this run's."
    return {"svg": plots.run_svg(run, planned_bytes=planned, planned_label=label), "rows": rows, "path": str(run.path),
            "mismatch": mismatch}


def evaluation_tables(evaluation: Evaluation) -> list[dict[str, Any]]:
    """The evaluation as tables: overall, per source, per task (each row: subject, metric,
    value, dataset, split, note)."""
    titles = {"overall": "Held-out set", "source": "Per data source", "task": "Task metrics"}
    tables = []
    for group, rows in evaluation.groups().items():
        tables.append(
            {
                "title": titles.get(group, group),
                "rows": [
                    {
                        "subject": r.subject or "all",
                        "metric": r.label,
                        "better": "lower is better" if r.metric in LOWER_IS_BETTER else "",
                        "value": _number(r.value),
                        "dataset": r.dataset or "",
                        "split": r.split or "",
                        "note": r.note,
                    }
                    for r in rows
                ],
            }
        )
    return tables


def report_context(spec: Spec, plan: Plan, *, run: Run | None = None, evaluation: Evaluation | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain data."""
    from genaisdk import __version__

    intensity = getattr(spec.project.budget, "carbon_intensity", None)
    panels = [p for p in PANELS if p.always or (p.id == "run" and run) or (p.id == "evaluation" and evaluation)]
    context: dict[str, Any] = {
        "version": __version__,
        "project": plan.project,
        "spec_file": plan.spec_file,
        "panels": panels,
        "verdict": summary.verdict(plan),
        "figures": summary.key_figures(plan, carbon_intensity=intensity),
        "sections": summary.sections(plan),
        "memory": _memory_context(plan),
        "isoflop": _isoflop_context(plan),
        "scaling": _scaling_context(spec, plan),
        "serve": _serve_context(plan),
        "run": _run_context(run, plan) if run else None,
        "evaluation": {"path": evaluation.path, "tables": evaluation_tables(evaluation), "info": dict(evaluation.info)}
        if evaluation else None,
        "reasons": [{"field": r.field, "value": _value(r.value), "reason": r.reason} for r in plan.reasons],
        "assumptions": [
            {"name": a.name, "value": fmt_bytes(a.value) if a.name.endswith("_bytes") and isinstance(a.value, (int, float))
             and a.value >= 1e3 else _value(a.value), "source": a.source, "note": a.note}
            for a in plan.assumptions
        ],
        "diagnostics": [
            {"severity": d.severity, "code": d.code, "line": d.span.line if d.span else None, "message": d.message, "hint": d.hint}
            for d in plan.diagnostics
        ],
    }
    return context


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (int, float)) and abs(value) >= 1e5:
        return fmt_count(value)
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("genaisdk.render", "templates"),
        autoescape=jinja2.select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def render_report(
    spec: Spec | str | Path,
    plan: Plan | None = None,
    *,
    run: Run | str | Path | None = None,
    evaluation: Evaluation | str | Path | None = None,
) -> str:
    """The HTML page (a string). `spec` is a Spec or a spec file's path; `plan` defaults to
    `genaisdk.plan(spec)`; `run` a run folder (or its Run), `evaluation` an evaluation file
    (or its Evaluation). Raises MissingExtra without matplotlib or jinja2, InputError for a
    run folder or evaluation file that cannot be read, SpecError for a bad spec."""
    require_report_extra()
    if isinstance(spec, (str, Path)):
        from genaisdk import load

        spec = load(spec)
    run, evaluation = as_run(run), as_evaluation(evaluation)
    if plan is None:
        from genaisdk import plan as make_plan

        plan = make_plan(spec)
    context = report_context(spec, plan, run=run, evaluation=evaluation)
    return _environment().get_template("report.html.j2").render(**context)


def write_report(path: str | Path, spec: Spec, plan: Plan | None = None, **inputs: Any) -> Path:
    """Render and write the report; returns the path written."""
    html = render_report(spec, plan, **inputs)
    target = Path(path)
    target.write_text(html, encoding="utf-8")
    return target
