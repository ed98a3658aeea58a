"""`RunConfig`: everything one training run needs, resolved to records and plain numbers.

A run is built from a Spec by `RunConfig.from_spec`, which looks every name up in the plugin
registry (architecture, objective, optimizer, precision, strategy) and fills each `auto` the
spec left with a small-run default (`fill_defaults`, one function, so a better filler from
the planner can replace it in one place). Tests and programs can also build one directly
with `RunConfig.from_names`.

This module does not import JAX: a configuration can be built, checked and printed before
the JAX runtime is initialized (multi-host runs must call `jax.distributed.initialize`
first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from genaisdk.dims import Dimensions
from genaisdk.records import Architecture, Objective, Optimizer, Precision, Strategy

DP_IMPLS = ("jit", "shard_map")
"""How data parallelism is expressed: `jax.jit` over a sharded batch (the compiler inserts
the gradient all-reduce), or `jax.shard_map` with an explicit `psum` of the gradients."""

RECOMPUTE = ("none", "selective", "full")

DEFAULT_LEARNING_RATE = 6e-4
"""GPT-3 Small's peak learning rate (Brown et al. 2020, Table 2.1): a safe default for the
small models this backend usually trains from a spec that names none."""

DEFAULT_MIN_LR_RATIO = 0.1
"""Cosine decay to 10% of the peak (Hoffmann et al. 2022, Sec. 3 / Appendix B; GPT-3 Sec. 2.3)."""

DEFAULT_WEIGHT_DECAY = 0.1
"""GPT-3's weight decay (Brown et al. 2020, Appendix B)."""

DEFAULT_TOKENS_PER_BATCH = 16_384
"""Global batch for a spec that names none: small enough for a laptop CPU run."""


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


@attrs.frozen(kw_only=True)
class RunConfig:
    """One run. Batch sizes are in sequences of `seq_len` tokens.

    `global_batch = micro_batch × devices × accumulation`: each optimizer step runs
    `accumulation` micro-steps of `micro_batch` sequences on each of `devices` devices.
    """

    dims: Dimensions
    architecture: Architecture
    objective: Objective
    optimizer: Optimizer
    precision: Precision
    strategy: Strategy
    devices: int = attrs.field(default=1, validator=_positive_int)
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
    optimizer_options: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda m: dict(m or {}))
    """Extra keyword arguments for the optax factory (b1, b2, eps, ...), over the record's defaults."""
    initial_loss_scale: float = 2.0**15
    """Dynamic loss scaling (precisions with loss_scaling): the starting scale ..."""
    loss_scale_interval: int = attrs.field(default=2000, validator=_positive_int)
    """... and the finite steps after which it doubles (Micikevicius et al. 2018, Sec. 3.2)."""

    def __attrs_post_init__(self) -> None:
        expected = self.micro_batch * self.devices * self.accumulation
        if self.global_batch != expected:
            raise BackendError(
                f"global batch {self.global_batch} must equal micro_batch × devices × accumulation = "
                f"{self.micro_batch} × {self.devices} × {self.accumulation} = {expected}"
            )
        if self.seq_len > self.dims.context and self.dims.positions == "learned":
            raise BackendError(
                f"sequences of {self.seq_len} tokens do not fit the learned position table of "
                f"{self.dims.context} positions; raise model.context or shorten the sequences"
            )
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise BackendError(f"warmup_steps must be in [0, total_steps], got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise BackendError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.dp_impl == "shard_map" and (
            self.strategy.shards_weights or self.strategy.shards_gradients or self.strategy.shards_optimizer
        ):
            raise BackendError(
                f"dp_impl='shard_map' is plain data parallelism (replicated state); strategy "
                f"'{self.strategy.name}' shards state, use dp_impl='jit'"
            )
        _check_objective_family(self.objective, self.architecture)

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_len

    @property
    def rows_per_micro_step(self) -> int:
        """Sequences in one micro-step, all devices together."""
        return self.micro_batch * self.devices

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
    def from_spec(
        cls,
        spec: Any,
        *,
        registry: Any = None,
        steps: int | None = None,
        devices: int | None = None,
    ) -> RunConfig:
        """Resolve a `genaisdk.spec.model.Spec` into a run on `devices` devices.

        `devices=None` uses every device JAX sees. Either way this initializes the JAX
        runtime (the platform decides the precision `auto` gives).
        """
        registry = registry if registry is not None else _get_registry()
        import jax

        if devices is None:
            devices = jax.device_count()
        return fill_defaults(spec, registry=registry, steps=steps, devices=devices, platform=jax.default_backend())


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


