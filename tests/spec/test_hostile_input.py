"""Hostile and careless input: each gives a clean diagnostic (no traceback, no hang), never
a silently wrong value, and nothing a terminal would obey.

Markup in names, nesting too deep, paths that look like text, very large files, counts that
are not whole, unknown string escapes, and terminal control characters."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.diagnostics import MAX_RENDERED, Diagnostic, SourceLines, Span, SpecError, render, render_all
from genaisdk.spec import check, format_text, is_path, loads, read_spec_file
from genaisdk.spec.parse import MAX_DEPTH, SIZE_VARIABLE, comments_of, parse, parse_override, parse_recovering
from genaisdk.spec.tree import escape_problem, unescape

from .conftest import SPECS

TINY = (SPECS / "tiny-gpt.genai").read_text()
HEAD = 'genai 1\nproject "p" {\n  task = summarization\n'


@pytest.fixture
def runner():
    return CliRunner()


def _no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def _codes(text: str, registry) -> list[str]:
    return [d.code for d in check(text, "t.genai", registry=registry) if d.is_error]


# -- rich markup in names and values --------------------------------------------------------


@pytest.mark.parametrize("name", ["[/]", "[bold]x[/bold", "[link=file:///etc]x"])
@pytest.mark.parametrize("command", ["plan", "explain"])
def test_markup_in_a_project_name_is_printed_as_written(runner, tmp_path, command, name):
    path = tmp_path / "m.genai"
    path.write_text(TINY.replace('project "tiny-gpt"', f'project "{name}"'))
    result = runner.invoke(cli, [command, str(path), "--width", "100"])
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"{name}  ")


def test_markup_in_a_scope_and_spec_path_is_printed_as_written(runner, tmp_path):
    folder = tmp_path / "[red]"
    folder.mkdir()
    path = folder / "s.genai"
    path.write_text(TINY.replace('scope = "A smoke', 'scope = "[/] A smoke'))
    result = runner.invoke(cli, ["plan", str(path), "--width", "200"])
    _no_traceback(result)
    assert "[/] A smoke" in result.output and "[red]" in result.output


# -- nesting depth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line",
    [
        # 180 nested `[` in a 434-byte file
        ('genai 1\nproject "x" {\n  data { source = ' + "[" * 180 + "]" * 180 + " }\n}\n", 3),
        # 350 nested blocks
        ('genai 1\nproject "x" {\n' + "a {\n" * 350 + "}\n" * 350 + "}\n", 2 + MAX_DEPTH),
        # a deep map
        ('genai 1\nproject "x" {\n  data { mix = ' + "{ a = " * 100 + "1" + " }" * 100 + " }\n}\n", 3),
        # unclosed, so the parser stops early: still no RecursionError
        ("[" * 5000, 1),
    ],
)
def test_nesting_deeper_than_the_limit_is_one_diagnostic(builtin_registry, text, line):
    diagnostics = check(text, "deep.genai", registry=builtin_registry)
    (deep,) = diagnostics
    assert deep.code == "GS012" and deep.span.line == line
    assert str(MAX_DEPTH) in deep.message and deep.hint
    assert "^" in render(deep, text)


def test_nesting_at_the_limit_is_accepted():
    inner = "[" * (MAX_DEPTH - 2) + '"a"' + "]" * (MAX_DEPTH - 2)
    document = parse(f'project "x" {{\n  data {{ source = {inner} }}\n}}\n')
    assert document.body


def test_nesting_too_deep_in_an_override_points_at_it():
    with pytest.raises(SpecError) as info:
        parse_override("data.source=" + "[" * 60 + "]" * 60, line=2)
    (deep,) = info.value.diagnostics
    assert deep.code == "GS012" and deep.span.file == "--set" and deep.span.line == 2


def test_nesting_too_deep_from_the_command_line(runner, tmp_path):
    path = tmp_path / "deep.genai"
    path.write_text('genai 1\nproject "x" {\n' + "a {\n" * 350 + "}\n" * 350 + "}\n")
    for command in ("check", "plan", "fmt"):
        result = runner.invoke(cli, [command, str(path)])
        _no_traceback(result)
        assert result.exit_code == 1 and "GS012" in result.output


# -- a path is a path -------------------------------------------------------------------------


def test_a_path_with_braces_is_read_as_a_path(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("br{ace}.genai").write_text(TINY)
    for command in ("check", "plan"):
        result = runner.invoke(cli, [command, "br{ace}.genai"])
        assert result.exit_code == 0, result.output
    import genaisdk

    assert genaisdk.plan("br{ace}.genai").spec_file == "br{ace}.genai"
    assert genaisdk.plan(Path("br{ace}.genai")).spec_file == "br{ace}.genai"


def test_train_passes_its_spec_argument_as_a_path(runner, tmp_path, monkeypatch):
    pytest.importorskip("jax")
    import genaisdk.backend.jax.train as backend

    monkeypatch.chdir(tmp_path)
    Path("br{ace}.genai").write_text(TINY)
    seen = []

    def fake_train(spec, options):
        seen.append(spec)
        raise backend.TrainError("stopped before training")

    monkeypatch.setattr(backend, "train", fake_train)
    result = runner.invoke(cli, ["train", "br{ace}.genai", "--steps", "1"])
    assert result.exit_code == 1 and "stopped before training" in result.output
    assert seen == [Path("br{ace}.genai")]
    assert backend.load_spec("br{ace}.genai").filename == "br{ace}.genai"


def test_is_path_decides_by_what_was_passed(tmp_path):
    existing = tmp_path / "a{b}.genai"
    existing.write_text(TINY)
    assert is_path(existing) and is_path(str(existing))
    assert is_path(tmp_path / "missing {x}.genai")  # a PathLike is a path, existing or not
    assert is_path("specs/missing.genai")  # no break, no brace: a path (loading says it is missing)
    assert not is_path(TINY) and not is_path('project "x" { task = chat }')
    assert not is_path("x" * 100_000 + "{")  # too long for a file name: text, no OSError


# -- large inputs: linear time, bounded memory, a size limit -------------------------------


# Timed in CPU seconds of this process (`time.process_time`): other work on the machine
# does not count, quadratic work does.


def test_many_comment_lines_are_read_in_linear_time():
    text = HEAD + "  # a comment line\n" * 40_000 + "}\n"
    start = time.process_time()
    comments = comments_of(text, "c.genai")
    assert time.process_time() - start < 5  # counting lines per comment took 32 s
    assert len(comments) == 40_000 and comments[-1].span.line == 40_003 and comments[-1].own_line


def test_many_diagnostics_render_in_linear_time_and_are_capped():
    text = HEAD + "  domain = legal\n" * 40_000 + "}\n"
    diagnostics = [
        Diagnostic(code="GS104", severity="error", message="set twice", span=Span(file="d.genai", line=n, column=3, end_line=n, end_column=9))
        for n in range(5, 40_004)
    ]
    start = time.process_time()
    shown = render_all(diagnostics, text)
    assert time.process_time() - start < 5  # splitting the source per diagnostic took 111 s
    assert shown.count("error[GS104]") == MAX_RENDERED
    assert shown.endswith(f"... and {40_000 - 1 - MAX_RENDERED:,} more not shown ({40_000 - 1 - MAX_RENDERED:,} errors); `genai check --json` lists every one")
    assert "   5 |   domain = legal" in shown


def test_check_reports_every_duplicate_and_shows_the_first_ones(runner, tmp_path):
    path = tmp_path / "d.genai"
    path.write_text(HEAD + "  domain = legal\n" * 2_000 + "}\n")
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert result.output.count("error[GS104]") == MAX_RENDERED
    assert f"... and {1_999 - MAX_RENDERED:,} more not shown" in result.output
    assert result.output.strip().endswith("d.genai: 1999 errors")


def test_source_lines_match_splitting():
    text = "a\n\nccc\r\n" + "x\n" * 5000 + "last"
    lines = text.split("\n")
    index = SourceLines(text)
    assert len(lines) == 5004
    for number in (1, 2, 3, 4, 4000, 5003, 5004, 2, 1):
        assert index.line(number) == lines[number - 1]
    assert index.line(5005) is None and index.line(0) is None
    assert SourceLines("").line(1) == "" and SourceLines("a\n").line(2) == ""


def test_blank_lines_cost_little_memory():
    text = "genai 1\n" + "\n" * 1_000_000 + 'project "x" {\n}\n'
    tracemalloc.start()
    try:
        parse(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # the line-break pattern kept ~350 bytes per character (350 MB here)


def test_a_long_line_is_shown_as_a_window_around_the_error():
    text = 'genai 1\nproject "x" { task = summarization; scope = "' + "y" * 100_000 + '"; taks = chat }\n'
    (diagnostic,) = check(text, "long.genai")
    shown = render(diagnostic, text)
    source_line, caret_line = shown.split("\n")[1:3]
    assert len(source_line) < 200 and source_line.startswith("   2 | …")
    assert source_line[caret_line.index("^") :].startswith("taks")


def test_a_file_over_the_size_limit_is_refused(runner, tmp_path, monkeypatch):
    monkeypatch.setenv(SIZE_VARIABLE, "10000")
    big = tmp_path / "big.genai"
    # The data give `size = auto` something to size from: under the limit, the spec is sound.
    big.write_text(HEAD + "  data {\n    tokens = 1B tokens\n  }\n" + "  # filler\n" * 1996 + "}\n")
    for command in ("check", "plan", "fmt"):
        result = runner.invoke(cli, [command, str(big)])
        _no_traceback(result)
        assert result.exit_code == 1
        assert "GS011" in result.output and "is 0.022 MB; a spec may be at most 0.01 MB" in result.output and SIZE_VARIABLE in result.output
    result = runner.invoke(cli, ["check", "-"], input=big.read_text())
    assert result.exit_code == 1 and "more than 0.01 MB" in result.output
    with pytest.raises(SpecError) as info:
        loads(big.read_text())
    assert info.value.diagnostics[0].code == "GS011"
    monkeypatch.setenv(SIZE_VARIABLE, "30000")
    assert runner.invoke(cli, ["check", str(big)]).exit_code == 0


def test_an_endless_file_is_refused_after_the_limit(monkeypatch):
    zero = Path("/dev/zero")
    if not zero.exists():
        pytest.skip("no /dev/zero")
    monkeypatch.setenv(SIZE_VARIABLE, "1000")
    with pytest.raises(SpecError) as info:
        read_spec_file(zero)
    assert info.value.diagnostics[0].code == "GS011" and "more than" in info.value.diagnostics[0].message


def test_a_bad_size_setting_is_reported(monkeypatch):
    monkeypatch.setenv(SIZE_VARIABLE, "lots")
    with pytest.raises(SpecError) as info:
        loads(TINY)
    assert "must be a number of characters" in info.value.diagnostics[0].message


def test_recovery_work_stays_linear_in_the_file_size(builtin_registry, monkeypatch):
    import genaisdk.spec.parse as parse_module

    calls = []
    original = parse_module._parse
    monkeypatch.setattr(parse_module, "_parse", lambda text, name: calls.append(len(text)) or original(text, name))
    monkeypatch.setattr(parse_module, "RECOVERY_WORK", 50_000)
    text = HEAD + "  # filler\n" * 3_000 + "  a =\n" * 30 + "}\n"
    _, diagnostics = parse_recovering(text, "r.genai")
    assert sum(calls[:-1]) <= 50_000 + len(text) and len(diagnostics) < 30


# -- counts are whole --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.5 tokens", "1e-300 tokens", "0 tokens", "2.5"])
def test_a_token_count_is_whole_and_at_least_one(builtin_registry, value):
    text = TINY.replace("tokens   = 1M tokens", f"tokens   = {value}")
    (diagnostic,) = [d for d in check(text, "t.genai", registry=builtin_registry) if d.is_error]
    assert diagnostic.code == "GS203" and "whole and at least 1" in diagnostic.message


@pytest.mark.parametrize("key, value", [("model.size", "0.5 params"), ("train.batch", "4095.5 tokens"), ("model.context", "0.5 tokens")])
def test_every_counted_quantity_is_whole(builtin_registry, key, value):
    with pytest.raises(SpecError) as info:
        loads(TINY, overrides={key: value}, registry=builtin_registry)
    assert [d.code for d in info.value.diagnostics if d.is_error] == ["GS203"]


def test_whole_counts_with_prefixes_are_accepted(builtin_registry):
    text = TINY.replace("tokens   = 1M tokens", "tokens   = 1.5M tokens")
    assert loads(text, registry=builtin_registry).project.data.tokens == 1_500_000


# -- string escapes ----------------------------------------------------------------------------


def test_an_unknown_escape_is_an_error_with_the_fix(builtin_registry):
    text = TINY.replace("source   = synthetic", 'source   = "C:\\data\\new\\x.txt"')
    (diagnostic,) = [d for d in check(text, "t.genai", registry=builtin_registry) if d.is_error]
    assert diagnostic.code == "GS013" and diagnostic.message == "unknown escape `\\d` in a string"
    assert diagnostic.span.column == text.splitlines()[diagnostic.span.line - 1].index("\\d") + 1
    assert '"C:\\\\data\\\\new\\\\x.txt"' in diagnostic.hint and '"C:/data/new/x.txt"' in diagnostic.hint


def test_every_string_with_an_unknown_escape_is_reported(builtin_registry):
    text = TINY.replace('project "tiny-gpt"', 'project "a\\qb"').replace("source   = synthetic", 'source   = "x\\y"')
    diagnostics = check(text, "t.genai", registry=builtin_registry)
    assert [(d.code, d.span.line) for d in diagnostics] == [("GS013", 5), ("GS013", 19)]
    with pytest.raises(SpecError):
        format_text(text)


def test_an_unknown_escape_in_an_override(builtin_registry):
    with pytest.raises(SpecError) as info:
        loads(TINY, overrides=['data.source="a\\b"'], registry=builtin_registry)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "GS013" and diagnostic.span.file == "--set" and diagnostic.span.column == 15


def test_known_escapes_stay_valid():
    assert escape_problem('"a\\n\\t\\\\\\"b"') is None
    assert escape_problem('"a\\\\d"') is None and escape_problem('"a\\d"') == (2, "d")
    (attribute,) = parse('s = "tab\\there \\"q\\" back\\\\slash\\nline"\n').body
    assert attribute.value.terms[0].string == 'tab\there "q" back\\slash\nline'
    assert unescape('"\\d"') == "\\d"  # never silently dropped


# -- terminal control characters ---------------------------------------------------------------

EVIL = TINY.replace('project "tiny-gpt"', 'project "evil\x1b[2J\u202e"').replace(
    "# generated", "# \x1b]0;title\x07 generated"
)


def test_check_escapes_control_characters_in_the_source_line_and_message(runner, tmp_path):
    path = tmp_path / "e.genai"
    path.write_text(EVIL.replace("precision     = fp32", 'precision     = "\x1b[5m"'))
    result = runner.invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    lines = result.output.splitlines()
    source = next(line for line in lines if "precision     =" in line)
    caret = lines[lines.index(source) + 1]
    assert source.endswith('"\\x1b[5m"') and caret.endswith("^" * len('"\\x1b[5m"'))
    assert caret.index("^") == source.index('"\\x1b')


@pytest.mark.parametrize("command", [["plan"], ["plan", "--markdown"], ["explain"], ["check"]])
def test_commands_print_no_control_characters(runner, tmp_path, command):
    path = tmp_path / "e.genai"
    path.write_text(EVIL)
    result = runner.invoke(cli, [command[0], str(path), *command[1:]])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    if command[0] != "check":
        assert "evil\\x1b[2J\\u202e" in result.output


def test_fmt_keeps_control_characters_in_the_file(runner, tmp_path):
    path = tmp_path / "e.genai"
    messy = EVIL.replace("  task  = text-generation", "  task=text-generation")
    path.write_text(messy)
    diff = runner.invoke(cli, ["fmt", "--diff", str(path)])  # not a terminal: the exact change
    assert diff.exit_code == 0 and "+  task  = text-generation" in diff.output
    assert runner.invoke(cli, ["fmt", str(path)]).exit_code == 0
    assert path.read_text() == format_text(messy) == EVIL
    assert "\x1b[2J\u202e" in path.read_text()
