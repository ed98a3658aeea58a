"""The transformer as a plain JAX pytree of named parameters.

One block family covers the three layouts (Vaswani et al. 2017; pre-normalization as in
GPT-2, Radford et al. 2019, Sec. 2.3):

- ``decoder``: token embedding, a causal self-attention stack, output projection (GPT);
- ``encoder``: the same stack without the causal mask, padding keys masked (BERT);
- ``encoder_decoder``: an encoder stack, and a causal decoder stack whose blocks add
  cross-attention over the encoder output (T5, BART); the token embedding is shared.

Parameters are nested dicts; a parameter's path names it ('decoder/layers/attn/q') and its
`ParamSpec` names its logical axes (('layers', 'embed', 'q_heads', 'kv')), which
`genaisdk.backend.jax.sharding` maps onto the device mesh through the strategy's rules.
Query heads ('q_heads') and key/value heads ('kv_heads') are separate axes, so that the
fewer K/V heads of grouped-query attention can stay whole where a split of the query heads
over tensor-parallel devices does not divide them; 'kv' is the head size, 'mlp' d_ff.

The forward pass pins two activation layouts through `constrain` (MaxText's activation
axes): the residual stream, `ACTIVATION_AXES`, where norms and residual additions run and
which sequence parallelism splits along its positions; and the input of every
tensor-parallel matrix product, `GATHERED_AXES`, whole along the sequence. Between the two
the compiler inserts exactly Megatron-LM's collectives: an all-reduce after each
row-parallel product, or with sequence parallelism an all-gather before the column-parallel
ones and a reduce-scatter after the row-parallel ones (Korthikanti et al. 2022, Sec. 4.2.2).
Every stack's blocks are stacked along a leading 'layers' axis and run with `jax.lax.scan`,
so compile time does not grow with depth.

Parameter inventory (e = d_model, h heads, g kv heads, d head size, f d_ff, V vocab,
P position rows, B relative buckets, L layers), matching `genaisdk.estimate.params`
part for part:

==================================  ==========================  =============================
path                                shape                       when
==================================  ==========================  =============================
embed/token                         V × e                       always
embed/token_types                   types × e                   token_types > 0
<stack>/position                    P × e                       positions = learned
<stack>/relative_bias               B × h                       positions = relative (T5)
<stack>/embedding_norm              e (+ e)                     embedding_norm
<stack>/layers/attn/q, k, v, o      L × e·h·d, e·g·d ×2, h·d·e  always
<stack>/layers/attn/{q,k,v}_bias    L × h·d, g·d, g·d           qkv_biases (default: biases)
<stack>/layers/attn/o_bias          L × e                       biases
<stack>/layers/attn/rel, rel_u/v    L × e·h·d, h·d, h·d         positions = xl-relative
<stack>/layers/cross/...            as attn                     decoder of encoder_decoder
<stack>/layers/{attn,mlp,cross}_norm  L × e (+ e)               mlp_norm not with parallel_block
<stack>/layers/mlp/wi, wo (wi_gate) L × e·f, f·e (e·f)          always (gated)
<stack>/layers/mlp/bi, bo (bi_gate) L × f, e (f)                biases
<stack>/final_norm                  e (+ e)                     final_norm
output/kernel                       e × V                       tied_embeddings = false
pooler/kernel, bias                 e × e, e                    pooler
mlm_head/kernel, bias, norm,        e × e, e, e (+ e), V        mlm_head
  output_bias
==================================  ==========================  =============================

A norm has a bias only for LayerNorm with `biases`. A stack with `final_norm` is pre-norm
(GPT-2); one without is post-norm, normalizing after each residual addition (Vaswani et
al. 2017; BERT). `parallel_block` feeds attention and FFN the same normalized input (GPT-J,
PaLM, Chowdhery et al. 2022, Sec. 2). Rotary, ALiBi and sinusoidal positions have no
parameters; T5's relative bias is one table per stack shared by its layers (Raffel et al.
2020, Sec. 2.1). Token types: `apply(token_types=...)` picks each position's segment row;
without it every position is segment 0 (the pretraining objectives here have one segment).
Numerics that pretrained checkpoints differ on (norm ε, the FFN activation, rotary base and
scaling, the attention scale, the learned-position offset, T5's maximum relative distance,
a scale before the output projection) are `Dimensions` fields. The pooler is kept for parity with BERT checkpoints and their
fine-tuning heads; no pretraining objective here reads it, so it receives no gradient.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from genaisdk.backend.jax import layers as nn
from genaisdk.backend.jax.precision import Policy
from genaisdk.backend.jax.tokenizer import PAD_ID
from genaisdk.dims import Dimensions

INIT_STD = 0.02
"""Weight initialization std of GPT-2 and BERT (Radford et al. 2019; Devlin et al. 2019)."""

FAMILY_STACKS = {"decoder": ("decoder",), "encoder": ("encoder",), "encoder_decoder": ("encoder", "decoder")}

ACTIVATION_AXES = ("batch", "length", "embed")
"""Logical axes of the residual stream [batch, length, embed]."""
GATHERED_AXES = ("batch", None, "embed")
"""The same activations whole along the sequence: the input of a tensor-parallel product."""


def _unconstrained(x: jax.Array, axes: tuple[str | None, ...] = ACTIVATION_AXES) -> jax.Array:
    """No layout to pin: one device, inside `shard_map`, or a cached decoding step."""
    return x


@attrs.frozen(kw_only=True)
class ParamSpec:
    """Shape, logical axis names and initializer of one parameter (no array)."""

    shape: tuple[int, ...] = attrs.field(converter=tuple)
    axes: tuple[str | None, ...] = attrs.field(converter=tuple)
    init: str = "normal"
    """'normal' (mean 0, `std`), 'zeros' or 'ones'."""
    std: float = INIT_STD
    name: str = ""
    """The parameter this spec describes, when it is not the leaf's own path (optimizer state)."""

    def __attrs_post_init__(self) -> None:
        if len(self.shape) != len(self.axes):
            raise ValueError(f"shape {self.shape} and axes {self.axes} differ in rank")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def is_spec(x: Any) -> bool:
    return isinstance(x, ParamSpec)


