"""Text to syntax tree (`genaisdk.spec.tree`), with syntax errors a person can act on.

The grammar (`grammar.lark`) is LALR with Lark's contextual lexer. Lark is imported only
when the first spec is parsed, and the analysed grammar is cached on disk (in the user cache
directory, or next to the grammar), so a cold `genai check` pays about 2 ms for it instead
of 25 ms. When no cache location is writable the parser is simply built each time.

Lark exceptions never leave this module: each is classified by the unexpected token, the
tokens the parser would have accepted, and the enclosing block (found by `scan`), and
becomes one `Diagnostic` inside a `SpecError`. Messages speak of `}` and "the end of the
line", never of RBRACE or $END. A missing `}` points at the brace that was opened.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import attrs

from genaisdk.diagnostics import Diagnostic, SourceLines, Span, SpecError
from genaisdk.spec.tree import (
    Atom,
    Attribute,
    Block,
    Comment,
    Document,
    ListNode,
    MapNode,
    Pair,
    Statement,
    Value,
    escape_problem,
)

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
_PARSER: Any = None

# Syntax diagnostic codes: the table is genaisdk.core.codes.
from genaisdk.core.codes import (  # noqa: E402
    UNEXPECTED_CHARACTER,
    UNTERMINATED_STRING,
    UNCLOSED_BRACKET,
    UNMATCHED_CLOSER,
    MISSING_VALUE,
    MISSING_EQUALS,
    MISSING_SEPARATOR,
    UNEXPECTED_TOKEN,
    BAD_VERSION_LINE,
    UNREADABLE,
    TOO_LARGE,
    TOO_DEEP,
    BAD_ESCAPE,
    UNQUOTED_LABEL,
)

MAX_SPEC_SIZE = 4_000_000
"""The most characters a spec may have (4 MB of ASCII), unless `$GENAISDK_MAX_SPEC_SIZE`
says otherwise. A real spec is a few kilobytes; the limit keeps an absurd file (a log or a
data file passed by mistake) from taking seconds and hundreds of megabytes to refuse."""
SIZE_VARIABLE = "GENAISDK_MAX_SPEC_SIZE"

MAX_DEPTH = 32
"""How deeply blocks, lists and maps may nest (a real spec nests 2 to 4 deep: `project` >
`data` > a map). Deeper text is refused before it is parsed, so that no part of the
package (all of which walks trees recursively) can run out of stack."""

# --------------------------------------------------------------------------------------
# The Lark parser, built lazily and cached.


def cache_dir() -> Path | None:
    """Where the analysed grammar is cached: $GENAISDK_CACHE_DIR, else the user cache
    directory (XDG on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows), else
    the folder holding the grammar; the first that exists or can be created and is
    writable. None when none is (then nothing is cached)."""
    candidates: list[Path] = []
    if os.environ.get("GENAISDK_CACHE_DIR"):
        candidates.append(Path(os.environ["GENAISDK_CACHE_DIR"]))
    home = Path.home() if "HOME" in os.environ or "USERPROFILE" in os.environ else None
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        candidates.append(Path(os.environ["LOCALAPPDATA"]) / "genaisdk" / "Cache")
    elif sys.platform == "darwin" and home is not None:
        candidates.append(home / "Library" / "Caches" / "genaisdk")
    elif os.environ.get("XDG_CACHE_HOME"):
        candidates.append(Path(os.environ["XDG_CACHE_HOME"]) / "genaisdk")
    elif home is not None:
        candidates.append(home / ".cache" / "genaisdk")
    candidates.append(GRAMMAR_PATH.parent)
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    return None


def lark_options() -> dict[str, Any]:
    """The one configuration the grammar is built with (tests build it with strict=True)."""
    return {
        "parser": "lalr",
        "lexer": "contextual",
        "start": ["start", "override"],
        "maybe_placeholders": True,
    }


_OPTIONAL_LARK_EXTRAS = ("regex", "interegular")


def _import_lark() -> Any:
    """Import Lark without the optional extras it imports eagerly when they are installed:
    `regex` (an alternative regex engine) and `interegular` (collision checks for strict
    mode). The grammar needs neither at run time, and together they add 15-25 ms to every
    cold start. They are hidden only during Lark's own import and stay importable after."""
    if "lark" in sys.modules:
        import lark

        return lark
    hidden = [name for name in _OPTIONAL_LARK_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail fast
    try:
        import lark
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return lark


def get_parser() -> Any:
    """The process-wide Lark parser (imports Lark on first use)."""
    global _PARSER
    if _PARSER is None:
        lark = _import_lark()

        grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
        folder = cache_dir()
        cache: bool | str = False
        if folder is not None:
            # One file per grammar, Lark version and Python version: Lark rebuilds a cache
            # made by another of either, so sharing one name would thrash.
            key = f"{grammar}\0{lark.__version__}\0{sys.version_info[:2]}\0{sorted(lark_options().items())}"
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            cache = str(folder / f"genai-grammar-{digest}.lark.cache")
        _PARSER = lark.Lark(grammar, cache=cache, **lark_options())
    return _PARSER


# --------------------------------------------------------------------------------------
# A small scanner that knows strings and comments, for comments (fmt) and for error context.

_SCAN = re.compile(r'"(?:[^"\\\n]++|\\.)*+"?|#[^\n]*+|//[^\n]*+|[{}\[\]]|[A-Za-z_][A-Za-z0-9_.-]*+|=|\n++')


@attrs.frozen(kw_only=True)
class Bracket:
    """An opening bracket found by `scan`: `{` of a block or a map, or `[` of a list."""

    char: str
    offset: int
    line: int
    column: int
    owner: str
    """The block name before a block's `{`, or the key of a map or list value."""
    is_block: bool
    indent: int
    """Indentation of the line the bracket is on."""


@attrs.frozen(kw_only=True)
class Scan:
    comments: tuple[tuple[int, int, str], ...]
    """(offset, end offset, text) of every comment."""
    pairs: tuple[tuple[Bracket, int], ...]
    """Matched (opening bracket, offset of its closer)."""
    open_at_end: tuple[Bracket, ...]
    """Brackets still open at the end (or at `stop`)."""
    unmatched: tuple[int, ...]
    """Offsets of closers that close nothing (or the wrong kind)."""


def scan(text: str, stop: int | None = None) -> Scan:
    """Find comments and match brackets, skipping strings and comments, up to `stop`."""
    comments: list[tuple[int, int, str]] = []
    pairs: list[tuple[Bracket, int]] = []
    stack: list[Bracket] = []
    unmatched: list[int] = []
    line, line_start = 1, 0
    last_word, before_last = "", ""
    end = len(text) if stop is None else stop
    for m in _SCAN.finditer(text, 0, end):
        tok = m.group()
        start = m.start()
        if tok[0] == "\n":
            line, line_start = line + len(tok), m.end()
            continue
        if tok[0] == "#" or tok[:2] == "//":
            comments.append((start, m.end(), tok))
            continue
        if tok in "{[":
            is_block = tok == "{" and last_word != "="
            owner = last_word if is_block else before_last
            if is_block and last_word.startswith('"'):
                owner = before_last
            indent = len(text[line_start:start]) - len(text[line_start:start].lstrip(" \t"))
            stack.append(
                Bracket(
                    char=tok, offset=start, line=line, column=start - line_start + 1,
                    owner=owner, is_block=is_block, indent=indent,
                )
            )
        elif tok in "}]":
            if stack and stack[-1].char == ("{" if tok == "}" else "["):
                pairs.append((stack.pop(), start))
            else:
                unmatched.append(start)
        before_last, last_word = last_word, tok
    return Scan(
        comments=tuple(comments), pairs=tuple(pairs), open_at_end=tuple(stack), unmatched=tuple(unmatched)
    )


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


# --------------------------------------------------------------------------------------
# Lark tree -> genaisdk.spec.tree


class _Converter:
    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Diagnostic] = []
        """Strings with an unknown escape, one diagnostic each."""

    def span(self, token: Any) -> Span:
        return Span(
            file=self.filename, line=token.line, column=token.column,
            end_line=token.end_line, end_column=token.end_column,
        )

    def join(self, first: Span, last: Span) -> Span:
        return Span(
            file=self.filename, line=first.line, column=first.column,
            end_line=last.end_line, end_column=last.end_column,
        )

    def document(self, tree: Any, source: str, comments: tuple[Comment, ...]) -> Document:
        version_tree, *statements = tree.children
        version = None
        if version_tree is not None:
            token = version_tree.children[0]
            version = Atom(kind="number", text=str(token), span=self.span(token))
        return Document(
            version=version,
            body=tuple(self.statement(s) for s in statements if s is not None),
            comments=comments,
            filename=self.filename,
            source=source,
        )

    def statement(self, tree: Any) -> Statement:
        if tree.data == "block":
            return self.block(tree)
        return self.attribute(tree)

    def block(self, tree: Any) -> Block:
        name, label, lbrace, *body, rbrace = tree.children
        name_span = self.span(name)
        return Block(
            name=str(name),
            name_span=name_span,
            label=None if label is None else self.string(label),
            body=tuple(self.statement(s) for s in body if s is not None),
            span=self.join(name_span, self.span(rbrace)),
            open_span=self.span(lbrace),
            close_span=self.span(rbrace),
        )

    def attribute(self, tree: Any) -> Attribute:
        key, op, value_tree = tree.children
        key_span = self.span(key)
        value = self.value(value_tree)
        return Attribute(
            key=str(key), key_span=key_span, op=str(op), op_span=self.span(op),
            value=value, span=self.join(key_span, value.span),
        )

    def value(self, tree: Any) -> Value:
        terms = tuple(self.term(t) for t in tree.children)
        return Value(terms=terms, span=self.join(terms[0].span, terms[-1].span))

    def term(self, node: Any) -> Any:
        if hasattr(node, "data"):
            kind = node.data
            if kind == "money":
                dollar, number = node.children
                return Atom(kind="money", text=str(number), span=self.join(self.span(dollar), self.span(number)))
            first, *inner, last = node.children
            span = self.join(self.span(first), self.span(last))
            inner = [child for child in inner if child is not None]
            if kind == "list":
                return ListNode(items=tuple(self.value(v) for v in inner), span=span)
            return MapNode(pairs=tuple(self.pair(p) for p in inner), span=span)
        if node.type == "STRING":
            return self.string(node)
        kind = {"NUMBER": "number", "NAME": "name"}[node.type]
        return Atom(kind=kind, text=str(node), span=self.span(node))

    def string(self, token: Any) -> Atom:
        atom = Atom(kind="string", text=str(token), span=self.span(token))
        problem = escape_problem(atom.text)
        if problem is not None:
            index, char = problem
            column = token.column + index
            body = atom.text[1:-1]
            hint = "a backslash starts an escape: \\n, \\t, \\\" or \\\\; write `\\\\` for a backslash, or use forward slashes"
            if len(body) <= 80:
                doubled = _literal_backslashes(body, "\\\\")
                slashed = _literal_backslashes(body, "/")
                hint += f': "{doubled}" or "{slashed}"'
            self.problems.append(
                Diagnostic(
                    code=BAD_ESCAPE, severity="error", message=f"unknown escape `\\{char}` in a string",
                    span=Span(file=self.filename, line=token.line, column=column, end_line=token.line, end_column=column + 2),
                    hint=hint,
                )
            )
        return atom

    def pair(self, tree: Any) -> Pair:
        key, op, value_tree = tree.children
        key_span = self.span(key)
        value = self.value(value_tree)
        return Pair(key=str(key), key_span=key_span, op=str(op), value=value, span=self.join(key_span, value.span))


