"""Quantities: suffixes, units, exactness, errors, and format/parse round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genaisdk.spec.units import (
    PF_DAY,
    UNITS,
    Quantity,
    QuantityError,
    format_quantity,
    parse_quantity,
    split_number,
)

FAST = settings(max_examples=100, deadline=None)


@pytest.mark.parametrize(
    "text, value, dimension, unit",
    [
        ("125M", 125e6, "count", ""),
        ("1.4T tokens", 1.4e12, "tokens", "tokens"),
        ("60B tokens", 60e9, "tokens", "tokens"),
        ("60G tokens", 60e9, "tokens", "tokens"),
        ("1_000", 1000, "count", ""),
        ("1_000_000 tokens", 1e6, "tokens", "tokens"),
        ("3e-4", 3e-4, "count", ""),
        ("2.5E3", 2500, "count", ""),
        ("7B params", 7e9, "params", "params"),
        ("175B parameters", 175e9, "params", "params"),
        ("30 s", 30, "seconds", "s"),
        ("90 min", 5400, "seconds", "min"),
        ("12 hours", 43200, "seconds", "hours"),
        ("21 days", 21 * 86400, "seconds", "days"),
        ("2 weeks", 14 * 86400, "seconds", "weeks"),
        ("80 GB", 80e9, "bytes", "GB"),
        ("80GB", 80e9, "bytes", "GB"),
        ("80 GiB", 80 * 2**30, "bytes", "GiB"),
        ("24GiB", 24 * 2**30, "bytes", "GiB"),
        ("512 B", 512, "bytes", "bytes"),
        ("1.5 TB", 1.5e12, "bytes", "TB"),
        ("$250k", 250e3, "usd", "$"),
        ("$5M", 5e6, "usd", "$"),
        ("$2.50", 2.5, "usd", "$"),
        ("45%", 0.45, "fraction", "%"),
        ("0.5%", 0.005, "fraction", "%"),
        ("3.14e23 FLOPs", 3.14e23, "flops", "FLOPs"),
        ("3640 pf-days", float(3640 * PF_DAY), "flops", "pf-days"),
        ("400 g/kWh", 400, "carbon_intensity", "g/kWh"),
        ("400 gCO2e/kWh", 400, "carbon_intensity", "g/kWh"),
        ("0.4 kg/kWh", 400, "carbon_intensity", "kg/kWh"),
    ],
)
def test_parse_quantity(text, value, dimension, unit):
    assert parse_quantity(text) == Quantity(value=value, dimension=dimension, unit=unit)


def test_decimal_and_binary_bytes_stay_apart():
    assert parse_quantity("1 GB").value == 1e9
    assert parse_quantity("1 GiB").value == 2**30


def test_arithmetic_is_exact_before_the_one_rounding():
    # 1.4 * 1e12 in floats is 1400000000000.0002; the decimal product rounds once.
    assert parse_quantity("1.4T").value == 1.4e12
    assert parse_quantity("0.1 days").value == 8640.0


def test_a_glued_b_is_a_billion_and_a_separate_b_is_bytes():
    assert parse_quantity("60B").dimension == "count"
    assert parse_quantity("60 B").dimension == "bytes"


@pytest.mark.parametrize(
    "text, message, hint",
    [
        ("1__000", "misplaced `_`", "between digits"),
        ("1_000_", "misplaced `_`", "between digits"),
        ("5m", "unknown suffix `m`", "`M` (million)"),
        ("60b tokens", "unknown suffix `b`", "`B` (billion)"),
        ("60 tokns", "unknown unit `tokns`", "`tokens`"),
        ("80 gb", "unknown unit `gb`", "case-sensitive"),
        ("8x", "unknown suffix `x`", "spaces around `x`"),
        ("2 days tokens", "more than one unit", None),
        ("80GB bytes", "two units", None),
        ("1e31", "too large", None),
        ("45% tokens", "percentage and takes no unit", None),
        ("$5 days", "money", None),
    ],
)
def test_quantity_errors(text, message, hint):
    with pytest.raises(QuantityError) as info:
        parse_quantity(text)
    assert message in info.value.message
    if hint is not None:
        assert hint in info.value.hint


def test_split_number():
    assert split_number("125M") == (split_number("125")[0], "M")
    assert split_number("1e-4")[1] == ""


@pytest.mark.parametrize(
    "quantity, text",
    [
        (Quantity(value=60e9, dimension="tokens", unit="tokens"), "60B tokens"),
        (Quantity(value=1.4e12, dimension="tokens", unit="tokens"), "1.4T tokens"),
        (Quantity(value=7e9, dimension="params", unit="params"), "7B params"),
        (Quantity(value=30 * 86400, dimension="seconds", unit="days"), "30 days"),
        (Quantity(value=250e3, dimension="usd", unit="$"), "$250k"),
        (Quantity(value=0.51, dimension="fraction", unit="%"), "51%"),
        (Quantity(value=80 * 2**30, dimension="bytes", unit="GiB"), "80 GiB"),
        (Quantity(value=3e-4, dimension="count", unit=""), "0.0003"),
        (Quantity(value=2048, dimension="count", unit=""), "2048"),
        (Quantity(value=65536, dimension="count", unit=""), "65536"),
        (Quantity(value=3.2e6, dimension="tokens", unit="tokens"), "3.2M tokens"),
        (Quantity(value=3.14e23, dimension="flops", unit="FLOPs"), "3.14e23 FLOPs"),
        (Quantity(value=400, dimension="carbon_intensity", unit="g/kWh"), "400 g/kWh"),
    ],
)
def test_format_quantity(quantity, text):
    assert format_quantity(quantity) == text
    assert parse_quantity(text) == quantity


# -- round trips -------------------------------------------------------------------------

_units_by_dimension: dict[str, list[str]] = {}
for _unit in UNITS:
    _units_by_dimension.setdefault(_unit.dimension, []).append(_unit.name)
_units_by_dimension["count"] = [""]
_units_by_dimension["fraction"] = ["%"]
_units_by_dimension["usd"] = ["$", "USD"]


@st.composite
def quantities(draw):
    dimension = draw(st.sampled_from(sorted(_units_by_dimension)))
    unit = draw(st.sampled_from(_units_by_dimension[dimension]))
    value = draw(
        st.one_of(
            st.integers(min_value=0, max_value=10**15).map(float),
            st.floats(min_value=0, max_value=1e25, allow_nan=False, allow_infinity=False),
        )
    )
    return Quantity(value=value, dimension=dimension, unit=unit)


@FAST
@given(quantities())
def test_any_quantity_survives_format_and_parse(quantity):
    text = format_quantity(quantity)
    again = parse_quantity(text)
    assert again.value == quantity.value, text
    assert again.dimension == quantity.dimension
    assert format_quantity(again) == text


@st.composite
def written_quantities(draw):
    """Text a person might write: digits, an optional fraction, a suffix, a unit."""
    whole = draw(st.integers(min_value=0, max_value=999_999))
    fraction = draw(st.one_of(st.just(""), st.integers(min_value=0, max_value=999).map(lambda f: f".{f}")))
    suffix = draw(st.sampled_from(["", "k", "M", "B", "T", "%"]))
    number = f"{whole}{fraction}{suffix}"
    if suffix == "%":
        return number
    unit = draw(st.sampled_from(["", " tokens", " params", " days", " hours", " GB", " GiB", " FLOPs", " pf-days"]))
    money = draw(st.booleans()) and unit == ""
    return ("$" if money else "") + number + unit


@FAST
@given(written_quantities())
def test_written_quantities_survive_parse_format_parse(text):
    quantity = parse_quantity(text)
    assert parse_quantity(format_quantity(quantity)) == quantity
