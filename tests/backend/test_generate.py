"""Generation with a KV cache: equal to recomputing every token, sampling, stops, sizes,
the command line and its errors."""

from __future__ import annotations

import json
import shutil

import attrs
import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from genaisdk.backend.jax.generate import GenerationError, Generator, Sampling, generate, sample  # noqa: E402
from genaisdk.backend.jax.runs import ModelLoadError, fresh_model  # noqa: E402
from genaisdk.backend.jax.tokenizer import ByteTokenizer  # noqa: E402
from genaisdk.cli import cli  # noqa: E402
from genaisdk.estimate.inference import model_kv_cache_bytes  # noqa: E402

PROMPTS = ["T", "The lic", "A contributor may"]  # 1, 7 and 17 tokens: one batch, three lengths


@pytest.fixture(scope="module")
def decoder(trained_model):
    return Generator(trained_model)


@pytest.fixture(scope="module")
def encoder_decoder(tiny_dims):
    """A fresh T5-style encoder-decoder (relative positions), its weights scaled up so that
    the logits have clear winners."""
    loaded = fresh_model(tiny_dims["encoder-decoder"], family="encoder_decoder", seed=3)
    scaled = jax.tree.map(lambda x: np.asarray(x) * (8 if x.ndim > 1 else 1), loaded.params)
    return Generator(attrs.evolve(loaded, params=scaled))


NEW = 12  # every decoder test generates this many tokens for 3 prompts: one compiled shape


def test_cached_greedy_decoding_equals_recomputing_every_token_decoder(decoder):
    prompts = decoder.encode_prompts(PROMPTS)
    cached = decoder.run(prompts, max_new_tokens=NEW, stop=False)
    recomputed = decoder.run_by_recompute(prompts, max_new_tokens=NEW, stop=False)
    np.testing.assert_array_equal(cached["tokens"], recomputed)
    assert cached["steps"] == NEW
    # Next to other prompts, each gives what it gives among copies of itself (its own
    # positions; no padding or other row leaks in).
    alone = decoder.run(decoder.encode_prompts([PROMPTS[1]] * 3), max_new_tokens=NEW, stop=False)
    np.testing.assert_array_equal(alone["tokens"][0], cached["tokens"][1])


def test_cached_greedy_decoding_equals_recomputing_every_token_encoder_decoder(encoder_decoder):
    prompts = encoder_decoder.encode_prompts(PROMPTS)
    cached = encoder_decoder.run(prompts, max_new_tokens=10, stop=False)
    recomputed = encoder_decoder.run_by_recompute(prompts, max_new_tokens=10, stop=False)
    np.testing.assert_array_equal(cached["tokens"], recomputed)
    assert len(set(cached["tokens"][0].tolist())) > 1  # not a constant stream
    # The encoder reads the prompt and EOS; the cache holds start + 10 decoder positions and
    # the cross-attention keys and values over the 18 encoder slots of the padded batch.
    dims = encoder_decoder.model.dims
    assert prompts[1].tolist()[-1] == ByteTokenizer().eos_id
    assert cached["kv_bytes"] == model_kv_cache_bytes(
        dims, family="encoder_decoder", context=11, input_context=cached["prompt_len"], batch=3, bytes_per_value=4
    )


