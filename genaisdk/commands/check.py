"""`genai check FILE... [--json] [--set path=value ...]`: validate specs, report every problem.

Exit status: 0 when no file has an error (warnings allowed), 1 when any has, 2 for bad usage
(a missing file, an unknown option).
"""

from __future__ import annotations

import sys
from typing import Any

import click


def read_input(name: str) -> str:
    """A file's text, or standard input for `-`; SpecError if it cannot be read or is over
    the size limit."""
    from genaisdk.spec import read_spec_file, read_stdin

    if name == "-":
        return read_stdin()
    return read_spec_file(name)


def use_colour(stream: Any) -> bool:
    import os

    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


_SEVERITY_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}


def colourize(rendered: str) -> str:
    """Colour a rendered diagnostic for a terminal: the headline by severity, the carets,
    the help line."""
    out = []
    colour = "red"
    for line in rendered.split("\n"):
        for severity, this in _SEVERITY_COLOURS.items():
            if f": {severity}[" in line and not line.startswith(" "):
                colour = this
                where, _, rest = line.partition(f": {severity}[")
                line = click.style(where + ":", bold=True) + " " + click.style(f"{severity}[{rest}", fg=this, bold=True)
                break
        else:
            stripped = line.lstrip()
            if stripped.startswith("= help:"):
                line = line.replace("= help:", click.style("= help:", fg="cyan", bold=True), 1)
            elif stripped.startswith("|") and set(stripped[1:].strip()) == {"^"}:
                line = line.replace("^", click.style("^", fg=colour, bold=True))
        out.append(line)
    return "\n".join(out)


def render_diagnostics(diagnostics: list, source: Any, colour: bool) -> str:
    """The diagnostics as text (at most `genaisdk.diagnostics.MAX_RENDERED`, then a count
    of the rest), coloured for a terminal when `colour`."""
    from genaisdk.diagnostics import render_each

    parts = render_each(diagnostics, source)
    if colour:
        parts = [colourize(p) for p in parts]
    return "\n\n".join(parts)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@click.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the diagnostics as JSON.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a value, e.g. train.precision=fp16.")
def command(files: tuple[str, ...], as_json: bool, overrides: tuple[str, ...]) -> None:
    """Validate specs and report every problem, with the line, a caret and a fix.

    FILE may be `-` for standard input. Exit status 1 if any spec has an error.
    """
    from genaisdk.diagnostics import SpecError
    from genaisdk.core.safe import printable
    from genaisdk.spec import diagnose

    colour = not as_json and use_colour(sys.stdout)
    reports = []
    failed = False
    for name in files:
        filename = "<stdin>" if name == "-" else name
        try:
            text = read_input(name)
        except SpecError as exc:
            diagnostics, source = list(exc.diagnostics), None
        else:
            spec, diagnostics, source = diagnose(text, filename, overrides=list(overrides) or None)
            if spec is not None and not any(d.is_error for d in diagnostics):
                # What `genai plan` reads before it searches: the checkpoint `model.from` names.
                from genaisdk.diagnostics import sort_diagnostics
                from genaisdk.spec.validate import files as file_checks

                diagnostics = sort_diagnostics([*diagnostics, *file_checks(spec)])
        errors = sum(1 for d in diagnostics if d.is_error)
        warnings = sum(1 for d in diagnostics if d.severity == "warning")
        failed = failed or errors > 0
        reports.append((filename, diagnostics, source, errors, warnings))

    if as_json:
        import json

        payload = {
            "ok": not failed,
            "files": [
                {
                    "file": filename,
                    "errors": errors,
                    "warnings": warnings,
                    "diagnostics": [d.to_json() for d in diagnostics],
                }
                for filename, diagnostics, _, errors, warnings in reports
            ],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        for filename, diagnostics, source, errors, warnings in reports:
            if diagnostics:
                click.echo(render_diagnostics(diagnostics, source, colour), color=colour)
                click.echo("")
            if errors or warnings:
                summary = ", ".join(p for p in (errors and _count(errors, "error"), warnings and _count(warnings, "warning")) if p)
            else:
                summary = "ok"
            line = f"{printable(filename)}: {summary}"
            if colour:
                line = click.style(line, fg="red" if errors else ("yellow" if warnings else "green"))
            click.echo(line, color=colour)
    sys.exit(1 if failed else 0)
