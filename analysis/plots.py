"""Figures of a sweep: phase diagrams (also in Donoho-Tanner coordinates), capacity
plots, activation heatmaps, with the chance level of mcc where it is drawn.

``draw_*`` functions draw on an ``ax`` they are given; ``*_figure`` functions build a
``matplotlib.figure.Figure`` (no pyplot: no global state, no GUI backend, nothing to
close) that the caller saves; neither reads files. The ``*_of`` functions at the end
are the registered figures (``analysis.figures``): from a ``figures.Sweep`` they
pick the cells, read what files they need (heatmaps.png: samples.parquet) and call
a ``*_figure`` builder.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, NullLocator

from analysis import style
from analysis.aggregate import (
    CAPACITY,
    CELL_DIR,
    PlotAxes,
    label_keys,
    panel_groups,
    representative_cells,
    truth_cells,
)
from analysis.chance import CHANCE
from analysis.figures import Sweep, figure
from analysis.transition import (
    draw_theory,
    draw_theory_dt,
    dt_curve_kind,
    dt_without_curve,
    no_curve_words,
    panel_curve,
    without_curve,
)  # fmt: skip
from sweep import folders
from sweep.schema import SAMPLES_FILE
from sweep.thresholds import ACTIVE, RECOVERED

log = logging.getLogger(__name__)

NMSE_FLOOR = 1e-12  # exact recoveries give ~1e-30: clip, or they swamp the scale
RATE_METRICS = (
    "success_rate", "support_f1", "support_precision", "support_recall", "mcc", "mmcs",
)  # fmt: skip
LOG_METRICS = ("nmse", "mse", "weighted_mse", CAPACITY)
SUCCESS = 0.5  # the contour and the capacity number: 50 % success
MAX_ANNOTATED = 48  # write the value in each cell of grids up to this size
MAX_LEGEND = 8  # more lines than this: a colorbar instead of a legend
CHANCE_WORDS = "chance level (random atoms of the same sizes)"
MARKERS = "osD^v<>p"
DASHES = ("-", "--", "-.", ":")

AXIS_LABELS = {
    "sparsity": "sparsity p (fraction of active features)",
    "k": "k (active features per example)",
    "neurons": "neurons m",
    "n_features": "features n",
    "noise": "noise (std relative to RMS of H)",
    "n_samples": "test samples per trial",
    "n_train": "training samples per trial",
    "success_tol": "success tolerance",
}
METRIC_LABELS = {  # the metrics run() draws; any other is labelled by its name
    "success_rate": r"success rate: fraction of x$\neq$0 with "
    r"$\|\hat{x}-x\| \leq \mathrm{tol}\,\|x\|$",
    "nmse": r"NMSE $\|X-\hat{X}\|_F^2 \,/\, \|X\|_F^2$",
    "support_f1": rf"support F1 (active: $|x| > {ACTIVE:g}$ in $X$ and $\hat{{X}}$)",
    "mcc": "mcc: mean matched cosine of learned atoms\nand true directions",
    "n_recovered": "features recovered by a learned atom\n"
    f"(matched cosine > {RECOVERED})",
    CAPACITY: "largest sparsity p with >= 50 % success\n(fraction of active "
    "features; k / n for exactly k)",
}


@dataclass
class HeatmapRow:
    """One data cell: true X and each method's X_hat, all (n_samples, n_features)."""

    title: str
    X: np.ndarray
    recovered: list[tuple[str, np.ndarray]] = field(default_factory=list)


# --- labels and scales ---------------------------------------------------------------


def _floats(values: pd.Series) -> pd.Series:
    """``values`` as floats; anything that is not a number becomes NaN."""
    return pd.to_numeric(values, errors="coerce").astype(float)


def use_log(key: str | None, values: np.ndarray) -> bool:
    """Log axis for sparsity, for positive values spanning a decade, and for
    geometric grids (5, 10, 20, 40), whose steps are more even on a log scale."""
    values = np.unique(values[np.isfinite(values)])
    if values.size == 0 or (values <= 0).any():
        return False
    if key == "sparsity" or values.max() / values.min() >= 10:
        return True
    # unevenness: coefficient of variation of the steps (0: evenly spaced)
    lin, log = np.diff(values), np.diff(np.log(values))
    return values.size > 2 and log.std() / log.mean() < lin.std() / lin.mean()


def metric_norm(values: pd.Series, metric: str) -> Normalize:
    """The colour scale of a metric, shared by all panels of a figure."""
    v = _floats(values).to_numpy(float)
    v = v[np.isfinite(v)]
    if metric in RATE_METRICS:
        return Normalize(0, 1)
    if metric in LOG_METRICS:
        v = v[v > 0]
        lo = max(NMSE_FLOOR, v.min()) if v.size else NMSE_FLOOR
        hi = v.max() if v.size else 1.0
        hi = max(hi, 1.0) if metric == "nmse" else hi  # nmse 1 = recovering nothing
        return LogNorm(min(lo, hi / 10), hi)
    lo, hi = (v.min(), v.max()) if v.size else (0.0, 1.0)
    pad = 0.0 if hi > lo else max(abs(hi) * 0.1, 0.5)
    return Normalize(lo - pad, hi + pad)


