"""Transformer building blocks as pure functions of (parameters, activations).

Shapes use one-letter axes: b batch, s query length, t key length, e embed (d_model),
h query heads, g key/value heads, r query heads per key/value head (h = g·r), d head size,
f feed-forward width (d_ff), v vocabulary.

Numerics follow the precision policy: matrix products run in the compute dtype, while
normalization statistics, attention softmax and logits are computed in fp32
(Micikevicius et al. 2018, Sec. 3.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genaisdk.backend.jax.precision import Policy
from genaisdk.dims import ACTIVATIONS, DEFAULT_ACTIVATION, DEFAULT_NORM_EPS, RotaryScaling

NEG_INF = -1e30
"""Added to masked attention scores (finite, so a fully masked row gives a uniform softmax, not NaN)."""

LAYERNORM_EPS = DEFAULT_NORM_EPS["layernorm"]
RMSNORM_EPS = DEFAULT_NORM_EPS["rmsnorm"]

ROTARY_BASE = 10_000.0
"""Default θ of rotary embeddings (Su et al. 2021, "RoFormer", Eq. 15); `Dimensions.rotary_base`."""

RELATIVE_MAX_DISTANCE = 128
"""Default distance from which T5's relative buckets stop growing (Raffel et al. 2020,
Sec. 2.1); `Dimensions.relative_max_distance`, with the bucket count `relative_buckets`."""

Q_AXES = ("batch", None, "q_heads", "kv")
"""Logical axes of queries and attention outputs [b, s, h, d] (whole along the sequence)."""
KV_AXES = ("batch", None, "kv_heads", "kv")
"""Logical axes of keys and values [b, t, g, d]."""
HIDDEN_AXES = ("batch", None, "mlp")
"""Logical axes of the FFN's hidden activations [b, s, f]."""


def _unconstrained(x: jax.Array, axes: tuple[str | None, ...] = ()) -> jax.Array:
    return x


def dense(x: Any, policy: Policy) -> jax.Array:
    """`x` itself, or, for a quantized weight (`genaisdk.backend.jax.quantize`), its values
    dequantized to the compute dtype: the one place quantized weights turn into numbers."""
    dequantize = getattr(x, "dequantize", None)
    return dequantize(policy.compute_dtype) if dequantize is not None else x


def einsum(spec: str, *operands: jax.Array, policy: Policy, out: Any = None) -> jax.Array:
    """`jnp.einsum` in the compute dtype at the policy's matmul precision; `out` sets the
    accumulation/result dtype (fp32 for logits and attention scores). A quantized operand
    is dequantized in the product (weight-only quantization); an adapted kernel
    (`genaisdk.backend.jax.lora.LoraWeight`) computes its own product, the frozen one plus
    its adapters'."""
    for index, operand in enumerate(operands):
        adapted = getattr(operand, "adapted_einsum", None)
        if adapted is not None:
            return adapted(spec, operands, index, policy=policy, out=out)
    return jnp.einsum(
        spec,
        *(dense(x, policy) for x in operands),
        precision=policy.matmul_precision,
        preferred_element_type=out if out is not None else policy.compute_dtype,
    )


def layer_norm(x: jax.Array, p: dict, policy: Policy, eps: float = LAYERNORM_EPS) -> jax.Array:
    """LayerNorm (Ba et al. 2016, Eq. 4), statistics in fp32; without a bias where the model
    has none (PaLM, Chowdhery et al. 2022, Sec. 2)."""
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    y = y * p["scale"].astype(jnp.float32)
    if "bias" in p:
        y = y + p["bias"].astype(jnp.float32)
    return y.astype(policy.compute_dtype)


def rms_norm(x: jax.Array, p: dict, policy: Policy, eps: float = RMSNORM_EPS) -> jax.Array:
    """RMSNorm (Zhang & Sennrich 2019, Eq. 4): no centring, no bias; statistics in fp32."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps)
    return (y * p["scale"].astype(jnp.float32)).astype(policy.compute_dtype)


def norm(kind: str, x: jax.Array, p: dict, policy: Policy, eps: float | None = None) -> jax.Array:
    """LayerNorm or RMSNorm by `kind`; `eps` None takes the kind's default (`DEFAULT_NORM_EPS`)."""
    eps = DEFAULT_NORM_EPS[kind] if eps is None else eps
    return layer_norm(x, p, policy, eps) if kind == "layernorm" else rms_norm(x, p, policy, eps)


