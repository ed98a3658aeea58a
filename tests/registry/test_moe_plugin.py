"""The first-party plugin plugins/genaisdk-moe, seen from outside: installed (or faked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.diagnostics import SpecError
from genaisdk.registry import ENTRY_POINT_GROUP, scan_entry_points
from genaisdk.testing import fake_distribution, registry_with

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "plugins" / "genaisdk-moe" / "src"

SPEC = """genai 1

project "moe-chat" {
  task = chat
  model {
    family  = moe-decoder
    preset  = "mixtral-8x7b"
    experts = 8
    top_k   = TOP_K
  }
  data {
    tokens = 1T tokens
  }
  budget {
    hardware = 64 x h100-sxm
  }
}
"""


@pytest.fixture
def moe():
    """The plugin as installed by `pip install -e plugins/genaisdk-moe`, or, where it is not
    installed, the same source behind a faked distribution with the same entry point."""
    if any(ep.distribution == "genaisdk-moe" for ep in scan_entry_points(ENTRY_POINT_GROUP)):
        yield "installed"
        return
    sys.path.insert(0, str(PLUGIN_SRC))
    try:
        with fake_distribution("genaisdk-moe", "0.1.0", entry_points={"moe": "genaisdk_moe.plugin"}):
            yield "faked"
    finally:
        sys.path.remove(str(PLUGIN_SRC))


def test_genai_plugins_lists_it(moe) -> None:
    with registry_with(entry_points=True):
        result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    info = {p["name"]: p for p in json.loads(result.stdout)}["moe"]
    assert (info["distribution"], info["status"], info["builtin"]) == ("genaisdk-moe", "active", False)
    assert info["hooks"] == ["genaisdk_architectures", "genaisdk_presets", "genaisdk_validate"]
    assert info["records"] == {"architectures": 1, "presets": 2}


def test_genai_catalog_architectures_lists_moe_decoder(moe) -> None:
    with registry_with(entry_points=True):
        table = CliRunner().invoke(cli, ["catalog", "architectures"])
        records = json.loads(CliRunner().invoke(cli, ["catalog", "architectures", "--json"]).stdout)["records"]
    assert table.exit_code == 0 and "moe-decoder" in table.stdout
    moe_decoder = {r["name"]: r for r in records}["moe-decoder"]
    assert [d["name"] for d in moe_decoder["extra_dims"]] == ["experts", "top_k", "capacity_factor"]
    assert moe_decoder["provider"] == "moe"
    assert moe_decoder["count_params"] == "genaisdk_moe.counting:moe_count_params"


def test_its_presets_count_total_and_active_parameters(moe) -> None:
    with registry_with(entry_points=True):
        records = json.loads(CliRunner().invoke(cli, ["catalog", "presets", "--json"]).stdout)["records"]
    mixtral = {r["name"]: r for r in records}["mixtral-8x7b"]
    assert mixtral["params"] == 46_702_792_704 and mixtral["active_params"] == 12_879_925_248
    assert mixtral["published_params"] == 46.7e9


def test_a_spec_using_it_loads_and_its_validate_hook_runs(moe) -> None:
    import genaisdk

    with registry_with(entry_points=True):
        spec = genaisdk.loads(SPEC.replace("TOP_K", "2"))
        with pytest.raises(SpecError) as failure:
            genaisdk.loads(SPEC.replace("TOP_K", "9"))
    assert spec.project.model.family == "moe-decoder"
    assert spec.project.model.extra == {"experts": 8, "top_k": 2}
    assert [d.code for d in failure.value.diagnostics if d.is_error] == ["MOE001"]


def test_a_capacity_factor_below_one_is_an_error_not_a_crash(moe) -> None:
    import genaisdk

    text = SPEC.replace("TOP_K", "2").replace("  top_k   = 2\n", "  top_k   = 2\n    capacity_factor = 0.5\n")
    with registry_with(entry_points=True):
        with pytest.raises(SpecError) as failure:
            genaisdk.loads(text)
    (error,) = [d for d in failure.value.diagnostics if d.is_error]
    assert error.code == "MOE003" and error.span.line == 10


def test_without_plugins_there_is_no_moe_decoder(moe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAISDK_LOAD_PLUGINS", "")
    with registry_with(entry_points=True) as registry:
        assert registry.get("architectures", "moe-decoder") is None
        assert {p.name: p.status for p in registry.plugins}["moe"] == "disabled"
