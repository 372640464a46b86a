"""Tests of ``analysis.theory``: the L1 phase transition psi and its inverse.

Checked against the published Donoho-Tanner weak thresholds at m/n = 0.5, against a
second numerical route (for fixed delta, the maximum over z of the Donoho-Maleki-
Montanari expression for k/m), against quadrature and a brute-force grid over tau,
and on its shape (monotone, above the diagonal, nonnegative curve below the signed).
"""

import math
import re

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from analysis import theory
from analysis.theory import critical_sparsity, curve, psi

INTERIOR = np.logspace(-6, 0, 61)[:-1]


def dmm_ratio(delta: float, *, nonneg: bool) -> float:
    """k/m at m/n = ``delta``: max over z of [1 - c/delta G(z)] / [1 + z^2 - c G(z)].

    Donoho, Maleki, Montanari 2009 (PNAS, "Message-passing algorithms for compressed
    sensing"), with G(z) = (1 + z^2) Q(z) - z phi(z) written out here independently.
    """
    c = 1.0 if nonneg else 2.0

    def neg_ratio(z: float) -> float:
        g = (1 + z**2) * norm.sf(z) - z * norm.pdf(z)
        return -(1 - c / delta * g) / (1 + z**2 - c * g)

    res = minimize_scalar(
        neg_ratio, bounds=(0.0, 8.0), method="bounded", options={"xatol": 1e-12}
    )
    return -res.fun


@pytest.mark.parametrize(
    ("nonneg", "almt", "donoho_tanner"),
    [(False, 0.386, 0.3848), (True, 0.558, 0.5581)],
)
def test_published_threshold_at_half(nonneg, almt, donoho_tanner):
    ratio = critical_sparsity(0.5, nonneg=nonneg) / 0.5
    assert ratio == pytest.approx(almt, abs=0.002)
    assert ratio == pytest.approx(donoho_tanner, abs=0.002)


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("delta", [0.05, 0.25, 0.5, 0.75, 0.95])
def test_matches_second_route(delta, nonneg):
    ratio = critical_sparsity(delta, nonneg=nonneg) / delta
    assert ratio == pytest.approx(dmm_ratio(delta, nonneg=nonneg), rel=1e-9)


@pytest.mark.parametrize("nonneg", [False, True])
def test_round_trip(nonneg):
    delta = np.linspace(0.001, 0.999, 37)
    rho = critical_sparsity(delta, nonneg=nonneg)
    np.testing.assert_allclose(psi(rho, nonneg=nonneg), delta, rtol=0, atol=1e-12)
    back = critical_sparsity(psi(INTERIOR, nonneg=nonneg), nonneg=nonneg)
    np.testing.assert_allclose(back, INTERIOR, rtol=1e-9)


def test_shape_of_curves():
    signed, nonneg = psi(INTERIOR), psi(INTERIOR, nonneg=True)
    for delta in (signed, nonneg):
        assert np.all(np.diff(delta) > 0)
        assert np.all(delta > INTERIOR)
        assert np.all(delta < 1)
    assert np.all(nonneg < signed)


@pytest.mark.parametrize("nonneg", [False, True])
def test_endpoints(nonneg):
    assert psi(0.0, nonneg=nonneg) == 0.0
    assert psi(1.0, nonneg=nonneg) == 1.0
    assert critical_sparsity(0.0, nonneg=nonneg) == 0.0
    assert critical_sparsity(1.0, nonneg=nonneg) == 1.0
    # Continuous there: psi ~ 2 rho log(1/rho) at 0, psi -> 1 at 1.
    assert 0 < psi(1e-12, nonneg=nonneg) < 1e-9
    assert psi(1 - 1e-9, nonneg=nonneg) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0, 2.5, 5.0])
def test_tail_closed_form_against_quad(tau):
    expected, _ = quad(
        lambda u: (u - tau) ** 2 * norm.pdf(u), tau, np.inf, epsabs=0, epsrel=1e-12
    )
    assert float(theory._tail(tau)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("rho", [0.01, 0.1, 0.3, 0.7])
def test_infimum_against_grid(rho, nonneg):
    tau = np.linspace(0.0, 6.0, 600_001)
    values = theory._objective(tau, rho, nonneg=nonneg)
    exact = psi(rho, nonneg=nonneg)
    assert values.min() >= exact - 1e-12
    assert values.min() - exact < 1e-9


def test_objective_weights_halved_tail():
    tau, rho = 0.8, 0.2
    g = float(theory._tail(tau))
    signed = theory._objective(tau, rho)
    nonneg = theory._objective(tau, rho, nonneg=True)
    assert signed == pytest.approx(rho * (1 + tau**2) + 2 * (1 - rho) * g)
    assert signed - nonneg == pytest.approx((1 - rho) * g)


def test_vectorised_shapes():
    rho = np.array([[0.0, 0.05, 0.2], [0.5, 0.9, 1.0]])
    out = psi(rho)
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out, [[psi(float(r)) for r in row] for row in rho])
    assert isinstance(psi(0.1), float)
    assert isinstance(critical_sparsity(0.1), float)
    assert critical_sparsity([0.2, 0.4]).shape == (2,)
    assert psi(np.array([])).shape == (0,)


@pytest.mark.parametrize("nonneg", [False, True])
def test_curve(nonneg):
    rho, delta = curve(nonneg=nonneg, n_points=50)
    assert rho.shape == delta.shape == (50,)
    assert rho[0] == 1e-3
    assert rho[-1] == delta[-1] == 1.0
    np.testing.assert_allclose(np.diff(np.log(rho)), math.log(1e3) / 49)
    np.testing.assert_array_equal(delta, psi(rho, nonneg=nonneg))
    assert np.all(np.diff(delta) > 0)
    rho_min, _ = curve(rho_min=1e-4, n_points=2)
    np.testing.assert_array_equal(rho_min, [1e-4, 1.0])


@pytest.mark.parametrize("func", [psi, critical_sparsity])
@pytest.mark.parametrize(
    ("bad", "shown"),
    [(-0.1, "-0.1"), (1.5, "1.5"), (float("nan"), "nan"), ([0.5, 2.0], "2.0")],
)
def test_bad_input_raises(func, bad, shown):
    name = "rho" if func is psi else "delta"
    message = rf"{name} must lie in \[0, 1\]; got {re.escape(shown)}$"
    with pytest.raises(ValueError, match=message):
        func(bad)
    with pytest.raises(ValueError, match=message):
        func(bad, nonneg=True)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_points": 1}, "n_points"),
        ({"n_points": 2.5}, "n_points"),
        ({"rho_min": 0.0}, "rho_min"),
        ({"rho_min": 1.0}, "rho_min"),
        ({"rho_min": float("nan")}, "rho_min"),
    ],
)
def test_curve_bad_input_raises(kwargs, name):
    with pytest.raises(ValueError, match=name):
        curve(**kwargs)
