"""Syntax tree to `Spec`: every key, type, unit and name checked against the schema and
the plugin registry, every independent problem reported.

`build(document, registry)` returns `(spec or None, diagnostics)`: the Spec when there are
no errors (warnings ride along in `Spec.diagnostics`), and every diagnostic sorted by
position. The plugins' `genaisdk_validate` hook runs last, on a Spec that passed
everything else.

Paths in `Spec.spans` are dotted and start below the project: `name` (the label), `task`,
`model` (the block's name), `model.family` (the value), `data.mix.legal`,
`requires.genaisdk-moe`, `version`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from genaisdk.diagnostics import Diagnostic, Span, sort_diagnostics
from genaisdk.records import normalize_name
from genaisdk.spec import model as M
from genaisdk.spec.schema import BLOCKS, INLINE_DEVICE, MIX_ENTRY, Key, extra_keys, homes_of, parent_of, singular
from genaisdk.core.codes import diagnostic
from genaisdk.core.names import one_of, suggest
from genaisdk.spec.tree import Atom, Attribute, Block, Document, ListNode, MapNode, Value, value_source
from genaisdk.spec.units import COUNTED, DIMENSIONS, QuantityError, quantity_from_words
from genaisdk.spec.validate import validate

LANGUAGE_VERSION = 1

# Diagnostic codes: the table is genaisdk.core.codes.
from genaisdk.core.codes import (  # noqa: E402
    MISSING_VERSION,
    UNSUPPORTED_VERSION,
    UNKNOWN_BLOCK,
    DUPLICATE,
    UNKNOWN_KEY,
    MISPLACED,
    MISSING_PROJECT,
    LABEL,
    OPERATOR,
    BLOCK_OR_KEY,
    WRONG_DIMENSION,
    BAD_QUANTITY,
    NOT_INTEGER,
    OUT_OF_RANGE,
    WRONG_TYPE,
    UNKNOWN_WORD,
    MIX_TOTAL,
    CONFLICT,
    MISSING_UNIT,
    UNKNOWN_NAME,
    EXTRA_DIM,
    NOT_INSTALLED,
    WRONG_VERSION,
    BAD_SPECIFIER,
    PLUGIN_FAILED,
    PLUGIN_DISABLED,
    SCHEMA_MISMATCH,
    MISSING_FIGURE,
)

EXAMPLES = {
    "tokens": "60B tokens",
    "params": "7B",
    "bytes": "80 GB",
    "seconds": "30 days",
    "usd": "$250k",
    "fraction": "45%",
    "flops": "3640 pf-days",
    "count": "8",
}
"""A value of each dimension, for hints."""


class _Problem(Exception):
    def __init__(self, diagnostic: Diagnostic | None):
        self.diagnostic = diagnostic


def _err(code: str, message: str, span: Span | None, hint: str | None = None) -> _Problem:
    return _Problem(diagnostic(code, message, span, hint))


class Builder:
    """One use: `Builder(document, registry).build()`."""

    def __init__(self, document: Document, registry: Any):
        self.document = document
        self.registry = registry
        self.diagnostics: list[Diagnostic] = []
        self.spans: dict[str, Span] = {}

    # -- reporting -------------------------------------------------------------------------
    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(diagnostic(code, message, span, hint))

    warn = error  # the severity is the code's own (genaisdk.core.codes)

    def report(self, problem: _Problem) -> None:
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
        self.check_requirements(requirements)
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
                value = self.convert(key, attribute.value, attribute.op, attribute.op_span, dotted)
            except _Problem as problem:
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
                family = self.convert(BLOCKS["model"].keys["family"], family_attr.value, family_attr.op, family_attr.op_span, "model.family")
            except _Problem:
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
                specifier = self.convert(BLOCKS["requires"].free_keys, attribute.value, attribute.op, attribute.op_span, dotted)  # type: ignore[arg-type]
            except _Problem as problem:
                self.report(problem)
                continue
            self.spans[dotted] = attribute.value.span
            self.spans[f"{dotted}:name"] = attribute.key_span
            found.append(M.Requirement(distribution=name, specifier=specifier))
        return tuple(found)

    # -- values ----------------------------------------------------------------------------
    def convert(self, key: Key, value: Value, op: str, op_span: Span, path: str) -> Any:
        label = path.split(".")[-1] if key.name == "*" else key.name
        if op not in key.ops:
            allowed = " or ".join(f"`{o}`" for o in key.ops)
            raise _err(
                OPERATOR, f"`{label}` takes {allowed}, not `{op}`", op_span,
                hint="only budget limits (time, cost, compute) take `<=`" if "<=" not in key.ops else "a budget is an upper limit",
            )
        terms = value.terms
        single = terms[0] if len(terms) == 1 else None
        if isinstance(single, Atom) and single.kind == "name":
            if key.auto and single.text == "auto":
                return M.AUTO
            if key.none and single.text == "none":
                return None
        kind = key.kind
        if kind == "quantity":
            result = self.quantity(key, value, label, op)
            return M.Bound(value=result, op=op) if len(key.ops) > 1 else result
        if kind == "name":
            return self.name(key, value, label)
        if kind == "hardware":
            return self.hardware(key, value, label, path)
        if kind == "choice":
            word = self.one_word(key, value, label)
            if word not in key.words:
                guess = suggest(word, key.words)
                raise _err(
                    UNKNOWN_WORD, f"`{label}` cannot be `{word}`", value.span,
                    hint=(f"did you mean `{guess}`? " if guess else "") + f"choose {one_of(key.words + (('auto',) if key.auto else ()))}",
                )
            return word
        if kind == "bool":
            word = self.one_word(key, value, label)
            if word in ("true", "false"):
                return word == "true"
            raise _err(WRONG_TYPE, f"`{label}` is true or false, not `{word}`", value.span, hint="write `true` or `false`")
        if kind == "string":
            if isinstance(single, Atom) and single.kind == "string":
                return single.string
            raise _err(
                WRONG_TYPE, f"`{label}` expects a string in double quotes", value.span,
                hint=f'write `{label} = "{value_source(value)}"`',
            )
        if kind == "word":
            if isinstance(single, Atom) and single.kind in ("name", "string"):
                return single.string if single.kind == "string" else single.text
            raise _err(WRONG_TYPE, f"`{label}` expects one word, got `{value_source(value)}`", value.span)
        if kind == "specifier":
            return self.specifier(value, label)
        if kind == "mix":
            return self.mix(value, label, path)
        if kind in ("sources", "words"):
            return self.sequence(key, value, label)
        raise AssertionError(kind)  # pragma: no cover

    def one_word(self, key: Key, value: Value, label: str) -> str:
        single = value.terms[0] if len(value.terms) == 1 else None
        if isinstance(single, Atom) and single.kind == "name":
            return single.text
        if isinstance(single, Atom) and single.kind == "string":
            raise _err(
                WRONG_TYPE, f"`{label}` expects a word, not a string", value.span,
                hint=f"drop the quotes: `{label} = {single.string}`",
            )
        raise _err(WRONG_TYPE, f"`{label}` expects {key.describe()}, got `{value_source(value)}`", value.span)

    def name(self, key: Key, value: Value, label: str) -> str:
        single = value.terms[0] if len(value.terms) == 1 else None
        if key.strings and isinstance(single, Atom) and single.kind == "string":
            word, span = single.string, single.span
        else:
            word, span = self.one_word(key, value, label), value.span
        return self.registered(key.registry or "", word, span, label, key.auto)

    def registered(self, kind: str, word: str, span: Span, label: str, auto: bool = False) -> str:
        if self.registry is None:
            return normalize_name(word)
        record = self.registry.get(kind, word)
        if record is not None:
            return record.key  # the canonical name, also when `word` is an alias
        names = self.registry.names(kind)
        aliases = getattr(self.registry, "aliases", None)
        guess = suggest(word, names, aliases=aliases(kind) if aliases is not None else None)
        noun = singular(kind)
        choices = names + (["auto"] if auto else [])
        hint = f"did you mean `{guess}`?" if guess else f"known {kind}: {one_of(choices)}"
        if not guess and len(names) > 12:
            hint += f"; `genai catalog {kind}` lists them all"
        raise _err(UNKNOWN_NAME, f"unknown {noun} `{word}`", span, hint=hint)

    def hardware(self, key: Key, value: Value, label: str, path: str = "") -> tuple[str | M.DeviceSpec, Any]:
        """`64 x a100-80gb`, `auto x h100-sxm`, `a100-80gb`, or any of them with a `{ ... }`
        map describing the device in place of its name: (name or DeviceSpec, count or None)."""
        terms = value.terms
        usage = "write `64 x a100-80gb`, `auto x h100-sxm`, just `a100-80gb`, or `2 x { memory = 48 GB, bf16 = 150 TFLOP/s }`"
        *head, last = terms
        if not (isinstance(last, MapNode) or (isinstance(last, Atom) and last.kind == "name")) or not all(isinstance(t, Atom) for t in head):
            raise _err(WRONG_TYPE, f"`{label}` expects hardware, got `{value_source(value)}`", value.span, hint=usage)
        atoms: list[Atom] = head  # type: ignore[assignment]
        devices: Any = None
        if not atoms:
            pass
        elif len(atoms) == 2 and atoms[1].kind == "name" and atoms[1].text == "x":
            devices = self.device_count(atoms[0], label, usage)
        elif len(atoms) == 1 and atoms[0].kind == "number" and atoms[0].text.endswith(("x", "X")):
            # `8x a100-80gb`: the number token swallowed the x.
            glued = Atom(kind="number", text=atoms[0].text[:-1], span=atoms[0].span)
            devices = self.device_count(glued, label, usage)
        else:
            raise _err(WRONG_TYPE, f"`{label}` expects hardware, got `{value_source(value)}`", value.span, hint=usage)
        if isinstance(last, MapNode):
            return self.inline_device(last, path or label), devices
        return self.registered("hardware", last.text, last.span, label), devices

    def inline_device(self, node: MapNode, path: str) -> M.DeviceSpec:
        """A device described in the spec: each figure checked like a key of its own
        (`genaisdk.spec.schema.INLINE_DEVICE`), every problem reported."""
        schema = INLINE_DEVICE
        fields: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        ok = True
        for pair in node.pairs:
            key = schema.keys.get(pair.key)
            if key is None:
                guess = suggest(pair.key, list(schema.keys))
                self.error(
                    UNKNOWN_KEY, f"unknown figure `{pair.key}` for a device described inline", pair.key_span,
                    hint=f"did you mean `{guess}`?" if guess else f"a device takes {one_of(list(schema.keys), 30)}",
                )
                ok = False
                continue
            if pair.key in first_line:
                self.error(DUPLICATE, f"`{pair.key}` is given twice for the device", pair.key_span, hint=f"first on line {first_line[pair.key]}")
                ok = False
                continue
            first_line[pair.key] = pair.key_span.line
            try:
                fields[key.target] = self.convert(key, pair.value, pair.op, pair.key_span, f"{path}.{pair.key}")
            except _Problem as problem:
                self.report(problem)
                ok = False
                continue
            self.spans[f"{path}.{pair.key}"] = pair.value.span
        if "memory" not in fields and "memory" not in first_line:
            self.error(
                MISSING_FIGURE, "a device described inline needs its `memory`", node.span,
                hint="add `memory = 48 GB` (the memory of one device); throughput, bandwidth and price are optional",
            )
            ok = False
        if not ok:
            raise _Silent()
        if "name" in fields:
            fields["name"] = normalize_name(str(fields["name"]))
        return M.DeviceSpec(**fields)

    def device_count(self, atom: Atom, label: str, usage: str) -> Any:
        if atom.kind == "name" and atom.text == "auto":
            return M.AUTO
        if atom.kind != "number":
            raise _err(WRONG_TYPE, f"`{atom.text}` is not a number of devices", atom.span, hint=usage)
        try:
            quantity = quantity_from_words(atom.text, [])
        except QuantityError as exc:
            raise _err(BAD_QUANTITY, exc.message, atom.span, hint=exc.hint) from None
        if quantity.dimension != "count":
            raise _err(
                WRONG_DIMENSION, f"a number of devices is a plain number, but `{atom.text}` is {DIMENSIONS[quantity.dimension]}",
                atom.span, hint=usage,
            )
        if not quantity.is_integer or quantity.value < 1:
            raise _err(NOT_INTEGER, f"a number of devices is a whole number of at least 1, not `{atom.text}`", atom.span)
        return int(quantity.value)

    def quantity(self, key: Key, value: Value, label: str, op: str = "=") -> float | int:
        dimension = key.dimension or "count"
        example = key.example or EXAMPLES[dimension]
        for_example = f"for example `{label} {op} {example}`"
        terms = value.terms
        money = isinstance(terms[0], Atom) and terms[0].kind == "money"
        ok_shape = all(isinstance(t, Atom) for t in terms) and (
            terms[0].kind in ("number", "money")  # type: ignore[union-attr]
            and all(t.kind == "name" for t in terms[1:])  # type: ignore[union-attr]
        )
        if not ok_shape:
            single = terms[0] if len(terms) == 1 else None
            if isinstance(single, Atom) and single.kind == "name":
                raise _err(
                    WRONG_TYPE, f"`{label}` expects {DIMENSIONS[dimension]}, not the word `{single.text}`",
                    value.span, hint=f"write a number such as `{example}`" + (", or `auto`" if key.auto else "") + (", or `none`" if key.none else ""),
                )
            raise _err(
                WRONG_TYPE, f"`{label}` expects {DIMENSIONS[dimension]}, got `{value_source(value)}`",
                value.span, hint=for_example,
            )
        number_atom = terms[0]
        unit_words = [t.text for t in terms[1:]]  # type: ignore[union-attr]
        try:
            quantity = quantity_from_words(number_atom.text, unit_words, money=money)  # type: ignore[union-attr]
        except QuantityError as exc:
            span = terms[1].span if len(terms) == 2 and "unit" in exc.message else value.span
            raise _err(BAD_QUANTITY, exc.message, span, hint=exc.hint) from None
        if quantity.dimension != dimension:
            if quantity.dimension == "count":
                if key.unit_required:
                    raise _err(
                        MISSING_UNIT, f"`{label}` needs a unit: `{value_source(value)}` of what?", value.span,
                        hint=for_example,
                    )
            else:
                raise _err(
                    WRONG_DIMENSION,
                    f"`{label}` expects {DIMENSIONS[dimension]}, but `{value_source(value)}` is {DIMENSIONS[quantity.dimension]}",
                    value.span, hint=for_example,
                )
        number = quantity.value
        if not math.isfinite(number):
            raise _err(OUT_OF_RANGE, f"`{value_source(value)}` is too large", value.span)
        if dimension in COUNTED and not (float(number).is_integer() and number >= 1):
            raise _err(
                NOT_INTEGER,
                f"a number of {'parameters' if dimension == 'params' else dimension} is whole and at least 1, "
                f"not `{value_source(value)}`",
                value.span, hint=for_example,
            )
        if key.integer and not float(number).is_integer():
            raise _err(
                NOT_INTEGER, f"`{label}` must be a whole number, not `{value_source(value)}`", value.span,
                hint=f"write {math.floor(number)} or {math.ceil(number)}",
            )
        percent = dimension == "fraction"
        shown = (lambda v: f"{v * 100:g}%") if percent else (lambda v: f"{v:g}")
        if key.positive and number <= 0:
            raise _err(OUT_OF_RANGE, f"`{label}` must be more than {shown(0)}", value.span, hint=for_example)
        if key.minimum is not None and number < key.minimum:
            raise _err(OUT_OF_RANGE, f"`{label}` must be at least {shown(key.minimum)}", value.span, hint=for_example)
        if key.below is not None and number >= key.below:
            raise _err(OUT_OF_RANGE, f"`{label}` must be less than {shown(key.below)}", value.span, hint=for_example)
        if key.maximum is not None and number > key.maximum:
            hint = for_example
            if percent and quantity.dimension == "count":
                hint = f"a share is written as a percentage: `{number:g}%`"
            raise _err(OUT_OF_RANGE, f"`{label}` must be at most {shown(key.maximum)}", value.span, hint=hint)
        return int(number) if key.integer else number

    def specifier(self, value: Value, label: str) -> str:
        single = value.terms[0] if len(value.terms) == 1 else None
        if not (isinstance(single, Atom) and single.kind == "string"):
            raise _err(
                WRONG_TYPE, f"the version of `{label}` is a string", value.span,
                hint=f'write `{label} = ">=0.1"` (or `""` for any version)',
            )
        text = single.string.strip()
        if text:
            from packaging.specifiers import InvalidSpecifier, SpecifierSet

            try:
                SpecifierSet(text)
            except InvalidSpecifier:
                raise _err(
                    BAD_SPECIFIER, f"`{text}` is not a version specifier", single.span,
                    hint='write e.g. ">=0.1", "==1.2.*" or ">=0.1,<2"',
                ) from None
        return text

    def mix(self, value: Value, label: str, path: str) -> dict[str, float]:
        single = value.terms[0] if len(value.terms) == 1 else None
        if not isinstance(single, MapNode):
            raise _err(
                WRONG_TYPE, f"`{label}` expects a map of shares", value.span,
                hint=f"write `{label} = {{ legal = 51%, web = 49% }}`",
            )
        shares: dict[str, float] = {}
        first_line: dict[str, int] = {}
        ok = True
        for pair in single.pairs:
            if pair.key in first_line:
                self.error(
                    DUPLICATE, f"`{pair.key}` appears twice in `{label}`", pair.key_span,
                    hint=f"first on line {first_line[pair.key]}",
                )
                ok = False
                continue
            first_line[pair.key] = pair.key_span.line
            try:
                share = self.convert(MIX_ENTRY, pair.value, pair.op, pair.key_span, f"{path}.{pair.key}")
            except _Problem as problem:
                self.report(problem)
                ok = False
                continue
            shares[pair.key] = share
            self.spans[f"{path}.{pair.key}"] = pair.value.span
        if ok and shares:
            total = sum(shares.values())
            if abs(total - 1.0) > 1e-9:
                raise _err(
                    MIX_TOTAL, f"the shares in `{label}` add up to {total * 100:g}%, not 100%", single.span,
                    hint="make them sum to 100%",
                )
        if not ok:
            raise _Silent()
        return shares

    def sequence(self, key: Key, value: Value, label: str) -> tuple[str, ...]:
        single = value.terms[0] if len(value.terms) == 1 else None
        items: list[Value]
        if isinstance(single, ListNode):
            items = list(single.items)
        else:
            items = [value]
        out = []
        for item in items:
            atom = item.terms[0] if len(item.terms) == 1 else None
            if not isinstance(atom, Atom) or atom.kind not in ("name", "string"):
                raise _err(
                    WRONG_TYPE, f"`{label}` expects {key.describe()}, got `{value_source(item)}`", item.span,
                    hint='write a quoted path such as "data/*.txt"' if key.kind == "sources" else f"write `{label} = [a, b]`",
                )
            out.append(atom.string if atom.kind == "string" else atom.text)
        return tuple(out)

    # -- registry helpers -------------------------------------------------------------------
    def registry_get(self, kind: str, name: Any) -> Any:
        if self.registry is None or not isinstance(name, str):
            return None
        return self.registry.get(kind, name)

    def check_requirements(self, requirements: tuple[M.Requirement, ...]) -> None:
        """Each `requires` entry must be installed at a matching version (the way pytest checks
        `required_plugins`), and its plugin must have loaded. Checked whatever else is wrong:
        a missing plugin is often why its names are unknown."""
        if not requirements:
            return
        from importlib import metadata

        plugins = []
        if self.registry is not None:
            try:
                plugins = list(self.registry.plugins)
            except Exception:  # a registry without plugin status still validates names
                plugins = []
        for requirement in requirements:
            dist = requirement.distribution
            where = self.spans.get(f"requires.{dist}:name")
            wanted = f"{dist}{requirement.specifier}" if requirement.specifier else dist
            try:
                installed = metadata.version(dist)
            except metadata.PackageNotFoundError:
                self.error(
                    NOT_INSTALLED, f"this spec requires the plugin `{dist}`, which is not installed",
                    where, hint=f"pip install '{wanted}'",
                )
                continue
            if requirement.specifier:
                from packaging.specifiers import SpecifierSet
                from packaging.version import InvalidVersion, Version

                try:
                    matches = SpecifierSet(requirement.specifier).contains(Version(installed), prereleases=True)
                except InvalidVersion:
                    matches = False
                if not matches:
                    self.error(
                        WRONG_VERSION,
                        f"this spec requires `{dist}` {requirement.specifier}, but version {installed} is installed",
                        self.spans.get(f"requires.{dist}") or where, hint=f"pip install --upgrade '{wanted}'",
                    )
                    continue
            folded = normalize_name(dist)
            for info in plugins:
                if normalize_name(getattr(info, "distribution", "")) != folded:
                    continue
                if info.status == "failed":
                    self.error(
                        PLUGIN_FAILED, f"the required plugin `{dist}` {installed} failed to load: {info.error}",
                        where, hint="`genai plugins` shows the details",
                    )
                elif info.status == "disabled":
                    self.warn(
                        PLUGIN_DISABLED, f"the required plugin `{dist}` is installed but not loaded",
                        where, hint="check GENAISDK_LOAD_PLUGINS / GENAISDK_DISABLE_PLUGINS and --no-plugins",
                    )


class _Silent(_Problem):
    """The value's own problems were reported one by one; nothing more to add."""

    def __init__(self) -> None:
        super().__init__(None)


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
