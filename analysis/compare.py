"""Compare sweeps: ``python -m analysis A B ... [--label a --label b] [--out DIR]``.

Each sweep is read as ``analysis.load`` reads it (files only, nothing written into
it). The grid keys are the config keys that vary in any of the sweeps; a shared
grid point is a value of every grid key at which each sweep has a finished cell.
Keys constant within each sweep but different between them (n_features=50 in one,
100 in the other) are what the sweeps differ by: listed, never matched on.

Written into the comparison folder: ``compare.csv`` (a row per shared point: the
grid keys, the metric of each sweep and its difference to the first sweep),
``compare_boundaries.png`` (every sweep's 50 % success contour on the same panels),
``compare_<metric>.png`` (the difference maps) and ``report.html``.
"""

import logging
from functools import partial, reduce
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import aggregate, html, page, report, style
from analysis.aggregate import N_TRIALS, PlotAxes, choose_axes
from analysis.plots import (
    draw_phase,
    draw_success_contour,
    line_figure,
    panel_figure,
    set_axis,
    use_log,
)  # fmt: skip
from sweep import folders
from sweep.schema import DONE

log = logging.getLogger(__name__)

TABLE_FILE = "compare.csv"
BOUNDARIES_FILE = "compare_boundaries.png"
LABEL = "sweep"  # the column naming each sweep in the long tables
COMPARED = "comparison"  # the panel key of the difference maps: "b - a"


class NoSharedGrid(ValueError):
    """The sweeps have no grid point in common, or not the metric compared."""


class Compared(NamedTuple):
    """Sweeps side by side: their labels and folders, every finished cell of each
    (one table, ``sweep`` column: the label), the grid keys, the shared points
    (grid keys, then ``<metric> (<label>)`` per sweep and ``<metric> (<label> -
    <first>)`` per other sweep) and the plot axes of the shared grid."""

    labels: list[str]
    dirs: list[Path]
    cells: pd.DataFrame
    keys: list[str]
    shared: pd.DataFrame
    axes: PlotAxes
    metric: str


def compare(dirs: list[Path], labels: list[str], metric: str) -> Compared:
    """Read the sweeps and match them on their grid keys; NoSharedGrid if no point
    is shared or a sweep lacks the metric, NoResultsError if one has no results."""
    frames = []
    for label, sweep_dir in zip(labels, dirs, strict=True):
        cells = aggregate.load(sweep_dir).cells
        done = cells[cells["status"].isin(DONE) & (cells[N_TRIALS] > 0)]
        if metric not in done or done[metric].isna().all():
            raise NoSharedGrid(f"{sweep_dir}: no cell has the metric {metric}")
        frames.append(done.assign(**{LABEL: label}))
    cells = aggregate.tidy(pd.concat(frames, ignore_index=True))  # one type a key
    by_sweep = [rows for _, rows in cells.groupby(LABEL, sort=False)]
    varying = [aggregate.varying_keys(rows) for rows in by_sweep]
    keys = list(dict.fromkeys(key for found in varying for key in found))
    shared = shared_points(by_sweep, labels, keys, metric)
    if shared.empty:
        raise NoSharedGrid(no_shared_point(by_sweep, labels, keys))
    axes = choose_axes(shared[keys]) if keys else PlotAxes(None, None, ())
    return Compared(labels, list(dirs), cells, keys, shared, axes, metric)


def value_column(metric: str, label: str, first: str | None = None) -> str:
    """The column of a sweep's metric, or (with ``first``) of its difference."""
    return f"{metric} ({label} - {first})" if first else f"{metric} ({label})"


def shared_points(
    by_sweep: list[pd.DataFrame], labels: list[str], keys: list[str], metric: str
) -> pd.DataFrame:
    """A row per grid point every sweep has: the keys, each sweep's metric, and each
    other sweep's difference to the first."""
    tables = [
        rows[keys + [metric]].rename(columns={metric: value_column(metric, label)})
        for rows, label in zip(by_sweep, labels, strict=True)
    ]
    if not keys:  # one cell each: that is the shared point
        shared = pd.concat([t.reset_index(drop=True) for t in tables], axis=1)
    else:
        shared = reduce(lambda a, b: a.merge(b, on=keys), tables)
    first = value_column(metric, labels[0])
    for label in labels[1:]:
        difference = shared[value_column(metric, label)] - shared[first]
        shared[value_column(metric, label, labels[0])] = difference
    return shared.sort_values(keys, ignore_index=True) if keys else shared


