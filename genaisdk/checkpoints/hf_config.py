"""A Hugging Face checkpoint's `config.json` as genaisdk's model: family, `Dimensions`, token ids.

`read_checkpoint(folder)` reads `config.json` (and, when the weights are there, their
safetensors headers: whether a BERT checkpoint carries its pooler and masked-LM head, and
whether an output matrix is stored, are facts of the file, not of the config) into an
`HFModel`. It imports neither JAX nor `safetensors`, so `genai plan` counts the exact
parameters of a checkpoint named by `model { from = "..." }`.

Families (Hugging Face `model_type`):

===========  ===============  ================================================================
model_type   genaisdk family  what the config sets
===========  ===============  ================================================================
gpt2         decoder          learned positions, LayerNorm, biases, tied output,
                              `activation_function` (gelu_new = tanh GELU)
llama,       decoder          rotary positions (`rope_theta`, `rope_scaling` linear / llama3),
mistral,                      RMSNorm (`rms_norm_eps`), SwiGLU, grouped-query attention
qwen2                         (`num_key_value_heads`), `head_dim`; Qwen2: q/k/v biases
bert,        encoder          learned positions (RoBERTa from row pad_token_id + 1 = 2),
roberta                       token types, post-norm LayerNorm (`layer_norm_eps`), exact GELU,
                              embedding norm; pooler and MLM head where the weights hold them
t5           encoder-decoder  relative position buckets (`relative_attention_num_buckets`,
                              `relative_attention_max_distance`), RMSNorm, no attention scale,
                              `feed_forward_proj` relu (v1.0) or gated-gelu (v1.1, Flan-T5),
                              `d_kv` head size; v1.0's tied head scales by d_model^-0.5
===========  ===============  ================================================================

Both spellings of rotary settings are read: `rope_theta` + `rope_scaling` (transformers 4)
and `rope_parameters` (transformers 5). `to_hf_config` writes a config back for export.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from genaisdk.checkpoints import CheckpointFormatError
from genaisdk.checkpoints.safetensors_files import TensorInfo, read_tensors
from genaisdk.dims import Dimensions, RotaryScaling

CONFIG_FILE = "config.json"
GENERATION_CONFIG_FILE = "generation_config.json"

FAMILIES = {
    "gpt2": "decoder",
    "llama": "decoder",
    "mistral": "decoder",
    "qwen2": "decoder",
    "bert": "encoder",
    "roberta": "encoder",
    "t5": "encoder_decoder",
}
"""Supported `model_type`s and the genaisdk family each becomes."""

ARCHITECTURE_NAMES = {"decoder": "decoder", "encoder": "encoder", "encoder_decoder": "encoder-decoder"}
"""The registry's architecture record of each family."""

HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
"""Hugging Face activation names (`transformers.activations.ACT2FN`) -> `genaisdk.dims.ACTIVATIONS`.
`gelu_fast` is another tanh form of GELU whose constant is rounded; it agrees to ~1e-4."""

ACTIVATION_NAMES = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
"""The reverse, for export."""


@attrs.frozen(kw_only=True)
class TokenIds:
    """Special token ids a checkpoint's config (and generation_config.json) name."""

    bos: int | None = None
    eos: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    """End-of-sequence ids; Llama 3 lists several (128001, 128008, 128009): every one stops generation."""
    pad: int | None = None
    decoder_start: int | None = None
    """The first decoder input of an encoder-decoder (T5: the pad id)."""


@attrs.frozen(kw_only=True)
class HFModel:
    """What a Hugging Face checkpoint folder is, read from its config and headers."""

    folder: Path
    model_type: str
    family: str
    """'decoder', 'encoder' or 'encoder_decoder'."""
    dims: Dimensions
    ids: TokenIds
    config: Mapping[str, Any] = attrs.field(repr=False)
    tensors: Mapping[str, TensorInfo] | None = attrs.field(default=None, repr=False)
    """The weights' headers (None when the folder holds only a config)."""

    @property
    def architecture(self) -> str:
        """The registry architecture name ('encoder-decoder' for T5)."""
        return ARCHITECTURE_NAMES[self.family]

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE


