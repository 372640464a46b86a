"""The L1 phase transition in a sweep: the theory curve where it applies, and the
measured 50 % success boundary next to it.

The curve (``analysis.theory``) describes exact L1 minimisation of x from h = W x
with Gaussian W: ``basis_pursuit``, and ``lasso_lars`` when its alpha is small enough
that the L1 shrinkage stays well inside the success tolerance. ``positive: true``
adds x >= 0 and moves the curve (the nonnegative transition). It needs
``model=random`` with its Gaussian geometry (the theory's ensemble), noise-free H,
and features that fire independently at one rate (``data.firing=constant``, no
correlation, no hierarchy; exactly-k cells count as constant), so that every support
of a size is as likely: ``assumptions_fail`` names the keys that break this, and
neither the curve nor the boundary comparison is made for those cells. The
magnitudes (``data.magnitude``) do not matter: exact L1 recovers x or not by its
support and signs alone.

The measured boundary: for each neurons value m of such a panel, a probit fit of
the samples' successes against log sparsity, P(success) = Phi(a + b log p), pooled
over the trials of every cell; p50 = exp(-a / b), its standard error by the delta
method. The samples of a trial share one W, so this error, which treats them as
independent, is a lower bound. Where the fit is not defined (the grid jumps from
above to below 50 % with no point in between, or success does not fall with p), p50
is interpolated between the two points that bracket 50 % (in log p), with half their
spacing as its error (column ``fit``). Compared with the curve as m/n - psi(p50), for
0.2 <= m/n <= 0.8.
"""

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr

from analysis import style, theory
from analysis.aggregate import PlotAxes, label_keys, panel_groups
from analysis.figures import Sweep, figure

L1_METHODS = ("basis_pursuit", "lasso_lars")
ALPHA_PER_TOL = 1e-2  # lasso_lars is exact L1 when alpha <= this x success_tol:
# its shrinkage (about alpha per active feature) stays far inside the tolerance; at
# alpha = 1e-3 = success_tol / 10 it measurably moves the boundary (n=200, m=100)
BAND = (0.2, 0.8)  # the m/n range where the boundary is compared with the curve
AGREEMENT = 0.03  # |m/n - psi(p50)| above this is a disagreement worth explaining
# The finite-size effect measured with basis pursuit (README, "Theory on the figures"):
# max |m/n - psi(p50)| per n_features, the boundary at larger sparsity than the curve
FINITE_SIZE_GAP = {50: 0.029, 100: 0.018, 200: 0.015}
SMALL_N = 200  # below it, that effect alone can pass AGREEMENT
COARSE_STEP = 1.5  # grid sparsities around p50 further apart than this: coarse
THEORY_STYLE = {"color": "tab:red", "linestyle": "--", "linewidth": 1.8}
BOUNDARY_COLUMNS = [
    "panel", "method", "positive", "n_features", "neurons", "m_over_n", "p50",
    "p50_se", "log_p50_se", "fit", "grid_step", "psi_p50", "psi_p50_se", "gap",
    "theory_p", "cells", "samples",
]  # fmt: skip


# What the theory assumes of the data and of W: key -> (its values where that holds,
# (another key, its values that make it hold whatever the first key's value)): zipf
# or linear firing at firing_ratio 1 is one rate, correlation_strength 0 none. A
# key's default (a cell written before the key existed) is always among the values.
ASSUMED = {
    "data.firing": (("constant",), ("data.firing_ratio", (1.0,))),  # equal rates
    "data.correlation": (("none",), ("data.correlation_strength", (0.0,))),
    "data.hierarchy_depth": ((0,), None),
    "model.geometry": (("gaussian",), None),
}
ASSUMPTIONS = "independent features of equal rate, Gaussian W"


def assumptions_fail(rows: pd.DataFrame) -> list[str]:
    """The key=value of these cells for which the theory's assumptions about the
    data and W fail (``ASSUMED``), in that order; [] where they hold."""
    failing = []
    for key, (holds, alternative) in ASSUMED.items():
        if key not in rows:
            continue
        bad = rows[key].notna() & ~rows[key].isin(holds)
        if alternative is not None and alternative[0] in rows:
            other = pd.to_numeric(rows[alternative[0]], errors="coerce")
            bad &= ~other.isin(alternative[1])
        failing += [f"{key}={style.fmt(v)}" for v in dict.fromkeys(rows.loc[bad, key])]
    return failing


