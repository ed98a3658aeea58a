"""The jitted train and eval steps, and the state they carry.

`Trainer(config, mesh)` assembles one run from its records: the model (architecture's
`jax_model`), the objective (`jax_loss`), the optimizer (`optax_factory`) with a warmup +
cosine schedule, the precision policy with its loss scaler, and the shardings that the
strategy's rule table gives every piece of state. Its `train_step(state, batch)` is one
optimizer step:

1. the batch [accumulation, sequences, positions] is split into micro-batches along its
   first axis, run with `jax.lax.scan`, and their gradients summed; every token weighs the
   same (each micro-batch's summed loss is divided by the token count of the whole step);
2. the gradients are unscaled (fp16), checked for inf/NaN, clipped by global norm;
3. the optimizer updates parameters and state; a step with non-finite gradients under loss
   scaling keeps the old parameters and optimizer state.

Data parallelism comes in two forms that give the same numbers (`RunConfig.dp_impl`):
'jit' lets the compiler partition the global computation over the mesh from the in/out
shardings (it inserts the gradient all-reduce or reduce-scatter); 'shard_map' runs the
per-device program explicitly and sums the gradients with `jax.lax.psum`.

An adapter run (`RunConfig.adapter`: LoRA, QLoRA) trains only its adapters: the state's
`params` are the adapters (`genaisdk.backend.jax.lora`), the optimizer's state is theirs
alone, and the frozen base, held by the trainer (`Trainer.frozen`, set by `freeze`), enters
each step as an argument that is never differentiated, so no gradient of a base weight is
formed. Its dropout masks are drawn from the state's key, the step and the micro-step.

Tensor parallelism (`RunConfig.tensor_parallel`) is the 'jit' form over the mesh's
tensor-parallel group: the rule tables split heads, d_ff and the vocabulary over it, the
model pins its activations (`genaisdk.backend.jax.model`, with sequence parallelism along
the positions), and the compiler inserts Megatron-LM's all-reduces (or all-gathers and
reduce-scatters). The step itself is the same code for every layout.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

from genaisdk.backend.jax import optimizers
from genaisdk.backend.jax.config import BackendError, RunConfig, UnsupportedError
from genaisdk.backend.jax.loss_scale import DynamicLossScale, LossScaleState, all_finite, select
from genaisdk.backend.jax.precision import policy_from_record
from genaisdk.backend.jax.model import ACTIVATION_AXES
from genaisdk.backend.jax.sharding import (
    BATCH_AXES,
    DATA_AXIS,
    TENSOR_AXIS,
    TENSOR_GROUP,
    ShardingWarning,
    activation_rules,
    make_mesh,
    mirror_specs,
    named,
    replicated,
    rule_table,
    tensor_group_shape,
    tree_shardings,
    uses_axis,
)
from genaisdk.backend.jax.tokenizer import TokenLayout, token_layout
from genaisdk.diagnostics import Diagnostic


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a run carries from one step to the next (and checkpoints).

    `step` counts optimizer steps taken, skipped ones included; `rng` is raw key data
    (uint32) so that it checkpoints as a plain array.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    loss_scale: LossScaleState
    rng: jax.Array


jax.tree_util.register_dataclass(
    TrainState, data_fields=["step", "params", "opt_state", "loss_scale", "rng"], meta_fields=[]
)


def resolve(path: str | None, what: str) -> Any:
    """Import "package.module:attribute"."""
    if not path or ":" not in path:
        raise UnsupportedError(f"{what} has no JAX implementation (got {path!r})")
    module_name, attribute = path.split(":", 1)
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"{what}: cannot import {path!r}: {exc}") from exc


class Trainer:
    """One run's compiled steps over a mesh. See the module docstring."""

    def __init__(self, config: RunConfig, mesh: Mesh | None = None, *, unroll: bool = False, tokenizer: Any = None):
        """`tokenizer`: the run's (`genaisdk.backend.jax.tokenizer`); None is the byte
        tokenizer. It sets the padding id the model masks and the ids the objective uses."""
        self.config = config
        kv_heads = config.dims.n_kv_heads
        if mesh is None:
            mesh = make_mesh(config.devices, tensor_parallel=config.tensor_parallel, kv_heads=kv_heads)
        self.mesh = mesh
        sizes = dict(mesh.shape)
        group = tensor_group_shape(config.tensor_parallel, kv_heads)
        wanted = {DATA_AXIS: config.data_parallel, **dict(zip(TENSOR_GROUP, group))}
        if any(sizes.get(axis, 1) != n for axis, n in wanted.items()):
            raise BackendError(
                f"the mesh {sizes} does not match the run's layout {wanted} ({config.devices} devices, tensor "
                f"parallel {config.tensor_parallel}, {kv_heads} K/V heads); build it with "
                "sharding.make_mesh(devices, tensor_parallel=..., kv_heads=...)"
            )
        self.policy = policy_from_record(config.precision)
        factory = resolve(config.architecture.jax_model, f"architecture '{config.architecture.name}'")
        # Only a tokenizer other than the byte tokenizer changes the ids the model and the
        # objective use (so factories that predate the `pad_id`/`ids` keywords keep working).
        layout = token_layout(tokenizer) if tokenizer is not None else TokenLayout()
        custom = layout != TokenLayout()
        model_ids = {"pad_id": -1 if layout.pad is None else layout.pad} if custom else {}
        self.model = factory(
            config.dims, family=config.architecture.family, recompute=config.recompute, unroll=unroll, **model_ids
        )
        make_objective = resolve(config.objective.jax_loss, f"objective '{config.objective.name}'")
        self.objective = make_objective(
            vocab_size=config.dims.vocab, record=config.objective, **({"ids": layout} if custom else {})
        )
        self.schedule = optimizers.warmup_cosine(
            config.learning_rate,
            warmup_steps=config.warmup_steps,
            total_steps=config.total_steps,
            min_ratio=config.min_lr_ratio,
        )
        make_optimizer = resolve(config.optimizer.optax_factory, f"optimizer '{config.optimizer.name}'")
        if config.state_dtype == "int8" and config.optimizer.state_dtype != "int8":
            # The plan keeps Adam's moments in 8 bits: the block-wise quantized form.
            make_optimizer = optimizers.adam_8bit
        options = {k: v for k, v in config.optimizer.defaults.items() if k != "weight_decay"}
        options.update(config.optimizer_options)
        self.optimizer = optimizers.build(
            make_optimizer, self.schedule, weight_decay=config.weight_decay, options=options
        )
        self.loss_scaler = DynamicLossScale(
            enabled=self.policy.loss_scaling,
            initial_scale=config.initial_loss_scale,
            growth_interval=config.loss_scale_interval,
            min_scale=min(1.0, config.initial_loss_scale),
            max_scale=max(2.0**24, config.initial_loss_scale),
        )
        self.unroll = unroll

        self.rules = rule_table(config.strategy)
        if config.tensor_parallel > 1 and not uses_axis(self.rules, TENSOR_AXIS):
            raise BackendError(
                f"strategy '{config.strategy.name}' has no partition rule for the '{TENSOR_AXIS}' mesh axis, so it "
                f"cannot run tensor parallel {config.tensor_parallel}: add the tensor rules "
                "(genaisdk.builtins.strategies.TENSOR_RULES) to its partition_rules"
            )
        self.activation_rules = activation_rules(self.rules, sequence_parallel=config.sequence_parallel)
        self.param_specs = self.model.specs()
        """The model's parameters (of an adapter run: its frozen base)."""
        self.adapters = None
        self.base_dtype = self.policy.param_dtype
        """The dtype the model's parameters are loaded in (an adapter run's frozen base: the
        compute dtype, `genaisdk.backend.jax.lora.base_dtype`)."""
        if config.adapter is not None:
            from genaisdk.backend.jax import lora

            self.adapters = lora.Adapters(self.model, config.adapter)
            self.base_dtype = lora.base_dtype(self.policy)
        self.trainable_specs = self.adapters.specs() if self.adapters is not None else self.param_specs
        """What the optimizer updates: every parameter, or an adapter run's adapters."""
        self.model_shardings, notes = tree_shardings(self.param_specs, self.rules["params"], self.mesh)
        """The model's parameters' shardings (where a checkpoint's weights are loaded)."""
        param_shardings = self.model_shardings
        if self.adapters is not None:
            param_shardings, adapter_notes = tree_shardings(self.trainable_specs, self.rules["params"], self.mesh)
            notes = notes + adapter_notes
        self.grad_shardings, grad_notes = tree_shardings(self.trainable_specs, self.rules["grads"], self.mesh)
        # Optimizer state in the plan's dtype (`train.optimizer_state`; the records' default is
        # fp32 moments even for pure bf16 weights): the optimizer is initialized on, and fed
        # gradients in, that dtype. An 8-bit state quantizes fp32 moments block by block.
        self.opt_dtype = _STATE_DTYPES.get(config.state_dtype, jnp.float32)
        abstract_opt = jax.eval_shape(self.optimizer.init, _abstract(self.trainable_specs, self.opt_dtype))
        self.opt_specs = mirror_specs(abstract_opt, self.trainable_specs)
        opt_shardings, opt_notes = tree_shardings(self.opt_specs, self.rules["opt_state"], self.mesh)
        rep = replicated(self.mesh)
        self.state_shardings = TrainState(
            step=rep,
            params=param_shardings,
            opt_state=opt_shardings,
            loss_scale=LossScaleState(scale=rep, good_steps=rep, skipped=rep),
            rng=rep,
        )
        rows = config.rows_per_micro_step
        self.batch_sharding = named(
            self.mesh, BATCH_AXES, self.rules["batch"], (config.accumulation, rows, config.seq_len)
        )
        self.diagnostics: list[Diagnostic] = _unique(notes + grad_notes + opt_notes)
        for note in self.diagnostics:
            warnings.warn(f"{note.message} [{note.code}]", ShardingWarning, stacklevel=2)

        self._compiled_train: Any = None
        self.frozen = None
        """An adapter run's frozen base on the devices (`freeze`); None otherwise."""
        self.frozen_shardings = None
        if self.adapters is not None:
            self.frozen_shardings = _frozen_shardings(
                self.adapters.abstract_frozen(self.base_dtype), self.model_shardings, rep
            )
        self._train = jax.jit(
            self._train_step,
            in_shardings=(self.state_shardings, self.batch_sharding, self.frozen_shardings),
            out_shardings=(self.state_shardings, rep),
            donate_argnums=0,
        )
        self._eval = jax.jit(
            self._eval_step,
            in_shardings=(self.state_shardings, self.batch_sharding, self.frozen_shardings),
            out_shardings=rep,
        )
        self._init_opt = jax.jit(
            lambda params: self.optimizer.init(_cast(params, self.opt_dtype)),
            in_shardings=(self.state_shardings.params,),
            out_shardings=self.state_shardings.opt_state,
        )

    # ------------------------------------------------------------------ public API

    @property
    def row_length(self) -> int:
        """Packed tokens per row that `make_batch` expects (the objective's raw row)."""
        return self.objective.row_length(self.config.seq_len)

    @property
    def flops_per_step(self) -> float:
        """Model FLOPs of one optimizer step: training FLOPs per token (forward + backward,
        attention included; PaLM appendix B) × the tokens of the step.

        Encoder and decoder-only models use the architecture record's `flops_per_token`
        at `seq_len`; an adapter run's frozen base skips its weight gradients and the
        adapters add theirs (`genaisdk.estimate.adaptation.lora_flops_per_token`). For an encoder-decoder the encoder and decoder see different lengths
        (span corruption: the targets are about a fifth of the inputs), so the step counts
        both with their own lengths and shares (`genaisdk.estimate.flops`).
        """
        config = self.config
        shapes = self.objective.batch_shapes(1, config.seq_len)
        if config.architecture.family == "encoder_decoder" and "decoder_inputs" in shapes:
            from genaisdk.estimate.flops import model_flops_per_token

            encoder_len = shapes["inputs"][1]
            decoder_len = shapes["decoder_inputs"][1]
            tokens = encoder_len + decoder_len
            per_token = model_flops_per_token(
                config.dims,
                family="encoder_decoder",
                context=encoder_len,
                decoder_context=decoder_len,
                decoder_fraction=decoder_len / tokens,
            ).total
            per_token, step_tokens = float(per_token), tokens * config.global_batch
        else:
            per_token = float(config.architecture.flops_per_token(config.dims, config.seq_len))
            step_tokens = config.tokens_per_step
        if config.adapter is not None:
            # A frozen base computes no weight gradients; the adapters train (as the plan counts).
            from genaisdk.estimate.adaptation import lora_flops_per_token

            skipped, adapters = lora_flops_per_token(
                config.dims, rank=config.adapter.rank, targets=config.adapter.targets,
                family=config.architecture.family, context=config.seq_len,
            )
            per_token += adapters - skipped
        return per_token * step_tokens

    def freeze(self, params: Any = None, seed: int | None = None) -> None:
        """Set an adapter run's frozen base (`frozen`): `params` (a checkpoint's, in
        `model_shardings` and `base_dtype`), else the model's random initialization for
        `seed` (the same on every call, so a resumed run finds the same base); quantized
        where the adapters' configuration says (QLoRA)."""
        if self.adapters is None:
            raise BackendError("only an adapter run (LoRA, QLoRA) has a frozen base")
        seed = self.config.seed if seed is None else seed
        if params is None:
            params = self.model.init(
                jax.random.fold_in(jax.random.key(seed), 0), self.base_dtype, shardings=self.model_shardings
            )
        params = _cast(params, self.base_dtype)
        self.frozen = jax.device_put(self.adapters.freeze(params), self.frozen_shardings)

    def abstract_frozen(self) -> Any:
        """An adapter run's frozen base as ShapeDtypeStructs with their shardings; None otherwise."""
        if self.adapters is None:
            return None
        return jax.tree.map(
            lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
            self.adapters.abstract_frozen(self.base_dtype),
            self.frozen_shardings,
        )

    def model_params(self, state: TrainState) -> Any:
        """The model's parameters of a state: `state.params`, or an adapter run's frozen
        base merged with its adapters (W + scale·A·B, fp32)."""
        if self.adapters is None:
            return state.params
        return self.adapters.merge(self.frozen, state.params)

    def init(self, seed: int | None = None, params: Any = None) -> TrainState:
        """A fresh state, created directly in its shardings (no device holds more than its share).

        `params`: start from these parameters (a pretrained checkpoint's, already in
        `model_shardings` and `base_dtype`) instead of random ones. An adapter run keeps
        them as its frozen base (unless `freeze` already set one) and starts fresh adapters."""
        seed = self.config.seed if seed is None else seed
        key = jax.random.key(seed)
        shardings = self.state_shardings
        if self.adapters is not None:
            if self.frozen is None or params is not None:
                self.freeze(params, seed)
            params = self.adapters.init(jax.random.fold_in(key, 2), self.policy.param_dtype, shardings=shardings.params)
        elif params is None:
            params = self.model.init(jax.random.fold_in(key, 0), self.policy.param_dtype, shardings=shardings.params)
        opt_state = self._init_opt(params)
        small = jax.device_put(
            (jnp.zeros((), jnp.int32), self.loss_scaler.init(), jax.random.key_data(jax.random.fold_in(key, 1))),
            (shardings.step, shardings.loss_scale, shardings.rng),
        )
        return TrainState(step=small[0], params=params, opt_state=opt_state, loss_scale=small[1], rng=small[2])

    def abstract_state(self) -> TrainState:
        """The state as ShapeDtypeStructs carrying their shardings (checkpoint restore, measure)."""
        shapes = jax.eval_shape(self._init_state, jax.random.key(0))
        return jax.tree.map(
            lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
            shapes,
            self.state_shardings,
        )

    def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
        config = self.config
        rows = config.global_batch // config.accumulation
        shapes = self.objective.batch_shapes(rows, config.seq_len)
        return {
            key: jax.ShapeDtypeStruct((config.accumulation, *shape), jnp.int32, sharding=self.batch_sharding)
            for key, shape in shapes.items()
        }

    def make_batch(
        self, tokens: np.ndarray, rng: np.random.Generator | int | None = None, *, loss_mask: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The objective's batch for `global_batch` packed rows, laid out [accumulation, rows, ...].

        `loss_mask` (the data pipeline's, same shape as `tokens`, or None) narrows the loss
        weights to the tokens to be learned (chat examples' responses)."""
        config = self.config
        tokens = np.asarray(tokens)
        if tokens.shape[0] % config.accumulation:
            raise BackendError(f"{tokens.shape[0]} rows do not split into {config.accumulation} micro-steps")
        if loss_mask is None:
            batch = self.objective.make_batch(tokens, rng)
        else:
            batch = self.objective.make_batch(tokens, rng, loss_mask=loss_mask)
        return {
            k: v.reshape(config.accumulation, v.shape[0] // config.accumulation, *v.shape[1:]) for k, v in batch.items()
        }

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Global arrays in the batch sharding from the same host-side batch on every process."""
        return {
            key: jax.make_array_from_callback(value.shape, self.batch_sharding, lambda index, v=value: v[index])
            for key, value in batch.items()
        }

    def train_step(self, state: TrainState, batch: dict) -> tuple[TrainState, dict[str, jax.Array]]:
        """One optimizer step. `state` is donated: use only the returned one afterwards.

        Runs the executable given to `use_compiled` if there is one (compiled ahead of
        time, so step 0 compiles nothing), else the jitted step (compiled on first use)."""
        self._check_frozen()
        if self._compiled_train is not None:
            return self._compiled_train(state, batch, self.frozen)
        return self._train(state, batch, self.frozen)

    def use_compiled(self, executable: Any) -> None:
        """Run `executable` (this trainer's `lower().compile()`) for every train step."""
        self._compiled_train = executable

    def eval_step(self, state: TrainState, batch: dict) -> dict[str, jax.Array]:
        """Mean token loss and token count of a batch (same layout as a train batch)."""
        self._check_frozen()
        return self._eval(state, batch, self.frozen)

    def lower(self) -> Any:
        """The train step lowered on abstract inputs (for `.compile()`, memory and cost analysis)."""
        return self._train.lower(self.abstract_state(), self.abstract_batch(), self.abstract_frozen())

    def _check_frozen(self) -> None:
        if self.adapters is not None and self.frozen is None:
            raise BackendError("an adapter run needs its frozen base: call Trainer.freeze(params) or Trainer.init")

    # ------------------------------------------------------------------ traced code

    def _init_state(self, key: jax.Array) -> TrainState:
        """The state `init` creates, as one traceable function (for `abstract_state`)."""
        if self.adapters is not None:
            params = self.adapters.init(jax.random.fold_in(key, 2), self.policy.param_dtype)
        else:
            params = self.model.init(jax.random.fold_in(key, 0), self.policy.param_dtype)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=self.optimizer.init(_cast(params, self.opt_dtype)),
            loss_scale=self.loss_scaler.init(),
            rng=jax.random.key_data(jax.random.fold_in(key, 1)),
        )

    def _constrain_activations(self, x: jax.Array, axes: tuple[str | None, ...] = ACTIVATION_AXES) -> jax.Array:
        """Pin an activation named by logical `axes` to its layout (`activation_rules`);
        a dimension that its mesh axis does not divide stays whole."""
        if x.ndim != len(axes):
            return x
        return jax.lax.with_sharding_constraint(x, named(self.mesh, axes, self.activation_rules, x.shape))

    def _accumulate(
        self,
        params: Any,
        batch: dict,
        scale: jax.Array,
        total: jax.Array,
        *,
        constrain: Callable | None,
        constrain_grads: Callable,
        vary: Callable = lambda x: x,
        frozen: Any = None,
        keys: jax.Array | None = None,
    ) -> tuple[Any, jax.Array]:
        """Summed gradients of Σ loss · scale / total over the micro-batches, and Σ loss.

        Gradients are taken with respect to `params` only: an adapter run's `frozen` base
        is closed over (the adapters joined to it in each micro-step), and `keys` are the
        micro-steps' dropout keys."""
        apply = functools.partial(self.model.apply, constrain=constrain)

        def scaled_loss(p: Any, micro: dict, key: Any) -> tuple[jax.Array, jax.Array]:
            model_params = p if self.adapters is None else self.adapters.attach(frozen, p, key)
            loss_sum, _ = self.objective.loss_sum(apply, model_params, micro, self.policy)
            return loss_sum * scale / total, loss_sum

        grad_fn = jax.value_and_grad(scaled_loss, has_aux=True)
        if self.config.accumulation == 1:
            first = None if keys is None else keys[0]
            (_, loss_sum), grads = grad_fn(params, jax.tree.map(lambda x: x[0], batch), first)
            return constrain_grads(grads), loss_sum

        def micro_step(carry: tuple, xs: tuple) -> tuple[tuple, None]:
            acc, loss_acc = carry
            micro, key = xs
            (_, loss_sum), grads = grad_fn(params, micro, key)
            acc = constrain_grads(jax.tree.map(lambda a, g: a + g.astype(a.dtype), acc, grads))
            return (acc, loss_acc + loss_sum), None

        zeros = constrain_grads(jax.tree.map(jnp.zeros_like, params))
        (grads, loss_sum), _ = jax.lax.scan(
            micro_step, (zeros, vary(jnp.zeros((), jnp.float32))), (batch, keys), unroll=True if self.unroll else 1
        )
        return grads, loss_sum

    def _grads_jit(
        self, params: Any, batch: dict, scale: jax.Array, frozen: Any = None, keys: Any = None
    ) -> tuple[Any, jax.Array, jax.Array]:
        total = jnp.maximum(jnp.sum(batch["weights"], dtype=jnp.float32), 1.0)
        grads, loss_sum = self._accumulate(
            params,
            batch,
            scale,
            total,
            constrain=self._constrain_activations,
            constrain_grads=lambda g: jax.lax.with_sharding_constraint(g, self.grad_shardings),
            frozen=frozen,
            keys=keys,
        )
        return grads, loss_sum, total

    def _grads_shard_map(
        self, params: Any, batch: dict, scale: jax.Array, frozen: Any = None, keys: Any = None
    ) -> tuple[Any, jax.Array, jax.Array]:
        def per_device(params: Any, batch: dict, scale: jax.Array, frozen: Any, keys: Any) -> tuple[Any, jax.Array, jax.Array]:
            total = jnp.maximum(jax.lax.psum(jnp.sum(batch["weights"], dtype=jnp.float32), DATA_AXIS), 1.0)
            # The replicated weights enter each device's loss as a device-varying value, so the
            # gradients below are this device's own; their sum over devices is the explicit psum.
            local_params = jax.lax.pcast(params, DATA_AXIS, to="varying")
            if keys is not None:  # each device's rows draw their own dropout masks
                keys = jax.vmap(lambda k: jax.random.fold_in(k, jax.lax.axis_index(DATA_AXIS)))(keys)
            grads, loss_sum = self._accumulate(
                local_params,
                batch,
                scale,
                total,
                constrain=None,
                constrain_grads=lambda g: g,
                vary=lambda x: jax.lax.pcast(x, DATA_AXIS, to="varying"),
                frozen=frozen,
                keys=keys,
            )
            return jax.lax.psum(grads, DATA_AXIS), jax.lax.psum(loss_sum, DATA_AXIS), total

        mapped = jax.shard_map(
            per_device,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), PartitionSpec(None, DATA_AXIS), PartitionSpec(), PartitionSpec(), PartitionSpec()),
            out_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec()),
        )
        return mapped(params, batch, scale, frozen, keys)

    def _train_step(self, state: TrainState, batch: dict, frozen: Any = None) -> tuple[TrainState, dict[str, jax.Array]]:
        scaling = self.loss_scaler.enabled
        scale = state.loss_scale.scale
        grads_fn = self._grads_shard_map if self.config.dp_impl == "shard_map" else self._grads_jit
        keys = None
        if self.adapters is not None:
            keys = self.adapters.step_keys(state.rng, state.step, self.config.accumulation)
        grads, loss_sum, total = grads_fn(state.params, batch, scale, frozen, keys)
        if scaling:
            grads = jax.tree.map(lambda g: (g.astype(jnp.float32) / scale).astype(g.dtype), grads)
            finite = all_finite(grads)
        else:
            finite = jnp.asarray(True)
        norm = optimizers.global_norm(grads)
        grads = optimizers.clip_by_global_norm(grads, norm, self.config.grad_clip)
        applied_before = state.step - state.loss_scale.skipped
        updates, opt_state = self.optimizer.update(_cast(grads, self.opt_dtype), state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if scaling:
            params = select(finite, params, state.params)
            opt_state = select(finite, opt_state, state.opt_state)
        loss_scale = self.loss_scaler.update(state.loss_scale, finite)
        new_state = TrainState(
            step=state.step + 1, params=params, opt_state=opt_state, loss_scale=loss_scale, rng=state.rng
        )
        metrics = {
            "loss": loss_sum / total,
            "grad_norm": norm,
            "lr": self.schedule(applied_before),
            "loss_scale": scale,
            "skipped": jnp.where(finite, 0, 1).astype(jnp.int32),
            "skipped_total": loss_scale.skipped,
            "tokens": total,
        }
        return new_state, metrics

    def _eval_step(self, state: TrainState, batch: dict, frozen: Any = None) -> dict[str, jax.Array]:
        apply = functools.partial(self.model.apply, constrain=self._constrain_activations)
        params = state.params if self.adapters is None else self.adapters.attach(frozen, state.params)

        def micro(carry: tuple, mb: dict) -> tuple[tuple, None]:
            loss_sum, tokens = self.objective.loss_sum(apply, params, mb, self.policy)
            return (carry[0] + loss_sum, carry[1] + tokens), None

        zero = jnp.zeros((), jnp.float32)
        (loss_sum, tokens), _ = jax.lax.scan(micro, (zero, zero), batch)
        return {"loss": loss_sum / jnp.maximum(tokens, 1.0), "tokens": tokens}


_STATE_DTYPES = {"fp32": jnp.float32, "tf32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}


def _cast(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if x.dtype != dtype else x, tree)


def _abstract(specs: Any, dtype: Any) -> Any:
    from genaisdk.backend.jax.model import is_spec

    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), specs, is_leaf=is_spec)


def _frozen_shardings(abstract: Any, model_shardings: Any, replicated_sharding: Any) -> Any:
    """Shardings of an adapter run's frozen base: a dense weight keeps the model's
    parameter sharding, a quantized one (its codes and scales) is replicated."""

    def place(leaf: Any, sharding: Any) -> Any:
        if hasattr(leaf, "dequantize"):
            return jax.tree.map(lambda _: replicated_sharding, leaf)
        return sharding

    return jax.tree.map(place, abstract, model_shardings, is_leaf=lambda x: hasattr(x, "dequantize"))


def _unique(notes: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[str] = set()
    out = []
    for note in notes:
        if note.message not in seen:
            seen.add(note.message)
            out.append(note)
    return out
