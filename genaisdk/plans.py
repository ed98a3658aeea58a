"""The Plan: what `genai plan` answers, as frozen attrs values, and its stable JSON form.

A `Plan` is made by `genaisdk.planner.plan(spec)` and read by the renderers, `genai
explain` and other tools. Its JSON form (`Plan.to_json()`, printed by `genai plan --json`)
is a contract: the keys listed in `CONTRACT_KEYS` always exist and keep their meaning
(`docs/plan-json.md` documents each one). More keys may be added, never renamed.

Units, everywhere: bytes are integers in bytes; parameters and tokens are counts; FLOPs are
floating-point operation counts; times are in seconds or days as the key says; money is in
USD; fractions are plain numbers (0.4, not 40).

Besides the numbers a plan carries
- `reasons`: one `Reason` for every value the spec left `auto` (and for defaults the
  planner chose), saying what was picked and why;
- `assumptions`: every constant the numbers rest on (MFU, overhead fractions, gradient
  dtype, ...), itemized with its source;
- `derivations`: per topic (params, flops, memory, ...) the `Term`s each number is built
  from, with the values substituted, for `genai explain`;
- `memory.options`: the memory breakdown of the other strategies and precisions, fits or not;
- `diagnostics`: the planner's warnings (and the spec's, where it had any), each pointing at
  the spec line it is about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from genaisdk.diagnostics import Diagnostic

SCHEMA = "genaisdk.plan/1"
"""Identifies the JSON form; the number changes only if a contract key changes meaning."""


def _frozen_map(value: Mapping | None) -> dict:
    return dict(value or {})


def _int_bytes(value: float | None) -> int | None:
    """Bytes are integers in the JSON form; fractional bytes (int4 halves) round up."""
    if value is None:
        return None
    return int(math.ceil(float(value) - 1e-9))


def _num(value: Any) -> Any:
    """A JSON-safe number: numpy scalars become Python floats; NaN and infinity become None."""
    if value is None or isinstance(value, (bool, int)):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return f if math.isfinite(f) else None


def _count(value: float | None) -> int | None:
    """Counts (parameters, tokens, devices) as integers."""
    if value is None:
        return None
    return int(round(float(value)))


@attrs.frozen(kw_only=True)
class Reason:
    """Why a value was chosen: `field` is the spec's dotted path ("train.sharding")."""

    field: str
    value: Any
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "value": _json_value(self.value), "reason": self.reason}


@attrs.frozen(kw_only=True)
class Assumption:
    """A constant the plan rests on, with where it comes from."""

    name: str
    value: Any
    source: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": _json_value(self.value), "source": self.source, "note": self.note}


