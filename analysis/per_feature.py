"""Per-feature views: which features a method or a model gives up.

From ``Loaded.features`` (features.parquet of every finished trial):

- ``features.png``: each feature's recovery error (``recovery_mse``: the mean squared
  error of x_i over the test samples) against its importance I_i, the norm of its
  column ||W_i|| and its superposition, a column per quantity that differs between
  the features of a trial (a random W has unit columns and equal importances: only
  its superposition varies) and a row per method (panel combination). The points
  are every trial and feature of the cells at the middle swept neurons value (y),
  coloured by sparsity (x).
- ``features_by_rate.png``, where features fire at different rates within a cell
  (``data.firing`` zipf or linear, an exclusive hierarchy): each feature's recovery
  against its firing rate (``firing_rate``, the exact marginal probability that it
  fires): a faint point per feature (its mean over trials) and a line per method
  (panel combination) through the means of the features in bins of log rate.
  Methods that do not learn a dictionary show the feature's error relative to its
  mean square, mse_i / E[x_i^2] (``relative_error``), so that a rare feature, whose
  mean square is small, compares with a frequent one: 1 is what x_hat_i = 0 scores;
  learned dictionaries show the cosine of the atom matched to the feature
  (``matched_cos``). The cells at the middle neurons value (y), a column per
  sparsity (x) value (at most ``MAX_RATE_COLUMNS``).
"""

import logging

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import style
from analysis.aggregate import (
    CELL_DIR,
    DATA_PREFIX,
    PlotAxes,
    label_keys,
    panel_groups,
)  # fmt: skip
from analysis.figures import Sweep, figure
from analysis.plots import (
    DASHES,
    MARKERS,
    NMSE_FLOOR,
    level_color,
    level_key,
    level_scale,
    set_axis,
    use_log,
)  # fmt: skip
from sweep import data
from sweep.thresholds import RECOVERED

log = logging.getLogger(__name__)

FILE = "features.png"
ERROR = "recovery_mse"
QUANTITIES = {  # per-feature columns of features.parquet -> axis label
    "importance": "importance $I_i$",
    "norm": r"$\|W_i\|$",
    "superposition": r"superposition $\sum_{j\neq i}(\hat{W}_i \cdot W_j)^2$",
}
WORDS = {"importance": "importance", "norm": "norm ||W_i||",
         "superposition": "superposition"}  # fmt: skip
MAX_GROUPS = 12  # panel combinations shown (the first)


def varying_quantities(features: pd.DataFrame) -> list[str]:
    """The QUANTITIES that differ between the features of some trial (beyond
    rounding): the others would be one vertical line of points."""
    found = []
    for key in (k for k in QUANTITIES if k in features):
        values = pd.to_numeric(features[key], errors="coerce")
        groups = values.groupby([features[CELL_DIR], features["trial"]])
        spread = groups.max() - groups.min()
        if (spread > 1e-9 * max(1.0, values.abs().max())).any():
            found.append(key)
    return found


