"""Instruction and chat JSON lines: each example a row, the loss on its response tokens only,
in training and in held-out evaluation; bad lines are one clear error naming file:line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from genaisdk.backend.jax.data import build_pipeline, chat_examples
from genaisdk.backend.jax.objectives import ObjectiveError, causal_lm, masked_lm
from genaisdk.backend.jax.sources import DataError, read_sources
from genaisdk.backend.jax.tokenizer import EOS_ID, PAD_ID, ByteTokenizer

SUPPORT = Path(__file__).resolve().parents[2] / "specs" / "data" / "support.jsonl"
BYTES = ByteTokenizer()


def _write(folder: Path, *records) -> Path:
    path = folder / "chat.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _examples(path: Path, tokenizer, seq_len: int):
    documents, _ = read_sources([path])
    return chat_examples(documents, tokenizer, seq_len)


def test_the_mask_is_exactly_the_response_and_its_eos_with_the_byte_tokenizer(tmp_path):
    path = _write(tmp_path, {"prompt": "Hi?", "response": "Yes."})
    ids, mask, cut = _examples(path, BYTES, 32)
    prompt = BYTES.encode("User: Hi?\nAssistant:")
    response = BYTES.encode(" Yes.", eos=True)
    n, m = len(prompt), len(response)
    assert cut == 0 and ids.shape == mask.shape == (1, 32)
    np.testing.assert_array_equal(ids[0, : n + m], np.concatenate([prompt, response]))
    assert ids[0, n + m - 1] == EOS_ID and (ids[0, n + m :] == PAD_ID).all()
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), np.arange(n, n + m))
    # The causal batch learns exactly those tokens: weight i is on target i + 1.
    batch = causal_lm(vocab_size=BYTES.vocab_size).make_batch(ids, loss_mask=mask)
    np.testing.assert_array_equal(np.flatnonzero(batch["weights"][0]), np.arange(n - 1, n + m - 1))
    assert BYTES.decode(batch["targets"][0][batch["weights"][0] == 1]) == " Yes."


def test_messages_learn_every_assistant_turn_and_nothing_else(tmp_path):
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "A?"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "B?"},
        {"role": "assistant", "content": "Two."},
    ]
    ids, mask, _ = _examples(_write(tmp_path, {"messages": turns}), BYTES, 96)
    learned = ids[0][mask[0] == 1]
    assert BYTES.decode(learned) == " One. Two."
    assert (learned == EOS_ID).sum() == 2  # an EOS after each reply
    assert BYTES.decode(ids[0][mask[0] == 0]) == "System: Be brief.\nUser: A?\nAssistant:User: B?\nAssistant:"


def test_the_mask_is_exact_with_a_checkpoint_tokenizer(tmp_path, hf_dir):
    pytest.importorskip("tokenizers")
    from genaisdk.backend.jax.tokenizer import load_tokenizer

    tok = load_tokenizer(hf_dir("llama"))
    path = _write(tmp_path, {"prompt": "Where is my order?", "response": "It ships today."})
    ids, mask, _ = _examples(path, tok, 128)
    prompt = tok.encode("User: Where is my order?\nAssistant:", bos=None, eos=False)
    response = tok.encode(" It ships today.", bos=False, eos=False)
    assert prompt[0] == tok.bos_id
    n, m = len(prompt), len(response) + 1
    np.testing.assert_array_equal(ids[0, :n], prompt)
    np.testing.assert_array_equal(ids[0, n : n + m - 1], response)
    assert ids[0, n + m - 1] == tok.eos_id
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), np.arange(n, n + m))


def test_text_and_chat_sources_mix_and_only_chat_rows_are_masked(tmp_path):
    _write(tmp_path, *({"prompt": f"Q{i}?", "response": f"Answer {i}."} for i in range(6)))
    (tmp_path / "notes.txt").write_text("plain text for continued pretraining. " * 8)
    pipe = build_pipeline(["chat.jsonl", "notes.txt"], seq_len=32, rows_per_step=4, vocab_size=300, base_dir=tmp_path, held_out=0.2)
    assert "6 chat example(s)" in pipe.description and pipe.has_loss_mask
    rows = np.concatenate([pipe._train, pipe._held])
    masks = np.concatenate([pipe._train_mask, pipe._held_mask])
    text = masks.all(axis=1)
    assert text.sum() == (8 * 39 + 1) // 32 and (~text).sum() == 6  # packed text rows learn every token
    assert pipe.loss_mask(0).shape == pipe.batch(0).shape and pipe.held_out_loss_mask(0).shape == (4, 32)
    assert rows.shape == masks.shape
    # Plain text alone keeps today's pipeline: no mask at all.
    plain = build_pipeline(["notes.txt"], seq_len=32, rows_per_step=4, vocab_size=300, base_dir=tmp_path)
    assert not plain.has_loss_mask and plain.loss_mask(0) is None and plain.held_out_loss_mask(0) is None


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"chat.jsonl:2: not valid JSON: Expecting property name enclosed in double quotes: line 2 column 2$"),
        ('{"prompt": "Q?"}', r"chat.jsonl:2: .*lacks 'response'"),
        ('{"prompt": "Q?", "response": "  "}', r"chat.jsonl:2: the \"response\" is empty"),
        ('{"messages": [{"role": "user", "content": "Q?"}]}', r"chat.jsonl:2: .*no non-empty \"assistant\""),
        ('{"messages": [{"role": "user"}]}', r"chat.jsonl:2: message 0 needs"),
        ('{"body": "x"}', r"chat.jsonl:2: a JSON-lines record needs"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, line, message):
    _write(tmp_path, {"prompt": "Q?", "response": "A."}, line)
    with pytest.raises(DataError, match=message):
        build_pipeline(["chat.jsonl"], seq_len=16, rows_per_step=1, vocab_size=300, base_dir=tmp_path)


def test_a_prompt_that_fills_the_context_is_an_error_and_long_examples_are_cut(tmp_path):
    _write(tmp_path, {"prompt": "x" * 40, "response": "y"})
    with pytest.raises(DataError, match=r"chat.jsonl:1: the prompt fills the whole context of 16 tokens"):
        build_pipeline(["chat.jsonl"], seq_len=16, rows_per_step=1, vocab_size=300, base_dir=tmp_path)
    _, mask, cut = _examples(_write(tmp_path, {"prompt": "x", "response": "y" * 40}), BYTES, 32)
    assert cut == 1 and mask[0, -1] == 1


def test_only_causal_lm_takes_a_loss_mask():
    tokens = np.full((1, 8), 100)
    with pytest.raises(ObjectiveError, match="causal language model"):
        masked_lm(vocab_size=300).make_batch(tokens, 0, loss_mask=np.ones_like(tokens))


def test_the_loss_ignores_prompt_targets_and_follows_response_targets(tmp_path, hf_dir):
    pytest.importorskip("safetensors")
    import jax

    from genaisdk.backend.jax.load import load_model
    from genaisdk.backend.jax.precision import Policy

    loaded = load_model(hf_dir("llama"), dtype="float32")
    tok = loaded.tokenizer
    ids, mask, _ = _examples(_write(tmp_path, {"prompt": "How do I pay?", "response": "By card."}), tok, 48)
    objective = causal_lm(vocab_size=loaded.dims.vocab, ids=None)
    batch = objective.make_batch(ids, loss_mask=mask)
    loss = jax.jit(lambda b: objective.loss(loaded.model.apply, loaded.params, b, Policy(name="fp32"))[0])

    def with_targets(positions):
        targets = batch["targets"].copy()
        targets[0, positions] = (targets[0, positions] + 7) % loaded.dims.vocab
        return float(loss({**batch, "targets": targets}))

    weights = batch["weights"][0]
    prompt, response = np.flatnonzero(weights == 0), np.flatnonzero(weights == 1)
    base = float(loss(batch))
    assert with_targets(prompt) == base
    assert abs(with_targets(response[:2]) - base) > 1e-4


@pytest.mark.slow
def test_a_lora_run_on_chat_lines_lowers_its_loss(tmp_path, hf_dir):
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    import genaisdk
    from genaisdk.cli import cli

    shutil.copy(SUPPORT, tmp_path / "support.jsonl")
    spec = tmp_path / "chat.genai"
    spec.write_text(
        "genai 1\n"
        'project "chat" {\n'
        f'  model {{\n    from    = "{hf_dir("llama")}"\n    context = 128 tokens\n  }}\n'
        '  data {\n    source   = "support.jsonl"\n    held_out = 10%\n  }\n'
        "  adapt {\n    method = lora\n    rank = 4\n    targets = [q, v]\n  }\n"
        "  train {\n    precision = fp32\n    batch = 512 tokens\n    learning_rate = 3e-2\n    warmup = 0\n"
        "    steps = 6\n    eval_every = 5\n  }\n"
        "}\n"
    )
    result = genaisdk.train(str(spec), out=tmp_path / "run", quiet=True, devices=1)
    assert result.ok
    lines = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [line["loss"] for line in lines if line.get("kind") == "train"]
    evals = [line for line in lines if line.get("kind") == "eval"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    # The held-out loss counts response tokens only: far fewer than the rows' positions.
    assert evals and 0 < evals[-1]["tokens"] < 0.9 * 4 * 128
    # A bad line stops `genai train` with one line naming it, exit 1.
    with (tmp_path / "support.jsonl").open("a") as handle:
        handle.write('{"prompt": "Q?", "response": ""}\n')
    out = CliRunner().invoke(cli, ["train", str(spec), "--out", str(tmp_path / "bad")])
    assert out.exit_code == 1 and "support.jsonl:31:" in out.output and "Traceback" not in out.output
