"""Stage 3, the model: a preset's dimensions, the spec's explicit ones, or dimensions
proposed for a parameter count (`size = 3B`, or for `size = auto` the size the budget trains
compute-optimally: Chinchilla's ~20 tokens per parameter, Hoffmann et al. 2022).

Proposing a shape is `genaisdk.estimate.sizing.propose_dimensions`; counting is the
architecture record's `count_params`. This module only decides which of them applies and
lays the spec's own values over the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from genaisdk.core import codes
from genaisdk.core.numbers import fmt_count, fmt_sci
from genaisdk.diagnostics import SpecError
from genaisdk.dims import Dimensions
from genaisdk.estimate import scaling
from genaisdk.estimate.data import usable_tokens
from genaisdk.estimate.sizing import DEFAULTS as FAMILY_DEFAULTS
from genaisdk.estimate.sizing import gated_d_ff, propose_dimensions
from genaisdk.planning.defaults import DEFAULT_CONTEXT, DEFAULT_VOCAB
from genaisdk.planning.notes import Notes
from genaisdk.planning.resolve import Resolved
from genaisdk.records import Architecture, ParamCount
from genaisdk.spec.model import ModelSpec, is_auto

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.planning.context import PlanContext

SHAPE_FIELDS = ("layers", "decoder_layers", "d_model", "heads", "kv_heads", "head_dim", "d_ff", "vocab")
BLOCK_FIELDS = ("ffn", "norm", "positions", "tied_embeddings", "biases")


def explicit_shape(model: ModelSpec) -> bool:
    """The spec gives the shape itself (at least depth and width)."""
    return model.layers is not None and model.d_model is not None


def spec_overrides(model: ModelSpec, *, vocab: int | None) -> dict[str, Any]:
    """Dimension fields the spec writes explicitly (they win over a preset's or a proposal's)."""
    out: dict[str, Any] = {}
    for name in SHAPE_FIELDS + BLOCK_FIELDS:
        value = getattr(model, name)
        if value is not None and not is_auto(value):
            out[name] = value
    if "vocab" not in out and vocab is not None:
        out["vocab"] = vocab
    if model.extra:
        out["extra"] = dict(model.extra)
    return out


def context_of(model: ModelSpec, resolved: Resolved) -> int:
    """The training context: the spec's, else the checkpoint's or the preset's, else the default."""
    if isinstance(model.context, int) and not is_auto(model.context):
        return model.context
    if resolved.checkpoint is not None:
        return resolved.checkpoint.dims.context
    if resolved.preset is not None:
        return resolved.preset.dims.context
    return DEFAULT_CONTEXT


def from_preset(model: ModelSpec, resolved: Resolved, notes: Notes, *, context: int, vocab: int | None) -> Dimensions:
    """The preset's dimensions with the spec's explicit fields laid over them."""
    preset = resolved.preset
    assert preset is not None
    dims = preset.dims
    changes = spec_overrides(model, vocab=vocab)
    if context != dims.context:
        if dims.positions == "learned":
            rows = dims.position_table or dims.context
            if context > rows:
                notes.diag(
                    codes.ADJUSTED_VALUE,
                    f"context {context} is longer than the {rows}-row learned position table of `{preset.key}`",
                    "model.context",
                    hint="the plan counts a position table grown to the new context; the extra rows start untrained",
                )
            else:
                # A shorter context uses part of the same table: the parameter count stays.
                changes.setdefault("position_table", rows)
        changes["context"] = context
    if "extra" in changes:
        changes["extra"] = {**dict(dims.extra), **changes["extra"]}
    dims = dims.evolve(**changes) if changes else dims
    written = ", ".join(sorted(k for k in changes if k not in ("context", "position_table")))
    notes.reason(
        "model.dims",
        preset.key,
        f"published dimensions of `{preset.key}` ({preset.source or 'preset record'})" + (f"; the spec sets {written}" if written else ""),
    )
    return dims


