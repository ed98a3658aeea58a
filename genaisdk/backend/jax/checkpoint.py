"""Checkpoints of the training state with orbax-checkpoint, verified on restore.

A checkpoint is one orbax step folder holding two items:

- ``state``: the Trainer's state pytree (parameters, optimizer state, step counter, loss
  scale), saved from its sharded arrays and restored onto the shardings of the Trainer's
  abstract state, so a restored FSDP state is sharded exactly like a fresh one;
- ``meta``: JSON with the step, the data position, the seed, a digest of the resolved
  configuration, the state's layout (`layout_digest`) and a fingerprint of every state leaf.

Two guards keep a bad checkpoint from being taken for a good one. Orbax writes each step
into a temporary folder and renames it only once every item is complete (its atomic
finalize), so a run killed mid-save leaves nothing that lists as a step. And `restore`
recomputes every leaf's fingerprint and compares it with the one saved: a checkpoint that
was damaged after it was written (a truncated or overwritten file) fails that check or
fails to read, and `restore` falls back to the previous step with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

log = logging.getLogger(__name__)

STATE_ITEM = "state"
META_ITEM = "meta"
DEFAULT_KEEP = 3
"""Steps kept on disk: the latest plus two to fall back to if the latest is damaged."""


class CheckpointError(Exception):
    """No usable checkpoint, or one that does not belong to this run."""


class CorruptCheckpointWarning(UserWarning):
    """The latest checkpoint could not be restored; an earlier one was used instead."""


@attrs.frozen(kw_only=True)
class Restored:
    step: int
    state: Any
    meta: Mapping[str, Any]
    skipped: tuple[int, ...] = ()
    """Later steps that were found damaged and passed over."""


def _fingerprint_fn():
    import jax
    import jax.numpy as jnp

    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}

    def leaf_digest(leaf):
        # Reinterpret the bits as unsigned integers and take a position-weighted sum modulo
        # 2**32. Integer addition is associative, so the digest is exact and the same for any
        # sharding or reduction order, yet a single flipped bit or two swapped values change it.
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if leaf.dtype == jnp.bool_:
            bits = leaf.astype(jnp.uint32)
        else:
            width = jnp.dtype(leaf.dtype).itemsize
            bits = jax.lax.bitcast_convert_type(leaf, unsigned[width]).astype(jnp.uint32)
        flat = bits.reshape(-1)
        weights = jnp.arange(flat.shape[0], dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(1)
        return jnp.sum(flat * weights, dtype=jnp.uint32)

    return jax.jit(lambda leaves: [leaf_digest(leaf) for leaf in leaves])


_FINGERPRINT = None


def layout_digest(state: Any) -> str:
    """A digest of every leaf's path, global shape and dtype (not its sharding): what a
    checkpoint must share with a run's state to be restored into it, on any device count."""
    import jax

    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    leaves = [(jax.tree_util.keystr(path), list(leaf.shape), str(leaf.dtype)) for path, leaf in flat]
    return hashlib.sha256(json.dumps(leaves).encode()).hexdigest()[:16]


def _device_set(leaf: Any) -> tuple:
    sharding = getattr(leaf, "sharding", None)
    devices = getattr(sharding, "device_set", None)
    return tuple(sorted(d.id for d in devices)) if devices else ()


def state_fingerprint(state: Any) -> list[int]:
    """One 32-bit digest per leaf of `state`, in tree order (see `leaf_digest`)."""
    global _FINGERPRINT
    import jax

    if _FINGERPRINT is None:
        _FINGERPRINT = _fingerprint_fn()
    leaves = jax.tree.leaves(state)
    # One program per set of devices the leaves live on (a jitted call takes one set), each
    # finished before the next starts: independent programs with collectives in flight
    # together can starve the CPU backend's thread pool (every device thread waiting in a
    # different program's rendezvous).
    groups: dict[tuple, list[int]] = {}
    for index, leaf in enumerate(leaves):
        groups.setdefault(_device_set(leaf), []).append(index)
    digests: list[int] = [0] * len(leaves)
    for indices in groups.values():
        values = jax.device_get(_FINGERPRINT([leaves[i] for i in indices]))
        for i, value in zip(indices, values, strict=True):
            digests[i] = int(value)
    return digests