def no_shared_point(by_sweep: list[pd.DataFrame], labels, keys) -> str:
    """Why the sweeps share no point: the keys whose values never meet."""
    values = [[{style.fmt(v) for v in rows[k]} for k in keys] for rows in by_sweep]
    disjoint = [
        f"{key}: " + "; ".join(
            f"{label} {', '.join(sorted(v[i]))}"
            for label, v in zip(labels, values, strict=True)
        )
        for i, key in enumerate(keys)
        if not set.intersection(*(v[i] for v in values))
    ]  # fmt: skip
    why = " | ".join(disjoint) or "no combination of their values is in every sweep"
    return f"the sweeps share no grid point of {', '.join(keys)} ({why})"


def differing_keys(compared: Compared) -> pd.DataFrame:
    """The config keys outside the grid whose value differs between the sweeps at
    the shared points: a row per key, a column per sweep (its values)."""
    cells, keys, rows = compared.cells, compared.keys, []
    cells = cells.merge(compared.shared[keys]) if keys else cells  # at shared points
    for key in aggregate.config_columns(cells):
        if key in keys:
            continue
        values = cells.groupby(LABEL, sort=False)[key].agg(
            lambda v: ", ".join(sorted({style.fmt(x) for x in v}))
        )
        if values.nunique() > 1:
            rows.append({"key": key, **values.reindex(compared.labels).to_dict()})
    return pd.DataFrame(rows, columns=["key", *compared.labels])


# --- figures -------------------------------------------------------------------------


def boundaries_figure(compared: Compared) -> Figure:
    """Every sweep's 50 % success contour over its own cells, a colour per sweep, on
    the x and y of the shared grid, a panel per value of the other grid keys."""
    axes, labels = compared.axes, compared.labels
    colors = dict(zip(labels, style.line_colors(len(labels)), strict=True))
    cells = compared.cells
    ticks = {k: pd.to_numeric(cells[k], errors="coerce").to_numpy(float)
             for k in (axes.x, axes.y)}  # fmt: skip

    def draw(ax: Axes, rows: pd.DataFrame) -> None:
        for label, own in rows.groupby(LABEL, sort=False):
            draw_success_contour(ax, own, x=axes.x, y=axes.y, color=colors[label])
        for which, key in (("x", axes.x), ("y", axes.y)):
            set_axis(ax, which, key, ticks[key], log=use_log(key, ticks[key]))

    panels = [k for k in aggregate.varying_keys(cells) if k in compared.keys]
    split = PlotAxes(axes.x, axes.y, tuple(k for k in panels if k not in ticks))
    fig, axs, keys = panel_figure(cells, split, draw)
    lines = [Line2D([], [], color=colors[label], lw=2, label=label) for label in labels]
    fig.legend(handles=lines, loc="outside right upper", fontsize=8, title="sweep")
    note = "a sweep without a line in a panel does not cross 50 % there"
    style.suptitle(fig, "50 % success boundary of each sweep", keys, "", note)
    return fig


def differences(compared: Compared) -> tuple[pd.DataFrame, str]:
    """The shared points in long form, a row per point and other sweep (column
    ``compared``: "b - a"), and the name of the difference column."""
    metric, (first, *others) = compared.metric, compared.labels
    column = f"{metric} difference"
    long = [
        compared.shared[compared.keys].assign(**{
            COMPARED: f"{label} - {first}",
            column: compared.shared[value_column(metric, label, first)],
        })
        for label in others
    ]  # fmt: skip
    return pd.concat(long, ignore_index=True), column


def fixed_words(compared: Compared) -> str:
    """The grid keys that take one value at every shared point: " at method=omp"."""
    shared = compared.shared
    fixed = [k for k in compared.keys if shared[k].nunique(dropna=False) == 1]
    return f" at {style.panel_label(shared.iloc[0], fixed)}" if fixed else ""