# Strings (skipped whole), comments, brackets and runs of line breaks: all that `outline`
# needs to see. Possessive repeats keep the regex engine from saving a backtracking point
# per character, which on a long string or comment costs memory in proportion.
_OUTLINE = re.compile(r'"(?:[^"\\\n]++|\\.)*+"?|#[^\n]*+|//[^\n]*+|[{}\[\]]|\n++')


def outline(text: str, filename: str) -> tuple[tuple[Comment, ...], Diagnostic | None]:
    """The comments of `text` and, if brackets nest deeper than MAX_DEPTH, the diagnostic
    for the first bracket too deep (GS012). One pass, in time linear in the text."""
    comments: list[Comment] = []
    depth = 0
    line, line_start = 1, 0
    for m in _OUTLINE.finditer(text):
        token = m.group()
        first = token[0]
        if first == "\n":
            line, line_start = line + len(token), m.end()
        elif first in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                column = m.start() - line_start + 1
                return tuple(comments), Diagnostic(
                    code=TOO_DEEP, severity="error",
                    message=f"blocks, lists and maps nest more than {MAX_DEPTH} deep here",
                    span=Span(file=filename, line=line, column=column, end_line=line, end_column=column + 1),
                    hint="a spec nests a few levels (`project` > `data` > a map); close the brackets above, or flatten the value",
                )
        elif first in "}]":
            depth = max(depth - 1, 0)
        elif first != '"':
            start = m.start()
            column = start - line_start + 1
            comments.append(
                Comment(
                    text=token.rstrip(),
                    span=Span(file=filename, line=line, column=column, end_line=line, end_column=column + len(token)),
                    own_line=not text[line_start:start].strip(),
                )
            )
    return tuple(comments), None


