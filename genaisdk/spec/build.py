"""Syntax tree to `Spec`: every key, type, unit and name checked against the schema and
the plugin registry, every independent problem reported.

`build(document, registry)` returns `(spec or None, diagnostics)`: the Spec when there are
no errors (warnings ride along in `Spec.diagnostics`), and every diagnostic sorted by
position. The plugins' `genaisdk_validate` hook runs last, on a Spec that passed
everything else.

Paths in `Spec.spans` are dotted and start below the project: `name` (the label), `task`,
`model` (the block's name), `model.family` (the value), `data.mix.legal`,
`requires.genaisdk-moe`, `version`.

Each value is read by `genaisdk.spec.values.ValueReader`, the `requires` block checked by
`genaisdk.spec.requirements`, and the consistency across keys by `genaisdk.spec.validate`;
this module walks the blocks: which keys and blocks stand where, duplicates, labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genaisdk.core.codes import (
    BLOCK_OR_KEY,
    CONFLICT,
    DUPLICATE,
    EXTRA_DIM,
    LABEL,
    MISPLACED,
    MISSING_PROJECT,
    MISSING_VERSION,
    SCHEMA_MISMATCH,
    UNKNOWN_BLOCK,
    UNKNOWN_KEY,
    UNSUPPORTED_VERSION,
    diagnostic,
)
from genaisdk.core.names import one_of, suggest
from genaisdk.diagnostics import Diagnostic, Span, sort_diagnostics
from genaisdk.spec import model as M
from genaisdk.spec.requirements import check_requirements
from genaisdk.spec.schema import BLOCKS, Key, extra_keys, homes_of, parent_of
from genaisdk.spec.tree import Atom, Attribute, Block, Document, Value, value_source
from genaisdk.spec.validate import validate
from genaisdk.spec.values import ValueProblem, ValueReader

LANGUAGE_VERSION = 1


class Builder:
    """One use: `Builder(document, registry).build()`."""

    def __init__(self, document: Document, registry: Any):
        self.document = document
        self.registry = registry
        self.diagnostics: list[Diagnostic] = []
        self.spans: dict[str, Span] = {}
        self.values = ValueReader(registry, self.diagnostics, self.spans)

    # -- reporting -------------------------------------------------------------------------
    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(diagnostic(code, message, span, hint))

    warn = error  # the severity is the code's own (genaisdk.core.codes)

    def report(self, problem: ValueProblem) -> None:
        if problem.diagnostic is not None:
            self.diagnostics.append(problem.diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def file_span(self) -> Span:
        return Span(file=self.document.filename, line=1, column=1, end_line=1, end_column=2)

    # -- the file --------------------------------------------------------------------------
    def build(self) -> tuple[M.Spec | None, list[Diagnostic]]:
        doc = self.document
        version = self.version()
        project_block: Block | None = None
        requires_blocks: list[Block] = []
        for statement in doc.body:
            if isinstance(statement, Attribute):
                self.misplaced_attribute(statement, "")
                continue
            if statement.name == "project":
                if project_block is not None:
                    self.error(
                        DUPLICATE, "a spec describes one project; this is a second `project` block",
                        statement.name_span, hint=f"the first is on line {project_block.name_span.line}",
                    )
                    continue
                project_block = statement
            elif statement.name == "requires":
                requires_blocks.append(statement)
            else:
                self.misplaced_block(statement, "")
        if project_block is None:
            self.error(
                MISSING_PROJECT, "this spec has no `project` block",
                self.file_span(), hint='add `project "my-project" { ... }` holding the model, data, train and budget blocks',
            )
            return None, sort_diagnostics(self.diagnostics)
        project = self.project(project_block, requires_blocks)
        spec = None
        if project is not None and not self.has_errors:
            spec = M.Spec(
                version=version, project=project, filename=doc.filename, source=doc.source, spans=self.spans,
            )
            # Consistency across keys and against the registry: the one validation layer,
            # shared with `genaisdk.plan` for Specs built in code.
            self.diagnostics.extend(validate(spec, self.registry))
            if not self.has_errors and self.registry is not None:
                self.diagnostics.extend(self.registry.validate(spec))
            spec = None if self.has_errors else _with_diagnostics(spec, self.diagnostics)
        return spec, sort_diagnostics(self.diagnostics)

    def version(self) -> int:
        atom = self.document.version
        if atom is None:
            self.warn(
                MISSING_VERSION, "the file does not say which version of the language it is written in",
                self.file_span(), hint=f"make `genai {LANGUAGE_VERSION}` its first line",
            )
            return LANGUAGE_VERSION
        self.spans["version"] = atom.span
        if atom.text != str(LANGUAGE_VERSION):
            self.error(
                UNSUPPORTED_VERSION, f"this genaisdk reads version {LANGUAGE_VERSION} of the language, not `{atom.text}`",
                atom.span, hint=f"write `genai {LANGUAGE_VERSION}`",
            )
        return LANGUAGE_VERSION

    def misplaced_attribute(self, attribute: Attribute, where: str) -> None:
        homes = homes_of(attribute.key)
        schema = BLOCKS[where]
        if attribute.key in schema.blocks or attribute.key in BLOCKS:
            self.error(
                BLOCK_OR_KEY, f"`{attribute.key}` is a block, not a key",
                attribute.key_span, hint=f"write `{attribute.key} {{ ... }}`",
            )
            return
        if where == "":
            inside = f"inside `{homes[0]}`" if homes and homes[0] != "project" else "inside `project { }`"
            self.error(
                MISPLACED, f"`{attribute.key}` cannot stand at the top of the file",
                attribute.key_span, hint=f"move it {inside}" if homes else "keys go inside the `project` block",
            )
            return
        self.unknown_key(attribute.key, attribute.key_span, where, extra=())

    def misplaced_block(self, block: Block, where: str) -> None:
        schema = BLOCKS[where]
        if block.name in BLOCKS and block.name not in schema.blocks:
            parent = parent_of(block.name)
            if parent == "project" and where == "":
                self.error(
                    MISPLACED, f"the `{block.name}` block belongs inside `project`",
                    block.name_span, hint="move it inside the `project \"...\" { }` block",
                )
            else:
                inside = f"inside `{where}`" if where else "at the top of the file"
                hint = f"it belongs directly inside `{parent or 'the file'}`"
                if where:
                    hint += f"; is a `}}` missing to close `{where}` above it?"
                self.error(MISPLACED, f"the `{block.name}` block cannot be {inside}", block.name_span, hint=hint)
            return
        if block.name in schema.keys:
            self.error(
                BLOCK_OR_KEY, f"`{block.name}` is a key, not a block",
                block.name_span, hint=f"write `{block.name} = ...`",
            )
            return
        candidates = list(schema.blocks)
        guess = suggest(block.name, candidates)
        where_text = f"in `{where}`" if where else "at the top of the file"
        hint = f"did you mean `{guess}`?" if guess else (f"blocks here: {one_of(candidates)}" if candidates else f"`{where}` holds no blocks")
        self.error(UNKNOWN_BLOCK, f"unknown block `{block.name}` {where_text}", block.name_span, hint=hint)

    def unknown_key(self, key: str, span: Span, where: str, extra: tuple[str, ...]) -> None:
        schema = BLOCKS[where]
        candidates = list(schema.keys) + list(extra)
        guess = suggest(key, candidates)
        if guess is not None:
            self.error(UNKNOWN_KEY, f"unknown key `{key}` in `{where}`", span, hint=f"did you mean `{guess}`?")
            return
        homes = [h for h in homes_of(key) if h != where]
        if homes:
            self.error(
                MISPLACED, f"`{key}` does not belong in `{where}`",
                span, hint=f"it is a key of {one_of(homes)}",
            )
            return
        self.error(UNKNOWN_KEY, f"unknown key `{key}` in `{where}`", span, hint=f"keys of `{where}`: {one_of(candidates, 30)}")

    # -- blocks ----------------------------------------------------------------------------
    def collect(self, block: Block, where: str, *, nested_ok: bool = False) -> tuple[dict[str, Attribute], list[Block]]:
        """The block's attributes by key (duplicates reported) and its nested blocks."""
        attributes: dict[str, Attribute] = {}
        blocks: list[Block] = []
        schema = BLOCKS[where]
        if block.label is not None and not schema.label:
            self.error(
                LABEL, f"`{where}` takes no label", block.label.span,
                hint=f"write `{where} {{`; only `project` is named",
            )
        for statement in block.body:
            if isinstance(statement, Block):
                blocks.append(statement)
                continue
            first = attributes.get(statement.key)
            if first is not None:
                self.error(
                    DUPLICATE, f"`{statement.key}` is set twice in `{where}`",
                    statement.key_span, hint=f"it was first set on line {first.key_span.line}; keep one",
                )
                continue
            attributes[statement.key] = statement
        return attributes, blocks

    def project(self, block: Block, requires_blocks: list[Block]) -> M.Project | None:
        attributes, children = self.collect(block, "project")
        self.spans["project"] = block.name_span
        name = ""
        if block.label is None:
            self.error(
                LABEL, "the project needs a name", block.name_span,
                hint='write `project "my-project" {`',
            )
        else:
            name = block.label.string
            self.spans["name"] = block.label.span
            if not name.strip():
                self.error(LABEL, "the project name is empty", block.label.span, hint='write `project "my-project" {`')
        fields = self.fields(attributes, "project", "")
        seen: dict[str, Block] = {}
        for child in children:
            if child.name not in BLOCKS["project"].blocks:
                self.misplaced_block(child, "project")
                continue
            if child.name in seen:
                self.error(
                    DUPLICATE, f"a second `{child.name}` block", child.name_span,
                    hint=f"the first is on line {seen[child.name].name_span.line}; merge them",
                )
                continue
            seen[child.name] = child
        for child in requires_blocks:
            if "requires" in seen:
                self.error(
                    DUPLICATE, "a second `requires` block", child.name_span,
                    hint=f"the first is on line {seen['requires'].name_span.line}; merge them",
                )
                continue
            seen["requires"] = child

        parts: dict[str, Any] = {"model": self.model(seen.get("model"))}
        for child_name in ("data", "adapt", "train", "budget", "serve"):
            if child_name in seen:
                parts[child_name] = self.simple_block(seen[child_name])
        requirements = self.requires(seen["requires"]) if "requires" in seen else ()
        self.diagnostics.extend(check_requirements(requirements, self.registry, self.spans))
        if self.has_errors:
            return None
        try:
            return M.Project(
                name=name,
                scope=fields.get("scope", ""),
                task=fields.get("task"),
                domain=fields.get("domain"),
                model=parts["model"],
                data=M.DataSpec(**parts.get("data", {})),
                adapt=M.AdaptSpec(**parts.get("adapt", {})),
                train=M.TrainSpec(**parts.get("train", {})),
                budget=M.BudgetSpec(**parts.get("budget", {})),
                serve=M.ServeSpec(**parts["serve"]) if "serve" in parts else None,
                requires=requirements,
            )
        except (TypeError, ValueError) as exc:  # pragma: no cover - the schema test keeps these in step
            self.error(SCHEMA_MISMATCH, f"internal: the schema and the Spec classes disagree ({exc})", block.name_span)
            return None

    def fields(self, attributes: Mapping[str, Attribute], where: str, path: str, extra: Mapping[str, Key] | None = None) -> dict[str, Any]:
        """Convert each attribute with its Key; unknown keys reported."""
        schema = BLOCKS[where]
        extra = extra or {}
        out: dict[str, Any] = {}
        for key_name, attribute in attributes.items():
            key = schema.keys.get(key_name) or extra.get(key_name)
            if key is None:
                if key_name in schema.blocks or key_name in BLOCKS and key_name:
                    self.error(
                        BLOCK_OR_KEY, f"`{key_name}` is a block, not a key",
                        attribute.key_span, hint=f"write `{key_name} {{ ... }}`",
                    )
                elif where == "model" and (owners := self.extra_dim_owners(key_name)):
                    self.error(
                        EXTRA_DIM, f"`{key_name}` is a dimension of the {one_of(owners)} architecture",
                        attribute.key_span, hint=f"set `family = {owners[0]}` to use it",
                    )
                else:
                    self.unknown_key(key_name, attribute.key_span, where, tuple(extra))
                continue
            dotted = f"{path}.{key_name}" if path else key_name
            try:
                value = self.values.convert(key, attribute.value, attribute.op, attribute.op_span, dotted)
            except ValueProblem as problem:
                self.report(problem)
                continue
            self.spans[dotted] = attribute.value.span
            if key.kind == "hardware":
                hardware, devices = value
                out["hardware"] = hardware
                if devices is not None:
                    out["devices"] = devices
                    self.spans[f"{path}.devices"] = attribute.value.span
            else:
                out[key.target] = value
        return out

    def extra_dim_owners(self, key: str) -> list[str]:
        """The architectures that declare `key` among their extra dimensions."""
        if self.registry is None:
            return []
        owners = []
        for name, record in self.registry.catalog("architectures").items():
            if any(f.name == key for f in getattr(record, "extra_dims", ()) or ()):
                owners.append(name)
        return owners

    def nested(self, blocks: list[Block], where: str) -> None:
        for block in blocks:
            self.misplaced_block(block, where)

    def simple_block(self, block: Block) -> dict[str, Any]:
        where = block.name
        self.spans[where] = block.name_span
        attributes, nested = self.collect(block, where)
        self.nested(nested, where)
        out = self.fields(attributes, where, where)
        if where == "budget" and "devices" in attributes and "hardware" in attributes:
            count = _leading_count(attributes["hardware"].value)
            if count is not None:
                self.error(
                    CONFLICT, "the number of devices is given twice",
                    attributes["devices"].key_span,
                    hint=f"`hardware` already says `{value_source(attributes['hardware'].value)}`; keep one",
                )
        return out

    def model(self, block: Block | None) -> M.ModelSpec:
        if block is None:
            return M.ModelSpec()
        self.spans["model"] = block.name_span
        attributes, nested = self.collect(block, "model")
        self.nested(nested, "model")
        extra: dict[str, Key] = {}
        family_attr = attributes.get("family")
        if family_attr is not None:
            try:
                family = self.values.convert(BLOCKS["model"].keys["family"], family_attr.value, family_attr.op, family_attr.op_span, "model.family")
            except ValueProblem:
                family = None  # reported by fields() below
            record = self.registry_get("architectures", family)
            if record is not None:
                extra = extra_keys(record)
        out = self.fields(attributes, "model", "model", extra)
        extras = {k: out.pop(k) for k in list(out) if k in extra and k not in BLOCKS["model"].keys}
        if extras:
            out["extra"] = extras
        return M.ModelSpec(**out)

    def requires(self, block: Block) -> tuple[M.Requirement, ...]:
        self.spans["requires"] = block.name_span
        attributes, nested = self.collect(block, "requires")
        self.nested(nested, "requires")
        found = []
        for name, attribute in attributes.items():
            dotted = f"requires.{name}"
            try:
                specifier = self.values.convert(BLOCKS["requires"].free_keys, attribute.value, attribute.op, attribute.op_span, dotted)  # type: ignore[arg-type]
            except ValueProblem as problem:
                self.report(problem)
                continue
            self.spans[dotted] = attribute.value.span
            self.spans[f"{dotted}:name"] = attribute.key_span
            found.append(M.Requirement(distribution=name, specifier=specifier))
        return tuple(found)

    # -- registry helpers -------------------------------------------------------------------
    def registry_get(self, kind: str, name: Any) -> Any:
        if self.registry is None or not isinstance(name, str):
            return None
        return self.registry.get(kind, name)



def _leading_count(value: Value) -> Any:
    terms = value.terms
    if len(terms) == 3 and isinstance(terms[1], Atom) and terms[1].text == "x":
        return terms[0]
    if len(terms) == 2 and isinstance(terms[0], Atom) and terms[0].kind == "number" and terms[0].text.endswith(("x", "X")):
        return terms[0]
    return None


def _with_diagnostics(spec: M.Spec, diagnostics: list[Diagnostic]) -> M.Spec:
    import attrs

    return attrs.evolve(spec, diagnostics=tuple(sort_diagnostics(diagnostics)))


def build(document: Document, registry: Any = None) -> tuple[M.Spec | None, list[Diagnostic]]:
    """Check `document` against the schema and `registry` (None: names are not checked) and
    build the Spec. Returns (Spec or None when there are errors, every diagnostic sorted)."""
    return Builder(document, registry).build()