def difference_figure(compared: Compared) -> Figure:
    """The metric of every other sweep minus the first's over the shared grid: heat
    maps (diverging colours, 0 white) a panel per comparison and panel combination;
    lines or bars when fewer than two axes are swept."""
    long, column = differences(compared)
    axes = compared.axes
    axes = PlotAxes(axes.x, axes.y, (COMPARED, *axes.panels))
    if axes.x is None or axes.y is None:
        return line_figure(long, axes, column)
    norm = style.symmetric(long[column].to_numpy(float))
    ticks = tuple(long[k].to_numpy(float) for k in (axes.x, axes.y))
    draw = partial(draw_phase, x=axes.x, y=axes.y, metric=column, norm=norm,
                   ticks=ticks, cmap=style.DIVERGING)  # fmt: skip
    fig, axs, keys = panel_figure(long, axes, draw)
    fig.colorbar(ScalarMappable(norm, style.DIVERGING), ax=axs, label=column)
    note = f"red: higher than in {compared.labels[0]}, blue: lower; grey: not shared"
    what = f"{compared.metric} of each sweep minus {compared.labels[0]}'s"
    style.suptitle(fig, what + fixed_words(compared), keys, "", note)
    return fig


# --- the comparison folder -----------------------------------------------------------


def write(compared: Compared, out: Path) -> Path:
    """compare.csv, the figures and report.html into ``out``; returns ``out``. A
    figure that cannot be drawn costs only itself, as in a sweep's analysis."""
    out.mkdir(parents=True, exist_ok=True)
    compared.shared.to_csv(out / TABLE_FILE, index=False)
    drawn = []
    for file, caption, draw in planned(compared):
        if report.save_figure(draw, out / file):
            drawn.append((file, (out / file).read_bytes(), caption))
    text = comparison_page(compared, drawn)
    folders.write_atomic(
        out / report.REPORT_FILE, lambda tmp: Path(tmp).write_text(text)
    )
    log.info("wrote %s", out / report.REPORT_FILE)
    return out


def planned(compared: Compared) -> list[tuple[str, str, object]]:
    """(file, caption, draw) of the comparison's figures: the boundaries where two
    axes are swept and a sweep crosses 50 %, and the difference maps."""
    axes, metric, first = compared.axes, compared.metric, compared.labels[0]
    found = []
    if axes.x and axes.y and "success_rate" in compared.cells:
        found.append((BOUNDARIES_FILE, "The 50 % success contour of each sweep over "
                      f"its own cells, a colour per sweep, on the {axes.y} x {axes.x} "
                      "grid: where each sweep stops recovering.",
                      partial(boundaries_figure, compared)))  # fmt: skip
    shape = "heat maps" if axes.x and axes.y else "lines" if axes.x else "bars"
    found.append((f"compare_{metric}.png", f"The difference of {metric} between each "
                  f"sweep and {first} at every shared grid point ({shape}; red: "
                  f"higher than {first}, blue: lower).",
                  partial(difference_figure, compared)))  # fmt: skip
    return found


def comparison_page(compared: Compared, drawn: list[tuple[str, bytes, str]]) -> str:
    """report.html of a comparison: each sweep's folder and command, the shared
    grid, what the sweeps differ in, the figures and the shared points."""
    commands = []
    for label, sweep_dir in zip(compared.labels, compared.dirs, strict=True):
        commands.append(f"{label}: {sweep_dir}\n  {page.sweep_command(sweep_dir)[0]}")
    shared = compared.shared
    grid = {k: [style.fmt(v) for v in np.sort(shared[k].dropna().unique())]
            for k in compared.keys}  # fmt: skip
    counts = compared.cells.groupby(LABEL).size()
    notes = [
        f"{len(shared)} shared grid points; cells per sweep: "
        + ", ".join(f"{label} {counts[label]}" for label in compared.labels)
    ]
    tables = [
        html.Table("differ", "What the sweeps differ in", "Keys outside the grid "
                   "whose values differ between the sweeps.", differing_keys(compared)),
        html.Table("shared", "Shared grid points", f"The table is {TABLE_FILE}.",
                   shared),
    ]  # fmt: skip
    return html.render_report(
        title=f"Comparison of {', '.join(compared.labels)}", heading="Sweeps",
        command="\n".join(commands), grid=grid, figures=drawn, tables=tables,
        notes=notes,
    )  # fmt: skip