def spec_folder(spec: Any, value: str) -> Path:
    """A path the spec wrote (`model.from`, `data.tokenizer`), relative to the spec file's
    folder; a spec without a file on disk resolves it against the working directory."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        spec_file = Path(getattr(spec, "filename", "") or "")
        base = spec_file.absolute().parent if spec_file.name and spec_file.is_file() else Path.cwd()
        path = base / path
    return Path(os.path.normpath(path))


def is_checkpoint_folder(path: str | Path) -> bool:
    """A folder with a config.json (a Hugging Face checkpoint, or the start of one)."""
    return (Path(path) / CONFIG_FILE).is_file()


def read_config(folder: str | Path) -> dict[str, Any]:
    """config.json of `folder` as a dict; CheckpointFormatError if missing or not JSON."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointFormatError(f"{folder}: no such checkpoint folder")
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: missing; a Hugging Face checkpoint folder holds config.json and model.safetensors")
    return read_json_object(path)


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path` (a checkpoint's or an adapter's configuration);
    CheckpointFormatError naming the file when it cannot be read, is not JSON or holds
    something other than an object."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointFormatError(f"{path}: not a JSON object")
    return config


def read_checkpoint(folder: str | Path, *, weights: bool = True) -> HFModel:
    """The model a checkpoint folder holds. `weights=False` reads config.json only (the
    optional heads then follow the config's `architectures`).

    Raises CheckpointFormatError (one line naming the file and key) for a missing or
    unreadable config.json, an unknown `model_type`, a setting genaisdk cannot run exactly
    (e.g. `rope_scaling` of type yarn), or an unreadable safetensors header."""
    folder = Path(folder)
    config = read_config(folder)
    path = folder / CONFIG_FILE
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise CheckpointFormatError(f"{path}: unknown model_type {model_type!r}; genaisdk loads {known}")
    tensors = read_tensors(folder) if weights else None
    names = set(tensors) if tensors is not None else None
    reader = _Config(path, config)
    if model_type == "gpt2":
        dims = _gpt2(reader)
    elif model_type in ("llama", "mistral", "qwen2"):
        dims = _llama(reader, model_type)
    elif model_type in ("bert", "roberta"):
        dims = _bert(reader, model_type, names)
    else:
        dims = _t5(reader, names)
    ids = _token_ids(folder, config)
    return HFModel(
        folder=folder, model_type=model_type, family=FAMILIES[model_type], dims=dims, ids=ids, config=config, tensors=tensors
    )


# ----------------------------------------------------------------------------- per family


class _Config:
    """config.json values with errors that name the file and key."""

    def __init__(self, path: Path, config: Mapping[str, Any]):
        self.path = path
        self.config = config

    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key)
        return default if value is None else value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            if value is None:
                raise CheckpointFormatError(f"{self.path}: {key} is missing")
            raise CheckpointFormatError(f"{self.path}: {key} must be a whole number, got {value!r}")
        return value

    def float(self, key: str, default: float | None = None) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointFormatError(f"{self.path}: {key} must be a number, got {value!r}")
        return float(value)

    def activation(self, key: str, default: str) -> str:
        name = self.get(key, default)
        if name not in HF_ACTIVATIONS:
            raise CheckpointFormatError(
                f"{self.path}: {key} {name!r} is not supported; genaisdk runs {', '.join(sorted(HF_ACTIVATIONS))}"
            )
        return HF_ACTIVATIONS[name]

    def unsupported(self, key: str, why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{self.path}: {key} = {json.dumps(self.config.get(key))} is not supported ({why})")


def _gpt2(c: _Config) -> Dimensions:
    if c.get("scale_attn_by_inverse_layer_idx", False):
        raise c.unsupported("scale_attn_by_inverse_layer_idx", "genaisdk scales every layer's attention alike")
    if c.get("add_cross_attention", False):
        raise c.unsupported("add_cross_attention", "a GPT-2 decoder with cross-attention is not a decoder-only model")
    d_model = c.int("n_embd")
    activation = c.activation("activation_function", "gelu_new")
    ffn = "relu" if activation == "relu" else "gelu"
    return Dimensions(
        layers=c.int("n_layer"),
        d_model=d_model,
        heads=c.int("n_head"),
        d_ff=c.int("n_inner", 4 * d_model),
        vocab=c.int("vocab_size"),
        context=c.int("n_positions"),
        ffn=ffn,
        norm="layernorm",
        positions="learned",
        tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        biases=True,
        activation=activation,
        norm_eps=c.float("layer_norm_epsilon", 1e-5),
        attention_scale=None if c.get("scale_attn_weights", True) else 1.0,
    )


def _rotary(c: _Config) -> tuple[float, RotaryScaling | None]:
    params = c.config.get("rope_parameters")
    if isinstance(params, dict):
        key, theta, scaling = "rope_parameters", params.get("rope_theta", c.get("rope_theta", 10_000.0)), params
    else:
        key, theta, scaling = "rope_scaling", c.get("rope_theta", 10_000.0), c.config.get("rope_scaling")
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind == "default":
            return float(theta), None
        if kind == "linear":
            return float(theta), RotaryScaling(kind="linear", factor=float(scaling["factor"]))
        if kind == "llama3":
            try:
                return float(theta), RotaryScaling(
                    kind="llama3",
                    factor=float(scaling["factor"]),
                    low_freq_factor=float(scaling["low_freq_factor"]),
                    high_freq_factor=float(scaling["high_freq_factor"]),
                    original_context=int(scaling["original_max_position_embeddings"]),
                )
            except (KeyError, TypeError, ValueError):
                raise c.unsupported(key, "llama3 scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings") from None
        raise c.unsupported(key, f"rotary scaling {kind!r}; genaisdk runs default, linear and llama3")
    if scaling is not None:
        raise c.unsupported(key, "expected an object")
    return float(theta), None


def _llama(c: _Config, model_type: str) -> Dimensions:
    d_model = c.int("hidden_size")
    heads = c.int("num_attention_heads")
    theta, scaling = _rotary(c)
    attention_bias = bool(c.get("attention_bias", False))
    mlp_bias = bool(c.get("mlp_bias", False))
    if attention_bias != mlp_bias:
        key = "attention_bias" if attention_bias else "mlp_bias"
        raise c.unsupported(key, "genaisdk puts biases on every linear layer or on none (Qwen2's q/k/v biases aside)")
    if c.get("use_sliding_window", False):
        raise c.unsupported("use_sliding_window", "sliding-window attention is not modelled")
    context = c.int("max_position_embeddings")
    window = c.get("sliding_window")
    if model_type == "mistral" and isinstance(window, int) and 0 < window < context:
        # Within the window, sliding-window attention is full causal attention: the model
        # runs exactly for sequences up to the window.
        context = window
    return Dimensions(
        layers=c.int("num_hidden_layers"),
        d_model=d_model,
        heads=heads,
        kv_heads=c.int("num_key_value_heads", heads),
        head_dim=c.int("head_dim", d_model // heads),
        d_ff=c.int("intermediate_size"),
        vocab=c.int("vocab_size"),
        context=context,
        ffn="gated",
        norm="rmsnorm",
        positions="rotary",
        tied_embeddings=bool(c.get("tie_word_embeddings", False)),
        biases=attention_bias,
        qkv_biases=True if model_type == "qwen2" else None,
        activation=c.activation("hidden_act", "silu"),
        norm_eps=c.float("rms_norm_eps", 1e-6),
        rotary_base=theta,
        rotary_scaling=scaling,
    )


def _bert(c: _Config, model_type: str, names: set[str] | None) -> Dimensions:
    kind = c.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise c.unsupported("position_embedding_type", "genaisdk runs absolute learned positions")
    rows = c.int("max_position_embeddings")
    offset = 0
    if model_type == "roberta":
        # RoBERTa numbers positions from padding_idx + 1 (`create_position_ids_from_input_ids`).
        offset = c.int("pad_token_id", 1) + 1
    architectures = list(c.get("architectures", []))
    if names is not None:
        pooler = any(n.endswith("pooler.dense.weight") for n in names)
        mlm_head = any(n.startswith(("cls.predictions.", "lm_head.")) for n in names)
    else:
        pooler = not any(a.endswith(("ForMaskedLM", "ForCausalLM")) for a in architectures)
        mlm_head = any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures)
    return Dimensions(
        layers=c.int("num_hidden_layers"),
        d_model=c.int("hidden_size"),
        heads=c.int("num_attention_heads"),
        d_ff=c.int("intermediate_size"),
        vocab=c.int("vocab_size"),
        context=rows - offset,
        position_table=rows,
        position_offset=offset,
        token_types=c.int("type_vocab_size", 2),
        ffn="relu" if c.get("hidden_act") == "relu" else "gelu",
        norm="layernorm",
        positions="learned",
        tied_embeddings=True,
        biases=True,
        embedding_norm=True,
        final_norm=False,
        pooler=pooler,
        mlm_head=mlm_head,
        activation=c.activation("hidden_act", "gelu"),
        norm_eps=c.float("layer_norm_eps", 1e-12),
    )


def _t5(c: _Config, names: set[str] | None) -> Dimensions:
    projection = str(c.get("feed_forward_proj", "relu"))
    parts = projection.split("-")
    gated = parts[0] == "gated"
    if len(parts) > 2 or (len(parts) == 2 and not gated):
        raise c.unsupported("feed_forward_proj", "expected ACT or gated-ACT")
    act_name = parts[-1]
    if projection == "gated-gelu":
        act_name = "gelu_new"  # transformers' T5Config maps gated-gelu to the tanh form
    if act_name not in HF_ACTIVATIONS:
        raise c.unsupported("feed_forward_proj", f"activation {act_name!r}")
    activation = HF_ACTIVATIONS[act_name]
    tied = c.get("tie_word_embeddings", True) is not False
    if names is not None and "lm_head.weight" in names and c.get("scale_decoder_outputs") is False:
        tied = False  # transformers 5 writes tie_word_embeddings true and keeps an untied head
    # transformers' T5: the decoder output is scaled by d_model^-0.5 when the head is tied
    # (v1.0); `scale_decoder_outputs` says so explicitly in configs written by transformers 5.
    scale = c.get("scale_decoder_outputs", tied)
    d_model = c.int("d_model")
    layers = c.int("num_layers")
    if activation == "relu" and not gated:
        ffn = "relu"
    elif gated:
        ffn = "gated"
    else:
        ffn = "gelu"
    return Dimensions(
        layers=layers,
        decoder_layers=c.int("num_decoder_layers", layers),
        d_model=d_model,
        heads=c.int("num_heads"),
        head_dim=c.int("d_kv"),
        d_ff=c.int("d_ff"),
        vocab=c.int("vocab_size"),
        context=c.int("n_positions", 512),
        ffn=ffn,
        norm="rmsnorm",
        positions="relative",
        tied_embeddings=tied,
        biases=False,
        relative_buckets=c.int("relative_attention_num_buckets", 32),
        relative_max_distance=c.int("relative_attention_max_distance", 128),
        activation=activation,
        norm_eps=c.float("layer_norm_epsilon", 1e-6),
        attention_scale=1.0,
        output_scale=d_model**-0.5 if scale else 1.0,
    )


def _ids(value: Any) -> tuple[int, ...]:
    if isinstance(value, bool) or value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return ()


def _token_ids(folder: Path, config: Mapping[str, Any]) -> TokenIds:
    generation: dict[str, Any] = {}
    path = folder / GENERATION_CONFIG_FILE
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            generation = loaded if isinstance(loaded, dict) else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            generation = {}

    def pick(key: str) -> Any:
        value = generation.get(key)
        return config.get(key) if value is None else value

    bos = _ids(pick("bos_token_id"))
    pad = _ids(pick("pad_token_id"))
    start = _ids(pick("decoder_start_token_id"))
    return TokenIds(
        bos=bos[0] if bos else None,
        eos=_ids(pick("eos_token_id")),
        pad=pad[0] if pad else None,
        decoder_start=start[0] if start else None,
    )


# ----------------------------------------------------------------------------- export


def hf_model_type(dims: Dimensions, family: str) -> str:
    """The Hugging Face family that runs `dims` exactly; CheckpointFormatError naming the
    first field that no supported family has."""
    family = family.replace("-", "_")

    def refuse(why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"no Hugging Face model type runs this {family} model exactly: {why}")

    if dims.parallel_block or dims.positions in ("alibi", "sinusoidal", "xl-relative") or dims.extra:
        raise refuse("its block or positions (parallel block, ALiBi, sinusoidal or Transformer-XL positions, plugin fields)")
    if family == "decoder":
        if dims.positions == "learned":
            ok = (
                dims.norm == "layernorm" and dims.biases and dims.has_qkv_biases and dims.ffn in ("gelu", "relu")
                and dims.n_kv_heads == dims.heads and dims.d_head * dims.heads == dims.d_model and dims.final_norm
                and not dims.embedding_norm and dims.position_offset == 0 and not dims.token_types
            )
            if not ok:
                raise refuse("learned positions need GPT-2's block (LayerNorm, biases, GELU FFN, multi-head attention)")
            return "gpt2"
        if dims.positions == "rotary":
            if dims.norm != "rmsnorm" or dims.ffn != "gated" or not dims.final_norm or dims.embedding_norm or dims.token_types:
                raise refuse("rotary positions need LLaMA's block (RMSNorm, gated FFN)")
            if dims.qkv_biases and not dims.biases:
                return "qwen2"
            if dims.has_qkv_biases != dims.biases:
                raise refuse("q/k/v biases without the other biases are Qwen2's, which has no other bias")
            return "llama"
        raise refuse(f"{dims.positions} positions in a decoder")
    if family == "encoder":
        ok = (
            dims.positions == "learned" and dims.norm == "layernorm" and dims.biases and not dims.final_norm
            and dims.embedding_norm and dims.ffn in ("gelu", "relu") and dims.n_kv_heads == dims.heads
            and dims.d_head * dims.heads == dims.d_model and dims.has_qkv_biases
        )
        if not ok:
            raise refuse("an encoder needs BERT's block (learned positions, post-norm LayerNorm with biases, embedding norm)")
        return "roberta" if dims.position_offset else "bert"
    if family == "encoder_decoder":
        ok = (
            dims.positions == "relative" and dims.norm == "rmsnorm" and not dims.biases and not dims.has_qkv_biases
            and dims.n_kv_heads == dims.heads and dims.final_norm and not dims.embedding_norm and not dims.token_types
        )
        if not ok:
            raise refuse("an encoder-decoder needs T5's block (relative positions, RMSNorm, no biases, multi-head attention)")
        return "t5"
    raise refuse("unknown family")


def to_hf_config(dims: Dimensions, family: str, *, ids: TokenIds | None = None, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A config.json for `dims` (the keys transformers reads for that family, every
    numeric setting written out: activation, epsilon, rotary). `base`, the config a model
    was loaded from, keeps its other keys (architectures, token ids, dtype)."""
    model_type = hf_model_type(dims, family)
    if model_type == "llama" and base is not None and base.get("model_type") == "mistral":
        model_type = "mistral"  # the same block; Mistral's config also keeps its sliding window
    ids = ids or TokenIds()
    out: dict[str, Any] = dict(base or {})
    for key in ("rope_scaling", "rope_parameters", "scale_decoder_outputs", "transformers_version"):
        out.pop(key, None)
    out["model_type"] = model_type
    out["vocab_size"] = dims.vocab
    activation = ACTIVATION_NAMES[dims.ffn_activation]
    if model_type == "gpt2":
        out.update(
            n_layer=dims.layers, n_embd=dims.d_model, n_head=dims.heads, n_inner=dims.d_ff,
            n_positions=dims.position_table or dims.context, activation_function=activation,
            layer_norm_epsilon=dims.eps, tie_word_embeddings=dims.tied_embeddings,
            scale_attn_weights=dims.attention_scale is None,
        )
        out.setdefault("architectures", ["GPT2LMHeadModel"])
    elif model_type in ("llama", "mistral", "qwen2"):
        out.update(
            num_hidden_layers=dims.layers, hidden_size=dims.d_model, num_attention_heads=dims.heads,
            num_key_value_heads=dims.n_kv_heads, head_dim=dims.d_head, intermediate_size=dims.d_ff,
            hidden_act=activation, rms_norm_eps=dims.eps,
            tie_word_embeddings=dims.tied_embeddings, rope_theta=dims.rotary_base,
        )
        # A Mistral checkpoint's context is its sliding window; keep the table size it had.
        out.setdefault("max_position_embeddings", dims.context)
        if model_type != "qwen2":
            out.update(attention_bias=dims.biases, mlp_bias=dims.biases)
        scaling = dims.rotary_scaling
        if scaling is not None:
            rope: dict[str, Any] = {"rope_type": scaling.kind, "type": scaling.kind, "factor": scaling.factor}
            if scaling.kind == "llama3":
                rope.update(
                    low_freq_factor=scaling.low_freq_factor, high_freq_factor=scaling.high_freq_factor,
                    original_max_position_embeddings=scaling.original_context,
                )
            out["rope_scaling"] = rope
        names = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
        out.setdefault("architectures", [names[model_type]])
    elif model_type in ("bert", "roberta"):
        out.update(
            num_hidden_layers=dims.layers, hidden_size=dims.d_model, num_attention_heads=dims.heads,
            intermediate_size=dims.d_ff, max_position_embeddings=dims.position_table or dims.context,
            type_vocab_size=dims.token_types, hidden_act=activation, layer_norm_eps=dims.eps,
            position_embedding_type="absolute", tie_word_embeddings=True,
        )
        if model_type == "roberta":
            out["pad_token_id"] = dims.position_offset - 1
        arch = ("Roberta" if model_type == "roberta" else "Bert") + ("ForPreTraining" if dims.pooler and dims.mlm_head and model_type == "bert" else "ForMaskedLM" if dims.mlm_head else "Model")
        out.setdefault("architectures", [arch])
    else:
        if dims.ffn != "gated":
            projection = activation
        elif dims.ffn_activation == "gelu":
            raise CheckpointFormatError(
                "no Hugging Face model type runs this encoder_decoder model exactly: T5's gated-gelu is the tanh GELU"
            )
        else:
            projection = "gated-" + {"gelu_tanh": "gelu", "relu": "relu", "silu": "silu"}[dims.ffn_activation]
        out.update(
            num_layers=dims.layers, num_decoder_layers=dims.n_decoder_layers, d_model=dims.d_model,
            num_heads=dims.heads, d_kv=dims.d_head, d_ff=dims.d_ff, feed_forward_proj=projection,
            layer_norm_epsilon=dims.eps,
            relative_attention_num_buckets=dims.relative_buckets,
            relative_attention_max_distance=dims.relative_max_distance,
            tie_word_embeddings=dims.tied_embeddings, is_encoder_decoder=True,
        )
        expected_scale = dims.d_model**-0.5 if dims.tied_embeddings else 1.0
        if not math.isclose(dims.output_scale, expected_scale, rel_tol=1e-12):
            raise CheckpointFormatError(
                "no Hugging Face model type runs this encoder_decoder model exactly: T5 scales the output "
                "by d_model^-0.5 exactly when the head is tied"
            )
        out.setdefault("n_positions", dims.context)
        out.setdefault("architectures", ["T5ForConditionalGeneration"])
        out.setdefault("decoder_start_token_id", ids.decoder_start if ids.decoder_start is not None else ids.pad)
    if model_type != "t5" and dims.score_scale != (1.0 / math.sqrt(dims.d_head)) and not (model_type == "gpt2" and dims.attention_scale == 1.0):
        raise CheckpointFormatError(f"no Hugging Face model type runs this {family} model exactly: attention scale {dims.score_scale}")
    if model_type == "t5" and dims.score_scale != 1.0:
        raise CheckpointFormatError("no Hugging Face model type runs this encoder_decoder model exactly: T5 does not scale attention scores")
    for key, value in (("bos_token_id", ids.bos), ("pad_token_id", ids.pad)):
        if value is not None:
            out.setdefault(key, value)
    if ids.eos:
        out.setdefault("eos_token_id", ids.eos[0] if len(ids.eos) == 1 else list(ids.eos))
    return out
