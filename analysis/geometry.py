"""Recovery against the dictionary's geometry: how much features' directions overlap.

Every cell reports ``coherence``: per trial, of the model's W, the mean over features
of the largest |cos| between its column and another's (``sweep.metrics.coherence``);
results.parquet holds its mean over trials. Sweeping the random model's geometry
(``model.geometry=gaussian,orthogonal``, ``model.target_cos``), the neurons or the
features changes it.

- ``coherence.png``: success rate (left) and NMSE (right) of each cell against its
  coherence, a line per method and per value of any other swept key that leaves the
  coherence as it is (``line_keys``), markers joined in order of coherence. Drawn
  where the coherence differs between cells of one method (older sweeps have no
  such column: not drawn).
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import style
from analysis.aggregate import (
    AXIS_EXCLUDED,
    PlotAxes,
    label_keys,
    panel_groups,
    varying_keys,
)  # fmt: skip
from analysis.figures import Sweep, figure
from analysis.plots import DASHES, MARKERS, METRIC_LABELS, NMSE_FLOOR

FILE = "coherence.png"
COHERENCE = "coherence"
METRICS = ("success_rate", "nmse")  # left and right panel
LOG_METRICS = ("nmse",)  # a log y axis, if any value is positive
MAX_LINES = 6  # lines drawn: the first, in the order of their keys' values
TOLERANCE = 1e-9  # coherences closer than this are the same (it lies in [0, 1])
X_LABEL = (
    "coherence: mean over features of the largest\n"
    "|cos| between its column of W and another's"
)
DEFINITION = (
    "coherence, the mean over features of the largest |cos| between a feature's "
    "column of W and another's (the mean over trials; lower: features more apart)"
)


def _floats(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def _coherence(results: pd.DataFrame) -> pd.Series:
    """Each cell's coherence as floats; NaN in a sweep without the column."""
    if COHERENCE not in results:
        return pd.Series(np.nan, index=results.index)
    return _floats(results[COHERENCE])


def _spread(values: pd.Series, by: list[str], frame: pd.DataFrame) -> pd.Series:
    """max - min of ``values`` within each group of ``frame`` by ``by`` (NaN left
    out); one group if ``by`` is empty."""
    keys = [frame[key] for key in by] or [pd.Series(0, index=frame.index)]
    grouped = values.groupby(keys, dropna=False)
    return grouped.max() - grouped.min()


def differs(results: pd.DataFrame) -> bool:
    """Whether the coherence differs between two cells of one method (False
    without the column: a sweep older than it)."""
    values = _coherence(results)
    by = ["method"] if "method" in results else []
    return bool((_spread(values, by, results) > TOLERANCE).any())


def coherence_keys(results: pd.DataFrame) -> list[str]:
    """The swept keys that change the coherence: two cells that differ in this key
    alone have different coherences (neurons, n_features, model.geometry,
    model.target_cos, ...; for a trained model, maybe its data keys too)."""
    varying = varying_keys(results)
    values = _coherence(results)
    return [
        key for key in varying
        if (_spread(values, [k for k in varying if k != key], results)
            > TOLERANCE).any()
    ]  # fmt: skip


def line_keys(results: pd.DataFrame, axes: PlotAxes) -> list[str]:
    """The keys that split the cells into lines: the method's, then every other
    swept key (the plot axes and panels) that does not change the coherence; a
    method parameter that takes one value per method is left out."""
    changing = set(coherence_keys(results))
    keys = [
        key for key in (*axes.panels, axes.x, axes.y)
        if key and key not in changing and key not in AXIS_EXCLUDED
    ]  # fmt: skip
    keys.sort(key=lambda key: key.split(".", 1)[0] != "method")  # stable
    return label_keys(results, keys)


