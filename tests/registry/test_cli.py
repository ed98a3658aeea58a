"""`genai plugins` and `genai catalog`, including with a broken plugin installed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.dims import Dimensions
from genaisdk.records import RECORD_KINDS, Architecture, ParamCount, Preset
from genaisdk.testing import fake_distribution, make_plugin, registry_with


def broken():
    return fake_distribution(
        "broken-dist", "0.0.1", entry_points={"broken": "broken_mod"}, modules={"broken_mod": "import no_such_module"}
    )


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _toy_count(dims: Dimensions) -> ParamCount:
    total = dims.layers * 12 * dims.d_model**2 + dims.vocab * dims.d_model
    return ParamCount(total=total, active=total, embedding=dims.vocab * dims.d_model)


def _toy_plugin(count=_toy_count):
    architecture = Architecture(
        name="toy-decoder",
        family="decoder",
        count_params=count,
        flops_per_token=lambda dims, context: 6.0 * _toy_count(dims).total,
        activation_bytes=lambda dims, **kw: {"all": 0.0},
        description="12·L·d² + V·d",
        source="test",
    )
    dims = Dimensions(layers=2, d_model=64, heads=4, d_ff=256, vocab=1000, context=128)
    preset = Preset(name="toy-1", architecture="toy-decoder", dims=dims, published_params=162_304, source="test")
    return make_plugin("toy", genaisdk_architectures=lambda: [architecture], genaisdk_presets=lambda: [preset])


def test_plugins_lists_builtins_and_a_broken_plugin() -> None:
    with broken(), registry_with(entry_points=True):
        table = run("plugins")
        as_json = run("plugins", "--json")
    assert table.exit_code == 0 and as_json.exit_code == 0
    assert "genaisdk.builtins.hardware" in table.stdout and "failed" in table.stdout
    assert "ModuleNotFoundError: No module named 'no_such_module'" in table.stdout
    plugins = {p["name"]: p for p in json.loads(as_json.stdout)}
    assert plugins["broken"]["status"] == "failed"
    assert plugins["broken"]["distribution"] == "broken-dist" and plugins["broken"]["version"] == "0.0.1"
    assert "no_such_module" in plugins["broken"]["error"]
    hardware = plugins["genaisdk.builtins.hardware"]
    assert (hardware["status"], hardware["hooks"], hardware["error"]) == ("active", ["genaisdk_hardware"], None)
    assert hardware["records"]["hardware"] >= 14
    assert set(plugins["broken"]) == {
        "name", "distribution", "version", "status", "builtin", "target", "hooks", "records", "error", "seconds"
    }  # fmt: skip
    assert all(p["seconds"] >= 0 for p in plugins.values())


@pytest.mark.parametrize("kind", sorted(RECORD_KINDS))
def test_catalog_works_for_every_kind_with_a_broken_plugin(kind: str) -> None:
    with broken(), registry_with(entry_points=True) as registry:
        table = run("catalog", kind)  # loads the registry: the warning goes to this run's stderr
        as_json = run("catalog", kind, "--json")
        names = registry.names(kind)
    assert table.exit_code == 0, table.output
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["kind"] == kind
    assert [r["name"] for r in data["records"]] == names
    for name in names:
        assert name in table.stdout
    assert "broken-dist" in table.stderr  # the one warning


def test_catalog_hardware_shows_the_figures() -> None:
    with registry_with():
        result = run("catalog", "hardware")
        data = json.loads(run("catalog", "hardware", "--json").stdout)
    assert "989.4" in result.stdout  # H100 SXM dense bf16 TFLOP/s
    h100 = {r["name"]: r for r in data["records"]}["h100-sxm"]
    assert h100["memory_bytes"] == 80 * 2**30
    assert h100["peak_flops"]["bf16"] == 989.4e12
    assert h100["price_per_hour"] == 2.99 and h100["price_source"] and h100["price_date"] == "2025-07-13"
    assert (h100["intra_node_bytes_per_s"], h100["devices_per_node"]) == (450e9, 8)
    assert "2025-07-13" in result.stdout and "RunPod" in result.stdout  # the price's date and source
    assert h100["aliases"] == ["h100", "h100-80gb", "h100-sxm5"]


def test_catalog_json_names_callables_and_computes_preset_params() -> None:
    with registry_with(_toy_plugin()):
        architectures = json.loads(run("catalog", "architectures", "--json").stdout)
        presets = json.loads(run("catalog", "presets", "--json").stdout)
        table = run("catalog", "presets")
    toy = {r["name"]: r for r in architectures["records"]}["toy-decoder"]
    assert toy["count_params"] == f"{__name__}:_toy_count"
    assert toy["provider"] == "toy"
    preset = {r["name"]: r for r in presets["records"]}["toy-1"]
    assert preset["params"] == preset["active_params"] == 2 * 12 * 64**2 + 1000 * 64 == 162_304
    assert preset["dims"]["d_model"] == 64
    assert "toy-1" in table.stdout and "162.3k" in table.stdout


def test_preset_whose_count_fails_is_listed_with_the_error() -> None:
    def failing(dims):
        raise ArithmeticError("cannot count")

    plugin = _toy_plugin(count=failing)
    with registry_with(plugin):
        presets = json.loads(run("catalog", "presets", "--json").stdout)
        table = run("catalog", "presets")
    preset = {r["name"]: r for r in presets["records"]}["toy-1"]
    assert preset["params"] is None and "ArithmeticError: cannot count" in preset["params_error"]
    assert table.exit_code == 0 and "error" in table.stdout


@pytest.mark.parametrize("kind, hint", [("hardwre", "Did you mean 'hardware'?"), ("gpus", "Kinds: tasks")])
def test_unknown_kind_is_a_usage_error(kind: str, hint: str) -> None:
    with registry_with():
        result = run("catalog", kind)
    assert result.exit_code == 2
    assert f"unknown kind {kind!r}" in result.output and hint in result.output
    assert "Traceback" not in result.output


def test_singular_kind_and_kind_list() -> None:
    with registry_with():
        singular = run("catalog", "preset", "--json")
        kinds = json.loads(run("catalog", "--json").stdout)
    assert singular.exit_code == 0 and json.loads(singular.stdout)["kind"] == "presets"
    assert list(kinds) == list(RECORD_KINDS) and kinds["hardware"] >= 14
