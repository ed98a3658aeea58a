"""Every hook is documented, in its docstring and in docs/plugins.md, and the tutorial works."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from genaisdk import hookspecs
from genaisdk.testing import registry_with

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _hook_sections() -> dict[str, str]:
    text = DOCS.read_text()
    parts = re.split(r"^### `(\w+)`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("hook", hookspecs.ALL_HOOKS)
def test_every_hook_has_a_reference_section_with_signature_and_example(hook: str) -> None:
    sections = _hook_sections()
    assert hook in sections, f"docs/plugins.md has no '### `{hook}`' section"
    body = sections[hook]
    assert f"`{hook}(" in body, "the section must give the exact signature"
    assert "```python" in body and "@hookimpl" in body and f"def {hook}(" in body, "and an example"


@pytest.mark.parametrize("hook", hookspecs.ALL_HOOKS)
def test_every_hook_spec_has_a_docstring_with_signature_and_example(hook: str) -> None:
    doc = getattr(hookspecs, hook).__doc__ or ""
    assert f"Signature: `{hook}(" in doc
    assert "Example::" in doc and f"def {hook}(" in doc


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    assert set(_hook_sections()) == set(hookspecs.ALL_HOOKS)


def test_every_record_kind_has_a_registration_hook() -> None:
    from genaisdk.records import RECORD_KINDS

    assert set(hookspecs.REGISTRATION_HOOKS) == set(RECORD_KINDS)
    for kind, hook in hookspecs.REGISTRATION_HOOKS.items():
        assert hook == f"genaisdk_{kind}"


def test_the_tutorial_plugin_registers_its_gpu() -> None:
    text = DOCS.read_text()
    tutorial = text[text.index("## Tutorial") : text.index("## How plugins are loaded")]
    (source,) = re.findall(r"```python\n(.*?)```", tutorial, flags=re.S)
    assert len(source.strip().splitlines()) <= 20
    module = types.ModuleType("genaisdk_gb200")
    exec(compile(source, "docs/plugins.md", "exec"), module.__dict__)
    with registry_with(module, strict=True) as registry:
        gb200 = registry.get("hardware", "GB200")
    assert gb200.provider == "genaisdk_gb200"
    assert gb200.peak_flops["bf16"] < gb200.peak_flops["fp8"]


def test_the_catalog_doc_lists_every_built_in_device_and_preset() -> None:
    text = (DOCS.parent / "catalog.md").read_text()
    with registry_with(install=False) as registry:
        names = [*registry.names("hardware"), *registry.names("presets")]
    missing = [name for name in names if f"| `{name}` |" not in text]
    assert not missing, f"docs/catalog.md lacks {missing}"
