"""Numbers in words people read: `13.5 GB`, `6.74B`, `3.14e23`, `21.3 days`, `$1.2M`,
`2.5M tok/s`, `41.2%`, `1:02:05`: the one formatter of the planner, the renderers, `genai
explain`, `genai measure` and the training display.

Memory is shown in decimal units (1 GB = 1e9 bytes), the convention of ZeRO's Table 1 and
of the "1B parameters is 4 GB of fp32 weights" rule of thumb; a capacity quoted in GiB by a
vendor is shown in the same decimal units so that numbers compare directly. There is no
second (binary) byte convention anywhere in the output.
"""

from __future__ import annotations

import math

_BYTE_UNITS = ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))
_COUNT_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _trim(x: float, digits: int = 3) -> str:
    """`digits` significant figures, no trailing zeros (13.5, 124, 0.0312)."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    magnitude = int(math.floor(math.log10(abs(x))))
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for scale, unit in _BYTE_UNITS:
        if abs(n) >= scale:
            return f"{_trim(n / scale)} {unit}"
    return f"{_trim(n)} B"


def fmt_amount(x: float | None, digits: int = 3) -> str:
    """A plain amount with `digits` significant figures however small, whole with thousands
    separators once it has that many digits: 0.0224, 3.5, 412, 3,640, 1,082,990; never a
    `0.0` or `0` for a value that is not zero."""
    if x is None:
        return "-"
    if abs(x) >= 10 ** (digits - 1):
        return f"{round(x):,}"
    return _trim(x, digits)


def fmt_count(n: float | None, unit: str = "", *, digits: int = 3) -> str:
    """6.74B params, 1.4T tokens, 512 (`digits` significant figures)."""
    if n is None:
        return "-"
    suffix = f" {unit}" if unit else ""
    for scale, letter in _COUNT_UNITS:
        if abs(n) >= scale:
            return f"{_trim(n / scale, digits)}{letter}{suffix}"
    return f"{_trim(n, digits)}{suffix}"


def fmt_sci(x: float | None, digits: int = 3) -> str:
    """3.14e+23 as `3.14e23`."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    text = f"{x:.{digits - 1}e}"
    mantissa, exponent = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 2 * 86400:
        return f"{_trim(s / 86400)} days"
    if s >= 2 * 3600:
        return f"{_trim(s / 3600)} hours"
    if s >= 120:
        return f"{_trim(s / 60)} minutes"
    return f"{_trim(s)} s"


def fmt_usd(x: float | None) -> str:
    if x is None:
        return "-"
    for scale, letter in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"${_trim(x / scale)}{letter}"
    return f"${x:,.2f}" if abs(x) < 100 else f"${x:,.0f}"


def fmt_fraction(x: float | None) -> str:
    """0.4 as `40%`."""
    if x is None:
        return "-"
    return f"{_trim(100 * x)}%"


def fmt_ratio(x: float | None) -> str:
    """How a figure compares to its limit: `0.42x`, `3.1x`."""
    if x is None:
        return "-"
    return f"{_trim(x, 2)}x"


def fmt_num(x: float) -> str:
    """An operand as people write it in a formula: 2048, 6.74e9, 0.4, 1.5."""
    x = float(x)
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e5:
        return str(int(x))
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}"
    return fmt_sci(x)


def fmt_rate(tokens_per_s: float | None) -> str:
    """Training throughput: `2.5M tok/s`, `950 tok/s`."""
    if tokens_per_s is None:
        return "-"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if tokens_per_s >= scale:
            return f"{tokens_per_s / scale:.1f}{unit} tok/s"
    return f"{tokens_per_s:.0f} tok/s"


def fmt_percent(x: float | None) -> str:
    """A utilization with one decimal: 0.4125 as `41.2%`."""
    return "-" if x is None else f"{100 * x:.1f}%"


def fmt_clock(seconds: float | None) -> str:
    """A time left or taken on a clock face: `1:02:05`, `1:05`."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fmt_value(value: float | None, unit: str) -> str:
    """A value in its unit: bytes as 13.5 GB, params and tokens as 6.74B, FLOPs as 3.1e23,
    seconds as days, USD as $1.2M; any other unit after a plain number. None and a value
    that does not exist (NaN: a time without a throughput) print as "-"."""
    if value is None or value != value:
        return "-"
    if unit == "bytes":
        return fmt_bytes(value)
    if unit in ("params", "tokens"):
        return fmt_count(value, unit)
    if unit in ("FLOPs", "FLOP/s"):
        return f"{fmt_sci(value)} {unit}"
    if unit == "s":
        return fmt_seconds(value)
    if unit == "USD":
        return fmt_usd(value)
    if unit == "":
        return f"{value:.4g}"
    return f"{value:,.4g} {unit}"


def fmt_items(n: int, noun: str, plural: str | None = None) -> str:
    """'1 device', '8 devices' (`plural`: the plural where adding 's' is wrong)."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def fmt_recompute(kind: str) -> str:
    """'no recomputation', 'selective recomputation', 'full recomputation'."""
    return "no recomputation" if kind == "none" else f"{kind} recomputation"
