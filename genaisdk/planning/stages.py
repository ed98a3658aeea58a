"""The frozen outputs of the planning stages, handed to the stages after them (assembly,
advice, derivations) and to `genai plan --sweep`: typed values, no planner object."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.dims import Dimensions
    from genaisdk.planning.context import PlanContext
    from genaisdk.planning.fit import Fitted
    from genaisdk.planning.sizing import SizeChoice
    from genaisdk.planning.trainable import Trainable
    from genaisdk.plans import Plan
    from genaisdk.records import ParamCount


@attrs.frozen(kw_only=True)
class Stages:
    """Everything one plan was computed from."""

    ctx: PlanContext
    size: SizeChoice
    trainable: Trainable
    dims: Dimensions
    """The model's exact dimensions (after `context = auto`, if searched)."""
    count: ParamCount
    trained_params: float
    """Parameters with gradients and optimizer state."""
    tokens: float
    """Tokens the run trains on."""
    batch_tokens: float
    """The global batch the spec asks for, in tokens (before rounding to whole micro-batches)."""
    fitted: Fitted | None
    """The configuration search; None when nothing trains."""

    @property
    def context(self) -> int:
        return self.fitted.case.seq if self.fitted is not None else self.ctx.context


@attrs.frozen(kw_only=True)
class Planned:
    """A finished plan and the stages it came from."""

    plan: Plan
    stages: Stages
