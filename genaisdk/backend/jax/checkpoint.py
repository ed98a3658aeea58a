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
fails to read, and `restore` falls back to the previous step with one warning (orbax's
and TensorStore's own complaints about the damaged files are kept off the terminal).
A run that resumes from an earlier step sets the damaged steps aside (``<step>.damaged``)
and writes them afresh when it gets there.

Nothing read from a checkpoint can run code: the state is arrays (TensorStore/OCDBT) and
the metadata is JSON, checked field by field (`checked_meta`) before anything uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping
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


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (a full or read-only disk); `.step` is the step."""

    def __init__(self, step: int | None, directory: Path, cause: BaseException):
        what = f"checkpoint step {step}" if step is not None else "a checkpoint"
        super().__init__(f"cannot write {what} to {directory}: {_first_line(cause)}")
        self.step = step


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


_META_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "seed": (int,),
    "data": (dict,),
    "config_digest": (str,),
    "config": (dict,),
    "layout": (str,),
    "total_steps": (int,),
    "project": (str,),
    "fingerprint": (list,),
}
"""The type of each metadata field this module and `genai train` read."""


def checked_meta(step: int, raw: Any) -> dict[str, Any]:
    """A step's metadata as read from its JSON, each known field of its expected type
    (`_META_TYPES`; the fingerprint a list of 32-bit integers); CheckpointError naming the
    field otherwise, so that a malformed file is a damaged step, never a crash later."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"step {step} has malformed metadata (a {type(raw).__name__}, not an object)")
    meta = dict(raw)
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise CheckpointError(
                f"step {step} has malformed metadata: {key!r} is {type(value).__name__} {_short(value)}, "
                f"not {' or '.join('an object' if t is dict else t.__name__ for t in types)}"
            )
    fingerprint = meta.get("fingerprint")
    if fingerprint is not None and not all(
        isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 for x in fingerprint
    ):
        raise CheckpointError(f"step {step} has malformed metadata: 'fingerprint' is not a list of 32-bit integers")
    return meta


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _closed_loop_callback(unraisable: Any) -> bool:
    """Whether an unraisable error is TensorStore calling back into the closed event loop
    of a restore that failed (see `_drop_closed_loop_callbacks`)."""
    if unraisable.exc_type is not RuntimeError or str(unraisable.exc_value) != "Event loop is closed":
        return False
    frames = traceback.extract_tb(unraisable.exc_traceback) if unraisable.exc_traceback else []
    return any(frame.name in ("call_soon_threadsafe", "_check_closed") for frame in frames)


def _drop_closed_loop_callbacks() -> None:
    """Keeps one harmless error off the terminal for the rest of the process.

    When orbax fails to read a damaged step, it closes the event loop of that restore while
    TensorStore still has reads in flight; each read that finishes later calls back into the
    closed loop, and Python reports the ``RuntimeError: Event loop is closed`` of each as an
    unraisable error with its traceback: hundreds of lines for one damaged step, arriving
    for seconds after the restore returned, while training goes on. The unraisable hook
    drops those, and only those; every other one goes to the hook that was installed.
    """
    current = sys.unraisablehook
    if getattr(current, "_drops_closed_loop_callbacks", False):
        return

    def hook(unraisable: Any) -> None:
        if not _closed_loop_callback(unraisable):
            current(unraisable)

    hook._drops_closed_loop_callbacks = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@contextlib.contextmanager
def _libraries_quiet() -> Iterator[None]:
    """orbax and absl log every failed read of a damaged step; `restore` says it once.
    TensorStore's late callbacks of a failed read are dropped from here on (they may come
    before the failure reaches the caller)."""
    _drop_closed_loop_callbacks()
    loggers = [logging.getLogger(name) for name in ("absl", "orbax", "orbax.checkpoint", "tensorstore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


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
        self._pending: int | None = None
        self.replaced: list[int] = []
        """Steps found on disk when this run saved the same step, and replaced."""

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
        """Starts saving `state` as step `step` (written in the background).

        A step already on disk is replaced (listed in `replaced`): a run only saves a step
        it has just trained, so one on disk is from the timeline a resumed run left, which
        `restore` found damaged. Raises CheckpointWriteError when the disk refuses (full,
        read-only), here or for the previous save still being written."""
        record = dict(meta)
        record["step"] = int(step)
        record["fingerprint"] = state_fingerprint(state)
        args = self._ocp.args.Composite(
            **{STATE_ITEM: self._ocp.args.StandardSave(state), META_ITEM: self._ocp.args.JsonSave(record)}
        )
        try:
            self._manager.wait_until_finished()
        except Exception as exc:  # the previous save failed in the background
            raise CheckpointWriteError(self._pending, self.directory, exc) from exc
        self._pending = int(step)
        try:
            if int(step) in self._manager.all_steps():
                self._manager.delete(int(step))
                self.replaced.append(int(step))
            return bool(self._manager.save(int(step), args=args, force=True))
        except Exception as exc:  # orbax wraps OSError (ENOSPC, EROFS) in several ways
            raise CheckpointWriteError(int(step), self.directory, exc) from exc

    def wait(self) -> None:
        """Blocks until every started save is finalized on disk; CheckpointWriteError if
        one failed."""
        try:
            self._manager.wait_until_finished()
        except Exception as exc:
            raise CheckpointWriteError(self._pending, self.directory, exc) from exc

    def set_aside(self, steps: tuple[int, ...] | list[int]) -> list[Path]:
        """Renames damaged steps to ``<step>.damaged`` (kept for a look, no longer listed as
        steps), so the run saves those steps afresh when it gets there. Returns the new paths."""
        moved = []
        for step in steps:
            source = self.directory / str(step)
            target = self.directory / f"{step}.damaged"
            n = 1
            while target.exists():
                n += 1
                target = self.directory / f"{step}.damaged-{n}"
            try:
                source.rename(target)
            except FileNotFoundError:  # another process of the run moved it first
                continue
            moved.append(target)
        self._manager.reload()
        return moved

    def finalized_steps(self) -> list[int]:
        """Steps whose folders orbax finalized, read from the disk alone (it works after a
        failed save, when the manager's own state may not)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and p.is_dir())

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- restore ---------------------------------------------------------------------------

    def read_meta(self, step: int) -> dict[str, Any]:
        """Step `step`'s metadata, checked (`checked_meta`); CheckpointError if it cannot be
        read or is malformed."""
        args = self._ocp.args.Composite(**{META_ITEM: self._ocp.args.JsonRestore()})
        try:
            with _libraries_quiet():
                raw = self._manager.restore(step, args=args)[META_ITEM]
        except Exception as exc:
            raise CheckpointError(f"step {step} metadata cannot be read: {_first_line(exc)}") from exc
        return checked_meta(step, raw)

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
            with _libraries_quiet():
                restored = self._manager.restore(step, args=args)
        except Exception as exc:  # orbax/tensorstore raise ValueError, OSError, KeyError, ...
            raise CheckpointError(f"step {step} cannot be read: {_first_line(exc)}") from exc
        meta = checked_meta(step, restored[META_ITEM])
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
                    f"checkpoint {self.directory / str(step)} is damaged ({exc})", CorruptCheckpointWarning, stacklevel=2
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
            meta = checked_meta(candidate, json.loads((folder / META_ITEM / "metadata").read_text(encoding="utf-8")))
            with _libraries_quiet():
                restored = checkpointer.restore(
                    folder / STATE_ITEM,
                    args=ocp.args.PyTreeRestore(
                        item={"params": abstract_params}, restore_args={"params": restore_args}, partial_restore=True
                    ),
                )["params"]
        except Exception as exc:  # orbax/tensorstore raise ValueError, OSError, KeyError, ...
            problems.append(str(exc) if isinstance(exc, CheckpointError) else f"step {candidate} cannot be read: {_first_line(exc)}")
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


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an error, without TensorStore's trailing dump of its spec."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    line = line.split(" See full TensorStore details", 1)[0].rstrip(". ")
    return line if len(line) <= limit else line[: limit - 3] + "..."
