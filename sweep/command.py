"""The command line of ``python -m sweep``: its flags, read as Hydra reads them, its
folder, and the validation of the whole command (every point of its grid, Hydra's
settings, the folder's cells, the memory budget) before anything runs or is created.
The grid itself is ``sweep.grid``; a cell's identity and name ``sweep.config``.
"""

import argparse
import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf

from sweep import CONF_DIR, budget, checks, config, folders
from sweep.config import GROUPS, show
from sweep.grid import (
    PRESETS,
    SUBDIR,
    BadInput,
    Cell,
    Plan,
    expand_cells,
    is_group,
    is_hydra,
    parse,
    plan,
    preset_of,
    quoted,
    unique,
)
from sweep.slurm import MIN_TIMEOUT_MIN


def read_argv(argv: list[str]) -> argparse.Namespace | None:
    """The command line as Hydra reads it, with Hydra's own argument parser: a flag
    means here what it means to Hydra however it is spelled (``--flag=value``, an
    abbreviation). None for ``--version`` (Hydra prints it); BadInput for a flag
    Hydra does not know."""
    errors = io.StringIO()
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(errors):
            return get_args_parser().parse_args(argv)
    except SystemExit as done:
        if done.code == 0:
            return None
        lines = errors.getvalue().strip().splitlines() or ["cannot read the flags"]
        raise BadInput([lines[-1].split("error: ", 1)[-1]]) from None


def informational(args: argparse.Namespace | None) -> bool:
    """Whether a command only shows something (help, a config, info): no cell runs."""
    return args is None or bool(
        args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
    )


def check_flags(args: argparse.Namespace) -> list[str]:
    """Hydra flags this tool refuses (one line each)."""
    errors = []
    if args.experimental_rerun is not None:
        errors.append(
            "--experimental-rerun: refused: it unpickles a file of the run folder"
            " (config.pickle), which can run any code; re-run the command instead"
        )
    if args.config_name not in (None, "config"):
        errors.append(
            f"--config-name={args.config_name}: unknown (allowed: config; presets are"
            " chosen with experiment=NAME)"
        )
    for flag, value in (("--config-path", args.config_path),
                        ("--config-dir", args.config_dir)):  # fmt: skip
        if value is not None:
            errors.append(f"{flag}={value}: the configuration lives in {CONF_DIR}")
    if args.run and args.multirun:
        errors.append("--run with --multirun: choose one")
    return errors


def force_group_params(argv: list[str]) -> list[str]:
    """Write ``model.steps=2000`` as ``++model.steps=2000`` unless ``model=`` is fixed.

    Hydra first composes one master config from the command line without its sweeps,
    so with the group swept (``model=toy_relu,toy_linear``) or left to its default it
    would apply ``model.steps`` to the default model, which has no such key, and stop
    (exit 1). ``++`` sets the key in every job; the validation still checks that each
    job's model or method has the parameter.
    """
    try:
        args = read_argv(argv)
        parsed = dict(zip(args.overrides, parse(args.overrides), strict=True))
    except (BadInput, AttributeError):  # reported by the validation
        return argv
    fixed = {o.key_or_group for o in parsed.values() if is_group(o)}

    def forced(arg: str) -> str:
        o = parsed.get(arg)
        group = o.key_or_group.split(".")[0] if o else None
        free = group in GROUPS and group not in fixed and "." in o.key_or_group
        plain = o is not None and o.type is OverrideType.CHANGE
        return f"++{arg}" if args.multirun and free and plain else arg

    return [forced(arg) for arg in argv]


# The paper's words for the same key: S is the paper's sparsity, 1 - p.
SYNONYMS = {"S": lambda s: 1 - s, "density": lambda p: p}


def spell_out(argv: list[str]) -> list[str]:
    """Write ``S=0.9`` as ``sparsity=0.1`` and ``density=0.1`` as ``sparsity=0.1``
    (lists too: ``S=0.9,0.99``): one key, so both spellings land in one cell.
    BadInput for a value that is not a number in [0, 1], or for two spellings."""
    args = read_argv(argv)
    if args is None:
        return argv
    parsed = dict(zip(args.overrides, parse(args.overrides), strict=True))
    said = [o.key_or_group for o in parsed.values()
            if o.key_or_group in (*SYNONYMS, "sparsity")]  # fmt: skip
    if len(said) > 1 and set(said) & set(SYNONYMS):  # twice the same: repeated()
        raise BadInput([f"{', '.join(said)}: one key (sparsity = density = 1 - S),"
                        " give it once"])  # fmt: skip
    return [_spelled(parsed[a]) if a in parsed and parsed[a].key_or_group in SYNONYMS
            else a for a in argv]  # fmt: skip


