"""The sweeper and the launcher of ``python -m sweep``: thin Hydra classes, the work is
in ``sweep.sweeper`` and ``sweep.pool``.

Selected in ``conf/config.yaml`` (``hydra/sweeper: cells``, ``hydra/launcher: pool``);
``hydra/launcher=slurm`` selects ``SlurmCellLauncher`` (its yaml in conf/hydra/).
"""

from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class CellSweeper(BasicSweeper):
    """The basic sweeper's grid (``hydra.sweeper.params`` and the command line), run
    as cells: each configuration once, in a folder named by it, finished cells kept."""

    def sweep(self, arguments: list[str]) -> Any:
        from sweep import sweeper

        return sweeper.sweep(self, arguments)


class PoolLauncher(Launcher):
    """Cells in parallel on this machine's cores; a dead worker fails only its cell."""

    def __init__(self, n_jobs: int = -1) -> None:
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction,
        config: DictConfig,
    ) -> None:  # fmt: skip
        self.config, self.task_function = config, task_function
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from sweep import pool

        return pool.launch(self, job_overrides, initial_job_idx)


def _submitit_slurm() -> type:
    """hydra-submitit-launcher's SLURM launcher (the extra [slurm]); without it a
    plain Launcher, so that this module imports (Hydra lists every plugin)."""
    try:
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
            SlurmLauncher,
        )
    except ImportError:  # pragma: no cover - the extra is not installed
        return Launcher
    return SlurmLauncher


class SlurmCellLauncher(_submitit_slurm()):
    """hydra-submitit-launcher's SLURM launcher, cells as a job array; what SLURM
    does to a task (cancel, time, memory, refusal) becomes its cell's result
    (``sweep.slurm``)."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from sweep import slurm

        return slurm.launch(self, job_overrides, initial_job_idx)

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """One cell in its SLURM task (``sweep.slurm.in_task`` first)."""
        from sweep import slurm

        slurm.in_task()
        return super().__call__(*args, **kwargs)
