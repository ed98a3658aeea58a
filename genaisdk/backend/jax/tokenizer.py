"""The built-in byte-level tokenizer: every UTF-8 byte is a token, plus a few special ids.

Byte-level tokenization needs no trained vocabulary file, never meets an unknown word and
works for any language, which is what a self-contained training backend wants (Xue et al.
2022, "ByT5: Towards a token-free future with pre-trained byte-to-byte models", Sec. 3.1).
The id layout follows ByT5:

=========================  ==========================================================
id                         meaning
=========================  ==========================================================
0                          ``PAD``: padding; positions holding it carry no loss
1                          ``EOS``: end of a document; packing puts one after each
2                          ``MASK``: the masked-LM corruption token (BERT's ``[MASK]``)
3 .. 258                   the bytes 0x00 .. 0xFF (byte ``b`` is id ``b + 3``)
259 .. vocab-1             span-corruption sentinels, counted down from the top:
                           sentinel ``i`` is id ``vocab - 1 - i`` (T5/ByT5 convention)
=========================  ==========================================================

The model's vocabulary may be larger than 259 (rounded up for efficient matrix shapes);
the ids above 258 are the sentinels the span-corruption objective draws on.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import numpy as np

PAD_ID = 0
EOS_ID = 1
MASK_ID = 2
BYTE_OFFSET = 3
"""Id of byte 0x00; byte ``b`` is id ``b + BYTE_OFFSET``."""
BYTE_VOCAB = BYTE_OFFSET + 256
"""The smallest vocabulary that holds every byte and the three specials (259)."""

TOKEN_DTYPE = np.int32


def _vocab_ok(instance: ByteTokenizer, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or value < BYTE_VOCAB:
        raise ValueError(
            f"the byte tokenizer needs a vocabulary of at least {BYTE_VOCAB} ids "
            f"(256 bytes + pad, eos, mask), got {value!r}; set `model {{ vocab = 384 }}` or larger"
        )


@attrs.frozen(kw_only=True)
class ByteTokenizer:
    """UTF-8 bytes to ids and back, for a model whose vocabulary has `vocab_size` ids."""

    vocab_size: int = attrs.field(default=BYTE_VOCAB, validator=_vocab_ok)

    pad_id: int = attrs.field(default=PAD_ID, init=False)
    eos_id: int = attrs.field(default=EOS_ID, init=False)
    mask_id: int = attrs.field(default=MASK_ID, init=False)

    @property
    def num_sentinels(self) -> int:
        """How many span-corruption sentinels the vocabulary leaves room for."""
        return self.vocab_size - BYTE_VOCAB

    def sentinel(self, index: int) -> int:
        """Id of sentinel `index` (0-based): ``vocab_size - 1 - index``."""
        if not 0 <= index < self.num_sentinels:
            raise ValueError(
                f"sentinel {index} does not exist: a vocabulary of {self.vocab_size} ids "
                f"has {self.num_sentinels} sentinels"
            )
        return self.vocab_size - 1 - index

    def sentinel_ids(self, count: int) -> np.ndarray:
        """Ids of sentinels 0 .. count-1, in order."""
        if count > self.num_sentinels:
            raise ValueError(
                f"{count} sentinels requested but a vocabulary of {self.vocab_size} ids "
                f"has only {self.num_sentinels}"
            )
        return (self.vocab_size - 1 - np.arange(count)).astype(TOKEN_DTYPE)

    def encode(self, text: str | bytes, *, eos: bool = False) -> np.ndarray:
        """Token ids of `text` (str is encoded as UTF-8), optionally followed by EOS."""
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids = np.frombuffer(raw, dtype=np.uint8).astype(TOKEN_DTYPE) + BYTE_OFFSET
        if eos:
            ids = np.append(ids, TOKEN_DTYPE(EOS_ID))
        return ids

    def encode_documents(self, documents: Iterable[str | bytes]) -> np.ndarray:
        """One flat stream: each document's ids followed by EOS (the packing input)."""
        parts = [self.encode(doc, eos=True) for doc in documents]
        return np.concatenate(parts) if parts else np.zeros((0,), TOKEN_DTYPE)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """Text of the byte ids in `ids`; specials are dropped, invalid UTF-8 is replaced."""
        array = np.asarray(ids, dtype=np.int64).reshape(-1)
        is_byte = (array >= BYTE_OFFSET) & (array < BYTE_VOCAB)
        return (array[is_byte] - BYTE_OFFSET).astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask of ids that are not bytes (pad, eos, mask, sentinels)."""
        ids = np.asarray(ids)
        return (ids < BYTE_OFFSET) | (ids >= BYTE_VOCAB)
