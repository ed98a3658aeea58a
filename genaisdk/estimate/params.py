"""Exact parameter counts of transformer stacks from their `Dimensions`.

The count is built part by part, the way the weights are laid out (Vaswani et al. 2017,
Sec. 3; Radford et al. 2019 for GPT-2; Devlin et al. 2019 for BERT; Raffel et al. 2020 for
T5; Touvron et al. 2023 for LLaMA):

- token embedding V·d; a learned position table P·d; BERT's token-type table; T5's relative
  bias (buckets·heads once per stack); Transformer-XL's relative projection per layer;
- per block: attention projections q (d x H·Q), k and v (d x K·Q each, K = kv_heads, so
  multi-query and grouped-query attention shrink them), output (H·Q x d); the FFN with two
  matrices (GELU/ReLU) or three (gated: SwiGLU, GeGLU, Shazeer 2020); biases on every linear
  layer when `biases`; norms (LayerNorm: scale and bias, 2d; RMSNorm or a bias-free LayerNorm:
  d), two per block or one for a parallel block;
- decoder blocks of an encoder-decoder add cross-attention and its norm;
- a final norm per stack, an untied output projection V·d, BERT's pooler and MLM head.

GPT-2 small (12 x 768, V = 50257, P = 1024) gives exactly 124,439,808, the size of the
released checkpoint.

`ParamCount.breakdown` names each part; keys ending in a part from `LOOKUP_PARTS` are table
lookups that cost no matmul FLOPs.
"""

from __future__ import annotations

import attrs

from genaisdk.dims import Dimensions
from genaisdk.records import ParamCount

FAMILY_ALIASES = {
    "encoder": "encoder",
    "decoder": "decoder",
    "encoder_decoder": "encoder_decoder",
    "encoder-decoder": "encoder_decoder",
}

LOOKUP_PARTS = ("embedding.position", "embedding.token_types", "embedding.relative_bias")
"""Parts read by index, never multiplied: they hold memory but cost no matmul FLOPs."""


