"""The parameter map of each Hugging Face family: tensor name and layout <-> genaisdk path.

One `Rule` per genaisdk parameter says which Hugging Face tensor(s) fill it and how:

- `transpose`: `torch.nn.Linear` stores weight [out, in]; genaisdk's kernels are [in, out]
  (q: [e, h, d], o: [h, d, e], FFN: [e, f], [f, e], output: [e, V]). GPT-2's `Conv1D`
  stores [in, out] already: no transpose (the Conv1D pitfall of `modeling_flax_gpt2.py`).
- `split`: GPT-2 fuses q, k, v into one `c_attn` whose output columns are [q | k | v],
  each head-major (h x d): genaisdk's q is part 0 of 3 along the last axis, then reshaped.
- stacked layers: genaisdk's `<stack>/layers/...` arrays have a leading layer axis; the
  rule's name has `{i}` where the Hugging Face layer index goes.

Rotary models need no permutation: Hugging Face's LLaMA, Mistral and Qwen2 checkpoints are
in the half-split layout (`rotate_half`) that `genaisdk.backend.jax.layers.rotary` uses.
Nothing is folded into weights (no query scaling, no norm offsets): stored values stay
those of the checkpoint, and `Dimensions` carries the numerics (epsilon, attention scale).

`ParamMap.check` compares the map with a checkpoint's headers and raises one
`CheckpointFormatError` naming the file and tensor for a missing tensor, an unexpected one,
a shape mismatch, or an output matrix that contradicts `tie_word_embeddings`. Known
buffers and heads genaisdk does not model (GPT-2's causal-mask buffers, BERT's
next-sentence head) are skipped and reported; copies of a tied tensor are checked equal to
it by the loader.

The map runs both ways: `Rule.to_ours` for loading, `Rule.to_hf` (and `ParamMap.fuse` for
GPT-2's c_attn) for export. Everything here is NumPy; no JAX.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from genaisdk.checkpoints import CheckpointFormatError
from genaisdk.checkpoints.safetensors_files import FLOAT_DTYPES, TensorInfo
from genaisdk.dims import Dimensions


@attrs.frozen(kw_only=True)
class Rule:
    """How one genaisdk parameter is stored in a Hugging Face checkpoint."""

    path: str
    """genaisdk parameter path ('decoder/layers/attn/q')."""
    name: str
    """Hugging Face tensor name; '{i}' stands for the layer index of a stacked parameter."""
    hf_shape: tuple[int, ...] = attrs.field(converter=tuple)
    """Shape of the Hugging Face tensor (of the whole fused tensor, for a split)."""
    shape: tuple[int, ...] = attrs.field(converter=tuple)
    """genaisdk's shape of one layer's slice (the whole parameter when not stacked)."""
    layers: int = 0
    """Layers stacked on axis 0 (0: not a stacked parameter)."""
    transpose: bool = False
    split: tuple[int, int, int] | None = None
    """(axis, index, parts): this parameter is part `index` of `parts` along `axis`."""

    def names(self) -> list[str]:
        """The Hugging Face tensor names, one per layer for a stacked parameter."""
        if self.layers:
            return [self.name.format(i=i) for i in range(self.layers)]
        return [self.name]

    @property
    def piece_shape(self) -> tuple[int, ...]:
        if self.split is None:
            return self.hf_shape
        axis, _, parts = self.split
        shape = list(self.hf_shape)
        shape[axis] //= parts
        return tuple(shape)

    @property
    def full_shape(self) -> tuple[int, ...]:
        """genaisdk's shape of the whole parameter (layers first when stacked)."""
        return ((self.layers,) if self.layers else ()) + self.shape

    def view_ours(self, tensor: np.ndarray) -> np.ndarray:
        """One Hugging Face tensor (one layer's) in genaisdk's layout, as a view where NumPy
        can express it (split, transpose and reshape copy nothing): the loader copies it
        once, straight into the device buffer."""
        if self.split is not None:
            axis, index, parts = self.split
            tensor = np.split(tensor, parts, axis=axis)[index]
        if self.transpose:
            tensor = tensor.T
        return tensor.reshape(self.shape)

    def to_ours(self, tensor: np.ndarray) -> np.ndarray:
        """One Hugging Face tensor (one layer's) in genaisdk's layout, contiguous."""
        if self.transpose and self.split is None:
            return _transposed(tensor).reshape(self.shape)
        return np.ascontiguousarray(self.view_ours(tensor))

    def to_hf(self, value: np.ndarray) -> np.ndarray:
        """genaisdk's slice (one layer's) in the Hugging Face layout (the piece, for a split)."""
        piece = self.piece_shape
        if self.transpose:
            return _transposed(value.reshape(piece[::-1]))
        return value.reshape(piece)


