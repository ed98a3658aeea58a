"""The import graph is the stack of layers `pyproject.toml` declares ([tool.importlinter]):
cli -> render | backend -> planning -> spec -> registry -> builtins -> estimate | plans | checkpoints | evaluation ->
hookspecs -> records : dims -> core : diagnostics. `.ci/run` runs only pytest, so the
contracts are checked here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_lint_imports_keeps_every_contract():
    if shutil.which("lint-imports") is None and not (Path(sys.executable).parent / "lint-imports").exists():
        pytest.fail("import-linter is not installed: pip install -e '.[dev]'")
    command = str(Path(sys.executable).parent / "lint-imports")
    if not Path(command).exists():
        command = "lint-imports"
    out = subprocess.run([command, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout or "broken" not in out.stdout.split("Contracts:")[-1]
