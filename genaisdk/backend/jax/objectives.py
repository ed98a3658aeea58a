"""Pretraining objectives: a host-side batch builder and a loss, per objective.

The `Objective.jax_loss` path of each built-in record names one of the factories here
(`causal_lm`, `masked_lm`, `span_corruption`); `factory(vocab_size=..., record=...)` returns
an objective object with:

- `row_length(seq_len) -> int`: how many packed tokens one row of `make_batch`'s input
  holds so that the model sees `seq_len` positions (span corruption reads more raw tokens
  than the encoder sees, since each corrupted span shrinks to one sentinel);
- `make_batch(tokens, rng) -> dict[str, np.ndarray]`: numpy, on the host, deterministic for
  a seed; every array is int32 with `tokens.shape[0]` rows; `weights` marks the positions
  that carry loss. Causal LM also takes `loss_mask=` (same shape as `tokens`, 1 where a
  token is to be learned: the response of a chat example), which zeroes the weight of
  every position whose target is not to be learned; the other objectives refuse one;
- `batch_shapes(rows, seq_len) -> dict[str, tuple]`: the shapes `make_batch` produces (for
  abstract compilation);
- `loss_sum(model_apply, params, batch, policy) -> (sum, tokens)`: summed token
  cross-entropy (fp32) and the number of loss-carrying tokens; the train step divides by
  the global token count so that micro-batches and devices weigh every token equally;
- `loss(model_apply, params, batch, policy) -> (loss, aux)`: the mean, with
  aux = {'loss_sum', 'tokens'};
- `mask_padding(batch, real) -> batch`: the batch of `make_batch(tokens)` with no loss on
  any position whose target is padding, `real` ([rows, width], 1 on the real tokens of
  `tokens`) saying which are, whatever id fills them (a tokenizer may have no PAD, or use
  its EOS as PAD, as Qwen2's does); span corruption reads whole rows only and refuses.

Token ids follow a `TokenLayout` (`genaisdk.backend.jax.tokenizer`), by default the byte
tokenizer's: PAD 0 carries no loss and is never corrupted; MASK 2; span sentinels count
down from the top of the vocab. A checkpoint's tokenizer brings its own (`ids=` of each
factory): its PAD (or none), [MASK], and T5's <extra_id_i> sentinels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from genaisdk.backend.jax.config import BackendError
from genaisdk.backend.jax.precision import Policy
from genaisdk.backend.jax.tokenizer import BYTE_VOCAB, TokenLayout
from genaisdk.records import Objective

Batch = dict[str, np.ndarray]


class ObjectiveError(BackendError, ValueError):
    """A sequence length or vocabulary the objective cannot build batches for (the user's
    settings, so `genai train` reports it without a traceback)."""


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_rows(tokens: np.ndarray, width: int, name: str) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != width:
        raise ValueError(f"{name} builds batches from rows of {width} tokens; got an array of shape {tokens.shape}")
    return tokens.astype(np.int32, copy=False)


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Summed −log softmax(logits)[target] over positions with weight, and the weight sum.

    Computed in fp32 as logsumexp(logits) − logits[target] (the log-softmax identity), so
    the full softmax is never materialized in a low-precision dtype.
    """
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    w = weights.astype(jnp.float32)
    return jnp.sum((lse - target_logit) * w), jnp.sum(w)


@attrs.frozen(kw_only=True)
class _Base:
    vocab_size: int
    name: str = ""
    ids: TokenLayout = attrs.field(factory=TokenLayout)

    def loss_sum(self, model_apply: Callable, params: Any, batch: dict, policy: Policy) -> tuple[jax.Array, jax.Array]:
        logits = model_apply(params, batch["inputs"], batch.get("decoder_inputs"), policy=policy)
        return token_cross_entropy(logits, batch["targets"], batch["weights"])

    def loss(self, model_apply: Callable, params: Any, batch: dict, policy: Policy) -> tuple[jax.Array, dict]:
        total, tokens = self.loss_sum(model_apply, params, batch, policy)
        return total / jnp.maximum(tokens, 1.0), {"loss_sum": total, "tokens": tokens}

    def row_length(self, seq_len: int) -> int:
        return seq_len

    def _no_loss_mask(self, loss_mask: np.ndarray | None) -> None:
        if loss_mask is not None:
            raise ObjectiveError(
                f"prompt/response and chat examples train a causal language model; {self.name} has no "
                "response to learn: use JSON lines with a \"text\" field or plain text files"
            )

    def batch_shapes(self, rows: int, seq_len: int) -> dict[str, tuple[int, ...]]:
        return {key: (rows, seq_len) for key in ("inputs", "targets", "weights")}

    def mask_padding(self, batch: Batch, real: np.ndarray) -> Batch:
        """`batch` with zero weight where the target is padding (`real` 0): here the target
        of position i is token i (masked LM predicts tokens where they stand)."""
        return {**batch, "weights": batch["weights"] * (np.asarray(real) != 0).astype(batch["weights"].dtype)}


