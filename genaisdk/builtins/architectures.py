"""Built-in architectures: encoder, decoder and encoder-decoder transformers.

A plugin module like any other (see `genaisdk.hookspecs.genaisdk_architectures`). The
records are built from the exact counting, FLOP and activation-memory functions in
`genaisdk.estimate`; this module is filled in together with that math.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Architecture


@hookimpl
def genaisdk_architectures() -> Iterator[Architecture]:
    """No records yet: the encoder, decoder and encoder-decoder records land with `genaisdk.estimate`."""
    yield from ()