# ----------------------------------------------------------------------------- from a spec

_DIM_FIELDS = (
    "layers",
    "decoder_layers",
    "d_model",
    "heads",
    "kv_heads",
    "head_dim",
    "d_ff",
    "vocab",
    "ffn",
    "norm",
    "positions",
    "tied_embeddings",
    "biases",
)

DEFAULT_VOCAB = 384
"""The byte tokenizer's 259 ids rounded up to a multiple of 128, leaving 125 sentinels."""


def _is_auto(value: Any) -> bool:
    from genaisdk.spec.model import is_auto

    return is_auto(value)


def resolve_dims(spec: Any, registry: Any, plan: Any = None) -> Dimensions:
    """The model's dimensions, the same the plan sizes: a preset's, overridden by explicit
    `model { }` fields; otherwise the plan's model (which keeps every explicit field and
    fills the rest: the shape for `size`, the FFN, norm and position kinds). Only when the
    spec cannot be planned are explicit layers, d_model, heads and d_ff completed with the
    `Dimensions` defaults."""
    model = spec.project.model
    if model.checkpoint:
        # The checkpoint's own dimensions, numerics included (epsilon, rotary scaling, ...),
        # which a plan's model section does not carry.
        dims = read_spec_checkpoint(spec).dims
        if model.context is not None and not _is_auto(model.context):
            dims = dims.evolve(context=model.context, position_table=dims.position_table or dims.context)
        return dims
    changes = {name: getattr(model, name) for name in _DIM_FIELDS if getattr(model, name) is not None}
    if model.context is not None:
        changes["context"] = model.context
    if model.extra:
        changes["extra"] = dict(model.extra)
    if model.preset:
        return _lookup(registry, "presets", model.preset).dims.evolve(**changes)
    from genaisdk.diagnostics import SpecError

    try:
        if plan is None:
            from genaisdk.planner import plan as make_plan

            plan = make_plan(spec, registry=registry)
        return dims_from_plan(plan.model).evolve(**{k: v for k, v in changes.items() if k == "extra"})
    except SpecError:
        if not all(name in changes for name in ("layers", "d_model", "heads", "d_ff")):
            raise
    changes.setdefault("vocab", spec.project.data.vocab or DEFAULT_VOCAB)
    changes.setdefault("context", 1024)
    return Dimensions(**changes)


def read_spec_checkpoint(spec: Any) -> Any:
    """The `genaisdk.checkpoints.hf_config.HFModel` that `model.from` names (relative to the
    spec's folder); a BackendError naming the file when it cannot be read."""
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.checkpoints.hf_config import read_checkpoint, spec_folder

    try:
        return read_checkpoint(spec_folder(spec, spec.project.model.checkpoint))
    except CheckpointFormatError as exc:
        raise BackendError(str(exc)) from None


def dims_from_plan(m: Any) -> Dimensions:
    """Dimensions from a plan's model section (`genaisdk.plan.ModelSection`)."""
    return Dimensions(
        layers=m.layers,
        decoder_layers=m.decoder_layers,
        d_model=m.d_model,
        heads=m.heads,
        kv_heads=m.kv_heads,
        head_dim=m.head_dim,
        d_ff=m.d_ff,
        vocab=m.vocab,
        context=m.context,
        ffn=m.ffn,
        norm=m.norm,
        positions=m.positions,
        tied_embeddings=m.tied_embeddings,
        biases=m.biases,
    )