def lookup(table: Any, ids: jax.Array, policy: Policy) -> jax.Array:
    """Rows `ids` of an embedding table [rows, e] (token or learned-position embeddings);
    ids beyond the table are clamped, so padding never reads outside it."""
    return jnp.take(dense(table, policy), ids, axis=0, mode="clip")


def activate(kind: str, x: jax.Array) -> jax.Array:
    """The nonlinearity `kind` of `genaisdk.dims.ACTIVATIONS`: exact GELU x·Φ(x), its tanh
    approximation (Hendrycks & Gimpel 2016, Sec. 2), ReLU or SiLU (x·σ(x))."""
    if kind == "gelu":
        return jax.nn.gelu(x, approximate=False)
    if kind == "gelu_tanh":
        return jax.nn.gelu(x, approximate=True)
    if kind == "relu":
        return jax.nn.relu(x)
    if kind == "silu":
        return jax.nn.silu(x)
    raise ValueError(f"unknown activation {kind!r}; expected one of {', '.join(ACTIVATIONS)}")


# ----------------------------------------------------------------------------- positions


def rotary_inv_freq(d: int, base: float = ROTARY_BASE, scaling: RotaryScaling | None = None) -> np.ndarray:
    """The d/2 inverse frequencies base^(-i/(d/2)) of rotary embeddings (Su et al. 2021,
    Eq. 15), float32, stretched by `scaling`:

    - 'linear': every frequency divided by `factor` (position interpolation, Chen et al.
      2023, Eq. 4);
    - 'llama3': wavelengths 2π/f above `original_context / low_freq_factor` divided by
      `factor`, those below `original_context / high_freq_factor` kept, and in between a
      blend (1 − a)·f/factor + a·f with a = (original_context/wavelength − low) / (high − low)
      (Meta's Llama 3.1 reference code, as in Hugging Face's `rope_type = "llama3"`).

    Computed in float64 on the host (a static constant of the compiled program), then cast.
    """
    half = d // 2
    inv = base ** (-np.arange(half, dtype=np.float64) / max(half, 1))
    if scaling is not None:
        if scaling.kind == "linear":
            inv = inv / scaling.factor
        else:
            low_wavelength = scaling.original_context / scaling.low_freq_factor
            high_wavelength = scaling.original_context / scaling.high_freq_factor
            wavelength = 2.0 * math.pi / inv
            scaled = np.where(wavelength > low_wavelength, inv / scaling.factor, inv)
            blend = (scaling.original_context / wavelength - scaling.low_freq_factor) / (
                scaling.high_freq_factor - scaling.low_freq_factor
            )
            smoothed = (1.0 - blend) * scaled / scaling.factor + blend * scaled
            medium = (wavelength >= high_wavelength) & (wavelength <= low_wavelength)
            inv = np.where(medium, smoothed, scaled)
    return inv.astype(np.float32)


