"""Stage 4: what is resident on the devices and what trains, per the adaptation method:
every weight (pretraining, fine-tuning), LoRA/QLoRA adapters over a frozen base (Hu et al.
2021; Dettmers et al. 2023), or the several models of RLHF/DPO (Ouyang et al. 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from genaisdk.estimate import constants
from genaisdk.estimate.adaptation import (
    alignment_params,
    kbit_kept_params,
    kbit_upcast_bytes,
    lora_activation_bytes,
    lora_flops_per_token,
    lora_params,
)
from genaisdk.planning.notes import Notes
from genaisdk.records import ParamCount

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.dims import Dimensions
    from genaisdk.planning.context import PlanContext


@attrs.frozen(kw_only=True)
class Lora:
    """Adapters of rank `rank` on the `targets` matrices of every block."""

    rank: int
    targets: tuple[str, ...] = attrs.field(converter=tuple)
    alpha: float | None = None
    """The update's scale is alpha / rank (Hu et al. 2021, Sec. 4.1); None: alpha = rank."""
    dropout: float = 0.0
    frozen_precision: str | None = None
    """The frozen base's quantization (int4 = NF4, int8), or None (the training precision)."""


@attrs.frozen(kw_only=True)
class Trainable:
    """How the adaptation method splits a model into resident and trained parameters."""

    method: str
    trains: bool
    lora: Lora | None = None
    alignment: str | None = None
    """'rlhf' or 'dpo' when several models are resident."""
    frozen_weight_bytes: float | None = None
    """Bytes per frozen parameter (QLoRA's 4-bit base); None: the training precision's."""
    kbit: bool = False
    """The frozen base is quantized (QLoRA's NF4, an 8-bit base) and prepared for k-bit
    training: its embeddings, norms and output head stay at the working precision, and its
    activations are upcast (`genaisdk.estimate.adaptation`)."""
    family: str = "decoder"
    kept_params: float | None = None
    """A k-bit base's parameters left unquantized, counted tensor by tensor (None: by the
    count's parts, `kbit_kept_params`)."""

    def kept(self, count: ParamCount) -> float:
        """Frozen parameters kept at the working precision (a k-bit base's embeddings, norms
        and output head); 0 otherwise."""
        if not self.kbit:
            return 0.0
        return self.kept_params if self.kept_params is not None else kbit_kept_params(count)

    def activation_parts(self, dims: Dimensions, *, seq, micro_batch, recompute: str, bytes_per_value) -> dict:
        """Activation bytes the adapters and a k-bit base add to the architecture's own, by
        part (`genaisdk.estimate.adaptation`); empty when every weight trains."""
        if self.lora is None:
            return {}
        parts = {}
        if self.kbit:
            parts.update(
                kbit_upcast_bytes(dims, family=self.family, seq=seq, micro_batch=micro_batch, recompute=recompute, bytes_per_value=bytes_per_value)
            )
        parts.update(
            lora_activation_bytes(
                dims, rank=self.lora.rank, targets=self.lora.targets, family=self.family, seq=seq, micro_batch=micro_batch,
                recompute=recompute, bytes_per_value=constants.DTYPE_BYTES["fp32"] if self.kbit else bytes_per_value,
            )
        )
        return parts

    def flops_per_token(self, dims: Dimensions, base: float, *, context) -> float:
        """Model FLOPs per training token given the architecture's own count `base`: with
        LoRA adapters over a frozen base, minus the base's weight gradients and plus the
        adapters' (`genaisdk.estimate.adaptation.lora_flops_per_token`); else `base`."""
        if self.lora is None or not self.trains:
            return base
        skipped, adapters = lora_flops_per_token(dims, rank=self.lora.rank, targets=self.lora.targets, family=self.family, context=context)
        return base - skipped + adapters

    def resident(self, dims: Dimensions, count: ParamCount) -> tuple[float, float]:
        """(parameters resident on the devices, parameters that train) for a model."""
        total = float(count.total)
        if not self.trains:
            return total, 0.0
        if self.alignment:
            resident = alignment_params(self.alignment, policy_params=total)
            return resident.total, resident.trainable_params
        if self.lora is not None:
            adapters = float(lora_params(dims, rank=self.lora.rank, targets=self.lora.targets, family=self.family))
            return total + adapters, adapters
        return total, total


KBIT_FORMATS = {"int4": "nf4", "nf4": "nf4", "int8": "int8"}
"""The stored format of each frozen precision (`genaisdk.estimate.quantization`)."""


