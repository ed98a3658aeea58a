"""Time per training step under tensor, pipeline, sequence and data parallelism.

    step = (m + (p - 1)/v) · T  +  exposed data-parallel communication  +  optimizer step

T is the time of one micro-batch's forward and backward pass through the slowest pipeline
stage (the first holds the embedding, the last the output layer and loss), p2p transfers
included; m micro-batches pass through it, and the pipeline's fill and drain leave every
stage idle for (p - 1)·T, or (p - 1)·T/v with v interleaved chunks per stage (Narayanan
et al. 2021, SC21, Sec. 2.2.1-2.2.2: bubble fraction (p - 1)/m, interleaved (p - 1)/(v·m)).

T's parts, per micro-batch of b sequences of s tokens on one device:

- compute: every matrix product of the stage's layers after tensor-parallel sharding (QKV,
  attention output, FFN in and out: M = b·s rows, the weight's columns or rows split by t;
  the attention core's two batched products over the a/t local heads; the output layer on
  the last stage) at the size-dependent efficiency of `genaisdk.estimate.efficiency`, and
  the element-wise kernels (layer norms, bias-dropout-residual, activation function,
  softmax and its dropout, the loss) as memory traffic; the backward pass costs twice the
  forward's products and traffic (the gradients with respect to inputs and to weights,
  Narayanan et al. 2021, Sec. 5.1: 3 passes of 2·N FLOPs per token);
- recomputation: full, one more forward pass of every layer (its products, traffic and
  tensor-parallel collectives); selective, one more forward of the attention core
  (Korthikanti et al. 2022, Sec. 5); with flash attention the fused kernel's backward
  recomputes the scores itself (`FLASH_BACKWARD_FACTOR`), and selective adds nothing;
- tensor parallelism: per layer, two all-reduces of the b·s·h activations in the forward
  pass and two in the backward (after the attention and the FFN blocks and their
  conjugates; Shoeybi et al. 2019, Sec. 3, Fig. 4), or with sequence parallelism two
  all-gathers and two reduce-scatters each way, the same volume (Korthikanti et al. 2022,
  Sec. 4.2.2); plus one in the embedding's forward and one for the output layer's input
  in its backward. Megatron-LM runs them between the products that need them, so none is
  hidden;
- pipeline transfers: each micro-batch's activations sent forward and their gradients
  back, b·s·h values split over the t ranks (Narayanan et al. 2021, Sec. 4.1, scatter /
  gather), once per chunk, so v times with the interleaved schedule, on the schedule's
  critical path.

After the last micro-batch, the data-parallel gradient reduction over d: ring all-reduce of
the stage's 16-bit gradients (ZeRO 0), reduce-scatter of gradients and all-gather of the
updated weights (ZeRO 1 and 2: the same volume, Rajbhandari et al. 2020, Sec. 7.1), or per
micro-batch two weight all-gathers and a gradient reduce-scatter (ZeRO 3 / FSDP: 1.5x,
Sec. 7.2). Megatron-LM (2021) reduces after the backward pass, nothing hidden (the
default); with `overlap_data_parallel` the reduction hides behind the last micro-batch's
backward pass (bucketed all-reduce, PyTorch DDP, Li et al. 2020, Sec. 3.2.3), and ZeRO-3's
gathers behind each micro-batch's compute (prefetch), and only what is longer than that
compute is exposed. The optimizer step reads and writes the stage's weights, gradients,
master weights and moments once (memory traffic).

Adapters over a frozen base (LoRA, QLoRA; `LoraTiming`, one device or data parallelism
only): the frozen weight products' backward computes input gradients only, one product
where training them takes two (their weight gradients are never formed: Hu et al. 2021,
Sec. 4.2), and so does the output layer's; the embedding has no backward. Each adapted
matrix adds its two rank-r products (x·A, then ·B) forward and twice that backward, at the
efficiency of their small sizes. A k-bit base (QLoRA's NF4, int8) is dequantized before
every use of a weight, forward, backward and recomputation: its codes read and a 16-bit
copy written (bitsandbytes' dequantize-then-matmul kernels for training batches). Gradient
accumulation, the data-parallel reduction and the optimizer step touch the adapters alone.

An offloading strategy adds the `offload` part: its bytes over the device's host link
(PCIe, NVLink-C2C) each step, none hidden: the gradients down and the updated weights up
once per step when the optimizer steps on the host (ZeRO-Offload, Ren et al. 2021, Sec.
4.1), and the weights up for each micro-batch's forward and backward pass and its gradients
down when the weights live there. The host CPU's own optimizer step is not timed, so an
offloading step is a lower bound.

All of this is Megatron-LM's step. Other training software with the same layout runs at a
measured fraction of it (`genaisdk.estimate.frameworks`: DeepSpeed's pipeline engine 0.73);
the step then takes the sum above / that fraction, and the difference is the `framework` part
(0 for Megatron-LM).

The results: seconds per step and each part, the micro-batches, the model FLOPs per step
(Chowdhery et al. 2022, App. B: 6·N + 12·L·H·Q·T per token) and the hardware FLOPs
(recomputation included), the achieved FLOP/s per device and MFU = model FLOP/s per device
/ peak, derived rather than assumed.

Every numeric argument may be a numpy array, and `recompute` an array of
`genaisdk.estimate.parallel.RECOMPUTE_CODES`, so that a whole grid of layouts is one call.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate import efficiency as eff
from genaisdk.estimate.adaptation import adapter_shapes, lora_flops_per_token, lora_params
from genaisdk.estimate.comm import (
    Cluster,
    all_reduce_bytes,
    group_bandwidth,
    point_to_point_bandwidth,
    reduce_scatter_bytes,
)
from genaisdk.estimate.flops import hardware_flops_per_token, model_flops_per_token
from genaisdk.estimate.parallel import (
    RECOMPUTE_CODES,
    _single_stack,
    micro_batches,
    recompute_codes,
    stage_layers,
    stage_params,
)
from genaisdk.estimate.params import tensor_group_kv_heads

LOGITS_FP32_BYTES = 4.0
"""The loss reads the logits and writes fp32 probabilities (`activations.LOGITS_FP32_BYTES`)."""

MASK_BYTES = 1.0
"""Dropout masks, one byte per element (Korthikanti et al. 2022, Sec. 4.1)."""

DETAILS = (
    "tensor", "pipeline", "data", "virtual_stages", "micro_batch", "tokens", "stage_layers", "most_loaded_stage",
    "layer_forward", "layer_backward", "layer_recompute", "collective_bytes", "collective_seconds",
    "tensor_bandwidth", "transfer_bandwidth", "data_bandwidth", "stage_params", "data_bytes", "optimizer_bytes",
    "lora_rank", "host_bytes", "host_bandwidth",
)
"""`StepTime.details`: the layout, the slowest stage's layers and index, one layer's forward,
backward and recomputation seconds, one tensor-parallel collective's bytes and seconds, the
achieved bandwidths of the tensor, pipeline and data-parallel groups (bytes/s), the stage's
parameters per device (trained ones: adapters alone over a frozen base), the bytes each
device sends for the data-parallel reduction per step, the optimizer step's memory traffic,
the adapters' rank (0: every weight trains), and the bytes an offloading strategy moves over
the host link per step and that link's bandwidth (0 where unknown)."""

