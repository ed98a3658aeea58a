"""A broken plugin changes nothing but its own status and one clear warning."""

from __future__ import annotations

import pytest

from genaisdk.registry import DuplicateRecordError, PluginError
from genaisdk.testing import fake_distribution, registry_with

HOOKS = "from genaisdk.hookspecs import hookimpl\nfrom genaisdk.records import Hardware, Precision, Task\n"
GOOD_GPU = """
@hookimpl
def genaisdk_hardware():
    yield Hardware(name="good-gpu", memory_bytes=2**34, peak_flops={"bf16": 1e14},
                   bandwidth_bytes_per_s=1e12, power_watts=250, source="test")
"""

# name -> (module source, entry-point target, text the error must contain)
BROKEN = {
    "import-error": ("raise ImportError('needs libfoo')", "bad_plugin", "ImportError: needs libfoo"),
    "missing-object": (HOOKS, "bad_plugin:nothing_here", "AttributeError"),
    "raising-hook": (
        HOOKS + "@hookimpl\ndef genaisdk_hardware():\n    raise RuntimeError('no figures today')\n",
        "bad_plugin",
        "RuntimeError: no figures today",
    ),
    "raising-after-a-record": (
        HOOKS + GOOD_GPU.replace("good-gpu", "half-gpu") + "    raise KeyError('second record')\n",
        "bad_plugin",
        "KeyError",
    ),
    "wrong-record-type": (
        HOOKS
        + "@hookimpl\ndef genaisdk_hardware():\n"
        + "    yield Precision(name='fp5', weight_bytes=0.6, gradient_bytes=0)\n",
        "bad_plugin",
        "genaisdk_hardware returned Precision",
    ),
    "not-iterable": (
        HOOKS + "@hookimpl\ndef genaisdk_hardware():\n    return 42\n",
        "bad_plugin",
        "must return an iterable of Hardware records",
    ),
    "invalid-record": (
        HOOKS
        + "@hookimpl\ndef genaisdk_hardware():\n"
        + "    yield Hardware(name='x', memory_bytes=-1, peak_flops={'bf16': 1e14},\n"
        + "                   bandwidth_bytes_per_s=1e12, power_watts=1)\n",
        "bad_plugin",
        "genaisdk_hardware raised ValueError: 'memory_bytes' must be > 0: -1",
    ),
    "unknown-dtype": (
        HOOKS
        + "@hookimpl\ndef genaisdk_hardware():\n"
        + "    yield Hardware(name='x', memory_bytes=1, peak_flops={'bf61': 1e14},\n"
        + "                   bandwidth_bytes_per_s=1e12, power_watts=1)\n",
        "bad_plugin",
        "unknown dtype 'bf61'",
    ),
    "dangling-reference": (
        HOOKS
        + "@hookimpl\ndef genaisdk_tasks():\n"
        + "    yield Task(name='legal-qa', family='decoder', objective='causal_lmm')\n",
        "bad_plugin",
        "names objective 'causal_lmm' (did you mean 'causal-lm'?), which no plugin registers",
    ),
    "misspelt-hook": (
        HOOKS + "@hookimpl\ndef genaisdk_hardwares():\n    return []\n",
        "bad_plugin",
        "unknown hook 'genaisdk_hardwares'; did you mean 'genaisdk_hardware'?",
    ),
    "hook-without-prefix": (
        # Not caught by name: pluggy's check_pending() rejects a marked function with no spec.
        HOOKS + "@hookimpl\ndef hardware():\n    return []\n",
        "bad_plugin",
        "unknown hook 'hardware'",
    ),
    "unmarked-hook": (
        HOOKS + "def genaisdk_hardware():\n    return []\n",
        "bad_plugin",
        "genaisdk_hardware is not marked with @genaisdk.hookimpl",
    ),
    "misspelt-argument": (
        HOOKS + "@hookimpl\ndef genaisdk_validate(spce):\n    return []\n",
        "bad_plugin",
        "spce",
    ),
    "duplicate-of-builtin": (
        HOOKS + GOOD_GPU.replace("good-gpu", "A100_80GB"),
        "bad_plugin",
        "hardware: 'a100-80gb' is registered by both 'genaisdk.builtins.hardware' (genaisdk ",
    ),
    "alias-clash": (
        HOOKS + GOOD_GPU.replace('source="test"', 'source="test", aliases=("H100",)'),
        "bad_plugin",
        "'h100' is registered by both 'genaisdk.builtins.hardware'",
    ),
}


def _broken(case: str):
    source, target, _ = BROKEN[case]
    return fake_distribution(
        "bad-plugin-dist", "2.3.4", entry_points={"bad": target}, modules={"bad_plugin": source}
    )