@attrs.frozen(kw_only=True)
class Term:
    """One line of a derivation: `name = formula = substituted = value unit`.

    `formula` is symbolic ("params × weight bytes"), `substituted` the same with the numbers
    in ("6.74e9 × 2 B (bf16)"), `value` the number the plan reports, `unit` one of 'bytes',
    'params', 'tokens', 'FLOPs', 's', 'days', 'USD', 'kWh', '' (a plain number).
    """

    name: str
    formula: str
    substituted: str
    value: float
    unit: str = ""
    source: str = ""
    check: float | None = None
    """The substituted expression evaluated from its operands, where it is a plain product,
    quotient or sum; equal to `value` unless the derivation and the estimator disagree (a
    test asserts they never do)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "formula": self.formula,
            "substituted": self.substituted,
            "value": _num(self.value),
            "unit": self.unit,
            "source": self.source,
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    try:
        return _num(float(value))
    except (TypeError, ValueError):
        return str(value)


@attrs.frozen(kw_only=True)
class ProjectSection:
    name: str
    task: str | None = None
    scope: str = ""
    domain: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "scope": self.scope, "domain": self.domain}


@attrs.frozen(kw_only=True)
class ModelSection:
    """The model the plan sizes. `params` is the total held in memory; `active_params` what
    one token passes through; `trainable_params` what the optimizer updates (adapters only
    for LoRA/QLoRA)."""

    family: str
    objective: str
    params: float
    layers: int
    d_model: int
    heads: int
    vocab: int
    context: int
    kv_heads: int
    head_dim: int
    d_ff: int
    decoder_layers: int | None = None
    ffn: str = "gelu"
    norm: str = "layernorm"
    positions: str = "learned"
    tied_embeddings: bool = True
    biases: bool = True
    active_params: float = 0.0
    embedding_params: float = 0.0
    trainable_params: float = 0.0
    preset: str | None = None
    params_breakdown: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "objective": self.objective,
            "params": _count(self.params),
            "layers": self.layers,
            "d_model": self.d_model,
            "heads": self.heads,
            "vocab": self.vocab,
            "context": self.context,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "d_ff": self.d_ff,
            "decoder_layers": self.decoder_layers,
            "ffn": self.ffn,
            "norm": self.norm,
            "positions": self.positions,
            "tied_embeddings": self.tied_embeddings,
            "biases": self.biases,
            "active_params": _count(self.active_params),
            "embedding_params": _count(self.embedding_params),
            "trainable_params": _count(self.trainable_params),
            "preset": self.preset,
            "params_breakdown": {k: _count(v) for k, v in self.params_breakdown.items()},
        }


@attrs.frozen(kw_only=True)
class DataSection:
    """`tokens` is what training passes over (after the quality filter; repeats included)."""

    tokens: float
    raw_tokens: float | None = None
    keep: float | None = None
    raw_tokens_needed: float | None = None
    """Raw corpus the compute-optimal D needs at this keep fraction (None without a filter)."""
    mix: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    domain_tokens: float | None = None
    """Tokens of the project's domain in the mix (mix[domain] × tokens)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": _count(self.tokens),
            "raw_tokens": _count(self.raw_tokens),
            "keep": _num(self.keep),
            "raw_tokens_needed": _count(self.raw_tokens_needed),
            "mix": {k: _num(v) for k, v in self.mix.items()},
            "domain_tokens": _count(self.domain_tokens),
        }


@attrs.frozen(kw_only=True)
class ComputeSection:
    flops: float
    """6·N·D (GPT-3 Table D.1, Chinchilla)."""
    model_flops: float
    """(6·N + 12·L·H·Q·T)·D, PaLM appendix B; MFU counts these."""
    hardware_flops: float
    """model_flops plus recomputation; HFU counts these."""
    flops_per_token: float
    pf_days: float

    def to_json(self) -> dict[str, Any]:
        return {
            "flops": _num(self.flops),
            "model_flops": _num(self.model_flops),
            "hardware_flops": _num(self.hardware_flops),
            "flops_per_token": _num(self.flops_per_token),
            "pf_days": _num(self.pf_days),
        }


