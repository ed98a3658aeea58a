"""PEFT LoRA adapter folders read back onto a base model.

The adapters and golden logits under tests/fixtures/hf/peft/ and golden/peft-*.npz were
written once by PEFT itself (tests/fixtures/make_peft_fixtures.py): LLaMA with rank_pattern
and alpha_pattern, GPT-2's Conv1D modules with rsLoRA, B drawn non-zero so that the adapters
move the logits (by up to ~5). Bad folders are refused in one line naming the file and key.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

import jax  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from genaisdk.backend.jax.config import AdapterConfig  # noqa: E402
from genaisdk.backend.jax.lora import A, B, Adapters, iter_pairs  # noqa: E402
from genaisdk.backend.jax.model import build  # noqa: E402
from genaisdk.backend.jax.peft import read_peft, write_peft  # noqa: E402
from genaisdk.checkpoints import CheckpointFormatError  # noqa: E402
from genaisdk.checkpoints.hf_config import read_checkpoint  # noqa: E402


def _golden(hf_dir, name):
    return np.load(hf_dir("golden") / f"peft-{name}.npz")


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_adapters_peft_wrote_give_peft_logits(hf_dir, name):
    from genaisdk.backend.jax.load import load_model

    golden = _golden(hf_dir, name)
    base_golden = np.load(hf_dir("golden") / f"{name}.npz")
    assert golden["input_ids"].shape[1] >= 64
    np.testing.assert_array_equal(golden["input_ids"], base_golden["input_ids"])
    assert np.abs(golden["logits"] - base_golden["logits"]).max() > 1.0  # the adapters matter
    loaded = load_model(hf_dir(name), dtype="float32", adapters=hf_dir("peft") / name)
    logits = np.asarray(loaded.logits(golden["input_ids"]))[..., : golden["logits"].shape[-1]]
    assert np.abs(logits - golden["logits"]).max() <= 1e-4
    assert loaded.adapter.rank == 4 and loaded.base_source == str(hf_dir(name))
    assert any("PEFT adapters" in note for note in loaded.notes)


def test_patterns_ranks_and_scales_are_honoured(hf_dir):
    """LLaMA: r 4, alpha 8 (scale 2); down_proj rank 2, layer 1's k_proj rank 3 (zero-padded to
    the config's rank 4); o_proj alpha 12 (scale 3, folded into its B). GPT-2: rsLoRA scale
    6/sqrt(4) = 3; c_attn's one A feeds q, k and v, each its own rows of B."""
    from safetensors.numpy import load_file

    checkpoint = read_checkpoint(hf_dir("llama"))
    model = build(checkpoint.dims, family="decoder")
    adapter = read_peft(hf_dir("peft") / "llama", model, dims=checkpoint.dims, model_type="llama")
    assert (adapter.config.rank, adapter.config.scale, adapter.modules) == (4, 2.0, 12)
    tensors = load_file(str(hf_dir("peft") / "llama" / "adapter_model.safetensors"))
    layers = adapter.adapters["decoder"]["layers"]
    p = "base_model.model.model.layers.1."
    assert not np.any(layers["mlp"]["wo"][B][:, 2:]) and not np.any(layers["attn"]["k"][B][1, 3:])
    np.testing.assert_array_equal(layers["attn"]["k"][A][1, :, :3], tensors[p + "self_attn.k_proj.lora_A.weight"].T)
    np.testing.assert_allclose(
        layers["attn"]["o"][B][1].reshape(4, -1), 1.5 * tensors[p + "self_attn.o_proj.lora_B.weight"].T, rtol=1e-6
    )
    assert "wi" not in layers["mlp"]  # up_proj is not a target: nothing to pad

    checkpoint = read_checkpoint(hf_dir("gpt2"))
    model = build(checkpoint.dims, family="decoder")
    adapter = read_peft(hf_dir("peft") / "gpt2", model, dims=checkpoint.dims, model_type="gpt2")
    assert adapter.config.scale == 3.0 and adapter.config.targets == ("q", "k", "v", "o", "down")
    attn = adapter.adapters["decoder"]["layers"]["attn"]
    np.testing.assert_array_equal(attn["q"][A], attn["v"][A])


def _trees_delta(tree, config):
    """Every adapted kernel's update scale·A·B per layer, flattened, in NumPy."""
    out = {}
    for path, pair in iter_pairs(tree):
        a, b = np.asarray(pair[A], np.float64), np.asarray(pair[B], np.float64)
        layers = a.shape[0]
        out["/".join(path)] = np.stack(
            [config.scale * a[i].reshape(-1, a.shape[-1]) @ b[i].reshape(b.shape[1], -1) for i in range(layers)]
        )
    return out


@pytest.mark.parametrize("name", ["gpt2", "qwen2", "bert", "t5-v1_1"])
def test_what_export_writes_reads_back_to_the_same_update(hf_dir, tmp_path, name):
    """Export and read are one map run both ways, for every family (GPT-2's fused c_attn,
    BERT's dense layers, T5's cross-attention): the update A·B of every kernel is unchanged."""
    checkpoint = read_checkpoint(hf_dir(name))
    model = build(checkpoint.dims, family=checkpoint.family)
    config = AdapterConfig(method="lora", rank=3, alpha=5, targets=("q", "k", "v", "o", "up", "down"))
    adapters = Adapters(model, config)
    rng = np.random.default_rng(7)
    tree = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), adapters.abstract())
    write_peft(tmp_path, tree, config, dims=checkpoint.dims, family=checkpoint.family, model_type=checkpoint.model_type)
    back = read_peft(tmp_path, model, dims=checkpoint.dims, model_type=checkpoint.model_type)
    want, got = _trees_delta(tree, config), _trees_delta(back.adapters, back.config)
    assert set(got) == set(want)
    for path in want:
        np.testing.assert_allclose(got[path], want[path], atol=1e-5, err_msg=path)


