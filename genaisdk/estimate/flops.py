"""Training FLOPs: the 6·N·D convention, model FLOPs with attention, hardware FLOPs.

Three counts, each with its own use:

- `training_flops`: C = 6·N·D (Kaplan et al. 2020, Sec. 2.1; Brown et al. 2020, Table D.1):
  2 FLOPs per parameter per token forward, 4 backward, attention ignored. This is the
  convention of compute budgets and scaling laws (`compute.flops`). Table D.1 counts an
  encoder-decoder (T5) at 3·N·D, half the parameters active per token.
- `model_flops_per_token`: 6·N + 12·L·H·Q·T (Chowdhery et al. 2022, PaLM, App. B), N the
  parameters that take part in a matmul, L layers, H heads, Q head size, T context: the two
  attention matmuls (QKᵀ and the product with V) cost 2·2·H·Q·T FLOPs per token per layer
  forward, three times that with the backward. PaLM does not halve it for causal masking;
  `causal_halving=True` does, as an explicit, itemized choice. MFU counts these.
- `hardware_flops_per_token`: model FLOPs plus the forward work that activation
  recomputation repeats (HFU counts these). Full recomputation re-runs each transformer
  layer's forward once more, but not the embedding or the logits (Korthikanti et al. 2022,
  Sec. 6: hardware FLOPs 96·B·L·s·h²·(1 + s/6h + V/16hL) against model FLOPs
  72·B·L·s·h²·(1 + s/6h + V/12hL)). Selective recomputation re-runs only the attention core:
  one more forward of QKᵀ and of the product with V, 4·L·H·Q·T per token.

Every numeric argument may be a numpy array (the context, the tokens); dimensions are one
model.
"""

from __future__ import annotations

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.constants import PF_DAY
from genaisdk.estimate.params import (
    block_params,
    canonical_family,
    count_params,
    lookup_params,
    norm_params,
)

TABLE_D1_FLOPS_PER_PARAM = {"decoder": 6.0, "encoder": 6.0, "encoder_decoder": 3.0}
"""FLOPs per parameter per training token in Brown et al. 2020, Table D.1: 6 for decoder and
encoder models; 3 for T5, whose encoder and decoder each see about half the tokens."""


def training_flops(params, tokens, *, flops_per_param=6.0):
    """C = 6·N·D (Kaplan et al. 2020, Sec. 2.1; Brown et al. 2020, Table D.1)."""
    return flops_per_param * np.asarray(params, dtype=float) * np.asarray(tokens, dtype=float)


def pf_days(flops):
    """FLOPs in petaflop/s-days (1 PF-day = 1e15 x 86,400 = 8.64e19 FLOPs)."""
    return np.asarray(flops, dtype=float) / PF_DAY


@attrs.frozen(kw_only=True)
class FlopsPerToken:
    """FLOPs per training token, itemized.

    `dense`: 6 x the matmul parameters a token passes through; `attention`: the score and
    value matmuls, 12·L·H·Q·T (halved when `causal_halving`); `recompute`: forward work
    repeated by activation recomputation (0 for model FLOPs)."""

    dense: np.ndarray | float
    attention: np.ndarray | float
    recompute: np.ndarray | float = 0.0
    causal_halving: bool = False
    recompute_kind: str = "none"

    @property
    def total(self):
        return self.dense + self.attention + self.recompute


def dense_stack_params(dims: Dimensions, family: str = "decoder") -> dict[str, float]:
    """Matmul parameters per stack: what a token of that stack multiplies by.

    Lookups (position and token-type tables, relative-position biases, an untied input
    embedding) cost no matmul FLOPs. The output projection (the tied embedding or an untied
    head) belongs to the stack that produces the logits: the decoder, or the only stack.
    Norms and biases are counted as if dense (under 0.1% of N for the published models)."""
    family = canonical_family(family)
    count = count_params(dims, family)
    dense_total = count.total - lookup_params(count, tied_embeddings=dims.tied_embeddings)
    if family != "encoder_decoder":
        key = "encoder" if family == "encoder" else "decoder"
        return {key: float(dense_total)}
    encoder = dims.layers * sum(block_params(dims).values())
    encoder += (norm_params(dims) if dims.final_norm else 0) + (norm_params(dims) if dims.embedding_norm else 0)
    return {"encoder": float(encoder), "decoder": float(dense_total - encoder)}


def _attention_matmul_flops(layers, dims: Dimensions, keys, causal_halving: bool):
    """Forward FLOPs per query token of QKᵀ and (probabilities)·V over `keys` positions:
    2 matmuls x 2 FLOPs x H·Q x keys, per layer (PaLM App. B, before the x3 for backward)."""
    forward = 4.0 * layers * dims.heads * dims.d_head * np.asarray(keys, dtype=float)
    return forward / 2.0 if causal_halving else forward


def _token_weights(family: str, decoder_fraction) -> tuple[float, float]:
    family = canonical_family(family)
    if family == "encoder_decoder":
        return 1.0 - decoder_fraction, decoder_fraction
    return (1.0, 0.0) if family == "encoder" else (0.0, 1.0)


