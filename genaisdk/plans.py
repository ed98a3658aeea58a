"""The Plan: what `genai plan` answers, as frozen attrs values, and its stable JSON form.

A `Plan` is made by `genaisdk.plan(spec)` (`genaisdk.planning`) and read by the renderers,
`genai explain`, the run-settings bridge (`genaisdk.planning.run_settings`) and other tools.
Its JSON form (`Plan.to_json()`, printed by `genai plan --json`) is a contract: the keys
listed in `CONTRACT_KEYS` always exist and keep their meaning (`docs/plan-json.md`
documents each one). More keys may be added, never renamed. The JSON is written from the
fields' metadata (`genaisdk.core.serialize`): `BYTES` fields as integer bytes, `COUNT`
fields as integers.

Units, everywhere: bytes are integers in bytes; parameters and tokens are counts; FLOPs are
floating-point operation counts; times are in seconds or days as the key says; money is in
USD; fractions are plain numbers (0.4, not 40).

Besides the numbers a plan carries
- `model.dims`: the model's exact `Dimensions` (every field), what the backend builds;
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

import functools
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from genaisdk.core.serialize import BYTES, COUNT, JSON_NAME, SKIP, fields_json, to_json
from genaisdk.diagnostics import Diagnostic
from genaisdk.dims import Dimensions

SCHEMA = "genaisdk.plan/1"
"""Identifies the JSON form; the number changes only if a contract key changes meaning."""


def _frozen_map(value: Mapping | None) -> dict:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class Reason:
    """Why a value was chosen: `field` is the spec's dotted path ("train.sharding")."""

    field: str
    value: Any
    reason: str


@attrs.frozen(kw_only=True)
class Assumption:
    """A constant the plan rests on, with where it comes from."""

    name: str
    value: Any
    source: str
    note: str = ""


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
    check: float | None = attrs.field(default=None, metadata=SKIP)
    """The substituted expression evaluated from its operands, where it is a plain product,
    quotient or sum; equal to `value` unless the derivation and the estimator disagree (a
    test asserts they never do)."""


@attrs.frozen(kw_only=True)
class ProjectSection:
    name: str
    task: str | None = None
    scope: str = ""
    domain: str | None = None


@attrs.frozen(kw_only=True)
class ModelSection:
    """The model the plan sizes. `params` is the total held in memory; `active_params` what
    one token passes through; `trainable_params` what the optimizer updates (adapters only
    for LoRA/QLoRA). `dims` is the exact `Dimensions` (JSON: `model.dimensions`); the flat
    shape keys are read from it (`ModelSection.of`), with kv_heads, head_dim resolved."""

    family: str
    architecture: str | None = None
    """The architecture record (`decoder`, `encoder-decoder`, a plugin's `moe-decoder`)."""
    objective: str
    params: float = attrs.field(metadata=COUNT)
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
    active_params: float = attrs.field(default=0.0, metadata=COUNT)
    embedding_params: float = attrs.field(default=0.0, metadata=COUNT)
    trainable_params: float = attrs.field(default=0.0, metadata=COUNT)
    preset: str | None = None
    params_breakdown: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map, metadata=COUNT)
    dims: Dimensions | None = attrs.field(default=None, metadata={JSON_NAME: "dimensions"})

    @classmethod
    def of(
        cls,
        dims: Dimensions,
        *,
        family: str,
        architecture: str,
        objective: str,
        count: Any,
        context: int,
        trainable_params: float,
        preset: str | None,
    ) -> ModelSection:
        """The section for `dims` and the architecture's `count` of them."""
        return cls(
            family=family,
            architecture=architecture,
            objective=objective,
            params=float(count.total),
            layers=dims.layers,
            d_model=dims.d_model,
            heads=dims.heads,
            vocab=dims.vocab,
            context=int(context),
            kv_heads=dims.n_kv_heads,
            head_dim=dims.d_head,
            d_ff=dims.d_ff,
            decoder_layers=dims.n_decoder_layers if family == "encoder_decoder" else None,
            ffn=dims.ffn,
            norm=dims.norm,
            positions=dims.positions,
            tied_embeddings=dims.tied_embeddings,
            biases=dims.biases,
            active_params=float(count.active),
            embedding_params=float(count.embedding),
            trainable_params=float(trainable_params),
            preset=preset,
            params_breakdown=dict(count.breakdown),
            dims=dims,
        )


