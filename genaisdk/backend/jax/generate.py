"""Text generation with a KV cache: prefill, then a compiled decode loop.

    >>> out = genaisdk.generate("runs/tiny", "The licence", max_new_tokens=40)
    >>> out.text, out.ids

How a batch of prompts is generated (Pope et al. 2022, "Efficiently Scaling Transformer
Inference", Sec. 2: a prefill over the prompt, then one step per new token reusing the
cached keys and values):

- The cache (`Transformer.init_cache`) holds keys and values of the decoder stack's
  self-attention for every layer, [layers, batch, max_len, kv_heads, head_dim], allocated
  once; slot j holds position j. An encoder-decoder also keeps the cross-attention keys and
  values of every decoder layer over the encoded prompt, computed once (`cross_kv`).
- Prompts are right-padded to a power of two (so prompts of similar length share one
  compiled prefill); each row keeps its own length and position. The prefill writes the
  prompt's keys and values and samples the first token from each row's last prompt
  position; padded slots are overwritten before any query can see them.
- The decode loop is one `jax.lax.while_loop` inside one compiled function, its state (the
  cache with it) donated so the cache is updated in place. Each step feeds every row's last
  token at its own position and stops when every row has produced a stop id (the
  tokenizer's end of sequence) or `max_new_tokens` are out.
- Sampling (`sample`): temperature 0 is greedy (argmax); otherwise the logits are divided by
  the temperature, cut to the `top_k` largest and to the smallest set whose probability
  reaches `top_p` (nucleus sampling, Holtzman et al. 2020, Sec. 3.1; the token that crosses
  `top_p` is kept), and a token drawn. Step i draws with the key `fold_in(key(seed), i)`,
  so a seed gives the same text every time.

An encoder-decoder reads the prompt (followed by EOS, as its training inputs end) with its
encoder, and its decoder starts from PAD, the start token of its training targets.

`Generator.run_by_recompute` produces the same tokens with a full forward pass over the whole
sequence at every step (no cache): the reference the cache is tested against, and the
baseline `bench` compares with.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from genaisdk.backend.jax.config import BackendError, UnsupportedError
from genaisdk.backend.jax.quantize import ServingFormat, prepare_params, serving_format, tree_bytes
from genaisdk.backend.jax.runs import LoadedModel, ModelLoadError, check_tokenizer, resolve_model

MIN_PROMPT_BUCKET = 8


class GenerationError(BackendError):
    """Settings that cannot generate (an empty prompt, no tokens asked for, too long)."""


def _temperature(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0:
        raise GenerationError(f"temperature must be >= 0 (0 is greedy), got {value}")


def _top_k(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise GenerationError(f"top_k must be >= 0 (0 keeps every token), got {value}")


def _top_p(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise GenerationError(f"top_p must be in (0, 1] (1 keeps every token), got {value}")


@attrs.frozen(kw_only=True)
class Sampling:
    """How the next token is chosen; see the module docstring."""

    temperature: float = attrs.field(default=0.0, converter=float, validator=_temperature)
    top_k: int = attrs.field(default=0, converter=int, validator=_top_k)
    top_p: float = attrs.field(default=1.0, converter=float, validator=_top_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def knobs(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(temperature, top_k, top_p) as arrays: compiled code takes them as values, so
        every setting shares one program (only greedy or not is compiled in)."""
        return (jnp.float32(max(self.temperature, 1e-6)), jnp.int32(self.top_k), jnp.float32(self.top_p))


def sample(logits: jax.Array, key: jax.Array, sampling: Sampling | None = None, *, greedy: bool | None = None, knobs: tuple | None = None) -> jax.Array:
    """Next token ids [b] from logits [b, vocab] (computed in fp32), by `sampling`, or by
    `greedy` and `knobs` (`Sampling.knobs()`, arrays) inside compiled code."""
    logits = logits.astype(jnp.float32)
    if sampling is not None:
        greedy, knobs = sampling.greedy, sampling.knobs()
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    temperature, top_k, top_p = knobs
    logits = logits / temperature
    vocab = logits.shape[-1]
    ordered = jnp.sort(logits, axis=-1)[..., ::-1]
    # top-k: drop every rank from k on (k = 0 keeps all) ...
    ranks = jnp.arange(vocab)
    ordered = jnp.where((top_k > 0) & (ranks >= top_k), -jnp.inf, ordered)
    # ... then nucleus: drop a token when the tokens ranked above it already reach top_p; the
    # token that crosses the threshold stays, so at least one is always kept.
    probs = jax.nn.softmax(ordered, axis=-1)
    drop = (jnp.cumsum(probs, axis=-1) - probs >= top_p) | jnp.isneginf(ordered)
    cutoff = jnp.min(jnp.where(drop, jnp.inf, ordered), axis=-1, keepdims=True)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@attrs.frozen(kw_only=True)
