"""What the parent of a sweep does with its grid: plan it, keep the finished cells,
record every cell asked for, and launch the rest, each in the folder its
configuration names (``hydra.sweep.subdir`` set per job)."""

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sweep import config, folders, grid, usage

log = logging.getLogger(__name__)


def sweep(sweeper: Any, arguments: list[str]) -> list:
    """``Sweeper.sweep`` of the ``cells`` sweeper: one JobReturn list per batch."""
    sweep_dir = Path(sweeper.config.hydra.sweep.dir)
    cells = grid.expand_cells(arguments, multirun=True)  # the preset's grid, then these
    plan = grid.plan(cells, sweep_dir)
    if plan.errors:  # validated before; changed by hand since
        usage.refuse(plan.errors)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    folders.record_grid(sweep_dir, list(plan.folders.values()))
    for cell in plan.done:
        folders.mark_cached(sweep_dir / plan.folders[cell.fingerprint])
    if len(cells) > len(plan.folders):
        log.info("%d grid points are %d distinct cells (equal configurations run once)",
                 len(cells), len(plan.folders))  # fmt: skip
    if wide := sum(config.uncompressed(c.flat) for c in [*plan.todo, *plan.done]):
        log.warning("%d of %d cells have %s", wide, len(plan.folders),
                    config.UNCOMPRESSED)  # fmt: skip
    if plan.done:
        log.info("%d cells finished before (cached), %d to run", len(plan.done),
                 len(plan.todo))  # fmt: skip
    folder = {cell.fingerprint: grid.quoted(plan.folders[cell.fingerprint])
              for cell in plan.todo}  # fmt: skip
    jobs = [[*c.overrides, f"{grid.SUBDIR}={folder[c.fingerprint]}"] for c in plan.todo]
    size = sweeper.max_batch_size or len(jobs) or 1
    returns, first = [], 0
    for start in range(0, len(jobs), size):
        batch = jobs[start : start + size]
        returns.append(sweeper.launcher.launch(batch, initial_job_idx=first))
        first += len(batch)
    return returns