def rotary(
    x: jax.Array, positions: jax.Array, *, base: float = ROTARY_BASE, scaling: RotaryScaling | None = None
) -> jax.Array:
    """Rotary position embedding of x[b, s, heads, d] at positions[b, s] (Su et al. 2021,
    Eq. 34), in the half-split layout: dimension i pairs with i + d/2 (the layout of
    Hugging Face's LLaMA, Mistral and Qwen2 checkpoints). Frequencies: `rotary_inv_freq`."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = jnp.asarray(rotary_inv_freq(d, base, scaling))
    angles = positions.astype(jnp.float32)[:, :, None, None] * inv_freq
    sin, cos = jnp.sin(angles), jnp.cos(angles)
    x32 = x.astype(jnp.float32)
    x1, x2 = x32[..., :half], x32[..., half : 2 * half]
    rotated = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]
    if d % 2:
        rotated.append(x32[..., 2 * half :])
    return jnp.concatenate(rotated, axis=-1).astype(x.dtype)


def sinusoidal(positions: jax.Array, d_model: int) -> jax.Array:
    """Fixed sinusoidal positions (Vaswani et al. 2017, Sec. 3.5): [b, s, d_model] in fp32."""
    half = d_model // 2
    inv = 10_000.0 ** (-jnp.arange(half, dtype=jnp.float32) * 2.0 / d_model)
    angles = positions.astype(jnp.float32)[..., None] * inv
    table = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(*positions.shape, 2 * half)
    if d_model % 2:
        table = jnp.pad(table, [(0, 0)] * (table.ndim - 1) + [(0, 1)])
    return table


def relative_buckets(
    query_len: int,
    key_len: int,
    *,
    bidirectional: bool,
    num_buckets: int,
    max_distance: int = RELATIVE_MAX_DISTANCE,
    offset: jax.Array | None = None,
) -> jax.Array:
    """T5's bucket of each (query i, key j) offset j − i: [s, t] int32.

    Half the buckets hold exact small distances, the rest logarithmically wider ranges up
    to `max_distance`; a bidirectional stack spends half its buckets on each
    direction, a causal one only looks back (Raffel et al. 2020, Sec. 2.1). `offset`
    ([..., s, t], key position − query position) replaces the offsets of queries 0..s−1
    over keys 0..t−1 (a cached decoding step, whose query sits at a later position).
    """
    if offset is None:
        offset = jnp.arange(key_len)[None, :] - jnp.arange(query_len)[:, None]
    distance = -offset
    buckets = num_buckets
    base = jnp.zeros_like(distance)
    if bidirectional:
        buckets //= 2
        base = jnp.where(distance < 0, buckets, 0)
        distance = jnp.abs(distance)
    else:
        distance = jnp.maximum(distance, 0)
    exact = max(buckets // 2, 1)
    log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / exact) / math.log(max_distance / exact)
    far = jnp.minimum(exact + (log_ratio * (buckets - exact)).astype(jnp.int32), buckets - 1)
    return base + jnp.where(distance < exact, distance, far)


def relative_bias(
    table: jax.Array,
    query_len: int,
    key_len: int,
    *,
    bidirectional: bool,
    max_distance: int = RELATIVE_MAX_DISTANCE,
    offset: jax.Array | None = None,
) -> jax.Array:
    """Attention bias [1, heads, s, t] in fp32 from a [buckets, heads] table ([b, heads, s, t]
    for an `offset` [b, s, t], see `relative_buckets`)."""
    buckets = relative_buckets(
        query_len,
        key_len,
        bidirectional=bidirectional,
        num_buckets=table.shape[0],
        max_distance=max_distance,
        offset=offset,
    )
    bias = jnp.moveaxis(table.astype(jnp.float32)[buckets], -1, -3)  # [..., h, s, t]
    return bias if bias.ndim == 4 else bias[None]


def alibi_slopes(heads: int) -> jax.Array:
    """ALiBi's per-head slopes (Press et al. 2022, Sec. 3): the geometric sequence
    2^(-8i/n) for n a power of two; otherwise those of the next lower power of two followed
    by every other slope of the next higher one."""

    def geometric(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    low = 2 ** int(math.floor(math.log2(heads)))
    slopes = geometric(low)
    if low < heads:
        slopes += geometric(2 * low)[0::2][: heads - low]
    return jnp.asarray(slopes, jnp.float32)


def alibi_bias(heads: int, query_len: int, key_len: int, *, offset: jax.Array | None = None) -> jax.Array:
    """−slope·|i − j| for every head: [1, heads, s, t] in fp32 (the causal half is what a
    decoder sees; an encoder uses the symmetric distance). `offset` [b, s, t] (key position
    − query position) gives [b, heads, s, t] for queries at later positions (cached decoding)."""
    if offset is None:
        distance = jnp.abs(jnp.arange(key_len)[None, :] - jnp.arange(query_len)[:, None]).astype(jnp.float32)
        return (-alibi_slopes(heads)[:, None, None] * distance)[None]
    distance = jnp.abs(offset).astype(jnp.float32)[:, None]
    return -alibi_slopes(heads)[None, :, None, None] * distance


# ----------------------------------------------------------------------------- attention


def project_kv(
    p: dict,
    memory: jax.Array,
    *,
    k_positions: jax.Array | None,
    use_rotary: bool,
    policy: Policy,
    rotary_base: float = ROTARY_BASE,
    rotary_scaling: RotaryScaling | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Keys and values [b, t, g, d] of memory[b, t, e] (rotated when the model is rotary):
    what a KV cache stores for each position."""
    k = einsum("bte,egd->btgd", memory, p["k"], policy=policy)
    v = einsum("bte,egd->btgd", memory, p["v"], policy=policy)
    if "k_bias" in p:
        k = k + p["k_bias"]
        v = v + p["v_bias"]
    if use_rotary:
        k = rotary(k, k_positions, base=rotary_base, scaling=rotary_scaling)
    return k, v