@attrs.frozen(kw_only=True)
class CausalLM(_Base):
    """Next-token prediction (Radford et al. 2018): target i is token i+1.

    A row of `seq_len` packed tokens gives `seq_len` inputs; the last position has no next
    token in the row and carries no loss, nor do positions whose target is PAD (unless the
    tokenizer's PAD is its EOS, as Qwen2's is: EOS targets are learned).

    With a `loss_mask` (chat examples), position i carries loss only where token i+1 is
    masked in: the loss is the mean negative log-likelihood of the response tokens given
    everything before them, and prompt and padding targets add nothing.
    """

    name: str = "causal-lm"

    def make_batch(
        self, tokens: np.ndarray, rng: np.random.Generator | int | None = None, *, loss_mask: np.ndarray | None = None
    ) -> Batch:
        tokens = np.asarray(tokens).astype(np.int32, copy=False)
        if tokens.ndim != 2:
            raise ValueError(f"causal-lm builds batches from [rows, seq] tokens; got shape {tokens.shape}")
        pad = self.ids.pad
        targets = np.full_like(tokens, pad if pad is not None else 0)
        targets[:, :-1] = tokens[:, 1:]
        weights = np.ones_like(tokens)
        weights[:, -1] = 0
        if loss_mask is not None:
            loss_mask = np.asarray(loss_mask)
            if loss_mask.shape != tokens.shape:
                raise ValueError(f"the loss mask has shape {loss_mask.shape}, the tokens {tokens.shape}")
            # The mask says which tokens to learn; they are the targets of the position before.
            weights[:, :-1] &= (loss_mask[:, 1:] != 0).astype(np.int32)
        elif pad is not None and pad != self.ids.eos:
            weights &= (targets != pad).astype(np.int32)
        return {"inputs": tokens, "targets": targets, "weights": weights}

    def mask_padding(self, batch: Batch, real: np.ndarray) -> Batch:
        """`batch` with zero weight where the target is padding (`real` 0): the target of
        position i is token i + 1, so a row's last real token predicts nothing either."""
        weights = np.array(batch["weights"], copy=True)
        weights[:, :-1] *= (np.asarray(real)[:, 1:] != 0).astype(weights.dtype)
        weights[:, -1] = 0
        return {**batch, "weights": weights}


@attrs.frozen(kw_only=True)
class MaskedLM(_Base):
    """BERT's masked language model (Devlin et al. 2019, Sec. 3.1, Task #1).

    `noise_density` (15%) of each row's non-PAD positions, exactly rounded, are chosen; a
    chosen token becomes MASK with probability 0.8, a random byte token with 0.1, and stays
    itself with 0.1. Loss is on the chosen positions only, predicting the original token.
    """

    name: str = "masked-lm"
    noise_density: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1

    def make_batch(
        self, tokens: np.ndarray, rng: np.random.Generator | int | None = None, *, loss_mask: np.ndarray | None = None
    ) -> Batch:
        self._no_loss_mask(loss_mask)
        gen = _generator(rng)
        tokens = np.asarray(tokens).astype(np.int32, copy=False)
        if tokens.ndim != 2:
            raise ValueError(f"masked-lm builds batches from [rows, seq] tokens; got shape {tokens.shape}")
        if self.ids.mask is None:
            raise ObjectiveError("masked-lm needs a [MASK] token; the tokenizer has none (set mask_token in tokenizer_config.json)")
        eligible = tokens != self.ids.pad if self.ids.pad is not None else np.ones(tokens.shape, bool)
        counts = np.rint(eligible.sum(1) * self.noise_density).astype(np.int64)
        counts = np.where(eligible.any(1), np.maximum(counts, 1), 0)
        # Rank the eligible positions of each row in a random order; the first `count` are chosen.
        keys = np.where(eligible, gen.random(tokens.shape), np.inf)
        ranks = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
        chosen = ranks < counts[:, None]
        action = gen.random(tokens.shape)
        low, high = self.ids.regular
        random_tokens = gen.integers(low, min(high, self.vocab_size), size=tokens.shape, dtype=np.int32)
        inputs = tokens.copy()
        inputs[chosen & (action < self.mask_prob)] = self.ids.mask
        swap = chosen & (action >= self.mask_prob) & (action < self.mask_prob + self.random_prob)
        inputs[swap] = random_tokens[swap]
        return {"inputs": inputs, "targets": tokens.copy(), "weights": chosen.astype(np.int32)}


