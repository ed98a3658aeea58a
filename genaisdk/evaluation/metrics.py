"""Evaluation metrics: language-model loss figures and task metrics, no JAX.

Language-model figures from a summed token loss (nats), a token count and the UTF-8 bytes
those tokens spell:

- loss: mean negative log-likelihood per token, in nats;
- perplexity: exp(loss) (Jelinek et al. 1977);
- bits per byte: loss_sum / (ln 2 · bytes), which does not depend on the tokenizer, so a
  byte-level and a subword model compare (Gao et al. 2020, "The Pile", Sec. 3.1; the
  `bits_per_byte` of lm-evaluation-harness).

Task metrics, each in its library's own scale, named by the task (`TASK_METRICS`):

- ``rouge`` (summarization): ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F1 in [0, 1]
  (Lin 2004) with `rouge-score`, Porter stemming, and `UnicodeTokenizer` instead of the
  library's ASCII-only default, so Thai or Chinese summaries score above zero; for English
  text the two tokenizers give the same tokens.
- ``bleu`` (translation): corpus BLEU and chrF in [0, 100] with `sacrebleu` (Post 2018,
  "A Call for Clarity in Reporting BLEU Scores"), each with its signature; BLEU tokenizes
  with ``13a``, ``zh`` for Chinese references, and ``char`` for scripts written without
  spaces (Thai, Lao, Khmer, Myanmar, Japanese kana). chrF is chrF2 (Popović 2015).
- ``accuracy`` (classification): accuracy and macro-averaged F1 in [0, 1].

`rouge-score` and `sacrebleu` are the `genaisdk[eval]` extra; a metric that needs one that
is missing raises `MissingMetricError` naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

LN2 = math.log(2.0)

TASK_METRICS: Mapping[str, str] = {
    "summarization": "rouge",
    "translation": "bleu",
    "sentence-classification": "accuracy",
    "sentiment-analysis": "accuracy",
}
"""The metric of each built-in task that has one, keyed by the task record's name (aliases
resolve to it). Tasks not listed are measured by their language-model figures only."""

METRICS = ("rouge", "bleu", "accuracy")

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class MissingMetricError(RuntimeError):
    """A metric library of the [eval] extra is not installed."""


def task_metric(task: str | None) -> str | None:
    """The metric a task is scored with, or None (language-model figures only)."""
    return TASK_METRICS.get(task) if task else None


# ----------------------------------------------------------------------------- language model


def perplexity(loss: float) -> float:
    """exp(loss) for a mean token NLL in nats; inf once it overflows."""
    return math.exp(loss) if loss < 700 else float("inf")


def bits_per_byte(loss_sum: float, num_bytes: int) -> float | None:
    """loss_sum / (ln 2 · bytes): the code length of the text in bits per UTF-8 byte; None
    when the tokens spell no bytes (only special ids)."""
    return loss_sum / (LN2 * num_bytes) if num_bytes > 0 else None


def lm_metrics(loss_sum: float, tokens: float, num_bytes: int) -> dict[str, Any]:
    """{'loss', 'perplexity', 'bits_per_byte', 'tokens', 'bytes'} of a summed loss."""
    loss = loss_sum / max(tokens, 1.0)
    return {
        "loss": loss,
        "perplexity": perplexity(loss),
        "bits_per_byte": bits_per_byte(loss_sum, num_bytes),
        "tokens": int(tokens),
        "bytes": int(num_bytes),
    }


# ----------------------------------------------------------------------------- ROUGE

_NO_SPACE_SCRIPTS = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
)
_TOKEN_RE = re.compile(f"[{_NO_SPACE_SCRIPTS}]|[^\\W_{_NO_SPACE_SCRIPTS}]+")
_ASCII_WORD = re.compile(r"^[a-z0-9]+$")
_CJK_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CHAR_SCRIPTS_RE = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff]")


class UnicodeTokenizer:
    """ROUGE tokens for any script: lower-cased runs of letters and digits, every character
    of a script written without spaces (Thai, Lao, Khmer, Myanmar, Chinese, Japanese) on its
    own, and ASCII words longer than 3 letters Porter-stemmed. On ASCII text this is the
    `rouge-score` default tokenizer with its stemmer; that one drops every non-ASCII letter,
    so a Thai summary identical to its reference scores 0 with it."""

    def __init__(self, stem: bool = True):
        self._stemmer = None
        if stem:
            from nltk.stem import porter

            self._stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        tokens = _TOKEN_RE.findall(text.lower())
        if self._stemmer is None:
            return tokens
        return [self._stemmer.stem(t) if len(t) > 3 and _ASCII_WORD.match(t) else t for t in tokens]


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingMetricError(f"this metric needs {package}: pip install 'genaisdk[eval]'") from None


def rouge(predictions: Sequence[str], references: Sequence[str], *, types: Sequence[str] = ROUGE_TYPES) -> dict[str, Any]:
    """Mean ROUGE F1 of each type over the pairs (rouge-score, `UnicodeTokenizer`, Porter
    stemming); ROUGE-Lsum splits summaries into sentences at newlines."""
    _check_pairs(predictions, references)
    rouge_scorer = _require("rouge_score.rouge_scorer", "rouge-score")
    scorer = rouge_scorer.RougeScorer(list(types), tokenizer=UnicodeTokenizer())
    totals = dict.fromkeys(types, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)  # rouge-score takes the target first
        for name in types:
            totals[name] += scores[name].fmeasure
    n = max(len(predictions), 1)
    out: dict[str, Any] = {name: totals[name] / n for name in types}
    out["signature"] = "rouge-score|f1|stemmer:porter|tok:unicode|" + _version("rouge-score")
    return out


# ----------------------------------------------------------------------------- BLEU, chrF


def bleu_tokenizer(references: Sequence[str]) -> str:
    """sacreBLEU's tokenizer for these references: 'char' for scripts written without
    spaces, 'zh' for Chinese, '13a' (its default, WMT's mteval-v13a) otherwise."""
    text = "".join(references)
    if _CHAR_SCRIPTS_RE.search(text):
        return "char"
    if _CJK_RE.search(text):
        return "zh"
    return "13a"


def bleu(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacrebleu) with their signatures; one reference per prediction."""
    _check_pairs(predictions, references)
    metrics = _require("sacrebleu.metrics", "sacrebleu")
    streams = [list(references)]  # sacrebleu takes reference streams: one list per reference set
    bleu_metric = metrics.BLEU(tokenize=bleu_tokenizer(references))
    chrf_metric = metrics.CHRF()
    return {
        "bleu": bleu_metric.corpus_score(list(predictions), streams).score,
        "bleu_signature": str(bleu_metric.get_signature()),
        "chrf": chrf_metric.corpus_score(list(predictions), streams).score,
        "chrf_signature": str(chrf_metric.get_signature()),
    }


# ----------------------------------------------------------------------------- classification


def accuracy_f1(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro-averaged F1 (per label 2·P·R/(P + R), averaged over the labels
    that occur in either list; a label never predicted nor present counts nothing)."""
    _check_pairs(predictions, labels)
    classes = sorted(set(labels) | set(predictions))
    f1s = []
    for c in classes:
        tp = sum(1 for p, y in zip(predictions, labels, strict=True) if p == c and y == c)
        fp = sum(1 for p, y in zip(predictions, labels, strict=True) if p == c and y != c)
        fn = sum(1 for p, y in zip(predictions, labels, strict=True) if p != c and y == c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    correct = sum(1 for p, y in zip(predictions, labels, strict=True) if p == y)
    return {
        "accuracy": correct / max(len(labels), 1),
        "f1": sum(f1s) / max(len(f1s), 1),
        "labels": classes,
    }


def score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """The figures of `metric` ('rouge', 'bleu' or 'accuracy') over prediction/reference pairs."""
    if metric == "rouge":
        return rouge(predictions, references)
    if metric == "bleu":
        return bleu(predictions, references)
    if metric == "accuracy":
        return accuracy_f1(predictions, references)
    raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"version:{version(package)}"
    except PackageNotFoundError:  # pragma: no cover
        return "version:unknown"
