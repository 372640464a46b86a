"""The grid of a command line: its points, their checks, and the folder of each cell.

``expand`` enumerates the grid exactly as Hydra's basic sweeper does (the preset's
``hydra.sweeper.params`` first, the command line replacing them key by key), and
``configure`` builds each point's configuration from plain dicts (composing only once
per preset and group choice). ``validate_argv`` checks a whole command before anything
runs or is created; the sweeper (``hydra_plugins/superposition_sweeps``) expands the
same grid with the same functions and ``plan`` decides what it launches: each
configuration once, in its own folder, finished cells kept.
"""

import argparse
import io
import itertools
import math
import os
from collections.abc import Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, RangeSweep
from omegaconf import DictConfig, OmegaConf

from sweep import CONF_DIR, budget, checks, config, folders
from sweep.config import GROUPS, RUN_KEYS, show

PRESETS = "experiment"
MAX_CELLS = 100_000  # grid points one command may ask for (each is checked first)
SUBDIR = "hydra.sweep.subdir"  # set per job by the sweeper: the cell's folder


class BadInput(ValueError):
    """A command line that cannot run: one line per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class Cell:
    """One point of the grid: Hydra's overrides for its job, and its configuration."""

    overrides: tuple[str, ...]
    flat: dict = field(hash=False)  # normalised: what the cell computes
    run: dict = field(hash=False)  # how it runs: RUN_KEYS

    @cached_property
    def fingerprint(self) -> str:
        return config.fingerprint(self.flat)

    @cached_property
    def name(self) -> str:
        return config.cell_name(self.flat)


# --- the command line -------------------------------------------------------------


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
    fixed = {o.key_or_group for o in parsed.values() if _is_group(o)}

    def forced(arg: str) -> str:
        o = parsed.get(arg)
        group = o.key_or_group.split(".")[0] if o else None
        free = group in GROUPS and group not in fixed and "." in o.key_or_group
        plain = o is not None and o.type is OverrideType.CHANGE
        return f"++{arg}" if args.multirun and free and plain else arg

    return [forced(arg) for arg in argv]


def dir_key(multirun: bool) -> str:
    """The setting that names a command's folder."""
    return "hydra.sweep.dir" if multirun else "hydra.run.dir"


def validate_argv(argv: list[str]) -> list[str]:
    """Every problem of a command line and of every point of its grid, one line each."""
    return check_command(argv)[0]


def check_command(argv: list[str]) -> tuple[list[str], Path | None]:
    """Every problem of a command line and of every point of its grid, one line
    each, and the folder it writes into (as Hydra will resolve it).

    Also refuses a grid whose cells' folders already hold other configurations (a
    re-run on an existing ``hydra.sweep.dir`` / ``hydra.run.dir``), and cells to run
    whose estimated memory exceeds the budget of one cell.
    """
    errors: list[str] = []
    try:
        args = read_argv(argv)
        if informational(args):
            return [], None
        errors += check_flags(args)
        parsed = parse(args.overrides)
        hydra_cfg = _check_hydra(parsed)
        task = [o.input_line for o in parsed if not _is_hydra(o)]
        cells = expand_cells(task, args.multirun)
    except BadInput as bad:
        return _unique([*errors, *bad.lines]), None
    target = Path(OmegaConf.select(hydra_cfg, dir_key(args.multirun)))
    if args.multirun:
        todo = plan(cells, target)
        errors += todo.errors
        cells = todo.todo
    elif folders.cell_state(target, cells[0].fingerprint)[0] == "foreign":
        stored = folders.read_status(target).get("config", {})
        errors.append(config.conflict_message(target, stored, cells[0].flat))
    errors += budget.check(cells, hydra_cfg)
    return _unique(errors), target


def pin_dir(argv: list[str], target: Path) -> list[str]:
    """The command with its folder given once, as the resolved path ``target``
    (Hydra takes the last of several, and resolves ``${now:...}`` when it reads it)."""
    args = read_argv(argv)
    key = dir_key(args.multirun)
    named = {o.input_line for o in parse(args.overrides) if o.key_or_group == key}
    return [a for a in argv if a not in named] + [f"{key}={quoted(str(target))}"]


def quoted(text: str) -> str:
    """A value of Hydra's override grammar, taken as it is (commas, equal signs,
    spaces; a quote escaped)."""
    return "'" + text.replace("'", "\\'") + "'"


# --- parsing and expanding --------------------------------------------------------


class _Options:
    """What Hydra's parser asks a config loader: the options of a group (for glob)."""

    def get_group_options(self, group: str, results_filter=None) -> list[str]:
        return list(options(group))


_PARSER = OverridesParser.create(config_loader=_Options())


def parse(lines: Iterable[str]) -> list[Override]:
    """Hydra's parse of override lines; BadInput with Hydra's first line if it fails."""
    try:
        return _PARSER.parse_overrides(list(lines))
    except Exception as err:  # Hydra's grammar errors: keep their first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise BadInput(
            [f"cannot parse the overrides ({first}); allowed: key=value, key=a,b"]
        ) from None