def _literal_backslashes(body: str, replacement: str) -> str:
    """A string literal's body with each backslash that is not `\\\\` or `\\"` replaced:
    what its author most likely meant, a Windows path (`C:\\data\\new`)."""
    return re.sub(r'\\[\\"]|\\', lambda m: m.group() if len(m.group()) == 2 else replacement, body)


def comments_of(source: str, filename: str) -> tuple[Comment, ...]:
    """Every comment of `source`, with its position."""
    return outline(source, filename)[0]


def size_limit() -> int:
    """The most characters a spec may have: `$GENAISDK_MAX_SPEC_SIZE` if set, else
    MAX_SPEC_SIZE. A value that is not a whole number is a SpecError (GS011)."""
    setting = os.environ.get(SIZE_VARIABLE, "").strip().replace("_", "")
    if not setting:
        return MAX_SPEC_SIZE
    if not setting.isdigit():
        raise SpecError([
            Diagnostic(
                code=TOO_LARGE, severity="error",
                message=f"{SIZE_VARIABLE} must be a number of characters, not `{setting}`",
                hint=f"for example {SIZE_VARIABLE}=20000000 for 20 MB",
            )
        ])
    return int(setting)


def check_size(size: int, filename: str, *, at_least: bool = False) -> None:
    """SpecError (GS011) when a spec of `size` characters is over the limit; `at_least`
    when reading stopped at the limit and the whole size is not known."""
    limit = size_limit()
    if size <= limit:
        return
    shown = f"more than {_megabytes(limit)}" if at_least else _megabytes(size)
    raise SpecError([
        Diagnostic(
            code=TOO_LARGE, severity="error",
            message=f"`{filename}` is {shown}; a spec may be at most {_megabytes(limit)} ({limit:,} characters)",
            hint=f"is this the spec file? A spec is a few kilobytes. To read a larger one, set {SIZE_VARIABLE} "
            f"to a number of characters (e.g. {SIZE_VARIABLE}={max(limit * 2, size + 1)})",
        )
    ])


