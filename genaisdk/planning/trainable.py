"""Stage 4: what is resident on the devices and what trains, per the adaptation method:
every weight (pretraining, fine-tuning), LoRA/QLoRA adapters over a frozen base (Hu et al.
2021; Dettmers et al. 2023), or the several models of RLHF/DPO (Ouyang et al. 2022)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from genaisdk.estimate import constants
from genaisdk.estimate.adaptation import alignment_params, lora_params
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
    family: str = "decoder"

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
    if a.trains and not a.full and not alignment:
        rank = adapt.rank or a.default_rank or 8
        targets = tuple(str(t).strip().lower() for t in adapt.targets) or tuple(a.default_targets) or ("q", "v")
        lora = Lora(rank=rank, targets=targets)
        if a.frozen_precision:
            frozen = ctx.registry.get("precisions", a.frozen_precision)
            frozen_bytes = float(frozen.weight_bytes) if frozen is not None else None
            if a.frozen_precision in ("int4", "nf4") and a.key == "qlora":
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
        family=ctx.resolved.family,
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