def _spelled(o: Override) -> str:
    """One S= or density= override as its sparsity= override."""
    if o.is_sweep_override():
        values = [v.value() for v in parse(f"x={t}" for t in o.sweep_string_iterator())]
    else:
        values = [o.value()]
    if not all(isinstance(v, int | float) and not isinstance(v, bool)
               and 0 <= v <= 1 for v in values):  # fmt: skip
        raise BadInput([f"{o.input_line}: allowed is a number in [0, 1] (S = 1 -"
                        " sparsity, density = sparsity)"])  # fmt: skip
    # rounded to 12 digits: S=0.9 is sparsity=0.1, not 0.09999999999999998
    p = [float(f"{SYNONYMS[o.key_or_group](v):.12g}") for v in values]
    return "sparsity=" + ",".join(repr(v) for v in p)


def repeated(parsed: list[Override]) -> list[str]:
    """Keys given twice on a command line (Hydra would keep the last, silently)."""
    seen: dict[str, str] = {}
    lines = []
    for o in parsed:
        key = o.key_or_group
        if key in seen:
            lines.append(f"{seen[key]} and {o.input_line}: {key} given twice; give it"
                         " once")  # fmt: skip
        seen[key] = o.input_line
    return lines


def dir_key(multirun: bool) -> str:
    """The setting that names a command's folder."""
    return "hydra.sweep.dir" if multirun else "hydra.run.dir"


def validate_argv(argv: list[str]) -> list[str]:
    """Every problem of a command line and of every point of its grid, one line each."""
    return check_command(argv).errors


@dataclass
class Checked:
    """A checked command: its problems, or its folder and cells to run or kept."""

    errors: list[str]
    target: Path | None = None  # the folder, as Hydra will resolve it
    todo: list[Cell] = field(default_factory=list)
    done: list[Cell] = field(default_factory=list)  # finished before: cached


def check_command(argv: list[str]) -> Checked:
    """Every problem of a command line and of every point of its grid, one line
    each; else its folder (as Hydra will resolve it) and its cells.

    Also refuses a grid whose cells' folders already hold other configurations (a
    re-run on an existing ``hydra.sweep.dir`` / ``hydra.run.dir``), and cells to run
    whose estimated memory exceeds the budget of one cell.
    """
    errors: list[str] = []
    try:
        args = read_argv(spell_out(argv))
        if informational(args):
            return Checked([])
        errors += check_flags(args)
        parsed = parse(args.overrides)
        errors += repeated(parsed)
        hydra_cfg = _check_hydra(parsed)
        task = [o.input_line for o in parsed if not is_hydra(o)]
        cells = expand_cells(task, args.multirun)
    except BadInput as bad:
        return Checked(unique([*errors, *bad.lines]))
    target = Path(OmegaConf.select(hydra_cfg, dir_key(args.multirun)))
    found = plan(cells, target) if args.multirun else _one_run(cells[0], target)
    errors += found.errors + budget.check(found.todo, hydra_cfg)
    return Checked(unique(errors), target, found.todo, found.done)


def _one_run(cell: Cell, target: Path) -> Plan:
    """A single run's cell in its folder: to run, finished, or refused (foreign)."""
    state, _ = folders.cell_state(target, cell.fingerprint)
    if state == "foreign":
        stored = folders.read_status(target).get("config", {})
        return Plan({}, [], [], [config.conflict_message(target, stored, cell.flat)])
    finished = state == "done"
    return Plan({}, [] if finished else [cell], [cell] if finished else [], [])


