"""Text from a spec, a file name or a plugin, made safe to print on a terminal.

A spec string, a comment or a path may hold control characters: an escape sequence
(`\\x1b[2J` clears the screen, others retitle the window or rewrite what was printed),
a carriage return that hides the start of a line, or a bidirectional override that shows
text in another order than it is read ("Trojan Source", Boucher & Anderson 2021). Printed
as they are, they let a file a user merely checks change what the user sees. `printable`
writes each as a visible escape (`\\x1b`, `\\r`, `\\u202e`); everything else, non-ASCII
letters included, is kept. Files are never changed: `genai fmt` keeps a file's text as it
is, only what reaches a terminal is escaped.
"""

from __future__ import annotations

import re

_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every terminal control character (C0 and C1 controls, DEL, line and
    paragraph separators, bidirectional controls) written as a visible escape; newlines
    kept when `keep_newlines` (for multi-line output such as Markdown)."""
    pattern = _UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def is_printable(text: str) -> bool:
    """Whether `printable(text)` is `text` itself."""
    return _UNSAFE.search(text) is None


PIPE_CLOSED = 141
"""Exit status when the reader of the output went away (`genai plan ... | head`): 128 +
SIGPIPE, what a shell reports for a program a closed pipe stopped, rather than 1, which
means the spec or plan has errors."""