# ----------------------------------------------------------------------------- refused folders


def _edit(tensors, key, fn):
    tensors[key] = fn(tensors[key])


LLAMA_Q0 = "base_model.model.model.layers.0.self_attn.q_proj"

BAD = {
    "pickle": (None, None, "adapter_model.bin: a pickled PyTorch file"),
    "peft_type": ({"peft_type": "LOHA"}, None, 'peft_type = "LOHA"'),
    "dora": ({"use_dora": True}, None, "use_dora = true"),
    "bias": ({"bias": "lora_only"}, None, 'bias = "lora_only"'),
    "modules_to_save": ({"modules_to_save": ["lm_head"]}, None, "modules_to_save"),
    "pissa": ({"init_lora_weights": "pissa"}, None, "changes the base weights"),
    "no_such_module": (
        None, lambda t: t.update({k.replace("q_proj", "qkv_proj"): t.pop(k) for k in [f"{LLAMA_Q0}.lora_A.weight"]}),
        "adapts model.layers.0.self_attn.qkv_proj, which the base model (llama) does not have",
    ),
    "not_adaptable": (
        {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "lm_head"]},
        lambda t: t.update({"base_model.model.lm_head.lora_A.weight": np.zeros((4, 32), np.float32)}),
        "adapts lm_head, which genaisdk's LoRA does not adapt",
    ),
    "shape": ({"r": 8}, None, "gate_proj.lora_A.weight has shape [4, 32], expected [r, in] = [8, 32] (r = 8 from adapter_config.json's r"),
    "missing": (None, lambda t: t.pop(f"{LLAMA_Q0}.lora_B.weight"), f"tensor {LLAMA_Q0}.lora_B.weight is missing"),
    "extra": (
        None, lambda t: t.update({"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": np.zeros((4, 32), np.float32)}),
        "target_modules does not select model.layers.0.mlp.up_proj",
    ),
    "other_model": ({"target_modules": ["c_attn"]}, None, "selects no module of the base model (llama)"),
}


def _bad_folder(hf_dir, tmp_path, case):
    from safetensors.numpy import load_file, save_file

    edits, change, _ = BAD[case]
    folder = tmp_path / case
    shutil.copytree(hf_dir("peft") / "llama", folder)
    if case == "pickle":
        (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    if edits:
        config = json.loads((folder / "adapter_config.json").read_text())
        config.update(edits)
        (folder / "adapter_config.json").write_text(json.dumps(config))
    if change:
        tensors = load_file(str(folder / "adapter_model.safetensors"))
        change(tensors)
        save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_adapter_folder_is_one_clear_error(hf_dir, tmp_path, case):
    folder = _bad_folder(hf_dir, tmp_path, case)
    checkpoint = read_checkpoint(hf_dir("llama"))
    model = build(checkpoint.dims, family="decoder")
    with pytest.raises(CheckpointFormatError) as info:
        read_peft(folder, model, dims=checkpoint.dims, model_type="llama")
    message = str(info.value)
    assert BAD[case][2] in message and "\n" not in message
    assert str(folder) in message


@pytest.mark.parametrize("command, case", [("generate", "dora"), ("eval", "pickle"), ("generate", "shape")])
def test_the_cli_refuses_a_bad_adapter_with_exit_1(hf_dir, tmp_path, command, case):
    from genaisdk.cli import cli

    folder = _bad_folder(hf_dir, tmp_path, case)
    args = ["--prompt", "x"] if command == "generate" else ["--data", str(tmp_path / "x.txt")]
    (tmp_path / "x.txt").write_text("The court held that the clause was void. " * 8)
    out = CliRunner().invoke(cli, [command, str(hf_dir("llama")), "--adapters", str(folder), *args])
    assert out.exit_code == 1, out.output
    assert out.output.startswith("error: ") and BAD[case][2] in out.output
    assert "Traceback" not in out.output and out.output.count("\n") == 1


def test_generate_and_eval_take_adapters_from_the_cli(hf_dir, tmp_path):
    from genaisdk.cli import cli

    runner = CliRunner()
    folder = tmp_path / "adapter"
    shutil.copytree(hf_dir("peft") / "llama", folder)
    prompt = ["--prompt", "The court held", "--max-new-tokens", "6", "--json", "--precision", "fp32"]
    plain = runner.invoke(cli, ["generate", str(hf_dir("llama")), *prompt])
    adapted = runner.invoke(cli, ["generate", str(hf_dir("llama")), "--adapters", str(folder), *prompt])
    assert plain.exit_code == adapted.exit_code == 0, adapted.output
    assert json.loads(plain.output)["ids"] != json.loads(adapted.output)["ids"]
    (tmp_path / "held.txt").write_text("The court held that the clause was void because it limited liability. " * 6)
    out = runner.invoke(cli, ["eval", str(hf_dir("llama")), "--adapters", str(folder), "--data", str(tmp_path / "held.txt"), "--no-baseline"])
    assert out.exit_code == 0, out.output
    assert "PEFT adapters" in out.output
    # Nothing is written into a checkpoint or adapter folder the tool did not make.
    assert not (folder / "eval.json").exists() and not (hf_dir("llama") / "eval.json").exists()
    assert "eval.json not written" in out.output
