"""Analyse a sweep folder: read its files, write tables and figures into analysis/."""

import logging
import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import aggregate, html, learned, page, plots, toy, transition
from analysis.aggregate import CELL_DIR, PlotAxes
from sweep import folders
from sweep.schema import ANALYSIS_DIR, DONE, SAMPLES_FILE

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"  # one row per cell: means and standard errors
CAPACITY_FILE = "capacity.csv"  # per panel and neurons: largest sparsity at 50 %
CELLS_FILE = "cells.csv"  # one row per cell folder: status, error, trial rows read
BOUNDARY_FILE = "boundary.csv"  # measured 50 % boundary of L1 panels vs theory
BOUNDARY_FIGURE = "boundary.png"  # the Donoho-Tanner picture of those panels
REPORT_FILE = "report.html"  # one self-contained page: command, grid, figures, tables
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
    boundary = _boundary(trials, axes, out)
    figures = _write_figures(sweep_dir, results, axes, capacity, boundary, out)
    try:  # like a figure: a page that cannot be made costs only itself
        text = report_page(sweep_dir, results, axes, cells, boundary, figures)
        folders.write_atomic(out / REPORT_FILE, lambda tmp: Path(tmp).write_text(text))
    except Exception:
        log.exception("could not write %s", out / REPORT_FILE)
    else:
        log.info("wrote %s", out / REPORT_FILE)
    return out


def _boundary(trials: pd.DataFrame, axes: PlotAxes, out: Path) -> pd.DataFrame:
    """The measured 50 % boundaries of exact-L1 panels vs theory: boundary.csv and
    the log; empty (and no stale file left) if no panel has one or it fails."""
    try:
        boundary = transition.boundaries(trials[trials["status"].isin(DONE)], axes)
    except Exception:
        log.exception("could not measure the 50 %% success boundaries")
        boundary = pd.DataFrame(columns=transition.BOUNDARY_COLUMNS)
    if len(boundary):
        _write_table(boundary, out / BOUNDARY_FILE)
        log_boundary(boundary)
    else:  # an earlier analysis of this folder may have left them
        for stale in (BOUNDARY_FILE, BOUNDARY_FIGURE):
            (out / stale).unlink(missing_ok=True)
    return boundary


def report_page(
    sweep_dir: Path, results, axes: PlotAxes, cells, boundary, figures: list[str]
) -> str:
    """report.html: the command and grid, every figure written, the best method per
    cell, the cells that did not finish."""
    command, grid = page.sweep_command(sweep_dir)
    out = sweep_dir / ANALYSIS_DIR
    return html.render_report(
        title=f"Sweep {sweep_dir.name}", command=command, grid=grid,
        figures=[(f, (out / f).read_bytes(), page.caption(f)) for f in figures],
        best=page.best_methods(results, axes), problems=page.problems(cells),
        notes=transition.verdicts(boundary),
    )  # fmt: skip


def log_boundary(boundary: pd.DataFrame) -> None:
    """The measured 50 % boundary next to the L1 theory, as a table in the log."""
    columns = ["neurons", "m_over_n", "p50", "p50_se", "psi_p50", "gap", "theory_p"]
    for panel, rows in boundary.groupby("panel", sort=False):
        table = rows[columns].to_string(index=False, float_format="{:.4f}".format)
        log.info("50 %% success boundary vs L1 theory, %s:\n%s", panel, table)
    for line in transition.verdicts(boundary):
        log.info("%s", line)


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Parquet or CSV by the file's suffix, atomically."""
    if path.suffix == ".parquet":
        folders.write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        folders.write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
    log.info("wrote %s: %d rows", path, len(frame))


def _write_figures(
    sweep_dir: Path, results, axes: PlotAxes, capacity, boundary, out: Path
) -> list[str]:
    """Every PNG; a figure that fails is logged and the others are still drawn.
    Returns the files written."""
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
    if len(boundary):  # L1 solvers on model=random: the Donoho-Tanner picture
        figures.append((BOUNDARY_FIGURE, transition.boundary_figure, (boundary,)))
    what = f"x={axes.x}, y={axes.y}, panels={', '.join(axes.panels) or 'none'}"
    listed = [(*figure, what) for figure in figures]
    listed += [(*f, "toy models") for f in toy.figures(sweep_dir, results)]
    listed += [(*f, "learned atoms") for f in learned.figures(sweep_dir, results, axes)]
    return [
        file
        for file, draw, args, about in listed
        if _save(partial(draw, *args, sweep=sweep_dir.name), out / file, about)
    ]


def _save(draw, path: Path, what: str) -> bool:
    """Draw one figure and write it as PNG (atomically); log, never raise."""
    try:
        fig = draw()
        folders.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    except Exception:  # one bad figure must not cost the others
        log.exception("could not draw %s", path)
        return False
    log.info("wrote %s (%s)", path, what)
    return True


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
    frame = folders.read_table(cell_dir / SAMPLES_FILE)
    if frame.empty:
        raise ValueError(f"empty {SAMPLES_FILE} in {cell_dir}")
    if not (frame["trial"] == trial).any():
        trial = frame["trial"].min()
    frame = frame[frame["trial"] == trial]
    X = frame.pivot_table(index="sample", columns="feature", values="true")
    X_hat = frame.pivot_table(index="sample", columns="feature", values="recovered")
    return X.to_numpy(float), X_hat.reindex_like(X).to_numpy(float)
