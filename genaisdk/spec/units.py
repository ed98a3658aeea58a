"""Quantities with dimensions: `60B tokens`, `21 days`, `80 GB` vs `80 GiB`, `$250k`, `45%`.

A `Quantity` is a value in canonical units (counts, seconds, bytes, USD, fractions, FLOPs)
plus its dimension and the unit it was written in (kept so a value prints back the way it
was written). Numbers are computed exactly with `decimal` and rounded to float once, so
`1.4T` is exactly 1.4e12 and `format_quantity` / `parse_quantity` round-trip.

The grammar has one numeric terminal, which swallows letters glued to the digits (`125M`,
`80GB`, `45%`, `1e-4`); `split_number` takes them apart here. A glued `B` is the SI
billion (`60B tokens`); bytes are a separate word (`80 GB`, `80GB`, `512 B`).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

import attrs

DIMENSIONS: dict[str, str] = {
    "count": "a plain number",
    "tokens": "a token count",
    "params": "a parameter count",
    "bytes": "a size in bytes",
    "seconds": "a time",
    "usd": "an amount of money",
    "fraction": "a percentage",
    "flops": "an amount of compute",
    "carbon_intensity": "a carbon intensity",
    "flop_rate": "a throughput in FLOP/s",
    "byte_rate": "a bandwidth in bytes/s",
}
"""Dimension -> how a message names it ("`tokens` expects a token count")."""

COUNTED: frozenset[str] = frozenset({"tokens", "params"})
"""Dimensions that count things: a value of one is a whole number of at least 1 (half a
token, or 1e-300 of one, is a mistake, not a quantity to round)."""

SI_PREFIXES: dict[str, Decimal] = {
    "k": Decimal(10) ** 3,
    "K": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "B": Decimal(10) ** 9,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
}
"""Multipliers glued to a number: `125M`, `1.4T`, `60B` (billion; `G` is the same)."""

PF_DAY = Decimal(10) ** 15 * 86400
"""One petaflop/s-day: 1e15 FLOP/s for a day = 8.64e19 FLOPs (Brown et al. 2020, Table D.1)."""


@attrs.frozen(kw_only=True)
class Unit:
    name: str
    """The canonical spelling, used when printing."""
    dimension: str
    factor: Decimal
    """Canonical units per one of this unit."""
    aliases: tuple[str, ...] = ()


UNITS: tuple[Unit, ...] = (
    Unit(name="tokens", dimension="tokens", factor=Decimal(1), aliases=("token",)),
    Unit(name="params", dimension="params", factor=Decimal(1), aliases=("param", "parameters", "parameter")),
    Unit(name="s", dimension="seconds", factor=Decimal(1), aliases=("sec", "secs", "second", "seconds")),
    Unit(name="min", dimension="seconds", factor=Decimal(60), aliases=("mins", "minute", "minutes")),
    Unit(name="hours", dimension="seconds", factor=Decimal(3600), aliases=("h", "hr", "hrs", "hour")),
    Unit(name="days", dimension="seconds", factor=Decimal(86400), aliases=("day", "d")),
    Unit(name="weeks", dimension="seconds", factor=Decimal(604800), aliases=("week", "w")),
    Unit(name="bytes", dimension="bytes", factor=Decimal(1), aliases=("byte",)),
    Unit(name="kB", dimension="bytes", factor=Decimal(10) ** 3, aliases=("KB",)),
    Unit(name="MB", dimension="bytes", factor=Decimal(10) ** 6),
    Unit(name="GB", dimension="bytes", factor=Decimal(10) ** 9),
    Unit(name="TB", dimension="bytes", factor=Decimal(10) ** 12),
    Unit(name="PB", dimension="bytes", factor=Decimal(10) ** 15),
    Unit(name="KiB", dimension="bytes", factor=Decimal(2) ** 10),
    Unit(name="MiB", dimension="bytes", factor=Decimal(2) ** 20),
    Unit(name="GiB", dimension="bytes", factor=Decimal(2) ** 30),
    Unit(name="TiB", dimension="bytes", factor=Decimal(2) ** 40),
    Unit(name="USD", dimension="usd", factor=Decimal(1), aliases=("usd", "dollars", "dollar")),
    Unit(name="FLOPs", dimension="flops", factor=Decimal(1), aliases=("flops", "FLOP", "flop", "FLOPS")),
    Unit(name="pf-days", dimension="flops", factor=PF_DAY, aliases=("PF-days", "pfs-days", "petaflop-days")),
    # Grams of CO2-equivalent per kWh of electricity drawn: how grid intensities are published.
    Unit(name="g/kWh", dimension="carbon_intensity", factor=Decimal(1), aliases=("gCO2/kWh", "gCO2e/kWh", "kg/MWh")),
    Unit(name="kg/kWh", dimension="carbon_intensity", factor=Decimal(1000), aliases=("t/MWh",)),
    # Throughput of a device. Datasheets write "312 TFLOPS" (capital S: per second) and
    # "TOPS" for integer math; `FLOPs` alone stays an amount of compute.
    Unit(name="FLOP/s", dimension="flop_rate", factor=Decimal(1)),
    Unit(name="GFLOP/s", dimension="flop_rate", factor=Decimal(10) ** 9, aliases=("GFLOPS", "GFLOPs")),
    Unit(name="TFLOP/s", dimension="flop_rate", factor=Decimal(10) ** 12, aliases=("TFLOPS", "TFLOPs")),
    Unit(name="PFLOP/s", dimension="flop_rate", factor=Decimal(10) ** 15, aliases=("PFLOPS", "PFLOPs")),
    Unit(name="TOP/s", dimension="flop_rate", factor=Decimal(10) ** 12, aliases=("TOPS", "TOPs")),
    # Bandwidth, decimal like datasheets (HBM "3.35 TB/s", NVLink "900 GB/s").
    Unit(name="MB/s", dimension="byte_rate", factor=Decimal(10) ** 6, aliases=("MBps",)),
    Unit(name="GB/s", dimension="byte_rate", factor=Decimal(10) ** 9, aliases=("GBps",)),
    Unit(name="TB/s", dimension="byte_rate", factor=Decimal(10) ** 12, aliases=("TBps",)),
    Unit(name="GiB/s", dimension="byte_rate", factor=Decimal(2) ** 30),
)

UNIT_BY_WORD: dict[str, Unit] = {}
for _unit in UNITS:
    for _word in (_unit.name, *_unit.aliases):
        UNIT_BY_WORD[_word] = _unit
UNIT_BY_WORD["B"] = UNIT_BY_WORD["bytes"]  # only as a separate word: `512 B`

CANONICAL_UNIT = {
    "tokens": "tokens",
    "params": "params",
    "seconds": "s",
    "bytes": "bytes",
    "usd": "USD",
    "flops": "FLOPs",
    "carbon_intensity": "g/kWh",
    "flop_rate": "FLOP/s",
    "byte_rate": "GB/s",
}

MAX_EXPONENT = 30
"""Numbers above 1e30 are refused: nothing in a spec is that large, and it keeps the exact
arithmetic cheap whatever a file says."""

_NUMBER = re.compile(r"([0-9][0-9_]*(?:\.[0-9_]+)?(?:[eE][+-]?[0-9]+)?)(.*)", re.S)


class QuantityError(ValueError):
    """A number or unit that cannot be read; `.hint` says what to write instead."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@attrs.frozen(kw_only=True)
