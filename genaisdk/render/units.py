"""Numbers in words people read: `13.5 GB`, `6.74B`, `3.14e23`, `21.3 days`, `$1.2M`.

Memory is shown in decimal units (1 GB = 1e9 bytes), the convention of ZeRO's Table 1 and
of the "1B parameters is 4 GB of fp32 weights" rule of thumb; a capacity quoted in GiB by a
vendor is shown in the same decimal units so that numbers compare directly.
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


def fmt_count(n: float | None, unit: str = "") -> str:
    """6.74B params, 1.4T tokens, 512."""
    if n is None:
        return "-"
    suffix = f" {unit}" if unit else ""
    for scale, letter in _COUNT_UNITS:
        if abs(n) >= scale:
            return f"{_trim(n / scale)}{letter}{suffix}"
    return f"{_trim(n)}{suffix}"


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
