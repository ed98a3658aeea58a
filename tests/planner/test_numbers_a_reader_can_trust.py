"""The loss fit is used where it holds, never printed worse than uniform, and small values
keep their significant digits."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

import genaisdk
from genaisdk.cli import cli
from genaisdk.core.numbers import fmt_amount, fmt_fraction
from genaisdk.estimate import scaling

from .conftest import ROOT, spec_text

SPECS = ROOT / "specs"


def test_a_tiny_model_is_never_predicted_worse_than_uniform():
    """tiny-gpt (1.15M parameters, 384-token vocabulary): the fit says 19.5 nats/token, worse
    than a uniform guess (ln 384 = 5.95), far below its 70M-16B parameter range."""
    plan = genaisdk.plan(str(SPECS / "tiny-gpt.genai"))
    s = plan.scaling
    assert s.uniform_loss == pytest.approx(math.log(384))
    assert s.fit_loss > s.uniform_loss
    assert s.predicted_loss == pytest.approx(math.log(384))
    assert s.loss_in_fit_range is False
    note = next(d for d in plan.diagnostics if d.code == "GP106")
    assert "uniform" in note.message and "70M-16B" in note.message
    data = plan.to_json()["scaling"]
    assert data["predicted_loss"] <= data["uniform_loss"] and data["loss_in_fit_range"] is False


def test_inside_the_fitted_range_the_fit_stands():
    plan = genaisdk.plan(spec_text(model="size = 1B\ncontext = 2048 tokens", data="tokens = 20B tokens", budget="hardware = 8 x a100-80gb"))
    s = plan.scaling
    assert s.loss_in_fit_range is True
    assert s.predicted_loss == pytest.approx(float(scaling.chinchilla_loss(plan.model.active_params, 20e9)))
    assert "GP106" not in {d.code for d in plan.diagnostics}


@pytest.mark.parametrize(
    "params, tokens, inside",
    [(7e7, 5e9, True), (1.6e10, 5e11, True), (6.9e7, 1e10, False), (7e9, 1.4e12, False), (1e9, 4e9, False)],
)
def test_the_fitted_ranges(params, tokens, inside):
    assert bool(scaling.chinchilla_in_range(params, tokens)) is inside


@pytest.mark.parametrize(
    "value, text",
    [(0.031, "0.031"), (0.000312, "0.000312"), (3.35, "3.35"), (0.0, "0"), (412.4, "412"), (3640.2, "3,640"), (1082990, "1,082,990")],
)
def test_small_amounts_keep_their_significant_digits(value, text):
    assert fmt_amount(value) == text


def test_a_small_run_prints_no_zeros_that_are_not_zero():
    """specs/t5-translation.genai: 0.031 PF-days, 3.35 device-hours, 0.334% of its budget."""
    result = CliRunner().invoke(cli, ["plan", str(SPECS / "t5-translation.genai")])
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0].strip(): line for line in result.output.splitlines() if line.startswith(" ")}
    assert "0.031" in lines["petaflop/s-days"]
    assert "3.35" in lines["device-hours"]
    assert "uses 0.334% of its budget" in " ".join(result.output.split())
    assert fmt_fraction(0.00334) == "0.334%"