class Quantity:
    """A value in canonical units, its dimension (a key of DIMENSIONS) and the unit it was
    written in ("" for a bare number, "%" for a percentage, "$" for money)."""

    value: float
    dimension: str = attrs.field(validator=attrs.validators.in_(DIMENSIONS))
    unit: str = ""

    @property
    def is_integer(self) -> bool:
        return float(self.value).is_integer()


def split_number(text: str) -> tuple[Decimal, str]:
    """`"125M"` -> (Decimal('125'), 'M'). Underscores group digits (`1_000`) but may not
    start, end or double up a group."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise QuantityError(f"`{text}` is not a number")
    digits, suffix = match.groups()
    mantissa = re.split(r"[eE]", digits)[0]
    for part in mantissa.split("."):
        if part.startswith("_") or part.endswith("_") or "__" in part:
            raise QuantityError(
                f"`{text}` has a misplaced `_`", hint="underscores go between digits: `1_000_000`"
            )
    try:
        number = Decimal(digits.replace("_", ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid text
        raise QuantityError(f"`{text}` is not a number") from exc
    if number and number.adjusted() > MAX_EXPONENT:
        raise QuantityError(f"`{text}` is too large")
    return number, suffix


def _si(suffix: str, text: str) -> Decimal:
    if suffix in SI_PREFIXES:
        return SI_PREFIXES[suffix]
    hint = None
    lowered = {"m": "M", "b": "B", "g": "G", "t": "T"}
    if suffix in lowered:
        hint = f"write `{lowered[suffix]}` ({_prefix_word(lowered[suffix])})"
    elif suffix.lower() in ("x",):
        hint = "put spaces around `x`: `64 x a100-80gb`"
    else:
        from genaisdk.core.names import suggest

        guess = suggest(suffix, list(UNIT_BY_WORD) + list(SI_PREFIXES))
        hint = f"did you mean `{guess}`?" if guess else "use k, M, B (or G), T, a unit such as `tokens`, or `%`"
    raise QuantityError(f"`{text}` has an unknown suffix `{suffix}`", hint=hint)


def _prefix_word(prefix: str) -> str:
    return {"k": "thousand", "K": "thousand", "M": "million", "B": "billion", "G": "billion", "T": "trillion"}[prefix]


def read_number(text: str) -> tuple[Decimal, Unit | None, str]:
    """A number token: its exact value (SI prefix applied) and a glued unit or `%`.

    Returns (value, unit or None, marker) where marker is "%" for a percentage and ""
    otherwise; value is in the glued unit when there is one (`80GB` -> 80, GB).
    """
    number, suffix = split_number(text)
    if not suffix:
        return number, None, ""
    if suffix == "%":
        return number, None, "%"
    if suffix in SI_PREFIXES:
        return number * SI_PREFIXES[suffix], None, ""
    if suffix in UNIT_BY_WORD and suffix != "B":
        return number, UNIT_BY_WORD[suffix], ""
    if len(suffix) > 1 and suffix[0] in SI_PREFIXES and suffix[1:] in UNIT_BY_WORD and suffix[1:] != "B":
        return number * SI_PREFIXES[suffix[0]], UNIT_BY_WORD[suffix[1:]], ""
    return number * _si(suffix, text), None, ""


def unit_for(word: str) -> Unit:
    """The unit a separate word names; QuantityError (with a suggestion) if none."""
    if word in UNIT_BY_WORD:
        return UNIT_BY_WORD[word]
    # Case is kept where it carries meaning: bytes (GB vs Gb, a bit) and the rates built on them.
    folded = {w.lower(): u for w, u in UNIT_BY_WORD.items() if u.dimension not in ("bytes", "byte_rate")}
    if word.lower() in folded:
        return folded[word.lower()]
    from genaisdk.core.names import suggest

    # Prefer the canonical spelling (`days`) over an alias that happens to be closer (`day`).
    guess = suggest(word, [u.name for u in UNITS]) or suggest(word, list(UNIT_BY_WORD))
    if word.lower() in ("gb", "mb", "tb", "kb", "gib", "mib", "tib", "kib"):
        hint = "bytes are case-sensitive: GB, MB, TB (powers of 1000) or GiB, MiB, TiB (powers of 1024)"
    elif word.lower() in ("gb/s", "mb/s", "tb/s", "gbps", "tbps", "mbps", "gib/s"):
        hint = "bandwidth is in bytes, case-sensitive: GB/s, TB/s, MB/s (Gb/s would be bits)"
    else:
        hint = f"did you mean `{guess}`?" if guess else "units are tokens, params, s/min/hours/days/weeks, MB/GB/TB, MiB/GiB/TiB, FLOPs, pf-days, TFLOP/s, GB/s, g/kWh"
    raise QuantityError(f"unknown unit `{word}`", hint=hint)


def make_quantity(number: Decimal, dimension: str, unit: str, factor: Decimal = Decimal(1)) -> Quantity:
    """Round the exact product once."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = float(number * factor)
    return Quantity(value=value, dimension=dimension, unit=unit)


