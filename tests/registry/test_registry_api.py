"""The registry's query interface: catalogs, lookups, aliases, laziness, validate."""

from __future__ import annotations

import pytest

from genaisdk.diagnostics import Diagnostic
from genaisdk.records import RECORD_KINDS, normalize_name
from genaisdk.registry import PluginError, Registry, UnknownKindError, get_registry, set_registry
from genaisdk.testing import make_plugin, registry_with

from .conftest import gpu


def test_catalogs_are_sorted_normalized_and_attributed() -> None:
    plugin = make_plugin("my-gpus", genaisdk_hardware=lambda: [gpu("Zeta_GPU"), gpu("alpha.2")])
    with registry_with(plugin) as registry:
        catalog = registry.catalog("hardware")
        assert list(catalog) == sorted(catalog)
        assert registry.names("hardware") == list(catalog)
        zeta = registry.get("hardware", "ZETA_gpu")
        assert zeta is catalog["zeta-gpu"]
        assert zeta.name == zeta.key == "zeta-gpu"
        assert zeta.provider == "my-gpus"
        assert registry.get("hardware", " Alpha.2 ").name == "alpha.2"
        for kind in RECORD_KINDS:
            for key, record in registry.catalog(kind).items():
                assert key == record.name == normalize_name(record.name)


@pytest.mark.parametrize("name", ["alpha gpu", "4090", "-x", "a--b", "gpu!"])
def test_a_name_a_spec_cannot_write_is_rejected(name: str) -> None:
    with registry_with(make_plugin("odd", genaisdk_hardware=lambda: [gpu(name)])) as registry:
        registry.names("hardware")
        (info,) = [p for p in registry.plugins if p.name == "odd"]
    assert info.status == "failed"
    assert f"{name!r} cannot be a name" in info.error


def test_catalog_is_a_copy() -> None:
    with registry_with() as registry:
        registry.catalog("hardware").clear()
        assert registry.names("hardware")


def test_aliases_resolve_and_suggest() -> None:
    with registry_with() as registry:
        assert registry.get("hardware", "H100-80GB").name == "h100-sxm"
        assert registry.get("strategies", "zero3").name == "fsdp"
        assert registry.aliases("hardware")["h100"] == "h100-sxm"
        assert "h100-80gb" not in registry.names("hardware")
        assert registry.suggest("precisions", "bf61") == ["bf16"]
        assert registry.suggest("hardware", "h100-80g")[0] == "h100-sxm"
        assert registry.suggest("optimizers", "zzzzzz") == []


def test_get_of_a_non_name_is_none() -> None:
    from genaisdk.spec.model import AUTO

    with registry_with() as registry:
        assert registry.get("precisions", AUTO) is None
        assert registry.get("precisions", None) is None


def test_unknown_kind_says_what_it_meant() -> None:
    with registry_with() as registry:
        with pytest.raises(UnknownKindError, match="unknown catalog kind 'hardwares'; did you mean 'hardware'"):
            registry.catalog("hardwares")
        with pytest.raises(UnknownKindError):
            registry.get("gpu", "a100-80gb")


def test_loading_is_lazy_and_happens_once() -> None:
    calls = []

    def hardware():
        calls.append(1)
        return [gpu()]

    registry = Registry(entry_points=False, plugins=[make_plugin("counted", genaisdk_hardware=hardware)])
    assert calls == []
    registry.names("hardware")
    registry.catalog("tasks")
    registry.get("hardware", "test-gpu")
    assert calls == [1]


def test_get_registry_is_process_wide_and_replaceable() -> None:
    first = get_registry()
    assert get_registry() is first
    mine = Registry(entry_points=False)
    assert set_registry(mine) is first
    assert get_registry() is mine
    with registry_with() as temporary:
        assert get_registry() is temporary
    assert get_registry() is mine


def test_a_plugin_object_may_be_a_class_instance() -> None:
    from genaisdk.hookspecs import hookimpl

    class Gpus:
        __name__ = "class-gpus"

        @hookimpl
        def genaisdk_hardware(self):
            yield gpu("class-gpu")

    with registry_with(Gpus()) as registry:
        assert registry.get("hardware", "class-gpu").provider == "class-gpus"


def _diagnostic(code: str, line: int) -> Diagnostic:
    from genaisdk.diagnostics import Span

    return Diagnostic(code=code, severity="error", message=f"problem {code}", span=Span(line=line))


def test_validate_collects_sorted_diagnostics_from_every_plugin() -> None:
    seen = []

    def first(spec):
        seen.append(spec)
        return [_diagnostic("A2", 9)]

    def second(spec):
        yield _diagnostic("B1", 3)

    plugins = [make_plugin("one", genaisdk_validate=first), make_plugin("two", genaisdk_validate=second)]
    spec = object()
    with registry_with(*plugins) as registry:
        found = registry.validate(spec)
    assert [d.code for d in found] == ["B1", "A2"]
    assert seen == [spec]


def test_a_validate_hook_that_breaks_becomes_a_warning() -> None:
    def raising(spec):
        raise ZeroDivisionError("oops")

    def wrong(spec):
        return ["not a diagnostic"]

    def fine(spec):
        return [_diagnostic("OK1", 1)]

    plugins = [
        make_plugin("raising", genaisdk_validate=raising),
        make_plugin("wrong", genaisdk_validate=wrong),
        make_plugin("fine", genaisdk_validate=fine),
    ]
    with registry_with(*plugins) as registry:
        found = {d.code: d for d in registry.validate(object())}
    assert set(found) == {"GR001", "GR002", "OK1"}
    assert found["GR001"].severity == "warning"
    assert "'raising'" in found["GR001"].message and "ZeroDivisionError: oops" in found["GR001"].message
    assert "'wrong'" in found["GR002"].message
    with registry_with(*plugins, strict=True) as registry, pytest.raises(ZeroDivisionError):
        registry.validate(object())
    with registry_with(plugins[1], strict=True) as registry, pytest.raises(PluginError, match="not a Diagnostic"):
        registry.validate(object())
