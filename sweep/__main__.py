"""``python -m sweep [-m] [key=value ...]``: validate the grid, then let Hydra run it.

Exit codes: 0 every cell ok (or cached), 1 some cell failed, 2 bad input (nothing ran).
"""

import shlex
import sys
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sweep import OUTPUTS_DIR, callbacks, command, folders, grid
from sweep.folders import MODELS_DIR


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    """One cell, in a Hydra job (a worker process in a multirun)."""
    from sweep import job  # numpy, pandas, sklearn: only where a cell runs

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode.name == "MULTIRUN"
    return job.run(
        cfg,
        out_dir,
        sweep=Path(hc.sweep.dir).name if multirun else "",
        cell=out_dir.name if multirun else "",
        cache_dir=Path(hc.sweep.dir) / MODELS_DIR if multirun else None,
    )


def with_default_dirs(argv: list[str]) -> list[str]:
    """Put runs and sweeps under the project's outputs/, from any working directory."""
    try:
        args = command.read_argv(argv)
        parsed = grid.parse(args.overrides)
    except (grid.BadInput, AttributeError):  # reported by the validation
        return argv
    key = command.dir_key(args.multirun)
    if any(o.key_or_group == key for o in parsed):
        return argv
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    folder = OUTPUTS_DIR / ("sweeps" if args.multirun else "runs") / stamp
    return [*argv, f"{key}={grid.quoted(str(folder))}"]


def cli(argv: list[str]) -> int:
    """Check the command and every point of its grid, run it, return the exit code."""
    try:
        args = command.read_argv(argv)
    except grid.BadInput as bad:
        return _bad_input(bad.lines)
    if command.informational(args):  # help, --cfg, --info: nothing runs
        if errors := (command.check_flags(args) if args else []):
            return _bad_input(errors)
        _hydra(argv)
        return 0
    argv = with_default_dirs(command.force_group_params(argv))
    errors, target = command.check_command(argv)
    if errors:
        return _bad_input(errors)
    argv = command.pin_dir(argv, target)  # the folder locked is the folder written
    key = command.dir_key(args.multirun)
    try:  # one sweep per folder, held until the sweep ends (or its process does)
        lock = folders.hold(target, shlex.join(["python", "-m", "sweep", *argv]))
    except folders.FolderBusy as busy:
        return _bad_input([f"{key}={target}: a running sweep holds it ({busy})"])
    with lock:
        _hydra(argv)
    return callbacks.OUTCOME.get("exit_code", 1)  # unset: the end callback crashed


def _hydra(argv: list[str]) -> None:
    sys.argv = [sys.argv[0], *argv]
    main()


def _bad_input(lines: list[str]) -> int:
    sys.stderr.write("error: bad input, nothing ran:\n")
    sys.stderr.writelines(f"  {line}\n" for line in lines)
    return 2


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
