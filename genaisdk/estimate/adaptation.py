"""Parameters and resident models of the adaptation methods.

- LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1): a
  frozen W₀ (d_in x d_out) gets a trainable update B·A with B ∈ R^{d_in x r},
  A ∈ R^{r x d_out}: r·(d_in + d_out) parameters per adapted matrix. Only the adapters have
  gradients and optimizer state; the base stays at its own precision.
- QLoRA (Dettmers et al. 2023, Sec. 3): the same adapters over a 4-bit NormalFloat base with
  double-quantized constants (`constants.NF4_DOUBLE_QUANT_BYTES` per parameter). Its paper
  adapts every linear layer of the blocks (Sec. 4: 'LoRA on all linear transformer block
  layers'), which `ALL_TARGETS` names.
- RLHF with PPO (Ouyang et al. 2022, "Training language models to follow instructions with
  human feedback", Sec. 3.5 and App. C): the policy and the value model train; the reference
  policy (for the KL penalty) and the reward model stay frozen, all four resident.
- DPO (Rafailov et al. 2023, "Direct Preference Optimization", Sec. 4, Eq. 7): the policy
  trains against a frozen reference policy; no reward or value model.

Memory is then `genaisdk.estimate.memory.training_memory` with `params` = everything
resident, `trainable_params` = what trains and `frozen_weight_bytes` = the frozen models'
precision.
"""

from __future__ import annotations

import attrs

from genaisdk.dims import Dimensions
from genaisdk.estimate.params import canonical_family, count_params, stack_shape

ATTENTION_TARGETS = ("q", "k", "v", "o")
MLP_TARGETS = ("gate", "up", "down")
ALL_TARGETS = ATTENTION_TARGETS + MLP_TARGETS
TARGET_GROUPS = {"attention": ATTENTION_TARGETS, "mlp": MLP_TARGETS, "all": ALL_TARGETS}
"""Target names: single projections, or a group. LoRA's paper adapts q and v (Sec. 7.1)."""
TARGET_NAMES = ALL_TARGETS + tuple(TARGET_GROUPS)
"""Every name `expand_targets` accepts."""


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
