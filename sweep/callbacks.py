"""Hydra callbacks, run in the parent process: end-of-sweep summary, then the analysis.

Hydra ignores a task function's return value and treats a callback's exception as a
warning, so the exit code travels through ``OUTCOME`` to ``__main__``.
"""

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweep import schema

log = logging.getLogger(__name__)

OUTCOME: dict[str, int] = {}  # {"exit_code": 0 | 1}, set when a run or sweep ends


def cell_statuses(sweep_dir: Path) -> dict[str, dict]:
    """Status of every cell folder Hydra made in ``sweep_dir`` (keyed by folder).

    A folder with Hydra's ``.hydra`` but no readable ``status.json`` is a cell that
    died before it finished: reported as ``missing``.
    """
    statuses = {}
    for hydra_dir in sorted(sweep_dir.rglob(".hydra")):
        cell = hydra_dir.parent
        try:
            status = json.loads((cell / schema.STATUS_FILE).read_text())
        except (OSError, ValueError):
            status = {"status": "missing", "error": "no status.json: the job died"}
        statuses[str(cell.relative_to(sweep_dir))] = status
    return statuses


def summarize(statuses: dict[str, dict]) -> tuple[str, list[str]]:
    """A summary line (counts per status) and a line per cell that did not finish."""
    counts = {name: 0 for name in (*schema.STATUSES, "missing")}
    for status in statuses.values():
        counts[status.get("status", "missing")] += 1
    line = ", ".join(
        f"{n} {name}" for name, n in counts.items() if n or name != "missing"
    )
    bad = [
        f"{status['status']} {cell}: {status.get('error')}"
        for cell, status in statuses.items()
        if status["status"] not in ("ok", "cached")
    ]
    return f"{len(statuses)} cells: {line}", bad


class SweepEnd(Callback):
    """Logs the summary of a finished sweep and runs the analysis on its folder."""

    def __init__(self, analyze: bool = True) -> None:
        self.analyze = analyze

    def on_run_end(self, config: DictConfig, job_return: Any = None, **kwargs) -> None:
        status = getattr(job_return, "_return_value", None) or {}
        OUTCOME["exit_code"] = 0 if status.get("status") in ("ok", "cached") else 1

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        line, bad = summarize(cell_statuses(sweep_dir))
        log.info("sweep finished, %s", line)
        for cell_line in bad:
            log.error(cell_line)
        OUTCOME["exit_code"] = 1 if bad else 0
        if self.analyze:
            self._analyze(sweep_dir)

    def _analyze(self, sweep_dir: Path) -> None:
        import analysis  # matplotlib is loaded only when a sweep is analysed

        try:
            out = analysis.run(sweep_dir)
        except Exception:
            log.exception("analysis of %s failed", sweep_dir)
            OUTCOME["exit_code"] = 1
            return
        log.info("figures and results.parquet in %s", out)
