"""Every example in specs/ loads without errors, and the schema covers the whole Spec."""

from __future__ import annotations

import attrs
import pytest

from genaisdk.spec import load, model
from genaisdk.spec.schema import BLOCKS

from .conftest import SPECS

EXAMPLES = sorted(SPECS.glob("*.genai"))


def test_the_expected_examples_exist():
    names = {p.name for p in EXAMPLES}
    for name in (
        "legal.genai", "gpt3-175b.genai", "llama-65b.genai", "bloomberggpt.genai", "bert-sentiment.genai",
        "t5-translation.genai", "chat-qlora.genai", "tiny-gpt.genai", "tiny-legal.genai",
    ):
        assert name in names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_without_errors(path):
    """With the installed plugins, as a user would run it."""
    spec = load(path)
    assert spec.project.name
    assert not [d for d in spec.diagnostics if d.is_error]


def test_published_runs_say_what_the_papers_say():
    llama = load(SPECS / "llama-65b.genai").project
    assert llama.data.tokens == 1.4e12
    assert (llama.budget.hardware, llama.budget.devices) == ("a100-80gb", 2048)
    assert llama.budget.time.value == 21 * 86400
    bloomberg = load(SPECS / "bloomberggpt.genai").project
    assert bloomberg.data.mix == {"financial": 0.51, "public": 0.49}
    assert bloomberg.data.tokens == 569e9 and bloomberg.model.preset == "bloomberggpt-50b"
    gpt3 = load(SPECS / "gpt3-175b.genai").project
    assert gpt3.data.tokens == 300e9 and gpt3.budget.hardware.startswith("v100")
    qlora = load(SPECS / "chat-qlora.genai").project
    assert qlora.adapt.method == "qlora" and (qlora.budget.hardware, qlora.budget.devices) == ("rtx-4090", 1)


def test_tiny_specs_are_small_enough_for_a_cpu():
    for name in ("tiny-gpt.genai", "tiny-legal.genai"):
        model_spec = load(SPECS / name).project.model
        assert model_spec.layers <= 4 and model_spec.d_model <= 128 and model_spec.vocab >= 259
        assert model_spec.context <= 256


def test_schema_reaches_every_spec_field():
    """Each field of the block classes is filled by exactly one schema key (or by the
    builder itself: the project's name, its blocks, `extra`, the requirements)."""
    by_builder = {
        "Project": {"name", "model", "data", "adapt", "train", "budget", "serve", "requires"},
        "ModelSpec": {"extra"},
        "Requirement": {"distribution", "specifier"},
    }
    for block in BLOCKS.values():
        if not block.spec_class:
            continue
        cls = getattr(model, block.spec_class)
        fields = {f.name for f in attrs.fields(cls)}
        targets = [key.target for key in block.keys.values()]
        assert len(targets) == len(set(targets)), block.name
        assert set(targets) <= fields, (block.name, set(targets) - fields)
        assert fields - set(targets) <= by_builder.get(block.spec_class, set()), (block.name, fields - set(targets))


def test_every_key_is_documented_and_names_its_registry():
    from genaisdk.records import RECORD_KINDS

    for block in BLOCKS.values():
        for key in block.keys.values():
            assert key.doc and key.doc.endswith("."), (block.name, key.name)
            if key.kind == "name":
                assert key.registry in RECORD_KINDS
            if key.kind == "quantity":
                assert key.dimension