def _transposed(matrix: np.ndarray) -> np.ndarray:
    """A contiguous transpose; 16-bit floats move as uint16 (NumPy copies its own integer
    types faster than ml_dtypes' bfloat16), the bits unchanged."""
    if matrix.dtype.itemsize == 2 and matrix.dtype != np.uint16:
        return np.ascontiguousarray(matrix.view(np.uint16).T).view(matrix.dtype)
    return np.ascontiguousarray(matrix.T)


@attrs.frozen(kw_only=True)
class ParamMap:
    """A family's rules for one model, and the tensors it tolerates beyond them."""

    model_type: str
    rules: tuple[Rule, ...] = attrs.field(converter=tuple)
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    """Tensor name -> the mapped tensor it must equal (tied copies: T5's embed_tokens,
    BERT's decoder weight, an lm_head that a tied config also stores)."""
    skip: tuple[str, ...] = ()
    """Regular expressions of tensors genaisdk does not model (buffers, unused heads)."""

    def by_path(self) -> dict[str, Rule]:
        return {r.path: r for r in self.rules}

    def expected(self) -> dict[str, tuple[int, ...]]:
        """Every Hugging Face tensor the map reads -> its shape."""
        out: dict[str, tuple[int, ...]] = {}
        for rule in self.rules:
            for name in rule.names():
                out[name] = rule.hf_shape
        return out

    def skipped(self, names: Iterable[str]) -> list[str]:
        patterns = [re.compile(p) for p in self.skip]
        return sorted(n for n in names if any(p.fullmatch(n) for p in patterns))

    def check(self, tensors: Mapping[str, TensorInfo], *, where: str, tied: bool) -> list[str]:
        """Raise CheckpointFormatError for the first problem between the map and the headers;
        return the names of skipped tensors. `where` names the checkpoint in messages."""
        expected = self.expected()
        missing = [n for n in expected if n not in tensors]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            untied_head = self.by_path().get("output/kernel")
            if untied_head is not None and missing[0] == untied_head.name:
                raise CheckpointFormatError(
                    f"{where}: tensor {missing[0]} is missing, but config.json says tie_word_embeddings = false; "
                    f"set it to true if the output reuses the token embedding"
                )
            raise CheckpointFormatError(f"{where}: tensor {missing[0]} is missing{more}; the checkpoint does not match its config.json")
        for name, shape in expected.items():
            info = tensors[name]
            if tuple(info.shape) != tuple(shape):
                raise CheckpointFormatError(
                    f"{info.file}: tensor {name} has shape {list(info.shape)}, config.json implies {list(shape)}"
                )
            if info.dtype not in FLOAT_DTYPES:
                raise CheckpointFormatError(f"{info.file}: tensor {name} is {info.dtype}; weights must be F32, F16 or BF16")
        skipped = self.skipped(tensors)
        known = set(expected) | set(self.aliases) | set(skipped)
        extra = sorted(n for n in tensors if n not in known)
        if extra:
            info = tensors[extra[0]]
            more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
            if tied and extra[0] in _OUTPUT_NAMES:
                raise CheckpointFormatError(
                    f"{info.file}: holds {extra[0]} although config.json says tie_word_embeddings = true; "
                    "set it to false if the output matrix is its own"
                )
            raise CheckpointFormatError(
                f"{info.file}: unexpected tensor {extra[0]}{more} for a {self.model_type} model of this config.json"
            )
        for alias, target in self.aliases.items():
            if alias in tensors and tuple(tensors[alias].shape) != tuple(tensors[target].shape):
                raise CheckpointFormatError(
                    f"{tensors[alias].file}: tensor {alias} {list(tensors[alias].shape)} should be a copy of "
                    f"{target} {list(tensors[target].shape)}"
                )
        return skipped

    def fuse(self, name: str, pieces: Mapping[str, np.ndarray]) -> np.ndarray:
        """The Hugging Face tensor `name` (a concrete name, layer index filled in) from the
        pieces of the rules that split it (rule path -> that rule's `to_hf` output)."""
        parts = sorted(
            ((rule.split, pieces[rule.path]) for rule in self.rules if rule.split is not None and rule.path in pieces),
            key=lambda item: item[0][1],
        )
        axis = parts[0][0][0]
        return np.concatenate([p for _, p in parts], axis=axis)