PARTS = ("compute", "recompute", "tensor_parallel", "pipeline_transfer", "bubble", "data_parallel", "optimizer", "offload",
         "framework")
"""The parts of a step, in the order they are reported; they sum to `StepTime.seconds`."""


@attrs.frozen(kw_only=True)
class LoraTiming:
    """Adapters of rank `rank` on `targets` (`genaisdk.estimate.adaptation`) over a frozen
    base stored at `frozen_weight_bytes` per parameter where it is quantized (QLoRA), or
    None for a 16-bit base (module docstring)."""

    rank: int
    targets: tuple[str, ...] = attrs.field(converter=tuple)
    frozen_weight_bytes: float | None = None


@attrs.frozen(kw_only=True)
class LayerCosts:
    """Seconds of one layer's forward pass for one micro-batch on one device, by kind, and
    the bytes of one tensor-parallel collective (numpy arrays)."""

    matmul: np.ndarray
    """The four weight products (QKV, attention output, FFN in, FFN out)."""
    attention: np.ndarray
    """The attention core: its two batched products, or the fused kernel."""
    attention_traffic: np.ndarray
    """Softmax and its dropout over the materialized scores (0 with flash attention)."""
    elementwise: np.ndarray
    """Layer norms, bias-dropout-residual, activation function."""
    attention_backward_factor: np.ndarray
    """Backward over forward time of the attention core: 2, or 2.5 for the fused kernel."""
    collective_bytes: np.ndarray
    """b·s·h activations of one all-reduce (or reduce-scatter + all-gather) in bytes."""

    @property
    def forward(self):
        return self.matmul + self.attention + self.attention_traffic + self.elementwise

    @property
    def backward(self):
        return 2.0 * (self.matmul + self.attention_traffic + self.elementwise) + self.attention_backward_factor * self.attention