def _random_segmentation(total: int, pieces: int, gen: np.random.Generator) -> np.ndarray:
    """Lengths of `pieces` non-empty segments summing to `total`, uniformly at random."""
    cuts = np.sort(gen.choice(np.arange(1, total), size=pieces - 1, replace=False)) if pieces > 1 else np.array([], int)
    edges = np.concatenate([[0], cuts, [total]])
    return np.diff(edges)


@attrs.frozen(kw_only=True)
class SpanCorruption(_Base):
    """T5's span corruption (Raffel et al. 2020, Sec. 3.1.4 and 3.3.4).

    Of each raw row of `row_length(seq_len)` tokens, round(noise_density × length) tokens,
    in round(noise / mean_span) spans, are corrupted: spans and the kept stretches between
    them get random non-empty lengths, and the row starts with a kept stretch. The encoder
    input is the row with span i replaced by sentinel i, then EOS; the decoder target is
    sentinel i followed by span i's tokens, for every span, then EOS; the decoder input is
    the target shifted right behind a PAD start token. The raw length is the largest whose
    corrupted encoder input (with EOS) fits `seq_len`, so no encoder position is wasted
    (T5's `random_spans_helper`).
    """

    name: str = "span-corruption"
    noise_density: float = 0.15
    mean_span: float = 3.0

    def _counts(self, length: int) -> tuple[int, int]:
        noise = int(round(length * self.noise_density))
        noise = min(max(noise, 1), length - 1)
        spans = max(1, int(round(noise / self.mean_span)))
        return noise, spans

    def _input_target_lengths(self, length: int) -> tuple[int, int]:
        noise, spans = self._counts(length)
        return length - noise + spans + 1, noise + spans + 1

    def row_length(self, seq_len: int) -> int:
        """Raw tokens per row for `seq_len` encoder positions; raises ObjectiveError when the
        vocabulary has too few sentinel ids for that row's spans (checked here, before any
        batch is built)."""
        if seq_len < 4:
            raise ObjectiveError(f"span corruption needs sequences of at least 4 tokens, got {seq_len}")
        length = seq_len
        while self._input_target_lengths(length + 1)[0] <= seq_len:
            length += 1
        while length > 2 and self._input_target_lengths(length)[0] > seq_len:
            length -= 1
        self._check_sentinels(length)
        return length

    def _check_sentinels(self, width: int) -> None:
        spans = self._counts(width)[1]
        if self.ids.sentinel_count is not None:
            if spans > self.ids.sentinel_count:
                raise ObjectiveError(
                    f"span corruption of {width}-token rows needs {spans} sentinel ids; the tokenizer has "
                    f"{self.ids.sentinel_count} (<extra_id_i>): shorten the context"
                )
            return
        if self.vocab_size - spans < BYTE_VOCAB:
            raise ObjectiveError(
                f"span corruption of {width}-token rows needs {spans} sentinel ids above the byte "
                f"range; a vocabulary of {self.vocab_size} has {max(0, self.vocab_size - BYTE_VOCAB)}: "
                "raise model.vocab or shorten the context"
            )

    def mask_padding(self, batch: Batch, real: np.ndarray) -> Batch:
        """Span corruption reads whole rows of real tokens: padding would be corrupted as text."""
        raise ObjectiveError("span corruption reads whole rows of text; a padded row cannot be corrupted")

    def target_length(self, seq_len: int) -> int:
        return self._input_target_lengths(self.row_length(seq_len))[1]

    def batch_shapes(self, rows: int, seq_len: int) -> dict[str, tuple[int, ...]]:
        target = self.target_length(seq_len)
        return {
            "inputs": (rows, seq_len),
            "decoder_inputs": (rows, target),
            "targets": (rows, target),
            "weights": (rows, target),
        }

    def make_batch(
        self,
        tokens: np.ndarray,
        rng: np.random.Generator | int | None = None,
        *,
        seq_len: int | None = None,
        loss_mask: np.ndarray | None = None,
    ) -> Batch:
        """`tokens` is [rows, row_length(seq_len)]; `seq_len` defaults to the largest
        encoder length whose row length equals the given width."""
        self._no_loss_mask(loss_mask)
        gen = _generator(rng)
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"span-corruption builds batches from [rows, length] tokens; got shape {tokens.shape}")
        width = tokens.shape[1]
        if seq_len is None:
            seq_len = self._input_target_lengths(width)[0]
        tokens = _check_rows(tokens, self.row_length(seq_len), "span-corruption")
        noise, spans = self._counts(width)
        ids = self.ids
        if ids.pad is None or ids.eos is None:
            raise ObjectiveError("span corruption needs the tokenizer's pad and EOS ids; it has none")
        first_sentinel = (ids.sentinel_top if ids.sentinel_top is not None else self.vocab_size) - 1
        target_len = noise + spans + 1
        rows = tokens.shape[0]
        inputs = np.full((rows, seq_len), ids.pad, np.int32)
        targets = np.full((rows, target_len), ids.pad, np.int32)
        sentinels = first_sentinel - np.arange(spans, dtype=np.int32)
        for r in range(rows):
            noise_lengths = _random_segmentation(noise, spans, gen)
            keep_lengths = _random_segmentation(width - noise, spans, gen)
            enc: list[np.ndarray] = []
            dec: list[np.ndarray] = []
            pos = 0
            for i in range(spans):
                enc.append(tokens[r, pos : pos + keep_lengths[i]])
                pos += keep_lengths[i]
                enc.append(sentinels[i : i + 1])
                dec.append(sentinels[i : i + 1])
                dec.append(tokens[r, pos : pos + noise_lengths[i]])
                pos += noise_lengths[i]
            enc.append(np.array([ids.eos], np.int32))
            dec.append(np.array([ids.eos], np.int32))
            enc_row, dec_row = np.concatenate(enc), np.concatenate(dec)
            inputs[r, : len(enc_row)] = enc_row
            targets[r, : len(dec_row)] = dec_row
        start = ids.decoder_start if ids.decoder_start is not None else ids.pad
        decoder_inputs = np.full_like(targets, start)
        decoder_inputs[:, 1:] = targets[:, :-1]
        return {
            "inputs": inputs,
            "decoder_inputs": decoder_inputs,
            "targets": targets,
            "weights": (targets != ids.pad).astype(np.int32),
        }


def causal_lm(*, vocab_size: int, record: Objective | None = None, ids: TokenLayout | None = None) -> CausalLM:
    return CausalLM(vocab_size=vocab_size, ids=ids or TokenLayout())


def masked_lm(*, vocab_size: int, record: Objective | None = None, ids: TokenLayout | None = None) -> MaskedLM:
    density = record.noise_density if record is not None and record.noise_density > 0 else 0.15
    return MaskedLM(vocab_size=vocab_size, noise_density=density, ids=ids or TokenLayout())


def span_corruption(*, vocab_size: int, record: Objective | None = None, ids: TokenLayout | None = None) -> SpanCorruption:
    density = record.noise_density if record is not None and record.noise_density > 0 else 0.15
    span = record.mean_span if record is not None and record.mean_span > 1 else 3.0
    return SpanCorruption(vocab_size=vocab_size, noise_density=density, mean_span=span, ids=ids or TokenLayout())
