"""config.json and safetensors headers into Dimensions, without JAX: exact counts, clear errors."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("safetensors")

from genaisdk.checkpoints import CheckpointFormatError  # noqa: E402
from genaisdk.checkpoints.hf_config import read_checkpoint, to_hf_config  # noqa: E402
from genaisdk.checkpoints.hf_map import legacy_names, param_map  # noqa: E402
from genaisdk.checkpoints.safetensors_files import read_header  # noqa: E402
from genaisdk.estimate.params import count_params  # noqa: E402

HF_FAMILIES = ("gpt2", "llama", "qwen2", "bert", "roberta", "t5-v1_1", "t5")

# Parameters of each fixture as transformers counted them when it made them
# (`sum(p.numel() for p in model.parameters())`, printed by make_hf_fixtures.py), less the
# heads genaisdk does not model (BERT's next-sentence head: 2 x 32 + 2).
TRANSFORMERS_COUNTS = {
    "gpt2": 38272,
    "llama": 42144,
    "qwen2": 26368,
    "bert": 30154 - 66,
    "roberta": 31440,
    "t5-v1_1": 54528,
    "t5": 42880,
}


@pytest.mark.parametrize("name", HF_FAMILIES)
def test_count_params_is_the_checkpoints_count(hf_dir, name):
    model = read_checkpoint(hf_dir(name))
    tensors = legacy_names(model.tensors)
    pmap = param_map(model.model_type, model.dims, tensors)
    skipped = pmap.check(tensors, where=name, tied=model.dims.tied_embeddings)
    stored = sum(t.size for n, t in tensors.items() if n not in skipped and n not in pmap.aliases)
    counted = count_params(model.dims, model.family).total
    assert counted == stored == TRANSFORMERS_COUNTS[name]


def test_family_fields(hf_dir):
    llama = read_checkpoint(hf_dir("llama")).dims
    assert (llama.heads, llama.n_kv_heads, llama.d_head, llama.d_model) == (4, 2, 16, 32)
    assert llama.rotary_base == 500000.0 and llama.rotary_scaling.kind == "llama3"
    assert llama.rotary_scaling.original_context == 64 and not llama.tied_embeddings and llama.eps == 1e-5
    qwen = read_checkpoint(hf_dir("qwen2")).dims
    assert qwen.has_qkv_biases and not qwen.biases and qwen.rotary_scaling.kind == "linear"
    bert = read_checkpoint(hf_dir("bert")).dims
    assert bert.pooler and bert.mlm_head and bert.token_types == 2 and bert.eps == 1e-12
    assert bert.ffn_activation == "gelu" and not bert.final_norm and bert.embedding_norm
    roberta = read_checkpoint(hf_dir("roberta")).dims
    assert (roberta.position_offset, roberta.position_table, roberta.context) == (2, 130, 128)
    assert not roberta.pooler
    t5 = read_checkpoint(hf_dir("t5-v1_1"))
    assert t5.family == "encoder_decoder" and t5.architecture == "encoder-decoder"
    assert t5.dims.ffn == "gated" and t5.dims.ffn_activation == "gelu_tanh" and not t5.dims.tied_embeddings
    assert (t5.dims.relative_buckets, t5.dims.relative_max_distance, t5.dims.score_scale) == (16, 32, 1.0)
    assert t5.dims.output_scale == 1.0 and t5.ids.decoder_start == 0
    v10 = read_checkpoint(hf_dir("t5")).dims
    assert v10.tied_embeddings and v10.output_scale == pytest.approx(32**-0.5) and v10.ffn == "relu"
    gpt2 = read_checkpoint(hf_dir("gpt2"))
    assert gpt2.dims.ffn_activation == "gelu_tanh" and gpt2.ids.eos == (0,)


@pytest.mark.parametrize("name", HF_FAMILIES)
def test_to_hf_config_reads_back_the_same_dimensions(hf_dir, tmp_path, name):
    model = read_checkpoint(hf_dir(name))
    for base in (model.config, None):
        folder = tmp_path / f"{name}-{base is None}"
        folder.mkdir()
        config = to_hf_config(model.dims, model.family, ids=model.ids, base=base)
        (folder / "config.json").write_text(json.dumps(config))
        again = read_checkpoint(folder, weights=False).dims
        if base is None and name == "bert":
            # Without the weights the heads follow `architectures` (BertForPreTraining: both).
            assert (again.pooler, again.mlm_head) == (True, True)
        assert again == model.dims


def test_config_only_reading_counts_from_architectures(hf_dir, tmp_path):
    (tmp_path / "config.json").write_text((hf_dir("roberta") / "config.json").read_text())
    dims = read_checkpoint(tmp_path, weights=False).dims
    assert dims.mlm_head and not dims.pooler


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("missing_config", "config.json: missing"),
        ("unknown_model_type", "unknown model_type 'falcon-xyz'"),
        ("corrupt_header", "not a valid safetensors file"),
        ("truncated", "not a valid safetensors file"),
    ],
)
def test_unreadable_checkpoints_are_one_line_errors(broken_checkpoint, kind, needle):
    folder, name = broken_checkpoint("llama", kind)
    with pytest.raises(CheckpointFormatError) as info:
        read_checkpoint(folder)
    message = str(info.value)
    assert needle in message and name in message and "\n" not in message


@pytest.mark.parametrize(
    "name, kind, needle",
    [
        ("llama", "missing_tensor", "is missing"),
        ("gpt2", "missing_tensor", "is missing"),
        ("llama", "wrong_shape", "has shape [31, 32], config.json implies [32, 32]"),
        ("llama", "extra_tensor", "unexpected tensor"),
        ("llama", "missing_head", "tie_word_embeddings = false"),
    ],
)
def test_checkpoints_that_do_not_match_their_config(broken_checkpoint, name, kind, needle):
    folder, tensor = broken_checkpoint(name, kind)
    model = read_checkpoint(folder)
    pmap = param_map(model.model_type, model.dims, model.tensors)
    with pytest.raises(CheckpointFormatError) as info:
        pmap.check(model.tensors, where=str(folder), tied=model.dims.tied_embeddings)
    message = str(info.value)
    assert needle in message and tensor in message and str(folder) in message and "\n" not in message


def test_unsupported_settings_name_the_key(hf_dir, tmp_path):
    config = json.loads((hf_dir("llama") / "config.json").read_text())
    config["rope_parameters"]["rope_type"] = "yarn"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match=r"rope_parameters = .*rotary scaling 'yarn'"):
        read_checkpoint(tmp_path, weights=False)


def test_legacy_rope_keys_and_index(hf_dir, tmp_path):
    config = json.loads((hf_dir("llama") / "config.json").read_text())
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope.pop("rope_theta")
    config["rope_scaling"] = rope
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert read_checkpoint(tmp_path, weights=False).dims == read_checkpoint(hf_dir("llama")).dims


def test_header_reader_matches_the_safetensors_library(hf_dir):
    from safetensors import safe_open

    path = hf_dir("qwen2") / "model.safetensors"
    tensors, metadata = read_header(path)
    assert metadata == {"format": "pt"}
    with safe_open(str(path), framework="np") as handle:
        assert sorted(handle.keys()) == sorted(tensors)
        for name in handle.keys():
            assert list(handle.get_slice(name).get_shape()) == list(tensors[name].shape)
            assert handle.get_slice(name).get_dtype() == tensors[name].dtype
