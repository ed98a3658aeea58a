"""A plugin is bounded in what it can do to the host: caught, named, skipped and timed.

Each case is a fake installed distribution whose plugin misbehaves: it exits the process,
interrupts, sleeps, never stops yielding, or hands over NaN and infinite figures. The
registry must name the plugin, skip it (or, for an interrupt, stop naming it) and keep
everything else working.
"""

from __future__ import annotations

import itertools
import math
import re
import time

import attrs
import pytest
from click.testing import CliRunner

from genaisdk.dims import Dimensions
from genaisdk.records import Hardware, Optimizer, Preset
from genaisdk.registry import PluginExit, PluginLimits, PluginSettings, PluginTimeout
from genaisdk.testing import fake_distribution, registry_with

HEAD = (
    "import sys, time\n"
    "from genaisdk.hookspecs import hookimpl\n"
    "from genaisdk.dims import Dimensions\n"
    "from genaisdk.records import Hardware, Optimizer, Preset\n"
)
GPU = (
    "Hardware(name={name!r}, memory_bytes=2**34, peak_flops={{'bf16': {bf16}}},"
    " bandwidth_bytes_per_s={bandwidth}, power_watts=250, source='test')"
)


def gpu(name: str = "ok-gpu", bf16: str = "1e14", bandwidth: str = "1e12") -> str:
    return GPU.format(name=name, bf16=bf16, bandwidth=bandwidth)


def hook(body: str, name: str = "genaisdk_hardware", args: str = "") -> str:
    return f"@hookimpl\ndef {name}({args}):\n" + "".join(f"    {line}\n" for line in body.splitlines())


_modules = itertools.count()


def plugin(source: str, dist: str = "rogue-dist"):
    # A fresh module name each time: a plugin abandoned mid-import keeps its module's import
    # lock until its thread ends, so a later test importing the same name would wait for it.
    module = f"rogue_plugin_{next(_modules)}"
    return fake_distribution(dist, "6.6.6", entry_points={"rogue": module}, modules={module: HEAD + source})


def good():
    return fake_distribution(
        "good-dist", "1.0", entry_points={"good": "good_plugin"}, modules={"good_plugin": HEAD + hook(f"yield {gpu()}")}
    )


def statuses(registry) -> dict[str, tuple[str, str | None]]:
    return {p.name: (p.status, p.error) for p in registry.plugins if not p.builtin}


def run_cli(*args: str):
    from genaisdk.cli import cli

    return CliRunner().invoke(cli, list(args))


BROKEN_SPEC = 'genai 1\nproject "x" {\n  task = summarization\n  model { size = 1B }\n  data { tokens = 1B tokens }\n  budget { hardware = 8 x nosuch-gpu }\n}\n'


# -- the process is the host's --------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 3, None])
def test_sys_exit_at_import_fails_the_plugin_not_the_process(code, capsys) -> None:
    with good(), plugin(f"sys.exit({code!r})\n"), registry_with(entry_points=True) as registry:
        names = registry.names("hardware")
        found = statuses(registry)
    status, error = found["rogue"]
    assert status == "failed"
    assert f"called sys.exit({code!r}) while being imported" in error
    assert found["good"] == ("active", None) and "ok-gpu" in names and "h100-sxm" in names
    assert "'rogue' from rogue-dist 6.6.6 failed and was skipped" in capsys.readouterr().err


def test_sys_exit_in_a_hook_fails_the_plugin() -> None:
    with plugin(hook("sys.exit(0)")), registry_with(entry_points=True) as registry:
        status, error = statuses(registry)["rogue"]
    assert status == "failed" and "called sys.exit(0) in genaisdk_hardware" in error


def test_a_ci_gate_still_fails_a_broken_spec_when_a_plugin_exits(tmp_path) -> None:
    spec = tmp_path / "broken.genai"
    spec.write_text(BROKEN_SPEC)
    with plugin("sys.exit(0)\n"), registry_with(entry_points=True):
        result = run_cli("check", str(spec))
    assert result.exit_code == 1, result.output
    assert "nosuch-gpu" in result.stdout
    assert "'rogue' from rogue-dist 6.6.6 failed" in result.stderr


def test_strict_mode_raises_a_plugin_error_not_system_exit() -> None:
    with plugin("sys.exit(0)\n"), registry_with(entry_points=True, strict=True) as registry:
        with pytest.raises(PluginExit, match=r"sys.exit\(0\)"):
            registry.names("hardware")


