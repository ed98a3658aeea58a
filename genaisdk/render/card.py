"""`genai card`: a Hugging Face model card (README.md with YAML metadata) from the spec, the
plan, a training run and an evaluation.

The card follows the Hub's model card template (huggingface_hub's `modelcard_template.md`;
"Annotated Model Card Template", huggingface.co/docs/hub/model-card-annotated): Model
Details, Uses, Bias / Risks / Limitations, Training Details, Evaluation, Environmental
Impact, Technical Specifications. The metadata follows the Hub's model card specification
(hub-docs `modelcard.md`): `license`, `language`, `tags`, `datasets`, `base_model`,
`pipeline_tag`, `model-index` (each result: task, dataset, metrics) and `co2_eq_emissions`
(emissions in grams, source, training_type, hardware_used; huggingface.co/docs/hub/model-cards-co2).

Facts come only from the spec, the plan, the run folder and the evaluation file (and from
what the caller passes: license, languages, a base model's Hub id). What needs human
judgement (who developed it, risks, out-of-scope uses, citation) is written as a prompt,
`[To fill: ...]`, never as invented text; a fact that is missing (no grid intensity, so no
emissions) is a named gap. The same inputs give the same bytes (no dates).

No third-party dependency: the YAML is written here (strings double-quoted, which every
YAML reader reads as JSON strings); `huggingface_hub.ModelCard.load` reads the result.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genaisdk.render import summary
from genaisdk.render.inputs import Evaluation, EvalRow, Run, as_evaluation, as_run, metric_label
from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_fraction, fmt_sci, fmt_seconds, fmt_usd

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.plans import Plan
    from genaisdk.spec.model import Spec

PIPELINE_TAGS = {
    "chat": "text-generation",
    "code-generation": "text-generation",
    "essay-writing": "text-generation",
    "text-generation": "text-generation",
    "tool-calling": "text-generation",
    "summarization": "summarization",
    "translation": "translation",
    "generative-qa": "text2text-generation",
    "extractive-qa": "question-answering",
    "named-entity-recognition": "token-classification",
    "token-classification": "token-classification",
    "sentence-classification": "text-classification",
    "sentiment-analysis": "text-classification",
    "retrieval": "feature-extraction",
}
"""Task record -> the Hub's pipeline tag (the tasks listed at huggingface.co/tasks)."""

FAMILY_PIPELINE_TAGS = {"decoder": "text-generation", "encoder_decoder": "text2text-generation", "encoder": "feature-extraction"}
"""For a task a plugin adds: the tag of what its architecture family does."""

SECTIONS = (
    "Model Details",
    "Uses",
    "Bias, Risks, and Limitations",
    "How to Get Started with the Model",
    "Training Details",
    "Evaluation",
    "Environmental Impact",
    "Technical Specifications",
    "Citation",
    "Model Card Contact",
)
"""The card's `##` sections, in the Hub template's order."""

REGIMES = {
    "bf16": "bf16 mixed precision",
    "fp16": "fp16 mixed precision",
    "fp32": "fp32",
    "fp8": "fp8 mixed precision",
    "pure-bf16": "bf16 non-mixed precision",
    "pure-fp16": "fp16 non-mixed precision",
}
"""Precision record -> the template's 'training regime' words; others print as named."""


def fill(prompt: str) -> str:
    """A prompt for the model's owner: what to write, never the answer."""
    return f"[To fill: {prompt}]"


def pipeline_tag(plan: Plan) -> str | None:
    task = plan.project.task
    if task in PIPELINE_TAGS:
        return PIPELINE_TAGS[task]
    return FAMILY_PIPELINE_TAGS.get(plan.model.family)


