"""Per-device memory under tensor, pipeline, sequence and data parallelism, stage by stage.

A layout is t x p x d devices: tensor parallelism of degree t (Shoeybi et al. 2019), a
pipeline of p stages, each holding v chunks of layers when the schedule is interleaved
(Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
Using Megatron-LM", SC21, Sec. 2.2), optional sequence parallelism (Korthikanti et al. 2022,
Sec. 4.2.2), and data parallelism over the remaining d with ZeRO stage 0-3 sharding over
those d only (Rajbhandari et al. 2020; stage 3 is FSDP).

Per stage r (0 = first) and per device:

- weights, gradients, optimizer state: the stage's parameters on one tensor-parallel rank
  (`stage_params`), through `genaisdk.estimate.memory.training_memory` with the
  data-parallel degree d, so ZeRO shards them over d exactly as without model parallelism;
- activations: one layer's (`genaisdk.estimate.activations.activation_memory`, with t
  and sequence parallelism) x the stage's layers x the micro-batches in flight. With the
  1F1B schedule stage r holds min(p - r, m) micro-batches (Narayanan et al. 2021, Sec.
  2.2.1), so the first stage holds p micro-batches of L/p layers: L layers' worth, whatever
  p is. With the interleaved schedule stage r starts 2·(p - r - 1) + (v - 1)·p chunk passes
  before its first backward (Megatron-LM `get_forward_backward_func`, interleaved warm-up),
  so it holds that plus one chunk's activations, at most m·v; for the first stage that is
  L·(1 + (p - 1)/(p·v)) layers' worth, the interleaving penalty of Megatron-LM's theoretical
  memory estimate (`theoretical_memory_usage.py`);
- the first stage also holds the embedding's output dropout mask for each micro-batch in
  flight; the last stage the final norm's input and the loss buffers (logits) of one
  micro-batch; under full recomputation every stage rebuilds one layer at a time.

The device's figure is the most loaded stage (the first or the last: middle stages hold no
embedding and fewer micro-batches than the first). Every numeric argument may be a numpy
array; `stage` too, so every stage of one layout is one call (`every_stage_memory`).
"""

from __future__ import annotations

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate import activations as act
from genaisdk.estimate.memory import TrainingMemory, training_memory
from genaisdk.estimate.params import canonical_family, count_params, norm_params, tensor_group_kv_heads

ZERO_STAGES = (0, 1, 2, 3)
"""0: plain data parallelism; 1: optimizer state sharded over d; 2: and gradients; 3: and
weights (ZeRO-3, FSDP) (Rajbhandari et al. 2020, Sec. 5)."""

RECOMPUTE_CODES = {kind: i for i, kind in enumerate(act.RECOMPUTE_KINDS)}
"""Integer codes of the recomputation levels for arrays: none 0, selective 1, full 2."""

_LAYER_PARTS = ("attention", "attention_scores", "ffn", "norms", "layer_inputs")


def _single_stack(dims: Dimensions, family: str) -> str:
    family = canonical_family(family)
    if family == "encoder_decoder":
        raise ValueError(
            "tensor and pipeline layouts are modeled for single-stack models (decoder or encoder); "
            "an encoder-decoder's two stacks would need a stage assignment of their own"
        )
    return family


@attrs.frozen(kw_only=True)
class StageParams:
    """Parameters one tensor-parallel rank holds, by what it holds (numpy arrays).

    `block`: one transformer block; `first_extra`: embedding tables (token embedding split
    over the vocabulary, position and token-type tables whole) and the embedding norm;
    `last_extra`: final norm, output projection (or the copy of the tied embedding the last
    stage keeps when p > 1), task heads; `largest_layer`: the largest unit a ZeRO-3 / FSDP
    step gathers (a block, or the embedding)."""

    block: np.ndarray
    first_extra: np.ndarray
    last_extra: np.ndarray
    largest_layer: np.ndarray