@attrs.frozen(kw_only=True)
class ScalingSection:
    optimal_params: float
    optimal_tokens: float
    tokens_per_param: float
    predicted_loss: float
    budget_flops: float | None = None
    """The FLOPs the time and money budget can buy (None without a budget)."""
    optimal_params_for_budget: float | None = None
    """Compute-optimal N for what the budget buys (counted as 6·N·D)."""
    optimal_tokens_for_budget: float | None = None
    """Compute-optimal D for what the budget buys."""
    law: str = "chinchilla-approach-3"
    loss_tokens: float | None = None
    """The D in predicted_loss: this run's tokens when it trains from scratch, the base
    model's pretraining tokens when it adapts a preset (None when unknown)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "optimal_params": _count(self.optimal_params),
            "optimal_tokens": _count(self.optimal_tokens),
            "tokens_per_param": _num(self.tokens_per_param),
            "predicted_loss": _num(self.predicted_loss),
            "budget_flops": _num(self.budget_flops),
            "optimal_params_for_budget": _count(self.optimal_params_for_budget),
            "optimal_tokens_for_budget": _count(self.optimal_tokens_for_budget),
            "law": self.law,
            "loss_tokens": _count(self.loss_tokens),
        }


@attrs.frozen(kw_only=True)
class TrainSection:
    precision: str
    optimizer: str
    strategy: str
    devices: int
    hardware: str
    micro_batch: int
    recompute: str
    mfu: float
    attention: str = "flash"
    adaptation: str = "pretrain"
    global_batch_tokens: float | None = None
    global_batch_sequences: int | None = None
    grad_accumulation: int | None = None
    steps: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "optimizer": self.optimizer,
            "strategy": self.strategy,
            "devices": self.devices,
            "hardware": self.hardware,
            "micro_batch": self.micro_batch,
            "recompute": self.recompute,
            "mfu": _num(self.mfu),
            "attention": self.attention,
            "adaptation": self.adaptation,
            "global_batch_tokens": _count(self.global_batch_tokens),
            "global_batch_sequences": self.global_batch_sequences,
            "grad_accumulation": self.grad_accumulation,
            "steps": self.steps,
        }


@attrs.frozen(kw_only=True)
class MemoryBreakdown:
    """Bytes per device. `total` is the peak: persistent state plus the worst phase plus the
    overheads; it is not a max of components (nor, in general, their plain sum, since the
    optimizer step and the backward pass do not hold their transients at the same time)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    total: float
    overheads: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    host: float = 0.0
    """Bytes per device kept in host memory by an offload strategy."""
    peak_phase: str = ""
    """The phase that sets the peak: 'forward', 'backward' or 'step' ('' for serving)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": _int_bytes(self.weights),
            "gradients": _int_bytes(self.gradients),
            "optimizer": _int_bytes(self.optimizer),
            "activations": _int_bytes(self.activations),
            "overheads": {k: _int_bytes(v) for k, v in self.overheads.items()},
            "total": _int_bytes(self.total),
            "host": _int_bytes(self.host),
            "peak_phase": self.peak_phase,
        }


@attrs.frozen(kw_only=True)
class MemoryOption:
    """One row of the strategy × precision table: the same model under other settings."""

    strategy: str
    precision: str
    recompute: str
    micro_batch: int
    per_device: MemoryBreakdown
    fits: bool
    chosen: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "precision": self.precision,
            "recompute": self.recompute,
            "micro_batch": self.micro_batch,
            "per_device": self.per_device.to_json(),
            "fits": self.fits,
            "chosen": self.chosen,
        }


@attrs.frozen(kw_only=True)
class MemorySection:
    per_device: MemoryBreakdown
    device_capacity: float
    fits: bool
    options: tuple[MemoryOption, ...] = attrs.field(default=(), converter=tuple)

    @property
    def headroom(self) -> float:
        return self.device_capacity - self.per_device.total

    def to_json(self) -> dict[str, Any]:
        return {
            "per_device": self.per_device.to_json(),
            "device_capacity": _int_bytes(self.device_capacity),
            "fits": bool(self.fits),
            "headroom": int(round(self.headroom)),
            "options": [o.to_json() for o in self.options],
        }


@attrs.frozen(kw_only=True)
class TimeSection:
    seconds: float
    days: float
    gpu_hours: float

    def to_json(self) -> dict[str, Any]:
        return {"seconds": _num(self.seconds), "days": _num(self.days), "gpu_hours": _num(self.gpu_hours)}


@attrs.frozen(kw_only=True)
class CostSection:
    usd: float | None
    """None where neither the spec nor the hardware record gives a price."""
    price_per_hour: float | None = None
    energy_kwh: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"usd": _num(self.usd), "price_per_hour": _num(self.price_per_hour), "energy_kwh": _num(self.energy_kwh)}


@attrs.frozen(kw_only=True)
class BudgetSection:
    """The spec's limits and how the plan compares (ratio > 1: over budget by that factor)."""

    time_seconds: float | None = None
    cost_usd: float | None = None
    time_ratio: float | None = None
    cost_ratio: float | None = None

    @property
    def within(self) -> bool:
        return all(r is None or r <= 1.0 for r in (self.time_ratio, self.cost_ratio))

    def to_json(self) -> dict[str, Any]:
        return {
            "time_seconds": _num(self.time_seconds),
            "cost_usd": _num(self.cost_usd),
            "time_ratio": _num(self.time_ratio),
            "cost_ratio": _num(self.cost_ratio),
            "within": self.within,
        }


@attrs.frozen(kw_only=True)
class InferenceMemory:
    """Bytes of one serving replica: total = weights + kv_cache + workspace + runtime."""

    weights: float
    kv_cache: float
    total: float
    workspace: float = 0.0
    runtime: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": _int_bytes(self.weights),
            "kv_cache": _int_bytes(self.kv_cache),
            "workspace": _int_bytes(self.workspace),
            "runtime": _int_bytes(self.runtime),
            "total": _int_bytes(self.total),
        }


