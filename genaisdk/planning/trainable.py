"""Stage 4: what is resident on the devices and what trains, per the adaptation method:
every weight (pretraining, fine-tuning), LoRA/QLoRA adapters over a frozen base (Hu et al.
2021; Dettmers et al. 2023), or the several models of RLHF/DPO (Ouyang et al. 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from genaisdk.estimate import constants
from genaisdk.estimate.adaptation import alignment_params, kbit_kept_params, kbit_upcast_bytes, lora_activation_bytes, lora_params
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

    def kept(self, count: ParamCount) -> float:
        """Frozen parameters kept at the working precision (a k-bit base's embeddings, norms
        and output head); 0 otherwise."""
        return kbit_kept_params(count) if self.kbit else 0.0

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
            if frozen_precision in ("int4", "nf4"):
                frozen_bytes = constants.NF4_DOUBLE_QUANT_BYTES
                notes.assume(
                    "frozen_weight_bytes",
                    constants.NF4_DOUBLE_QUANT_BYTES,
                    "Dettmers et al. 2023 (QLoRA), Sec. 3: 4-bit NormalFloat + double-quantized constants",
                )
    out = Trainable(
        method=a.key,
        trains=a.trains,
        lora=lora,
        alignment=alignment,
        frozen_weight_bytes=frozen_bytes,
        kbit=kbit,
        family=ctx.resolved.family,
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