def stage_params(dims: Dimensions, *, family: str = "decoder", tensor_parallel=1, pipeline_parallel=1) -> StageParams:
    """Per-device parameter counts under tensor parallelism t (Shoeybi et al. 2019, Sec. 3).

    Split over t: the Q, K, V and output projections (by heads; K/V replicated when there are
    fewer K/V heads than t, `tensor_group_kv_heads`), the FFN matrices (by columns of the
    first, rows of the second), their column-parallel biases, the token embedding and
    output projection (by vocabulary rows). Whole on every rank: norms, the biases after
    the row-parallel layers, position and token-type tables. With p > 1 and tied
    embeddings the last stage keeps its own copy of the embedding for the output layer
    (Narayanan et al. 2021, Megatron-LM's shared word embeddings), so both the first and
    the last stage hold V·h/t.
    """
    family = _single_stack(dims, family)
    t = np.asarray(tensor_parallel, dtype=float)
    p = np.asarray(pipeline_parallel, dtype=float)
    h, f = dims.d_model, dims.d_ff
    q_width = dims.heads * dims.d_head
    kv_width = tensor_group_kv_heads(dims, t) * dims.d_head
    bias = 1.0 if dims.biases else 0.0
    qkv_bias = 1.0 if dims.has_qkv_biases else 0.0  # Qwen2: q/k/v biases, no other

    attention = (2 * h * q_width + 2 * h * kv_width + qkv_bias * (q_width + 2 * kv_width)) / t + bias * h
    if dims.ffn == "gated":
        ffn = (3 * h * f + bias * 2 * f) / t + bias * h
    else:
        ffn = (2 * h * f + bias * f) / t + bias * h
    norms = (1 if dims.parallel_block else 2) * norm_params(dims)
    relative = 0.0
    if dims.positions == "xl-relative":
        relative = (h * q_width + 2 * q_width) / t
    block = attention + ffn + norms + relative

    count = count_params(dims, family)
    parts = count.breakdown
    token = parts["embedding.token"] / t
    whole_tables = parts.get("embedding.position", 0) + parts.get("embedding.token_types", 0)
    whole_tables += parts.get("embedding.relative_bias", 0) + parts.get("embedding.norm", 0)
    first_extra = token + whole_tables
    heads = parts.get("pooler", 0) + parts.get("mlm_head", 0)
    output = parts.get("output", 0) / t
    tied_copy = np.where(dims.tied_embeddings & (p > 1), token, 0.0)
    last_extra = parts.get("final_norm", 0) + output + tied_copy + heads
    largest = np.maximum(np.maximum(block, token), output)
    shape = np.broadcast_shapes(np.shape(t), np.shape(p))

    def full(x):
        return np.broadcast_to(np.asarray(x, dtype=float), shape)

    return StageParams(block=full(block), first_extra=full(first_extra), last_extra=full(last_extra), largest_layer=full(largest))


def stage_layers(layers: int, *, pipeline_parallel, virtual_stages=1, stage=0):
    """Layers stage r holds when L layers are cut into p·v chunks as evenly as possible,
    the first chunks one layer larger, and chunk j runs on stage j mod p (Megatron-LM's
    interleaved assignment; v = 1 is the plain pipeline)."""
    p = np.asarray(pipeline_parallel, dtype=float)
    v = np.asarray(virtual_stages, dtype=float)
    r = np.asarray(stage, dtype=float)
    chunks = p * v
    base = np.floor(layers / chunks)
    remainder = layers - base * chunks
    larger = np.clip(np.ceil((remainder - r) / p), 0.0, v)
    return v * base + larger


