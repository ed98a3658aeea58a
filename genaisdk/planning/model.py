"""Which model: a preset's dimensions, the spec's explicit ones, or dimensions proposed for
a parameter count (`size = 3B`, or the size the budget trains compute-optimally).

Proposing a shape is `genaisdk.estimate.sizing.propose_dimensions`; counting is the
architecture record's `count_params`. This module only decides which of them applies and
lays the spec's own values over the result.
"""

from __future__ import annotations

from typing import Any

from genaisdk.dims import Dimensions
from genaisdk.estimate.sizing import DEFAULTS as FAMILY_DEFAULTS
from genaisdk.estimate.sizing import gated_d_ff, propose_dimensions
from genaisdk.planning import codes
from genaisdk.planning.defaults import DEFAULT_CONTEXT, DEFAULT_VOCAB
from genaisdk.planning.notes import Notes
from genaisdk.planning.resolve import Resolved
from genaisdk.records import ParamCount
from genaisdk.spec.model import ModelSpec, is_auto

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
                    "warning",
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
                "error",
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
