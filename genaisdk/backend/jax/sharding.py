"""From logical axis names to device shardings, through the strategy's rule table.

Model code names every array dimension logically ('batch', 'length', 'embed', 'q_heads',
'kv_heads', 'kv' (the head size), 'mlp', 'vocab', 'layers', 'experts'); the strategy
record's `partition_rules` maps them onto mesh axes, separately for each kind of state:

- 'params': the weights (FSDP/ZeRO-3 shards them over 'data'; every strategy splits the
  heads, d_ff and the vocabulary over the tensor-parallel group);
- 'grads': the accumulated gradients (ZeRO-2 and FSDP shard them);
- 'opt_state': optimizer moments and master weights (ZeRO-1 and up shard them);
- 'batch': the input batch and the residual stream (every strategy shards 'batch').

The mesh (`make_mesh`) is 'data' x 'tensor' x 'kv_replicas'. 'data' is the data-parallel
group: the devices that see different sequences, over which ZeRO and FSDP shard state (the
ZeRO stages are defined over the data-parallel group, Rajbhandari et al. 2020, Sec. 5, so a
separate 'fsdp' axis would only serve hybrid sharding, which no strategy asks for).
'tensor' x 'kv_replicas' is the tensor-parallel group of t neighbouring devices (Shoeybi et
al. 2019; one node's fast links): query heads, d_ff and the vocabulary are split over both,
the K/V heads of grouped-query attention over 'tensor' only, which has gcd(g, t) devices, so
that with fewer K/V heads than t each device holds the one K/V head its query heads read
(Megatron-LM's replication) instead of all of them. With sequence parallelism (Korthikanti
et al. 2022, Sec. 4.2.2) the residual stream's 'length' is split over the group too
(`activation_rules`).

A dimension is sharded over the mesh axes of the first rule for its logical name whose
mesh axes exist, span more than one device, are not yet used by another dimension of the
same array, and divide the dimension; a rule whose mesh axis is None replicates the
dimension and ends the search. A rule for 'heads' applies to 'q_heads' and 'kv_heads'.
Where a rule wanted to shard an array and no dimension could take its mesh axes, the array
is replicated over them and a warning Diagnostic says so (a vocabulary that t does not
divide). Rank-0 leaves (step counts) are always replicated. This is the only place
strategies differ: the train step does not know ddp from fsdp (the t5x/MaxText "logical
axis rules" design).

Optimizer state mirrors the parameters: a state leaf found under a parameter's path
(Adam's mu and nu, a momentum trace, 8-bit codes and block scales, Adafactor's factored
rows and columns) takes that parameter's logical axes, for the dimensions it shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from genaisdk.backend.jax.model import ParamSpec, is_spec, path_name
from genaisdk.builtins.strategies import DATA_AXIS, KV_REPLICA_AXIS, TENSOR_AXIS, TENSOR_GROUP, TENSOR_RULES
from genaisdk.core import codes
from genaisdk.diagnostics import Diagnostic
from genaisdk.records import Strategy

MESH_AXES = (DATA_AXIS, TENSOR_AXIS, KV_REPLICA_AXIS)
"""The mesh: data-parallel groups x the tensor-parallel group (`TENSOR_GROUP`, two axes)."""


class ShardingWarning(UserWarning):
    """An array a rule wanted to shard is replicated instead (its dimensions do not divide)."""


STATE_KINDS = ("params", "grads", "opt_state", "batch")
MeshAxes = str | tuple[str, ...] | None
Rules = tuple[tuple[str, MeshAxes], ...]

BATCH_AXES = (None, "batch", "length")
"""Logical axes of a train batch array [accumulation, sequences, positions]."""

SEQUENCE_PARALLEL_RULES: Rules = (("length", TENSOR_GROUP),)
"""Sequence parallelism: the residual stream's positions split over the tensor-parallel group."""

HEADS = "heads"
"""A rule for 'heads' applies to both kinds of head."""
_RULE_NAMES = {"q_heads": ("q_heads", HEADS), "kv_heads": ("kv_heads", HEADS)}

SHARDED_AXES: Rules = (
    ("embed", DATA_AXIS),
    ("mlp", DATA_AXIS),
    ("heads", DATA_AXIS),
    ("vocab", DATA_AXIS),
    ("kv", DATA_AXIS),
    ("length", DATA_AXIS),
)
"""The ZeRO partitioning used when a strategy record carries no rule table of its own:
each array is cut along its first logical axis that divides the data-parallel degree."""