def _megabytes(characters: int) -> str:
    return f"{characters / 1e6:.3g} MB"


# --------------------------------------------------------------------------------------
# Public entry points


def parse(text: str, filename: str = "<spec>") -> Document:
    """Parse a whole `.genai` text. Raises `SpecError` on bad syntax: one diagnostic, or one
    per string with an unknown escape."""
    document, problems = _parse(text, filename)
    if problems:
        raise SpecError(problems, text)
    return document


def _parse(text: str, filename: str) -> tuple[Document, list[Diagnostic]]:
    """The document and its unknown string escapes (which spoil no structure, so every one
    can be reported); SpecError for the first other syntax error."""
    check_size(len(text), filename)
    # The grammar ends statements with a newline; make sure the last one has one.
    padded = text if text.endswith("\n") else text + "\n"
    tree, comments = _run(padded, "start", filename, text)
    converter = _Converter(filename)
    return converter.document(tree, text, comments), converter.problems


# Syntax errors confined to one line: the line can be set aside and parsing go on.
_LINE_LOCAL = {UNEXPECTED_CHARACTER, UNTERMINATED_STRING, MISSING_VALUE, MISSING_EQUALS, MISSING_SEPARATOR, UNEXPECTED_TOKEN, BAD_VERSION_LINE}
MAX_SYNTAX_ERRORS = 20
RECOVERY_WORK = 8_000_000
"""Characters re-parsed in all while recovering from syntax errors: twenty re-parses of a
small file, fewer of a large one, so that recovery stays linear in the file's size."""


