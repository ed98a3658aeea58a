"""Serving memory per replica: weights at the serving precision, the KV cache, one step's
working memory and the runtime context.

Weights: parameters × the precision's bytes for a dense format; a weight-only int8 or NF4
format is counted tensor by tensor (`genaisdk.estimate.quantization.serving_weights`): the
integer codes, the quantization constants as stored (int8: a bf16 scale per output
channel; NF4: an 8-bit absmax per 64 weights, an fp32 constant per 256 absmaxes and a mean
per layer) and the vectors kept in 16 bits.

KV cache (Pope et al. 2022, "Efficiently Scaling Transformer Inference", Sec. 3.1; Ainslie
et al. 2023 for grouped-query attention):

    2 · layers · kv_heads · head_dim · context · batch · bytes

the 2 for keys and values, `kv_heads` (not `heads`: multi-query and grouped-query attention
cache only their key/value heads), `bytes` those of the KV cache's own type (16-bit by
default; an fp8 or int8 cache halves it, as vLLM's `kv_cache_dtype` does, scale factors
left out). An encoder-decoder's decoder caches its self-attention over the generated tokens
and, once, the cross-attention keys and values over the encoder's input.

Working memory of one step: serving engines prefill a long prompt in chunks, so one step
processes at most `prefill_tokens` tokens (vLLM's `max_num_batched_tokens`, default 2048,
`genaisdk.estimate.constants.SERVE_PREFILL_TOKENS`). The workspace is those tokens through
one layer at a time (residual stream plus the widest intermediate) and one row of fp32
logits per sequence; flash attention reads the cached keys and values without holding the
scores. An estimate, on its own line.

Every numeric argument broadcasts over numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.constants import RUNTIME_CONTEXT_BYTES, SERVE_PREFILL_TOKENS
from genaisdk.estimate.params import canonical_family
from genaisdk.estimate.quantization import serving_weights

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


def step_tokens(*, context, batch, prefill_tokens=SERVE_PREFILL_TOKENS):
    """Tokens one serving step processes: the prefill chunk, never more than the context x
    batch tokens there are (`prefill_tokens=None`: the whole prompt in one step)."""
    whole = np.asarray(context, dtype=float) * np.asarray(batch, dtype=float)
    if prefill_tokens is None:
        return whole
    return np.minimum(np.asarray(prefill_tokens, dtype=float), whole)


def widest_values(dims: Dimensions) -> float:
    """Values per token one layer holds at its widest: the residual stream (d_model) plus
    the widest intermediate, q, k and v together or the FFN's d_ff (two of them when gated)."""
    qkv = dims.heads * dims.d_head + 2 * dims.n_kv_heads * dims.d_head
    ffn = dims.d_ff * (2 if dims.ffn == "gated" else 1)
    return float(dims.d_model + max(qkv, ffn))


LOGIT_BYTES = 4.0
"""Logits are computed in fp32 before sampling (one row of `vocab` values per sequence)."""


def prefill_workspace_bytes(dims: Dimensions, *, context, batch, bytes_per_value, prefill_tokens=SERVE_PREFILL_TOKENS):
    """One step's working memory: `step_tokens` tokens through one layer at a time
    (`widest_values` per token at `bytes_per_value`) plus one fp32 logits row per sequence.
    Flash attention never holds the s x s scores (Dao et al. 2022). Bytes."""
    tokens = step_tokens(context=context, batch=batch, prefill_tokens=prefill_tokens)
    b = np.asarray(batch, dtype=float)
    return tokens * np.asarray(bytes_per_value, dtype=float) * widest_values(dims) + b * dims.vocab * LOGIT_BYTES


@attrs.frozen(kw_only=True)
class InferenceMemory:
    weights: np.ndarray | float
    """Every served weight byte, `weight_constants` included."""
    kv_cache: np.ndarray | float
    workspace: np.ndarray | float
    overheads: Mapping[str, np.ndarray | float]
    total: np.ndarray | float
    weight_constants: float = 0.0
    """Of `weights`: the quantization constants (scales, absmaxes) of a quantized format."""


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
    prefill_tokens=SERVE_PREFILL_TOKENS,
    runtime_bytes=RUNTIME_CONTEXT_BYTES,
    weight_format=None,
) -> InferenceMemory:
    """Serving memory per replica, bytes: weights (params x serving bytes per weight, or
    for `weight_format` 'int8' or 'nf4' codes + constants + 16-bit vectors, tensor by
    tensor: `serving_weights`) + KV cache (`kv_bytes` per cached value) + one step's
    workspace (`prefill_tokens` per step, None: the whole prompt at once) + runtime context,
    a plain sum since all of them are alive while a batch decodes."""
    served = serving_weights(dims, params=params, weight_bytes=weight_bytes, fmt=weight_format, family=family)
    weights = served.total
    cache = model_kv_cache_bytes(
        dims, family=family, context=context, batch=batch, bytes_per_value=kv_bytes, input_context=input_context
    )
    workspace = prefill_workspace_bytes(
        dims, context=context, batch=batch, bytes_per_value=activation_bytes, prefill_tokens=prefill_tokens
    )
    runtime = np.asarray(runtime_bytes, dtype=float)
    total = weights + cache + workspace + runtime
    return InferenceMemory(
        weights=weights, kv_cache=cache, workspace=workspace, overheads={"runtime": runtime}, total=total,
        weight_constants=float(served.constants),
    )
