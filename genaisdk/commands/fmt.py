"""`genai fmt [--check] [--diff] FILE... | -`: rewrite specs in the one canonical layout.

Without options each file is rewritten in place when its layout changes (`-` reads standard
input and writes standard output). `--check` writes nothing and exits 1 if any file would
change; `--diff` prints what would change. A file with a syntax error is reported and
left alone (exit 1).
"""

from __future__ import annotations

import sys

import click


def _write(path: str, text: str) -> None:
    """Replace the file's content atomically (a crash never leaves half a spec)."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".genai-fmt-", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        try:
            os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        except OSError:
            pass
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


@click.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True, exists=True))
@click.option("--check", "check_only", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of the changes instead of writing.")
def command(files: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Rewrite specs in the canonical layout (comments kept)."""
    from genaisdk.commands.check import read_input, render_diagnostics, use_colour
    from genaisdk.diagnostics import SpecError
    from genaisdk.core.safe import printable
    from genaisdk.spec import format_text

    status = 0
    for name in files:
        filename = "<stdin>" if name == "-" else name
        try:
            text = read_input(name)
            formatted = format_text(text, filename)
        except SpecError as exc:
            colour = use_colour(sys.stderr)
            click.echo(render_diagnostics(exc.diagnostics, exc.source, colour), err=True, color=colour)
            status = 1
            continue
        changed = formatted != text
        if show_diff and changed:
            import difflib

            diff = difflib.unified_diff(
                text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                fromfile=f"{filename} (original)", tofile=f"{filename} (formatted)",
            )
            shown = "".join(line if line.endswith("\n") else line + "\n" for line in diff)
            if getattr(sys.stdout, "isatty", lambda: False)():
                # On a terminal the diff is read, not applied: control characters in the
                # file are shown escaped. Piped, it is the exact change (for `patch`).
                shown = printable(shown, keep_newlines=True)
            sys.stdout.write(shown)
        if check_only or show_diff:
            if changed:
                if check_only:
                    click.echo(f"would reformat {printable(filename)}", err=True)
                    status = max(status, 1)
            continue
        if name == "-":
            sys.stdout.write(formatted)
        elif changed:
            _write(name, formatted)
            click.echo(f"reformatted {printable(filename)}", err=True)
    sys.exit(status)