def test_seeded_sampling_is_reproducible(decoder):
    prompts = decoder.encode_prompts(PROMPTS)
    sampling = Sampling(temperature=1.5, top_k=40, top_p=0.95)
    first = decoder.run(prompts, max_new_tokens=NEW, sampling=sampling, seed=7, stop=False)["tokens"]
    again = decoder.run(prompts, max_new_tokens=NEW, sampling=sampling, seed=7, stop=False)["tokens"]
    other = decoder.run(prompts, max_new_tokens=NEW, sampling=sampling, seed=8, stop=False)["tokens"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # top_k = 1 is greedy whatever the temperature (the same program, other knob values).
    greedy = decoder.run(prompts, max_new_tokens=NEW, stop=False)["tokens"]
    top1 = decoder.run(prompts, max_new_tokens=NEW, sampling=Sampling(temperature=1.5, top_k=1), seed=7, stop=False)
    np.testing.assert_array_equal(top1["tokens"], greedy)


def test_a_stop_id_ends_its_row_and_the_loop(decoder):
    prompts = decoder.encode_prompts([PROMPTS[0]] * 3)
    free = decoder.run(prompts, max_new_tokens=NEW, stop=False)["tokens"][0]
    stopper = int(free[3])
    first_seen = free.tolist().index(stopper)
    original = decoder.stop_ids
    decoder.stop_ids = (stopper,)
    try:
        run = decoder.run(prompts, max_new_tokens=NEW)
        out = decoder.generations(["T"] * 3, prompts, run["tokens"])[0]
    finally:
        decoder.stop_ids = original
    assert run["steps"] == first_seen + 1  # the loop ended at the stop id, not at NEW
    assert out.ids == tuple(free[: first_seen + 1].tolist()) and out.stop_reason == "stop"
    assert (run["tokens"][:, first_seen + 1 :] == 0).all()


def test_sampling_rules():
    logits = jnp.asarray([[2.0, 1.0, 0.5, -1.0]])
    keys = jax.random.split(jax.random.key(0), 4000)
    draw = jax.jit(jax.vmap(lambda k, knobs: sample(logits, k, greedy=False, knobs=knobs)[0], in_axes=(0, None)))
    drawn = lambda **kw: np.asarray(draw(keys, Sampling(temperature=1.0, **kw).knobs()))  # noqa: E731
    assert int(sample(logits, keys[0], Sampling())[0]) == 0
    assert set(drawn(top_k=1).tolist()) == {0}
    assert set(drawn(top_k=2).tolist()) == {0, 1}
    assert set(drawn(top_p=0.01).tolist()) == {0}
    # Nucleus keeps the token that crosses top_p: p = [0.61, 0.22, 0.14, 0.03]; 0.7 keeps two.
    assert set(drawn(top_p=0.7).tolist()) == {0, 1}
    counts = np.bincount(drawn(), minlength=4) / 4000
    np.testing.assert_allclose(counts, np.asarray(jax.nn.softmax(logits[0])), atol=0.03)
    for bad in ({"temperature": -1}, {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(GenerationError):
            Sampling(**bad)


def test_kv_cache_is_stacked_over_layers_and_measured_as_planned(decoder, trained_model):
    dims = trained_model.dims
    cache = jax.eval_shape(lambda: decoder.model.init_cache(3, 40))
    assert cache["k"].shape == (dims.layers, 3, 40, dims.n_kv_heads, dims.d_head)
    run = decoder.run(decoder.encode_prompts(PROMPTS), max_new_tokens=NEW, stop=False)
    # Prompts padded to 32 tokens, 12 new: 44 slots per row; fp32 keys and values.
    assert run["cache_len"] == 32 + NEW
    planned = model_kv_cache_bytes(dims, family="decoder", context=32 + NEW, batch=3, bytes_per_value=4)
    assert run["kv_bytes"] == planned == 3 * (32 + NEW) * decoder.kv_bytes_per_token()
    assert decoder.kv_bytes_per_token() == 2 * dims.layers * dims.n_kv_heads * dims.d_head * 4


def test_python_api_and_bad_settings(trained_model):
    out = generate(trained_model, "The licensee", max_new_tokens=6)  # the CLI tests' shapes
    assert len(out.ids) <= 6 and out.prompt_ids == tuple(ByteTokenizer().encode("The licensee").tolist())
    assert isinstance(out.text, str) and out.to_json().keys() == {"prompt_ids", "ids", "text"}
    outs = generate(trained_model, prompts=PROMPTS, max_new_tokens=NEW)
    assert [o.prompt for o in outs] == PROMPTS
    with pytest.raises(GenerationError, match="empty"):
        generate(trained_model, "", max_new_tokens=4)
    with pytest.raises(GenerationError, match="max_new_tokens"):
        generate(trained_model, "x", max_new_tokens=0)
    with pytest.raises(ModelLoadError, match="tokenizer does not match"):
        generate(trained_model, "x", tokenizer=ByteTokenizer(vocab_size=512))
    with pytest.raises(GenerationError, match="unknown precision"):
        generate(trained_model, "x", precision="int3")


# ----------------------------------------------------------------------------- command line


def _generate(*args):
    return CliRunner().invoke(cli, ["generate", *map(str, args)], catch_exceptions=False)


def test_cli_json_output_matches_the_python_api(trained_run, trained_model):
    result = _generate(trained_run.out_dir, "--prompt", "The author", "--max-new-tokens", 6, "--json")  # one compile

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    expected = generate(trained_model, "The author", max_new_tokens=6)
    assert printed == expected.to_json()


def test_cli_bench_reports_speeds_and_measured_bytes(trained_run):
    # The shapes of the JSON test's run (1 prompt padded to 16 tokens, 6 new): compiled once.
    result = _generate(trained_run.out_dir, "--bench", "--json", "--prompt-tokens", 10, "--max-new-tokens", 6)
    assert result.exit_code == 0, result.output
    bench = json.loads(result.output)
    for key in ("ttft_s", "prompt_tokens_per_s", "decode_tokens_per_s", "bandwidth", "peak_bandwidth", "bandwidth_fraction"):
        assert bench[key] > 0
    assert bench["peak_source"] == "memcpy"
    assert bench["weight_bytes"] == bench["planned_weight_bytes"]  # fp32 weights: 4 bytes each
    assert bench["kv_bytes"] == bench["planned_kv_bytes"] == bench["cache_len"] * bench["kv_bytes_per_token"]
    assert (bench["prompt_tokens"], bench["cache_len"]) == (10, 16 + 6)


def test_cli_escapes_control_characters_the_model_writes(trained_run, monkeypatch):
    # A byte-level model can emit ESC [ 2 J (clear screen): printed escaped, kept in --json.
    escape = [3 + b for b in b"ok\x1b[2J"]
    fake = {"tokens": np.asarray([escape]), "kv_bytes": 0, "cache_len": 8}
    monkeypatch.setattr(Generator, "run", lambda self, prompts, **kw: fake)
    plain = _generate(trained_run.out_dir, "--prompt", "x", "-q")
    assert plain.exit_code == 0 and plain.output == "ok\\x1b[2J\n"
    printed = json.loads(_generate(trained_run.out_dir, "--prompt", "x", "--json").output)
    assert printed["text"] == "ok\x1b[2J"


@pytest.mark.parametrize(
    "case, code, message",
    [
        ("missing", 1, "no such run directory or checkpoint folder"),
        ("no-checkpoint", 1, "holds no checkpoint"),
        ("not-a-run", 1, "neither a Hugging Face checkpoint"),
        ("empty-prompt", 1, "the prompt is empty"),
        ("zero-tokens", 2, "--max-new-tokens"),
        ("no-prompt", 2, "give a prompt"),
        ("vocab-mismatch", 1, "other shapes than run.json describes"),
    ],
)
def test_cli_bad_input_is_a_clear_error(trained_run, tmp_path, case, code, message):
    run = trained_run.out_dir
    args = ["--prompt", "x"]
    if case == "missing":
        run = tmp_path / "nowhere"
    elif case == "no-checkpoint":
        run = tmp_path / "fresh"
        run.mkdir()
        shutil.copy(trained_run.out_dir / "run.json", run / "run.json")
    elif case == "not-a-run":
        run = tmp_path
    elif case == "empty-prompt":
        args = ["--prompt", ""]
    elif case == "zero-tokens":
        args += ["--max-new-tokens", "0"]
    elif case == "no-prompt":
        args = []
    elif case == "vocab-mismatch":
        run = tmp_path / "edited"
        shutil.copytree(trained_run.out_dir, run)
        record = json.loads((run / "run.json").read_text())
        record["config"]["dims"]["vocab"] = 512
        (run / "run.json").write_text(json.dumps(record))
    result = _generate(run, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["gpt2", "t5"])
def test_hugging_face_checkpoints_generate_with_their_tokenizers(name):
    """GPT-2 (learned positions, BPE) and T5 (relative positions, unscaled attention,
    SentencePiece adding EOS itself): cached decoding equals recomputation."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "hf" / name
    generator = Generator(str(folder))
    assert generator.loaded.kind == "hf" and generator.stop_ids
    prompts = generator.encode_prompts(["Hello world", "The licence"])
    if name == "t5":  # the tokenizer's own EOS, once
        assert all(p[-1] == generator.tokenizer.eos_id and p[-2] != generator.tokenizer.eos_id for p in prompts)
    cached = generator.run(prompts, max_new_tokens=6, stop=False)["tokens"]
    np.testing.assert_array_equal(cached, generator.run_by_recompute(prompts, max_new_tokens=6, stop=False))


# ----------------------------------------------------------------------------- plan vs measured

SERVE_SPEC = """genai 1
project "tiny-serve" {{
  task = text-generation
  model {{
    family    = decoder
    layers    = 2
    d_model   = 32
    heads     = 4
    kv_heads  = 2
    d_ff      = 64
    vocab     = 384
    context   = 64 tokens
    positions = rotary
  }}
  data {{
    source = synthetic
    tokens = 1M tokens
  }}
  adapt {{
    method = prompt
  }}
  budget {{
    hardware = 1 x a100-80gb
  }}
  serve {{
    precision    = {precision}
    kv_precision = {kv}
    context      = {context} tokens
    batch        = {batch}
  }}
}}
"""
"""The trained model's dimensions (`TRAINED_SPEC`), served as `bench` runs it."""


def test_bench_measures_the_memory_the_plans_serve_section_predicts(trained_model):
    """`genai generate --bench` measures the bytes of the served weights and of the KV
    cache; the plan of the same model, serving precision, context and batch predicts them
    within 1% (here to the byte): bf16, int8 with its per-channel scales, NF4 with its
    block constants; the cache in the plan's `serve.kv_precision`, here fp8 (`--kv-precision
    fp8`; the default, the compute dtype, is measured against the same formula by the
    --bench command-line test). One configuration is timed (a compile); the others'
    weights are the same arrays `bench` measures (`Generator.weight_bytes`)."""
    import genaisdk
    from genaisdk.backend.jax.generate import bench

    def plan(precision, context=64, batch=1, kv="bf16"):
        text = SERVE_SPEC.format(precision=precision, context=context, batch=batch, kv=kv)
        return genaisdk.plan(genaisdk.loads(text, filename="serve.genai")).inference.memory

    result = bench(
        Generator(trained_model, "int8", kv_precision="fp8"), prompt_tokens=10, new_tokens=6, batch=2, repeats=1, peak=(1.0, "given")
    )
    planned = plan("int8", result.cache_len, 2, kv="fp8")
    assert result.kv_precision == "fp8" and result.kv_bytes == result.cache_len * 2 * result.kv_bytes_per_token
    assert result.weight_bytes / planned.weights == pytest.approx(1.0, abs=0.01)
    assert result.kv_bytes / planned.kv_cache == pytest.approx(1.0, abs=0.01)
    assert (result.weight_bytes, result.kv_bytes) == (planned.weights, planned.kv_cache)
    assert (result.planned_weight_bytes, result.planned_kv_bytes) == (planned.weights, planned.kv_cache)
    assert planned.weight_constants > 0
    for precision in ("bf16", "int4"):
        generator = Generator(trained_model, precision)
        planned = plan(precision)
        assert generator.weight_bytes / planned.weights == pytest.approx(1.0, abs=0.01), precision
        assert generator.weight_bytes == planned.weights
        assert (planned.weight_constants > 0) == (precision == "int4")


def test_a_kv_cache_type_the_backend_cannot_hold_is_refused(trained_run, trained_model):
    with pytest.raises(GenerationError, match="int8 cache needs per-head scales"):
        Generator(trained_model, "int8", kv_precision="int8")
    result = _generate(trained_run.out_dir, "--prompt", "x", "--kv-precision", "int8")
    assert result.exit_code == 2 and "--kv-precision" in result.output


# ----------------------------------------------------------------------------- the chat template


def test_chat_prompts_are_rendered_and_tokenized_as_training_rendered_the_user_turn(tmp_path):
    """`--chat`: a prompt is a user turn of the training template, tokenized as `genai
    train` tokenized the same turn of a chat example (BOS policy, piece by piece), up to the
    point where training learned the response; the answer ends at EOS, the token training
    put after every response and a stop id here. A conversation ({"messages"}) likewise."""
    from pathlib import Path

    from genaisdk.backend.jax.data import chat_examples
    from genaisdk.backend.jax.sources import chat_prompt, chat_segments, record_document

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "hf" / "llama"
    generator = Generator(str(folder))
    tokenizer = generator.tokenizer
    question, system = "How do I reset my password?", ("system", "Answer briefly.")
    conversation = [system, ("user", question)]
    records = [
        {"prompt": question, "response": "Open Settings."},
        {"messages": [{"role": r, "content": c} for r, c in conversation] + [{"role": "assistant", "content": "Open Settings."}]},
    ]
    rows, mask, _ = chat_examples([record_document("x:1", r) for r in records], tokenizer, 128)
    trained = [row[: int(np.argmax(learn))] for row, learn in zip(rows, mask)]  # up to the first response token
    assert chat_prompt([("user", question)]) == (chat_segments([("user", question), ("assistant", "r")])[0],)
    assert chat_prompt([("user", question)])[0][0] == f"User: {question}\nAssistant:"
    rendered = generator.chat_prompts([question, conversation])
    for ids, expected in zip(rendered, trained):
        np.testing.assert_array_equal(ids, expected)
    assert tokenizer.eos_id in generator.stop_ids and rows[0][int(mask[0].nonzero()[0][-1])] == tokenizer.eos_id

    # The command line: --chat with --prompt and with a .jsonl --batch-file.
    batch = tmp_path / "asks.jsonl"
    batch.write_text(json.dumps({"prompt": question}) + "\n" + json.dumps({"messages": records[1]["messages"][:2]}) + "\n")
    result = _generate(folder, "--chat", "--batch-file", batch, "--json", "--max-new-tokens", "2")
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.output.splitlines()]
    assert [p["prompt_ids"] for p in printed] == [e.tolist() for e in trained]
    single = _generate(folder, "--chat", "--prompt", question, "--json", "--max-new-tokens", "2")
    assert json.loads(single.output)["prompt_ids"] == trained[0].tolist()
    assert json.loads(single.output)["ids"] == printed[0]["ids"]  # greedy: the same answer

    t5 = _generate(folder.parent / "t5", "--chat", "--prompt", question)
    assert t5.exit_code == 1 and "the chat template is for decoders" in t5.output and "Traceback" not in t5.output
    empty = _generate(folder, "--chat", "--prompt", " ")
    assert empty.exit_code == 1 and "the prompt is empty" in empty.output