def attention(
    p: dict,
    x: jax.Array,
    memory: jax.Array | None,
    *,
    mask: jax.Array,
    bias: jax.Array | None,
    q_positions: jax.Array | None,
    k_positions: jax.Array | None,
    use_rotary: bool,
    policy: Policy,
    scale: float | None = None,
    rotary_base: float = ROTARY_BASE,
    rotary_scaling: RotaryScaling | None = None,
    kv: tuple[jax.Array, jax.Array] | None = None,
    constrain: Callable[..., jax.Array] = _unconstrained,
) -> jax.Array:
    """Multi-head, grouped-query or multi-query attention of x[b, s, e] over memory[b, t, e].

    q: [e, h, d], k and v: [e, g, d], o: [h, d, e]; the h query heads are split into g groups
    of r that share one key/value head (Ainslie et al. 2023, "GQA", Sec. 2). `mask` is a
    boolean [b, 1, s, t] (True = attend); `bias` an fp32 [1 or b, h, s, t] added to the
    scores. Scores and softmax are fp32; scores are scaled by `scale`, None meaning 1/√d (Vaswani et al. 2017, Eq. 1;
    T5 passes 1). Rotary positions use `rotary_base` and `rotary_scaling` (`rotary`).

    `kv`: keys and values [b, t, g, d] already projected (`project_kv`), e.g. a KV cache whose
    slot j holds position j; `memory` is then not read, and a Transformer-XL query sits at
    `q_positions` (cached decoding) rather than at 0..s−1.

    `constrain(x, axes)` pins the queries, keys, values and outputs to their layouts
    (`Q_AXES`, `KV_AXES`): under tensor parallelism each device keeps its own heads from the
    column-parallel projections to the row-parallel output projection.
    """
    q = einsum("bse,ehd->bshd", x, p["q"], policy=policy)
    if "q_bias" in p:
        q = q + p["q_bias"]
    if use_rotary:
        q = rotary(q, q_positions, base=rotary_base, scaling=rotary_scaling)
    if kv is None:
        k, v = project_kv(
            p,
            memory,
            k_positions=k_positions,
            use_rotary=use_rotary,
            policy=policy,
            rotary_base=rotary_base,
            rotary_scaling=rotary_scaling,
        )
    else:
        k, v = kv
    q, k, v = constrain(q, Q_AXES), constrain(k, KV_AXES), constrain(v, KV_AXES)
    b, s, h, d = q.shape
    g = k.shape[2]
    scale = (1.0 / math.sqrt(d)) if scale is None else scale
    if "rel" in p:
        scores = _xl_scores(p, q, k, policy, q_positions=None if kv is None else q_positions) * scale
    else:
        q = q.reshape(b, s, g, h // g, d)
        scores = einsum("bsgrd,btgd->bgrst", q, k, policy=policy, out=jnp.float32) * scale
    if bias is not None:
        scores = scores + bias.reshape(bias.shape[0], g, h // g, s, -1)
    scores = jnp.where(mask[:, :, None], scores, NEG_INF)
    probs = jax.nn.softmax(scores, axis=-1).astype(policy.compute_dtype)
    out = constrain(einsum("bgrst,btgd->bsgrd", probs, v, policy=policy).reshape(b, s, h, d), Q_AXES)
    y = einsum("bshd,hde->bse", out, p["o"], policy=policy)
    if "o_bias" in p:
        y = y + p["o_bias"]
    return y


def _xl_scores(
    p: dict, q: jax.Array, k: jax.Array, policy: Policy, *, q_positions: jax.Array | None = None
) -> jax.Array:
    """Transformer-XL relative attention scores (Dai et al. 2019, Sec. 3.3, Eq. (a)-(d)):
    (q + u)·k_j for content plus (q + v)·W_R·R_{i−j} for position, R the sinusoidal
    embedding of the offset i − j. The position term is computed once per offset
    (s + t − 1 of them) and gathered into [s, t]. Returns [b, g, r, s, t] in fp32.

    Query i sits at position i, key j at j; with `q_positions` [b, s] (a cached decoding
    step over a cache whose slot j is position j) the queries sit there instead."""
    b, s, h, d = q.shape
    t, g = k.shape[1], k.shape[2]
    r = h // g
    top = s - 1 if q_positions is None else t - 1
    offsets = jnp.arange(top, -t, -1)  # i − j from the largest query position down to −(t−1)
    table = sinusoidal(offsets, p["rel"].shape[0]).astype(policy.compute_dtype)  # [K, e]
    projected = einsum("ke,ehd->khd", table, p["rel"], policy=policy).reshape(-1, g, r, d)
    q_content = (q + p["rel_u"]).reshape(b, s, g, r, d)
    q_position = (q + p["rel_v"]).reshape(b, s, g, r, d)
    content = einsum("bsgrd,btgd->bgrst", q_content, k, policy=policy, out=jnp.float32)
    by_offset = einsum("bsgrd,kgrd->bgrsk", q_position, projected, policy=policy, out=jnp.float32)
    if q_positions is None:
        index = (s - 1) - (jnp.arange(s)[:, None] - jnp.arange(t)[None, :])  # row of offset i − j
        index = jnp.broadcast_to(index, (b, g, r, s, t))
    else:
        index = top - (q_positions[:, :, None] - jnp.arange(t)[None, None, :])
        index = jnp.broadcast_to(jnp.clip(index, 0, top + t - 1)[:, None, None], (b, g, r, s, t))
    position = jnp.take_along_axis(by_offset, index, axis=-1)
    return content + position


def feed_forward(
    p: dict,
    x: jax.Array,
    *,
    kind: str,
    policy: Policy,
    activation: str | None = None,
    constrain: Callable[..., jax.Array] = _unconstrained,
) -> jax.Array:
    """Position-wise FFN. gelu/relu: act(x·wi + bi)·wo + bo (Vaswani et al. 2017, Eq. 2;
    GELU: Hendrycks & Gimpel 2016). gated: (act(x·wi_gate) ⊙ x·wi)·wo: SwiGLU with SiLU,
    GeGLU with GELU (Shazeer 2020, Eq. 5-6). `activation` None: the kind's default
    (`genaisdk.dims.DEFAULT_ACTIVATION`: tanh GELU, ReLU, SiLU). `constrain(x, axes)` pins
    the hidden activations to `HIDDEN_AXES` (split over d_ff under tensor parallelism)."""
    activation = activation or DEFAULT_ACTIVATION[kind]
    hidden = einsum("bse,ef->bsf", x, p["wi"], policy=policy)
    if "bi" in p:
        hidden = hidden + p["bi"]
    if kind == "gated":
        gate = einsum("bse,ef->bsf", x, p["wi_gate"], policy=policy)
        if "bi_gate" in p:
            gate = gate + p["bi_gate"]
        hidden = activate(activation, gate) * hidden
    else:
        hidden = activate(activation, hidden)
    y = einsum("bsf,fe->bse", constrain(hidden, HIDDEN_AXES), p["wo"], policy=policy)
    if "bo" in p:
        y = y + p["bo"]
    return y