def parse_recovering(text: str, filename: str = "<spec>") -> tuple[Document | None, list[Diagnostic]]:
    """Parse, reporting every syntax error that is confined to its own line.

    After such an error the line is blanked (its length and the line count kept, so every
    position stays true) and parsing starts again, so a file with three typos on three
    lines gets three diagnostics, and the rest of it can still be checked. Errors that
    span lines (a missing `}`) end the search: what follows them cannot be trusted. So do
    MAX_SYNTAX_ERRORS errors, or RECOVERY_WORK characters re-parsed. Unknown string escapes
    are reported as well, all of them.

    Returns (the document of the text with the bad lines set aside, or None when the text
    could not be recovered; the syntax diagnostics). The document's `source` is the
    original text.
    """
    diagnostics: list[Diagnostic] = []
    current = text
    work = 0
    while len(diagnostics) < MAX_SYNTAX_ERRORS:
        try:
            document, problems = _parse(current, filename)
        except SpecError as exc:
            diagnostic = exc.diagnostics[0]
            diagnostics.append(diagnostic)
            work += len(current)
            blanked = _blank_line(current, diagnostic) if work <= RECOVERY_WORK else None
            if blanked is None:
                return None, diagnostics
            current = blanked
            continue
        if diagnostics:
            document = attrs.evolve(document, source=text, comments=comments_of(text, filename))
        return document, diagnostics + problems
    return None, diagnostics


def _blank_line(text: str, diagnostic: Diagnostic) -> str | None:
    """`text` with the diagnostic's line replaced by spaces, or None if that would not be
    safe (a multi-line error, or a line that opens or closes brackets)."""
    if diagnostic.code not in _LINE_LOCAL or diagnostic.span is None:
        return None
    start = SourceLines(text).start(diagnostic.span.line)
    if start is None:
        return None
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    line = text[start:end]
    if not line.strip():
        return None
    found = scan(line)
    if found.open_at_end or found.unmatched or found.pairs and any(b.is_block for b, _ in found.pairs):
        return None
    return text[:start] + " " * len(line) + text[end:]


def parse_override(text: str, filename: str = "--set", line: int = 1) -> tuple[str, Span, str, Value]:
    """Parse one `--set path=value` text (as written after `--set`). Returns (path, path
    span, operator, value); spans are on `line` of the pseudo-file `filename`."""
    tree, _ = _run(text, "override", filename, text, line_offset=line - 1)
    converter = _Converter(filename)
    key, op, value_tree = tree.children[:3]
    value = converter.value(value_tree)
    if converter.problems:
        raise SpecError([attrs.evolve(d, span=_shift(d.span, line - 1)) for d in converter.problems], text)
    return str(key), _shift(converter.span(key), line - 1), str(op), _shift_value(value, line - 1)


def _shift(span: Span, lines: int) -> Span:
    if not lines:
        return span
    return attrs.evolve(span, line=span.line + lines, end_line=(span.end_line or span.line) + lines)


def _shift_value(value: Value, lines: int) -> Value:
    # Overrides are one line each; a value's spans only need their line moved.
    if not lines:
        return value

    def term(t: Any) -> Any:
        if isinstance(t, Atom):
            return attrs.evolve(t, span=_shift(t.span, lines))
        if isinstance(t, ListNode):
            return ListNode(items=tuple(_shift_value(v, lines) for v in t.items), span=_shift(t.span, lines))
        return MapNode(
            pairs=tuple(
                attrs.evolve(
                    p, key_span=_shift(p.key_span, lines), value=_shift_value(p.value, lines), span=_shift(p.span, lines)
                )
                for p in t.pairs
            ),
            span=_shift(t.span, lines),
        )

    return Value(terms=tuple(term(t) for t in value.terms), span=_shift(value.span, lines))


def _run(text: str, start: str, filename: str, original: str, line_offset: int = 0) -> tuple[Any, tuple[Comment, ...]]:
    """The Lark tree of `text` from rule `start`, and the comments; SpecError (one
    diagnostic, moved down `line_offset` lines) for text nested too deep or bad syntax."""
    comments, too_deep = outline(text, filename)
    if too_deep is not None:
        raise SpecError([attrs.evolve(too_deep, span=_shift(too_deep.span, line_offset))], original)
    parser = get_parser()  # first: it imports Lark the lean way
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

    try:
        return parser.parse(text, start=start), comments
    except UnexpectedCharacters as exc:
        diagnostic = _unexpected_character(exc, original, filename)
    except UnexpectedToken as exc:
        diagnostic = _Classifier(exc, original, filename, override=start == "override").diagnostic()
    except UnexpectedInput as exc:  # pragma: no cover - LALR raises only the two above
        diagnostic = Diagnostic(
            code=UNEXPECTED_TOKEN, severity="error", message="this text cannot be parsed",
            span=Span(file=filename, line=getattr(exc, "line", 1), column=getattr(exc, "column", 1)),
        )
    if line_offset and diagnostic.span is not None:
        diagnostic = attrs.evolve(diagnostic, span=_shift(diagnostic.span, line_offset))
    raise SpecError([diagnostic], original)


