"""The planner's diagnostic codes (`GP`), as listed in docs/plan-json.md: a view of the one
table, `genaisdk.core.codes`, which also gives each its severity."""

from __future__ import annotations

from genaisdk.core.codes import CODES as _ALL

CODES: dict[str, tuple[str, str]] = {code: entry for code, entry in _ALL.items() if code.startswith("GP")}
"""code -> (severity, meaning) for every planner code in use."""
