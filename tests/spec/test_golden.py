"""Golden tests: one mistake per file in golden/, the exact rendered diagnostics beside it.

A case is `golden/NAME.genai`; its expected output is `golden/NAME.expected` (every
diagnostic `genai check` renders, in order). A first line `# set: path=value` applies an
override, as `--set` would. To regenerate after an intended change of wording:

    GENAISDK_UPDATE_GOLDEN=1 python -m pytest tests/spec/test_golden.py

and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genaisdk.diagnostics import render_all
from genaisdk.spec import diagnose

GOLDEN = Path(__file__).with_name("golden")
CASES = sorted(p.stem for p in GOLDEN.glob("*.genai"))
UPDATE = os.environ.get("GENAISDK_UPDATE_GOLDEN", "") not in ("", "0")


def rendered(name: str, registry) -> str:
    text = (GOLDEN / f"{name}.genai").read_text()
    overrides = [line[len("# set:"):].strip() for line in text.splitlines() if line.startswith("# set:")]
    _, diagnostics, source = diagnose(text, f"{name}.genai", overrides=overrides or None, registry=registry)
    return render_all(diagnostics, source) + "\n"


def test_there_are_at_least_25_distinct_mistakes():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", CASES)
def test_golden(name, builtin_registry):
    actual = rendered(name, builtin_registry)
    expected_path = GOLDEN / f"{name}.expected"
    if UPDATE or not expected_path.exists():
        expected_path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"{expected_path.name} was missing and has been written; review it")
    assert actual == expected_path.read_text()


@pytest.mark.parametrize("name", CASES)
def test_messages_never_show_parser_internals(name, builtin_registry):
    actual = rendered(name, builtin_registry)
    for word in ("$END", "_NL", "RBRACE", "LBRACE", "__ANON", "Token(", "Traceback", "lark"):
        assert word not in actual


@pytest.mark.parametrize("name", CASES)
def test_every_error_has_a_place_and_a_hint(name, builtin_registry):
    text = (GOLDEN / f"{name}.genai").read_text()
    overrides = [line[len("# set:"):].strip() for line in text.splitlines() if line.startswith("# set:")]
    _, diagnostics, _ = diagnose(text, f"{name}.genai", overrides=overrides or None, registry=builtin_registry)
    assert diagnostics, f"{name} reports nothing"
    for diagnostic in diagnostics:
        assert diagnostic.span is not None
        assert diagnostic.hint, diagnostic