def shown_rows(features: pd.DataFrame, axes: PlotAxes) -> tuple[pd.DataFrame, str]:
    """The rows drawn: those at the middle y value (more neurons between two), and
    that value in words ("" without a y axis)."""
    if axes.y is None or features.empty:
        return features, ""
    values = np.sort(features[axes.y].dropna().unique())
    middle = values[len(values) // 2]
    return features[features[axes.y] == middle], f"{axes.y}={style.fmt(middle)}"


def draw_errors(ax: Axes, rows: pd.DataFrame, *, key: str, x: str | None, levels):
    """recovery_mse (clipped at NMSE_FLOOR, log scale) against ``key``, a colour per
    value of ``x`` (levels: (values, norm) of the figure), every trial and feature."""
    groups = rows.groupby(x, sort=True) if x else [(None, rows)]
    for level, at in groups:
        color = style.CMAP(0.35) if x is None else level_color(level, *levels)
        error = np.clip(pd.to_numeric(at[ERROR]).to_numpy(float), NMSE_FLOOR, None)
        ax.scatter(at[key], error, s=9, color=color, alpha=0.6, linewidths=0)
    ax.set_yscale("log")
    if key == "importance":  # importance_decay^i: geometric, ticks at the values
        values = pd.to_numeric(rows[key]).to_numpy(float)
        set_axis(ax, "x", key, values, log=use_log(key, values))
    ax.set_xlabel(QUANTITIES[key], fontsize=8)


def features_figure(features: pd.DataFrame, axes: PlotAxes, *, sweep: str = ""):
    """A panel per panel combination (the first MAX_GROUPS) and varying quantity,
    axes shared. features: ``Loaded.features`` rows."""
    keys, found = varying_quantities(features), label_keys(features, axes.panels)
    rows, where = shown_rows(features, axes)
    groups = panel_groups(rows, axes.panels)[:MAX_GROUPS]
    fig, grid = _grid(len(groups), len(keys))
    levels = level_scale(axes.x, rows[axes.x]) if axes.x else (None, None)
    for (values, panel), row_axes in zip(groups, grid, strict=True):
        for ax, key in zip(row_axes, keys, strict=True):
            draw_errors(ax, panel, key=key, x=axes.x, levels=levels)
            style.title(ax, style.panel_label(values, found))
            ax.set_ylabel("recovery error of x_i\n(mean squared)", fontsize=8)
    style.outer_labels(list(grid.ravel()))
    if axes.x:
        level_key(fig, list(grid.ravel()), axes.x, *levels)
    what = f"recovery error per feature{f' at {where}' if where else ''}"
    style.suptitle(fig, what, (), sweep, "every trial and feature a point")
    return fig


def _grid(n_groups: int, n_keys: int) -> tuple[Figure, np.ndarray]:
    """The figure and its axes (n_groups, n_keys): for one quantity up to 4 panels a
    row, all axes shared; else a row per group, x shared by quantity."""
    if n_keys == 1:
        fig, axs = style.panel_grid(n_groups, width=3.6, height=3.0)
        return fig, np.array(axs).reshape(n_groups, 1)
    fig = Figure(figsize=(3.6 * n_keys + 2.2, 3.0 * n_groups + 1.4),
                 layout="constrained")  # fmt: skip
    grid = fig.subplots(n_groups, n_keys, squeeze=False, sharex="col", sharey=True)
    return fig, grid


def _applies(sweep: Sweep) -> bool:
    """Whether the sweep has per-feature rows with a quantity that varies."""
    features = sweep.features
    return ERROR in features and bool(varying_quantities(features))


def features_caption(sweep: Sweep) -> str:
    """The caption of features.png: the quantities and cells shown."""
    features, axes = sweep.features, sweep.axes
    *others, last = [WORDS[k] for k in varying_quantities(features)]
    against = f"{', '.join(others)} and {last}" if others else last
    keys = label_keys(features, axes.panels)
    n_groups = len(panel_groups(shown_rows(features, axes)[0], axes.panels))
    first = f" (the first {MAX_GROUPS})" if n_groups > MAX_GROUPS else ""
    rows = f", a panel per {', '.join(keys)}{first}" if keys else ""
    colour = f", a colour per {axes.x}" if axes.x else ""
    where = shown_rows(features, axes)[1]
    at = f" in the cells at {where}" if where else ""
    return (
        f"Each feature's recovery error (mean squared error of x_i over the test "
        f"samples, every trial) against its {against}{at}{rows}{colour}: which "
        f"features a method or a model gives up."
    )


@figure(FILE, caption=features_caption, when=_applies)
def features_of(sweep: Sweep) -> Figure:
    """features.png: ``features_figure`` of the sweep's per-feature rows."""
    return features_figure(sweep.features, sweep.axes, sweep=sweep.name)


# --- features_by_rate.png ------------------------------------------------------------

RATE_FILE = "features_by_rate.png"
RATE = "firing_rate"  # features.parquet: the exact marginal probability of firing
COSINE = "matched_cos"  # features.parquet, learned methods: the matched atom's cosine
RELATIVE = "relative_error"  # added here: recovery_mse / E[x_i^2]
MAX_RATE_COLUMNS = 4  # x (sparsity) values shown, evenly spaced over the swept ones
MAX_BINS = 8  # of log firing rate: each line goes through the mean of each bin
RATE_LABEL = "firing rate of feature i (probability it fires)"
VALUES = {  # what a row of panels shows: column -> y label
    RELATIVE: "error of $x_i$ / its mean square\n"
    r"$\mathrm{mse}_i \,/\, E[x_i^2]$ (lower is better)",
    COSINE: "cosine of the atom matched to\nfeature i (higher is better)",
}


def rates_differ(features: pd.DataFrame) -> bool:
    """Whether the features of some trial fire at different rates (beyond
    rounding): data.firing zipf or linear, an exclusive hierarchy."""
    if RATE not in features or features.empty:
        return False
    rate = pd.to_numeric(features[RATE], errors="coerce")
    spread = rate.groupby([features[CELL_DIR], features["trial"]]).agg(np.ptp)
    return bool((spread > 1e-9 * rate.abs().max()).any())


def _applies_by_rate(sweep: Sweep) -> bool:
    """Whether features_by_rate.png has something to show: rates that differ, and
    a recovery error or matched cosine per feature."""
    features = sweep.features
    shown = ERROR in features or COSINE in features
    return shown and rates_differ(features)


def active_mean_square(cell: pd.Series) -> np.ndarray:
    """Each feature's mean square when it fires, E[v_i^2] (n_features,), for one
    cell's config keys (a row of ``Loaded.features`` or of results), from the
    distribution ``sweep.data.features`` draws its values from: U[0, 1] x s_i gives
    s_i^2 / 3, a constant c_i gives c_i^2, |N(mu_i, sigma_i^2)| gives mu_i^2 +
    sigma_i^2. Correlations and hierarchies change when a feature fires, never its
    value: they are left out."""
    keys = {key: _plain(cell.get(DATA_PREFIX + key), default)
            for key, default in data.DEFAULTS.items()}  # fmt: skip
    keys["correlation"] = "none"
    k = None if pd.isna(cell.get("k")) else int(cell["k"])
    sparsity = None if k is not None else float(cell["sparsity"])
    dist = data.features(int(cell["n_features"]), sparsity, k, keys,
                         np.random.default_rng(0))  # fmt: skip
    ones = np.ones(dist.n_features)
    if dist.magnitude == "constant":
        return dist.mean**2 * ones
    if dist.magnitude == "folded_normal":
        return (dist.mean**2 + dist.std**2) * ones
    scale = ones if dist.scale is None else dist.scale
    return scale**2 / 3


def _plain(value, default):
    """A value of a tidy column as the type of ``default``: int, float, bool, str;
    None for a missing value, or for an absent key its default."""
    if value is None:
        return default
    if pd.isna(value):
        return None
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int) or default is None and float(value).is_integer():
        return int(value)
    return float(value) if isinstance(default, float) else value


