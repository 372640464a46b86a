"""The L1 theory on a sweep: which panels get the curve, the probit 50 % boundary,
the comparison table and figures."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.special import ndtr

from analysis import plots, theory, transition
from analysis.aggregate import PlotAxes

AXES = PlotAxes(x="sparsity", y="neurons", panels=("method", "method.positive"))
N = 200
FINE = np.geomspace(0.005, 0.95, 18)  # sparsities x1.36 apart
COARSE = 0.01 * 2.0 ** np.arange(7)  # x2 apart


def _cells(**keys) -> pd.DataFrame:
    base = {"model": "random", "method": "basis_pursuit", "method.positive": False,
            "n_features": N, "noise": 0.0, "neurons": 100, "sparsity": 0.1,
            "success_tol": 0.01}  # fmt: skip
    return pd.DataFrame([base | keys])


@pytest.mark.parametrize(
    ("keys", "kind"),
    [
        ({}, False),
        ({"method.positive": True}, True),
        ({"method": "lasso_lars", "method.alpha": 1e-4}, False),
        ({"method": "lasso_lars", "method.alpha": 0.0}, False),
        ({"method": "lasso_lars", "method.alpha": 1e-3}, None),  # shrinks: not exact L1
        ({"method": "lasso_lars", "method.alpha": 1e-3, "success_tol": 0.1}, False),
        ({"method": "omp", "method.positive": None}, None),
        ({"model": "toy_relu"}, None),
        ({"noise": 0.1}, None),
    ],
)
def test_curve_only_where_the_theory_describes_the_solver(keys, kind):
    assert transition.curve_kind(_cells(**keys)) is kind


@pytest.mark.parametrize(
    "other", [{"method.positive": True}, {"noise": 0.1}, {"n_features": 100}]
)
def test_mixed_panel_gets_no_curve(other):
    assert transition.curve_kind(pd.concat([_cells(), _cells(**other)])) is None


def test_probit_recovers_a_known_boundary():
    """Counts drawn from P = Phi((log p50 - log p) / 0.3): the fit finds p50 within
    a few of its standard errors, and the error shrinks with more samples."""
    rng = np.random.default_rng(0)
    log_p = np.log(np.geomspace(0.02, 0.5, 12))
    true = np.log(0.1)
    errors = []
    for totals in (100, 10_000):
        n = np.full(log_p.shape, totals)
        s = rng.binomial(n, ndtr((true - log_p) / 0.3))
        fit, se, how = transition.probit_boundary(
            log_p, s.astype(float), n.astype(float)
        )
        assert how == "probit" and abs(fit - true) < 4 * se
        errors.append(se)
    assert errors[1] < errors[0] / 5


@pytest.mark.parametrize(
    "successes",
    [[90, 80, 60], [10, 40, 70]],  # never below 50 %; rising success
)
def test_no_boundary_without_a_fall_through_half(successes):
    log_p = np.log([0.01, 0.02, 0.04])
    s, n = np.array(successes, float), np.full(3, 100.0)
    log_p50, se, how = transition.probit_boundary(log_p, s, n)
    assert np.isnan(log_p50) and np.isnan(se) and how == "none"


def test_separated_points_are_interpolated():
    """All-or-nothing success (no maximum-likelihood fit): p50 between the two
    points that bracket 50 %, with half their spacing as its error."""
    log_p = np.log([0.01, 0.02, 0.04, 0.08])
    s = np.array([100.0, 100, 0, 0])
    log_p50, se, how = transition.probit_boundary(log_p, s, np.full(4, 100.0))
    assert how == "interpolated"
    assert log_p[1] < log_p50 < log_p[2] and se == pytest.approx(np.log(2) / 2)


def _trials(
    shift: float,
    nonneg: bool = False,
    *,
    n: int = N,
    grid=FINE,
) -> pd.DataFrame:
    """Trial rows whose success follows the theory's boundary p50 = critical_sparsity
    (m/n) times exp(shift), with a probit width of 0.25 in log p; m/n = 0.1 ... 0.9,
    sparsity on ``grid``."""
    rows = []
    for m in range(n // 10, n, n // 10):
        p50 = theory.critical_sparsity(m / n, nonneg=nonneg) * np.exp(shift)
        for p in grid:
            rate = float(ndtr((np.log(p50) - np.log(p)) / 0.25))
            keys = {"neurons": m, "sparsity": p, "method.positive": nonneg}
            base = _cells(n_features=n, **keys)
            rows.append(base.assign(success_rate=rate, frac_zero=0.0, n_samples=2000))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("nonneg", [False, True])
def test_boundary_on_the_curve_has_no_gap(nonneg):
    table = transition.boundaries(_trials(0.0, nonneg), AXES)
    assert len(table) == 9 and (table["positive"] == nonneg).all()
    compared = transition.in_band(table)
    assert compared["m_over_n"].between(0.2, 0.8).all() and len(compared) == 7
    assert compared["gap"].abs().max() < 1e-3
    np.testing.assert_allclose(compared["p50"], compared["theory_p"], rtol=1e-3)


def test_boundary_off_the_curve_shows_the_gap():
    """p50 20 % lower than theory: m/n above psi(p50), by psi's slope there."""
    table = transition.in_band(transition.boundaries(_trials(np.log(0.8)), AXES))
    assert (table["gap"] > 0.01).all()
    summary = transition.summary(table)
    assert summary["max_abs_gap"].iloc[0] == pytest.approx(table["gap"].max())