def parse_quantity(text: str) -> Quantity:
    """Read a quantity from text such as `60B tokens`, `21 days`, `$250k`, `45%`, `80 GiB`.

    A bare number has dimension `count`. Raises QuantityError.
    """
    words = text.split()
    if not words:
        raise QuantityError("empty quantity")
    money = words[0].startswith("$")
    if money:
        words[0] = words[0][1:]
        if not words[0]:
            words.pop(0)
    if not words:
        raise QuantityError("`$` needs an amount after it", hint="write `$250k`")
    return quantity_from_words(words[0], words[1:], money=money)


def quantity_from_words(number_text: str, unit_words: list[str] | tuple[str, ...], *, money: bool = False) -> Quantity:
    """A number token followed by zero or one unit word (and `$` before it for money)."""
    number, glued, marker = read_number(number_text)
    if len(unit_words) > 1:
        raise QuantityError(f"`{number_text} {' '.join(unit_words)}` has more than one unit")
    if glued is not None and unit_words:
        raise QuantityError(f"`{number_text} {unit_words[0]}` has two units")
    if marker == "%":
        if unit_words or money:
            raise QuantityError(f"`{number_text}` is a percentage and takes no unit")
        return make_quantity(number, "fraction", "%", Decimal("0.01"))
    unit = glued if glued is not None else (unit_for(unit_words[0]) if unit_words else None)
    if money:
        if unit is not None and unit.dimension != "usd":
            raise QuantityError(f"`${number_text}` is money and cannot also be in {unit.name}")
        return make_quantity(number, "usd", "$")
    if unit is None:
        return make_quantity(number, "count", "")
    return make_quantity(number, unit.dimension, unit.name, unit.factor)