def relative_errors(features: pd.DataFrame) -> pd.Series:
    """recovery_mse / E[x_i^2] of every row, E[x_i^2] = firing_rate x the feature's
    mean square when it fires (``active_mean_square``); NaN, with a warning, in a
    cell whose data keys give no distribution."""
    out = pd.Series(np.nan, index=features.index)
    for name, cell in features.groupby(CELL_DIR, sort=False):
        try:
            square = active_mean_square(cell.iloc[0])
        except Exception as err:  # costs this cell's points, not the figure
            log.warning("no mean square of the features of %s: %s", name, err)
            continue
        index = cell["feature"].to_numpy(int)
        expected = pd.to_numeric(cell[RATE]).to_numpy(float) * square[index]
        mse = pd.to_numeric(cell[ERROR]).to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[cell.index] = np.where(expected > 0, mse / expected, np.nan)
    return out


def rate_rows(features: pd.DataFrame, axes: PlotAxes) -> tuple[pd.DataFrame, str]:
    """The rows features_by_rate.png draws (those at the middle y value, rates
    above 0), with ``relative_error`` where no dictionary is learned; and the y
    value in words."""
    rows, where = shown_rows(features, axes)
    rate = rows.get(RATE, pd.Series(np.nan, index=rows.index))
    rows = rows[pd.to_numeric(rate, errors="coerce") > 0]
    learned = rows[COSINE].notna() if COSINE in rows else pd.Series(False, rows.index)
    rows = rows.assign(**{RELATIVE: np.nan})
    if ERROR in rows and (~learned).any():
        rows.loc[~learned, RELATIVE] = relative_errors(rows[~learned])
    return rows, where


