"""The canonical layout: stable, comment-preserving, and meaning-preserving."""

from __future__ import annotations

import pytest

from genaisdk.spec import format_text, loads
from genaisdk.spec.parse import parse

from .conftest import SPECS

EXAMPLES = sorted(SPECS.glob("*.genai"))
GOLDEN = sorted((SPECS.parent / "tests" / "spec" / "golden").glob("*.genai"))


@pytest.mark.parametrize("path", EXAMPLES + GOLDEN, ids=lambda p: p.name)
def test_fmt_is_idempotent_and_keeps_comments(path):
    text = path.read_text()
    try:
        once = format_text(text)
    except Exception as exc:  # golden files with syntax errors cannot be formatted
        assert type(exc).__name__ == "SpecError"
        return
    assert format_text(once) == once
    assert [c.text for c in parse(once).comments] == [c.text.rstrip() for c in parse(text).comments]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_fmt_keeps_the_meaning(path, builtin_registry):
    text = path.read_text()
    assert loads(format_text(text), registry=builtin_registry) == loads(text, registry=builtin_registry)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_are_in_canonical_layout(path):
    text = path.read_text()
    assert format_text(text) == text


def test_canonical_layout():
    messy = (
        "// header\n\n\n"
        "genai 1\n"
        'project "x" {   # the project\n'
        "\n"
        "  task=chat;domain = legal # where\n"
        "      model { family = decoder }\n"
        "\n\n\n"
        "  # about the budget\n"
        "  budget {\n"
        "    hardware = 8 x a100-80gb\n"
        "    time<=30 days\n"
        "    cost <= $1k // money\n"
        "  }\n"
        "  data {\n"
        "    mix = {a = 50%,\n"
        "      b = 50%   # second\n"
        "    }\n"
        "    source = [ \"x\" , \"y\" ]\n"
        "  # end of data\n"
        "  }\n"
        "}\n"
        "# the end"
    )
    expected = (
        "// header\n"
        "\n"
        "genai 1\n"
        "\n"
        'project "x" {  # the project\n'
        "  task   = chat\n"
        "  domain = legal  # where\n"
        "  model {\n"
        "    family = decoder\n"
        "  }\n"
        "\n"
        "  # about the budget\n"
        "  budget {\n"
        "    hardware = 8 x a100-80gb\n"
        "    time    <= 30 days\n"
        "    cost    <= $1k  // money\n"
        "  }\n"
        "  data {\n"
        "    mix    = {\n"
        "      a = 50%,\n"
        "      b = 50%,  # second\n"
        "    }\n"
        '    source = ["x", "y"]\n'
        "    # end of data\n"
        "  }\n"
        "}\n"
        "# the end\n"
    )
    assert format_text(messy) == expected
    assert format_text(expected) == expected


def test_long_lists_are_broken_one_entry_per_line():
    items = ", ".join(f'"data/part-{n:03d}.txt"' for n in range(6))
    formatted = format_text(f"source = [{items}]\n")
    assert formatted.splitlines()[0] == "source = ["
    assert formatted.splitlines()[1] == '  "data/part-000.txt",'
    assert formatted.splitlines()[-1] == "]"
    assert format_text(formatted) == formatted
