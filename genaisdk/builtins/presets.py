"""Built-in presets: published models with their dimensions and sources.

A plugin module like any other (see `genaisdk.hookspecs.genaisdk_presets`). Each preset names
a built-in architecture and carries the published dimensions and parameter count; it is
filled in together with the parameter-counting math in `genaisdk.estimate`.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Preset


@hookimpl
def genaisdk_presets() -> Iterator[Preset]:
    """No records yet: the presets land with the architectures they name."""
    yield from ()
