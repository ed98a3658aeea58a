"""Tokenizers behind one interface: the built-in byte tokenizer, Hugging Face `tokenizers`
files (`tokenizer.json`) and SentencePiece models (`*.model`).

Every tokenizer has the attributes and methods of `Tokenizer` (the protocol below):
`vocab_size`, the special ids (`pad_id`, `eos_id`, `bos_id`, `mask_id`, any of which may be
None), `stop_ids` (every id that ends generation: Llama 3 lists three), `encode(text, *,
bos=..., eos=...)`, `encode_documents(texts)` (the packing input: each document with the
BOS the model expects and an EOS after it), `decode(ids)`, `sentinel_ids(count)` (span
corruption), `files` and `save(folder)` (export).

BOS/EOS policy, made explicit: `encode` adds exactly what its `bos`/`eos` arguments say
(default: what the checkpoint's own tokenizer adds, read from its post-processor, not
from the `add_bos_token` flag that fast tokenizers ignore, transformers #30947). Packing
always ends a document with EOS, since GPT-2's tokenizer adds none (llm-foundry #199), and
never doubles a BOS the text already starts with.

`load_tokenizer(path)` picks the backend from what `path` is (a tokenizer.json, a
SentencePiece .model, or a checkpoint folder holding one). `check_vocabulary` compares a
tokenizer with the model's embedding rows: more ids than rows is an error; fewer is padding
(T5 keeps 28 spare rows), allowed and reported.

The built-in byte-level tokenizer: every UTF-8 byte is a token, plus a few special ids.

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

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


class TokenizerError(ValueError):
    """A tokenizer file that cannot be read, or that does not fit the model (one line naming
    the file; a user error, shown without a traceback)."""


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer offers (see the module docstring)."""

    vocab_size: int
    pad_id: int | None
    eos_id: int | None
    bos_id: int | None
    mask_id: int | None
    stop_ids: tuple[int, ...]
    name: str

    def encode(self, text: str | bytes, *, bos: bool | None = None, eos: bool | None = None) -> np.ndarray: ...

    def encode_documents(self, documents: Iterable[str | bytes]) -> np.ndarray: ...

    def decode(self, ids: Iterable[int] | np.ndarray) -> str: ...

    def sentinel_ids(self, count: int) -> np.ndarray: ...

    @property
    def files(self) -> tuple[Path, ...]: ...

    def save(self, folder: str | Path) -> list[Path]: ...


