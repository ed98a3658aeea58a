"""The training loop: steps, evaluations, checkpoints, stops.

The loop drives a `Trainer` (the compiled steps) with batches from a `DataPipeline`:

- Step ``s`` (0-based; after it, ``s + 1`` steps are complete) trains on
  ``pipeline.batch(s)``, turned into the objective's batch with a generator seeded by
  ``(seed, s)``. Nothing else feeds randomness into a step, so a run resumed from a
  checkpoint at step ``c`` repeats exactly the steps an uninterrupted run takes after ``c``.
- The device runs ahead of the host: step ``s + 1`` is dispatched and its batch for
  ``s + 2`` prepared before the metrics of step ``s`` are read, so reading metrics never
  leaves the device idle. A checkpoint, an evaluation or a stop first drains the metrics,
  so nothing is saved before its step's loss has been seen to be finite.
- Every `eval_every` steps and at the end: held-out loss (token mean over a fixed set of
  held-out batches, each held-out sequence once), perplexity, exp(loss) (Jelinek et al.
  1977), and bits per byte; computed by `genaisdk.backend.jax.evaluate`, the code
  `genai eval` runs.
- Every `checkpoint_every` steps and at the end, a checkpoint. SIGINT or SIGTERM only sets a
  flag (a second SIGINT aborts at once); the loop saves at the next step boundary and
  returns "interrupted".
- A non-finite loss or gradient norm on a step the loss scaler did not skip stops the run
  ("diverged") without saving, so the last checkpoint on disk is the last good state.
- A checkpoint or a metrics line the disk refuses (full, read-only) stops the run
  ("failed"), naming the last checkpoint that was finalized before it.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from genaisdk.backend.jax.evaluate import DEFAULT_EVAL_BATCHES, held_out_batches, lm_totals, token_bytes

TRAIN_RNG_STREAM = 101
STOP_AGREEMENT_EVERY = 10
"""Steps between checks, in a multi-host run, that every process agrees to stop."""

COMPLETED = "completed"
INTERRUPTED = "interrupted"
DIVERGED = "diverged"
FAILED = "failed"


@attrs.frozen(kw_only=True)
class LoopSettings:
    total_steps: int
    seed: int = 0
    eval_every: int | None = None
    """Evaluate every N steps (and always at the end); None: only at the end."""
    eval_batches: int = DEFAULT_EVAL_BATCHES
    checkpoint_every: int | None = None
    """Save every N steps (and always at the end, or when stopped); None: only then."""
    peak_flops: float | None = None
    """Peak FLOP/s of all training devices together, for MFU; None where unknown (CPU)."""
    process_count: int = 1


@attrs.frozen(kw_only=True)
class LoopOutcome:
    status: str
    """'completed', 'interrupted', 'diverged' or 'failed' (the output could not be written)."""
    start_step: int
    step: int
    """Optimizer steps complete in the returned state (the last one seen good if diverged)."""
    final_loss: float | None
    eval_loss: float | None
    perplexity: float | None
    tokens_per_s: float | None
    """Mean over the steps after the first (which includes compilation)."""
    mfu: float | None
    seconds: float
    last_checkpoint: int | None
    message: str = ""
    signal_number: int | None = None
    state: Any = attrs.field(default=None, repr=False)


class StopRequest:
    """SIGINT/SIGTERM handlers that ask the loop to stop at the next step boundary."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_number is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
        self.signal_number = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Diverged(Exception):
    def __init__(self, step: int, entry: dict[str, Any]):
        self.step = step
        self.entry = entry
        if entry.get("weights"):
            detail = "the weights became NaN or infinite"
        elif not _finite(entry.get("loss")):
            detail = f"the loss is {entry.get('loss')}"
        else:
            detail = f"the gradient norm is {entry.get('grad_norm')}"
        super().__init__(f"training diverged at step {step}: {detail}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _due(step: int, every: int | None) -> bool:
    return bool(every) and step % every == 0


class TrainingLoop:
    """One run of the loop over a trainer, a pipeline and the run's outputs."""

    def __init__(
        self,
        *,
        trainer: Any,
        pipeline: Any,
        settings: LoopSettings,
        checkpointer: Any = None,
        metrics: Any = None,
        progress: Any = None,
        checkpoint_meta: Callable[[int], dict[str, Any]] | None = None,
    ):
        self.trainer = trainer
        self.pipeline = pipeline
        self.settings = settings
        self.checkpointer = checkpointer
        self.metrics = metrics
        self.progress = progress
        self.checkpoint_meta = checkpoint_meta or (lambda step: {})
        self.tokens_per_step = int(trainer.config.tokens_per_step)
        self.flops_per_step = float(trainer.flops_per_step)
        self._eval_host: list[dict[str, np.ndarray]] | None = None
        self._eval_groups: dict[str, list[dict[str, np.ndarray]]] | None = None
        self._token_bytes: np.ndarray | None = None
        self._all_finite: Callable[[Any], Any] | None = None

    # -- batches ---------------------------------------------------------------------------

    def train_batch(self, step: int) -> dict[str, Any]:
        """Step `step`'s batch on the devices, in the trainer's batch sharding."""
        tokens = self.pipeline.batch(step)
        rng = np.random.default_rng([self.settings.seed, TRAIN_RNG_STREAM, step])
        mask = self.pipeline.loss_mask(step) if getattr(self.pipeline, "has_loss_mask", False) else None
        return self.trainer.put_batch(self.trainer.make_batch(tokens, rng, loss_mask=mask))

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, state: Any, step: int) -> dict[str, Any] | None:
        from genaisdk.backend.jax.tokenizer import ByteTokenizer

        if self._eval_host is None:
            self._eval_host = held_out_batches(
                self.pipeline, self.trainer.make_batch, seed=self.settings.seed, limit=self.settings.eval_batches
            )
            tokenizer = getattr(self.pipeline.settings, "tokenizer", None)
            self._token_bytes = token_bytes(tokenizer or ByteTokenizer(vocab_size=self.trainer.config.dims.vocab))
        if not self._eval_host:
            return None

        def loss_fn(batch: dict[str, np.ndarray]) -> tuple[Any, Any]:
            result = self.trainer.eval_step(state, self.trainer.put_batch(batch))
            return result["loss"] * result["tokens"], result["tokens"]

        totals = lm_totals(loss_fn, self._eval_host, self._token_bytes)
        figures = totals.metrics()
        by_source = None
        if getattr(self.pipeline, "groups", None):  # data.mix: each source's held-out loss
            if self._eval_groups is None:
                self._eval_groups = {
                    name: held_out_batches(group, self.trainer.make_batch, seed=self.settings.seed, limit=self.settings.eval_batches)
                    for name, group in self.pipeline.groups.items()
                }
            by_source = {
                name: lm_totals(loss_fn, batches, self._token_bytes).metrics()["loss"] if batches else None
                for name, batches in self._eval_groups.items()
            }
        entry = {
            "kind": "eval",
            "step": step,
            "eval_loss": figures["loss"],
            "perplexity": figures["perplexity"],
            "bits_per_byte": figures["bits_per_byte"],
            "batches": totals.batches,
            "tokens": figures["tokens"],
        }
        if by_source is not None:
            entry["eval_loss_by_source"] = by_source
        if self.metrics is not None:
            self.metrics.write(entry)
        if self.progress is not None:
            self.progress.evaluation(entry)
        return entry

    # -- the loop --------------------------------------------------------------------------

    def run(self, state: Any, start_step: int, stop: StopRequest | None = None) -> LoopOutcome:
        import jax

        from genaisdk.backend.jax.checkpoint import CheckpointWriteError
        from genaisdk.backend.jax.metrics import MetricsWriteError

        settings = self.settings
        total = settings.total_steps
        stop = stop or StopRequest()
        started = time.perf_counter()
        last_checkpoint: int | None = None
        last_entry: dict[str, Any] | None = None
        last_eval: dict[str, Any] | None = None
        timed_tokens = 0
        timed_seconds = 0.0
        clock = time.perf_counter()
        first_recorded = True
        status = COMPLETED
        message = ""
        good_step = start_step
        if self.progress is not None:
            self.progress.start(first_step=start_step, total_steps=total)

        def record(step: int, device_metrics: dict[str, Any]) -> dict[str, Any]:
            nonlocal clock, timed_tokens, timed_seconds, first_recorded, last_entry, good_step
            values = jax.device_get(device_metrics)
            now = time.perf_counter()
            seconds = now - clock
            clock = now
            entry = {
                "kind": "train",
                "step": step,
                "loss": float(values["loss"]),
                "tokens_per_s": self.tokens_per_step / seconds if seconds > 0 else None,
                "lr": float(values["lr"]),
                "grad_norm": float(values["grad_norm"]),
                "loss_scale": float(values["loss_scale"]),
                "skipped": int(values["skipped"]),
                "seconds": seconds,
                "mfu": self._mfu(seconds),
            }
            if getattr(self.pipeline, "groups", None):  # data.mix: each source's tokens this step
                entry["source_tokens"] = self.pipeline.source_tokens(step)
            if not first_recorded:
                timed_tokens += self.tokens_per_step
                timed_seconds += seconds
            first_recorded = False
            if not entry["skipped"] and not (_finite(entry["loss"]) and _finite(entry["grad_norm"])):
                raise Diverged(step, entry)
            if self.metrics is not None:
                self.metrics.write(entry)
            if self.progress is not None:
                self.progress.step(entry)
            last_entry = entry
            good_step = step
            return entry

        def save(step: int, current: Any) -> None:
            nonlocal last_checkpoint
            if self.checkpointer is not None and last_checkpoint != step:
                # A finite loss says the weights before the update were finite; an update can
                # still overflow them, and such a state must never become "the last good one".
                if not self._finite_weights(current):
                    raise Diverged(step, {"loss": last_entry["loss"] if last_entry else None, "weights": "non-finite"})
                self.checkpointer.save(step, current, self.checkpoint_meta(step))
                last_checkpoint = step

        pending: tuple[int, dict[str, Any]] | None = None
        step = start_step
        try:
            with stop:
                batch = self.train_batch(step) if step < total else None
                while step < total:
                    state, device_metrics = self.trainer.train_step(state, batch)
                    step += 1
                    if step < total:
                        batch = self.train_batch(step)  # host work overlaps the device's step
                    if pending is not None:
                        record(*pending)
                    pending = (step, device_metrics)
                    if self._stop_check_is_collective(step):
                        # Let the step finish before the all-gather is dispatched: two programs
                        # with collectives in flight at once can deadlock XLA's CPU runtime.
                        record(*pending)
                        pending = None
                    stopping = self._agree_to_stop(stop, step)
                    evaluating = _due(step, settings.eval_every) and step < total
                    saving = _due(step, settings.checkpoint_every) or step == total or stopping
                    if evaluating or saving:
                        if pending is not None:
                            record(*pending)
                            pending = None
                        if evaluating:
                            last_eval = self.evaluate(state, step)
                        if saving:
                            save(step, state)
                        clock = time.perf_counter()  # evaluation and saving are not step time
                    if stopping:
                        status = INTERRUPTED
                        name = signal.Signals(stop.signal_number).name if stop.signal_number else "a stop request"
                        message = f"stopped by {name} after step {step}; saved a checkpoint to resume from"
                        break
                if pending is not None:
                    record(*pending)
                    pending = None
                if status == COMPLETED:
                    last_eval = self.evaluate(state, step) or last_eval
                if self.checkpointer is not None:
                    self.checkpointer.wait()  # a background save that fails says so here
        except Diverged as exc:
            status = DIVERGED
            kept = None
            if self.checkpointer is not None:
                self.checkpointer.wait()
                kept = self.checkpointer.latest_step()
            message = f"{exc}; stopped without saving" + (
                f" (the last good checkpoint is step {kept})" if kept is not None else " (no checkpoint was saved)"
            )
            last_checkpoint = kept
        except (CheckpointWriteError, MetricsWriteError) as exc:
            status = FAILED
            failed_at = getattr(exc, "step", None)
            kept = None
            if self.checkpointer is not None:
                finalized = [s for s in self.checkpointer.finalized_steps() if failed_at is None or s < failed_at]
                kept = finalized[-1] if finalized else None
            reason = exc.strerror if isinstance(exc, MetricsWriteError) and exc.strerror else str(exc)
            where = (
                f"the last good checkpoint is step {kept} ({self.checkpointer.directory / str(kept)}): free space "
                "or make the folder writable, then --resume"
                if kept is not None
                else "no checkpoint was saved"
            )
            message = f"{reason}; stopped after step {step} ({where})"
            last_checkpoint = kept
        finally:
            if self.progress is not None:
                self.progress.close()
        tokens_per_s = None
        if timed_seconds > 0:
            tokens_per_s = timed_tokens / timed_seconds
        elif last_entry is not None:
            tokens_per_s = last_entry["tokens_per_s"]
        mfu = self._mfu(self.tokens_per_step / tokens_per_s) if tokens_per_s else None
        return LoopOutcome(
            status=status,
            start_step=start_step,
            step=good_step if status == DIVERGED else step,
            final_loss=last_entry["loss"] if last_entry else None,
            eval_loss=last_eval["eval_loss"] if last_eval else None,
            perplexity=last_eval["perplexity"] if last_eval else None,
            tokens_per_s=tokens_per_s,
            mfu=mfu,
            seconds=time.perf_counter() - started,
            last_checkpoint=last_checkpoint,
            message=message,
            signal_number=stop.signal_number,
            state=None if status in (DIVERGED, FAILED) else state,
        )

    def _finite_weights(self, state: Any) -> bool:
        import jax
        import jax.numpy as jnp

        if self._all_finite is None:
            self._all_finite = jax.jit(
                lambda tree: jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
            )
        return bool(self._all_finite(getattr(state, "params", state)))

    def _mfu(self, seconds: float) -> float | None:
        """Model FLOPs utilization: model FLOPs per step / (seconds × peak FLOP/s), with the
        PaLM definition of model FLOPs (Chowdhery et al. 2022, Appendix B)."""
        peak = self.settings.peak_flops
        if not peak or seconds <= 0:
            return None
        return self.flops_per_step / seconds / peak

    def _stop_check_is_collective(self, step: int) -> bool:
        """Whether the stop check after `step` is an all-gather across processes."""
        if self.settings.process_count <= 1:
            return False
        return step % STOP_AGREEMENT_EVERY == 0 or step == self.settings.total_steps

    def _agree_to_stop(self, stop: StopRequest, step: int) -> bool:
        """Whether to stop after `step`. With several processes, a signal seen by any one of
        them stops all of them, at the same step (checked every few steps)."""
        if self.settings.process_count <= 1:
            return stop.requested
        if not self._stop_check_is_collective(step):
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray([1 if stop.requested else 0], np.int32))
        if int(np.max(flags)) and stop.signal_number is None:
            stop.signal_number = signal.SIGTERM
        return bool(np.max(flags))
