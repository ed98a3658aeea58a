"""The Spec: what a `.genai` file says, as frozen, keyword-only attrs classes.

`genaisdk.spec.build` makes these from the syntax tree after checking every name, type and
unit against the registry; everything downstream (planner, JAX backend) reads only these.

Conventions:
- Quantities are stored as plain numbers in canonical units: tokens and parameters as
  counts, time in seconds, memory in bytes, money in USD, percentages as fractions (0.51).
- A value the user left to the planner is `AUTO`; a value the user did not write is the
  field's default (often None, meaning "the planner's documented default").
- Names (task, family, precision, ...) are stored normalized (`normalize_name`), so they
  are registry keys.
- `Spec.spans` maps a dotted path ("train.precision") to where it was written, so a later
  stage can point a Diagnostic at the line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class Auto:
    """The `auto` keyword: the planner fills this value and says why."""

    def __repr__(self) -> str:
        return "AUTO"

    def __bool__(self) -> bool:
        return False


AUTO = Auto()


def is_auto(value: Any) -> bool:
    return isinstance(value, Auto)


def _map(value: Mapping | None) -> dict:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class Requirement:
    """`requires { genaisdk-moe = ">=0.1" }`: a plugin distribution and a version specifier."""

    distribution: str
    specifier: str = ""


@attrs.frozen(kw_only=True)
class ModelSpec:
    family: str | Auto = AUTO
    """An Architecture name (encoder, decoder, encoder-decoder, or a plugin's), or auto."""
    objective: str | Auto = AUTO
    size: float | Auto = AUTO
    """Total parameters, or auto (compute-optimal for the budget)."""
    preset: str | None = None
    checkpoint: str | None = None
    """`from = "path"`: a Hugging Face checkpoint folder (relative to the spec's folder) whose
    config.json gives the model's dimensions and whose weights `genai train` starts from."""
    context: int | Auto | None = None
    """Sequence length trained on, in tokens; auto = the longest that fits."""
    # Explicit dimensions override the preset's or the size-derived ones.
    layers: int | None = None
    decoder_layers: int | None = None
    d_model: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    vocab: int | None = None
    ffn: str | None = None
    norm: str | None = None
    positions: str | None = None
    tied_embeddings: bool | None = None
    biases: bool | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_map)
    """Architecture-specific keys declared by the architecture's `extra_dims` (experts, top_k)."""


@attrs.frozen(kw_only=True)
class DataSpec:
    tokens: float | None = None
    """Training tokens (after any quality filter)."""
    raw_tokens: float | None = None
    """Size of the raw corpus before filtering."""
    keep: float | None = None
    """Fraction of the raw corpus the quality filter keeps (`keep = 3%`)."""
    mix: Mapping[str, float] = attrs.field(factory=dict, converter=_map)
    """Domain -> fraction of tokens, e.g. {'legal': 0.51, 'web': 0.49}."""
    source: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Files, globs, JSON-lines paths, 'synthetic', or a builtin corpus name; for `genai train`."""
    vocab: int | None = None
    """Tokenizer vocabulary size, if it differs from the model's."""
    tokenizer: str | None = None
    """A tokenizer file (tokenizer.json, a SentencePiece .model) or a folder holding one,
    relative to the spec's folder; default: the checkpoint's, else the byte tokenizer."""
    held_out: float | None = None
    """Fraction held out for evaluation."""


@attrs.frozen(kw_only=True)
class AdaptSpec:
    method: str = "pretrain"
    """An Adaptation name: prompt, finetune, lora, qlora, pretrain, rlhf, dpo."""
    base: str | None = None
    """The preset being adapted, where it differs from model.preset."""
    rank: int | None = None
    targets: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    alpha: float | None = None
    """LoRA's α: the adapters' update is scaled by α / rank; None = the method's default."""
    dropout: float | None = None
    """Dropout on the adapters' input, a fraction; None = the method's default."""
    frozen_precision: str | None = None
    """The frozen base's quantization (int4 = NF4, int8); None = the method's."""


@attrs.frozen(kw_only=True)
class TrainSpec:
    precision: str | Auto = AUTO
    optimizer: str = "adamw"
    optimizer_state: str | None = None
    """fp32 | bf16 | int8: the optimizer moments' dtype; None = the records' default."""
    sharding: str | Auto = AUTO
    batch: float | None = None
    """Global batch, in tokens."""
    micro_batch: int | Auto = AUTO
    """Sequences per data-parallel replica per forward/backward pass."""
    recompute: str | Auto = AUTO
    """none | selective | full."""
    tensor: int | Auto = AUTO
    """Tensor-parallel degree t: each layer's heads, FFN columns and vocabulary split over t
    devices (Shoeybi et al. 2019)."""
    pipeline: int | Auto = AUTO
    """Pipeline-parallel degree p: the layers cut into p stages (Narayanan et al. 2021)."""
    sequence_parallel: bool | Auto = AUTO
    """Split the layer-norm and dropout activations over the tensor-parallel group too
    (Korthikanti et al. 2022); needs tensor > 1."""
    virtual_stages: int | Auto = AUTO
    """Chunks of layers per pipeline stage (the interleaved schedule, v); 1 is plain 1F1B."""
    attention: str = "flash"
    """flash | materialized."""
    framework: str = "megatron-lm"
    """The training software the step time is for (`genaisdk.estimate.frameworks`)."""
    mfu: float | None = None
    """Model-FLOPs utilization to assume; None = the step-time model's, derived (or the
    planner's documented default where that model does not cover the run)."""
    learning_rate: float | None = None
    warmup: int | None = None
    """Warmup steps (a count) for the JAX backend."""
    steps: int | None = None
    seed: int = 0
    grad_clip: float | None = 1.0
    weight_decay: float | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None


