"""Task metrics against the libraries' own results, Unicode text, and the language-model
figures' identities. No JAX."""

from __future__ import annotations

import math

import pytest

from genaisdk.evaluation import metrics as M

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
sacrebleu = pytest.importorskip("sacrebleu")

PREDICTIONS = [
    "The licensee may copy the program and distribute copies of it.",
    "A contributor grants a licence to use the patents covering the work.",
    "the warranty is disclaimed",
]
REFERENCES = [
    "The licensee can copy and distribute copies of the program.",
    "Each contributor grants you a patent licence for its contributions.",
    "There is no warranty for the program.",
]


def test_rouge_on_english_equals_rouge_score_with_its_stemmer():
    ours = M.rouge(PREDICTIONS, REFERENCES)
    scorer = rouge_scorer.RougeScorer(list(M.ROUGE_TYPES), use_stemmer=True)
    for name in M.ROUGE_TYPES:
        expected = sum(scorer.score(r, p)[name].fmeasure for p, r in zip(PREDICTIONS, REFERENCES, strict=True)) / 3
        assert ours[name] == pytest.approx(expected, abs=1e-12), name
    assert 0 < ours["rouge2"] < ours["rouge1"] < 1
    assert "tok:unicode" in ours["signature"] and "stemmer:porter" in ours["signature"]


def test_thai_and_chinese_summaries_score_above_zero():
    thai_ref, thai_pred = "ผู้รับอนุญาตสามารถคัดลอกโปรแกรมได้", "ผู้รับอนุญาตคัดลอกโปรแกรมได้"
    chinese_ref, chinese_pred = "被许可人可以复制该程序。", "被许可人可以复制程序。"
    # The library's default tokenizer keeps only [a-z0-9]: these texts have no tokens at all.
    default = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    assert default.score(thai_ref, thai_ref)["rouge1"].fmeasure == 0.0
    assert M.rouge([thai_ref], [thai_ref])["rouge1"] == pytest.approx(1.0)
    for prediction, reference in ((thai_pred, thai_ref), (chinese_pred, chinese_ref)):
        scores = M.rouge([prediction], [reference])
        assert 0.5 < scores["rouge1"] < 1 and 0 < scores["rougeL"] < 1
        translated = M.bleu([prediction], [reference])
        assert translated["bleu"] > 0 and translated["chrf"] > 0
    assert M.bleu([chinese_pred], [chinese_ref])["bleu_signature"].split("|")[3] == "tok:zh"
    assert "tok:char" in M.bleu([thai_pred], [thai_ref])["bleu_signature"]
    assert M.UnicodeTokenizer().tokenize("被许可 Licence-2 คัด") == ["被", "许", "可", "licenc", "2", "ค", "ั", "ด"]


def test_bleu_and_chrf_equal_sacrebleu_with_their_signatures():
    ours = M.bleu(PREDICTIONS, REFERENCES)
    assert ours["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score, abs=1e-12)
    assert ours["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score, abs=1e-12)
    assert ours["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert ours["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    assert 0 < ours["bleu"] < 100 and 0 < ours["chrf"] < 100


def test_accuracy_and_macro_f1():
    labels = ["pos", "neg", "neg", "pos", "neu"]
    predictions = ["pos", "neg", "pos", "pos", "neg"]
    figures = M.accuracy_f1(predictions, labels)
    assert figures["accuracy"] == pytest.approx(3 / 5)
    # pos: tp 2, fp 1, fn 0 -> 0.8; neg: tp 1, fp 1, fn 1 -> 0.5; neu: tp 0, fn 1 -> 0.
    assert figures["f1"] == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    assert M.accuracy_f1(labels, labels) == {"accuracy": 1.0, "f1": 1.0, "labels": ["neg", "neu", "pos"]}
    with pytest.raises(ValueError, match="2 predictions for 3"):
        M.accuracy_f1(["a", "b"], ["a", "b", "c"])


def test_language_model_figures():
    # A model that spreads its probability evenly over 256 byte values: ln 256 nats per byte
    # token, perplexity 256, exactly 8 bits per byte.
    tokens = 1000
    figures = M.lm_metrics(tokens * math.log(256), tokens, tokens)
    assert figures["loss"] == pytest.approx(math.log(256))
    assert figures["perplexity"] == pytest.approx(256)
    assert figures["bits_per_byte"] == pytest.approx(8.0)
    assert M.lm_metrics(1.0, 0, 0)["bits_per_byte"] is None
    assert M.perplexity(800.0) == float("inf")


def test_every_task_with_a_metric_is_a_registered_task():
    from genaisdk.registry import get_registry

    registry = get_registry()
    for task, metric in M.TASK_METRICS.items():
        assert registry.get("tasks", task).name == task and metric in M.METRICS
    assert M.task_metric(registry.get("tasks", "summarisation").name) == "rouge"
    assert M.task_metric("text-generation") is None and M.task_metric(None) is None
