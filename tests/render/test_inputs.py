"""Reading a run folder and an evaluation file for the report and the card."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from genaisdk.render.inputs import InputError, parse_eval, read_eval, read_run

from .conftest import EVAL, RUN


def test_the_recorded_run_reads_back_as_recorded(run):
    entries = [json.loads(line) for line in (RUN / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((RUN / "result.json").read_text())
    assert run.steps == [e["step"] for e in entries if e["kind"] == "train"] == list(range(1, 61))
    assert run.eval_steps == [10, 20, 30, 40, 50, 60]
    assert run.final_loss == result["final_loss"] == run.losses[-1]
    assert run.eval_loss == result["eval_loss"] == run.eval_losses[-1]
    assert run.perplexity == pytest.approx(math.exp(run.eval_loss))
    assert run.tokens_per_s == result["tokens_per_s"]
    assert run.tokens_trained == 60 * 4096
    assert run.devices == 1 and run.platform == "cpu" and run.peak_memory_bytes is None
    assert run.planned_memory_bytes == result["planned_memory_bytes"]


def test_a_run_without_result_json_falls_back_to_its_metrics(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN, folder)
    (folder / "result.json").unlink()
    lines = (folder / "metrics.jsonl").read_text().splitlines(keepends=True)
    (folder / "metrics.jsonl").write_text("".join(lines[:30]) + lines[30].rstrip("\n"))  # torn last line
    partial = read_run(folder)
    assert partial.result is None and partial.status.startswith("in progress")
    assert partial.steps_done == partial.steps[-1]
    assert partial.final_loss == partial.losses[-1]
    rates = sorted(r for r in partial.tokens_per_s_series[1:] if r is not None)
    assert min(rates) <= partial.tokens_per_s <= max(rates)
    assert partial.seconds == pytest.approx(sum(e["seconds"] for e in partial.train))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such run folder"),
        (lambda p: p, "no metrics.jsonl"),
    ],
)
def test_what_is_not_a_run_says_so(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        read_run(make(tmp_path))


def test_broken_run_files_name_the_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 2.0}\n{oops\n')
    with pytest.raises(InputError, match=r"metrics.jsonl:2: not valid JSON"):
        read_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 2.0}\n')
    (tmp_path / "run.json").write_text("[1, 2")
    with pytest.raises(InputError, match=r"run.json:1:\d+: not valid JSON"):
        read_run(tmp_path)


def test_the_evaluation_fixture(evaluation):
    data = json.loads(EVAL.read_text())
    assert evaluation.overall("loss") == data["loss"] and evaluation.overall("perplexity") == data["perplexity"]
    assert evaluation.counts == {"step": 60, "tokens": 32512}
    sources = evaluation.groups()["source"]
    assert [(r.subject, r.metric) for r in sources] == [("synthetic", "loss"), ("synthetic", "perplexity")]
    assert all(r.split == "held-out 5%" for r in evaluation.rows)


def test_evaluation_layouts_are_read_tolerantly():
    ev = parse_eval(
        {
            "eval_loss": 2.5,
            "ppl": 12.18,
            "bits_per_byte": 0.91,
            "tokens": 1000,
            "dataset": "local/legal",
            "per_source": [{"source": "legal", "loss": 2.4, "tokens": 600}, {"name": "web", "metrics": {"loss": 2.6}}],
            "tasks": [
                {"metric": "rougeL", "value": 0.31, "split": "test", "n": 200},
                {"task": "translation", "metric": "bleu", "value": 27.4, "signature": "nrefs:1|case:mixed"},
            ],
            "rouge": {"rouge1": 0.42, "rouge2": 0.19},
            "accuracy": "nan",
        }
    )
    got = {(r.group, r.subject, r.metric): r for r in ev.rows}
    assert got[("overall", "", "loss")].value == 2.5 and got[("overall", "", "perplexity")].value == 12.18
    assert got[("overall", "", "bits_per_byte")].dataset == "local/legal"
    assert got[("source", "legal", "loss")].note == "600 tokens"
    assert got[("source", "web", "loss")].value == 2.6
    assert got[("task", "", "rougeL")].split == "test" and got[("task", "", "rougeL")].note == "200 n"
    assert got[("task", "translation", "bleu")].note == "nrefs:1|case:mixed"
    assert got[("task", "rouge", "rouge1")].value == 0.42
    assert ("overall", "", "accuracy") not in got  # "nan" is no number
    assert ev.counts == {"tokens": 1000}
    # an lm-eval style block: task -> {metric: value}
    harness = parse_eval({"loss": 1.0, "results": {"hellaswag": {"acc": 0.5, "acc_norm": 0.6}}})
    assert {(r.subject, r.metric, r.value) for r in harness.rows if r.group == "task"} == {
        ("hellaswag", "acc", 0.5),
        ("hellaswag", "acc_norm", 0.6),
    }


@pytest.mark.parametrize("data", [[1, 2], {"model": "x", "tokens": 5}])
def test_an_evaluation_without_metrics_is_refused(data):
    with pytest.raises(InputError, match="expected"):
        parse_eval(data, path="e.json")


def test_a_missing_evaluation_file(tmp_path):
    with pytest.raises(InputError, match="no such evaluation file"):
        read_eval(tmp_path / "eval.json")
