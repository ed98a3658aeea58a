"""`genai eval`: the training loop's held-out loss, data sources, task metrics, eval.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

from click.testing import CliRunner  # noqa: E402

from genaisdk.backend.jax.evaluate import EvaluationError, evaluate  # noqa: E402
from genaisdk.backend.jax.metrics import read_metrics  # noqa: E402
from genaisdk.cli import cli  # noqa: E402
from genaisdk.evaluation import metrics as M  # noqa: E402


def _eval(*args):
    return CliRunner().invoke(cli, ["eval", *map(str, args)], catch_exceptions=False)


def test_eval_loss_equals_the_training_loops_held_out_loss(trained_run):
    result = _eval(trained_run.out_dir, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["loss"] == pytest.approx(trained_run.eval_loss, rel=1e-6)
    assert printed["perplexity"] == pytest.approx(math.exp(trained_run.eval_loss), rel=1e-6)
    # The loop logged the same figures, bits per byte included.
    logged = [e for e in read_metrics(trained_run.out_dir / "metrics.jsonl") if e["kind"] == "eval"][-1]
    assert printed["bits_per_byte"] == pytest.approx(logged["bits_per_byte"], rel=1e-6)
    assert printed["tokens"] == logged["tokens"]
    assert printed["sources"][0]["source"] == "held-out split" and printed["step"] == 60
    # No task metric for text-generation; eval.json holds what was printed, in the layout
    # genai report and genai card read: overall and per-source figures, not the bytes.
    assert "tasks" not in printed and printed["serving"]["memory"]["weight_bytes"] > 0
    assert json.loads((trained_run.out_dir / "eval.json").read_text())["loss"] == printed["loss"]
    from genaisdk.render.inputs import read_eval

    read = read_eval(trained_run.out_dir / "eval.json")
    assert read.overall("loss") == pytest.approx(printed["loss"]) and read.counts["step"] == 60
    assert {(r.group, r.subject) for r in read.rows} == {("overall", ""), ("source", "held-out split")}


def test_each_data_source_is_measured_on_its_own(trained_model, licence, tmp_path):
    import jax

    first, second = tmp_path / "a.txt", tmp_path / "b.jsonl"
    first.write_text("\n\n".join(licence(6, seed=11)))
    second.write_text("\n".join(json.dumps({"text": t}) for t in licence(4, seed=12)))
    result = evaluate(trained_model, [str(first), str(second)], baseline=False)
    a, b = result.sources
    assert (a["source"], b["source"]) == (str(first), str(second))
    tokens = a["tokens"] + b["tokens"]
    assert result.loss == pytest.approx((a["loss"] * a["tokens"] + b["loss"] * b["tokens"]) / tokens)
    assert result.bits_per_byte == pytest.approx(result.loss * tokens / (math.log(2) * result.overall["bytes"]))

    # The first source by hand: the file (one document) + EOS packed into 64-token rows (the
    # tail padded), next-token loss over every non-PAD target, in one batch.
    loaded = trained_model
    stream = loaded.tokenizer.encode_documents([first.read_text()])
    rows = np.zeros((-(-len(stream) // 64), 64), np.int32)
    rows.reshape(-1)[: len(stream)] = stream
    batch = loaded.objective.make_batch(rows)
    total, count = jax.jit(lambda p, b: loaded.objective.loss_sum(loaded.model.apply, p, b, _policy()))(loaded.params, batch)
    assert a["tokens"] == int(count) == len(stream) - len(rows)  # a row's last token predicts nothing
    assert a["loss"] == pytest.approx(float(total) / float(count), rel=1e-5)


def _policy():
    from genaisdk.backend.jax.precision import Policy

    return Policy(name="fp32")


def test_task_metrics_from_task_records(trained_model, licence, tmp_path):
    records = tmp_path / "summaries.jsonl"
    texts = licence(4, seed=21)
    records.write_text("\n".join(json.dumps({"input": t, "target": t.split(".")[0] + "."}) for t in texts))
    result = evaluate(trained_model, [str(records)], task="summarization", baseline=False, max_new_tokens=12)
    task = result.task
    assert (task["name"], task["metric"], task["examples"]) == ("summarization", "rouge", 4)
    assert result.to_json()["tasks"]["summarization"]["rouge1"] == task["rouge1"]
    targets = [t.split(".")[0] + "." for t in texts]
    assert {k: task[k] for k in M.ROUGE_TYPES} == {
        k: v for k, v in M.rouge(task["predictions"], targets).items() if k in M.ROUGE_TYPES
    }
    assert all(0.0 <= task[k] <= 1.0 for k in M.ROUGE_TYPES)

    labelled = tmp_path / "labels.jsonl"
    labelled.write_text(
        "\n".join(json.dumps({"input": t, "label": ("keep", "copy")[i % 2]}) for i, t in enumerate(texts))
    )
    result = evaluate(trained_model, [str(labelled)], task="sentiment", baseline=False)
    task = result.task
    assert (task["name"], task["metric"]) == ("sentiment-analysis", "accuracy")
    assert set(task["predictions"]) <= {"keep", "copy"} and 0.0 <= task["accuracy"] <= 1.0
    assert task == {**task, **M.accuracy_f1(task["predictions"], ["keep", "copy"] * 2)}


def test_bad_evaluation_input(trained_run, trained_model, tmp_path):
    with pytest.raises(EvaluationError, match="unknown task 'poetry'"):
        evaluate(trained_model, task="poetry", baseline=False)
    with pytest.raises(EvaluationError, match="no file matches"):
        evaluate(trained_model, [str(tmp_path / "*.txt")], baseline=False)
    plain = tmp_path / "plain.txt"
    plain.write_text("The licensee may copy the program.")
    with pytest.raises(EvaluationError, match="summarization is scored on JSON-lines records"):
        evaluate(trained_model, [str(plain)], task="summarization", baseline=False)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"input": "x"}\n')
    result = _eval(trained_run.out_dir, "--data", broken)
    assert result.exit_code == 1 and "broken.jsonl:1" in result.output and "Traceback" not in result.output
    result = _eval(tmp_path / "nowhere")
    assert result.exit_code == 1 and "no such run directory" in result.output


CHATS = (
    ("May I copy it?", "The licensee may copy it."),
    ("Keep notices?", "Keep every notice."),
    ("Any fee?", "It is without fee."),
)
"""Short enough that each example fits the trained model's 64-token (byte) rows whole."""


