"""Parameters and resident models of the adaptation methods.

- LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1): a
  frozen W₀ (d_in x d_out) gets a trainable update B·A with B ∈ R^{d_in x r},
  A ∈ R^{r x d_out}: r·(d_in + d_out) parameters per adapted matrix. Only the adapters have
  gradients and optimizer state; the base stays at its own precision.
- QLoRA (Dettmers et al. 2023, Sec. 3): the same adapters over a 4-bit NormalFloat base with
  double-quantized constants, counted tensor by tensor as stored
  (`genaisdk.estimate.quantization.kbit_base_quantized`, `serving_weights`). Its paper
  adapts every linear layer of the blocks (Sec. 4: 'LoRA on all linear transformer block
  layers'), which `ALL_TARGETS` names.
- RLHF with PPO (Ouyang et al. 2022, "Training language models to follow instructions with
  human feedback", Sec. 3.5 and App. C): the policy and the value model train; the reference
  policy (for the KL penalty) and the reward model stay frozen, all four resident.
- DPO (Rafailov et al. 2023, "Direct Preference Optimization", Sec. 4, Eq. 7): the policy
  trains against a frozen reference policy; no reward or value model.

FLOPs of a LoRA step (`lora_flops_per_token`): the frozen base runs its forward pass (2
FLOPs per matrix parameter per token) and the backward pass's input gradients (2 more), but
never its weight gradients (the other 2 of the 6·N convention; Narayanan et al. 2021,
Sec. 5.1: three passes of 2·N), so 2·N_matmul FLOPs per token fewer than full training; the
adapters train, 6 FLOPs per adapter parameter per token; attention is unchanged. Hu et al.
2021 (Sec. 4.2) measured the consequence: LoRA trains GPT-3 175B 25% faster than full
fine-tuning, "as we do not need to calculate the gradient for the vast majority of the
parameters" (4·N over 6·N would be 33% fewer FLOPs).

Memory is then `genaisdk.estimate.memory.training_memory` with `params` = everything
resident, `trainable_params` = what trains and `frozen_weight_bytes` = the frozen models'
precision, and `kept_params` = the frozen parameters a k-bit base does not quantize; for
LoRA and QLoRA `adapters=True` counts the adapters at their own precision
(`adapter_state_bytes`).

A k-bit base (QLoRA's 4-bit, LLM.int8()'s 8-bit) as 4-bit libraries build it, term by term:

- what is quantized (`kbit_kept_params`): bitsandbytes quantizes `torch.nn.Linear` layers
  only (transformers/accelerate `replace_with_bnb_linear` swaps each for `Linear4bit` or
  `Linear8bitLt`), and keeps the output head unquantized "for numerical stability"
  (`get_keys_to_not_convert`, `llm_int8_skip_modules` default: the output embeddings). The
  token embedding is an `nn.Embedding` and the norms are not linear layers: all three stay
  at the load dtype. For a Mistral-7B-shaped model the embedding and output tables are 262M
  parameters: 0.52 GB in bf16 instead of 0.14 GB in NF4, 0.39 GB more;
- a k-bit-prepared model's activations are wider (`kbit_upcast_bytes`): PEFT's
  `prepare_model_for_kbit_training` casts every remaining 16-bit parameter to fp32 (its
  loop over `model.parameters()`: "cast all non INT8 parameters to fp32"), so the norms
  multiply by fp32 scales and return fp32; `Linear4bit.forward` computes in its compute
  dtype and casts its output back to its input's dtype, so the residual stream, each norm's
  output and the FFN's intermediates stay fp32 from the first block on. With full
  recomputation (which `prepare_model_for_kbit_training` switches on by default) that is
  each block's stored input at 4 bytes instead of 2: 262 KB more per token for 32 blocks of
  4096, the difference measured between QLoRA (997 KB per token) and LoRA (735 KB) on that
  model;
- the adapters' own activations (`lora_activation_bytes`): PEFT computes
  `lora_B(lora_A(dropout(x)))` beside the frozen layer, so each adapted matrix keeps its own
  copy of its input (the dropout output, which `lora_A` saves for its weight gradient), the
  dropout mask (1 byte per value) and the rank-r output of A, which B saves. LoRA and QLoRA
  train with adapter dropout (Hu et al. 2021, App. D; Dettmers et al. 2023, App. B).
"""

