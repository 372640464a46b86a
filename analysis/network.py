"""The figures of a real network's cells (model=activations, digits_mlp): no ground
truth, so the learned latents are judged against the network's own neurons.

- ``network_frontier.png``: ``explained_variance`` (of H) and ``top_share`` (mean
  selectivity of the latents) of every network cell against its ``l0``, a line per
  method through its dictionary sizes and sparsity settings, a row per other swept
  key (neurons, ...); the neurons' own L0 a dotted vertical line, their mean top
  share a dashed horizontal one.
- ``selectivity.png``: for one cell per method, every latent's top share, sorted,
  beside every neuron's; the most selective neuron a dotted line.
- ``top_inputs_{method}.png``: for that cell, the N_UNITS most selective latents
  and, beside them, the N_UNITS most selective neurons (most often firing, for
  unlabelled rows), each with the held-out samples that activate it most: the
  digit images, or a user file's labels and other columns.

The cells are those of ``truth_cells`` false; the one cell per method is the middle
cell of the swept grid (``one_per_method``). Each figure reads trial 0 of the cells'
units.parquet and examples.parquet through ``sweep.folders``; a file that cannot be
read costs its panel. ``*_figure`` are the builders (frames in, Figure out).
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import style
from analysis.aggregate import (
    CELL_DIR,
    PlotAxes,
    one_per_method,
    panel_groups,
    varying_keys,
)
from analysis.figures import Sweep, figure
from analysis.frontier import (
    L0,
    MARKERS,
    MAX_ROWS,
    MAX_SERIES,
    SERIES_COLORS,
    TRUE_STYLE,
    draw_series,
    finish_rows,
    frontier_cells,
    frontier_rows,
    left_out,
    log_scale,
    series_labels,
)
from sweep import folders
from sweep.metrics import MIN_FIRES
from sweep.schema import EXAMPLES_FILE, UNIT_KINDS, UNITS_FILE

log = logging.getLogger(__name__)

FRONTIER = "network_frontier.png"
SELECTIVITY = "selectivity.png"
TOP_INPUTS = "top_inputs_{method}.png"
PANELS = ("explained_variance", "top_share")  # network_frontier.png: a panel each
NEURON_L0, NEURON_SHARE = "neuron_l0", "neuron_top_share"
N_UNITS = 6  # top_inputs: latents, and neurons, shown
PANEL_LABELS = {
    "explained_variance": "explained variance of H\n(higher is better)",
    "top_share": "top_share: mean share of a latent's\nactivation on its top label"
    " (higher is\nmore selective)",
}
NEURON_STYLE = {"color": "0.35", "linestyle": "--", "lw": 1.2}
KIND_STYLE = {"latent": {"color": SERIES_COLORS(0), "lw": 1.8},
              "neuron": {"color": "0.45", "lw": 1.4, "linestyle": "--"}}  # fmt: skip


def network_cells(results: pd.DataFrame) -> pd.DataFrame:
    """The counted cells of a real network's activations with an l0."""
    return frontier_cells(results, truth=False)