class Generation:
    """One prompt's generation. `ids` are the generated ids (a stop id included when one
    ended it); `text` is their decoded text (special ids dropped)."""

    prompt: str | None
    prompt_ids: tuple[int, ...]
    ids: tuple[int, ...]
    text: str
    stop_reason: str
    """'stop' (a stop id) or 'length' (max_new_tokens reached)."""

    def to_json(self) -> dict[str, Any]:
        return {"prompt_ids": list(self.prompt_ids), "ids": list(self.ids), "text": self.text}


MAX_STOP_IDS = 8
"""Stop ids are a fixed-size array (padded with -1), so that any set shares one program."""


def _bucket(n: int) -> int:
    return max(MIN_PROMPT_BUCKET, 1 << (max(n, 1) - 1).bit_length())


def _fold(key_data: jax.Array, step: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.wrap_key_data(key_data), step)


def learned_positions(dims: Any) -> int | None:
    """Positions a learned position table serves (its rows past the offset OPT and BART
    start from), or None when positions are not a table."""
    if dims.positions != "learned":
        return None
    return (dims.position_table or dims.context) - getattr(dims, "position_offset", 0)


KV_DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16, "fp8": jnp.float8_e4m3fn}
"""Types the KV cache can be held in (`--kv-precision`, the plan's `serve.kv_precision`).
fp8 is E4M3 (vLLM's `kv_cache_dtype = fp8`), values cast without a scale factor (vLLM's
default scale of 1.0): read back, they are cast to the compute dtype. An int8 cache needs
per-head scales, which this backend does not keep."""


def _stop_array(stop_ids: Sequence[int]) -> jax.Array:
    if len(stop_ids) > MAX_STOP_IDS:
        raise GenerationError(f"at most {MAX_STOP_IDS} stop ids, got {len(stop_ids)}")
    return jnp.asarray(list(stop_ids) + [-1] * (MAX_STOP_IDS - len(stop_ids)), jnp.int32)


class Program:
    """A static argument of the compiled generation functions: a model and its serving
    policy, equal to another when they describe the same model (so a second Generator of
    the same run reuses the compiled prefill and decode loop)."""

    def __init__(self, model: Any, policy: Any, family: str, start_id: int | None = None, cache_dtype: Any = None):
        self.model = model
        self.policy = policy
        self.cache_dtype = jnp.dtype(policy.compute_dtype if cache_dtype is None else cache_dtype)
        """The KV cache's type (the compute dtype unless `--kv-precision` says otherwise)."""
        self.encoder_decoder = family == "encoder_decoder"
        self.pad_id = int(getattr(model, "pad_id", 0))
        self.start_id = self.pad_id if start_id is None else int(start_id)
        """An encoder-decoder's first decoder input (T5: PAD)."""
        dims = attrs.asdict(model.dims) if attrs.has(type(model.dims)) else repr(model.dims)
        self.key = json.dumps(
            [type(model).__qualname__, family, dims, self.pad_id, self.start_id, repr(policy), self.cache_dtype.name],
            sort_keys=True,
            default=str,
        )

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and other.key == self.key