def _is_hydra(o: Override) -> bool:
    return o.is_hydra_override() or o.key_or_group.startswith("hydra/")


def _is_group(o: Override) -> bool:
    return o.key_or_group in GROUPS and not o.is_sweep_override()


def preset_of(parsed: list[Override]) -> str:
    """The preset (experiment=) a command line chooses for its master config;
    BadInput if there is no such preset, or a preset or group is added or deleted."""
    _check_choices(parsed)
    chosen = [o.value() for o in parsed
              if o.key_or_group == PRESETS and not o.is_sweep_override()]  # fmt: skip
    preset = chosen[-1] if chosen else "default"  # as Hydra: the last one counts
    if not isinstance(preset, str) or preset not in options(PRESETS):
        raise BadInput([config.unknown(PRESETS, preset, options(PRESETS))])
    return preset


def expand_cells(lines: list[str], multirun: bool) -> list["Cell"]:
    """The cells of a command's task overrides (its grid, or its one run).

    Raises BadInput with every problem of every point, one line per distinct one.
    """
    parsed = parse(lines)
    preset = preset_of(parsed)
    if not multirun:
        sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
        if sweeps:
            raise BadInput([f"{sweeps[0]}: a sweep needs -m (multirun)"])
        grid = [parsed]
    else:
        params = _composed(preset, "", "").hydra.sweeper.params or {}
        grid = expand([*(f"{k}={v}" for k, v in params.items()), *lines])
    swept = [o.input_line for o in parsed if o.key_or_group in RUN_KEYS
             and o.is_sweep_override()]  # fmt: skip
    if swept:
        raise BadInput([f"{swept[0]}: how a cell runs is not part of what it computes;"
                        " give it one value"])  # fmt: skip
    cells, errors = [], []
    for point in grid:
        cell, point_errors = configure(point)
        errors += point_errors
        if cell is not None:
            cells.append(cell)
    if errors:
        raise BadInput(_unique(errors))
    return cells


def _check_choices(parsed: list[Override]) -> None:
    """A preset or a group is chosen (``method=lasso``), never added or deleted."""
    bad = [o.input_line for o in parsed if o.key_or_group in (PRESETS, *GROUPS)
           and o.type is not OverrideType.CHANGE]  # fmt: skip
    if bad:
        raise BadInput([f"{line}: choose a preset or group as key=NAME (no +, ++ or"
                        " ~)" for line in bad])  # fmt: skip


def expand(lines: list[str]) -> list[list[Override]]:
    """The points of a grid, as Hydra's basic sweeper enumerates them: one axis per
    key (a later line replaces an earlier one of the same key), their product."""
    axes: dict[str, list[str]] = {}
    for o in parse(lines):
        key = o.get_key_element()
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise BadInput([f"{o.input_line}: only lists and range() can be swept"])
        axes[key] = (
            [f"{key}={v}" for v in _sweep_values(o)]
            if o.is_sweep_override()
            else [f"{key}={o.get_value_element_as_str()}"]
        )
    size = math.prod(len(values) for values in axes.values())
    if size == 0:
        empty = [key for key, values in axes.items() if not values]
        raise BadInput([f"{', '.join(empty)}: no values (the grid is empty)"])
    if size > MAX_CELLS:
        raise BadInput([f"the grid has {size:,} points: allowed is at most"
                        f" {MAX_CELLS:,} per command"])  # fmt: skip
    lines = [line for values in axes.values() for line in values]
    parsed = dict(zip(lines, parse(lines), strict=True))  # each value parsed once
    points = itertools.product(*axes.values())
    return [[parsed[line] for line in point] for point in points]


def _sweep_values(o: Override) -> list[str]:
    """The values of one swept key, refusing a sweep too long to enumerate."""
    value = o.value()
    if isinstance(value, RangeSweep):  # counted before it is enumerated
        try:
            length = math.ceil((value.stop - value.start) / value.step)
        except (ArithmeticError, ValueError):  # a step of 0, an infinite bound
            raise BadInput([f"{o.input_line}: not a finite range"]) from None
        if length > MAX_CELLS:
            raise BadInput([f"{o.input_line}: {length:,} values: allowed is at most"
                            f" {MAX_CELLS:,} points per command"])  # fmt: skip
    return list(itertools.islice(o.sweep_string_iterator(), MAX_CELLS + 1))


# --- the configuration of one point ------------------------------------------------