def path_name(path: tuple) -> str:
    """'decoder/layers/attn/q' for a key path of nested dicts."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _stacked(tree: dict, layers: int) -> dict:
    return jax.tree.map(
        lambda s: attrs.evolve(s, shape=(layers, *s.shape), axes=("layers", *s.axes)), tree, is_leaf=is_spec
    )


@functools.lru_cache(maxsize=None)
def _leaf_initializer(init: str, shape: tuple[int, ...], dtype: Any, std: float, sharding: Any) -> Callable:
    """A compiled initializer for one kind of leaf, shared by every model and run that has
    a leaf of that shape, dtype and sharding (so building another run compiles nothing new)."""

    def make(rng: jax.Array, path_hash: jax.Array) -> jax.Array:
        if init == "zeros":
            return jnp.zeros(shape, dtype)
        if init == "ones":
            return jnp.ones(shape, dtype)
        key = jax.random.fold_in(rng, path_hash)
        return (std * jax.random.normal(key, shape, jnp.float32)).astype(dtype)

    return jax.jit(make, out_shardings=sharding) if sharding is not None else jax.jit(make)


@attrs.frozen(kw_only=True)
class Transformer:
    """A model of one family for one `Dimensions`; see the module docstring."""

    dims: Dimensions
    family: str
    recompute: str = "none"
    """'none', 'selective' (recompute attention scores, keep matmul outputs) or 'full'."""
    unroll: bool = False
    """Unroll the layer loop (used by `measure` to let XLA count every layer's FLOPs)."""
    pad_id: int = PAD_ID

    def __attrs_post_init__(self) -> None:
        if self.family not in FAMILY_STACKS:
            raise ValueError(f"unknown family {self.family!r}; expected one of {sorted(FAMILY_STACKS)}")
        dims = self.dims
        if dims.heads % dims.n_kv_heads:
            raise ValueError(f"heads ({dims.heads}) must be a multiple of kv_heads ({dims.n_kv_heads})")

    # ------------------------------------------------------------------ parameters

    def _norm_spec(self) -> dict:
        e = self.dims.d_model
        spec = {"scale": ParamSpec(shape=(e,), axes=("embed",), init="ones")}
        if self.dims.norm == "layernorm" and self.dims.biases:
            spec["bias"] = ParamSpec(shape=(e,), axes=("embed",), init="zeros")
        return spec

    def _attention_spec(self, out_std: float, *, self_attention: bool) -> dict:
        dims = self.dims
        e, h, g, d = dims.d_model, dims.heads, dims.n_kv_heads, dims.d_head
        spec = {
            "q": ParamSpec(shape=(e, h, d), axes=("embed", "q_heads", "kv")),
            "k": ParamSpec(shape=(e, g, d), axes=("embed", "kv_heads", "kv")),
            "v": ParamSpec(shape=(e, g, d), axes=("embed", "kv_heads", "kv")),
            "o": ParamSpec(shape=(h, d, e), axes=("q_heads", "kv", "embed"), std=out_std),
        }
        if dims.has_qkv_biases:
            spec["q_bias"] = ParamSpec(shape=(h, d), axes=("q_heads", "kv"), init="zeros")
            spec["k_bias"] = ParamSpec(shape=(g, d), axes=("kv_heads", "kv"), init="zeros")
            spec["v_bias"] = ParamSpec(shape=(g, d), axes=("kv_heads", "kv"), init="zeros")
        if dims.biases:
            spec["o_bias"] = ParamSpec(shape=(e,), axes=("embed",), init="zeros")
        if self_attention and dims.positions == "xl-relative":
            spec["rel"] = ParamSpec(shape=(e, h, d), axes=("embed", "q_heads", "kv"))
            spec["rel_u"] = ParamSpec(shape=(h, d), axes=("q_heads", "kv"), init="zeros")
            spec["rel_v"] = ParamSpec(shape=(h, d), axes=("q_heads", "kv"), init="zeros")
        return spec

    def _ffn_spec(self, out_std: float) -> dict:
        dims = self.dims
        e, f = dims.d_model, dims.d_ff
        spec = {
            "wi": ParamSpec(shape=(e, f), axes=("embed", "mlp")),
            "wo": ParamSpec(shape=(f, e), axes=("mlp", "embed"), std=out_std),
        }
        if dims.ffn == "gated":
            spec["wi_gate"] = ParamSpec(shape=(e, f), axes=("embed", "mlp"))
        if dims.biases:
            spec["bi"] = ParamSpec(shape=(f,), axes=("mlp",), init="zeros")
            spec["bo"] = ParamSpec(shape=(e,), axes=("embed",), init="zeros")
            if dims.ffn == "gated":
                spec["bi_gate"] = ParamSpec(shape=(f,), axes=("mlp",), init="zeros")
        return spec

    def _has_cross(self, stack: str) -> bool:
        return stack == "decoder" and self.family == "encoder_decoder"

    def _stack_layers(self, stack: str) -> int:
        return self.dims.n_decoder_layers if self._has_cross(stack) else self.dims.layers

    def _stack_spec(self, stack: str) -> dict:
        dims = self.dims
        layers = self._stack_layers(stack)
        # Residual projections scaled by 1/sqrt(2·layers) (Radford et al. 2019, Sec. 2.3).
        out_std = INIT_STD / math.sqrt(2.0 * layers)
        block = {"attn_norm": self._norm_spec(), "attn": self._attention_spec(out_std, self_attention=True)}
        if not dims.parallel_block:
            block["mlp_norm"] = self._norm_spec()
        block["mlp"] = self._ffn_spec(out_std)
        if self._has_cross(stack):
            block["cross_norm"] = self._norm_spec()
            block["cross"] = self._attention_spec(out_std, self_attention=False)
        spec: dict = {"layers": _stacked(block, layers)}
        if dims.positions == "learned":
            rows = dims.position_table or dims.context
            spec["position"] = ParamSpec(shape=(rows, dims.d_model), axes=("length", "embed"), std=0.01)
        elif dims.positions == "relative":
            spec["relative_bias"] = ParamSpec(shape=(dims.relative_buckets, dims.heads), axes=(None, "q_heads"))
        if dims.embedding_norm:
            spec["embedding_norm"] = self._norm_spec()
        if dims.final_norm:
            spec["final_norm"] = self._norm_spec()
        return spec

    def specs(self) -> dict:
        """The parameter tree with a `ParamSpec` at every leaf."""
        dims = self.dims
        e = dims.d_model
        embed = {"token": ParamSpec(shape=(dims.vocab, e), axes=("vocab", "embed"))}
        if dims.token_types:
            embed["token_types"] = ParamSpec(shape=(dims.token_types, e), axes=(None, "embed"))
        tree: dict = {"embed": embed}
        for stack in FAMILY_STACKS[self.family]:
            tree[stack] = self._stack_spec(stack)
        if not dims.tied_embeddings:
            tree["output"] = {"kernel": ParamSpec(shape=(e, dims.vocab), axes=("embed", "vocab"))}
        if dims.pooler:
            tree["pooler"] = {"kernel": ParamSpec(shape=(e, e), axes=("embed", "mlp"))}
            if dims.biases:
                tree["pooler"]["bias"] = ParamSpec(shape=(e,), axes=("mlp",), init="zeros")
        if dims.mlm_head:
            head: dict = {"kernel": ParamSpec(shape=(e, e), axes=("embed", "mlp")), "norm": self._norm_spec()}
            if dims.biases:
                head["bias"] = ParamSpec(shape=(e,), axes=("mlp",), init="zeros")
                head["output_bias"] = ParamSpec(shape=(dims.vocab,), axes=("vocab",), init="zeros")
            tree["mlm_head"] = head
        return tree

    def num_params(self) -> int:
        return int(sum(s.size for s in jax.tree.leaves(self.specs(), is_leaf=is_spec)))

    def abstract(self, dtype: Any = jnp.float32) -> dict:
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), self.specs(), is_leaf=is_spec)

    def init(self, rng: jax.Array, dtype: Any = jnp.float32, shardings: Any = None) -> dict:
        """Random parameters, each created directly in its sharding (a tree like `specs()`,
        or None). Each leaf draws from its own key, folded in from a hash of its path, so a
        parameter's values depend neither on which others exist nor on how it is sharded."""
        flat, treedef = jax.tree_util.tree_flatten_with_path(self.specs(), is_leaf=is_spec)
        placements = [None] * len(flat) if shardings is None else treedef.flatten_up_to(shardings)
        leaves = []
        for (path, spec), sharding in zip(flat, placements):
            make = _leaf_initializer(spec.init, spec.shape, jnp.dtype(dtype), spec.std, sharding)
            leaves.append(make(rng, jnp.uint32(zlib.crc32(path_name(path).encode()) & 0x7FFFFFFF)))
        return jax.tree.unflatten(treedef, leaves)

    # ------------------------------------------------------------------ forward

    def apply(
        self,
        params: dict,
        inputs: jax.Array,
        decoder_inputs: jax.Array | None = None,
        *,
        policy: Policy,
        constrain: Callable[..., jax.Array] | None = None,
        token_types: jax.Array | None = None,
    ) -> jax.Array:
        """Logits [batch, length, vocab] in the policy's output dtype (fp32).

        `inputs` are token ids [batch, length] (the encoder's, for encoder_decoder);
        `decoder_inputs` the decoder's ids (encoder_decoder only). `constrain(x, axes)` pins
        the sharding of an activation [batch, length, embed] named by logical `axes`
        (`ACTIVATION_AXES` when omitted, or `GATHERED_AXES`; see the module docstring) on
        the jit path; None inside `shard_map`. `token_types` [batch, length] are segment ids
        into `embed/token_types` (BERT's sentence A/B) for the first stack; None means
        segment 0 everywhere.
        """
        constrain = constrain or _unconstrained
        p = policy.cast_to_compute(params)
        if self.family == "encoder_decoder":
            if decoder_inputs is None:
                raise ValueError("an encoder_decoder model needs decoder_inputs")
            encoder_valid = inputs != self.pad_id
            memory = self._run_stack(
                "encoder", p, inputs, policy, constrain, causal=False, key_valid=encoder_valid, token_types=token_types
            )
            h = self._run_stack(
                "decoder",
                p,
                decoder_inputs,
                policy,
                constrain,
                causal=True,
                memory=memory,
                memory_valid=encoder_valid,
            )
        elif self.family == "decoder":
            h = self._run_stack("decoder", p, inputs, policy, constrain, causal=True, token_types=token_types)
        else:
            h = self._run_stack(
                "encoder",
                p,
                inputs,
                policy,
                constrain,
                causal=False,
                key_valid=inputs != self.pad_id,
                token_types=token_types,
            )
        return self._logits(p, h, policy, constrain)

    def _logits(
        self, p: dict, h: jax.Array, policy: Policy, constrain: Callable[..., jax.Array] | None = None
    ) -> jax.Array:
        """The output head over the final hidden states h [b, s, e]: logits [b, s, vocab]
        (`constrain` as in `apply`)."""
        constrain = constrain or _unconstrained
        dims = self.dims
        # The output layer is vocabulary-parallel: its input whole along the sequence.
        h = constrain(h, GATHERED_AXES)
        if dims.mlm_head:
            # BERT's transform before the output projection (Devlin et al. 2019, App. A.1),
            # with the model's FFN activation (BERT's `hidden_act`).
            head = p["mlm_head"]
            h = nn.einsum("bse,ef->bsf", h, head["kernel"], policy=policy)
            if "bias" in head:
                h = h + head["bias"]
            h = nn.norm(dims.norm, nn.activate(dims.ffn_activation, h), head["norm"], policy, dims.eps)
        if dims.output_scale != 1.0:
            # T5 v1.0 scales the decoder output by d_model^-0.5 before its tied head.
            h = h * jnp.asarray(dims.output_scale, h.dtype)
        if dims.tied_embeddings:
            logits = nn.einsum("bse,ve->bsv", h, p["embed"]["token"], policy=policy, out=jnp.float32)
        else:
            logits = nn.einsum("bse,ev->bsv", h, p["output"]["kernel"], policy=policy, out=jnp.float32)
        if dims.mlm_head and "output_bias" in p["mlm_head"]:
            logits = logits + p["mlm_head"]["output_bias"].astype(jnp.float32)
        return logits.astype(policy.output_dtype)

    # ------------------------------------------------------------------ cached decoding

    def _decoder_stack_shape(self) -> tuple[int, int, int]:
        if self.family == "encoder":
            raise ValueError("an encoder has no decoder stack to cache: it reads its input in one pass")
        dims = self.dims
        return self._stack_layers("decoder"), dims.n_kv_heads, dims.d_head

    def init_cache(self, batch: int, max_len: int, dtype: Any = jnp.float32) -> dict:
        """A zeroed KV cache for the decoder stack's self-attention: {'k', 'v'}, each
        [layers, batch, max_len, kv_heads, head_dim], slot j holding position j."""
        layers, g, d = self._decoder_stack_shape()
        shape = (layers, batch, max_len, g, d)
        return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

    def encode(self, params: dict, inputs: jax.Array, *, policy: Policy) -> jax.Array:
        """An encoder_decoder's encoder output [b, s, e] over input ids [b, s] (PAD masked)."""
        p = policy.cast_to_compute(params)
        return self._run_stack("encoder", p, inputs, policy, _unconstrained, causal=False, key_valid=inputs != self.pad_id)

    def cross_kv(self, params: dict, memory: jax.Array, *, policy: Policy) -> dict:
        """Every decoder layer's cross-attention keys and values over the encoder output
        memory [b, s, e], computed once per request: {'k', 'v'} [layers, b, s, kv_heads, head_dim]."""
        p = policy.cast_to_compute(params)

        def layer(_: None, lp: dict) -> tuple[None, tuple[jax.Array, jax.Array]]:
            return None, nn.project_kv(lp["cross"], memory, k_positions=None, use_rotary=False, policy=policy)

        layers = p["decoder"]["layers"]
        if isinstance(layers, (list, tuple)):
            k, v = (jnp.stack(kv) for kv in zip(*(layer(None, lp)[1] for lp in layers), strict=True))
        else:
            _, (k, v) = jax.lax.scan(layer, None, layers)
        return {"k": k, "v": v}

    def unstack_layers(self, params: dict) -> dict:
        """`params` with each stack's 'layers' split into a tuple of per-layer trees.

        `apply`, `decode` and `cross_kv` accept either layout. Decoding with batch 1 is
        bound by reading the weights; a scan over stacked layers slices each layer's
        weights into a copy before using them (about 3x the memory traffic on a CPU), while
        separate arrays are read in place. MaxText serves the same way (``scan_layers:
        false`` in its inference configurations); compile time then grows with depth."""
        return _unstack(params, tuple((stack, self._stack_layers(stack)) for stack in FAMILY_STACKS[self.family]))

    def decode(
        self,
        params: dict,
        ids: jax.Array,
        positions: jax.Array,
        cache: dict,
        *,
        policy: Policy,
        cross: dict | None = None,
        memory_valid: jax.Array | None = None,
    ) -> tuple[jax.Array, dict]:
        """One cached step of the decoder stack: logits [b, s, vocab] for ids [b, s] at
        positions [b, s], and the cache with their keys and values written at those slots.

        Each query attends to the cache slots up to its own position, so a prefill (s = the
        padded prompt, positions 0..s−1) and a step (s = 1, each row at its own position)
        are the same function. An encoder_decoder also needs `cross` (`cross_kv`) and
        `memory_valid` [b, s_enc] (the encoder's non-PAD positions).
        """
        self._decoder_stack_shape()
        if self.family == "encoder_decoder" and cross is None:
            raise ValueError("an encoder_decoder model decodes with the cross-attention keys and values (cross_kv)")
        p = policy.cast_to_compute(params)
        h, cache = self._run_stack(
            "decoder",
            p,
            ids,
            policy,
            _unconstrained,
            causal=True,
            memory_valid=memory_valid,
            positions=positions,
            cache=cache,
            cross=cross,
        )
        return self._logits(p, h, policy), cache


    def _run_stack(
        self,
        stack: str,
        p: dict,
        ids: jax.Array,
        policy: Policy,
        constrain: Callable[..., jax.Array],
        *,
        causal: bool,
        key_valid: jax.Array | None = None,
        memory: jax.Array | None = None,
        memory_valid: jax.Array | None = None,
        token_types: jax.Array | None = None,
        positions: jax.Array | None = None,
        cache: dict | None = None,
        cross: dict | None = None,
    ) -> Any:
        """The stack's final hidden states [b, s, e]. With a `cache` (see `decode`): the ids
        sit at `positions`, self-attention writes their keys and values into the cache and
        reads it, cross-attention reads `cross`; returns (hidden states, cache)."""
        dims = self.dims
        sp = p[stack]
        b, s = ids.shape
        cached = cache is not None
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
        h = nn.lookup(p["embed"]["token"], ids, policy)
        if dims.token_types:
            table = nn.dense(p["embed"]["token_types"], policy)
            h = h + (table[0] if token_types is None else jnp.take(table, token_types, axis=0))
        if dims.positions == "learned":
            # OPT, RoBERTa and BART read their table from row 2 (`position_offset`).
            first = dims.position_offset
            if cached:
                h = h + nn.lookup(sp["position"], positions + first, policy)
            else:
                h = h + nn.dense(sp["position"], policy)[first : first + s][None]
        elif dims.positions == "sinusoidal":
            h = h + nn.sinusoidal(positions, dims.d_model).astype(h.dtype)
        if dims.embedding_norm:
            h = nn.norm(dims.norm, h, sp["embedding_norm"], policy, dims.eps)
        h = constrain(h.astype(policy.compute_dtype))

        # A cached step's queries sit at `positions`; its keys are the cache's slots 0..t-1.
        offset = None
        t = s
        if cached:
            t = cache["k"].shape[2]
            offset = jnp.arange(t, dtype=jnp.int32)[None, None, :] - positions[:, :, None]  # [b, s, t]
            mask = (offset <= 0)[:, None]
        elif causal:
            mask = jnp.tril(jnp.ones((s, s), bool))[None, None]
        else:
            mask = key_valid[:, None, None, :] if key_valid is not None else jnp.ones((1, 1, s, s), bool)
        if dims.positions == "relative":
            bias = nn.relative_bias(
                sp["relative_bias"],
                s,
                t,
                bidirectional=not causal,
                max_distance=dims.relative_max_distance,
                offset=offset,
            )
        elif dims.positions == "alibi":
            bias = nn.alibi_bias(dims.heads, s, t, offset=offset)
        else:
            bias = None
        use_rotary = dims.positions == "rotary"
        cross_mask = memory_valid[:, None, None, :] if memory_valid is not None else None
        has_cross = memory is not None or cross is not None
        if memory is not None:
            # Every decoder layer projects the encoder output to keys and values.
            memory = constrain(memory, GATHERED_AXES)
        pre_norm = dims.final_norm

        # The cached path's per-layer state: this layer's index, cross keys and values, and
        # the cache (written by self-attention); set by `cached_block` for each layer.
        step: dict[str, Any] = {}

        def self_attention(x: jax.Array, lp: dict) -> jax.Array:
            kv = None
            if cached:
                k, v = nn.project_kv(
                    lp["attn"],
                    x,
                    k_positions=positions,
                    use_rotary=use_rotary,
                    policy=policy,
                    rotary_base=dims.rotary_base,
                    rotary_scaling=dims.rotary_scaling,
                )
                layer, rows = step["layer"], jnp.arange(b)[:, None]
                step["cache"] = {
                    name: step["cache"][name].at[layer, rows, positions].set(new.astype(step["cache"][name].dtype))
                    for name, new in (("k", k), ("v", v))
                }
                # A cache held in another type (fp8) is read back in the compute dtype.
                kv = tuple(step["cache"][name][layer].astype(policy.compute_dtype) for name in ("k", "v"))
            return nn.attention(
                lp["attn"],
                x,
                x,
                mask=mask,
                bias=bias,
                q_positions=positions,
                k_positions=positions,
                use_rotary=use_rotary,
                policy=policy,
                scale=dims.score_scale,
                rotary_base=dims.rotary_base,
                rotary_scaling=dims.rotary_scaling,
                kv=kv,
                constrain=constrain,
            )

        def cross_attention(x: jax.Array, lp: dict) -> jax.Array:
            return nn.attention(
                lp["cross"],
                x,
                memory,
                mask=cross_mask,
                bias=None,
                q_positions=None,
                k_positions=None,
                use_rotary=False,
                policy=policy,
                scale=dims.score_scale,
                kv=None if step.get("cross") is None else tuple(a.astype(policy.compute_dtype) for a in step["cross"]),
                constrain=constrain,
            )

        def ffn(x: jax.Array, lp: dict) -> jax.Array:
            return nn.feed_forward(
                lp["mlp"], x, kind=dims.ffn, policy=policy, activation=dims.ffn_activation, constrain=constrain
            )

        def sublayer(h: jax.Array, lp: dict, norm_name: str, fn: Callable) -> jax.Array:
            # Pre-norm: h + f(norm(h)) (Xiong et al. 2020); post-norm: norm(h + f(h)) (Vaswani et al. 2017).
            # f's input is gathered along the sequence, the sum is the residual stream again.
            if pre_norm:
                x = constrain(nn.norm(dims.norm, h, lp[norm_name], policy, dims.eps), GATHERED_AXES)
                return constrain(h + fn(x, lp))
            y = constrain(h + fn(constrain(h, GATHERED_AXES), lp))
            return nn.norm(dims.norm, y, lp[norm_name], policy, dims.eps)

        def block(h: jax.Array, lp: dict) -> tuple[jax.Array, None]:
            h = constrain(h)
            if dims.parallel_block:
                # Cross-attention (if any) first, then attention and FFN side by side.
                if has_cross:
                    h = sublayer(h, lp, "cross_norm", cross_attention)
                both = lambda x, lp: self_attention(x, lp) + ffn(x, lp)  # noqa: E731
                h = sublayer(h, lp, "attn_norm", both)
            else:
                # Self-attention, cross-attention, FFN (Vaswani et al. 2017, Sec. 3.1).
                h = sublayer(h, lp, "attn_norm", self_attention)
                if has_cross:
                    h = sublayer(h, lp, "cross_norm", cross_attention)
                h = sublayer(h, lp, "mlp_norm", ffn)
            return h.astype(policy.compute_dtype), None

        plain_block = block  # decoding keeps nothing for a backward pass
        if self.recompute == "full":
            block = jax.checkpoint(block, policy=jax.checkpoint_policies.nothing_saveable, prevent_cse=False)
        elif self.recompute == "selective":
            # Keep the outputs of weight matmuls, recompute what has a batch dimension on both
            # sides (attention scores and softmax): Korthikanti et al. 2022, Sec. 5.
            block = jax.checkpoint(
                block, policy=jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims, prevent_cse=False
            )
        layers = sp["layers"]
        if cached:

            def cached_block(carry: tuple, xs: tuple) -> tuple[tuple, None]:
                h, cache, layer = carry
                lp, cross_layer = xs
                step.update(layer=layer, cache=cache, cross=cross_layer)
                h, _ = plain_block(h, lp)
                return (h, step["cache"], layer + 1), None

            if isinstance(layers, (list, tuple)):
                for index, lp in enumerate(layers):
                    cross_layer = None if cross is None else (cross["k"][index], cross["v"][index])
                    (h, cache, _), _ = cached_block((h, cache, index), (lp, cross_layer))
            else:
                cross_xs = None if cross is None else (cross["k"], cross["v"])
                (h, cache, _), _ = jax.lax.scan(cached_block, (h, cache, jnp.int32(0)), (layers, cross_xs))
        elif isinstance(layers, (list, tuple)):
            for lp in layers:
                h, _ = block(h, lp)
        else:
            h, _ = jax.lax.scan(block, h, layers, unroll=True if self.unroll else 1)
        if dims.final_norm:
            h = nn.norm(dims.norm, h, sp["final_norm"], policy, dims.eps)
        return (h, cache) if cached else h