from __future__ import annotations

import attrs

import numpy as np

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import canonical_family, count_params, stack_shape
from genaisdk.records import ParamCount

ATTENTION_TARGETS = ("q", "k", "v", "o")
MLP_TARGETS = ("gate", "up", "down")
ALL_TARGETS = ATTENTION_TARGETS + MLP_TARGETS
TARGET_GROUPS = {"attention": ATTENTION_TARGETS, "mlp": MLP_TARGETS, "all": ALL_TARGETS}
"""Target names: single projections, or a group. LoRA's paper adapts q and v (Sec. 7.1)."""
TARGET_NAMES = ALL_TARGETS + tuple(TARGET_GROUPS)
"""Every name `expand_targets` accepts."""
FROZEN_PRECISIONS = ("int4", "int8")
"""The precisions `adapt.frozen_precision` quantizes a frozen base to: 4-bit NormalFloat
(int4, QLoRA's NF4) or per-channel int8."""


ADAPTER_PRECISION_SOURCE = (
    "fp32 adapters under mixed precision, themselves the master copy: PEFT's autocast_adapter_dtype "
    "(default since 0.12) and genaisdk's backend"
)


def adapter_state_bytes(weight_bytes, gradient_bytes, master_bytes):
    """(weight, gradient, master) bytes per adapter parameter (LoRA's A and B) under a
    precision with these bytes per trained weight (arrays broadcast).

    Under mixed precision (`master_bytes` > 0) the adapters are stored in the master dtype
    (fp32) and are themselves the master copy: each product casts them to the compute dtype
    on the fly, so their gradients are fp32 too and no 16-bit working copy or second copy is
    kept: (master, master, 0), 4 + 4 bytes and the optimizer's state. PEFT does the same over
    a 16-bit base (`get_peft_model(..., autocast_adapter_dtype=True)`, the default since PEFT
    0.12: "upcast the adapter weights to float32" when the base is fp16 or bf16), and so does
    genaisdk's backend (`genaisdk.backend.jax.precision.policy_from_record`: trained weights
    in fp32 when the record has a master copy; `genaisdk.backend.jax.lora` creates the
    adapters in that dtype). A full fine-tune is counted as Megatron-LM keeps it instead
    (16-bit weights and gradients, fp32 master; ZeRO, Rajbhandari et al. 2020, Sec. 3.1);
    per trained parameter both come to 16 bytes with Adam, but 12 of the adapters' are
    persistent where 14 of the 16-bit weights' are.

    Without a master copy (fp32, pure bf16) the adapters are kept like any trained weight:
    (weight_bytes, gradient_bytes, 0)."""
    master = np.asarray(master_bytes, dtype=float)
    mixed = master > 0
    return (
        np.where(mixed, master, np.asarray(weight_bytes, dtype=float)),
        np.where(mixed, master, np.asarray(gradient_bytes, dtype=float)),
        np.zeros_like(master),
    )


def expand_targets(targets) -> tuple[str, ...]:
    """'attention', 'mlp', 'all' or projection names -> the projection names, in order."""
    names: list[str] = []
    for target in targets:
        key = str(target).strip().lower()
        if key in TARGET_GROUPS:
            names.extend(TARGET_GROUPS[key])
        elif key in ALL_TARGETS:
            names.append(key)
        else:
            raise ValueError(f"unknown LoRA target {target!r}; use one of {ALL_TARGETS} or {tuple(TARGET_GROUPS)}")
    return tuple(dict.fromkeys(names))


