"""`genaisdk.evaluate(model, data, ...)`: held-out loss, perplexity, bits per byte and the
task's metric of a trained model, at a serving precision.

    >>> result = genaisdk.evaluate("runs/tiny", ["heldout.txt"], precision="int8")
    >>> result.perplexity, result.baseline["perplexity"], result.to_json()

Language-model figures (`genaisdk.evaluation.metrics.lm_metrics`) are the training
objective's loss on text, summed over tokens and bytes before dividing, so they are exact
means over a whole source however it is batched:

- With no data, the run's own held-out split, rebuilt from its data sources, seed and
  held-out fraction exactly as `genai train` built it (`held_out_batches`); this is the
  same function, over the same batches, that the training loop evaluates with every
  `train.eval_every` steps, so the two losses agree.
- With data, each entry (a file, glob or folder; text, or JSON lines with a ``text``
  field, or task records) on its own: documents are tokenized, each followed by EOS, packed
  into rows of the run's sequence length like training data, and every row counted once;
  the last row's padding carries no loss (`pack_rows`), so a short document counts its own
  tokens, not a row's.
- Bits per byte divide the summed loss (in bits) by the UTF-8 bytes the scored target
  tokens spell (the tokenizer's `token_bytes` table), the definition of Gao et al. 2020
  ("The Pile", Sec. 3.1, as `genaisdk.evaluation.metrics` cites it).
- Instruction / chat JSON lines (``{"prompt", "response"}`` or ``{"messages": [...]}``)
  are read by the training data's own reader (`genaisdk.backend.jax.sources.record_document`,
  `genaisdk.backend.jax.data.chat_examples`): one example a row, the loss, perplexity and
  bits per byte over the response tokens (and their EOS) alone, the prompt being context,
  exactly as training's loss mask weighs them; each source row says which tokens it
  scored (``scored``: "response tokens" or "all tokens").

Task metrics (`genaisdk.evaluation.metrics.TASK_METRICS`: ROUGE for summarization, BLEU and
chrF for translation, accuracy and F1 for classification) read JSON-lines records
``{"input": ..., "target": ...}`` (``"label"`` for classification) and compare what the
model produces with the target:

- summarization, translation: greedy generation (`genaisdk.backend.jax.generate`) from the
  input; a decoder reads ``input + "\\n"`` and continues it, an encoder-decoder encodes the
  input and decodes; a chat example is answered from its rendered prompt (up to the
  template's ``"Assistant:"``) and scored against its last response;
- classification: each label seen in the data is scored by the log-likelihood of its tokens
  as the answer (lm-evaluation-harness's multiple-choice ``acc``): a decoder after
  ``input + "\\n"``, an encoder-decoder as the decoder's output, an encoder at MASK
  positions after ``input + "\\n"`` (cloze scoring, Schick & Schütze 2021, Sec. 2); the best
  scoring label is the prediction. A task record's language-model document is
  ``input + "\\n" + target``.

Quantized precisions (int8, int4) also measure the same data in bf16, the dtype their
weights are dequantized to, and report both perplexities; other precisions are compared
with the run's own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from genaisdk.backend.jax.config import BackendError
from genaisdk.evaluation import metrics as M

EVAL_RNG_STREAM = 102
"""Seeds the objective's corruption of held-out batch i: ``(seed, EVAL_RNG_STREAM, i)``."""
DEFAULT_EVAL_BATCHES = 8
"""Held-out batches the training loop (and `genai eval` on a run's own split) reads."""
EVAL_ROWS = 8
"""Sequences per evaluated batch of a data source."""
RESULT_FILE = "eval.json"
TASK_SEPARATOR = "\n"
RESPONSE_TOKENS = "response tokens"
ALL_TOKENS = "all tokens"
"""What a source's loss, perplexity and bits per byte are over (`SourceData.scored`)."""


class EvaluationError(BackendError):
    """Data or settings that cannot be evaluated; the message says which and why."""


# ----------------------------------------------------------------------------- the shared core


@attrs.frozen(kw_only=True)
class LossTotals:
    """Summed token loss (nats), loss-carrying tokens, the UTF-8 bytes those tokens spell,
    and the batches read."""

    loss_sum: float = 0.0
    tokens: float = 0.0
    bytes: int = 0
    batches: int = 0

    def __add__(self, other: LossTotals) -> LossTotals:
        return LossTotals(
            loss_sum=self.loss_sum + other.loss_sum,
            tokens=self.tokens + other.tokens,
            bytes=self.bytes + other.bytes,
            batches=self.batches + other.batches,
        )

    def metrics(self) -> dict[str, Any]:
        return M.lm_metrics(self.loss_sum, self.tokens, self.bytes)