_OUTPUT_NAMES = ("lm_head.weight", "cls.predictions.decoder.weight", "lm_head.decoder.weight")


# ----------------------------------------------------------------------------- families


class _Builder:
    def __init__(self, dims: Dimensions):
        self.dims = dims
        self.rules: list[Rule] = []

    def add(self, path: str, name: str, hf_shape: tuple, shape: tuple, *, layers: int = 0, transpose: bool = False,
            split: tuple[int, int, int] | None = None) -> None:
        self.rules.append(
            Rule(path=path, name=name, hf_shape=hf_shape, shape=shape, layers=layers, transpose=transpose, split=split)
        )

    def linear(self, path: str, name: str, out_in: tuple[int, int], shape: tuple, *, layers: int = 0) -> None:
        """A torch Linear weight [out, in] -> genaisdk [in, ...out]."""
        self.add(path, name, out_in, shape, layers=layers, transpose=True)

    def norm(self, path: str, weight: str, bias: str | None, *, layers: int = 0) -> None:
        e = self.dims.d_model
        self.add(f"{path}/scale", weight, (e,), (e,), layers=layers)
        if bias is not None and self.dims.norm == "layernorm" and self.dims.biases:
            self.add(f"{path}/bias", bias, (e,), (e,), layers=layers)


def _prefix(names: set[str] | None, candidates: Iterable[str], probe: str) -> str:
    """The prefix a checkpoint puts before its tensor names ('transformer.', 'bert.', ''),
    found by which spelling of `probe` the headers hold (first candidate without headers)."""
    candidates = list(candidates)
    if names is None:
        return candidates[0]
    for prefix in candidates:
        if prefix + probe in names:
            return prefix
    return candidates[0]


def _gpt2(dims: Dimensions, names: set[str] | None) -> ParamMap:
    b = _Builder(dims)
    p = _prefix(names, ("transformer.", ""), "wte.weight")
    e, h, d, f, L = dims.d_model, dims.heads, dims.d_head, dims.d_ff, dims.layers
    s = "decoder/layers"
    b.add("embed/token", f"{p}wte.weight", (dims.vocab, e), (dims.vocab, e))
    rows = dims.position_table or dims.context
    b.add("decoder/position", f"{p}wpe.weight", (rows, e), (rows, e))
    b.norm(f"{s}/attn_norm", p + "h.{i}.ln_1.weight", p + "h.{i}.ln_1.bias", layers=L)
    for index, leaf in enumerate(("q", "k", "v")):
        b.add(f"{s}/attn/{leaf}", p + "h.{i}.attn.c_attn.weight", (e, 3 * h * d), (e, h, d), layers=L, split=(1, index, 3))
        b.add(f"{s}/attn/{leaf}_bias", p + "h.{i}.attn.c_attn.bias", (3 * h * d,), (h, d), layers=L, split=(0, index, 3))
    b.add(f"{s}/attn/o", p + "h.{i}.attn.c_proj.weight", (h * d, e), (h, d, e), layers=L)
    b.add(f"{s}/attn/o_bias", p + "h.{i}.attn.c_proj.bias", (e,), (e,), layers=L)
    b.norm(f"{s}/mlp_norm", p + "h.{i}.ln_2.weight", p + "h.{i}.ln_2.bias", layers=L)
    b.add(f"{s}/mlp/wi", p + "h.{i}.mlp.c_fc.weight", (e, f), (e, f), layers=L)
    b.add(f"{s}/mlp/bi", p + "h.{i}.mlp.c_fc.bias", (f,), (f,), layers=L)
    b.add(f"{s}/mlp/wo", p + "h.{i}.mlp.c_proj.weight", (f, e), (f, e), layers=L)
    b.add(f"{s}/mlp/bo", p + "h.{i}.mlp.c_proj.bias", (e,), (e,), layers=L)
    b.norm("decoder/final_norm", f"{p}ln_f.weight", f"{p}ln_f.bias")
    aliases: dict[str, str] = {}
    if dims.tied_embeddings:
        aliases["lm_head.weight"] = f"{p}wte.weight"
    else:
        b.linear("output/kernel", "lm_head.weight", (dims.vocab, e), (e, dims.vocab))
    # Old GPT-2 files keep the causal-mask buffers.
    skip = (re.escape(p) + r"h\.\d+\.attn\.(bias|masked_bias)",)
    return ParamMap(model_type="gpt2", rules=b.rules, aliases=aliases, skip=skip)


