"""`genai plan` never imports JAX (nor anything else it does not need)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "genaisdk", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, "no -X importtime output"
    return names


def test_genai_plan_never_imports_jax():
    names = imported_modules("plan", str(ROOT / "specs" / "legal.genai"), "--json")
    assert "genaisdk.planning.pipeline" in names
    heavy = {n for n in names if n.split(".")[0] in ("jax", "jaxlib", "optax", "orbax", "flax", "torch", "matplotlib")}
    assert not heavy, sorted(heavy)


def test_genai_explain_never_imports_jax():
    names = imported_modules("explain", str(ROOT / "specs" / "legal.genai"), "memory")
    assert not {n for n in names if n.split(".")[0] in ("jax", "jaxlib", "optax", "orbax")}


def test_import_genaisdk_is_lazy():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import genaisdk"], capture_output=True, text=True, cwd=ROOT
    )
    names = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "numpy" not in names and "genaisdk.planning.pipeline" not in names and "rich" not in names
