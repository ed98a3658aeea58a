"""Helpers for testing plugins, and code that reads the registry, without installing anything.

Register an ad-hoc plugin for the length of a test::

    from genaisdk.records import Hardware
    from genaisdk.testing import make_plugin, registry_with

    def my_gpus():
        yield Hardware(name="x1", memory_bytes=2**34, peak_flops={"bf16": 1e14},
                       bandwidth_bytes_per_s=1e12, power_watts=300)

    with registry_with(make_plugin("my-gpus", genaisdk_hardware=my_gpus)) as registry:
        assert registry.get("hardware", "x1").provider == "my-gpus"
        # genaisdk.get_registry() returns `registry` here too, so CLI commands see it.

Pretend a distribution is installed, entry point and all, to exercise the real discovery
path (including broken plugins)::

    from genaisdk.testing import fake_distribution, registry_with

    with fake_distribution("broken-gpus", entry_points={"broken": "broken_gpus"},
                           modules={"broken_gpus": "raise ImportError('no CUDA')"}):
        with registry_with(entry_points=True) as registry:
            assert [p.status for p in registry.plugins if p.name == "broken"] == ["failed"]
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import tempfile
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from genaisdk.hookspecs import hookimpl
from genaisdk.registry import ENTRY_POINT_GROUP, PluginLimits, Registry, set_registry


def make_plugin(name: str, **hooks: Callable[..., Any]) -> types.SimpleNamespace:
    """A plugin object called `name` whose hooks are the given functions (marked for you).

    `make_plugin("x", genaisdk_hardware=lambda: [record])` is the same as a module with
    `@hookimpl def genaisdk_hardware(): return [record]`. Hook names are not checked here;
    the registry checks them when the plugin is registered, as it would for a real one.
    """
    marked = {hook: hookimpl(function) for hook, function in hooks.items()}
    return types.SimpleNamespace(__name__=name, **marked)


@contextlib.contextmanager
def registry_with(
    *plugins: Any,
    builtins: bool = True,
    entry_points: bool = False,
    strict: bool | None = None,
    install: bool = True,
    limits: PluginLimits | None = None,
) -> Iterator[Registry]:
    """A fresh `Registry` with `plugins` registered after the built-ins.

    `entry_points=True` also discovers installed (or faked) distributions, honouring the
    GENAISDK_* environment variables. While the block runs the registry is also the one
    `genaisdk.get_registry()` returns (`install=False` leaves the process-wide one alone);
    the previous one is put back afterwards. `limits` replaces the plugin time and record
    limits (e.g. `PluginLimits(timeout_s=0.5)` to test a slow plugin quickly).
    """
    registry = Registry(builtins=builtins, entry_points=entry_points, plugins=plugins, strict=strict, limits=limits)
    previous = set_registry(registry) if install else None
    try:
        yield registry
    finally:
        if install:
            set_registry(previous)


@contextlib.contextmanager
def fake_distribution(
    name: str,
    version: str = "1.0",
    *,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
    group: str = ENTRY_POINT_GROUP,
) -> Iterator[Path]:
    """An installed-looking distribution in a temporary folder put on `sys.path`.

    `entry_points` maps entry-point names to targets ("package.module" or
    "package.module:object") in `group`; `modules` maps dotted module names to their source
    (dedented; packages get an `__init__.py`). Yields the folder. Afterwards the folder is
    removed from `sys.path` and the modules are forgotten, so the next test starts clean.
    """
    modules = dict(modules or {})
    with tempfile.TemporaryDirectory(prefix="genaisdk-fake-dist-") as tmp:
        root = Path(tmp)
        for module, source in modules.items():
            _write_module(root, module, source)
        info = root / f"{_safe(name)}-{_safe(version)}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = [f"[{group}]"] + [f"{ep} = {target}" for ep, target in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        try:
            yield root
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(root))
            for loaded in list(sys.modules):
                if any(loaded == m or loaded.startswith(m + ".") for m in modules):
                    del sys.modules[loaded]
            importlib.invalidate_caches()


def _safe(text: str) -> str:
    """The file-name form of a distribution name or version (PEP 427 escaping)."""
    return "".join(c if c.isalnum() or c == "." else "_" for c in text)


def _write_module(root: Path, dotted: str, source: str) -> None:
    parts = dotted.split(".")
    folder = root
    for package in parts[:-1]:
        folder = folder / package
        folder.mkdir(exist_ok=True)
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
    (folder / f"{parts[-1]}.py").write_text(textwrap.dedent(source))
