"""Analysis of a sweep folder: tables and figures, from its files only.

``run(sweep_dir)`` writes ``results.parquet``, ``capacity.csv``, ``cells.csv``, the
figures and ``report.html`` into ``sweep_dir/analysis``; ``load(sweep_dir)`` reads
the tidy trials, per-cell means and per-feature rows for a notebook, writing
nothing. ``analysis.compare`` compares several sweeps (``python -m analysis A B``).
"""

from analysis.aggregate import Loaded, load
from analysis.report import run
from sweep.folders import latest_sweep as find_latest_sweep

__all__ = ["Loaded", "find_latest_sweep", "load", "run"]