def cell_edges(values: np.ndarray, *, log: bool) -> np.ndarray:
    """Edges (n + 1,) around sorted centres (n,): midpoints, geometric on log axes."""
    v = np.log(values) if log else values.astype(float)
    if v.size == 1:
        half = 0.5 if log else max(abs(v[0]) * 0.5, 0.5)
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mids = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[2 * v[0] - mids[0]], mids, [2 * v[-1] - mids[-1]]])
    return np.exp(edges) if log else edges


def set_axis(ax: Axes, which: str, key: str, values: np.ndarray, *, log: bool) -> None:
    """Scale, label and ticks at the swept values of one axis ("x" or "y")."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log" if log else "linear")
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(AXIS_LABELS.get(key, key))
    values = np.unique(values[np.isfinite(values)])
    if values.size > 0:
        shown = values[:: int(np.ceil(values.size / 7))]  # at most 7 labels: no overlap
        axis.set_ticks(shown, labels=[style.fmt(v) for v in shown])
        axis.set_minor_locator(NullLocator())


# --- phase diagrams ------------------------------------------------------------------


def pivot_grid(data: pd.DataFrame, *, x: str, y: str, value: str):
    """Mean ``value`` per cell: x (nx,), y (ny,) centres, values (ny, nx) NaN holes."""
    frame = data[[x, y, value]].apply(_floats).set_axis(["x", "y", "v"], axis=1)
    frame = frame.dropna(subset=["x", "y"])
    if frame.empty:
        return np.empty(0), np.empty(0), np.empty((0, 0))
    table = frame.groupby(["y", "x"])["v"].mean().unstack("x")
    return table.columns.to_numpy(float), table.index.to_numpy(float), table.to_numpy()


def draw_phase(
    ax: Axes, data: pd.DataFrame, *, x: str, y: str, metric: str, norm: Normalize,
    ticks: tuple[np.ndarray, np.ndarray] | None = None, cmap=style.CMAP,
) -> bool:  # fmt: skip
    """Heat map of the mean ``metric`` over (x, y) cells of one panel, with the 50 %
    success contour, the L1 theory curve where it applies and, for mcc, the cells at
    chance hatched. data: that panel's rows of results; ticks: the x and y values of
    the whole figure (default: the panel's); cmap: ``style.DIVERGING`` for signed
    values. Returns whether it drew."""
    xs, ys, Z = pivot_grid(data, x=x, y=y, value=metric)
    if Z.size == 0:
        style.note(ax, f"no cells with {x} and {y}")
        return False
    if isinstance(norm, LogNorm):
        Z = np.clip(Z, norm.vmin, None)
    tx, ty = ticks or (xs, ys)
    x_log, y_log = use_log(x, tx), use_log(y, ty)
    ax.set_facecolor("0.85")  # grey: a failed or missing cell
    edges = cell_edges(xs, log=x_log), cell_edges(ys, log=y_log)
    ax.pcolormesh(*edges, np.ma.masked_invalid(Z), cmap=cmap, norm=norm)
    set_axis(ax, "x", x, tx, log=x_log)
    set_axis(ax, "y", y, ty, log=y_log)
    if Z.size <= MAX_ANNOTATED:
        _annotate(ax, xs, ys, Z, norm=norm, cmap=cmap)
    if chance_column(metric) in data:
        hatch_chance(ax, data, x=x, y=y, edges=edges)
    if "success_rate" in data:
        draw_success_contour(ax, data, x=x, y=y)
    draw_theory(ax, data, x=x, y=y)
    return True


def chance_column(metric: str) -> str | None:
    """The column of a metric's chance level (mcc: ``mcc_chance``), or None."""
    return CHANCE if metric == "mcc" else None


def hatch_chance(ax: Axes, data: pd.DataFrame, *, x: str, y: str, edges) -> int:
    """Hatch the cells whose mean mcc is at or below its chance level (random atoms
    of the cell's sizes); edges: the heat map's (x, y) cell edges. Returns how many."""
    margin = data.assign(margin=_floats(data["mcc"]) - _floats(data[CHANCE]))
    _, _, M = pivot_grid(margin, x=x, y=y, value="margin")  # the heat map's grid
    at_chance = np.argwhere(M <= 0)  # NaN: no verdict, no hatch
    for i, j in at_chance:
        (x0, x1), (y0, y1) = edges[0][j : j + 2], edges[1][i : i + 2]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                               hatch="///", edgecolor="0.95", linewidth=0))  # fmt: skip
    return len(at_chance)


def draw_chance(ax: Axes, rows: pd.DataFrame, *, x: str, metric: str, **look) -> bool:
    """The metric's mean chance level against x, dotted, if it has one."""
    column = chance_column(metric)
    if column not in rows or rows[column].isna().all():
        return False
    level = _floats(rows[column]).groupby(_floats(rows[x])).mean().sort_index()
    ax.plot(level.index, level.to_numpy(), linestyle=":", linewidth=1.6, **look)
    return True


def draw_success_contour(
    ax: Axes, data: pd.DataFrame, *, x: str, y: str, color: str = "white", **look
) -> bool:
    """The 50 % success_rate line on the (x, y) grid, if the grid crosses it."""
    found = success_grid(data, x=x, y=y)
    if found is None:
        return False
    lines = ax.contour(*found, levels=[SUCCESS], colors=color, linewidths=2.0, **look)
    lines.set_path_effects([patheffects.withStroke(linewidth=3.5, foreground="black")])
    return True


