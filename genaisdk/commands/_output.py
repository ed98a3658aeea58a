"""Writing a command's page or card to a file without destroying someone else's file.

`genai report` and `genai card` default to common names (`report.html`, `README.md`), so
the folder they run in may already hold a file of that name that is not theirs: a project's
own README, say. Such a file is never replaced unless the user says so (`--force`); a file
the same command wrote earlier (it carries the command's mark) is replaced, so regenerating
needs no flag.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

_PEEK = 65_536
"""Bytes read from an existing file to look for the command's mark."""


def write_output(output: str, text: str, *, force: bool, ours: Callable[[str], bool], what: str) -> bool:
    """Write `text` to `output`; exit 1 with a one-line error when `output` exists, is not
    `ours` (judged on its first 64 KB) and `force` is off, or cannot be written.
    Returns True when written."""
    path = Path(output)
    if path.exists() and not force:
        try:
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                head = handle.read(_PEEK)
        except OSError:
            head = ""
        if path.is_dir() or not ours(head):
            click.echo(
                f"error: {output} already exists and is not a {what} this command wrote; "
                f"write elsewhere with -o FILE, or add --force to replace it",
                err=True,
            )
            sys.exit(1)
    try:
        with path.open("w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        click.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    return True


def is_report(head: str) -> bool:
    """A page `genai report` wrote: its generator meta tag names genaisdk."""
    return '<meta name="generator" content="genaisdk' in head


def is_card(head: str) -> bool:
    """A card `genai card` wrote: YAML front matter whose tags include genaisdk."""
    if not head.startswith("---"):
        return False
    end = head.find("\n---", 3)
    front = head[: end if end >= 0 else len(head)]
    return '"genaisdk"' in front or "- genaisdk" in front
