"""The registry's one "did you mean": close registered names for a misspelt one.

Every suggestion the registry makes (an unknown catalog kind, a misspelt hook, a reference
to a record nobody registered, `Registry.suggest`) goes through `close_matches`, so they all
use one similarity rule: `difflib`'s ratio with cutoff 0.6, the value `difflib` itself
defaults to and that `genaisdk.spec` uses for names in a spec. Only error paths call it, so
`difflib` is imported there.
"""

from __future__ import annotations

from collections.abc import Iterable

CUTOFF = 0.6
"""Lowest `difflib.SequenceMatcher.ratio()` a suggestion may have."""


def close_matches(word: str, candidates: Iterable[str], n: int = 1) -> list[str]:
    """Up to `n` of `candidates` closest to `word`, best first (empty when none is close)."""
    import difflib

    return difflib.get_close_matches(str(word), list(candidates), n=n, cutoff=CUTOFF)


def did_you_mean(word: str, candidates: Iterable[str], template: str = "; did you mean {!r}?") -> str:
    """`template` filled with the closest candidate, or "" when none is close enough."""
    close = close_matches(word, candidates)
    return template.format(close[0]) if close else ""