# --------------------------------------------------------------------------------------
# Error classification

TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "OP": "`=`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "DOLLAR": "`$`",
    "COMMA": "`,`",
    "SEMICOLON": "`;`",
    "_NL": "a new line",
    "$END": "the end of the file",
    "GENAI": "`genai`",
}
"""Lark terminal names in words. Every terminal of the grammar must be here (tested)."""

VALUE_START = {"NAME", "NUMBER", "STRING", "DOLLAR", "LSQB", "LBRACE"}


def _words(names: set[str]) -> str:
    ordered = sorted({TOKEN_WORDS.get(n, n) for n in names})
    if not ordered:
        return "nothing"
    if len(ordered) == 1:
        return ordered[0]
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]


def _unexpected_character(exc: Any, text: str, filename: str) -> Diagnostic:
    offset = exc.pos_in_stream
    char = text[offset] if offset < len(text) else ""
    line, column = exc.line, exc.column
    span = Span(file=filename, line=line, column=column, end_line=line, end_column=column + 1)
    line_end = text.find("\n", offset)
    rest = text[offset : line_end if line_end >= 0 else len(text)]
    if char == '"':
        span = attrs.evolve(span, end_column=column + len(rest))
        return Diagnostic(
            code=UNTERMINATED_STRING, severity="error",
            message="this string is never closed",
            span=span, hint='end it with `"` on the same line (strings cannot span lines)',
        )
    if char == "'":
        return Diagnostic(
            code=UNEXPECTED_CHARACTER, severity="error", message="strings use double quotes",
            span=span, hint=f'write "{rest[1:].split(chr(39), 1)[0]}"',
        )
    if char == "-" and rest[1:2].isdigit():
        return Diagnostic(
            code=UNEXPECTED_CHARACTER, severity="error", message="negative numbers are not allowed",
            span=span, hint="every quantity in a spec is zero or more",
        )
    if char == ".":
        return Diagnostic(
            code=UNEXPECTED_CHARACTER, severity="error", message="a number needs digits on both sides of `.`",
            span=span, hint="write 0.5 rather than .5, and 1.0 rather than 1.",
        )
    if char == "/":
        return Diagnostic(
            code=UNEXPECTED_CHARACTER, severity="error", message="unexpected `/`",
            span=span, hint="comments start with `#` or `//`; units are words (write `tokens`, not `tok/s`)",
        )
    if char in "×*":
        return Diagnostic(
            code=UNEXPECTED_CHARACTER, severity="error", message=f"unexpected `{char}`",
            span=span, hint="a number of devices is written with an `x`: `64 x a100-80gb`",
        )
    shown = repr(char) if not char.isprintable() or char.isspace() else f"`{char}`"
    expected = getattr(exc, "allowed", None) or set()
    hint = f"expected {_words(set(expected))} here" if expected else None
    return Diagnostic(
        code=UNEXPECTED_CHARACTER, severity="error", message=f"unexpected character {shown}", span=span, hint=hint
    )


_CODE_LINE = re.compile(r"^[ \t]*+(?!#|//|$)", re.M)
"""The indentation of a line that holds code (not blank, not only a comment)."""


