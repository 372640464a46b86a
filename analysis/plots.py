"""Figures of a sweep: phase diagrams, capacity plots, activation heatmaps.

``draw_*`` functions draw on an ``ax`` they are given; ``*_figure`` functions build a
``matplotlib.figure.Figure`` (no pyplot: no global state, no GUI backend, nothing to
close) that the caller saves. No file I/O here.
"""

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import colormaps, patheffects
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullLocator

from analysis.aggregate import (
    CAPACITY,
    MISSING,
    PlotAxes,
    label_keys,
    normalize,
    numeric_values,
    panel_groups,
)

CMAP = colormaps["viridis"]
NMSE_FLOOR = 1e-12  # exact recoveries give ~1e-30: clip, or they swamp the scale
RATE_METRICS = (
    "success_rate",
    "support_precision",
    "support_recall",
    "support_f1",
    "frac_zero",
)
LOG_METRICS = ("nmse", "mse", "weighted_mse")
SUCCESS = 0.5  # the contour and the capacity number: 50 % success
MAX_ANNOTATED = 48  # write the value in each cell of grids up to this size
MAX_LEGEND = 8  # more lines than this: a colorbar instead of a legend
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
METRIC_NAMES = {
    "success_rate": "success rate",
    "nmse": "NMSE",
    "support_f1": "support F1",
    "mse": "MSE",
    "weighted_mse": "weighted MSE",
    "rel_error": "relative error",
}
METRIC_LABELS = {
    "success_rate": r"success rate: fraction of x$\neq$0 with "
    r"$\|\hat{x}-x\| \leq \mathrm{tol}\,\|x\|$",
    "nmse": r"NMSE $\|X-\hat{X}\|_F^2 \,/\, \|X\|_F^2$",
    "support_f1": r"support F1 (truth x$\neq$0, prediction $|\hat{x}|>10^{-3}$)",
    "support_precision": r"support precision ($|\hat{x}|>10^{-3}$ vs x$\neq$0)",
    "support_recall": r"support recall ($|\hat{x}|>10^{-3}$ vs x$\neq$0)",
    "mse": r"MSE: mean of $(X-\hat{X})^2$",
    "weighted_mse": r"weighted MSE: mean of $\sum_i I_i (x_i-\hat{x}_i)^2$",
    "rel_error": r"relative error $\|\hat{x}-x\| / \|x\|$",
    "frac_zero": "fraction of all-zero samples",
    "r2": r"$r^2$ of X (variance-weighted)",
    "r2_h": r"$r^2$ of H by W$\hat{X}$",
    "l0": r"mean number of $|\hat{x}_i|>10^{-3}$",
    "fit_seconds": "fit time (s)",
    "recover_seconds": "recovery time (s)",
    "mmcs": "MMCS: mean max |cos| over learned atoms",
    "mcc": "MCC: mean matched |cos| (Hungarian)",
}


@dataclass
class HeatmapRow:
    """One data cell: true X and each method's X_hat, all (n_samples, n_features)."""

    title: str
    X: np.ndarray
    recovered: list[tuple[str, np.ndarray]] = field(default_factory=list)


# --- labels and scales ---------------------------------------------------------------


def axis_label(key: str) -> str:
    """The axis label of a config key, with its definition."""
    return AXIS_LABELS.get(key, key)


def metric_label(metric: str) -> str:
    """The colorbar or axis label of a metric: its definition."""
    return METRIC_LABELS.get(metric, metric)


