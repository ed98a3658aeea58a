"""Names as people type them, and "did you mean": the one place that guesses which
registered name a misspelt one meant.

`suggest` never proposes a word that says the opposite of what was typed: a name is split
into its words (`mixed-bf16` -> {mixed, bf16}), and a candidate made of the same words in
another order (`bf16-mixed`) wins outright; otherwise the closest candidate by difflib's
ratio is taken, unless it drops a word the user wrote for one the user did not (`pure-bf16`
for `mixed-bf16` keeps `bf16` but trades `mixed` for `pure`: a different thing, not a typo).
Only called on error paths, so difflib is imported there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

CUTOFF = 0.6
"""difflib's ratio (matching characters over total length) a guess must reach: one or two
typos in a short name (`fp61` -> `fp16`, `adamm` -> `adam`), not an unrelated word."""


def fold(text: str) -> str:
    """Case, `_` and `-` do not matter when names are compared."""
    return str(text).strip().lower().replace("_", "-")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[-_\s.]+", fold(text)) if w]


def _swaps_a_word(typed: str, candidate: str) -> bool:
    """The candidate keeps some of the typed words but replaces another whole word with an
    unrelated word of its own (`mixed-bf16` vs `pure-bf16`): a different name, not a
    misspelling (`h100-80g` vs `h100-80gb` is one)."""
    import difflib

    a, b = _words(typed), _words(candidate)
    shared = set(a) & set(b)
    if not shared:
        return False
    theirs = set(b) - shared
    return any(
        not any(difflib.SequenceMatcher(None, mine, other).ratio() >= CUTOFF for other in theirs)
        for mine in set(a) - shared
    )


def suggest(word: str, candidates: Iterable[str], *, aliases: Mapping[str, str] | None = None) -> str | None:
    """The candidate `word` most likely meant, or None if none is close.

    `aliases` maps other accepted spellings to candidates (`bf16-mixed` -> `bf16`); a match
    on an alias suggests the alias as written, so the hint reads like what was typed.
    """
    import difflib

    by_folded: dict[str, str] = {}
    for candidate in [*candidates, *(aliases or {})]:
        by_folded.setdefault(fold(candidate), candidate)
    target = fold(word)
    if target in by_folded:
        return by_folded[target]
    words = sorted(_words(word))
    for folded, candidate in by_folded.items():
        if len(words) > 1 and sorted(_words(folded)) == words:
            return candidate
    for match in difflib.get_close_matches(target, list(by_folded), n=5, cutoff=CUTOFF):
        if not _swaps_a_word(target, match):
            return by_folded[match]
    # The same words in another order, one of them misspelt (`mixed-bf61`).
    by_sorted = {"-".join(sorted(_words(f))): f for f in by_folded}
    for match in difflib.get_close_matches("-".join(words), list(by_sorted), n=5, cutoff=CUTOFF):
        if not _swaps_a_word(target, by_sorted[match]):
            return by_folded[by_sorted[match]]
    return None


def did_you_mean(word: str, candidates: Iterable[str], *, aliases: Mapping[str, str] | None = None) -> str | None:
    """`did you mean `x`?`, or None."""
    guess = suggest(word, candidates, aliases=aliases)
    return f"did you mean `{guess}`?" if guess is not None else None


def one_of(names: Iterable[str], limit: int = 12) -> str:
    """`a, b or c` (with the count when there are more than `limit`)."""
    names = list(names)
    shown = [f"`{n}`" for n in names[:limit]]
    if len(names) > limit:
        return ", ".join(shown) + f" (and {len(names) - limit} more)"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]
