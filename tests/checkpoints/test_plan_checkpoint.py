"""`model { from = "..." }`: the plan counts exactly the checkpoint's parameters, without JAX."""

from __future__ import annotations

from pathlib import Path

import pytest

import genaisdk
from genaisdk.diagnostics import SpecError

ROOT = Path(__file__).resolve().parents[2]
LLAMA = ROOT / "tests" / "fixtures" / "hf" / "llama"


def _spec(model_lines: str, tmp_path: Path) -> Path:
    path = tmp_path / "ft.genai"
    path.write_text(
        "genai 1\n"
        'project "ft" {\n'
        f"  model {{\n{model_lines}\n  }}\n"
        "  adapt {\n    method = finetune\n  }\n"
        "  data {\n    tokens = 1M tokens\n  }\n"
        "  budget {\n    hardware = a100-80gb\n  }\n"
        "}\n"
    )
    return path


def test_the_example_spec_plans_the_checkpoints_exact_count():
    plan = genaisdk.plan(str(ROOT / "specs" / "support-lora.genai"))
    assert not plan.errors
    assert plan.model.params == 42144  # what transformers counted for tests/fixtures/hf/llama
    assert (plan.model.layers, plan.model.d_model, plan.model.heads, plan.model.vocab) == (2, 32, 4, 272)
    assert plan.model.context == 256 and plan.train.adaptation == "lora"
    assert "checkpoint" in plan.reason("model.family").reason


def test_from_is_relative_to_the_spec(tmp_path):
    spec = _spec('    from = "llama"', tmp_path)
    import shutil

    shutil.copytree(LLAMA, tmp_path / "llama")
    plan = genaisdk.plan(str(spec))
    assert plan.model.params == 42144 and plan.model.context == 256  # the checkpoint's max_position_embeddings


@pytest.mark.parametrize(
    "lines, path, needle",
    [
        ('    from = "no/such/folder"', "model.from", "no such checkpoint folder"),
        (f'    from = "{LLAMA}"\n    layers = 4', "model.layers", "cannot be set with `from`"),
        (f'    from = "{LLAMA}"\n    family = encoder', "model.family", "the checkpoint is a decoder (llama)"),
    ],
)
def test_a_bad_from_is_a_gp009_error_at_the_key(tmp_path, lines, path, needle):
    with pytest.raises(SpecError) as info:
        genaisdk.plan(str(_spec(lines, tmp_path)))
    found = [d for d in info.value.diagnostics if d.code == "GP009"]
    assert found and needle in found[0].message
    line = next(i for i, text in enumerate(_spec(lines, tmp_path).read_text().splitlines(), 1) if path.split(".")[1] + " =" in text)
    assert found[0].span.line == line


def test_planning_a_checkpoint_never_imports_jax(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, genaisdk; genaisdk.plan(sys.argv[1]); "
        "assert 'jax' not in sys.modules and 'safetensors' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / "support-lora.genai")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
