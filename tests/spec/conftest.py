"""Shared fixtures for the spec-language tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from genaisdk.registry import Registry

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="session")
def builtin_registry() -> Registry:
    """Only the built-in records: installed plugins cannot change names or suggestions."""
    return Registry(entry_points=False)
