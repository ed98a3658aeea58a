"""The typed records that plugins register.

Every registration hook (see `genaisdk.hookspecs`) hands the registry frozen, keyword-only
attrs records of one of these classes. The registry normalizes `name`, fills `provider`,
rejects duplicates and sorts. Everything the planner and the JAX backend know about a task,
a model family, a precision or a GPU comes from one of these records.

Records hold data and, where a plugin must supply behaviour (an architecture's parameter
count), plain callables. Anything that needs JAX is named by a dotted path
("package.module:function") and imported only by the JAX backend, so that loading the
registry never imports JAX.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from genaisdk.dims import Dimensions

FAMILIES = ("encoder", "decoder", "encoder_decoder")
"""The three stack layouts. Every architecture belongs to one of them."""

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
"""Numeric formats a precision computes in and a hardware record quotes peak FLOP/s for."""

DTYPE_BYTES: dict[str, float] = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
"""Storage bytes per element of each dtype (tf32 is stored as fp32; it only computes with a
10-bit mantissa). Scale factors of quantized formats are not included."""

FLOAT_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")
"""The floating-point formats among DTYPES (the rest are integer formats, quoted in OP/s)."""


def normalize_name(name: str) -> str:
    """The registry's spelling of a name: lower case, `_` and `-` equivalent (stored as `-`)."""
    return name.strip().lower().replace("_", "-")


def _name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{type(instance).__name__}.name must be a non-empty string, got {value!r}")


