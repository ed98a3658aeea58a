"""Loading plugins one at a time, each isolated: what to try, and what became of each.

The steps of one load (`load`):

1. **candidates**: the built-in catalogs (`genaisdk.builtins.BUILTIN_PLUGINS`), ad-hoc plugin
   objects, then the entry points of the group `genaisdk` sorted by name, split into selected
   and disabled by `PluginSettings.allow` / `deny`;
2. **register**: import each selected candidate (time-bounded), check its hook names and
   register it with the pluggy manager;
3. **collect**: call each registration hook of each registered plugin (time-bounded, record
   count bounded), check the records and their names against everything registered before;
4. **prune**: drop the plugins whose records name records nobody registered, until none do
   (dropping one can leave another dangling);
5. **report**: one `PluginInfo` per candidate, and the catalogs.

A plugin that fails any step is reported once on stderr (name, distribution, version,
error), listed as `failed`, unregistered, and contributes nothing; the others are not
affected. A built-in that fails is a bug in genaisdk and raises, as does any plugin in
strict mode. A `KeyboardInterrupt` while a plugin runs names the plugin and propagates.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from genaisdk import hookspecs
from genaisdk.records import RECORD_KINDS, Record, normalize_name
from genaisdk.registry import checks
from genaisdk.registry.bounds import call_bounded
from genaisdk.registry.entry_points import ENTRY_POINT_GROUP, scan_entry_points
from genaisdk.registry.errors import PluginError
from genaisdk.registry.settings import PluginSettings

STATUSES = ("active", "disabled", "failed")


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
    seconds: float = 0.0
    """Wall-clock seconds spent importing the plugin and calling its registration hooks."""

    def describe(self) -> str:
        """How messages name this plugin: `'moe' (genaisdk-moe 0.1.0)`."""
        return f"{self.name!r} ({self.distribution} {self.version})"


@attrs.frozen(kw_only=True)
class Candidate:
    """A plugin to try: where it comes from and how to get its object."""

    name: str
    distribution: str
    version: str
    target: str
    load: Callable[[], Any]
    builtin: bool = False

    def describe(self) -> str:
        return f"{self.name!r} ({self.distribution} {self.version})"


@attrs.frozen(kw_only=True)
class Loaded:
    """What one load produced: the catalogs, their aliases, and every plugin's fate."""

    catalogs: dict[str, dict[str, Record]]
    """kind -> normalized name -> record, sorted by name."""
    aliases: dict[str, dict[str, str]]
    """kind -> alias -> name."""
    plugins: tuple[PluginInfo, ...]


def report(message: str) -> None:
    """One warning line on stderr (the registry's only output)."""
    print(f"genaisdk: warning: {message}", file=sys.stderr)


def report_interrupt(name: str, described: str, what: str) -> None:
    """Name the plugin whose code was running when an interrupt arrived (it propagates)."""
    print(
        f"genaisdk: interrupted while plugin {described} was running {what} "
        f"(GENAISDK_DISABLE_PLUGINS={name} skips it)",
        file=sys.stderr,
    )


