"""Built-in data-parallel strategies: DDP and the ZeRO stages, with CPU-offload variants.

ZeRO (Rajbhandari et al. 2020, Sec. 5 and Fig. 1) partitions model state over the
data-parallel degree: stage 1 the optimizer state, stage 2 also the gradients, stage 3 also
the weights (what PyTorch and JAX call FSDP). Communication per step, in multiples of the
model size Ψ: an all-reduce (DDP) is a reduce-scatter plus an all-gather, 2Ψ; stages 1 and 2
send the same 2Ψ; stage 3 all-gathers the weights again for the backward pass, 3Ψ (Sec. 7).
ZeRO-Offload keeps the optimizer state, the fp32 master weights and the optimizer step on
the CPU (Ren et al. 2021, Sec. 4); offloading the weights as well is ZeRO-Infinity's
(Rajbhandari et al. 2021) and FSDP's `CPUOffload(offload_params=True)`.

The rule tables are what the JAX backend applies, and the only thing that differs between
these strategies there. For each kind of state ('params', 'grads', 'opt_state', 'batch') an
ordered tuple of (logical axis, mesh axis) pairs; a state kind that is absent is replicated.
The mesh has the axes 'data', the data-parallel group (the devices that see different
sequences, and over which ZeRO and FSDP shard state), and 'tensor' x 'kv_replicas', the
tensor-parallel group (`TENSOR_GROUP`; devices = data-parallel x tensor-parallel). Every
strategy shards the batch over 'data' and every kind of state over the tensor-parallel group
as Megatron-LM does (`TENSOR_RULES`); a state kind the strategy shards
also tries each named dimension in the order of `SHARDED_STATE_RULES`, and the backend shards
the first one that the data axis divides (never the 'layers' axis of scanned layers, never a
scalar). With a tensor-parallel group of one device the tensor rules change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Strategy

DATA_AXIS = "data"
"""The data-parallel mesh axis: the batch is split over it, and ZeRO and FSDP shard state over
it (the stages are defined over the data-parallel group, Rajbhandari et al. 2020, Sec. 5)."""

TENSOR_AXIS = "tensor"
KV_REPLICA_AXIS = "kv_replicas"
TENSOR_GROUP = (TENSOR_AXIS, KV_REPLICA_AXIS)
"""The tensor-parallel group of t devices (Shoeybi et al. 2019), as two mesh axes: 'tensor'
splits the key/value heads, and 'kv_replicas' holds copies of them. With g K/V heads
'tensor' has gcd(g, t) devices and 'kv_replicas' t / gcd(g, t): when g >= t (and t divides
g) every device holds g/t K/V heads and 'kv_replicas' has one device; when g < t each K/V
head is copied on t/g devices, each device holding the one head its query heads read, as
Megatron-LM replicates K/V projections when there are fewer query groups than
tensor-parallel ranks. Everything else is split over the whole group."""

TENSOR_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("q_heads", TENSOR_GROUP),
    ("kv_heads", TENSOR_AXIS),
    ("mlp", TENSOR_GROUP),
    ("vocab", TENSOR_GROUP),
)
"""Megatron-LM's split (Shoeybi et al. 2019, Sec. 3): the Q, K and V projections and the
FFN's first matrices are column-parallel (split by heads, by d_ff columns), the attention
output and the FFN's second matrix row-parallel (split by heads, by d_ff rows), the token
embedding and the output layer vocabulary-parallel. Query and K/V heads are separate
logical axes, so that with grouped-query attention the K/V heads follow their query heads
(`TENSOR_GROUP`). Norms, the embedding dimension and the biases after row-parallel layers
are never split over the tensor-parallel group."""

BATCH_RULES: tuple[tuple[str, str | None], ...] = (("batch", DATA_AXIS),)
"""Data parallelism: each device gets its own slice of the batch."""

SHARDED_STATE_RULES: tuple[tuple[str, str | None], ...] = (
    ("embed", DATA_AXIS),
    ("mlp", DATA_AXIS),
    ("vocab", DATA_AXIS),
    ("heads", DATA_AXIS),
    ("kv", DATA_AXIS),
    ("experts", DATA_AXIS),
)
"""How a partitioned kind of state is split: over the data axis, along the first of these
logical dimensions that it divides."""

_ZERO = "Rajbhandari et al. 2020, 'ZeRO: Memory Optimizations Toward Training Trillion Parameter Models', Sec. 5, 7"
_OFFLOAD = "Ren et al. 2021, 'ZeRO-Offload: Democratizing Billion-Scale Model Training', Sec. 4"
_INFINITY = "Rajbhandari et al. 2021, 'ZeRO-Infinity: Breaking the GPU Memory Wall', Sec. 5"


def rules(*sharded: str) -> dict[str, tuple[tuple[str, str | None], ...]]:
    """The rule table sharding the batch over 'data', every kind of state over 'tensor', and
    the named kinds of state over 'data' too. The tensor rules come first: a dimension that
    both could split (the FFN's d_ff) goes to 'tensor', as in Megatron-LM, and ZeRO takes
    another (the embedding dimension)."""
    table = {"batch": BATCH_RULES}
    for state in ("params", "grads", "opt_state"):
        table[state] = TENSOR_RULES + (SHARDED_STATE_RULES if state in sharded else ())
    return table


def _stage(stage: int) -> dict:
    """What ZeRO stage `stage` shards (0 is plain data parallelism)."""
    sharded = ("opt_state", "grads", "params")[:stage]
    return {
        "shards_optimizer": stage >= 1,
        "shards_gradients": stage >= 2,
        "shards_weights": stage >= 3,
        "communication": 3.0 if stage >= 3 else 2.0,
        "partition_rules": rules(*sharded),
    }


@hookimpl
def genaisdk_strategies() -> Iterator[Strategy]:
    yield Strategy(
        name="ddp",
        description="Data parallel: every device holds all weights, gradients and optimizer state",
        source="Li et al. 2020, 'PyTorch Distributed: Experiences on Accelerating Data Parallel Training', "
        "Sec. 3; " + _ZERO,
        aliases=("data-parallel", "zero0"),
        **_stage(0),
    )
    yield Strategy(
        name="zero1",
        description="ZeRO stage 1: optimizer state (and fp32 master weights) partitioned",
        source=_ZERO,
        aliases=("zero-1",),
        **_stage(1),
    )
    yield Strategy(
        name="zero2",
        description="ZeRO stage 2: optimizer state and gradients partitioned",
        source=_ZERO,
        aliases=("zero-2",),
        **_stage(2),
    )
    yield Strategy(
        name="fsdp",
        description="Fully sharded (ZeRO stage 3): weights, gradients and optimizer state partitioned",
        source=_ZERO + "; Zhao et al. 2023, 'PyTorch FSDP', Sec. 3",
        aliases=("zero3", "zero-3"),
        **_stage(3),
    )
    yield Strategy(
        name="zero1-offload",
        description="ZeRO stage 1 with optimizer state, master weights and the optimizer step on the CPU",
        source=_OFFLOAD,
        offload_optimizer=True,
        **_stage(1),
    )
    yield Strategy(
        name="zero2-offload",
        description="ZeRO-Offload: stage 2 with optimizer state, master weights and the optimizer step on the CPU",
        source=_OFFLOAD,
        aliases=("zero-offload",),
        offload_optimizer=True,
        **_stage(2),
    )
    yield Strategy(
        name="fsdp-offload",
        description="Fully sharded with optimizer state and weights kept in CPU memory between uses",
        source=_INFINITY + "; Zhao et al. 2023, 'PyTorch FSDP', Sec. 3.2 (CPU offload)",
        aliases=("zero3-offload",),
        offload_optimizer=True,
        offload_weights=True,
        **_stage(3),
    )
