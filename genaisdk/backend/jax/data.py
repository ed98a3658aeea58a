"""Token batches for training and evaluation: packing, a held-out split, seeded shuffling.

The training batch of optimizer step ``s`` is a pure function of ``(sources, seed, s)``:

- Text is tokenized (byte by byte, or by the checkpoint's or `data.tokenizer`'s tokenizer,
  with its BOS policy), each document followed by EOS, concatenated, and cut
  into sequences of exactly ``seq_len`` tokens (*sequence packing*: no padding, documents
  share sequences; the tail shorter than one sequence is dropped). This is how GPT-2/GPT-3
  style pretraining fills its context (Brown et al. 2020, Sec. 2.2; Raffel et al. 2020,
  Sec. 3.1.2 packs T5's inputs the same way).
- Instruction / chat examples (JSON lines with ``prompt`` and ``response``, or
  ``messages``) are not packed: each is one sequence, padded to ``seq_len`` (or cut to it),
  with a *loss mask* that is 1 on the response tokens only (`chat_examples`); the
  objective turns it into the loss weights, so prompt and padding teach nothing
  (instruction tuning as in Ouyang et al. 2022, Sec. 3.5; Wei et al. 2022, FLAN).
- A seeded permutation of the packed sequences sets a fraction (``data.held_out``,
  default 5%) aside for evaluation.
- Training sequence ``g = s * rows + r`` (row ``r`` of step ``s``) is sequence
  ``perm_e[g mod n]`` of epoch ``e = g // n``, where ``perm_e`` is a permutation seeded by
  ``(seed, e)``: every epoch sees every sequence once, in a fresh order.

Because nothing depends on what happened before, a run resumed at step ``s`` reads exactly
the batches an uninterrupted run would, and every host of a multi-host run builds the
same global batch without talking to the others. Synthetic sources are endless and
addressed the same way (sequence ``g`` of the training stream).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from genaisdk.backend.jax import synthetic
from genaisdk.backend.jax.sources import (
    DataError,
    DataScope,
    Document,
    SourceFile,
    corpus_fingerprint,
    is_synthetic,
    read_sources,
    resolve_files,
)
from genaisdk.backend.jax.tokenizer import BYTE_OFFSET, BYTE_VOCAB, TOKEN_DTYPE, ByteTokenizer

DEFAULT_HELD_OUT = 0.05
_SPLIT_STREAM = 11
_SHUFFLE_STREAM = 12
_MIX_STREAM = 13


def _fraction(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise DataError(f"data.held_out must be a fraction in [0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class DataSettings:
    """What the pipeline needs to know: sources, shapes and the seed."""

    sources: tuple[str, ...] = attrs.field(converter=tuple)
    seq_len: int
    """Tokens per sequence handed to the objective's batch builder."""
    rows_per_step: int
    """Sequences per optimizer step (the global batch, all hosts, all micro-batches)."""
    vocab_size: int
    seed: int = 0
    held_out: float = attrs.field(default=DEFAULT_HELD_OUT, validator=_fraction)
    base_dir: Path | None = None
    """Folder that relative source paths are resolved against (the spec file's)."""
    scope: DataScope | None = None
    """Where the entries may lead (`genaisdk.backend.jax.sources.DataScope`); None: anywhere."""
    tokenizer: Any = None
    """A `genaisdk.backend.jax.tokenizer.Tokenizer`; None: the byte tokenizer of `vocab_size`."""


