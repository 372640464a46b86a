"""Analyse a sweep folder: read its files, write tables and figures into analysis/."""

import logging
from pathlib import Path

import pandas as pd

from analysis import aggregate, figures, html, page, plots, transition
from analysis.aggregate import Loaded
from analysis.network import agreement
from analysis.page import MULTIRUN_FILE
from analysis.style import DPI
from sweep import folders
from sweep.schema import ANALYSIS_DIR, METRICS_FILE, STATUS_FILE

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"  # one row per cell: means and standard errors
CAPACITY_FILE = "capacity.csv"  # per panel and neurons: largest sparsity at 50 %
CELLS_FILE = "cells.csv"  # one row per cell folder: status, error, trial rows read
BOUNDARY_FILE = "boundary.csv"  # measured 50 % boundary of L1 panels vs theory
TRUST_FILE = "trust.csv"  # toy models: no-truth metrics' rank correlation with mcc
REPORT_FILE = "report.html"  # one self-contained page: command, grid, figures, tables


def is_sweep(path: Path) -> bool:
    """Whether a folder is a sweep: it holds grid.json or multirun.yaml, or a cell
    folder (``folders.cell_dirs``) with a status.json or metrics.parquet."""
    if any((path / mark).is_file() for mark in (folders.GRID_FILE, MULTIRUN_FILE)):
        return True
    cells = folders.cell_dirs(path)
    return any(
        (c / STATUS_FILE).is_file() or (c / METRICS_FILE).is_file() for c in cells
    )


def sweeps_inside(path: Path, *, depth: int = 2) -> list[Path]:
    """The sweeps among a folder's subfolders, down to ``depth`` levels (outputs/:
    outputs/reference, outputs/sweeps/<stamp>); a sweep's own subfolders are not
    searched. Sorted."""
    found = []
    for sub in sorted(p for p in Path(path).iterdir() if p.is_dir()):
        if is_sweep(sub):
            found.append(sub)
        elif depth > 1:
            found += sweeps_inside(sub, depth=depth - 1)
    return found


def run(sweep_dir: Path) -> Path:
    """Analyse ``sweep_dir`` into ``sweep_dir/analysis``; return that folder.

    Raises ``analysis.aggregate.NoResultsError`` if no metrics file can be read.
    """
    sweep_dir = Path(sweep_dir)
    trials, cells = aggregate.load_sweep(sweep_dir)
    sweep = analysed(sweep_dir, aggregate.summarise(sweep_dir, trials))
    out = sweep_dir / ANALYSIS_DIR
    _write_table(sweep.results, out / RESULTS_FILE)
    _write_table(sweep.capacity, out / CAPACITY_FILE)
    _write_table(cells, out / CELLS_FILE)
    _write_boundary(sweep.boundary, out / BOUNDARY_FILE)
    trust = _agreement(sweep.results)
    _write_rows(trust, out / TRUST_FILE)
    drawn = _write_figures(sweep, out)
    try:  # like a figure: a page that cannot be made costs only itself
        text = report_page(sweep, cells, drawn, trust)
        folders.write_atomic(out / REPORT_FILE, lambda tmp: Path(tmp).write_text(text))
    except Exception:
        log.exception("could not write %s", out / REPORT_FILE)
    else:
        log.info("wrote %s", out / REPORT_FILE)
    return out


def analysed(sweep_dir: Path, loaded: Loaded) -> figures.Sweep:
    """What the figures of a loaded sweep are drawn from: its cells, the plot axes,
    the capacity numbers, the measured 50 % boundaries of exact-L1 panels and the
    per-feature rows."""
    axes = aggregate.choose_axes(loaded.cells)
    capacity = aggregate.capacity_number(loaded.cells, axes)
    boundary = _measure_boundary(loaded.trials, axes)
    return figures.Sweep(
        Path(sweep_dir), loaded.cells, axes, capacity, boundary, loaded.features
    )