def _llama(dims: Dimensions, model_type: str) -> ParamMap:
    b = _Builder(dims)
    e, h, g, d, f, L = dims.d_model, dims.heads, dims.n_kv_heads, dims.d_head, dims.d_ff, dims.layers
    s = "decoder/layers"
    n = "model.layers.{i}."
    b.add("embed/token", "model.embed_tokens.weight", (dims.vocab, e), (dims.vocab, e))
    b.norm(f"{s}/attn_norm", n + "input_layernorm.weight", None, layers=L)
    b.linear(f"{s}/attn/q", n + "self_attn.q_proj.weight", (h * d, e), (e, h, d), layers=L)
    b.linear(f"{s}/attn/k", n + "self_attn.k_proj.weight", (g * d, e), (e, g, d), layers=L)
    b.linear(f"{s}/attn/v", n + "self_attn.v_proj.weight", (g * d, e), (e, g, d), layers=L)
    b.linear(f"{s}/attn/o", n + "self_attn.o_proj.weight", (e, h * d), (h, d, e), layers=L)
    if dims.has_qkv_biases:
        b.add(f"{s}/attn/q_bias", n + "self_attn.q_proj.bias", (h * d,), (h, d), layers=L)
        b.add(f"{s}/attn/k_bias", n + "self_attn.k_proj.bias", (g * d,), (g, d), layers=L)
        b.add(f"{s}/attn/v_bias", n + "self_attn.v_proj.bias", (g * d,), (g, d), layers=L)
    if dims.biases:
        b.add(f"{s}/attn/o_bias", n + "self_attn.o_proj.bias", (e,), (e,), layers=L)
    b.norm(f"{s}/mlp_norm", n + "post_attention_layernorm.weight", None, layers=L)
    b.linear(f"{s}/mlp/wi_gate", n + "mlp.gate_proj.weight", (f, e), (e, f), layers=L)
    b.linear(f"{s}/mlp/wi", n + "mlp.up_proj.weight", (f, e), (e, f), layers=L)
    b.linear(f"{s}/mlp/wo", n + "mlp.down_proj.weight", (e, f), (f, e), layers=L)
    if dims.biases:
        b.add(f"{s}/mlp/bi_gate", n + "mlp.gate_proj.bias", (f,), (f,), layers=L)
        b.add(f"{s}/mlp/bi", n + "mlp.up_proj.bias", (f,), (f,), layers=L)
        b.add(f"{s}/mlp/bo", n + "mlp.down_proj.bias", (e,), (e,), layers=L)
    b.norm("decoder/final_norm", "model.norm.weight", None)
    aliases: dict[str, str] = {}
    if dims.tied_embeddings:
        aliases["lm_head.weight"] = "model.embed_tokens.weight"
    else:
        b.linear("output/kernel", "lm_head.weight", (dims.vocab, e), (e, dims.vocab))
    skip = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)
    return ParamMap(model_type=model_type, rules=b.rules, aliases=aliases, skip=skip)


