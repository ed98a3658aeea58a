"""What a run may change on resume, what it says about its data, and the permissions of
what genai writes: the rules each check here, without training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import genaisdk
from genaisdk.backend.jax.resume import resume_changes
from genaisdk.planning.run_settings import run_settings

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "specs" / "data" / "support.jsonl"

LORA = {"method": "lora", "rank": 8, "alpha": 8.0, "dropout": 0.0, "targets": ["q", "v"], "frozen": None}
SAVED = {
    "dims": {"layers": 2, "d_model": 32, "vocab": 272},
    "architecture": "decoder",
    "objective": "causal-lm",
    "optimizer": "adamw",
    "optimizer_state": "fp32",
    "precision": "bf16",
    "strategy": "ddp",
    "devices": 1,
    "global_batch": 4,
    "micro_batch": 4,
    "seq_len": 256,
    "learning_rate": 1e-3,
    "total_steps": 20,
    "seed": 0,
    "adapter": LORA,
    "tokenizer": "tokenizers:tokenizer.json/0123456789abcdef",
}


def _with(**changes):
    record = json.loads(json.dumps(SAVED))
    for key, value in changes.items():
        if key.startswith("adapter_"):
            record["adapter"][key.removeprefix("adapter_")] = value
        else:
            record[key] = value
    return record


def test_a_lora_run_resumed_as_qlora_is_refused_naming_each_field():
    qlora = _with(adapter_method="qlora", adapter_alpha=16.0, adapter_frozen="nf4")
    refused, _ = resume_changes(SAVED, qlora)
    assert refused == ["adapt.method lora -> qlora", "adapt.alpha 8 -> 16", "adapt.frozen_precision none -> nf4"]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"adapter_rank": 16}, "adapt.rank 8 -> 16"),
        ({"adapter_targets": ["q", "k", "v"]}, "adapt.targets [q, v] -> [q, k, v]"),
        ({"precision": "fp32"}, "train.precision bf16 -> fp32"),
        ({"optimizer": "lion"}, "train.optimizer adamw -> lion"),
        ({"optimizer_state": "int8"}, "train.optimizer_state fp32 -> int8"),
        ({"architecture": "encoder"}, "model.family decoder -> encoder"),
        ({"dims": {"layers": 2, "d_model": 64, "vocab": 272}}, "model d_model 32 -> 64"),
        ({"dims": {"layers": 2, "d_model": 32, "vocab": 32000}}, "model vocab 272 -> 32000"),
        ({"tokenizer": "tokenizers:tokenizer.json/fedcba9876543210"}, "the tokenizer (tokenizers:"),
        ({"adapter": None}, "adapt.method lora -> finetune (every weight trained)"),
    ],
)
def test_what_gives_the_saved_state_its_meaning_cannot_change(changes, said):
    refused, _ = resume_changes(SAVED, _with(**changes))
    assert len(refused) == 1 and refused[0].startswith(said)


def test_the_schedule_batch_and_dropout_may_change_with_a_note_and_the_layout_silently():
    changed = _with(learning_rate=2e-3, adapter_dropout=0.1, global_batch=8, seed=3)
    refused, allowed = resume_changes(SAVED, changed)
    assert refused == []
    assert allowed == ["adapt.dropout 0 -> 0.1", "the global batch (sequences) 4 -> 8", "train.learning_rate 0.001 -> 0.002", "seed 0 -> 3"]
    assert resume_changes(SAVED, _with(total_steps=25, devices=8, micro_batch=1, strategy="fsdp")) == ([], [])
    # A record without a key (a run written before it was recorded) is not compared on it.
    older = {k: v for k, v in SAVED.items() if k not in ("tokenizer", "optimizer_state")}
    assert resume_changes(older, _with(tokenizer="other", optimizer_state="int8")) == ([], [])


def test_a_spec_whose_train_steps_override_its_data_tokens_states_the_deviation():
    spec = genaisdk.load(ROOT / "specs" / "support-lora.genai", overrides=["data.tokens=100k tokens"])
    plan = genaisdk.plan(spec)
    # The plan says so too (GP007 at train.steps), before any run.
    (warning,) = [d for d in plan.diagnostics if d.code == "GP007"]
    assert "the steps decide" in warning.message and "98 steps" in warning.message
    settings = run_settings(plan, spec)
    (tokens,) = [d for d in settings.deviations if d.field == "tokens"]
    assert (tokens.plan, tokens.run) == (100_000, 20 * 4 * 256)
    assert tokens.why.startswith("train.steps = 20: 20 steps x 4 sequences x 256 tokens; data.tokens = 100k would take 98 steps")
    shorter = run_settings(genaisdk.plan(spec), spec, steps=25)
    assert {d.field: d.run for d in shorter.deviations}["tokens"] == 25 * 4 * 256
    # data.tokens alone decides the steps: the run trains it (to a whole batch), no deviation.


def test_chat_data_reports_its_real_tokens_and_a_run_that_repeats_it_says_how_often(hf_dir):
    from genaisdk.backend.jax.data import build_pipeline, chat_rows, epochs
    from genaisdk.backend.jax.sources import read_sources
    from genaisdk.backend.jax.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(hf_dir("llama"))
    pipe = build_pipeline([str(SUPPORT)], seq_len=256, rows_per_step=4, vocab_size=272, held_out=0.1, tokenizer=tokenizer)
    documents, _ = read_sources([SUPPORT])
    ids, mask, lengths, cut = chat_rows(documents, tokenizer, 256)
    assert len(lengths) == 30 and cut == 1 and lengths.max() == 256
    # Each row's length is where its real tokens end: the last learned token lies within it.
    assert all(np.flatnonzero(row)[-1] < n for row, n in zip(mask, lengths))
    total = int(lengths.sum())
    assert total > 30 * 20
    assert pipe.description.startswith(f"{total:,} tokens (tokenizers:tokenizer.json) from 1 file(s), 0 document(s), 30 chat example(s)")
    assert pipe.num_train_sequences == 27
    assert epochs(pipe, 20) == {"": pytest.approx(80 / 27)}
    assert epochs(pipe, 5) == {"": pytest.approx(20 / 27)}


def test_the_repeat_note_names_the_sequences_and_epochs(tmp_path):
    from types import SimpleNamespace

    from genaisdk.backend.jax.data import build_pipeline
    from genaisdk.backend.jax.train import _repeat_notes

    (tmp_path / "a.txt").write_text("abcdefgh" * 40)
    pipe = build_pipeline([str(tmp_path / "a.txt")], seq_len=16, rows_per_step=2, vocab_size=384, held_out=0.1)
    n = pipe.num_train_sequences
    assert _repeat_notes(pipe, SimpleNamespace(total_steps=n // 2, global_batch=2)) == ()
    (note,) = _repeat_notes(pipe, SimpleNamespace(total_steps=3 * n, global_batch=2))
    assert note.startswith(f"the run repeats its training data: {6 * n:,} sequences drawn from {n:,} training sequences, 6.0 epochs")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_safetensors_and_cache_files_honour_the_umask(tmp_path, umask):
    from genaisdk.builtins.datafiles import _write_cache
    from genaisdk.checkpoints.safetensors_files import save_tensors, stored_dtype

    previous = os.umask(umask)
    try:
        path = save_tensors({"w": np.zeros((2, 2), np.float32)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
        _write_cache(tmp_path / "cache" / "t.toml.json", "key", {"a": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (path, tmp_path / "cache" / "t.toml.json", plain)}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)
    assert stored_dtype(tmp_path) == "float32"
