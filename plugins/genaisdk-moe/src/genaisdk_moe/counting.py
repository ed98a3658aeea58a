"""Parameters, FLOPs and activation memory of a mixture-of-experts decoder.

The layer: a decoder block whose FFN is replaced by `experts` FFNs of the block's shape and
a linear router W_g (d_model x experts, no bias); each token goes to the `top_k` experts
with the largest router logits, and their outputs are summed with softmax weights
(Shazeer et al. 2017, Eq. 1-4; Fedus et al. 2022, 'Switch Transformers', Sec. 2.1; Jiang et
al. 2024, 'Mixtral of Experts', Sec. 2.1, Eq. 1-2).

- Memory holds every expert: total = dense decoder + (experts - 1) FFNs per layer + router.
- A token passes through `top_k` experts: active = dense decoder + (top_k - 1) FFNs per
  layer + router. Training FLOPs per token follow the active parameters (6·N_active plus
  attention, Chowdhery et al. 2022, App. B), which is why an 8-expert top-2 model costs
  about as much per token as a dense model of its active size (Fedus et al. 2022, Sec. 2).
- Activations: each token's FFN activations exist once per expert it is routed to, times
  the capacity factor when experts pad their token buffers to a fixed capacity (Fedus et
  al. 2022, Sec. 2.2, Eq. 4; a dropless implementation as in Mixtral has factor 1). The
  router's fp32 logits and probabilities (2 x 4 bytes per token and expert) are kept too.

Everything else (attention, norms, embeddings, logits) is a dense decoder's, counted by
genaisdk's own public estimators: `genaisdk.estimate.params`, `.flops`, `.activations`.
"""

from __future__ import annotations

from collections.abc import Mapping

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import block_params, count_params, ffn_params
from genaisdk.records import DimensionField, ParamCount

EXPERTS = DimensionField(
    name="experts",
    kind="count",
    description="Experts per MoE layer: FFNs of the block's shape, all held in memory",
    default=8,
)
TOP_K = DimensionField(
    name="top_k",
    kind="count",
    description="Experts each token is routed to (FLOPs follow top_k, memory follows experts)",
    default=2,
)
CAPACITY_FACTOR = DimensionField(
    name="capacity_factor",
    kind="number",
    description="Expert buffer size as a multiple of an even share of the routed tokens (1 = dropless)",
    default=1.0,
)
EXTRA_DIMS = (EXPERTS, TOP_K, CAPACITY_FACTOR)

ROUTER_BYTES_PER_LOGIT = 8.0
"""fp32 router logits and softmax probabilities kept for the backward pass (2 x 4 bytes);
routing runs in fp32 for stability (Fedus et al. 2022, Sec. 2.4, 'selective precision')."""


def routing(dims: Dimensions) -> tuple[int, int, float]:
    """(experts, top_k, capacity_factor) from `dims.extra`, defaults filled, checked."""
    experts = int(dims.extra.get(EXPERTS.name, EXPERTS.default))
    top_k = int(dims.extra.get(TOP_K.name, TOP_K.default))
    capacity = float(dims.extra.get(CAPACITY_FACTOR.name, CAPACITY_FACTOR.default))
    if experts < 1:
        raise ValueError(f"experts must be at least 1, got {experts}")
    if not 1 <= top_k <= experts:
        raise ValueError(f"top_k must be between 1 and experts ({experts}), got {top_k}")
    if capacity < 1:
        raise ValueError(f"capacity_factor must be at least 1, got {capacity}")
    return experts, top_k, capacity


def router_params(dims: Dimensions, experts: int) -> int:
    """One router: a d_model x experts linear map without bias (Jiang et al. 2024, Eq. 1)."""
    return dims.d_model * experts


def moe_count_params(dims: Dimensions) -> ParamCount:
    """Total and active parameters (module docstring). The breakdown replaces the dense
    decoder's `ffn` by `experts` (every expert of every layer) and adds `router`."""
    experts, top_k, _ = routing(dims)
    dense = count_params(dims, "decoder")
    one_ffn = ffn_params(dims)
    router = router_params(dims, experts)
    breakdown = dict(dense.breakdown)
    breakdown["experts"] = experts * breakdown.pop("ffn")
    breakdown["router"] = dims.layers * router
    total = sum(breakdown.values())
    active = dense.total + dims.layers * ((top_k - 1) * one_ffn + router)
    block = sum(block_params(dims).values()) + (experts - 1) * one_ffn + router
    largest = max(block, breakdown["embedding.token"], breakdown.get("output", 0))
    return ParamCount(
        total=total, active=active, embedding=dense.embedding, largest_layer=largest, breakdown=breakdown
    )


def moe_flops_per_token(dims: Dimensions, context: int) -> float:
    """Training model FLOPs per token from the active parameters: the dense decoder's
    6·N + 12·L·H·Q·T (PaLM App. B, via genaisdk's estimator) plus 6 x the matmul
    parameters routing adds per layer: top_k - 1 more experts and the router."""
    from genaisdk.estimate.flops import model_flops_per_token  # numpy-backed: imported on first use, not at registry load
    experts, top_k, _ = routing(dims)
    dense = model_flops_per_token(dims, family="decoder", context=context).total
    extra = dims.layers * ((top_k - 1) * ffn_params(dims) + router_params(dims, experts))
    return float(dense + 6.0 * extra)


def moe_activation_bytes(
    dims: Dimensions,
    *,
    seq,
    micro_batch,
    recompute: str = "selective",
    flash: bool = True,
    bytes_per_value=2.0,
    tensor_parallel=1,
    **options,
) -> Mapping[str, float]:
    """The dense decoder's activation parts (Korthikanti et al. 2022, via genaisdk's
    estimator) with the FFN part multiplied by top_k x capacity_factor and the router's fp32
    logits and probabilities added to it. Under full recomputation nothing of the FFN is
    kept; the one layer rebuilt during the backward pass grows by the extra expert copies."""
    from genaisdk.estimate.activations import activation_memory  # numpy-backed: imported on first use, not at registry load
    experts, top_k, capacity = routing(dims)
    common = dict(
        family="decoder",
        seq=seq,
        micro_batch=micro_batch,
        flash=flash,
        bytes_per_value=bytes_per_value,
        tensor_parallel=tensor_parallel,
        **options,
    )
    parts = dict(activation_memory(dims, recompute=recompute, **common))
    routed = top_k * capacity
    router = ROUTER_BYTES_PER_LOGIT * experts * seq * micro_batch / tensor_parallel
    if recompute == "full":
        kept = activation_memory(dims, recompute="selective", **common)
        one_layer_ffn = kept["ffn"] / dims.layers
        parts["recompute_buffer"] = parts["recompute_buffer"] + (routed - 1) * one_layer_ffn + router
    else:
        parts["ffn"] = parts["ffn"] * routed + dims.layers * router
    return parts