def _start(program: Program, params: Any, prompt: jax.Array, lengths: jax.Array, cache_len: int, cache_dtype: Any) -> tuple:
    """(logits of each row's first new token, cache, next positions, cross, memory_valid)."""
    model, policy = program.model, program.policy
    batch = prompt.shape[0]
    cache = model.init_cache(batch, cache_len, cache_dtype)
    if program.encoder_decoder:
        memory = model.encode(params, prompt, policy=policy)
        cross = {name: a.astype(cache_dtype) for name, a in model.cross_kv(params, memory, policy=policy).items()}
        valid = prompt != program.pad_id
        start = jnp.full((batch, 1), program.start_id, jnp.int32)
        logits, cache = model.decode(
            params, start, jnp.zeros((batch, 1), jnp.int32), cache, policy=policy, cross=cross, memory_valid=valid
        )
        return logits[:, 0], cache, jnp.ones((batch,), jnp.int32), cross, valid
    positions = jnp.broadcast_to(jnp.arange(prompt.shape[1], dtype=jnp.int32), prompt.shape)
    logits, cache = model.decode(params, prompt, positions, cache, policy=policy)
    last = jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0]
    return last, cache, lengths, None, None


@functools.partial(jax.jit, static_argnames=("program", "cache_len", "greedy", "max_new"))
def _prefill(program, params, prompt, lengths, key, knobs, stops, *, cache_len, greedy, max_new):
    """The prompt's keys and values into a new cache, and the first token: the decode
    loop's initial state, with the cross-attention keys and values (encoder-decoder)."""
    cache_dtype = program.cache_dtype
    logits, cache, positions, cross, valid = _start(program, params, prompt, lengths, cache_len, cache_dtype)
    first = sample(logits, _fold(key, jnp.int32(0)), greedy=greedy, knobs=knobs)
    batch = prompt.shape[0]
    tokens = jnp.full((batch, max_new), program.pad_id, jnp.int32).at[:, 0].set(first)
    state = {
        "step": jnp.int32(1),
        "tokens": tokens,
        "last": first,
        "positions": positions,
        "done": jnp.isin(first, stops),
        "cache": cache,
        "key": key,
    }
    return state, cross, valid


@functools.partial(jax.jit, static_argnames=("program", "greedy", "max_new"), donate_argnames=("state",))
def _decode(program, params, state, cross, valid, knobs, stops, *, greedy, max_new):
    """The decode loop: one cached step per token until every row has stopped or
    `max_new` tokens are out. `state` is donated: the cache is updated in place."""
    model, policy = program.model, program.policy

    def cond(s: dict) -> jax.Array:
        return (s["step"] < max_new) & ~jnp.all(s["done"])

    def body(s: dict) -> dict:
        logits, cache = model.decode(
            params, s["last"][:, None], s["positions"][:, None], s["cache"], policy=policy, cross=cross, memory_valid=valid
        )
        token = sample(logits[:, 0], _fold(s["key"], s["step"]), greedy=greedy, knobs=knobs)
        token = jnp.where(s["done"], program.pad_id, token)
        return {
            "step": s["step"] + 1,
            "tokens": jax.lax.dynamic_update_slice(s["tokens"], token[:, None], (0, s["step"])),
            "last": token,
            "positions": s["positions"] + 1,
            "done": s["done"] | jnp.isin(token, stops),
            "cache": cache,
            "key": s["key"],
        }

    return jax.lax.while_loop(cond, body, state)


@functools.partial(jax.jit, static_argnames=("program", "greedy", "max_new", "width"))
def _recompute(program, params, prompt, lengths, key, knobs, stops, *, greedy, max_new, width):
    """Every token from a full forward pass over the whole sequence so far (no cache); a
    decoder's sequence is `width` tokens, prompt and output (padding cut to fit a learned
    position table)."""
    model, policy = program.model, program.policy
    batch = prompt.shape[0]
    rows = jnp.arange(batch)
    if program.encoder_decoder:
        sequence = jnp.full((batch, max_new), program.start_id, jnp.int32)
        read = jnp.zeros((batch,), jnp.int32)  # the decoder position whose logits give token 0
    else:
        sequence = jnp.pad(prompt, ((0, 0), (0, max_new)))[:, :width]
        read = lengths - 1

    def body(i: jax.Array, carry: tuple) -> tuple:
        sequence, tokens, done = carry
        if program.encoder_decoder:
            logits = model.apply(params, prompt, sequence, policy=policy)
        else:
            logits = model.apply(params, sequence, policy=policy)
        token = sample(logits[rows, read + i], _fold(key, i), greedy=greedy, knobs=knobs)
        token = jnp.where(done, program.pad_id, token)
        tokens = tokens.at[:, i].set(token)
        done = done | jnp.isin(token, stops)
        write = read + i + 1  # the last token is never fed back; its slot may not exist
        inside = write < sequence.shape[1]
        slot = jnp.minimum(write, sequence.shape[1] - 1)
        sequence = sequence.at[rows, slot].set(jnp.where(inside, token, sequence[rows, slot]))
        return sequence, tokens, done

    tokens = jnp.full((batch, max_new), program.pad_id, jnp.int32)
    _, tokens, _ = jax.lax.fori_loop(0, max_new, body, (sequence, tokens, jnp.zeros((batch,), bool)))
    return tokens


