"""The canonical layout of a `.genai` file (`genai fmt`), comments kept.

One layout, no options:
- two spaces of indentation per block; one statement per line (`;` splits);
- operators aligned (on their last character) within a run of consecutive attributes (a
  blank line or a block ends the run), and trailing comments of the run aligned two spaces after its longest commented line;
- at most one blank line, kept where the author put one; none just inside braces; one
  after the `genai 1` line;
- values printed with single spaces between terms, lists `[a, b]` and maps
  `{ a = 1, b = 2 }` on one line unless they were written over several lines or are
  longer than 72 characters, then one entry per line with a trailing comma;
- numbers, names and strings exactly as written (formatting never changes a value).

`format_document(parse(text))` is idempotent, and loading its output gives the same Spec.
Comments attach by line: one on its own line belongs to what follows it (or closes the
enclosing block, list or file); one after code belongs to that line.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from genaisdk.spec.tree import (
    Block,
    Comment,
    Document,
    ListNode,
    MapNode,
    Pair,
    Statement,
    Value,
    term_source,
    value_source,
)

INDENT = "  "
INLINE_LIMIT = 72
"""A list or map whose one-line form is longer than this is printed one entry per line."""


class _Comments:
    """Comments in source order, handed out as the printer reaches their lines."""

    def __init__(self, comments: tuple[Comment, ...]):
        self.items = sorted(comments, key=lambda c: (c.span.line, c.span.column))
        self.next = 0

    def leading(self, before_line: int) -> list[Comment]:
        """Own-line comments before `before_line` not yet printed."""
        taken = []
        while self.next < len(self.items) and self.items[self.next].span.line < before_line:
            taken.append(self.items[self.next])
            self.next += 1
        return taken

    def trailing(self, line: int) -> Comment | None:
        """The comment after code on `line`, if it is next."""
        if self.next < len(self.items):
            comment = self.items[self.next]
            if comment.span.line == line and not comment.own_line:
                self.next += 1
                return comment
        return None

    def rest(self) -> list[Comment]:
        taken = self.items[self.next :]
        self.next = len(self.items)
        return taken


_BLANK_RUN = re.compile(r"^(?:[^\S\n]*+\n)++", re.M)
"""A run of blank lines (whitespace only), each with its line break."""


class _BlankLines:
    """Where a text has blank lines, as runs (first, last line number): one entry per run,
    however long, found in one pass."""

    def __init__(self, text: str):
        self.firsts: list[int] = []
        self.lasts: list[int] = []
        line, position = 1, 0
        for match in _BLANK_RUN.finditer(text):
            line += text.count("\n", position, match.start())
            breaks = text.count("\n", match.start(), match.end())
            self.firsts.append(line)
            self.lasts.append(line + breaks - 1)
            line, position = line + breaks, match.end()

    def between(self, after_line: int, before_line: int) -> bool:
        """Whether a line strictly between the two is blank."""
        index = bisect_right(self.lasts, after_line)  # the first run that ends after it
        if index == len(self.firsts):
            return False
        return max(self.firsts[index], after_line + 1) <= min(self.lasts[index], before_line - 1)


class _Line:
    """One output line: indentation, code, an optional trailing comment, and for an
    attribute its key and operator (aligned across its `group` when rendered)."""

    __slots__ = ("indent", "code", "comment", "group", "key", "op", "blank_before")

    def __init__(
        self, indent: int, code: str, comment: str | None = None, group: int | None = None,
        key: str | None = None, op: str = "",
    ):
        self.indent = indent
        self.code = code
        self.comment = comment
        self.group = group
        self.key = key
        self.op = op
        self.blank_before = False


class Printer:
    def __init__(self, document: Document):
        self.document = document
        self.comments = _Comments(document.comments)
        self.blank = _BlankLines(document.source)
        self.lines: list[_Line] = []
        self.group_counter = 0

    # -- helpers --------------------------------------------------------------------------
    def had_blank(self, after_line: int, before_line: int) -> bool:
        return self.blank.between(after_line, before_line)

    def emit(
        self, indent: int, code: str, comment: Comment | None = None, group: int | None = None,
        key: str | None = None, op: str = "",
    ) -> _Line:
        line = _Line(indent, code, comment.text if comment is not None else None, group, key, op)
        self.lines.append(line)
        return line

    # -- document -------------------------------------------------------------------------
    def document_text(self) -> str:
        doc = self.document
        if doc.version is not None:
            header = self.comments.leading(doc.version.span.line)
            previous_end, _ = self.own_line_comments(header, 0, None)
            line = self.emit(0, f"genai {doc.version.text}", self.comments.trailing(doc.version.span.line))
            line.blank_before = previous_end is not None and self.had_blank(previous_end, doc.version.span.line)
        start = len(self.lines)
        self.body(doc.body, 0, end_line=None)
        if doc.version is not None and len(self.lines) > start:
            self.lines[start].blank_before = True
        return self.render()

    def body(self, statements: tuple[Statement, ...], indent: int, end_line: int | None) -> None:
        """Statements of one container, then the comments that close it (before `end_line`,
        or all that are left at the top level)."""
        previous_end: int | None = None  # None: nothing printed yet in this container
        group: int | None = None
        for index, statement in enumerate(statements):
            start_line = _start_line(statement)
            previous_end, broke = self.own_line_comments(self.comments.leading(start_line), indent, previous_end)
            blank = previous_end is not None and self.had_blank(previous_end, start_line)
            if blank or broke or isinstance(statement, Block):
                group = None
            first_line = len(self.lines)
            next_start = _start_line(statements[index + 1]) if index + 1 < len(statements) else None
            if isinstance(statement, Block):
                self.block(statement, indent, next_start)
            else:
                if group is None:
                    self.group_counter += 1
                    group = self.group_counter
                self.keyed(statement.key, statement.op, statement.value, indent, group, next_start, suffix="")
            self.lines[first_line].blank_before = blank
            previous_end = _end_line(statement)
        closing = self.comments.leading(end_line) if end_line is not None else self.comments.rest()
        self.own_line_comments(closing, indent, previous_end)

    def own_line_comments(self, comments: list[Comment], indent: int, previous_end: int | None) -> tuple[int | None, bool]:
        """Print comments on their own lines; returns the last line used and whether a
        blank line came before any of them (which ends an alignment group)."""
        broke = False
        for comment in comments:
            line = self.emit(indent, comment.text)
            line.blank_before = previous_end is not None and self.had_blank(previous_end, comment.span.line)
            broke = broke or line.blank_before
            previous_end = comment.span.line
        return previous_end, broke

    def block(self, block: Block, indent: int, next_start: int | None) -> None:
        head = block.name + (f" {block.label.text}" if block.label is not None else "")
        close_line = block.close_span.line
        open_comment = self.comments.trailing(block.open_span.line) if block.open_span.line != close_line else None
        if not block.body and open_comment is None and not self._has_comments_before(close_line):
            trailing = self.comments.trailing(close_line) if next_start != close_line else None
            self.emit(indent, head + " {}", trailing)
            return
        self.emit(indent, head + " {", open_comment)
        self.body(block.body, indent + 1, close_line)
        trailing = self.comments.trailing(close_line) if next_start != close_line else None
        self.emit(indent, "}", trailing)

    def _has_comments_before(self, line: int) -> bool:
        c = self.comments
        return c.next < len(c.items) and c.items[c.next].span.line < line

    def keyed(self, key: str, op: str, value: Value, indent: int, group: int | None, next_start: int | None, suffix: str) -> None:
        end = value.span.end_line or value.span.line
        multi = self.multiline_term(value)
        if multi is None:
            trailing = self.comments.trailing(end) if next_start != end else None
            self.emit(indent, f"{value_source(value)}{suffix}", trailing, group, key, op)
            return
        # A list or map over several lines: `key = [` ... `]`.
        prefix_terms = value.terms[:-1]
        prefix = " ".join(term_source(t) for t in prefix_terms)
        opener = "[" if isinstance(multi, ListNode) else "{"
        head = f"{prefix} {opener}" if prefix else opener
        open_comment = self.comments.trailing(multi.span.line)
        self.emit(indent, head, open_comment, group, key, op)
        self.entries(multi, indent + 1)
        close_line = multi.span.end_line or multi.span.line
        trailing = self.comments.trailing(close_line) if next_start != close_line else None
        self.emit(indent, ("]" if opener == "[" else "}") + suffix, trailing)

    def multiline_term(self, value: Value) -> ListNode | MapNode | None:
        """The last term, if it is a list or map to print over several lines."""
        last = value.terms[-1]
        if not isinstance(last, (ListNode, MapNode)):
            return None
        entries = last.items if isinstance(last, ListNode) else last.pairs
        if not entries:
            return None
        written_over_lines = (last.span.end_line or last.span.line) > last.span.line
        return last if written_over_lines or len(value_source(value)) > INLINE_LIMIT else None

    def entries(self, node: ListNode | MapNode, indent: int) -> None:
        items = node.items if isinstance(node, ListNode) else node.pairs
        previous_end: int | None = None
        self.group_counter += 1
        group: int | None = self.group_counter
        for index, item in enumerate(items):
            start_line = item.span.line
            previous_end, broke = self.own_line_comments(self.comments.leading(start_line), indent, previous_end)
            blank = previous_end is not None and self.had_blank(previous_end, start_line)
            if blank or broke:
                self.group_counter += 1
                group = self.group_counter
            first_line = len(self.lines)
            next_start = items[index + 1].span.line if index + 1 < len(items) else None
            if isinstance(item, Pair):
                self.keyed(item.key, item.op, item.value, indent, group, next_start, suffix=",")
            else:
                inner = self.multiline_term(item)
                if inner is None:
                    end = item.span.end_line or item.span.line
                    trailing = self.comments.trailing(end) if next_start != end else None
                    self.emit(indent, value_source(item) + ",", trailing, group)
                else:
                    self.keyless(item, inner, indent, next_start)
            self.lines[first_line].blank_before = blank
            previous_end = item.span.end_line or item.span.line
        self.own_line_comments(self.comments.leading(node.span.end_line or node.span.line), indent, previous_end)

    def keyless(self, value: Value, inner: ListNode | MapNode, indent: int, next_start: int | None) -> None:
        opener = "[" if isinstance(inner, ListNode) else "{"
        prefix = " ".join(term_source(t) for t in value.terms[:-1])
        self.emit(indent, f"{prefix} {opener}" if prefix else opener, self.comments.trailing(inner.span.line))
        self.entries(inner, indent + 1)
        close_line = inner.span.end_line or inner.span.line
        trailing = self.comments.trailing(close_line) if next_start != close_line else None
        self.emit(indent, ("]" if opener == "[" else "}") + ",", trailing)

    # -- output ----------------------------------------------------------------------------
    def render(self) -> str:
        # Align `=` and trailing comments within each group of consecutive attributes.
        widths: dict[int, int] = {}
        for line in self.lines:
            if line.group is not None and line.key is not None:
                widths[line.group] = max(widths.get(line.group, 0), len(line.key) + len(line.op))
        texts: list[tuple[_Line, str]] = []
        for line in self.lines:
            if line.key is not None:
                # Operators end in the same column (`time    <= 30 days` under `hardware = ...`).
                width = widths.get(line.group, 0) if line.group is not None else 0
                code = f"{line.key.ljust(width - len(line.op))} {line.op} {line.code}"
            else:
                code = line.code
            texts.append((line, INDENT * line.indent + code))
        comment_column: dict[int, int] = {}
        for line, text in texts:
            if line.comment is not None and line.group is not None:
                comment_column[line.group] = max(comment_column.get(line.group, 0), len(text) + 2)
        out: list[str] = []
        for position, (line, text) in enumerate(texts):
            if line.blank_before and position > 0 and out and out[-1] != "":
                out.append("")
            if line.comment is not None:
                if not text.strip():
                    text = INDENT * line.indent + line.comment
                else:
                    column = comment_column.get(line.group, len(text) + 2) if line.group is not None else len(text) + 2
                    text = text.ljust(column) + line.comment
            out.append(text.rstrip())
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n" if out else ""


def _start_line(statement: Statement) -> int:
    return statement.name_span.line if isinstance(statement, Block) else statement.key_span.line


def _end_line(statement: Statement) -> int:
    return statement.span.end_line or statement.span.line


def format_document(document: Document) -> str:
    """The canonical text of a parsed document."""
    return Printer(document).document_text()