def lines_of(results: pd.DataFrame, axes: PlotAxes):
    """(line keys, every line's (values of the keys, its cells by coherence)) of the
    cells that have a coherence."""
    coherence = _coherence(results)
    rows = results[coherence.notna()].assign(**{COHERENCE: coherence})
    keys = line_keys(results, axes)
    lines = [
        (values, cells.sort_values(COHERENCE, kind="stable"))
        for values, cells in panel_groups(rows, keys)
    ]  # fmt: skip
    return keys, lines


def _log_y(results: pd.DataFrame, metric: str) -> bool:
    return metric in LOG_METRICS and bool((_floats(results[metric]) > 0).any())


def coherence_figure(results: pd.DataFrame, axes: PlotAxes, *, sweep: str = ""):
    """success_rate and nmse against coherence, a panel each; a line per line
    (``lines_of``, the first MAX_LINES), the same look in both panels."""
    keys, lines = lines_of(results, axes)
    shown = lines[:MAX_LINES]
    metrics = [m for m in METRICS if m in results]
    fig = Figure(figsize=(4.2 * max(len(metrics), 1) + 1.4, 4.8), layout="constrained")
    axs = fig.subplots(1, max(len(metrics), 1), squeeze=False, sharex=True).ravel()
    colors = style.line_colors(len(shown))
    for ax, metric in zip(axs, metrics, strict=False):
        for i, (values, cells) in enumerate(shown):
            y = _floats(cells[metric]).to_numpy(float)
            if metric in LOG_METRICS:
                y = np.clip(y, NMSE_FLOOR, None)
            label = ", ".join(style.fmt(values[k]) for k in keys) or "all cells"
            ax.plot(cells[COHERENCE].to_numpy(float), y, label=label, ms=5, lw=1.4,
                    color=colors[i], marker=MARKERS[i % len(MARKERS)],
                    linestyle=DASHES[i % len(DASHES)])  # fmt: skip
        ax.set_xlabel(X_LABEL, fontsize=8)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        if _log_y(results, metric):
            ax.set_yscale("log", nonpositive="clip")
        elif metric == "success_rate":
            ax.set_ylim(-0.03, 1.03)
    if not metrics:
        style.note(axs[0], "no success_rate or nmse")
    handles, labels = axs[0].get_legend_handles_labels()
    if len(handles) > 1 or keys:
        fig.legend(handles, labels, loc="outside lower center", fontsize=7,
                   ncols=min(3, len(labels)), title=", ".join(keys) or None,
                   title_fontsize=7)  # fmt: skip
    what = "recovery against the dictionary's coherence"
    what += f", a line per {', '.join(keys)}" if keys else ""
    note = "lower coherence: features more apart"
    if len(lines) > MAX_LINES:
        note += f"; the first {MAX_LINES} of {len(lines)} lines"
    style.suptitle(fig, what, (), sweep, note)
    return fig


def coherence_caption(sweep: Sweep) -> str:
    """The caption of coherence.png: what is plotted, coherence in a clause, which
    way is better, the lines."""
    results = sweep.results
    keys, lines = lines_of(results, sweep.axes)
    per = f"a line per {', '.join(keys)}" if keys else "one line"
    if len(lines) > MAX_LINES:
        per += f" (the first {MAX_LINES} of {len(lines)} lines)"
    log = ", log scale" if _log_y(results, "nmse") else ""
    changing = coherence_keys(results)
    by = f" The coherence changes here with {', '.join(changing)}." if changing else ""
    return (
        f"Recovery against the dictionary's measured overlap: each cell's success rate"
        f" (left; higher is better) and NMSE (right{log}; lower is better), the means"
        f" over trials, against its {DEFINITION}; {per}, markers joined in order of"
        f" coherence.{by}"
    )


def _applies(sweep: Sweep) -> bool:
    """Whether coherence.png has something to show: the coherence differs between
    cells of one method (a sweep without the column: never)."""
    return differs(sweep.results)


@figure(FILE, caption=coherence_caption, when=_applies)
def coherence_of(sweep: Sweep) -> Figure:
    """coherence.png: ``coherence_figure`` of the sweep's cells."""
    return coherence_figure(sweep.results, sweep.axes, sweep=sweep.name)
