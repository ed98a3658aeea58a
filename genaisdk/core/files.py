"""Files written the way the user's other tools write them: their permissions follow the
process's umask (``0o666 & ~umask``, POSIX `open(2)` with mode 0666).

Some writers create files with mode 0600 whatever the umask: `tempfile.mkstemp` (by
design, for secrecy) and the `safetensors` library's `save_file`. A file that is then
renamed into place keeps that mode, so an exported model or a cache would be unreadable to
the user's group where every other file is readable. Every such writer in genaisdk calls
`honour_umask` on what it wrote, so that there is one rule for every file genai writes."""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where the OS says it (Linux's
    /proc/self/status ``Umask:`` line), else set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a plain `open(path, "w")` gives a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def honour_umask(path: str | Path) -> None:
    """Gives `path` (a file this process just wrote) the mode a plain new file gets.
    OSError from `os.chmod` propagates (the caller wrote the file, so it may chmod it)."""
    os.chmod(path, default_file_mode())