def derived_rules(strategy: Strategy) -> dict[str, Rules]:
    """A rule table from the record's `shards_*` flags (for records without `partition_rules`):
    the built-in strategies' tensor rules, and ZeRO's over the data axis where a flag says so."""
    return {
        "params": TENSOR_RULES + (SHARDED_AXES if strategy.shards_weights else ()),
        "grads": TENSOR_RULES + (SHARDED_AXES if (strategy.shards_gradients or strategy.shards_weights) else ()),
        "opt_state": TENSOR_RULES + (SHARDED_AXES if (strategy.shards_optimizer or strategy.shards_weights) else ()),
        "batch": (("batch", DATA_AXIS),),
    }


def rule_table(strategy: Strategy) -> dict[str, Rules]:
    """The strategy's rules for every state kind; kinds it leaves out follow 'params'
    ('batch' defaults to sharding the batch over the data axis)."""
    given = dict(strategy.partition_rules) if strategy.partition_rules else derived_rules(strategy)
    table = {kind: tuple(tuple(rule) for rule in given.get(kind, ())) for kind in STATE_KINDS}
    for kind in ("grads", "opt_state"):
        if kind not in given:
            table[kind] = table["params"]
    if "batch" not in given:
        table["batch"] = (("batch", DATA_AXIS),)
    return table


def _names(target: MeshAxes) -> tuple[str, ...]:
    if target is None:
        return ()
    return target if isinstance(target, tuple) else (target,)


def uses_axis(rules: Mapping[str, Rules], mesh_axis: str) -> bool:
    """Whether any rule of a rule table shards over `mesh_axis`."""
    return any(mesh_axis in _names(target) for kind in rules.values() for _, target in kind)


def activation_rules(rules: Mapping[str, Rules], *, sequence_parallel: bool) -> Rules:
    """The rules of the activations: the batch's ('batch' over 'data'); heads, d_ff and
    vocabulary split over the tensor-parallel group as the weights that make them are (the
    'params' rules over it); and with sequence parallelism the residual stream's positions."""
    tensor = tuple(rule for rule in rules["params"] if set(_names(rule[1])) & set(TENSOR_GROUP))
    return tuple(rules["batch"]) + tensor + (SEQUENCE_PARALLEL_RULES if sequence_parallel else ())


def tensor_group_shape(tensor_parallel: int, kv_heads: int | None = None) -> tuple[int, int]:
    """Devices on ('tensor', 'kv_replicas') for a tensor-parallel group of `tensor_parallel`
    devices and a model with `kv_heads` K/V heads (None: as many as t): (gcd(g, t), t / gcd)."""
    split = math.gcd(kv_heads, tensor_parallel) if kv_heads else tensor_parallel
    return split, tensor_parallel // split


