"""The .genai spec language: parse, check, build a Spec, format.

    >>> from genaisdk.spec import loads
    >>> spec = loads(text, filename="legal.genai", overrides=["train.precision=fp16"])

- `load(path, *, overrides=None, registry=None) -> Spec`
- `loads(text, filename="<spec>", overrides=None, *, registry=None) -> Spec`
- `check(text, filename="<spec>", *, overrides=None, registry=None) -> list[Diagnostic]`
- `diagnose(text, filename="<spec>", *, overrides=None, registry=None)
  -> (Spec | None, diagnostics, source to render them with)`
- `format_text(text, filename="<spec>") -> str` (the canonical layout, `genai fmt`)
- `is_path(spec) -> bool`: whether a `str` or `os.PathLike` argument names a file or is
  spec text (the rule every entry point that takes either uses)

`load` and `loads` raise `genaisdk.diagnostics.SpecError` carrying every diagnostic when the
spec has an error; a returned Spec carries its warnings in `Spec.diagnostics`. `overrides`
is a mapping `{"train.precision": "fp16"}` or a list of `"train.precision=fp16"` strings
(see `genaisdk.spec.overrides.apply_overrides`); they are parsed with the spec's own value
grammar and checked like the file, and their diagnostics point at the override (file
`--set`). `registry` defaults to `genaisdk.registry.get_registry()`.

Submodules: `parse` (text -> tree), `tree` (the syntax tree), `units` (quantities),
`schema` (keys per block), `build` (tree -> Spec), `overrides`, `fmt` (printer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from genaisdk.diagnostics import Diagnostic
    from genaisdk.spec.model import Spec

Overrides = Mapping[str, str] | Iterable[str] | None

__all__ = ["check", "diagnose", "format_text", "is_path", "load", "loads", "read_spec_file", "read_stdin"]


def is_path(spec: str | PathLike[str]) -> bool:
    """Whether `spec`, given where either a path or spec text is accepted, is a path.

    An `os.PathLike` is always a path, and so is a string naming an existing file (what
    its name holds, `{` included, does not matter). Any other string is spec text if it
    holds a line break or a `{` (every spec has a block), and otherwise a path (one that
    does not exist, so loading it says so). Pass a `pathlib.Path` to leave no doubt; the
    command line does (its SPEC is always a path).
    """
    if isinstance(spec, PathLike):
        return True
    if "\n" not in spec:
        import os.path

        try:
            if os.path.isfile(spec):
                return True
        except (OSError, ValueError):  # a name too long, or holding a NUL
            pass
    return "\n" not in spec and "{" not in spec


def read_stdin() -> str:
    """Standard input's text, up to the size limit (SpecError GS011 past it: reading
    stops there, so an endless stream is refused rather than read forever)."""
    import sys

    from genaisdk.spec.parse import check_size, size_limit

    limit = size_limit()
    text = sys.stdin.read(limit + 1)
    check_size(len(text), "<stdin>", at_least=True)
    return text


def read_spec_file(path: str | PathLike[str]) -> str:
    """The text of a spec file; unreadable or non-UTF-8 files raise SpecError (GS010), and
    files over the size limit (`genaisdk.spec.parse.size_limit`) SpecError (GS011) after
    reading no more than the limit."""
    from genaisdk.diagnostics import Diagnostic, SpecError
    from genaisdk.spec.parse import UNREADABLE, check_size, size_limit

    name = str(path)
    limit = size_limit()
    try:
        # utf-8-sig: a byte-order mark some editors write is not part of the spec.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read(limit + 1)
            if len(text) > limit:
                import os
                import stat

                info = os.fstat(handle.fileno())
                regular = stat.S_ISREG(info.st_mode)
                check_size(info.st_size if regular else len(text), name, at_least=not regular)
            return text
    except UnicodeDecodeError as exc:
        message = f"`{name}` is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        message = f"cannot read `{name}`: {exc.strerror or exc}"
    raise SpecError([Diagnostic(code=UNREADABLE, severity="error", message=message)])


def diagnose(
    text: str, filename: str = "<spec>", *, overrides: Overrides = None, registry: Any = None
) -> tuple[Spec | None, list[Diagnostic], str | Mapping[str, str]]:
    """Everything `check` and `loads` need: (the Spec or None, every diagnostic, the source
    text to render them with: the text, or a mapping file -> text when there are overrides)."""
    from genaisdk.diagnostics import SpecError, sort_diagnostics
    from genaisdk.spec.build import build
    from genaisdk.spec.parse import parse_recovering

    source: Any = text
    document, syntax = parse_recovering(text, filename)
    if document is None:
        return None, syntax, source
    if overrides:
        from genaisdk.spec.overrides import OVERRIDE_FILE, apply_overrides

        try:
            document, pseudo = apply_overrides(document, overrides)
        except SpecError as exc:
            return None, sort_diagnostics([*syntax, *exc.diagnostics]), exc.source
        source = {filename: text, OVERRIDE_FILE: pseudo}
    if registry is None:
        from genaisdk.registry import get_registry

        registry = get_registry()
    spec, diagnostics = build(document, registry)
    if spec is not None and isinstance(source, Mapping):
        import attrs

        spec = attrs.evolve(spec, override_source=source[OVERRIDE_FILE])
    if syntax:
        # The lines with syntax errors were set aside; what the builder says about anything
        # that spans them (or its warnings) may be an artefact of their absence.
        blanked = {d.span.line for d in syntax if d.span is not None}
        kept = [d for d in diagnostics if d.is_error and not _touches(d, blanked, filename)]
        return None, sort_diagnostics([*syntax, *kept]), source
    return spec, diagnostics, source


def _touches(diagnostic: Diagnostic, lines: set[int], filename: str) -> bool:
    span = diagnostic.span
    if span is None or span.file != filename:
        return False
    last = span.end_line or span.line
    return any(span.line <= line <= last for line in lines)


def loads(text: str, filename: str = "<spec>", overrides: Overrides = None, *, registry: Any = None) -> Spec:
    """Parse and check a spec's text; the Spec, or SpecError with every diagnostic."""
    from genaisdk.diagnostics import SpecError

    spec, diagnostics, source = diagnose(text, filename, overrides=overrides, registry=registry)
    if spec is None:
        raise SpecError(diagnostics, source)
    return spec


def load(path: str | PathLike[str], *, overrides: Overrides = None, registry: Any = None) -> Spec:
    """Read, parse and check a spec file (see `loads`)."""
    return loads(read_spec_file(path), filename=str(path), overrides=overrides, registry=registry)


def check(text: str, filename: str = "<spec>", *, overrides: Overrides = None, registry: Any = None) -> list[Diagnostic]:
    """Every diagnostic for a spec's text (errors and warnings), sorted by position."""
    return diagnose(text, filename, overrides=overrides, registry=registry)[1]


def format_text(text: str, filename: str = "<spec>") -> str:
    """The spec in the canonical layout (comments kept); SpecError on a syntax error."""
    from genaisdk.spec.fmt import format_document
    from genaisdk.spec.parse import parse

    return format_document(parse(text, filename))