@attrs.frozen(kw_only=True)
class AdaptSection:
    """How the model is adapted: the method, the preset it starts from, LoRA's rank and
    target matrices, and the frozen base's precision (QLoRA)."""

    method: str
    base: str | None = None
    """The preset adapted (`adapt.base` or `model.preset`); None for a run from scratch."""
    rank: int | None = None
    targets: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    frozen_precision: str | None = None
    alpha: float | None = None
    """LoRA's alpha: the adapters' update is scaled by alpha / rank."""
    dropout: float | None = None
    """Dropout on the adapters' input."""


@attrs.frozen(kw_only=True)
class DataSection:
    """`tokens` is what training passes over (after the quality filter; repeats included)."""

    tokens: float = attrs.field(metadata=COUNT)
    raw_tokens: float | None = attrs.field(default=None, metadata=COUNT)
    keep: float | None = None
    raw_tokens_needed: float | None = attrs.field(default=None, metadata=COUNT)
    """Raw corpus the compute-optimal D needs at this keep fraction (None without a filter)."""
    mix: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    domain_tokens: float | None = attrs.field(default=None, metadata=COUNT)
    """Tokens of the project's domain in the mix (mix[domain] × tokens)."""
    epochs: float | None = None
    """Passes over the usable corpus (raw tokens × keep), where the spec gives it."""


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


@attrs.frozen(kw_only=True)
class ScalingSection:
    optimal_params: float = attrs.field(metadata=COUNT)
    optimal_tokens: float = attrs.field(metadata=COUNT)
    tokens_per_param: float
    predicted_loss: float
    """Chinchilla's L(N, D) in nats per token, capped at `uniform_loss` (infinite when D is
    unknown: serialized as null)."""
    budget_flops: float | None = None
    """The FLOPs the time and money budget can buy (None without a budget)."""
    optimal_params_for_budget: float | None = attrs.field(default=None, metadata=COUNT)
    """Compute-optimal N for what the budget buys (counted as 6·N·D)."""
    optimal_tokens_for_budget: float | None = attrs.field(default=None, metadata=COUNT)
    """Compute-optimal D for what the budget buys."""
    law: str = "chinchilla-approach-3"
    loss_tokens: float | None = attrs.field(default=None, metadata=COUNT)
    """The D in predicted_loss: this run's tokens when it trains from scratch, the base
    model's pretraining tokens when it adapts a preset (None when unknown)."""
    fit_loss: float | None = None
    """L(N, D) as the fit gives it, before the cap (None when D is unknown)."""
    loss_in_fit_range: bool | None = None
    """Whether N and D lie in the ranges the fit was made on (70M-16B parameters, 5B-500B
    tokens; Hoffmann et al. 2022); None when D is unknown."""
    uniform_loss: float | None = None
    """ln(vocab): a uniform guess's loss, the cap on `predicted_loss`."""


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
    """The MFU time is computed at: the step-time model's, derived (`time.model` =
    'step-time'), or the spec's `train.mfu`, or the documented default."""
    optimizer_state: str = "fp32"
    """The dtype the optimizer's moments are kept in (fp32, bf16, int8)."""
    master_weights: str | None = None
    """The dtype of the master copy of the weights the optimizer updates (fp32 under mixed
    precision), or None when the optimizer updates the working weights in place."""
    attention: str = "flash"
    framework: str = "megatron-lm"
    """The training software the step time is for (`genaisdk.estimate.frameworks`)."""
    adaptation: str = "pretrain"
    global_batch_tokens: float | None = attrs.field(default=None, metadata=COUNT)
    global_batch_sequences: int | None = None
    grad_accumulation: int | None = None
    steps: int | None = None
    tensor_parallel: int = 1
    """t: devices each layer is split over (heads, FFN columns, vocabulary)."""
    pipeline_parallel: int = 1
    """p: pipeline stages the layers are cut into."""
    data_parallel: int = 1
    """d = devices / (t·p): replicas; ZeRO shards over them, the global batch divides by them."""
    sequence_parallel: bool = False
    virtual_stages: int = 1
    """v: interleaved chunks of layers per pipeline stage (1: the plain 1F1B schedule)."""

    @property
    def layout(self) -> str:
        """'tensor 8 x pipeline 2 x data 4 (sequence parallel, 2 chunks per stage)'."""
        text = f"tensor {self.tensor_parallel} x pipeline {self.pipeline_parallel} x data {self.data_parallel}"
        extras = (["sequence parallel"] if self.sequence_parallel else []) + (
            [f"{self.virtual_stages} chunks per stage"] if self.virtual_stages > 1 else []
        )
        return text + (f" ({', '.join(extras)})" if extras else "")


