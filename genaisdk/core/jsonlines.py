"""JSON lines (https://jsonlines.org): one JSON value per line, UTF-8, lines ended by "\\n".

Every reader of a JSON-lines file (training and evaluation data, `genai generate
--batch-file`, a run's metrics) parses its lines here, so a broken line is reported one way:
the file, the line's number in the file (a value is parsed alone, so the decoder itself
always says "line 1") and the decoder's whole reason with its column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


class JSONLineError(ValueError):
    """A line that is not UTF-8 or not JSON; the message names the file, line and column."""


def parse_line(line: bytes | str, name: str, number: int) -> Any:
    """The JSON value of line `number` (1-based) of file `name`.

    Raises JSONLineError: ``name:number: not valid JSON: <reason>: line L column C`` (the
    decoder's reason; L is the file's line), or ``not valid UTF-8`` with the byte's column."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise JSONLineError(
                f"{name}:{number}: not valid UTF-8: byte 0x{line[exc.start]:02x} at column {exc.start + 1} "
                f"({exc.reason}); save the file as UTF-8"
            ) from None
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        # The decoder saw one line: its line number is always 1, its column is the file's.
        raise JSONLineError(f"{name}:{number}: not valid JSON: {exc.msg}: line {number} column {exc.colno}") from None


def json_lines(raw: bytes | str, name: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON-lines file's contents `raw`;
    JSONLineError (`parse_line`) for the first broken one. Lines are split at "\\n" only (a
    "\\r" before it is JSON whitespace), so the numbers are those an editor shows."""
    separator = b"\n" if isinstance(raw, bytes) else "\n"
    for number, line in enumerate(raw.split(separator), start=1):
        if line.strip():
            yield number, parse_line(line, name, number)