def finite(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: a float must be finite (NaN and infinities fail; ints and None pass).

    The comparisons of `attrs.validators.gt/ge` already reject NaN; this rejects infinity,
    which a planner dividing by a figure would turn into a silent zero or NaN.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{attribute.name}' must be a finite number: {value!r}")


_v = attrs.validators

POSITIVE = _v.optional(_v.and_(finite, _v.gt(0)))
"""None, or a finite number above 0."""
NON_NEGATIVE = _v.optional(_v.and_(finite, _v.ge(0)))
"""None, or a finite number of at least 0."""
FRACTION = _v.optional(_v.and_(finite, _v.ge(0), _v.le(1)))
"""None, or a number in [0, 1]."""
_FAMILY = _v.in_(FAMILIES)
_DTYPE = _v.in_(DTYPES)
_FAMILIES = _v.and_(_v.min_len(1), _v.deep_iterable(member_validator=_FAMILY))


def _frozen_map(value: Mapping | None) -> dict:
    return dict(sorted(dict(value or {}).items()))


def _peak_flops(instance: Any, attribute: attrs.Attribute, value: Mapping[str, float]) -> None:
    # Hand-written so that the message names the dtype whose figure is wrong. An empty map is
    # a device whose throughput is unknown (described inline with its memory only).
    for dtype, flops in value.items():
        if dtype not in DTYPES:
            raise ValueError(
                f"{type(instance).__name__}.peak_flops: unknown dtype {dtype!r}; use one of {DTYPES}"
            )
        if not (isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0):
            raise ValueError(
                f"{type(instance).__name__}.peak_flops[{dtype!r}] must be a finite number > 0, got {flops!r}"
            )


STATE_KINDS = ("params", "grads", "opt_state", "batch")
"""The kinds of training state a Strategy's `partition_rules` may shard."""

LOGICAL_AXES = ("batch", "length", "embed", "heads", "q_heads", "kv_heads", "kv", "mlp", "vocab", "layers", "experts")
"""Logical axis names model code gives array dimensions; partition rules map them to mesh axes.
Query heads and key/value heads are separate axes ('q_heads', 'kv_heads'; 'kv' is the head
size), so that grouped-query attention's fewer K/V heads can stay whole where they do not
divide the tensor-parallel degree; a rule for 'heads' applies to both kinds."""


def _partition_rules(instance: Any, attribute: attrs.Attribute, value: Mapping[str, Any]) -> None:
    for state, rules in value.items():
        if state not in STATE_KINDS:
            raise ValueError(f"Strategy.partition_rules: unknown state {state!r}; use one of {STATE_KINDS}")
        for rule in rules:
            if not (isinstance(rule, tuple) and len(rule) == 2):
                raise ValueError(
                    f"Strategy.partition_rules[{state!r}]: each rule is a (logical axis, mesh axis) pair, got {rule!r}"
                )
            logical, mesh = rule
            if logical not in LOGICAL_AXES:
                raise ValueError(
                    f"Strategy.partition_rules[{state!r}]: unknown logical axis {logical!r}; use one of {LOGICAL_AXES}"
                )
            names = mesh if isinstance(mesh, tuple) else (mesh,)
            if mesh is not None and not (names and all(isinstance(n, str) and n for n in names)):
                raise ValueError(
                    f"Strategy.partition_rules[{state!r}]: mesh axis must be a name, a tuple of names or None, got {mesh!r}"
                )


def _rule(rule: Any) -> tuple:
    rule = tuple(rule)
    if len(rule) == 2 and isinstance(rule[1], list):
        rule = (rule[0], tuple(rule[1]))
    return rule


def _rule_table(value: Mapping | None) -> dict:
    return {state: tuple(_rule(rule) for rule in rules) for state, rules in _frozen_map(value).items()}


@attrs.frozen(kw_only=True)
class Record:
    """Common fields. `provider` is set by the registry to the plugin that registered it."""

    name: str = attrs.field(validator=_name)
    description: str = ""
    source: str = ""
    """Where the figures come from: paper and table, datasheet, or 'definition'."""
    provider: str = ""
    aliases: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Other names `Registry.get` accepts for this record (e.g. 'h100-80gb' for 'h100-sxm')."""

    @property
    def key(self) -> str:
        return normalize_name(self.name)


@attrs.frozen(kw_only=True)
class Task(Record):
    """A task a project can name (`task = summarization`) and the model it usually wants."""

    family: str = attrs.field(validator=_FAMILY)
    objective: str
    """Name of the Objective record pretraining for this family normally uses."""
    examples: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class ParamCount:
    """Parameter counts of one model.

    `total` is what memory holds; `active` is what one token passes through (equal to total
    except for mixture-of-experts); `embedding` is the token/position embedding share (Kaplan
    et al. 2020 count N without it); `largest_layer` is the biggest single block, the unit an
    FSDP all-gather materializes.
    """

    total: int = attrs.field(validator=NON_NEGATIVE)
    active: int = attrs.field(validator=NON_NEGATIVE)
    embedding: int = attrs.field(default=0, validator=NON_NEGATIVE)
    largest_layer: int = attrs.field(default=0, validator=NON_NEGATIVE)
    breakdown: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    """Named parts that sum to `total` (e.g. {'embedding': ..., 'attention': ..., 'ffn': ...})."""


@attrs.frozen(kw_only=True)
class DimensionField:
    """An extra key an architecture accepts in the spec's `model { }` block (e.g. `experts`)."""

    name: str = attrs.field(validator=_name)
    kind: str = "count"
    """'count' (a positive integer), 'number', 'fraction' (percent), or 'name'."""
    description: str = ""
    default: Any = None


@attrs.frozen(kw_only=True)
class Architecture(Record):
    """A model architecture: how to count, cost and (optionally) build a `Dimensions`.

    The callables are pure functions of the dimensions; their formulas cite their sources.

    - `count_params(dims) -> ParamCount`
    - `flops_per_token(dims, context) -> float`: training model FLOPs per token, forward and
      backward, including attention (PaLM appendix B: 6·N + 12·L·H·Q·T), with N the active
      non-embedding-lookup parameters.
    - `activation_bytes(dims, *, seq, micro_batch, recompute, flash, bytes_per_value,
      tensor_parallel=1) -> Mapping[str, float]`: activation memory of one micro-batch held for
      the backward pass, by part (Korthikanti et al. 2022), whole model, one device.
    - `jax_model`: "module:function" that builds the JAX model, or None if the JAX backend
      cannot train this architecture.
    """

    family: str = attrs.field(validator=_FAMILY)
    count_params: Callable[[Dimensions], ParamCount]
    flops_per_token: Callable[[Dimensions, int], float]
    activation_bytes: Callable[..., Mapping[str, float]]
    extra_dims: tuple[DimensionField, ...] = attrs.field(default=(), converter=tuple)
    jax_model: str | None = None


@attrs.frozen(kw_only=True)
class Objective(Record):
    """A pretraining objective and the families it fits."""

    families: tuple[str, ...] = attrs.field(converter=tuple, validator=_FAMILIES)
    noise_density: float = attrs.field(default=0.0, validator=FRACTION)
    """Fraction of tokens masked or corrupted (BERT 15%; T5 15%); 0 for causal LM."""
    mean_span: float = attrs.field(default=1.0, validator=POSITIVE)
    """Mean corrupted span length (T5: 3)."""
    loss_fraction: float = attrs.field(default=1.0, validator=FRACTION)
    """Fraction of positions that carry loss (masked LM: the masked 15%)."""
    jax_loss: str | None = None
    """'module:function' building the JAX batch and loss, or None."""


@attrs.frozen(kw_only=True)
class Precision(Record):
    """Bytes per element for each piece of training state, and how to run it.

    Bytes are per parameter (weights, gradients, master copy) or per activation value.
    `compute_dtype` names the hardware peak that applies (a key of Hardware.peak_flops).
    A precision with `trainable=False` (int8, int4) is only for frozen or served weights.
    """

    weight_bytes: float = attrs.field(validator=POSITIVE)
    """The working copy of the weights used in forward/backward."""
    gradient_bytes: float = attrs.field(validator=NON_NEGATIVE)
    master_bytes: float = attrs.field(default=0.0, validator=NON_NEGATIVE)
    """An extra full-precision copy kept for the optimizer step (mixed precision: 4)."""
    activation_bytes: float = attrs.field(default=2.0, validator=POSITIVE)
    compute_dtype: str = attrs.field(default="bf16", validator=_DTYPE)
    param_dtype: str = attrs.field(default="bf16", validator=_DTYPE)
    """Storage dtype of the working weights (fp32, bf16, fp16, fp8, int8, int4)."""
    loss_scaling: bool = False
    trainable: bool = True
    optimizer_state_dtype: str = attrs.field(default="fp32", validator=_DTYPE)
    """The dtype optimizer moments are kept in under this precision, unless the optimizer's
    own format says otherwise (8-bit Adam) or the spec's `train.optimizer_state` does."""


@attrs.frozen(kw_only=True)
class Optimizer(Record):
    """Optimizer state bytes per trainable parameter and how to build it with optax."""

    state_bytes: float = attrs.field(validator=NON_NEGATIVE)
    """E.g. Adam: two fp32 moments = 8; SGD with momentum: 4; plain SGD: 0; 8-bit Adam: 2."""
    state_dtype: str = attrs.field(default="fp32", validator=_DTYPE)
    """The dtype `state_bytes` is counted in. A record whose state is fp32 takes the dtype the
    precision or the spec's `train.optimizer_state` asks for; any other (8-bit Adam's int8)
    is the optimizer's own format and is kept."""
    update_buffers: float = attrs.field(default=0.0, validator=NON_NEGATIVE)
    """Parameter-sized buffers, at the state dtype, that one update materializes on top of its
    state (Adam's sqrt(v̂) + ε in a multi-tensor step: 1; in-place SGD: 0)."""
    state_note: str = ""
    optax_factory: str | None = None
    """'module:function(learning_rate, **options) -> optax.GradientTransformation', or None."""
    defaults: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)