def test_no_boundary_for_methods_the_theory_does_not_describe():
    trials = _trials(0.0).assign(method="omp")
    assert transition.boundaries(trials, AXES).empty


def _theory_lines(fig: Figure) -> list[int]:
    color = transition.THEORY_STYLE["color"]
    return [sum(line.get_color() == color for line in ax.lines) for ax in fig.axes[:-1]]


def test_phase_figure_draws_the_matching_curve_on_l1_panels_only():
    trials = pd.concat([_trials(0.0), _trials(0.0, True), _trials(0.0).assign(
        method="omp", **{"method.positive": None})])  # fmt: skip
    results = trials.assign(nmse=0.1, support_f1=0.5)
    fig = plots.phase_figure(results, AXES, "success_rate")
    assert _theory_lines(fig) == [1, 1, 0]  # signed, positive, omp
    signed, positive = (ax.lines[-1].get_ydata() for ax in fig.axes[:2])
    assert (positive <= signed + 1e-12).all() and (positive < signed).any()
    for ax, nonneg in zip(fig.axes[:2], (False, True), strict=True):
        rho, delta = theory.curve(nonneg=nonneg, rho_min=1e-4)  # x: sparsity = rho
        np.testing.assert_array_equal(ax.lines[-1].get_xdata(), rho)
        np.testing.assert_array_equal(ax.lines[-1].get_ydata(), delta * N)


def test_boundary_figure():
    """A panel per L1 panel: both theory curves (its own thicker) and the measured
    p50 of each neurons value at its m/n."""
    table = transition.boundaries(pd.concat([_trials(0.0), _trials(0.0, True)]), AXES)
    fig = transition.boundary_figure(table, sweep="s")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(dict.fromkeys(table["panel"]))
    for ax, nonneg in zip(panels, (False, True), strict=True):
        signed, positive = ax.lines[:2]
        for line, kind in ((signed, False), (positive, True)):
            rho, delta = theory.curve(nonneg=kind, rho_min=1e-3)
            np.testing.assert_array_equal(line.get_xydata(), np.stack([rho, delta], 1))
            assert line.get_linewidth() == (2.0 if kind == nonneg else 1.0)
        rows = table[table["panel"] == ax.get_title()]
        (measured,) = ax.containers
        points = measured.lines[0].get_xydata()
        np.testing.assert_array_equal(points, rows[["p50", "m_over_n"]].to_numpy())


@pytest.mark.parametrize(
    ("shift", "verdict"), [(0.0, "agree"), (np.log(0.5), "DISAGREE")]
)
def test_verdict_per_panel(shift, verdict):
    (line,) = transition.verdicts(transition.boundaries(_trials(shift), AXES))
    assert line.startswith("method=basis_pursuit") and f": {verdict} (" in line


