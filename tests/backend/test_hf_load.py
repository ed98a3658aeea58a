"""Hugging Face checkpoints in the JAX backend: golden logits, export round trips, placement.

The golden logits were computed once by transformers (tests/fixtures/make_hf_fixtures.py) on
72 positions; the loaded model must reproduce them in fp32 within 1e-4 for every family.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from genaisdk.backend.jax.hf import export_hf  # noqa: E402
from genaisdk.backend.jax.load import load_model  # noqa: E402
from genaisdk.backend.jax.sharding import SHARDED_AXES, make_mesh  # noqa: E402
from genaisdk.checkpoints import CheckpointFormatError  # noqa: E402
from genaisdk.checkpoints.safetensors_files import read_header  # noqa: E402

FAMILIES = ("gpt2", "llama", "qwen2", "bert", "roberta", "t5-v1_1", "t5")
TOLERANCE = 1e-4


def _golden(hf_dir, name):
    return np.load(hf_dir(name).parent / "golden" / f"{name}.npz")


def _logits(model, golden):
    return np.asarray(
        model.logits(
            golden["input_ids"],
            golden["decoder_input_ids"] if "decoder_input_ids" in golden else None,
            token_types=golden["token_type_ids"] if "token_type_ids" in golden else None,
        )
    )


def _same(a, b) -> bool:
    flat_a, tree_a = jax.tree.flatten(a)
    flat_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(flat_a, flat_b)
    )


@pytest.fixture(scope="module")
def loaded(hf_dir):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_model(hf_dir(name), dtype=jnp.float32)
        return cache[name]

    return get


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_equal_transformers(loaded, hf_dir, name):
    golden = _golden(hf_dir, name)
    assert golden["input_ids"].shape[1] >= 64
    error = np.abs(_logits(loaded(name), golden) - golden["logits"]).max()
    assert error <= TOLERANCE, f"{name}: max abs logit error {error:.2e}"


def test_a_wrong_rotary_setting_shows_in_the_logits(loaded, hf_dir):
    """The comparison can fail: Llama 3's scaling left out drifts the logits by far more than 1e-4."""
    good = loaded("llama")
    wrong = good.model.__class__(dims=good.dims.evolve(rotary_scaling=None), family="decoder")
    golden = _golden(hf_dir, "llama")
    forward = jax.jit(lambda params, ids: wrong.apply(params, ids, policy=good.policy))
    error = np.abs(np.asarray(forward(good.params, jnp.asarray(golden["input_ids"]))) - golden["logits"])
    assert error[:, 0].max() <= TOLERANCE < 0.1 < error.max()  # right at position 0 (no rotation), wrong later