def no_curve_words(failing: list[str], what: str = "no L1 theory curve") -> str:
    """Why a panel of an exact-L1 solver has no theory curve (``what``), in one
    sentence; failing: from ``assumptions_fail``."""
    return (
        f"{what}: its assumptions ({ASSUMPTIONS}) do not hold for {', '.join(failing)}"
    )


def curve_kind(rows: pd.DataFrame) -> bool | None:
    """Whether these cells' theory curve is the nonnegative one; None if no curve
    describes them (another method or model, noise, mixed settings, or data or a
    geometry the theory does not assume: ``assumptions_fail``)."""
    kind = solver_kind(rows)
    return None if kind is None or assumptions_fail(rows) else kind


def solver_kind(rows: pd.DataFrame) -> bool | None:
    """``curve_kind`` as far as the solver, the model and the noise go: which
    curve would describe these cells on the data the theory assumes."""

    def one(key: str):
        values = rows[key].dropna().unique() if key in rows else []
        return values[0] if len(values) == 1 and rows[key].notna().all() else None

    method = one("method")
    if method not in L1_METHODS or one("model") != "random":
        return None
    noise = pd.to_numeric(rows["noise"], errors="coerce") if "noise" in rows else 0
    if one("n_features") is None or not (noise == 0).all():
        return None
    if method == "lasso_lars" and not _vanishing_alpha(rows):
        return None
    positive = one("method.positive")
    return None if positive is None else bool(positive)


def _vanishing_alpha(rows: pd.DataFrame) -> bool:
    """lasso_lars cells whose alpha leaves the L1 solution within success_tol."""
    if "method.alpha" not in rows or "success_tol" not in rows:
        return False
    alpha = pd.to_numeric(rows["method.alpha"], errors="coerce")
    tol = pd.to_numeric(rows["success_tol"], errors="coerce")
    return bool((alpha <= ALPHA_PER_TOL * tol).all())


def panel_curve(rows: pd.DataFrame, *, x: str | None, y: str | None) -> bool | None:
    """``curve_kind`` of a phase-diagram panel, None unless its axes are (sparsity
    or k) x neurons: the plane the curve lives in."""
    return curve_kind(rows) if y == "neurons" and x in ("sparsity", "k") else None


def panel_without_curve(rows: pd.DataFrame, *, x: str | None, y: str | None
                        ) -> list[str]:  # fmt: skip
    """The failed assumptions (``assumptions_fail``) of a phase-diagram panel that
    would have the curve on the data the theory assumes; [] for any other panel."""
    in_plane = y == "neurons" and x in ("sparsity", "k")
    return assumptions_fail(rows) if in_plane and solver_kind(rows) is not None else []


def without_curve(groups, *, x: str | None, y: str | None) -> list[str]:
    """``panel_without_curve`` of every panel (``groups``: their rows), each
    key=value once, in order."""
    found = (panel_without_curve(rows, x=x, y=y) for rows in groups)
    return list(dict.fromkeys(item for failing in found for item in failing))


def omitted(sweep: Sweep) -> list[str]:
    """Why panels of exact-L1 solvers get no theory curve and no boundary
    comparison, in one line for the report page ([] when none lacks them so)."""
    axes = sweep.axes
    groups = [rows for _, rows in panel_groups(sweep.results, axes.panels)]
    failing = without_curve(groups, x=axes.x, y=axes.y)
    if not failing:
        return []
    what = "No L1 theory curve and no 50 % boundary compared with it (boundary.csv)"
    return [no_curve_words(failing, what)]


def draw_theory(ax: Axes, rows: pd.DataFrame, *, x: str, y: str) -> bool:
    """The curve matching the panel's solver, on a (sparsity or k) x neurons panel.
    Returns whether it drew (nothing for a panel the theory does not describe)."""
    nonneg = panel_curve(rows, x=x, y=y)
    if nonneg is None:
        return False
    n = float(rows["n_features"].iloc[0])
    rho, delta = theory.curve(nonneg=nonneg, rho_min=1e-4)
    limits = ax.get_xlim(), ax.get_ylim()
    xs = rho if x == "sparsity" else rho * n
    label = "L1 theory, x >= 0" if nonneg else "L1 theory"
    ax.plot(xs, delta * n, label=label, **THEORY_STYLE)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    return True


