"""Values of a spec: one attribute's value read against its schema `Key` (quantities with
their units, names against the plugin registry, hardware with its count or described inline,
choices, strings, version specifiers, data mixes, lists).

`ValueReader.convert(key, value, op, op_span, path)` returns the Python value (`AUTO`, None
for `none`, a `Bound` for a `<=` budget) or raises `ValueProblem` carrying the diagnostic;
a map whose entries each have problems (a mix, an inline device) reports them one by one
into the shared diagnostics and raises a silent `ValueProblem`. Which keys a block holds, and
where they may stand, is `genaisdk.spec.build`'s business; this module reads one value.
"""

from __future__ import annotations

import math
from typing import Any

from genaisdk.core.codes import (
    BAD_QUANTITY,
    BAD_SPECIFIER,
    DUPLICATE,
    MISSING_FIGURE,
    MISSING_UNIT,
    MIX_TOTAL,
    NOT_INTEGER,
    OPERATOR,
    OUT_OF_RANGE,
    UNKNOWN_KEY,
    UNKNOWN_NAME,
    UNKNOWN_WORD,
    WRONG_DIMENSION,
    WRONG_TYPE,
    diagnostic,
)
from genaisdk.core.names import one_of, suggest
from genaisdk.diagnostics import Diagnostic, Span
from genaisdk.records import normalize_name
from genaisdk.spec import model as M
from genaisdk.spec.schema import INLINE_DEVICE, MIX_ENTRY, Key, singular
from genaisdk.spec.tree import Atom, ListNode, MapNode, Value, value_source
from genaisdk.spec.units import COUNTED, DIMENSIONS, QuantityError, quantity_from_words

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


class ValueProblem(Exception):
    """A value that cannot be read: `diagnostic` says why (None: already reported)."""

    def __init__(self, diagnostic: Diagnostic | None):
        self.diagnostic = diagnostic


def _err(code: str, message: str, span: Span | None, hint: str | None = None) -> ValueProblem:
    return ValueProblem(diagnostic(code, message, span, hint))


def _silent() -> ValueProblem:
    """The value's own problems were reported one by one; nothing more to add."""
    return ValueProblem(None)


class ValueReader:
    """Reads values against their Keys and the registry (None: names are not checked).

    `diagnostics` and `spans` are shared with the caller: problems inside a map are appended
    to the first, and each value read records its span in the second under its dotted path.
    """

    def __init__(self, registry: Any, diagnostics: list[Diagnostic], spans: dict[str, Span]):
        self.registry = registry
        self.diagnostics = diagnostics
        self.spans = spans

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(diagnostic(code, message, span, hint))

    def report(self, problem: ValueProblem) -> None:
        if problem.diagnostic is not None:
            self.diagnostics.append(problem.diagnostic)

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
            except ValueProblem as problem:
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
            raise _silent()
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
            except ValueProblem as problem:
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
            raise _silent()
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