def make_mesh(
    devices: int | Sequence[Any] | None = None, *, tensor_parallel: int = 1, kv_heads: int | None = None
) -> Mesh:
    """The ('data', 'tensor', 'kv_replicas') mesh over `devices` (a count of the first
    devices, a list, or all): `tensor_parallel` neighbouring devices form one tensor-parallel
    group (on a GPU node, devices that share NVLink), laid out as `tensor_group_shape` for a
    model of `kv_heads` K/V heads; the groups are the data-parallel replicas.

    Axis types are passed explicitly (Auto: the compiler propagates shardings from the
    in/out shardings of `jax.jit`), since `jax.make_mesh` defaults to Explicit axes.
    Raises ValueError when there are too few devices or `tensor_parallel` does not divide them.
    """
    if devices is None:
        chosen = jax.devices()
    elif isinstance(devices, int):
        available = jax.devices()
        if devices > len(available):
            raise ValueError(f"{devices} devices requested but JAX sees {len(available)}")
        chosen = available[:devices]
    else:
        chosen = list(devices)
    if tensor_parallel < 1 or len(chosen) % tensor_parallel:
        raise ValueError(f"tensor_parallel = {tensor_parallel} does not divide the {len(chosen)} devices")
    # The last axes are the most communication-intensive: `jax.make_mesh` lays them on the
    # closest devices (in device order on CPU and GPU, along the torus on TPU).
    shape = (len(chosen) // tensor_parallel, *tensor_group_shape(tensor_parallel, kv_heads))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=chosen)


@attrs.frozen(kw_only=True)
class Placement:
    """A partition spec and the warnings found while choosing it."""

    spec: PartitionSpec
    diagnostics: tuple[Diagnostic, ...] = ()


def partition(
    axes: Sequence[str | None], shape: Sequence[int], rules: Rules, mesh: Mesh, *, path: str = ""
) -> Placement:
    """The PartitionSpec for one array (see the module docstring for the rule). A rule's
    tuple of mesh axes splits the dimension over all of them together (their product)."""
    if len(shape) == 0:
        return Placement(spec=PartitionSpec())
    mesh_sizes = dict(mesh.shape)
    chosen: list[MeshAxes] = [None] * len(shape)
    used: set[str] = set()
    refused: dict[tuple[str, ...], list[str]] = {}
    for i, (logical, size) in enumerate(zip(axes, shape)):
        if logical is None:
            continue
        names = _RULE_NAMES.get(logical, (logical,))
        for rule_axis, target in rules:
            if rule_axis not in names:
                continue
            if target is None:
                break
            # Axes of one device shard nothing: the spec then reads as without them.
            live = tuple(a for a in _names(target) if mesh_sizes.get(a, 1) > 1)
            if not live or used & set(live):
                continue
            if size % math.prod(mesh_sizes[a] for a in live) == 0:
                chosen[i] = live[0] if len(live) == 1 else live
                used.update(live)
                break
            refused.setdefault(live, []).append(f"{logical}={size}")
    notes = tuple(
        Diagnostic(
            code=codes.REPLICATED,
            severity=codes.severity(codes.REPLICATED),
            message=(
                f"{path or 'array'} {tuple(shape)} is replicated over mesh axis "
                f"{' x '.join(repr(a) for a in live)} ({math.prod(mesh_sizes[a] for a in live)} devices): "
                f"{', '.join(dims)} not divisible"
            ),
            hint="pick dimensions divisible by the device count to shard it",
        )
        for live, dims in refused.items()
        if not used & set(live)
    )
    while chosen and chosen[-1] is None:
        chosen.pop()
    return Placement(spec=PartitionSpec(*chosen), diagnostics=notes)


def tree_shardings(specs: Any, rules: Rules, mesh: Mesh) -> tuple[Any, list[Diagnostic]]:
    """NamedShardings for a tree of ParamSpecs, and the warnings."""
    notes: list[Diagnostic] = []

    def place(path: tuple, spec: ParamSpec) -> NamedSharding:
        placement = partition(spec.axes, spec.shape, rules, mesh, path=spec.name or path_name(path))
        notes.extend(placement.diagnostics)
        return NamedSharding(mesh, placement.spec)

    return jax.tree_util.tree_map_with_path(place, specs, is_leaf=is_spec), notes


def _param_index(param_specs: Any) -> dict[tuple[str, ...], ParamSpec]:
    flat = jax.tree_util.tree_flatten_with_path(param_specs, is_leaf=is_spec)[0]
    return {tuple(str(k.key) for k in path): spec for path, spec in flat}


def _mirrored_axes(shape: tuple[int, ...], spec: ParamSpec) -> tuple[str | None, ...]:
    if shape == spec.shape:
        return spec.axes
    if len(shape) == len(spec.shape):
        return tuple(a if s == p else None for s, a, p in zip(shape, spec.axes, spec.shape))
    # A reduced copy (Adafactor's factored moments): match dimensions in order.
    axes: list[str | None] = []
    j = 0
    for size in shape:
        while j < len(spec.shape) and spec.shape[j] != size:
            j += 1
        if j < len(spec.shape):
            axes.append(spec.axes[j])
            j += 1
        else:
            axes.append(None)
    return tuple(axes)


def mirror_specs(state: Any, param_specs: Any) -> Any:
    """ParamSpecs for every leaf of an (abstract) optimizer state, mirroring the parameter
    found at the end of the leaf's path; leaves under no parameter get no logical axes."""
    index = _param_index(param_specs)

    def mirror(path: tuple, leaf: Any) -> ParamSpec:
        shape = tuple(np.shape(leaf))
        keys: list[str] = []
        for entry in reversed(path):
            if not isinstance(entry, jax.tree_util.DictKey):
                break
            keys.insert(0, str(entry.key))
        param = index.get(tuple(keys))
        if param is None or not shape:
            return ParamSpec(shape=shape, axes=(None,) * len(shape))
        return ParamSpec(shape=shape, axes=_mirrored_axes(shape, param), name="/".join(keys))

    return jax.tree_util.tree_map_with_path(mirror, state)


def named(mesh: Mesh, axes: Sequence[str | None], rules: Rules, shape: Sequence[int]) -> NamedSharding:
    """A NamedSharding for one array of known shape and logical axes."""
    return NamedSharding(mesh, partition(axes, shape, rules, mesh).spec)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def summarize(shardings: Any) -> Mapping[str, str]:
    """'path' -> PartitionSpec text, for logs and `genai measure`."""
    flat = jax.tree_util.tree_flatten_with_path(shardings)[0]
    return {path_name(path): str(s.spec) for path, s in flat}