def success_grid(data: pd.DataFrame, *, x: str, y: str):
    """(xs, ys, success (ny, nx) masked where missing) if the grid crosses 50 %."""
    xs, ys, S = pivot_grid(data, x=x, y=y, value="success_rate")
    finite = S[np.isfinite(S)]
    crosses = finite.size > 0 and finite.min() < SUCCESS < finite.max()
    return (xs, ys, np.ma.masked_invalid(S)) if min(S.shape) >= 2 and crosses else None


def _annotate(ax: Axes, xs, ys, Z: np.ndarray, *, norm: Normalize, cmap) -> None:
    """The value of each cell, dark text on light colours."""
    spec = ".2g" if isinstance(norm, LogNorm) else ".2f"
    text_style = {"ha": "center", "va": "center", "fontsize": 7}
    for (i, j), z in np.ndenumerate(Z):
        if np.isfinite(z):
            luminance = np.dot(cmap(norm(z))[:3], (0.299, 0.587, 0.114))
            color = "black" if luminance > 0.5 else "white"
            ax.text(xs[j], ys[i], format(z, spec), color=color, **text_style)


def phase_marks(results: pd.DataFrame, axes: PlotAxes, metric: str) -> list[str]:
    """What the heat maps of ``metric`` show besides their colours, in words: the
    50 % contour, the theory curve (or why panels of exact-L1 solvers lack it),
    cells at chance, grey cells (only those drawn)."""
    x, y, marks = axes.x, axes.y, []
    groups = [rows for _, rows in panel_groups(results, axes.panels)]
    if "success_rate" in results and any(success_grid(r, x=x, y=y) for r in groups):
        marks.append("white line: 50 % success contour")
    if any(panel_curve(rows, x=x, y=y) is not None for rows in groups):
        marks.append("red dashed: the L1 phase transition of exact L1 solvers on "
                     "Gaussian W (Donoho-Tanner, n -> infinity)")  # fmt: skip
    if failing := without_curve(groups, x=x, y=y):
        marks.append(no_curve_words(failing))
    column = chance_column(metric)
    if column in results and (_floats(results[metric]) <= results[column]).any():
        marks.append("hatched: mcc at or below chance (random atoms of the same sizes)")
    holes = [pivot_grid(rows, x=x, y=y, value=metric)[2] for rows in groups]
    if any(np.isnan(Z).any() for Z in holes):
        marks.append("grey: a failed or missing cell")
    return marks


def phase_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = "",
    dt: bool | None = None,
) -> Figure:  # fmt: skip
    """Phase diagram of ``metric``: a heat map over (x, y) per panel; with ``dt`` in
    Donoho-Tanner coordinates (``dt_figure``), by default where n_features varies
    (``uses_dt``); a line plot if only x varies, a bar chart if nothing does.
    results: one row per cell."""
    if uses_dt(axes) if dt is None else dt:
        return dt_figure(results, axes, metric, sweep=sweep)
    if axes.x is None or axes.y is None:
        return line_figure(results, axes, metric, sweep=sweep)
    norm = metric_norm(results[metric], metric)
    ticks = tuple(_floats(results[k]).to_numpy() for k in (axes.x, axes.y))
    draw = partial(draw_phase, x=axes.x, y=axes.y, metric=metric, norm=norm,
                   ticks=ticks)  # fmt: skip
    fig, axs, keys = panel_figure(results, axes, draw)
    label = METRIC_LABELS.get(metric, metric)
    fig.colorbar(ScalarMappable(norm, style.CMAP), ax=axs, label=label)
    note = "; ".join(phase_marks(results, axes, metric))
    style.suptitle(fig, f"{metric} over {axes.x} x {axes.y}", keys, sweep, note)
    return fig


def panel_figure(results: pd.DataFrame, axes: PlotAxes, draw, **grid):
    """A panel per combination of panel keys, titled by it; ``draw(ax, rows)`` fills
    each. Returns (fig, list of axes, the keys named in titles)."""
    keys = label_keys(results, axes.panels)
    groups = panel_groups(results, axes.panels)
    fig, axs = style.panel_grid(len(groups), **grid)
    for ax, (values, rows) in zip(axs, groups, strict=True):
        draw(ax, rows)
        style.title(ax, style.panel_label(values, keys))
    if grid.get("share", True):
        style.outer_labels(axs)
    return fig, axs, keys


# --- lines and bars ------------------------------------------------------------------


def draw_errorbar(
    ax: Axes, rows: pd.DataFrame, *, x: str, metric: str, **line_style
) -> bool:
    """Mean ``metric`` against ``x`` with standard-error bars; rows: one per cell."""
    frame = pd.DataFrame({"x": _floats(rows[x]), "mean": _floats(rows[metric])})
    frame["sem"] = rows.get(f"{metric}_sem", np.nan)
    frame = frame.dropna(subset=["x"]).sort_values("x")
    if frame.empty:
        return False
    mean = frame["mean"].to_numpy(float)
    if metric in LOG_METRICS:
        mean = np.clip(mean, NMSE_FLOOR, None)
    sem = frame["sem"].fillna(0).to_numpy(float)  # one trial: no error bar
    ax.errorbar(frame["x"], mean, yerr=sem, marker="o", ms=4, capsize=3, **line_style)
    return True


