"""Did-you-mean never proposes the opposite of what was typed."""

from __future__ import annotations

import pytest

from genaisdk.core.names import suggest
from genaisdk.diagnostics import SpecError
from genaisdk.spec import check, loads

PRECISIONS = ["bf16", "bf16-pure", "fp16", "fp32", "fp8", "int4", "int8", "tf32"]
ALIASES = {"bf16-mixed": "bf16", "bfloat16": "bf16", "pure-bf16": "bf16-pure", "fp16-mixed": "fp16", "float32": "fp32"}


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("mixed-bf16", "bf16-mixed"),
        ("mixed-fp16", "fp16-mixed"),
        ("mixed-bf61", "bf16-mixed"),
        ("fp61", "fp16"),
        ("bf16_pure", "bf16-pure"),
        ("qwerty", None),
    ],
)
def test_suggest(typed, expected):
    assert suggest(typed, PRECISIONS, aliases=ALIASES) == expected


def test_a_close_name_with_another_word_swapped_in_is_not_offered():
    assert suggest("mixed-bf16", ["pure-bf16"]) is None
    assert suggest("h100-80g", ["h100-sxm"], aliases={"h100-80gb": "h100-sxm"}) == "h100-80gb"


def test_the_spec_hint_for_a_reordered_precision(builtin_registry):
    (d,) = check('genai 1\nproject "p" {\n  train {\n    precision = mixed-bf16\n  }\n}\n', registry=builtin_registry)
    assert d.code == "GS301" and d.hint == "did you mean `bf16-mixed`?"


def test_an_unquoted_project_name_says_quote_it(builtin_registry):
    with pytest.raises(SpecError) as info:
        loads('genai 1\nproject legal {\n  task = chat\n}\n', registry=builtin_registry)
    (d,) = info.value.diagnostics
    assert d.code == "GS014" and 'quote it: `project "legal" {`' in d.hint
