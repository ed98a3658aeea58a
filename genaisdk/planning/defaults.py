"""What the planner assumes where a spec is silent, each default with its source.

These are choices, not formulas: every one of them is listed in the plan's `assumptions`
or `reasons` when it is used.
"""

from __future__ import annotations

import bisect

from genaisdk.spec.validate import DEFAULT_HARDWARE  # noqa: E402,F401  (the spec layer validates against it)

DEFAULT_CONTEXT = 2048
"""Training sequence length when neither the spec nor a preset gives one: GPT-3 (Brown et
al. 2020, Sec. 2.1), LLaMA (Touvron et al. 2023), Chinchilla (Hoffmann et al. 2022) all
trained on 2048 tokens."""

DEFAULT_VOCAB = 32_000
"""Vocabulary when neither the spec nor a preset gives one: LLaMA's SentencePiece BPE (Touvron
et al. 2023, Sec. 2.1) and T5's SentencePiece (Raffel et al. 2020, Sec. 2.2, 32k)."""

GPT3_BATCH_TOKENS = (
    # (parameters, global batch in tokens), Brown et al. 2020, Table 2.1
    (125e6, 0.5e6),
    (350e6, 0.5e6),
    (760e6, 0.5e6),
    (1.3e9, 1e6),
    (2.7e9, 1e6),
    (6.7e9, 2e6),
    (13e9, 2e6),
    (175e9, 3.2e6),
)

FINETUNE_BATCH_SEQUENCES = 128
"""Global batch in sequences when a pretrained model is adapted and the spec gives none: the
LoRA paper's GPT-3 fine-tunes (Hu et al. 2021, App. D.4: batch size 128). A pretraining batch
(GPT-3 Table 2.1: 2M tokens for a 7B model) would give a fine-tune of a few million tokens a
handful of optimizer steps."""

MAX_AUTO_CONTEXT = 32_768
"""The longest context `context = auto` tries (position tables of learned embeddings cap it
lower)."""

MIN_AUTO_CONTEXT = 512

DOMAIN_SHARE_PAYS = 0.40
"""In-domain share of the pretraining mix above which domain pretraining is the documented
winning case: BloombergGPT trained on 51% financial data (363B of 708B tokens) and beat
general models of its size on financial tasks without losing general ability (Wu et al.
2023, Table 1 and Sec. 5)."""

UNDER_TRAINED_RATIO = 0.5
"""Warn when tokens per parameter fall below this fraction of the compute-optimal 20
(Hoffmann et al. 2022, Table 3): at 10 tokens per parameter the same compute spent on a
smaller model on more data gives a clearly lower loss (their Fig. 3 IsoFLOP curves)."""

MAX_USEFUL_EPOCHS = 4.0
"""Repeating data up to about 4 epochs is nearly as good as unique data; beyond, returns
fall quickly (Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models', Sec. 6)."""

BUDGET_UNDERUSED = 0.25
"""Say so when a run uses less than a quarter of its time or money budget."""

MAX_DEVICE_DOUBLINGS = 12
"""`devices = auto` tries the count the time budget needs, then doublings of it, up to 4096x."""

MAX_AUTO_MICRO_BATCH = 1024
"""The largest micro-batch `micro_batch = auto` tries."""

MAX_AUTO_TENSOR = 8
"""The largest tensor-parallel degree `tensor = auto` tries (and never more than a node's
devices): tensor parallelism all-reduces every layer's activations, so it stays inside one
NVLink node (Narayanan et al. 2021, Sec. 3.3, takeaway 1: t up to the GPUs per server)."""

AUTO_VIRTUAL_STAGES = (1, 2)
"""Interleaved chunks per stage `virtual_stages = auto` tries: the plain 1F1B schedule, and
two chunks, which halve the bubble for more in-flight activations and twice the pipeline
transfers (Narayanan et al. 2021, Sec. 2.2.2)."""


def batch_tokens_for(params: float) -> float:
    """Global batch in tokens for a model of `params`: the GPT-3 Table 2.1 value of the nearest
    size at or below it (0.5M tokens for small models up to 3.2M for 175B)."""
    sizes = [p for p, _ in GPT3_BATCH_TOKENS]
    i = max(0, bisect.bisect_right(sizes, params * 1.0001) - 1)
    return GPT3_BATCH_TOKENS[i][1]
