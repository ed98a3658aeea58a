"""`metrics.jsonl`: one JSON object per optimizer step, plus evaluation entries.

Training entries: ``{"kind": "train", "step", "loss", "tokens_per_s", "lr", "grad_norm",
"loss_scale", "skipped", "seconds", "mfu"}``. Evaluation entries: ``{"kind": "eval", "step",
"eval_loss", "perplexity", "bits_per_byte", "batches", "tokens"}``. ``step`` counts completed optimizer steps (the
entry after the first update has step 1).

Each line is flushed as it is written, so a run killed at any moment leaves whole lines
(and at most one torn last line). A resumed run keeps the entries up to the checkpoint it
restored and drops the rest, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

FILENAME = "metrics.jsonl"


class MetricsWriteError(OSError):
    """The metrics file could not be written (a full or read-only disk)."""


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings so the line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every complete entry of a metrics file, in order (a torn last line is ignored)."""
    return list(_entries(Path(path)))


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn by a kill mid-write
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(entry, dict):
                yield entry


class MetricsLog:
    """Appends entries to `metrics.jsonl`; only the primary process writes."""

    def __init__(self, path: str | Path, *, keep_through_step: int | None = None, enabled: bool = True):
        """`keep_through_step`: None starts a fresh file; a step keeps the entries up to it
        (a resumed run) and drops later ones, which the restored checkpoint never saw."""
        self.path = Path(path)
        self.enabled = enabled
        self._handle = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_through_step is not None:
            kept = [e for e in _entries(self.path) if int(e.get("step", 0)) <= keep_through_step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for entry in kept:
                handle.write(json.dumps(entry) + "\n")
        os.replace(tmp, self.path)
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, entry: Mapping[str, Any]) -> None:
        """Appends `entry` as one line; MetricsWriteError when the disk refuses it."""
        if self._handle is None:
            return
        try:
            self._handle.write(json.dumps({k: _clean(v) for k, v in entry.items()}) + "\n")
            self._handle.flush()
        except OSError as exc:
            raise MetricsWriteError(exc.errno, f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:  # the write that failed has said so already
                pass

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
