"""`requires { }`: the plugins a spec needs, checked the way pytest checks `required_plugins`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genaisdk.core.codes import NOT_INSTALLED, PLUGIN_DISABLED, PLUGIN_FAILED, WRONG_VERSION, diagnostic
from genaisdk.diagnostics import Diagnostic, Span
from genaisdk.records import normalize_name
from genaisdk.spec import model as M


def check_requirements(
    requirements: tuple[M.Requirement, ...], registry: Any, spans: Mapping[str, Span]
) -> list[Diagnostic]:
    """Each `requires` entry must be installed at a matching version (the way pytest checks
    `required_plugins`), and its plugin must have loaded. Checked whatever else is wrong:
    a missing plugin is often why its names are unknown."""
    if not requirements:
        return []
    from importlib import metadata

    problems: list[Diagnostic] = []
    plugins = []
    if registry is not None:
        try:
            plugins = list(registry.plugins)
        except Exception:  # a registry without plugin status still validates names
            plugins = []
    for requirement in requirements:
        dist = requirement.distribution
        where = spans.get(f"requires.{dist}:name")
        wanted = f"{dist}{requirement.specifier}" if requirement.specifier else dist
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(diagnostic(
                NOT_INSTALLED, f"this spec requires the plugin `{dist}`, which is not installed",
                where, hint=f"pip install '{wanted}'",
            ))
            continue
        if requirement.specifier:
            from packaging.specifiers import SpecifierSet
            from packaging.version import InvalidVersion, Version

            try:
                matches = SpecifierSet(requirement.specifier).contains(Version(installed), prereleases=True)
            except InvalidVersion:
                matches = False
            if not matches:
                problems.append(diagnostic(
                    WRONG_VERSION,
                    f"this spec requires `{dist}` {requirement.specifier}, but version {installed} is installed",
                    spans.get(f"requires.{dist}") or where, hint=f"pip install --upgrade '{wanted}'",
                ))
                continue
        folded = normalize_name(dist)
        for info in plugins:
            if normalize_name(getattr(info, "distribution", "")) != folded:
                continue
            if info.status == "failed":
                problems.append(diagnostic(
                    PLUGIN_FAILED, f"the required plugin `{dist}` {installed} failed to load: {info.error}",
                    where, hint="`genai plugins` shows the details",
                ))
            elif info.status == "disabled":
                problems.append(diagnostic(
                    PLUGIN_DISABLED, f"the required plugin `{dist}` is installed but not loaded",
                    where, hint="check GENAISDK_LOAD_PLUGINS / GENAISDK_DISABLE_PLUGINS and --no-plugins",
                ))
    return problems