@pytest.mark.parametrize(
    ("shift", "n", "grid", "reasons"),
    [
        (np.log(1.3), 50, FINE, ["n_features=50 is small"]),
        (np.log(1.3), 200, FINE, []),  # large n: not that
        (np.log(0.5), 50, FINE, []),  # lower p50: not that
        (np.log(0.5), 200, COARSE, ["coarse"]),
        (np.log(1.3), 50, COARSE, ["is small", "coarse"]),
    ],
)
def test_a_disagreement_says_what_explains_it(shift, n, grid, reasons):
    """Finite size explains a boundary at larger sparsity when n_features < 200; a
    grid whose sparsities around p50 are x2 apart is coarse; otherwise nothing."""
    table = transition.boundaries(_trials(shift, n=n, grid=grid), AXES)
    (line,) = transition.verdicts(table)
    assert ": DISAGREE (" in line
    for reason in reasons:
        assert reason in line, line
    if "coarse" in reasons:
        assert "x2 apart" in line
    if not reasons:
        assert line.endswith("neither a small n_features nor a coarse grid explains it")
    else:
        assert "; expected: " in line and ("is small" in line) == (n < 200)


def test_donoho_tanner_plane_puts_every_n_features_on_one_curve():
    """A marker per cell at (m/n, k/m) coloured by its success rate, a marker shape
    per n_features, one panel for both n; the curve delta -> psi^-1(delta) / delta."""
    trials = pd.concat([_trials(0.0, n=100), _trials(0.0, n=200)], ignore_index=True)
    axes = PlotAxes("sparsity", "neurons", ("n_features", "method", "method.positive"))
    assert plots.dt_axes(axes).panels == ("method", "method.positive")
    fig = plots.dt_figure(trials, axes, "success_rate")
    (ax,) = [ax for ax in fig.axes if ax.get_title()]
    markers = ax.collections
    assert len(markers) == 2  # n = 100, then 200
    for points, (n, rows) in zip(markers, trials.groupby("n_features"), strict=True):
        expected = np.stack(
            [rows["neurons"] / n, rows["sparsity"] * n / rows["neurons"]]
        )
        np.testing.assert_allclose(points.get_offsets(), expected.T)
        np.testing.assert_array_equal(points.get_array(), rows["success_rate"])
    (curve,) = ax.lines
    rho, delta = theory.curve(nonneg=False, rho_min=1e-4)
    np.testing.assert_allclose(curve.get_xydata(), np.stack([delta, rho / delta], 1))
    omp = trials.assign(method="omp", **{"method.positive": None})
    assert len(plots.dt_figure(omp, axes).axes[0].lines) == 0  # no curve


def test_the_large_preset_brackets_both_boundaries_finely():
    """experiment=phase_diagram_large: n=1000, every neurons value in the band, the
    batched solver, and at least 3 sparsities within x1.4 on each side of both
    theory boundaries (signed and x >= 0) at every neurons value."""
    from sweep.grid import expand_cells

    cells = expand_cells(["experiment=phase_diagram_large"], multirun=True)
    flat = pd.DataFrame([cell.flat for cell in cells])
    assert len(cells) == 476
    assert (flat["n_features"] == 1000).all()
    assert (flat["method.solver"] == "admm").all()
    assert set(flat["neurons"] / 1000) >= {0.2, 0.4, 0.6, 0.8}
    grid = np.sort(flat["sparsity"].unique())
    assert (grid[1:] / grid[:-1]).max() < 1.16  # 1.1x, rounded to 2 digits
    for m in flat["neurons"].unique():
        for nonneg in (False, True):
            p = theory.critical_sparsity(m / 1000, nonneg=nonneg)
            assert ((grid < p) & (grid >= p / 1.4)).sum() >= 3, (m, nonneg)
            assert ((grid > p) & (grid <= p * 1.4)).sum() >= 3, (m, nonneg)