@attrs.frozen(kw_only=True)
class ByteTokenizer:
    """UTF-8 bytes to ids and back, for a model whose vocabulary has `vocab_size` ids."""

    vocab_size: int = attrs.field(default=BYTE_VOCAB, validator=_vocab_ok)

    pad_id: int = attrs.field(default=PAD_ID, init=False)
    eos_id: int = attrs.field(default=EOS_ID, init=False)
    mask_id: int = attrs.field(default=MASK_ID, init=False)
    bos_id: None = attrs.field(default=None, init=False)
    stop_ids: tuple[int, ...] = attrs.field(default=(EOS_ID,), init=False)
    name: str = attrs.field(default="byte", init=False)

    @property
    def files(self) -> tuple[Path, ...]:
        """The byte tokenizer needs no file."""
        return ()

    def save(self, folder: str | Path) -> list[Path]:
        return []

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each id spells, [vocab_size] int: 1 for a byte id, 0 for a special
        (the denominator of bits per byte)."""
        lengths = np.zeros(self.vocab_size, np.int64)
        lengths[BYTE_OFFSET:BYTE_VOCAB] = 1
        return lengths

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

    def encode(self, text: str | bytes, *, bos: bool | None = None, eos: bool | None = False) -> np.ndarray:
        """Token ids of `text` (str is encoded as UTF-8), optionally followed by EOS (the
        byte tokenizer has no BOS)."""
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


# ----------------------------------------------------------------------------- file tokenizers

TOKENIZER_JSON = "tokenizer.json"
SENTENCEPIECE_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
TOKENIZER_CONFIG = "tokenizer_config.json"
SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
"""Files copied along with the tokenizer on export (transformers reads them)."""
T5_EXTRA_IDS = 100
"""T5Tokenizer's default sentinel count (`extra_ids`), ids <extra_id_0> = top of the vocab
counting down (Raffel et al. 2020, Sec. 3.1.4)."""


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _piece_bytes(piece: str) -> int:
    """Bytes a SentencePiece piece spells: ``<0xNN>`` (byte fallback) one, else its UTF-8
    with each U+2581 as the space it stands for (Kudo & Richardson 2018, Sec. 3.1). The
    space a tokenizer prefixes to a text is counted too, one byte per text at most."""
    if _BYTE_PIECE.fullmatch(piece):
        return 1
    return len(piece.replace("\u2581", " ").encode("utf-8"))


def _dedup_bos(ids: np.ndarray, bos: int | None) -> np.ndarray:
    """Drop a BOS doubled by text that already starts with one (a chat template's)."""
    if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        return ids[1:]
    return ids


class _FileTokenizer:
    """What the two file-backed tokenizers share: the policy and packing."""

    vocab_size: int
    pad_id: int | None
    eos_id: int | None
    bos_id: int | None
    mask_id: int | None
    unk_id: int | None
    stop_ids: tuple[int, ...]
    add_bos: bool
    add_eos: bool
    name: str
    _files: tuple[Path, ...]

    def _ids(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode(self, text: str | bytes, *, bos: bool | None = None, eos: bool | None = None) -> np.ndarray:
        """Ids of `text` with a BOS / EOS where asked (None: the checkpoint's own policy)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        ids = self._ids(text)
        if (self.add_bos if bos is None else bos) and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        if (self.add_eos if eos is None else eos) and self.eos_id is not None:
            ids = [*ids, self.eos_id]
        return _dedup_bos(np.asarray(ids, dtype=TOKEN_DTYPE), self.bos_id)

    def encode_documents(self, documents: Iterable[str | bytes]) -> np.ndarray:
        """One flat stream: each document with the tokenizer's BOS policy and an EOS after it."""
        parts = [self.encode(doc, eos=self.eos_id is not None) for doc in documents]
        return np.concatenate(parts) if parts else np.zeros((0,), TOKEN_DTYPE)

    @property
    def files(self) -> tuple[Path, ...]:
        return self._files

    def save(self, folder: str | Path) -> list[Path]:
        """Copies the tokenizer's files into `folder` (for export); returns the copies."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for path in self._files:
            target = folder / path.name
            if path.resolve() != target.resolve():
                shutil.copyfile(path, target)
            out.append(target)
        return out

    def describe(self) -> str:
        specials = ", ".join(
            f"{name} {value}" for name, value in (("bos", self.bos_id), ("eos", self.eos_id), ("pad", self.pad_id)) if value is not None
        )
        policy = "+".join(p for p, on in (("bos", self.add_bos), ("eos", self.add_eos)) if on) or "none"
        return f"{self.name} ({self.vocab_size} ids; {specials or 'no special ids'}; adds {policy})"


class HFTokenizer(_FileTokenizer):
    """A Hugging Face `tokenizers` file (tokenizer.json: BPE, WordPiece or Unigram).

    Special tokens come from tokenizer_config.json (`bos_token`, `eos_token`, ...) where
    present, else from `ids` (the model config's token ids). The default BOS/EOS policy is
    what the file's post-processor adds, found by encoding a probe with and without
    special tokens."""

    def __init__(self, path: str | Path, *, ids: Any = None):
        from tokenizers import Tokenizer as _Tokenizer

        path = Path(path)
        try:
            self._tok = _Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise TokenizerError(f"{path}: not a Hugging Face tokenizer file ({str(exc).splitlines()[0] if str(exc) else exc})") from None
        folder = path.parent
        config = _read_json(folder / TOKENIZER_CONFIG)
        specials = _read_json(folder / "special_tokens_map.json")
        self.name = f"tokenizers:{path.name}"
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

        def special(key: str, fallback: int | None) -> int | None:
            text = _token_text(config.get(key)) or _token_text(specials.get(key))
            if text is not None:
                found = self._tok.token_to_id(text)
                if found is not None:
                    return int(found)
            return fallback

        self.bos_id = special("bos_token", getattr(ids, "bos", None))
        eos_ids = tuple(getattr(ids, "eos", ()) or ())
        self.eos_id = special("eos_token", eos_ids[0] if eos_ids else None)
        self.pad_id = special("pad_token", getattr(ids, "pad", None))
        self.mask_id = special("mask_token", None)
        self.unk_id = special("unk_token", None)
        self.stop_ids = tuple(dict.fromkeys([*eos_ids, *([self.eos_id] if self.eos_id is not None else [])]))
        probe = "a"
        plain = self._tok.encode(probe, add_special_tokens=False).ids
        full = self._tok.encode(probe, add_special_tokens=True).ids
        prefix = full[: full.index(plain[0])] if plain and plain[0] in full else []
        suffix = full[len(prefix) + len(plain) :]
        if prefix and self.bos_id is None:
            self.bos_id = prefix[0]  # BERT's [CLS]
        if suffix and self.eos_id is None:
            self.eos_id = suffix[-1]  # BERT's [SEP]
        self.add_bos = bool(prefix)
        self.add_eos = bool(suffix)
        self._files = tuple(p for p in [path, *(folder / n for n in SIDE_FILES)] if p.is_file())
        # T5's fast tokenizer: <extra_id_0> is the highest id, the others count down from it.
        self.extra_ids = 0
        first = self._tok.token_to_id("<extra_id_0>")
        self.sentinel_top = None if first is None else int(first) + 1
        while first is not None and self._tok.token_to_id(f"<extra_id_{self.extra_ids}>") == first - self.extra_ids:
            self.extra_ids += 1

    def _ids(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        return self._tok.decode([int(i) for i in np.asarray(ids).reshape(-1)], skip_special_tokens=True)

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each id spells, [vocab_size] int (the denominator of bits per byte).

        A byte-level BPE (GPT-2's, Radford et al. 2019, Sec. 2.2; LLaMA 3's, Qwen2's) maps
        every byte to one character of its vocabulary, so a token spells as many bytes as
        it has characters; decoding a token alone would turn a piece of a multi-byte
        character into U+FFFD (3 bytes). Special tokens spell none. SentencePiece pieces
        count by `_piece_bytes`; WordPiece counts a ``##`` piece without its prefix and a
        word with the space before it (its normalizer may have changed the text's bytes:
        lower case, accents stripped); anything else is the token decoded alone."""
        lengths = np.zeros(self.vocab_size, np.int64)
        added = self._tok.get_added_tokens_decoder()
        byte_level = type(self._tok.decoder).__name__ == "ByteLevel"
        word_piece = type(self._tok.decoder).__name__ == "WordPiece"
        prefix = getattr(self._tok.decoder, "prefix", "##")
        for index in range(self.vocab_size):
            token = added.get(index)
            if token is not None:
                lengths[index] = 0 if token.special else len(token.content.encode("utf-8"))
                continue
            piece = self._tok.id_to_token(index)
            if piece is None:
                continue
            if byte_level:
                lengths[index] = len(piece)
            elif "\u2581" in piece or _BYTE_PIECE.fullmatch(piece):
                lengths[index] = _piece_bytes(piece)
            elif word_piece:
                # WordPiece (BERT): "##" continues a word; a word starts after a space,
                # punctuation needs none (the text's first word is counted one byte over).
                rest = piece[len(prefix):] if piece.startswith(prefix) else None
                lengths[index] = len(rest.encode("utf-8")) if rest is not None else len(piece.encode("utf-8")) + piece[:1].isalnum()
            else:
                lengths[index] = len(self.decode([index]).encode("utf-8"))
        return lengths

    def sentinel_ids(self, count: int) -> np.ndarray:
        """`<extra_id_i>` tokens where the file has them (T5's fast tokenizer)."""
        if count > self.extra_ids:
            raise TokenizerError(f"{self.name} has {self.extra_ids} <extra_id_i> sentinel tokens; span corruption needs {count}")
        return (self.sentinel_top - 1 - np.arange(count)).astype(TOKEN_DTYPE)


class SentencePieceTokenizer(_FileTokenizer):
    """A SentencePiece model (`spiece.model` of T5, `tokenizer.model` of LLaMA 1/2), with
    T5's `extra_ids` sentinels above its pieces (tokenizer_config.json's `extra_ids`;
    T5Tokenizer's default is 100). Policy: T5 adds EOS; LLaMA's tokenizer adds BOS
    (`add_bos_token`, default true for LlamaTokenizer); others follow the flags."""

    def __init__(self, path: str | Path, *, ids: Any = None):
        import sentencepiece as spm

        path = Path(path)
        try:
            self._sp = spm.SentencePieceProcessor(model_file=str(path))
        except Exception as exc:  # sentinelpiece raises OSError/RuntimeError for a bad file
            raise TokenizerError(f"{path}: not a SentencePiece model ({str(exc).splitlines()[0] if str(exc) else exc})") from None
        config = _read_json(path.parent / TOKENIZER_CONFIG)
        kind = str(config.get("tokenizer_class", ""))
        t5 = kind.startswith("T5") or path.name == "spiece.model"
        self.extra_ids = int(config.get("extra_ids", T5_EXTRA_IDS if t5 else 0))
        self.pieces = self._sp.get_piece_size()
        self.vocab_size = self.pieces + self.extra_ids
        self.name = f"sentencepiece:{path.name}"

        def own(value: int) -> int | None:
            return value if value >= 0 else None

        self.bos_id = own(self._sp.bos_id())
        self.eos_id = own(self._sp.eos_id())
        self.pad_id = own(self._sp.pad_id())
        if self.pad_id is None and getattr(ids, "pad", None) is not None:
            self.pad_id = ids.pad
        self.unk_id = own(self._sp.unk_id())
        self.mask_id = None
        eos_ids = tuple(getattr(ids, "eos", ()) or ())
        self.stop_ids = tuple(dict.fromkeys([*([self.eos_id] if self.eos_id is not None else []), *eos_ids]))
        llama = kind.startswith("Llama")
        self.add_bos = bool(config.get("add_bos_token", llama)) and self.bos_id is not None
        self.add_eos = bool(config.get("add_eos_token", t5)) and self.eos_id is not None
        self._files = tuple(p for p in [path, *(path.parent / n for n in SIDE_FILES)] if p.is_file())

    def _ids(self, text: str) -> list[int]:
        return list(self._sp.encode(text))

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        array = [int(i) for i in np.asarray(ids).reshape(-1)]
        specials = {self.pad_id, self.eos_id, self.bos_id}
        return self._sp.decode([i for i in array if 0 <= i < self.pieces and i not in specials])

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each id spells, [vocab_size] int (the denominator of bits per byte):
        a piece by `_piece_bytes`, a byte-fallback piece one, control and unknown pieces and
        the sentinels none."""
        lengths = np.zeros(self.vocab_size, np.int64)
        for index in range(self.pieces):
            if self._sp.is_control(index) or self._sp.is_unknown(index) or self._sp.is_unused(index):
                continue
            lengths[index] = 1 if self._sp.is_byte(index) else _piece_bytes(self._sp.id_to_piece(index))
        return lengths

    def sentinel_ids(self, count: int) -> np.ndarray:
        """T5's `<extra_id_i>` = vocab_size - 1 - i."""
        if count > self.extra_ids:
            raise TokenizerError(f"{self.name} has {self.extra_ids} sentinel ids (extra_ids); span corruption needs {count}")
        return (self.vocab_size - 1 - np.arange(count)).astype(TOKEN_DTYPE)


def find_tokenizer_file(folder: str | Path) -> Path | None:
    """The tokenizer file of a checkpoint folder: tokenizer.json first (what fast
    tokenizers load), else a SentencePiece model; None if there is neither."""
    folder = Path(folder)
    candidates = [folder / TOKENIZER_JSON, *(folder / name for name in SENTENCEPIECE_FILES)]
    return next((p for p in candidates if p.is_file()), None)


def load_tokenizer(path: str | Path, *, ids: Any = None) -> HFTokenizer | SentencePieceTokenizer:
    """The tokenizer at `path`: a tokenizer.json, a SentencePiece `.model`, or a folder
    holding one. `ids` (a `genaisdk.checkpoints.hf_config.TokenIds`) fills special ids the
    tokenizer files leave out. Raises TokenizerError naming the path."""
    path = Path(path)
    if path.is_dir():
        found = find_tokenizer_file(path)
        if found is None:
            names = ", ".join((TOKENIZER_JSON, *SENTENCEPIECE_FILES))
            raise TokenizerError(f"{path}: no tokenizer file ({names})")
        path = found
    if not path.is_file():
        raise TokenizerError(f"{path}: no such tokenizer file")
    if path.suffix == ".json":
        return HFTokenizer(path, ids=ids)
    if path.suffix == ".model":
        return SentencePieceTokenizer(path, ids=ids)
    raise TokenizerError(f"{path}: not a tokenizer file (expected tokenizer.json or a SentencePiece .model)")


@attrs.frozen(kw_only=True)
class VocabularyCheck:
    """How a tokenizer's ids sit in a model's embedding rows."""

    tokenizer_ids: int
    rows: int

    @property
    def padding(self) -> int:
        """Embedding rows no token id reaches (never produced; masked in generation)."""
        return self.rows - self.tokenizer_ids

    def describe(self) -> str:
        if self.padding:
            return f"{self.rows} embedding rows for {self.tokenizer_ids} token ids: {self.padding} padded rows, never produced"
        return f"{self.rows} embedding rows, one per token id"


@attrs.frozen(kw_only=True)
class TokenLayout:
    """The ids the pretraining objectives need (`genaisdk.backend.jax.objectives`); the
    default is the byte tokenizer's layout."""

    pad: int | None = PAD_ID
    """Padding: no loss where it is the target (None: the tokenizer has none)."""
    eos: int | None = EOS_ID
    mask: int | None = MASK_ID
    """Masked LM's [MASK] (None: the tokenizer has none, and masked LM cannot run)."""
    regular: tuple[int, int] = (BYTE_OFFSET, BYTE_VOCAB)
    """[low, high) of the ids masked LM's random replacement draws from."""
    sentinel_top: int | None = None
    """Sentinel i is `sentinel_top - 1 - i` (T5's <extra_id_i>); None: the model's vocab."""
    sentinel_count: int | None = None
    """How many sentinels the tokenizer has; None: the model's vocab less the byte ids."""
    decoder_start: int | None = PAD_ID


def token_layout(tokenizer: Any, *, decoder_start: int | None = None) -> TokenLayout:
    """The objectives' ids for `tokenizer` (the byte tokenizer: the default layout)."""
    if isinstance(tokenizer, ByteTokenizer):
        return TokenLayout()
    extra = int(getattr(tokenizer, "extra_ids", 0) or 0)
    top = getattr(tokenizer, "sentinel_top", None) or tokenizer.vocab_size
    return TokenLayout(
        pad=tokenizer.pad_id,
        eos=tokenizer.eos_id,
        mask=tokenizer.mask_id,
        regular=(0, top - extra),
        sentinel_top=top,
        sentinel_count=extra,
        decoder_start=decoder_start if decoder_start is not None else tokenizer.pad_id,
    )


def check_vocabulary(tokenizer: Any, rows: int, *, where: str = "the model") -> VocabularyCheck:
    """The tokenizer must not produce an id past the model's embedding rows; spare rows
    (padding) are allowed and reported. Raises TokenizerError."""
    size = int(tokenizer.vocab_size)
    if size > rows:
        raise TokenizerError(
            f"{getattr(tokenizer, 'name', 'the tokenizer')} has {size} token ids but {where} has {rows} embedding rows; "
            "use the model's own tokenizer or a model with a larger vocab"
        )
    return VocabularyCheck(tokenizer_ids=size, rows=rows)
