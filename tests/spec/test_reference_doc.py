"""docs/spec-language.md lists exactly the keys `genai check` accepts."""

from pathlib import Path

from genaisdk.spec.reference import key_tables, render_page
from genaisdk.spec.schema import BLOCKS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "spec-language.md"


def test_page_matches_schema():
    page = PAGE.read_text(encoding="utf-8")
    assert render_page(page) == page, "regenerate: python -m genaisdk.spec.reference docs/spec-language.md"


def test_every_key_has_a_row():
    tables = key_tables()
    for name, block in BLOCKS.items():
        for key in block.keys:
            assert f"| `{key}` |" in tables, f"{name}.{key} missing"


def test_table_cells_never_split_on_a_bar():
    for line in key_tables().splitlines():
        if line.startswith("| `"):
            assert line.replace("\\|", "").count("|") == 5, line
