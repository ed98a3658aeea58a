"""The weight tensors of a transformer, one by one: name, shape and logical axes.

`genaisdk.estimate.params` counts parameters part by part; serving formats that store
constants per tensor (an int8 scale per output channel, an NF4 absmax per block of 64
weights of one layer's matrix) need each tensor's own shape. This is that inventory, in
the layout the JAX backend builds (`genaisdk.backend.jax.model.Transformer.specs`, the
table in its module docstring): the same paths ('decoder/layers/attn/q'), shapes and
logical axis names, blocks stacked along a leading 'layers' axis. A test builds both for
several shapes and requires them equal, so the two cannot drift apart; the sizes add up to
`count_params(dims, family).total`.

Axis names: 'vocab', 'embed' (d_model), 'q_heads' (query heads), 'kv_heads' (key/value
heads), 'kv' (head size), 'mlp' (d_ff), 'length' (position rows), 'layers'; None for a
small table's unnamed rows (token types, relative-position buckets).
"""

from __future__ import annotations

import math

import attrs

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import canonical_family

FAMILY_STACKS = {"decoder": ("decoder",), "encoder": ("encoder",), "encoder_decoder": ("encoder", "decoder")}
"""The stacks of each family, in the order the backend builds them."""


@attrs.frozen(kw_only=True)
class WeightTensor:
    """One weight tensor: its path, shape and a logical axis name per dimension."""

    name: str
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    axes: tuple[str | None, ...] = attrs.field(converter=tuple)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def stacked(self) -> bool:
        """Stacked over the blocks of a stack (a leading 'layers' axis)."""
        return bool(self.axes) and self.axes[0] == "layers"


def _norm(dims: Dimensions, prefix: str) -> list[WeightTensor]:
    e = dims.d_model
    out = [WeightTensor(name=f"{prefix}/scale", shape=(e,), axes=("embed",))]
    if dims.norm == "layernorm" and dims.biases:
        out.append(WeightTensor(name=f"{prefix}/bias", shape=(e,), axes=("embed",)))
    return out


def _attention(dims: Dimensions, prefix: str, *, self_attention: bool) -> list[WeightTensor]:
    e, h, g, d = dims.d_model, dims.heads, dims.n_kv_heads, dims.d_head
    out = [
        WeightTensor(name=f"{prefix}/q", shape=(e, h, d), axes=("embed", "q_heads", "kv")),
        WeightTensor(name=f"{prefix}/k", shape=(e, g, d), axes=("embed", "kv_heads", "kv")),
        WeightTensor(name=f"{prefix}/v", shape=(e, g, d), axes=("embed", "kv_heads", "kv")),
        WeightTensor(name=f"{prefix}/o", shape=(h, d, e), axes=("q_heads", "kv", "embed")),
    ]
    if dims.has_qkv_biases:
        out += [
            WeightTensor(name=f"{prefix}/q_bias", shape=(h, d), axes=("q_heads", "kv")),
            WeightTensor(name=f"{prefix}/k_bias", shape=(g, d), axes=("kv_heads", "kv")),
            WeightTensor(name=f"{prefix}/v_bias", shape=(g, d), axes=("kv_heads", "kv")),
        ]
    if dims.biases:
        out.append(WeightTensor(name=f"{prefix}/o_bias", shape=(e,), axes=("embed",)))
    if self_attention and dims.positions == "xl-relative":
        out += [
            WeightTensor(name=f"{prefix}/rel", shape=(e, h, d), axes=("embed", "q_heads", "kv")),
            WeightTensor(name=f"{prefix}/rel_u", shape=(h, d), axes=("q_heads", "kv")),
            WeightTensor(name=f"{prefix}/rel_v", shape=(h, d), axes=("q_heads", "kv")),
        ]
    return out


