"""The grid of a sweep: its points, each point's configuration, and what to launch.

``expand`` enumerates the grid exactly as Hydra's basic sweeper does (the preset's
``hydra.sweeper.params`` first, the command line replacing them key by key), and
``configure`` builds each point's configuration from plain dicts (composing only once
per preset and group choice), checked by ``sweep.config``. ``sweep.command`` checks a
whole command with these before anything runs; the sweeper expands the same grid and
``plan`` decides what it launches: each configuration once, in the folder its
configuration names (``config.cell_name``), finished cells kept.
"""

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, RangeSweep
from omegaconf import DictConfig, OmegaConf

from sweep import CONF_DIR, config, folders
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
    return [_parse_line(line) for line in lines]


@lru_cache(maxsize=MAX_CELLS)
def _parse_line(line: str) -> Override:
    """One line parsed (once: a grid's cells share their axes' lines; read only)."""
    try:
        return _PARSER.parse_overrides([line])[0]
    except Exception as err:  # Hydra's grammar errors: keep their first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise BadInput(
            [f"cannot parse the overrides ({first}); allowed: key=value, key=a,b"]
        ) from None


def is_hydra(o: Override) -> bool:
    return o.is_hydra_override() or o.key_or_group.startswith("hydra/")


def is_group(o: Override) -> bool:
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
        raise BadInput(unique(errors))
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
    choices = {o.key_or_group: o.value() for o in point if is_group(o)}
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
        if key == PRESETS or is_group(o):
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
    return config.unknown(key, value, [*config.TOP_LEVEL, *config.DATA, *RUN_KEYS])


def _resolve(flat: dict, run: dict) -> tuple[dict, dict, list[str]]:
    """Resolve ``${...}`` interpolations as the job will; one line if one fails."""
    try:
        nested = OmegaConf.create(config.nest(flat) | run)
        resolved = OmegaConf.to_container(nested, resolve=True)
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
    try:
        flat = config.flatten(cfg)
    except ValueError as err:  # a preset that sets a group's name as a value
        raise BadInput([f"{PRESETS}={preset or 'default'}: {err}"]) from None
    return flat, {key: cfg.get(key) for key in RUN_KEYS}


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


def unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
