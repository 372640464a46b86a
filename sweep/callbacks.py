"""Hydra callbacks, run in the parent process: end-of-sweep summary, then the analysis.

Hydra ignores a task function's return value and treats a callback's exception as a
warning, so the exit code travels through ``OUTCOME`` to ``__main__``.
"""

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweep import schema
from sweep.folders import cell_statuses

log = logging.getLogger(__name__)

OUTCOME: dict[str, int] = {}  # {"exit_code": 0 | 1}, set when a run or sweep ends


def summarize(statuses: dict[str, dict]) -> tuple[str, list[str]]:
    """A summary line (counts per status) and a line per cell that did not finish."""
    counts = Counter(status.get("status", "missing") for status in statuses.values())
    shown = [*schema.STATUSES, *sorted(set(counts) - set(schema.STATUSES))]
    line = ", ".join(f"{counts[name]} {name}" for name in shown)
    bad = [
        f"{status.get('status', 'missing')} {cell}: {status.get('error')}"
        for cell, status in statuses.items()
        if status.get("status") not in schema.DONE
    ]
    return f"{len(statuses)} cells: {line}", bad


class SweepEnd(Callback):
    """Logs the summary of a finished sweep and runs the analysis on its folder."""

    def __init__(self, analyze: bool = True) -> None:
        self.analyze = analyze

    def on_run_end(self, config: DictConfig, job_return: Any = None, **kwargs) -> None:
        status = getattr(job_return, "_return_value", None) or {}
        OUTCOME["exit_code"] = 0 if status.get("status") in schema.DONE else 1

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