class Checkpointer:
    """Saves every so often and at the end; restores the newest step that verifies."""

    def __init__(self, directory: str | Path, *, keep: int = DEFAULT_KEEP, async_save: bool = True):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
            # A save killed half-way leaves a temporary folder; remove it on the next start.
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    # -- queries ---------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """Finalized steps on disk, oldest first (temporary, half-written folders excluded)."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    # -- save ------------------------------------------------------------------------------

    def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> bool:
        """Starts saving `state` as step `step` (written in the background); False if the step
        is already on disk."""
        if step in self._manager.all_steps():
            return False
        record = dict(meta)
        record["step"] = int(step)
        record["fingerprint"] = state_fingerprint(state)
        args = self._ocp.args.Composite(
            **{STATE_ITEM: self._ocp.args.StandardSave(state), META_ITEM: self._ocp.args.JsonSave(record)}
        )
        return bool(self._manager.save(int(step), args=args, force=True))

    def wait(self) -> None:
        """Blocks until every started save is finalized on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- restore ---------------------------------------------------------------------------

    def read_meta(self, step: int) -> dict[str, Any]:
        args = self._ocp.args.Composite(**{META_ITEM: self._ocp.args.JsonRestore()})
        return dict(self._manager.restore(step, args=args)[META_ITEM])

    def restore_step(self, step: int, abstract_state: Any) -> Restored:
        """Restores `step` onto `abstract_state`'s shapes, dtypes and shardings and verifies
        its fingerprint; raises CheckpointError if it is damaged."""
        args = self._ocp.args.Composite(
            **{
                STATE_ITEM: self._ocp.args.StandardRestore(abstract_state),
                META_ITEM: self._ocp.args.JsonRestore(),
            }
        )
        try:
            restored = self._manager.restore(step, args=args)
        except Exception as exc:  # orbax/tensorstore raise ValueError, OSError, KeyError, ...
            raise CheckpointError(f"step {step} cannot be read: {_first_line(exc)}") from exc
        meta = dict(restored[META_ITEM] or {})
        expected = meta.get("fingerprint")
        if expected is None:
            raise CheckpointError(f"step {step} has no fingerprint in its metadata")
        actual = state_fingerprint(restored[STATE_ITEM])
        if list(expected) != actual:
            bad = sum(1 for a, b in zip(expected, actual, strict=False) if a != b) + abs(len(expected) - len(actual))
            raise CheckpointError(f"step {step} does not match its fingerprint ({bad} damaged array(s))")
        return Restored(step=step, state=restored[STATE_ITEM], meta=meta)

    def restore(self, abstract_state: Any, *, at_most: int | None = None) -> Restored | None:
        """The newest step (at most `at_most`) that reads and verifies, or None if there is
        no checkpoint. Damaged steps are skipped with a `CorruptCheckpointWarning`; if every
        step is damaged, CheckpointError."""
        steps = [s for s in self.steps() if at_most is None or s <= at_most]
        if not steps:
            return None
        skipped: list[int] = []
        problems: list[str] = []
        for step in reversed(steps):
            try:
                result = self.restore_step(step, abstract_state)
            except CheckpointError as exc:
                skipped.append(step)
                problems.append(str(exc))
                warnings.warn(
                    f"checkpoint {self.directory / str(step)} is damaged ({exc}); trying an earlier one",
                    CorruptCheckpointWarning,
                    stacklevel=2,
                )
                continue
            return attrs.evolve(result, skipped=tuple(skipped))
        raise CheckpointError(
            f"no usable checkpoint in {self.directory}: " + "; ".join(problems)
        )


def restore_params(directory: str | Path, abstract_params: Any, *, step: int | None = None) -> Restored:
    """Only the parameters of a run's checkpoint, onto `abstract_params`' shapes, dtypes and
    shardings (ShapeDtypeStructs with shardings), without reading the optimizer state.

    `directory` is a run's ``checkpoints/`` folder; `step` None takes the newest step whose
    parameters match their saved fingerprints (damaged steps are passed over with a
    `CorruptCheckpointWarning`). The state was saved as a `TrainState` (step, params,
    opt_state, loss_scale, rng), so the parameters' fingerprints follow the step's in the
    saved list. Raises CheckpointError when no step is usable."""
    import jax
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / STATE_ITEM).is_dir()) if directory.is_dir() else []
    if step is not None:
        steps = [s for s in steps if s == step]
    if not steps:
        raise CheckpointError(f"no checkpoint{'' if step is None else f' of step {step}'} in {directory}")
    restore_args = jax.tree.map(
        lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding, global_shape=a.shape, dtype=a.dtype), abstract_params
    )
    problems: list[str] = []
    skipped: list[int] = []
    checkpointer = ocp.PyTreeCheckpointer()
    for candidate in reversed(steps):
        folder = directory / str(candidate)
        try:
            meta = json.loads((folder / META_ITEM / "metadata").read_text(encoding="utf-8"))
            restored = checkpointer.restore(
                folder / STATE_ITEM,
                args=ocp.args.PyTreeRestore(
                    item={"params": abstract_params}, restore_args={"params": restore_args}, partial_restore=True
                ),
            )["params"]
        except Exception as exc:  # orbax/tensorstore raise ValueError, OSError, KeyError, ...
            problems.append(f"step {candidate} cannot be read: {_first_line(exc)}")
            skipped.append(candidate)
            continue
        saved = list(meta.get("fingerprint") or [])
        actual = state_fingerprint(restored)
        if saved[1 : 1 + len(actual)] != actual:
            problems.append(f"step {candidate} does not match its fingerprint")
            skipped.append(candidate)
            warnings.warn(f"checkpoint {folder} is damaged; trying an earlier one", CorruptCheckpointWarning, stacklevel=2)
            continue
        return Restored(step=candidate, state=restored, meta=meta, skipped=tuple(skipped))
    raise CheckpointError(f"no usable checkpoint in {directory}: " + "; ".join(problems))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) < 300 else line[:297] + "..."