def fmt(value: object) -> str:
    """A config value for a title or a tick: 0.01, 20, True, omp."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{value:.3g}"
    return str(value)


def panel_label(values: dict[str, object], keys: Sequence[str]) -> str:
    """The keys' values for a title: "method=lasso, method.alpha=0.1". A method or
    model parameter that is NaN (the method has no such parameter) is left out."""
    parts = [
        f"{k}={'None' if _missing(values.get(k)) else fmt(values.get(k))}"
        for k in keys
        if "." not in k or not _missing(values.get(k))
    ]
    return ", ".join(parts) or "all cells"


def _missing(value: object) -> bool:
    return normalize(value) == MISSING  # None, NaN, pd.NA


def use_log(key: str | None, values: np.ndarray) -> bool:
    """Log axis for sparsity, for positive values spanning a decade, and for
    geometric grids (5, 10, 20, 40), whose steps are more even on a log scale."""
    values = np.unique(values[np.isfinite(values)])
    if values.size == 0 or (values <= 0).any():
        return False
    if key == "sparsity" or values.max() / values.min() >= 10:
        return True
    return values.size > 2 and _unevenness(np.log(values)) < _unevenness(values)


def _unevenness(values: np.ndarray) -> float:
    """Coefficient of variation of the steps of sorted values (0: evenly spaced)."""
    steps = np.diff(values)
    return float(steps.std() / steps.mean())


def metric_norm(values: pd.Series, metric: str) -> Normalize:
    """The colour scale of a metric, shared by all panels of a figure."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(float)
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
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(axis_label(key))
    values = np.unique(values[np.isfinite(values)])
    if values.size > 0:
        shown = values[:: int(np.ceil(values.size / 10))]  # at most ~10 labels
        axis.set_ticks(shown, labels=[fmt(v) for v in shown])
        axis.set_minor_locator(NullLocator())


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _colors(n: int) -> list:
    return [CMAP(x) for x in np.linspace(0, 0.9, n)] if n > 1 else [CMAP(0.35)]