def shown_cells(results: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """One network cell per method (``one_per_method``)."""
    return one_per_method(network_cells(results), axes)


# --- network_frontier.png -------------------------------------------------------------


def frontier_figure(results: pd.DataFrame, *, sweep: str = "") -> Figure:
    """A row of PANELS per row of ``frontier_rows`` of the network cells (lines
    through NETWORK_ALONG): each series against l0, and the row's neurons: their L0
    (dotted) and mean top share (dashed)."""
    cells = network_cells(results)
    keys, by, rows = frontier_rows(results, truth=False)
    shown = rows[:MAX_ROWS]
    labels = series_labels(rows)
    drawn = labels[:MAX_SERIES]
    fig = Figure(figsize=(4.6 * len(PANELS) + 1.2, 3.4 * max(1, len(shown)) + 1.6),
                 layout="constrained")  # fmt: skip
    axs = fig.subplots(max(1, len(shown)), len(PANELS), squeeze=False, sharex=True)
    handles: dict[str, object] = {}
    for r, (values, series) in enumerate(shown):
        part = pd.concat([s.cells for s in series])
        for ax, metric in zip(axs[r], PANELS, strict=True):
            for s in series:
                if s.label in drawn:
                    j = drawn.index(s.label)
                    draw_series(ax, s, metric, color=SERIES_COLORS(j % 10),
                                marker=MARKERS[j % len(MARKERS)])  # fmt: skip
            _baseline(ax, part, NEURON_L0, "the neurons' L0", vertical=True)
            if metric == "top_share":
                _baseline(ax, part, NEURON_SHARE, "the neurons' mean top share")
            row = f"{style.panel_label(values, keys)}\n" if keys else ""
            style.title(ax, f"{row}{metric}", fontsize=8)
            ax.set_ylabel(PANEL_LABELS[metric], fontsize=8)
            ax.set_xlabel("L0: mean active latents per held-out sample", fontsize=8)
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
    finish_rows(fig, axs, handles, log_x=log_scale(cells[L0]),
                empty="" if shown else "no network cell with an l0")  # fmt: skip
    what = (f"a real network's activations: reconstruction and selectivity against"
            f" sparsity (L0), a line per {', '.join(by) or 'method'} through its"
            " dictionary sizes")  # fmt: skip
    style.suptitle(fig, what + (f"; a row per {', '.join(keys)}" if keys else ""),
                   (), sweep, left_out(rows, keys, labels))  # fmt: skip
    return fig


def _baseline(ax: Axes, cells: pd.DataFrame, column: str, label: str, *,
              vertical: bool = False) -> None:  # fmt: skip
    """The mean of ``column`` over ``cells`` as a line (none without values)."""
    values = pd.to_numeric(cells.get(column, pd.Series(dtype=float)), errors="coerce")
    if values.notna().any():
        if vertical:
            ax.axvline(values.mean(), label=label, **TRUE_STYLE)
        else:
            ax.axhline(values.mean(), label=label, **NEURON_STYLE)


def _any_network(sweep: Sweep) -> bool:
    return not network_cells(sweep.results).empty


@figure(
    FRONTIER, when=_any_network,
    caption="A real network's activations, no ground truth: the explained variance"
    " of H (higher is better) and the mean top share of the latents (the share of a"
    " latent's activation mass on its most frequent label; higher is more"
    " selective) against L0 (mean active latents per held-out sample), each the"
    " mean over trials, a line per method through its dictionary sizes"
    " (n_features) and sparsity settings. Dotted: the neurons' own L0; dashed: the"
    " neurons' mean top share, the baseline a dictionary should beat.",
)  # fmt: skip
def frontier_of(sweep: Sweep) -> Figure:
    """network_frontier.png of the sweep's network cells."""
    return frontier_figure(sweep.results, sweep=sweep.name)


# --- reading one cell -----------------------------------------------------------------


@dataclass
class Units:
    """One cell's trial 0: its units (kind, unit, fire_rate, top_share, ...) and
    their examples (kind, unit, rank, activation, label, text, image)."""

    title: str
    units: pd.DataFrame
    examples: pd.DataFrame


def read_units(cell_dir, title: str) -> Units:
    """Trial 0 of a cell's units.parquet and examples.parquet."""
    units = folders.read_table(cell_dir / UNITS_FILE)
    examples = folders.read_table(cell_dir / EXAMPLES_FILE)
    units, examples = units[units["trial"] == 0], examples[examples["trial"] == 0]
    if units.empty:
        raise ValueError(f"no trial 0 in {cell_dir / UNITS_FILE}")
    return Units(title, units, examples)


def _cells_units(sweep: Sweep, cells: pd.DataFrame) -> list[Units]:
    """``read_units`` of each cell; one that cannot be read is left out, logged."""
    found = []
    for _, cell in cells.iterrows():
        try:
            title = style.panel_label(cell, ["method", "n_features", "neurons"])
            found.append(read_units(sweep.dir / cell[CELL_DIR], title))
        except Exception as err:  # a bad file costs its panel
            log.warning("no units for %s: %s", cell[CELL_DIR], err)
    return found


def top_units(units: pd.DataFrame, kind: str, n: int = N_UNITS) -> pd.DataFrame:
    """The n units of a kind shown: the most selective (top_share, then fire_rate),
    or without labels the most often firing; units that never fire left out."""
    part = units[(units["kind"] == kind) & (units["fire_rate"] > 0)]
    order = ["top_share", "fire_rate"] if part["top_share"].notna().any() else [
        "fire_rate"]  # fmt: skip
    return part.sort_values(order, ascending=False, na_position="last",
                            kind="stable").head(n)  # fmt: skip


# --- selectivity.png ------------------------------------------------------------------


def selectivity_figure(cells: list[Units], *, sweep: str = "") -> Figure:
    """A panel per cell: the top share of every latent and of every neuron, each
    sorted from the most selective; the most selective neuron a dotted line."""
    fig, axs = style.panel_grid(max(1, len(cells)), width=4.2, height=3.3)
    for ax, cell in zip(axs, cells, strict=False):
        best, above = np.nan, 0
        for kind in UNIT_KINDS:
            share = cell.units.loc[cell.units["kind"] == kind, "top_share"].dropna()
            share = np.sort(share.to_numpy(float))[::-1]
            if share.size:
                ax.plot(np.arange(1, share.size + 1), share, label=f"{kind}s",
                        **KIND_STYLE[kind])  # fmt: skip
            if kind == "neuron" and share.size:
                best = share[0]
        latents = cell.units.loc[cell.units["kind"] == "latent", "top_share"]
        above = int((latents > best).sum()) if np.isfinite(best) else 0
        if np.isfinite(best):
            ax.axhline(best, label="the most selective neuron", **TRUE_STYLE)
        style.title(ax, f"{cell.title}\n{above} latents above the best neuron",
                    fontsize=8)  # fmt: skip
        ax.set_xlabel("unit, most selective first", fontsize=8)
        ax.set_ylabel("top share (higher is more selective)", fontsize=8)
        ax.legend(fontsize=7)
    if not cells:
        style.note(axs[0], "no units could be read")
    style.outer_labels(axs)
    what = ("selectivity of learned latents against the network's neurons (top"
            " share: a unit's share of activation mass on its top label), trial 0")
    style.suptitle(fig, what, ("method",), sweep, f"units firing on fewer than"
                   f" {MIN_FIRES} held-out samples are not judged")  # fmt: skip
    return fig


def _labelled(sweep: Sweep) -> bool:
    cells = network_cells(sweep.results)
    return "top_share" in cells and cells["top_share"].notna().any()


@figure(
    SELECTIVITY, when=_labelled,
    caption="How selective the learned latents are, against the network's own"
    " neurons: each unit's top share (the share of its activation mass on its most"
    " frequent label; 1: one label only; higher is more selective), sorted, for one"
    " cell per method (the middle cell of the swept grid), trial 0. Dotted: the most"
    " selective neuron; the panel title counts the latents above it.",
)  # fmt: skip
def selectivity_of(sweep: Sweep) -> Figure:
    """selectivity.png: a panel per method's shown cell."""
    cells = _cells_units(sweep, shown_cells(sweep.results, sweep.axes))
    return selectivity_figure(cells, sweep=sweep.name)


# --- top_inputs_{method}.png ----------------------------------------------------------


def top_inputs_figure(cell: Units, *, sweep: str = "") -> Figure:
    """Two columns, latents then neurons (``top_units``): a row per unit with its
    examples, most active first: images side by side, each with its label and
    activation under it; or, without images, the label and text of each."""
    images = "image" in cell.examples and cell.examples["image"].notna().any()
    fig = Figure(figsize=(13, 1.25 * N_UNITS + 1.6 if images else 1.1 * N_UNITS + 1.6),
                 layout="constrained")  # fmt: skip
    axs = fig.subplots(N_UNITS, len(UNIT_KINDS), squeeze=False)
    for c, kind in enumerate(UNIT_KINDS):
        shown = top_units(cell.units, kind)
        for r in range(N_UNITS):
            ax = axs[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r >= len(shown):
                ax.axis("off")
                continue
            unit = shown.iloc[r]
            rows = cell.examples[(cell.examples["kind"] == kind)
                                 & (cell.examples["unit"] == unit["unit"])]
            rows = rows.sort_values("rank")  # fmt: skip
            (_draw_images if images else _draw_texts)(ax, rows)
            share = "" if pd.isna(unit["top_share"]) else (
                f", top share {unit['top_share']:.2f} on {unit['top_label']}")
            ax.set_ylabel(f"{kind} {int(unit['unit'])}", fontsize=7)
            ax.set_title(f"{kind} {int(unit['unit'])}: fires on"
                         f" {unit['fire_rate']:.0%}{share}", fontsize=7, loc="left")
        if shown.empty:
            style.note(axs[0, c], f"no {kind} fires")
    what = (f"{cell.title}: the held-out samples that activate each unit most (trial"
            " 0), the most selective learned latents (left) beside the most"
            " selective neurons (right)")  # fmt: skip
    style.suptitle(fig, what, (), sweep, "under each: label, activation")
    return fig


def _draw_images(ax: Axes, rows: pd.DataFrame) -> None:
    """The examples' square images side by side (a blank column between), each
    labelled under it."""
    tiles = [np.asarray(image, float) for image in rows["image"]]
    side = int(round(np.sqrt(tiles[0].size))) if tiles else 1
    gap = np.full((side, 1), np.nan)
    strip = [part for t in tiles for part in (t.reshape(side, side), gap)]
    ax.imshow(np.hstack(strip) if strip else gap, cmap="gray_r",
              interpolation="nearest")  # fmt: skip
    ax.set_xticks([(side + 1) * i + (side - 1) / 2 for i in range(len(tiles))])
    ax.set_xticklabels([f"{label}, {act:.2g}" for label, act in
                        zip(rows["label"].fillna(""), rows["activation"], strict=True)],
                       fontsize=6)  # fmt: skip
    ax.tick_params(length=0)


def _draw_texts(ax: Axes, rows: pd.DataFrame) -> None:
    """The examples' labels and other columns as text, side by side."""
    n = max(1, len(rows))
    for i, (_, row) in enumerate(rows.iterrows()):
        words = [w for w in (row.get("label"), row.get("text")) if w and pd.notna(w)]
        text = "\n".join([*words[:2], f"{row['activation']:.3g}"])
        ax.text((i + 0.5) / n, 0.5, text, ha="center", va="center", fontsize=6,
                transform=ax.transAxes, wrap=True)  # fmt: skip


def _methods(sweep: Sweep) -> list[dict[str, str]]:
    cells = shown_cells(sweep.results, sweep.axes)
    return [{"method": str(m)} for m in cells.get("method", [])]


@figure(
    TOP_INPUTS, when=_methods,
    caption="What the units of method={method} respond to: for its cell (the middle"
    " cell of the swept grid), the held-out samples that activate the most selective"
    " learned latents most (left), beside those of the most selective neurons"
    " (right); under each sample its label and activation (a user file: its label"
    " and other columns).",
)  # fmt: skip
def top_inputs_of(sweep: Sweep, method: str) -> Figure:
    """top_inputs_{method}.png of the method's shown cell."""
    cells = shown_cells(sweep.results, sweep.axes)
    found = _cells_units(sweep, cells[cells["method"].astype(str) == method])
    if not found:
        raise ValueError(f"no units of method={method} could be read")
    return top_inputs_figure(found[0], sweep=sweep.name)


# --- trust: the metrics without ground truth against mcc, where truth is known ---

# The metrics without ground truth, each with its direction (+1: higher is better)
NO_TRUTH = {"top_share": 1, "label_entropy": -1, "explained_variance": 1,
            "above_best_neuron": 1}  # fmt: skip
TRUTH = "mcc"  # the ground-truth ranking they are checked against
MIN_CELLS = 4  # a rank correlation over fewer cells says little


def agreement(results: pd.DataFrame) -> pd.DataFrame:
    """Whether the metrics without ground truth rank learned methods as ``mcc``
    does, where truth is known (a toy model's samples labelled by their most
    active feature, ``pipeline.labelled``): per setting of the swept keys other
    than method.* and n_train (the same data and model), over its counted learned
    cells (MIN_CELLS at least), the Spearman rank correlation of mcc with each of
    NO_TRUTH, signed so that +1 is the same ranking. Columns: the keys, cells, a
    column per metric; none: an empty frame."""
    cells = frontier_cells(results)
    if TRUTH not in cells or "top_share" not in cells:
        return pd.DataFrame()
    cells = cells[cells[TRUTH].notna() & cells["top_share"].notna()]
    keys = [k for k in varying_keys(cells) if k != "method"
            and not k.startswith("method.") and k != "n_train"]  # fmt: skip
    rows = []
    for values, group in panel_groups(cells, keys):
        if len(group) < MIN_CELLS:
            continue
        truth = pd.to_numeric(group[TRUTH])
        rows.append(values | {"cells": len(group)} | {
            metric: sign * _spearman(truth, pd.to_numeric(group[metric]))
            for metric, sign in NO_TRUTH.items() if metric in group
        })  # fmt: skip
    return pd.DataFrame(rows)


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation (ties: mean ranks) over the pairs where both are
    known; NaN for fewer than MIN_CELLS pairs or a constant side."""
    known = a.notna() & b.notna()
    a, b = a[known], b[known]
    if len(a) < MIN_CELLS or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(a.rank().corr(b.rank()))