def _agreement(results: pd.DataFrame) -> pd.DataFrame:
    """``network.agreement`` of the cells; no rows if it fails (logged)."""
    try:
        return agreement(results)
    except Exception:
        log.exception("could not rank the metrics without ground truth against mcc")
        return pd.DataFrame()


def _measure_boundary(trials: pd.DataFrame, axes: aggregate.PlotAxes) -> pd.DataFrame:
    """``transition.boundaries`` of the finished trials; no rows if it fails."""
    try:
        return transition.boundaries(trials, axes)
    except Exception:
        log.exception("could not measure the 50 %% success boundaries")
        return pd.DataFrame(columns=transition.BOUNDARY_COLUMNS)


def _write_boundary(boundary: pd.DataFrame, path: Path) -> None:
    """boundary.csv and its table in the log; without rows, no file (an earlier
    analysis of this folder may have left one)."""
    if _write_rows(boundary, path):
        log_boundary(boundary)


def _write_rows(frame: pd.DataFrame, path: Path) -> bool:
    """``frame`` as a table if it has rows; otherwise no file (an earlier analysis
    of this folder may have left one). Whether it was written."""
    if len(frame):
        _write_table(frame, path)
        return True
    path.unlink(missing_ok=True)
    return False


def report_page(
    sweep: figures.Sweep, cells: pd.DataFrame, drawn: list[figures.Planned],
    trust: pd.DataFrame | None = None,
) -> str:  # fmt: skip
    """report.html: the command and grid, what the analysis found and left out,
    every figure drawn with its caption, the best method per cell, a real network's
    cells, the metrics without ground truth against mcc (``trust``: trust.csv), the
    cells that did not finish (``cells``: cells.csv)."""
    command, grid = page.sweep_command(sweep.dir)
    out = sweep.dir / ANALYSIS_DIR
    best = page.best_methods(sweep.results, sweep.axes)
    network = page.network_cells(sweep.results)
    trust = pd.DataFrame() if trust is None else trust
    tables = [
        *([html.Table("best", "Best method per cell", page.BEST_INTRO, best)]
          if network.empty or not best.empty else []),
        *([html.Table("network", "A real network's cells", page.NETWORK_INTRO,
                      network)] if not network.empty else []),
        *([html.Table("trust", "The metrics without ground truth, against mcc",
                      page.TRUST_INTRO, trust)] if not trust.empty else []),
        html.Table("problems", "Failed or missing cells", "", page.problems(cells)),
    ]  # fmt: skip
    return html.render_report(
        title=f"Sweep {sweep.name}", command=command, grid=grid,
        figures=[(f.file, (out / f.file).read_bytes(), f.caption) for f in drawn],
        tables=tables, notes=[*transition.verdicts(sweep.boundary),
                              *transition.omitted(sweep), *plots.omitted(sweep)],
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


def _write_figures(sweep: figures.Sweep, out: Path) -> list[figures.Planned]:
    """Every figure the registry plans for ``sweep``, as PNG; one that fails is
    logged and costs only itself. The files of registered figures not drawn now
    (left by an earlier analysis) are removed. Returns the figures written."""
    axes = sweep.axes
    log.info("figures: x=%s, y=%s, panels=%s",
             axes.x, axes.y, ", ".join(axes.panels) or "none")  # fmt: skip
    drawn = [f for f in figures.planned(sweep) if save_figure(f.draw, out / f.file)]
    found = sorted(path.name for path in out.glob("*.png"))
    for file in figures.stale(found, [f.file for f in drawn]):
        (out / file).unlink()
        log.info("removed %s: no longer drawn", out / file)
    return drawn


def save_figure(draw, path: Path) -> bool:
    """Draw one figure and write it as PNG (atomically); log, never raise."""
    try:
        fig = draw()
        folders.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    except Exception:  # one bad figure must not cost the others
        log.exception("could not draw %s", path)
        return False
    log.info("wrote %s", path)
    return True