def fill_defaults(
    spec: Any, *, registry: Any, steps: int | None, devices: int, plan: Any = None, platform: str = "cpu"
) -> RunConfig:
    """The one place where a spec's `auto`s and omissions become a small-run configuration.

    - family / objective: the task's, else decoder / the family's objective;
    - precision `auto`: fp32 on a CPU (which computes 16-bit products in fp32 anyway),
      bf16 mixed precision on GPUs and TPUs;
    - sharding `auto`: ddp;
    - batch: `train.batch` tokens (default 16k) rounded to whole sequences and to a multiple
      of the device count;
    - micro_batch `auto`: the whole per-device share in one micro-step, capped at 8 sequences
      (with accumulation for the rest);
    - steps: `steps`, else `train.steps`, else data.tokens / batch tokens;
    - warmup: `train.warmup`, else 5% of the steps (at most 2000).
    """
    project = spec.project
    model, train = project.model, project.train
    family = None if _is_auto(model.family) else model.family
    task = registry.get("tasks", project.task) if project.task else None
    if family is None:
        family = task.family if task is not None else "decoder"
    arch = _lookup(registry, "architectures", family)
    if arch.jax_model is None:
        raise UnsupportedError(f"architecture '{arch.name}' has no JAX model; it can be planned but not trained")
    if not _is_auto(model.objective):
        objective = _lookup(registry, "objectives", model.objective)
    elif task is not None and task.family == arch.family:
        objective = _lookup(registry, "objectives", task.objective)
    else:
        objective = _family_objective(registry, arch)
    dims = resolve_dims(spec, registry, plan)
    seq_len = model.context or dims.context
    if _is_auto(train.precision):
        precision = "fp32" if platform == "cpu" else "bf16"
    else:
        precision = train.precision
    strategy = "ddp" if _is_auto(train.sharding) else train.sharding
    optimizer = _lookup(registry, "optimizers", train.optimizer)

    batch_tokens = train.batch or DEFAULT_TOKENS_PER_BATCH
    sequences = max(devices, round(batch_tokens / seq_len))
    per_device = max(1, math.ceil(sequences / devices))
    if _is_auto(train.micro_batch):
        micro = _largest_divisor_at_most(per_device, 8)
    else:
        micro = int(train.micro_batch)
    accumulation = max(1, math.ceil(per_device / micro))
    global_batch = micro * devices * accumulation

    total = steps or train.steps
    if total is None:
        tokens = project.data.tokens
        total = max(1, round(tokens / (global_batch * seq_len))) if tokens else 1000
    warmup = int(train.warmup) if train.warmup is not None else min(2000, total // 20)
    weight_decay = train.weight_decay
    if weight_decay is None:
        weight_decay = float(optimizer.defaults.get("weight_decay", DEFAULT_WEIGHT_DECAY))
    recompute = "none" if _is_auto(train.recompute) else train.recompute
    return RunConfig(
        dims=dims,
        architecture=arch,
        objective=objective,
        optimizer=optimizer,
        precision=_lookup(registry, "precisions", precision),
        strategy=_lookup(registry, "strategies", strategy),
        devices=devices,
        global_batch=global_batch,
        micro_batch=micro,
        accumulation=accumulation,
        seq_len=seq_len,
        learning_rate=train.learning_rate or DEFAULT_LEARNING_RATE,
        warmup_steps=min(warmup, total),
        total_steps=total,
        min_lr_ratio=DEFAULT_MIN_LR_RATIO,
        weight_decay=weight_decay,
        grad_clip=train.grad_clip,
        seed=train.seed,
        recompute=recompute,
    )


def _largest_divisor_at_most(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1
