"""From logical axis names to device shardings, through the strategy's rule table.

Model code names every array dimension logically ('batch', 'length', 'embed', 'heads',
'kv', 'mlp', 'vocab', 'layers', 'experts'); the strategy record's `partition_rules` maps
them onto mesh axes, separately for each kind of state:

- 'params': the weights (FSDP/ZeRO-3 shards them, the others replicate them);
- 'grads': the accumulated gradients (ZeRO-2 and FSDP shard them);
- 'opt_state': optimizer moments and master weights (ZeRO-1 and up shard them);
- 'batch': the input batch and the residual stream (every strategy shards 'batch').

A dimension is sharded over the mesh axis of the first rule for its logical name whose
mesh axis exists, is not yet used by another dimension of the same array, and divides the
dimension; a rule whose mesh axis is None replicates the dimension and ends the search.
Where a rule wanted to shard an array and no dimension could take that mesh axis, the
array is replicated over it and a warning Diagnostic says so. Rank-0 leaves (step counts)
are always replicated. This is the only place strategies differ: the train step does not
know ddp from fsdp (the t5x/MaxText "logical axis rules" design).

Optimizer state mirrors the parameters: a state leaf found under a parameter's path
(Adam's mu and nu, a momentum trace, 8-bit codes and block scales, Adafactor's factored
rows and columns) takes that parameter's logical axes, for the dimensions it shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from genaisdk.backend.jax.model import ParamSpec, is_spec, path_name
from genaisdk.core import codes
from genaisdk.diagnostics import Diagnostic
from genaisdk.records import Strategy

DATA_AXIS = "data"


class ShardingWarning(UserWarning):
    """An array a rule wanted to shard is replicated instead (its dimensions do not divide)."""


STATE_KINDS = ("params", "grads", "opt_state", "batch")
Rules = tuple[tuple[str, str | None], ...]

BATCH_AXES = (None, "batch", "length")
"""Logical axes of a train batch array [accumulation, sequences, positions]."""
ACTIVATION_AXES = ("batch", "length", "embed")

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
    """A rule table from the record's `shards_*` flags (for records without `partition_rules`)."""
    return {
        "params": SHARDED_AXES if strategy.shards_weights else (),
        "grads": SHARDED_AXES if (strategy.shards_gradients or strategy.shards_weights) else (),
        "opt_state": SHARDED_AXES if (strategy.shards_optimizer or strategy.shards_weights) else (),
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


def make_mesh(devices: int | Sequence[Any] | None = None, axis_names: Sequence[str] = (DATA_AXIS,)) -> Mesh:
    """A one-axis mesh over `devices` (a count of the first devices, a list, or all).

    Axis types are passed explicitly (Auto: the compiler propagates shardings from the
    in/out shardings of `jax.jit`), since `jax.make_mesh` defaults to Explicit axes.
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
    shape = (len(chosen),) + (1,) * (len(axis_names) - 1)
    return jax.make_mesh(shape, tuple(axis_names), axis_types=(AxisType.Auto,) * len(axis_names), devices=chosen)


@attrs.frozen(kw_only=True)
class Placement:
    """A partition spec and the warnings found while choosing it."""

    spec: PartitionSpec
    diagnostics: tuple[Diagnostic, ...] = ()


def partition(
    axes: Sequence[str | None], shape: Sequence[int], rules: Rules, mesh: Mesh, *, path: str = ""
) -> Placement:
    """The PartitionSpec for one array (see the module docstring for the rule)."""
    if len(shape) == 0:
        return Placement(spec=PartitionSpec())
    mesh_sizes = dict(mesh.shape)
    chosen: list[str | None] = [None] * len(shape)
    used: set[str] = set()
    refused: dict[str, list[str]] = {}
    for i, (logical, size) in enumerate(zip(axes, shape)):
        if logical is None:
            continue
        for rule_axis, mesh_axis in rules:
            if rule_axis != logical:
                continue
            if mesh_axis is None:
                break
            if mesh_axis not in mesh_sizes or mesh_axis in used:
                continue
            if size % mesh_sizes[mesh_axis] == 0:
                chosen[i] = mesh_axis
                used.add(mesh_axis)
                break
            refused.setdefault(mesh_axis, []).append(f"{logical}={size}")
    notes = tuple(
        Diagnostic(
            code=codes.REPLICATED,
            severity=codes.severity(codes.REPLICATED),
            message=(
                f"{path or 'array'} {tuple(shape)} is replicated over mesh axis '{axis}' "
                f"({mesh_sizes[axis]} devices): {', '.join(dims)} not divisible"
            ),
            hint="pick dimensions divisible by the device count to shard it",
        )
        for axis, dims in refused.items()
        if axis not in used and mesh_sizes[axis] > 1
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