def _ffn(dims: Dimensions, prefix: str) -> list[WeightTensor]:
    e, f = dims.d_model, dims.d_ff
    out = [
        WeightTensor(name=f"{prefix}/wi", shape=(e, f), axes=("embed", "mlp")),
        WeightTensor(name=f"{prefix}/wo", shape=(f, e), axes=("mlp", "embed")),
    ]
    if dims.ffn == "gated":
        out.append(WeightTensor(name=f"{prefix}/wi_gate", shape=(e, f), axes=("embed", "mlp")))
    if dims.biases:
        out += [
            WeightTensor(name=f"{prefix}/bi", shape=(f,), axes=("mlp",)),
            WeightTensor(name=f"{prefix}/bo", shape=(e,), axes=("embed",)),
        ]
        if dims.ffn == "gated":
            out.append(WeightTensor(name=f"{prefix}/bi_gate", shape=(f,), axes=("mlp",)))
    return out


def _stack(dims: Dimensions, stack: str, family: str) -> list[WeightTensor]:
    cross = stack == "decoder" and family == "encoder_decoder"
    layers = dims.n_decoder_layers if cross else dims.layers
    lp = f"{stack}/layers"
    block = _norm(dims, f"{lp}/attn_norm") + _attention(dims, f"{lp}/attn", self_attention=True)
    if not dims.parallel_block:
        block += _norm(dims, f"{lp}/mlp_norm")
    block += _ffn(dims, f"{lp}/mlp")
    if cross:
        block += _norm(dims, f"{lp}/cross_norm") + _attention(dims, f"{lp}/cross", self_attention=False)
    out = [attrs.evolve(t, shape=(layers, *t.shape), axes=("layers", *t.axes)) for t in block]
    if dims.positions == "learned":
        rows = dims.position_table or dims.context
        out.append(WeightTensor(name=f"{stack}/position", shape=(rows, dims.d_model), axes=("length", "embed")))
    elif dims.positions == "relative":
        out.append(WeightTensor(name=f"{stack}/relative_bias", shape=(dims.relative_buckets, dims.heads), axes=(None, "q_heads")))
    if dims.embedding_norm:
        out += _norm(dims, f"{stack}/embedding_norm")
    if dims.final_norm:
        out += _norm(dims, f"{stack}/final_norm")
    return out


def weight_tensors(dims: Dimensions, family: str = "decoder") -> tuple[WeightTensor, ...]:
    """Every weight tensor of a decoder, encoder or encoder-decoder, as the JAX backend
    builds it: the token embedding (and token-type table), each stack's stacked blocks,
    position table or relative bias, embedding and final norms, then the untied output
    projection, BERT's pooler and MLM head. Raises ValueError for an unknown family."""
    family = canonical_family(family)
    e = dims.d_model
    out = [WeightTensor(name="embed/token", shape=(dims.vocab, e), axes=("vocab", "embed"))]
    if dims.token_types:
        out.append(WeightTensor(name="embed/token_types", shape=(dims.token_types, e), axes=(None, "embed")))
    for stack in FAMILY_STACKS[family]:
        out += _stack(dims, stack, family)
    if not dims.tied_embeddings:
        out.append(WeightTensor(name="output/kernel", shape=(e, dims.vocab), axes=("embed", "vocab")))
    if dims.pooler:
        out.append(WeightTensor(name="pooler/kernel", shape=(e, e), axes=("embed", "mlp")))
        if dims.biases:
            out.append(WeightTensor(name="pooler/bias", shape=(e,), axes=("mlp",)))
    if dims.mlm_head:
        out.append(WeightTensor(name="mlm_head/kernel", shape=(e, e), axes=("embed", "mlp")))
        if dims.biases:
            out.append(WeightTensor(name="mlm_head/bias", shape=(e,), axes=("mlp",)))
        out += _norm(dims, "mlm_head/norm")
        if dims.biases:
            out.append(WeightTensor(name="mlm_head/output_bias", shape=(dims.vocab,), axes=("vocab",)))
    return tuple(out)