@attrs.frozen(kw_only=True)
class Strategy(Record):
    """A data-parallel distribution strategy: what it shards and what it sends.

    The ZeRO stages (Rajbhandari et al. 2020): stage 1 shards optimizer state, stage 2 also
    gradients, stage 3 (FSDP) also weights, each over the data-parallel degree.

    `partition_rules` is the JAX rule table, keyed by the kind of state ('params', 'grads',
    'opt_state', 'batch'); each value is an ordered tuple of (logical axis, mesh axis, a tuple
    of mesh axes split over together, or None) pairs. A logical axis is one of `LOGICAL_AXES`
    ('heads' stands for both 'q_heads' and 'kv_heads'); the backend's mesh axes are 'data'
    (the data-parallel group, over which ZeRO and FSDP shard), and 'tensor' x 'kv_replicas'
    (the tensor-parallel group; K/V heads split over 'tensor' only). An array dimension named
    by a logical axis is sharded over the first rule's mesh axes that divide it and are not
    yet used; otherwise it is replicated.
    """

    shards_optimizer: bool = False
    shards_gradients: bool = False
    shards_weights: bool = False
    offload_optimizer: bool = False
    """Optimizer state (and master weights) live in host memory (ZeRO-Offload)."""
    offload_weights: bool = False
    communication: float = attrs.field(default=2.0, validator=NON_NEGATIVE)
    """Bytes sent per parameter-byte per step, as a multiple of Ψ: DDP and ZeRO-1/2: 2Ψ
    (reduce-scatter + all-gather); ZeRO-3: 3Ψ (Rajbhandari et al. 2020, Sec. 7)."""
    partition_rules: Mapping[str, tuple[tuple[str, str | None], ...]] = attrs.field(
        factory=dict, converter=_rule_table, validator=_partition_rules
    )


