"""Analyse a sweep folder: read its files, write tables and figures into analysis/."""

import logging
import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import aggregate, learned, plots, toy
from analysis.aggregate import CELL_DIR, PlotAxes
from sweep import folders
from sweep.schema import ANALYSIS_DIR, SAMPLES_FILE

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"  # one row per cell: means and standard errors
CAPACITY_FILE = "capacity.csv"  # per panel and neurons: largest sparsity at 50 %
CELLS_FILE = "cells.csv"  # one row per cell folder: status, error, trial rows read
PHASE_METRICS = ("success_rate", "nmse", "support_f1")  # phase_* and capacity_*.png
LEARNED_METRICS = ("mcc", "n_recovered")  # also drawn, for the cells that have them
DPI = 120
MAX_HEATMAP_ROWS = 6  # data cells shown in heatmaps.png
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")  # Hydra's sweep names


def find_latest_sweep(root: Path) -> Path | None:
    """The newest sweep folder in ``root/sweeps`` (None if there is none).

    Newest by the timestamp that starts its name (which sorts as text); a folder
    without one counts as older than any with one. Never under ``root/reference``.
    """
    sweeps, reference = Path(root) / "sweeps", (Path(root) / "reference").resolve()
    if not sweeps.is_dir():
        return None
    found = [
        path
        for path in sweeps.iterdir()
        if path.is_dir() and not path.resolve().is_relative_to(reference)
    ]
    return max(
        found, key=lambda p: (bool(TIMESTAMP.match(p.name)), p.name), default=None
    )


def run(sweep_dir: Path) -> Path:
    """Analyse ``sweep_dir`` into ``sweep_dir/analysis``; return that folder.

    Raises ``analysis.aggregate.NoResultsError`` if no metrics file can be read.
    """
    sweep_dir = Path(sweep_dir)
    trials, cells = aggregate.load_sweep(sweep_dir)
    results = aggregate.aggregate_trials(trials)
    axes = aggregate.choose_axes(results)
    capacity = aggregate.capacity_number(results, axes)
    out = sweep_dir / ANALYSIS_DIR
    _write_table(results, out / RESULTS_FILE)
    _write_table(capacity, out / CAPACITY_FILE)
    _write_table(cells, out / CELLS_FILE)
    _write_figures(sweep_dir, results, axes, capacity, out)
    return out


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Parquet or CSV by the file's suffix, atomically."""
    if path.suffix == ".parquet":
        folders.write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        folders.write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
    log.info("wrote %s: %d rows", path, len(frame))


def _write_figures(sweep_dir: Path, results, axes: PlotAxes, capacity, out: Path):
    """Every PNG; a figure that fails is logged and the others are still drawn."""
    figures = []  # (file, function, its arguments)
    for metric in PHASE_METRICS:  # draw only what the results hold
        if metric not in results:
            log.warning("no %s column: no phase or capacity plot of it", metric)
            continue
        figures += [
            (f"phase_{metric}.png", plots.phase_figure, (results, axes, metric)),
            (f"capacity_{metric}.png", plots.capacity_figure, (results, axes, metric)),
        ]
    for metric in LEARNED_METRICS:  # only the learned methods' cells have them
        if metric in results and results[metric].notna().any():
            rows = results[results[metric].notna()]
            figures += [
                (f"phase_{metric}.png", plots.phase_figure, (rows, axes, metric)),
                (f"capacity_{metric}.png", plots.capacity_figure, (rows, axes, metric)),
            ]
    figures += [
        ("capacity_number.png", plots.capacity_number_figure, (capacity, axes)),
        ("heatmaps.png", _heatmap_figure, (sweep_dir, results, axes)),
    ]
    what = f"x={axes.x}, y={axes.y}, panels={', '.join(axes.panels) or 'none'}"
    for file, draw, args in figures:
        _save(partial(draw, *args, sweep=sweep_dir.name), out / file, what)
    for file, draw, args in toy.figures(sweep_dir, results):  # trained models only
        _save(partial(draw, *args, sweep=sweep_dir.name), out / file, "toy models")
    for file, draw, args in learned.figures(
        sweep_dir, results, axes
    ):  # learned methods
        _save(partial(draw, *args, sweep=sweep_dir.name), out / file, "learned atoms")


def _save(draw, path: Path, what: str) -> None:
    """Draw one figure and write it as PNG (atomically); log, never raise."""
    try:
        fig = draw()
        folders.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    except Exception:  # one bad figure must not cost the others
        log.exception("could not draw %s", path)
        return
    log.info("wrote %s (%s)", path, what)


def _heatmap_figure(sweep_dir: Path, results, axes: PlotAxes, *, sweep: str):
    """heatmaps.png: true X and each method's X_hat in the representative cells."""
    method_keys = [k for k in axes.panels if k.split(".", 1)[0] == "method"]
    shown = aggregate.label_keys(results, method_keys)
    data_keys = [
        k for k in (*axes.panels, axes.y, axes.x) if k and k not in method_keys
    ]
    rows = []
    for cells in aggregate.representative_cells(results, axes)[:MAX_HEATMAP_ROWS]:
        loaded = []
        for _, cell in cells.iterrows():
            try:
                X, X_hat = load_samples(sweep_dir / cell[CELL_DIR])
            except Exception as err:  # a bad file costs its panel, not the figure
                log.warning("no samples for %s: %s", cell[CELL_DIR], err)
                continue
            loaded.append((X, (plots.panel_label(cell, shown), X_hat)))
        if loaded:  # X is the same for every method: paired data
            title = plots.panel_label(cells.iloc[0], data_keys)
            rows.append(plots.HeatmapRow(title, loaded[0][0], [h for _, h in loaded]))
    return plots.heatmap_figure(rows, sweep=sweep)


def load_samples(cell_dir: Path, *, trial: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X and X_hat of one trial (else the first) from samples.parquet: both
    (n_samples, n_features)."""
    frame = pd.read_parquet(cell_dir / SAMPLES_FILE)
    if frame.empty:
        raise ValueError(f"empty {SAMPLES_FILE} in {cell_dir}")
    if not (frame["trial"] == trial).any():
        trial = frame["trial"].min()
    frame = frame[frame["trial"] == trial]
    X = frame.pivot_table(index="sample", columns="feature", values="true")
    X_hat = frame.pivot_table(index="sample", columns="feature", values="recovered")
    return X.to_numpy(float), X_hat.reindex_like(X).to_numpy(float)
