"""LoRA and QLoRA runs: a frozen base, adapters of the planned rank, alpha and targets, only
the adapters in the optimizer; the run folder loads merged, exports as PEFT adapters or as
merged weights, and the merged model is the adapted one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import genaisdk  # noqa: E402
from genaisdk.backend.jax.config import AdapterConfig, RunConfig  # noqa: E402
from genaisdk.backend.jax.lora import Adapters  # noqa: E402
from genaisdk.backend.jax.model import build  # noqa: E402
from genaisdk.backend.jax.precision import Policy  # noqa: E402
from genaisdk.planning.run_settings import run_settings  # noqa: E402

SPECS = Path(__file__).resolve().parents[2] / "specs"
FP32 = Policy(name="fp32")
TEXT = (
    "Customer: my order arrived with a cracked lid. Agent: I am sorry; a replacement ships today. "
    "Customer: how do I change my email? Agent: open Settings, then Account, then Email. "
) * 12


def _forward(model, params, ids):
    """fp32 logits, compiled once per model and parameter tree structure."""
    key = id(model)
    if key not in _FORWARDS:
        _FORWARDS[key] = (model, jax.jit(lambda p, i: model.apply(p, i, policy=FP32)))
    return np.asarray(_FORWARDS[key][1](params, jnp.asarray(ids)))


_FORWARDS: dict = {}


def _adapted_logits(loaded, adapters, tree, ids, base=None):
    """Logits of the base with the adapters beside it (never merged), in fp32."""
    return _forward(loaded.model, adapters.attach(loaded.params if base is None else base, tree), ids)


def _random_adapters(adapters, seed):
    """Adapters with B drawn too (fresh ones have B = 0), so that they change the model."""
    keys = iter(jax.random.split(jax.random.key(seed), 64))
    return jax.tree.map(lambda x: 0.2 * jax.random.normal(next(keys), x.shape, jnp.float32), adapters.abstract())


@pytest.mark.parametrize("name", ["chat-qlora", "support-lora"])
def test_the_plan_counts_exactly_the_adapters_the_run_trains(name):
    spec = genaisdk.load(SPECS / f"{name}.genai")
    plan = genaisdk.plan(spec)
    config = RunConfig.from_settings(run_settings(plan, spec))
    adapter = config.adapter
    assert adapter is not None and adapter.method == plan.adapt.method
    assert adapter.rank == plan.adapt.rank and adapter.alpha == plan.adapt.alpha
    assert adapter.scale == plan.adapt.alpha / plan.adapt.rank
    assert adapter.frozen == {"int4": "nf4", None: None}[plan.adapt.frozen_precision]
    model = build(config.dims, family=config.architecture.family)
    assert Adapters(model, adapter).num_params() == int(plan.model.trainable_params)


def test_fresh_adapters_leave_the_base_model_unchanged(hf_dir):
    """B starts at zero (Hu et al. 2021, Sec. 4.1): step 0 is the base model, bit for bit; a
    QLoRA model at step 0 is its NF4 base."""
    from genaisdk.backend.jax.load import load_model

    loaded = load_model(hf_dir("llama"), dtype="float32")
    ids = np.array([loaded.tokenizer.encode("Customer: hello")])
    base = _forward(loaded.model, loaded.params, ids)
    adapters = Adapters(loaded.model, AdapterConfig(method="lora", rank=4, alpha=8, targets=("q", "v", "o", "down")))
    fresh = adapters.init(jax.random.key(0))
    assert np.all(np.asarray(fresh["decoder"]["layers"]["attn"]["q"]["lora_b"]) == 0)
    assert np.any(np.asarray(fresh["decoder"]["layers"]["attn"]["q"]["lora_a"]) != 0)
    np.testing.assert_array_equal(np.asarray(_adapted_logits(loaded, adapters, fresh, ids)), base)

    qlora = Adapters(loaded.model, AdapterConfig(method="qlora", rank=4, alpha=8, targets=("q", "v"), frozen="nf4"))
    frozen = qlora.freeze(loaded.params)
    assert type(frozen["decoder"]["layers"]["attn"]["q"]).__name__ == "QuantizedArray"
    assert not hasattr(frozen["embed"]["token"], "dequantize")  # the embeddings stay in 16 bits or more
    dequantized = qlora.merge(frozen, qlora.init(jax.random.key(0)))
    nf4 = _forward(loaded.model, dequantized, ids)
    np.testing.assert_allclose(np.asarray(_adapted_logits(loaded, qlora, fresh, ids, base=frozen)), nf4, atol=1e-5)
    assert np.abs(nf4 - base).max() > 1e-4  # the NF4 base is not the 32-bit one


def test_merged_weights_export_with_gpt2s_fused_attention_and_as_peft(hf_dir, tmp_path):
    """GPT-2 fuses q, k, v into c_attn (a Conv1D): the merged export gives the adapted
    model's logits, and PEFT's c_attn adapter (rank 2r, q and v blocks) is the same update."""
    from safetensors.numpy import load_file

    from genaisdk.backend.jax.hf import export_hf
    from genaisdk.backend.jax.load import load_model
    from genaisdk.backend.jax.peft import write_peft

    loaded = load_model(hf_dir("gpt2"), dtype="float32")
    config = AdapterConfig(method="lora", rank=2, alpha=6, targets=("q", "v", "down"))
    adapters = Adapters(loaded.model, config)
    tree = _random_adapters(adapters, 1)
    ids = np.array([loaded.tokenizer.encode("Agent: open Settings")])
    adapted = np.asarray(_adapted_logits(loaded, adapters, tree, ids))
    assert np.abs(adapted - _forward(loaded.model, loaded.params, ids)).max() > 1e-2

    export_hf(tmp_path / "merged", params=adapters.merge(loaded.params, tree), dims=loaded.dims, family=loaded.family,
              base_config=loaded.hf_config, vocab=loaded.vocab)
    merged = load_model(tmp_path / "merged")
    np.testing.assert_allclose(_forward(loaded.model, merged.params, ids), adapted, atol=1e-5)

    write_peft(tmp_path / "peft", tree, config, dims=loaded.dims, family="decoder", model_type="gpt2")
    peft = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    # "c_proj" would also select the attention's output, which has no adapter: whole paths.
    assert peft["target_modules"] == [f"transformer.h.{i}.{m}" for i in (0, 1) for m in ("attn.c_attn", "mlp.c_proj")]
    assert peft["fan_in_fan_out"] is True
    assert peft["rank_pattern"] == {"c_attn": 4} and peft["alpha_pattern"] == {"c_attn": 12}
    lora = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    base = load_file(str(hf_dir("gpt2") / "model.safetensors"))
    out = load_file(str(tmp_path / "merged" / "model.safetensors"))
    prefix = "base_model.model."
    for module, rank, alpha in (("transformer.h.1.attn.c_attn", 4, 12), ("transformer.h.0.mlp.c_proj", 2, 6)):
        a, b = lora[f"{prefix}{module}.lora_A.weight"], lora[f"{prefix}{module}.lora_B.weight"]
        assert a.shape[0] == b.shape[1] == rank
        # PEFT's merge: W += (alpha / r) · (B·A), transposed for a Conv1D (fan_in_fan_out).
        np.testing.assert_allclose(base[f"{module}.weight"] + alpha / rank * (b @ a).T, out[f"{module}.weight"], atol=1e-6)
    # The fused module's k block has no adapter: its rows of B are zero.
    e = loaded.dims.d_model
    assert not np.any(lora[f"{prefix}transformer.h.0.attn.c_attn.lora_B.weight"][e : 2 * e])


@pytest.fixture(scope="module")
def run(hf_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora-train")
    (folder / "support.txt").write_text(TEXT)
    spec = folder / "lora.genai"
    spec.write_text(
        "genai 1\n"
        'project "lora" {\n'
        f'  model {{\n    from    = "{hf_dir("llama")}"\n    context = 32 tokens\n  }}\n'
        '  data {\n    source   = "support.txt"\n    held_out = 10%\n  }\n'
        "  adapt {\n    method = lora\n    rank = 4\n    alpha = 8\n    targets = [q, v, o, down]\n  }\n"
        "  train {\n    precision = fp32\n    sharding = fsdp\n    batch = 256 tokens\n"
        "    learning_rate = 1e-2\n    warmup = 0\n    steps = 3\n  }\n"
        "}\n"
    )
    result = genaisdk.train(str(spec), out=folder / "run", quiet=True, devices=2)
    return result, spec


def test_the_run_trains_the_planned_adapters_alone(run):
    result, spec = run
    plan = genaisdk.plan(genaisdk.load(spec))
    assert result.ok and result.steps == 3
    trained = sum(x.size for x in jax.tree.leaves(result.state.params))
    assert trained == plan.model.trainable_params < plan.model.params / 10
    # The optimizer's moments are the adapters' shapes, nothing of the base.
    shapes = {x.shape for x in jax.tree.leaves(result.state.params)}
    moments = [x for x in jax.tree.leaves(result.state.opt_state) if x.ndim > 0]
    assert moments and {x.shape for x in moments} <= shapes
    assert sum(x.size for x in moments) == 2 * trained  # AdamW: m and v
    record = json.loads((result.out_dir / "run.json").read_text())
    assert record["config"]["adapter"] == {
        "method": "lora", "rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["q", "v", "o", "down"], "frozen": None,
    }
    assert {d["field"] for d in record["deviations"]} <= {"devices", "data_parallel", "grad_accumulation", "micro_batch"}  # --devices 2 only


def test_the_run_folder_loads_merged_and_the_base_stayed_frozen(run, hf_dir):
    from genaisdk.backend.jax.load import load_model

    result, _ = run
    loaded = load_model(result.out_dir)
    base = load_model(hf_dir("llama"), dtype="float32")
    assert loaded.adapter.rank == 4 and loaded.step == 3
    adapted_paths = {"decoder/layers/attn/q", "decoder/layers/attn/v", "decoder/layers/attn/o", "decoder/layers/mlp/wo"}
    from genaisdk.backend.jax.model import path_name

    flat = jax.tree_util.tree_flatten_with_path(loaded.params)[0]
    original = dict((path_name(p), x) for p, x in jax.tree_util.tree_flatten_with_path(base.params)[0])
    for path, value in flat:
        name = path_name(path)
        same = np.array_equal(np.asarray(value), np.asarray(original[name]))
        assert same != (name in adapted_paths), name
    # Merging reproduces the adapted model (the base with its adapters beside it).
    ids = np.array([loaded.tokenizer.encode("Customer: how do I change my email?")])
    adapters = Adapters(loaded.model, loaded.adapter)
    adapted = np.asarray(_adapted_logits(base, adapters, loaded.adapters, ids))
    assert np.abs(adapted - _forward(base.model, base.params, ids)).max() > 1e-3
    np.testing.assert_allclose(_forward(base.model, loaded.params, ids), adapted, atol=1e-5)


def test_export_writes_peft_adapters_and_merged_weights(run, hf_dir, tmp_path):
    from safetensors.numpy import load_file

    from genaisdk.backend.jax.load import load_model
    from genaisdk.cli import cli

    result, _ = run
    runner = CliRunner()
    out = runner.invoke(cli, ["export", str(result.out_dir), "--adapters", "--out", str(tmp_path / "peft")])
    assert out.exit_code == 0, out.output
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["task_type"], config["r"], config["lora_alpha"]) == ("LORA", "CAUSAL_LM", 4, 8)
    assert config["target_modules"] == ["down_proj", "o_proj", "q_proj", "v_proj"]
    assert config["base_model_name_or_path"] == str(hf_dir("llama"))
    lora = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    base = load_file(str(hf_dir("llama") / "model.safetensors"))
    assert len(lora) == 2 * 4 * 2  # two layers, four matrices, A and B
    out = runner.invoke(cli, ["export", str(result.out_dir), "--merge", "--dtype", "fp32", "--out", str(tmp_path / "merged")])
    assert out.exit_code == 0, out.output
    merged = load_file(str(tmp_path / "merged" / "model.safetensors"))
    for module in ("model.layers.1.self_attn.q_proj", "model.layers.0.self_attn.o_proj", "model.layers.1.mlp.down_proj"):
        a, b = lora[f"base_model.model.{module}.lora_A.weight"], lora[f"base_model.model.{module}.lora_B.weight"]
        weight = base[f"{module}.weight"]
        assert a.shape == (4, weight.shape[1]) and b.shape == (weight.shape[0], 4)
        np.testing.assert_allclose(weight + 8 / 4 * (b @ a), merged[f"{module}.weight"], atol=1e-6)
    again = load_model(tmp_path / "merged")
    loaded = load_model(result.out_dir)
    ids = np.array([loaded.tokenizer.encode("Agent: open Settings")])
    np.testing.assert_allclose(np.asarray(again.logits(ids)), np.asarray(loaded.logits(ids)), atol=1e-5)
    # Adapters of a run that trained every weight, or both flags, are refused in one line.
    both = runner.invoke(cli, ["export", str(result.out_dir), "--adapters", "--merge", "--out", str(tmp_path / "x")])
    assert both.exit_code == 2 and "exclude each other" in both.output


def test_merged_export_defaults_to_the_base_dtype_and_every_file_honours_the_umask(run, hf_dir, tmp_path):
    from safetensors.numpy import load_file

    from genaisdk.cli import cli

    result, _ = run
    runner = CliRunner()
    previous = os.umask(0o027)
    try:
        merged = runner.invoke(cli, ["export", str(result.out_dir), "--merge", "--out", str(tmp_path / "merged")])
        peft = runner.invoke(cli, ["export", str(result.out_dir), "--adapters", "--out", str(tmp_path / "peft")])
    finally:
        os.umask(previous)
    assert merged.exit_code == 0 and peft.exit_code == 0, merged.output + peft.output
    assert "merged weights written in bfloat16, as the base checkpoint stores them" in merged.output
    base = load_file(str(hf_dir("llama") / "model.safetensors"))
    weights = load_file(str(tmp_path / "merged" / "model.safetensors"))
    assert {str(w.dtype) for w in base.values()} == {str(w.dtype) for w in weights.values()} == {"bfloat16"}
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["dtype"] == "bfloat16"
    size = (tmp_path / "merged" / "model.safetensors").stat().st_size
    assert abs(size - (hf_dir("llama") / "model.safetensors").stat().st_size) < 4096  # not twice the download
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "adapter_model.safetensors", "config.json", "adapter_config.json"}
    assert {p.name: p.stat().st_mode & 0o777 for p in files} == {p.name: 0o640 for p in files}


def test_a_lora_run_cannot_be_resumed_as_qlora_but_may_change_its_dropout(run, tmp_path):
    import shutil

    from genaisdk.cli import cli

    result, spec = run
    copy = tmp_path / "copy"
    shutil.copytree(result.out_dir, copy)
    before = (copy / "run.json").read_text()
    refused = CliRunner().invoke(
        cli, ["train", str(spec), "--set", "adapt.method=qlora", "--out", str(copy), "--resume", "--steps", "5", "--devices", "2"]
    )
    assert refused.exit_code == 1, refused.output
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in refused.output
    assert "(adapt.method lora -> qlora; adapt.frozen_precision none -> nf4)" in lines[0]
    assert "resume with the settings they were saved with, or --out a new folder" in lines[0]
    assert (copy / "run.json").read_text() == before  # nothing written
    more = genaisdk.train(str(spec), out=copy, devices=2, steps=4, resume=True, quiet=True, overrides=["adapt.dropout=0.05"])
    assert (more.start_step, more.steps) == (3, 4)
    assert any(n.startswith("resuming with changed settings (adapt.dropout 0 -> 0.05)") for n in more.notes)


def test_exported_adapters_read_back_onto_the_base_give_the_runs_logits(run, hf_dir, tmp_path):
    """genai export --adapters, then the base checkpoint with those adapters (load_model's
    `adapters=`, what genai generate/eval --adapters use): the run's own merged weights, bit
    for bit, so its logits (max abs <= 1e-6); exported again, the same PEFT tensors."""
    from safetensors.numpy import load_file

    from genaisdk.backend.jax.export import export_model
    from genaisdk.backend.jax.load import load_model
    from genaisdk.checkpoints import CheckpointFormatError
    from genaisdk.cli import cli

    result, _ = run
    out = CliRunner().invoke(cli, ["export", str(result.out_dir), "--adapters", "--out", str(tmp_path / "peft")])
    assert out.exit_code == 0, out.output
    own = load_model(result.out_dir)
    back = load_model(hf_dir("llama"), dtype="float32", adapters=tmp_path / "peft")
    assert back.adapter == own.adapter
    for x, y in zip(jax.tree.leaves(own.params), jax.tree.leaves(back.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    ids = np.array([own.tokenizer.encode("Customer: how do I change my email? Agent: open Settings")])
    error = np.abs(_forward(own.model, back.params, ids) - _forward(own.model, own.params, ids)).max()
    assert error <= 1e-6
    with pytest.raises(CheckpointFormatError, match="is an adapter run whose adapters are merged already"):
        load_model(result.out_dir, adapters=tmp_path / "peft")
    export_model(back, tmp_path / "again", format="peft")
    first, again = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("peft", "again"))
    assert first.keys() == again.keys() and all(np.array_equal(first[k], again[k]) for k in first)


def test_eval_and_generate_take_the_run_folder(run):
    from genaisdk.cli import cli

    result, spec = run
    out = CliRunner().invoke(cli, ["eval", str(result.out_dir), "--data", str(spec.parent / "support.txt")])
    assert out.exit_code == 0, out.output
    assert "at step 3" in out.output


def test_a_qlora_run_trains_adapters_over_an_nf4_base_and_its_loss_falls(hf_dir, tmp_path):
    folder = tmp_path
    (folder / "support.txt").write_text(TEXT)
    spec = folder / "qlora.genai"
    spec.write_text(
        "genai 1\n"
        'project "qlora" {\n'
        f'  model {{\n    from    = "{hf_dir("llama")}"\n    context = 32 tokens\n  }}\n'
        '  data {\n    source   = "support.txt"\n    held_out = 10%\n  }\n'
        "  adapt {\n    method = qlora\n    rank = 4\n    targets = [q, v]\n  }\n"
        "  train {\n    precision = fp32\n    batch = 256 tokens\n    learning_rate = 1e-2\n    warmup = 0\n    steps = 3\n  }\n"
        "}\n"
    )
    result = genaisdk.train(str(spec), out=folder / "run", quiet=True, devices=1)
    plan = genaisdk.plan(genaisdk.load(spec))
    assert result.ok
    assert sum(x.size for x in jax.tree.leaves(result.state.params)) == plan.model.trainable_params
    record = json.loads((result.out_dir / "run.json").read_text())
    assert record["config"]["adapter"]["frozen"] == "nf4" and record["config"]["adapter"]["dropout"] == 0.1
    lines = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [line["loss"] for line in lines if line.get("kind") == "train"]
    assert len(losses) == 3
    assert losses[-1] < losses[0]
