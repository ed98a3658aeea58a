"""Did-you-mean: the registered name closest to a misspelt one.

Only called on the error path, so difflib is imported there.
"""

from __future__ import annotations

from collections.abc import Iterable


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like `word` (case, `_` and `-` ignored), or None if none is close.

    Closeness is difflib's ratio (matching characters over total length) with a cutoff of
    0.6, which accepts one or two typos in a short name (`fp61` -> `fp16`, `adamm` ->
    `adam`) and rejects unrelated words.
    """
    import difflib

    def fold(text: str) -> str:
        return text.lower().replace("_", "-")

    by_folded: dict[str, str] = {}
    for candidate in candidates:
        by_folded.setdefault(fold(candidate), candidate)
    target = fold(word)
    if target in by_folded:
        return by_folded[target]
    matches = difflib.get_close_matches(target, list(by_folded), n=1, cutoff=0.6)
    return by_folded[matches[0]] if matches else None


def one_of(names: Iterable[str], limit: int = 12) -> str:
    """`a, b or c` (with the count when there are more than `limit`)."""
    names = list(names)
    shown = [f"`{n}`" for n in names[:limit]]
    if len(names) > limit:
        return ", ".join(shown) + f" (and {len(names) - limit} more)"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]