def test_keyboard_interrupt_at_import_names_the_plugin(capsys) -> None:
    with plugin("raise KeyboardInterrupt\n"), registry_with(entry_points=True) as registry:
        with pytest.raises(KeyboardInterrupt):
            registry.names("hardware")
    err = capsys.readouterr().err
    assert "interrupted while plugin 'rogue' (rogue-dist 6.6.6) was running its import" in err
    assert "GENAISDK_DISABLE_PLUGINS=rogue" in err


def test_keyboard_interrupt_through_the_cli_is_aborted_with_the_plugins_name(tmp_path) -> None:
    spec = tmp_path / "broken.genai"
    spec.write_text(BROKEN_SPEC)
    with plugin(hook("raise KeyboardInterrupt")), registry_with(entry_points=True):
        result = run_cli("check", str(spec))
    assert result.exit_code == 1
    assert "Aborted!" in result.output
    assert "plugin 'rogue' (rogue-dist 6.6.6) was running genaisdk_hardware" in result.stderr


# -- time ----------------------------------------------------------------------------------


def test_a_hook_that_sleeps_is_abandoned_at_the_time_limit() -> None:
    limits = PluginLimits(timeout_s=1.0)
    started = time.perf_counter()
    with good(), plugin(hook("time.sleep(30)\nyield " + gpu("late-gpu"))):
        with registry_with(entry_points=True, limits=limits) as registry:
            names = registry.names("hardware")
            found = statuses(registry)
            seconds = {p.name: p.seconds for p in registry.plugins}
    assert time.perf_counter() - started < 5
    status, error = found["rogue"]
    assert status == "failed" and re.match(r"PluginTimeout: genaisdk_hardware was still running after \d\.\d s", error)
    assert "GENAISDK_PLUGIN_TIMEOUT" in error
    assert "late-gpu" not in names and "ok-gpu" in names
    assert 0.3 < seconds["rogue"] < 3  # most of the budget (it runs from the import on), spent waiting


def test_an_import_that_hangs_is_abandoned_too() -> None:
    with plugin("time.sleep(30)\n"), registry_with(entry_points=True, limits=PluginLimits(timeout_s=0.5)) as registry:
        status, error = statuses(registry)["rogue"]
    assert status == "failed" and "its import was still running after" in error


def test_the_time_budget_is_shared_by_the_import_and_every_hook() -> None:
    # Each step takes 0.4 s, under the 1 s limit; together they exceed it.
    source = "time.sleep(0.4)\n" + hook("time.sleep(0.4)\nreturn []") + hook("time.sleep(0.4)\nreturn []", "genaisdk_presets")
    with plugin(source), registry_with(entry_points=True, limits=PluginLimits(timeout_s=1.0)) as registry:
        status, error = statuses(registry)["rogue"]
        seconds = {p.name: p.seconds for p in registry.plugins}["rogue"]
    assert status == "failed" and "was still running" in error
    assert seconds < 2


def test_a_slow_plugin_is_named_but_kept(capsys) -> None:
    limits = PluginLimits(timeout_s=5, slow_s=0.05)
    with plugin(hook("time.sleep(0.15)\nyield " + gpu("slow-gpu"))):
        with registry_with(entry_points=True, limits=limits) as registry:
            assert "slow-gpu" in registry.names("hardware")
            assert statuses(registry)["rogue"] == ("active", None)
    err = capsys.readouterr().err
    assert re.search(r"plugin 'rogue' \(rogue-dist 6\.6\.6\) took \d+\.\d s to load", err), err
    assert "GENAISDK_DISABLE_PLUGINS=rogue skips it" in err


def test_a_validate_hook_that_sleeps_or_exits_is_a_warning(monkeypatch) -> None:
    monkeypatch.setenv("GENAISDK_LOAD_PLUGINS", "rogue")
    for body, expected in [
        ("time.sleep(30)\nreturn []", "genaisdk_validate was still running after"),
        ("sys.exit(0)", "called sys.exit(0) in genaisdk_validate"),
    ]:
        with plugin(hook(body, "genaisdk_validate", "spec")):
            with registry_with(entry_points=True, limits=PluginLimits(timeout_s=1.0)) as registry:
                (diagnostic,) = registry.validate(object())
        assert diagnostic.code == "GR001" and diagnostic.severity == "warning"
        assert "plugin 'rogue' (rogue-dist 6.6.6)" in diagnostic.message and expected in diagnostic.message