class Generator:
    """The compiled prefill and decode loop of one model at one serving precision.

    `precision`: a precision record name (fp32, bf16, fp16, int8, int4/nf4); None serves the
    run's own compute dtype. `kv_precision`: the KV cache's type, a key of `KV_DTYPES`
    (None: the compute dtype, as the plan's default `serve.kv_precision`). Raises
    UnsupportedError for a model without cached decoding (an encoder, or a plugin
    architecture without `decode`), GenerationError for a KV type the backend cannot hold.
    `params`: weights already prepared for `precision` (`quantize.prepare_params`), to
    share them with an evaluator. `adapters`: a PEFT LoRA adapter folder merged into MODEL
    (`genaisdk.backend.jax.peft`).
    """

    def __init__(
        self,
        model: Any,
        precision: str | None = None,
        *,
        kv_precision: str | None = None,
        tokenizer: Any = None,
        params: Any = None,
        adapters: Any = None,
    ):
        loaded = resolve_model(model, adapters)
        self.loaded = loaded
        self.model = loaded.model
        if loaded.family == "encoder" or not hasattr(self.model, "decode"):
            raise UnsupportedError(
                f"a{'n' if loaded.family[0] in 'aeiou' else ''} {loaded.family} model has no decoder to generate "
                "with; `genai eval` measures it"
            )
        self.tokenizer = tokenizer if tokenizer is not None else loaded.tokenizer
        check_tokenizer(self.tokenizer, self.model.dims.vocab)
        self.format = resolve_format(loaded, precision)
        self.policy = self.format.policy()
        self.kv_precision = kv_precision or self.format.compute
        if self.kv_precision not in KV_DTYPES:
            raise GenerationError(
                f"KV cache type {self.kv_precision!r}: the JAX backend holds the cache in "
                f"{', '.join(KV_DTYPES)} (an int8 cache needs per-head scales, which it does not keep)"
            )
        prepared = params if params is not None else prepare_params(loaded.params, self.model.specs(), self.format)
        # Each layer's weights as their own arrays, read in place by the decode step.
        self.params = self.model.unstack_layers(prepared) if hasattr(self.model, "unstack_layers") else prepared
        self.stop_ids = tuple(int(i) for i in getattr(self.tokenizer, "stop_ids", (self.tokenizer.eos_id,)))
        self.encoder_decoder = loaded.family == "encoder_decoder"
        self.program = Program(self.model, self.policy, loaded.family, loaded.decoder_start, KV_DTYPES[self.kv_precision])

    # ------------------------------------------------------------------ sizes

    @property
    def weight_bytes(self) -> int:
        """Bytes of the served weights (codes and scales of quantized ones)."""
        return tree_bytes(self.params)

    def kv_bytes_per_token(self) -> int:
        """Bytes one cached position takes in every decoder layer: 2 · layers · kv_heads ·
        head_dim · bytes per value (Pope et al. 2022, Sec. 3.1)."""
        layers, g, d = self.model._decoder_stack_shape()
        return 2 * layers * g * d * self.program.cache_dtype.itemsize

    # ------------------------------------------------------------------ inputs

    def encode_prompts(self, prompts: Sequence[str | Sequence[int]]) -> list[np.ndarray]:
        """Token ids of each prompt (text is tokenized, with the tokenizer's BOS policy; id
        lists are taken as they are); an encoder-decoder's input ends with EOS, as its
        training inputs do."""
        out = []
        eos = getattr(self.tokenizer, "eos_id", None)
        for i, prompt in enumerate(prompts):
            which = "the prompt" if len(prompts) == 1 else f"prompt {i + 1}"
            if isinstance(prompt, (str, bytes)):
                if not prompt:
                    raise GenerationError(f"{which} is empty: give some text to continue")
                ids = self.tokenizer.encode(prompt, eos=True) if self.encoder_decoder else self.tokenizer.encode(prompt)
            else:
                ids = np.asarray(prompt, np.int32).reshape(-1)
                if self.encoder_decoder and eos is not None and (ids.size == 0 or ids[-1] != eos):
                    ids = np.append(ids, np.int32(eos))
            ids = np.asarray(ids, np.int32).reshape(-1)
            if ids.size == 0 or (self.encoder_decoder and ids.size == 1 and ids[0] == eos):
                raise GenerationError(f"{which} is empty: give some text to continue")
            if ids.min() < 0 or ids.max() >= self.model.dims.vocab:
                raise GenerationError(f"{which} holds ids outside the vocabulary of {self.model.dims.vocab}")
            out.append(ids)
        if not out:
            raise GenerationError("no prompt given")
        return out

    def chat_prompts(self, prompts: Sequence[str | Sequence[tuple[str, str]]]) -> list[np.ndarray]:
        """Token ids of each prompt rendered with the training chat template, as a user turn
        (a string) or a conversation ((role, content) pairs), up to the assistant's label:
        the ids `genai train` gave the same turns (`genaisdk.backend.jax.data.chat_prompt_ids`),
        which a model trained on chat examples answers and ends with EOS, a stop id. Only a
        decoder trains on chat examples; GenerationError for another family or an empty
        prompt."""
        from genaisdk.backend.jax.data import chat_prompt_ids

        if self.loaded.family != "decoder":
            raise GenerationError(
                f"the chat template is for decoders trained on chat examples; this model is an {self.loaded.family.replace('_', '-')}"
                ": give the prompt as plain text (without --chat)"
            )
        out = []
        for i, prompt in enumerate(prompts):
            messages = [("user", prompt)] if isinstance(prompt, str) else list(prompt)
            if not any(content.strip() for _, content in messages):
                which = "the prompt" if len(prompts) == 1 else f"prompt {i + 1}"
                raise GenerationError(f"{which} is empty: give the user's message")
            out.append(chat_prompt_ids(messages, self.tokenizer).astype(np.int32))
        return self.encode_prompts(out)

    def _shapes(self, prompts: list[np.ndarray], max_new_tokens: int) -> tuple[int, int]:
        """(padded prompt length, cache length), checked against a learned position table."""
        if max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        dims = self.model.dims
        longest = max(len(p) for p in prompts)
        bucket = _bucket(longest)
        if self.encoder_decoder:
            cache_len = max_new_tokens + 1
            reads = {"encoder input": longest, "decoder output": cache_len}
        else:
            cache_len = bucket + max_new_tokens
            reads = {"prompt and output": longest + max_new_tokens}
        rows = learned_positions(dims)
        if rows is not None:
            for what, length in reads.items():
                if length > rows:
                    raise GenerationError(
                        f"the {what} needs {length} positions but the model's learned position table has "
                        f"{rows}: shorten the prompt or lower max_new_tokens"
                    )
            if self.encoder_decoder:
                bucket = min(bucket, rows)
        return bucket, cache_len

    def _inputs(self, prompts: list[np.ndarray], bucket: int) -> tuple[jax.Array, jax.Array]:
        batch = np.zeros((len(prompts), bucket), np.int32)
        for row, ids in enumerate(prompts):
            batch[row, : len(ids)] = ids
        lengths = np.asarray([len(p) for p in prompts], np.int32)
        return jnp.asarray(batch), jnp.asarray(lengths)

    # ------------------------------------------------------------------ running

    def run(
        self,
        prompts: list[np.ndarray],
        *,
        max_new_tokens: int,
        sampling: Sampling = Sampling(),
        seed: int = 0,
        stop: bool = True,
    ) -> dict[str, Any]:
        """Generate from encoded prompts; returns {'tokens' [b, max_new] (PAD after a row's
        stop), 'steps', 'prefill_s', 'decode_s', 'kv_bytes', 'prompt_len', 'cache_len'},
        the times measured around the compiled calls (a shape's first call includes its
        compilation). `stop=False` ignores the stop ids (every step runs)."""
        bucket, cache_len = self._shapes(prompts, max_new_tokens)
        prompt, lengths = self._inputs(prompts, bucket)
        key = jax.random.key_data(jax.random.key(seed))
        stops = _stop_array(self.stop_ids if stop else ())
        knobs = sampling.knobs()
        statics = dict(program=self.program, greedy=sampling.greedy, max_new=max_new_tokens)
        started = time.perf_counter()
        state, cross, valid = _prefill(
            params=self.params, prompt=prompt, lengths=lengths, key=key, knobs=knobs, stops=stops, cache_len=cache_len, **statics
        )
        jax.block_until_ready(state)
        prefilled = time.perf_counter()
        kv_bytes = tree_bytes(state["cache"]) + (tree_bytes(cross) if cross is not None else 0)
        state = _decode(params=self.params, state=state, cross=cross, valid=valid, knobs=knobs, stops=stops, **statics)
        tokens = np.asarray(jax.device_get(state["tokens"]))
        finished = time.perf_counter()
        return {
            "tokens": tokens,
            "steps": int(state["step"]),
            "prefill_s": prefilled - started,
            "decode_s": finished - prefilled,
            "kv_bytes": kv_bytes,
            "prompt_len": bucket,
            "cache_len": cache_len,
        }

    def run_by_recompute(
        self, prompts: list[np.ndarray], *, max_new_tokens: int, sampling: Sampling = Sampling(), seed: int = 0, stop: bool = True
    ) -> np.ndarray:
        """The tokens `run` gives, each from a full forward pass (no KV cache): [b, max_new]."""
        bucket, cache_len = self._shapes(prompts, max_new_tokens)
        prompt, lengths = self._inputs(prompts, bucket)
        key = jax.random.key_data(jax.random.key(seed))
        rows = learned_positions(self.model.dims)
        width = cache_len if rows is None else min(cache_len, rows)
        tokens = _recompute(
            self.program,
            self.params,
            prompt,
            lengths,
            key,
            sampling.knobs(),
            _stop_array(self.stop_ids if stop else ()),
            greedy=sampling.greedy,
            max_new=max_new_tokens,
            width=width,
        )
        return np.asarray(jax.device_get(tokens))

    def generations(self, texts: Sequence[str | None], prompts: list[np.ndarray], tokens: np.ndarray) -> list[Generation]:
        """`Generation`s from `run`'s tokens: each row up to and including its stop id."""
        out = []
        for text, ids, row in zip(texts, prompts, tokens, strict=True):
            kept, reason = [], "length"
            for token in row.tolist():
                kept.append(token)
                if token in self.stop_ids:
                    reason = "stop"
                    break
            out.append(
                Generation(
                    prompt=text,
                    prompt_ids=tuple(int(i) for i in ids),
                    ids=tuple(kept),
                    text=self.tokenizer.decode(kept),
                    stop_reason=reason,
                )
            )
        return out