@attrs.frozen(kw_only=True)
class Bound:
    """A budget limit: `time <= 30 days` (op '<=') or `time = 30 days` (op '=')."""

    value: float
    op: str = "<="


@attrs.frozen(kw_only=True)
class DeviceSpec:
    """A device described in the spec instead of named from the catalog
    (`hardware = 2 x { memory = 48 GB, bf16 = 150 TFLOP/s }`). Memory in bytes, throughput
    in FLOP/s (dense), bandwidths in bytes/s, price in USD per device-hour; None where the
    spec says nothing."""

    name: str = "inline-device"
    memory: float
    fp32: float | None = None
    tf32: float | None = None
    bf16: float | None = None
    fp16: float | None = None
    fp8: float | None = None
    int8: float | None = None
    bandwidth: float | None = None
    link: float | None = None
    """Intra-node link per device, one direction."""
    network: float | None = None
    """Network between nodes per device, one direction."""
    node: int | None = None
    """Devices per node."""
    host_memory: float | None = None
    host_link: float | None = None
    """The device's link to host memory, one direction."""
    price_per_hour: float | None = None

    @property
    def peak_flops(self) -> dict[str, float]:
        """Dense peak FLOP/s by dtype, for the dtypes given."""
        return {d: float(v) for d in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8") if (v := getattr(self, d)) is not None}

    def record(self) -> Any:
        """The `genaisdk.records.Hardware` record this description makes: the figures given,
        None (or no peak) for the rest, and notes that say what the plan cannot answer."""
        from genaisdk.records import Hardware

        missing = [what for what, absent in (
            ("throughput (no time or cost)", not self.peak_flops),
            ("bandwidth", self.bandwidth is None),
            ("price (no cost)", self.price_per_hour is None),
        ) if absent]
        return Hardware(
            name=self.name,
            provider="spec",
            description="a device described inline in the spec",
            source="the spec's inline description",
            memory_bytes=int(round(self.memory)),
            peak_flops=self.peak_flops,
            bandwidth_bytes_per_s=self.bandwidth,
            intra_node_bytes_per_s=self.link,
            inter_node_bytes_per_s=self.network,
            devices_per_node=int(self.node) if self.node is not None else None,
            host_memory_bytes=int(round(self.host_memory)) if self.host_memory is not None else None,
            host_link_bytes_per_s=self.host_link,
            price_per_hour=self.price_per_hour,
            price_source="the spec's inline device" if self.price_per_hour is not None else "",
            price_note="" if self.price_per_hour is not None else "the inline device gives no price_per_hour",
            note=("not given: " + ", ".join(missing)) if missing else "",
        )


@attrs.frozen(kw_only=True)
class BudgetSpec:
    hardware: str | DeviceSpec | None = None
    """A Hardware name, or a device described inline."""
    devices: int | Auto | None = None
    """How many devices (`64 x a100-80gb`), or auto (as many as the time budget needs)."""
    time: Bound | None = None
    """Seconds."""
    cost: Bound | None = None
    """USD."""
    price_per_hour: float | None = None
    """USD per device-hour, overriding the hardware record's indicative price."""
    compute: Bound | None = None
    """Training FLOPs limit (`compute <= 3640 pf-days`), in FLOPs."""
    carbon_intensity: float | None = None
    """Grams of CO2-equivalent per kWh of the grid the run draws from (`400 g/kWh`)."""
    host_memory: float | None = None
    """Host memory per device for offload, in bytes, overriding the hardware record's."""


@attrs.frozen(kw_only=True)
class ServeSpec:
    precision: str | None = None
    """A Precision name for the served weights; None: bf16 (the planner says so)."""
    context: int | None = None
    batch: int = 1
    kv_precision: str | None = None
    """fp16 | bf16 | fp8 | int8; None: the serving activations' 16-bit type."""
    prefill_tokens: int | None = None
    """Tokens one serving step processes at most; None: the documented default (2048)."""


@attrs.frozen(kw_only=True)
class Project:
    name: str
    scope: str = ""
    task: str | None = None
    domain: str | None = None
    model: ModelSpec = attrs.field(factory=ModelSpec)
    data: DataSpec = attrs.field(factory=DataSpec)
    adapt: AdaptSpec = attrs.field(factory=AdaptSpec)
    train: TrainSpec = attrs.field(factory=TrainSpec)
    budget: BudgetSpec = attrs.field(factory=BudgetSpec)
    serve: ServeSpec | None = None
    requires: tuple[Requirement, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class Spec:
    version: int
    project: Project
    filename: str = "<spec>"
    source: str = attrs.field(default="", eq=False, repr=False)
    spans: Mapping[str, Any] = attrs.field(factory=dict, converter=_map, eq=False, repr=False)
    """Dotted path -> genaisdk.diagnostics.Span of where it was written."""
    diagnostics: tuple[Any, ...] = attrs.field(default=(), converter=tuple, eq=False, repr=False)
    """Warnings found while loading (genaisdk.diagnostics.Diagnostic); errors raise SpecError."""
    override_source: str = attrs.field(default="", eq=False, repr=False)
    """The `--set` overrides applied, one `path=value` per line (spans of file `--set`)."""

    @property
    def sources(self) -> dict[str, str]:
        """File name -> text, for `genaisdk.diagnostics.render_all(diagnostics, spec.sources)`:
        spans may point into the spec or into its `--set` overrides."""
        found = {self.filename: self.source}
        if self.override_source:
            found["--set"] = self.override_source
        return found