def in_flight(*, pipeline_parallel, micro_batches, virtual_stages=1, stage=0):
    """Micro-batches' worth of the stage's activations held at the start of its first
    backward pass (module docstring): min(p - r, m) with 1F1B; with v > 1 interleaved chunks
    min(2·(p - r - 1) + (v - 1)·p + 1, m·v) chunk passes of 1/v of the stage's layers."""
    p = np.asarray(pipeline_parallel, dtype=float)
    v = np.asarray(virtual_stages, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    r = np.asarray(stage, dtype=float)
    plain = np.minimum(p - r, m)
    interleaved = np.minimum(2.0 * (p - r - 1.0) + (v - 1.0) * p + 1.0, m * v) / v
    return np.where(v > 1, interleaved, plain)


def micro_batches(*, global_batch, data_parallel, micro_batch):
    """m = global batch / (d · b), sequences; a layout whose d·b does not divide the global
    batch runs ceil of it (the last micro-batch padded)."""
    return np.ceil(np.asarray(global_batch, dtype=float) / (np.asarray(data_parallel, dtype=float) * np.asarray(micro_batch, dtype=float)))


def _layer_activations(parts) -> np.ndarray:
    return sum((parts[k] for k in _LAYER_PARTS if k in parts), 0.0)


def recompute_codes(recompute) -> np.ndarray:
    """'none' / 'selective' / 'full', or an array of their `RECOMPUTE_CODES`, as integers."""
    if isinstance(recompute, str):
        try:
            return np.asarray(RECOMPUTE_CODES[recompute])
        except KeyError:
            raise ValueError(f"recompute must be one of {tuple(RECOMPUTE_CODES)}, got {recompute!r}") from None
    return np.asarray(recompute)


def layer_activation_parts(dims: Dimensions, *, recompute, **options) -> dict[str, np.ndarray]:
    """One layer's activation parts (`activation_memory` of a one-layer model) grouped as the
    pipeline needs them: 'layer' (kept per layer and micro-batch in flight), 'embedding',
    'final_norm', 'loss', 'backward'. `recompute` may be an array of `RECOMPUTE_CODES`: each
    level present is computed once and picked per element."""
    one = dims.evolve(layers=1)
    codes = recompute_codes(recompute)
    groups = {}
    for kind, code in RECOMPUTE_CODES.items():
        if not np.any(codes == code):
            continue
        parts = act.activation_memory(one, recompute=kind, **options)
        groups[code] = {
            "layer": _layer_activations(parts),
            "embedding": parts["embedding"],
            "final_norm": parts["final_norm"],
            "loss": act.loss_bytes(parts),
            "backward": act.backward_bytes(parts),
        }
    if len(groups) == 1:
        return next(iter(groups.values()))
    return {
        name: np.select([codes == code for code in groups], [g[name] for g in groups.values()])
        for name in ("layer", "embedding", "final_norm", "loss", "backward")
    }


@attrs.frozen(kw_only=True)
class ParallelMemory:
    """Per-device memory of the first and the last pipeline stage (`TrainingMemory` each,
    arrays over the layout grid), and the device's figure: the larger of the two.
    `most_loaded` is 0 where the first stage sets it, p - 1 where the last does."""

    first: TrainingMemory
    last: TrainingMemory
    total: np.ndarray
    most_loaded: np.ndarray


@attrs.frozen(kw_only=True)
class StageActivations:
    """Activation bytes one device of a pipeline stage holds, by what holds them (numpy
    arrays): `layer`, one layer's for one micro-batch; `layers` and `in_flight`, the stage's
    layers and micro-batches in flight; `stored` = layer x layers x in flight, + the
    embedding's dropout mask per micro-batch in flight on the first stage, + the final
    norm's input on the last; `loss`, the logits buffers of one micro-batch on the last
    stage; `backward`, what exists only during the backward pass."""

    layer: np.ndarray
    layers: np.ndarray
    in_flight: np.ndarray
    stored: np.ndarray
    loss: np.ndarray
    backward: np.ndarray

    @property
    def total(self):
        return self.stored + self.loss + self.backward


def stage_activations(
    dims: Dimensions,
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
    stage=0,
    flash: bool = True,
    dropout: bool = True,
    activation_bytes=2.0,
) -> StageActivations:
    """The activations of one device of pipeline stage `stage` (module docstring)."""
    _single_stack(dims, family)
    t = np.asarray(tensor_parallel, dtype=float)
    p = np.asarray(pipeline_parallel, dtype=float)
    r = np.asarray(stage, dtype=float)
    m = micro_batches(global_batch=global_batch, data_parallel=data_parallel, micro_batch=micro_batch)
    parts = layer_activation_parts(
        dims,
        recompute=recompute,
        family=family,
        seq=seq,
        micro_batch=micro_batch,
        flash=flash,
        bytes_per_value=activation_bytes,
        tensor_parallel=t,
        sequence_parallel=sequence_parallel,
        dropout=dropout,
    )
    first = r == 0
    last = r == p - 1
    layers = stage_layers(dims.layers, pipeline_parallel=p, virtual_stages=virtual_stages, stage=r)
    flight = in_flight(pipeline_parallel=p, micro_batches=m, virtual_stages=virtual_stages, stage=r)
    stored = parts["layer"] * layers * flight
    stored = stored + np.where(first, parts["embedding"] * flight, 0.0)
    stored = stored + np.where(last, parts["final_norm"], 0.0)
    loss = np.where(last, parts["loss"], 0.0)
    return StageActivations(
        layer=parts["layer"], layers=layers, in_flight=flight, stored=stored, loss=loss, backward=parts["backward"]
    )


def stage_parameters(dims: Dimensions, *, family: str = "decoder", tensor_parallel=1, pipeline_parallel=1, virtual_stages=1, stage=0):
    """Parameters one device of pipeline stage `stage` holds: its layers' blocks, the
    embedding on the first stage, the output layer on the last (`stage_params`)."""
    p = np.asarray(pipeline_parallel, dtype=float)
    r = np.asarray(stage, dtype=float)
    sp = stage_params(dims, family=family, tensor_parallel=tensor_parallel, pipeline_parallel=p)
    layers = stage_layers(dims.layers, pipeline_parallel=p, virtual_stages=virtual_stages, stage=r)
    return sp.block * layers + np.where(r == 0, sp.first_extra, 0.0) + np.where(r == p - 1, sp.last_extra, 0.0)


def stage_memory(
    dims: Dimensions,
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
    stage=0,
    flash: bool = True,
    dropout: bool = True,
    activation_bytes=2.0,
    weight_bytes=2.0,
    gradient_bytes=2.0,
    optimizer_bytes=8.0,
    master_bytes=4.0,
    **memory_options,
) -> TrainingMemory:
    """Peak memory of one device of pipeline stage `stage` (module docstring), itemized as
    `training_memory` itemizes it. `recompute` is one level ('none', 'selective', 'full') or
    an array of `RECOMPUTE_CODES`. `memory_options` go to `training_memory`
    (`runtime_bytes`, `fragmentation`, `gather_layers`, the offload flags)."""
    _single_stack(dims, family)
    t = np.asarray(tensor_parallel, dtype=float)
    p = np.asarray(pipeline_parallel, dtype=float)
    d = np.asarray(data_parallel, dtype=float)
    zero = np.asarray(zero_stage)
    held = stage_activations(
        dims, family=family, seq=seq, global_batch=global_batch, micro_batch=micro_batch, tensor_parallel=t,
        pipeline_parallel=p, data_parallel=d, virtual_stages=virtual_stages, sequence_parallel=sequence_parallel,
        recompute=recompute, stage=stage, flash=flash, dropout=dropout, activation_bytes=activation_bytes,
    )
    sp = stage_params(dims, family=family, tensor_parallel=t, pipeline_parallel=p)
    params = stage_parameters(dims, family=family, tensor_parallel=t, pipeline_parallel=p, virtual_stages=virtual_stages, stage=stage)
    return training_memory(
        params=params,
        weight_bytes=weight_bytes,
        gradient_bytes=gradient_bytes,
        optimizer_bytes=optimizer_bytes,
        master_bytes=master_bytes,
        largest_layer=sp.largest_layer,
        dp=d,
        shards_optimizer=zero >= 1,
        shards_gradients=zero >= 2,
        shards_weights=zero >= 3,
        stored_activations=held.stored,
        loss_buffers=held.loss,
        backward_buffers=held.backward,
        **memory_options,
    )


def parallel_memory(dims: Dimensions, **kwargs) -> ParallelMemory:
    """`stage_memory` of the first and the last stage, and the larger of the two per layout
    (the device's figure). Arguments as `stage_memory`, without `stage`."""
    p = np.asarray(kwargs.get("pipeline_parallel", 1), dtype=float)
    first = stage_memory(dims, stage=0, **kwargs)
    last = stage_memory(dims, stage=p - 1, **kwargs)
    total = np.maximum(first.total, last.total)
    most_loaded = np.where(last.total > first.total, p - 1, 0.0)
    return ParallelMemory(first=first, last=last, total=total, most_loaded=most_loaded)


def every_stage_memory(dims: Dimensions, **kwargs) -> TrainingMemory:
    """`stage_memory` of stages 0 .. p-1 of one layout (scalar arguments), one array entry
    per stage: what `--json` lists as each stage's memory."""
    p = int(kwargs.get("pipeline_parallel", 1))
    return stage_memory(dims, stage=np.arange(p), **kwargs)