def resolve_format(loaded: LoadedModel, precision: str | None) -> ServingFormat:
    """The serving format for `precision` (a precision record name or alias; None: the run's
    compute dtype). Raises GenerationError for an unknown name."""
    from genaisdk.registry import get_registry

    registry = get_registry()
    if precision is None:
        compute = loaded.precision.compute_dtype
        precision = {"tf32": "fp32"}.get(compute, compute)
    record = registry.get("precisions", precision)
    if record is None:
        known = ", ".join(registry.names("precisions"))
        raise GenerationError(f"unknown precision {precision!r}; known: {known}")
    return serving_format(record)


def generate(
    model: Any,
    prompt: str | Sequence[int] | Sequence[str] | None = None,
    *,
    prompts: Sequence[str | Sequence[int]] | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    precision: str | None = None,
    kv_precision: str | None = None,
    tokenizer: Any = None,
    adapters: Any = None,
    chat: bool = False,
) -> Generation | list[Generation]:
    """Continue `prompt` (one Generation) or each of `prompts` (a list) with the model.

    `model`: a `genai train` run directory, a `TrainResult` or a `Generator`/`LoadedModel`.
    `temperature` 0 is greedy; `top_k` 0 and `top_p` 1 keep every token; `seed` fixes the
    draws; `precision`: fp32, bf16, fp16, int8 or int4 (NF4), default the run's compute dtype;
    `kv_precision`: the KV cache's type (fp32, bf16, fp16, fp8), default the compute dtype;
    `adapters`: a PEFT LoRA adapter folder merged into MODEL; `chat`: each prompt is a user
    turn (or a list of (role, content) turns) rendered with the training chat template up
    to "Assistant:" (`Generator.chat_prompts`), and the generation is the answer.
    Raises ModelLoadError (a MODEL that cannot be loaded) or GenerationError (bad settings).
    """
    if (prompt is None) == (prompts is None):
        raise GenerationError("give either prompt or prompts")
    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
    generator = model if isinstance(model, Generator) else Generator(
        model, precision, kv_precision=kv_precision, tokenizer=tokenizer, adapters=adapters
    )
    batch = [prompt] if prompts is None else list(prompts)
    encoded = generator.chat_prompts(batch) if chat else generator.encode_prompts(batch)
    result = generator.run(encoded, max_new_tokens=max_new_tokens, sampling=sampling, seed=seed)
    texts = [p if isinstance(p, str) else None for p in batch]
    out = generator.generations(texts, encoded, result["tokens"])
    return out[0] if prompts is None else out