@attrs.frozen(kw_only=True)
class Hardware(Record):
    """An accelerator: memory, dense peak FLOP/s per dtype, bandwidth, power, its node, its price.

    Device figures (per device: one GPU, or one TPU chip):

    - `memory_bytes`, `bandwidth_bytes_per_s` (device memory), `peak_flops` (dense: no 2:4
      sparsity), `power_watts` (board power).

    Node figures, from a named reference system (`system`: a DGX, a cloud instance, a TPU
    host), all per device and, for links, in bytes/s in ONE direction (a vendor's
    "bidirectional" figure is halved; the time of a ring all-reduce of S bytes over n devices
    is 2(n-1)/n · S / this figure):

    - `intra_node_bytes_per_s`: the scale-up link between devices of one node (NVLink through
      NVSwitch, a PCIe switch, TPU ICI), per device; `intra_node_link` names it;
    - `inter_node_bytes_per_s`: the network between nodes (InfiniBand, RoCE, TPU DCN) that
      serves one device: the node's NIC line rate divided by its devices;
    - `devices_per_node`: devices sharing one host and its intra-node link;
    - `host_memory_bytes`: the host's CPU memory divided by `devices_per_node`, the room an
      offloading strategy has per device;
    - `host_link_bytes_per_s`: the device's own link to its host's memory (PCIe x16, or
      NVLink-C2C), one direction: what an offloading strategy's transfers cross.

    Any of them is None where no source gives it; `note` says which and why.

    Price: `price_per_hour` is an on-demand USD list price per device-hour, read from
    `price_source` on `price_date` (ISO 8601); None, with `price_note` saying why, where no
    dated public price was found. Prices move; a spec's `budget.price_per_hour` overrides.
    """

    vendor: str = ""
    kind: str = "gpu"
    """'gpu' or 'tpu'."""
    memory_bytes: int = attrs.field(validator=POSITIVE)
    peak_flops: Mapping[str, float] = attrs.field(converter=_frozen_map, validator=_peak_flops)
    """Dense peak FLOP/s (or OP/s for int8) keyed by DTYPES; a dtype left out is unsupported.
    Empty: the throughput is unknown (a device described inline without it), and a plan on
    it answers memory but not time."""
    bandwidth_bytes_per_s: float | None = attrs.field(default=None, validator=POSITIVE)
    """Device memory bandwidth, bytes/s; None where unknown (inline devices only: every
    catalog record gives it)."""
    power_watts: float | None = attrs.field(default=None, validator=POSITIVE)
    """Board power (TDP) in watts; None where the vendor publishes none (say why in `description`)."""
    intra_node_bytes_per_s: float | None = attrs.field(default=None, validator=POSITIVE)
    """Scale-up link bandwidth per device, one direction, bytes/s (H100 SXM NVLink 4: 450e9)."""
    intra_node_link: str = ""
    """What the intra-node link is ("NVLink 4 via NVSwitch", "PCIe Gen4 x16", "ICI")."""
    inter_node_bytes_per_s: float | None = attrs.field(default=None, validator=POSITIVE)
    """Network bandwidth between nodes per device, one direction, bytes/s (400 Gb/s NIC: 50e9)."""
    devices_per_node: int | None = attrs.field(default=None, validator=POSITIVE)
    host_memory_bytes: int | None = attrs.field(default=None, validator=POSITIVE)
    """Host (CPU) memory per device in bytes: the reference system's memory / devices_per_node."""
    host_link_bytes_per_s: float | None = attrs.field(default=None, validator=POSITIVE)
    """The device's link to host memory, one direction, bytes/s (PCIe Gen4 x16: 32e9)."""
    system: str = ""
    """The reference system the node figures describe, with its source."""
    price_per_hour: float | None = attrs.field(default=None, validator=NON_NEGATIVE)
    """On-demand USD per device-hour from `price_source` on `price_date`; None where none was found."""
    price_source: str = ""
    """Who lists `price_per_hour` and for what (provider, instance or SKU, region, page)."""
    price_date: str = attrs.field(
        default="", validator=attrs.validators.matches_re(r"(\d{4}-\d{2}-\d{2})?")
    )
    """When the price was listed or read, YYYY-MM-DD ("" with no price)."""
    price_note: str = ""
    """How the per-device figure follows from the source (an instance price / its GPUs), or why
    there is no price."""
    note: str = ""
    """What this record cannot state, and why (figures no source gives, derived figures)."""

    def peak_for(self, dtype: str) -> tuple[float, str]:
        """(dense peak FLOP/s, the dtype it is quoted for) for arithmetic in `dtype`: its own
        figure where the record quotes one, else the nearest quoted floating-point format by
        element width (fp32 falls back on tf32, then on the 16-bit formats; fp8 on the 16-bit
        ones), preferring the wider of two equally near; integer OP/s never stand in for
        floating-point arithmetic. (0.0, "") when no such figure is quoted. A fallback is an
        approximation the caller must say it made."""
        if dtype in self.peak_flops:
            return float(self.peak_flops[dtype]), dtype
        floats = [d for d in self.peak_flops if d in FLOAT_DTYPES]
        if not floats:
            return 0.0, ""
        width = DTYPE_BYTES.get(dtype, 4)
        nearest = min(floats, key=lambda d: (abs(DTYPE_BYTES[d] - width), -DTYPE_BYTES[d], DTYPES.index(d)))
        return float(self.peak_flops[nearest]), nearest

    @property
    def price_citation(self) -> str:
        """One line naming the price's source and date ("RunPod ..., 2025-07-13: one GPU of a pod"),
        or why there is no price."""
        if self.price_per_hour is None or not self.price_source:
            return self.price_note
        cited = f"{self.price_source}, {self.price_date}" if self.price_date else self.price_source
        return f"{cited}: {self.price_note}" if self.price_note else cited


