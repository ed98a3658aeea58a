"""Helpers for the planner tests: plan spec text written inline."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.genai"))


def spec_text(
    *,
    name: str = "t",
    task: str | None = "text-generation",
    domain: str | None = None,
    model: str = "",
    data: str = "",
    adapt: str = "method = pretrain",
    train: str = "",
    budget: str = "",
    serve: str | None = None,
) -> str:
    """A spec with the given block bodies (one `key = value` per line)."""

    def block(title: str, body: str) -> str:
        lines = [line.strip() for line in dedent(body).strip().splitlines() if line.strip()]
        return f"  {title} {{\n" + "".join(f"    {line}\n" for line in lines) + "  }\n"

    head = f'genai 1\nproject "{name}" {{\n'
    if task:
        head += f"  task = {task}\n"
    if domain:
        head += f"  domain = {domain}\n"
    body = block("model", model) + block("data", data) + block("adapt", adapt) + block("train", train) + block("budget", budget)
    if serve is not None:
        body += block("serve", serve)
    return head + body + "}\n"


def plan_text(text: str, **kwargs):
    import genaisdk

    return genaisdk.plan(genaisdk.loads(text, filename="test.genai", **kwargs))


@pytest.fixture
def make_plan():
    """make_plan(model=..., data=..., ...) -> Plan of an inline spec."""

    def make(**blocks):
        overrides = blocks.pop("overrides", None)
        return plan_text(spec_text(**blocks), overrides=overrides)

    return make
