"""Problems found in a spec, a plan or a plugin, and how they are shown.

A `Diagnostic` has a stable `code` (tools match on it), a `severity`, a one-line `message`
in words, an optional `span` (where in which file) and an optional `hint` (what to write
instead). `render` prints the `file:line:col` form with the source line and a caret under
the span; `to_json` gives the JSON form of the plan contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

SEVERITIES = ("error", "warning", "info")


@attrs.frozen(kw_only=True, order=True)
class Span:
    """A source range, 1-based lines and columns; `end_column` is exclusive."""

    file: str = "<spec>"
    line: int = 1
    column: int = 1
    end_line: int | None = None
    end_column: int | None = None


@attrs.frozen(kw_only=True)
class Diagnostic:
    code: str
    """Stable identifier, e.g. 'GS101'. Never reused for another meaning."""
    severity: str = attrs.field(validator=attrs.validators.in_(SEVERITIES))
    message: str
    span: Span | None = None
    hint: str | None = None
    """What to do about it, e.g. "did you mean 'bf16'?"."""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        span = self.span or Span(file="", line=0, column=0)
        return (span.file, span.line, span.column, SEVERITIES.index(self.severity), self.code)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "file": self.span.file if self.span else None,
            "line": self.span.line if self.span else None,
            "column": self.span.column if self.span else None,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file, position, severity; exact duplicates dropped."""
    seen: set = set()
    unique = []
    for d in diagnostics:
        key = (d.code, d.severity, d.message, d.span, d.hint)
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return sorted(unique, key=Diagnostic.sort_key)


class SpecError(Exception):
    """Raised when a spec has errors; `.diagnostics` holds all of them (warnings included)."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str | Mapping[str, str] | None = None):
        self.diagnostics = sort_diagnostics(diagnostics)
        self.source = source
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = f"{len(errors)} error(s)" + (f"; first: {_headline(first)}" if first else "")
        super().__init__(summary)

    def render(self) -> str:
        return render_all(self.diagnostics, self.source)


def _headline(d: Diagnostic) -> str:
    where = f"{d.span.file}:{d.span.line}:{d.span.column}: " if d.span else ""
    return f"{where}{d.severity}[{d.code}]: {d.message}"


def render(diagnostic: Diagnostic, source: str | Mapping[str, str] | None = None) -> str:
    """`file:line:col: severity[code]: message`, then the source line, a caret under the
    whole span (to the end of the line for a multi-line span) and the hint.

    `source` is the text of the diagnostic's file, or a mapping file name -> text when the
    diagnostics come from several (a spec and its `--set` overrides)."""
    lines = [_headline(diagnostic)]
    span = diagnostic.span
    if isinstance(source, Mapping):
        source = source.get(span.file) if span is not None else None
    if span is not None and source is not None:
        # Split on newlines only: line numbers count "\n" as the parser does.
        text_lines = [line.rstrip("\r") for line in source.split("\n")]
        if 1 <= span.line <= len(text_lines):
            text = text_lines[span.line - 1].expandtabs(1)
            gutter = f"{span.line:>4} | "
            lines.append(gutter + text)
            start = max(span.column - 1, 0)
            if span.end_line is not None and span.end_line > span.line:
                end = max(len(text), start + 1)
            elif span.end_column is not None and span.end_column > span.column:
                end = span.end_column - 1
            else:
                end = start + 1
            end = max(end, start + 1)
            lines.append(" " * (len(gutter) - 2) + "| " + " " * start + "^" * (end - start))
    if diagnostic.hint:
        lines.append(f"  = help: {diagnostic.hint}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic], source: str | Mapping[str, str] | None = None) -> str:
    return "\n\n".join(render(d, source) for d in diagnostics)
