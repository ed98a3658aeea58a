"""The registry's "did you mean": close registered names for a misspelt one.

Every suggestion the registry makes (an unknown catalog kind, a misspelt hook, a reference
to a record nobody registered, `Registry.suggest`) goes through here, and from here through
`genaisdk.core.names.suggest`, the one rule `genaisdk.spec` uses for names in a spec too
(difflib's ratio with cutoff 0.6; the same words reordered win; a name that swaps a word for
an unrelated one is never offered).
"""

from __future__ import annotations

from collections.abc import Iterable

from genaisdk.core.names import CUTOFF, suggest

__all__ = ["CUTOFF", "close_matches", "did_you_mean"]


def close_matches(word: str, candidates: Iterable[str], n: int = 1) -> list[str]:
    """The candidate closest to `word` as a list (empty when none is close)."""
    match = suggest(str(word), list(candidates))
    return [match][:n] if match is not None else []


def did_you_mean(word: str, candidates: Iterable[str], template: str = "; did you mean {!r}?") -> str:
    """`template` filled with the closest candidate, or "" when none is close enough."""
    close = close_matches(word, candidates)
    return template.format(close[0]) if close else ""
