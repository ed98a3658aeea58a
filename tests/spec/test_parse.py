"""Text to tree: nodes and their positions, comments, separators, and override syntax."""

from __future__ import annotations

import pytest

from genaisdk.diagnostics import Span, SpecError
from genaisdk.spec.parse import parse, parse_override, scan
from genaisdk.spec.tree import Atom, Attribute, Block, ListNode, MapNode, quote, unescape

from .conftest import SPECS


def test_legal_spec_tree_and_positions():
    document = parse((SPECS / "legal.genai").read_text(), "legal.genai")
    assert document.version.text == "1"
    (project,) = document.body
    assert isinstance(project, Block) and project.name == "project"
    assert project.label.string == "legal-summarizer"
    model = next(s for s in project.body if isinstance(s, Block) and s.name == "model")
    assert model.name_span == Span(file="legal.genai", line=9, column=3, end_line=9, end_column=8)
    assert model.open_span.line == 9 and model.close_span.line == 13
    context = model.body[2]
    assert isinstance(context, Attribute) and context.key == "context"
    assert [t.text for t in context.value.terms] == ["2048", "tokens"]
    assert context.value.span == Span(file="legal.genai", line=12, column=15, end_line=12, end_column=26)


def test_every_node_has_a_span():
    document = parse((SPECS / "legal.genai").read_text())

    def walk(node):
        assert isinstance(node.span, Span)
        for child in getattr(node, "body", ()):
            walk(child)
        value = getattr(node, "value", None)
        if value is not None:
            walk(value)
        for term in getattr(node, "terms", ()):
            walk(term)
        for item in getattr(node, "items", ()):
            walk(item)
        for pair in getattr(node, "pairs", ()):
            walk(pair)

    for statement in document.body:
        walk(statement)


def test_comments_are_collected_with_their_place():
    document = parse('# head\ngenai 1 // version\nproject "x" { # open\n  a = "#not a comment" # tail\n}\n')
    texts = [(c.text, c.span.line, c.own_line) for c in document.comments]
    assert texts == [("# head", 1, True), ("// version", 2, False), ("# open", 3, False), ("# tail", 4, False)]


def test_separators_one_line_blocks_and_empty_blocks():
    document = parse('project "x" { a = 1; b = 2 }\nreq {}\n')
    project, req = document.body
    assert [s.key for s in project.body] == ["a", "b"]
    assert req.body == ()


def test_lists_and_maps_over_several_lines_with_trailing_commas():
    document = parse('a = [\n  "x",\n  "y",\n]\nm = {\n  p = 1\n  q = 2,\n}\n')
    first, second = document.body
    (items,) = first.value.terms
    assert isinstance(items, ListNode) and [v.terms[0].string for v in items.items] == ["x", "y"]
    (mapping,) = second.value.terms
    assert isinstance(mapping, MapNode) and [p.key for p in mapping.pairs] == ["p", "q"]


def test_money_and_phrases():
    (attribute,) = parse("cost <= $250k\n").body
    assert attribute.op == "<="
    (money,) = attribute.value.terms
    assert money.kind == "money" and money.text == "250k" and money.source() == "$250k"
    (hardware,) = parse("hardware = 64 x a100-80gb\n").body
    assert [t.text for t in hardware.value.terms] == ["64", "x", "a100-80gb"]


def test_windows_line_endings_and_no_final_newline():
    document = parse('genai 1\r\nproject "x" {\r\n  a = 1\r\n}  # end')
    assert document.body[0].body[0].key == "a"
    assert document.comments[0].text == "# end"


def test_string_escapes_round_trip():
    text = 'a "quoted" \\ back\tslash\nnew'
    assert unescape(quote(text)) == text
    (attribute,) = parse(f"s = {quote(text)}\n").body
    assert attribute.value.terms[0].string == text


def test_scan_ignores_brackets_in_strings_and_comments():
    found = scan('a = "{[" # }]\nb {\n')
    assert [b.char for b in found.open_at_end] == ["{"]
    assert found.open_at_end[0].owner == "b"
    assert [c[2] for c in found.comments] == ["# }]"]


def test_override_syntax():
    path, path_span, op, value = parse_override("train.precision=fp16", line=3)
    assert path == "train.precision" and op == "="
    assert path_span.line == 3 and value.span.line == 3
    assert isinstance(value.terms[0], Atom) and value.terms[0].text == "fp16"
    path, _, _, value = parse_override("budget.hardware = 8 x h100-sxm")
    assert path == "budget.hardware" and len(value.terms) == 3


@pytest.mark.parametrize("text", ["train.precision", "train.precision=", "=fp16", "a.b=[1,"])
def test_bad_override_raises_spec_error(text):
    with pytest.raises(SpecError) as info:
        parse_override(text)
    assert info.value.diagnostics[0].span.file == "--set"


def test_syntax_error_is_a_spec_error_with_one_diagnostic():
    with pytest.raises(SpecError) as info:
        parse('project "x" {\n  a = \n}\n', "f.genai")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "GS005" and diagnostic.span.file == "f.genai" and diagnostic.span.line == 2


def test_recovery_reports_each_line_local_syntax_error():
    from genaisdk.spec.parse import parse_recovering

    text = 'project "x" {\n  a =\n  b c\n  d = "open\n  e = 1\n}\n'
    document, diagnostics = parse_recovering(text, "f.genai")
    assert [(d.code, d.span.line) for d in diagnostics] == [("GS005", 2), ("GS006", 3), ("GS002", 4)]
    assert [s.key for s in document.body[0].body] == ["e"]
    assert document.source == text


def test_recovery_stops_at_an_error_that_spans_lines():
    from genaisdk.spec.parse import parse_recovering

    document, diagnostics = parse_recovering('project "x" {\n  a =\n  model {\n}\n', "f.genai")
    assert document is None
    assert [d.code for d in diagnostics] == ["GS005", "GS003"]