def test_timeout_setting_from_the_environment() -> None:
    assert PluginSettings.from_env({}).limits.timeout_s == 5.0
    assert PluginSettings.from_env({"GENAISDK_PLUGIN_TIMEOUT": "0.5"}).limits.timeout_s == 0.5
    assert PluginSettings.from_env({"GENAISDK_PLUGIN_TIMEOUT": "0"}).limits.timeout_s is None
    bad = PluginSettings.from_env({"GENAISDK_PLUGIN_TIMEOUT": "soon"})
    assert bad.limits.timeout_s == 5.0 and "GENAISDK_PLUGIN_TIMEOUT='soon'" in bad.problems[0]
    assert PluginSettings.from_env({"GENAISDK_STRICT_PLUGINS": " Yes "}).strict


def test_builtins_are_not_put_on_a_clock(capsys) -> None:
    # A built-in is genaisdk's own code: it is timed, but never abandoned or called slow.
    with registry_with(limits=PluginLimits(timeout_s=1e-9, slow_s=1e-9)) as registry:
        assert "h100-sxm" in registry.names("hardware")
        assert all(p.status == "active" and p.seconds > 0 for p in registry.plugins)
    assert "warning" not in capsys.readouterr().err


# -- size ----------------------------------------------------------------------------------


def test_an_endless_generator_of_records_is_cut_off() -> None:
    endless = "i = 0\nwhile True:\n    i += 1\n    yield " + gpu("gpu-{i}").replace("name='gpu-{i}'", "name=f'gpu-{i}'")
    source = hook(endless)
    with good(), plugin(source), registry_with(entry_points=True) as registry:
        names = registry.names("hardware")
        status, error = statuses(registry)["rogue"]
    assert status == "failed"
    assert "genaisdk_hardware returned more than 10,000 records (an endless generator?)" in error
    assert not any(name.startswith("gpu-") for name in names) and "ok-gpu" in names


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, expected",
    [
        (gpu(bf16="float('nan')"), "peak_flops['bf16'] must be a finite number > 0, got nan"),
        (gpu(bf16="float('inf')"), "peak_flops['bf16'] must be a finite number > 0, got inf"),
        (gpu(bandwidth="float('nan')"), "'bandwidth_bytes_per_s' must be a finite number: nan"),
        (gpu(bandwidth="float('inf')"), "'bandwidth_bytes_per_s' must be a finite number: inf"),
        (
            "Preset(name='nan-model', architecture='decoder', source='test', dims=Dimensions("
            "layers=2, d_model=float('nan'), heads=2, d_ff=8, vocab=10, context=8))",
            "'nan-model' has dims.d_model = nan",
        ),
        (
            "Optimizer(name='inf-opt', state_bytes=4, source='test', defaults={'b1': float('inf')})",
            "'inf-opt' has defaults['b1'] = inf",
        ),
    ],
    ids=["nan-flops", "inf-flops", "nan-bandwidth", "inf-bandwidth", "nan-dimension", "inf-default"],
)
def test_nan_and_infinite_figures_do_not_pass_the_door(record: str, expected: str) -> None:
    hook_name = {"P": "genaisdk_presets", "O": "genaisdk_optimizers"}.get(record[0], "genaisdk_hardware")
    with good(), plugin(hook(f"yield {record}", hook_name)), registry_with(entry_points=True) as registry:
        kinds = {kind: registry.names(kind) for kind in ("hardware", "presets", "optimizers")}
        status, error = statuses(registry)["rogue"]
    assert status == "failed" and expected in error, error
    assert "ok-gpu" in kinds["hardware"]
    assert "nan-model" not in kinds["presets"] and "inf-opt" not in kinds["optimizers"]


def test_record_fields_reject_nan_and_infinity_when_built() -> None:
    base = dict(name="x", memory_bytes=2**30, peak_flops={"bf16": 1.0}, bandwidth_bytes_per_s=1.0, source="test")
    Hardware(**base)
    for field, value in [("power_watts", math.nan), ("power_watts", math.inf), ("price_per_hour", math.nan)]:
        with pytest.raises(ValueError, match=field):
            Hardware(**{**base, field: value})
    with pytest.raises(ValueError, match="published_params"):
        Preset(name="p", architecture="decoder", dims=Dimensions(layers=1, d_model=8, heads=1, d_ff=8, vocab=8, context=8),
               published_params=math.inf)  # fmt: skip
    with pytest.raises(ValueError, match="state_bytes"):
        Optimizer(name="o", state_bytes=math.nan)
    assert attrs.evolve(Hardware(**base), power_watts=300.0).power_watts == 300.0


def test_limits_are_positive() -> None:
    with pytest.raises(ValueError):
        PluginLimits(timeout_s=0)
    with pytest.raises(ValueError):
        PluginLimits(max_records=0)
    assert issubclass(PluginTimeout, Exception) and issubclass(PluginExit, Exception)
