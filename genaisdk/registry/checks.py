"""The rules a plugin's hooks and records must follow at the registry's door.

Each check raises `PluginError` (or `DuplicateRecordError`) with a message that names what
is wrong and how to fix it; the loader adds which plugin it was.

- `check_hook_names`: functions called `genaisdk_*` must be known hooks, marked `@hookimpl`.
- `take_records`: a registration hook returns a finite iterable (at most
  `PluginLimits.max_records` items), not a string, a mapping or a single record.
- `checked_records`: every item is a record of the hook's kind, its names are bare words of
  the spec language, every number in it (nested dimensions and mappings included) is finite;
  the records come back renamed to the registry's spelling and attributed to their plugin.
- `check_duplicates`: a name or alias is new in its kind.
- `dangling_references`: a record naming another (a task's objective, a preset's
  architecture, an adaptation's frozen precision) finds it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from genaisdk import hookspecs
from genaisdk.records import RECORD_KINDS, Record, normalize_name
from genaisdk.registry._suggest import did_you_mean
from genaisdk.registry.errors import DuplicateRecordError, PluginError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[-.][a-z0-9]+)*")
"""A normalized record name or alias: a bare word of the spec language, lower case."""

REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("tasks", "objective", "objectives"),
    ("presets", "architecture", "architectures"),
    ("adaptations", "frozen_precision", "precisions"),
)
"""(kind, field, kind the field names): cross-references checked after loading."""


def check_hook_names(plugin: Any) -> None:
    """Catch hook functions pluggy would silently ignore or only vaguely reject."""
    for attribute in dir(plugin):
        if not attribute.startswith(hookspecs.PROJECT + "_"):
            continue
        value = getattr(plugin, attribute, None)
        if not callable(value):
            continue
        if attribute not in hookspecs.ALL_HOOKS:
            raise PluginError(f"unknown hook {attribute!r}{did_you_mean(attribute, hookspecs.ALL_HOOKS)}")
        if not hasattr(value, hookspecs.PROJECT + "_impl"):
            raise PluginError(f"{attribute} is not marked with @genaisdk.hookimpl, so it would never be called")


def take_records(hook_name: str, kind: str, result: Any, max_records: int) -> list[Any]:
    """The items a registration hook returned, as a list of at most `max_records`.

    Runs the hook's generator (if it is one) to its end, so it belongs inside the plugin's
    time limit. Item types are checked later, by `checked_records`.
    """
    expected = RECORD_KINDS[kind]
    if result is None:
        return []
    if isinstance(result, (str, bytes, Mapping, Record)) or not isinstance(result, Iterable):
        raise PluginError(f"{hook_name} must return an iterable of {expected.__name__} records, got {result!r:.80}")
    items = list(itertools.islice(result, max_records + 1))
    if len(items) > max_records:
        raise PluginError(
            f"{hook_name} returned more than {max_records:,} records (an endless generator?); "
            "a registration hook returns a finite collection"
        )
    return items


def checked_records(
    hook_name: str, kind: str, items: Iterable[Any], provider: str, *, trusted: bool = False
) -> list[Record]:
    """The items, each checked, renamed to the registry's spelling and attributed to `provider`.

    `trusted` (the built-in catalogs) skips the walk over every number (`non_finite`), the one
    check here that costs time in proportion to the records' size: the built-in records are
    genaisdk's own data, and its test suite holds every one of them to the same rule.
    """
    expected = RECORD_KINDS[kind]
    out = []
    for item in items:
        if not isinstance(item, expected):
            raise PluginError(
                f"{hook_name} returned {type(item).__name__} {item!r:.80}; expected {expected.__name__} records"
            )
        for name in (item.name, *item.aliases):
            if not NAME_PATTERN.fullmatch(normalize_name(name)):
                raise PluginError(
                    f"{hook_name}: {name!r} cannot be a name: use letters, digits, '-', '_' and '.', "
                    "starting with a letter, so that a spec can write it as a bare word"
                )
        where = None if trusted else non_finite(item)
        if where is not None:
            raise PluginError(
                f"{hook_name}: {item.name!r} has {where}; figures must be finite numbers "
                "(leave an unknown one unset instead)"
            )
        name = normalize_name(item.name)
        aliases = tuple(normalize_name(alias) for alias in item.aliases)
        if (name, aliases, provider) == (item.name, item.aliases, item.provider):
            out.append(item)  # already in the registry's spelling (the built-in data files are)
        else:
            out.append(attrs.evolve(item, name=name, aliases=aliases, provider=provider))
    return out


def non_finite(value: Any, path: str = "", depth: int = 0) -> str | None:
    """'`path` = nan' for the first NaN or infinite float in a record (attrs fields, mappings,
    tuples and lists, a few levels deep), or None when every number is finite.

    Field validators catch most of these when a record is built; this catches the rest
    (a `Dimensions` field, an entry of `extra` or `defaults`) before the planner divides by it.
    """
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'a value'} = {value!r}"
    if depth > 6 or isinstance(value, (str, bytes, int)) or callable(value):
        return None
    if attrs.has(type(value)):
        items: Iterable[tuple[str, Any]] = (
            (f"{path}.{f.name}" if path else f.name, getattr(value, f.name)) for f in attrs.fields(type(value))
        )
    elif isinstance(value, Mapping):
        items = ((f"{path}[{key!r}]", item) for key, item in value.items())
    elif isinstance(value, (tuple, list)):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    else:
        return _number(value, path)
    for where, item in items:
        found = non_finite(item, where, depth + 1)
        if found is not None:
            return found
    return None


def _number(value: Any, path: str) -> str | None:
    """A number type that is not float (numpy scalars, Decimal): checked if it converts."""
    try:
        as_float = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if math.isfinite(as_float) else f"{path or 'a value'} = {value!r}"


def check_duplicates(
    plugin: str,
    records: Mapping[str, list[Record]],
    index: Mapping[str, Mapping[str, Record]],
    describe: Mapping[str, str],
) -> None:
    """Every name and alias of a plugin's new records must be new in its kind.

    `index` maps kind -> name or alias -> record already registered; `describe` maps a
    plugin name to how messages name it ("'moe' (genaisdk-moe 0.1.0)").
    """
    for kind, items in records.items():
        seen: dict[str, Record] = {}
        for record in items:
            for name in (record.key, *record.aliases):
                if name in seen:
                    raise DuplicateRecordError(
                        f"{kind}: {name!r} is registered twice by {describe[plugin]} "
                        f"({_spelling(seen[name], name)} and {_spelling(record, name)})"
                    )
                seen[name] = record
                existing = index[kind].get(name)
                if existing is not None:
                    first = describe.get(existing.provider, repr(existing.provider))
                    raise DuplicateRecordError(
                        f"{kind}: {name!r} is registered by both {first} ({_spelling(existing, name)}) "
                        f"and {describe[plugin]} ({_spelling(record, name)})"
                    )


def _spelling(record: Record, name: str) -> str:
    return "its name" if record.key == name else f"an alias of {record.key!r}"


def dangling_references(
    catalogs: Mapping[str, Mapping[str, Record]], contributed: Mapping[str, Mapping[str, list[Record]]]
) -> dict[str, str]:
    """provider -> message for the first reference of each provider that names nothing."""
    out: dict[str, str] = {}
    for provider, records in contributed.items():
        for kind, field, target in REFERENCES:
            for record in records.get(kind, ()):
                value = getattr(record, field)
                if value is not None and normalize_name(value) not in catalogs[target]:
                    hint = did_you_mean(normalize_name(value), catalogs[target], " (did you mean {!r}?)")
                    out.setdefault(
                        provider,
                        f"{kind}: {record.key!r} names {field} {value!r}{hint}, which no plugin registers",
                    )
    return out
