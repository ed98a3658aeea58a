"""Logical-axis rules to mesh shardings, from the strategy records; optimizer-state mirroring."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")
import optax  # noqa: E402
from jax.sharding import AxisType, PartitionSpec  # noqa: E402

from genaisdk.backend.jax import optimizers  # noqa: E402
from genaisdk.backend.jax.model import build  # noqa: E402
from genaisdk.backend.jax.sharding import (  # noqa: E402
    activation_rules,
    make_mesh,
    mirror_specs,
    partition,
    rule_table,
    tree_shardings,
    uses_axis,
)
from genaisdk.dims import Dimensions  # noqa: E402

GROUP = ("tensor", "kv_replicas")
"""The tensor-parallel group's two mesh axes."""
RULES = (("embed", "data"), ("mlp", "data"), ("heads", "data"), ("vocab", "data"))


@pytest.fixture(scope="module")
def mesh():
    return make_mesh(8)


def test_mesh_is_data_by_tensor_of_auto_type_with_tensor_groups_of_neighbours(mesh):
    assert mesh.axis_names == ("data", "tensor", "kv_replicas")
    assert dict(mesh.shape) == {"data": 8, "tensor": 1, "kv_replicas": 1}
    assert mesh.axis_types == (AxisType.Auto,) * 3
    tp = make_mesh(8, tensor_parallel=4)
    assert dict(tp.shape) == {"data": 2, "tensor": 4, "kv_replicas": 1}
    assert [[d.id for d in row.flat] for row in tp.devices] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # 2 K/V heads over a group of 4: 'tensor' splits them, 'kv_replicas' holds the copies.
    gqa = make_mesh(8, tensor_parallel=4, kv_heads=2)
    assert dict(gqa.shape) == {"data": 2, "tensor": 2, "kv_replicas": 2}
    assert [[d.id for d in row.flat] for row in gqa.devices] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="tensor_parallel = 3 does not divide the 8 devices"):
        make_mesh(8, tensor_parallel=3)


def test_tensor_rules_split_query_heads_and_keep_too_few_kv_heads_whole(registry):
    """Megatron's column/row/vocabulary-parallel split, from the strategy records' tables."""
    mesh = make_mesh(8, tensor_parallel=4)
    ddp, fsdp = (rule_table(registry.get("strategies", name))["params"] for name in ("ddp", "fsdp"))
    assert partition(("layers", "embed", "q_heads", "kv"), (2, 32, 8, 4), ddp, mesh).spec == PartitionSpec(
        None, None, "tensor"
    )
    assert partition(("layers", "q_heads", "kv", "embed"), (2, 8, 4, 32), ddp, mesh).spec == PartitionSpec(None, "tensor")
    assert partition(("layers", "embed", "mlp"), (2, 32, 64), ddp, mesh).spec == PartitionSpec(None, None, "tensor")
    assert partition(("layers", "mlp", "embed"), (2, 64, 32), ddp, mesh).spec == PartitionSpec(None, "tensor")
    assert partition(("vocab", "embed"), (384, 32), ddp, mesh).spec == PartitionSpec("tensor")
    assert partition(("layers", "embed"), (2, 32), ddp, mesh).spec == PartitionSpec()  # norms stay whole
    # FSDP adds the data axis on another dimension: d_ff goes to 'tensor', the embedding to 'data'.
    assert partition(("layers", "embed", "mlp"), (2, 32, 64), fsdp, mesh).spec == PartitionSpec(None, "data", "tensor")
    assert partition(("layers", "mlp", "embed"), (2, 64, 32), fsdp, mesh).spec == PartitionSpec(None, "tensor", "data")
    # 4 KV heads split over 4 devices; 2 KV heads stay whole on each (said, as for any array).
    assert partition(("layers", "embed", "kv_heads", "kv"), (2, 32, 4, 4), ddp, mesh).spec == PartitionSpec(
        None, None, "tensor"
    )
    placed = partition(("layers", "embed", "kv_heads", "kv"), (2, 32, 2, 4), ddp, mesh, path="attn/k")
    assert placed.spec == PartitionSpec()
    (note,) = placed.diagnostics
    assert "attn/k" in note.message and "'tensor' (4 devices)" in note.message and "kv_heads=2" in note.message
    # The vocabulary falls back the same way when t does not divide it.
    assert partition(("vocab", "embed"), (50257, 32), ddp, mesh).diagnostics


