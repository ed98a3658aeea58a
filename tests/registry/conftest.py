"""Every registry test starts from a clean plugin environment and a fresh process-wide registry."""

from __future__ import annotations

import pytest

from genaisdk.records import Hardware
from genaisdk.registry import set_registry

PLUGIN_ENV = ("GENAISDK_LOAD_PLUGINS", "GENAISDK_DISABLE_PLUGINS", "GENAISDK_STRICT_PLUGINS")


@pytest.fixture(autouse=True)
def clean_plugin_env(monkeypatch: pytest.MonkeyPatch):
    for variable in PLUGIN_ENV:
        # set then delete, so that monkeypatch restores whatever was there before
        monkeypatch.setenv(variable, "")
        monkeypatch.delenv(variable)
    previous = set_registry(None)
    yield
    set_registry(previous)


def gpu(name: str = "test-gpu", **changes) -> Hardware:
    """A valid Hardware record for tests (figures of no real device)."""
    fields = dict(
        name=name,
        vendor="Test",
        memory_bytes=16 * 2**30,
        peak_flops={"fp32": 1e13, "bf16": 1e14},
        bandwidth_bytes_per_s=1e12,
        power_watts=300,
        source="test figures",
    )
    fields.update(changes)
    return Hardware(**fields)
