"""Activation memory held for the backward pass, after Korthikanti et al. 2022.

Korthikanti, Casper, Lym, McAfee, Andersch, Shoeybi, Catanzaro, "Reducing Activation
Recomputation in Large Transformer Models" (arXiv:2205.05198), Sec. 4.1, count per
transformer layer, with 16-bit activations and 1-byte dropout masks,

    s·b·h·(34 + 5·a·s/h)  bytes

(s sequence, b micro-batch, h hidden size, a heads): attention 11·sbh + 5·a·s²·b, MLP 19·sbh,
the two LayerNorms 4·sbh. This module rebuilds that count from the tensors each sub-layer
keeps, so that it generalizes:

- to `bytes_per_value` p other than 2 (fp32 activations: p = 4; dropout masks stay 1 byte);
- to grouped-query attention (K and V are kv_heads·head_dim wide, not h);
- to gated FFNs (gate, up, activation and product are d_ff wide: h + 4·d_ff values instead of
  GELU's h + 2·d_ff);
- to encoder-decoder models (decoder blocks add cross-attention whose scores are
  s_dec x s_enc, and the encoder output is kept as the input of every cross K/V projection);
- to models trained without dropout (no masks; the softmax output is kept once).

With p = 2, dropout, d_ff = 4h and multi-head attention it gives exactly 34 and 5·a·s/h.

Recomputation (Korthikanti et al. 2022, Sec. 5 and Table 2):
- `none`: everything above is kept;
- `selective`: the attention core (QKᵀ, softmax, dropout, attention over V) is recomputed,
  which drops the 5·a·s²·b term: 34·sbh per layer;
- `full`: only each layer's input is kept (2·sbh per layer with 16-bit values); during the
  backward pass one layer's activations are rebuilt at a time, a transient reported as
  `recompute_buffer`.

Flash attention (Dao et al. 2022, Sec. 3.1) never materializes the s x s scores: the
5·a·s²·b term is dropped and only the row-wise log-sum-exp statistics (fp32, a·s·b values)
are kept for the backward pass.

Beyond the layers (Korthikanti et al. 2022, Sec. 4.3): the embedding dropout mask, the final
norm's input, and the loss buffers: the logits s·b·V at the activation precision and their
fp32 copy for the softmax cross-entropy. Masked-LM heads that compute logits only at masked
positions need less; this counts every position (what BERT's reference implementation does).

Every numeric argument may be a numpy array; the result broadcasts. Tensor parallelism of
degree t with sequence parallelism divides every term by t (Korthikanti et al. 2022,
Sec. 4.2.2, Eq. 5).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import stack_shape

RECOMPUTE_KINDS = ("none", "selective", "full")

STORED_PARTS = (
    "attention",
    "attention_scores",
    "cross_attention",
    "cross_attention_scores",
    "encoder_output",
    "embedding",
    "ffn",
    "final_norm",
    "layer_inputs",
    "norms",
)
"""Parts held from the forward pass until the backward pass has used them."""

LOSS_PARTS = ("logits", "logits_fp32")
"""Transient buffers at the loss: alive at the end of the forward and start of the backward."""

BACKWARD_PARTS = ("recompute_buffer",)
"""Transient buffers that exist only during the backward pass."""

FLASH_STAT_BYTES = 4.0
"""Flash attention keeps one fp32 log-sum-exp per query row and head (Dao et al. 2022, Alg. 2)."""

LOGITS_FP32_BYTES = 4.0
"""The softmax cross-entropy runs in fp32 (mixed-precision practice, Micikevicius et al.
2018, Sec. 3.3: reductions in fp32)."""

MASK_BYTES = 1.0
"""Dropout masks are stored as one byte per element (Korthikanti et al. 2022, Sec. 4.1)."""


def _layer_terms(dims: Dimensions, p, m, *, cross: bool = False) -> dict[str, np.ndarray]:
    """Per-token bytes of one block's kept tensors (multiply by s·b), and per-token-per-key
    bytes of its attention scores (multiply by s_q·s_k·b), by part."""
    h = dims.d_model
    q_width = dims.heads * dims.d_head
    kv_width = dims.n_kv_heads * dims.d_head
    f = dims.d_ff
    # Attention: QKV input (h), Q and K for QKᵀ (q_width + kv_width), V for the product with
    # the probabilities (kv_width), the output projection's input (q_width), the output
    # dropout mask (h bytes).
    attention = p * (h + 2 * q_width + 2 * kv_width) + m * MASK_BYTES * h
    # Scores per query-key pair and head: softmax output (p), dropout mask (1) and dropout
    # output (p); without dropout the softmax output alone feeds the product with V.
    scores = dims.heads * np.where(m > 0, 2 * p + MASK_BYTES, p)
    if dims.ffn == "gated":
        # input, gate pre-activation, up projection, activation output, their product
        ffn = p * (h + 4 * f) + m * MASK_BYTES * h
    else:
        # input, first linear output (the activation's input), activation output
        ffn = p * (h + 2 * f) + m * MASK_BYTES * h
    norms = (1 if dims.parallel_block else 2) * p * h
    terms = {"attention": attention, "attention_scores": scores, "ffn": ffn, "norms": norms}
    if cross:
        # Cross-attention: query input (h), Q (q_width), output input (q_width), mask, and
        # its norm's input; K and V are per encoder position (see `cross_kv`).
        terms["cross_attention"] = p * (h + 2 * q_width) + m * MASK_BYTES * h + p * h
        terms["cross_kv"] = p * 2 * kv_width
        terms["cross_attention_scores"] = scores
    return terms


def activation_memory(
    dims: Dimensions,
    *,
    family: str = "decoder",
    seq,
    micro_batch,
    recompute: str = "selective",
    flash: bool = True,
    bytes_per_value=2.0,
    tensor_parallel=1,
    dropout: bool = True,
    decoder_seq=None,
) -> dict[str, np.ndarray]:
    """Activation bytes of one micro-batch on one device, by part (see the module docstring).

    `seq` is the (encoder) sequence length; `decoder_seq` the decoder's target length of an
    encoder-decoder (default: `seq`). Parts named in `STORED_PARTS` are held through the
    step, `LOSS_PARTS` are the logits buffers at the loss, `BACKWARD_PARTS` exist only while
    the backward pass runs.
    """
    if recompute not in RECOMPUTE_KINDS:
        raise ValueError(f"recompute must be one of {RECOMPUTE_KINDS}, got {recompute!r}")
    shape = stack_shape(dims, family)
    p = np.asarray(bytes_per_value, dtype=float)
    m = np.asarray(1.0 if dropout else 0.0)
    b = np.asarray(micro_batch, dtype=float)
    s_enc = np.asarray(seq, dtype=float)
    s_dec = s_enc if decoder_seq is None else np.asarray(decoder_seq, dtype=float)
    t = np.asarray(tensor_parallel, dtype=float)
    h = dims.d_model

    parts: dict[str, np.ndarray] = {}

    def add(name: str, value) -> None:
        parts[name] = parts.get(name, 0.0) + value / t

    stacks = []
    if shape.encoder_layers:
        stacks.append((shape.encoder_layers, s_enc, False))
    if shape.decoder_layers:
        stacks.append((shape.decoder_layers, s_dec if shape.cross_attention else s_enc, shape.cross_attention))
    out_seq = stacks[-1][1]

    one_layer = 0.0  # the largest single layer, rebuilt at once under full recomputation
    for layers, s, cross in stacks:
        terms = _layer_terms(dims, p, m, cross=cross)
        kept = {
            "attention": terms["attention"] * s * b,
            "ffn": terms["ffn"] * s * b,
            "norms": terms["norms"] * s * b,
        }
        if flash:
            kept["attention_scores"] = FLASH_STAT_BYTES * dims.heads * s * b
        else:
            kept["attention_scores"] = terms["attention_scores"] * s * s * b
        if cross:
            kept["cross_attention"] = terms["cross_attention"] * s * b + terms["cross_kv"] * s_enc * b
            kept["cross_attention_scores"] = (
                FLASH_STAT_BYTES * dims.heads * s * b if flash else terms["cross_attention_scores"] * s * s_enc * b
            )
        layer_total = sum(kept.values())
        one_layer = np.maximum(one_layer, layer_total)
        if recompute == "full":
            # Korthikanti et al. 2022, Table 2: only the layer input, 2·sbh with 16-bit values.
            add("layer_inputs", layers * p * h * s * b)
            continue
        if recompute == "selective":
            # The attention core is recomputed: its scores are not kept (Sec. 5).
            kept["attention_scores"] = kept["attention_scores"] * 0.0
            if cross:
                kept["cross_attention_scores"] = kept["cross_attention_scores"] * 0.0
        for name, value in kept.items():
            add(name, layers * value)

    if shape.cross_attention:
        # The encoder's output feeds every cross-attention K/V projection.
        add("encoder_output", p * h * s_enc * b)
    if recompute == "full":
        add("recompute_buffer", one_layer)
    # Embedding output dropout mask (Korthikanti et al. 2022, Sec. 4.3).
    add("embedding", m * MASK_BYTES * h * s_enc * b)
    # Final norm input, and the loss buffers over the vocabulary.
    add("final_norm", p * h * out_seq * b if dims.final_norm else 0.0 * b)
    add("logits", p * dims.vocab * out_seq * b)
    add("logits_fp32", LOGITS_FP32_BYTES * dims.vocab * out_seq * b)
    return parts


def stored_bytes(parts: Mapping[str, np.ndarray]):
    """Bytes held from the forward to the backward pass."""
    return sum((parts[k] for k in STORED_PARTS if k in parts), 0.0)


def loss_bytes(parts: Mapping[str, np.ndarray]):
    """The logits buffers at the loss."""
    return sum((parts[k] for k in LOSS_PARTS if k in parts), 0.0)


def backward_bytes(parts: Mapping[str, np.ndarray]):
    """Buffers that exist only during the backward pass (full recomputation's rebuilt layer)."""
    return sum((parts[k] for k in BACKWARD_PARTS if k in parts), 0.0)


def korthikanti_layer_bytes(*, seq, micro_batch, hidden, heads, recompute: str = "none"):
    """Korthikanti et al. 2022's closed forms per layer (16-bit activations, t = 1):
    none: s·b·h·(34 + 5·a·s/h) (Eq. 1); selective: 34·s·b·h (Sec. 5); full: 2·s·b·h
    (Table 2). Used to check `activation_memory` against the paper."""
    s, b, h, a = (np.asarray(x, dtype=float) for x in (seq, micro_batch, hidden, heads))
    if recompute == "none":
        return s * b * h * (34 + 5 * a * s / h)
    if recompute == "selective":
        return 34 * s * b * h
    if recompute == "full":
        return 2 * s * b * h
    raise ValueError(f"recompute must be one of {RECOMPUTE_KINDS}, got {recompute!r}")