def probit_boundary(
    log_p: np.ndarray, successes: np.ndarray, totals: np.ndarray
) -> tuple[float, float, str]:
    """log p50, its standard error and how it was found ("probit" or "interpolated"),
    from successes / totals against log_p (all (n_points,), log_p increasing).
    NaN, NaN, "none" if the points do not straddle 50 %."""
    rate = successes / totals
    if not (rate.max() > 0.5 > rate.min()):
        return np.nan, np.nan, "none"
    fitted = _probit(log_p, successes, totals)
    spacing = np.diff(log_p).max() if len(log_p) > 1 else np.inf
    if fitted is not None and fitted[1] <= spacing:  # a fit the grid supports
        return *fitted, "probit"
    above = np.flatnonzero(rate > 0.5)[-1]  # the last point above 50 %
    if above == len(rate) - 1:  # success rises with p: no boundary to speak of
        return np.nan, np.nan, "none"
    below = above + 1  # at or below 50 %, as every later point
    lo, hi = log_p[above], log_p[below]
    t = (rate[above] - 0.5) / (rate[above] - rate[below])
    return lo + t * (hi - lo), (hi - lo) / 2, "interpolated"


def _probit(log_p, successes, totals) -> tuple[float, float] | None:
    """Maximum-likelihood probit fit P = Phi(a + b log p): (log p50, its standard
    error), or None where the maximum does not exist (separation, rising success)."""
    centre, scale = log_p.mean(), log_p.std() or 1.0
    z = (log_p - centre) / scale  # a well-conditioned fit

    def nll(beta: np.ndarray) -> float:
        eta = beta[0] + beta[1] * z
        failures = totals - successes
        return -(successes * log_ndtr(eta) + failures * log_ndtr(-eta)).sum()

    fit = minimize(nll, np.array([0.0, -1.0]), method="BFGS")
    a, b = fit.x
    if b >= 0:  # (not fit.success: BFGS reports precision loss at the optimum;
        return None  # separation shows as an error wider than the grid, checked above
    eta = a + b * z
    P = np.clip(ndtr(eta), 1e-12, 1 - 1e-12)
    weight = totals * np.exp(-(eta**2)) / (2 * np.pi * P * (1 - P))  # phi^2/(P(1-P))
    design = np.stack([np.ones_like(z), z], axis=1)
    cov = np.linalg.pinv(design.T @ (weight[:, None] * design))  # inverse Fisher info
    grad = np.array([-1 / b, a / b**2])  # of z50 = -a / b
    z50, z50_se = -a / b, float(np.sqrt(grad @ cov @ grad))
    return centre + scale * z50, scale * z50_se


