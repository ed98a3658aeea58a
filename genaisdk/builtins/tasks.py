"""Built-in tasks: what a project says it does, and the model family that usually does it.

The mapping is the one the transformer literature settled on:

- encoders pretrained with masked LM understand a given text: sentence classification
  (GLUE, sentiment), token classification (named entities, part of speech), extractive
  question answering (SQuAD spans), retrieval embeddings (Devlin et al. 2019, BERT, Sec. 4;
  Karpukhin et al. 2020, DPR);
- decoders pretrained with causal LM write text: open generation, long-form writing, chat,
  code from a description, tool and API calls (Radford et al. 2019; Brown et al. 2020;
  Ouyang et al. 2022; Chen et al. 2021, Codex; Schick et al. 2023, Toolformer);
- encoder-decoders pretrained with span corruption map one text to another: summarization,
  translation, generative question answering (Raffel et al. 2020, T5, Sec. 2.3 and 3.7;
  Lewis et al. 2020, BART).
"""

from __future__ import annotations

from collections.abc import Iterator

from genaisdk.hookspecs import hookimpl
from genaisdk.records import Task

_BERT = "Devlin et al. 2019, 'BERT', Sec. 4 (GLUE, SQuAD, CoNLL-2003 NER)"
_T5 = (
    "Raffel et al. 2020, 'Exploring the Limits of Transfer Learning with a Unified Text-to-Text "
    "Transformer' (T5), Sec. 2.3"
)


def _encoder(name: str, description: str, examples: tuple[str, ...], source: str = _BERT, **kw) -> Task:
    return Task(
        name=name,
        family="encoder",
        objective="masked-lm",
        description=description,
        examples=examples,
        source=source,
        **kw,
    )


def _decoder(name: str, description: str, examples: tuple[str, ...], source: str, **kw) -> Task:
    return Task(
        name=name,
        family="decoder",
        objective="causal-lm",
        description=description,
        examples=examples,
        source=source,
        **kw,
    )


def _encoder_decoder(name: str, description: str, examples: tuple[str, ...], source: str = _T5, **kw) -> Task:
    return Task(
        name=name,
        family="encoder_decoder",
        objective="span-corruption",
        description=description,
        examples=examples,
        source=source,
        **kw,
    )


@hookimpl
def genaisdk_tasks() -> Iterator[Task]:
    # Understanding a given text: one label per sentence, per token, or a span of it.
    yield _encoder(
        "sentence-classification",
        "One label per sentence or pair of sentences",
        ("topic labelling", "intent detection", "natural language inference", "spam filtering"),
        aliases=("classification", "text-classification"),
    )
    yield _encoder(
        "sentiment-analysis",
        "Positive, negative or neutral: sentence classification by polarity",
        ("product review polarity", "SST-2"),
        source="Devlin et al. 2019, 'BERT', Sec. 4.1 (SST-2 in GLUE)",
        aliases=("sentiment",),
    )
    yield _encoder(
        "named-entity-recognition",
        "Tag the people, places, organisations and other entities in a text",
        ("CoNLL-2003 NER", "clause parties in contracts"),
        source="Devlin et al. 2019, 'BERT', Sec. 5.3 (CoNLL-2003 NER)",
        aliases=("ner",),
    )
    yield _encoder(
        "token-classification",
        "One label per word",
        ("part-of-speech tagging", "chunking", "word-level error detection"),
        aliases=("word-classification",),
    )
    yield _encoder(
        "extractive-qa",
        "Answer a question with a span copied from a given passage",
        ("SQuAD v1.1/v2.0", "find the governing-law clause"),
        source="Devlin et al. 2019, 'BERT', Sec. 4.2-4.3 (SQuAD)",
        aliases=("extractive-question-answering",),
    )
    yield _encoder(
        "retrieval",
        "Embed queries and documents so that nearest neighbours are relevant",
        ("dense passage retrieval", "semantic search", "deduplication"),
        source="Karpukhin et al. 2020, 'Dense Passage Retrieval for Open-Domain Question Answering', Sec. 3",
        aliases=("embeddings", "retrieval-embeddings"),
    )
    # Writing new text, one token after another.
    yield _decoder(
        "text-generation",
        "Continue or write text from a prompt",
        ("story continuation", "autocomplete", "few-shot prompting"),
        "Radford et al. 2019, 'Language Models are Unsupervised Multitask Learners'; Brown et al. 2020, Sec. 2",
        aliases=("generation",),
    )
    yield _decoder(
        "essay-writing",
        "Long-form writing from an outline or an instruction",
        ("essays", "reports", "marketing copy"),
        "Brown et al. 2020, 'Language Models are Few-Shot Learners', Sec. 3.9.4 (news article generation)",
    )
    yield _decoder(
        "chat",
        "Multi-turn conversation that follows instructions",
        ("assistants", "customer support", "tutoring"),
        "Ouyang et al. 2022, 'Training language models to follow instructions with human feedback'",
        aliases=("dialogue",),
    )
    yield _decoder(
        "code-generation",
        "Write code from a natural-language description",
        ("function from a docstring", "SQL from a question", "HumanEval"),
        "Chen et al. 2021, 'Evaluating Large Language Models Trained on Code' (Codex), Sec. 2",
        aliases=("code",),
    )
    yield _decoder(
        "tool-calling",
        "Decide when to call a tool or API and write the call",
        ("calculator and search calls", "function calling", "agents over REST APIs"),
        "Schick et al. 2023, 'Toolformer: Language Models Can Teach Themselves to Use Tools', Sec. 2",
        aliases=("api-calling", "function-calling"),
    )
    # Turning one text into another.
    yield _encoder_decoder(
        "summarization",
        "A shorter text that keeps what matters",
        ("CNN/Daily Mail", "contract and opinion summaries", "meeting notes"),
        aliases=("summarisation",),
    )
    yield _encoder_decoder(
        "translation",
        "The same text in another language",
        ("WMT English-German", "localisation"),
    )
    yield _encoder_decoder(
        "generative-qa",
        "Answer a question in free text, from a passage or from what the model knows",
        ("Natural Questions (closed book)", "answers that paraphrase the source"),
        source="Raffel et al. 2020 (T5), Sec. 3.7; Roberts et al. 2020, 'How Much Knowledge Can You Pack "
        "Into the Parameters of a Language Model?'",
        aliases=("generative-question-answering", "abstractive-qa"),
    )
