"""`--set path=value` overrides, applied to the syntax tree before the Spec is built.

An override is read with the same grammar as a spec value, then replaces (or adds) the
attribute it names, so it is checked exactly like a value written in the file, and a
mistake points at the override:

    --set:1:17: error[GS301]: unknown precision `fp61`
       1 | train.precision=fp61
         |                 ^^^^
      = help: did you mean `fp16`?

The overrides form a pseudo-file named `--set`, one override per line, in the order given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from genaisdk.diagnostics import Diagnostic, Span, SpecError
from genaisdk.spec.tree import Attribute, Block, Document, MapNode, Pair, Value

OVERRIDE_FILE = "--set"
from genaisdk.core.codes import BAD_OVERRIDE  # noqa: E402  (the table: genaisdk.core.codes)


def override_lines(overrides: Mapping[str, str] | Iterable[str]) -> list[str]:
    """`{"train.precision": "fp16"}` or `["train.precision=fp16"]` -> one `path=value` per line."""
    if isinstance(overrides, Mapping):
        return [f"{path}={value}" for path, value in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return [str(item) for item in overrides]


def apply_overrides(
    document: Document, overrides: Mapping[str, str] | Iterable[str]
) -> tuple[Document, str]:
    """Apply overrides to a parsed spec.

    `overrides` is a mapping `{"train.precision": "fp16"}` or an iterable of
    `"train.precision=fp16"` strings (what `--set` collects). A path is
    `block.key` (`train.precision`), `key` for a project key (`task`), or
    `block.map.entry` (`data.mix.legal`); a leading `project.` is allowed. A value is
    written as in a spec (`8 x h100-sxm`, `60B tokens`, `"text"`).

    Returns the new document and the text of the `--set` pseudo-file (for rendering
    diagnostics). Raises `SpecError` if an override cannot be read; unknown blocks and keys
    are left for the builder to report, pointing at the override.
    """
    from genaisdk.spec.parse import parse_override

    lines = override_lines(overrides)
    pseudo = "\n".join(lines)
    problems: list[Diagnostic] = []
    body = list(document.body)
    for number, line in enumerate(lines, start=1):
        if "\n" in line:
            problems.append(_problem("an override must fit on one line", number, line))
            continue
        if "=" not in line:
            problems.append(_problem(f"`{line}` is not `path=value`", number, line, "write e.g. `train.precision=bf16`"))
            continue
        try:
            path, path_span, op, value = parse_override(line, OVERRIDE_FILE, number)
        except SpecError as exc:
            problems.extend(exc.diagnostics)
            continue
        parts = path.split(".")
        if parts[0] == "project" and len(parts) > 1:
            parts = parts[1:]
        if any(not part for part in parts) or len(parts) > 3:
            problems.append(
                _problem(f"`{path}` is not a path like `train.precision`", number, line, span=path_span)
            )
            continue
        body = _apply(body, parts, path_span, op, value)
    if problems:
        raise SpecError(problems, {OVERRIDE_FILE: pseudo, document.filename: document.source})
    return attrs.evolve(document, body=tuple(body)), pseudo


def _problem(message: str, line: int, text: str, hint: str | None = None, span: Span | None = None) -> Diagnostic:
    span = span or Span(file=OVERRIDE_FILE, line=line, column=1, end_line=line, end_column=len(text) + 1)
    return Diagnostic(code=BAD_OVERRIDE, severity="error", message=message, span=span, hint=hint)


def _apply(body: list, parts: list[str], path_span: Span, op: str, value: Value) -> list:
    """The top-level statements with the override applied inside the (first) project."""
    for index, statement in enumerate(body):
        if isinstance(statement, Block) and statement.name == "project":
            project = statement
            break
    else:
        # No project: let the builder say so; the override has nowhere to go.
        return body
    new_body = list(project.body)
    if len(parts) == 1:
        new_body = _set_attribute(new_body, parts[0], path_span, op, value)
    else:
        block_name, rest = parts[0], parts[1:]
        for position, child in enumerate(new_body):
            if isinstance(child, Block) and child.name == block_name:
                new_body[position] = attrs.evolve(child, body=tuple(_set_in_block(list(child.body), rest, path_span, op, value)))
                break
        else:
            new_body.append(
                Block(
                    name=block_name, name_span=path_span, label=None,
                    body=tuple(_set_in_block([], rest, path_span, op, value)),
                    span=path_span, open_span=path_span, close_span=path_span,
                )
            )
    body = list(body)
    body[index] = attrs.evolve(project, body=tuple(new_body))
    return body


def _set_in_block(body: list, rest: list[str], path_span: Span, op: str, value: Value) -> list:
    if len(rest) == 1:
        return _set_attribute(body, rest[0], path_span, op, value)
    key, entry = rest
    for position, statement in enumerate(body):
        if isinstance(statement, Attribute) and statement.key == key:
            terms = statement.value.terms
            if len(terms) == 1 and isinstance(terms[0], MapNode):
                pairs = [p for p in terms[0].pairs if p.key != entry]
                pairs.append(Pair(key=entry, key_span=path_span, op=op, value=value, span=value.span))
                new_map = attrs.evolve(terms[0], pairs=tuple(pairs))
                body[position] = attrs.evolve(statement, value=attrs.evolve(statement.value, terms=(new_map,)))
                return body
    new_map = MapNode(pairs=(Pair(key=entry, key_span=path_span, op=op, value=value, span=value.span),), span=value.span)
    return _set_attribute(body, key, path_span, "=", Value(terms=(new_map,), span=value.span))


def _set_attribute(body: list, key: str, path_span: Span, op: str, value: Value) -> list:
    end = path_span.end_column or path_span.column
    op_span = Span(file=path_span.file, line=path_span.line, column=end, end_line=path_span.line, end_column=end + len(op))
    attribute = Attribute(key=key, key_span=path_span, op=op, op_span=op_span, value=value, span=value.span)
    for position, statement in enumerate(body):
        if isinstance(statement, Attribute) and statement.key == key:
            body[position] = attribute
            return body
    body.append(attribute)
    return body