@attrs.frozen(kw_only=True)
class MemoryBreakdown:
    """Bytes per device. `total` is the peak: persistent state plus the worst phase plus the
    overheads; it is not a max of components (nor, in general, their plain sum, since the
    optimizer step and the backward pass do not hold their transients at the same time)."""

    weights: float = attrs.field(metadata=BYTES)
    gradients: float = attrs.field(metadata=BYTES)
    optimizer: float = attrs.field(metadata=BYTES)
    activations: float = attrs.field(metadata=BYTES)
    overheads: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map, metadata=BYTES)
    total: float = attrs.field(metadata=BYTES)
    host: float = attrs.field(default=0.0, metadata=BYTES)
    """Bytes per device kept in host memory by an offload strategy."""
    peak_phase: str = ""
    """The phase that sets the peak: 'forward', 'backward' or 'step' ('' for serving)."""
    at_peak: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map, metadata=BYTES)
    """Bytes of 'gradients' and 'activations' alive in `peak_phase` (empty for serving): the
    peak is persistent state (weights, optimizer, runtime) + these + that phase's buffers +
    fragmentation."""


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
    why_not: str = ""
    """Why it does not fit, when it does not: `over capacity`, `host memory` (what it
    offloads does not fit the host) or `not runnable` (the combination cannot run with
    the layout, e.g. ZeRO-2/3 or FSDP with a pipeline); empty when it fits."""


@attrs.frozen(kw_only=True)
class StageMemory:
    """Bytes per device of one pipeline stage (the whole model when p = 1)."""

    stage: int
    layers: int
    """Transformer layers the stage holds (all of them when p = 1)."""
    weights: float = attrs.field(metadata=BYTES)
    gradients: float = attrs.field(metadata=BYTES)
    optimizer: float = attrs.field(metadata=BYTES)
    activations: float = attrs.field(metadata=BYTES)
    total: float = attrs.field(metadata=BYTES)
    fits: bool = attrs.field(converter=bool)


@attrs.frozen(kw_only=True)
class MemorySection:
    per_device: MemoryBreakdown
    """The most loaded pipeline stage's device: the device's figure."""
    device_capacity: float = attrs.field(metadata=BYTES)
    fits: bool = attrs.field(converter=bool)
    headroom: float = attrs.field(
        init=False, metadata=COUNT, default=attrs.Factory(lambda s: s.device_capacity - s.per_device.total, takes_self=True)
    )
    """`device_capacity - total` in bytes (negative when it does not fit)."""
    options: tuple[MemoryOption, ...] = attrs.field(default=(), converter=tuple)
    host_capacity: float | None = attrs.field(default=None, metadata=BYTES)
    """Host memory per device offload may use (`budget.host_memory`, else the hardware
    record's), or None when neither gives it."""
    host_fits: bool | None = None
    """Whether what offload keeps in host memory fits it; None when nothing is offloaded or
    the host's memory is unknown (unchecked)."""
    stages: tuple[StageMemory, ...] = attrs.field(default=(), converter=tuple)
    """Every pipeline stage's peak, first to last (one entry when p = 1)."""
    most_loaded_stage: int = 0
    """The stage whose peak is `per_device`."""


@attrs.frozen(kw_only=True)
class StepSection:
    """One optimizer step by the step-time model (`genaisdk.estimate.steptime`): its seconds
    and their parts (compute, recompute, tensor_parallel, pipeline_transfer, bubble,
    data_parallel, optimizer; they sum to `seconds`), the micro-batches it runs per replica,
    and the utilization it achieves."""

    seconds: float
    micro_batches: int
    parts: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    mfu: float
    """Model FLOP/s per device / peak, derived (Chowdhery et al. 2022, App. B)."""
    hfu: float
    """The same counting recomputation."""
    bubble_fraction: float


@attrs.frozen(kw_only=True)
class TimeSection:
    seconds: float | None
    """None where the device quotes no throughput for the precision (GP406)."""
    days: float | None
    gpu_hours: float | None
    model: str = "default-mfu"
    """Where `seconds` comes from: 'step-time' (steps x the step-time model's step),
    'train.mfu' (the spec's MFU), 'default-mfu' (the documented default MFU, where the
    step-time model does not cover the run) or 'none' (the device quotes no throughput:
    no time)."""
    step: StepSection | None = None
    """The step-time model's step, where it covers the run (also when `train.mfu` overrides it)."""

    @property
    def mfu_label(self) -> str:
        """How views name `train.mfu`: 'MFU (derived)', 'MFU (spec)', 'MFU assumed', or
        'MFU (unused)' where the device quotes no throughput (no time to apply it to)."""
        return {"step-time": "MFU (derived)", "train.mfu": "MFU (spec)", "none": "MFU (unused)"}.get(self.model, "MFU assumed")


