"""The genaisdk plugin: the `moe-decoder` architecture, Mixtral presets, and spec checks.

Loaded through the entry point `moe = "genaisdk_moe.plugin"` in the group `genaisdk`.
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk import hookimpl
from genaisdk.diagnostics import Diagnostic
from genaisdk.dims import Dimensions
from genaisdk.records import Architecture, Preset
from genaisdk_moe.counting import (
    CAPACITY_FACTOR,
    EXPERTS,
    EXTRA_DIMS,
    TOP_K,
    moe_activation_bytes,
    moe_count_params,
    moe_flops_per_token,
)

ARCHITECTURE = "moe-decoder"
ALIASES = ("moe", "mixture-of-experts")

_MIXTRAL = "Jiang et al. 2024, 'Mixtral of Experts', arXiv:2401.04088, Sec. 2 and Table 1"


@hookimpl
def genaisdk_architectures() -> Iterator[Architecture]:
    yield Architecture(
        name=ARCHITECTURE,
        family="decoder",
        description="Decoder with mixture-of-experts FFNs: memory from all experts, FLOPs from the top-k routed",
        source="Shazeer et al. 2017, Sec. 2; Fedus et al. 2022 (Switch Transformers), Sec. 2; " + _MIXTRAL,
        count_params=moe_count_params,
        flops_per_token=moe_flops_per_token,
        activation_bytes=moe_activation_bytes,
        extra_dims=EXTRA_DIMS,
        jax_model=None,  # planned, not trained: the JAX backend has no expert layers
        aliases=ALIASES,
    )


def _mixtral(layers: int, d_model: int, heads: int, d_ff: int, vocab: int, context: int) -> Dimensions:
    """Mixtral's block: grouped-query attention with 8 KV heads of 128, SwiGLU experts,
    RMSNorm, rotary positions, untied output, no biases; 8 experts, top-2."""
    return Dimensions(
        layers=layers,
        d_model=d_model,
        heads=heads,
        kv_heads=8,
        head_dim=128,
        d_ff=d_ff,
        vocab=vocab,
        context=context,
        ffn="gated",
        norm="rmsnorm",
        positions="rotary",
        tied_embeddings=False,
        biases=False,
        extra={EXPERTS.name: 8, TOP_K.name: 2, CAPACITY_FACTOR.name: 1.0},
    )


@hookimpl
def genaisdk_presets() -> Iterator[Preset]:
    yield Preset(
        name="mixtral-8x7b",
        architecture=ARCHITECTURE,
        dims=_mixtral(layers=32, d_model=4096, heads=32, d_ff=14336, vocab=32000, context=32768),
        published_params=46.7e9,
        note="12.9B active parameters per token (top-2 of 8 experts), as published",
        source=_MIXTRAL + "; Mistral AI, 'Mixtral of experts' announcement (46.7B total, 12.9B active)",
    )
    yield Preset(
        name="mixtral-8x22b",
        architecture=ARCHITECTURE,
        dims=_mixtral(layers=56, d_model=6144, heads=48, d_ff=16384, vocab=32768, context=65536),
        published_params=141e9,
        note="39B active parameters per token (top-2 of 8 experts), as published",
        source="Mistral AI, 'Cheaper, Better, Faster, Stronger' announcement (141B total, 39B active); "
        "released model configuration (dims)",
    )


@hookimpl
def genaisdk_validate(spec) -> Iterator[Diagnostic]:
    """top_k must be between 1 and the number of experts (MOE001), routing to every
    expert makes the layer dense at MoE's memory cost (MOE002, a warning), and an expert
    buffer smaller than an even share of the tokens is refused (MOE003): the counting
    functions reject it, so the spec must not pass `genai check`."""
    model = spec.project.model
    if getattr(model, "family", None) not in (ARCHITECTURE, *ALIASES):
        return
    capacity = model.extra.get(CAPACITY_FACTOR.name, CAPACITY_FACTOR.default)
    if capacity < 1:
        yield Diagnostic(
            code="MOE003",
            severity="error",
            message=f"capacity_factor = {capacity:g} leaves experts room for less than an even share of the tokens",
            span=spec.spans.get("model." + CAPACITY_FACTOR.name),
            hint="use 1 (dropless, as Mixtral) or more, e.g. 1.25 (Switch Transformers)",
        )
    experts = model.extra.get(EXPERTS.name, EXPERTS.default)
    top_k = model.extra.get(TOP_K.name, TOP_K.default)
    span = spec.spans.get("model." + TOP_K.name) or spec.spans.get("model." + EXPERTS.name)
    if top_k > experts:
        yield Diagnostic(
            code="MOE001",
            severity="error",
            message=f"top_k = {top_k} routes each token to more experts than the {experts} there are",
            span=span,
            hint=f"use top_k between 1 and {experts}",
        )
    elif top_k == experts and experts > 1:
        yield Diagnostic(
            code="MOE002",
            severity="warning",
            message=f"top_k = experts = {experts}: every token uses every expert, a dense FFN {experts} times wider",
            span=span,
            hint="mixture-of-experts saves compute only when top_k is smaller than experts (Mixtral: 2 of 8)",
        )