def token_bytes(tokenizer: Any) -> np.ndarray:
    """UTF-8 bytes each token id spells ([vocab] int): the tokenizer's own table
    (`token_bytes()`), else the length of each id decoded alone."""
    table = getattr(tokenizer, "token_bytes", None)
    if table is not None:
        return np.asarray(table(), np.int64)
    return np.asarray([len(tokenizer.decode([i]).encode("utf-8")) for i in range(tokenizer.vocab_size)], np.int64)


def batch_bytes(batch: dict[str, np.ndarray], lengths: np.ndarray) -> int:
    """Bytes spelled by a host batch's loss-carrying targets."""
    targets = np.asarray(batch["targets"])
    weights = np.asarray(batch["weights"])
    return int(np.sum(lengths[np.clip(targets, 0, len(lengths) - 1)] * (weights > 0)))


def lm_totals(
    loss_fn: Callable[[dict[str, np.ndarray]], tuple[Any, Any]],
    batches: Iterable[dict[str, np.ndarray]],
    lengths: np.ndarray,
) -> LossTotals:
    """Sums `loss_fn(batch) -> (loss_sum, tokens)` over host batches, and the bytes their
    targets spell. Each batch's result is read before the next is dispatched: independent
    sharded programs in flight together can deadlock the CPU backend's collectives."""
    import jax

    totals = LossTotals()
    for batch in batches:
        loss_sum, tokens = jax.device_get(loss_fn(batch))
        totals = totals + LossTotals(
            loss_sum=float(loss_sum), tokens=float(tokens), bytes=batch_bytes(batch, lengths), batches=1
        )
    return totals


def _mask_rows(batch: dict[str, np.ndarray], valid: np.ndarray) -> dict[str, np.ndarray]:
    """The batch with the loss weights of rows not in `valid` set to zero (any row layout:
    [rows, ...] or [micro-steps, rows per micro-step, ...])."""
    weights = np.array(batch["weights"], copy=True)
    shape = weights.shape
    flat = weights.reshape(valid.shape[0], -1)
    flat[~valid] = 0
    return {**batch, "weights": flat.reshape(shape)}


def held_out_batches(pipeline: Any, make_batch: Callable, *, seed: int, limit: int) -> list[dict[str, np.ndarray]]:
    """The host batches of a pipeline's held-out split that an evaluation reads: at most
    `limit` of them, the corruption of batch i seeded by (seed, EVAL_RNG_STREAM, i). A
    split that does not fill its last batch is padded with repeated rows whose weights are
    zero, so every held-out sequence counts once and every batch has the compiled shape.
    A pipeline with a loss mask (chat examples) passes it to `make_batch`, so the held-out
    loss is the mean NLL of the response tokens alone."""
    count = pipeline.held_out_batches(limit)
    held = pipeline.num_held_out_sequences
    masked = getattr(pipeline, "has_loss_mask", False)
    out = []
    for index in range(count):
        rng = np.random.default_rng([seed, EVAL_RNG_STREAM, index])
        if masked:
            batch = make_batch(pipeline.held_out_batch(index), rng, loss_mask=pipeline.held_out_loss_mask(index))
        else:
            batch = make_batch(pipeline.held_out_batch(index), rng)
        if held is not None:
            valid = index * pipeline.rows + np.arange(pipeline.rows) < held
            if not valid.all():
                batch = _mask_rows(batch, valid)
        out.append(batch)
    return out


# ----------------------------------------------------------------------------- data sources


@attrs.frozen(kw_only=True)
class SourceData:
    """One data entry: its documents (text), task records (input, target) and chat
    examples (`genaisdk.backend.jax.sources.Document`s with their prompt/response
    segments, read by the training data's own reader)."""

    name: str
    documents: tuple[str, ...]
    examples: tuple[tuple[str, str], ...] = ()
    chats: tuple[Any, ...] = ()

    @property
    def scored(self) -> str:
        """Which tokens the source's loss is over: 'response tokens' (chat examples, as
        training's loss mask), 'all tokens' (text), or both named."""
        if self.chats and self.documents:
            return "response tokens of chat examples, all tokens of text"
        return RESPONSE_TOKENS if self.chats else ALL_TOKENS


def chat_task_example(document: Any) -> tuple[str, str]:
    """(prompt, reference) of a chat example for a task metric: the rendered conversation
    up to its last response (it ends with the template's ``"Assistant:"``, where a trained
    model answers), and that response's text."""
    segments = list(document.segments)
    last = max(i for i, (_, response) in enumerate(segments) if response)
    return "".join(text for text, _ in segments[:last]), segments[last][0].strip()


