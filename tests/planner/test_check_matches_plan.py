"""What `genai plan` rejects without searching configurations, `genai check` rejects too,
with the same code: the checks live in one layer (`genaisdk.spec.validate`), which the
planner also runs on a Spec built in code."""

from __future__ import annotations

import attrs
import pytest

import genaisdk
from genaisdk.diagnostics import SpecError
from genaisdk.spec import check

from .conftest import spec_text

BASE = spec_text(
    model="family = decoder\nsize = 125M\ncontext = 1024 tokens",
    data="tokens = 2B tokens",
    train="precision = bf16",
    budget="hardware = 8 x a100-80gb",
)


def _evolve(spec, path: str, value):
    """The Spec with project.<path> set, as a program building specs in code would."""
    head, _, rest = path.partition(".")
    project = spec.project
    if not rest:
        return attrs.evolve(spec, project=attrs.evolve(project, **{head: value}))
    block = attrs.evolve(getattr(project, head), **{rest: value})
    return attrs.evolve(spec, project=attrs.evolve(project, **{head: block}))


CASES = [
    # (what, text replacement for genai check, [(path, value)] for a Spec built in code, code)
    ("unknown LoRA targets", ("method = pretrain", "method = lora\n    targets = [q_proj, v_proj]"),
     [("adapt.method", "lora"), ("adapt.targets", ("q_proj", "v_proj"))], "GS301"),
    ("a precision that cannot train", ("precision = bf16", "precision = int8"), [("train.precision", "int8")], "GS304"),
    ("an objective of another family", ("family = decoder", "family = decoder\n    objective = masked-lm"),
     [("model.objective", "masked-lm")], "GS302"),
    ("everything held out", ("tokens = 2B tokens", "tokens = 2B tokens\n    held_out = 100%"), [("data.held_out", 1.0)], "GS204"),
    ("a mix that is not 100%", ("tokens = 2B tokens", "tokens = 2B tokens\n    mix = { a = 50%, b = 40% }"),
     [("data.mix", {"a": 0.5, "b": 0.4})], "GS207"),
    ("kv heads that do not divide heads", ("size = 125M", "layers = 2\n    d_model = 768\n    heads = 12\n    kv_heads = 5"),
     [("model.layers", 2), ("model.d_model", 768), ("model.heads", 12), ("model.kv_heads", 5)], "GS210"),
    ("size = auto with nothing to size from", ("size = 125M", "size = auto"),
     [("model.size", genaisdk.AUTO), ("data.tokens", None)], "GP005"),
    ("an unknown precision", ("precision = bf16", "precision = fp61"), [("train.precision", "fp61")], "GS301"),
    ("a preset of another family", ("size = 125M", "preset = bert-base"), [("model.preset", "bert-base")], "GS303"),
]


@pytest.mark.parametrize("what, change, fields, code", CASES, ids=[c[0] for c in CASES])
def test_check_rejects_what_plan_rejects_with_the_same_code(what, change, fields, code):
    old, new = change
    text = BASE.replace(old, new)
    if code == "GP005":
        text = text.replace("    tokens = 2B tokens\n", "")
    assert text != BASE
    errors = [d for d in check(text) if d.is_error]
    assert code in {d.code for d in errors}, [str(d.message) for d in errors]

    spec = genaisdk.loads(BASE)
    for path, value in fields:
        spec = _evolve(spec, path, value)
    with pytest.raises(SpecError) as info:
        genaisdk.plan(spec)
    assert code in {d.code for d in info.value.diagnostics if d.is_error}


def test_one_severity_per_code():
    from genaisdk.core.codes import CODES, RETIRED, severity

    assert not set(CODES) & set(RETIRED)
    for code, (level, meaning) in CODES.items():
        assert severity(code) == level in ("error", "warning", "info") and meaning


@pytest.mark.parametrize(
    "what, change, fields, stand_in",
    [
        ("bf16 on hardware without bf16", ("8 x a100-80gb", "8 x v100-32gb"), [("budget.hardware", "v100-32gb")], "fp16"),
        ("fp8 on hardware without fp8", ("precision = bf16", "precision = fp8"), [("train.precision", "fp8")], "bf16"),
    ],
)
def test_a_precision_the_hardware_does_not_quote_is_planned_with_a_warning(what, change, fields, stand_in):
    """Memory does not depend on the hardware's arithmetic: check and plan both warn (GS306),
    and time takes the nearest format the hardware quotes."""
    old, new = change
    found = check(BASE.replace(old, new))
    assert [d.code for d in found if d.is_error] == []
    assert "GS306" in {d.code for d in found if d.severity == "warning"}
    spec = genaisdk.loads(BASE)
    for path, value in fields:
        spec = _evolve(spec, path, value)
    plan = genaisdk.plan(spec)
    assert "GS306" in {d.code for d in plan.diagnostics}
    peak = next(a for a in plan.assumptions if a.name == "peak_flops")
    assert f"{stand_in} peak standing in" in peak.source
    assert plan.time.seconds > 0
