"""Analysis of a sweep folder: tables and figures, from its files only.

``run(sweep_dir)`` writes ``results.parquet``, ``capacity.csv``, ``cells.csv`` and the
figures into ``sweep_dir/analysis``.
"""

from analysis.report import find_latest_sweep, run

__all__ = ["find_latest_sweep", "run"]
