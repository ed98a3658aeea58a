"""Running a plugin's code with a time limit, so that it cannot hang, exit or silently slow the host.

A plugin's import and its hooks are third-party code running inside every `genai` command.
`call_bounded` runs one piece of it so that:

- an `Exception` propagates unchanged (the caller reports it, naming the plugin);
- `sys.exit()` or any other `BaseException` that is not `KeyboardInterrupt` becomes a
  `PluginExit`: a plugin cannot end the process (a CI gate would otherwise pass on exit 0);
- `KeyboardInterrupt` propagates: an interrupt is honoured, and the caller names the plugin
  that was running;
- with a deadline, the code runs in a daemon worker thread and the caller waits at most
  until the deadline; past it a `PluginTimeout` is raised and the worker is abandoned (a
  Python thread cannot be stopped from outside; being a daemon, it never delays exit).

Registration itself (pluggy's bookkeeping) stays on the calling thread; only the plugin's
own code runs in the worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from genaisdk.registry.errors import PluginExit, PluginTimeout

T = TypeVar("T")


def call_bounded(function: Callable[[], T], *, deadline: float | None, what: str) -> T:
    """`function()`, finished before `deadline` (a `time.perf_counter()` value; None: no limit).

    `what` says what was running, for the timeout's message ("import", "genaisdk_hardware").
    Raises what `function` raises, `PluginExit` instead of `SystemExit` and its kin, and
    `PluginTimeout` when the deadline passes first.
    """
    if deadline is None:
        return _guarded(function, what)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = _guarded(function, what)
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            outcome["error"] = exc

    started = time.perf_counter()
    worker = threading.Thread(target=work, name=f"genaisdk-plugin-{what}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - started))
    if worker.is_alive():
        raise PluginTimeout(
            f"{'its import' if what == 'import' else what} was still running after "
            f"{time.perf_counter() - started:.1f} s (limit: GENAISDK_PLUGIN_TIMEOUT); abandoned"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _guarded(function: Callable[[], T], what: str) -> T:
    try:
        return function()
    except (Exception, KeyboardInterrupt):
        raise
    except SystemExit as exc:
        raise PluginExit(
            f"called sys.exit({exc.code!r}) {_during(what)}; a plugin must raise an exception, not end the process"
        ) from exc
    except BaseException as exc:
        raise PluginExit(f"raised {type(exc).__name__} {_during(what)}, which is not an Exception: {exc}") from exc


def _during(what: str) -> str:
    return "while being imported" if what == "import" else f"in {what}"
