"""Generated token sequences for tests and benchmarks (`data { source = "synthetic" }`).

Every sequence is a pure function of ``(seed, stream, index)``, so any sequence can be made
again on any host at any time: the stream is endless, needs no storage, and a resumed run
sees exactly the sequences an uninterrupted one would have.

Kinds (``synthetic:<kind>``):

- ``markov`` (the default for plain ``synthetic``): a fixed random first-order Markov chain
  over 64 printable byte ids, each symbol followed by one of 4 successors with
  probabilities 0.6, 0.25, 0.1, 0.05. A model that learns the transition table reaches the
  chain's entropy rate, H = -sum p log p ≈ 1.08 nats, down from log(vocab) at
  initialization, so a falling loss is visible within a few dozen steps (Cover & Thomas,
  "Elements of Information Theory", Sec. 4.2: entropy rate of a stationary Markov chain).
- ``pattern``: each sequence repeats a random motif of 2 to 16 symbols; learnable by copying
  from context (an induction-head task, Olsson et al. 2022).
- ``uniform``: independent uniform byte ids; nothing to learn (the loss stays near
  log 256), the honest input for throughput measurements.
"""

from __future__ import annotations

import numpy as np

from genaisdk.backend.jax.sources import SYNTHETIC, DataError
from genaisdk.backend.jax.tokenizer import BYTE_OFFSET, TOKEN_DTYPE

KINDS = ("markov", "pattern", "uniform")
ALPHABET_FIRST_BYTE = 0x20
"""The chain and the motifs use printable ASCII from the space on, so samples read as text."""
ALPHABET_SIZE = 64
SUCCESSORS = 4
SUCCESSOR_PROBS = np.array([0.6, 0.25, 0.1, 0.05])
MOTIF_LENGTHS = (2, 16)

TRAIN_STREAM = 1
HELD_OUT_STREAM = 2
_TABLE_STREAM = 0


def parse_kind(entry: str) -> str:
    """`synthetic` -> 'markov'; `synthetic:pattern` -> 'pattern'; unknown kinds raise."""
    if entry == SYNTHETIC:
        return "markov"
    kind = entry.split(":", 1)[1].strip().lower()
    if kind not in KINDS:
        raise DataError(f"data source {entry!r}: unknown synthetic kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def markov_entropy_rate() -> float:
    """Entropy rate of the `markov` chain in nats per token (every state has the same
    successor distribution, so the rate is that distribution's entropy)."""
    p = SUCCESSOR_PROBS
    return float(-(p * np.log(p)).sum())


class SyntheticSequences:
    """Sequences of `seq_len` token ids of one synthetic kind, addressed by index."""

    def __init__(self, kind: str, *, seq_len: int, seed: int):
        if kind not in KINDS:
            raise DataError(f"unknown synthetic kind {kind!r}; use one of {', '.join(KINDS)}")
        self.kind = kind
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        table_rng = np.random.default_rng([self.seed, _TABLE_STREAM])
        # successors[a] lists the symbols that may follow symbol a, most likely first.
        self._successors = np.stack(
            [table_rng.choice(ALPHABET_SIZE, size=SUCCESSORS, replace=False) for _ in range(ALPHABET_SIZE)]
        )
        self._cumulative = np.cumsum(SUCCESSOR_PROBS)[:-1]

    @property
    def fingerprint(self) -> str:
        return f"synthetic:{self.kind}:seed={self.seed}"

    def rows(self, indices: np.ndarray, *, stream: int = TRAIN_STREAM) -> np.ndarray:
        """Sequences number `indices` of `stream`, shape [len(indices), seq_len]."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        rngs = [np.random.default_rng([self.seed, stream, int(i)]) for i in indices]
        if self.kind == "uniform":
            symbols = np.stack([rng.integers(0, 256, size=self.seq_len) for rng in rngs]) if rngs else None
            return self._to_ids(symbols, len(indices), first_byte=0)
        if self.kind == "pattern":
            return self._to_ids(self._patterns(rngs), len(indices))
        return self._to_ids(self._markov(rngs), len(indices))

    def _to_ids(self, symbols: np.ndarray | None, count: int, first_byte: int = ALPHABET_FIRST_BYTE) -> np.ndarray:
        if symbols is None or count == 0:
            return np.zeros((0, self.seq_len), TOKEN_DTYPE)
        return (symbols + BYTE_OFFSET + first_byte).astype(TOKEN_DTYPE)

    def _markov(self, rngs: list[np.random.Generator]) -> np.ndarray | None:
        if not rngs:
            return None
        uniforms = np.stack([rng.random(self.seq_len) for rng in rngs])
        out = np.empty(uniforms.shape, dtype=np.int64)
        out[:, 0] = (uniforms[:, 0] * ALPHABET_SIZE).astype(np.int64)
        # One vectorized draw per position over all rows: which successor follows.
        choice = (uniforms[:, 1:, None] > self._cumulative[None, None, :]).sum(-1)
        for t in range(1, self.seq_len):
            out[:, t] = self._successors[out[:, t - 1], choice[:, t - 1]]
        return out

    def _patterns(self, rngs: list[np.random.Generator]) -> np.ndarray | None:
        if not rngs:
            return None
        rows = []
        low, high = MOTIF_LENGTHS
        for rng in rngs:
            motif = rng.integers(0, ALPHABET_SIZE, size=int(rng.integers(low, high + 1)))
            reps = -(-self.seq_len // len(motif))
            rows.append(np.tile(motif, reps)[: self.seq_len])
        return np.stack(rows)
