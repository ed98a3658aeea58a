"""Shared fixtures for the estimation tests: the published figures and the built-in presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load_published() -> dict:
    return json.loads((FIXTURES / "published.json").read_text())


@pytest.fixture(scope="session")
def published() -> dict:
    return load_published()


@pytest.fixture(scope="session")
def presets() -> dict:
    from genaisdk.builtins.presets import catalog

    return {p.name: p for p in catalog()}
