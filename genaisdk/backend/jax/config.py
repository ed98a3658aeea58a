"""`RunConfig`: everything one training run needs, resolved to records and plain numbers.

A run is built from its plan: `RunConfig.from_settings(run_settings(plan, spec))` looks the
plan's names up in the plugin registry (architecture, objective, optimizer, precision,
strategy) and takes every number from the `genaisdk.planning.run_settings.RunSettings`, the
one bridge from a plan to a run; nothing here decides an `auto`. It refuses what the JAX
backend cannot run (several resident models, offload, an architecture without a JAX model)
with an `UnsupportedError`; LoRA and QLoRA plans carry their adapters (`AdapterConfig`). Tests and programs can also build one directly with
`RunConfig.from_names`.

This module does not import JAX: a configuration can be built, checked and printed before
the JAX runtime is initialized (multi-host runs must call `jax.distributed.initialize`
first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from genaisdk.dims import Dimensions
from genaisdk.planning.run_settings import DEFAULT_LEARNING_RATE, DEFAULT_MIN_LR_RATIO, RunSettings
from genaisdk.records import Architecture, Objective, Optimizer, Precision, Strategy

DP_IMPLS = ("jit", "shard_map")
"""How data parallelism is expressed: `jax.jit` over a sharded batch (the compiler inserts
the gradient all-reduce), or `jax.shard_map` with an explicit `psum` of the gradients."""

RECOMPUTE = ("none", "selective", "full")

MAX_STEPS = 2**31 - 1
"""The most optimizer steps a run can count: the train state's step counter and optax's
update count are 32-bit integers."""

EIGHT_BIT_FORMS = ("adam", "adamw")
"""Optimizers whose moments the backend can keep block-wise quantized in 8 bits
(`genaisdk.backend.jax.quantized_adam`, Dettmers et al. 2022); `adam` runs as AdamW there,
which is the same update when weight decay is 0 (its default)."""


class BackendError(Exception):
    """A problem with the run's configuration, worded for the user (no traceback shown)."""


class UnsupportedError(BackendError, NotImplementedError):
    """Something the planner models but the JAX backend cannot run."""


def _positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BackendError(f"{attribute.name} must be a positive integer, got {value!r}")


def _in(options: tuple[str, ...]):
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            raise BackendError(f"{attribute.name} must be one of {', '.join(options)}; got {value!r}")

    return check


FROZEN_FORMATS = {"int4": "nf4", "nf4": "nf4", "int8": "int8"}
"""`adapt.frozen_precision` -> how the frozen base is stored (`genaisdk.backend.jax.quantize`)."""


@attrs.frozen(kw_only=True)
class AdapterConfig:
    """LoRA adapters over a frozen base (Hu et al. 2021; QLoRA, Dettmers et al. 2023, when
    the base is quantized). `targets` are projection names (`genaisdk.estimate.adaptation`:
    q, k, v, o, gate, up, down); the update of a target W is (alpha / rank)·A·B."""

    method: str
    """The adaptation record's name (lora, qlora)."""
    rank: int = attrs.field(validator=_positive_int)
    alpha: float
    dropout: float = 0.0
    targets: tuple[str, ...] = attrs.field(converter=tuple)
    frozen: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.in_(("nf4", "int8"))))
    """How the frozen base is stored: None (the compute dtype), 'nf4' or 'int8'."""

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise BackendError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if not self.alpha > 0:
            raise BackendError(f"LoRA alpha must be positive, got {self.alpha}")
        if not self.targets:
            raise BackendError("LoRA needs at least one target matrix (adapt.targets)")

    @property
    def scale(self) -> float:
        """alpha / rank (Hu et al. 2021, Sec. 4.1)."""
        return float(self.alpha) / float(self.rank)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AdapterConfig | None:
        return None if not data else cls(**dict(data))

    @classmethod
    def from_adapt(cls, adapt: Any, record: Any) -> AdapterConfig:
        """From a plan's adaptation section (`genaisdk.plans.AdaptSection`) and the method's
        record, whose defaults fill what the section leaves out."""
        from genaisdk.estimate.adaptation import expand_targets

        rank = int(adapt.rank or record.default_rank or 8)
        alpha = adapt.alpha if adapt.alpha is not None else record.default_alpha
        dropout = adapt.dropout if adapt.dropout is not None else record.default_dropout
        precision = adapt.frozen_precision or record.frozen_precision
        return cls(
            method=record.key,
            rank=rank,
            alpha=float(alpha if alpha is not None else rank),
            dropout=float(dropout or 0.0),
            targets=expand_targets(adapt.targets or record.default_targets or ("q", "v")),
            frozen=FROZEN_FORMATS.get(precision) if precision else None,
        )