@attrs.frozen(kw_only=True)
class Preset(Record):
    """A published model: its architecture, dimensions and published parameter count."""

    architecture: str
    """Name of the Architecture record (encoder, decoder, encoder-decoder, ...)."""
    dims: Dimensions
    published_params: float | None = attrs.field(default=None, validator=POSITIVE)
    """The parameter count the source states (may be rounded, e.g. 175e9)."""
    note: str = ""
    """Why the computed count differs from the published one, where it does."""
    training_tokens: float | None = attrs.field(default=None, validator=POSITIVE)


@attrs.frozen(kw_only=True)
class Adaptation(Record):
    """How a model is adapted: which weights train and which models stay resident.

    `trainable_fraction` is None when it is computed from the spec (LoRA rank and targets).
    `resident_models` names the model copies held in memory (RLHF with PPO: policy, value,
    reference, reward; DPO: policy, reference); the first one trains.
    """

    trains: bool = True
    full: bool = True
    """All weights train (fine-tune, pretrain) rather than adapters."""
    trainable_fraction: float | None = attrs.field(default=None, validator=FRACTION)
    frozen_precision: str | None = None
    """Precision of frozen base weights (QLoRA: int4)."""
    default_rank: int | None = attrs.field(default=None, validator=POSITIVE)
    default_targets: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    default_alpha: float | None = attrs.field(default=None, validator=POSITIVE)
    """LoRA's α (the update is scaled by α / rank); None: α = rank, a scale of 1."""
    default_dropout: float = attrs.field(default=0.0, validator=FRACTION)
    """Dropout on the adapters' input (Hu et al. 2021's `lora_dropout`)."""
    resident_models: tuple[str, ...] = attrs.field(default=("policy",), converter=tuple)
    trained_models: tuple[str, ...] = attrs.field(default=("policy",), converter=tuple)
    """Which of `resident_models` train (hold gradients and optimizer state): PPO trains the
    policy and the value model; nothing trains when `trains` is False."""
    from_scratch: bool = False
    """Weights start random (pretraining) rather than from a base model."""


RECORD_KINDS: dict[str, type[Record]] = {
    "tasks": Task,
    "architectures": Architecture,
    "objectives": Objective,
    "precisions": Precision,
    "optimizers": Optimizer,
    "strategies": Strategy,
    "hardware": Hardware,
    "presets": Preset,
    "adaptations": Adaptation,
}
"""Catalog kind -> record class; the hook for kind K is `genaisdk_K`."""
