"""The plugin registry: every named record the planner and the backend know about.

Plugins are found through the entry-point group `genaisdk` and registered with a pluggy
manager whose hooks are declared in `genaisdk.hookspecs`. The built-in catalogs
(`genaisdk.builtins.BUILTIN_PLUGINS`) are registered with the same manager, through the same
checks, before any entry point; they are listed directly rather than as entry points so that
they cannot be deselected and do not depend on the installed metadata being up to date.

Loading is lazy (nothing happens until a catalog is first asked for) and isolated: each
entry point is loaded, checked and asked for its records inside its own try/except. A plugin
that fails (import error, unknown or unmarked hook, a hook that raises, a record of the wrong
kind or an invalid one, a duplicate name, a reference to a record nobody registered) is
reported once on stderr with its distribution, version and error, listed as `failed`, and
contributes nothing; everything else keeps working.

Environment:

- `GENAISDK_LOAD_PLUGINS=a,b`: load only these plugins (entry-point or distribution names);
  empty: none. Built-ins always load. `genai --no-plugins` sets it to empty.
- `GENAISDK_DISABLE_PLUGINS=a,b`: load every plugin except these.
- `GENAISDK_STRICT_PLUGINS=1`: re-raise a plugin's error instead of skipping it.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from genaisdk import hookspecs
from genaisdk.records import RECORD_KINDS, Record, normalize_name

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic
    from genaisdk.spec.model import Spec

ENTRY_POINT_GROUP = hookspecs.PROJECT

STATUSES = ("active", "disabled", "failed")

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[-.][a-z0-9]+)*")
"""A normalized record name or alias: a bare word of the spec language, lower case."""

_TRUE = {"1", "true", "yes", "on"}


class PluginError(Exception):
    """A plugin broke a rule of the registry (bad hook, bad record, duplicate name)."""


class DuplicateRecordError(PluginError):
    """Two plugins registered the same name for one kind of record."""


class UnknownKindError(LookupError):
    """A catalog kind that is not one of `records.RECORD_KINDS`."""

    def __init__(self, kind: str):
        self.kind = kind
        close = difflib.get_close_matches(str(kind), list(RECORD_KINDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown catalog kind {kind!r}{hint} (kinds: {', '.join(RECORD_KINDS)})")

    def __str__(self) -> str:  # LookupError would quote the message
        return self.args[0]


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One plugin as `genai plugins` shows it."""

    name: str
    """Entry-point name (or the module name of a built-in)."""
    distribution: str
    version: str
    status: str = attrs.field(validator=attrs.validators.in_(STATUSES))
    builtin: bool = False
    target: str = ""
    """What the entry point points at ("package.module" or "package.module:object")."""
    hooks: tuple[str, ...] = ()
    records: Mapping[str, int] = attrs.field(factory=dict)
    """Records contributed, by kind (empty unless active)."""
    error: str | None = None

    def describe(self) -> str:
        """How messages name this plugin: `'moe' (genaisdk-moe 0.1.0)`."""
        return f"{self.name!r} ({self.distribution} {self.version})"


@attrs.frozen(kw_only=True)
class _Candidate:
    """A plugin to try: where it comes from and how to get its object."""

    name: str
    distribution: str
    version: str
    target: str
    load: Callable[[], Any]
    builtin: bool = False


def _env_names(variable: str) -> set[str] | None:
    """The normalized names listed in an environment variable; None when it is unset."""
    value = os.environ.get(variable)
    if value is None:
        return None
    return {normalize_name(part) for part in value.split(",") if part.strip()}


def _report(message: str) -> None:
    print(f"genaisdk: warning: {message}", file=sys.stderr)