def _metric_axis(ax: Axes, metric: str, values: pd.Series) -> None:
    """Label, and a log scale for error metrics (if any value can be shown on it)."""
    ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
    if metric in LOG_METRICS and (_floats(values) > 0).any():
        ax.set_yscale("log", nonpositive="clip")
    elif metric in RATE_METRICS:
        ax.set_ylim(-0.03, 1.03)


def line_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = ""
) -> Figure:
    """``metric`` against the one varying axis, a line per panel combination; a bar
    chart per panel combination if no axis varies."""
    x = axes.x or axes.y
    if x is None:
        return bar_figure(results, axes, metric, sweep=sweep)
    keys = label_keys(results, axes.panels)
    groups = panel_groups(results, axes.panels)
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    colors = style.line_colors(len(groups))
    chance = False
    for (values, rows), color in zip(groups, colors, strict=True):
        label = style.panel_label(values, keys)
        draw_errorbar(ax, rows, x=x, metric=metric, color=color, label=label)
        chance |= draw_chance(ax, rows, x=x, metric=metric, color=color)
    xs = _floats(results[x]).to_numpy(float)
    set_axis(ax, "x", x, xs, log=use_log(x, xs))
    _metric_axis(ax, metric, results[metric])
    if len(groups) > 1:
        ax.legend(fontsize=7)
    lines = f", a line per {', '.join(keys)}" if keys else ""
    note = f"dotted: {CHANCE_WORDS} of each line" if chance else ""
    style.suptitle(fig, f"{metric} against {x}{lines}", (), sweep, note)
    return fig


def bar_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = ""
) -> Figure:
    """Mean ``metric`` with standard-error bars, a bar per panel combination."""
    keys = label_keys(results, axes.panels)
    groups = panel_groups(results, axes.panels)
    fig = Figure(figsize=(max(4.0, 1.1 * len(groups) + 2), 4.6), layout="constrained")
    ax = fig.add_subplot()
    mean = [_floats(rows[metric]).mean() for _, rows in groups]
    sem = [rows.get(f"{metric}_sem", pd.Series([np.nan])).iloc[0] for _, rows in groups]
    if metric in LOG_METRICS:
        mean = np.clip(mean, NMSE_FLOOR, None)
    ticks = np.arange(len(groups))
    ax.bar(ticks, mean, yerr=sem, color=style.line_colors(len(groups)), capsize=3)
    labels = [style.panel_label(values, keys) for values, _ in groups]
    ax.set_xticks(ticks, labels=labels, rotation=30, ha="right", fontsize=8)
    _metric_axis(ax, metric, pd.Series(mean))
    column, note = chance_column(metric), ""
    if column in results and results[column].notna().any():
        level = [_floats(rows[column]).mean() for _, rows in groups]
        ax.hlines(level, ticks - 0.4, ticks + 0.4, colors="black", linestyles=":")
        note = f"dotted: {CHANCE_WORDS} of each bar"
    what = f"{metric}, a bar per {', '.join(keys)}" if keys else f"{metric}, one cell"
    style.suptitle(fig, what, (), sweep, note)
    return fig


# --- capacity ------------------------------------------------------------------------


def capacity_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = ""
) -> Figure:
    """``metric`` against neurons (the y key), a line per sparsity (x) value, error
    bars = standard error, a panel per method (panel combination)."""
    if axes.x is None or axes.y is None:
        return line_figure(results, axes, metric, sweep=sweep)
    levels, norm = level_scale(axes.x, results[axes.x])
    ys = _floats(results[axes.y]).to_numpy()  # one x axis for every panel

    def draw(ax: Axes, rows: pd.DataFrame) -> None:
        x_rows = _floats(rows[axes.x]).to_numpy()
        for level in levels:
            color = level_color(level, levels, norm)
            at_level = rows[x_rows == level]
            draw_errorbar(ax, at_level, x=axes.y, metric=metric, color=color)
        draw_chance(ax, rows, x=axes.y, metric=metric, color="black")
        set_axis(ax, "x", axes.y, ys, log=use_log(axes.y, ys))
        _metric_axis(ax, metric, results[metric])

    fig, axs, keys = panel_figure(results, axes, draw)
    level_key(fig, axs, axes.x, levels, norm)
    column = chance_column(metric)
    shown = column in results and results[column].notna().any()
    note = f"black dotted: {CHANCE_WORDS}" if shown else ""
    what = f"{metric} against {axes.y}, a line per {axes.x}"
    style.suptitle(fig, what, keys, sweep, note)
    return fig


def level_scale(key: str, values: pd.Series) -> tuple[np.ndarray, Normalize]:
    """The distinct values (levels) of a key drawn as a colour per line, and the
    scale of their colours (logarithmic where the axis would be)."""
    levels = np.unique(_floats(values).dropna().to_numpy())
    scale = LogNorm if use_log(key, levels) else Normalize
    return levels, scale(levels.min(), levels.max())


def level_color(level: float, levels: np.ndarray, norm: Normalize):
    """Viridis up to 0.9 (its last tenth is too pale on white)."""
    return style.CMAP(0.9 * norm(level)) if levels.size > 1 else style.CMAP(0.35)


