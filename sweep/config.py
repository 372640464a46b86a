"""The configuration of a cell, and validation of a whole grid before anything runs.

``validate_argv`` expands the grid exactly as Hydra's basic sweeper will (the preset's
``hydra.sweeper.params`` first, the command line overriding them key by key), builds
each point's configuration and checks every value. Hydra itself would reject some bad
values (a non-integer, an unknown group option) with exit code 1 before any callback
runs, so this runs first, in ``__main__``.
"""

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf

from sweep import CONF_DIR
from sweep.checks import integer, optional, real
from sweep.folders import read_status
from sweep.methods import LEARNED, METHODS
from sweep.models import MODELS
from sweep.registry import Registry
from sweep.schema import STATUS_FILE

GROUPS = {"model": MODELS, "method": METHODS}  # the order of schema.GROUPS
PRESETS = "experiment"

# What each top-level key allows; sparsity / k are also checked together below.
TOP_LEVEL = {
    "seed": integer(0),
    "n_features": integer(1),
    "neurons": integer(1),
    "sparsity": optional(real(0, 1, open_low=True)),
    "k": optional(integer(1)),
    "trials": integer(1),
    "n_samples": integer(1),
    "n_train": integer(0),
    "noise": real(0),
    "success_tol": real(0, open_low=True),
    "represented_tol": real(0, 1),
}


# Keys that say how a cell runs, not what it computes: not part of its identity (its
# folder name, fingerprint and rows), so changing them keeps finished cells cached.
RUN_KEYS = {"cell_timeout_s": optional(real(0, open_low=True))}


def flatten(cfg: DictConfig | dict) -> dict[str, Any]:
    """The cell's defining keys as one flat dict: ``method``, ``method.alpha``, ..."""
    if isinstance(cfg, DictConfig):  # leave out (and never resolve) Hydra's own node
        keys = [key for key in cfg if key != "hydra"]
        cfg = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    flat = {key: cfg[key] for key in TOP_LEVEL if key in cfg}
    for group in GROUPS:
        params = dict(cfg.get(group) or {})
        flat[group] = params.pop("name", None)
        flat.update({f"{group}.{p}": v for p, v in sorted(params.items())})
    extra = set(cfg) - set(TOP_LEVEL) - set(GROUPS) - set(RUN_KEYS) - {"hydra"}
    flat.update({key: cfg[key] for key in sorted(extra)})
    return flat


FLOAT_KEYS = {"sparsity", "noise", "success_tol", "represented_tol"}


def normalise(flat: dict[str, Any]) -> dict[str, Any]:
    """The cell as computed: an integer given for a float key becomes a float.

    ``sparsity=1`` and ``sparsity=1.0`` are one cell: one data stream, one hash.
    """
    out = dict(flat)
    for key, value in flat.items():
        group, _, param = key.partition(".")
        registry = GROUPS.get(group, {})
        if param and flat.get(group) in registry:
            default = Registry.params(registry[flat[group]]).get(param)
            is_float = isinstance(default, float)
        else:
            is_float = key in FLOAT_KEYS
        if is_float and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def validate_cell(flat: dict[str, Any]) -> list[str]:
    """Every problem with one cell's flat configuration, one line each."""
    errors = []
    for key, value in flat.items():
        if key in TOP_LEVEL:
            why = TOP_LEVEL[key](value)
            if why:
                errors.append(f"{key}={value!r}: allowed is {why}")
        elif key not in GROUPS and key.split(".")[0] not in GROUPS:
            errors.append(_unknown(key, value, TOP_LEVEL))
    errors += _check_sparsity(flat)
    if flat.get("method") in LEARNED and flat.get("n_train") == 0:
        errors.append(
            f"n_train=0 (method={flat['method']}): allowed is an integer >= 1, a"
            " learned method needs training data"
        )
    for group, registry in GROUPS.items():
        errors += _check_group(flat, group, registry)
    return errors


def _check_sparsity(flat: dict[str, Any]) -> list[str]:
    sparsity, k, n = flat.get("sparsity"), flat.get("k"), flat.get("n_features")
    if sparsity is None and k is None:
        return ["sparsity=None and k=None: set one of them"]
    if sparsity is not None and k is not None:
        return [
            f"k={k} with sparsity={sparsity}: set only one (sparsity=null to use k)"
        ]
    if isinstance(k, int) and isinstance(n, int) and k > n:
        return [f"k={k}: allowed is an integer <= n_features={n}"]
    return []


def _check_group(flat: dict[str, Any], group: str, registry: Registry) -> list[str]:
    name = flat.get(group)
    if name not in registry:
        return [_unknown(group, name, sorted(registry))]
    checks = registry.checks[name]
    given = {
        k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(group + ".")
    }
    errors = []
    for param, value in given.items():
        if param not in checks:
            errors.append(_no_param(group, name, param, value))
        elif why := checks[param](value):
            errors.append(
                f"{group}.{param}={value!r} ({group}={name}): allowed is {why}"
            )
    errors += [
        f"{group}.{p}: missing (state it in conf/{group}/{name}.yaml)"
        for p in checks
        if p not in given
    ]
    return errors


