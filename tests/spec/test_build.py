"""Tree to Spec: values in canonical units, names resolved, spans, overrides, plugin keys,
requirements and the validate hook."""

from __future__ import annotations

import attrs
import pytest

from genaisdk.diagnostics import Diagnostic, SpecError
from genaisdk.records import DimensionField
from genaisdk.spec import check, diagnose, load, loads
from genaisdk.spec.model import AUTO, Bound, Spec
from genaisdk.testing import fake_distribution, make_plugin, registry_with

from .conftest import SPECS

LEGAL = (SPECS / "legal.genai").read_text()

SMALL = """genai 1
project "p" {
  task = chat
  model {
    family = decoder
    context = 1024 tokens
  }
  train {
    precision = bf16
  }
  budget {
    hardware = 8 x a100-80gb
    cost     = $10k
  }
}
"""


def codes(diagnostics):
    return [d.code for d in diagnostics]


def test_legal_spec_in_canonical_units(builtin_registry):
    spec = loads(LEGAL, "legal.genai", registry=builtin_registry)
    project = spec.project
    assert spec.version == 1
    assert project.name == "legal-summarizer"
    assert project.task == "summarization" and project.domain == "legal"
    assert project.model.family is AUTO and project.model.size is AUTO
    assert project.model.context == 2048
    assert project.data.tokens == 60e9
    assert project.data.mix == {"legal": 0.51, "web": 0.49}
    assert project.adapt.method == "pretrain"
    assert project.train.precision == "bf16" and project.train.sharding is AUTO
    assert project.train.batch == 1e6 and project.train.micro_batch is AUTO
    assert project.train.recompute == "selective" and project.train.attention == "flash"
    assert project.budget.hardware == "a100-80gb" and project.budget.devices == 64
    assert project.budget.time == Bound(value=30 * 86400, op="=")
    assert project.budget.cost == Bound(value=250e3, op="=")
    assert project.serve.precision == "int8" and project.serve.context == 4096 and project.serve.batch == 16
    assert spec.diagnostics == ()


def test_carbon_intensity_in_grams_per_kwh_and_a_comment_after_it(builtin_registry):
    text = SMALL.replace("    hardware = 8 x a100-80gb\n", "    hardware = 8 x a100-80gb\n    carbon_intensity = 0.4 kg/kWh // grid average\n")
    spec = loads(text, registry=builtin_registry)
    assert spec.project.budget.carbon_intensity == 400.0
    with pytest.raises(SpecError) as info:
        loads(text.replace("0.4 kg/kWh", "400 days"), registry=builtin_registry)
    assert "expects a carbon intensity" in info.value.diagnostics[0].message


def test_spans_point_at_values(builtin_registry):
    spec = loads(LEGAL, "legal.genai", registry=builtin_registry)
    span = spec.spans["train.precision"]
    assert (span.file, span.line, span.column) == ("legal.genai", 22, 19)
    for path in ("name", "task", "model", "model.context", "data.mix.legal", "budget.devices", "budget.time", "serve.batch"):
        assert path in spec.spans, path


def test_spec_equality_ignores_positions(builtin_registry):
    moved = "\n\n" + LEGAL.replace("  task   =", "  task =")
    assert loads(moved, registry=builtin_registry) == loads(LEGAL, registry=builtin_registry)


def test_aliases_resolve_to_the_registered_name(builtin_registry):
    spec = loads(SMALL.replace("8 x a100-80gb", "8 x h100"), registry=builtin_registry)
    assert spec.project.budget.hardware == "h100-sxm"


@pytest.mark.parametrize(
    "value, devices",
    [("auto x h100-sxm", AUTO), ("8x a100-80gb", 8), ("a100-80gb", None), ("1_024 x a100-80gb", 1024)],
)
def test_hardware_phrases(value, devices, builtin_registry):
    spec = loads(SMALL.replace("8 x a100-80gb", value), registry=builtin_registry)
    assert spec.project.budget.devices == devices


def test_devices_given_twice_is_an_error(builtin_registry):
    text = SMALL.replace("hardware = 8 x a100-80gb", "hardware = 8 x a100-80gb\n    devices = 16")
    assert "GS208" in codes(check(text, registry=builtin_registry))


def test_names_are_normalized(builtin_registry):
    spec = loads(SMALL.replace("family = decoder", "family = Encoder_Decoder").replace("task = chat", "task = translation"), registry=builtin_registry)
    assert spec.project.model.family == "encoder-decoder"


def test_all_independent_problems_are_reported_in_order(builtin_registry):
    text = SMALL.replace("task = chat", "task = chatt").replace("bf16", "bf61").replace("1024 tokens", "1024 days")
    diagnostics = check(text, "f.genai", registry=builtin_registry)
    assert codes(diagnostics) == ["GS301", "GS201", "GS301"]
    assert [d.span.line for d in diagnostics] == sorted(d.span.line for d in diagnostics)


