"""Data sources, packing, the held-out split and step-addressed, resumable batches."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from genaisdk.backend.jax import synthetic
from genaisdk.backend.jax.data import build_pipeline
from genaisdk.backend.jax.sources import DataError, resolve_files
from genaisdk.backend.jax.tokenizer import EOS_ID, ByteTokenizer


def _corpus(tmp_path, docs=40, words=60):
    rng = np.random.default_rng(0)
    for i in range(docs):
        text = " ".join(f"w{int(x)}" for x in rng.integers(0, 500, size=words))
        (tmp_path / f"doc{i:02d}.txt").write_text(text)
    return tmp_path


def test_packing_keeps_every_token_of_whole_sequences(tmp_path):
    (tmp_path / "a.txt").write_text("a" * 10)
    (tmp_path / "b.txt").write_text("b" * 13)
    pipe = build_pipeline(["*.txt"], seq_len=4, rows_per_step=2, vocab_size=300, held_out=0.0, base_dir=tmp_path)
    # 10 + 1 EOS + 13 + 1 EOS = 25 tokens -> 6 sequences of 4, one token dropped.
    assert pipe.total_tokens == 25
    assert pipe.num_train_sequences == 6
    seen = np.concatenate([pipe.batch(s) for s in range(3)])
    tok = ByteTokenizer(vocab_size=300)
    expected = tok.encode_documents([b"a" * 10, b"b" * 13])[:24].reshape(6, 4)
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, expected.tolist()))
    assert (seen == EOS_ID).sum() == 1  # the second EOS fell in the dropped tail


def test_epochs_cover_every_sequence_once_in_a_seeded_order(tmp_path):
    pipe = build_pipeline(["*.txt"], seq_len=32, rows_per_step=5, vocab_size=300, base_dir=_corpus(tmp_path))
    n = pipe.num_train_sequences
    # The first n global sequence numbers (epoch 0) read every packed sequence once.
    epoch0 = np.concatenate([pipe.batch(s) for s in range(-(-n // 5))])[:n]
    assert sorted(row.tobytes() for row in epoch0) == sorted(row.tobytes() for row in pipe._train.astype(np.int32))
    # Epoch 1 reads them all again, in another order.
    epoch1 = np.concatenate([pipe.batch(s) for s in range(-(-n // 5), -(-2 * n // 5) + 1)])
    numbers = np.concatenate([pipe.train_indices(s) for s in range(-(-n // 5), -(-2 * n // 5) + 1)])
    epoch1 = epoch1[(numbers >= n) & (numbers < 2 * n)]
    assert sorted(row.tobytes() for row in epoch1) == sorted(row.tobytes() for row in pipe._train.astype(np.int32))
    assert not np.array_equal(pipe._permutation(0), pipe._permutation(1))
    other_seed = build_pipeline(["*.txt"], seq_len=32, rows_per_step=5, vocab_size=300, seed=1, base_dir=tmp_path)
    assert not np.array_equal(other_seed.batch(0), pipe.batch(0))


def test_batches_are_a_pure_function_of_the_step(tmp_path):
    base = _corpus(tmp_path)
    first = build_pipeline(["*.txt"], seq_len=16, rows_per_step=8, vocab_size=300, seed=3, base_dir=base)
    # A fresh pipeline (a resumed run) asked for step 57 first sees what the first saw.
    late = [first.batch(s) for s in range(60)]
    resumed = build_pipeline(["*.txt"], seq_len=16, rows_per_step=8, vocab_size=300, seed=3, base_dir=base)
    for s in (57, 58, 59, 0):
        np.testing.assert_array_equal(resumed.batch(s), late[s])
    assert resumed.fingerprint == first.fingerprint


def test_held_out_split_is_disjoint_and_fixed(tmp_path):
    pipe = build_pipeline(["*.txt"], seq_len=16, rows_per_step=4, vocab_size=300, held_out=0.1, base_dir=_corpus(tmp_path))
    held = {row.tobytes() for row in pipe._held}
    train = {row.tobytes() for row in pipe._train}
    assert held and not (held & train)
    assert pipe.num_held_out_sequences == round(0.1 * (pipe.num_held_out_sequences + pipe.num_train_sequences))
    np.testing.assert_array_equal(pipe.held_out_batch(1), pipe.held_out_batch(1))
    assert pipe.held_out_batches(limit=1000) == -(-pipe.num_held_out_sequences // 4)


def test_json_lines_text_field_and_gzip(tmp_path):
    lines = [json.dumps({"text": f"record {i} " * 5, "id": i}) for i in range(20)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as handle:
        handle.write("compressed text " * 20)
    pipe = build_pipeline(["a.jsonl", "b.txt.gz"], seq_len=8, rows_per_step=2, vocab_size=300, base_dir=tmp_path)
    assert "21 document(s)" in pipe.description
    tok = ByteTokenizer(vocab_size=300)
    text = tok.decode(np.concatenate([pipe._train.reshape(-1), pipe._held.reshape(-1)]))
    assert "record 3" in text and "compressed" in text


def test_bad_json_line_names_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: .*'text' field"):
        build_pipeline(["bad.jsonl"], seq_len=4, rows_per_step=1, vocab_size=300, base_dir=tmp_path)


def test_missing_sources_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"no file matches .*nothing/\*\.txt"):
        resolve_files(["nothing/*.txt"], tmp_path)
    with pytest.raises(DataError, match="no such file"):
        resolve_files(["missing.txt"], tmp_path)
    with pytest.raises(DataError, match="names no training data"):
        build_pipeline([], seq_len=4, rows_per_step=1, vocab_size=300)
    with pytest.raises(DataError, match="unknown synthetic kind 'zipf'"):
        build_pipeline(["synthetic:zipf"], seq_len=4, rows_per_step=1, vocab_size=300)
    (tmp_path / "tiny.txt").write_text("abc")
    with pytest.raises(DataError, match="fewer than two sequences"):
        build_pipeline(["tiny.txt"], seq_len=64, rows_per_step=1, vocab_size=300, base_dir=tmp_path)


def test_a_vocabulary_smaller_than_the_bytes_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="at least 259 ids"):
        build_pipeline(["*.txt"], seq_len=16, rows_per_step=2, vocab_size=200, base_dir=_corpus(tmp_path, docs=2))


def test_missing_license_folder_message_explains_the_path():
    with pytest.raises(DataError, match="Debian-based systems ship their license texts there"):
        resolve_files(["/usr/share/common-licenses/not-on-this-system/*"])


def test_symlinked_duplicates_are_read_once(tmp_path):
    (tmp_path / "GPL-3").write_text("text")
    (tmp_path / "GPL").symlink_to(tmp_path / "GPL-3")
    assert len(resolve_files(["*"], tmp_path)) == 1


@pytest.mark.parametrize("kind", synthetic.KINDS)
def test_synthetic_is_endless_and_deterministic(kind):
    pipe = build_pipeline([f"synthetic:{kind}"], seq_len=32, rows_per_step=4, vocab_size=300, seed=5)
    assert pipe.num_train_sequences is None
    b = pipe.batch(10_000)
    assert b.shape == (4, 32) and b.dtype == np.int32
    np.testing.assert_array_equal(b, build_pipeline([f"synthetic:{kind}"], seq_len=32, rows_per_step=4, vocab_size=300, seed=5).batch(10_000))
    assert not np.array_equal(pipe.batch(0), pipe.held_out_batch(0))
    assert b.min() >= 3 and b.max() < 259


def test_synthetic_markov_follows_its_sparse_transition_table():
    seqs = synthetic.SyntheticSequences("markov", seq_len=256, seed=0)
    rows = seqs.rows(np.arange(64)) - (3 + synthetic.ALPHABET_FIRST_BYTE)
    pairs = {(a, b) for row in rows for a, b in zip(row[:-1], row[1:])}
    # At most SUCCESSORS distinct successors per symbol: the structure a model can learn.
    per_symbol = {}
    for a, b in pairs:
        per_symbol.setdefault(a, set()).add(b)
    assert max(len(s) for s in per_symbol.values()) <= synthetic.SUCCESSORS
    assert 1.0 < synthetic.markov_entropy_rate() < 1.2