class DataPipeline:
    """Training and held-out token batches, each a pure function of its step or index."""

    def __init__(self, settings: DataSettings):
        if not settings.sources:
            raise DataError(
                "the spec names no training data: add `data { source = \"synthetic\" }` or "
                "a list of files and globs"
            )
        if settings.seq_len < 1 or settings.rows_per_step < 1:
            raise DataError(
                f"batches need at least one row of one token (got {settings.rows_per_step} x {settings.seq_len})"
            )
        self.settings = settings
        self.files: tuple[SourceFile, ...] = ()
        self.groups: dict[str, DataPipeline] = {}
        """Per `data.mix` group pipelines (`MixedPipeline`); none here."""
        """Every file read, with its size and SHA-256 (none for a synthetic source)."""
        self.seq_len = settings.seq_len
        self.rows = settings.rows_per_step
        self._permutations: OrderedDict[int, np.ndarray] = OrderedDict()
        synthetic_entries = [e for e in settings.sources if is_synthetic(e)]
        if synthetic_entries:
            if len(synthetic_entries) != len(settings.sources) or len(synthetic_entries) > 1:
                raise DataError(
                    "a synthetic source stands alone: use `source = \"synthetic\"` (or "
                    "\"synthetic:pattern\", \"synthetic:uniform\") without other entries"
                )
            self._init_synthetic(synthetic.parse_kind(synthetic_entries[0]))
        else:
            self._init_corpus()

    # -- sources ---------------------------------------------------------------------------

    def _init_synthetic(self, kind: str) -> None:
        highest = BYTE_VOCAB - 1 if kind == "uniform" else (
            BYTE_OFFSET + synthetic.ALPHABET_FIRST_BYTE + synthetic.ALPHABET_SIZE - 1
        )
        if self.settings.vocab_size <= highest:
            raise DataError(
                f"synthetic:{kind} uses token ids up to {highest}, beyond the model's "
                f"vocabulary of {self.settings.vocab_size}"
            )
        self._synthetic = synthetic.SyntheticSequences(kind, seq_len=self.seq_len, seed=self.settings.seed)
        self._train = None
        self._held = None
        self._train_mask = self._held_mask = None
        self.truncated_examples = 0
        self.fingerprint = self._synthetic.fingerprint
        self.description = f"synthetic {kind} sequences of {self.seq_len} tokens (endless)"
        self.total_tokens: int | None = None

    def _init_corpus(self) -> None:
        self._synthetic = None
        tokenizer = self.settings.tokenizer
        if tokenizer is None:
            try:
                tokenizer = ByteTokenizer(vocab_size=self.settings.vocab_size)
            except ValueError as exc:  # a vocabulary too small for the bytes: the spec's to fix
                raise DataError(str(exc)) from None
        files = resolve_files(self.settings.sources, self.settings.base_dir, scope=self.settings.scope)
        documents, read = read_sources(files)
        self.files = tuple(read)
        text = [d for d in documents if d.segments is None]
        chat = [d for d in documents if d.segments is not None]
        stream = tokenizer.encode_documents(d.data for d in text)
        packed_rows = len(stream) // self.seq_len
        if not chat and packed_rows < 2:
            raise DataError(
                f"the data sources hold {len(stream)} tokens, fewer than two sequences of "
                f"{self.seq_len}: add text or lower `model {{ context }}`"
            )
        storage = np.uint16 if self.settings.vocab_size <= np.iinfo(np.uint16).max + 1 else TOKEN_DTYPE
        packed = stream[: packed_rows * self.seq_len].reshape(packed_rows, self.seq_len).astype(storage)
        mask = None
        self.truncated_examples = 0
        chat_tokens = 0
        if chat:
            rows, chat_mask, lengths, self.truncated_examples = chat_rows(chat, tokenizer, self.seq_len)
            chat_tokens = int(lengths.sum())
            # Packed text learns every token; each chat example is a row of its own.
            mask = np.concatenate([np.ones(packed.shape, np.uint8), chat_mask])
            packed = np.concatenate([packed, rows.astype(storage)])
        n = len(packed)
        if n < 2:
            raise DataError(
                f"the data sources give {n} sequence of {self.seq_len} tokens; training and a held-out "
                "split need at least two: add examples or text"
            )
        held = int(round(self.settings.held_out * n))
        if self.settings.held_out > 0:
            held = min(max(held, 1), n - 1)
        order = np.random.default_rng([self.settings.seed, _SPLIT_STREAM]).permutation(n)
        held_rows, train_rows = np.sort(order[:held]), np.sort(order[held:])
        self._held = packed[held_rows]
        self._train = packed[train_rows]
        self._held_mask = None if mask is None else mask[held_rows]
        self._train_mask = None if mask is None else mask[train_rows]
        self.fingerprint = corpus_fingerprint(documents)
        if not isinstance(tokenizer, ByteTokenizer):
            self.fingerprint += f":{tokenizer.name}"  # the same text tokenized otherwise is other data
        self.total_tokens = int(len(stream)) + (0 if mask is None else int(np.count_nonzero(mask[packed_rows:])))
        named = "" if isinstance(tokenizer, ByteTokenizer) else f" ({tokenizer.name})"
        what = f"{len(text)} document(s)" if not chat else f"{len(text)} document(s), {len(chat)} chat example(s)"
        cut = f", {self.truncated_examples} example(s) cut to the context" if self.truncated_examples else ""
        self.description = (
            f"{len(stream) + chat_tokens:,} tokens{named} from {len(files)} file(s), {what}{cut}: "
            f"{len(self._train):,} training and {len(self._held):,} held-out sequences of {self.seq_len}"
        )

    # -- sizes -----------------------------------------------------------------------------

    @property
    def num_train_sequences(self) -> int | None:
        """Packed training sequences, or None for an endless synthetic stream."""
        return None if self._train is None else len(self._train)

    @property
    def num_held_out_sequences(self) -> int | None:
        return None if self._synthetic is not None else len(self._held)

    def held_out_batches(self, limit: int) -> int:
        """How many distinct held-out batches an evaluation reads (at most `limit`)."""
        held = self.num_held_out_sequences
        if held is None:
            return limit
        if held == 0:
            return 0
        return min(limit, -(-held // self.rows))

    # -- batches ---------------------------------------------------------------------------

    def _permutation(self, epoch: int) -> np.ndarray:
        cached = self._permutations.get(epoch)
        if cached is None:
            rng = np.random.default_rng([self.settings.seed, _SHUFFLE_STREAM, epoch])
            cached = rng.permutation(len(self._train))
            self._permutations[epoch] = cached
            while len(self._permutations) > 2:
                self._permutations.popitem(last=False)
        return cached

    def train_indices(self, step: int) -> np.ndarray:
        """Global training-sequence numbers of step `step`'s rows."""
        return step * self.rows + np.arange(self.rows, dtype=np.int64)

    def batch(self, step: int) -> np.ndarray:
        """Token ids of optimizer step `step` (0-based), shape [rows_per_step, seq_len]."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self._synthetic is not None:
            return self._synthetic.rows(self.train_indices(step), stream=synthetic.TRAIN_STREAM)
        return self._train[self._picked(step)].astype(TOKEN_DTYPE)

    def _picked(self, step: int) -> np.ndarray:
        """Rows of the training split that step `step` reads."""
        numbers = self.train_indices(step)
        n = len(self._train)
        epochs, positions = np.divmod(numbers, n)
        picked = np.empty(len(numbers), dtype=np.int64)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            picked[where] = self._permutation(int(epoch))[positions[where]]
        return picked

    @property
    def has_loss_mask(self) -> bool:
        """Whether some rows learn only some tokens (chat examples: the response)."""
        return self._train_mask is not None

    def loss_mask(self, step: int) -> np.ndarray | None:
        """Which tokens of step `step`'s rows carry loss as targets, [rows_per_step, seq_len]
        of 0/1 (1 on response tokens and their EOS, 0 on prompt and padding; all 1 on packed
        text), or None when every token does (plain text and synthetic data)."""
        if self._train_mask is None:
            return None
        return self._train_mask[self._picked(step)]

    def held_out_batch(self, index: int) -> np.ndarray:
        """Held-out batch `index`, shape [rows_per_step, seq_len]; the same on every call.

        A held-out split smaller than one batch is repeated to fill it, so every evaluation
        runs the step's one compiled shape.
        """
        numbers = index * self.rows + np.arange(self.rows, dtype=np.int64)
        if self._synthetic is not None:
            return self._synthetic.rows(numbers, stream=synthetic.HELD_OUT_STREAM)
        if len(self._held) == 0:
            raise DataError("no held-out data: set `data { held_out = 5% }` to evaluate")
        return self._held[numbers % len(self._held)].astype(TOKEN_DTYPE)

    def held_out_loss_mask(self, index: int) -> np.ndarray | None:
        """`loss_mask` of held-out batch `index` (None when every token carries loss)."""
        if self._held_mask is None or len(self._held) == 0:
            return None
        numbers = index * self.rows + np.arange(self.rows, dtype=np.int64)
        return self._held_mask[numbers % len(self._held)]

    def position(self, step: int) -> dict[str, Any]:
        """Where step `step` starts reading, for checkpoint metadata and messages."""
        consumed = step * self.rows
        n = self.num_train_sequences
        position: dict[str, Any] = {"step": int(step), "sequences_consumed": int(consumed), "fingerprint": self.fingerprint}
        if n:
            position["epoch"] = int(consumed // n)
            position["offset_in_epoch"] = int(consumed % n)
        return position


def padding_id(tokenizer: Any) -> int:
    """The id that fills a row past its real tokens: the tokenizer's PAD, else its EOS, else
    0. Which positions are padding is always said by a mask beside the row (a loss mask, or
    `evaluate.pack_rows`'s), never read back from this id: a tokenizer without PAD, or whose
    PAD is its EOS (Qwen2's), has real tokens equal to it."""
    pad = getattr(tokenizer, "pad_id", None)
    return int(pad) if pad is not None else int(getattr(tokenizer, "eos_id", None) or 0)


def chat_examples(documents: Sequence[Document], tokenizer: Any, seq_len: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`chat_rows` without the rows' lengths: (ids, mask, examples cut)."""
    ids, mask, _, cut = chat_rows(documents, tokenizer, seq_len)
    return ids, mask, cut


def chat_rows(documents: Sequence[Document], tokenizer: Any, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Chat examples as rows of `seq_len` token ids and their loss masks, one example a row,
    with each row's count of real tokens (int64 [examples]; the rest is padding).

    Each piece of the example's template (`genaisdk.backend.jax.sources.chat_segments`) is
    tokenized on its own, so the mask is exact at the prompt/response boundary: the first
    piece takes the tokenizer's BOS policy, the others none, and every response piece is
    followed by the tokenizer's EOS. The mask is 1 on response tokens and that EOS, 0 on
    prompt tokens; a row is filled with the tokenizer's PAD (its EOS, or 0, when it has
    none) whose mask is 0. An example longer than `seq_len` is cut at `seq_len` (the count
    is returned); one whose prompt leaves no response token in the row is an error naming
    its file and line.

    Returns (ids [examples, seq_len], mask [examples, seq_len] uint8, examples cut).
    """
    pad = padding_id(tokenizer)
    ids = np.full((len(documents), seq_len), pad, TOKEN_DTYPE)
    mask = np.zeros((len(documents), seq_len), np.uint8)
    cut = 0
    lengths = np.zeros(len(documents), np.int64)
    for row, document in enumerate(documents):
        tokens, learn = segment_ids(document.segments or (), tokenizer)
        if len(tokens) > seq_len:
            cut += 1
            tokens, learn = tokens[:seq_len], learn[:seq_len]
        if not learn[1:].any():  # position 0 is never a target
            raise DataError(
                f"{document.origin}: the prompt fills the whole context of {seq_len} tokens, so no response token "
                "is learned: shorten the prompt or raise `model { context }`"
            )
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = learn
        lengths[row] = len(tokens)
    return ids, mask, lengths, cut


def segment_ids(segments: Sequence[tuple[str, bool]], tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of a chat template's pieces (`genaisdk.backend.jax.sources.chat_segments`)
    and which are response, as training tokenizes them: each piece on its own, the first
    with the tokenizer's BOS policy and the others with none, every response piece followed
    by the tokenizer's EOS (the template's end of a response). Returns (ids, is_response
    uint8), each [tokens]."""
    eos = getattr(tokenizer, "eos_id", None)
    pieces: list[np.ndarray] = [np.zeros((0,), TOKEN_DTYPE)]
    flags: list[np.ndarray] = [np.zeros((0,), np.uint8)]
    for index, (text, response) in enumerate(segments):
        piece = np.asarray(tokenizer.encode(text, bos=None if index == 0 else False, eos=False), TOKEN_DTYPE)
        if response and eos is not None:
            piece = np.append(piece, TOKEN_DTYPE(eos))
        pieces.append(piece)
        flags.append(np.full(len(piece), int(response), np.uint8))
    return np.concatenate(pieces), np.concatenate(flags)


def chat_prompt_ids(messages: Sequence[tuple[str, str]], tokenizer: Any) -> np.ndarray:
    """Token ids of a conversation rendered as training renders it, up to where the
    assistant answers (`sources.chat_prompt`, tokenized by `segment_ids`): what a model
    trained on chat examples continues with its response and then EOS. [tokens] int32."""
    from genaisdk.backend.jax.sources import chat_prompt

    return segment_ids(chat_prompt(messages), tokenizer)[0]


def mix_groups(entries: Sequence[str], mix: dict[str, float]) -> dict[str, list[str]]:
    """The source entries of each `data.mix` group, in the mix's order.

    An entry belongs to the group whose name is one of its path components: a folder
    (``legal/*.txt``, ``data/web/``) or a file name without its extensions
    (``legal.jsonl``). Raises DataError for an entry of no group or of two, and for a
    group with no entry."""
    groups: dict[str, list[str]] = {name: [] for name in mix}
    for entry in entries:
        parts = [part for part in Path(entry).parts]
        names = set(parts[:-1]) | {parts[-1].split(".")[0], parts[-1]} if parts else set()
        owners = [name for name in mix if name in names]
        if len(owners) != 1:
            which = "no group" if not owners else f"several groups ({', '.join(owners)})"
            raise DataError(
                f"data source {entry!r} belongs to {which} of data.mix ({', '.join(mix)}): name each entry's "
                "folder or file after exactly one group, e.g. `legal/*.txt` or `web.jsonl`"
            )
        groups[owners[0]].append(entry)
    empty = [name for name, found in groups.items() if not found]
    if empty:
        raise DataError(
            f"data.mix names {', '.join(empty)} but no data source is in a folder or file of that name"
        )
    return groups


def mix_draws(weights: Sequence[float], *, seed: int, step: int, rows: int) -> np.ndarray:
    """The group of each row of step `step`: `rows` independent draws with probabilities
    `weights` (normalized), seeded by (seed, step), so a step's rows depend on nothing else.
    Over many rows each group's share tends to its weight (the mixture sampling of
    BloombergGPT, Wu et al. 2023, Sec. 2, and GPT-3, Brown et al. 2020, Table 2.2)."""
    p = np.asarray(weights, np.float64)
    p = p / p.sum()
    return np.random.default_rng([seed, _MIX_STREAM, step]).choice(len(p), size=rows, p=p)


class MixedPipeline:
    """Sources sampled by `data.mix` weight: one `DataPipeline` per group, each with its
    own held-out split; row r of step s comes from the group `mix_draws` picks, as a
    uniformly drawn training sequence of that group (seeded by (seed, step, r)). Same
    interface as `DataPipeline`; `groups` maps each mix name to its pipeline (per-source
    held-out loss), `source_tokens(step)` counts each group's tokens in a step."""

    def __init__(self, settings: DataSettings, mix: dict[str, float]):
        self.settings = settings
        self.seq_len = settings.seq_len
        self.rows = settings.rows_per_step
        self.names = list(mix)
        self.weights = np.array([float(mix[n]) for n in self.names])
        entries = mix_groups(settings.sources, mix)
        self.groups = {name: DataPipeline(attrs.evolve(settings, sources=tuple(e))) for name, e in entries.items()}
        parts = list(self.groups.values())
        if any(g._synthetic is not None for g in parts):
            raise DataError("data.mix samples files; a synthetic source cannot be one of its groups")
        self._synthetic = None
        self.files = tuple(f for g in parts for f in g.files)
        self.has_loss_mask = any(g.has_loss_mask for g in parts)
        self.fingerprint = ":".join(g.fingerprint for g in parts) + ":" + ",".join(f"{n}={mix[n]:g}" for n in self.names)
        self.total_tokens = sum(g.total_tokens or 0 for g in parts)
        self._held = np.concatenate([g._held for g in parts])
        masks = [g._held_mask if g._held_mask is not None else np.ones(g._held.shape, np.uint8) for g in parts]
        self._held_mask = np.concatenate(masks) if self.has_loss_mask else None
        shares = ", ".join(f"{n} {w * 100:g}%" for n, w in zip(self.names, self.weights / self.weights.sum()))
        self.description = f"mix of {shares}: " + "; ".join(f"{n}: {g.description}" for n, g in self.groups.items())

    num_train_sequences = None  # sampled with replacement: no epochs

    @property
    def num_held_out_sequences(self) -> int:
        return len(self._held)

    held_out_batches = DataPipeline.held_out_batches
    held_out_batch = DataPipeline.held_out_batch
    held_out_loss_mask = DataPipeline.held_out_loss_mask
    train_indices = DataPipeline.train_indices

    def _draws(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(group, sequence within the group's training split) of each row of step `step`."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        group = mix_draws(self.weights, seed=self.settings.seed, step=step, rows=self.rows)
        rng = np.random.default_rng([self.settings.seed, _MIX_STREAM, step, 1])
        sizes = np.array([len(g._train) for g in self.groups.values()])
        return group, (rng.random(self.rows) * sizes[group]).astype(np.int64)

    def batch(self, step: int) -> np.ndarray:
        group, index = self._draws(step)
        parts = list(self.groups.values())
        return np.stack([parts[g]._train[i] for g, i in zip(group, index)]).astype(TOKEN_DTYPE)

    def loss_mask(self, step: int) -> np.ndarray | None:
        if not self.has_loss_mask:
            return None
        group, index = self._draws(step)
        parts = list(self.groups.values())
        return np.stack(
            [parts[g]._train_mask[i] if parts[g]._train_mask is not None else np.ones(self.seq_len, np.uint8)
             for g, i in zip(group, index)]
        )

    def source_tokens(self, step: int) -> dict[str, int]:
        """Tokens each group contributed to step `step` (rows drawn x sequence length)."""
        counts = np.bincount(self._draws(step)[0], minlength=len(self.names))
        return {name: int(c) * self.seq_len for name, c in zip(self.names, counts)}

    def position(self, step: int) -> dict[str, Any]:
        return {"step": int(step), "sequences_consumed": int(step * self.rows), "fingerprint": self.fingerprint}


def build_pipeline(
    sources: Sequence[str],
    *,
    seq_len: int,
    rows_per_step: int,
    vocab_size: int,
    seed: int = 0,
    held_out: float | None = None,
    base_dir: Path | None = None,
    scope: DataScope | None = None,
    tokenizer: Any = None,
    mix: dict[str, float] | None = None,
) -> DataPipeline | MixedPipeline:
    """A `DataPipeline` from the spec's data entries (None `held_out` means 5%; None
    `scope`, entries may lead anywhere; None `tokenizer`, the byte tokenizer); with a
    `mix` (`data.mix`: group name -> share), a `MixedPipeline` sampling the groups."""
    settings = (
        DataSettings(
            sources=tuple(sources),
            seq_len=seq_len,
            rows_per_step=rows_per_step,
            vocab_size=vocab_size,
            seed=seed,
            held_out=DEFAULT_HELD_OUT if held_out is None else held_out,
            base_dir=base_dir,
            scope=scope,
            tokenizer=tokenizer,
        )
    )
    return MixedPipeline(settings, dict(mix)) if mix else DataPipeline(settings)


def epochs(pipeline: Any, steps: int) -> dict[str, float]:
    """How many times `steps` optimizer steps read each training split (sequences drawn /
    training sequences): {'': e} for one corpus, {group: expected e} for a `data.mix`
    (draws by weight, `mix_draws`), {} for an endless synthetic stream. Above 1 the run
    repeats its data, which `genai train` says."""
    drawn = steps * pipeline.rows
    if isinstance(pipeline, MixedPipeline):
        shares = pipeline.weights / pipeline.weights.sum()
        return {name: drawn * float(share) / len(group._train) for (name, group), share in zip(pipeline.groups.items(), shares)}
    n = pipeline.num_train_sequences
    return {"": drawn / n} if n else {}