def layer_costs(
    dims: Dimensions,
    cluster: Cluster,
    *,
    seq,
    micro_batch,
    tensor_parallel=1,
    sequence_parallel=False,
    flash: bool = True,
    causal: bool = True,
    dropout: bool = True,
    bytes_per_value=2.0,
) -> LayerCosts:
    """Forward seconds of one transformer layer (module docstring), per micro-batch and
    device. Shapes after tensor-parallel sharding: M = b·s tokens; QKV N = (H + 2·K')·Q/t
    with K' = `tensor_group_kv_heads`; attention output K = H·Q/t; FFN in N = d_ff/t (x2
    gated, gate and up in one product); FFN out K = d_ff/t."""
    pb = np.asarray(bytes_per_value, dtype=float)
    t = np.asarray(tensor_parallel, dtype=float)
    s = np.asarray(seq, dtype=float)
    tokens = np.asarray(micro_batch, dtype=float) * s
    rep = np.where(np.asarray(sequence_parallel, dtype=bool), t, 1.0)
    h, f = float(dims.d_model), float(dims.d_ff)
    q_width = float(dims.heads * dims.d_head)
    kv_width = tensor_group_kv_heads(dims, t) * dims.d_head
    peak, bw = cluster.peak_flops, cluster.memory_bandwidth

    def gemm(n, k):
        return eff.gemm_seconds(tokens, n, k, peak_flops=peak, memory_bandwidth=bw, bytes_per_value=pb)

    gate = 2.0 if dims.ffn == "gated" else 1.0
    matmul = gemm((q_width + 2 * kv_width) / t, h) + gemm(h, q_width / t) + gemm(gate * f / t, h) + gemm(h, f / t)

    heads = dims.heads / t
    batch = np.asarray(micro_batch, dtype=float)
    core_flops = 2.0 * batch * heads * s * s * dims.d_head  # one of the two products
    if flash:
        # One fused kernel: Q, K, V read and O written once; causal masking skips half.
        flops = 2.0 * core_flops * (0.5 if causal else 1.0)
        nbytes = pb * batch * s * heads * dims.d_head * 4.0
        attention = eff.matmul_seconds(
            flops, nbytes, peak_flops=peak, memory_bandwidth=bw, efficiency=eff.FLASH_ATTENTION_EFFICIENCY
        )
        attention_traffic = 0.0 * attention
        backward_factor = eff.FLASH_BACKWARD_FACTOR
    else:
        # QKᵀ reads Q and K and writes the scores; the product with V reads the
        # probabilities and V and writes the output: each per head s·Q·2 + s².
        nbytes = pb * batch * heads * (2.0 * s * dims.d_head + s * s)
        attention = 2.0 * eff.matmul_seconds(core_flops, nbytes, peak_flops=peak, memory_bandwidth=bw)
        scores = batch * heads * s * s
        # fused scale-mask-softmax reads and writes the scores; dropout reads them and
        # writes its output and mask
        softmax = eff.memory_seconds(2.0 * pb * scores, memory_bandwidth=bw)
        drop = eff.memory_seconds((2.0 * pb + MASK_BYTES) * scores, memory_bandwidth=bw) if dropout else 0.0
        attention_traffic = softmax + drop
        backward_factor = 2.0

    mask = MASK_BYTES if dropout else 0.0
    norms = 1 if dims.parallel_block else 2
    layer_norm = eff.memory_seconds(2.0 * pb * h * tokens / rep, memory_bandwidth=bw)
    # bias + dropout + residual add: reads the output and the residual, writes the sum and mask
    residual = eff.memory_seconds((3.0 * pb + mask) * h * tokens / rep, memory_bandwidth=bw)
    # activation function: reads its input(s), writes its output (gated: gate and up in)
    activation = eff.memory_seconds((gate + 1.0) * pb * f / t * tokens, memory_bandwidth=bw)
    elementwise = norms * layer_norm + 2.0 * residual + activation
    shape = np.broadcast_shapes(np.shape(matmul), np.shape(attention), np.shape(elementwise))

    def full(x):
        return np.broadcast_to(np.asarray(x, dtype=float), shape)

    return LayerCosts(
        matmul=full(matmul),
        attention=full(attention),
        attention_traffic=full(attention_traffic),
        elementwise=full(elementwise),
        attention_backward_factor=full(backward_factor),
        collective_bytes=full(pb * tokens * h),
    )