@attrs.frozen(kw_only=True)
class InferenceSection:
    """One serving replica: weights at the serving precision plus the KV cache."""

    precision: str
    context: int
    batch: int
    memory: InferenceMemory
    fits: bool
    devices_per_replica: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "context": self.context,
            "batch": self.batch,
            "memory": self.memory.to_json(),
            "fits": bool(self.fits),
            "devices_per_replica": self.devices_per_replica,
        }


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    return d.to_json()


@attrs.frozen(kw_only=True)
class Plan:
    """A checked plan for one spec. See the module docstring and docs/plan-json.md."""

    project: ProjectSection
    model: ModelSection
    data: DataSection
    compute: ComputeSection
    scaling: ScalingSection
    train: TrainSection
    memory: MemorySection
    time: TimeSection
    cost: CostSection
    budget: BudgetSection
    inference: InferenceSection
    diagnostics: tuple[Diagnostic, ...] = attrs.field(default=(), converter=tuple)
    reasons: tuple[Reason, ...] = attrs.field(default=(), converter=tuple)
    assumptions: tuple[Assumption, ...] = attrs.field(default=(), converter=tuple)
    derivations: Mapping[str, tuple[Term, ...]] = attrs.field(factory=dict, converter=_frozen_map)
    spec_file: str = "<spec>"

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def reason(self, field: str) -> Reason | None:
        for r in self.reasons:
            if r.field == field:
                return r
        return None

    def to_json(self, *, derivations: bool = False) -> dict[str, Any]:
        """The stable JSON form (a plain dict of str, int, float, bool, None, list, dict)."""
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "spec_file": self.spec_file,
            "project": self.project.to_json(),
            "model": self.model.to_json(),
            "data": self.data.to_json(),
            "compute": self.compute.to_json(),
            "scaling": self.scaling.to_json(),
            "train": self.train.to_json(),
            "memory": self.memory.to_json(),
            "time": self.time.to_json(),
            "cost": self.cost.to_json(),
            "budget": self.budget.to_json(),
            "inference": self.inference.to_json(),
            "reasons": [r.to_json() for r in self.reasons],
            "assumptions": [a.to_json() for a in self.assumptions],
            "diagnostics": [diagnostic_json(d) for d in self.diagnostics],
        }
        if derivations:
            out["derivations"] = {k: [t.to_json() for t in v] for k, v in self.derivations.items()}
        return out


CONTRACT_KEYS: tuple[str, ...] = (
    "project.name",
    "project.task",
    "model.family",
    "model.objective",
    "model.params",
    "model.layers",
    "model.d_model",
    "model.heads",
    "model.vocab",
    "model.context",
    "data.tokens",
    "compute.flops",
    "compute.model_flops",
    "compute.hardware_flops",
    "compute.flops_per_token",
    "compute.pf_days",
    "scaling.optimal_params",
    "scaling.optimal_tokens",
    "scaling.tokens_per_param",
    "scaling.predicted_loss",
    "train.precision",
    "train.optimizer",
    "train.strategy",
    "train.devices",
    "train.hardware",
    "train.micro_batch",
    "train.recompute",
    "train.mfu",
    "memory.per_device.weights",
    "memory.per_device.gradients",
    "memory.per_device.optimizer",
    "memory.per_device.activations",
    "memory.per_device.total",
    "memory.device_capacity",
    "memory.fits",
    "time.seconds",
    "time.days",
    "time.gpu_hours",
    "cost.usd",
    "inference.memory.weights",
    "inference.memory.kv_cache",
    "inference.memory.total",
    "diagnostics",
)
"""The dotted keys of the JSON form that DESIGN.md's contract promises."""

DIAGNOSTIC_KEYS: tuple[str, ...] = ("code", "severity", "message", "line", "column")
"""Keys every entry of `diagnostics` carries (plus `hint` and `file`)."""


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    """`lookup(plan_json, "memory.per_device.total")`; KeyError naming the missing part."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"{dotted!r}: no {part!r}")
        node = node[part]
    return node
