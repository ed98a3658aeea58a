"""Fixtures shared by every test folder: the committed Hugging Face checkpoints and damaged copies.

`tests/fixtures/hf/<name>/` are tiny random checkpoints made by
`tests/fixtures/make_hf_fixtures.py` (run once, outside the suite, with transformers), and
`tests/fixtures/hf/golden/<name>.npz` their logits. `broken_checkpoint(name, damage)` copies
one to a temporary folder and damages it in one way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

HF_FIXTURES = Path(__file__).parent / "fixtures" / "hf"
HF_FAMILIES = ("gpt2", "llama", "qwen2", "bert", "roberta", "t5-v1_1", "t5")


@pytest.fixture(scope="session")
def hf_dir():
    """`hf_dir(name)`: the folder of a committed checkpoint fixture."""
    return lambda name: HF_FIXTURES / name


def _rewrite(folder: Path, change) -> None:
    import ml_dtypes  # noqa: F401  (registers bfloat16 with NumPy for safetensors)
    from safetensors.numpy import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def damage(folder: Path, kind: str) -> str:
    """Damage a copied checkpoint in place; returns the tensor or file the error must name."""
    config_path = folder / "config.json"
    if kind == "missing_config":
        config_path.unlink()
        return "config.json"
    if kind == "unknown_model_type":
        config = json.loads(config_path.read_text())
        config["model_type"] = "falcon-xyz"
        config_path.write_text(json.dumps(config))
        return "falcon-xyz"
    if kind == "corrupt_header":
        raw = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(raw[:8] + b"{not json" + raw[17:])
        return "model.safetensors"
    if kind == "truncated":
        raw = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(raw[: len(raw) // 2])
        return "model.safetensors"
    names = {"gpt2": "transformer.h.1.mlp.c_fc.weight", "llama": "model.layers.1.self_attn.k_proj.weight"}
    target = names.get(folder.name, names["llama"])
    if kind == "missing_tensor":
        _rewrite(folder, lambda t: t.pop(target))
        return target
    if kind == "wrong_shape":
        _rewrite(folder, lambda t: t.__setitem__(target, t[target][:-1].copy()))
        return target
    if kind == "extra_tensor":
        _rewrite(folder, lambda t: t.__setitem__("model.layers.9.extra.weight", t[target].copy()))
        return "model.layers.9.extra.weight"
    if kind == "untied_head":
        # A tied config whose file also stores an output matrix of other values.
        def add_head(t):
            embed = next(k for k in t if k.endswith(("wte.weight", "embed_tokens.weight")))
            t["lm_head.weight"] = (t[embed] * 2).astype(t[embed].dtype)

        _rewrite(folder, add_head)
        return "lm_head.weight"
    if kind == "missing_head":
        _rewrite(folder, lambda t: t.pop("lm_head.weight"))
        return "lm_head.weight"
    raise ValueError(kind)


@pytest.fixture
def broken_checkpoint(tmp_path):
    """`broken_checkpoint(name, kind)` -> (folder, the name the error must mention)."""

    def make(name: str, kind: str) -> tuple[Path, str]:
        folder = tmp_path / name
        shutil.copytree(HF_FIXTURES / name, folder)
        return folder, damage(folder, kind)

    return make