def test_load_reads_files_and_reports_unreadable_ones(tmp_path, builtin_registry):
    path = tmp_path / "x.genai"
    path.write_text(SMALL)
    assert load(path, registry=builtin_registry).project.name == "p"
    with pytest.raises(SpecError) as info:
        load(tmp_path / "missing.genai", registry=builtin_registry)
    assert info.value.diagnostics[0].code == "GS010"
    path.write_bytes(b"\xff\xfe junk")
    with pytest.raises(SpecError) as info:
        load(path, registry=builtin_registry)
    assert "UTF-8" in info.value.diagnostics[0].message


# -- overrides ------------------------------------------------------------------------------


def test_overrides_replace_and_add_values(builtin_registry):
    spec = loads(
        LEGAL,
        overrides=[
            "train.precision=fp16",
            "budget.hardware=8 x h100-sxm",
            "data.mix.legal=60%",
            "data.mix.web=40%",
            "task=translation",
            "project.model.size=3B",
            "serve.batch = 4",
        ],
        registry=builtin_registry,
    )
    project = spec.project
    assert project.train.precision == "fp16"
    assert (project.budget.hardware, project.budget.devices) == ("h100-sxm", 8)
    assert project.data.mix == {"legal": 0.6, "web": 0.4}
    assert project.task == "translation"
    assert project.model.size == 3e9
    assert project.serve.batch == 4
    assert spec.spans["train.precision"].file == "--set"


def test_overrides_as_a_mapping_and_into_a_missing_block(builtin_registry):
    spec = loads(SMALL, overrides={"serve.precision": "int8", "adapt.method": "lora"}, registry=builtin_registry)
    assert spec.project.serve.precision == "int8"
    assert spec.project.adapt.method == "lora"


def test_override_errors_point_at_the_override(builtin_registry):
    _, diagnostics, source = diagnose(LEGAL, "legal.genai", overrides=["train.precision=fp61"], registry=builtin_registry)
    (diagnostic,) = diagnostics
    assert diagnostic.span.file == "--set" and diagnostic.span.column == 17
    assert diagnostic.hint == "did you mean `fp16`?"
    assert source["--set"] == "train.precision=fp61"


@pytest.mark.parametrize("override", ["train.precision", "a..b=1", "a.b.c.d=1", "x=\"open"])
def test_unreadable_overrides(override, builtin_registry):
    with pytest.raises(SpecError) as info:
        loads(LEGAL, overrides=[override], registry=builtin_registry)
    assert all(d.span.file == "--set" for d in info.value.diagnostics)


# -- plugins: extra model keys, requirements, the validate hook -----------------------------


@pytest.fixture
def moe_registry():
    """A registry with a decoder variant that declares `experts` and `top_k`."""
    from genaisdk.registry import Registry

    decoder = Registry(entry_points=False).get("architectures", "decoder")
    moe = attrs.evolve(
        decoder,
        name="toy-moe",
        provider="",
        aliases=(),
        extra_dims=(
            DimensionField(name="experts", kind="count", description="Experts per layer."),
            DimensionField(name="top_k", kind="count", description="Experts per token."),
            DimensionField(name="capacity", kind="fraction"),
        ),
    )
    plugin = make_plugin("toy-moe", genaisdk_architectures=lambda: [moe])
    with registry_with(plugin, install=False) as registry:
        yield registry


def test_architecture_extra_dims_become_model_keys(moe_registry):
    text = SMALL.replace("family = decoder", "family = toy-moe\n    experts = 8\n    top_k = 2\n    capacity = 125%")
    assert codes(check(text, registry=moe_registry)) == ["GS204"]
    spec = loads(text.replace("125%", "25%"), registry=moe_registry)
    assert spec.project.model.extra == {"experts": 8, "top_k": 2, "capacity": 0.25}
    assert "model.experts" in spec.spans


def test_extra_dims_of_another_family_are_refused_by_name(moe_registry):
    text = SMALL.replace("family = decoder", "family = decoder\n    experts = 8")
    (diagnostic,) = check(text, registry=moe_registry)
    assert diagnostic.code == "GS305"
    assert "`toy-moe`" in diagnostic.message and diagnostic.hint == "set `family = toy-moe` to use it"


def test_requirements_are_checked_against_installed_versions(builtin_registry):
    with fake_distribution("genaisdk-fake-plugin", "0.3", entry_points={}):
        ok = SMALL.replace('project "p" {', 'requires {\n  genaisdk-fake-plugin = ">=0.1"\n}\nproject "p" {')
        spec = loads(ok, registry=builtin_registry)
        assert [(r.distribution, r.specifier) for r in spec.project.requires] == [("genaisdk-fake-plugin", ">=0.1")]
        (diagnostic,) = check(ok.replace(">=0.1", ">=1.0"), registry=builtin_registry)
    assert diagnostic.code == "GS402"
    assert "version 0.3 is installed" in diagnostic.message
    assert diagnostic.hint == "pip install --upgrade 'genaisdk-fake-plugin>=1.0'"


