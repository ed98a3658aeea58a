"""Embed the planner: how large a model, how long, how much, for a range of budgets.

    python examples/budget_sweep.py [specs/legal.genai]

Loads a spec, overrides its budget from Python (the same `--set` mechanism the CLI uses),
plans each variant with `genaisdk.plan`, and prints one line per budget plus the derivation
of the first plan's memory. Nothing here imports JAX.
"""

from __future__ import annotations

import sys

import genaisdk
from genaisdk.render.explain import explain_text
from genaisdk.core.numbers import fmt_bytes, fmt_count, fmt_usd


def main(path: str = "specs/legal.genai") -> None:
    budgets = [
        {"budget.hardware": "8 x a100-80gb", "budget.time": "30 days"},
        {"budget.hardware": "64 x a100-80gb", "budget.time": "30 days"},
        {"budget.hardware": "64 x h100-sxm", "budget.time": "30 days"},
        {"budget.hardware": "256 x h100-sxm", "budget.time": "14 days"},
    ]
    print(f"{'hardware':<16} {'time':>8} | {'params':>7} {'strategy':>9} {'micro':>5} {'memory':>9} {'days':>6} {'cost':>8} | warnings")
    first = None
    for overrides in budgets:
        # Plenty of data, so the budget alone sets the size (the plan trains the
        # compute-optimal ~20 tokens per parameter of it).
        spec = genaisdk.load(path, overrides={**overrides, "data.tokens": "1T tokens"})
        plan = genaisdk.plan(spec)
        first = first or plan
        warnings = ", ".join(d.code for d in plan.diagnostics if d.severity != "info") or "-"
        print(
            f"{overrides['budget.hardware']:<16} {overrides['budget.time']:>8} | "
            f"{fmt_count(plan.model.params):>7} {plan.train.strategy:>9} {plan.train.micro_batch:>5} "
            f"{fmt_bytes(plan.memory.per_device.total):>9} {plan.time.days:>6.1f} {fmt_usd(plan.cost.usd):>8} | {warnings}"
        )
    assert first is not None
    print()
    print("Why the first plan chose what it chose:")
    for reason in first.reasons:
        print(f"  {reason.field:<18} {reason.reason}")
    print()
    print(explain_text(first, ["memory"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
