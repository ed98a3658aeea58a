"""Data arithmetic: what a quality filter leaves, how much raw text a target needs, mixes.

A quality filter keeps a fraction of a raw crawl (the web pipelines of Rae et al. 2021,
Gopher, App. A, and Penedo et al. 2023, RefinedWeb, keep a small minority of what they
crawl). `usable = raw x keep`, and a target of D training tokens over `epochs` passes needs
D / (keep x epochs) raw tokens.

Every function broadcasts over numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

BYTES_PER_TOKEN_ENGLISH = 4.0
"""About 4 characters (bytes, for ASCII) of English text per BPE token (OpenAI tokenizer
documentation: 'one token generally corresponds to ~4 characters of text')."""


def _fraction(name: str, value) -> np.ndarray:
    value = np.asarray(value, dtype=float)
    if np.any((value <= 0) | (value > 1)):
        raise ValueError(f"{name} must be a fraction in (0, 1]")
    return value


def usable_tokens(raw_tokens, keep):
    """Tokens left after a filter that keeps `keep` of the raw corpus."""
    return np.asarray(raw_tokens, dtype=float) * _fraction("keep", keep)


def raw_tokens_needed(tokens, keep=1.0, epochs=1.0):
    """Raw tokens a filter keeping `keep` must see to yield `tokens` over `epochs` passes."""
    epochs = np.asarray(epochs, dtype=float)
    if np.any(epochs <= 0):
        raise ValueError("epochs must be > 0")
    return np.asarray(tokens, dtype=float) / (_fraction("keep", keep) * epochs)


def epochs_over(tokens, available_tokens):
    """Passes over the available data that `tokens` of training take (> 1: repeated data;
    Muennighoff et al. 2023 find up to about 4 epochs nearly as good as fresh data)."""
    return np.asarray(tokens, dtype=float) / np.asarray(available_tokens, dtype=float)


def mix_tokens(tokens, mix: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Tokens per source of a mix given as fractions (BloombergGPT: about 51% financial and
    49% public data; Wu et al. 2023, Table 1). Fractions must sum to 1 within 1%."""
    total = sum(mix.values())
    if abs(total - 1.0) > 0.01:
        raise ValueError(f"mix fractions sum to {total:.3f}, not 1")
    t = np.asarray(tokens, dtype=float)
    return {name: t * share / total for name, share in mix.items()}


def text_bytes_for_tokens(tokens, bytes_per_token=BYTES_PER_TOKEN_ENGLISH):
    """Approximate raw text size of `tokens` tokens."""
    return np.asarray(tokens, dtype=float) * bytes_per_token