# ----------------------------------------------------------------------------- YAML


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("YAML metadata holds finite numbers only")
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def to_yaml(data: Any, indent: int = 0) -> str:
    """Block-style YAML for mappings, lists and scalars; keys in the order given."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            name = key if _PLAIN_KEY.match(str(key)) else json.dumps(str(key))
            if isinstance(value, (Mapping, list, tuple)) and value:
                lines.append(f"{pad}{name}:")
                lines.append(to_yaml(value, indent + (0 if isinstance(value, (list, tuple)) else 2)))
            else:
                empty = "{}" if isinstance(value, Mapping) else "[]" if isinstance(value, (list, tuple)) else _scalar(value)
                lines.append(f"{pad}{name}: {empty}")
    elif isinstance(data, (list, tuple)):
        for item in data:
            if isinstance(item, Mapping) and item:
                nested = to_yaml(item, indent + 2).splitlines()
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            elif isinstance(item, (list, tuple)) and item:
                lines.append(f"{pad}-")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(data))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- facts


def run_energy(run: Run) -> tuple[float | None, str]:
    """(kWh, how) of a run: its device-hours x the rated power of the hardware record its
    devices matched (result.json's `hardware`; `genaisdk.estimate.cost.energy_kwh`), or
    (None, why not)."""
    from genaisdk.estimate.cost import energy_kwh

    if not run.seconds or not run.devices:
        return None, "the run recorded no wall-clock time"
    key = run.hardware
    if not key:
        return None, f"no rated power is known for {run.device_kind or run.platform or 'these'} devices"
    from genaisdk.registry import get_registry

    record = get_registry().get("hardware", key)
    if record is None or not record.power_watts:
        return None, f"the hardware record `{key}` has no rated power"
    kwh = float(energy_kwh(run.seconds, devices=run.devices, power_watts=record.power_watts))
    return kwh, f"{run.devices} x {record.key} at {record.power_watts:g} W for {fmt_seconds(run.seconds)}"


class _Facts:
    """What the card states, each with where it comes from."""

    def __init__(self, spec: Spec, plan: Plan, run: Run | None, evaluation: Evaluation | None):
        self.spec, self.plan, self.run, self.evaluation = spec, plan, run, evaluation
        self.intensity = getattr(spec.project.budget, "carbon_intensity", None)
        self.training_type = "pre-training" if plan.train.adaptation == "pretrain" else "fine-tuning"

    @property
    def sources(self) -> list[str]:
        found = list(self.spec.project.data.source)
        if self.run is not None:
            found += [s for s in self.run.data_sources if s not in found]
        return found

    def hub_datasets(self) -> list[str]:
        """Sources written as Hub dataset ids (`owner/name`): files and globs are local."""
        out = []
        for source in self.sources:
            if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source) and not Path(source).exists() and not re.search(
                r"\.(jsonl?|txt|parquet|csv|gz|zst|arrow)$", source
            ):
                out.append(source)
        return out

    def emissions(self) -> dict[str, Any] | None:
        """{grams, kwh, hours, hardware, source} from the run where its energy is known, else
        from the plan; None without a grid intensity or without energy."""
        from genaisdk.estimate.cost import co2_grams

        if not self.intensity:
            return None
        if self.run is not None:
            kwh, how = run_energy(self.run)
            if kwh is not None:
                return {
                    "grams": float(co2_grams(kwh, self.intensity)),
                    "kwh": kwh,
                    "hours": self.run.seconds * self.run.devices / 3600.0,
                    "hardware": f"{self.run.devices} x {self.run.device_kind}",
                    "source": f"genaisdk: the run's energy ({how}) x {self.intensity:g} g/kWh (the spec's budget.carbon_intensity)",
                }
        kwh = self.plan.cost.energy_kwh
        if kwh is None:
            return None
        return {
            "grams": float(co2_grams(kwh, self.intensity)),
            "kwh": float(kwh),
            "hours": float(self.plan.time.gpu_hours),
            "hardware": f"{self.plan.train.devices} x {self.plan.train.hardware}",
            "source": f"genaisdk plan estimate: devices x rated power x planned time x {self.intensity:g} g/kWh "
            "(the spec's budget.carbon_intensity)",
        }

    def results(self) -> list[EvalRow]:
        """The evaluation's rows, or the run's own held-out loss and perplexity."""
        if self.evaluation is not None:
            return list(self.evaluation.rows)
        if self.run is not None:
            rows = []
            held = self.spec.project.data.held_out
            split = f"held-out {fmt_fraction(held)}" if held else "held-out"
            if self.run.eval_loss is not None:
                rows.append(EvalRow(group="overall", subject="", metric="loss", value=self.run.eval_loss, split=split))
            if self.run.perplexity is not None:
                rows.append(EvalRow(group="overall", subject="", metric="perplexity", value=self.run.perplexity, split=split))
            return rows
        return []


def _metric_entry(row: EvalRow) -> dict[str, Any]:
    return {"type": row.metric, "value": float(row.value), "name": metric_label(row.metric)}


def model_index(name: str, task: str | None, rows: Sequence[EvalRow], *, default_dataset: str) -> list[dict[str, Any]]:
    """`model-index` in the Hub's form: one result per (group, subject, dataset, split), each
    with its metrics."""
    grouped: dict[tuple[str, str, str, str], list[EvalRow]] = {}
    for row in rows:
        key = (row.group, row.subject, row.dataset or default_dataset, row.split or "")
        grouped.setdefault(key, []).append(row)
    results = []
    for (group, subject, dataset, split), members in grouped.items():
        label = dataset if not subject or subject == dataset else f"{dataset}: {subject}"
        entry_dataset: dict[str, Any] = {"name": label, "type": dataset}
        if split:
            entry_dataset["split"] = split
        task_entry: dict[str, Any] = {"type": task or "text-generation"}
        if group == "task" and subject:
            task_entry["name"] = subject
        results.append({"task": task_entry, "dataset": entry_dataset, "metrics": [_metric_entry(r) for r in members]})
    return [{"name": name, "results": results}]


def metadata(facts: _Facts, *, name: str, license: str | None, languages: Sequence[str], base_model: str | None) -> dict[str, Any]:
    plan = facts.plan
    data: dict[str, Any] = {}
    if license:
        data["license"] = license
    if languages:
        data["language"] = list(languages)
    tags = ["genaisdk", "jax", plan.model.family.replace("_", "-"), plan.model.objective]
    if plan.project.task:
        tags.append(plan.project.task)
    if plan.project.domain:
        tags.append(plan.project.domain)
    if plan.train.adaptation not in ("pretrain",):
        tags.append(plan.train.adaptation)
    data["tags"] = list(dict.fromkeys(tags))
    datasets = facts.hub_datasets()
    if datasets:
        data["datasets"] = datasets
    if base_model:
        data["base_model"] = base_model
    tag = pipeline_tag(plan)
    if tag:
        data["pipeline_tag"] = tag
    rows = facts.results()
    if rows:
        data["model-index"] = model_index(name, tag, rows, default_dataset=_default_dataset(facts))
    emissions = facts.emissions()
    if emissions is not None:
        data["co2_eq_emissions"] = {
            "emissions": round(emissions["grams"], 3),
            "source": emissions["source"],
            "training_type": facts.training_type,
            "hardware_used": emissions["hardware"],
            "hours_used": round(emissions["hours"], 3),
        }
    return data


def _default_dataset(facts: _Facts) -> str:
    hub = facts.hub_datasets()
    if hub:
        return hub[0]
    sources = facts.sources
    return sources[0] if sources else "held-out"


# ----------------------------------------------------------------------------- body


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g}"


def model_card(
    spec: Spec | str | Path,
    plan: Plan | None = None,
    *,
    run: Run | str | Path | None = None,
    evaluation: Evaluation | str | Path | None = None,
    license: str | None = None,
    languages: Sequence[str] = (),
    base_model: str | None = None,
    name: str | None = None,
) -> str:
    """The model card as Markdown with YAML front matter. `spec` is a Spec or a spec file's
    path; `plan` defaults to `genaisdk.plan(spec)`; `run` a run folder (or its Run),
    `evaluation` an evaluation file (or its Evaluation); `license` an SPDX-style id the Hub
    knows (`apache-2.0`), `languages` ISO 639-1 codes, `base_model` a Hub model id; `name`
    the model's name in `model-index` (default: the project's). Raises InputError for a run
    folder or evaluation file that cannot be read."""
    if isinstance(spec, (str, Path)):
        from genaisdk import load

        spec = load(spec)
    run, evaluation = as_run(run), as_evaluation(evaluation)
    if plan is None:
        from genaisdk import plan as make_plan

        plan = make_plan(spec)
    facts = _Facts(spec, plan, run, evaluation)
    name = name or plan.project.name
    meta = metadata(facts, name=name, license=license, languages=languages, base_model=base_model)
    m, t, d = plan.model, plan.train, plan.data
    project = spec.project
    lines = ["---", to_yaml(meta), "---", "", f"# Model Card for {name}", ""]
    lines += [project.scope or fill("one sentence on what the model does"), ""]

    # -- Model Details
    shape = f"{m.layers} layers" + (f" + {m.decoder_layers} decoder layers" if m.decoder_layers else "")
    shape += f", d_model {m.d_model}, {m.heads} attention heads" + (f" ({m.kv_heads} key/value)" if m.kv_heads != m.heads else "")
    shape += f", d_ff {m.d_ff} ({m.ffn}), {m.norm}, {m.positions} positions, vocabulary {m.vocab}"
    if t.adaptation == "pretrain":
        origin = "trained from scratch (pretraining)"
    else:
        checkpoint = getattr(project.model, "checkpoint", None)
        if base_model:
            origin = base_model
        elif checkpoint:
            origin = f"the checkpoint `{checkpoint}` (" + fill("its Hub id, passed as --base-model") + ")"
        elif m.preset:
            origin = f"{m.preset} (genaisdk preset; " + fill("its Hub id, passed as --base-model") + ")"
        else:
            origin = fill("the base model's Hub id")
    lines += [
        "## Model Details", "", "### Model Description", "",
        f"A {fmt_count(m.params, 'parameter')} {m.family.replace('_', '-')} transformer"
        + (f" for {project.task}" if project.task else "") + (f" in the {project.domain} domain" if project.domain else "")
        + (f", pretrained from scratch with the {m.objective} objective" if t.adaptation == "pretrain"
           else f", adapted by {t.adaptation}" + (f" from {m.preset}" if m.preset else "") + f" (base objective {m.objective})")
        + f": {shape}.", "",
        "- **Developed by:** " + fill("the people or organisation who built the model"),
        "- **Model type:** " + f"{m.family.replace('_', '-')} transformer, {m.objective}, {fmt_count(m.params, 'parameters')}"
        + (f" ({fmt_count(m.trainable_params, 'trained')})" if m.trainable_params and abs(m.trainable_params - m.params) > 0.5 else ""),
        "- **Language(s):** " + (", ".join(languages) if languages else fill("the languages of the training data, passed as --language")),
        "- **License:** " + (license or fill("the license, passed as --license")),
        "- **Finetuned from model:** " + origin,
        "", "### Model Sources", "",
        "- **Repository:** " + fill("where the weights and code live"),
        "- **Plan:** `genai plan " + (plan.spec_file or "SPEC") + "` (genaisdk)",
        "",
    ]

    # -- Uses
    task_record = _task_record(plan.project.task)
    lines += ["## Uses", "", "### Direct Use", ""]
    if project.scope:
        lines += [f"What the project states it is for: {project.scope}."]
    if task_record is not None:
        lines += [f"Task `{task_record.name}`: {task_record.description}."]
    if not project.scope and task_record is None:
        lines += [fill("what the model is for, and for whom")]
    lines += [
        "", "### Downstream Use", "", fill("systems or fine-tunes this model is meant to be part of"),
        "", "### Out-of-Scope Use", "",
        fill("uses the model is not suited for or must not be put to: other domains than "
             + (f"`{project.domain}`" if project.domain else "the training data's")
             + ", decisions without human review, languages it was not trained on, misuse"),
        "",
    ]

    # -- Bias, Risks, and Limitations
    lines += ["## Bias, Risks, and Limitations", "", "Known from the plan and the run:", ""]
    lines += [f"- Inputs longer than {m.context} tokens are outside the training context."]
    if d.mix:
        lines += ["- The training data is a mix of " + ", ".join(f"{k} ({fmt_fraction(v)})" for k, v in d.mix.items())
                  + "; other text is under-represented."]
    if d.tokens:
        lines += [f"- It saw {fmt_count(d.tokens, 'tokens')} in training"
                  + (f", {plan.scaling.tokens_per_param:.1f} per parameter (about 20 is compute-optimal, Hoffmann et al. 2022)."
                     if t.adaptation == "pretrain" else ".")]
    for diag in plan.diagnostics:
        if diag.severity == "warning":
            lines += [f"- Planner warning {diag.code}: {diag.message}."]
    lines += [
        "", fill("bias and sociotechnical risks: who could be harmed, by which errors, with evidence"),
        "", "### Recommendations", "",
        fill("what users (direct and downstream) should do about these risks and limitations"), "",
    ]

    # -- How to Get Started
    lines += ["## How to Get Started with the Model", "", fill("code that loads the weights and runs one example"), ""]

    # -- Training Details
    lines += ["## Training Details", "", "### Training Data", ""]
    data_rows = [("tokens", fmt_count(d.tokens, "tokens") if d.tokens else "-")]
    if d.mix:
        data_rows.append(("mix", ", ".join(f"{k} {fmt_fraction(v)}" for k, v in d.mix.items())))
    if d.domain_tokens:
        data_rows.append(("in-domain tokens", fmt_count(d.domain_tokens, "tokens")))
    if d.raw_tokens:
        data_rows.append(("raw corpus", fmt_count(d.raw_tokens, "tokens") + (f", quality filter keeps {fmt_fraction(d.keep)}" if d.keep else "")))
    if facts.sources:
        data_rows.append(("sources", ", ".join(f"`{s}`" for s in facts.sources)))
    if project.data.held_out:
        data_rows.append(("held out", f"{fmt_fraction(project.data.held_out)} for evaluation"))
    lines += _table(("", "value"), data_rows) + [""]
    if not facts.hub_datasets():
        lines += [fill("a link to a dataset card for the training data, or its description and licence"), ""]

    lines += ["### Training Procedure", "", "#### Preprocessing", ""]
    pre = [f"Sequences of {m.context} tokens, vocabulary of {m.vocab}."]
    if run is not None and run.data_description:
        pre.append(f"The run's data: {run.data_description}.")
    lines += [" ".join(pre), ""]
    config = run.config if run is not None else {}
    lines += ["#### Training Hyperparameters", "", f"- **Training regime:** {REGIMES.get(t.precision, t.precision)}", ""]
    hyper = [
        ("adaptation", t.adaptation),
        ("objective", m.objective),
        ("optimizer", t.optimizer),
        ("precision", t.precision),
        ("strategy", f"{t.strategy} on {t.devices} x {t.hardware}" + (" (planned)" if run is not None else "")),
        ("global batch", f"{t.global_batch_sequences} sequences ({fmt_count(t.global_batch_tokens, 'tokens')})" if t.global_batch_sequences else "-"),
        ("micro-batch", f"{t.micro_batch} sequences per device" + (f", {t.grad_accumulation} accumulation steps" if t.grad_accumulation else "")),
        ("recomputation", t.recompute),
    ]
    if t.steps:
        hyper.append(("planned steps", f"{t.steps:,}"))
    for key, label in (("learning_rate", "learning rate"), ("warmup_steps", "warmup steps"), ("total_steps", "steps run"),
                       ("min_lr_ratio", "final / peak learning rate"), ("weight_decay", "weight decay"),
                       ("grad_clip", "gradient clip"), ("seed", "seed"), ("devices", "devices (run)"),
                       ("global_batch", "global batch (run, sequences)"), ("micro_batch", "micro-batch (run)")):
        if key in config and config[key] is not None:
            value = config[key]
            hyper.append((label, f"{value:g}" if isinstance(value, float) else str(value)))
    if run is None:
        spec_train = project.train
        for key, label in (("learning_rate", "learning rate"), ("warmup", "warmup steps"), ("seed", "seed")):
            value = getattr(spec_train, key, None)
            if value is not None:
                hyper.append((label, f"{value:g}" if isinstance(value, float) else str(value)))
    lines += _table(("hyperparameter", "value"), hyper) + [""]

    lines += ["#### Speeds, Sizes, Times", ""]
    speed = [
        ("planned wall-clock", fmt_seconds(plan.time.seconds) + f" on {t.devices} x {t.hardware} at {fmt_fraction(t.mfu)} {plan.time.mfu_label}"),
        ("planned device-hours", f"{plan.time.gpu_hours:,.4g}" if plan.time.gpu_hours is not None else "not known: the device quotes no throughput"),
        ("planned cost", fmt_usd(plan.cost.usd) if plan.cost.usd is not None else "no price per device-hour known"),
        ("training compute", f"{fmt_sci(plan.compute.flops)} FLOPs (6·N·D), {plan.compute.pf_days:,.4g} PF-days"),
        ("weights for serving", f"{fmt_bytes(plan.inference.memory.weights)} at {plan.inference.precision}"),
    ]
    if run is not None:
        speed += [
            ("run", f"{run.status}, {run.steps_done:,} steps" + (f", {fmt_count(run.tokens_trained, 'tokens')}" if run.tokens_trained else "")),
            ("run wall-clock", fmt_seconds(run.seconds) + (f" on {run.devices} x {run.device_kind or run.platform}" if run.devices else "")),
            ("run throughput", f"{fmt_count(run.tokens_per_s)} tokens/s" if run.tokens_per_s else "-"),
            ("run MFU", f"{run.mfu:.1%}" if run.mfu is not None else f"not known for {run.platform or 'these'} devices"),
        ]
        if run.peak_memory_bytes:
            speed.append(("run peak memory", f"{fmt_bytes(run.peak_memory_bytes)} per device"))
    lines += _table(("", "value"), speed) + [""]

    # -- Evaluation
    rows = facts.results()
    lines += ["## Evaluation", "", "### Testing Data, Factors & Metrics", "", "#### Testing Data", ""]
    if evaluation is not None:
        info = ", ".join(f"{k} `{v}`" for k, v in evaluation.info.items())
        lines += [f"From `{evaluation.path}`" + (f" ({info})" if info else "") + "."]
    elif rows:
        lines += [f"The run's held-out split ({fmt_fraction(project.data.held_out) if project.data.held_out else 'its held-out batches'}), "
                  "measured by `genai train` at its last evaluation."]
    else:
        lines += [fill("the evaluation data; run `genai eval` and pass its eval.json with --eval")]
    subjects = list(dict.fromkeys(r.subject for r in rows if r.subject))
    lines += ["", "#### Factors", "",
              ("Results are broken down by " + ", ".join(f"`{s}`" for s in subjects) + ".") if subjects
              else fill("the subpopulations or domains results should be broken down by"), "",
              "#### Metrics", ""]
    metric_names = list(dict.fromkeys(r.metric for r in rows))
    if metric_names:
        lines += [", ".join(metric_label(x) for x in metric_names) + "."
                  + (" Loss is the mean negative log-likelihood per token in nats; perplexity is its exponential."
                     if any(x in ("loss", "perplexity") for x in metric_names) else ""), ""]
    else:
        lines += [fill("which metrics, and why they fit the task"), ""]
    lines += ["### Results", ""]
    if rows:
        lines += _table(("subject", "metric", "value", "dataset", "split", "note"),
                        [(r.subject or "all", metric_label(r.metric), _number(r.value), r.dataset or "", r.split or "", r.note)
                         for r in rows]) + [""]
    else:
        lines += [fill("the results; `genai card --eval eval.json` fills this table"), ""]
    if math.isfinite(plan.scaling.predicted_loss):
        lines += [f"For comparison, the Chinchilla fit predicts {plan.scaling.predicted_loss:.3f} nats/token for this size and data "
                  "on its own training distribution (Hoffmann et al. 2022, approach 3): a relative guide, not an expected score.", ""]

    # -- Environmental Impact
    lines += ["## Environmental Impact", "",
              "Emissions follow the Machine Learning Impact calculator's method (Lacoste et al. 2019): energy x the grid's carbon intensity.", ""]
    emissions = facts.emissions()
    planned_energy = plan.cost.energy_kwh
    hardware = emissions["hardware"] if emissions else f"{t.devices} x {t.hardware}"
    hours = emissions["hours"] if emissions else plan.time.gpu_hours
    run_kwh, run_how = run_energy(run) if run is not None else (None, "")
    impact = [
        f"- **Hardware Type:** {hardware}",
        (f"- **Hours used:** {hours:,.4g} device-hours" + ("" if emissions and run is not None and run_kwh is not None else " (planned)"))
        if hours is not None else "- **Hours used:** not known (the device quotes no throughput)",
        "- **Cloud Provider:** " + fill("the provider, if any"),
        "- **Compute Region:** " + fill("the region, whose grid intensity the spec's budget.carbon_intensity should state"),
        "- **Energy:** " + (f"{planned_energy:,.4g} kWh planned (devices x rated power x time, an upper bound for the accelerators alone)"
                            if planned_energy is not None else "not known: the hardware record has no rated power")
        + (f"; {run_kwh:,.4g} kWh for the run ({run_how})" if run_kwh is not None else (f"; the run's: {run_how}" if run is not None else "")),
    ]
    if emissions is not None:
        impact.append(f"- **Carbon Emitted:** {summary.fmt_mass(emissions['grams'])} CO2-eq ({emissions['kwh']:,.4g} kWh at "
                      f"{facts.intensity:g} g/kWh, the spec's budget.carbon_intensity)")
    elif not facts.intensity:
        impact.append("- **Carbon Emitted:** not stated: the spec gives no grid carbon intensity "
                      "(write `carbon_intensity = N g/kWh` in its budget block, N your grid's grams of CO2-eq per kWh)")
    else:
        impact.append("- **Carbon Emitted:** not known: there is no energy figure to multiply the grid intensity by")
    lines += impact + [""]

    # -- Technical Specifications
    lines += ["## Technical Specifications", "", "### Model Architecture and Objective", "",
              f"{m.family.replace('_', '-')} transformer: {shape}; {fmt_count(m.params, 'parameters')}"
              + (f" ({fmt_count(m.embedding_params, 'in embeddings')})" if m.embedding_params else "")
              + f"; trained with {m.objective}.", "",
              "### Compute Infrastructure", "",
              f"Planned: {t.devices} x {t.hardware}, {t.strategy}, {t.precision}."
              + (f" Run: {run.devices} x {run.device_kind or run.platform}." if run is not None and run.devices else ""), ""]
    versions = (run.record.get("versions") if run is not None else None) or {}
    from genaisdk import __version__

    software = [f"genaisdk {versions.get('genaisdk', __version__)}"] + [f"{k} {v}" for k, v in versions.items() if k != "genaisdk"]
    lines += ["#### Software", "", ", ".join(software), ""]

    lines += ["## Citation", "", fill("how to cite the model (BibTeX)"), "",
              "## Model Card Contact", "", fill("who to contact about the model"), ""]
    return "\n".join(lines)


def _task_record(name: str | None):
    if not name:
        return None
    try:
        from genaisdk.registry import get_registry

        return get_registry().get("tasks", name)
    except Exception:  # the card is still written without the task's description
        return None


def write_card(path: str | Path, spec: Spec, plan: Plan | None = None, **options: Any) -> Path:
    target = Path(path)
    target.write_text(model_card(spec, plan, **options), encoding="utf-8")
    return target
