"""Per-feature views (``features.png``): which features a method or a model gives up.

From ``Loaded.features`` (features.parquet of every finished trial): each feature's
recovery error (``recovery_mse``: the mean squared error of x_i over the test
samples) against its importance I_i, the norm of its column ||W_i|| and its
superposition, a column per quantity that differs between the features of a trial
(a random W has unit columns and equal importances: only its superposition varies)
and a row per method (panel combination). The points are every trial and feature
of the cells at the middle swept neurons value (y), coloured by sparsity (x).
"""

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import style
from analysis.aggregate import CELL_DIR, PlotAxes, label_keys, panel_groups
from analysis.figures import Sweep, figure
from analysis.plots import (
    NMSE_FLOOR,
    level_color,
    level_key,
    level_scale,
    set_axis,
    use_log,
)  # fmt: skip

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
        spread = values.groupby([features[CELL_DIR], features["trial"]]).agg(np.ptp)
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
