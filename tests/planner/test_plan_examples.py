"""The example program that embeds the SDK runs and says what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_budget_sweep_example_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "budget_sweep.py"), str(ROOT / "specs" / "legal.genai")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    rows = [line for line in lines if line.startswith(("8 x", "64 x", "256 x"))]
    assert len(rows) == 4
    assert "Why the first plan chose what it chose" in out.stdout
    assert "weights = params × bytes per weight" in out.stdout
