"""Analysis of a sweep folder: tables and figures, from its files only.

``run(sweep_dir)`` writes ``results.parquet``, ``capacity.csv``, ``cells.csv``, the
figures and ``report.html`` into ``sweep_dir/analysis``; ``load(sweep_dir)`` reads
the tidy trials and per-cell means for a notebook, writing nothing.
"""

from analysis.aggregate import Loaded, load
from analysis.report import find_latest_sweep, run

__all__ = ["Loaded", "find_latest_sweep", "load", "run"]
