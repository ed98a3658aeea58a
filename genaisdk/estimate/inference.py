"""Serving memory per replica: weights at the serving precision plus the KV cache.

KV cache (Pope et al. 2022, "Efficiently Scaling Transformer Inference", Sec. 3.1; Ainslie
et al. 2023 for grouped-query attention):

    2 · layers · kv_heads · head_dim · context · batch · bytes

the 2 for keys and values, `kv_heads` (not `heads`: multi-query and grouped-query attention
cache only their key/value heads). An encoder-decoder's decoder caches its self-attention
over the generated tokens and, once, the cross-attention keys and values over the encoder's
input.

The working memory of one forward step is estimated as the prefill of the whole prompt
through one layer at a time (residual stream plus the widest intermediate) and the last
position's fp32 logits; an estimate, on its own line.

Every numeric argument broadcasts over numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.constants import RUNTIME_CONTEXT_BYTES
from genaisdk.estimate.params import canonical_family

KV_FACTOR = 2
"""One cached key and one cached value per position, head and layer."""


def kv_cache_bytes(*, layers, kv_heads, head_dim, context, batch, bytes_per_value):
    """2 · layers · kv_heads · head_dim · context · batch · bytes (Pope et al. 2022, Sec. 3.1)."""
    return (
        KV_FACTOR
        * np.asarray(layers, dtype=float)
        * np.asarray(kv_heads, dtype=float)
        * np.asarray(head_dim, dtype=float)
        * np.asarray(context, dtype=float)
        * np.asarray(batch, dtype=float)
        * np.asarray(bytes_per_value, dtype=float)
    )


def model_kv_cache_bytes(dims: Dimensions, *, family="decoder", context, batch, bytes_per_value, input_context=None):
    """KV cache of a model. Encoders keep none (one pass, nothing generated); a decoder
    caches self-attention K/V for `context` positions; an encoder-decoder's decoder also
    caches cross-attention K/V over `input_context` encoder positions (default `context`)."""
    family = canonical_family(family)
    if family == "encoder":
        return 0.0 * np.asarray(context, dtype=float) * np.asarray(batch, dtype=float)
    layers = dims.n_decoder_layers if family == "encoder_decoder" else dims.layers
    cache = kv_cache_bytes(
        layers=layers,
        kv_heads=dims.n_kv_heads,
        head_dim=dims.d_head,
        context=context,
        batch=batch,
        bytes_per_value=bytes_per_value,
    )
    if family == "encoder_decoder":
        cache = cache + kv_cache_bytes(
            layers=layers,
            kv_heads=dims.n_kv_heads,
            head_dim=dims.d_head,
            context=context if input_context is None else input_context,
            batch=batch,
            bytes_per_value=bytes_per_value,
        )
    return cache


def prefill_workspace_bytes(dims: Dimensions, *, context, batch, bytes_per_value):
    """One layer's forward over the whole prompt: the residual stream (d_model) plus the
    widest intermediate (q, k, v together, or the FFN's d_ff, two of them when gated), and
    the last position's fp32 logits. Flash attention never holds the s x s scores."""
    s = np.asarray(context, dtype=float)
    b = np.asarray(batch, dtype=float)
    qkv = dims.heads * dims.d_head + 2 * dims.n_kv_heads * dims.d_head
    ffn = dims.d_ff * (2 if dims.ffn == "gated" else 1)
    return s * b * np.asarray(bytes_per_value, dtype=float) * (dims.d_model + max(qkv, ffn)) + b * dims.vocab * 4.0


@attrs.frozen(kw_only=True)
class InferenceMemory:
    weights: np.ndarray | float
    kv_cache: np.ndarray | float
    workspace: np.ndarray | float
    overheads: Mapping[str, np.ndarray | float]
    total: np.ndarray | float


def inference_memory(
    dims: Dimensions,
    *,
    params,
    family="decoder",
    weight_bytes,
    context,
    batch,
    kv_bytes=2.0,
    activation_bytes=2.0,
    input_context=None,
    runtime_bytes=RUNTIME_CONTEXT_BYTES,
) -> InferenceMemory:
    """Serving memory per replica: weights (params x serving bytes) + KV cache + workspace +
    runtime context, a plain sum since all of them are alive while a batch decodes."""
    weights = np.asarray(params, dtype=float) * np.asarray(weight_bytes, dtype=float)
    cache = model_kv_cache_bytes(
        dims, family=family, context=context, batch=batch, bytes_per_value=kv_bytes, input_context=input_context
    )
    workspace = prefill_workspace_bytes(dims, context=context, batch=batch, bytes_per_value=activation_bytes)
    runtime = np.asarray(runtime_bytes, dtype=float)
    total = weights + cache + workspace + runtime
    return InferenceMemory(weights=weights, kv_cache=cache, workspace=workspace, overheads={"runtime": runtime}, total=total)