# --------------------------------------------------------------------------------------
# Printing


def format_decimal(number: Decimal) -> str:
    """Plain decimal text without exponent where short, e.g. 1.4, 60, 0.0003, 3.14e23."""
    number = number.normalize()
    if not number.is_finite():  # pragma: no cover - no NaN/inf reach here
        raise ValueError(number)
    if -5 <= number.adjusted() < 16:
        return f"{number:f}"
    return f"{number:e}".replace("e+", "e")


def _shortest(value: float, factor: Decimal) -> Decimal | None:
    """The shortest decimal d with float(d * factor) == value, or None."""
    exact = Decimal(value)
    with localcontext() as ctx:
        ctx.prec = 60
        target = exact / factor
        for digits in range(1, 18):
            ctx.prec = digits
            candidate = +target
            ctx.prec = 60
            if float(candidate * factor) == value:
                return candidate
    return None


def _with_prefix(value: float) -> str:
    """A count with the largest SI prefix that leaves a number >= 1 (6e10 -> `60B`,
    1.4e12 -> `1.4T`), when that reads shorter; plain digits otherwise (2048, 65536)."""
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        for prefix in ("T", "B", "M", "k"):
            factor = SI_PREFIXES[prefix]
            if abs(value) >= factor:
                scaled = _shortest(value, factor)
                if scaled is not None:
                    text = format_decimal(scaled)
                    if "e" not in text and len(text) <= 5:
                        return text + prefix
                break
    scaled = _shortest(value, Decimal(1))
    return format_decimal(scaled if scaled is not None else Decimal(repr(value)))


def format_quantity(quantity: Quantity) -> str:
    """Text that `parse_quantity` reads back to an equal Quantity (same value, dimension
    and unit), e.g. `60B tokens`, `30 days`, `$250k`, `51%`, `80 GiB`, `1B`."""
    value, dimension, unit = quantity.value, quantity.dimension, quantity.unit
    if dimension == "fraction":
        scaled = _shortest(value, Decimal("0.01"))
        if scaled is not None:
            return format_decimal(scaled) + "%"
        raise ValueError(f"cannot print {value} as a percentage exactly")  # pragma: no cover
    if dimension == "usd" and unit in ("$", ""):
        return "$" + _with_prefix(value)
    if dimension == "count":
        return _with_prefix(value)
    unit_name = unit or CANONICAL_UNIT[dimension]
    found = UNIT_BY_WORD.get(unit_name)
    if found is None or found.dimension != dimension:
        found = UNIT_BY_WORD[CANONICAL_UNIT[dimension]]
    if found.factor == 1 and dimension in ("tokens", "params", "usd", "flops", "bytes"):
        return f"{_with_prefix(value)} {found.name}"
    scaled = _shortest(value, found.factor)
    if scaled is None:
        found = UNIT_BY_WORD[CANONICAL_UNIT[dimension]]
        return f"{_with_prefix(value)} {found.name}"
    return f"{format_decimal(scaled)} {found.name}"