def test_every_strategy_has_tensor_rules_and_activations_follow_the_weights(registry):
    for name in ("ddp", "zero1", "zero2", "fsdp"):
        table = rule_table(registry.get("strategies", name))
        assert uses_axis(table, "tensor") and all(("q_heads", GROUP) in table[k] for k in ("params", "grads", "opt_state"))
        assert all(("kv_heads", "tensor") in table[k] for k in ("params", "grads", "opt_state"))
        assert not uses_axis({"batch": table["batch"]}, "tensor")
    table = rule_table(registry.get("strategies", "fsdp"))
    plain = activation_rules(table, sequence_parallel=False)
    assert ("batch", "data") in plain and ("mlp", GROUP) in plain and ("embed", "data") not in plain
    assert activation_rules(table, sequence_parallel=True) == plain + (("length", GROUP),)


def test_a_heads_rule_applies_to_both_kinds_of_head_and_axes_of_one_device_shard_nothing(mesh):
    for kind in ("q_heads", "kv_heads"):
        assert partition((kind, "kv"), (8, 4), (("heads", "data"),), mesh).spec == PartitionSpec("data")
    single = make_mesh(1)
    assert partition(("batch", "length"), (4, 16), (("batch", "data"),), single).spec == PartitionSpec()


def test_first_dividing_rule_wins_and_a_mesh_axis_is_used_once(mesh):
    assert partition(("layers", "embed", "heads", "kv"), (2, 64, 8, 16), RULES, mesh).spec == PartitionSpec(
        None, "data"
    )
    # embed does not divide by 8: the next rule, heads, takes the data axis.
    placed = partition(("layers", "embed", "heads", "kv"), (2, 60, 8, 16), RULES, mesh)
    assert placed.spec == PartitionSpec(None, None, "data") and not placed.diagnostics


def test_an_array_no_rule_can_shard_is_replicated_with_a_warning(mesh):
    placed = partition(("vocab", "embed"), (50257, 30), RULES, mesh, path="embed/token")
    assert placed.spec == PartitionSpec()
    (note,) = placed.diagnostics
    assert note.code == "GJ201" and note.severity == "warning"
    assert "embed/token" in note.message and "vocab=50257" in note.message and "embed=30" in note.message


def test_scalars_are_replicated_and_none_rules_stop_the_search(mesh):
    assert partition((), (), RULES, mesh).spec == PartitionSpec()
    assert partition(("embed",), (64,), (("embed", None), ("embed", "data")), mesh).spec == PartitionSpec()
    assert partition(("embed",), (64,), (("embed", "tensor"), ("embed", "data")), mesh).spec == PartitionSpec("data")


def test_strategy_records_differ_only_in_what_they_shard(registry):
    tables = {name: rule_table(registry.get("strategies", name)) for name in ("ddp", "zero1", "zero2", "fsdp")}
    for table in tables.values():
        assert ("batch", "data") in table["batch"]
    # Over the data axis, that is: every strategy splits the same dimensions over 'tensor'.
    data = {name: {kind for kind in ("params", "grads", "opt_state") if uses_axis({kind: table[kind]}, "data")}
            for name, table in tables.items()}
    assert data == {"ddp": set(), "zero1": {"opt_state"}, "zero2": {"opt_state", "grads"},
                    "fsdp": {"opt_state", "grads", "params"}}
    assert len({table["params"][:4] for table in tables.values()}) == 1


def _specs():
    return build(Dimensions(layers=2, d_model=64, heads=8, d_ff=128, vocab=384, context=32), family="decoder").specs()


@pytest.mark.parametrize("factory", ["adamw", "sgd_momentum", "lion", "adam_8bit", "adafactor"])
def test_optimizer_state_takes_its_parameters_axes(mesh, factory):
    specs = _specs()
    abstract = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, "float32"), specs, is_leaf=lambda x: hasattr(x, "axes")
    )
    make = getattr(optimizers, factory)
    state = jax.eval_shape(make(optax.constant_schedule(1e-3), weight_decay=0.1).init, abstract)
    mirrored = mirror_specs(state, specs)
    q = specs["decoder"]["layers"]["attn"]["q"]
    found = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(mirrored, is_leaf=lambda x: hasattr(x, "axes"))[0]:
        name = jax.tree_util.keystr(path)
        if not leaf.shape:
            assert leaf.axes == ()
        elif name.endswith("['attn']['q']"):
            found.append(leaf)
            if leaf.shape == q.shape:
                assert leaf.axes == q.axes
            else:  # 8-bit block scales or Adafactor's factored moments keep the axes they share
                assert set(leaf.axes) - {None} <= set(q.axes)
    assert found, f"{factory}: no state found under the q projection"
    shardings, _ = tree_shardings(mirrored, RULES, mesh)
    assert all(isinstance(s, jax.sharding.NamedSharding) for s in jax.tree.leaves(shardings))