@functools.partial(jax.jit, static_argnums=1)
def _unstack(params: dict, stacks: tuple[tuple[str, int], ...]) -> dict:
    """`unstack_layers` as one compiled program (a copy per layer, not an op per leaf)."""
    out = dict(params)
    for stack, count in stacks:
        layers = params[stack]["layers"]
        if not isinstance(layers, (list, tuple)):
            out[stack] = {**params[stack], "layers": tuple(jax.tree.map(lambda a, i=i: a[i], layers) for i in range(count))}
    return out


def build(
    dims: Dimensions, *, family: str, recompute: str = "none", unroll: bool = False, pad_id: int = PAD_ID, **_: Any
) -> Transformer:
    """The `Architecture.jax_model` factory of the built-in families.

    A plugin architecture's factory takes the same arguments (dims, family, recompute,
    unroll, pad_id, and ignores keywords it does not know) and returns an object with `specs()`,
    `init(rng, dtype, shardings=None)`, `abstract(dtype)`, `num_params()` and `apply(params, inputs,
    decoder_inputs=None, *, policy, constrain=None)`. `pad_id`: the tokenizer's padding id,
    whose positions an encoder's attention skips (-1: no padding id).
    """
    family = family.replace("-", "_")
    return Transformer(dims=dims, family=family, recompute=recompute, unroll=unroll, pad_id=pad_id)