def model_flops_per_token(
    dims: Dimensions,
    *,
    family: str = "decoder",
    context=None,
    causal_halving: bool = False,
    decoder_fraction=0.5,
    decoder_context=None,
) -> FlopsPerToken:
    """Training model FLOPs per token, 6·N + 12·L·H·Q·T (Chowdhery et al. 2022, App. B).

    For an encoder-decoder, a training token is an encoder (input) or a decoder (target)
    token; `decoder_fraction` of the tokens are decoder tokens (0.5: equal lengths, which
    makes the dense part about 3·N, Table D.1's T5 convention). Decoder tokens also attend
    over the encoder's `context` positions (cross-attention, never causal). Self-attention
    of a decoder-only or encoder-decoder decoder is causal; of an encoder, bidirectional
    (never halved).
    """
    family = canonical_family(family)
    t_enc = np.asarray(dims.context if context is None else context, dtype=float)
    t_dec = t_enc if decoder_context is None else np.asarray(decoder_context, dtype=float)
    dense = dense_stack_params(dims, family)
    w_enc, w_dec = _token_weights(family, decoder_fraction)
    dense_flops = 6.0 * (w_enc * dense.get("encoder", 0.0) + w_dec * dense.get("decoder", 0.0))
    attention = 0.0
    if w_enc:
        attention = attention + w_enc * 3.0 * _attention_matmul_flops(dims.layers, dims, t_enc, False)
    if w_dec:
        dec_layers = dims.n_decoder_layers if family == "encoder_decoder" else dims.layers
        dec_keys = t_dec if family == "encoder_decoder" else t_enc
        attention = attention + w_dec * 3.0 * _attention_matmul_flops(dec_layers, dims, dec_keys, causal_halving)
        if family == "encoder_decoder":
            attention = attention + w_dec * 3.0 * _attention_matmul_flops(dec_layers, dims, t_enc, False)
    return FlopsPerToken(dense=dense_flops + 0.0 * t_enc, attention=attention, causal_halving=causal_halving)


def hardware_flops_per_token(
    dims: Dimensions,
    *,
    family: str = "decoder",
    context=None,
    recompute: str = "none",
    causal_halving: bool = False,
    decoder_fraction=0.5,
    decoder_context=None,
) -> FlopsPerToken:
    """Model FLOPs plus what recomputation repeats (module docstring; Korthikanti et al. 2022).

    - none: nothing;
    - selective: the attention core forward again, one third of the attention term;
    - full: every transformer layer's forward again (2 x the block parameters, plus the
      attention forward), not the embedding or the logits.
    """
    model = model_flops_per_token(
        dims,
        family=family,
        context=context,
        causal_halving=causal_halving,
        decoder_fraction=decoder_fraction,
        decoder_context=decoder_context,
    )
    if recompute == "none":
        extra = 0.0 * model.attention
    elif recompute == "selective":
        extra = model.attention / 3.0
    elif recompute == "full":
        extra = model.attention / 3.0 + 2.0 * _block_params_per_token(dims, family, decoder_fraction)
    else:
        raise ValueError(f"recompute must be one of ('none', 'selective', 'full'), got {recompute!r}")
    return attrs.evolve(model, recompute=extra, recompute_kind=recompute)


def _block_params_per_token(dims: Dimensions, family: str, decoder_fraction) -> float:
    """Transformer-block parameters a token passes through (no embedding, norms, logits)."""
    family = canonical_family(family)
    w_enc, w_dec = _token_weights(family, decoder_fraction)
    if family == "encoder_decoder":
        enc = dims.layers * sum(block_params(dims).values())
        dec = dims.n_decoder_layers * sum(block_params(dims, cross_attention=True).values())
        return w_enc * enc + w_dec * dec
    return float(dims.layers * sum(block_params(dims).values()))


def chinchilla_forward_flops_per_sequence(
    *, layers, d_model, ffw_size, heads, kv_size, vocab, seq
):
    """Forward FLOPs of one sequence as Hoffmann et al. 2022 count them (App. F): embeddings
    2·s·V·d; per layer the K/Q/V projections 2·3·s·d·(kv·H), the logits 2·s²·(kv·H), the
    softmax 3·H·s², the reduction over values 2·s²·(kv·H), the output projection
    2·s·(kv·H)·d, the dense block 2·s·(2·d·ffw); the final logits 2·s·d·V. The backward pass
    is twice the forward."""
    s = np.asarray(seq, dtype=float)
    width = kv_size * heads
    embeddings = 2 * s * vocab * d_model
    attention = 2 * 3 * s * d_model * width + 2 * s * s * width + 3 * heads * s * s + 2 * s * s * width + 2 * s * width * d_model
    dense = 2 * s * (d_model * ffw_size * 2)
    logits = 2 * s * d_model * vocab
    return embeddings + layers * (attention + dense) + logits


def chinchilla_training_flops_per_sequence(**kwargs):
    """Forward plus backward (2 x forward): Hoffmann et al. 2022, App. F."""
    return 3.0 * chinchilla_forward_flops_per_sequence(**kwargs)
