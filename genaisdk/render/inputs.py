"""What a report and a model card read besides the plan: a training run's folder and an
evaluation file.

A run folder is what `genai train` writes (`genaisdk.backend.jax.train`): `run.json` (the
resolved configuration, data sources, devices, versions), `metrics.jsonl` (one entry per
optimizer step, `kind = "train"`, and one per held-out evaluation, `kind = "eval"`) and,
once the run has stopped, `result.json` (status, losses, tokens/s, MFU, the devices' peak
memory next to the plan's). Only `metrics.jsonl` is required, so a run still in progress (or
from before `result.json` existed) can be reported.

An evaluation file (`eval.json`) is read tolerantly, since evaluators differ in layout: at
least `loss` and `perplexity` at the top level, optionally per-source entries (`sources`,
`per_source`, `by_source`, `domains`) and task metrics (`tasks`, `metrics`, `task_metrics`,
`results`), each either a mapping `name -> value | {metric: value, ...}` or a list of
entries (`{"source": "legal", "loss": 2.1}`, `{"metric": "rougeL", "value": 0.31,
"dataset": ..., "split": ...}`). Every number becomes one `EvalRow`; counts (`tokens`,
`examples`, ...) are kept beside the metrics, not as metrics.

Nothing here imports JAX, matplotlib or jinja2. Problems raise `InputError` with one line
that names the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.core.jsonlines import JSONLineError, parse_line

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
"""The names `genaisdk.backend.jax.train` writes (kept here so reading a run never imports
the backend)."""


class InputError(Exception):
    """A run folder or an evaluation file that cannot be read; the message names it."""


def _number(value: Any) -> float | None:
    """A finite float, or None (strings such as "nan" that metrics files use included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


# ----------------------------------------------------------------------------- runs


@attrs.frozen(kw_only=True)
class Run:
    """One training run as its folder records it. Series are in step order; losses are token
    means in nats; memory is bytes per device."""

    path: Path
    record: Mapping[str, Any] = attrs.field(factory=dict)
    """run.json ({} when absent)."""
    result: Mapping[str, Any] | None = None
    """result.json (None while the run is going, or for runs that predate it)."""
    train: tuple[Mapping[str, Any], ...] = ()
    evals: tuple[Mapping[str, Any], ...] = ()

    @property
    def config(self) -> Mapping[str, Any]:
        return self.record.get("config") or {}

    @property
    def project(self) -> str | None:
        return self.record.get("project") or (self.result or {}).get("project")

    @property
    def steps(self) -> list[int]:
        return [int(e["step"]) for e in self.train]

    @property
    def losses(self) -> list[float | None]:
        return [_number(e.get("loss")) for e in self.train]

    @property
    def eval_steps(self) -> list[int]:
        return [int(e["step"]) for e in self.evals]

    @property
    def eval_losses(self) -> list[float | None]:
        return [_number(e.get("eval_loss", e.get("loss"))) for e in self.evals]

    @property
    def tokens_per_s_series(self) -> list[float | None]:
        return [_number(e.get("tokens_per_s")) for e in self.train]

    def _result(self, key: str) -> float | None:
        return _number((self.result or {}).get(key))

    @property
    def status(self) -> str:
        return str((self.result or {}).get("status") or "in progress (no result.json)")

    @property
    def final_loss(self) -> float | None:
        found = self._result("final_loss")
        if found is None:
            losses = [x for x in self.losses if x is not None]
            found = losses[-1] if losses else None
        return found

    @property
    def eval_loss(self) -> float | None:
        found = self._result("eval_loss")
        if found is None:
            losses = [x for x in self.eval_losses if x is not None]
            found = losses[-1] if losses else None
        return found

    @property
    def perplexity(self) -> float | None:
        found = self._result("perplexity")
        if found is None and self.evals:
            found = _number(self.evals[-1].get("perplexity"))
        return found

    @property
    def tokens_per_s(self) -> float | None:
        """The run's throughput: result.json's (time-weighted, compilation excluded), else the
        median of the steps after the first (the first step includes compilation)."""
        found = self._result("tokens_per_s")
        if found is None:
            rates = [x for x in self.tokens_per_s_series[1:] if x is not None] or [
                x for x in self.tokens_per_s_series if x is not None
            ]
            found = statistics.median(rates) if rates else None
        return found

    @property
    def mfu(self) -> float | None:
        return self._result("mfu")

    @property
    def seconds(self) -> float | None:
        """Wall-clock seconds of the run: result.json's, else the sum of the step times."""
        found = self._result("seconds")
        if found is None:
            times = [_number(e.get("seconds")) for e in self.train]
            found = sum(t for t in times if t is not None) if times else None
        return found

    @property
    def steps_done(self) -> int:
        value = (self.result or {}).get("steps")
        return int(value) if isinstance(value, int) else (self.steps[-1] if self.steps else 0)

    @property
    def tokens_per_step(self) -> float | None:
        return _number(self.config.get("tokens_per_step"))

    @property
    def tokens_trained(self) -> float | None:
        per = self.tokens_per_step
        return None if per is None else per * self.steps_done

    @property
    def devices(self) -> int | None:
        value = (self.result or {}).get("devices") or (self.record.get("runtime") or {}).get("devices")
        return int(value) if isinstance(value, int) else None

    @property
    def platform(self) -> str | None:
        return (self.result or {}).get("platform") or (self.record.get("runtime") or {}).get("platform")

    @property
    def device_kind(self) -> str | None:
        return (self.record.get("runtime") or {}).get("device_kind")

    @property
    def hardware(self) -> str | None:
        """The hardware record the run's devices matched (None on CPU or when unknown)."""
        value = (self.result or {}).get("hardware")
        return str(value) if value else None

    @property
    def peak_memory_bytes(self) -> float | None:
        return self._result("peak_memory_bytes")

    @property
    def planned_memory_bytes(self) -> float | None:
        return self._result("planned_memory_bytes")

    @property
    def planned_devices(self) -> int | None:
        value = (self.result or {}).get("planned_devices")
        return int(value) if isinstance(value, int) else None

    @property
    def data_sources(self) -> list[str]:
        return [str(s) for s in (self.record.get("data") or {}).get("sources") or []]

    @property
    def data_description(self) -> str | None:
        return (self.record.get("data") or {}).get("description")

    @property
    def overrides(self) -> list[str]:
        return [str(s) for s in self.record.get("overrides") or []]


def read_run(path: str | Path) -> Run:
    """Read a `genai train` output folder. InputError when it is not one."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such run folder (give the --out folder of genai train)")
    metrics_path = folder / METRICS_FILE
    if not metrics_path.is_file():
        raise InputError(f"{folder}: not a run folder: no {METRICS_FILE} (give the --out folder of genai train)")
    record: Any = {}
    if (folder / RUN_FILE).is_file():
        record = _read_json(folder / RUN_FILE)
        if not isinstance(record, Mapping):
            raise InputError(f"{folder / RUN_FILE}: expected a JSON object")
    result = None
    if (folder / RESULT_FILE).is_file():
        result = _read_json(folder / RESULT_FILE)
        if not isinstance(result, Mapping):
            raise InputError(f"{folder / RESULT_FILE}: expected a JSON object")
    train: list[Mapping[str, Any]] = []
    evals: list[Mapping[str, Any]] = []
    try:
        lines = metrics_path.read_text(encoding="utf-8").splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{metrics_path}: cannot read: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.endswith("\n"):
            break  # a torn last line, left by a kill mid-write
        try:
            entry = parse_line(line, str(metrics_path), number)
        except JSONLineError as exc:
            raise InputError(str(exc)) from None
        if not isinstance(entry, Mapping) or not isinstance(entry.get("step"), int):
            continue
        (evals if entry.get("kind") == "eval" else train).append(entry)
    if not train and not evals:
        raise InputError(f"{metrics_path}: no training steps recorded yet")
    return Run(path=folder, record=record, result=result, train=tuple(train), evals=tuple(evals))


# ----------------------------------------------------------------------------- evaluations

COUNT_KEYS = frozenset(
    {"tokens", "n", "count", "examples", "samples", "documents", "sequences", "batches", "step", "steps", "seconds", "bytes"}
)
"""Numbers that say how much was evaluated, not how well."""

SOURCE_KEYS = ("sources", "per_source", "by_source", "domains", "per_domain")
TASK_KEYS = ("tasks", "metrics", "task_metrics", "results")
NAME_KEYS = ("name", "source", "domain", "task", "subset")
METRIC_NAME_KEYS = ("metric", "type", "metric_name")
TEXT_KEYS = ("dataset", "split", "signature", "config")

METRIC_ALIASES = {
    "eval_loss": "loss",
    "nll": "loss",
    "ppl": "perplexity",
    "bpb": "bits_per_byte",
    "eval_perplexity": "perplexity",
}

METRIC_LABELS = {
    "loss": "loss (nats/token)",
    "perplexity": "perplexity",
    "bits_per_byte": "bits per byte",
    "accuracy": "accuracy",
    "acc": "accuracy",
    "f1": "F1",
    "macro_f1": "macro F1",
    "exact_match": "exact match",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougel": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
    "bleu": "BLEU",
    "chrf": "chrF",
    "ter": "TER",
}
"""How a metric is called in tables (its key stays the metric's `type` in metadata)."""

LOWER_IS_BETTER = frozenset({"loss", "perplexity", "bits_per_byte", "ter"})


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, METRIC_LABELS.get(metric.lower(), metric))


@attrs.frozen(kw_only=True)
class EvalRow:
    """One number of an evaluation. `group` is 'overall', 'source' or 'task'; `subject` the
    source or task it is about ('' for the whole held-out set)."""

    group: str
    subject: str
    metric: str
    value: float
    dataset: str | None = None
    split: str | None = None
    note: str = ""
    """Counts and a signature, in words ("32,512 tokens; nrefs:1|case:mixed|...")."""

    @property
    def label(self) -> str:
        return metric_label(self.metric)


@attrs.frozen(kw_only=True)
class Evaluation:
    """An evaluation file, normalized. `info` holds its top-level text (model, dataset,
    split, ...), `counts` its top-level counts."""

    path: str
    rows: tuple[EvalRow, ...]
    info: Mapping[str, str] = attrs.field(factory=dict)
    counts: Mapping[str, float] = attrs.field(factory=dict)

    def overall(self, metric: str) -> float | None:
        for row in self.rows:
            if row.group == "overall" and row.metric == metric:
                return row.value
        return None

    def groups(self) -> dict[str, list[EvalRow]]:
        out: dict[str, list[EvalRow]] = {}
        for row in self.rows:
            out.setdefault(row.group, []).append(row)
        return out


def _metric_name(key: str) -> str:
    key = str(key).strip()
    return METRIC_ALIASES.get(key.lower(), key)


def _counts_note(counts: Mapping[str, float]) -> str:
    """"at step 60; 32,512 tokens": how much an entry measured, in words."""
    parts = []
    for key, number in counts.items():
        if key in ("step", "steps"):
            parts.insert(0, f"at step {number:,.0f}")
        else:
            parts.append(f"{number:,.0f} {key}")
    return "; ".join(parts)


def _note(entry: Mapping[str, Any]) -> str:
    counts = {str(k).lower(): _number(v) for k, v in entry.items() if str(k).lower() in COUNT_KEYS and _number(v) is not None}
    parts = [_counts_note(counts)] if counts else []
    if isinstance(entry.get("signature"), str):
        parts.append(entry["signature"])
    return "; ".join(parts)


def _text(entry: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = entry.get(key)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else default


def _entry_rows(entry: Mapping[str, Any], group: str, subject: str, dataset: str | None, split: str | None) -> list[EvalRow]:
    """The metrics of one entry: `{"metric": m, "value": v}` or `{m1: v1, m2: v2, ...}`,
    possibly with its own nested `metrics`."""
    dataset = _text(entry, "dataset", dataset)
    split = _text(entry, "split", split)
    note = _note(entry)
    rows: list[EvalRow] = []
    name_key = next((k for k in METRIC_NAME_KEYS if isinstance(entry.get(k), str)), None)
    if name_key is not None and _number(entry.get("value")) is not None:
        rows.append(
            EvalRow(group=group, subject=subject, metric=_metric_name(entry[name_key]), value=_number(entry["value"]),
                    dataset=dataset, split=split, note=note)
        )
        return rows
    for key, value in entry.items():
        lowered = str(key).lower()
        number = _number(value)
        if number is not None and lowered not in COUNT_KEYS and lowered != "value":
            rows.append(EvalRow(group=group, subject=subject, metric=_metric_name(key), value=number,
                                dataset=dataset, split=split, note=note))
        elif lowered in ("metrics", "scores") and value is not None:
            rows.extend(_group_rows(value, group, subject, dataset, split))
    return rows


def _group_rows(value: Any, group: str, subject: str, dataset: str | None, split: str | None) -> list[EvalRow]:
    """A mapping `name -> number | entry` or a list of entries."""
    rows: list[EvalRow] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            number = _number(item)
            if number is not None:
                if str(key).lower() not in COUNT_KEYS:
                    rows.append(EvalRow(group=group, subject=subject, metric=_metric_name(key), value=number,
                                        dataset=dataset, split=split))
            elif isinstance(item, Mapping):
                rows.extend(_entry_rows(item, group, subject or str(key), dataset, split))
            elif isinstance(item, list):
                rows.extend(_group_rows(item, group, subject or str(key), dataset, split))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                name = next((str(item[k]) for k in NAME_KEYS if isinstance(item.get(k), str)), subject)
                rows.extend(_entry_rows(item, group, name, dataset, split))
    return rows


def parse_eval(data: Any, *, path: str = "<eval>") -> Evaluation:
    """Normalize an evaluation's JSON object (see the module docstring for the shapes read)."""
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a JSON object with at least `loss` and `perplexity`")
    dataset = _text(data, "dataset", None)
    split = _text(data, "split", None)
    rows: list[EvalRow] = []
    info: dict[str, str] = {}
    counts: dict[str, float] = {}
    for key, value in data.items():
        lowered = str(key).lower()
        number = _number(value)
        if number is not None:
            if lowered in COUNT_KEYS:
                counts[lowered] = number
            else:
                rows.append(EvalRow(group="overall", subject="", metric=_metric_name(key), value=number,
                                    dataset=dataset, split=split))
        elif lowered in SOURCE_KEYS:
            rows.extend(_group_rows(value, "source", "", dataset, split))
        elif lowered in TASK_KEYS:
            rows.extend(_group_rows(value, "task", "", dataset, split))
        elif isinstance(value, str):
            info[lowered] = value
        elif isinstance(value, Mapping) and any(_number(v) is not None for v in value.values()):
            # An unnamed block of metrics, e.g. "rouge": {"rouge1": ..., "rougeL": ...}.
            rows.extend(_group_rows(value, "task", str(key), dataset, split))
    if not rows:
        raise InputError(f"{path}: no metrics found (expected at least `loss` and `perplexity`)")
    note = _counts_note(counts)
    rows = [attrs.evolve(r, note=r.note or note) if r.group == "overall" else r for r in rows]
    return Evaluation(path=path, rows=tuple(rows), info=info, counts=counts)


def read_eval(path: str | Path) -> Evaluation:
    """Read an evaluation file (`genai eval`'s eval.json or a compatible one)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: no such evaluation file")
    return parse_eval(_read_json(file), path=str(file))


def sources_named(rows: Iterable[EvalRow]) -> list[str]:
    """The distinct subjects of the rows, in order."""
    return list(dict.fromkeys(r.subject for r in rows if r.subject))


def as_run(run: Run | str | Path | None) -> Run | None:
    """A Run, or a run folder's path read into one."""
    return read_run(run) if isinstance(run, (str, Path)) else run


def as_evaluation(evaluation: Evaluation | str | Path | None) -> Evaluation | None:
    """An Evaluation, or an evaluation file's path read into one."""
    return read_eval(evaluation) if isinstance(evaluation, (str, Path)) else evaluation
