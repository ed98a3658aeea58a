"""The plugin registry: every named record the planner and the backend know about.

Plugins are found through the entry-point group `genaisdk` and registered with a pluggy
manager whose hooks are declared in `genaisdk.hookspecs`. The built-in catalogs
(`genaisdk.builtins.BUILTIN_PLUGINS`) are registered with the same manager, through the same
checks, before any entry point; they are listed directly rather than as entry points so that
they cannot be deselected and do not depend on the installed metadata being up to date.

Loading is lazy (nothing happens until a catalog is first asked for) and isolated: each
entry point is loaded, checked and asked for its records on its own, within a time limit.
A plugin that fails (import error, `sys.exit`, unknown or unmarked hook, a hook that raises
or runs too long, too many records, a record of the wrong kind or an invalid one, a figure
that is NaN or infinite, a duplicate name, a reference to a record nobody registered) is
reported once on stderr with its distribution, version and error, listed as `failed`, and
contributes nothing; everything else keeps working.

One job per module:

- `catalog`: `Registry`, the public queries and the validate hooks;
- `loading`: candidates, the steps of one load, `PluginInfo`;
- `checks`: the rules hooks and records must follow;
- `bounds`: running plugin code with a time limit, turning `sys.exit` into an error;
- `entry_points`: the fast reader of installed entry points;
- `settings`: the GENAISDK_* environment variables, read once per registry;
- `errors`: what the registry raises.

The process-wide registry is `get_registry()` (replace it with `set_registry`, or for a test
with `genaisdk.testing.registry_with`).
"""

from __future__ import annotations

import threading

from genaisdk.registry.catalog import Registry
from genaisdk.registry.checks import NAME_PATTERN
from genaisdk.registry.entry_points import ENTRY_POINT_GROUP, EntryPoint, scan_entry_points
from genaisdk.registry.errors import (
    DuplicateRecordError,
    PluginError,
    PluginExit,
    PluginTimeout,
    UnknownKindError,
)
from genaisdk.registry.loading import STATUSES, PluginInfo
from genaisdk.registry.settings import PluginLimits, PluginSettings, strict_from_env

__all__ = [
    "ENTRY_POINT_GROUP",
    "NAME_PATTERN",
    "STATUSES",
    "DuplicateRecordError",
    "EntryPoint",
    "PluginError",
    "PluginExit",
    "PluginInfo",
    "PluginLimits",
    "PluginSettings",
    "PluginTimeout",
    "Registry",
    "UnknownKindError",
    "get_registry",
    "scan_entry_points",
    "set_registry",
    "strict_from_env",
]

_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, created on first use; plugins load on its first query."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
    return _registry


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (None: build a fresh one on next use); returns the old."""
    global _registry
    with _registry_lock:
        previous, _registry = _registry, registry
    return previous
