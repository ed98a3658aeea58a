"""Planned GPU-hours of public training runs, no MFU set anywhere: each run planned by
`genai plan` from its spec (the published hardware, tokens, batch and whatever layout the
run published), compared with the published GPU-hours (tests/fixtures/planned_gpu_hours.json
names every source; docs/accuracy.md, "Planned GPU-hours", discusses each row)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import genaisdk

ROOT = Path(__file__).resolve().parents[2]
RUNS = json.loads((ROOT / "tests" / "fixtures" / "planned_gpu_hours.json").read_text())["runs"]


def _spec_text(run: dict) -> str:
    if "spec" in run:
        return (ROOT / run["spec"]).read_text()
    train = "".join(f"    {line}\n" for line in run["train"])
    return (
        f'genai 1\nproject "{run["name"]}" {{\n  task = text-generation\n'
        f'  model {{\n    preset = {run["preset"]}\n    context = 2048 tokens\n  }}\n'
        f'  data {{\n    tokens = {run["tokens"]}\n  }}\n  adapt {{\n    method = pretrain\n  }}\n'
        f'  train {{\n{train}    batch = {run["batch"]}\n  }}\n'
        f'  budget {{\n    hardware = {run["hardware"]}\n  }}\n}}\n'
    )


@pytest.mark.parametrize("run", RUNS, ids=lambda r: r["name"])
def test_planned_gpu_hours_of_a_public_run(run):
    text = _spec_text(run)
    assert "mfu" not in text
    plan = genaisdk.plan(genaisdk.loads(text, filename=run.get("spec", "run.genai")))
    assert plan.memory.fits
    assert plan.time.model == "step-time"
    ratio = plan.time.gpu_hours / run["gpu_hours"]
    lo, hi = run["within"]
    assert lo <= ratio <= hi, f"{run['name']}: planned / published = {ratio:.3f}"