def _bert(dims: Dimensions, model_type: str, names: set[str] | None) -> ParamMap:
    b = _Builder(dims)
    base = "roberta." if model_type == "roberta" else "bert."
    p = _prefix(names, (base, ""), "embeddings.word_embeddings.weight")
    e, h, d, f, L = dims.d_model, dims.heads, dims.d_head, dims.d_ff, dims.layers
    s = "encoder/layers"
    n = p + "encoder.layer.{i}."
    b.add("embed/token", f"{p}embeddings.word_embeddings.weight", (dims.vocab, e), (dims.vocab, e))
    if dims.token_types:
        b.add("embed/token_types", f"{p}embeddings.token_type_embeddings.weight", (dims.token_types, e), (dims.token_types, e))
    rows = dims.position_table or dims.context
    b.add("encoder/position", f"{p}embeddings.position_embeddings.weight", (rows, e), (rows, e))
    b.norm("encoder/embedding_norm", f"{p}embeddings.LayerNorm.weight", f"{p}embeddings.LayerNorm.bias")
    for leaf, hf in (("q", "query"), ("k", "key"), ("v", "value")):
        b.linear(f"{s}/attn/{leaf}", n + f"attention.self.{hf}.weight", (h * d, e), (e, h, d), layers=L)
        b.add(f"{s}/attn/{leaf}_bias", n + f"attention.self.{hf}.bias", (h * d,), (h, d), layers=L)
    b.linear(f"{s}/attn/o", n + "attention.output.dense.weight", (e, h * d), (h, d, e), layers=L)
    b.add(f"{s}/attn/o_bias", n + "attention.output.dense.bias", (e,), (e,), layers=L)
    b.norm(f"{s}/attn_norm", n + "attention.output.LayerNorm.weight", n + "attention.output.LayerNorm.bias", layers=L)
    b.linear(f"{s}/mlp/wi", n + "intermediate.dense.weight", (f, e), (e, f), layers=L)
    b.add(f"{s}/mlp/bi", n + "intermediate.dense.bias", (f,), (f,), layers=L)
    b.linear(f"{s}/mlp/wo", n + "output.dense.weight", (e, f), (f, e), layers=L)
    b.add(f"{s}/mlp/bo", n + "output.dense.bias", (e,), (e,), layers=L)
    b.norm(f"{s}/mlp_norm", n + "output.LayerNorm.weight", n + "output.LayerNorm.bias", layers=L)
    if dims.pooler:
        b.linear("pooler/kernel", f"{p}pooler.dense.weight", (e, e), (e, e))
        b.add("pooler/bias", f"{p}pooler.dense.bias", (e,), (e,))
    aliases: dict[str, str] = {}
    if dims.mlm_head:
        if model_type == "roberta":
            head, dense, norm, out_bias, decoder = "lm_head.", "dense", "layer_norm", "lm_head.bias", "lm_head.decoder"
        else:
            head, dense, norm, out_bias, decoder = (
                "cls.predictions.transform.", "dense", "LayerNorm", "cls.predictions.bias", "cls.predictions.decoder",
            )
        b.linear("mlm_head/kernel", f"{head}{dense}.weight", (e, e), (e, e))
        b.add("mlm_head/bias", f"{head}{dense}.bias", (e,), (e,))
        b.norm("mlm_head/norm", f"{head}{norm}.weight", f"{head}{norm}.bias")
        b.add("mlm_head/output_bias", out_bias, (dims.vocab,), (dims.vocab,))
        aliases[f"{decoder}.weight"] = f"{p}embeddings.word_embeddings.weight"
        aliases[f"{decoder}.bias"] = out_bias
    skip = (
        r"cls\.seq_relationship\.(weight|bias)",  # BERT's next-sentence head
        re.escape(p) + r"embeddings\.(position_ids|token_type_ids)",  # buffers in older files
    )
    if not dims.pooler:
        # RobertaForMaskedLM drops the pooler that the pretraining checkpoints carry.
        skip += (re.escape(p) + r"pooler\.dense\.(weight|bias)",)
    return ParamMap(model_type=model_type, rules=b.rules, aliases=aliases, skip=skip)