def canonical_family(family: str) -> str:
    """'encoder-decoder' and 'encoder_decoder' are the same family."""
    try:
        return FAMILY_ALIASES[family.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; use encoder, decoder or encoder_decoder") from None


def norm_params(dims: Dimensions) -> int:
    """Parameters of one norm over d_model: LayerNorm has a scale and a bias (Ba et al. 2016);
    RMSNorm (Zhang & Sennrich 2019) and bias-free LayerNorm (PaLM, Chowdhery et al. 2022,
    Sec. 2) only a scale."""
    if dims.norm == "layernorm" and dims.biases:
        return 2 * dims.d_model
    return dims.d_model


def attention_params(dims: Dimensions) -> int:
    """q: d x H·Q, k and v: d x K·Q each, out: H·Q x d, plus their biases (q, k, v biases
    with `qkv_biases`, which defaults to `biases`: Qwen2 has them without any other bias).

    K = kv_heads: K = H is multi-head (Vaswani et al. 2017), K = 1 multi-query (Shazeer
    2019), 1 < K < H grouped-query (Ainslie et al. 2023)."""
    d, q_width, kv_width = dims.d_model, dims.heads * dims.d_head, dims.n_kv_heads * dims.d_head
    weights = d * q_width + 2 * d * kv_width + q_width * d
    biases = (q_width + 2 * kv_width if dims.has_qkv_biases else 0) + (d if dims.biases else 0)
    return weights + biases


def tensor_group_kv_heads(dims: Dimensions, tensor_parallel=1):
    """K/V heads a tensor-parallel group of t devices holds in total: K when K >= t (each
    device holds K/t of them), else t (each device holds one, a copy of a head that t/K
    devices share). Megatron-LM splits attention by query groups and replicates the K/V
    projections when there are fewer groups than tensor-parallel ranks (Megatron-Core
    `num_query_groups` < `tensor_model_parallel_size`); the K/V weights, their gradients and
    optimizer state, and the K and V activations all grow by that factor. `tensor_parallel`
    may be a numpy array; the result broadcasts."""
    import numpy as np  # the counts above are plain integers; only this one broadcasts

    t = np.asarray(tensor_parallel, dtype=float)
    return np.maximum(float(dims.n_kv_heads), t)


def ffn_params(dims: Dimensions) -> int:
    """Two matrices d x d_ff and d_ff x d (GELU/ReLU, Vaswani et al. 2017 Eq. 2), or three for
    a gated unit (gate, up, down; Shazeer 2020, Eq. 5-6), plus biases."""
    d, f = dims.d_model, dims.d_ff
    if dims.ffn == "gated":
        return 3 * d * f + ((2 * f + d) if dims.biases else 0)
    return 2 * d * f + ((f + d) if dims.biases else 0)


def xl_relative_params(dims: Dimensions) -> int:
    """Per layer: the projection of the relative position embeddings W_{k,R} (d x H·Q) and the
    two global biases u, v (H·Q each) (Dai et al. 2019, Transformer-XL, Sec. 3.3)."""
    if dims.positions != "xl-relative":
        return 0
    width = dims.heads * dims.d_head
    return dims.d_model * width + 2 * width


def block_params(dims: Dimensions, *, cross_attention: bool = False) -> dict[str, int]:
    """One transformer block, by part. `cross_attention` adds an encoder-decoder attention and
    its norm (Vaswani et al. 2017, Sec. 3.1: the decoder's third sub-layer)."""
    norms = 1 if dims.parallel_block else 2
    parts = {"attention": attention_params(dims), "ffn": ffn_params(dims)}
    if cross_attention:
        parts["cross_attention"] = attention_params(dims)
        norms += 1
    parts["norms"] = norms * norm_params(dims)
    relative = xl_relative_params(dims)
    if relative:
        parts["relative_projection"] = relative
    return parts


def _stack_embedding_parts(dims: Dimensions) -> dict[str, int]:
    """Per-stack embedding parts that are not shared between encoder and decoder."""
    parts: dict[str, int] = {}
    if dims.positions == "learned":
        rows = dims.position_table if dims.position_table is not None else dims.context
        parts["embedding.position"] = rows * dims.d_model
    elif dims.positions == "relative":
        # T5: one bias table of buckets x heads, in the first layer of each stack, shared by
        # all its layers (Raffel et al. 2020, Sec. 2.1).
        parts["embedding.relative_bias"] = dims.relative_buckets * dims.heads
    if dims.embedding_norm:
        parts["embedding.norm"] = norm_params(dims)
    return parts


def _shared_parts(dims: Dimensions) -> dict[str, int]:
    """Token embedding, token types, and the untied output projection (no bias: GPT-2,
    LLaMA, T5 v1.1 and BART add none; BERT's output bias is part of its MLM head)."""
    parts = {"embedding.token": dims.vocab * dims.d_model}
    if dims.token_types:
        parts["embedding.token_types"] = dims.token_types * dims.d_model
    if not dims.tied_embeddings:
        parts["output"] = dims.vocab * dims.d_model
    return parts


def _heads_parts(dims: Dimensions) -> dict[str, int]:
    """BERT's pooler (dense d x d with bias over the first token) and MLM head (dense d x d,
    norm, output bias of V; the output matrix is the tied embedding) (Devlin et al. 2019,
    Sec. 3.1; the released BERT checkpoints)."""
    parts: dict[str, int] = {}
    bias = dims.d_model if dims.biases else 0
    if dims.pooler:
        parts["pooler"] = dims.d_model * dims.d_model + bias
    if dims.mlm_head:
        parts["mlm_head"] = dims.d_model * dims.d_model + bias + norm_params(dims) + (dims.vocab if dims.biases else 0)
    return parts


EMBEDDING_PARTS = ("embedding.token", "embedding.position", "embedding.token_types", "output")
"""Vocabulary and position tables: what Kaplan et al. 2020 leave out of N."""


def _unprefixed(key: str) -> str:
    for prefix in ("encoder.", "decoder."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _add(total: dict[str, int], parts: dict[str, int], *, times: int = 1, prefix: str = "") -> None:
    for key, value in parts.items():
        total[prefix + key] = total.get(prefix + key, 0) + times * value


def count_params(dims: Dimensions, family: str = "decoder") -> ParamCount:
    """Exact parameter count of a decoder-only, encoder-only or encoder-decoder stack.

    Encoder and decoder stacks have the same block (Vaswani et al. 2017, Sec. 3.1); an
    encoder-decoder has `layers` encoder blocks and `decoder_layers` decoder blocks with
    cross-attention, one shared token embedding (Raffel et al. 2020; Lewis et al. 2020), and
    per-stack position tables, embedding norms and final norms. Keys of an encoder-decoder's
    stack parts are prefixed `encoder.` / `decoder.`.

    `embedding` counts the vocabulary and position tables (and an untied output projection),
    which Kaplan et al. 2020 (Sec. 2.1) leave out of N. `largest_layer` is the biggest unit a
    fully sharded step gathers at once: a block, or the token embedding (or output
    projection) when that is larger, since it is one gathered unit too.
    """
    family = canonical_family(family)
    breakdown: dict[str, int] = {}
    _add(breakdown, _shared_parts(dims))
    if family == "encoder_decoder":
        encoder = block_params(dims)
        decoder = block_params(dims, cross_attention=True)
        for prefix, block, layers in (
            ("encoder.", encoder, dims.layers),
            ("decoder.", decoder, dims.n_decoder_layers),
        ):
            _add(breakdown, _stack_embedding_parts(dims), prefix=prefix)
            _add(breakdown, block, times=layers, prefix=prefix)
            if dims.final_norm:
                breakdown[prefix + "final_norm"] = norm_params(dims)
        blocks = [sum(encoder.values()), sum(decoder.values())]
    else:
        block = block_params(dims)
        _add(breakdown, _stack_embedding_parts(dims))
        _add(breakdown, block, times=dims.layers)
        if dims.final_norm:
            breakdown["final_norm"] = norm_params(dims)
        blocks = [sum(block.values())]
    _add(breakdown, _heads_parts(dims))

    total = sum(breakdown.values())
    embedding = sum(v for k, v in breakdown.items() if _unprefixed(k) in EMBEDDING_PARTS)
    largest = max(blocks + [breakdown["embedding.token"], breakdown.get("output", 0)])
    return ParamCount(total=total, active=total, embedding=embedding, largest_layer=largest, breakdown=breakdown)


def lookup_params(count: ParamCount, *, tied_embeddings: bool) -> int:
    """Parameters only ever read by index: position and token-type tables, relative-position
    bias tables, and the token embedding when the output projection does not reuse it.
    They cost memory but no matmul FLOPs."""
    lookups = sum(v for k, v in count.breakdown.items() if _unprefixed(k) in LOOKUP_PARTS)
    if not tied_embeddings:
        lookups += count.breakdown.get("embedding.token", 0)
    return lookups


def non_embedding_params(dims: Dimensions, family: str = "decoder") -> int:
    """Kaplan et al. 2020's N: all parameters except the vocabulary and position embeddings
    (Sec. 2.1: 'N ≈ 12·n_layer·d_model²' for their shapes)."""
    count = count_params(dims, family)
    return count.total - count.embedding


@attrs.frozen(kw_only=True)
class StackShape:
    """Depths and widths the FLOP and activation formulas need, per stack."""

    encoder_layers: int
    decoder_layers: int
    cross_attention: bool


def stack_shape(dims: Dimensions, family: str) -> StackShape:
    """Encoder-only and decoder-only models have one stack of `layers` blocks."""
    family = canonical_family(family)
    if family == "encoder_decoder":
        return StackShape(encoder_layers=dims.layers, decoder_layers=dims.n_decoder_layers, cross_attention=True)
    if family == "encoder":
        return StackShape(encoder_layers=dims.layers, decoder_layers=0, cross_attention=False)
    return StackShape(encoder_layers=0, decoder_layers=dims.layers, cross_attention=False)