@attrs.frozen(kw_only=True)
class CostSection:
    usd: float | None
    """None where neither the spec nor the hardware record gives a price."""
    price_per_hour: float | None = None
    energy_kwh: float | None = None
    price_source: str | None = None
    """Who lists the price used and for what, with its date (the hardware record's
    `price_citation`), or "the spec's budget.price_per_hour"; None without a price."""
    price_date: str | None = None
    """When the catalog price was listed (YYYY-MM-DD); None for the spec's own price."""


def _within(budget: BudgetSection) -> bool:
    return all(r is None or r <= 1.0 for r in (budget.time_ratio, budget.cost_ratio))


@attrs.frozen(kw_only=True)
class BudgetSection:
    """The spec's limits and how the plan compares (ratio > 1: over budget by that factor)."""

    time_seconds: float | None = None
    cost_usd: float | None = None
    time_ratio: float | None = None
    cost_ratio: float | None = None
    within: bool = attrs.field(init=False, default=attrs.Factory(_within, takes_self=True))
    """Every ratio at most 1."""


@attrs.frozen(kw_only=True)
class InferenceMemory:
    """Bytes of one serving replica: total = weights + kv_cache + workspace + runtime."""

    weights: float = attrs.field(metadata=BYTES)
    kv_cache: float = attrs.field(metadata=BYTES)
    weight_constants: float = attrs.field(default=0.0, metadata=BYTES)
    """Of `weights`: a quantized format's scales and block constants (0 for 16-bit weights)."""
    workspace: float = attrs.field(default=0.0, metadata=BYTES)
    runtime: float = attrs.field(default=0.0, metadata=BYTES)
    total: float = attrs.field(metadata=BYTES)


@attrs.frozen(kw_only=True)
class InferenceSection:
    """One serving replica: weights at the serving precision, the KV cache in its own type,
    one step's workspace (at most `prefill_tokens` tokens) and the runtime context."""

    precision: str
    context: int
    batch: int
    memory: InferenceMemory
    kv_precision: str = "bf16"
    """The KV cache's type (fp32, bf16, fp16, fp8, int8)."""
    prefill_tokens: int = 0
    """Tokens one serving step may process (the chunked-prefill budget: `serve.prefill_tokens`,
    default 2048)."""

    @property
    def step_tokens(self) -> int:
        """Tokens the largest step processes: the budget, or every prompt token when fewer."""
        return min(self.prefill_tokens, self.context * self.batch) if self.prefill_tokens else self.context * self.batch
    fits: bool = attrs.field(converter=bool)
    devices_per_replica: int = 1


@attrs.frozen(kw_only=True)
class Plan:
    """A checked plan for one spec. See the module docstring and docs/plan-json.md."""

    spec_file: str = "<spec>"
    project: ProjectSection
    model: ModelSection
    adapt: AdaptSection | None = None
    data: DataSection
    compute: ComputeSection
    scaling: ScalingSection
    train: TrainSection
    memory: MemorySection
    time: TimeSection
    cost: CostSection
    budget: BudgetSection
    inference: InferenceSection
    reasons: tuple[Reason, ...] = attrs.field(default=(), converter=tuple)
    assumptions: tuple[Assumption, ...] = attrs.field(default=(), converter=tuple)
    diagnostics: tuple[Diagnostic, ...] = attrs.field(default=(), converter=tuple)
    derive: Callable[[], Mapping[str, tuple[Term, ...]]] | None = attrs.field(default=None, eq=False, repr=False, metadata=SKIP)
    """Computes `derivations` on first use (only `genai explain` and `--json
    --derivations` read them, so a plain `genai plan` does not pay for them)."""

    @functools.cached_property
    def derivations(self) -> Mapping[str, tuple[Term, ...]]:
        """Per topic (params, flops, memory, ...) the `Term`s each number is built from."""
        return dict(self.derive()) if self.derive is not None else {}

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
        out: dict[str, Any] = {"schema": SCHEMA, **fields_json(self)}
        if derivations:
            out["derivations"] = to_json(self.derivations)
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