def _t5(dims: Dimensions) -> ParamMap:
    b = _Builder(dims)
    e, h, d, f = dims.d_model, dims.heads, dims.d_head, dims.d_ff
    b.add("embed/token", "shared.weight", (dims.vocab, e), (dims.vocab, e))
    for stack, layers in (("encoder", dims.layers), ("decoder", dims.n_decoder_layers)):
        n = f"{stack}.block." + "{i}.layer."
        s = f"{stack}/layers"
        b.add(
            f"{stack}/relative_bias", f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            (dims.relative_buckets, h), (dims.relative_buckets, h),
        )
        sublayers = [("attn", "0.SelfAttention", "attn_norm", "0")]
        if stack == "decoder":
            sublayers.append(("cross", "1.EncDecAttention", "cross_norm", "1"))
        for leaf, module, norm_path, index in sublayers:
            for proj in ("q", "k", "v"):
                b.linear(f"{s}/{leaf}/{proj}", n + f"{module}.{proj}.weight", (h * d, e), (e, h, d), layers=layers)
            b.linear(f"{s}/{leaf}/o", n + f"{module}.o.weight", (e, h * d), (h, d, e), layers=layers)
            b.norm(f"{s}/{norm_path}", n + f"{index}.layer_norm.weight", None, layers=layers)
        ff = "2" if stack == "decoder" else "1"
        if dims.ffn == "gated":
            b.linear(f"{s}/mlp/wi_gate", n + f"{ff}.DenseReluDense.wi_0.weight", (f, e), (e, f), layers=layers)
            b.linear(f"{s}/mlp/wi", n + f"{ff}.DenseReluDense.wi_1.weight", (f, e), (e, f), layers=layers)
        else:
            b.linear(f"{s}/mlp/wi", n + f"{ff}.DenseReluDense.wi.weight", (f, e), (e, f), layers=layers)
        b.linear(f"{s}/mlp/wo", n + f"{ff}.DenseReluDense.wo.weight", (e, f), (f, e), layers=layers)
        b.norm(f"{s}/mlp_norm", n + f"{ff}.layer_norm.weight", None, layers=layers)
        b.norm(f"{stack}/final_norm", f"{stack}.final_layer_norm.weight", None)
    aliases = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}
    if dims.tied_embeddings:
        aliases["lm_head.weight"] = "shared.weight"
    else:
        b.linear("output/kernel", "lm_head.weight", (dims.vocab, e), (e, dims.vocab))
    # transformers ignores a cross-attention relative bias that some T5 files carry.
    skip = (r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight",)
    return ParamMap(model_type="t5", rules=b.rules, aliases=aliases, skip=skip)


def param_map(model_type: str, dims: Dimensions, names: Iterable[str] | None = None) -> ParamMap:
    """The map of a `model_type` model of `dims`. `names`, the checkpoint's tensor names,
    decide prefixes that vary between files ('transformer.' for GPT-2, 'bert.'); without
    them the map uses what transformers writes today."""
    present = set(names) if names is not None else None
    if model_type == "gpt2":
        return _gpt2(dims, present)
    if model_type in ("llama", "mistral", "qwen2"):
        return _llama(dims, model_type)
    if model_type in ("bert", "roberta"):
        return _bert(dims, model_type, present)
    if model_type == "t5":
        return _t5(dims)
    raise CheckpointFormatError(f"no parameter map for model_type {model_type!r}")


def legacy_names(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Headers with TensorFlow-era LayerNorm names (`gamma`, `beta`, in the oldest BERT
    files) spelled as today's (`weight`, `bias`)."""
    out: dict[str, Any] = {}
    for name, value in tensors.items():
        if ".LayerNorm." in name and name.endswith((".gamma", ".beta")):
            name = name[: name.rindex(".")] + (".weight" if name.endswith(".gamma") else ".bias")
        out[name] = value
    return out