def configure(point: list[Override]) -> tuple["Cell | None", list[str]]:
    """The cell of one grid point (overrides without sweeps), and its problems."""
    choices = {o.key_or_group: o.value() for o in point if _is_group(o)}
    for group in GROUPS:
        name = choices.get(group)
        known = isinstance(name, str) and name in options(group)
        if group in choices and not known:
            return None, [config.unknown(group, name, options(group))]
    flat, run = _base(preset_of(point), choices.get("method", ""),
                      choices.get("model", ""))  # fmt: skip
    flat, run, errors = dict(flat), dict(run), []
    for o in point:
        key = o.key_or_group
        if key == PRESETS or _is_group(o):
            continue
        if o.type is OverrideType.DEL:
            errors.append(f"{o.input_line}: deleting a key is not supported")
        elif key in RUN_KEYS:
            run[key] = o.value()
        elif key not in flat:
            errors.append(_unknown_key(flat, key, o.value()))
        elif o.type is OverrideType.ADD:
            errors.append(f"{o.input_line}: {key} exists already (write {key}=...)")
        else:
            flat[key] = o.value()
    if any(isinstance(v, str) and "${" in v for v in [*flat.values(), *run.values()]):
        flat, run, resolve_errors = _resolve(flat, run)
        errors += resolve_errors
    if errors:
        return None, errors
    errors = config.validate_cell(flat) + config.validate_run(run)
    lines = tuple(o.input_line for o in point)
    return (None if errors else Cell(lines, config.normalise(flat), run)), errors


def _unknown_key(flat: dict, key: str, value: Any) -> str:
    group, _, param = key.partition(".")
    if group in GROUPS and param:
        return config.no_param(group, flat[group], param, value)
    return config.unknown(key, value, [*config.TOP_LEVEL, *RUN_KEYS])


def _resolve(flat: dict, run: dict) -> tuple[dict, dict, list[str]]:
    """Resolve ``${...}`` interpolations as the job will; one line if one fails."""
    nested: dict[str, Any] = {group: {} for group in GROUPS}
    for key, value in {**flat, **run}.items():
        group, _, param = key.partition(".")
        if group in GROUPS:
            nested[group][param or "name"] = value
        else:
            nested[key] = value
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(nested), resolve=True)
    except Exception as err:
        bad = [f"{k}={show(v)}" for k, v in {**flat, **run}.items()
               if isinstance(v, str) and "${" in v]  # fmt: skip
        first = str(err).strip().splitlines()[0]
        return flat, run, [f"{', '.join(bad)}: cannot resolve ({first})"]
    return (
        config.flatten(resolved),
        {key: resolved.get(key) for key in RUN_KEYS},
        [],
    )


@cache
def options(group: str) -> tuple[str, ...]:
    """The option names of a config group: its yaml files."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


@cache
def _composed(preset: str, method: str, model: str) -> DictConfig:
    """The composed config of a preset and group choices, before value overrides."""
    overrides = [f"{PRESETS}={preset}"]
    overrides += [f"method={method}"] if method else []
    overrides += [f"model={model}"] if model else []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


@cache
def _base(preset: str, method: str, model: str) -> tuple[dict, dict]:
    """The flat cell keys and the run keys of a preset and group choices."""
    cfg = _composed(preset, method, model)
    return config.flatten(cfg), {key: cfg.get(key) for key in RUN_KEYS}


# --- Hydra's own settings -----------------------------------------------------------


def _check_hydra(parsed: list[Override]) -> DictConfig:
    """Check the command's Hydra settings; return the master config they compose.

    Raises BadInput for a setting this tool refuses or Hydra cannot compose.
    """
    errors = []
    for o in filter(_is_hydra, parsed):
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
        elif key == "hydra.sweeper.max_batch_size" and checks.optional(
            checks.integer(1)
        )(value):
            errors.append(f"{o.input_line}: allowed is null or an integer >= 1")
        elif key.endswith("_target_"):
            errors.append(f"{o.input_line}: which class Hydra runs cannot be set")
    if errors:
        raise BadInput(errors)
    lines = [o.input_line for o in filter(_is_hydra, parsed)]
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


# --- what a sweep launches ----------------------------------------------------------


@dataclass
class Plan:
    """A sweep's cells, each configuration once, and where each one lives."""

    folders: dict[str, str]  # fingerprint -> cell folder, relative to the sweep
    todo: list[Cell]  # to run, in grid order
    done: list[Cell]  # finished before, verified: kept as ``cached``
    errors: list[str]  # folders holding other configurations


def plan(cells: list[Cell], sweep_dir: Path) -> Plan:
    """Where each distinct configuration of ``cells`` lives in ``sweep_dir`` and
    whether it is finished. A configuration that a folder already holds (under any
    name, e.g. one written before names came from configurations) stays there."""
    unique = list({cell.fingerprint: cell for cell in reversed(cells)}.values())[::-1]
    existing = folders.fingerprints(sweep_dir) if sweep_dir.is_dir() else {}
    result = Plan({}, [], [], [])
    names: dict[str, str] = {}  # folder -> fingerprint, to prove no two share one
    for cell in unique:
        folder = existing.get(cell.fingerprint, cell.name)
        if names.setdefault(folder, cell.fingerprint) != cell.fingerprint:
            result.errors.append(f"two configurations would share the folder {folder}")
        result.folders[cell.fingerprint] = folder
        state, _ = folders.cell_state(sweep_dir / folder, cell.fingerprint)
        if state == "foreign":
            stored = folders.read_status(sweep_dir / folder).get("config", {})
            result.errors.append(
                config.conflict_message(sweep_dir / folder, stored, cell.flat)
            )
        elif state == "done":
            result.done.append(cell)
        else:  # the job says why, if it had a result
            result.todo.append(cell)
    return result


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
