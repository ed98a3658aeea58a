"""`data.mix`: source groups sampled by weight, each group's tokens per step and its own
held-out split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genaisdk.backend.jax.data import MixedPipeline, build_pipeline, mix_draws, mix_groups
from genaisdk.backend.jax.sources import DataError


def test_each_source_share_is_within_two_points_of_its_weight():
    weights = [0.51, 0.49]
    draws = np.concatenate([mix_draws(weights, seed=3, step=s, rows=100) for s in range(100)])
    assert len(draws) == 10_000
    shares = np.bincount(draws, minlength=2) / len(draws)
    assert np.all(np.abs(shares - weights) <= 0.02), shares
    three = np.concatenate([mix_draws([0.7, 0.2, 0.1], seed=0, step=s, rows=500) for s in range(20)])
    np.testing.assert_allclose(np.bincount(three) / len(three), [0.7, 0.2, 0.1], atol=0.02)
    # A step's draws depend on (seed, step) alone: a resumed run reads the same rows.
    np.testing.assert_array_equal(mix_draws(weights, seed=3, step=7, rows=100), draws[700:800])


def test_entries_join_the_group_named_by_a_folder_or_file():
    mix = {"legal": 0.51, "web": 0.49}
    assert mix_groups(["corpus/legal/*.txt", "web.jsonl", "more/legal.txt"], mix) == {
        "legal": ["corpus/legal/*.txt", "more/legal.txt"],
        "web": ["web.jsonl"],
    }
    with pytest.raises(DataError, match=r"'news.txt' belongs to no group of data.mix \(legal, web\)"):
        mix_groups(["legal.txt", "web.txt", "news.txt"], mix)
    with pytest.raises(DataError, match="data.mix names web but no data source"):
        mix_groups(["legal.txt"], mix)


@pytest.fixture
def mixed(tmp_path):
    (tmp_path / "legal").mkdir()
    (tmp_path / "legal" / "a.txt").write_text("the party of the first part shall indemnify. " * 40)
    (tmp_path / "web.jsonl").write_text(
        "".join(json.dumps({"prompt": f"q{i}", "response": f"answer {i}"}) + "\n" for i in range(20))
    )
    return build_pipeline(
        ["legal/*.txt", "web.jsonl"], seq_len=32, rows_per_step=8, vocab_size=300, base_dir=tmp_path,
        held_out=0.2, mix={"legal": 0.75, "web": 0.25},
    )


def test_a_mixed_pipeline_counts_each_source_and_splits_each_held_out(mixed):
    assert isinstance(mixed, MixedPipeline) and set(mixed.groups) == {"legal", "web"}
    counts = [mixed.source_tokens(s) for s in range(200)]
    legal = sum(c["legal"] for c in counts) / sum(sum(c.values()) for c in counts)
    assert abs(legal - 0.75) < 0.03
    assert all(sum(c.values()) == 8 * 32 for c in counts)
    # Each group keeps its own held-out rows; the run's held-out split is all of them.
    assert mixed.num_held_out_sequences == sum(g.num_held_out_sequences for g in mixed.groups.values())
    # Chat rows keep their mask, text rows learn every token.
    tokens, mask = mixed.batch(5), mixed.loss_mask(5)
    assert tokens.shape == mask.shape == (8, 32)
    np.testing.assert_array_equal(tokens, mixed.batch(5))
    assert mixed.held_out_loss_mask(0).shape == (8, 32)


@pytest.mark.slow
def test_a_run_writes_each_sources_tokens_and_held_out_loss(tmp_path):
    pytest.importorskip("jax")
    import genaisdk
    from genaisdk.backend.jax.load import load_model
    from genaisdk.backend.jax.evaluate import Evaluator

    (tmp_path / "legal").mkdir()
    (tmp_path / "legal" / "a.txt").write_text("the party of the first part shall indemnify the second. " * 60)
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "b.txt").write_text("click here to read our latest posts and share them. " * 60)
    spec = tmp_path / "mix.genai"
    spec.write_text(
        "genai 1\n"
        'project "mix" {\n'
        "  model {\n    family = decoder\n    layers = 1\n    d_model = 32\n    heads = 2\n    d_ff = 64\n"
        "    vocab = 384\n    context = 32 tokens\n  }\n"
        '  data {\n    source = ["legal/*.txt", "web/*.txt"]\n    mix = { legal = 75%, web = 25% }\n'
        "    held_out = 10%\n  }\n"
        "  train {\n    precision = fp32\n    batch = 256 tokens\n    steps = 3\n    eval_every = 3\n  }\n"
        "}\n"
    )
    result = genaisdk.train(str(spec), out=tmp_path / "run", quiet=True, devices=1)
    assert result.ok
    lines = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line.get("kind") == "train"]
    assert all(set(line["source_tokens"]) == {"legal", "web"} for line in train)
    assert all(sum(line["source_tokens"].values()) == 256 for line in train)
    evals = [line for line in lines if line.get("kind") == "eval"]
    assert evals and set(evals[-1]["eval_loss_by_source"]) == {"legal", "web"}
    assert all(v > 0 for v in evals[-1]["eval_loss_by_source"].values())
    record = json.loads((result.out_dir / "run.json").read_text())
    assert record["data"]["mix"] == {"legal": 0.75, "web": 0.25}
    # `genai eval RUN` rebuilds the same held-out split: its loss is the loop's last one.
    held = Evaluator(load_model(result.out_dir)).held_out()
    assert held.metrics()["loss"] == pytest.approx(evals[-1]["eval_loss"], rel=1e-4)