@attrs.frozen(kw_only=True)
class RunConfig:
    """One run. Batch sizes are in sequences of `seq_len` tokens.

    `devices = data_parallel × tensor_parallel`: the devices of one tensor-parallel group
    share their sequences, so `global_batch = micro_batch × data_parallel × accumulation`:
    each optimizer step runs `accumulation` micro-steps of `micro_batch` sequences on each
    of the `data_parallel` groups (Megatron-LM's micro-batch, Narayanan et al. 2021, Sec. 2).
    """

    dims: Dimensions
    architecture: Architecture
    objective: Objective
    optimizer: Optimizer
    precision: Precision
    strategy: Strategy
    devices: int = attrs.field(default=1, validator=_positive_int)
    tensor_parallel: int = attrs.field(default=1, validator=_positive_int)
    """Devices that split each layer's heads, d_ff and vocabulary (Shoeybi et al. 2019)."""
    sequence_parallel: bool = False
    """Split the residual stream's positions over the tensor-parallel devices too (norms,
    residual additions; Korthikanti et al. 2022, Sec. 4.2.2); nothing to do when t = 1."""
    global_batch: int = attrs.field(validator=_positive_int)
    micro_batch: int = attrs.field(validator=_positive_int)
    accumulation: int = attrs.field(default=1, validator=_positive_int)
    seq_len: int = attrs.field(validator=_positive_int)
    learning_rate: float = DEFAULT_LEARNING_RATE
    warmup_steps: int = 0
    total_steps: int = attrs.field(default=1000, validator=_positive_int)
    min_lr_ratio: float = DEFAULT_MIN_LR_RATIO
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    dp_impl: str = attrs.field(default="jit", validator=_in(DP_IMPLS))
    recompute: str = attrs.field(default="none", validator=_in(RECOMPUTE))
    optimizer_state: str | None = attrs.field(default=None, validator=attrs.validators.optional(_in(("fp32", "bf16", "fp16", "int8"))))
    """The dtype of the optimizer's moments (the plan's `train.optimizer_state`); None: the
    records' default (`genaisdk.estimate.memory.optimizer_state_dtype`)."""
    optimizer_options: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda m: dict(m or {}))
    """Extra keyword arguments for the optax factory (b1, b2, eps, ...), over the record's defaults."""
    adapter: AdapterConfig | None = None
    """LoRA adapters over a frozen base (lora, qlora); None: every weight trains."""
    initial_loss_scale: float = 2.0**15
    """Dynamic loss scaling (precisions with loss_scaling): the starting scale ..."""
    loss_scale_interval: int = attrs.field(default=2000, validator=_positive_int)
    """... and the finite steps after which it doubles (Micikevicius et al. 2018, Sec. 3.2)."""

    def __attrs_post_init__(self) -> None:
        self._check_tensor_parallel()
        expected = self.micro_batch * self.data_parallel * self.accumulation
        if self.global_batch != expected:
            raise BackendError(
                f"global batch {self.global_batch} must equal micro_batch × data-parallel groups × accumulation = "
                f"{self.micro_batch} × {self.data_parallel} × {self.accumulation} = {expected}"
            )
        if self.seq_len > self.dims.context and self.dims.positions == "learned":
            raise BackendError(
                f"sequences of {self.seq_len} tokens do not fit the learned position table of "
                f"{self.dims.context} positions; raise model.context or shorten the sequences"
            )
        if self.total_steps > MAX_STEPS:
            raise BackendError(
                f"{self.total_steps:,} steps are more than a run can count ({MAX_STEPS:,}: the step counter is a "
                "32-bit integer); lower train.steps or --steps"
            )
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise BackendError(f"warmup_steps must be in [0, total_steps], got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise BackendError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.dp_impl == "shard_map" and (
            self.strategy.shards_weights
            or self.strategy.shards_gradients
            or self.strategy.shards_optimizer
            or self.tensor_parallel > 1
        ):
            what = (
                f"tensor parallel {self.tensor_parallel} splits the layers"
                if self.tensor_parallel > 1
                else f"strategy '{self.strategy.name}' shards state"
            )
            raise BackendError(
                f"dp_impl='shard_map' is plain data parallelism (replicated state); {what}, use dp_impl='jit'"
            )
        _check_objective_family(self.objective, self.architecture)
        if self.state_dtype == "int8" and self.optimizer.state_dtype != "int8" and self.optimizer.name not in EIGHT_BIT_FORMS:
            raise UnsupportedError(
                f"optimizer '{self.optimizer.name}' has no 8-bit form in the JAX backend (8-bit state: "
                f"{', '.join(EIGHT_BIT_FORMS)}); plan it with train.optimizer_state = bf16 or fp32"
            )

    @property
    def state_dtype(self) -> str:
        """The dtype the optimizer's moments are kept in (`optimizer_state`, else the records')."""
        from genaisdk.estimate.memory import optimizer_state_dtype

        return optimizer_state_dtype(self.optimizer.state_dtype, self.precision.optimizer_state_dtype, self.optimizer_state)

    def _check_tensor_parallel(self) -> None:
        """t must divide the devices, the query heads and d_ff (Megatron-LM splits whole heads
        and FFN columns; Shoeybi et al. 2019, Sec. 3). K/V heads and the vocabulary need not:
        what does not divide stays whole on every device (with a warning for the vocabulary)."""
        t = self.tensor_parallel
        if t == 1:
            return
        if self.devices % t:
            raise BackendError(
                f"tensor parallel {t} does not divide the {self.devices} devices; pick a divisor of {self.devices}"
            )
        dims = self.dims
        bad = [f"{name} = {size}" for name, size in (("heads", dims.heads), ("d_ff", dims.d_ff)) if size % t]
        if bad:
            raise BackendError(
                f"tensor parallel {t} must divide the model's query heads and d_ff ({', '.join(bad)}): "
                "each device holds whole heads and an equal share of the FFN; pick a divisor"
            )

    @property
    def data_parallel(self) -> int:
        """Data-parallel groups: devices / tensor_parallel."""
        return self.devices // self.tensor_parallel

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len

    @property
    def rows_per_micro_step(self) -> int:
        """Sequences in one micro-step, all devices together."""
        return self.micro_batch * self.data_parallel

    def evolve(self, **changes: Any) -> RunConfig:
        return attrs.evolve(self, **changes)

    @classmethod
    def from_names(
        cls,
        *,
        dims: Dimensions,
        architecture: str = "decoder",
        objective: str | None = None,
        optimizer: str = "adamw",
        precision: str = "fp32",
        strategy: str = "ddp",
        registry: Any = None,
        **fields: Any,
    ) -> RunConfig:
        """A config from registry names; `objective=None` takes the family's usual one."""
        registry = registry if registry is not None else _get_registry()
        arch = _lookup(registry, "architectures", architecture)
        obj = _lookup(registry, "objectives", objective) if objective else _family_objective(registry, arch)
        opt = _lookup(registry, "optimizers", optimizer)
        fields.setdefault("weight_decay", float(opt.defaults.get("weight_decay", 0.0)))
        return cls(
            dims=dims,
            architecture=arch,
            objective=obj,
            optimizer=opt,
            precision=_lookup(registry, "precisions", precision),
            strategy=_lookup(registry, "strategies", strategy),
            **fields,
        )

    @classmethod
    def from_settings(cls, settings: RunSettings, *, registry: Any = None) -> RunConfig:
        """The run `settings` describe (`genaisdk.planning.run_settings`), its records looked
        up. UnsupportedError for what the planner models and this backend cannot run."""
        registry = registry if registry is not None else _get_registry()
        model, train, adapt = settings.model, settings.train, settings.adapt
        arch = _lookup(registry, "architectures", model.architecture)
        if arch.jax_model is None:
            raise UnsupportedError(f"architecture '{arch.name}' has no JAX model; it can be planned but not trained")
        method = _lookup(registry, "adaptations", adapt.method)
        if len(method.resident_models) > 1:
            raise UnsupportedError(
                f"adapt.method = {adapt.method} keeps several models resident ({', '.join(method.resident_models)}), "
                "which the JAX backend does not train: pass --adapt finetune or --adapt lora to train the policy alone "
                "(recorded as a deviation)"
            )
        adapter = AdapterConfig.from_adapt(adapt, method) if method.trains and not method.full else None
        if train.pipeline_parallel > 1:
            raise UnsupportedError(
                f"the plan cuts the model into {train.pipeline_parallel} pipeline stages, and the JAX backend cannot run "
                "pipeline parallelism yet: plan it without (--set train.pipeline=1)"
            )
        strategy = _lookup(registry, "strategies", train.strategy)
        if strategy.offload_optimizer or strategy.offload_weights:
            raise UnsupportedError(
                f"strategy '{train.strategy}' offloads state to host memory, which the JAX backend does not do; "
                "plan it without offload (--set train.sharding=...)"
            )
        return cls(
            dims=model.dims,
            architecture=arch,
            objective=_lookup(registry, "objectives", model.objective),
            optimizer=_lookup(registry, "optimizers", train.optimizer),
            optimizer_state=train.optimizer_state,
            precision=_lookup(registry, "precisions", train.precision),
            strategy=strategy,
            devices=train.devices,
            tensor_parallel=train.tensor_parallel,
            sequence_parallel=train.sequence_parallel,
            global_batch=train.global_batch_sequences,
            micro_batch=train.micro_batch,
            accumulation=train.grad_accumulation,
            seq_len=model.context,
            learning_rate=train.learning_rate,
            warmup_steps=train.warmup_steps,
            total_steps=train.steps,
            min_lr_ratio=train.min_lr_ratio,
            weight_decay=train.weight_decay,
            grad_clip=train.grad_clip,
            seed=train.seed,
            recompute=train.recompute,
            adapter=adapter,
        )