def level_key(fig: Figure, axs: list[Axes], key: str, levels, norm) -> None:
    """A legend for a few lines, a colorbar for many."""
    if levels.size <= MAX_LEGEND:  # outside the panels: lines fill them
        colors = [level_color(v, levels, norm) for v in levels]
        lines = [Line2D([], [], color=c, marker="o") for c in colors]
        labels = [style.fmt(v) for v in levels]
        fig.legend(
            lines, labels, loc="outside right upper", title=AXIS_LABELS.get(key, key),
            fontsize=8, title_fontsize=8,
        )  # fmt: skip
        return
    # colours span 0..0.9 of viridis, the colorbar maps the same range
    colors = ListedColormap(style.CMAP(np.linspace(0, 0.9, 256)))
    fig.colorbar(ScalarMappable(norm, colors), ax=axs, label=AXIS_LABELS.get(key, key))


def capacity_number_figure(
    capacity: pd.DataFrame, axes: PlotAxes, *, sweep: str = ""
) -> Figure:
    """The largest sparsity recovered at >= 50 % success against neurons, a line per
    panel combination. capacity: from ``aggregate.capacity_number``."""
    found = (_floats(capacity[CAPACITY]) > 0).any()
    if found and axes.y is None:
        return bar_figure(capacity, axes, CAPACITY, sweep=sweep)
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    if not found:
        why = "no cell reached 50 % success"
        if axes.x not in ("sparsity", "k"):
            why = "needs a sparsity or k axis"
        style.note(ax, f"no capacity number: {why}")
    else:
        _capacity_lines(ax, capacity, axes, label_keys(capacity, axes.panels))
    ax.set_ylabel(METRIC_LABELS[CAPACITY])
    style.suptitle(fig, f"capacity: largest {axes.x} at >= 50 % success", (), sweep)
    return fig


def _capacity_lines(ax: Axes, capacity: pd.DataFrame, axes: PlotAxes, keys) -> None:
    """A line per panel combination; markers and dashes differ, as lines often
    coincide (the capacity only takes the grid's sparsity values)."""
    groups = panel_groups(capacity, axes.panels)
    colors = style.line_colors(len(groups))
    for i, ((values, rows), color) in enumerate(zip(groups, colors, strict=True)):
        frame = pd.DataFrame({"y": _floats(rows[axes.y]), "c": _floats(rows[CAPACITY])})
        frame = frame.sort_values("y")
        label = style.panel_label(values, keys)
        if not (frame["c"] > 0).any():
            label += " (never >= 50 %)"
        look = {"marker": MARKERS[i % len(MARKERS)], "ms": 8 - 4 * i / len(groups)}
        look |= {"color": color, "linestyle": DASHES[i % len(DASHES)]}
        ax.plot(frame["y"], frame["c"], label=label, **look)
    ys = _floats(capacity[axes.y]).to_numpy(float)
    set_axis(ax, "x", axes.y, ys, log=use_log(axes.y, ys))
    found = _floats(capacity[CAPACITY]).to_numpy(float)
    set_axis(ax, "y", CAPACITY, found[found > 0], log=True)
    if len(groups) > 1:
        ax.legend(fontsize=7)


# --- Donoho-Tanner coordinates -------------------------------------------------------
# delta = m/n (neurons per feature) on x, rho = k/m (active features per neuron) on y,
# k = p n. As n grows the L1 transition depends on (delta, rho) alone, so cells of
# every n_features share one plane, where (sparsity, neurons) heat maps need a panel
# per n_features: the phase diagrams use it when n_features varies in a sweep of
# sparsity (or k) and neurons (``phase_figure(..., dt=True)`` forces it). A cell is
# a marker coloured by its mean, its shape telling n_features apart; a cell with
# k > m (rho > 1) lies above the plane.

IN_COORDINATES = ("n_features", "neurons")  # never panels: they make the plane
DT_LABELS = ("m / n  (neurons per feature)", "k / m  (active features per neuron)")


def uses_dt(axes: PlotAxes) -> bool:
    """Whether phase diagrams of these axes are drawn in Donoho-Tanner coordinates:
    sparsity (or k) x neurons, n_features a panel key (it varies)."""
    swept = axes.x in ("sparsity", "k") and axes.y == "neurons"
    return swept and "n_features" in axes.panels


def dt_coordinates(rows: pd.DataFrame, x: str) -> tuple[np.ndarray, np.ndarray]:
    """delta = m/n and rho = k/m of each row, both (n_rows,); x: "sparsity" or "k"."""
    n, m = (pd.to_numeric(rows[k], errors="coerce").to_numpy(float)
            for k in IN_COORDINATES)  # fmt: skip
    k = pd.to_numeric(rows[x], errors="coerce").to_numpy(float)
    return m / n, (k if x == "k" else k * n) / m


def dt_axes(axes: PlotAxes) -> PlotAxes:
    """The plane's panels: every key that splits the sweep but n_features, neurons."""
    keys = (axes.y, *axes.panels)
    return PlotAxes(axes.x, None, tuple(k for k in keys if k not in IN_COORDINATES))