def _matrix_shapes(dims: Dimensions) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of each projection of one block."""
    d, q, kv, f = dims.d_model, dims.heads * dims.d_head, dims.n_kv_heads * dims.d_head, dims.d_ff
    shapes = {"q": (d, q), "k": (d, kv), "v": (d, kv), "o": (q, d), "up": (d, f), "down": (f, d)}
    if dims.ffn == "gated":
        shapes["gate"] = (d, f)
    return shapes


def adapter_shapes(dims: Dimensions, targets) -> tuple[tuple[int, int], ...]:
    """(d_in, d_out) of each adapted matrix of one block, in `expand_targets` order (a target
    the block lacks, 'gate' in a GELU FFN, is left out)."""
    shapes = _matrix_shapes(dims)
    return tuple(shapes[n] for n in expand_targets(targets) if n in shapes)


def lora_params(dims: Dimensions, *, rank: int, targets=("q", "v"), family: str = "decoder") -> int:
    """Trainable LoRA parameters: Σ over adapted matrices of r·(d_in + d_out), every block
    (Hu et al. 2021, Sec. 4.1). An encoder-decoder's decoder blocks adapt their
    cross-attention projections too. A target a block lacks ('gate' in a GELU FFN) adds 0."""
    if rank <= 0:
        raise ValueError(f"LoRA rank must be > 0, got {rank}")
    names = expand_targets(targets)
    shapes = _matrix_shapes(dims)
    per_block = sum(rank * sum(shapes[n]) for n in names if n in shapes)
    per_cross = sum(rank * sum(shapes[n]) for n in names if n in ATTENTION_TARGETS)
    shape = stack_shape(dims, family)
    blocks = shape.encoder_layers + shape.decoder_layers
    cross = shape.decoder_layers if shape.cross_attention else 0
    return int(blocks * per_block + cross * per_cross)


def lora_flops_per_token(dims: Dimensions, *, rank: int, targets=("q", "v"), family: str = "decoder", context) -> tuple[float, float]:
    """(FLOPs per token a frozen base skips, FLOPs per token the adapters add) for LoRA and
    QLoRA (module docstring): the base's weight gradients, 2 x its matmul parameters
    (a third of `model_flops_per_token(...).dense`), and 6 x the adapter parameters
    (`lora_params`). Model FLOPs per token are the architecture's minus the first plus the
    second."""
    from genaisdk.estimate.flops import model_flops_per_token

    dense = float(model_flops_per_token(dims, family=family, context=context).dense)
    return dense / 3.0, 6.0 * float(lora_params(dims, rank=rank, targets=targets, family=family))


RESIDENT_MODELS = {
    "rlhf": (("policy", True), ("value", True), ("reference", False), ("reward", False)),
    "ppo": (("policy", True), ("value", True), ("reference", False), ("reward", False)),
    "dpo": (("policy", True), ("reference", False)),
}
"""Models held in memory during training and whether each trains."""


@attrs.frozen(kw_only=True)
class ResidentParams:
    """Parameters resident during alignment: per model, and what trains."""

    models: dict[str, float]
    trainable: dict[str, bool]

    @property
    def total(self) -> float:
        return float(sum(self.models.values()))

    @property
    def trainable_params(self) -> float:
        return float(sum(n for name, n in self.models.items() if self.trainable[name]))

    @property
    def frozen_params(self) -> float:
        return self.total - self.trainable_params


def alignment_params(method: str, *, policy_params: float, value_params=None, reward_params=None) -> ResidentParams:
    """Resident models of RLHF-PPO (policy, value, reference, reward; Ouyang et al. 2022) or
    DPO (policy, reference; Rafailov et al. 2023). The reference is a copy of the policy;
    the value and reward models default to the policy's size (InstructGPT used 6B reward and
    value models with a 175B policy: pass their sizes when they differ)."""
    key = method.strip().lower()
    if key not in RESIDENT_MODELS:
        raise ValueError(f"unknown alignment method {method!r}; use one of {tuple(RESIDENT_MODELS)}")
    sizes = {
        "policy": float(policy_params),
        "reference": float(policy_params),
        "value": float(policy_params if value_params is None else value_params),
        "reward": float(policy_params if reward_params is None else reward_params),
    }
    models = {name: sizes[name] for name, _ in RESIDENT_MODELS[key]}
    trainable = dict(RESIDENT_MODELS[key])
    return ResidentParams(models=models, trainable=trainable)


def trainable_fraction(dims: Dimensions, *, rank: int, targets, family: str = "decoder") -> float:
    """LoRA parameters as a fraction of the base model's."""
    base = count_params(dims, canonical_family(family)).total
    return lora_params(dims, rank=rank, targets=targets, family=family) / base