@pytest.mark.parametrize("name", FAMILIES)
def test_load_export_load_gives_identical_arrays(loaded, hf_dir, tmp_path, name):
    source = load_model(hf_dir(name), vocab_multiple=64)  # stored dtypes, padded vocabulary
    assert source.dims.vocab % 64 == 0 and source.vocab == loaded(name).dims.vocab
    files = export_hf(
        tmp_path,
        params=source.params,
        dims=source.dims,
        family=source.family,
        tokenizer=source.tokenizer,
        ids=source.ids,
        base_config=source.hf_config,
        vocab=source.vocab,
        max_shard_bytes=30_000,  # several shards and an index
    )
    assert (tmp_path / "model.safetensors.index.json") in files
    for shard in tmp_path.glob("model-*.safetensors"):
        assert read_header(shard)[1] == {"format": "pt"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["vocab_size"] == source.vocab  # padded rows are not exported
    again = load_model(tmp_path)
    original = load_model(hf_dir(name))
    assert _same(original.params, again.params)
    assert again.dims == original.dims and again.family == original.family


def test_placed_in_sharding_without_changing_values(hf_dir):
    mesh = make_mesh(8)
    sharded = load_model(hf_dir("llama"), mesh=mesh, rules=SHARDED_AXES)
    single = load_model(hf_dir("llama"))
    q = sharded.params["decoder"]["layers"]["attn"]["q"]  # [layers 2, embed 32, heads 4, kv 16]
    assert q.sharding.spec[1] == "data" and q.addressable_shards[0].data.shape == (2, 4, 4, 16)
    embed = sharded.params["embed"]["token"]
    assert embed.sharding.spec[0] == "data"  # 272 vocabulary rows over 8 devices
    assert _same(jax.device_get(sharded.params), jax.device_get(single.params))


def test_stored_dtypes_are_kept_or_converted(hf_dir, loaded):
    bf16 = load_model(hf_dir("llama"))
    assert {x.dtype for x in jax.tree.leaves(bf16.params)} == {jnp.dtype(jnp.bfloat16)}
    fp32 = loaded("llama")
    assert _same(jax.tree.map(lambda x: x.astype(jnp.float32), bf16.params), fp32.params)
    fp16 = load_model(hf_dir("t5"))
    assert {x.dtype for x in jax.tree.leaves(fp16.params)} == {jnp.dtype(jnp.float16)}


def test_an_output_matrix_against_a_tied_config_is_refused(broken_checkpoint):
    folder, tensor = broken_checkpoint("gpt2", "untied_head")
    with pytest.raises(CheckpointFormatError, match="tie_word_embeddings = true") as info:
        load_model(folder)
    assert tensor in str(info.value)


def test_tokenizers_reproduce_the_checkpoints_ids(loaded, hf_dir):
    for name in FAMILIES:
        golden = _golden(hf_dir, name)
        tokenizer = loaded(name).tokenizer
        text = str(golden["text"])
        if name == "bert":
            first, second = text.split(", while ", 1)
            ids = np.concatenate([tokenizer.encode(first), tokenizer.encode(second, bos=False)])
        else:
            ids = tokenizer.encode(text)
        assert list(ids) == list(golden["ids"]), name


def test_tokenizer_policies(loaded):
    gpt2 = loaded("gpt2").tokenizer
    assert not gpt2.add_bos and not gpt2.add_eos and gpt2.stop_ids == (0,)
    packed = gpt2.encode_documents(["one doc", "two"])
    assert list(packed).count(gpt2.eos_id) == 2 and packed[-1] == gpt2.eos_id  # packing appends EOS itself
    llama = loaded("llama").tokenizer
    ids = llama.encode("<s> hello")  # text that already starts with BOS gets no second one
    assert ids[0] == llama.bos_id and ids[1] != llama.bos_id
    assert list(llama.encode("hi", bos=False, eos=True))[-1] == llama.eos_id
    t5 = loaded("t5").tokenizer
    assert t5.add_eos and not t5.add_bos and t5.pad_id == 0
    assert list(t5.sentinel_ids(3)) == [167, 166, 165]  # <extra_id_0> at the top of 160 pieces + 8
    assert t5.decode(t5.encode("the court held")) == "the court held"


def test_tokenizer_larger_than_the_embedding_is_refused(hf_dir, tmp_path):
    import shutil

    from genaisdk.backend.jax.tokenizer import TokenizerError

    shutil.copytree(hf_dir("qwen2"), tmp_path / "q")
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    config["vocab_size"] = 200
    (tmp_path / "q" / "config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerError, match="272 token ids but .* has 200 embedding rows"):
        load_model(tmp_path / "q")


@pytest.mark.parametrize(
    "name, kind",
    [
        ("llama", "missing_tensor"),
        ("llama", "wrong_shape"),
        ("llama", "unknown_model_type"),
        ("llama", "corrupt_header"),
        ("llama", "missing_config"),
        ("gpt2", "untied_head"),
    ],
)
def test_genai_export_of_a_bad_checkpoint_is_one_line_and_exit_1(broken_checkpoint, tmp_path, name, kind):
    from genaisdk.cli import cli

    folder, mentioned = broken_checkpoint(name, kind)
    result = CliRunner().invoke(cli, ["export", str(folder), "--out", str(tmp_path / "out")])
    output = result.output.strip()
    assert result.exit_code == 1, output
    assert output.startswith("error: ") and "\n" not in output and "Traceback" not in output
    assert mentioned in output


def test_genai_export_of_a_missing_folder_is_bad_input_like_generate_and_eval(tmp_path):
    """A missing run or checkpoint folder is exit 1 (bad input), as `genai generate` and
    `genai eval` say it, not a usage error."""
    from genaisdk.cli import cli

    result = CliRunner().invoke(cli, ["export", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"error: {tmp_path / 'no-such-run'}: no such file or folder"
    assert not (tmp_path / "out").exists()


def test_genai_export_writes_a_loadable_folder(hf_dir, tmp_path):
    from genaisdk.cli import cli

    result = CliRunner().invoke(cli, ["export", str(hf_dir("t5-v1_1")), "--out", str(tmp_path), "--dtype", "bf16"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "spiece.model").is_file()
    again = load_model(tmp_path)
    assert {x.dtype for x in jax.tree.leaves(again.params)} == {jnp.dtype(jnp.bfloat16)}
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_backend_builds_what_the_planner_counts(loaded, name):
    from genaisdk.estimate.params import count_params

    model = loaded(name)
    assert model.model.num_params() == count_params(model.dims, model.family).total
    assert sum(x.size for x in jax.tree.leaves(model.params)) == model.model.num_params()
