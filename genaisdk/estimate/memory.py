"""Training memory per device, itemized: weights, gradients, optimizer, activations, overheads.

Model state after ZeRO (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training
Trillion Parameter Models", arXiv:1910.02054, Sec. 3.1 and 5): with Ψ parameters and
mixed-precision Adam a data-parallel replica holds 2Ψ (16-bit weights) + 2Ψ (16-bit
gradients) + KΨ (fp32 master weights, momentum, variance: K = 12) = 16Ψ bytes. ZeRO shards
over the data-parallel degree N_d:

    stage 1 (P_os):      2Ψ + 2Ψ + KΨ/N_d
    stage 2 (P_os+g):    2Ψ + (2 + K)Ψ/N_d
    stage 3 (P_os+g+p):  (2 + 2 + K)Ψ/N_d

Nothing here is one "bytes per parameter": each dtype is its own argument (weight, gradient,
master, optimizer-state bytes), so fp32 main gradients give Megatron-LM's 18 bytes per
parameter (2 + 4 + 12) and pure-fp32 Adam the classic 16 (4 + 4 + 8).

Peak = persistent state + the worst transient phase (not the largest component, and not
the plain sum of every buffer, since some never coexist):

- persistent: weights, optimizer state (moments and any master copy), the runtime context;
- gradients live from the backward pass that writes them through the optimizer step that
  reads them, and are freed after it (PyTorch's `zero_grad(set_to_none=True)`, the default
  since 2.0; a functional JAX step returns them). Only when micro-batches accumulate into one
  step does an earlier micro-batch's gradient sit in memory through a later forward pass;
- forward: stored activations, the loss buffers (logits), the all-gather buffers of a fully
  sharded strategy;
- backward: its start holds the stored activations with the loss buffers and then with the
  layer full recomputation rebuilds (the two never coexist: the loss's backward frees the
  logits before the first layer is rebuilt); its end holds every gradient and the last
  rebuilt layer. Between the two the gradients written grow as the stored activations are
  released, layer by layer, so the larger end is the phase's peak. Both ends add the
  unsharded gradient bucket of one layer (ZeRO-2 / FSDP reduce-scatter);
- optimizer step: the gradients, the fp32 copy of the gradient partition when gradients are
  16-bit and the update runs on fp32 master weights (Micikevicius et al. 2018, Sec. 3.1: the
  update is applied to the fp32 master copy; an implementation that keeps fp32 gradients
  throughout passes gradient_bytes = 4 instead), and the update's own temporaries
  (`update_bytes` per trainable parameter: a multi-tensor Adam materializes sqrt(v̂) + ε for
  every parameter at once, PyTorch's `_multi_tensor_adam` `torch._foreach_sqrt`; an optax
  update returns a parameter-sized update tree).

Allocator fragmentation is a documented fraction of that peak, on its own line.

Offload (Ren et al. 2021, "ZeRO-Offload", Sec. 4): optimizer state and master weights, and
the gradients when they are sharded, live in host memory; an offloaded-weights strategy
(ZeRO-Infinity, Rajbhandari et al. 2021) keeps only the gather buffers on the device. Host
bytes are reported separately.

All numeric arguments (parameters, degrees, bytes per element, activation bytes) and the
strategy flags may be numpy arrays; everything broadcasts, so a whole grid of configurations
is one call.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from genaisdk.estimate.adaptation import adapter_state_bytes
from genaisdk.estimate.constants import ALLOCATOR_FRAGMENTATION, DTYPE_BYTES, FSDP_GATHER_LAYERS, RUNTIME_CONTEXT_BYTES

FP32_BYTES = 4.0


@attrs.frozen(kw_only=True)
class ModelState:
    """Per-device bytes of weights, gradients and optimizer state (moments plus any master
    copy), and what an offload strategy moved to the host."""

    weights: np.ndarray | float
    gradients: np.ndarray | float
    optimizer: np.ndarray | float
    host_weights: np.ndarray | float = 0.0
    host_gradients: np.ndarray | float = 0.0
    host_optimizer: np.ndarray | float = 0.0

    @property
    def device(self):
        return self.weights + self.gradients + self.optimizer

    @property
    def host(self):
        return self.host_weights + self.host_gradients + self.host_optimizer


@attrs.frozen(kw_only=True)
class TrainingMemory:
    """Bytes per device (numpy arrays when any argument was one).

    `activations` is the activation footprint at its largest (start of the backward pass:
    stored activations plus the larger of the loss buffers and the layer full recomputation
    rebuilds). `overheads` has one line per overhead: 'runtime', 'gather_buffers',
    'gradient_bucket', 'step_buffers', 'update_buffer', 'fragmentation'. `phases` has the
    transient bytes of 'forward', 'backward' and 'step' (gradients included where they are
    live). `persistent` is weights + optimizer + runtime. `total` is the peak: persistent +
    max(phases) + fragmentation. `host` is what offload keeps in host memory, per device.
    `at_peak` has the 'gradients' and 'activations' alive in the phase that sets the peak
    (`worst_phase`): the gradients held there (all of them at the end of the backward pass
    and in the step, an earlier micro-batch's while micro-batches accumulate, else none) and
    the activations (stored ones with the loss buffers or the rebuilt layer; none in the step).
    """

    weights: np.ndarray | float
    gradients: np.ndarray | float
    optimizer: np.ndarray | float
    activations: np.ndarray | float
    overheads: Mapping[str, np.ndarray | float]
    phases: Mapping[str, np.ndarray | float]
    persistent: np.ndarray | float
    total: np.ndarray | float
    host: np.ndarray | float = 0.0
    host_parts: Mapping[str, np.ndarray | float] = attrs.field(factory=dict)
    at_peak: Mapping[str, np.ndarray | float] = attrs.field(factory=dict)

    @property
    def model_state(self):
        """Weights + gradients + optimizer: what ZeRO's Table 1 reports."""
        return self.weights + self.gradients + self.optimizer

    @property
    def worst_phase(self) -> str | np.ndarray:
        """Name of the phase that sets the peak ('forward', 'backward' or 'step'); on a tie the
        backward pass, which holds everything the forward pass does."""
        names = [n for n in PHASE_ORDER if n in self.phases]
        picked = np.asarray(names)[_worst([self.phases[n] for n in names])]
        return picked.item() if picked.ndim == 0 else picked


PHASE_ORDER = ("backward", "step", "forward")
"""The phases in the order that breaks a tie (the backward pass holds what the forward does)."""


def _worst(phases) -> np.ndarray:
    """Index of the largest of `phases` (arrays, broadcast), the first on a tie."""
    return np.argmax(np.stack(np.broadcast_arrays(*[np.asarray(p, dtype=float) for p in phases])), axis=0)


def _shard(value, shards, dp):
    """`value` divided over the data-parallel degree where `shards` is true."""
    return np.where(shards, value / dp, value)


def model_state(
    *,
    params,
    weight_bytes,
    gradient_bytes,
    optimizer_bytes,
    master_bytes=0.0,
    trainable_params=None,
    frozen_weight_bytes=None,
    kept_params=0.0,
    dp=1,
    shards_optimizer=False,
    shards_gradients=False,
    shards_weights=False,
    offload_optimizer=False,
    offload_weights=False,
    adapters=False,
) -> ModelState:
    """Per-device weights, gradients and optimizer state (Rajbhandari et al. 2020, Sec. 5).

    - weights: trainable params x `weight_bytes` (the working copy used in forward and
      backward) + frozen params x `frozen_weight_bytes` (QLoRA's 4-bit base), over N_d when
      weights are sharded; `kept_params` of the frozen ones stay at `weight_bytes` (the
      embeddings, norms and output layer a 4-bit library does not quantize);
    - gradients: trainable params x `gradient_bytes`, over N_d when gradients are sharded;
    - optimizer: trainable params x (`optimizer_bytes` + `master_bytes`), ZeRO's K, over
      N_d when optimizer state is sharded.

    `dp` is the data-parallel degree N_d, never the world size: with tensor or pipeline
    parallelism the caller passes world / (tp·pp) and the per-stage parameter count.
    Offloaded state is reported in the host fields and is 0 on the device. `adapters`: the
    trainable parameters are LoRA adapters, whose weight, gradient and master bytes are
    `genaisdk.estimate.adaptation.adapter_state_bytes` of the precision's (fp32 under mixed
    precision, no separate master copy).
    """
    dp = np.asarray(dp, dtype=float)
    if np.any(dp < 1):
        raise ValueError("the data-parallel degree must be >= 1")
    params = np.asarray(params, dtype=float)
    trainable = params if trainable_params is None else np.asarray(trainable_params, dtype=float)
    kept = np.asarray(kept_params, dtype=float)
    frozen = params - trainable - kept
    frozen_bytes = weight_bytes if frozen_weight_bytes is None else frozen_weight_bytes

    trained_weight, trained_gradient, trained_master = (
        adapter_state_bytes(weight_bytes, gradient_bytes, master_bytes) if adapters else (weight_bytes, gradient_bytes, master_bytes)
    )
    weights = _shard(trainable * trained_weight + kept * weight_bytes + frozen * frozen_bytes, shards_weights, dp)
    gradients = _shard(trainable * trained_gradient, shards_gradients, dp)
    optimizer = _shard(trainable * (np.asarray(optimizer_bytes, dtype=float) + trained_master), shards_optimizer, dp)

    offload_optimizer = np.asarray(offload_optimizer, dtype=bool)
    offload_weights = np.asarray(offload_weights, dtype=bool)
    # ZeRO-Offload moves the sharded gradients to the host with the optimizer (Ren et al.
    # 2021, Sec. 4.1); unsharded gradients stay on the device for the all-reduce.
    offload_gradients = offload_optimizer & np.asarray(shards_gradients, dtype=bool)
    zero = np.zeros_like(weights)
    return ModelState(
        weights=np.where(offload_weights, zero, weights),
        gradients=np.where(offload_gradients, zero, gradients),
        optimizer=np.where(offload_optimizer, zero, optimizer),
        host_weights=np.where(offload_weights, weights, zero),
        host_gradients=np.where(offload_gradients, gradients, zero),
        host_optimizer=np.where(offload_optimizer, optimizer, zero),
    )


def training_memory(
    *,
    params,
    weight_bytes,
    gradient_bytes,
    optimizer_bytes,
    master_bytes=0.0,
    update_bytes=0.0,
    trainable_params=None,
    frozen_weight_bytes=None,
    kept_params=0.0,
    largest_layer=0.0,
    dp=1,
    shards_optimizer=False,
    shards_gradients=False,
    shards_weights=False,
    offload_optimizer=False,
    offload_weights=False,
    stored_activations=0.0,
    loss_buffers=0.0,
    backward_buffers=0.0,
    accumulates=True,
    runtime_bytes=RUNTIME_CONTEXT_BYTES,
    fragmentation=ALLOCATOR_FRAGMENTATION,
    gather_layers=FSDP_GATHER_LAYERS,
    adapters=False,
) -> TrainingMemory:
    """Peak training memory per device, itemized (module docstring for the accounting).

    `stored_activations`, `loss_buffers` and `backward_buffers` come from
    `genaisdk.estimate.activations` (`stored_bytes`, `loss_bytes`, `backward_bytes` of
    `activation_memory(...)`). `largest_layer` is `ParamCount.largest_layer`: a fully
    sharded step gathers `gather_layers` (about two) of them at a time, and a sharded
    gradient is reduce-scattered one layer-sized bucket at a time.

    `update_bytes` is the optimizer step's temporaries per trainable parameter (one
    parameter-sized buffer at the optimizer-state dtype for Adam, 0 for plain SGD or a fused
    kernel), sharded like the optimizer state. `accumulates` (may be an array) is true when
    several micro-batches accumulate into one step, so that gradients are held through every
    forward pass but the first (module docstring).
    """
    state = model_state(
        params=params,
        weight_bytes=weight_bytes,
        gradient_bytes=gradient_bytes,
        optimizer_bytes=optimizer_bytes,
        master_bytes=master_bytes,
        trainable_params=trainable_params,
        frozen_weight_bytes=frozen_weight_bytes,
        kept_params=kept_params,
        dp=dp,
        shards_optimizer=shards_optimizer,
        shards_gradients=shards_gradients,
        shards_weights=shards_weights,
        offload_optimizer=offload_optimizer,
        offload_weights=offload_weights,
        adapters=adapters,
    )
    dp = np.asarray(dp, dtype=float)
    params = np.asarray(params, dtype=float)
    trainable = params if trainable_params is None else np.asarray(trainable_params, dtype=float)
    largest = np.asarray(largest_layer, dtype=float)
    # With one data-parallel rank nothing is actually partitioned: no gathers, no
    # reduce-scatter. Offloaded weights and gradients still stream through device buffers.
    split = dp > 1
    offloaded_weights = np.asarray(offload_weights, dtype=bool)
    offloaded_grads = np.asarray(offload_optimizer, dtype=bool) & np.asarray(shards_gradients, dtype=bool)
    gathers = (np.asarray(shards_weights, dtype=bool) & split) | offloaded_weights
    reduces = ((np.asarray(shards_gradients, dtype=bool) | np.asarray(shards_weights, dtype=bool)) & split) | offloaded_grads

    # FSDP / ZeRO-3: the layer being computed and the prefetched one, unsharded.
    gather = np.where(gathers, gather_layers * largest * weight_bytes, 0.0)
    # ZeRO-2 / FSDP: one layer's full gradient exists before its reduce-scatter.
    bucket = np.where(reduces, largest * gradient_bytes, 0.0)
    # Optimizer step on fp32 master weights reads an fp32 copy of the 16-bit gradient
    # partition (Micikevicius et al. 2018, Sec. 3.1). Runs on the host when offloaded.
    trained_gradient, trained_master = gradient_bytes, master_bytes
    if adapters:  # fp32 adapters under mixed precision: their fp32 gradients need no copy
        _, trained_gradient, trained_master = adapter_state_bytes(weight_bytes, gradient_bytes, master_bytes)
    upcast = (np.asarray(trained_master, dtype=float) > 0) & (np.asarray(trained_gradient, dtype=float) < FP32_BYTES)
    step_buffers = np.where(
        upcast & ~np.asarray(offload_optimizer, dtype=bool),
        _shard(trainable * FP32_BYTES, shards_optimizer, dp),
        0.0,
    )
    # The update's own temporaries (sqrt(v̂) + ε of a multi-tensor Adam), on the host when
    # the step runs there.
    update_buffer = np.where(
        np.asarray(offload_optimizer, dtype=bool),
        0.0,
        _shard(trainable * np.asarray(update_bytes, dtype=float), shards_optimizer, dp),
    )

    grads = state.gradients
    held = np.where(np.asarray(accumulates, dtype=bool), grads, 0.0)
    stored = np.asarray(stored_activations, dtype=float)
    loss = np.asarray(loss_buffers, dtype=float)
    rebuilt = np.asarray(backward_buffers, dtype=float)
    # The loss buffers are freed by the loss's backward before the first layer is rebuilt.
    activations = stored + np.maximum(loss, rebuilt)
    forward = held + stored + loss + gather
    # The backward pass peaks at its start (stored activations, held gradients) or at its end
    # (every gradient, the last rebuilt layer), whichever is larger.
    starts = held + activations >= grads + rebuilt
    backward = np.maximum(held + activations, grads + rebuilt) + gather + bucket
    step = grads + step_buffers + update_buffer
    # What is alive in the phase that sets the peak, in PHASE_ORDER (backward, step, forward).
    worst = _worst([backward, step, forward])
    grads_at_peak = np.choose(worst, np.broadcast_arrays(np.where(starts, held, grads), grads, held))
    acts_at_peak = np.choose(worst, np.broadcast_arrays(np.where(starts, activations, rebuilt), 0.0, stored + loss))
    runtime = np.asarray(runtime_bytes, dtype=float)
    persistent = state.weights + state.optimizer + runtime
    allocated = persistent + np.maximum(np.maximum(forward, backward), step)
    frag = fragmentation * allocated
    total = allocated + frag

    shape = np.shape(total)

    def full(value):
        # Every field has the configuration grid's shape (a read-only view, no copy).
        return np.broadcast_to(np.asarray(value, dtype=float), shape)

    return TrainingMemory(
        weights=full(state.weights),
        gradients=full(state.gradients),
        optimizer=full(state.optimizer),
        activations=full(activations),
        overheads={
            "runtime": full(runtime),
            "gather_buffers": full(gather),
            "gradient_bucket": full(bucket),
            "step_buffers": full(step_buffers),
            "update_buffer": full(update_buffer),
            "fragmentation": frag,
        },
        phases={"forward": full(forward), "backward": full(backward), "step": full(step)},
        persistent=full(persistent),
        total=total,
        host=full(state.host),
        host_parts={
            "weights": full(state.host_weights),
            "gradients": full(state.host_gradients),
            "optimizer": full(state.host_optimizer),
        },
        at_peak={"gradients": full(grads_at_peak), "activations": full(acts_at_peak)},
    )


def weights_bytes(params, weight_bytes):
    """Bytes of a set of weights: params x bytes per element (1B fp32 params = 4 GB)."""
    return np.asarray(params, dtype=float) * weight_bytes


FLOAT_STATE_DTYPES = ("fp32", "bf16", "fp16")
"""Optimizer-state dtypes whose update runs element-wise on whole tensors; an 8-bit state
is updated block by block inside one kernel (Dettmers et al. 2022, '8-bit Optimizers via
Block-wise Quantization', Sec. 2: dequantize, update and requantize each block in
registers), so it materializes no parameter-sized temporary."""


def optimizer_state_dtype(native: str, precision_default: str, requested: str | None = None) -> str:
    """The dtype an optimizer's state is kept in: the spec's request; else the optimizer's
    own format when it is not fp32 (8-bit Adam's int8); else the precision record's
    (`Precision.optimizer_state_dtype`)."""
    if requested:
        return requested
    return native if native != "fp32" else precision_default


def optimizer_state_bytes(state_bytes, native: str, dtype: str):
    """Bytes per trainable parameter of an optimizer's state (`Optimizer.state_bytes`,
    counted in `native`) kept in `dtype`: AdamW's two fp32 moments (8 bytes) are 4 in bf16
    and 2 in int8 (the block scales, 8/2048 bytes per parameter, are not counted)."""
    return np.asarray(state_bytes, dtype=float) * DTYPE_BYTES[dtype] / DTYPE_BYTES[native]


def update_buffer_bytes(update_buffers, dtype: str):
    """Bytes per trainable parameter of the optimizer step's temporaries: `update_buffers`
    parameter-sized buffers at the state dtype (Adam: sqrt(v̂) + ε), none for an 8-bit state
    (`FLOAT_STATE_DTYPES`)."""
    if dtype not in FLOAT_STATE_DTYPES:
        return np.asarray(0.0)
    return np.asarray(update_buffers, dtype=float) * DTYPE_BYTES[dtype]
