"""A transformer's shape: the numbers that decide its parameter count, FLOPs and memory.

`Dimensions` is shared by the presets, the estimators, the planner and the JAX backend, so
that the model the plan sizes is exactly the model the backend builds. It holds no behaviour
beyond derived sizes; counting lives in `genaisdk.estimate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

FFN_KINDS = ("gelu", "relu", "gated")
"""`gelu`/`relu`: two matrices (d_model x d_ff, d_ff x d_model). `gated`: three (SwiGLU, GeGLU)."""

NORM_KINDS = ("layernorm", "rmsnorm")
"""LayerNorm has a scale and a bias per channel; RMSNorm only a scale (Zhang & Sennrich 2019)."""

POSITION_KINDS = ("learned", "rotary", "relative", "alibi", "sinusoidal", "xl-relative")
"""`learned`: a context x d_model table (GPT-2, BERT). `relative`: T5's bucketed bias,
buckets x heads in the first layer of each stack. `xl-relative`: Transformer-XL's relative
encoding (Dai et al. 2019, Sec. 3.3; used by Gopher and Chinchilla): per layer a projection of
the sinusoidal relative embeddings (d_model x heads·head_dim) and two heads x head_dim biases.
`rotary`, `alibi`, `sinusoidal`: no parameters."""


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class Dimensions:
    """Shape of a transformer stack (or of the two stacks of an encoder-decoder).

    For an encoder-decoder, `layers` is the encoder depth and `decoder_layers` the decoder
    depth (default: the same). Fields a plugin architecture needs beyond these (experts,
    top-k) go in `extra`, declared by the architecture record's `extra_dims`.
    """

    layers: int = attrs.field(validator=_positive)
    d_model: int = attrs.field(validator=_positive)
    heads: int = attrs.field(validator=_positive)
    d_ff: int = attrs.field(validator=_positive)
    vocab: int = attrs.field(validator=_positive)
    context: int = attrs.field(validator=_positive)
    kv_heads: int | None = attrs.field(default=None, validator=_positive)
    """Key/value heads: None means `heads` (multi-head); 1 is multi-query; between is grouped-query."""
    head_dim: int | None = attrs.field(default=None, validator=_positive)
    """Size of one head; None means d_model // heads."""
    decoder_layers: int | None = attrs.field(default=None, validator=_positive)
    ffn: str = attrs.field(default="gelu", validator=attrs.validators.in_(FFN_KINDS))
    norm: str = attrs.field(default="layernorm", validator=attrs.validators.in_(NORM_KINDS))
    positions: str = attrs.field(default="learned", validator=attrs.validators.in_(POSITION_KINDS))
    tied_embeddings: bool = True
    """Whether the output projection reuses the token-embedding matrix."""
    biases: bool = True
    """Whether linear layers (and LayerNorms) carry biases (GPT-2, BERT: yes; T5, LLaMA, PaLM: no)."""
    position_table: int | None = attrs.field(default=None, validator=_positive)
    """Rows of a learned position table; None means `context` (OPT and RoBERTa keep 2 more)."""
    token_types: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Rows of a token-type (segment) embedding table (BERT: 2; most models: 0)."""
    embedding_norm: bool = False
    """A norm right after the embeddings (BERT, BLOOM, BART)."""
    final_norm: bool = True
    """A norm after the last block: pre-norm stacks have one (GPT-2, LLaMA); post-norm (BERT) not."""
    parallel_block: bool = False
    """Attention and FFN read the same normalized input, one norm per block (GPT-J, PaLM)."""
    relative_buckets: int = attrs.field(default=32, validator=_positive)
    """Buckets of T5's relative position bias (used when positions == 'relative')."""
    pooler: bool = False
    """BERT's pooler: a d_model x d_model dense layer over the first token."""
    mlm_head: bool = False
    """BERT's masked-LM head: a d_model x d_model transform, a norm and an output bias per token."""
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda m: dict(sorted(dict(m).items())))

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def d_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def n_decoder_layers(self) -> int:
        return self.decoder_layers if self.decoder_layers is not None else self.layers

    def evolve(self, **changes: Any) -> Dimensions:
        return attrs.evolve(self, **changes)