def draw_dt(ax: Axes, rows: pd.DataFrame, *, x: str, metric: str, norm, n_values):
    """The cells of one panel at (m/n, k/m), coloured by their mean metric, a marker
    per n_features (n_values: every n of the figure, in marker order); the L1
    curve where it describes the panel's solver."""
    for n, at_n in rows.groupby("n_features", sort=True):
        delta, rho = dt_coordinates(at_n, x)
        marker = MARKERS[list(n_values).index(n) % len(MARKERS)]
        ax.scatter(delta, rho, c=pd.to_numeric(at_n[metric]), cmap=style.CMAP,
                   norm=norm, marker=marker, s=40, edgecolors="0.3",
                   linewidths=0.4)  # fmt: skip
    draw_theory_dt(ax, rows)
    ax.set_xlim(0, 1.03)  # a margin: markers at m = n or k = m stay whole
    ax.set_ylim(0, 1.03)
    ax.set_xlabel(DT_LABELS[0], fontsize=8)
    ax.set_ylabel(DT_LABELS[1], fontsize=8)


def dt_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str = "success_rate", *,
    sweep: str = "",
) -> Figure:  # fmt: skip
    """``metric`` of every cell in Donoho-Tanner coordinates, a panel per key other
    than n_features and neurons. results: one row per cell; axes.x sparsity or k."""
    n_values = np.sort(results["n_features"].dropna().unique())
    norm = metric_norm(results[metric], metric)
    draw = partial(draw_dt, x=axes.x, metric=metric, norm=norm, n_values=n_values)
    fig, axs, keys = panel_figure(results, dt_axes(axes), draw)
    label = METRIC_LABELS.get(metric, metric)
    fig.colorbar(ScalarMappable(norm, style.CMAP), ax=axs, label=label)
    shapes = [
        Line2D([], [], marker=MARKERS[i % len(MARKERS)], linestyle="", color="0.4",
               label=f"n_features={style.fmt(n)}")
        for i, n in enumerate(n_values)
    ]  # fmt: skip
    fig.legend(handles=shapes, loc="outside lower center", ncols=4, fontsize=8)
    note = "; ".join(dt_marks(results, axes))
    style.suptitle(fig, f"{metric} in Donoho-Tanner coordinates", keys, sweep, note)
    return fig


def dt_marks(results: pd.DataFrame, axes: PlotAxes) -> list[str]:
    """What the plane shows besides the cells, in words (only what is drawn)."""
    groups = panel_groups(results, dt_axes(axes).panels)
    marks = ["a cell with k > m (k/m > 1) lies above the plane"]
    if any(dt_curve_kind(rows) is not None for _, rows in groups):
        marks.append("red dashed: the L1 phase transition (theory, n -> infinity)")
    found = (dt_without_curve(rows) for _, rows in groups)
    if failing := list(dict.fromkeys(item for f in found for item in f)):
        marks.append(no_curve_words(failing))
    return marks


# --- activations ---------------------------------------------------------------------


def activation_norm(row: HeatmapRow) -> Normalize:
    """One colour scale for X and every X_hat: 0 to max X; -max X to max X (signed
    data, drawn with a diverging map) when an X_hat is below -ACTIVE."""
    top = float(np.nanmax(row.X, initial=0.0)) or 1.0
    low = min([0.0, *(np.nanmin(X_hat, initial=0.0) for _, X_hat in row.recovered)])
    return Normalize(-top if low < -ACTIVE else 0.0, top, clip=True)


