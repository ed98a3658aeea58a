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


MAX_RENDERED = 50
"""At most this many diagnostics are rendered as text, then one line counts the rest (the
JSON form lists them all): a file with 40,000 mistakes is not 40,000 screens."""
MAX_SHOWN = 160
"""Characters shown of a source line (a window around the span), a message or a hint."""


class SourceLines:
    """The lines of a text by number (1-based, split on "\\n" only, as the parser counts),
    found without splitting the text: asking for lines in increasing order costs time linear
    in the text in all, and any one line at most one pass over it."""

    def __init__(self, text: str):
        self.text = text
        self._line, self._offset = 1, 0  # a line start already found

    def start(self, number: int) -> int | None:
        """The offset where line `number` starts, or None if the text has fewer lines."""
        if number < 1:
            return None
        if number < self._line:
            self._line, self._offset = 1, 0
        offset = _skip_lines(self.text, self._offset, number - self._line)
        if offset is not None:
            self._line, self._offset = number, offset
        return offset

    def line(self, number: int) -> str | None:
        """Line `number` without its line break, or None if the text has fewer lines."""
        start = self.start(number)
        if start is None:
            return None
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)]


def _skip_lines(text: str, offset: int, count: int) -> int | None:
    """The offset just after the `count`-th line break at or after `offset`, or None.

    Counts with `str.count` over spans that double until they hold enough breaks, then
    halves the last span: every character is counted about twice, at C speed."""
    if count <= 0:
        return offset
    size, step = len(text), 4096
    while True:
        end = min(size, offset + step)
        found = text.count("\n", offset, end)
        if found >= count:
            break
        if end == size:
            return None
        count, offset, step = count - found, end, step * 2
    low, high = offset, end  # the count-th break from `low` lies in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        found = text.count("\n", low, middle)
        if found >= count:
            high = middle
        else:
            count, low = count - found, middle
    return low + 1


def _clip(text: str, limit: int = MAX_SHOWN * 4) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(
    diagnostic: Diagnostic,
    source: str | Mapping[str, str] | None = None,
    *,
    lines: dict[str, SourceLines] | None = None,
) -> str:
    """`file:line:col: severity[code]: message`, then the source line, a caret under the
    whole span (to the end of the line for a multi-line span) and the hint.

    `source` is the text of the diagnostic's file, or a mapping file name -> text when the
    diagnostics come from several (a spec and its `--set` overrides). `lines` caches each
    file's line index between calls (see `render_each`). Terminal control characters are
    shown escaped (`genaisdk.core.safe.printable`); a long line is shown as a window
    around the span."""
    from genaisdk.core.safe import printable

    out = [printable(_clip(_headline(diagnostic)))]
    span = diagnostic.span
    if isinstance(source, Mapping):
        source = source.get(span.file) if span is not None else None
    if span is not None and source is not None:
        key = span.file
        index = lines.get(key) if lines is not None else None
        if index is None or index.text is not source:
            index = SourceLines(source)
            if lines is not None:
                lines[key] = index
        text = index.line(span.line)
        if text is not None:
            out.extend(_source_and_caret(text.rstrip("\r").expandtabs(1), span))
    if diagnostic.hint:
        out.append(printable(_clip(f"  = help: {diagnostic.hint}")))
    return "\n".join(out)


def _source_and_caret(text: str, span: Span) -> list[str]:
    """The source line (escaped, and cut to a window around the span when long) and the
    caret line under the span."""
    from genaisdk.core.safe import is_printable, printable

    start = max(span.column - 1, 0)
    if span.end_line is not None and span.end_line > span.line:
        end = max(len(text), start + 1)
    elif span.end_column is not None and span.end_column > span.column:
        end = span.end_column - 1
    else:
        end = start + 1
    end = max(end, start + 1)
    left = ""
    if len(text) > MAX_SHOWN:
        # A window that starts a little before the span: the caret stays on screen.
        first = max(0, min(start - MAX_SHOWN // 4, len(text) - MAX_SHOWN))
        last = first + MAX_SHOWN
        left = "…" if first else ""
        shown_text = left + text[first:last] + ("…" if last < len(text) else "")
        start, end = start - first + len(left), min(end - first, MAX_SHOWN) + len(left)
        text = shown_text
        end = max(end, start + 1)
    if not is_printable(text):
        # Escapes are wider than the characters they show: move the caret with them.
        start, end = len(printable(text[:start])), len(printable(text[:end]))
        text = printable(text)
    gutter = f"{span.line:>4} | "
    return [gutter + text, " " * (len(gutter) - 2) + "| " + " " * start + "^" * (end - start)]


def render_each(
    diagnostics: Iterable[Diagnostic], source: str | Mapping[str, str] | None = None, *, limit: int = MAX_RENDERED
) -> list[str]:
    """The first `limit` diagnostics rendered (in the order given, which for sorted ones
    makes the whole linear in the source's size), then a line counting the rest, if any."""
    diagnostics = list(diagnostics)
    cache: dict[str, SourceLines] = {}
    parts = [render(d, source, lines=cache) for d in diagnostics[:limit]]
    rest = diagnostics[limit:]
    if rest:
        errors = sum(1 for d in rest if d.is_error)
        parts.append(
            f"... and {len(rest):,} more not shown ({errors:,} error{'' if errors == 1 else 's'}); "
            "`genai check --json` lists every one"
        )
    return parts


def render_all(
    diagnostics: Iterable[Diagnostic], source: str | Mapping[str, str] | None = None, *, limit: int = MAX_RENDERED
) -> str:
    """`render_each`, separated by blank lines."""
    return "\n\n".join(render_each(diagnostics, source, limit=limit))