class _Classifier:
    """Turn one UnexpectedToken into a Diagnostic, using the token, what was expected and
    the brackets open at that point."""

    def __init__(self, exc: Any, text: str, filename: str, override: bool):
        self.exc = exc
        self.text = text
        self.filename = filename
        self.override = override
        self.token = exc.token
        self.kind = self.token.type
        accepts = exc.accepts if exc.interactive_parser is not None else None
        self.expected: set[str] = set(accepts or exc.expected or ())
        history = getattr(exc, "token_history", None) or []
        self.previous = history[-1] if history and history[-1] is not None else None
        offset = getattr(self.token, "start_pos", None)
        self.offset = len(text) if offset is None or self.kind == "$END" else offset
        self.context = scan(text, self.offset)

    # -- spans
    def token_span(self, token: Any = None) -> Span:
        token = token if token is not None else self.token
        if token.type == "$END" or getattr(token, "line", None) is None:
            return self.end_span()
        if token.type == "_NL":
            # Point at the place the line ends, not at a comment that follows.
            return self.after_previous()
        return Span(
            file=self.filename, line=token.line, column=token.column,
            end_line=token.end_line, end_column=token.end_column,
        )

    def end_span(self) -> Span:
        stripped = self.text.rstrip()
        line, column = _position(self.text, len(stripped)) if stripped else (1, 1)
        return Span(file=self.filename, line=line, column=max(column, 1), end_line=line, end_column=max(column, 1) + 1)

    def after_previous(self) -> Span:
        if self.previous is not None and getattr(self.previous, "end_line", None) is not None:
            line, column = self.previous.end_line, self.previous.end_column
        else:
            line, column = _position(self.text, self.offset)
        return Span(file=self.filename, line=line, column=column, end_line=line, end_column=column + 1)

    def bracket_span(self, bracket: Bracket) -> Span:
        return Span(
            file=self.filename, line=bracket.line, column=bracket.column,
            end_line=bracket.line, end_column=bracket.column + 1,
        )

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> Diagnostic:
        return Diagnostic(code=code, severity="error", message=message, span=span, hint=hint)

    def shown(self) -> str:
        if self.kind == "$END":
            return "the end of the file"
        if self.kind == "_NL":
            return "the end of the line"
        return f"`{self.token}`"

    # -- classification
    def diagnostic(self) -> Diagnostic:
        kind, expected = self.kind, self.expected
        innermost = self.context.open_at_end[-1] if self.context.open_at_end else None
        previous = str(self.previous) if self.previous is not None else ""
        previous_type = self.previous.type if self.previous is not None else ""

        if self.override:
            return self.override_error()

        if previous_type == "GENAI" or (kind != "NUMBER" and expected == {"NUMBER"}):
            return self.error(
                BAD_VERSION_LINE, "the first line says which version of the language the file uses",
                self.token_span(), hint="write `genai 1`",
            )

        # Missing closers: at the end of the file, or a closer of the other kind.
        if kind == "$END" and self.context.open_at_end:
            return self.unclosed()
        if kind in ("RBRACE", "RSQB"):
            closer = "}" if kind == "RBRACE" else "]"
            if innermost is None:
                return self.error(
                    UNMATCHED_CLOSER, f"`{closer}` closes nothing: no block, list or map is open here",
                    self.token_span(), hint="remove it, or check the braces above",
                )
            if innermost.char != ("{" if closer == "}" else "["):
                want = "}" if innermost.char == "{" else "]"
                return self.error(
                    UNMATCHED_CLOSER,
                    f"`{closer}` cannot close the `{innermost.char}` opened on line {innermost.line}",
                    self.token_span(), hint=f"close it with `{want}`",
                )

        # A key or value that ends where a value was expected.
        value_ends = ("_NL", "$END", "SEMICOLON", "RBRACE", "RSQB", "COMMA")
        if kind in value_ends and expected & VALUE_START and previous_type in ("OP", "COMMA", "LSQB"):
            return self.missing_value(previous)

        # `key value` without `=`, or a block name without `{`.
        if "OP" in expected and "LBRACE" in expected and previous_type == "NAME":
            if previous == "project" and kind in ("NAME", "NUMBER"):
                return self.error(
                    UNQUOTED_LABEL, f"the project's name `{self.token}` is not quoted",
                    self.token_span(), hint=f'quote it: `project "{self.token}" {{`',
                )
            if kind in ("NAME", "NUMBER", "DOLLAR", "LSQB"):
                return self.error(
                    MISSING_EQUALS, f"missing `=` between `{previous}` and its value",
                    self.token_span(), hint=f"write `{previous} = {self.token}`",
                )
            if kind in ("_NL", "$END", "SEMICOLON", "RBRACE"):
                return self.error(
                    MISSING_EQUALS, f"`{previous}` stands alone",
                    self.token_span(self.previous),
                    hint=f"give it a value (`{previous} = ...`) or open a block (`{previous} {{ ... }}`)",
                )
        if "LBRACE" in expected and previous_type == "STRING" and kind == "_NL":
            return self.error(
                MISSING_EQUALS, "a labelled block needs `{` on the same line as its label",
                self.token_span(), hint="move `{` up to the end of this line",
            )

        # Two statements or two entries run together.
        if kind == "OP" and previous_type == "NAME":
            return self.run_together(previous, innermost)

        if kind == "OP":
            return self.error(
                UNEXPECTED_TOKEN, f"`{self.token}` needs a key before it",
                self.token_span(), hint="write `key = value`",
            )
        if kind == "COMMA" and (innermost is None or innermost.is_block):
            return self.error(
                UNEXPECTED_TOKEN, "unexpected `,`: a list of several values needs brackets",
                self.token_span(), hint="write `[a, b]`; statements end with a new line or `;`",
            )
        if kind in VALUE_START and ("_NL" in expected or "SEMICOLON" in expected or "RBRACE" in expected):
            return self.error(
                MISSING_SEPARATOR, f"unexpected {self.shown()}: the statement before it has ended",
                self.token_span(), hint="start each statement on its own line (or separate them with `;`)",
            )
        where = f" in `{innermost.owner}`" if innermost is not None and innermost.owner else ""
        return self.error(
            UNEXPECTED_TOKEN, f"unexpected {self.shown()}{where}",
            self.token_span(), hint=f"expected {_words(expected)}" if expected else None,
        )

    def missing_value(self, previous: str) -> Diagnostic:
        target = self.previous if self.previous is not None else self.token
        return self.error(
            MISSING_VALUE, f"missing a value after `{previous}`" if previous else "missing a value",
            self.token_span(target), hint="write a value here, or `auto` to let the planner choose",
        )

    def run_together(self, previous: str, innermost: Bracket | None) -> Diagnostic:
        span = self.token_span(self.previous)
        if innermost is not None and not innermost.is_block:
            return self.error(
                MISSING_SEPARATOR, f"missing `,` before `{previous}`",
                span, hint=f"separate the entries of `{innermost.owner}` with commas or new lines",
            )
        return self.error(
            MISSING_SEPARATOR, f"missing a new line before `{previous}`",
            span, hint="start each statement on its own line (or separate them with `;`)",
        )

    def unclosed(self) -> Diagnostic:
        """A missing `}` or `]`: point at the bracket that was opened and never closed.

        Braces match by nesting, so a missing `}` early in a file is noticed only at the
        end, after later braces have matched the wrong openers. Indentation tells the
        story: the first block whose matched `}` is indented differently from the line that
        opened it is the one missing its `}`.
        """
        whole = scan(self.text)
        open_now = self.context.open_at_end
        suspect = None
        for bracket, closer in sorted(whole.pairs, key=lambda p: p[0].offset):
            if not bracket.is_block:
                continue
            closer_line_start = self.text.rfind("\n", 0, closer) + 1
            before = self.text[closer_line_start:closer]
            if before.strip():
                continue  # `}` after other text on its line: indentation says nothing
            if len(before) != bracket.indent:
                suspect = bracket
                break
        if suspect is None:
            suspect = open_now[-1]
        opener = "block" if suspect.is_block else ("list" if suspect.char == "[" else "map")
        closer = "]" if suspect.char == "[" else "}"
        name = f"`{suspect.owner}` " if suspect.owner else ""
        hint = f"add `{closer}` where the {opener} ends"
        end_line = self._block_end_line(suspect)
        if suspect.is_block and end_line is not None:
            hint = f"add `}}` to end the {name}block, before line {end_line}"
        return self.error(
            UNCLOSED_BRACKET,
            f"the {name}{opener} opened here is never closed",
            self.bracket_span(suspect),
            hint=hint,
        )

    def _block_end_line(self, bracket: Bracket) -> int | None:
        """The first line after the opener indented no deeper than the opener's line
        (blank and comment lines aside), found without splitting the text into lines."""
        text = self.text
        end = text.find("\n", bracket.offset)
        if end < 0:
            return None
        number, position = bracket.line + 1, end + 1
        for match in _CODE_LINE.finditer(text, position):
            number += text.count("\n", position, match.start())
            position = match.start()
            if len(match.group()) <= bracket.indent and text[match.end()] not in "}]":
                return number
        return None

    def override_error(self) -> Diagnostic:
        if self.kind in ("_NL", "$END") and self.previous is not None and self.previous.type == "OP":
            return self.missing_value(str(self.previous))
        if self.previous is None or self.kind != "OP" and self.previous.type == "NAME" and "OP" in self.expected:
            return self.error(
                MISSING_EQUALS, "an override is written `path=value`",
                self.token_span(), hint="for example `--set train.precision=bf16`",
            )
        return self.error(
            UNEXPECTED_TOKEN, f"unexpected {self.shown()} in the override",
            self.token_span(), hint=f"expected {_words(self.expected)}" if self.expected else None,
        )