@attrs.frozen(kw_only=True)
class StepTime:
    """One training step under a layout (numpy arrays over the layout grid).

    `seconds` = the sum of `parts` (`PARTS`); `micro_batches` m; `stage_seconds` T, the
    slowest stage's forward and backward time for one micro-batch; `model_flops` and
    `hardware_flops` per step (all devices); `devices` t·p·d; `peak_flops` per device."""

    seconds: np.ndarray
    parts: Mapping[str, np.ndarray]
    details: Mapping[str, np.ndarray]
    """The quantities the parts are computed from (`DETAILS`), for explanations."""
    micro_batches: np.ndarray
    stage_seconds: np.ndarray
    model_flops: np.ndarray
    hardware_flops: np.ndarray
    devices: np.ndarray
    peak_flops: np.ndarray

    @property
    def flops_per_device(self):
        """Achieved model FLOP/s per device: model FLOPs / (seconds x devices)."""
        return self.model_flops / (self.seconds * self.devices)

    @property
    def hardware_flops_per_device(self):
        """Achieved FLOP/s per device counting recomputation (what Megatron-LM reports)."""
        return self.hardware_flops / (self.seconds * self.devices)

    @property
    def mfu(self):
        """Model FLOPs utilization, Chowdhery et al. 2022, App. B."""
        return self.flops_per_device / self.peak_flops

    @property
    def hfu(self):
        """Hardware FLOPs utilization: recomputation counted."""
        return self.hardware_flops_per_device / self.peak_flops

    @property
    def bubble_fraction(self):
        """The bubble's share of the step."""
        return self.parts["bubble"] / self.seconds


