"""Logical-axis rules to mesh shardings, from the strategy records; optimizer-state mirroring."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")
import optax  # noqa: E402
from jax.sharding import AxisType, PartitionSpec  # noqa: E402

from genaisdk.backend.jax import optimizers  # noqa: E402
from genaisdk.backend.jax.model import build  # noqa: E402
from genaisdk.backend.jax.sharding import (  # noqa: E402
    make_mesh,
    mirror_specs,
    partition,
    rule_table,
    tree_shardings,
)
from genaisdk.dims import Dimensions  # noqa: E402

RULES = (("embed", "data"), ("mlp", "data"), ("heads", "data"), ("vocab", "data"))


@pytest.fixture(scope="module")
def mesh():
    return make_mesh(8)


def test_mesh_has_one_data_axis_of_auto_type(mesh):
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == 8
    assert mesh.axis_types == (AxisType.Auto,)


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
    assert not tables["ddp"]["params"] and not tables["ddp"]["grads"] and not tables["ddp"]["opt_state"]
    assert tables["zero1"]["opt_state"] and not tables["zero1"]["grads"] and not tables["zero1"]["params"]
    assert tables["zero2"]["opt_state"] and tables["zero2"]["grads"] and not tables["zero2"]["params"]
    assert tables["fsdp"]["opt_state"] and tables["fsdp"]["grads"] and tables["fsdp"]["params"]


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