# --- the grid of a command line -------------------------------------------------


# Hydra flags that take the next argument as their value (not an override).
VALUE_FLAGS = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir",
               "-c", "--cfg", "-p", "--package", "--experimental-rerun"}  # fmt: skip


def split_argv(argv: list[str]) -> tuple[bool, list[str], list[str]]:
    """(multirun, overrides, other flags with their values) of a command line."""
    overrides, flags, after_flag = [], [], False
    for arg in argv:
        if after_flag or arg.startswith("-"):
            flags.append(arg)
            after_flag = arg in VALUE_FLAGS
        else:
            overrides.append(arg)
    multirun = "-m" in flags or "--multirun" in flags
    return multirun, overrides, [f for f in flags if f not in ("-m", "--multirun")]


def force_group_params(argv: list[str]) -> list[str]:
    """Write ``model.steps=2000`` as ``++model.steps=2000`` unless ``model=`` is fixed.

    Hydra first composes one master config from the command line without its sweeps,
    so with the group swept (``model=toy_relu,toy_linear``) or left to its default it
    would apply ``model.steps`` to the default model, which has no such key, and stop
    (exit 1). ``++`` sets the key in every job; the validation still checks that each
    job's model or method has the parameter.
    """
    multirun, overrides, _ = split_argv(argv)
    try:
        parsed = dict(zip(overrides, _PARSER.parse_overrides(overrides), strict=True))
    except Exception:  # reported by the validation
        return argv
    fixed = {o.key_or_group for o in parsed.values() if _is_group(o)}

    def forced(arg: str) -> str:
        o = parsed.get(arg)
        group = o.key_or_group.split(".")[0] if o else None
        free = group in GROUPS and group not in fixed and "." in o.key_or_group
        return (
            f"++{arg}" if multirun and free and o.type is OverrideType.CHANGE else arg
        )

    return [forced(arg) for arg in argv]


def validate_argv(argv: list[str]) -> list[str]:
    """Every problem of every point of the grid the command line asks for.

    Also refuses a grid whose cell folders already hold other configurations (a
    re-run on an existing ``hydra.sweep.dir`` / ``hydra.run.dir``).
    """
    multirun, overrides, _ = split_argv(argv)
    try:
        parsed = _PARSER.parse_overrides(overrides)
        points = _grid(parsed, multirun)
    except ValueError as err:
        return [str(err)]
    except Exception as err:  # Hydra's grammar errors: keep their first line
        first = str(err).strip().splitlines()[0]
        return [f"cannot parse the overrides ({first}); allowed: key=value, key=a,b"]
    errors = _check_hydra_overrides(parsed)
    target = _target_dir(parsed, multirun)
    folders: dict[str, dict] = {}  # cell folder name -> its configuration
    for point in points:
        flat, point_errors = point_config(point)
        errors += point_errors
        if point_errors:
            continue
        name = _cell_name(point) if multirun else ""
        other = folders.setdefault(name, flat)
        if fingerprint(normalise(other)) != fingerprint(normalise(flat)):
            errors.append(
                f"two points of the grid share the folder {name!r} with different"
                " configurations: set the differing keys on the command line, not"
                " through experiment= alone"
            )
        if target:
            folder = target / name if multirun else target
            errors += [why] if (why := folder_conflict(folder, flat)) else []
    return _unique(errors)


def cell_names(argv: list[str]) -> list[str]:
    """The cell folders of a valid multirun command line (after ``validate_argv``)."""
    multirun, overrides, _ = split_argv(argv)
    points = _grid(_PARSER.parse_overrides(overrides), multirun)
    return [_cell_name(point) for point in points]


def _check_hydra_overrides(parsed: list[Override]) -> list[str]:
    """Hydra settings this validation cannot see into, or that would crash Hydra."""
    errors = []
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra.sweeper.params"):
            errors.append(
                f"{o.input_line}: set grid axes as key=a,b on the command line or in"
                " conf/experiment/, not through hydra.sweeper.params"
            )
        elif key == "hydra.launcher.n_jobs" and (
            not isinstance(o.value(), int)
            or isinstance(o.value(), bool)
            or o.value() == 0
        ):
            errors.append(
                f"{o.input_line}: allowed is a nonzero integer (-1: all cores)"
            )
    return errors


_PARSER = OverridesParser.create()