def _error_text(exc: BaseException) -> str:
    """One line: the exception's type and message (multi-line messages joined with '; ')."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _genaisdk_version() -> str:
    from genaisdk import __version__

    return __version__


class Registry:
    """Named records of every kind, gathered from the built-ins and the installed plugins.

    `Registry()` finds plugins through entry points; `Registry(entry_points=False,
    plugins=[obj])` registers only the built-ins and the given objects (see
    `genaisdk.testing.registry_with`). Nothing is loaded until a method below is called.
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        plugins: Sequence[Any] = (),
        strict: bool | None = None,
    ):
        self._use_builtins = builtins
        self._use_entry_points = entry_points
        self._extra = tuple(plugins)
        self._strict_arg = strict
        self._lock = threading.Lock()
        self._loaded = False
        self._catalogs: dict[str, dict[str, Record]] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._infos: list[PluginInfo] = []
        self._objects: dict[str, Any] = {}
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    # -- public API -------------------------------------------------------------------------

    def catalog(self, kind: str) -> dict[str, Record]:
        """All records of `kind`, keyed by normalized name, in sorted order (a copy)."""
        return dict(self._catalog(kind))

    def get(self, kind: str, name: Any) -> Record | None:
        """The record of `kind` called `name` (any spelling `normalize_name` accepts)."""
        catalog = self._catalog(kind)
        if not isinstance(name, str):
            return None
        key = normalize_name(name)
        return catalog.get(key) or catalog.get(self._aliases[kind].get(key, ""))

    def names(self, kind: str) -> list[str]:
        """The registered names of `kind`, sorted."""
        return list(self._catalog(kind))

    def aliases(self, kind: str) -> dict[str, str]:
        """Alias -> name for `kind` (names `get` accepts besides the registered ones)."""
        self._catalog(kind)
        return dict(sorted(self._aliases[kind].items()))

    def suggest(self, kind: str, name: str, n: int = 3) -> list[str]:
        """Registered names of `kind` close to `name` (or to an alias), best first, for "did you mean"."""
        key = normalize_name(name)
        candidates = [*self.names(kind), *self._aliases[kind]]
        out: list[str] = []
        for match in difflib.get_close_matches(key, candidates, n=n * 2, cutoff=0.6):
            resolved = self._aliases[kind].get(match, match)
            if resolved not in out:
                out.append(resolved)
        return out[:n]

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: built-ins, then ad-hoc objects, then entry points by name."""
        self._ensure_loaded()
        return list(self._infos)

    def validate(self, spec: Spec) -> list[Diagnostic]:
        """Run every active plugin's `genaisdk_validate(spec)`; diagnostics sorted.

        A validate hook that raises or returns something other than Diagnostics does not
        stop the others: it becomes a warning (GR001, GR002) naming the plugin.
        """
        from genaisdk.diagnostics import Diagnostic, sort_diagnostics

        self._ensure_loaded()
        found: list[Diagnostic] = []
        for impl in self.pm.hook.genaisdk_validate.get_hookimpls():
            info = self._info_by_name(impl.plugin_name)
            try:
                result = impl.function(*[spec for _ in impl.argnames])
                items = list(result or ())
            except Exception as exc:
                if self._strict:
                    raise
                found.append(
                    Diagnostic(
                        code="GR001",
                        severity="warning",
                        message=f"plugin {info.describe()}: genaisdk_validate raised "
                        f"{_error_text(exc)}; its checks were skipped",
                    )
                )
                continue
            for item in items:
                if isinstance(item, Diagnostic):
                    found.append(item)
                else:
                    if self._strict:
                        raise PluginError(
                            f"plugin {info.describe()}: genaisdk_validate returned {item!r}, not a Diagnostic"
                        )
                    found.append(
                        Diagnostic(
                            code="GR002",
                            severity="warning",
                            message=f"plugin {info.describe()}: genaisdk_validate returned "
                            f"a {type(item).__name__}, not a Diagnostic; ignored",
                        )
                    )
        return sort_diagnostics(found)

    # -- loading ----------------------------------------------------------------------------

    @property
    def strict(self) -> bool:
        """Whether a plugin's error is re-raised (GENAISDK_STRICT_PLUGINS=1) rather than reported."""
        return self._strict

    @property
    def _strict(self) -> bool:
        if self._strict_arg is not None:
            return self._strict_arg
        return os.environ.get("GENAISDK_STRICT_PLUGINS", "").strip().lower() in _TRUE

    def _catalog(self, kind: str) -> dict[str, Record]:
        if kind not in RECORD_KINDS:
            raise UnknownKindError(kind)
        self._ensure_loaded()
        return self._catalogs[kind]

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        statuses: dict[str, str] = {}
        errors: dict[str, str] = {}
        candidates: list[_Candidate] = []
        if self._use_builtins:
            candidates.extend(_builtin_candidates())
        candidates.extend(_object_candidates(self._extra))
        disabled: list[_Candidate] = []
        if self._use_entry_points:
            selected, disabled = _entry_point_candidates()
            candidates.extend(selected)
        by_name = {c.name: c for c in [*candidates, *disabled]}
        for c in disabled:
            statuses[c.name] = "disabled"

        registered: list[_Candidate] = []
        for candidate in candidates:
            try:
                self._register(candidate)
            except Exception as exc:
                self._fail(candidate, exc, statuses, errors)
            else:
                registered.append(candidate)

        catalogs: dict[str, dict[str, Record]] = {kind: {} for kind in RECORD_KINDS}
        index: dict[str, dict[str, Record]] = {kind: {} for kind in RECORD_KINDS}  # names and aliases
        contributed: dict[str, dict[str, list[Record]]] = {}
        for candidate in registered:
            try:
                records = self._collect(candidate)
                _check_duplicates(candidate, records, index, by_name)
            except Exception as exc:
                self._fail(candidate, exc, statuses, errors)
                continue
            contributed[candidate.name] = records
            for kind, items in records.items():
                for record in items:
                    catalogs[kind][record.key] = record
                    for name in (record.key, *record.aliases):
                        index[kind][name] = record

        # A record that names another (a task's objective, a preset's architecture) must
        # find it; a plugin whose references dangle fails, which may make others dangle.
        while True:
            dangling = _dangling_references(catalogs, contributed)
            if not dangling:
                break
            for provider, message in dangling.items():
                self._fail(by_name[provider], PluginError(message), statuses, errors)
                for kind, items in contributed.pop(provider).items():
                    for record in items:
                        catalogs[kind].pop(record.key, None)
                        for name in (record.key, *record.aliases):
                            index[kind].pop(name, None)

        self._catalogs = {kind: dict(sorted(items.items())) for kind, items in catalogs.items()}
        self._aliases = {
            kind: {alias: record.key for alias, record in names.items() if alias != record.key}
            for kind, names in index.items()
        }
        for candidate in [*candidates, *disabled]:
            status = statuses.get(candidate.name, "active")
            obj = self._objects.get(candidate.name)
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(obj) or ())) if obj is not None else ()
            records = contributed.get(candidate.name, {}) if status == "active" else {}
            self._infos.append(
                PluginInfo(
                    name=candidate.name,
                    distribution=candidate.distribution,
                    version=candidate.version,
                    status=status,
                    builtin=candidate.builtin,
                    target=candidate.target,
                    hooks=hooks,
                    records={kind: len(items) for kind, items in records.items() if items},
                    error=errors.get(candidate.name),
                )
            )
        # Failed plugins stay out of the hooks (validate) but keep their hook list above.
        for name, status in statuses.items():
            if status == "failed" and self.pm.has_plugin(name):
                self.pm.unregister(name=name)

    def _register(self, candidate: _Candidate) -> None:
        plugin = candidate.load()
        _check_hook_names(plugin)
        self.pm.register(plugin, name=candidate.name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            self.pm.unregister(plugin)
            raise
        self._objects[candidate.name] = plugin

    def _collect(self, candidate: _Candidate) -> dict[str, list[Record]]:
        """Call each registration hook of one plugin and check what it returns."""
        plugin = self._objects[candidate.name]
        out: dict[str, list[Record]] = {}
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
            items: list[Record] = []
            for impl in impls:
                items.extend(_records_from(hook_name, kind, impl.function(), candidate.name))
            if items:
                out[kind] = items
        return out

    def _fail(
        self, candidate: _Candidate, exc: BaseException, statuses: dict[str, str], errors: dict[str, str]
    ) -> None:
        if candidate.builtin or self._strict:
            raise exc
        statuses[candidate.name] = "failed"
        errors[candidate.name] = _error_text(exc)
        _report(
            f"plugin {candidate.name!r} from {candidate.distribution} {candidate.version} failed "
            f"and was skipped: {errors[candidate.name]}"
        )

    def _info_by_name(self, name: str) -> PluginInfo:
        for info in self._infos:
            if info.name == name:
                return info
        return PluginInfo(name=name, distribution="?", version="?", status="active")


# -- candidates ---------------------------------------------------------------------------


def _builtin_candidates() -> list[_Candidate]:
    import importlib

    from genaisdk.builtins import BUILTIN_PLUGINS

    version = _genaisdk_version()
    return [
        _Candidate(
            name=module,
            distribution="genaisdk",
            version=version,
            target=module,
            load=lambda module=module: importlib.import_module(module),
            builtin=True,
        )
        for module in BUILTIN_PLUGINS
    ]


def _object_candidates(objects: Iterable[Any]) -> list[_Candidate]:
    out = []
    for obj in objects:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        out.append(
            _Candidate(
                name=name,
                distribution="<ad hoc>",
                version="-",
                target=name,
                load=lambda obj=obj: obj,
            )
        )
    return out


def _entry_point_candidates() -> tuple[list[_Candidate], list[_Candidate]]:
    """(selected, disabled) entry points of the group, sorted by entry-point name."""
    allow = _env_names("GENAISDK_LOAD_PLUGINS")
    deny = _env_names("GENAISDK_DISABLE_PLUGINS") or set()
    selected: list[_Candidate] = []
    disabled: list[_Candidate] = []
    seen: set[str] = set()
    for ep in sorted(scan_entry_points(ENTRY_POINT_GROUP), key=lambda e: (e.name, e.target)):
        candidate = _Candidate(
            name=ep.name, distribution=ep.distribution, version=ep.version, target=ep.target, load=ep.load
        )
        names = {normalize_name(ep.name), normalize_name(ep.distribution)}
        seen |= names
        if (allow is not None and not names & allow) or names & deny:
            disabled.append(candidate)
        else:
            selected.append(candidate)
    for variable, wanted in (("GENAISDK_LOAD_PLUGINS", allow or set()), ("GENAISDK_DISABLE_PLUGINS", deny)):
        for name in sorted(wanted - seen):
            _report(f"{variable} names {name!r}, but no installed plugin is called that")
    return selected, disabled


# -- entry-point discovery ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EntryPoint:
    """One `name = target` line of an installed distribution's entry points."""

    name: str
    target: str
    """"package.module" or "package.module:object.attribute" (extras dropped)."""
    distribution: str
    version: str

    def load(self) -> Any:
        import importlib

        module_name, _, attribute = self.target.partition(":")
        obj = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def scan_entry_points(group: str, paths: Iterable[str] | None = None) -> list[EntryPoint]:
    """The entry points of `group` declared by the distributions on `paths` (sys.path).

    Reads the same files `importlib.metadata` reads (`*.dist-info/entry_points.txt`, legacy
    `*.egg-info/entry_points.txt`, and the Name/Version headers of METADATA or PKG-INFO)
    without importing it: its e-mail based metadata parser alone costs about 20 ms on a
    small machine, most of the registry's budget. As with `importlib.metadata`, the first
    distribution of a (normalized) name along the path wins.
    """
    found: list[EntryPoint] = []
    seen: set[str] = set()
    header = f"[{group}]"
    for entry in sys.path if paths is None else paths:
        root = entry or "."
        try:
            with os.scandir(root) as listing:
                folders = sorted(d.name for d in listing if d.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # not a folder (a zip file, a path hook's marker), or unreadable
            continue
        for folder in folders:
            key = _folder_distribution(folder)
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(root, folder)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            if header not in text:
                continue
            name, version = _name_and_version(path, folder)
            for ep_name, target in _section(text, group):
                found.append(EntryPoint(name=ep_name, target=target, distribution=name, version=version))
    return found


def _folder_distribution(folder: str) -> str:
    """The normalized distribution name a metadata folder is named after."""
    # Installers write the name escaped (PEP 427: runs of '-_.' as one '_'), so '.' is all
    # that is left to fold; no regular expression needed on this hot path.
    stem = folder.rsplit(".", 1)[0]
    return stem.partition("-")[0].replace(".", "_").lower()


def _name_and_version(path: str, folder: str) -> tuple[str, str]:
    """Name and Version headers of the folder's METADATA (or PKG-INFO)."""
    for filename in ("METADATA", "PKG-INFO"):
        try:
            handle = open(os.path.join(path, filename), encoding="utf-8")
        except OSError:
            continue
        name = version = None
        with handle:
            for line in handle:
                if not line.strip():
                    break  # end of the headers
                field, _, value = line.partition(":")
                if field == "Name":
                    name = value.strip()
                elif field == "Version":
                    version = value.strip()
                if name and version:
                    break
        return name or _folder_distribution(folder), version or "?"
    return _folder_distribution(folder), "?"


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """`name = target` pairs of one [group] of an entry_points.txt (INI syntax)."""
    pairs = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            name, _, target = line.partition("=")
            target = target.split("[", 1)[0].strip()  # drop "[extras]"
            pairs.append((name.strip(), target))
    return pairs


# -- checks -------------------------------------------------------------------------------


def _check_hook_names(plugin: Any) -> None:
    """Catch hook functions pluggy would silently ignore or only vaguely reject."""
    for attribute in dir(plugin):
        if not attribute.startswith(hookspecs.PROJECT + "_"):
            continue
        value = getattr(plugin, attribute, None)
        if not callable(value):
            continue
        if attribute not in hookspecs.ALL_HOOKS:
            close = difflib.get_close_matches(attribute, hookspecs.ALL_HOOKS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginError(f"unknown hook {attribute!r}{hint}")
        if not hasattr(value, hookspecs.PROJECT + "_impl"):
            raise PluginError(f"{attribute} is not marked with @genaisdk.hookimpl, so it would never be called")


def _records_from(hook_name: str, kind: str, result: Any, provider: str) -> list[Record]:
    """The records a registration hook returned, each checked, renamed and attributed."""
    expected = RECORD_KINDS[kind]
    if result is None:
        return []
    if isinstance(result, (str, bytes, Mapping, Record)) or not isinstance(result, Iterable):
        raise PluginError(f"{hook_name} must return an iterable of {expected.__name__} records, got {result!r:.80}")
    out = []
    for item in result:
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
        out.append(
            attrs.evolve(
                item,
                name=normalize_name(item.name),
                aliases=tuple(normalize_name(alias) for alias in item.aliases),
                provider=provider,
            )
        )
    return out


def _check_duplicates(
    candidate: _Candidate,
    records: Mapping[str, list[Record]],
    index: Mapping[str, Mapping[str, Record]],
    by_name: Mapping[str, _Candidate],
) -> None:
    """Every name and alias of the new records must be new in its kind."""
    for kind, items in records.items():
        seen: dict[str, Record] = {}
        for record in items:
            for name in (record.key, *record.aliases):
                if name in seen:
                    raise DuplicateRecordError(
                        f"{kind}: {name!r} is registered twice by {_describe(candidate)} "
                        f"({_spelling(seen[name], name)} and {_spelling(record, name)})"
                    )
                seen[name] = record
                existing = index[kind].get(name)
                if existing is not None:
                    first = by_name.get(existing.provider)
                    first_text = _describe(first) if first else repr(existing.provider)
                    raise DuplicateRecordError(
                        f"{kind}: {name!r} is registered by both {first_text} ({_spelling(existing, name)}) "
                        f"and {_describe(candidate)} ({_spelling(record, name)})"
                    )


def _spelling(record: Record, name: str) -> str:
    return "its name" if record.key == name else f"an alias of {record.key!r}"


def _describe(candidate: _Candidate) -> str:
    return f"{candidate.name!r} ({candidate.distribution} {candidate.version})"


_REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("tasks", "objective", "objectives"),
    ("presets", "architecture", "architectures"),
    ("adaptations", "frozen_precision", "precisions"),
)
"""(kind, field, kind the field names): cross-references checked after loading."""


def _dangling_references(
    catalogs: Mapping[str, Mapping[str, Record]], contributed: Mapping[str, Mapping[str, list[Record]]]
) -> dict[str, str]:
    """provider -> message for the first reference of each provider that names nothing."""
    out: dict[str, str] = {}
    for provider, records in contributed.items():
        for kind, field, target in _REFERENCES:
            for record in records.get(kind, ()):
                value = getattr(record, field)
                if value is not None and normalize_name(value) not in catalogs[target]:
                    close = difflib.get_close_matches(normalize_name(value), list(catalogs[target]), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    out.setdefault(
                        provider,
                        f"{kind}: {record.key!r} names {field} {value!r}{hint}, which no plugin registers",
                    )
    return out


# -- the process-wide registry ------------------------------------------------------------

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
