"""The built-in catalogs' data files: parsed with tomllib, cached as JSON only while unchanged."""

from __future__ import annotations

import json
import sys

import pytest

from genaisdk.builtins import datafiles, hardware, presets
from genaisdk.builtins.datafiles import DataFileError, entries, read_table

TABLE = """
[templates.base]
source = "a datasheet"
dims = { vocab = 100, context = 8 }

[presets.tiny]
template = "base"
dims = { layers = 1, d_model = 8, heads = 1, d_ff = 16, context = 16 }
"""


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test starts as a new process would: nothing read yet."""
    monkeypatch.setattr(datafiles, "_parsed", {})
    monkeypatch.setattr(datafiles, "_built", {})


@pytest.fixture()
def writing(monkeypatch):
    """Caches are written (the suite may run with PYTHONDONTWRITEBYTECODE) and kept out of sys.pycache_prefix."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", None)


def test_the_cache_is_json_and_used_only_while_the_file_is_unchanged(tmp_path, writing, monkeypatch) -> None:
    (tmp_path / "t.toml").write_text(TABLE)
    first = read_table("t", tmp_path)
    cache = tmp_path / "__pycache__" / "t.toml.json"
    stored = json.loads(cache.read_text())  # plain JSON: nothing in it can run
    assert stored["table"] == first
    calls = []
    monkeypatch.setattr(datafiles, "_parse", lambda path, raw: calls.append(path) or {"parsed": True})
    monkeypatch.setattr(datafiles, "_parsed", {})  # a new process
    assert read_table("t", tmp_path) == first and calls == []  # a hit: not parsed
    (tmp_path / "t.toml").write_text(TABLE.replace("vocab = 100", "vocab = 101"))
    assert read_table("t", tmp_path) == {"parsed": True} and len(calls) == 1  # edited: parsed again


@pytest.mark.parametrize("damage", ["", "{not json", '{"key": "1-0-0", "table": {}}', "[1, 2]", '{"key": 1}'])
def test_a_damaged_or_foreign_cache_is_ignored(tmp_path, writing, damage: str) -> None:
    (tmp_path / "t.toml").write_text(TABLE)
    expected = read_table("t", tmp_path)
    (tmp_path / "__pycache__" / "t.toml.json").write_text(damage)
    datafiles._parsed.clear()  # a new process
    assert read_table("t", tmp_path) == expected


def test_nothing_is_written_when_python_writes_no_bytecode_or_cannot(tmp_path, monkeypatch) -> None:
    (tmp_path / "t.toml").write_text(TABLE)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    read_table("t", tmp_path)
    assert not (tmp_path / "__pycache__").exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    (tmp_path / "__pycache__").write_text("a file where the folder would go")
    datafiles._parsed.clear()
    assert read_table("t", tmp_path)["presets"]["tiny"]["template"] == "base"


def test_the_cache_follows_sys_pycache_prefix(tmp_path, monkeypatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.toml").write_text(TABLE)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "prefix"))
    read_table("t", tmp_path / "data")
    assert list((tmp_path / "prefix").rglob("t.toml.json"))
    assert not (tmp_path / "data" / "__pycache__").exists()


def test_templates_merge_under_the_entry(tmp_path) -> None:
    (tmp_path / "t.toml").write_text(TABLE)
    ((name, fields),) = entries("t.toml", read_table("t", tmp_path), "presets")
    assert name == "tiny"
    assert fields == {
        "source": "a datasheet",
        "dims": {"vocab": 100, "context": 16, "layers": 1, "d_model": 8, "heads": 1, "d_ff": 16},
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("[presets.x\n", "t.toml: Expected ']'"),
        ('[presets.x]\ntemplate = "nope"\n', "presets.x: unknown template 'nope'"),
    ],
)
def test_a_broken_file_names_itself(tmp_path, text: str, message: str) -> None:
    (tmp_path / "t.toml").write_text(text)
    with pytest.raises(DataFileError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        list(entries("t.toml", read_table("t", tmp_path), "presets"))


@pytest.mark.parametrize(
    "module, text, message",
    [
        (presets, '[presets.x]\narchitecture = "decoder"\nsorce = "typo"\n', "presets.x: unknown key 'sorce'"),
        (presets, '[presets.x]\narchitecture = "decoder"\ndims = { layres = 2 }\n', "presets.x.dims: unknown key 'layres'"),
        (presets, '[presets.x]\narchitecture = "decoder"\ndims = { layers = 2 }\n', "presets.x: .*missing"),
        (hardware, '[hardware.x]\nmemory_gb = 16\n', "hardware.x: unknown key 'memory_gb'"),
        (
            hardware,
            "[hardware.x]\nmemory_gib = 16\npeak_tflops = { bf16 = -1 }\nbandwidth_gb_s = 100\n",
            "hardware.x: Hardware.peak_flops",
        ),
    ],
)
def test_a_bad_entry_names_the_file_the_entry_and_the_key(tmp_path, module, text, message) -> None:
    (tmp_path / f"{module.FILE}.toml").write_text(text)
    with pytest.raises(DataFileError, match=message):
        datafiles.records(module.FILE, module.FILE, module._build, tmp_path)


def test_any_dimensions_field_passes_through(tmp_path, monkeypatch) -> None:
    import attrs

    from genaisdk.dims import Dimensions

    booleans = [f.name for f in attrs.fields(Dimensions) if f.type in ("bool", bool)]
    dims = ", ".join(f"{name} = true" for name in booleans)
    text = f'[presets.x]\narchitecture = "decoder"\ndims = {{ layers = 2, d_model = 8, heads = 2, d_ff = 8, vocab = 9, context = 4, {dims} }}\n'
    (tmp_path / "presets.toml").write_text(text)
    (preset,) = datafiles.records("presets", "presets", presets._build, tmp_path)
    assert all(getattr(preset.dims, name) is True for name in booleans)


def test_the_data_files_ship_with_the_package() -> None:
    text = open(datafiles.Path(__file__).resolve().parents[2] / "pyproject.toml").read()
    assert '"builtins/data/*.toml"' in text
    assert sorted(p.name for p in datafiles.DATA_DIR.glob("*.toml")) == ["hardware.toml", "presets.toml"]


def test_records_are_built_once_per_process_while_the_file_is_unchanged(tmp_path) -> None:
    (tmp_path / "presets.toml").write_text('[presets.x]\narchitecture = "decoder"\ndims = { layers = 2, d_model = 8, heads = 2, d_ff = 8, vocab = 9, context = 4 }\n')
    first = datafiles.records("presets", "presets", presets._build, tmp_path)
    assert datafiles.records("presets", "presets", presets._build, tmp_path) is first
    (tmp_path / "presets.toml").write_text((tmp_path / "presets.toml").read_text().replace("layers = 2", "layers = 3"))
    (again,) = datafiles.records("presets", "presets", presets._build, tmp_path)
    assert again.dims.layers == 3
    assert presets.catalog() == presets.catalog() and hardware.catalog()[0] is hardware.catalog()[0]
