"""Every terminal view fits 80 and 120 columns without cutting a cell: no ellipsis, no word
broken across lines (every word printed is a word the view prints when it has all the room
it wants), no line longer than the terminal; `genai plan`'s verdict is on its first lines."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.records import RECORD_KINDS

from .conftest import ROOT

LEGAL = str(ROOT / "specs" / "legal.genai")
WIDTHS = (80, 120)
ROOMY = 1000
BOX = re.compile(r"[\s\u2500-\u257f]+")
TIMING = re.compile(r"[\d,]+ configurations searched in [\d.]+ ms \([\d,]+ per second\)")
FOOTNOTES = "not shown: (--wide or --json) (--json has every field) shape, micro-batch and recomputation: at 120 columns or more, or with --json"

VIEWS = {
    "plan": ["plan", LEGAL],
    "plan --sweep": ["plan", LEGAL, "--sweep"],
    "explain": ["explain", LEGAL],
    "check": ["check", LEGAL],
    "plugins": ["plugins"],
    "catalog": ["catalog"],
    **{f"catalog {kind}": ["catalog", kind] for kind in RECORD_KINDS},
}


def run(args: list[str], columns: int) -> str:
    result = CliRunner().invoke(cli, args, env={"COLUMNS": str(columns)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def words(text: str) -> set[str]:
    """The words of a view, table rules and borders left out, trailing commas too (a list of
    names wraps differently at different widths)."""
    text = TIMING.sub(" ", " ".join(BOX.split(text)))
    return {w.rstrip(",;") for w in BOX.split(text) if w.rstrip(",;")}


@pytest.fixture(scope="module")
def references() -> dict[str, set[str]]:
    """The words each view prints with room to spare (every layout it has, every column)."""
    import genaisdk
    from genaisdk.render.text import to_text

    refs = {}
    for name, args in VIEWS.items():
        extra = ["--wide"] if name.startswith("catalog ") else []
        refs[name] = words(run(args + extra, ROOMY)) | words(FOOTNOTES)
    plan = genaisdk.plan(genaisdk.load(LEGAL))
    refs["plan"] |= words(to_text(plan, width=ROOMY, layout="narrow"))
    refs["plan --sweep"] |= words(run(["plan", LEGAL, "--sweep"], 100))  # the narrow table's words
    return refs


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("view", list(VIEWS))
def test_view_fits_without_cutting_a_cell(references, view, width):
    out = run(VIEWS[view], width)
    assert "…" not in out
    long = [line for line in out.splitlines() if len(line.rstrip()) > width]
    assert not long, long[:2]
    cut = words(out) - references[view]
    assert not cut, f"words cut at {width} columns: {sorted(cut)[:8]}"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_plan_verdict_is_on_the_first_lines(width):
    first = run(["plan", LEGAL], width).splitlines()[:4]
    assert any(line.startswith("Fits on 64 x a100-80gb: 76.7 GB of 85.9 GB per device") for line in first), first


def test_plan_layouts_switch_at_120_columns():
    narrow, wide = run(["plan", LEGAL], 119), run(["plan", LEGAL], 120)
    assert "bf16: memory per device by strategy" in narrow and "fp32 total" not in narrow
    assert "memory per device by strategy and precision" in wide and "fp32 total" in wide


def test_catalog_compact_by_default_and_every_column_with_wide():
    import genaisdk

    presets = run(["catalog", "presets"], 80)
    count = len(genaisdk.get_registry().catalog("presets"))
    assert len(presets.splitlines()) <= count + 4  # one line per preset, not a citation per preset
    assert "not shown: source" in presets
    wide = run(["catalog", "presets", "--wide"], 80)
    assert "Hoffmann et al. 2022" in wide and "not shown" not in wide
    hardware = run(["catalog", "hardware"], 80)
    assert "not shown:" in hardware and "bf16 TF/s" in hardware
    assert "not shown" not in run(["catalog", "hardware"], 200)


def test_fit_widths_never_go_below_a_columns_longest_word():
    from genaisdk.render.tables import GAP, Need, fit_widths

    found = [Need(9, 9, False), Need(6, 40, True), Need(12, 30, True), Need(3, 3, False)]
    assert fit_widths(found, 200) is None
    for width in range(39, 90):
        widths = fit_widths(found, width)
        assert all(w >= n.least and w <= n.natural for w, n in zip(widths, found))
        assert sum(widths) + GAP * 3 == max(width, 30 + GAP * 3) or sum(widths) == sum(n.natural for n in found)


def test_a_reason_is_cut_at_its_first_clause_outside_parentheses():
    from genaisdk.render.summary import first_clause

    assert first_clause("fastest (fsdp-offload 8% slower; zero2 as fast); more") == "fastest (fsdp-offload 8% slower; zero2 as fast)"
    assert first_clause("a; b") == "a"
    assert first_clause("no clause") == "no clause"