def first_cell(argv: list[str]) -> tuple[list[str], str]:
    """A multirun's --cfg / --info command as Hydra shows it for one run: its grid's
    first cell (a preset's grid, then the command line's axes), and a note."""
    args = read_argv(spell_out(argv))
    parsed = parse(args.overrides)
    cells = expand_cells([o.input_line for o in parsed if not is_hydra(o)], True)
    settings = [o.input_line for o in parsed if is_hydra(o)
                and not o.key_or_group.startswith("hydra.sweep")]  # fmt: skip
    flags = [*(["--cfg", args.cfg] if args.cfg else []),
             *([f"--info={args.info}"] if args.info else []),
             *(["--package", args.package] if args.package else []),
             *(["--resolve"] if args.resolve else [])]  # fmt: skip
    note = (f"# the first of {len(cells)} cells of this grid ({cells[0].name}); "
            "--dry-run lists them all")  # fmt: skip
    return [*cells[0].overrides, *settings, *flags], note


def pin_dir(argv: list[str], target: Path) -> list[str]:
    """The command with its folder given once, as the resolved path ``target``
    (Hydra takes the last of several, and resolves ``${now:...}`` when it reads it)."""
    args = read_argv(argv)
    key = dir_key(args.multirun)
    named = {o.input_line for o in parse(args.overrides) if o.key_or_group == key}
    return [a for a in argv if a not in named] + [f"{key}={quoted(str(target))}"]


# --- Hydra's own settings -----------------------------------------------------------


def _check_hydra(parsed: list[Override]) -> DictConfig:
    """Check the command's Hydra settings; return the master config they compose.

    Raises BadInput for a setting this tool refuses or Hydra cannot compose.
    """
    errors = []
    for o in filter(is_hydra, parsed):
        key, value = o.key_or_group, o.value()
        if o.is_sweep_override():
            quote = " (quote a value with a comma: key='a,b')" if "dir" in key else ""
            errors.append(f"{o.input_line}: Hydra settings cannot be swept{quote}")
        elif key.startswith("hydra.sweeper.params"):
            errors.append(
                f"{o.input_line}: set grid axes as key=a,b on the command line or in"
                " conf/experiment/, not through hydra.sweeper.params"
            )
        elif key == "hydra/sweeper":
            errors.append(
                f"{o.input_line}: the cells sweeper is required (it names, caches and"
                " launches the cells)"
            )
        elif key == SUBDIR:
            errors.append(
                f"{o.input_line}: cell folders are named by their configuration;"
                " hydra.sweep.subdir cannot be set"
            )
        elif key in ("hydra.sweep.dir", "hydra.run.dir"):
            errors += _check_dir(key, value)
        elif key == "hydra.launcher.n_jobs":
            errors += _check_n_jobs(value)
        elif key == "hydra.launcher.timeout_min" and checks.integer(MIN_TIMEOUT_MIN)(
            value
        ):
            errors.append(f"{o.input_line}: allowed is a whole number of minutes >="
                          f" {MIN_TIMEOUT_MIN} (SLURM counts whole minutes; a cell"
                          " gets all of them)")  # fmt: skip
        elif key == "hydra.sweeper.max_batch_size" and checks.optional(
            checks.integer(1)
        )(value):
            errors.append(f"{o.input_line}: allowed is null or an integer >= 1")
        elif key.endswith("_target_"):
            errors.append(f"{o.input_line}: which class Hydra runs cannot be set")
    if errors:
        raise BadInput(errors)
    lines = [o.input_line for o in filter(is_hydra, parsed)]
    overrides = [f"{PRESETS}={preset_of(parsed)}", *lines]
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0]
        raise BadInput([f"{' '.join(lines)}: {first}"]) from None


def _check_dir(key: str, value: Any) -> list[str]:
    """A folder for results: a non-empty path that is, or can become, a folder."""
    if not isinstance(value, str) or not value.strip():
        return [f"{key}={show(value)}: allowed is the path of a folder"]
    path = Path(value).expanduser().absolute()
    if path.exists() and not path.is_dir():
        return [f"{key}={show(value)}: is a file, not a folder"]
    existing = next(p for p in [path, *path.parents] if p.exists())
    read_only = existing.is_dir() and os.statvfs(existing).f_flag & os.ST_RDONLY
    if read_only or not os.access(existing, os.W_OK | os.X_OK):
        return [f"{key}={show(value)}: {existing} is not writable"]
    return []


def _check_n_jobs(value: Any) -> list[str]:
    cores = os.cpu_count() or 1
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and value != 0 and -cores <= value <= cores:
        return []
    return [
        f"hydra.launcher.n_jobs={show(value)}: allowed is 1 to {cores} (this"
        f" machine's cores), or -1 for all of them (-2 all but one, ...)"
    ]