# ----------------------------------------------------------------------------- benchmark

MEMCPY_BYTES = 256 * 2**20
"""Buffer copied to measure host memory bandwidth: far larger than any CPU cache."""


def memcpy_bandwidth(nbytes: int = MEMCPY_BYTES, copies: int = 8, rounds: int = 3) -> float:
    """Host memory bandwidth in bytes/s: the best of `rounds` rounds of `copies` copies of
    `nbytes`, each round's bytes over its whole time (sustained, as a decode loop's steps
    are timed), counting the bytes read and the bytes written (the STREAM "Copy"
    convention, McCalpin 1995), as a decode step's weight and cache reads are counted
    against it."""
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(copies):
            np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return 2.0 * nbytes * copies / best


def peak_bandwidth(device: Any = None) -> tuple[float, str]:
    """(bytes/s, where it comes from): an accelerator's datasheet memory bandwidth (the
    hardware record its device kind names), else a memcpy measured now."""
    from genaisdk.backend.jax.devices import match_hardware
    from genaisdk.registry import get_registry

    device = device or jax.devices()[0]
    if device.platform != "cpu":
        record = match_hardware(device.device_kind, get_registry().catalog("hardware").values())
        if record is not None:
            return float(record.bandwidth_bytes_per_s), f"datasheet {record.key}"
    return memcpy_bandwidth(), "memcpy"


