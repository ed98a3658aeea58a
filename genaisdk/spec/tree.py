"""The syntax tree of a `.genai` file: what was written and where, before any meaning.

The parser (`genaisdk.spec.parse`) makes these from the private Lark grammar; the builder
(`genaisdk.spec.build`) reads them against the schema; the formatter (`genaisdk.spec.fmt`)
prints them back. Every node carries a `genaisdk.diagnostics.Span`.

A value is a *phrase*: one or more terms, e.g. `auto`, `2048 tokens`, `64 x a100-80gb`,
`$250k`, `[a, b]`, `{ legal = 51%, web = 49% }`. Which phrases a key accepts is the
schema's business, not the grammar's.
"""

from __future__ import annotations

from typing import Union

import attrs

from genaisdk.diagnostics import Span

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
"""The escapes a string literal may use; the parser refuses any other (`escape_problem`)."""


def escape_problem(raw: str) -> tuple[int, str] | None:
    """The first unknown escape in the string literal `raw` (with its quotes): (index of
    its backslash in `raw`, the escaped character), or None when every escape is known."""
    index = raw.find("\\")
    while 0 <= index < len(raw) - 1:
        char = raw[index + 1]
        if char not in _ESCAPES:
            return index, char
        index = raw.find("\\", index + 2)
    return None


def unescape(raw: str) -> str:
    """The text of a string literal `raw` (with its quotes): `\\"` `\\\\` `\\n` `\\t`
    decoded. Any other escape (which the parser refuses) is kept as written."""
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, ch + nxt))
        else:
            out.append(ch)
    return "".join(out)


def quote(text: str) -> str:
    """A string literal for `text` (the inverse of `unescape`)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


@attrs.frozen(kw_only=True)
class Atom:
    """One token of a value. `kind` is 'number', 'name', 'string' or 'money'.

    `text` is the source text: a number's digits and glued suffix (`125M`), a name, a string
    literal with its quotes, or for money the number after `$` (`250k`).
    """

    kind: str
    text: str
    span: Span

    @property
    def string(self) -> str:
        """The decoded text of a string literal."""
        return unescape(self.text)

    def source(self) -> str:
        return "$" + self.text if self.kind == "money" else self.text


@attrs.frozen(kw_only=True)
class ListNode:
    items: tuple[Value, ...]
    span: Span


@attrs.frozen(kw_only=True)
class Pair:
    """`key = value` inside an inline map."""

    key: str
    key_span: Span
    op: str
    value: Value
    span: Span


@attrs.frozen(kw_only=True)
class MapNode:
    pairs: tuple[Pair, ...]
    span: Span


Term = Union[Atom, ListNode, MapNode]


@attrs.frozen(kw_only=True)
class Value:
    """A phrase of one or more terms."""

    terms: tuple[Term, ...]
    span: Span


@attrs.frozen(kw_only=True)
class Attribute:
    """`key = value` (or `key <= value` and the other comparisons, for budgets)."""

    key: str
    key_span: Span
    op: str
    op_span: Span
    value: Value
    span: Span


@attrs.frozen(kw_only=True)
class Block:
    """`name "label" { ... }`; `open_span` and `close_span` are the braces."""

    name: str
    name_span: Span
    label: Atom | None
    body: tuple[Statement, ...]
    span: Span
    open_span: Span
    close_span: Span


Statement = Union[Attribute, Block]


@attrs.frozen(kw_only=True)
class Comment:
    """A `#` or `//` comment; `own_line` when nothing but blanks precedes it on its line."""

    text: str
    span: Span
    own_line: bool


@attrs.frozen(kw_only=True)
class Document:
    """A whole file. `version` is the number of the `genai N` line, if there is one."""

    version: Atom | None
    body: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()
    filename: str = "<spec>"
    source: str = attrs.field(default="", repr=False)


def value_source(value: Value) -> str:
    """A value's text on one line, terms separated by single spaces (used in messages, and
    by `genai fmt` for values it keeps on one line)."""
    return " ".join(term_source(t) for t in value.terms)


def term_source(term: Term) -> str:
    if isinstance(term, Atom):
        return term.source()
    if isinstance(term, ListNode):
        return "[" + ", ".join(value_source(v) for v in term.items) + "]"
    if not term.pairs:
        return "{}"
    return "{ " + ", ".join(f"{p.key} {p.op} {value_source(p.value)}" for p in term.pairs) + " }"
