"""``python -m sweep [-m] [key=value ...]``: validate the grid, then let Hydra run it.

Exit codes: 0 every cell ok (or cached), 1 some cell failed, 2 bad input (nothing ran).
"""

import sys
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from sweep import OUTPUTS_DIR, callbacks, config
from sweep.folders import MODELS_DIR, record_grid


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    """One cell, in a Hydra job (a joblib worker in a multirun)."""
    from sweep import job  # numpy, pandas, sklearn: only where a cell runs

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode.name == "MULTIRUN"
    return job.run(
        cfg,
        out_dir,
        sweep=Path(hc.sweep.dir).name if multirun else "",
        cell=hc.job.override_dirname or out_dir.name,
        cache_dir=Path(hc.sweep.dir) / MODELS_DIR if multirun else None,
    )


def with_default_dirs(argv: list[str]) -> list[str]:
    """Put runs and sweeps under the project's outputs/, from any working directory."""
    multirun, overrides, _ = config.split_argv(argv)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if any(o.startswith(key + "=") for o in overrides):
        return argv
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    folder = OUTPUTS_DIR / ("sweeps" if multirun else "runs") / stamp
    return [*argv, f"{key}='{folder}'"]


def _skip_hydra_validation() -> None:
    """Do not let Hydra compose every cell's config a second time before launching.

    BasicSweeper.validate_batch_is_legal composes each job's config in this process,
    one after another, before any job starts (~50 ms per cell: 2-3 s of a 48-cell
    sweep's wall time). validate_argv has just checked every point of the same grid,
    and each job still composes its own config in its worker. Patched on the base
    class: Hydra re-executes its plugin modules when it discovers them.
    """
    Sweeper.validate_batch_is_legal = lambda self, batch: None


def cli(argv: list[str]) -> int:
    """Validate every point of the grid, run it, and return the exit code."""
    informational = {"--help", "-h", "--hydra-help", "--info", "--cfg", "-c"}
    if not informational & set(argv):
        argv = config.force_group_params(argv)
        errors = config.validate_argv(argv)
        if errors:
            sys.stderr.write("error: bad input, nothing ran:\n")
            sys.stderr.writelines(f"  {line}\n" for line in errors)
            return 2
        argv = with_default_dirs(argv)
        multirun, overrides, _ = config.split_argv(argv)
        if multirun:  # so that cells that never start are reported missing
            target = config.target_dir(argv)
            record_grid(target, config.cell_names(argv))
            _skip_hydra_validation()
    sys.argv = [sys.argv[0], *argv]
    main()
    if informational & set(argv):
        return 0
    return callbacks.OUTCOME.get("exit_code", 1)  # unset: the end callback crashed


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
