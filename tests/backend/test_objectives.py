"""Batch builders and losses of causal LM, masked LM (BERT) and span corruption (T5)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from genaisdk.backend.jax import objectives  # noqa: E402
from genaisdk.backend.jax.precision import Policy  # noqa: E402
from genaisdk.backend.jax.tokenizer import BYTE_OFFSET, BYTE_VOCAB, EOS_ID, MASK_ID, PAD_ID  # noqa: E402

VOCAB = 384


def _rows(rows: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(BYTE_OFFSET, BYTE_VOCAB, size=(rows, width)).astype(np.int32)


def test_records_name_these_factories(registry):
    for name, factory in [
        ("causal-lm", "causal_lm"),
        ("masked-lm", "masked_lm"),
        ("span-corruption", "span_corruption"),
    ]:
        assert registry.get("objectives", name).jax_loss == f"genaisdk.backend.jax.objectives:{factory}"


def test_causal_lm_predicts_the_next_token():
    tokens = _rows(3, 8)
    tokens[2, 5:] = PAD_ID
    batch = objectives.causal_lm(vocab_size=VOCAB).make_batch(tokens)
    np.testing.assert_array_equal(batch["inputs"], tokens)
    np.testing.assert_array_equal(batch["targets"][:, :-1], tokens[:, 1:])
    assert batch["weights"][:, -1].sum() == 0
    assert batch["weights"][2].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert all(v.dtype == np.int32 for v in batch.values())


def test_masked_lm_masks_fifteen_percent_with_bert_proportions(registry):
    objective = objectives.masked_lm(vocab_size=VOCAB, record=registry.get("objectives", "masked-lm"))
    tokens = _rows(400, 100, seed=1)
    tokens[:, 90:] = PAD_ID
    batch = objective.make_batch(tokens, 7)
    chosen = batch["weights"].astype(bool)
    assert (chosen.sum(1) == round(0.15 * 90)).all()  # exactly 15% of the non-pad positions
    assert not chosen[:, 90:].any()
    np.testing.assert_array_equal(batch["targets"], tokens)
    np.testing.assert_array_equal(batch["inputs"][~chosen], tokens[~chosen])
    masked = batch["inputs"][chosen] == MASK_ID
    kept = batch["inputs"][chosen] == tokens[chosen]
    replaced = ~masked & ~kept
    n = chosen.sum()
    # 80/10/10, within 3 standard errors (a random token equal to the original counts as kept).
    assert abs(masked.mean() - 0.8) < 3 * np.sqrt(0.16 / n)
    assert abs(replaced.mean() - 0.1) < 3 * np.sqrt(0.09 / n) + 0.001
    assert ((batch["inputs"][chosen][replaced] >= BYTE_OFFSET) & (batch["inputs"][chosen][replaced] < BYTE_VOCAB)).all()
    again = objective.make_batch(tokens, 7)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)


def _reconstruct(inputs: np.ndarray, targets: np.ndarray, vocab: int) -> list[int]:
    """Undo span corruption: put each sentinel's span back where the sentinel stands."""
    spans: dict[int, list[int]] = {}
    current = None
    for t in targets:
        if t == EOS_ID:
            break
        if t >= BYTE_VOCAB:
            current = int(t)
            spans[current] = []
        else:
            spans[current].append(int(t))
    out: list[int] = []
    for t in inputs:
        if t == EOS_ID:
            break
        out.extend(spans[int(t)] if t >= BYTE_VOCAB else [int(t)])
    return out


def test_span_corruption_round_trips_and_fills_the_encoder(registry):
    objective = objectives.span_corruption(vocab_size=VOCAB, record=registry.get("objectives", "span-corruption"))
    seq = 64
    width = objective.row_length(seq)
    assert width > seq  # the raw row is longer than what the encoder sees
    tokens = _rows(20, width, seed=3)
    batch = objective.make_batch(tokens, 11)
    shapes = objective.batch_shapes(20, seq)
    assert {k: v.shape for k, v in batch.items()} == shapes
    noise = round(0.15 * width)
    spans = round(noise / 3)
    for r in range(20):
        assert _reconstruct(batch["inputs"][r], batch["targets"][r], VOCAB) == tokens[r].tolist()
        sentinels = batch["targets"][r][batch["targets"][r] >= BYTE_VOCAB]
        assert sentinels.tolist() == [VOCAB - 1 - i for i in range(spans)]
        assert (batch["inputs"][r] != PAD_ID).sum() <= seq
        assert batch["weights"][r].sum() == noise + spans + 1
    np.testing.assert_array_equal(batch["decoder_inputs"][:, 1:], batch["targets"][:, :-1])
    assert (batch["decoder_inputs"][:, 0] == PAD_ID).all()
    # T5's sizes (Raffel et al. 2020, Sec. 3.1.4): 568 raw tokens fill 512 encoder positions, 114 targets.
    assert objective.row_length(512) == 568 and objective.target_length(512) == 114


def test_span_corruption_needs_room_for_sentinels():
    objective = objectives.span_corruption(vocab_size=BYTE_VOCAB + 2)
    with pytest.raises(ValueError, match="sentinel"):
        objective.make_batch(_rows(1, objective.row_length(64)), 0)


def test_span_corruption_checks_the_vocabulary_before_any_batch():
    # Raised where the run learns its row length, as an error `genai train` reports in one line.
    from genaisdk.backend.jax.config import BackendError

    objective = objectives.span_corruption(vocab_size=BYTE_VOCAB + 3)
    with pytest.raises(BackendError, match="needs 14 sentinel ids .* has 3: raise model.vocab"):
        objective.row_length(256)
    with pytest.raises(BackendError, match="at least 4 tokens"):
        objective.row_length(3)


def test_loss_is_weighted_mean_token_cross_entropy():
    objective = objectives.causal_lm(vocab_size=5)
    logits = jnp.log(jnp.asarray([[[0.1, 0.2, 0.3, 0.3, 0.1]] * 3]))
    batch = {
        "inputs": jnp.zeros((1, 3), jnp.int32),
        "targets": jnp.asarray([[2, 4, 0]], jnp.int32),
        "weights": jnp.asarray([[1, 1, 0]], jnp.int32),
    }
    loss, aux = objective.loss(lambda p, i, d, policy: logits, None, batch, Policy(name="fp32"))
    assert float(aux["tokens"]) == 2.0
    assert float(loss) == pytest.approx(-(np.log(0.3) + np.log(0.1)) / 2, rel=1e-6)
