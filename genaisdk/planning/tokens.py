"""Stage 5: how many tokens the run trains on, and its global batch in tokens.

The same two rules serve the plan and `genai plan --sweep` (which asks them for other
model sizes), so the sweep's row of the plan's own configuration has the plan's numbers.
`notes=None` asks without recording reasons.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from genaisdk.core import codes
from genaisdk.core.numbers import fmt_count
from genaisdk.estimate import constants
from genaisdk.estimate.data import usable_tokens
from genaisdk.planning.defaults import FINETUNE_BATCH_SEQUENCES, batch_tokens_for
from genaisdk.planning.notes import Notes
from genaisdk.records import ParamCount

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.planning.context import PlanContext


def training_tokens(ctx: PlanContext, count: ParamCount, budget_tokens: float | None, notes: Notes | None) -> float:
    """The spec's data (capped at what a budget that sized the model buys), else the raw
    corpus times the filter's keep fraction, else, for a run from scratch, what the budget
    that sized the model buys or 20 tokens per parameter (Hoffmann et al. 2022); 0 when
    nothing trains or a fine-tune names no data. A `<=` budget is a limit: the tokens it
    buys are rounded down, so an automatic choice never spends past it."""
    d = ctx.project.data
    a = ctx.resolved.adaptation
    if budget_tokens is not None:
        budget_tokens = float(math.floor(budget_tokens))
    if d.tokens and budget_tokens and d.tokens > budget_tokens:
        if notes is not None:
            notes.reason(
                "data.tokens",
                budget_tokens,
                f"the compute-optimal D for the budget: {fmt_count(budget_tokens)} of the {fmt_count(d.tokens)} tokens available "
                "(about 20 per parameter, Hoffmann et al. 2022)",
            )
        return budget_tokens
    if d.tokens:
        return float(d.tokens)
    if d.raw_tokens and d.keep:
        tokens = float(usable_tokens(d.raw_tokens, d.keep))
        if notes is not None:
            notes.reason("data.tokens", tokens, f"{d.raw_tokens:.3g} raw tokens x keep {d.keep:.0%}")
        return tokens
    if not a.trains:
        return 0.0
    if a.from_scratch and budget_tokens:
        if notes is not None:
            notes.reason(
                "data.tokens",
                budget_tokens,
                f"not given: the {fmt_count(budget_tokens)} tokens the budget buys for this model, about 20 per parameter "
                "(Hoffmann et al. 2022)",
            )
        return budget_tokens
    if a.from_scratch:
        tokens = constants.CHINCHILLA_TOKENS_PER_PARAM * float(count.active)
        if notes is not None:
            notes.reason("data.tokens", tokens, "not given: 20 tokens per parameter, compute-optimal (Hoffmann et al. 2022)")
        return tokens
    if ctx.project.train.steps:
        return 0.0  # the steps decide the tokens (planning.pipeline), with their reason
    if notes is not None:
        notes.diag(
            codes.NO_DATA,
            "data.tokens is not given: the plan has no training FLOPs, time or cost",
            "data",
            hint="write e.g. `tokens = 50M tokens` in the data block",
        )
    return 0.0


def batch_tokens(ctx: PlanContext, count: ParamCount, context: int, notes: Notes | None) -> float:
    """The global batch the spec asks for, in tokens: `train.batch`, else GPT-3 Table 2.1's
    batch for the model's size, else for an adaptation 128 sequences (Hu et al. 2021)."""
    if ctx.project.train.batch:
        return float(ctx.project.train.batch)
    tokens = batch_tokens_for(float(count.total))
    a = ctx.resolved.adaptation
    if a.trains and not a.from_scratch and FINETUNE_BATCH_SEQUENCES * context < tokens:
        tokens = float(FINETUNE_BATCH_SEQUENCES * context)
        if notes is not None:
            notes.reason(
                "train.batch",
                tokens,
                f"{FINETUNE_BATCH_SEQUENCES} sequences of {context} tokens, a fine-tuning batch (Hu et al. 2021, App. D.4); "
                "a pretraining batch would leave few optimizer steps",
            )
        return tokens
    if notes is not None:
        notes.reason("train.batch", tokens, "GPT-3 Table 2.1 batch size for a model of this size (Brown et al. 2020)")
    return tokens
