"""Analysis of a sweep folder: tables and figures, from its files only.

``run(sweep_dir)`` writes ``results.parquet``, ``capacity.csv`` and the figures into
``sweep_dir/analysis``. Importing this package stays light (no pandas, no
matplotlib): the end-of-sweep callback imports it in every multirun.
"""

import logging
import re
from datetime import datetime
from functools import partial
from pathlib import Path

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"  # one row per cell: means and standard errors
CAPACITY_FILE = "capacity.csv"  # per panel and neurons: largest sparsity at 50 %
PHASE_METRICS = ("success_rate", "nmse", "support_f1")  # phase_* and capacity_*.png
DPI = 120
MAX_HEATMAP_ROWS = 6  # data cells shown in heatmaps.png
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")  # Hydra's sweep names
TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"

__all__ = ["find_latest_sweep", "run"]


def find_latest_sweep(root: Path) -> Path | None:
    """The newest sweep folder in ``root/sweeps`` (None if there is none).

    Newest by the timestamp that starts its name, else by modification time; never
    a folder under ``root/reference``.
    """
    sweeps, reference = Path(root) / "sweeps", (Path(root) / "reference").resolve()
    if not sweeps.is_dir():
        return None
    found = [
        path
        for path in sweeps.iterdir()
        if path.is_dir() and not path.resolve().is_relative_to(reference)
    ]
    return max(found, key=lambda path: (_sweep_time(path), path.name), default=None)


def _sweep_time(path: Path) -> datetime:
    match = TIMESTAMP.match(path.name)
    if match:
        try:
            return datetime.strptime(match.group(), TIMESTAMP_FORMAT)
        except ValueError:  # e.g. month 13: not a timestamp after all
            pass
    return datetime.fromtimestamp(path.stat().st_mtime)


def run(sweep_dir: Path) -> Path:
    """Analyse ``sweep_dir`` into ``sweep_dir/analysis``; return that folder.

    Raises ``analysis.aggregate.NoResultsError`` if no metrics file can be read.
    """
    from analysis import aggregate
    from sweep.schema import ANALYSIS_DIR

    sweep_dir = Path(sweep_dir)
    trials = aggregate.load_metrics(sweep_dir)
    cells = trials[aggregate.CELL_DIR].unique()
    results = aggregate.aggregate_trials(
        trials, aggregate.load_cell_status(sweep_dir, cells)
    )
    axes = aggregate.choose_axes(results)
    out = sweep_dir / ANALYSIS_DIR
    capacity = _write_tables(results, axes, out)
    _write_figures(sweep_dir, results, axes, capacity, out)
    return out


def _write_tables(results, axes, out: Path):
    """results.parquet and capacity.csv; returns the capacity table."""
    from analysis import aggregate

    aggregate.write_parquet(results, out / RESULTS_FILE)
    failed = results.loc[results["status"] == "failed", aggregate.CELL_DIR].tolist()
    log.info(
        "wrote %s: %d cells, %d failed%s",
        out / RESULTS_FILE,
        len(results),
        len(failed),
        f" ({', '.join(map(str, failed))})" if failed else "",
    )
    capacity = aggregate.capacity_number(results, axes)
    aggregate.write_csv(capacity, out / CAPACITY_FILE)
    log.info("wrote %s: %d rows", out / CAPACITY_FILE, len(capacity))
    return capacity


def _write_figures(sweep_dir: Path, results, axes, capacity, out: Path) -> None:
    """Every PNG; a figure that fails is logged and the others are still drawn."""
    from analysis import plots

    name = sweep_dir.name
    figures = []  # (file, function, its arguments)
    for metric in PHASE_METRICS:  # draw only what the results hold
        if metric not in results:
            log.warning("no %s column: no phase or capacity plot of it", metric)
            continue
        figures += [
            (f"phase_{metric}.png", plots.phase_figure, (results, axes, metric)),
            (f"capacity_{metric}.png", plots.capacity_figure, (results, axes, metric)),
        ]
    figures += [
        ("capacity_number.png", plots.capacity_number_figure, (capacity, axes)),
        ("heatmaps.png", _heatmap_figure, (sweep_dir, results, axes)),
    ]
    what = f"x={axes.x}, y={axes.y}, panels={', '.join(axes.panels) or 'none'}"
    for file, draw, args in figures:
        _save(partial(draw, *args, sweep=name), out / file, what)


def _save(draw, path: Path, what: str) -> None:
    """Draw one figure and write it as PNG (atomically); log, never raise."""
    from analysis.aggregate import atomic_write

    try:
        fig = draw()
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    except Exception:  # one bad figure must not cost the others
        log.exception("could not draw %s", path)
        return
    log.info("wrote %s (%s)", path, what)


def _heatmap_figure(sweep_dir: Path, results, axes, *, sweep: str):
    """heatmaps.png: reading the samples is part of drawing it (and may fail)."""
    from analysis import plots

    return plots.heatmap_figure(_heatmap_rows(sweep_dir, results, axes), sweep=sweep)


def _heatmap_rows(sweep_dir: Path, results, axes) -> list:
    """HeatmapRows of the representative cells, read from their samples.parquet."""
    from analysis import aggregate, plots

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
                X, X_hat = aggregate.load_samples(sweep_dir / cell[aggregate.CELL_DIR])
            except (OSError, KeyError, ValueError) as err:
                log.warning("no samples for %s: %s", cell[aggregate.CELL_DIR], err)
                continue
            loaded.append((X, (plots.panel_label(cell, shown), X_hat)))
        if loaded:  # X is the same for every method: paired data
            title = plots.panel_label(cells.iloc[0], data_keys)
            rows.append(plots.HeatmapRow(title, loaded[0][0], [h for _, h in loaded]))
    return rows