def _chat_file(tmp_path):
    path = tmp_path / "chat.jsonl"
    lines = [json.dumps({"prompt": p, "response": r}) for p, r in CHATS[:2]]
    lines.append(json.dumps({"messages": [{"role": "user", "content": CHATS[2][0]}, {"role": "assistant", "content": CHATS[2][1]}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_chat_lines_are_scored_on_their_response_tokens_as_training_weighs_them(trained_model, tmp_path):
    """Prompt/response and messages lines, read by the training data's reader: the loss,
    perplexity and bits per byte are over the response tokens (and EOS) alone. Counting the
    prompt's tokens would change the token count, the bytes and the loss below."""
    import jax

    from genaisdk.backend.jax.data import chat_examples
    from genaisdk.backend.jax.evaluate import chat_task_example
    from genaisdk.backend.jax.sources import read_sources

    path = _chat_file(tmp_path)
    result = evaluate(trained_model, [str(path)], baseline=False, task="summarization", max_new_tokens=12)
    (row,) = result.sources
    assert row["scored"] == result.scored == result.to_json()["scored"] == "response tokens"

    # By hand, as training builds a chat batch: one example a row, the response mask.
    loaded = trained_model
    documents, _ = read_sources([path])
    rows, mask, cut = chat_examples(documents, loaded.tokenizer, 64)
    assert cut == 0
    batch = loaded.objective.make_batch(rows, loss_mask=mask)
    total, count = jax.jit(lambda p, b: loaded.objective.loss_sum(loaded.model.apply, p, b, _policy()))(loaded.params, batch)
    responses = sum(len(loaded.tokenizer.encode(" " + r, bos=False, eos=False)) + 1 for _, r in CHATS)  # + EOS
    assert row["tokens"] == int(count) == int(mask[:, 1:].sum()) == responses
    assert row["bytes"] == sum(len((" " + r).encode()) for _, r in CHATS)  # the prompts' bytes are not counted
    assert row["loss"] == pytest.approx(float(total) / float(count), rel=1e-5)
    prompts_too = loaded.objective.make_batch(rows, loss_mask=(rows != rows[0, -1]).astype(np.uint8))
    assert int(np.sum(prompts_too["weights"])) > 2 * row["tokens"]

    # The task metric: the answer generated after "User: ...\nAssistant:" against the response.
    assert chat_task_example(documents[0]) == (f"User: {CHATS[0][0]}\nAssistant:", CHATS[0][1])
    task = result.task
    assert task["examples"] == 3 and len(task["predictions"]) == 3
    scored = M.rouge(task["predictions"], [r for _, r in CHATS])
    assert {k: task[k] for k in M.ROUGE_TYPES} == {k: scored[k] for k in M.ROUGE_TYPES}

    printed = _eval(
        trained_model.run_dir, "--data", path, "--no-baseline", "--task", "none", "--out", tmp_path / "eval.json"
    )
    assert printed.exit_code == 0, printed.output
    assert "chat.jsonl: loss, perplexity and bits/byte over the response tokens only" in printed.output
    assert json.loads((tmp_path / "eval.json").read_text())["sources"][0]["scored"] == "response tokens"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "Is there a fee?"}', "lacks 'response'"),
        ('{"prompt": "Is there a fee?", "response": " "}', "the \"response\" is empty"),
        ('{"messages": [{"role": "user"}]}', 'message 0 needs a string "role" and a string "content"'),
        ('{"question": "Is there a fee?"}', "'prompt' and 'response' fields, a 'messages' list"),
        ("not json", "not valid JSON: Expecting value: line 2 column 1"),
    ],
)
def test_bad_chat_lines_name_the_file_and_line(trained_run, tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "Hello", "response": "Hi."}) + "\n" + line + "\n")
    result = _eval(trained_run.out_dir, "--data", path, "--no-baseline", "--out", tmp_path / "eval.json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}:2: " in result.output and message in result.output, result.output


SHORT_DOCUMENT = "How do I reset my password? The café charges 5€ — 東京 too."
"""One short line, with multi-byte characters: far shorter than a row of any context below."""


@pytest.mark.parametrize("checkpoint", ["llama", "qwen2"])
def test_a_short_document_counts_its_own_tokens_and_bytes_not_the_rows_padding(checkpoint, tmp_path):
    """A document shorter than the context is one padded row; only its real tokens carry
    loss, whatever the padding id (LLaMA's tokenizer has no PAD, Qwen2's PAD is its EOS),
    so its token count is its tokenized length and the same document padded to two
    context lengths has the same loss. Bits per byte are over the text's own UTF-8 bytes."""
    from pathlib import Path

    import attrs

    from genaisdk.backend.jax.runs import resolve_model

    path = tmp_path / "held.txt"
    path.write_text(SHORT_DOCUMENT)
    loaded = resolve_model(Path(__file__).resolve().parents[1] / "fixtures" / "hf" / checkpoint)
    stream = loaded.tokenizer.encode_documents([SHORT_DOCUMENT])
    figures = []
    for context in (64, 256):
        at = attrs.evolve(loaded, config={**loaded.config, "seq_len": context})
        # In fp32: a bf16 forward pass rounds differently for rows of another shape.
        (row,) = evaluate(at, [str(path)], baseline=False, task="none", precision="fp32").sources
        figures.append(row)
    short, long = figures
    # Every token but the first is a target: BOS (LLaMA) or the text's first token (Qwen2 has no BOS).
    assert short["tokens"] == long["tokens"] == len(stream) - 1
    assert short["loss"] == pytest.approx(long["loss"], rel=1e-5)
    first = loaded.tokenizer.decode(stream[:1]).encode()
    assert short["bytes"] == len(SHORT_DOCUMENT.encode()) - len(first)
    assert short["bits_per_byte"] == pytest.approx(short["loss"] * short["tokens"] / (math.log(2) * short["bytes"]))
    # An untrained tiny model is near uniform over its vocabulary: at most ~log2(vocab) bits a token.
    vocab = loaded.tokenizer.vocab_size
    assert short["bits_per_byte"] < 1.5 * math.log2(vocab) * short["tokens"] / short["bytes"]