def error_text(exc: BaseException) -> str:
    """One line: the exception's type and message (multi-line messages joined with '; ')."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- candidates ---------------------------------------------------------------------------


def builtin_candidates() -> list[Candidate]:
    """The built-in catalog modules, in `BUILTIN_PLUGINS` order."""
    import importlib

    from genaisdk import __version__
    from genaisdk.builtins import BUILTIN_PLUGINS

    return [
        Candidate(
            name=module,
            distribution="genaisdk",
            version=__version__,
            target=module,
            load=lambda module=module: importlib.import_module(module),
            builtin=True,
        )
        for module in BUILTIN_PLUGINS
    ]


def object_candidates(objects: Iterable[Any]) -> list[Candidate]:
    """Plugin objects handed to `Registry(plugins=...)`, named by their `__name__`."""
    out = []
    for obj in objects:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        out.append(Candidate(name=name, distribution="<ad hoc>", version="-", target=name, load=lambda obj=obj: obj))
    return out


def entry_point_candidates(settings: PluginSettings) -> tuple[list[Candidate], list[Candidate]]:
    """(selected, disabled) entry points of the group, sorted by entry-point name."""
    selected: list[Candidate] = []
    disabled: list[Candidate] = []
    seen: set[str] = set()
    for ep in sorted(scan_entry_points(ENTRY_POINT_GROUP), key=lambda e: (e.name, e.target)):
        candidate = Candidate(
            name=ep.name, distribution=ep.distribution, version=ep.version, target=ep.target, load=ep.load
        )
        names = {normalize_name(ep.name), normalize_name(ep.distribution)}
        seen |= names
        if (settings.allow is not None and not names & settings.allow) or names & settings.deny:
            disabled.append(candidate)
        else:
            selected.append(candidate)
    for variable, wanted in (("GENAISDK_LOAD_PLUGINS", settings.allow or set()), ("GENAISDK_DISABLE_PLUGINS", settings.deny)):
        for name in sorted(wanted - seen):
            report(f"{variable} names {name!r}, but no installed plugin is called that")
    return selected, disabled


# -- one load -----------------------------------------------------------------------------


def load(
    pm: pluggy.PluginManager,
    settings: PluginSettings,
    *,
    builtins: bool = True,
    entry_points: bool = True,
    objects: Sequence[Any] = (),
) -> Loaded:
    """Register every selected plugin with `pm` and gather the catalogs (see the module doc)."""
    for problem in settings.problems:
        report(problem)
    candidates = [*(builtin_candidates() if builtins else ()), *object_candidates(objects)]
    disabled: list[Candidate] = []
    if entry_points:
        selected, disabled = entry_point_candidates(settings)
        candidates.extend(selected)
    run = _Load(pm, settings, [*candidates, *disabled])
    for candidate in disabled:
        run.statuses[candidate.name] = "disabled"
    registered = [c for c in candidates if run.register(c)]
    contributed = run.collect(registered)
    run.prune(contributed)
    return run.result(contributed)


class _Load:
    """The state of one load: each plugin's object, status, error and time, and the catalogs."""

    def __init__(self, pm: pluggy.PluginManager, settings: PluginSettings, candidates: list[Candidate]):
        self.pm = pm
        self.settings = settings
        self.candidates = candidates
        self.by_name = {c.name: c for c in candidates}
        self.describe = {c.name: c.describe() for c in candidates}
        self.objects: dict[str, Any] = {}
        self.statuses: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.deadlines: dict[str, float | None] = {}
        self.raised_in: dict[str, str] = {}  # plugin -> the hook whose own exception failed it
        self.catalogs: dict[str, dict[str, Record]] = {kind: {} for kind in RECORD_KINDS}
        self.index: dict[str, dict[str, Record]] = {kind: {} for kind in RECORD_KINDS}  # names and aliases

    # step 2
    def register(self, candidate: Candidate) -> bool:
        """Import and register one plugin; False (and reported) when it fails."""
        timeout = None if candidate.builtin else self.settings.limits.timeout_s
        self.deadlines[candidate.name] = None if timeout is None else time.perf_counter() + timeout
        try:
            plugin = self._timed(candidate, "import", candidate.load)
            checks.check_hook_names(plugin)
            self.pm.register(plugin, name=candidate.name)
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError:
                self.pm.unregister(plugin)
                raise
        except Exception as exc:
            self.fail(candidate, exc)
            return False
        self.objects[candidate.name] = plugin
        return True

    # step 3
    def collect(self, registered: list[Candidate]) -> dict[str, dict[str, list[Record]]]:
        """plugin name -> kind -> its checked records, for every plugin that passes."""
        contributed: dict[str, dict[str, list[Record]]] = {}
        for candidate in registered:
            try:
                records = self._records_of(candidate)
                checks.check_duplicates(candidate.name, records, self.index, self.describe)
            except Exception as exc:
                self.fail(candidate, exc)
                continue
            self._warn_if_slow(candidate)
            contributed[candidate.name] = records
            for kind, items in records.items():
                for record in items:
                    self._add(kind, record)
        return contributed

    def _records_of(self, candidate: Candidate) -> dict[str, list[Record]]:
        """Call each registration hook of one plugin and check what it returns."""
        plugin = self.objects[candidate.name]
        limit = self.settings.limits.max_records
        out: dict[str, list[Record]] = {}
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            items: list[Record] = []
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                raw = self._timed(
                    candidate,
                    hook_name,
                    lambda f=impl.function, h=hook_name, k=kind: checks.take_records(h, k, f(), limit),
                )
                items.extend(checks.checked_records(hook_name, kind, raw, candidate.name, trusted=candidate.builtin))
            if items:
                out[kind] = items
        return out

    # step 4
    def prune(self, contributed: dict[str, dict[str, list[Record]]]) -> None:
        """Fail the plugins whose references dangle, until none do."""
        while True:
            dangling = checks.dangling_references(self.catalogs, contributed)
            if not dangling:
                return
            for provider, message in dangling.items():
                self.fail(self.by_name[provider], PluginError(message))
                for kind, items in contributed.pop(provider).items():
                    for record in items:
                        self._remove(kind, record)

    # step 5
    def result(self, contributed: Mapping[str, Mapping[str, list[Record]]]) -> Loaded:
        infos = []
        for candidate in self.candidates:
            status = self.statuses.get(candidate.name, "active")
            obj = self.objects.get(candidate.name)
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(obj) or ())) if obj is not None else ()
            records = contributed.get(candidate.name, {}) if status == "active" else {}
            infos.append(
                PluginInfo(
                    name=candidate.name,
                    distribution=candidate.distribution,
                    version=candidate.version,
                    status=status,
                    builtin=candidate.builtin,
                    target=candidate.target,
                    hooks=hooks,
                    records={kind: len(items) for kind, items in records.items() if items},
                    error=self.errors.get(candidate.name),
                    seconds=self.seconds.get(candidate.name, 0.0),
                )
            )
        # Failed plugins stay out of the hooks (validate) but keep their hook list above.
        for name, status in self.statuses.items():
            if status == "failed" and self.pm.has_plugin(name):
                self.pm.unregister(name=name)
        return Loaded(
            catalogs={kind: dict(sorted(items.items())) for kind, items in self.catalogs.items()},
            aliases={
                kind: {alias: record.key for alias, record in names.items() if alias != record.key}
                for kind, names in self.index.items()
            },
            plugins=tuple(infos),
        )

    # -- helpers --------------------------------------------------------------------------

    def _timed(self, candidate: Candidate, what: str, function: Callable[[], Any]) -> Any:
        """Run a plugin's own code within its deadline, adding the time to its total."""
        started = time.perf_counter()
        try:
            return call_bounded(function, deadline=self.deadlines[candidate.name], what=what)
        except PluginError:
            raise
        except Exception:
            if what != "import":
                self.raised_in[candidate.name] = what
            raise
        except KeyboardInterrupt:
            report_interrupt(candidate.name, candidate.describe(), "its import" if what == "import" else what)
            raise
        finally:
            self.seconds[candidate.name] = self.seconds.get(candidate.name, 0.0) + time.perf_counter() - started

    def _warn_if_slow(self, candidate: Candidate) -> None:
        seconds = self.seconds.get(candidate.name, 0.0)
        if not candidate.builtin and seconds > self.settings.limits.slow_s:
            report(
                f"plugin {candidate.describe()} took {seconds:.1f} s to load; every command that reads "
                f"the catalogs waits for it (GENAISDK_DISABLE_PLUGINS={candidate.name} skips it)"
            )

    def _add(self, kind: str, record: Record) -> None:
        self.catalogs[kind][record.key] = record
        for name in (record.key, *record.aliases):
            self.index[kind][name] = record

    def _remove(self, kind: str, record: Record) -> None:
        self.catalogs[kind].pop(record.key, None)
        for name in (record.key, *record.aliases):
            self.index[kind].pop(name, None)

    def fail(self, candidate: Candidate, exc: BaseException) -> None:
        """Mark a plugin failed and say so once; re-raise for a built-in or in strict mode."""
        if candidate.builtin or self.settings.strict:
            raise exc
        self.statuses[candidate.name] = "failed"
        hook = self.raised_in.pop(candidate.name, None)
        self.errors[candidate.name] = f"{hook} raised {error_text(exc)}" if hook else error_text(exc)
        report(
            f"plugin {candidate.name!r} from {candidate.distribution} {candidate.version} failed "
            f"and was skipped: {self.errors[candidate.name]}"
        )