def _panel_grid(n: int, *, width: float = 3.9, height: float = 3.3):
    """A constrained Figure with n panels, at most 4 per row: (fig, list of n axes)."""
    n_cols = max(1, min(n, 4))
    n_rows = max(1, -(-n // n_cols))
    size = (width * n_cols + 1.4, height * n_rows + 1.0)
    fig = Figure(figsize=size, layout="constrained")
    axs = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axs[n:]:
        ax.remove()
    return fig, list(axs[:n])


def _suptitle(
    fig: Figure, what: str, panels: Sequence[str], sweep: str, note: str = ""
) -> None:
    """What was swept, how panels split it, a note in small print, the sweep name."""
    by = f"; a panel per {', '.join(panels)}" if panels else ""
    width = int(fig.get_figwidth() * 11)  # characters of 11 pt text that fit
    lines = textwrap.wrap(f"{what}{by}", width) + textwrap.wrap(note, width * 5 // 4)
    fig.suptitle("\n".join(lines + ([f"sweep {sweep}"] if sweep else [])), fontsize=10)


# --- phase diagrams ------------------------------------------------------------------


def pivot_grid(data: pd.DataFrame, *, x: str, y: str, value: str):
    """Mean ``value`` per cell: x (nx,), y (ny,) centres, values (ny, nx) NaN holes."""
    frame = pd.DataFrame(
        {
            "x": numeric_values(data[x]),
            "y": numeric_values(data[y]),
            "v": pd.to_numeric(data[value], errors="coerce"),
        }
    ).dropna(subset=["x", "y"])
    if frame.empty:
        return np.empty(0), np.empty(0), np.empty((0, 0))
    table = frame.groupby(["y", "x"])["v"].mean().unstack("x")
    return table.columns.to_numpy(float), table.index.to_numpy(float), table.to_numpy()


def draw_phase(
    ax: Axes, data: pd.DataFrame, *, x: str, y: str, metric: str, norm: Normalize
) -> bool:
    """Heat map of the mean ``metric`` over (x, y) cells of one panel, with the 50 %
    success contour. data: that panel's rows of results. Returns whether it drew."""
    xs, ys, Z = pivot_grid(data, x=x, y=y, value=metric)
    if Z.size == 0:
        _note(ax, f"no cells with {x} and {y}")
        return False
    if isinstance(norm, LogNorm):
        Z = np.clip(Z, norm.vmin, None)
    x_log, y_log = use_log(x, xs), use_log(y, ys)
    ax.set_facecolor("0.85")  # grey: a failed or missing cell
    ax.pcolormesh(
        cell_edges(xs, log=x_log),
        cell_edges(ys, log=y_log),
        np.ma.masked_invalid(Z),
        cmap=CMAP,
        norm=norm,
    )
    set_axis(ax, "x", x, xs, log=x_log)
    set_axis(ax, "y", y, ys, log=y_log)
    if Z.size <= MAX_ANNOTATED:
        _annotate(ax, xs, ys, Z, norm=norm)
    if "success_rate" in data:
        draw_success_contour(ax, data, x=x, y=y)
    return True


def draw_success_contour(ax: Axes, data: pd.DataFrame, *, x: str, y: str) -> bool:
    """The 50 % success_rate line on the (x, y) grid, if the grid crosses it."""
    xs, ys, S = pivot_grid(data, x=x, y=y, value="success_rate")
    finite = S[np.isfinite(S)]
    crosses = finite.size > 0 and finite.min() < SUCCESS < finite.max()
    if min(S.shape) < 2 or not crosses:
        return False
    lines = ax.contour(
        xs,
        ys,
        np.ma.masked_invalid(S),
        levels=[SUCCESS],
        colors="white",
        linewidths=2.0,
    )
    lines.set_path_effects([patheffects.withStroke(linewidth=3.5, foreground="black")])
    return True


def _annotate(ax: Axes, xs, ys, Z: np.ndarray, *, norm: Normalize) -> None:
    """The value of each cell, dark text on light colours."""
    spec = ".2g" if isinstance(norm, LogNorm) else ".2f"
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            if np.isfinite(Z[i, j]):
                color = "white" if norm(Z[i, j]) < 0.6 else "black"
                ax.text(
                    x,
                    y,
                    format(Z[i, j], spec),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                )


def phase_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = ""
) -> Figure:
    """Phase diagram of ``metric``: a heat map over (x, y) per panel; a line plot if
    only x varies, a bar chart if nothing does. results: one row per cell."""
    if axes.x is None or axes.y is None:
        return line_figure(results, axes, metric, sweep=sweep)
    keys = label_keys(results, axes.panels)
    groups = panel_groups(results, axes.panels)
    fig, axs = _panel_grid(len(groups))
    norm = metric_norm(results[metric], metric)
    for ax, (values, rows) in zip(axs, groups, strict=True):
        draw_phase(ax, rows, x=axes.x, y=axes.y, metric=metric, norm=norm)
        ax.set_title(panel_label(values, keys), fontsize=9)
    fig.colorbar(ScalarMappable(norm, CMAP), ax=axs, label=metric_label(metric))
    what = f"{METRIC_NAMES.get(metric, metric)} over {axes.x} x {axes.y}"
    note = "white line: 50 % success contour; grey: failed or missing cell"
    _suptitle(fig, what, keys, sweep, note)
    return fig


# --- lines and bars ------------------------------------------------------------------


def draw_errorbar(
    ax: Axes, rows: pd.DataFrame, *, x: str, metric: str, **style
) -> bool:
    """Mean ``metric`` against ``x`` with standard-error bars; rows: one per cell."""
    frame = (
        pd.DataFrame(
            {
                "x": numeric_values(rows[x]),
                "mean": pd.to_numeric(rows[metric], errors="coerce"),
                "sem": pd.to_numeric(rows.get(f"{metric}_sem"), errors="coerce"),
            }
        )
        .dropna(subset=["x"])
        .sort_values("x")
    )
    if frame.empty:
        return False
    mean = frame["mean"].to_numpy(float)
    if metric in LOG_METRICS:
        mean = np.clip(mean, NMSE_FLOOR, None)
    sem = frame["sem"].fillna(0).to_numpy(float)  # one trial: no error bar
    ax.errorbar(frame["x"], mean, yerr=sem, marker="o", ms=4, capsize=3, **style)
    return True


def _metric_axis(ax: Axes, metric: str, values: pd.Series) -> None:
    """Label, and a log scale for error metrics (if any value can be shown on it)."""
    ax.set_ylabel(metric_label(metric), fontsize=8)
    if metric in LOG_METRICS and (pd.to_numeric(values, errors="coerce") > 0).any():
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
    for (values, rows), color in zip(groups, _colors(len(groups)), strict=True):
        label = panel_label(values, keys)
        draw_errorbar(ax, rows, x=x, metric=metric, color=color, label=label)
    xs = numeric_values(results[x]).to_numpy(float)
    set_axis(ax, "x", x, xs, log=use_log(x, xs))
    _metric_axis(ax, metric, results[metric])
    if len(groups) > 1:
        ax.legend(fontsize=7)
    _suptitle(fig, f"{METRIC_NAMES.get(metric, metric)} against {x}", keys, sweep)
    return fig


def bar_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = ""
) -> Figure:
    """Mean ``metric`` with standard-error bars, a bar per panel combination."""
    keys = label_keys(results, axes.panels)
    groups = panel_groups(results, axes.panels)
    fig = Figure(figsize=(max(4.0, 1.1 * len(groups) + 2), 4.6), layout="constrained")
    ax = fig.add_subplot()
    mean = [pd.to_numeric(rows[metric], errors="coerce").mean() for _, rows in groups]
    sem = [rows.get(f"{metric}_sem", pd.Series([0.0])).iloc[0] for _, rows in groups]
    if metric in LOG_METRICS:
        mean = np.clip(mean, NMSE_FLOOR, None)
    ticks = np.arange(len(groups))
    ax.bar(ticks, mean, yerr=np.nan_to_num(sem), color=_colors(len(groups)), capsize=3)
    labels = [panel_label(values, keys) for values, _ in groups]
    ax.set_xticks(ticks, labels=labels, rotation=30, ha="right", fontsize=8)
    _metric_axis(ax, metric, pd.Series(mean))
    _suptitle(fig, f"{METRIC_NAMES.get(metric, metric)}: nothing swept", keys, sweep)
    return fig


# --- capacity ------------------------------------------------------------------------


def capacity_figure(
    results: pd.DataFrame, axes: PlotAxes, metric: str, *, sweep: str = ""
) -> Figure:
    """``metric`` against neurons (the y key), a line per sparsity (x) value, error
    bars = standard error, a panel per method (panel combination)."""
    if axes.x is None or axes.y is None:
        return line_figure(results, axes, metric, sweep=sweep)
    keys = label_keys(results, axes.panels)
    groups = panel_groups(results, axes.panels)
    fig, axs = _panel_grid(len(groups))
    x_all = numeric_values(results[axes.x])
    levels = np.unique(x_all.dropna().to_numpy(float))
    scale = LogNorm if use_log(axes.x, levels) else Normalize
    norm = scale(levels.min(), levels.max())
    for ax, (values, rows) in zip(axs, groups, strict=True):
        x_rows = numeric_values(rows[axes.x]).to_numpy(float)
        for level in levels:
            color = _level_color(level, levels, norm)
            draw_errorbar(
                ax, rows[x_rows == level], x=axes.y, metric=metric, color=color
            )
        ys = numeric_values(rows[axes.y]).to_numpy(float)
        set_axis(ax, "x", axes.y, ys, log=use_log(axes.y, ys))
        _metric_axis(ax, metric, rows[metric])
        ax.set_title(panel_label(values, keys), fontsize=9)
    _level_key(fig, axs, axes.x, levels, norm)
    what = f"{METRIC_NAMES.get(metric, metric)} against {axes.y}, a line per {axes.x}"
    _suptitle(fig, what, keys, sweep)
    return fig


def _level_color(level: float, levels: np.ndarray, norm: Normalize):
    """Viridis up to 0.9 (its last tenth is too pale on white)."""
    return CMAP(0.9 * norm(level)) if levels.size > 1 else CMAP(0.35)


def _level_key(fig: Figure, axs: list[Axes], key: str, levels, norm) -> None:
    """A legend for a few lines, a colorbar for many."""
    if levels.size <= MAX_LEGEND:  # outside the panels: lines fill them
        lines = [
            Line2D([], [], color=_level_color(v, levels, norm), marker="o")
            for v in levels
        ]
        fig.legend(
            lines,
            [fmt(v) for v in levels],
            loc="outside right upper",
            title=axis_label(key),
            fontsize=8,
            title_fontsize=8,
        )
        return
    # colours span 0..0.9 of viridis, the colorbar maps the same range
    colors = ListedColormap(CMAP(np.linspace(0, 0.9, 256)))
    fig.colorbar(ScalarMappable(norm, colors), ax=axs, label=axis_label(key))


def capacity_number_figure(
    capacity: pd.DataFrame, axes: PlotAxes, *, sweep: str = ""
) -> Figure:
    """The largest sparsity recovered at >= 50 % success against neurons, a line per
    panel combination. capacity: from ``aggregate.capacity_number``."""
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    keys = label_keys(capacity, axes.panels)
    values = pd.to_numeric(capacity[CAPACITY], errors="coerce")
    if not (values > 0).any():
        why = (
            "needs a sparsity or k axis"
            if axes.x not in ("sparsity", "k")
            else ("no cell reached 50 % success")
        )
        _note(ax, f"no capacity number: {why}")
    elif axes.y is None:
        groups = panel_groups(capacity, axes.panels)
        ax.bar(
            range(len(groups)),
            [rows[CAPACITY].iloc[0] for _, rows in groups],
            color=_colors(len(groups)),
        )
        labels = [panel_label(v, keys) for v, _ in groups]
        ax.set_xticks(range(len(groups)), labels=labels, rotation=30, ha="right")
        ax.set_yscale("log")
    else:
        _capacity_lines(ax, capacity, axes, keys)
    ax.set_ylabel(
        f"largest {axes.x or 'sparsity'} with >= 50 % success\n"
        "(as fraction p of active features)"
    )
    _suptitle(fig, f"capacity: largest {axes.x} at >= 50 % success", (), sweep)
    return fig


def _capacity_lines(ax: Axes, capacity: pd.DataFrame, axes: PlotAxes, keys) -> None:
    """A line per panel combination; markers and dashes differ, as lines often
    coincide (the capacity only takes the grid's sparsity values)."""
    groups = panel_groups(capacity, axes.panels)
    colors = _colors(len(groups))
    for i, ((values, rows), color) in enumerate(zip(groups, colors, strict=True)):
        frame = pd.DataFrame(
            {
                "y": numeric_values(rows[axes.y]),
                "c": pd.to_numeric(rows[CAPACITY], errors="coerce"),
            }
        ).sort_values("y")
        label = panel_label(values, keys)
        if not (frame["c"] > 0).any():
            label += " (never >= 50 %)"
        ax.plot(
            frame["y"],
            frame["c"],
            color=color,
            label=label,
            marker=MARKERS[i % len(MARKERS)],
            ms=8 - 4 * i / len(groups),
            linestyle=DASHES[i % len(DASHES)],
        )
    ys = numeric_values(capacity[axes.y]).to_numpy(float)
    set_axis(ax, "x", axes.y, ys, log=use_log(axes.y, ys))
    found = pd.to_numeric(capacity[CAPACITY], errors="coerce").to_numpy(float)
    set_axis(ax, "y", CAPACITY, found[found > 0], log=True)
    if len(groups) > 1:
        ax.legend(fontsize=7)


# --- activations ---------------------------------------------------------------------


def activation_norm(row: HeatmapRow) -> Normalize:
    """One colour scale for X and every X_hat: up to max X, down to 0 or to the most
    negative X_hat (at most -max X, so that a diverging X_hat cannot hide X)."""
    top = float(np.nanmax(row.X, initial=0.0)) or 1.0
    lows = [np.nanmin(X_hat, initial=0.0) for _, X_hat in row.recovered]
    return Normalize(max(min([0.0, *lows]), -top), top, clip=True)


def draw_activations(ax: Axes, X: np.ndarray, *, norm: Normalize, title: str):
    """X or X_hat (n_samples, n_features) as an image; returns the image."""
    image = ax.imshow(X, aspect="auto", cmap=CMAP, norm=norm, interpolation="nearest")
    ax.set_title(title, fontsize=8)
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
        _note(fig.add_subplot(), "no samples to show")
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
    _suptitle(fig, what, (), sweep)
    return fig
