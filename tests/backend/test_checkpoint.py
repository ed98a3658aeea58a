"""Checkpoints: round trip onto the abstract state's shardings, verification, fallback."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from genaisdk.backend.jax.checkpoint import (  # noqa: E402
    CheckpointError,
    Checkpointer,
    CorruptCheckpointWarning,
    state_fingerprint,
)


def _mesh():
    devices = np.array(jax.devices())
    return jax.sharding.Mesh(devices, ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _state(scale: float = 1.0):
    mesh = _mesh()
    n = len(mesh.devices)
    sharded = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    params = {
        "w": jax.device_put(jnp.arange(n * 6, dtype=jnp.float32).reshape(n * 2, 3) * scale, sharded),
        "b": jax.device_put(jnp.ones((3,), jnp.bfloat16) * scale, replicated),
    }
    opt = optax.adam(1e-3).init(params)
    return {"params": params, "opt": opt, "step": jnp.asarray(int(scale), jnp.int32)}


def _abstract(state):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def test_round_trip_keeps_values_and_shardings(tmp_path):
    state = _state(2.0)
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        assert ckpt.save(5, state, {"seed": 7})
        ckpt.wait()
        assert ckpt.steps() == [5]
        restored = ckpt.restore(_abstract(state))
    assert restored.step == 5 and restored.meta["seed"] == 7 and restored.skipped == ()
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.sharding.is_equivalent_to(b.sharding, a.ndim)
    assert type(restored.state["opt"][0]) is type(state["opt"][0])


def test_fingerprint_sees_one_flipped_bit_and_swapped_values():
    x = jnp.arange(16, dtype=jnp.float32)
    base = state_fingerprint({"x": x})
    flipped = jax.lax.bitcast_convert_type(
        jax.lax.bitcast_convert_type(x, jnp.uint32).at[3].set(jax.lax.bitcast_convert_type(x, jnp.uint32)[3] ^ 1),
        jnp.float32,
    )
    assert state_fingerprint({"x": flipped}) != base
    assert state_fingerprint({"x": x[::-1]}) != base
    assert state_fingerprint({"x": x}) == base


def _damage(step_dir):
    files = [f for f in glob.glob(os.path.join(step_dir, "state", "**", "*"), recursive=True) if os.path.isfile(f)]
    assert files
    for path in files:
        data = open(path, "rb").read()
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])


def test_damaged_latest_falls_back_to_previous_with_a_warning(tmp_path):
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, _state(1.0), {})
        ckpt.save(2, _state(2.0), {})
        ckpt.wait()
    _damage(tmp_path / "ckpt" / "2")
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        with pytest.warns(CorruptCheckpointWarning, match="damaged"):
            restored = ckpt.restore(_abstract(_state()))
    assert restored.step == 1 and restored.skipped == (2,)
    np.testing.assert_array_equal(np.asarray(restored.state["params"]["w"]), np.asarray(_state(1.0)["params"]["w"]))


def test_contents_that_differ_from_their_fingerprint_are_rejected(tmp_path):
    import orbax.checkpoint as ocp

    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, _state(1.0), {})
        ckpt.wait()
        # Step 2 holds one state but the fingerprint of another: what silent damage to the
        # array bytes (which orbax's own checks might not see) looks like on restore.
        meta = {"step": 2, "fingerprint": state_fingerprint(_state(3.0))}
        ckpt._manager.save(
            2,
            args=ocp.args.Composite(state=ocp.args.StandardSave(_state(2.0)), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        ckpt.wait()
        with pytest.warns(CorruptCheckpointWarning, match="does not match its fingerprint"):
            restored = ckpt.restore(_abstract(_state()))
    assert restored.step == 1 and restored.skipped == (2,)


def test_every_step_damaged_is_an_error_and_no_checkpoint_is_none(tmp_path):
    with Checkpointer(tmp_path / "empty") as ckpt:
        assert ckpt.restore(_abstract(_state())) is None
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(3, _state(), {})
    _damage(tmp_path / "ckpt" / "3")
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        with pytest.warns(CorruptCheckpointWarning), pytest.raises(CheckpointError, match="no usable checkpoint"):
            ckpt.restore(_abstract(_state()))


def test_half_written_step_is_not_listed(tmp_path):
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, _state(), {})
    # What a save killed before orbax's rename leaves behind.
    (tmp_path / "ckpt" / "2.orbax-checkpoint-tmp-1234").mkdir()
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        assert ckpt.steps() == [1]
        assert ckpt.restore(_abstract(_state())).step == 1