def boundaries(trials: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """The measured 50 % boundary per neurons value of every panel the theory
    describes, next to the curve. trials: one row per trial of the finished cells."""
    keys = label_keys(trials, axes.panels)
    rows = []
    for values, panel in panel_groups(trials, axes.panels):
        nonneg = panel_curve(panel, x=axes.x, y=axes.y)
        if nonneg is None:
            continue
        name = ", ".join(f"{k}={values[k]}" for k in keys) or panel["method"].iloc[0]
        for m, cells in panel.groupby("neurons"):
            rows.append(_boundary_row(cells, name, float(m), nonneg, axes.x))
    return pd.DataFrame(rows, columns=BOUNDARY_COLUMNS)


def _boundary_row(cells: pd.DataFrame, panel: str, m: float, nonneg: bool, x: str):
    """One neurons value: the probit p50 over its cells, psi(p50) and the gap."""
    n = float(cells["n_features"].iloc[0])
    nonzero = cells["n_samples"] * (1 - cells["frac_zero"])
    p = cells[x] / (n if x == "k" else 1.0)
    counts = pd.DataFrame({"p": p, "s": cells["success_rate"] * nonzero, "n": nonzero})
    counts = counts.groupby("p").sum().query("n > 0")
    log_p50, se, how = probit_boundary(
        np.log(counts.index.to_numpy(float)), counts["s"].to_numpy(),
        counts["n"].to_numpy(float),
    )  # fmt: skip
    p50 = float(np.exp(log_p50))
    grid = counts.index.to_numpy(float)
    below, above = grid[grid <= p50], grid[grid > p50]
    step = above.min() / below.max() if below.size and above.size else np.nan
    inside = np.isfinite(p50) and 0 < p50 < 1
    psi = theory.psi(p50, nonneg=nonneg) if inside else np.nan
    slope = _psi_slope(p50, nonneg) if inside else np.nan
    theory_p = theory.critical_sparsity(min(m / n, 1.0), nonneg=nonneg)
    return {
        "panel": panel, "method": cells["method"].iloc[0], "positive": nonneg,
        "n_features": n, "neurons": m, "m_over_n": m / n, "p50": p50,
        "p50_se": p50 * se, "log_p50_se": se, "fit": how, "grid_step": step,
        "psi_p50": psi,
        "psi_p50_se": slope * p50 * se, "gap": m / n - psi, "theory_p": theory_p,
        "cells": len(counts), "samples": int(round(counts["n"].sum())),
    }  # fmt: skip


def _psi_slope(p: float, nonneg: bool, step: float = 1e-6) -> float:
    """d psi / d p at p (central difference)."""
    lo, hi = max(p - step, 0.0), min(p + step, 1.0)
    return (theory.psi(hi, nonneg=nonneg) - theory.psi(lo, nonneg=nonneg)) / (hi - lo)


def in_band(table: pd.DataFrame) -> pd.DataFrame:
    """The rows compared with the theory: 0.2 <= m/n <= 0.8, boundary found."""
    lo, hi = BAND
    keep = table["m_over_n"].between(lo, hi) & table["gap"].notna()
    return table[keep]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per panel: max and mean |m/n - psi(p50)| in the band, and the rows used."""
    compared = in_band(table).assign(abs_gap=lambda t: t["gap"].abs())
    return (
        compared.groupby("panel", sort=False)["abs_gap"]
        .agg(max_abs_gap="max", mean_abs_gap="mean", neurons_values="count")
        .reset_index()
    )


def verdicts(table: pd.DataFrame) -> list[str]:
    """A line per panel: its boundary's distance to the curve, whether that agrees
    (max |m/n - psi(p50)| within AGREEMENT) over the band, and for a disagreement
    what in the sweep can explain it (``disagreement_reasons``)."""
    lo, hi = BAND
    lines = []
    for row in summary(table).itertuples():
        agree = row.max_abs_gap <= AGREEMENT
        line = (
            f"{row.panel}: max |m/n - psi(p50)| = {row.max_abs_gap:.3f}, mean"
            f" {row.mean_abs_gap:.3f} over {row.neurons_values} neurons values with"
            f" {lo} <= m/n <= {hi}: {'agree' if agree else 'DISAGREE'}"
            f" (tolerance {AGREEMENT})"
        )
        if not agree:
            line += disagreement_reasons(table[table["panel"] == row.panel])
        lines.append(line)
    return lines


def disagreement_reasons(rows: pd.DataFrame) -> str:
    """Why a panel's boundary can be off the asymptotic curve with nothing wrong: a
    small n_features, whose boundary lies at larger sparsity (gap < 0), and a
    coarse sparsity grid around the boundary. rows: that panel's boundary rows."""
    compared = in_band(rows)
    worst = compared.loc[compared["gap"].abs().idxmax()]
    reasons = []
    if worst["n_features"] < SMALL_N and worst["gap"] < 0:
        measured = ", ".join(f"{g} at n={n}" for n, g in FINITE_SIZE_GAP.items())
        reasons.append(
            f"n_features={worst['n_features']:g} is small: at finite n the boundary "
            f"lies at larger sparsity than the asymptotic curve, by less as n grows "
            f"(max gap measured {measured})"
        )
    step = compared["grid_step"].max()
    if step >= COARSE_STEP or (compared["fit"] == "interpolated").any():
        reasons.append(
            f"the sparsity grid is coarse around the boundary (neighbouring values "
            f"x{step:.2g} apart; a finer grid pins p50 down)"
        )
    if not reasons:
        return "; neither a small n_features nor a coarse grid explains it"
    return "; expected: " + "; and ".join(reasons)


def boundary_figure(table: pd.DataFrame, *, sweep: str = "") -> Figure:
    """Measured 50 % boundaries (p50 +- SE per neurons value) on the theory curves:
    the Donoho-Tanner picture, one panel per L1 solver panel of the sweep."""
    panels = list(dict.fromkeys(table["panel"]))
    fig = Figure(figsize=(4.6 * max(len(panels), 1) + 0.6, 4.4), layout="constrained")
    axs = fig.subplots(1, max(len(panels), 1), squeeze=False).ravel()
    for ax, name in zip(axs, panels, strict=False):
        rows = table[table["panel"] == name]
        nonneg = bool(rows["positive"].iloc[0])
        for kind, dash in ((False, "-"), (True, ":")):
            rho, delta = theory.curve(nonneg=kind, rho_min=1e-3)
            width = 2.0 if kind == nonneg else 1.0
            label = "theory, x >= 0" if kind else "theory, signed"
            ax.plot(rho, delta, dash, color="tab:red", linewidth=width, label=label)
        found = rows[rows["p50"].notna()]
        spread = found["log_p50_se"].to_numpy()  # +- 1 SE in log p
        p50 = found["p50"].to_numpy()
        xerr = p50 * np.stack([-np.expm1(-spread), np.expm1(spread)])
        ax.errorbar(
            found["p50"], found["m_over_n"], xerr=xerr, fmt="o",
            color="black", markersize=3.5, capsize=2, label="measured p50",
        )  # fmt: skip
        ax.axhspan(*BAND, color="0.92", zorder=0, label="compared band")
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("sparsity p = k / n (fraction of active features)")
        ax.set_ylabel("neurons / features  m / n")
        style.title(ax, name)
        ax.legend(fontsize=7, loc="upper left")
    title = "50 % success boundary (probit fit per neurons value, +- 1 SE) vs L1 theory"
    style.suptitle(fig, title, (), sweep)
    return fig


@figure(
    "boundary.png", when=lambda sweep: len(sweep.boundary) > 0,
    caption="The Donoho-Tanner picture: the measured 50 % success boundary (probit "
    "fit per neurons value, +- 1 standard error) of each exact-L1 panel on the theory "
    "curves (signed and x >= 0); the table is boundary.csv.",
)  # fmt: skip
def boundary_of(sweep: Sweep) -> Figure:
    """boundary.png: ``boundary_figure`` of boundary.csv (L1 solvers on random W)."""
    return boundary_figure(sweep.boundary, sweep=sweep.name)


# --- the curve in Donoho-Tanner coordinates (analysis.donoho_tanner) ---------------


def dt_curve_kind(rows: pd.DataFrame) -> bool | None:
    """The curve (``curve_kind``) every n_features of a panel shares, or None."""
    kinds = {curve_kind(group) for _, group in rows.groupby("n_features")}
    return kinds.pop() if len(kinds) == 1 else None


def dt_without_curve(rows: pd.DataFrame) -> list[str]:
    """The failed assumptions of a panel in Donoho-Tanner coordinates that would
    have the curve on the data the theory assumes; [] for any other panel."""
    kinds = {solver_kind(group) for _, group in rows.groupby("n_features")}
    return assumptions_fail(rows) if len(kinds) == 1 and None not in kinds else []


def draw_theory_dt(ax: Axes, rows: pd.DataFrame) -> bool:
    """The curve on a panel in Donoho-Tanner coordinates (m/n, k/m), where it
    describes every n_features of the panel; returns whether it drew."""
    nonneg = dt_curve_kind(rows)
    if nonneg is None:
        return False
    rho, delta = theory.curve(nonneg=nonneg, rho_min=1e-4)  # rho = k/n
    label = "L1 theory, x >= 0" if nonneg else "L1 theory"
    ax.plot(delta, rho / delta, label=label, **THEORY_STYLE)
    return True