def from_checkpoint(resolved: Resolved, notes: Notes, *, context: int) -> Dimensions:
    """The dimensions of the checkpoint `model.from` names (its config.json; see
    `genaisdk.checkpoints.hf_config`), trained at `context`. A learned position table cannot
    grow past the checkpoint's rows: a longer context is an error."""
    checkpoint = resolved.checkpoint
    dims = checkpoint.dims
    if context != dims.context:
        rows = (dims.position_table or dims.context) - dims.position_offset
        if dims.positions == "learned" and context > rows:
            notes.diag(
                codes.CHECKPOINT,
                f"context {context} is longer than the {rows} positions of the checkpoint's learned position table",
                "model.context",
                hint=f"use at most {rows} tokens",
            )
        dims = dims.evolve(context=context, position_table=dims.position_table or dims.context)
    notes.reason(
        "model.dims",
        "checkpoint",
        f"config.json of the {checkpoint.model_type} checkpoint {checkpoint.folder}: exactly its parameters",
    )
    return dims


def from_explicit(model: ModelSpec, resolved: Resolved, notes: Notes, *, context: int, vocab: int | None) -> Dimensions:
    """Dimensions the spec writes out; what it leaves open follows the family's defaults
    (`genaisdk.estimate.sizing.DEFAULTS`): LLaMA-style decoders, BERT-style encoders,
    T5 v1.1-style encoder-decoders."""
    family = resolved.family
    fields: dict[str, Any] = dict(FAMILY_DEFAULTS.get(family, FAMILY_DEFAULTS["decoder"]))
    fields.update(spec_overrides(model, vocab=vocab))
    d_model = int(fields["d_model"])
    filled = []
    if "heads" not in fields:
        head = int(fields.get("head_dim") or (128 if d_model >= 1536 else 64))
        fields["heads"] = max(1, d_model // head)
        filled.append(f"{fields['heads']} heads of {head}")
    if "d_ff" not in fields:
        fields["d_ff"] = gated_d_ff(d_model) if fields.get("ffn") == "gated" else 4 * d_model
        filled.append(f"d_ff {fields['d_ff']}")
    if "vocab" not in fields:
        fields["vocab"] = DEFAULT_VOCAB
        filled.append(f"vocab {DEFAULT_VOCAB}")
    fields["context"] = context
    if family == "encoder_decoder" and "decoder_layers" not in fields:
        fields["decoder_layers"] = fields["layers"]
    dims = Dimensions(**fields)
    notes.reason(
        "model.dims",
        "explicit",
        "the spec's dimensions" + (f"; filled in: {', '.join(filled)} ({family} defaults)" if filled else ""),
    )
    return dims


def for_size(target: float, model: ModelSpec, resolved: Resolved, *, context: int, vocab: int | None) -> Dimensions:
    """A shape for `target` parameters (GPT-3 Table 2.1 aspect ratios, via
    `propose_dimensions`), the spec's explicit block choices kept."""
    over = spec_overrides(model, vocab=vocab)
    kwargs = {k: over[k] for k in ("ffn", "norm", "positions", "biases", "tied_embeddings", "kv_heads", "head_dim") if k in over}
    dims = propose_dimensions(
        target,
        family=resolved.family,
        vocab=int(over.get("vocab", DEFAULT_VOCAB)),
        context=context,
        **kwargs,
    )
    if "extra" in over:
        dims = dims.evolve(extra=over["extra"])
    return dims


def count(resolved: Resolved, dims: Dimensions) -> ParamCount:
    """The architecture record's exact count."""
    return resolved.architecture.count_params(dims)


@attrs.frozen(kw_only=True)
class SizeChoice:
    """The model's dimensions and, for `size = auto` sized by a budget, what the budget buys."""

    dims: Dimensions
    sized_by: str
    """'checkpoint', 'preset', 'explicit', 'size' (the spec's parameter count), 'data' or 'budget'."""
    budget_model_flops: float | None = None
    """Model FLOPs the binding budget buys."""
    budget_optimum: tuple[float, float] | None = None
    """Compute-optimal (N, D) for those FLOPs, counted as 6·N·D."""
    budget_tokens: float | None = None
    """Tokens the budget's FLOPs buy for this exact shape (the data beyond is left over)."""

    @property
    def auto(self) -> bool:
        """The size is the planner's to choose (a sweep may vary it)."""
        return self.sized_by in ("data", "budget")

    def tokens_for(self, dims: Dimensions, architecture: Architecture, context: int) -> float | None:
        """The tokens the budget's FLOPs buy for a model of `dims` (None unless a budget
        sized the model): `budget_tokens` for the chosen shape, and the same rule for the
        other sizes `genai plan --sweep` tries."""
        if self.sized_by != "budget" or self.budget_model_flops is None:
            return None
        if self.compute_bound:  # a compute budget is counted as 6·N·D
            return self.budget_model_flops / (6.0 * float(architecture.count_params(dims).active))
        return self.budget_model_flops / float(architecture.flops_per_token(dims, context))

    compute_bound: bool = False
    """The binding budget is a compute budget (counted as 6·N·D, not model FLOPs)."""


def choose_size(ctx: PlanContext, notes: Notes) -> SizeChoice:
    """The model's dimensions, with the reason (`model.dims`, `model.size`)."""
    m, r = ctx.project.model, ctx.resolved
    if r.checkpoint is not None:
        dims = from_checkpoint(r, notes, context=ctx.context)
        if notes.has_errors:
            raise SpecError(notes.diagnostics, ctx.spec.sources)
        return SizeChoice(dims=dims, sized_by="checkpoint")
    if r.preset is not None:
        return SizeChoice(dims=from_preset(m, r, notes, context=ctx.context, vocab=ctx.vocab), sized_by="preset")
    if explicit_shape(m):
        return SizeChoice(dims=from_explicit(m, r, notes, context=ctx.context, vocab=ctx.vocab), sized_by="explicit")
    if not is_auto(m.size) and m.size:
        dims = for_size(float(m.size), m, r, context=ctx.context, vocab=ctx.vocab)
        n = r.architecture.count_params(dims).total
        notes.reason("model.size", float(m.size), "given in the spec")
        notes.reason(
            "model.dims",
            "proposed",
            f"{dims.layers} layers x d_model {dims.d_model} gives {n / 1e9:.3g}B parameters: GPT-3 Table 2.1 aspect ratios "
            f"({r.family} block: {dims.ffn} FFN, {dims.norm}, {dims.positions} positions)",
        )
        return SizeChoice(dims=dims, sized_by="size")
    return _size_for_budget(ctx, notes)


def budget_limits(ctx: PlanContext) -> list[tuple[str, float, str]]:
    """(what, model FLOPs it buys, how) for each budget that bounds compute."""
    b = ctx.project.budget
    limits = []
    rate = ctx.peak * ctx.mfu
    hw = ctx.hardware
    if b.time is not None and ctx.devices_fixed is not None:
        limits.append(
            (
                "time",
                ctx.devices_fixed * rate * b.time.value,
                f"{ctx.devices_fixed} x {hw.key} x {b.time.value / 86400:.3g} days x {ctx.peak / 1e12:.0f} TFLOP/s x {ctx.mfu:.0%} MFU",
            )
        )
    if b.cost is not None and ctx.price:
        hours = b.cost.value / ctx.price
        limits.append(("cost", hours * 3600.0 * rate, f"${b.cost.value:,.0f} / ${ctx.price:.2f} per device-hour = {hours:,.0f} device-hours"))
    if b.compute is not None:
        limits.append(("compute", b.compute.value, "the compute budget"))
    return limits


def _size_for_budget(ctx: PlanContext, notes: Notes) -> SizeChoice:
    """`size = auto`: the compute-optimal size for what the budget buys (Chinchilla, about
    20 tokens per parameter, C = 6·N·D). The budget buys model FLOPs (attention included),
    so the 6·N·D it affords is scaled by 6·N / (model FLOPs per token)."""
    m, r, data = ctx.project.model, ctx.resolved, ctx.project.data
    arch = r.architecture
    limits = budget_limits(ctx)
    if not limits:
        if data.tokens:
            n = float(scaling.optimal_params_for_tokens(data.tokens))
            dims = for_size(n, m, r, context=ctx.context, vocab=ctx.vocab)
            notes.reason(
                "model.size",
                float(arch.count_params(dims).total),
                f"no compute budget: the size the data trains compute-optimally, {data.tokens:.3g} tokens / 20 tokens per parameter (Chinchilla)",
            )
            _shape_reason(dims, r.family, notes)
            return SizeChoice(dims=dims, sized_by="data")
        # genaisdk.spec.validate reports this too (GP005); a Spec built in code lands here.
        notes.diag(
            codes.NOTHING_TO_SIZE,
            "`size = auto` needs a budget (time with a device count, cost, or compute) or data.tokens",
            "model.size",
            hint="give `size = 7B`, a `preset`, or a budget",
        )
        raise SpecError(notes.diagnostics, ctx.spec.sources)
    what, budget_model_flops, how = min(limits, key=lambda t: t[1])
    # Fixed point: N_opt(C6) with C6 = budget x 6·N / (model FLOPs per token at N).
    # The ratio moves slowly with N; two or three rounds settle it within 2%.
    c6 = budget_model_flops
    dims, previous = None, 0.0
    for _ in range(4):
        n = float(scaling.tokens_per_param_optimal(c6)[0])
        if dims is not None and abs(n - previous) <= 0.02 * n:
            break
        previous = n
        dims = for_size(n, m, r, context=ctx.context, vocab=ctx.vocab)
        if what == "compute":
            break
        total = arch.count_params(dims).active
        per_token = float(arch.flops_per_token(dims, ctx.context))
        c6 = budget_model_flops * 6.0 * total / per_token
    assert dims is not None
    n_budget = float(arch.count_params(dims).total)
    optimum = tuple(float(x) for x in scaling.tokens_per_param_optimal(c6))
    others = [f"the {w} budget {fmt_sci(f)}" for w, f, _ in limits if w != what]
    budget_why = (
        f"the {what} budget buys {fmt_sci(budget_model_flops)} model FLOPs ({how})"
        + (f"; {', '.join(others)}" if others else "")
        + f"; compute-optimal for it: {fmt_count(n_budget)} parameters (N = sqrt(C / (6·20)), C = {fmt_sci(c6)} as 6·N·D; "
        "Hoffmann et al. 2022, ~20 tokens per parameter)"
    )
    available = data.tokens or (float(usable_tokens(data.raw_tokens, data.keep)) if data.raw_tokens and data.keep else None)
    budget_tokens = None
    if available and float(scaling.optimal_params_for_tokens(available)) < n_budget:
        # The data cannot feed the budget's optimum: the compute-optimal model for the
        # data is smaller (Chinchilla's ~20 tokens per parameter); the rest of the
        # budget stays unused rather than under-training a larger model.
        n_data = float(scaling.optimal_params_for_tokens(available))
        dims = for_size(n_data, m, r, context=ctx.context, vocab=ctx.vocab)
        notes.reason(
            "model.size",
            float(arch.count_params(dims).total),
            f"limited by the data: {fmt_count(available)} tokens train {fmt_count(n_data)} parameters compute-optimally "
            f"(20 tokens per parameter); {budget_why}",
        )
    else:
        notes.reason("model.size", n_budget, budget_why)
        # The budget's optimum trains about 20 tokens per parameter: the tokens the
        # budget's model FLOPs buy for this exact shape. More data than that is left
        # over rather than spent past the budget.
        if what == "compute":  # a compute budget is counted as 6·N·D
            budget_tokens = budget_model_flops / (6.0 * float(arch.count_params(dims).active))
        else:
            budget_tokens = budget_model_flops / float(arch.flops_per_token(dims, ctx.context))
    _shape_reason(dims, r.family, notes)
    return SizeChoice(
        dims=dims,
        sized_by="budget",
        budget_model_flops=budget_model_flops,
        budget_optimum=(optimum[0], optimum[1]),
        budget_tokens=budget_tokens,
        compute_bound=what == "compute",
    )


def _shape_reason(dims: Dimensions, family: str, notes: Notes) -> None:
    notes.reason(
        "model.dims",
        "proposed",
        f"{dims.layers} layers x d_model {dims.d_model}, {dims.heads} heads: GPT-3 Table 2.1 aspect ratios "
        f"({family} block: {dims.ffn} FFN, {dims.norm}, {dims.positions} positions)",
    )
