"""GENAISDK_LOAD_PLUGINS (allow), GENAISDK_DISABLE_PLUGINS (deny) and `genai --no-plugins`."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from genaisdk.testing import fake_distribution, registry_with

HOOKS = "from genaisdk.hookspecs import hookimpl\nfrom genaisdk.records import Hardware\n"


def _gpu_plugin(dist: str, ep: str, gpu: str):
    source = HOOKS + (
        "@hookimpl\ndef genaisdk_hardware():\n"
        f"    yield Hardware(name={gpu!r}, memory_bytes=2**34, peak_flops={{'bf16': 1e14}},\n"
        "                   bandwidth_bytes_per_s=1e12, power_watts=250)\n"
    )
    module = ep.replace("-", "_") + "_mod"
    return fake_distribution(dist, "1.0", entry_points={ep: module}, modules={module: source})


def _landmine():
    """A plugin that fails if it is ever imported: deselected plugins must not be."""
    modules = {"landmine_mod": "raise SystemError('imported')"}
    return fake_distribution("landmine-dist", entry_points={"landmine": "landmine_mod"}, modules=modules)


def _statuses(registry) -> dict[str, str]:
    return {p.name: p.status for p in registry.plugins if not p.builtin}


def test_all_plugins_load_by_default() -> None:
    with _gpu_plugin("alpha-dist", "alpha", "alpha-gpu"), _gpu_plugin("beta-dist", "beta", "beta-gpu"):
        with registry_with(entry_points=True) as registry:
            assert {"alpha-gpu", "beta-gpu"} <= set(registry.names("hardware"))
            statuses = _statuses(registry)
    assert statuses["alpha"] == statuses["beta"] == "active"


@pytest.mark.parametrize("selection", ["alpha", "ALPHA", "alpha-dist", "alpha_dist", " alpha , nothing-else "])
def test_allow_list_by_entry_point_or_distribution_name(
    selection: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENAISDK_LOAD_PLUGINS", selection)
    with _gpu_plugin("alpha-dist", "alpha", "alpha-gpu"), _gpu_plugin("beta-dist", "beta", "beta-gpu"), _landmine():
        with registry_with(entry_points=True) as registry:
            names = registry.names("hardware")
            statuses = _statuses(registry)
    assert "alpha-gpu" in names and "beta-gpu" not in names
    assert statuses["alpha"] == "active"
    assert statuses["beta"] == statuses["landmine"] == "disabled"
    assert "a100-80gb" in names  # built-ins always load
    err = capsys.readouterr().err
    assert ("'nothing-else', but no installed plugin is called that" in err) == ("nothing-else" in selection)


def test_empty_allow_list_loads_only_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAISDK_LOAD_PLUGINS", "")
    with _gpu_plugin("alpha-dist", "alpha", "alpha-gpu"), _landmine():
        with registry_with(entry_points=True) as registry:
            assert "alpha-gpu" not in registry.names("hardware")
            assert "a100-80gb" in registry.names("hardware")
            assert set(_statuses(registry).values()) == {"disabled"}


def test_deny_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAISDK_DISABLE_PLUGINS", "landmine,beta-dist")
    with _gpu_plugin("alpha-dist", "alpha", "alpha-gpu"), _gpu_plugin("beta-dist", "beta", "beta-gpu"), _landmine():
        with registry_with(entry_points=True) as registry:
            assert "alpha-gpu" in registry.names("hardware")
            assert "beta-gpu" not in registry.names("hardware")
            statuses = {name: s for name, s in _statuses(registry).items() if name in ("alpha", "beta", "landmine")}
            assert statuses == {"alpha": "active", "beta": "disabled", "landmine": "disabled"}


def test_no_plugins_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from genaisdk.cli import cli

    with _gpu_plugin("alpha-dist", "alpha", "alpha-gpu"), _landmine():
        try:
            plain = CliRunner().invoke(cli, ["plugins", "--json"])
            with registry_with(entry_points=True):
                flagged = CliRunner().invoke(cli, ["--no-plugins", "plugins", "--json"])
        finally:
            os.environ.pop("GENAISDK_LOAD_PLUGINS", None)
    assert plain.exit_code == 0 and flagged.exit_code == 0, flagged.output
    before = {p["name"]: p["status"] for p in json.loads(plain.stdout)}
    after = {p["name"]: p["status"] for p in json.loads(flagged.stdout)}
    assert before["alpha"] == "active" and before["landmine"] == "failed"
    assert after["alpha"] == after["landmine"] == "disabled"
    assert after["genaisdk.builtins.hardware"] == "active"