def step_time(
    dims: Dimensions,
    cluster: Cluster,
    *,
    family: str = "decoder",
    seq,
    global_batch,
    micro_batch,
    tensor_parallel=1,
    pipeline_parallel=1,
    data_parallel=1,
    virtual_stages=1,
    sequence_parallel=False,
    recompute="selective",
    zero_stage=0,
    flash: bool = True,
    causal: bool = True,
    dropout: bool = True,
    activation_bytes=2.0,
    weight_bytes=2.0,
    gradient_bytes=2.0,
    optimizer_bytes=8.0,
    master_bytes=4.0,
    accumulate_bytes=4.0,
    overlap_data_parallel=False,
    framework_efficiency=1.0,
    lora: LoraTiming | None = None,
    offload_optimizer=False,
    offload_weights=False,
) -> StepTime:
    """Seconds per training step and its parts (module docstring). `global_batch` in
    sequences of `seq` tokens; the layout uses t·p·d devices of `cluster`.
    `framework_efficiency` is the training software's throughput as a fraction of the
    Megatron-LM this model is calibrated on (`genaisdk.estimate.frameworks`): the step takes
    the other parts' sum / it, the difference being the `framework` part. `lora`: adapters
    over a frozen base (t = p = 1 only). `offload_optimizer` / `offload_weights`: the
    strategy keeps the optimizer step / the weights in host memory (the `offload` part; 0
    where `cluster.host_bandwidth` is None).

    Raises:
        ValueError: `lora` with tensor or pipeline parallelism (not modelled)."""
    family = _single_stack(dims, family)
    t = np.asarray(tensor_parallel, dtype=float)
    p = np.asarray(pipeline_parallel, dtype=float)
    d = np.asarray(data_parallel, dtype=float)
    v = np.asarray(virtual_stages, dtype=float)
    zero = np.asarray(zero_stage)
    codes = recompute_codes(recompute)
    full_rc = codes == RECOMPUTE_CODES["full"]
    selective_rc = codes == RECOMPUTE_CODES["selective"]
    sp = np.asarray(sequence_parallel, dtype=bool)
    pb = np.asarray(activation_bytes, dtype=float)
    peak, bw = cluster.peak_flops, cluster.memory_bandwidth
    s = np.asarray(seq, dtype=float)
    b = np.asarray(micro_batch, dtype=float)
    tokens = b * s
    m = micro_batches(global_batch=global_batch, data_parallel=d, micro_batch=b)

    costs = layer_costs(
        dims, cluster, seq=s, micro_batch=b, tensor_parallel=t, sequence_parallel=sp,
        flash=flash, causal=causal, dropout=dropout, bytes_per_value=pb,
    )
    bw_tp = group_bandwidth(cluster, size=t, stride=1)
    collective = all_reduce_bytes(costs.collective_bytes, t) / bw_tp  # one all-reduce, or RS + AG
    layer_fwd = costs.forward
    layer_bwd = costs.backward
    if lora is not None:
        if np.any(t > 1) or np.any(p > 1):
            raise ValueError("adapters over a frozen base are timed on one device or data parallelism only (t = p = 1)")
        r = float(lora.rank)
        adapter = sum(
            eff.gemm_seconds(tokens, r, d_in, peak_flops=peak, memory_bandwidth=bw, bytes_per_value=pb)
            + eff.gemm_seconds(tokens, d_out, r, peak_flops=peak, memory_bandwidth=bw, bytes_per_value=pb)
            for d_in, d_out in adapter_shapes(dims, lora.targets)
        )
        dequantize = 0.0
        if lora.frozen_weight_bytes is not None:
            block = float(stage_params(dims, family=family).block)
            dequantize = eff.memory_seconds(block * (float(lora.frozen_weight_bytes) + pb), memory_bandwidth=bw)
        layer_fwd = layer_fwd + adapter + dequantize
        layer_bwd = layer_bwd - costs.matmul + 2.0 * adapter + dequantize
    layer_recompute = np.where(
        full_rc,
        layer_fwd + 2.0 * collective,
        np.where(selective_rc & (not flash), costs.attention + costs.attention_traffic, 0.0),
    )
    layers = stage_layers(dims.layers, pipeline_parallel=p, virtual_stages=v, stage=0)

    # First stage: the embedding lookup and its dropout (traffic), its all-reduce over t.
    h, vocab = float(dims.d_model), float(dims.vocab)
    rep = np.where(sp, t, 1.0)
    mask = MASK_BYTES if dropout else 0.0
    embed_fwd = eff.memory_seconds((3.0 * pb + mask) * h * tokens / rep, memory_bandwidth=bw)
    embed_bwd = 2.0 * embed_fwd if lora is None else 0.0 * embed_fwd
    # Last stage: final norm, the output layer's product (vocabulary split over t), the loss.
    logits = eff.gemm_seconds(tokens, vocab / t, h, peak_flops=peak, memory_bandwidth=bw, bytes_per_value=pb)
    loss = eff.memory_seconds((pb + LOGITS_FP32_BYTES) * vocab / t * tokens, memory_bandwidth=bw)
    final_norm = eff.memory_seconds(2.0 * pb * h * tokens / rep, memory_bandwidth=bw)
    head_fwd = final_norm + logits + loss
    head_bwd = 2.0 * head_fwd if lora is None else 2.0 * head_fwd - logits

    single = p == 1
    last_layers = stage_layers(dims.layers, pipeline_parallel=p, virtual_stages=v, stage=p - 1)
    params = stage_params(dims, family=family, tensor_parallel=t, pipeline_parallel=p)
    first_params = params.block * layers + params.first_extra + np.where(single, params.last_extra, 0.0)
    last_params = params.block * last_layers + params.last_extra
    if lora is not None:  # only the adapters have gradients and optimizer state
        first_params = last_params = 0.0 * first_params + float(
            lora_params(dims, rank=lora.rank, targets=lora.targets, family=family)
        )
    # Each micro-batch's weight gradients are added into the step's gradient accumulator:
    # one read and one write of it per parameter (Megatron-LM accumulates into fp32
    # `main_grad` buffers).
    accumulate = np.asarray(accumulate_bytes, dtype=float) * 2.0
    first_accumulate = eff.memory_seconds(first_params * accumulate, memory_bandwidth=bw)
    last_accumulate = eff.memory_seconds(last_params * accumulate, memory_bandwidth=bw)
    first_compute = (
        layers * (layer_fwd + layer_bwd) + embed_fwd + embed_bwd + np.where(single, head_fwd + head_bwd, 0.0) + first_accumulate
    )
    last_compute = last_layers * (layer_fwd + layer_bwd) + head_fwd + head_bwd + last_accumulate
    # Two all-reduces forward and two backward; with sequence parallelism the backward pass
    # all-gathers the sequence-split inputs of the QKV and first FFN products again, since
    # only the split input is kept (Korthikanti et al. 2022, Sec. 4.2.2; Megatron-LM's
    # column-parallel linear layer): two more all-gathers, one all-reduce's volume.
    tp_layer = np.where(sp, 5.0, 4.0) * collective
    first_tp = layers * tp_layer + collective + np.where(single, collective, 0.0)
    last_tp = last_layers * tp_layer + collective
    first_recompute = layers * layer_recompute
    last_recompute = last_layers * layer_recompute
    first_total = first_compute + first_tp + first_recompute
    last_total = last_compute + last_tp + last_recompute
    use_last = last_total > first_total
    compute = np.where(use_last, last_compute, first_compute)
    tp = np.where(use_last, last_tp, first_tp)
    rc = np.where(use_last, last_recompute, first_recompute)

    # Pipeline transfers: activations forward, gradients back, once per chunk (v per stage).
    # Consecutive stages are t·d ranks apart: once the layout fills more than a node, some
    # stage boundary crosses nodes, and the slowest boundary sets the pace.
    crosses = t * d * p > cluster.devices_per_node
    p2p_bandwidth = point_to_point_bandwidth(cluster, crosses_nodes=crosses)
    p2p = np.where(p > 1, 2.0 * v * costs.collective_bytes / t / p2p_bandwidth, 0.0)
    stage_seconds = compute + tp + rc + p2p

    # Data parallelism over d, per device: the most loaded stage's parameters.
    stage_param_count = np.maximum(first_params, last_params)
    grads = stage_param_count * np.asarray(gradient_bytes, dtype=float)
    weights = stage_param_count * np.asarray(weight_bytes, dtype=float)
    bw_dp = group_bandwidth(cluster, size=d, stride=t)
    sharded_step = reduce_scatter_bytes(grads, d) + reduce_scatter_bytes(weights, d)
    dp_volume = np.where(
        zero >= 3,
        m * (2.0 * reduce_scatter_bytes(weights, d) + reduce_scatter_bytes(grads, d)),
        np.where(zero == 0, all_reduce_bytes(grads, d), sharded_step),
    )
    dp_step = np.where(zero == 0, all_reduce_bytes(grads, d), sharded_step) / bw_dp
    zero3_per_micro = (2.0 * reduce_scatter_bytes(weights, d) + reduce_scatter_bytes(grads, d)) / bw_dp
    backward_last = np.where(use_last, last_compute, first_compute) * 2.0 / 3.0
    overlap = np.asarray(overlap_data_parallel, dtype=bool)
    exposed_step = np.where(overlap, np.maximum(0.0, dp_step - backward_last), dp_step)
    exposed_zero3 = m * np.where(overlap, np.maximum(0.0, zero3_per_micro - stage_seconds), zero3_per_micro)
    dp = np.where(d > 1, np.where(zero >= 3, exposed_zero3, exposed_step), 0.0)

    # Optimizer step: read and write weights, master weights and moments, read gradients.
    optimizer_params = np.where(zero >= 1, stage_param_count / d, stage_param_count)
    state = np.asarray(optimizer_bytes, dtype=float) + np.asarray(master_bytes, dtype=float)
    optimizer_traffic = optimizer_params * (2.0 * state + np.asarray(gradient_bytes, dtype=float) + np.asarray(weight_bytes, dtype=float))
    optimizer = eff.memory_seconds(optimizer_traffic, memory_bandwidth=bw)

    # Offload (ZeRO-Offload, Ren et al. 2021, Sec. 4.1: each step the 16-bit gradients go to
    # the host, where the optimizer steps, and the updated 16-bit weights come back; the
    # weights of a weight-offloading strategy come up for each micro-batch's forward and
    # backward pass and its gradients go down): bytes over the host link, none of it hidden.
    # The host CPU's own optimizer step is not timed.
    host = cluster.host_bandwidth
    shard = stage_param_count / np.where(zero >= 1, d, 1.0)
    optimizer_host = shard * (np.asarray(gradient_bytes, dtype=float) + np.asarray(weight_bytes, dtype=float))
    weights_host = m * shard * (2.0 * np.asarray(weight_bytes, dtype=float) + np.asarray(gradient_bytes, dtype=float))
    host_bytes = (np.where(np.asarray(offload_optimizer, dtype=bool), optimizer_host, 0.0)
                  + np.where(np.asarray(offload_weights, dtype=bool), weights_host, 0.0))
    offload = host_bytes / host if host else 0.0 * host_bytes

    bubble = (p - 1.0) / v * stage_seconds
    parts = {
        "compute": m * compute,
        "recompute": m * rc,
        "tensor_parallel": m * tp,
        "pipeline_transfer": m * p2p,
        "bubble": bubble,
        "data_parallel": dp,
        "optimizer": optimizer,
        "offload": offload,
    }
    modelled = sum(parts.values())
    parts["framework"] = modelled * (1.0 / np.asarray(framework_efficiency, dtype=float) - 1.0)
    seconds = modelled + parts["framework"]
    shape = np.shape(seconds)
    sequences = np.asarray(global_batch, dtype=float)
    step_tokens = sequences * s
    per_token = model_flops_per_token(dims, family=family, context=s).total
    recomputed = np.select(
        [full_rc, selective_rc],
        [hardware_flops_per_token(dims, family=family, context=s, recompute=kind).recompute for kind in ("full", "selective")],
        0.0,
    )
    if lora is not None:
        skipped, adapters = lora_flops_per_token(dims, rank=lora.rank, targets=lora.targets, family=family, context=s)
        per_token = per_token - skipped + adapters
    model = per_token * step_tokens
    hardware = (per_token + recomputed) * step_tokens

    def full(x):
        return np.broadcast_to(np.asarray(x, dtype=float), shape)

    details = {
        "tensor": t, "pipeline": p, "data": d, "virtual_stages": v, "micro_batch": b, "tokens": tokens,
        "stage_layers": np.where(use_last, last_layers, layers),
        "most_loaded_stage": np.where(use_last, p - 1, 0.0),
        "layer_forward": layer_fwd, "layer_backward": layer_bwd, "layer_recompute": layer_recompute,
        "collective_bytes": costs.collective_bytes, "collective_seconds": collective,
        "tensor_bandwidth": bw_tp, "transfer_bandwidth": p2p_bandwidth, "data_bandwidth": bw_dp,
        "stage_params": stage_param_count, "data_bytes": dp_volume, "optimizer_bytes": optimizer_traffic,
        "lora_rank": 0.0 if lora is None else float(lora.rank),
        "host_bytes": host_bytes, "host_bandwidth": float(host) if host else 0.0,
    }
    return StepTime(
        seconds=seconds,
        parts={k: full(val) for k, val in parts.items()},
        details={k: full(val) for k, val in details.items()},
        micro_batches=full(m),
        stage_seconds=full(stage_seconds),
        model_flops=full(model),
        hardware_flops=full(hardware),
        devices=full(t * p * d),
        peak_flops=full(peak),
    )