def read_source(entry: str, base_dir: Path | None = None) -> SourceData:
    """The documents, task records and chat examples of one data entry (file, glob or
    folder). A JSON-lines record is read as training reads it
    (`genaisdk.backend.jax.sources.record_document`: a ``text`` document, or a
    ``prompt``/``response`` or ``messages`` chat example), or is a task record from
    ``input`` and ``target`` (or ``label``), whose document is input + newline + target.
    Raises EvaluationError naming the file and line of a record that is none of these."""
    from genaisdk.backend.jax.sources import (
        DataError,
        is_document_record,
        is_json_lines,
        is_synthetic,
        read_documents,
        record_document,
        resolve_files,
    )

    if is_synthetic(entry):
        raise EvaluationError(f"data source {entry!r}: synthetic data has no held-out text to evaluate; name files")
    try:
        files = resolve_files([entry], base_dir)
    except DataError as exc:
        raise EvaluationError(str(exc)) from None
    documents: list[str] = []
    examples: list[tuple[str, str]] = []
    chats: list[Any] = []
    for path in files:
        if not is_json_lines(path):
            try:
                documents.extend(d.data.decode("utf-8", errors="replace") for d in read_documents([path]))
            except DataError as exc:
                raise EvaluationError(str(exc)) from None
            continue
        for where, record in _json_records(path):
            if "input" not in record and is_document_record(record):
                try:
                    document = record_document(where, record)
                except DataError as exc:
                    raise EvaluationError(str(exc)) from None
                if document.segments is None:
                    documents.append(document.data.decode("utf-8"))
                else:
                    chats.append(document)
                continue
            source = record.get("input")
            target = record.get("target", record.get("label"))
            if not isinstance(source, str) or not isinstance(target, (str, int)):
                raise EvaluationError(
                    f"{where}: a JSON-lines record needs a 'text' field, 'prompt' and 'response' fields, a "
                    "'messages' list of {'role', 'content'} objects, or 'input' and 'target' (or 'label') fields"
                )
            examples.append((source, str(target)))
            documents.append(source + TASK_SEPARATOR + str(target))
    return SourceData(name=entry, documents=tuple(documents), examples=tuple(examples), chats=tuple(chats))


def _json_records(path: Path) -> Iterator[tuple[str, dict]]:
    """(``file:line``, record) of a JSON-lines file, by the training data's reader."""
    import gzip

    from genaisdk.backend.jax.sources import DataError, json_records

    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise EvaluationError(f"cannot read data file {path}: {exc}") from None
    records = json_records(path, raw)
    while True:
        try:
            where, record = next(records)
        except StopIteration:
            return
        except DataError as exc:
            raise EvaluationError(str(exc)) from None
        if not isinstance(record, dict):
            raise EvaluationError(f"{where}: not a JSON object")
        yield where, record