def _check_objective_family(objective: Objective, architecture: Architecture) -> None:
    if objective.families and architecture.family not in objective.families:
        raise BackendError(
            f"objective '{objective.name}' trains {', '.join(objective.families)} models, "
            f"not the {architecture.family} architecture '{architecture.name}'"
        )


def _get_registry() -> Any:
    from genaisdk.registry import get_registry

    return get_registry()


def _lookup(registry: Any, kind: str, name: str) -> Any:
    record = registry.get(kind, name)
    if record is None:
        known = ", ".join(registry.names(kind))
        raise BackendError(f"unknown {kind[:-1] if kind != 'hardware' else kind} {name!r}; known: {known}")
    return record


def _family_objective(registry: Any, arch: Architecture) -> Objective:
    for record in registry.catalog("objectives").values():
        if arch.family in record.families and record.jax_loss:
            return record
    raise BackendError(f"no registered objective trains the {arch.family} family with the JAX backend")


def read_spec_checkpoint(spec: Any) -> Any:
    """The `genaisdk.checkpoints.hf_config.HFModel` that `model.from` names (relative to the
    spec's folder); a BackendError naming the file when it cannot be read."""
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.checkpoints.hf_config import read_checkpoint, spec_folder

    try:
        return read_checkpoint(spec_folder(spec, spec.project.model.checkpoint))
    except CheckpointFormatError as exc:
        raise BackendError(str(exc)) from None
