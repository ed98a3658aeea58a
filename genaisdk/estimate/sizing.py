"""Propose `Dimensions` for a target parameter count (`size = 3B`, `size = auto`).

Shapes follow a published family's aspect ratios: d_model and depth are interpolated, in
log space, along GPT-3's Table 2.1 (Brown et al. 2020), eight models from 125M to 175B;
Kaplan et al. 2020 (Sec. 3.1, Fig. 5) find the loss nearly flat over a wide range of depth
to width, so following a trained family is a safe choice rather than an optimum. Then:

- d_model is rounded to a multiple of the head size (128, as LLaMA and GPT-3's larger
  models; 64 for small widths) and heads = d_model / head size;
- d_ff is 4·d_model for a GELU FFN (Vaswani et al. 2017) or 8/3·d_model rounded up to a
  multiple of 256 for a gated one (Shazeer 2020; Touvron et al. 2023, Sec. 2.2);
- the depth is solved so that the exact count (embeddings included) lands nearest the
  target; an encoder-decoder splits it evenly between its stacks.
"""

from __future__ import annotations

import math

import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import block_params, canonical_family, count_params

GPT3_SHAPES = (
    # (parameters, layers, d_model), Brown et al. 2020, Table 2.1
    (125e6, 12, 768),
    (350e6, 24, 1024),
    (760e6, 24, 1536),
    (1.3e9, 24, 2048),
    (2.7e9, 32, 2560),
    (6.7e9, 32, 4096),
    (13e9, 40, 5140),
    (175e9, 96, 12288),
)

DEFAULTS = {
    "decoder": {"ffn": "gated", "norm": "rmsnorm", "positions": "rotary", "biases": False, "tied_embeddings": False},
    "encoder": {"ffn": "gelu", "norm": "layernorm", "positions": "learned", "biases": True, "tied_embeddings": True},
    "encoder_decoder": {"ffn": "gated", "norm": "rmsnorm", "positions": "relative", "biases": False, "tied_embeddings": False},
}
"""Block choices per family when the spec gives none: decoders as LLaMA (Touvron et al.
2023), encoders as BERT (Devlin et al. 2019), encoder-decoders as T5 v1.1 / FLAN-T5."""


def _interp_d_model(target: float) -> float:
    logs = np.log([p for p, _, _ in GPT3_SHAPES])
    widths = np.log([d for _, _, d in GPT3_SHAPES])
    x = math.log(max(target, 1.0))
    # Extrapolate beyond the table along its end slopes.
    if x <= logs[0]:
        slope = (widths[1] - widths[0]) / (logs[1] - logs[0])
        return math.exp(widths[0] + slope * (x - logs[0]))
    if x >= logs[-1]:
        slope = (widths[-1] - widths[-2]) / (logs[-1] - logs[-2])
        return math.exp(widths[-1] + slope * (x - logs[-1]))
    return math.exp(float(np.interp(x, logs, widths)))


def gated_d_ff(d_model: int, multiple: int = 256) -> int:
    """8/3·d_model rounded up to a multiple (LLaMA: 4096 -> 11008 with multiple 256)."""
    return int(multiple * math.ceil((8 * d_model / 3) / multiple))


def propose_dimensions(
    target_params: float,
    *,
    family: str = "decoder",
    vocab: int = 32_000,
    context: int = 2048,
    head_dim: int | None = None,
    ffn: str | None = None,
    norm: str | None = None,
    positions: str | None = None,
    biases: bool | None = None,
    tied_embeddings: bool | None = None,
    kv_heads: int | None = None,
) -> Dimensions:
    """Dimensions whose exact parameter count is nearest `target_params` (module docstring).

    Any block choice left None takes the family's default (`DEFAULTS`). `kv_heads` sets
    grouped-query attention (None: multi-head)."""
    family = canonical_family(family)
    if not target_params > 0:
        raise ValueError(f"target parameter count must be > 0, got {target_params!r}")
    choice = dict(DEFAULTS[family])
    for key, value in (("ffn", ffn), ("norm", norm), ("positions", positions), ("biases", biases), ("tied_embeddings", tied_embeddings)):
        if value is not None:
            choice[key] = value

    width = _interp_d_model(target_params)
    head = head_dim or (128 if width >= 1536 else 64)
    # Widths divisible by a few heads' worth keep head counts friendly to tensor parallelism.
    step = head * (8 if width >= 8192 else 4 if width >= 2048 else 1)
    widths = range(step, step * (int(1.5 * width / step) + 2), step)

    results: list[tuple[float, float, Dimensions]] = []
    for d_model in widths:
        heads = max(1, d_model // head)
        kv = None if kv_heads is None else min(kv_heads, heads)
        d_ff = gated_d_ff(d_model) if choice["ffn"] == "gated" else 4 * d_model
        base = Dimensions(
            layers=1, d_model=d_model, heads=heads, head_dim=min(head, d_model), kv_heads=kv, d_ff=d_ff,
            vocab=vocab, context=context, **choice,
        )
        per_layer = sum(block_params(base).values())
        if family == "encoder_decoder":
            per_layer += sum(block_params(base, cross_attention=True).values())
        fixed = count_params(base, family).total - per_layer  # one layer (per stack) is in the count
        layers_guess = max(1, round((target_params - fixed) / per_layer))
        for layers in {max(1, layers_guess - 1), layers_guess, layers_guess + 1}:
            dims = base.evolve(layers=layers, decoder_layers=layers if family == "encoder_decoder" else None)
            error = abs(math.log(count_params(dims, family).total / target_params))
            results.append((error, abs(math.log(d_model / width)), dims))
    # Nearest count first; among counts within 2% of the best, the width nearest the family's.
    best_error = min(r[0] for r in results)
    close = [r for r in results if r[0] <= best_error + 0.02]
    best = min(close, key=lambda r: (r[1], r[0]))
    return best[2]