def _kbit_base(dims: Dimensions, count: ParamCount, fmt: str, family: str, record_bytes, notes: Notes):
    """(bytes per quantized parameter, parameters kept unquantized) of a k-bit frozen base,
    counted tensor by tensor as it is stored (`serving_weights(..., blocks_only=True)`): the
    blocks' matrices as codes plus their constants (an NF4 block's 8-bit absmax, a group's
    fp32 constant, a slice's fp32 mean, padding included; an int8 channel's bf16 scale),
    everything else unquantized. A model whose tensors are not known (a plugin's
    architecture) falls back to the format's per-parameter share and the count's parts."""
    from genaisdk.estimate.quantization import nf4_bytes_per_param, serving_weights

    stored = serving_weights(dims, params=count.total, weight_bytes=record_bytes or 0.5, fmt=fmt, family=family, blocks_only=True)
    if stored.per_tensor and stored.quantized_params > 0:
        per_param = (stored.codes + stored.constants) / stored.quantized_params
        notes.assume(
            "frozen_weight_bytes",
            round(per_param, 4),
            "Dettmers et al. 2023 (QLoRA), Sec. 3: 4-bit NormalFloat, block 64, double-quantized constants"
            if fmt == "nf4"
            else "Dettmers et al. 2022 (LLM.int8()), Sec. 3.1: per-channel absmax int8, bf16 scales",
            f"bytes per quantized parameter, constants included, tensor by tensor as stored ({fmt})",
        )
        return float(per_param), float(count.total - stored.quantized_params)
    per_param = float(nf4_bytes_per_param()) if fmt == "nf4" else record_bytes
    notes.assume("frozen_weight_bytes", per_param, "Dettmers et al. 2023 (QLoRA), Sec. 3" if fmt == "nf4" else "int8 codes")
    return per_param, None


def _alignment(ctx: PlanContext) -> str | None:
    a = ctx.resolved.adaptation
    if len(a.resident_models) <= 1:
        return None
    if a.key in ("rlhf", "ppo", "dpo"):
        return a.key
    return "dpo" if len(a.resident_models) == 2 else "rlhf"


def trainable_for(ctx: PlanContext, dims: Dimensions, count: ParamCount, notes: Notes) -> Trainable:
    """The split for the spec's adaptation (targets are checked by genaisdk.spec.validate),
    with the reason (`adapt.rank`, `adapt.resident`)."""
    a = ctx.resolved.adaptation
    adapt = ctx.project.adapt
    alignment = _alignment(ctx)
    lora = None
    frozen_bytes = None
    kbit = False
    kept_params = None
    if a.trains and not a.full and not alignment:
        rank = adapt.rank or a.default_rank or 8
        targets = tuple(str(t).strip().lower() for t in adapt.targets) or tuple(a.default_targets) or ("q", "v")
        frozen_precision = adapt.frozen_precision or a.frozen_precision
        lora = Lora(
            rank=rank,
            targets=targets,
            alpha=adapt.alpha if adapt.alpha is not None else a.default_alpha,
            dropout=adapt.dropout if adapt.dropout is not None else a.default_dropout,
            frozen_precision=frozen_precision,
        )
        if frozen_precision:
            frozen = ctx.registry.get("precisions", frozen_precision)
            frozen_bytes = float(frozen.weight_bytes) if frozen is not None else None
            kbit = frozen is not None and not frozen.trainable
            fmt = KBIT_FORMATS.get(frozen_precision)
            if kbit and fmt is not None:
                frozen_bytes, kept_params = _kbit_base(dims, count, fmt, ctx.resolved.family, frozen_bytes, notes)
    out = Trainable(
        method=a.key,
        trains=a.trains,
        lora=lora,
        alignment=alignment,
        frozen_weight_bytes=frozen_bytes,
        kbit=kbit,
        family=ctx.resolved.family,
        kept_params=kept_params,
    )
    if kbit:
        kept = out.kept(count)
        notes.assume(
            "kbit_unquantized_params",
            kept,
            "bitsandbytes quantizes linear layers only; the output head is kept unquantized (transformers "
            "`get_keys_to_not_convert`, `llm_int8_skip_modules`)",
            "embeddings, norms and output head stay at the working precision",
        )
        notes.assume(
            "kbit_prepared_activations",
            "fp32 residual stream",
            "PEFT `prepare_model_for_kbit_training` casts the remaining 16-bit parameters to fp32; "
            "bitsandbytes `Linear4bit` returns its input's dtype",
            "the stored block inputs and the FFN's intermediates are fp32",
        )
    total = float(count.total)
    if lora is not None:
        adapters = out.resident(dims, count)[1]
        notes.reason(
            "adapt.rank",
            lora.rank,
            f"LoRA rank {lora.rank} on {', '.join(lora.targets)}: {adapters / 1e6:.3g}M trainable parameters "
            f"({adapters / total:.2%} of the base) (Hu et al. 2021)",
        )
    elif alignment:
        resident = alignment_params(alignment, policy_params=total)
        notes.reason(
            "adapt.resident",
            ", ".join(resident.models),
            f"{a.key}: {', '.join(n for n, t in resident.trainable.items() if t)} train; "
            f"{', '.join(n for n, t in resident.trainable.items() if not t) or 'none'} stay frozen ({a.source or 'adaptation record'})",
        )
    return out