FP32_BYTES = 4.0
MASK_BYTES = 1.0


def _unquantized_part(name: str) -> bool:
    """A `ParamCount.breakdown` part a k-bit library leaves at the load dtype: lookup tables
    (`embedding.*`), norms, and the output head; every other part is linear layers."""
    last = name.rsplit(".", 1)[-1]
    return "embedding" in name or "norm" in last or last == "output"


def kbit_kept_params(count: ParamCount) -> float:
    """Parameters of a k-bit model that are not quantized: the token (and position)
    embeddings, the norms and the untied output head (module docstring). A count without a
    breakdown keeps its `embedding` share."""
    if not count.breakdown:
        return float(count.embedding)
    return float(sum(n for name, n in count.breakdown.items() if _unquantized_part(name)))


def _blocks(dims: Dimensions, family: str) -> int:
    shape = stack_shape(dims, family)
    return shape.encoder_layers + shape.decoder_layers


def kbit_upcast_bytes(dims: Dimensions, *, family: str = "decoder", seq, micro_batch, recompute: str, bytes_per_value=2.0):
    """Activation bytes a k-bit-prepared model adds to the `bytes_per_value` (p) accounting of
    `genaisdk.estimate.activations` (module docstring), by part:

    - `kbit_upcast`: held from the forward to the backward pass. Full recomputation: each
      block's input (the residual stream) and the final norm's input at 4 - p more bytes per
      value: (4 - p)·h·(L + 1) per token. Otherwise every block's fp32 tensors: both norms'
      inputs and outputs (4h) and the FFN's intermediates (gate, up, activation and product,
      4·d_ff; 2·d_ff without a gate), (4 - p) bytes more each;
    - `kbit_upcast_rebuilt`: under full recomputation, the same for the one block rebuilt
      during the backward pass.

    Shapes: `seq` and `micro_batch` broadcast (numpy)."""
    p = np.asarray(bytes_per_value, dtype=float)
    tokens = np.asarray(seq, dtype=float) * np.asarray(micro_batch, dtype=float)
    extra = np.maximum(FP32_BYTES - p, 0.0)
    h = dims.d_model
    ffn = (4 if dims.ffn == "gated" else 2) * dims.d_ff
    layer = extra * (4 * h + ffn) * tokens
    blocks = _blocks(dims, family)
    if recompute == "full":
        return {"kbit_upcast": extra * h * (blocks + 1) * tokens, "kbit_upcast_rebuilt": layer}
    return {"kbit_upcast": blocks * layer + extra * h * tokens, "kbit_upcast_rebuilt": 0.0 * tokens}


def lora_activation_bytes(
    dims: Dimensions, *, rank: int, targets, family: str = "decoder", seq, micro_batch, recompute: str,
    bytes_per_value=2.0, dropout: bool = True,
):
    """Activation bytes the LoRA adapters add (module docstring): per adapted matrix of input
    width d_in and per token, d_in·(p + 1) (the dropout output and mask; d_in·p without
    dropout, the input's copy in the adapter's dtype) + r·p (A's output). Every block holds
    them (`lora_inputs`), or under full recomputation only the block being rebuilt
    (`lora_inputs_rebuilt`). `bytes_per_value` is the dtype the adapters see (fp32 in a
    k-bit-prepared model). An encoder-decoder's cross-attention adapters are not counted."""
    p = np.asarray(bytes_per_value, dtype=float)
    tokens = np.asarray(seq, dtype=float) * np.asarray(micro_batch, dtype=float)
    shapes = _matrix_shapes(dims)
    names = [n for n in expand_targets(targets) if n in shapes]
    mask = MASK_BYTES if dropout else 0.0
    per_layer = sum(shapes[n][0] * (p + mask) + rank * p for n in names) * tokens
    if recompute == "full":
        return {"lora_inputs": 0.0 * tokens, "lora_inputs_rebuilt": per_layer}
    return {"lora_inputs": _blocks(dims, family) * per_layer, "lora_inputs_rebuilt": 0.0 * tokens}
