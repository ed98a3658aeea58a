"""How the registry is told what to load and how much a plugin may cost: the environment, read once.

- `GENAISDK_LOAD_PLUGINS=a,b`: load only these plugins (entry-point or distribution names);
  empty: none. Built-ins always load. `genai --no-plugins` sets it to empty.
- `GENAISDK_DISABLE_PLUGINS=a,b`: load every plugin except these.
- `GENAISDK_STRICT_PLUGINS=1` (or true, yes, on): re-raise a plugin's error instead of
  skipping it.
- `GENAISDK_PLUGIN_TIMEOUT=S`: seconds one plugin may take to import and answer its
  registration hooks, and one `genaisdk_validate` call may take (default 5; 0: no limit).

`PluginSettings.from_env()` is the only code that reads these variables. A registry reads
them when it first loads (not when it is built), so `genai --no-plugins`, which sets a
variable before any command asks the registry, applies.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import attrs

from genaisdk.records import normalize_name

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
"""Values of a boolean variable that mean yes (any case); anything else means no."""


@attrs.frozen(kw_only=True)
class PluginLimits:
    """What one plugin may cost the process before it is skipped or named as slow.

    - `timeout_s`: wall-clock seconds for one plugin's import plus all its registration hooks
      (one budget), and for each `genaisdk_validate` call. A plugin over it is skipped (its
      work is abandoned in a background thread) with a warning naming it. None: no limit.
      5 s is a thousand times what a catalog plugin needs (the nine built-in catalogs load in
      about 20 ms together) and still lets a plugin import a large library once.
    - `slow_s`: a plugin that loads within the limit but takes longer than this is named in a
      warning, since every command that reads the catalogs waits for it.
    - `max_records`: records one registration hook may return; more is an error (an endless
      generator would otherwise never end). The built-in hooks return at most a few hundred.
    """

    timeout_s: float | None = attrs.field(default=5.0, validator=attrs.validators.optional(attrs.validators.gt(0)))
    slow_s: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    max_records: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class PluginSettings:
    """The registry's environment, parsed: selection, strictness and limits."""

    allow: frozenset[str] | None = None
    """Normalized names of the only plugins to load; None: all (GENAISDK_LOAD_PLUGINS unset)."""
    deny: frozenset[str] = frozenset()
    strict: bool = False
    limits: PluginLimits = PluginLimits()
    problems: tuple[str, ...] = ()
    """Values that could not be read (each becomes one warning), e.g. a timeout of 'soon'."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PluginSettings:
        """Read the GENAISDK_* plugin variables of `environ` (default: `os.environ`)."""
        env = os.environ if environ is None else environ
        timeout, problems = _seconds(env.get("GENAISDK_PLUGIN_TIMEOUT"), "GENAISDK_PLUGIN_TIMEOUT")
        return cls(
            allow=_names(env.get("GENAISDK_LOAD_PLUGINS")),
            deny=_names(env.get("GENAISDK_DISABLE_PLUGINS")) or frozenset(),
            strict=is_true(env.get("GENAISDK_STRICT_PLUGINS")),
            limits=PluginLimits() if timeout is _DEFAULT else PluginLimits(timeout_s=timeout),
            problems=problems,
        )


def is_true(value: str | None) -> bool:
    """Whether an environment value means yes (see `TRUE_WORDS`)."""
    return value is not None and value.strip().lower() in TRUE_WORDS


def strict_from_env() -> bool:
    """GENAISDK_STRICT_PLUGINS as a bool, for code that has no registry at hand."""
    return is_true(os.environ.get("GENAISDK_STRICT_PLUGINS"))


_DEFAULT = object()


def _names(value: str | None) -> frozenset[str] | None:
    """The normalized names in a comma-separated list; None when the variable is unset."""
    if value is None:
        return None
    return frozenset(normalize_name(part) for part in value.split(",") if part.strip())


def _seconds(value: str | None, variable: str) -> tuple[object, tuple[str, ...]]:
    """(seconds, None for no limit, or _DEFAULT when unset or unreadable; problems)."""
    if value is None or not value.strip():
        return _DEFAULT, ()
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if seconds == 0:
        return None, ()
    if not (math.isfinite(seconds) and seconds > 0):
        return _DEFAULT, (f"{variable}={value!r} is not a number of seconds (0 means no limit); using the default",)
    return seconds, ()