def draw_activations(ax: Axes, X: np.ndarray, *, norm: Normalize, title: str):
    """X or X_hat (n_samples, n_features) as an image; returns the image."""
    cmap = style.DIVERGING if norm.vmin < 0 else style.CMAP
    image = ax.imshow(X, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    style.title(ax, title, fontsize=8)
    ax.set_xlabel("feature i", fontsize=8)
    ax.set_ylabel("test sample", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return image


def heatmap_figure(rows: Sequence[HeatmapRow], *, sweep: str = "") -> Figure:
    """True X and each method's X_hat side by side, a row per data cell."""
    n_cols = 1 + max((len(r.recovered) for r in rows), default=0)
    fig = Figure(
        figsize=(2.8 * n_cols + 1.2, 2.5 * max(1, len(rows)) + 0.9),
        layout="constrained",
    )
    if not rows:
        style.note(fig.add_subplot(), "no samples to show")
        return fig
    grid = fig.subplots(len(rows), n_cols, squeeze=False)
    for row, row_axes in zip(rows, grid, strict=True):
        norm = activation_norm(row)
        used = row_axes[: 1 + len(row.recovered)]
        title = f"true X\n{row.title}"
        image = draw_activations(used[0], row.X, norm=norm, title=title)
        for ax, (label, X_hat) in zip(used[1:], row.recovered, strict=True):
            draw_activations(ax, X_hat, norm=norm, title=f"recovered X_hat\n{label}")
        for ax in row_axes[len(used) :]:
            ax.remove()
        fig.colorbar(image, ax=list(used), label="activation", extend="both")
    what = "true vs recovered activations (trial 0, first test samples)"
    style.suptitle(fig, what, (), sweep)
    return fig


# --- the registered figures ----------------------------------------------------------

PHASE_METRICS = ("success_rate", "nmse", "support_f1")  # phase_* and capacity_*.png
# drawn too, for the cells that have them: learned methods' against ground truth, and
# a real network's latents' selectivity (no ground truth)
LEARNED_METRICS = ("mcc", "n_recovered", "top_share", "above_best_neuron")
MAX_HEATMAP_ROWS = 6  # data cells shown in heatmaps.png
METRIC_WORDS = {  # the metrics in captions, in words (others: their name)
    "success_rate": "success rate (fraction of samples with x != 0 recovered to within "
    "success_tol relative error)",
    "nmse": "NMSE (||X - X_hat||^2 / ||X||^2)",
    "support_f1": f"support F1 (active: |x| > {ACTIVE:g}, in X and in X_hat alike)",
    "mcc": "mcc (mean matched cosine of learned atoms and true directions)",
    "n_recovered": "features recovered by a learned atom (matched cosine >"
    f" {RECOVERED})",
    "top_share": "the latents' mean top-label share (their activation mass on their"
    " most frequent label: a network's labels, or on a toy model each sample's most"
    " active true feature)",
    "above_best_neuron": "latents more selective (top-label share) than the most"
    " selective neuron",
}
SEM_WORDS = "error bars: standard error over trials"


def metric_cells(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The cells a metric's figures show: all; for a metric only learned methods
    write (LEARNED_METRICS), the cells that have it."""
    return results[results[metric].notna()] if metric in LEARNED_METRICS else results


def constant_metrics(results: pd.DataFrame) -> dict[str, float]:
    """The metrics of phase_* and capacity_*.png that take one value in all of at
    least two cells (success 0 for every readout cell): metric -> that value."""
    found = [m for m in (*PHASE_METRICS, *LEARNED_METRICS) if m in results]
    constant = {}
    for metric in found:
        values = _floats(metric_cells(results, metric)[metric]).dropna().to_numpy()
        if values.size >= 2 and np.ptp(values) <= 1e-12 * max(1.0, abs(values[0])):
            constant[metric] = float(values[0])
    return constant


def drawn_metrics(sweep: Sweep, *, warn: bool = False) -> list[dict[str, str]]:
    """The metrics of phase_*.png: the PHASE_METRICS the results hold (with
    ``warn``, a warning for each they lack) and the LEARNED_METRICS a cell has,
    except those constant over the cells (``constant_metrics``)."""
    results = sweep.results
    for metric in PHASE_METRICS:
        if warn and metric not in results:
            log.warning("no %s column: no phase or capacity plot of it", metric)
    found = [m for m in (*PHASE_METRICS, *LEARNED_METRICS)
             if m in results and results[m].notna().any()]  # fmt: skip
    constant = constant_metrics(results)
    return [{"metric": metric} for metric in found if metric not in constant]


def capacity_metrics(sweep: Sweep) -> list[dict[str, str]]:
    """The metrics of capacity_*.png: those of phase_*.png when two axes are swept
    (with one, a capacity plot would repeat the phase plot's lines)."""
    return drawn_metrics(sweep) if sweep.axes.x and sweep.axes.y else []


def capacity_found(sweep: Sweep) -> bool:
    """Whether a cell reached 50 % success on a sparsity or k axis."""
    found = _floats(sweep.capacity.get(CAPACITY, pd.Series(dtype=float))) > 0
    return sweep.axes.x in ("sparsity", "k") and bool(found.any())


def omitted(sweep: Sweep) -> list[str]:
    """Why figures of this module that a sweep might expect are not drawn, a line
    each for the report page."""
    lines = [
        f"{metric} is {style.fmt(value)} in every cell: no phase_{metric}.png or "
        f"capacity_{metric}.png (they would show one colour)"
        for metric, value in constant_metrics(sweep.results).items()
    ]
    if sweep.axes.x and not sweep.axes.y:
        lines.append(
            f"only {sweep.axes.x} is swept: phase_*.png show the metrics against it;"
            " capacity_*.png need a second axis (neurons)"
        )
    has_success = sweep.results.get("success_rate", pd.Series(dtype=float)).notna()
    if has_success.any() and not capacity_found(sweep):
        lines.append(
            "no capacity_number.png: no cell reached 50 % success on a sparsity or"
            " k axis"
        )
    return lines


def _panels_words(results: pd.DataFrame, axes: PlotAxes, each: str) -> str:
    keys = label_keys(results, axes.panels)
    return f", {each} per {', '.join(keys)}" if keys else ""


def _chance_words(results: pd.DataFrame, metric: str, what: str) -> str:
    column = chance_column(metric)
    shown = column in results and results[column].notna().any()
    return f" {what}: {CHANCE_WORDS}." if shown else ""


def phase_caption(sweep: Sweep, metric: str) -> str:
    """The caption of phase_<metric>.png: heat maps and what is drawn on them, or
    the lines or bars a sweep of fewer axes gets."""
    axes, rows = sweep.axes, metric_cells(sweep.results, metric)
    words = METRIC_WORDS.get(metric, metric)
    x = axes.x or axes.y
    if x is None:
        what = f"{words[0].upper()}{words[1:]}, the mean over trials"
        what += _panels_words(rows, axes, "a bar") + f"; {SEM_WORDS}."
        return what + _chance_words(rows, metric, "Dotted")
    if axes.y is None or axes.x is None:
        what = f"{words[0].upper()}{words[1:]} against {x}"
        what += _panels_words(rows, axes, "a line") + f"; {SEM_WORDS}."
        return what + _chance_words(rows, metric, "Dotted, in each line's colour")
    if uses_dt(axes):
        return dt_caption(rows, axes, words)
    what = f"Phase diagram of {words}: the mean over trials in each cell of the "
    what += f"{axes.y} x {axes.x} grid" + _panels_words(rows, axes, "a panel") + "."
    marks = phase_marks(rows, axes, metric)
    return what + "".join(f" {mark[0].upper()}{mark[1:]}." for mark in marks)


def dt_caption(results: pd.DataFrame, axes: PlotAxes, words: str) -> str:
    """The caption of a phase diagram in Donoho-Tanner coordinates."""
    keys = label_keys(results, dt_axes(axes).panels)
    panels = f", a panel per {', '.join(keys)}" if keys else ""
    marks = "".join(f" {m[0].upper()}{m[1:]}." for m in dt_marks(results, axes))
    return (
        f"Phase diagram of {words} in Donoho-Tanner coordinates, as n_features varies:"
        f" m/n (neurons per feature) against k/m (active features per neuron), every "
        f"cell a marker coloured by its mean over trials, its shape its n_features"
        f"{panels}; the L1 transition depends on (m/n, k/m) alone as n grows.{marks}"
    )


@figure(
    "phase_{metric}.png", caption=phase_caption,
    when=partial(drawn_metrics, warn=True),
)  # fmt: skip
def phase_of(sweep: Sweep, metric: str) -> Figure:
    """phase_<metric>.png: ``phase_figure`` of the cells that show the metric."""
    rows = metric_cells(sweep.results, metric)
    return phase_figure(rows, sweep.axes, metric, sweep=sweep.name)


def capacity_caption(sweep: Sweep, metric: str) -> str:
    """The caption of capacity_<metric>.png."""
    axes, rows = sweep.axes, metric_cells(sweep.results, metric)
    what = f"Capacity plot of {METRIC_WORDS.get(metric, metric)} against {axes.y}, "
    what += f"a line per {axes.x} value" + _panels_words(rows, axes, "a panel")
    return what + f"; {SEM_WORDS}." + _chance_words(rows, metric, "Black dotted")


@figure("capacity_{metric}.png", caption=capacity_caption, when=capacity_metrics)
def capacity_of(sweep: Sweep, metric: str) -> Figure:
    """capacity_<metric>.png: ``capacity_figure`` of the cells that show the metric."""
    rows = metric_cells(sweep.results, metric)
    return capacity_figure(rows, sweep.axes, metric, sweep=sweep.name)


def capacity_number_caption(sweep: Sweep) -> str:
    """The caption of capacity_number.png: lines against y, or bars."""
    axes, capacity = sweep.axes, sweep.capacity
    each = "a line" if axes.y else "a bar"
    per = f"per {axes.y} value, " if axes.y else ""
    return (
        f"Capacity number: {per}the largest {axes.x} recovered at >= 50 % success"
        f"{_panels_words(capacity, axes, each)} (the table is capacity.csv)."
    )


@figure("capacity_number.png", caption=capacity_number_caption,
        when=capacity_found)  # fmt: skip
def capacity_number_of(sweep: Sweep) -> Figure:
    """capacity_number.png: ``capacity_number_figure`` of capacity.csv."""
    return capacity_number_figure(sweep.capacity, sweep.axes, sweep=sweep.name)


@figure(
    "heatmaps.png",
    caption="True features X (left) and each method's recovered X_hat on the same "
    "test samples (paired data), for representative cells.",
    when=lambda sweep: truth_cells(sweep.results).any(),
)
def heatmaps_of(sweep: Sweep) -> Figure:
    """heatmaps.png: true X and each method's X_hat in the representative cells
    (``aggregate.representative_cells``); a cell without samples costs its panel."""
    results, axes = sweep.results, sweep.axes
    method_keys = [k for k in axes.panels if k.split(".", 1)[0] == "method"]
    shown = label_keys(results, method_keys)
    data_keys = [
        k for k in (*axes.panels, axes.y, axes.x) if k and k not in method_keys
    ]
    rows = []
    for cells in representative_cells(results, axes)[:MAX_HEATMAP_ROWS]:
        loaded = []
        for _, cell in cells.iterrows():
            try:
                X, X_hat = load_samples(sweep.dir / cell[CELL_DIR])
            except Exception as err:  # a bad file costs its panel, not the figure
                log.warning("no samples for %s: %s", cell[CELL_DIR], err)
                continue
            loaded.append((X, (style.panel_label(cell, shown), X_hat)))
        if loaded:  # X is the same for every method: paired data
            title = style.panel_label(cells.iloc[0], data_keys)
            rows.append(HeatmapRow(title, loaded[0][0], [h for _, h in loaded]))
    return heatmap_figure(rows, sweep=sweep.name)


def load_samples(cell_dir: Path, *, trial: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X and X_hat of one trial (else the first) from samples.parquet: both
    (n_samples, n_features)."""
    frame = folders.read_table(cell_dir / SAMPLES_FILE)
    if frame.empty:
        raise ValueError(f"empty {SAMPLES_FILE} in {cell_dir}")
    if not (frame["trial"] == trial).any():
        trial = frame["trial"].min()
    frame = frame[frame["trial"] == trial]
    X = frame.pivot_table(index="sample", columns="feature", values="true")
    X_hat = frame.pivot_table(index="sample", columns="feature", values="recovered")
    return X.to_numpy(float), X_hat.reindex_like(X).to_numpy(float)