def test_validate_hook_runs_last_and_only_on_a_sound_spec():
    seen: list[Spec] = []

    def validate(spec):
        seen.append(spec)
        return [Diagnostic(code="XP001", severity="warning", message="from a plugin", span=spec.spans.get("task"))]

    with registry_with(make_plugin("checker", genaisdk_validate=validate), install=False) as registry:
        spec = loads(SMALL, registry=registry)
        assert codes(spec.diagnostics) == ["XP001"]
        assert seen and seen[0] == spec
        check(SMALL.replace("bf16", "bf61"), registry=registry)
    assert len(seen) == 1


# -- warnings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, code",
    [
        (("family = decoder", "family = decoder\n    decoder_layers = 6"), "GS502"),
        (("  train {", "  adapt {\n    method = prompt\n  }\n  train {"), "GS504"),
        (("  train {", "  adapt {\n    method = finetune\n    targets = [q, v]\n  }\n  train {"), "GS505"),
        (("family = decoder", "family = decoder\n    preset = llama-7b\n    size = 7B"), "GS501"),
        (("precision = bf16", "precision = bf16\n    batch = 512 tokens"), "GS508"),
        (("precision = bf16", "precision = fp8"), "GS306"),  # no fp8 arithmetic: time from its bf16 peak
        (("precision = bf16", "precision = bf16\n    optimizer = sgd\n    optimizer_state = bf16"), "GS509"),
    ],
)
def test_warnings(change, code, builtin_registry):
    old, new = change
    spec = loads(SMALL.replace(old, new), registry=builtin_registry)
    assert code in codes(spec.diagnostics)
    assert all(d.severity == "warning" for d in spec.diagnostics)


def test_no_task_and_auto_family_warns(builtin_registry):
    text = SMALL.replace("  task = chat\n", "").replace("family = decoder", "family = auto")
    assert "GS507" in codes(check(text, registry=builtin_registry))


@pytest.mark.parametrize(
    "change, code",
    [
        (("family = decoder", "family = decoder\n    heads = 12\n    kv_heads = 5"), "GS210"),
        (("family = decoder", "family = decoder\n    d_model = 100\n    heads = 12"), "GS210"),
        (("family = decoder", "family = encoder\n    preset = llama-7b"), "GS303"),
        (("family = decoder", "family = decoder\n    objective = masked-lm"), "GS302"),
        (("  train {", "  adapt {\n    method = lora\n    targets = [q_proj, v_proj]\n  }\n  train {"), "GS301"),
        (("  train {", "  data {\n    held_out = 100%\n  }\n  train {"), "GS204"),
        (("    cost     = $10k\n", ""), "GP005"),  # size = auto with nothing to size from
        (("  model {", "  model {\n    preset = gpt-7"), "GS301"),
        (("  train {", "  adapt {\n    method = lora\n    rank = 0\n  }\n  train {"), "GS204"),
        (("  train {", "  data {\n    source = [\"a.txt\", 3]\n  }\n  train {"), "GS205"),
        (("  train {", "  data {\n    keep = 3\n  }\n  train {"), "GS204"),
        (('project "p" {', 'project "" {'), "GS108"),
        (("  train {", "  model {\n  }\n  train {"), "GS104"),
        (("precision = bf16", "precision = bf16\n    optimizer = adam-8bit\n    optimizer_state = bf16"), "GS308"),
        (("  train {", "  train2 {\n  }\n  train {"), "GS103"),
        (("precision = bf16", "precision { }"), "GS110"),
        (("  task = chat", "  task = chat\n  model = decoder"), "GS110"),
        (("  train {", "  budget \"x\" {\n  }\n  train {"), "GS108"),
    ],
)
def test_errors(change, code, builtin_registry):
    old, new = change
    assert code in codes(check(SMALL.replace(old, new), registry=builtin_registry))


def test_spec_sources_cover_the_overrides(builtin_registry):
    from genaisdk.diagnostics import render

    spec = loads(LEGAL, "legal.genai", overrides=["train.precision=fp16"], registry=builtin_registry)
    assert spec.sources == {"legal.genai": LEGAL, "--set": "train.precision=fp16"}
    note = Diagnostic(code="XP1", severity="warning", message="m", span=spec.spans["train.precision"])
    assert "   1 | train.precision=fp16" in render(note, spec.sources)
    assert loads(LEGAL, "legal.genai", registry=builtin_registry).sources == {"legal.genai": LEGAL}


def test_a_byte_order_mark_is_not_part_of_the_spec(tmp_path, builtin_registry):
    path = tmp_path / "bom.genai"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert load(path, registry=builtin_registry).project.name == "p"


def test_requirements_are_checked_even_when_other_things_are_wrong(builtin_registry):
    text = SMALL.replace('project "p" {', 'requires {\n  genaisdk-not-installed-anywhere = ""\n}\nproject "p" {')
    diagnostics = check(text.replace("bf16", "bf61"), registry=builtin_registry)
    assert codes(diagnostics) == ["GS401", "GS301"]


def test_an_empty_map_is_quoted_as_written(builtin_registry):
    (problem,) = check(SMALL.replace("1024 tokens", "{}"), registry=builtin_registry)
    assert problem.message == "`context` expects a token count, got `{}`"