def _good():
    return fake_distribution(
        "good-plugin-dist", "1.0", entry_points={"good": "good_plugin"}, modules={"good_plugin": HOOKS + GOOD_GPU}
    )


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_skipped_with_one_warning(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    with registry_with() as builtins_only:
        expected_hardware = builtins_only.names("hardware")
    capsys.readouterr()
    with _good(), _broken(case), registry_with(entry_points=True) as registry:
        names = registry.names("hardware")
        registry.names("tasks")
        plugins = {p.name: p for p in registry.plugins}
    bad, good = plugins["bad"], plugins["good"]
    assert bad.status == "failed"
    assert BROKEN[case][2] in bad.error
    assert bad.records == {}
    # Everything else keeps working: the built-ins and the good plugin, and nothing of the bad one.
    assert good.status == "active"
    assert names == sorted([*expected_hardware, "good-gpu"])
    assert "half-gpu" not in names
    assert registry.get("hardware", "a100-80gb").provider == "genaisdk.builtins.hardware"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1, warnings
    assert "'bad' from bad-plugin-dist 2.3.4 failed and was skipped" in warnings[0]
    assert BROKEN[case][2] in warnings[0]


def test_strict_mode_reraises_the_plugins_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAISDK_STRICT_PLUGINS", "1")
    with _broken("import-error"), registry_with(entry_points=True) as registry:
        with pytest.raises(ImportError, match="needs libfoo"):
            registry.names("hardware")
    with _broken("duplicate-of-builtin"), registry_with(entry_points=True) as registry:
        with pytest.raises(DuplicateRecordError, match="registered by both"):
            registry.names("hardware")


def test_duplicate_between_two_plugins_names_both_providers(capsys: pytest.CaptureFixture[str]) -> None:
    second = fake_distribution(
        "zz-dist", "0.9", entry_points={"zz": "zz_plugin"}, modules={"zz_plugin": HOOKS + GOOD_GPU}
    )
    with _good(), second, registry_with(entry_points=True) as registry:
        plugins = {p.name: p for p in registry.plugins}
        assert registry.get("hardware", "good-gpu").provider == "good"
    assert plugins["good"].status == "active"
    assert plugins["zz"].status == "failed"
    assert plugins["zz"].error == (
        "DuplicateRecordError: hardware: 'good-gpu' is registered by both 'good' (good-plugin-dist 1.0) "
        "(its name) and 'zz' (zz-dist 0.9) (its name)"
    )
    assert "zz-dist 0.9" in capsys.readouterr().err


def test_duplicate_inside_one_plugin_is_an_error() -> None:
    source = HOOKS + (
        "@hookimpl\ndef genaisdk_hardware():\n"
        "    for name in ('good-gpu', 'Good_GPU'):\n"
        "        yield Hardware(name=name, memory_bytes=2**34, peak_flops={'bf16': 1e14},\n"
        "                       bandwidth_bytes_per_s=1e12, power_watts=250)\n"
    )
    with fake_distribution("twice", entry_points={"twice": "twice_plugin"}, modules={"twice_plugin": source}):
        with registry_with(entry_points=True) as registry:
            (info,) = [p for p in registry.plugins if p.name == "twice"]
    assert info.status == "failed"
    assert "'good-gpu' is registered twice by 'twice' (twice 1.0)" in info.error


def test_a_broken_builtin_is_a_bug_and_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import genaisdk.builtins

    monkeypatch.setattr(
        genaisdk.builtins, "BUILTIN_PLUGINS", (*genaisdk.builtins.BUILTIN_PLUGINS, "genaisdk.builtins.no_such")
    )
    with registry_with() as registry, pytest.raises(ModuleNotFoundError, match="no_such"):
        registry.names("hardware")


def test_a_failed_plugins_validate_hook_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAISDK_LOAD_PLUGINS", "v")  # only this plugin: others validate real specs
    source = HOOKS + (
        "from genaisdk.diagnostics import Diagnostic\n"
        "@hookimpl\ndef genaisdk_validate(spec):\n"
        "    yield Diagnostic(code='BAD1', severity='error', message='should not run')\n"
        "@hookimpl\ndef genaisdk_hardware():\n    raise RuntimeError('broken')\n"
    )
    with fake_distribution("v", entry_points={"v": "v_plugin"}, modules={"v_plugin": source}):
        with registry_with(entry_points=True) as registry:
            assert registry.validate(object()) == []
            (info,) = [p for p in registry.plugins if p.name == "v"]
    assert info.status == "failed"
    assert info.hooks == ("genaisdk_hardware", "genaisdk_validate")


def test_plugin_error_is_the_common_base() -> None:
    assert issubclass(DuplicateRecordError, PluginError)
