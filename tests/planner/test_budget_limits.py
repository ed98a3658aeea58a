"""A `<=` budget is a limit: what the planner chooses by itself never spends past it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import genaisdk

from .conftest import spec_text


def _plan(budget_lines: list[str], data: str):
    return genaisdk.plan(
        spec_text(model="size = auto\ncontext = 1024 tokens", data=data, budget="\n".join(["hardware = 8 x a100-80gb", *budget_lines]))
    )


def test_the_reported_case_stays_within_its_compute_budget():
    """`size = auto` under 1.86e18 FLOPs with no data picked 127M parameters on 2.54B tokens,
    1.94e18 FLOPs (4% over), then warned about its own choice."""
    plan = _plan(["compute <= 1.86e18 flops"], data="")
    assert plan.compute.flops <= 1.86e18
    assert plan.compute.flops >= 0.99 * 1.86e18  # and it spends the budget
    assert "GP404" not in {d.code for d in plan.diagnostics}


@settings(max_examples=20, deadline=None)
@given(
    compute=st.one_of(st.none(), st.floats(min_value=1e17, max_value=1e22)),
    days=st.one_of(st.none(), st.floats(min_value=0.01, max_value=30)),
    usd=st.one_of(st.none(), st.floats(min_value=100, max_value=1e6)),
    data=st.one_of(st.none(), st.floats(min_value=1e8, max_value=1e12)),
)
def test_an_automatic_size_never_exceeds_a_budget(compute, days, usd, data):
    lines = []
    if compute is not None:
        lines.append(f"compute <= {compute:.6g} flops")
    if days is not None:
        lines.append(f"time <= {days:.6g} days")
    if usd is not None:
        lines.append(f"cost <= ${usd:.2f}")
    if not lines:
        lines.append("compute <= 1e19 flops")
    plan = _plan(lines, data=f"tokens = {data:.6g} tokens" if data is not None else "")
    b = plan.budget
    assert b.time_ratio is None or b.time_ratio <= 1.0
    assert b.cost_ratio is None or b.cost_ratio <= 1.0
    if compute is not None:
        assert plan.compute.flops <= float(f"{compute:.6g}")
    assert not {"GP401", "GP402", "GP404"} & {d.code for d in plan.diagnostics}
