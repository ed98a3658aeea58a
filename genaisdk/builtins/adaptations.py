"""Built-in adaptation methods: what trains, at which precision, and which models stay resident.

`trainable_fraction` is None where it follows from the spec (LoRA's rank and target
matrices), fixed otherwise. LoRA targets name a layer's matrices: 'q', 'k', 'v', 'o' (the
attention projections) and 'up', 'gate', 'down' (the FFN's; 'gate' only in gated FFNs).
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Adaptation

ATTENTION_TARGETS = ("q", "k", "v", "o")
FFN_TARGETS = ("up", "gate", "down")
LORA_TARGETS = ATTENTION_TARGETS + FFN_TARGETS
"""Every matrix a LoRA adapter can attach to."""


@hookimpl
def genaisdk_adaptations() -> Iterator[Adaptation]:
    yield Adaptation(
        name="prompt",
        description="Prompting only (zero- or few-shot in context): no training; the plan sizes inference",
        trains=False,
        full=False,
        trainable_fraction=0.0,
        trained_models=(),
        source="Brown et al. 2020, 'Language Models are Few-Shot Learners', Sec. 2 (in-context learning)",
        aliases=("prompting", "in-context"),
    )
    yield Adaptation(
        name="finetune",
        description="Full fine-tuning of a pretrained model: every weight trains",
        trainable_fraction=1.0,
        source="Howard & Ruder 2018, 'Universal Language Model Fine-tuning'; Devlin et al. 2019 (BERT), Sec. 3.2",
        aliases=("fine-tune", "full-finetune", "sft"),
    )
    yield Adaptation(
        name="lora",
        description="Low-rank adapters W + BA on chosen matrices; the base weights stay frozen at the training "
        "precision",
        full=False,
        default_rank=8,
        default_targets=("q", "v"),
        source="Hu et al. 2022, 'LoRA: Low-Rank Adaptation of Large Language Models', Sec. 4 (adapting Wq and "
        "Wv, Sec. 7.1) and App. D (r = 8 for RoBERTa and DeBERTa)",
    )
    yield Adaptation(
        name="qlora",
        description="LoRA over a frozen base quantized to 4-bit NormalFloat, adapters on every linear layer",
        full=False,
        frozen_precision="int4",
        default_rank=64,
        default_targets=LORA_TARGETS,
        default_alpha=16.0,
        default_dropout=0.1,
        source="Dettmers et al. 2023, 'QLoRA: Efficient Finetuning of Quantized LLMs', Sec. 3 and 4 "
        "(NF4 base; r = 64 on all linear layers), App. B.2 (alpha 16, dropout 0.1 up to 13B)",
    )
    yield Adaptation(
        name="pretrain",
        description="Pretraining from random weights (also domain pretraining on a mixed corpus)",
        trainable_fraction=1.0,
        from_scratch=True,
        source="Radford et al. 2019 (GPT-2); Wu et al. 2023, 'BloombergGPT', Sec. 2 (51% financial, 49% "
        "general data)",
        aliases=("pretraining", "from-scratch"),
    )
    yield Adaptation(
        name="rlhf",
        description="RLHF with PPO: the policy and the value model train; the frozen reference (SFT) model and "
        "the reward model stay resident for the KL penalty and the reward",
        trainable_fraction=1.0,
        resident_models=("policy", "value", "reference", "reward"),
        trained_models=("policy", "value"),
        source="Ouyang et al. 2022, 'Training language models to follow instructions with human feedback', "
        "Sec. 3.5 (PPO; value function initialized from the reward model)",
        aliases=("ppo", "rlhf-ppo"),
    )
    yield Adaptation(
        name="dpo",
        description="Direct preference optimization: the policy trains against a frozen reference model, no "
        "reward or value model",
        trainable_fraction=1.0,
        resident_models=("policy", "reference"),
        trained_models=("policy",),
        source="Rafailov et al. 2023, 'Direct Preference Optimization: Your Language Model is Secretly a Reward "
        "Model', Sec. 4, Eq. 7",
    )
