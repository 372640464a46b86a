"""The exact L1 solvers (sweep/l1.py): batched ADMM against the LARS path."""

import numpy as np
import pytest
from conftest import run_method

from sweep import l1
from sweep.data import sparse_features
from sweep.models import random_model


def problem(n, m, p, n_samples, positive, seed):
    rng = np.random.default_rng(seed)
    X = sparse_features(n_samples, n, rng=rng, sparsity=p)
    if not positive:
        X *= rng.choice([-1.0, 1.0], size=X.shape)
    W = random_model(n, m, rng=rng).W
    return W, X, X @ W.T


def succeeded(X_hat, X):
    return np.linalg.norm(X_hat - X, axis=1) <= 0.01 * np.linalg.norm(X, axis=1)


# Across the transition at n=100: m/n = 0.3 and 0.6, sparsities below, at and above
# the signed (and nonnegative) boundary.
GRID = [(m, p, positive) for m in (30, 60) for p in (0.05, 0.15, 0.3)
        for positive in (False, True)]  # fmt: skip


@pytest.mark.parametrize(("m", "p", "positive"), GRID)
def test_certified_samples_are_the_lars_optimum(m, p, positive):
    W, X, H = problem(100, m, p, 60, positive, seed=m + int(100 * p))
    XL, lars_exact = l1.lars(W, H, positive=positive, max_iter=2000)
    XA, certified = l1.admm(W, H, positive=positive, max_iter=2000)
    assert certified.mean() > 0.5  # the solver certifies most samples here
    # LARS stops a hair short of W x = h on some samples whose optimum has about m
    # nonzeros (residuals up to 1e-3 ||h||; lars reports them not exact): compare x
    # where LARS reached W x = h
    both = certified & lars_exact
    assert both.mean() > 0.4
    assert np.abs(XA - XL)[both].max() < 1e-6
    assert (succeeded(XA, X) == succeeded(XL, X))[both].all()
    if positive:
        assert (XA[certified] >= 0).all()


def test_lars_reports_a_path_that_ends_short_of_the_constraint():
    """Measured: x >= 0 near full support, the LARS path ends with ||W x - h|| up to
    1e-3 ||h|| (and an L1 norm below the true optimum's): not exact."""
    W, X, H = problem(100, 80, 0.68, 40, True, seed=4)
    XL, exact = l1.lars(W, H, positive=True, max_iter=5000)
    short = np.linalg.norm(XL @ W.T - H, axis=1) > 1e-7 * np.linalg.norm(H, axis=1)
    assert short.any() and (~short).any()  # both occur here
    assert np.array_equal(exact, ~short)


def test_the_certificate_refuses_a_feasible_point_that_is_not_optimal():
    W, X, H = problem(100, 40, 0.03, 1, False, seed=5)
    h, truth = H[0], np.flatnonzero(X[0])
    y = np.zeros(40)
    assert l1._exact_on(W, h, truth, y, positive=False) is not None  # positive control
    # another support of m columns also solves W x = h exactly, at a larger L1 norm
    rng = np.random.default_rng(0)
    other = np.sort(rng.choice(np.setdiff1d(np.arange(100), truth), 40, replace=False))
    x_other = np.zeros(100)
    x_other[other] = np.linalg.solve(W[:, other], h)
    assert np.allclose(W @ x_other, h)
    assert np.abs(x_other).sum() > np.abs(X[0]).sum()
    assert l1._exact_on(W, h, other, y, positive=False) is None
    # and a support missing a true feature is not even feasible
    assert l1._exact_on(W, h, truth[1:], y, positive=False) is None


def test_uncertified_samples_are_counted_not_converged():
    W, X, H = problem(100, 30, 0.1, 40, False, seed=3)
    codes, converged = l1.solve(W, H, positive=False, solver="admm", max_iter=500,
                                admm_iter=25)  # fmt: skip
    assert converged < 0.5 and np.isfinite(codes).all()
    codes, converged = l1.solve(W, H, positive=False, solver="admm", max_iter=500,
                                admm_iter=3000)  # fmt: skip
    assert converged > 0.9


def test_zero_activations_are_certified_zero():
    W, _, H = problem(50, 20, 0.1, 3, False, seed=1)
    H[1] = 0.0
    codes, certified = l1.admm(W, H, positive=False, max_iter=200)
    assert certified[1] and not codes[1].any()


@pytest.mark.parametrize("case", ["wide", "repeated"])
def test_dependent_rows_are_solved_by_lars(case):
    """More neurons than features, or a neuron repeated: no projection for ADMM."""
    W, X, H = problem(50, 60 if case == "wide" else 20, 0.1, 10, False, seed=2)
    if case == "repeated":
        W[-1] = W[0]
        H = X @ W.T
    assert l1.admm(W, H, positive=False, max_iter=100) is None
    admm, converged = l1.solve(W, H, positive=False, solver="admm", max_iter=500,
                               admm_iter=100)  # fmt: skip
    lars, _ = l1.solve(W, H, positive=False, solver="lars", max_iter=500, admm_iter=100)
    assert converged == 1.0 and np.array_equal(admm, lars)


def test_method_option_agrees_with_lars_on_success(rng):
    """Through the method: the success rate and converged with each solver."""
    W, X, H = problem(100, 40, 0.12, 200, False, seed=11)
    rates, done = [], []
    for solver in ("lars", "admm"):
        out = run_method("basis_pursuit", H, W, rng, solver=solver, admm_iter=2000)
        rates.append(succeeded(out.X_hat, X).mean())
        done.append(out.info["converged"])
    assert 0.2 < rates[0] < 0.9  # near the boundary: both outcomes occur
    assert abs(rates[1] - rates[0]) <= 0.005
    assert done[0] == 1.0 and done[1] > 0.8