def _grid(parsed: list[Override], multirun: bool) -> list[list[Override]]:
    """The points of the grid (task overrides each), expanded as Hydra will."""
    task = [o for o in parsed if not o.is_hydra_override()]
    preset = _preset_of(task)
    if preset not in _options(PRESETS):
        raise ValueError(_unknown(PRESETS, preset, _options(PRESETS)))
    if not multirun:
        sweeps = [o.input_line for o in task if o.is_sweep_override()]
        if sweeps:
            raise ValueError(f"{sweeps[0]}: a sweep needs -m (multirun)")
        return [task]
    params = _base_config(preset, "", "").hydra.sweeper.params or {}
    lines = [f"{k}={v}" for k, v in params.items()] + [o.input_line for o in task]
    (points,) = BasicSweeper.split_arguments(_PARSER.parse_overrides(lines), None)
    return [_PARSER.parse_overrides(point) for point in points]


def point_config(overrides: list[Override]) -> tuple[dict, list[str]]:
    """The flat configuration of one point of the grid, and its problems."""
    choices = {o.key_or_group: o.value() for o in overrides if _is_group(o)}
    for group in GROUPS:
        name = choices.get(group)
        if name is not None and name not in _options(group):
            return {}, [_unknown(group, name, _options(group))]
    cfg = _base_config(
        _preset_of(overrides), choices.get("method", ""), choices.get("model", "")
    ).copy()
    OmegaConf.set_struct(cfg, False)
    errors = []
    for o in overrides:
        if _is_group(o) or o.key_or_group == PRESETS:
            continue
        if o.type is OverrideType.DEL:
            errors.append(f"{o.input_line}: deleting a key is not supported")
        elif OmegaConf.select(cfg, o.key_or_group, default=_ABSENT) is _ABSENT:
            errors.append(_unknown_key(cfg, o))
        else:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
    flat = flatten(cfg)
    for key, check in RUN_KEYS.items():
        if why := check(cfg.get(key)):
            errors.append(f"{key}={cfg.get(key)!r}: allowed is {why}")
    return flat, errors + validate_cell(flat)


def target_dir(argv: list[str]) -> Path | None:
    """The sweep (or run) folder a command line names, if it names one."""
    multirun, overrides, _ = split_argv(argv)
    return _target_dir(_PARSER.parse_overrides(overrides), multirun)


def _target_dir(parsed: list[Override], multirun: bool) -> Path | None:
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    return next((Path(o.value()) for o in parsed if o.key_or_group == key), None)


def _cell_name(point: list[Override]) -> str:
    """The folder Hydra gives this point: ``hydra.job.override_dirname``."""
    naming = _base_config(_preset_of(point), "", "").hydra.job.config.override_dirname
    return get_overrides_dirname(
        point, list(naming.exclude_keys), naming.item_sep, naming.kv_sep
    )


def folder_conflict(folder: Path, flat: dict) -> str | None:
    """Why ``folder`` cannot hold this cell (it holds another one), or None."""
    flat = normalise(flat)
    stored = read_status(folder) if (folder / STATUS_FILE).exists() else {}
    if stored.get("fingerprint", fingerprint(flat)) == fingerprint(flat):
        return None
    return conflict_message(folder, stored.get("config", {}), flat)


def fingerprint(flat: dict) -> str:
    """A stable hash of a cell's flat configuration."""
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def conflict_message(folder: Path, stored: dict, flat: dict) -> str:
    """Which keys differ between a folder's configuration and the requested one."""
    keys = sorted(set(stored) | set(flat))
    diff = [f"{k}={stored.get(k)!r} there, {flat.get(k)!r} now" for k in keys
            if stored.get(k) != flat.get(k)]  # fmt: skip
    return (
        f"{folder} holds another configuration ({'; '.join(diff)}): choose another"
        " hydra.sweep.dir (hydra.run.dir for a single run), or delete that folder to"
        " recompute it"
    )


_ABSENT = object()


def _unknown_key(cfg: DictConfig, o: Override) -> str:
    group, _, param = o.key_or_group.partition(".")
    if group in GROUPS and param:
        return _no_param(group, cfg[group].name, param, o.value())
    return _unknown(o.key_or_group, o.value(), TOP_LEVEL)


def _no_param(group: str, name: str, param: str, value: Any) -> str:
    params = ", ".join(GROUPS[group].checks.get(name, {})) or "none"
    return (
        f"{group}.{param}={value!r}: {group} {name} has no parameter {param!r}"
        f" (allowed: {params})"
    )


def _unknown(key: str, value: Any, allowed) -> str:
    return f"{key}={value!r}: unknown (allowed: {', '.join(allowed)})"


def _is_group(o: Override) -> bool:
    return o.key_or_group in GROUPS and not o.is_sweep_override()


def _preset_of(overrides: list[Override]) -> str:
    for o in overrides:
        if o.key_or_group == PRESETS and not o.is_sweep_override():
            return str(o.value())
    return "default"


@cache
def _options(group: str) -> tuple[str, ...]:
    """The option names of a config group: its yaml files."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


@cache
def _base_config(preset: str, method: str, model: str) -> DictConfig:
    """The composed config of a preset and group choices, before value overrides."""
    overrides = [f"{PRESETS}={preset}"]
    overrides += [f"method={method}"] if method else []
    overrides += [f"model={model}"] if model else []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
