"""What a person watching `genai train` sees while it runs.

On a terminal: a rich progress bar with the step, loss, tokens/s, MFU and time left. In a
log file or a CI job (not a TTY): plain lines, about `lines` of them over the run plus the
first and the last step, each one self-contained so `grep` and `tail` work. Processes
other than the primary one of a multi-host run show nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol, TextIO

from genaisdk.core.numbers import fmt_clock, fmt_percent, fmt_rate

DEFAULT_LINES = 40
"""How many progress lines a plain (non-TTY) run prints at most, first and last step aside."""


# The display's numbers, in the one formatter's words (`genaisdk.core.numbers`).
format_rate = fmt_rate
format_mfu = fmt_percent
format_seconds = fmt_clock


class Progress(Protocol):
    def start(self, *, first_step: int, total_steps: int) -> None: ...
    def step(self, entry: Mapping[str, Any]) -> None: ...
    def evaluation(self, entry: Mapping[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class _Timing:
    """Seconds left, from the mean time of the steps this process has run so far."""

    def __init__(self) -> None:
        self.first_step = 0
        self.total_steps = 0
        self._t0: float | None = None
        self._s0 = 0

    def start(self, first_step: int, total_steps: int) -> None:
        self.first_step, self.total_steps = first_step, total_steps

    def eta(self, step: int) -> float | None:
        now = time.perf_counter()
        if self._t0 is None:
            # The first step includes compilation: time from its end.
            self._t0, self._s0 = now, step
            return None
        done = step - self._s0
        if done <= 0:
            return None
        return (now - self._t0) / done * (self.total_steps - step)


class PlainProgress:
    """One line per reported step, for logs."""

    def __init__(self, stream: TextIO | None = None, *, lines: int = DEFAULT_LINES):
        self.stream = stream or sys.stdout
        self.lines = max(1, lines)
        self._timing = _Timing()
        self._every = 1

    def start(self, *, first_step: int, total_steps: int) -> None:
        self._timing.start(first_step, total_steps)
        self._every = max(1, (total_steps - first_step) // self.lines)

    def step(self, entry: Mapping[str, Any]) -> None:
        step = int(entry["step"])
        eta = self._timing.eta(step)
        last = step >= self._timing.total_steps
        if not (last or step == self._timing.first_step + 1 or step % self._every == 0):
            return
        skipped = "  (step skipped: overflow)" if entry.get("skipped") else ""
        self._print(
            f"step {step}/{self._timing.total_steps}  loss {entry['loss']:.4f}  "
            f"{format_rate(entry.get('tokens_per_s'))}  MFU {format_mfu(entry.get('mfu'))}  "
            f"lr {entry.get('lr', 0.0):.2e}  eta {format_seconds(eta if not last else 0.0)}{skipped}"
        )

    def evaluation(self, entry: Mapping[str, Any]) -> None:
        self._print(
            f"eval at step {entry['step']}: held-out loss {entry['eval_loss']:.4f}  "
            f"perplexity {entry['perplexity']:.2f}"
        )

    def note(self, text: str) -> None:
        self._print(text)

    def _print(self, text: str) -> None:
        from genaisdk.core.safe import printable

        print(printable(text), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A live progress bar for terminals."""

    def __init__(self, console: Any = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console or Console()
        self._bar = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}[/]"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("MFU {task.fields[mfu]}"),
            TextColumn("eval {task.fields[eval]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._task = None

    def start(self, *, first_step: int, total_steps: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(
            "train", total=total_steps, completed=first_step, loss="-", rate="-", mfu="-", eval="-"
        )

    def step(self, entry: Mapping[str, Any]) -> None:
        self._bar.update(
            self._task,
            completed=int(entry["step"]),
            loss=f"{entry['loss']:.4f}",
            rate=format_rate(entry.get("tokens_per_s")),
            mfu=format_mfu(entry.get("mfu")),
        )

    def evaluation(self, entry: Mapping[str, Any]) -> None:
        self._bar.update(self._task, eval=f"{entry['eval_loss']:.4f} (ppl {entry['perplexity']:.1f})")

    def note(self, text: str) -> None:
        from genaisdk.core.safe import printable

        # Notes name user paths (`--out '[x]'`): printed as written, never as markup.
        self._bar.console.print(printable(text), markup=False, highlight=False)

    def close(self) -> None:
        self._bar.stop()


class SilentProgress:
    """For the processes of a multi-host run other than the primary one."""

    def start(self, *, first_step: int, total_steps: int) -> None:
        pass

    def step(self, entry: Mapping[str, Any]) -> None:
        pass

    def evaluation(self, entry: Mapping[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(*, primary: bool = True, tty: bool | None = None, stream: TextIO | None = None, quiet: bool = False) -> Progress:
    """The display that fits where output goes: a bar on a TTY, lines otherwise."""
    if quiet or not primary:
        return SilentProgress()
    stream = stream or sys.stdout
    if tty is None:
        tty = bool(getattr(stream, "isatty", lambda: False)())
    if tty:
        from rich.console import Console

        return RichProgress(Console(file=stream))
    return PlainProgress(stream)
