"""Asymptotic phase transition of L1 recovery from Gaussian measurements.

A k-sparse x in R^n (n = n_features, k active features) is measured as y = A x with
A an m x n Gaussian matrix (m = neurons). With rho = k/n (sparsity) and delta = m/n,
the curve delta = psi(rho) splits the (rho, delta) plane as n -> inf: above it
(m/n > psi(k/n)) L1 minimisation, min ||x||_1 subject to A x = y, recovers x with
probability -> 1; below it, it fails with probability -> 1. With the constraint x >= 0
(``nonneg=True``) the curve is lower: recovery needs fewer measurements.

psi(rho) is the statistical dimension of the L1 descent cone divided by n (Amelunxen,
Lotz, McCoy, Tropp 2014, "Living on the edge: phase transitions in convex programs
with random data", Prop. 4.5), which equals the Donoho-Tanner weak threshold of the
cross-polytope (signed) and of the simplex (nonnegative) (Donoho and Tanner 2009,
"Counting faces of randomly projected polytopes when the projection radically lowers
dimension"; there as rho_W(delta) = k/m). With features active independently with
probability p (Bernoulli(p)), k/n concentrates at p, so rho = p.

Formula: psi(rho) = inf_{tau >= 0} rho (1 + tau^2) + c (1 - rho) G(tau), where
G(tau) = E[(g - tau)_+^2] = (1 + tau^2) Q(tau) - tau phi(tau) for g ~ N(0, 1), phi
its density and Q its upper tail, with c = 2 (signed) or c = 1 (nonnegative). The
objective is convex in tau; its minimiser is the root of
rho tau = c (1 - rho) (phi(tau) - tau Q(tau)), increasing in tau, found by brentq.
"""

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import ndtr

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_RTOL = 4.0 * np.finfo(float).eps


def psi(rho: ArrayLike, *, nonneg: bool = False) -> float | np.ndarray:
    """Critical m/n for sparsity k/n = ``rho``; same shape as ``rho`` (float if 0-d)."""
    rho_arr = _check_unit("rho", rho)
    c = _weight(nonneg)
    out = [_psi_scalar(float(r), c) for r in rho_arr.flat]
    return _shaped(out, rho_arr.shape)


def critical_sparsity(delta: ArrayLike, *, nonneg: bool = False) -> float | np.ndarray:
    """Sparsity k/n at which ``psi`` equals m/n = ``delta``; same shape as ``delta``."""
    delta_arr = _check_unit("delta", delta)
    c = _weight(nonneg)
    out = [_inverse_scalar(float(d), c) for d in delta_arr.flat]
    return _shaped(out, delta_arr.shape)


def curve(
    *, nonneg: bool = False, n_points: int = 200, rho_min: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Points (rho, delta), each of shape (n_points,), log-spaced in rho up to 1."""
    if not (isinstance(n_points, int | np.integer) and n_points >= 2):
        raise ValueError(f"n_points must be an integer >= 2; got {n_points!r}")
    if not 0.0 < rho_min < 1.0:
        raise ValueError(f"rho_min must lie in (0, 1); got {rho_min!r}")
    rho = np.logspace(math.log10(rho_min), 0.0, n_points)
    rho[[0, -1]] = rho_min, 1.0
    return rho, np.asarray(psi(rho, nonneg=nonneg))


def _check_unit(name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as a float array; ValueError if any entry is NaN or outside [0, 1]."""
    arr = np.asarray(value, dtype=float)
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        first = float(arr[bad][0])
        raise ValueError(f"{name} must lie in [0, 1]; got {first!r}")
    return arr


def _weight(nonneg: bool) -> float:
    """Weight c of the tail term: 2 for signed x, 1 for x >= 0."""
    return 1.0 if nonneg else 2.0


def _shaped(values: list[float], shape: tuple[int, ...]) -> float | np.ndarray:
    """``values`` reshaped to ``shape``; a float when ``shape`` is ()."""
    out = np.asarray(values, dtype=float).reshape(shape)
    return float(out) if out.ndim == 0 else out


def _pdf(tau: ArrayLike) -> np.ndarray:
    """Standard normal density at ``tau``, elementwise."""
    return _INV_SQRT_2PI * np.exp(-0.5 * np.square(tau))


def _tail(tau: ArrayLike) -> np.ndarray:
    """G(tau) = int_tau^inf (u - tau)^2 phi(u) du = (1 + tau^2) Q(tau) - tau phi(tau).

    Elementwise in ``tau``; Q(tau) = ndtr(-tau), which equals ``norm.sf(tau)``.
    """
    tau = np.asarray(tau, dtype=float)
    return (1.0 + tau**2) * ndtr(-tau) - tau * _pdf(tau)


def _objective(tau: ArrayLike, rho: float, *, nonneg: bool = False) -> np.ndarray:
    """rho (1 + tau^2) + c (1 - rho) G(tau), elementwise in ``tau``; psi is its inf."""
    tau = np.asarray(tau, dtype=float)
    return rho * (1.0 + tau**2) + _weight(nonneg) * (1.0 - rho) * _tail(tau)


def _argmin_tau(rho: float, c: float) -> float:
    """Minimiser in tau of the objective, for 0 < rho < 1: root of its derivative / 2.

    The derivative over 2 is rho tau - c (1 - rho) (phi(tau) - tau Q(tau)), increasing
    (d/dtau (phi - tau Q) = -Q), negative at 0; at hi = 1 + sqrt(2 log(c / rho)) it is
    positive since phi(tau) - tau Q(tau) <= phi(tau) / tau^2 <= rho / c there.
    """

    def slope(tau: float) -> float:
        return rho * tau - c * (1.0 - rho) * float(_pdf(tau) - tau * ndtr(-tau))

    hi = 1.0 + math.sqrt(2.0 * math.log(c / rho))
    return brentq(slope, 0.0, hi, xtol=1e-15, rtol=_RTOL, maxiter=200)


def _psi_scalar(rho: float, c: float) -> float:
    """psi at one rho in [0, 1], with tail weight c."""
    if rho == 0.0:
        return 0.0
    if rho == 1.0:
        return 1.0
    tau = _argmin_tau(rho, c)
    return rho * (1.0 + tau**2) + c * (1.0 - rho) * float(_tail(tau))


def _inverse_scalar(delta: float, c: float) -> float:
    """The rho in [0, delta] with psi(rho) = delta (psi(rho) > rho on (0, 1))."""
    if delta in (0.0, 1.0):
        return delta
    return brentq(
        lambda r: _psi_scalar(r, c) - delta,
        0.0,
        delta,
        xtol=1e-16 * delta,
        rtol=_RTOL,
        maxiter=200,
    )
