"""The stable JSON form of a Plan (see docs/plan-json.md), as text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.plans import Plan


def to_json_text(plan: Plan, *, derivations: bool = False, indent: int | None = 2) -> str:
    """`genai plan --json`: one JSON object, keys in a fixed order, no NaN or infinity."""
    return json.dumps(plan.to_json(derivations=derivations), indent=indent, allow_nan=False)
