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
norm's input, and the loss buffers, per position and vocabulary entry: the logits at the
activation precision (p), their fp32 copy that the softmax cross-entropy saves as
log-probabilities (4), and, when its backward starts, two fp32 gradients (8): the one with
respect to the log-probabilities (the negative log-likelihood's backward writes it dense)
and the one with respect to the logits (log-softmax's backward), before it is cast to p for
the output projection. That is 12 + p bytes, 14 with 16-bit activations: 448 KB per token
for a 32,000-entry vocabulary (PyTorch's unfused `log_softmax` + `nll_loss`; a fused
cross-entropy kernel needs less). Masked-LM heads that compute logits only at masked
positions need less; this counts every position (what BERT's reference implementation does).

The loss buffers and the layer that full recomputation rebuilds are never alive together:
the loss's backward frees the logits before the first layer is rebuilt
(`genaisdk.estimate.memory.training_memory` takes the larger).

Tensor parallelism of degree t (Korthikanti et al. 2022, Sec. 4.2 and Table 2) splits the
attention heads, the FFN's inner columns and the vocabulary, so per layer

    TP:                         s·b·h·(10 + 24/t + 5·a·s/(h·t))
    TP + sequence parallelism:  s·b·h·(34/t + 5·a·s/(h·t))
    TP + selective:             s·b·h·(10 + 24/t)
    TP + SP + selective:        s·b·h·34/t
    full recomputation:         2·s·b·h (/t with sequence parallelism)

The 10·sbh that tensor parallelism alone leaves whole on every device are the two layer-norm
inputs (4), the inputs of the QKV and first FFN projections (4) and the two dropout masks
(2); sequence parallelism splits them along the sequence. With fewer K/V heads than t the
K/V projections are replicated, and so are K and V (`tensor_group_kv_heads`).

Every numeric argument may be a numpy array; the result broadcasts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import stack_shape, tensor_group_kv_heads

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
    "kbit_upcast",
    "lora_inputs",
)
"""Parts held from the forward pass until the backward pass has used them (the last two:
what a k-bit base and LoRA adapters add, `genaisdk.estimate.adaptation`)."""

LOSS_PARTS = ("logits", "logits_fp32", "loss_gradients")
"""Transient buffers at the loss: alive at the end of the forward and start of the backward."""

BACKWARD_PARTS = ("recompute_buffer", "kbit_upcast_rebuilt", "lora_inputs_rebuilt")
"""Transient buffers that exist only during the backward pass."""

FLASH_STAT_BYTES = 4.0
"""Flash attention keeps one fp32 log-sum-exp per query row and head (Dao et al. 2022, Alg. 2)."""

LOGITS_FP32_BYTES = 4.0
"""The softmax cross-entropy runs in fp32 (mixed-precision practice, Micikevicius et al.
2018, Sec. 3.3: reductions in fp32)."""

LOSS_GRADIENT_BYTES = 8.0
"""Two fp32 gradients at the start of the loss's backward, per position and vocabulary
entry: with respect to the log-probabilities and with respect to the logits (PyTorch's
`nll_loss` and `log_softmax` backward; module docstring)."""

MASK_BYTES = 1.0
"""Dropout masks are stored as one byte per element (Korthikanti et al. 2022, Sec. 4.1)."""


def _layer_terms(dims: Dimensions, p, m, kv_heads, *, cross: bool = False) -> dict[str, tuple]:
    """Per-token bytes of one block's kept tensors (multiply by s·b), and per-token-per-key
    bytes of its attention scores (multiply by s_q·s_k·b), by part, each as a pair
    (sharded, replicated): the first part is split over a tensor-parallel group of t (heads
    and FFN columns: Shoeybi et al. 2019, Sec. 3), the second is held whole by every member
    unless sequence parallelism splits it along the sequence (Korthikanti et al. 2022,
    Sec. 4.2.2: layer-norm inputs, dropout masks and the inputs of the first linear layers).
    `kv_heads` is the K/V heads the group holds in total (`tensor_group_kv_heads`)."""
    h = dims.d_model
    q_width = dims.heads * dims.d_head
    kv_width = kv_heads * dims.d_head
    f = dims.d_ff
    # Attention: QKV input (h, replicated), Q and K for QKᵀ (q_width + kv_width), V for the
    # product with the probabilities (kv_width), the output projection's input (q_width), the
    # output dropout mask (h bytes, replicated).
    attention = (p * (2 * q_width + 2 * kv_width), p * h + m * MASK_BYTES * h)
    # Scores per query-key pair and head: softmax output (p), dropout mask (1) and dropout
    # output (p); without dropout the softmax output alone feeds the product with V.
    scores = (dims.heads * np.where(m > 0, 2 * p + MASK_BYTES, p), 0.0)
    if dims.ffn == "gated":
        # input (replicated); gate pre-activation, up projection, activation output, their
        # product (sharded); the output dropout mask (replicated)
        ffn = (p * 4 * f, p * h + m * MASK_BYTES * h)
    else:
        # input (replicated); first linear output, activation output (sharded); mask
        ffn = (p * 2 * f, p * h + m * MASK_BYTES * h)
    norms = (0.0, (1 if dims.parallel_block else 2) * p * h)
    terms = {"attention": attention, "attention_scores": scores, "ffn": ffn, "norms": norms}
    if cross:
        # Cross-attention: query input (h), Q (q_width), output input (q_width), mask, and
        # its norm's input; K and V are per encoder position (see `cross_kv`).
        terms["cross_attention"] = (p * 2 * q_width, p * h + m * MASK_BYTES * h + p * h)
        terms["cross_kv"] = (p * 2 * kv_width, 0.0)
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
    sequence_parallel=True,
    dropout: bool = True,
    decoder_seq=None,
) -> dict[str, np.ndarray]:
    """Activation bytes of one micro-batch on one device, by part (see the module docstring).

    `seq` is the (encoder) sequence length; `decoder_seq` the decoder's target length of an
    encoder-decoder (default: `seq`). Parts named in `STORED_PARTS` are held through the
    step, `LOSS_PARTS` are the logits buffers at the loss, `BACKWARD_PARTS` exist only while
    the backward pass runs.

    `tensor_parallel` t divides what Megatron's tensor parallelism splits (heads, FFN
    columns, vocabulary); `sequence_parallel` (default true) also divides the rest, the
    layer-norm and dropout tensors and the first linear layers' inputs, which tensor
    parallelism alone replicates (Korthikanti et al. 2022, Table 2). With fewer K/V heads
    than t, K and V are replicated (`tensor_group_kv_heads`). Both may be numpy arrays.
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
    # Replicated tensors are split only under sequence parallelism.
    rep = np.where(np.asarray(sequence_parallel, dtype=bool), t, 1.0)
    kv_heads = tensor_group_kv_heads(dims, t)
    h = dims.d_model

    parts: dict[str, np.ndarray] = {}

    def per_device(pair, scale):
        sharded, replicated = pair
        return scale * (sharded / t + replicated / rep)

    def add(name: str, value) -> None:
        parts[name] = parts.get(name, 0.0) + value

    stacks = []
    if shape.encoder_layers:
        stacks.append((shape.encoder_layers, s_enc, False))
    if shape.decoder_layers:
        stacks.append((shape.decoder_layers, s_dec if shape.cross_attention else s_enc, shape.cross_attention))
    out_seq = stacks[-1][1]

    one_layer = 0.0  # the largest single layer, rebuilt at once under full recomputation
    for layers, s, cross in stacks:
        terms = _layer_terms(dims, p, m, kv_heads, cross=cross)
        kept = {
            "attention": per_device(terms["attention"], s * b),
            "ffn": per_device(terms["ffn"], s * b),
            "norms": per_device(terms["norms"], s * b),
        }
        if flash:
            kept["attention_scores"] = FLASH_STAT_BYTES * dims.heads * s * b / t
        else:
            kept["attention_scores"] = per_device(terms["attention_scores"], s * s * b)
        if cross:
            kept["cross_attention"] = per_device(terms["cross_attention"], s * b) + per_device(terms["cross_kv"], s_enc * b)
            kept["cross_attention_scores"] = (
                FLASH_STAT_BYTES * dims.heads * s * b / t if flash else per_device(terms["cross_attention_scores"], s * s_enc * b)
            )
        layer_total = sum(kept.values())
        one_layer = np.maximum(one_layer, layer_total)
        if recompute == "full":
            # Korthikanti et al. 2022, Table 2: only the layer input, 2·sbh with 16-bit
            # values, split over t only with sequence parallelism.
            add("layer_inputs", layers * p * h * s * b / rep)
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
        add("encoder_output", p * h * s_enc * b / rep)
    if recompute == "full":
        add("recompute_buffer", one_layer)
    # Embedding output dropout mask (Korthikanti et al. 2022, Sec. 4.3).
    add("embedding", m * MASK_BYTES * h * s_enc * b / rep)
    # Final norm input, and the loss buffers over the vocabulary (vocabulary-parallel
    # cross-entropy: the logits are split over t, Shoeybi et al. 2019, Sec. 3).
    add("final_norm", p * h * out_seq * b / rep if dims.final_norm else 0.0 * b)
    add("logits", p * dims.vocab * out_seq * b / t)
    add("logits_fp32", LOGITS_FP32_BYTES * dims.vocab * out_seq * b / t)
    add("loss_gradients", LOSS_GRADIENT_BYTES * dims.vocab * out_seq * b / t)
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


def korthikanti_layer_bytes(
    *, seq, micro_batch, hidden, heads, recompute: str = "none", tensor_parallel=1, sequence_parallel=False
):
    """Korthikanti et al. 2022's closed forms per layer, 16-bit activations (Table 2):

    - none: s·b·h·(10 + 24/t + 5·a·s/(h·t)), with sequence parallelism s·b·h·(34/t + 5·a·s/(h·t))
      (t = 1: Eq. 1, s·b·h·(34 + 5·a·s/h));
    - selective: s·b·h·(10 + 24/t), with sequence parallelism s·b·h·34/t;
    - full: 2·s·b·h, with sequence parallelism 2·s·b·h/t.

    Used to check `activation_memory` against the paper."""
    s, b, h, a, t = (np.asarray(x, dtype=float) for x in (seq, micro_batch, hidden, heads, tensor_parallel))
    sp = np.asarray(sequence_parallel, dtype=bool)
    whole = np.where(sp, 10 / t, 10.0)  # the part tensor parallelism alone leaves whole
    if recompute == "none":
        return s * b * h * (whole + 24 / t + 5 * a * s / (h * t))
    if recompute == "selective":
        return s * b * h * (whole + 24 / t)
    if recompute == "full":
        return 2 * s * b * h / np.where(sp, t, 1.0)
    raise ValueError(f"recompute must be one of {RECOMPUTE_KINDS}, got {recompute!r}")
