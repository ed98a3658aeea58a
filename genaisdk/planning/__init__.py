"""The planner: Spec -> Plan as stages over frozen, typed inputs (`pipeline` lists them).

`genaisdk.plan(spec)` is `pipeline.plan`. `run_settings` is the one bridge from a Plan to
everything that runs it (`genai train`, `genai measure`); `sweep` is `genai plan --sweep`.
Nothing here has a formula of its own: the numbers come from `genaisdk.estimate` and the
registry's records. Submodules are imported on use, so `import genaisdk.planning.grid`
costs only the grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.planning.pipeline import as_spec, plan, plan_stages

__all__ = ["as_spec", "plan", "plan_stages"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from genaisdk.planning import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'genaisdk.planning' has no attribute {name!r}")
