"""The byte-level tokenizer: id layout, round trips, sentinels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genaisdk.backend.jax.tokenizer import (
    BYTE_OFFSET,
    BYTE_VOCAB,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    ByteTokenizer,
)


def test_id_layout_follows_byt5():
    tok = ByteTokenizer(vocab_size=384)
    assert (tok.pad_id, tok.eos_id, tok.mask_id) == (PAD_ID, EOS_ID, MASK_ID) == (0, 1, 2)
    assert list(tok.encode(b"\x00\xff")) == [BYTE_OFFSET, BYTE_OFFSET + 255]
    assert BYTE_VOCAB == 259
    assert tok.num_sentinels == 384 - 259
    assert tok.sentinel(0) == 383 and tok.sentinel(1) == 382
    assert list(tok.sentinel_ids(3)) == [383, 382, 381]


@given(st.text())
def test_round_trip_any_text(text):
    tok = ByteTokenizer(vocab_size=512)
    ids = tok.encode(text, eos=True)
    assert ids[-1] == EOS_ID
    assert len(ids) == len(text.encode("utf-8")) + 1
    assert tok.decode(ids) == text


def test_decode_drops_specials_and_sentinels():
    tok = ByteTokenizer(vocab_size=300)
    ids = np.concatenate([[PAD_ID, MASK_ID], tok.encode("ab"), [tok.sentinel(0), EOS_ID]])
    assert tok.decode(ids) == "ab"
    assert tok.is_special(ids).tolist() == [True, True, False, False, True, True]


def test_documents_are_separated_by_eos():
    tok = ByteTokenizer()
    stream = tok.encode_documents(["hi", b"yo"])
    assert stream.tolist() == [ord("h") + 3, ord("i") + 3, EOS_ID, ord("y") + 3, ord("o") + 3, EOS_ID]


def test_too_small_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 259"):
        ByteTokenizer(vocab_size=256)
    with pytest.raises(ValueError, match="has 0 sentinels"):
        ByteTokenizer(vocab_size=259).sentinel(0)


@pytest.mark.parametrize(
    ("name", "text", "over"),
    [
        ("gpt2", "The café costs 5€ — 東京.", 0),  # byte-level BPE: exact, multi-byte pieces included
        ("llama", "The café costs 5€ — 東京.", 0),
        ("t5", "the licensee may copy the program.", 1),  # SentencePiece: the prefixed space
        ("bert", "the licensee may copy the program.", 1),  # WordPiece: the first word's space
    ],
)
def test_token_bytes_spell_the_texts_utf8_bytes(name, text, over):
    """The bits-per-byte denominator: the bytes a text's tokens spell are the text's UTF-8
    bytes (decoding a piece of a multi-byte character alone would count U+FFFD, 3 bytes)."""
    from pathlib import Path

    from genaisdk.backend.jax.evaluate import token_bytes
    from genaisdk.backend.jax.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(Path(__file__).resolve().parents[1] / "fixtures" / "hf" / name)
    ids = tokenizer.encode_documents([text])
    assert int(token_bytes(tokenizer)[ids].sum()) == len(text.encode("utf-8")) + over
