"""What the registry raises: a plugin that broke a rule, and a catalog kind that does not exist."""

from __future__ import annotations

from genaisdk.records import RECORD_KINDS
from genaisdk.registry._suggest import did_you_mean


class PluginError(Exception):
    """A plugin broke a rule of the registry (bad hook, bad record, duplicate name, too slow)."""


class DuplicateRecordError(PluginError):
    """Two plugins registered the same name for one kind of record."""


class PluginTimeout(PluginError):
    """A plugin took longer than its time limit (`PluginLimits.timeout_s`) and was abandoned."""


class PluginExit(PluginError):
    """A plugin tried to end the process (`sys.exit`, or another exception that is not an
    `Exception` and not `KeyboardInterrupt`) while it was being loaded or asked for records."""


class UnknownKindError(LookupError):
    """A catalog kind that is not one of `records.RECORD_KINDS`."""

    def __init__(self, kind: str):
        self.kind = kind
        hint = did_you_mean(str(kind), RECORD_KINDS)
        super().__init__(f"unknown catalog kind {kind!r}{hint} (kinds: {', '.join(RECORD_KINDS)})")

    def __str__(self) -> str:  # LookupError would quote the message
        return self.args[0]
