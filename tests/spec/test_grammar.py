"""The grammar itself: conflict-free under Lark's strict mode, terminals named in words,
built lazily and cached without ever failing on an unwritable cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genaisdk.spec import parse as parse_module
from genaisdk.spec.parse import GRAMMAR_PATH, TOKEN_WORDS, cache_dir, lark_options


def test_grammar_builds_in_strict_mode():
    """strict=True turns shift/reduce conflicts and terminal collisions into errors.

    In a fresh process: the parser imports Lark without its optional extras, and strict
    mode needs one of them (interegular)."""
    pytest.importorskip("interegular", reason="Lark's strict mode needs interegular")
    code = (
        "import sys, json\n"
        "from lark import Lark\n"
        "Lark(open(sys.argv[1]).read(), strict=True, **json.loads(sys.argv[2]))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(GRAMMAR_PATH), json.dumps(lark_options())], check=True)


def test_lark_extras_stay_importable_after_the_parser_loads():
    code = (
        "import sys\n"
        "from genaisdk.spec.parse import get_parser\n"
        "get_parser()\n"
        "assert 'regex' not in sys.modules and 'interegular' not in sys.modules\n"
        "import importlib.util\n"
        "for name in ('regex', 'interegular'):\n"
        "    if importlib.util.find_spec(name) is not None:\n"
        "        __import__(name)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_terminal_has_words_for_messages():
    parser = parse_module.get_parser()
    ignored = set(parser.lexer_conf.ignore)
    names = {terminal.name for terminal in parser.terminals} - ignored
    assert names <= set(TOKEN_WORDS), names - set(TOKEN_WORDS)


def test_importing_the_spec_package_does_not_import_lark():
    code = (
        "import sys, genaisdk, genaisdk.spec, genaisdk.spec.build, genaisdk.spec.units, genaisdk.spec.fmt\n"
        "assert 'lark' not in sys.modules, 'lark imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cache_dir_prefers_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAISDK_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    assert (tmp_path / "cache").is_dir()


def test_cache_dir_skips_a_location_that_cannot_be_created(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENAISDK_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    found = cache_dir()
    assert found is not None and found != blocker / "cache"


def test_parser_works_when_the_cache_cannot_be_written(tmp_path, monkeypatch):
    missing = tmp_path / "gone"  # a folder that does not exist: reads and writes both fail
    monkeypatch.setattr(parse_module, "cache_dir", lambda: missing)
    monkeypatch.setattr(parse_module, "_PARSER", None)
    document = parse_module.parse('genai 1\nproject "x" {\n}\n')
    assert document.body[0].name == "project"
    assert not missing.exists()


def test_parser_writes_and_reuses_its_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(parse_module, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(parse_module, "_PARSER", None)
    parse_module.get_parser()
    written = list(tmp_path.glob("*.lark.cache"))
    assert len(written) == 1
    monkeypatch.setattr(parse_module, "_PARSER", None)
    stamp = written[0].stat().st_mtime_ns
    parse_module.get_parser()
    assert written[0].stat().st_mtime_ns == stamp


def test_grammar_file_ships_with_the_package():
    assert GRAMMAR_PATH.parent == Path(parse_module.__file__).parent
    assert GRAMMAR_PATH.name == "grammar.lark"


def test_parsing_does_not_pull_in_the_lark_extras():
    code = (
        "import sys\n"
        "from genaisdk.spec.parse import parse\n"
        "parse('a = 1\\n')\n"
        "assert 'regex' not in sys.modules and 'interegular' not in sys.modules, 'extras imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