def rate_columns(rows: pd.DataFrame, x: str | None) -> list:
    """The x values that get a column of panels: at most MAX_RATE_COLUMNS, evenly
    spaced over the swept values, the first and last among them; [None]: one."""
    values = np.sort(rows[x].dropna().unique()) if x else []
    if not len(values):
        return [None]
    keep = np.unique(np.linspace(0, len(values) - 1, MAX_RATE_COLUMNS).round())
    return [values[int(i)] for i in keep] or [None]


def rate_bins(rates: np.ndarray) -> np.ndarray:
    """Edges of at most MAX_BINS bins, evenly spaced in log rate, that hold every
    rate (> 0); one bin when the rates are equal."""
    lo, hi = float(np.min(rates)), float(np.max(rates))
    n = min(MAX_BINS, np.unique(rates).size)
    if n < 2 or hi <= lo * (1 + 1e-9):
        return np.array([lo / 1.01, hi * 1.01])
    edges = np.geomspace(lo, hi, n + 1)
    edges[-1] *= 1.0 + 1e-9  # the highest rate falls inside the last bin
    return edges


def per_feature(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    """Each feature's firing rate and ``value``, their means over the trials of
    ``rows`` (one cell's rows): (n_features, [firing_rate, value]), by rate."""
    found = rows[rows[value].notna()]
    return found.groupby("feature")[[RATE, value]].mean().sort_values(RATE)


def binned(pooled: pd.DataFrame, value: str, edges: np.ndarray) -> pd.DataFrame:
    """The mean ``value`` of the features (``per_feature``) in each bin of rates
    that holds one, at the geometric mean of their rates: (n_bins, [firing_rate,
    value, features])."""
    rate = pooled[RATE].to_numpy(float)
    which = np.digitize(rate, edges)
    groups = pd.DataFrame({"log": np.log(rate), value: pooled[value].to_numpy(float),
                           "bin": which}).groupby("bin")  # fmt: skip
    out = groups.agg(log=("log", "mean"), v=(value, "mean"), n=(value, "size"))
    found = {RATE: np.exp(out["log"]), value: out["v"], "features": out["n"]}
    return pd.DataFrame(found).reset_index(drop=True)


def draw_by_rate(
    ax: Axes, rows: pd.DataFrame, *, value: str, lines: dict, edges: np.ndarray
) -> None:
    """``value`` against the firing rate, a line per panel combination (``lines``:
    label -> (its keys' values, look)): each feature's mean over trials a faint
    point, the mean of the features in each bin of rates (``edges``) the line."""
    for label, (keys, look) in lines.items():
        at = rows
        for key, wanted in keys.items():
            at = at[(at[key] == wanted) | (at[key].isna() & pd.isna(wanted))]
        pooled = per_feature(at, value)
        if pooled.empty:
            continue
        line = binned(pooled, value, edges)
        points, means = pooled[value].to_numpy(float), line[value].to_numpy(float)
        if value == RELATIVE:
            points, means = (np.clip(v, NMSE_FLOOR, None) for v in (points, means))
        ax.scatter(pooled[RATE], points, s=5, color=look["color"], alpha=0.25,
                   linewidths=0)  # fmt: skip
        ax.plot(line[RATE], means, label=label, ms=5, lw=1.4, **look)
    ax.set_xscale("log")
    if value == RELATIVE:
        ax.set_yscale("log")
        ax.axhline(1.0, color="0.5", ls=":", lw=1.0)  # what x_hat_i = 0 scores
    else:
        ax.set_ylim(-0.03, 1.03)
        ax.axhline(RECOVERED, color="0.5", ls=":", lw=1.0)
    ax.set_xlabel(RATE_LABEL, fontsize=8)
    ax.set_ylabel(VALUES[value], fontsize=8)


def by_rate_figure(features: pd.DataFrame, axes: PlotAxes, *, sweep: str = ""):
    """A row of panels per kind of method shown (dictionary given: relative error;
    learned: matched cosine), a column per x value (``rate_columns``); a line per
    panel combination, the same look and bins of rates in every panel."""
    rows, where = rate_rows(features, axes)
    values = [v for v in (RELATIVE, COSINE) if v in rows and rows[v].notna().any()]
    columns = rate_columns(rows, axes.x)
    keys = label_keys(rows, axes.panels)
    combos = [found for found, _ in panel_groups(rows, axes.panels)]
    colors = style.line_colors(len(combos))
    lines = {  # labelled by their values alone: the legend's title names the keys
        ", ".join(style.fmt(found[k]) for k in keys) or "all cells": (found, {
            "color": colors[i], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": DASHES[i % len(DASHES)],
        })
        for i, found in enumerate(combos)
    }  # fmt: skip
    edges = rate_bins(pd.to_numeric(rows[RATE]).to_numpy(float))
    n_rows = max(len(values), 1)
    fig = Figure(figsize=(max(3.8 * len(columns) + 1.4, 6.5), 3.1 * n_rows + 1.6),
                 layout="constrained")  # fmt: skip
    grid = fig.subplots(n_rows, len(columns), squeeze=False, sharex=True,
                        sharey="row")  # fmt: skip
    for value, row_axes in zip(values, grid, strict=False):
        for ax, level in zip(row_axes, columns, strict=True):
            at = rows if level is None else rows[rows[axes.x] == level]
            draw_by_rate(ax, at, value=value, lines=lines, edges=edges)
            if level is not None:
                style.title(ax, f"{axes.x}={style.fmt(level)}")
    if not values:
        style.note(grid[0, 0], "no recovery error or matched cosine per feature")
    style.outer_labels(list(grid.ravel()))
    drawn = {}  # every line once, in the order of ``lines``
    for ax in grid.ravel():
        drawn |= dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if len(drawn) > 1 or keys:
        labels = [label for label in lines if label in drawn]
        fig.legend([drawn[label] for label in labels], labels,
                   loc="outside lower center", ncols=min(3, len(labels)), fontsize=7,
                   title=", ".join(keys) or None, title_fontsize=7)  # fmt: skip
    what = "recovery per feature against its firing rate"
    what += f" at {where}" if where else ""
    what += f", a line per {', '.join(keys)}" if keys else ""
    dotted = {RELATIVE: "error 1 = recovering 0",
              COSINE: f"cosine {RECOVERED} = recovered"}  # fmt: skip
    note = (
        "points: a feature each (its mean over trials); lines: the mean of the "
        "features in each bin of rates; dotted: " + "; ".join(dotted[v] for v in values)
    )
    style.suptitle(fig, what, (), sweep, note)
    return fig


def by_rate_caption(sweep: Sweep) -> str:
    """The caption of features_by_rate.png: what each row of panels shows, which
    is better, and which cells."""
    features, axes = sweep.features, sweep.axes
    rows, where = rate_rows(features, axes)
    keys = label_keys(rows, axes.panels)
    known = rows[RELATIVE].notna().any()
    learned = COSINE in rows and rows[COSINE].notna().any()
    known, learned = (known, learned) if known or learned else (True, True)
    shown = []
    if known:
        shown.append(
            "for methods given W (or the model's own decoder), its recovery error"
            " relative to its mean square, mse_i / E[x_i^2] with E[x_i^2] = its firing"
            " rate x the mean square of its value when it fires, so that rare features"
            " compare with frequent ones (log scale; lower is better, 1 is what"
            " recovering x_i = 0 scores)"
        )
    if learned:
        shown.append(
            "for learned dictionaries, the cosine of the atom matched to it (higher is"
            f" better; above {RECOVERED}: recovered)"
        )
    lines = f"a line per {', '.join(keys)}" if keys else "one line"
    columns = [c for c in rate_columns(rows, axes.x) if c is not None]
    per = f", a column per {axes.x} ({', '.join(map(style.fmt, columns))})"
    return (
        f"Recovery of each feature against its firing rate (log scale: the exact"
        f" probability that it fires): {'; '.join(shown)}. Each point is a feature,"
        f" its mean over trials, {lines} through the means of the features in at"
        f" most {MAX_BINS} bins of log rate"
        f"{f', in the cells at {where}' if where else ''}"
        f"{per if columns else ''}."
    )


@figure(RATE_FILE, caption=by_rate_caption, when=_applies_by_rate)
def by_rate_of(sweep: Sweep) -> Figure:
    """features_by_rate.png: ``by_rate_figure`` of the sweep's per-feature rows."""
    return by_rate_figure(sweep.features, sweep.axes, sweep=sweep.name)
