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

from sweep import OUTPUTS_DIR, callbacks, command, folders, grid, usage
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
    if argv[:1] == ["resume"]:  # the rest of the newest (or a named) sweep
        named = len(argv) > 1 and not argv[1].startswith("-")  # a folder, not a flag
        try:
            argv = [*usage.resume_argv(argv[1] if named else None), *argv[1 + named :]]
        except FileNotFoundError as err:
            return _bad_input([str(err)])
        sys.stdout.write(f"resuming: {shlex.join(['python', '-m', 'sweep', *argv])}\n")
    if {"--help", "-h"} & set(argv):
        sys.stdout.write(usage.help_text() + "\n")
        return 0
    dry = "--dry-run" in argv
    argv = [a for a in argv if a != "--dry-run"]
    try:
        args = command.read_argv(argv)
        if command.informational(args):  # --cfg, --info: a config, nothing runs
            return _show(argv, args)
        argv = command.spell_out(argv)  # S= and density= are sparsity=
    except grid.BadInput as bad:
        return _bad_input(bad.lines)
    argv = with_default_dirs(command.force_group_params(argv))
    checked = command.check_command(argv)
    if checked.errors:
        return _bad_input(checked.errors)
    if dry:
        sys.stdout.write(usage.dry_run(argv, checked.target, checked.todo,
                                       checked.done) + "\n")  # fmt: skip
        return 0
    return _run(command.pin_dir(argv, checked.target), checked.target, args.multirun)


def _run(argv: list[str], target: Path, multirun: bool) -> int:
    """Run a checked command on its folder, held for it alone."""
    key = command.dir_key(multirun)
    try:  # one sweep per folder, held until the sweep ends (or its process does)
        lock = folders.hold(target, shlex.join(["python", "-m", "sweep", *argv]))
    except folders.FolderBusy as busy:
        return _bad_input([f"{key}={target}: a running sweep holds it ({busy})"])
    with lock:
        try:
            _hydra(argv)
        except KeyboardInterrupt:  # Ctrl-C: the workers are stopped, nothing is lost
            sys.stderr.write(usage.interrupted(argv, target, multirun))
            return 130
    if not multirun:
        sys.stdout.write(usage.run_table(target))
    return callbacks.OUTCOME.get("exit_code", 1)  # unset: the end callback crashed


def _show(argv: list[str], args) -> int:
    """--cfg / --info, as Hydra shows them; in a multirun, for the grid's first cell
    (Hydra shows a config only outside a multirun)."""
    if errors := (command.check_flags(args) if args else []):
        return _bad_input(errors)
    if args and args.multirun and (args.cfg or args.info):
        try:
            argv, note = command.first_cell(argv)
        except grid.BadInput as bad:
            return _bad_input(bad.lines)
        sys.stdout.write(note + "\n")
    _hydra(argv)
    return 0


def _hydra(argv: list[str]) -> None:
    sys.argv = [sys.argv[0], *argv]
    main()


def _bad_input(lines: list[str]) -> int:
    sys.stderr.write(usage.bad_input(lines))
    return 2


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
