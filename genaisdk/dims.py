"""A transformer's shape: the numbers that decide its parameter count, FLOPs and memory.

`Dimensions` is shared by the presets, the estimators, the planner and the JAX backend, so
that the model the plan sizes is exactly the model the backend builds. It holds no behaviour
beyond derived sizes; counting lives in `genaisdk.estimate`.
"""

from __future__ import annotations

import math
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

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
"""The FFN's nonlinearity. `gelu`: exact, x·Φ(x) (Hendrycks & Gimpel 2016; BERT's `gelu`);
`gelu_tanh`: the tanh approximation (GPT-2's `gelu_new`, T5 v1.1's `gated-gelu`); `relu`
(Vaswani et al. 2017; T5 v1.0); `silu` (SwiGLU's gate, Shazeer 2020)."""

DEFAULT_ACTIVATION = {"gelu": "gelu_tanh", "relu": "relu", "gated": "silu"}
"""The activation each FFN kind uses when `Dimensions.activation` is None."""

DEFAULT_NORM_EPS = {"layernorm": 1e-5, "rmsnorm": 1e-6}
"""The ε each norm kind uses when `Dimensions.norm_eps` is None (GPT-2's LayerNorm; T5's RMSNorm)."""

ROTARY_SCALINGS = ("linear", "llama3")
"""`linear`: positions divided by `factor` (Chen et al. 2023, "Position Interpolation");
`llama3`: low frequencies divided by `factor`, high ones kept, a smooth blend between
(Meta's Llama 3.1 release; Hugging Face `rope_scaling = {"rope_type": "llama3"}`)."""


def _non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class RotaryScaling:
    """How rotary frequencies are stretched for contexts longer than the pretraining one.

    `kind` 'linear': every inverse frequency divided by `factor`. 'llama3': wavelengths
    longer than `original_context / low_freq_factor` divided by `factor`, shorter than
    `original_context / high_freq_factor` kept, and a linear blend in between (the
    Hugging Face `rope_scaling` fields of the same names).
    """

    kind: str = attrs.field(validator=attrs.validators.in_(ROTARY_SCALINGS))
    factor: float = attrs.field(validator=_positive)
    low_freq_factor: float = attrs.field(default=1.0, validator=_positive)
    high_freq_factor: float = attrs.field(default=4.0, validator=_positive)
    original_context: int = attrs.field(default=8192, validator=_positive)


def _rotary_scaling(value: Any) -> RotaryScaling | None:
    if value is None or isinstance(value, RotaryScaling):
        return value
    return RotaryScaling(**dict(value))


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
    # Numerics that pretrained checkpoints differ on. None of them changes the parameter
    # count except `qkv_biases`; each default is the behaviour of a model built from a preset.
    activation: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.in_(ACTIVATIONS)))
    """The FFN's (and BERT's MLM head's) nonlinearity; None: the FFN kind's own
    (`DEFAULT_ACTIVATION`). With `ffn = gated`, `gelu`/`gelu_tanh` make GeGLU (T5 v1.1,
    Flan-T5) and `silu` SwiGLU (LLaMA)."""
    norm_eps: float | None = attrs.field(default=None, validator=_positive)
    """ε added to the variance in every norm; None: `DEFAULT_NORM_EPS` (BERT: 1e-12, LLaMA 2: 1e-5)."""
    rotary_base: float = attrs.field(default=10_000.0, validator=_positive)
    """θ of rotary embeddings (Su et al. 2021, Eq. 15; Llama 3: 500,000)."""
    rotary_scaling: RotaryScaling | None = attrs.field(default=None, converter=_rotary_scaling)
    attention_scale: float | None = attrs.field(default=None, validator=_positive)
    """Factor on the attention scores q·k; None: 1/sqrt(head size) (Vaswani et al. 2017,
    Eq. 1). T5 uses 1 (its initialization folds the scale into the query weights)."""
    position_offset: int = attrs.field(default=0, validator=_non_negative)
    """Row of the learned position table that position 0 reads (OPT, RoBERTa, BART: 2)."""
    relative_max_distance: int = attrs.field(default=128, validator=_positive)
    """Distance from which T5's relative buckets stop growing (Raffel et al. 2020, Sec. 2.1)."""
    qkv_biases: bool | None = None
    """Biases on the query, key and value projections; None: as `biases` (Qwen2: true while
    `biases` is false)."""
    output_scale: float = attrs.field(default=1.0, validator=_positive)
    """Factor on the last hidden state before the output projection (T5 v1.0's tied head:
    d_model ** -0.5)."""
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda m: dict(sorted(dict(m).items())))

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def d_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.heads

    @property
    def ffn_activation(self) -> str:
        return self.activation if self.activation is not None else DEFAULT_ACTIVATION[self.ffn]

    @property
    def eps(self) -> float:
        return self.norm_eps if self.norm_eps is not None else DEFAULT_NORM_EPS[self.norm]

    @property
    def score_scale(self) -> float:
        return self.attention_scale if self.attention_scale is not None else 1.0 / math.sqrt(self.d_head)

    @property
    def has_qkv_biases(self) -> bool:
        return self.biases if self.qkv_biases is None else self.qkv_biases

    @property
    def n_decoder_layers(self) -> int:
        return self.decoder_layers if self.decoder_layers is not None else self.layers

    def __attrs_post_init__(self) -> None:
        if self.activation is not None and self.ffn != "gated":
            allowed = ("gelu", "gelu_tanh") if self.ffn == "gelu" else ("relu",)
            if self.activation not in allowed:
                raise ValueError(f"a {self.ffn} FFN takes activation {' or '.join(allowed)}, got {self.activation!r}")

    def evolve(self, **changes: Any) -> Dimensions:
        return attrs.evolve(self, **changes)
