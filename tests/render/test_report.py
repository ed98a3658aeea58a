"""`genai report`: one self-contained HTML page per spec, every panel, the same bytes twice."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from genaisdk.cli import cli
from genaisdk.render.report import PANELS, render_report

from .conftest import ROOT, SPECS

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}
PLOTTED = ("memory", "isoflop", "scaling", "serve")


class PageParser(HTMLParser):
    """Checks nesting (every tag closed in order, SVG included) and collects ids, sections,
    figures, links and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self.section: str | None = None
        self.external: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "section":
            self.section = attrs.get("id")
            self.sections[self.section] = []
        if tag == "svg" and self.section:
            self.sections[self.section].append(attrs.get("data-figure", "?"))
        for key in ("href", "src", "xlink:href"):
            value = attrs.get(key) or ""
            if value and not value.startswith("#"):
                self.external.append(value)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def pages(planned):
    """pages[name]: the report (plan only) of one spec, rendered on first use. Lazily, so
    that test workers splitting this module render only the specs they test."""

    class Pages(dict):
        def __missing__(self, name):
            spec, plan = planned[name]
            self[name] = render_report(spec, plan)
            return self[name]

    return Pages()


@pytest.mark.parametrize("name", [p.name for p in SPECS])
def test_every_spec_gives_a_valid_page_with_every_panel(pages, planned, name):
    html = pages[name]
    page = parse(html)
    assert html.startswith("<!DOCTYPE html>") and not page.errors and not page.stack, page.errors[:3]
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert page.external == [], "a self-contained page links nothing outside itself"
    expected = [p.id for p in PANELS if p.always]
    assert list(page.sections) == expected
    for panel in PANELS:
        if panel.always:
            assert f"<h2>{panel.title}</h2>" in html.replace("&#39;", "'")
    _, plan = planned[name]
    text = " ".join(page.text)
    for figure in PLOTTED:
        if figure == "isoflop" and not plan.scaling.loss_tokens:  # a checkpoint of unknown pretraining
            assert page.sections[figure] == [] and "pretraining tokens are not known" in text
            continue
        assert page.sections[figure] == [figure], (figure, page.sections[figure])
    assert plan.project.name in text
    assert "E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28" in text  # the law is named with its constants
    assert "<script" not in html and "@import" not in html and "http" not in re.sub(r'xmlns(:\w+)?="[^"]+"', "", html)


def test_the_full_report_is_the_same_bytes_from_the_cli_and_the_api(full_report):
    import genaisdk

    from .conftest import EVAL, RUN

    again = genaisdk.report(str(ROOT / "specs" / "legal.genai"), run=str(RUN), evaluation=EVAL)
    written = full_report.read_text(encoding="utf-8")
    assert written.replace(str(full_report.parent), "") == again
    page = parse(written)
    assert not page.errors and list(page.sections) == [p.id for p in PANELS]
    assert page.sections["run"] == ["run"]
    text = " ".join(page.text)
    assert "1.089" in text and "2.973" in text  # the evaluation's loss and perplexity
    assert "not reported by cpu devices" in text


def test_svg_is_deterministic_and_ids_do_not_collide(planned):
    from genaisdk.render import figures, plots

    _, plan = planned["tiny-gpt.genai"]
    first = plots.serve_svg(figures.serve_picture(plan))
    assert first == plots.serve_svg(figures.serve_picture(plan))
    assert first.startswith("<svg ") and "<?xml" not in first and "<metadata" not in first
    memory = plots.memory_svg(figures.memory_bars(plan), capacity=plan.memory.device_capacity, hardware="x", devices=1)
    assert not set(plots.svg_ids(first)) & set(plots.svg_ids(memory))


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jinja2" else real(name, *a))
    result = CliRunner().invoke(cli, ["report", str(SPECS[0]), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert result.output.strip() == "error: genai report needs jinja2: pip install 'genaisdk[report]'"
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "no-such-folder"], "no-such-folder: no such run folder"),
        (["--eval", "no-such.json"], "no-such.json: no such evaluation file"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_1(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["report", str(SPECS[0]), *args, "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {message}") and result.output.count("\n") == 1


def test_docs_describe_every_panel():
    from .conftest import ROOT

    doc = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    for panel in PANELS:
        assert f"| {panel.title.split(' (')[0]}" in doc, panel.title


def test_a_file_the_command_did_not_write_is_never_replaced(tmp_path):
    page = tmp_path / "report.html"
    page.write_text("<html>someone else's page</html>", encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", str(SPECS[0]), "-o", str(page)])
    assert result.exit_code == 1 and "already exists and is not a report this command wrote" in result.output
    assert page.read_text(encoding="utf-8") == "<html>someone else's page</html>"
    assert CliRunner().invoke(cli, ["report", str(SPECS[0]), "-o", str(page), "--force"]).exit_code in (0, 1)
    assert '<meta name="generator" content="genaisdk' in page.read_text(encoding="utf-8")
    again = CliRunner().invoke(cli, ["report", str(SPECS[0]), "-o", str(page)])  # its own page: replaced
    assert f"wrote {page}" in again.output and "already exists" not in again.output
