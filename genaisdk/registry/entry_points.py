"""Entry-point discovery: which installed distributions declare plugins, without importlib.metadata.

`scan_entry_points(group)` reads the same files `importlib.metadata.entry_points(group=...)`
reads (`*.dist-info/entry_points.txt`, legacy `*.egg-info/entry_points.txt`, and the Name and
Version headers of METADATA or PKG-INFO) and finds the same entry points (a test compares the
two on the same `sys.path`). It exists because it is cheap: `import importlib.metadata` and
its e-mail based metadata parser cost 40 to 200 ms on a small machine, the scan about 1 ms,
and every `genai` command that reads the catalogs pays it.

Limit: only metadata folders on `sys.path` entries that are plain folders are seen, so a
distribution that only a custom `sys.meta_path` finder can locate (inside a zip application,
for instance) is not discovered; install such a plugin as an ordinary distribution.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import attrs

from genaisdk import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT
"""The entry-point group plugins are announced in: `[project.entry-points.genaisdk]`."""


@attrs.frozen(kw_only=True)
class EntryPoint:
    """One `name = target` line of an installed distribution's entry points."""

    name: str
    target: str
    """"package.module" or "package.module:object.attribute" (extras dropped)."""
    distribution: str
    version: str

    def load(self) -> Any:
        """Import the target's module and return it, or the named attribute inside it."""
        import importlib

        module_name, _, attribute = self.target.partition(":")
        obj = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def scan_entry_points(group: str, paths: Iterable[str] | None = None) -> list[EntryPoint]:
    """The entry points of `group` declared by the distributions on `paths` (default `sys.path`).

    As with `importlib.metadata`, the first distribution of a (normalized) name along the
    path wins; unreadable entries and files are skipped.
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