@attrs.frozen(kw_only=True)
class BenchResult:
    """Speeds and sizes of one generation configuration; times are the best of the timed
    repeats (compilation excluded); bytes are measured from the arrays served."""

    precision: str
    weights: str
    kv_precision: str
    """The KV cache's type."""
    batch: int
    prompt_tokens: int
    new_tokens: int
    cache_len: int
    ttft_s: float
    """Time to first token: the prefill and the first token's sampling."""
    prompt_tokens_per_s: float
    decode_step_s: float
    decode_tokens_per_s: float
    weight_bytes: int
    kv_bytes: int
    """The whole cache (self-attention, and cross-attention for an encoder-decoder), which
    every decode step reads."""
    kv_bytes_per_token: int
    bandwidth: float
    """(weight bytes + KV bytes) / decode step time, bytes/s."""
    peak_bandwidth: float
    peak_source: str
    planned_weight_bytes: float
    planned_kv_bytes: float
    device: str

    @property
    def bandwidth_fraction(self) -> float:
        return self.bandwidth / self.peak_bandwidth

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["bandwidth_fraction"] = self.bandwidth_fraction
        return out


def bench(
    model: Any,
    *,
    prompt: str | None = None,
    prompt_tokens: int = 128,
    new_tokens: int = 128,
    batch: int = 1,
    precision: str | None = None,
    repeats: int = 3,
    peak: tuple[float, str] | None = None,
) -> BenchResult:
    """Time prefill and decode of `batch` prompts of `prompt_tokens` tokens (the `prompt`
    repeated or cut, or a fixed English text) and `new_tokens` new tokens each, every step
    run (stop ids ignored); the bandwidth a decode step achieves, as MaxText's inference
    microbenchmark counts it: (weight bytes + KV-cache bytes) / step time. The planned
    bytes are the plan's Serve figures for the same model, format, cache length and batch
    (`genaisdk.estimate.inference.inference_memory`, quantization constants included)."""
    from genaisdk.estimate.inference import inference_memory

    if new_tokens < 2:
        raise GenerationError("a decode benchmark needs at least 2 new tokens (the first comes from the prefill)")
    if batch < 1 or prompt_tokens < 1:
        raise GenerationError("batch and prompt_tokens must be at least 1")
    generator = model if isinstance(model, Generator) else Generator(model, precision)
    text = prompt or "The quick brown fox jumps over the lazy dog while the licence text is read aloud. "
    ids = np.asarray(generator.tokenizer.encode(text), np.int32)
    ids = np.resize(ids, prompt_tokens - (1 if generator.encoder_decoder else 0))
    prompts = generator.encode_prompts([ids.tolist()] * batch)
    first = generator.run(prompts, max_new_tokens=new_tokens, stop=False)  # compiles
    runs = [generator.run(prompts, max_new_tokens=new_tokens, stop=False) for _ in range(max(1, repeats))]
    prefill = min(r["prefill_s"] for r in runs)
    decode = min(r["decode_s"] for r in runs)
    steps = new_tokens - 1
    step_s = decode / steps
    weight_bytes = generator.weight_bytes
    kv_bytes = first["kv_bytes"]
    peak_bw, source = peak if peak is not None else peak_bandwidth()
    dims = generator.model.dims
    planned = inference_memory(
        dims,
        params=generator.model.num_params(),
        family=generator.loaded.family,
        weight_bytes=generator.format.planned_weight_bytes,
        weight_format=generator.format.weights if generator.format.quantized else None,
        context=first["cache_len"],
        batch=batch,
        kv_bytes=generator.program.cache_dtype.itemsize,
        input_context=len(prompts[0]) if generator.encoder_decoder else None,
    )
    return BenchResult(
        precision=generator.format.precision,
        weights=generator.format.weights,
        kv_precision=generator.kv_precision,
        batch=batch,
        prompt_tokens=len(prompts[0]),
        new_tokens=new_tokens,
        cache_len=first["cache_len"],
        ttft_s=prefill,
        prompt_tokens_per_s=batch * len(prompts[0]) / prefill,
        decode_step_s=step_s,
        decode_tokens_per_s=batch * steps / decode,
        weight_bytes=weight_bytes,
        kv_bytes=kv_bytes,
        kv_bytes_per_token=generator.kv_bytes_per_token(),
        bandwidth=(weight_bytes + kv_bytes) / step_s,
        peak_bandwidth=peak_bw,
        peak_source=source,
        planned_weight_bytes=float(planned.weights),
        planned_kv_bytes=float(planned.kv_cache),
        device=jax.devices()[0].device_kind,
    )


def bench_recompute(generator: Generator, *, prompt_tokens: int, new_tokens: int, batch: int = 1, repeats: int = 1) -> float:
    """Decode tokens/s when every token is computed by a full forward pass over the whole
    sequence (`run_by_recompute`), timed after a compiling run; the no-cache baseline."""
    ids = np.resize(np.asarray(generator.tokenizer.encode("The quick brown fox. "), np.int32), prompt_tokens)
    prompts = generator.encode_prompts([ids.tolist()] * batch)
    generator.run_by_recompute(prompts, max_new_tokens=new_tokens, stop=False)
    best = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        generator.run_by_recompute(prompts, max_new_tokens=new_tokens, stop=False)
        best = min(best, time.perf_counter() - started)
    return batch * new_tokens / best


__all__ = [
    "BenchResult",
    "Generation",
    "GenerationError",
    "Generator",
    "ModelLoadError",
    "Sampling",
    "bench",
    "generate",
    "memcpy_bandwidth",
    "sample",
]
