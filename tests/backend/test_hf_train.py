"""`genai train` on a `model { from = "..." }` spec: the checkpoint's weights, sharded, and its
tokenizer; the run folder opens again as a model and exports as a Hugging Face checkpoint."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

import jax  # noqa: E402
from click.testing import CliRunner  # noqa: E402

TEXT = (
    "Customer: my order arrived with a cracked lid. Agent: I am sorry; a replacement ships today. "
    "Customer: how do I change my email? Agent: open Settings, then Account, then Email. "
) * 12


@pytest.fixture(scope="module")
def run(hf_dir, tmp_path_factory):
    import genaisdk

    folder = tmp_path_factory.mktemp("hf-train")
    (folder / "support.txt").write_text(TEXT)
    spec = folder / "ft.genai"
    spec.write_text(
        "genai 1\n"
        'project "ft" {\n'
        f'  model {{\n    from    = "{hf_dir("llama")}"\n    context = 32 tokens\n  }}\n'
        '  data {\n    source   = "support.txt"\n    held_out = 10%\n  }\n'
        "  adapt {\n    method = finetune\n  }\n"
        # A learning rate so small that two steps leave the weights within 1e-6 of the checkpoint's.
        "  train {\n    precision = fp32\n    sharding = fsdp\n    batch = 256 tokens\n"
        "    learning_rate = 1e-9\n    warmup = 0\n    steps = 2\n  }\n"
        "}\n"
    )
    result = genaisdk.train(str(spec), out=folder / "run", quiet=True, devices=2)
    return result


def test_training_starts_from_the_checkpoint_with_its_tokenizer(run, hf_dir):
    from genaisdk.backend.jax.load import load_model

    assert run.ok and run.devices == 2
    record = json.loads((run.out_dir / "run.json").read_text())
    assert "tokenizers:tokenizer.json" in record["data"]["description"]
    # What was read is listed, with its size and hash.
    support = run.out_dir.parent / "support.txt"
    assert record["data"]["files"] == [
        {"path": str(support), "bytes": support.stat().st_size, "sha256": hashlib.sha256(support.read_bytes()).hexdigest()}
    ]
    assert record["tokenizer"]["file"] == "tokenizer/tokenizer.json" and (run.out_dir / "tokenizer" / "tokenizer.json").is_file()
    assert record["checkpoint"]["model_type"] == "llama"
    q = run.state.params["decoder"]["layers"]["attn"]["q"]
    assert q.sharding.spec[1] == "data"  # FSDP: loaded straight into the sharded layout
    base = load_model(hf_dir("llama"), dtype="float32")
    trained = jax.device_get(run.state.params)
    for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(jax.device_get(base.params)), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_run_loads_and_exports_as_its_base_family(run, tmp_path):
    from genaisdk.backend.jax.load import load_model
    from genaisdk.cli import cli

    loaded = load_model(run.out_dir)
    assert loaded.kind == "run" and loaded.step == 2 and loaded.model_type == "llama"
    assert loaded.tokenizer.encode("Agent:")[0] == loaded.tokenizer.bos_id
    for a, b in zip(jax.tree.leaves(jax.device_get(loaded.params)), jax.tree.leaves(jax.device_get(run.state.params)), strict=True):
        assert np.array_equal(a, b)
    out = tmp_path / "hf"
    result = CliRunner().invoke(cli, ["export", str(run.out_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["rope_scaling"]["rope_type"] == "llama3"
    assert (out / "tokenizer.json").is_file()
    again = load_model(out)
    for a, b in zip(jax.tree.leaves(jax.device_get(again.params)), jax.tree.leaves(jax.device_get(loaded.params)), strict=True):
        assert np.array_equal(a, b)


def test_peft_adapters_go_over_a_fine_tuned_run_as_over_its_checkpoint(run, hf_dir):
    """A run that trained every weight is a base like a checkpoint folder: PEFT's LLaMA
    adapters over it give PEFT's golden logits (the run's weights are within 1e-6 of the
    checkpoint's)."""
    from genaisdk.backend.jax.load import load_model

    golden = np.load(hf_dir("golden") / "peft-llama.npz")
    loaded = load_model(run.out_dir, adapters=hf_dir("peft") / "llama")
    assert loaded.kind == "run" and loaded.adapter.rank == 4 and loaded.base_source == str(run.out_dir)
    logits = np.asarray(loaded.logits(golden["input_ids"]))
    assert np.abs(logits[..., : golden["logits"].shape[-1]] - golden["logits"]).max() <= 1e-4