def pack_rows(stream: np.ndarray, width: int, *, keep_tail: bool, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `width` tokens from a token stream, and which of their tokens are real.

    A shorter tail is padded with `pad` when `keep_tail`, else dropped. Returns (rows
    [n, width] int32, real [n, width] uint8: 1 on the stream's tokens, 0 on padding); the
    objective's `mask_padding` takes `real` so that padding carries no loss whatever its id.
    """
    full = len(stream) // width
    rows = stream[: full * width].reshape(full, width)
    real = np.ones(rows.shape, np.uint8)
    tail = stream[full * width :]
    if keep_tail and len(tail):
        last = np.full((1, width), pad, stream.dtype)
        last[0, : len(tail)] = tail
        rows = np.concatenate([rows, last])
        flags = np.zeros((1, width), np.uint8)
        flags[0, : len(tail)] = 1
        real = np.concatenate([real, flags])
    return rows.astype(np.int32), real


def row_batches(
    rows: np.ndarray,
    make_batch: Callable,
    *,
    seed: int,
    batch_rows: int = EVAL_ROWS,
    loss_mask: np.ndarray | None = None,
    real: np.ndarray | None = None,
    mask_padding: Callable | None = None,
) -> list[dict]:
    """Host batches of `batch_rows` rows; the last one filled with zero-weight copies.
    `loss_mask` ([rows, width], chat examples' `chat_examples` mask) narrows each row's
    loss to its response tokens, as training's batches do; `real` ([rows, width],
    `pack_rows`) marks the real tokens of padded rows, whose padding `mask_padding` (the
    objective's) takes out of the loss."""
    out = []
    for index, start in enumerate(range(0, len(rows), batch_rows)):
        chunk = rows[start : start + batch_rows]
        valid = np.arange(batch_rows) < len(chunk)
        fill = lambda a: np.concatenate([a, np.repeat(a[:1], batch_rows - len(a), axis=0)])  # noqa: E731
        rng = np.random.default_rng([seed, EVAL_RNG_STREAM, index])
        if loss_mask is None:
            batch = make_batch(fill(chunk), rng)
        else:
            batch = make_batch(fill(chunk), rng, loss_mask=fill(loss_mask[start : start + batch_rows]))
        if real is not None:
            present = real[start : start + batch_rows]
            if not present.all():
                batch = mask_padding(batch, fill(present))
        out.append(batch if valid.all() else _mask_rows(batch, valid))
    return out


# ----------------------------------------------------------------------------- the evaluator


def _bucket(n: int, minimum: int = 8) -> int:
    return max(minimum, 1 << (max(n, 1) - 1).bit_length())


class Evaluator:
    """A loaded model's compiled loss (and scoring) at one serving precision."""

    def __init__(self, model: Any, precision: str | None = None, adapters: Any = None):
        from genaisdk.backend.jax.generate import Program, resolve_format
        from genaisdk.backend.jax.quantize import prepare_params
        from genaisdk.backend.jax.runs import resolve_model

        self.loaded = resolve_model(model, adapters)
        self.format = resolve_format(self.loaded, precision)
        self.policy = self.format.policy()
        self.model = self.loaded.model
        self.params = prepare_params(self.loaded.params, self.model.specs(), self.format)
        self.program = Program(self.model, self.policy, self.loaded.family)
        self.lengths = token_bytes(self.loaded.tokenizer)
        self._generator = None
        self.held_out_scored = ALL_TOKENS
        """What `held_out` scored: 'response tokens' for a run trained on chat examples."""

    def loss_fn(self, batch: dict[str, np.ndarray]) -> tuple[Any, Any]:
        return _compiled("loss")(self.program, self.loaded.objective, self.params, batch)

    # -- language-model figures -------------------------------------------------------------

    def held_out(self, limit: int = DEFAULT_EVAL_BATCHES) -> LossTotals:
        """The run's held-out split, as the training loop evaluates it."""
        from genaisdk.backend.jax.data import build_pipeline
        from genaisdk.backend.jax.sources import DataError

        loaded = self.loaded
        if not loaded.data_sources:
            raise EvaluationError(f"{loaded.name} records no data sources: name the data to evaluate with --data")
        config = loaded.config
        try:
            pipeline = build_pipeline(
                loaded.data_sources,
                seq_len=loaded.objective.row_length(loaded.seq_len),
                rows_per_step=int(config["global_batch"]),
                vocab_size=loaded.dims.vocab,
                seed=int(config.get("seed", 0)),
                held_out=loaded.held_out,
                mix=getattr(loaded, "mix", None),
                base_dir=loaded.base_dir,
                tokenizer=loaded.tokenizer,
            )
        except DataError as exc:
            raise EvaluationError(f"the run's own data cannot be read again ({exc}); name the data with --data") from None
        self.held_out_scored = RESPONSE_TOKENS if getattr(pipeline, "has_loss_mask", False) else ALL_TOKENS
        batches = held_out_batches(pipeline, loaded.objective.make_batch, seed=int(config.get("seed", 0)), limit=limit)
        if not batches:
            raise EvaluationError(f"{loaded.name} kept no held-out data (data.held_out = 0): name the data with --data")
        return lm_totals(self.loss_fn, batches, self.lengths)

    def documents(self, documents: Sequence[str], name: str = "data") -> LossTotals:
        """The documents packed into rows of the run's sequence length, each row once; the
        loss over their real tokens only (a short document is not a row of padding)."""
        from genaisdk.backend.jax.data import padding_id

        loaded = self.loaded
        objective = loaded.objective
        width = objective.row_length(loaded.seq_len)
        stream = loaded.tokenizer.encode_documents(documents)
        # A span-corruption row must be whole; the other objectives pad the tail and take the
        # padding out of the loss by the `real` mask (never by its id: the tokenizer may
        # have no PAD, or use its EOS as PAD).
        rows, real = pack_rows(
            stream, width, keep_tail=not hasattr(objective, "target_length"), pad=padding_id(loaded.tokenizer)
        )
        if len(rows) == 0:
            raise EvaluationError(
                f"data source {name!r} holds {len(stream)} tokens, fewer than one sequence of {width}"
            )
        seed = int(loaded.config.get("seed", 0))
        batches = row_batches(rows, objective.make_batch, seed=seed, real=real, mask_padding=objective.mask_padding)
        return lm_totals(self.loss_fn, batches, self.lengths)

    def chats(self, documents: Sequence[Any], name: str = "data") -> tuple[LossTotals, int]:
        """Chat examples as training reads them (`genaisdk.backend.jax.data.chat_examples`):
        one example a row of the run's sequence length, the loss on the response tokens
        (and their EOS) alone. Returns (totals, examples cut to the row)."""
        from genaisdk.backend.jax.data import chat_examples
        from genaisdk.backend.jax.objectives import ObjectiveError
        from genaisdk.backend.jax.sources import DataError

        loaded = self.loaded
        objective = loaded.objective
        width = objective.row_length(loaded.seq_len)
        try:
            rows, mask, cut = chat_examples(documents, loaded.tokenizer, width)
            batches = row_batches(rows, objective.make_batch, seed=int(loaded.config.get("seed", 0)), loss_mask=mask)
        except (DataError, ObjectiveError) as exc:
            raise EvaluationError(f"data source {name!r}: {exc}") from None
        return lm_totals(self.loss_fn, batches, self.lengths), cut

    # -- task predictions -------------------------------------------------------------------

    def generator(self) -> Any:
        from genaisdk.backend.jax.generate import Generator

        if self._generator is None:
            self._generator = Generator(self.loaded, self.format.precision, params=self.params)
        return self._generator

    def generate(
        self, inputs: Sequence[str], *, max_new_tokens: int, batch: int = EVAL_ROWS, suffix: str | None = None
    ) -> list[str]:
        """Greedy continuations of each input (a decoder reads input + `suffix`, default a
        newline; a chat prompt is already rendered, suffix ""), `batch` at a time (the last
        batch filled with copies, so that every batch has one shape)."""
        generator = self.generator()
        texts = []
        if suffix is None:
            suffix = "" if generator.encoder_decoder else TASK_SEPARATOR
        limit = self._prompt_limit(max_new_tokens)
        for start in range(0, len(inputs), batch):
            chunk = [self._truncate(text + suffix, limit) for text in inputs[start : start + batch]]
            encoded = generator.encode_prompts(chunk + [chunk[0]] * (batch - len(chunk)))
            result = generator.run(encoded, max_new_tokens=max_new_tokens)
            generations = generator.generations([None] * batch, encoded, result["tokens"])
            texts.extend(g.text.strip() for g in generations[: len(chunk)])
        return texts

    def _prompt_limit(self, max_new_tokens: int) -> int:
        from genaisdk.backend.jax.generate import learned_positions

        rows = learned_positions(self.model.dims)
        if rows is None:
            return self.loaded.seq_len
        return rows - 1 if self.loaded.family == "encoder_decoder" else max(1, rows - max_new_tokens)

    def _truncate(self, text: str, limit: int) -> list[int]:
        """Token ids of `text`, its start dropped to fit `limit` tokens (the end is what
        the answer follows)."""
        ids = np.asarray(self.loaded.tokenizer.encode(text), np.int32)
        return ids[-limit:].tolist() if len(ids) > limit else ids.tolist()

    def choose(self, inputs: Sequence[str], choices: Sequence[str], *, chat: bool = False) -> list[str]:
        """The choice with the highest log-likelihood as the answer to each input (`chat`:
        inputs are rendered chat prompts, answered as the template answers, " " + choice)."""
        answers = [f" {c}" for c in choices] if chat else list(choices)
        scores = np.stack(
            [self.loglikelihood(inputs, [a] * len(inputs), separator="" if chat else None) for a in answers], axis=1
        )
        return [choices[i] for i in np.argmax(scores, axis=1)]

    def loglikelihood(self, contexts: Sequence[str], answers: Sequence[str], *, separator: str | None = None) -> np.ndarray:
        """log p(answer | context) per pair, summed over the answer's tokens (and EOS); a
        decoder's context is followed by `separator` (default a newline)."""
        import jax
        import jax.numpy as jnp

        tokenizer = self.loaded.tokenizer
        family = self.loaded.family
        limit = self._prompt_limit(0)
        pairs = []
        for context, answer in zip(contexts, answers, strict=True):
            target = np.asarray(tokenizer.encode(answer, bos=False, eos=family != "encoder")).tolist()
            room = max(1, limit - len(target) - (1 if family == "encoder_decoder" else 0))
            suffix = "" if family == "encoder_decoder" else (TASK_SEPARATOR if separator is None else separator)
            prompt = np.asarray(tokenizer.encode(context + suffix)).tolist()
            pairs.append((prompt[-room:], target))
        scores = []
        for start in range(0, len(pairs), EVAL_ROWS):
            chunk = pairs[start : start + EVAL_ROWS]
            arrays = _scoring_arrays(chunk, family, tokenizer, EVAL_ROWS, limit, self.generator_start())
            scores.extend(np.asarray(jax.device_get(self._score(self.params, *map(jnp.asarray, arrays))))[: len(chunk)])
        return np.asarray(scores)

    def generator_start(self) -> tuple[int, int]:
        """(padding id, an encoder-decoder's first decoder input) of the scoring arrays."""
        pad = max(int(getattr(self.model, "pad_id", 0)), 0)
        start = self.loaded.decoder_start
        return pad, pad if start is None else int(start)

    def _score(self, params: Any, inputs: Any, decoder_inputs: Any, targets: Any, weights: Any) -> Any:
        return _compiled("score")(self.program, params, inputs, decoder_inputs, targets, weights)


def _loss_sum(program: Any, objective: Any, params: Any, batch: dict) -> tuple[Any, Any]:
    return objective.loss_sum(program.model.apply, params, batch, program.policy)


def _answer_logprob(program: Any, params: Any, inputs: Any, decoder_inputs: Any, targets: Any, weights: Any) -> Any:
    """Σ log p(target) over the weighted positions of each row (fp32)."""
    import jax
    import jax.numpy as jnp

    decoder = decoder_inputs if program.encoder_decoder else None
    logits = program.model.apply(params, inputs, decoder, policy=program.policy)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(picked * weights, axis=-1)


_COMPILED: dict[str, Any] = {}


def _compiled(name: str) -> Any:
    """The jitted loss or scoring function, shared by every evaluator: a model (a `Program`)
    evaluated again, at another time or precision, reuses what was compiled for it."""
    if name not in _COMPILED:
        import jax

        if name == "loss":
            _COMPILED[name] = jax.jit(_loss_sum, static_argnames=("program", "objective"))
        else:
            _COMPILED[name] = jax.jit(_answer_logprob, static_argnames=("program",))
    return _COMPILED[name]


def _scoring_arrays(
    pairs: list[tuple[list[int], list[int]]], family: str, tokenizer: Any, rows: int, limit: int, ids: tuple[int, int]
) -> tuple:
    """(inputs, decoder_inputs, targets, weights) scoring each (prompt, answer) pair: the
    answer's tokens are the weighted targets. Lengths are padded to powers of two, at most
    `limit` (which every pair fits); `ids` are (padding, decoder start)."""
    PAD_ID, start = ids
    if family == "encoder" and getattr(tokenizer, "mask_id", None) is None:
        raise EvaluationError("cloze scoring needs a [MASK] token; this tokenizer has none")
    if family == "encoder_decoder":
        enc = min(limit, _bucket(max(len(p) for p, _ in pairs) + 1))
        dec = min(limit, _bucket(max(len(a) for _, a in pairs)))
        inputs = np.full((rows, enc), PAD_ID, np.int32)
        decoder_inputs = np.full((rows, dec), PAD_ID, np.int32)
        targets = np.full((rows, dec), PAD_ID, np.int32)
        weights = np.zeros((rows, dec), np.float32)
        for r, (prompt, answer) in enumerate(pairs):
            encoded = prompt + ([] if prompt[-1:] == [tokenizer.eos_id] else [tokenizer.eos_id])
            inputs[r, : len(encoded)] = encoded
            targets[r, : len(answer)] = answer
            weights[r, : len(answer)] = 1.0
            decoder_inputs[r, 0] = start
            decoder_inputs[r, 1 : len(answer)] = answer[:-1]
        return inputs, decoder_inputs, targets, weights
    width = min(limit, _bucket(max(len(p) + len(a) for p, a in pairs)))
    inputs = np.full((rows, width), PAD_ID, np.int32)
    targets = np.full((rows, width), PAD_ID, np.int32)
    weights = np.zeros((rows, width), np.float32)
    for r, (prompt, answer) in enumerate(pairs):
        n = len(prompt)
        if family == "encoder":
            # Cloze: the answer's positions are masked; each is predicted where it stands.
            inputs[r, :n] = prompt
            inputs[r, n : n + len(answer)] = tokenizer.mask_id
            targets[r, n : n + len(answer)] = answer
            weights[r, n : n + len(answer)] = 1.0
        else:
            # Causal: position t predicts token t + 1, so the answer is read from n - 1 on.
            inputs[r, : n + len(answer)] = prompt + answer
            targets[r, n - 1 : n - 1 + len(answer)] = answer
            weights[r, n - 1 : n - 1 + len(answer)] = 1.0
    return inputs, inputs, targets, weights


# ----------------------------------------------------------------------------- the API


@attrs.frozen(kw_only=True)
class EvalResult:
    """What `evaluate` measured. Figures are dicts of `lm_metrics` (loss, perplexity,
    bits_per_byte, tokens, bytes)."""

    model: str
    step: int | None
    precision: str
    weights: str
    compute: str
    overall: dict[str, Any]
    sources: tuple[dict[str, Any], ...]
    baseline: dict[str, Any] | None
    task: dict[str, Any] | None
    memory: dict[str, Any]
    seconds: float
    notes: tuple[str, ...] = ()
    scored: str = ALL_TOKENS
    """Which tokens the loss, perplexity and bits per byte are over: 'all tokens' (text),
    'response tokens' (chat examples: the prompt is context, as training's loss mask), or
    'per source' (each source row's `scored` says)."""

    @property
    def loss(self) -> float:
        return self.overall["loss"]

    @property
    def perplexity(self) -> float:
        return self.overall["perplexity"]

    @property
    def bits_per_byte(self) -> float | None:
        return self.overall["bits_per_byte"]

    def to_json(self) -> dict[str, Any]:
        """eval.json: the overall figures at the top level, `sources`, `tasks` (task name ->
        its figures), and `serving` (measured bytes; the comparison precision's figures),
        the layout `genai report` and `genai card` read (`genaisdk.render.inputs`)."""
        out: dict[str, Any] = {
            "model": self.model,
            "step": self.step,
            "precision": self.precision,
            "weights": self.weights,
            "compute": self.compute,
            **{k: self.overall[k] for k in ("loss", "perplexity", "bits_per_byte", "tokens", "bytes")},
            "scored": self.scored,
            "sources": list(self.sources),
        }
        if self.task is not None:
            figures = {k: v for k, v in self.task.items() if k != "name"}
            out["tasks"] = {self.task["name"]: figures}
        out["serving"] = {"memory": self.memory}
        if self.baseline is not None:
            out["serving"]["baseline"] = self.baseline
        out["seconds"] = self.seconds
        if self.notes:
            out["notes"] = list(self.notes)
        return _finite(out)


def baseline_precision(evaluator: Evaluator) -> str | None:
    """The precision a quality delta is measured against: bf16 for a quantized format (the
    dtype its weights are dequantized to), the run's own for another dense one; None when
    that is the precision evaluated."""
    from genaisdk.backend.jax.generate import resolve_format

    if evaluator.format.quantized:
        return "bf16"
    default = resolve_format(evaluator.loaded, None)
    return None if default.weights == evaluator.format.weights else default.precision


def memory_figures(evaluator: Evaluator) -> dict[str, Any]:
    """Measured bytes of the served weights and of one cached position, with the plan's
    weights (`genaisdk.estimate.inference`: parameters × the precision's bytes, or a
    quantized format's codes, constants and 16-bit vectors)."""
    import jax

    from genaisdk.backend.jax.quantize import tree_bytes
    from genaisdk.estimate.inference import inference_memory

    model, fmt = evaluator.model, evaluator.format
    params = model.num_params()
    figures: dict[str, Any] = {
        "params": params,
        "weight_bytes": tree_bytes(evaluator.params),
        "planned_weight_bytes": int(
            inference_memory(
                model.dims,
                params=params,
                family=evaluator.loaded.family,
                weight_bytes=fmt.planned_weight_bytes,
                weight_format=fmt.weights if fmt.quantized else None,
                context=1,
                batch=1,
            ).weights
        ),
    }
    if evaluator.loaded.family != "encoder" and hasattr(model, "init_cache"):
        cache = jax.eval_shape(lambda: model.init_cache(1, 1, fmt.compute_dtype))
        figures["kv_bytes_per_token"] = tree_bytes(cache)
    return figures


def evaluate(
    model: Any,
    data: Sequence[str] | None = None,
    *,
    task: str | None = None,
    precision: str | None = None,
    baseline: bool = True,
    max_new_tokens: int | None = None,
    base_dir: Path | None = None,
    out: str | Path | None = None,
    adapters: str | Path | None = None,
) -> EvalResult:
    """Measure a model on `data` (default: its run's held-out split); see the module docstring.

    `task`: a task name whose metric to compute (default the run's spec task; 'none' skips
    it). `precision`: the serving precision (default the run's compute dtype). `baseline`:
    also measure at the comparison precision (`baseline_precision`). `max_new_tokens`: the
    generation budget of summarization/translation (default the longest target + 16
    tokens). `out`: write the result's JSON there. `adapters`: a PEFT LoRA adapter folder
    merged into the model (`genaisdk.backend.jax.peft`). Raises EvaluationError, ModelLoadError or
    GenerationError for input that cannot be evaluated.
    """
    from genaisdk.registry import get_registry

    started = time.perf_counter()
    evaluator = Evaluator(model, precision, adapters)
    loaded = evaluator.loaded
    notes: list[str] = list(loaded.notes)

    task_name = loaded.task if task is None else (None if task == "none" else task)
    if task_name is not None:
        record = get_registry().get("tasks", task_name)
        if record is None:
            known = ", ".join(get_registry().names("tasks"))
            raise EvaluationError(f"unknown task {task_name!r}; known: {known}")
        task_name = record.name
    metric = M.task_metric(task_name)

    cuts: list[str] = []
    if data:
        sources = [read_source(entry, base_dir) for entry in data]
        measure = lambda ev: [(s.name, _source_totals(ev, s, cuts), s.scored) for s in sources]  # noqa: E731
    else:
        sources = []
        measure = lambda ev: [("held-out split", ev.held_out(), ev.held_out_scored)]  # noqa: E731

    measured = measure(evaluator)
    notes.extend(cuts)
    rows = [{"source": name, **totals.metrics(), "batches": totals.batches, "scored": scored} for name, totals, scored in measured]
    overall = sum((t for _, t, _ in measured), LossTotals()).metrics()
    kinds = {scored for _, _, scored in measured}
    scored = kinds.pop() if len(kinds) == 1 else "per source"

    compare = baseline_precision(evaluator) if baseline else None
    baseline_figures = None
    if compare is not None:
        other = Evaluator(loaded, compare)
        totals = sum((t for _, t, _ in measure(other)), LossTotals())
        baseline_figures = {"precision": other.format.precision, **totals.metrics()}
        baseline_figures["perplexity_ratio"] = overall["perplexity"] / baseline_figures["perplexity"]

    task_figures = None
    if metric is not None:
        examples = [e for s in sources for e in s.examples]
        chats = [chat_task_example(d) for s in sources for d in s.chats]
        if not examples and not chats:
            if task is not None and task != "none":
                raise EvaluationError(
                    f"task {task_name} is scored on JSON-lines records with 'input' and "
                    f"'{'label' if metric == 'accuracy' else 'target'}' fields, or prompt/response (messages) "
                    "chat examples; the data holds none"
                )
            notes.append(f"no task records in the data: {task_name}'s {metric} not computed")
        else:
            task_figures = _task_figures(evaluator, task_name, metric, examples, max_new_tokens, chats=chats)

    result = EvalResult(
        model=loaded.name,
        step=loaded.step,
        precision=evaluator.format.precision,
        weights=evaluator.format.weights,
        compute=evaluator.format.compute,
        overall=overall,
        sources=tuple(rows),
        baseline=baseline_figures,
        task=task_figures,
        memory=memory_figures(evaluator),
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
        scored=scored,
    )
    if out is not None:
        write_result(result, out)
    return result


def _source_totals(evaluator: Evaluator, source: SourceData, cuts: list[str]) -> LossTotals:
    """A data entry's summed loss: its text packed as `Evaluator.documents` packs it, and
    its chat examples scored on their response tokens (`Evaluator.chats`). Examples cut to
    the context are counted into `cuts` (notes)."""
    if not source.chats:
        return evaluator.documents(source.documents, source.name)
    totals, cut = evaluator.chats(source.chats, source.name)
    if cut:
        width = evaluator.loaded.objective.row_length(evaluator.loaded.seq_len)
        cuts.append(f"{source.name}: {cut} chat example(s) longer than the context were cut to {width} tokens")
    if source.documents:
        totals = totals + evaluator.documents(source.documents, source.name)
    return totals


def _task_figures(
    evaluator: Evaluator,
    task: str,
    metric: str,
    examples: list[tuple[str, str]],
    max_new_tokens: int | None,
    *,
    chats: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The task's metric over task records (input, target) and chat examples (rendered
    prompt, reference response; `chat_task_example`): the model's answer to each is
    generated (or, for classification, chosen) and scored against the reference."""
    inputs = [i for i, _ in examples]
    prompts = [p for p, _ in chats]
    targets = [t for _, t in examples] + [r for _, r in chats]
    if metric == "accuracy":
        choices = sorted(set(targets))
        if len(choices) < 2:
            raise EvaluationError(f"classification needs at least two labels in the data; found {choices}")
        predictions = evaluator.choose(inputs, choices) if inputs else []
        predictions += evaluator.choose(prompts, choices, chat=True) if prompts else []
    else:
        if evaluator.loaded.family == "encoder":
            raise EvaluationError(f"{task} needs a model that generates; an encoder cannot (train a decoder or encoder-decoder)")
        if max_new_tokens is None:
            longest = max(len(evaluator.loaded.tokenizer.encode(t)) for t in targets)
            max_new_tokens = longest + 16
        predictions = evaluator.generate(inputs, max_new_tokens=max_new_tokens) if inputs else []
        if prompts:  # rendered up to "Assistant:", where the trained model answers
            predictions += evaluator.generate(prompts, max_new_tokens=max_new_tokens, suffix="")
    figures = M.score(metric, predictions, targets)
    return {"name": task, "metric": metric, "examples": len(targets), **figures, "predictions": predictions}


def write_result(result: EvalResult, path: str | Path) -> Path:
    """`result.to_json()` as the file at `path` (eval.json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, NaN and infinity as strings (JSON has none)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
