"""`Registry`: the catalogs of named records, loaded on first use, and the validate hooks.

Answers `catalog`, `get`, `names`, `aliases`, `suggest` and `plugins` from one load
(`genaisdk.registry.loading.load`), done under a lock the first time any of them is asked,
and runs the plugins' `genaisdk_validate` hooks (`validate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from genaisdk import hookspecs
from genaisdk.records import RECORD_KINDS, Record, normalize_name
from genaisdk.registry import loading
from genaisdk.registry._suggest import close_matches
from genaisdk.registry.bounds import call_bounded
from genaisdk.registry.errors import PluginError, UnknownKindError
from genaisdk.registry.loading import PluginInfo
from genaisdk.registry.settings import PluginLimits, PluginSettings

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic
    from genaisdk.spec.model import Spec

# GR001: a plugin's `genaisdk_validate` raised (or timed out, or tried to exit); GR002: it
# returned something that is not a Diagnostic. The table: genaisdk.core.codes.
from genaisdk.core.codes import VALIDATE_NOT_A_DIAGNOSTIC, VALIDATE_RAISED, severity  # noqa: E402


class Registry:
    """Named records of every kind, gathered from the built-ins and the installed plugins.

    `Registry()` finds plugins through entry points; `Registry(entry_points=False,
    plugins=[obj])` registers only the built-ins and the given objects (see
    `genaisdk.testing.registry_with`). Nothing is loaded until a method below is called;
    the GENAISDK_* plugin variables are read then (see `genaisdk.registry.settings`).
    `strict` and `limits`, when given, take the place of GENAISDK_STRICT_PLUGINS and of the
    default `PluginLimits` (GENAISDK_PLUGIN_TIMEOUT).
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        plugins: Sequence[Any] = (),
        strict: bool | None = None,
        limits: PluginLimits | None = None,
    ):
        self._use_builtins = builtins
        self._use_entry_points = entry_points
        self._extra = tuple(plugins)
        self._strict_arg = strict
        self._limits_arg = limits
        self._settings: PluginSettings | None = None
        self._lock = threading.Lock()
        self._loaded: loading.Loaded | None = None
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
        return catalog.get(key) or catalog.get(self._loaded_now().aliases[kind].get(key, ""))

    def names(self, kind: str) -> list[str]:
        """The registered names of `kind`, sorted."""
        return list(self._catalog(kind))

    def aliases(self, kind: str) -> dict[str, str]:
        """Alias -> name for `kind` (names `get` accepts besides the registered ones)."""
        self._catalog(kind)
        return dict(sorted(self._loaded_now().aliases[kind].items()))

    def suggest(self, kind: str, name: str, n: int = 3) -> list[str]:
        """Registered names of `kind` close to `name` (or to an alias), best first, for "did you mean"."""
        aliases = self._loaded_now().aliases[kind] if kind in RECORD_KINDS else {}
        candidates = [*self.names(kind), *aliases]
        out: list[str] = []
        for match in close_matches(normalize_name(name), candidates, n=n * 2):
            resolved = aliases.get(match, match)
            if resolved not in out:
                out.append(resolved)
        return out[:n]

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: built-ins, then ad-hoc objects, then entry points by name."""
        return list(self._loaded_now().plugins)

    @property
    def strict(self) -> bool:
        """Whether a plugin's error is re-raised (GENAISDK_STRICT_PLUGINS=1) rather than reported."""
        return self.settings.strict

    @property
    def settings(self) -> PluginSettings:
        """The plugin settings this registry loads with: the environment, read once, and the
        `strict` / `limits` arguments."""
        if self._settings is None:
            settings = PluginSettings.from_env()
            if self._strict_arg is not None:
                settings = attrs.evolve(settings, strict=self._strict_arg)
            if self._limits_arg is not None:
                settings = attrs.evolve(settings, limits=self._limits_arg)
            self._settings = settings
        return self._settings

    def validate(self, spec: Spec) -> list[Diagnostic]:
        """Run every active plugin's `genaisdk_validate(spec)`; diagnostics sorted.

        A validate hook that raises, runs past the plugin time limit, or returns something
        other than Diagnostics does not stop the others: it becomes a warning (GR001, GR002)
        naming the plugin. In strict mode the error is raised instead.
        """
        from genaisdk.diagnostics import sort_diagnostics

        infos = {info.name: info for info in self._loaded_now().plugins}
        found: list[Diagnostic] = []
        for impl in self.pm.hook.genaisdk_validate.get_hookimpls():
            info = infos.get(impl.plugin_name) or PluginInfo(
                name=impl.plugin_name, distribution="?", version="?", status="active"
            )
            found.extend(self._validate_one(impl, info, spec))
        return sort_diagnostics(found)

    # -- internals --------------------------------------------------------------------------

    def _validate_one(self, impl: pluggy.HookImpl, info: PluginInfo, spec: Spec) -> list[Diagnostic]:
        from genaisdk.diagnostics import Diagnostic

        timeout = None if info.builtin else self.settings.limits.timeout_s
        deadline = None if timeout is None else time.perf_counter() + timeout
        try:
            items = call_bounded(
                lambda: list(impl.function(*[spec for _ in impl.argnames]) or ()),
                deadline=deadline,
                what="genaisdk_validate",
            )
        except KeyboardInterrupt:
            loading.report_interrupt(info.name, info.describe(), "genaisdk_validate")
            raise
        except Exception as exc:
            if self.strict:
                raise
            what = str(exc) if isinstance(exc, PluginError) else f"genaisdk_validate raised {loading.error_text(exc)}"
            message = f"plugin {info.describe()}: {what}; its checks were skipped"
            return [Diagnostic(code=VALIDATE_RAISED, severity=severity(VALIDATE_RAISED), message=message)]
        out: list[Diagnostic] = []
        for item in items:
            if isinstance(item, Diagnostic):
                out.append(item)
                continue
            if self.strict:
                raise PluginError(f"plugin {info.describe()}: genaisdk_validate returned {item!r}, not a Diagnostic")
            out.append(
                Diagnostic(
                    code=VALIDATE_NOT_A_DIAGNOSTIC,
                    severity=severity(VALIDATE_NOT_A_DIAGNOSTIC),
                    message=f"plugin {info.describe()}: genaisdk_validate returned "
                    f"a {type(item).__name__}, not a Diagnostic; ignored",
                )
            )
        return out

    def _catalog(self, kind: str) -> dict[str, Record]:
        if kind not in RECORD_KINDS:
            raise UnknownKindError(kind)
        return self._loaded_now().catalogs[kind]

    def _loaded_now(self) -> loading.Loaded:
        """The result of this registry's one load, doing it first if nobody has yet."""
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = loading.load(
                        self.pm,
                        self.settings,
                        builtins=self._use_builtins,
                        entry_points=self._use_entry_points,
                        objects=self._extra,
                    )
                loaded = self._loaded
        return loaded
