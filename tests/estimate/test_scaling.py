"""Chinchilla approach 3 and Kaplan's laws against the published constants."""

from __future__ import annotations

import pytest

from genaisdk.estimate.scaling import (
    CHINCHILLA,
    KAPLAN,
    chinchilla_loss,
    chinchilla_optimal,
    kaplan_loss_params,
    kaplan_loss_tokens,
    kaplan_optimal,
    optimal_params_for_tokens,
    tokens_per_param_optimal,
)


def test_approach_3_constants(published):
    fit = published["chinchilla_approach_3"]
    assert (CHINCHILLA.E, CHINCHILLA.A, CHINCHILLA.B, CHINCHILLA.alpha, CHINCHILLA.beta) == (
        fit["E"], fit["A"], fit["B"], fit["alpha"], fit["beta"]
    )
    assert CHINCHILLA.G == pytest.approx(fit["derived_G"], rel=1e-4)
    assert CHINCHILLA.a == pytest.approx(fit["derived_a"], rel=1e-3)
    assert CHINCHILLA.b == pytest.approx(fit["derived_b"], rel=1e-3)


def test_approach_3_exponents_match_table_2(published):
    a, b = published["chinchilla_table_2"]["approach3"]["a"], published["chinchilla_table_2"]["approach3"]["b"]
    assert CHINCHILLA.a == pytest.approx(a, abs=0.01)
    assert CHINCHILLA.b == pytest.approx(b, abs=0.01)


def test_compute_optimal_for_chinchillas_budget(published):
    check = published["chinchilla_approach_3"]["check"]
    n, d = chinchilla_optimal(check["flops"])
    assert float(n) == pytest.approx(check["optimal_params"], rel=0.01)
    assert float(d) == pytest.approx(check["optimal_tokens"], rel=0.01)
    assert float(6 * n * d) == pytest.approx(check["flops"], rel=1e-12)


def test_twenty_tokens_per_parameter():
    n, d = tokens_per_param_optimal(5.76e23)
    assert float(d / n) == pytest.approx(20.0)
    assert float(6 * n * d) == pytest.approx(5.76e23)
    # Chinchilla itself: 70B parameters on 1.4T tokens is 20 tokens per parameter.
    assert float(optimal_params_for_tokens(1.4e12)) == pytest.approx(70e9)


def test_loss_at_the_optimum_is_below_off_optimum_allocations():
    c = 1e23
    n, d = chinchilla_optimal(c)
    best = float(chinchilla_loss(n, d))
    for factor in (0.25, 0.5, 2.0, 4.0):
        assert float(chinchilla_loss(n * factor, d / factor)) > best
    assert float(chinchilla_loss(1e30, 1e30)) == pytest.approx(CHINCHILLA.E, abs=1e-3)


def test_chinchilla_beats_gopher_by_the_law():
    """Chinchilla (70B, 1.4T) is predicted better than Gopher (280B, 300B) at similar compute."""
    assert float(chinchilla_loss(70e9, 1.4e12)) < float(chinchilla_loss(280e9, 300e9))


def test_kaplan_constants(published):
    k = published["kaplan"]
    assert (KAPLAN.alpha_N, KAPLAN.N_c) == (k["L_N"]["alpha_N"], k["L_N"]["N_c"])
    assert (KAPLAN.alpha_D, KAPLAN.D_c) == (k["L_D"]["alpha_D"], k["L_D"]["D_c"])
    assert float(kaplan_loss_params(KAPLAN.N_c)) == pytest.approx(1.0)
    assert float(kaplan_loss_tokens(KAPLAN.D_c)) == pytest.approx(1.0)


def test_kaplan_frontier_favours_parameters_over_data():
    """Kaplan's frontier grows N as C^0.73 (Table 6), Chinchilla's as C^0.45."""
    n1, _ = kaplan_optimal(8.64e19)  # 1 PF-day
    assert float(n1) == pytest.approx(1.3e9)
    n2, _ = kaplan_optimal(8.64e19 * 1000)
    assert float(n2 / n1) == pytest.approx(1000**0.73)
