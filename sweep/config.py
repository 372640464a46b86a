"""The configuration of one cell: its keys and their checks, its identity, its folder.

A cell is identified by its normalised flat configuration (``normalise(flatten(cfg))``):
its ``fingerprint`` keys the cache, and ``cell_name`` names its folder. Both come from
the configuration itself, never from how a command line spelled it, so that
``sparsity=0.1`` and ``sparsity=1e-1`` are one cell and one folder.
"""

import hashlib
import json
import math
from difflib import get_close_matches
from functools import cache
from typing import Any
from urllib.parse import quote

from omegaconf import DictConfig, OmegaConf

from sweep import CONF_DIR, data
from sweep.checks import INT64_MAX, integer, optional, real, word_or
from sweep.methods import ACTIVATIONS, METHODS
from sweep.models import MODELS
from sweep.registry import Registry

GROUPS = {"model": MODELS, "method": METHODS}  # the order of schema.GROUPS

AUTO = "auto"  # n_train's default: ``auto_n_train`` of the cell

# What each top-level key allows; sparsity / k are also checked together below.
TOP_LEVEL = {
    "seed": integer(0, INT64_MAX),
    "n_features": integer(1),
    "neurons": integer(1),
    "sparsity": optional(real(0, 1, open_low=True)),
    "k": optional(integer(1)),
    "trials": integer(1),
    "n_samples": integer(1),
    "n_train": word_or(AUTO, integer(0)),
    "noise": real(0),
    "success_tol": real(0, open_low=True),
    "represented_tol": real(0, 1),
}

# The data keys, ``data.firing`` ...: what the features look like (sweep/data.py).
DATA = {f"{data.SECTION}.{key}": check for key, check in data.KEYS.items()}

# Keys that say how a cell runs, not what it computes: not part of its identity (its
# folder name, fingerprint and rows), so changing them keeps finished cells cached.
RUN_KEYS = {
    "cell_timeout_s": optional(real(0, open_low=True)),
    "cell_memory_gb": optional(real(0, open_low=True)),
}


def flatten(cfg: DictConfig | dict) -> dict[str, Any]:
    """The cell's defining keys as one flat dict: ``method``, ``method.alpha``, ..."""
    if isinstance(cfg, DictConfig):  # leave out (and never resolve) Hydra's own node
        keys = [key for key in cfg if key != "hydra"]
        cfg = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    flat = {key: cfg[key] for key in TOP_LEVEL if key in cfg}
    section = _section(cfg, data.SECTION, "set its keys as data.KEY=VALUE")
    flat.update({f"{data.SECTION}.{key}": section[key] for key in sorted(section)})
    for group in GROUPS:
        params = _section(cfg, group, f"choose a {group} with {group}=NAME on the"
                          f" command line, or in a preset under hydra.sweeper.params"
                          f" ({group}: NAME)")  # fmt: skip
        flat[group] = params.pop("name", None)
        flat.update({f"{group}.{p}": v for p, v in sorted(params.items())})
    extra = set(cfg) - set(TOP_LEVEL) - set(GROUPS) - set(RUN_KEYS)
    extra -= {"hydra", data.SECTION}
    flat.update({key: cfg[key] for key in sorted(extra)})
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """The configuration a job is given, from its flat form (``flatten``'s inverse):
    ``{"method": "lasso", "method.alpha": 0.1}`` -> ``{"method": {"name": "lasso",
    "alpha": 0.1}}``."""
    nested: dict[str, Any] = {group: {} for group in GROUPS}
    for key, value in flat.items():
        group, _, param = key.partition(".")
        if group in GROUPS:
            nested[group][param or "name"] = value
        elif group == data.SECTION and param:
            nested.setdefault(group, {})[param] = value
        else:
            nested[key] = value
    return nested


FLOAT_KEYS = {"sparsity", "noise", "success_tol", "represented_tol"} | {
    f"{data.SECTION}.{key}" for key, value in data.DEFAULTS.items()
    if isinstance(value, float)
}  # fmt: skip


MIN_TRAIN = 1000  # n_train=auto: at least this many rows (the key's first default)
TRAIN_PER_FIRING = 100  # ... and enough that a feature fires ~100 times in them


def _section(cfg: dict, name: str, how: str) -> dict:
    """The settings of a section or group (none: {}); ValueError saying ``how`` to
    set it when a value stands there instead (a preset's ``model: toy_relu``)."""
    found = cfg.get(name) or {}
    if not isinstance(found, dict):
        raise ValueError(f"{name}: {found!r} stands where its settings belong; {how}")
    return dict(found)


def auto_n_train(flat: dict[str, Any]) -> int | None:
    """n_train=auto: for a method that learns from the fixed training rows, enough rows
    for each feature to fire ~TRAIN_PER_FIRING times at the mean rate (sparsity, or
    k / n_features), at least MIN_TRAIN; MIN_TRAIN for the others (unused by them:
    the methods given a dictionary, an SAE trained on fresh samples, and a real
    network, which brings its own training rows: None, as it trains them on all its
    rows not held out; the metric ``train_rows`` says how many)."""
    if network(flat):
        return None
    learns = flat.get("method") in METHODS.having(uses=ACTIVATIONS)
    if not learns or flat.get("method.train_samples") is not None:
        return MIN_TRAIN
    rate = flat["sparsity"] if flat["sparsity"] is not None else (
        flat["k"] / flat["n_features"])  # fmt: skip
    return max(MIN_TRAIN, math.ceil(TRAIN_PER_FIRING / rate - 1e-9))


def normalise(flat: dict[str, Any]) -> dict[str, Any]:
    """The cell as computed: an integer given for a float key becomes a float,
    n_train=auto its number (``auto_n_train``), and for a real network's
    activations (no features drawn, its own training rows) sparsity, k and n_train
    null.

    ``sparsity=1`` and ``sparsity=1.0`` are one cell: one data stream, one hash.
    """
    out = dict(flat)
    if network(out):
        out["sparsity"] = out["k"] = None  # a network's activations: no features drawn
    if out.get("n_train") == AUTO:
        out["n_train"] = auto_n_train(out)
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
        check = TOP_LEVEL.get(key) or DATA.get(key)
        if check:
            why = check(value)
            if why:
                errors.append(f"{key}={show(value)}: allowed is {why}")
        elif key not in GROUPS and key.split(".")[0] not in GROUPS:
            errors.append(unknown(key, value, [*TOP_LEVEL, *DATA]))
    errors += _check_sparsity(flat)
    if not errors:
        errors += data.problems(flat["n_features"], flat["sparsity"], flat["k"],
                                data_keys(flat))  # fmt: skip
    learns = flat.get("method") in METHODS.having(uses=ACTIVATIONS)
    if learns and flat.get("n_train") == 0:
        errors.append(
            f"n_train=0 (method={flat['method']}): allowed is auto or an integer"
            " >= 1, a learned method needs training data"
        )
    for group, registry in GROUPS.items():
        errors += _check_group(flat, group, registry)
    if network(flat) and not errors:  # the model's own checks need its keys valid
        errors += _network_problems(flat)
    return errors


def _network_problems(flat: dict[str, Any]) -> list[str]:
    """A real network's activations: no known features, a fixed set of rows."""
    model, method = flat["model"], flat.get("method")
    learned = METHODS.having(uses=ACTIVATIONS)
    if method not in learned:
        return [f"method={method} with model={model}: no dictionary: a network's"
                " activations have no known features; allowed are the methods that"
                f" learn one: {', '.join(learned)}"]  # fmt: skip
    if flat.get("method.train_samples") is not None:
        return [f"method.train_samples={flat['method.train_samples']} with model="
                f"{model}: allowed is null (a network's activations are a fixed set"
                " of rows, not a generator of fresh ones)"]  # fmt: skip
    if flat.get("n_train") != AUTO:
        return [f"n_train={show(flat.get('n_train'))} with model={model}: allowed is"
                " auto (a network trains the methods on all its rows not held out)"]
    check = MODELS.traits[model].problems
    return check(flat) if check else []


def validate_run(run: dict[str, Any]) -> list[str]:
    """Problems with the run keys (how a cell runs), one line each."""
    return [
        f"{key}={show(run.get(key))}: allowed is {why}"
        for key, check in RUN_KEYS.items()
        if (why := check(run.get(key)))
    ]


def _check_sparsity(flat: dict[str, Any]) -> list[str]:
    sparsity, k, n = flat.get("sparsity"), flat.get("k"), flat.get("n_features")
    if sparsity is None and k is None:
        return ["sparsity=None and k=None: set one of them"]
    if sparsity is not None and k is not None:
        return [
            f"k={show(k)} with sparsity={show(sparsity)}: set only one"
            " (sparsity=null to use k)"
        ]
    if isinstance(k, int) and isinstance(n, int) and k > n:
        return [f"k={show(k)}: allowed is an integer <= n_features={show(n)}"]
    return []


def _check_group(flat: dict[str, Any], group: str, registry: Registry) -> list[str]:
    name = flat.get(group)
    if name not in registry:
        return [unknown(group, name, sorted(registry))]
    checks = registry.checks[name]
    given = {
        k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(group + ".")
    }
    errors = []
    for param, value in given.items():
        if param not in checks:
            errors.append(no_param(group, name, param, value))
        elif why := checks[param](value):
            errors.append(
                f"{group}.{param}={show(value)} ({group}={name}): allowed is {why}"
            )
    errors += [
        f"{group}.{p}: missing (state it in conf/{group}/{name}.yaml)"
        for p in checks
        if p not in given
    ]
    return errors


def uncompressed(flat: dict[str, Any]) -> bool:
    """Whether a cell has at least as many neurons as features: no superposition
    (a real network's n_features is a dictionary's size, not its features')."""
    return not network(flat) and flat.get("neurons", 0) >= flat.get("n_features", 1)


def network(flat: dict[str, Any]) -> bool:
    """Whether the cell's model is a real network's activations (no ground truth)."""
    return flat.get("model") in MODELS and not MODELS.traits[flat["model"]].truth


UNCOMPRESSED = (
    "neurons >= n_features: nothing is compressed there (any method given W can be"
    " exact; superposition needs neurons < n_features)"
)


def no_param(group: str, name: str, param: str, value: Any) -> str:
    params = ", ".join(GROUPS[group].checks.get(name, {})) or "none"
    return (
        f"{group}.{param}={show(value)}: {group} {name} has no parameter {param!r}"
        f" (allowed: {params})"
    )


def unknown(key: str, value: Any, allowed) -> str:
    """An unknown key, or an unknown option of a group or preset (``key`` is then
    the group): the allowed ones, and the nearest of them."""
    allowed = list(allowed)
    typed = str(value) if key in (*GROUPS, "experiment") else key
    near = get_close_matches(typed, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"{key}={show(value)}: unknown (allowed: {', '.join(allowed)}){hint}"


def show(value: Any, width: int = 40) -> str:
    """A value as an error line shows it: its repr, shortened if it is long."""
    text = repr(value)
    if len(text) <= width:
        return text
    return f"{text[: width // 2]}...{text[-8:]} ({len(text)} characters)"


# --- identity: fingerprint and folder name --------------------------------------------


# Keys added after the first cells were written: at their default value (which
# computes exactly what was computed before they existed) they are left out of a
# cell's identity, so cells finished before them keep their fingerprint and data.
LATER = (
    f"{data.SECTION}.", "model.geometry", "model.target_cos", "method.architecture",
    "method.k", "method.bandwidth", "method.target_l0", "method.prefixes",
    "method.aux_k", "method.resample", "method.train_samples", "method.schedule",
    "method.log_every", "method.solver", "method.admm_iter",
)  # fmt: skip


def identity(flat: dict) -> dict:
    """The keys that make a cell what it is: ``flat`` without the keys added later
    (``LATER``) that hold their default."""
    defaults = _defaults(flat.get("method"), flat.get("model"))
    return {
        key: value for key, value in flat.items()
        if not (key.startswith(LATER) and defaults.get(key, _ABSENT) == value)
    }  # fmt: skip


def data_keys(flat: dict) -> dict:
    """The cell's data keys without their prefix: ``{"firing": "zipf", ...}``."""
    prefix = data.SECTION + "."
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


def fingerprint(flat: dict) -> str:
    """A stable hash of a cell's identity (``identity``)."""
    text = json.dumps(identity(flat), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


NAMED_ALWAYS = ("method", "neurons", "sparsity")  # in every cell's folder name
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name
SAFE = "._-+"  # characters kept as they are in a value (besides letters and digits)


def cell_name(flat: dict) -> str:
    """The folder name of a normalised cell: ``method=omp,neurons=10,sparsity=0.05``.

    ``method``, ``neurons`` and ``sparsity`` always, then every other key whose value
    differs from the project's default (conf/config.yaml and the group's own yaml),
    sorted, values written one way (``0.1`` however it was typed; ``true``, ``null``;
    other characters percent-encoded). Equal configurations get equal names and
    different ones different names. A name over MAX_NAME_BYTES puts the method's and
    the model's keys and ``neurons``, ``sparsity`` first, keeps as many keys as fit
    and ends with ``hash=`` and the start of the fingerprint.
    """
    defaults = _defaults(flat.get("method"), flat.get("model")) | {
        "n_train": auto_n_train(flat)  # a number in a normalised cell
    }  # fmt: skip
    keys = [
        key
        for key in sorted(flat)
        if key in NAMED_ALWAYS or flat[key] != defaults.get(key, _ABSENT)
    ]
    name = ",".join(f"{key}={_text(flat[key])}" for key in keys)
    if len(name) <= MAX_NAME_BYTES:  # ASCII: characters are bytes
        return name
    leading = (*GROUPS, *NAMED_ALWAYS)
    first = sorted(keys, key=lambda key: key.split(".")[0] not in leading)
    name = ",".join(f"{key}={_text(flat[key])}" for key in first)
    suffix = f",hash={fingerprint(flat)[:16]}"
    return name[: MAX_NAME_BYTES - len(suffix)].rsplit(",", 1)[0] + suffix


_ABSENT = object()


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false
    if isinstance(value, int | float):
        return repr(value)  # the shortest text that reads back as the same number
    return quote(str(value), safe=SAFE)


@cache
def _defaults(method: str | None, model: str | None) -> dict[str, Any]:
    """The project's default value of every key of a cell with this method and model."""
    conf = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))
    chosen = {k: v for entry in conf["defaults"] if isinstance(entry, dict)
              for k, v in entry.items()}  # fmt: skip
    defaults = {key: conf.get(key) for key in TOP_LEVEL} | {
        group: chosen.get(group) for group in GROUPS
    } | {f"{data.SECTION}.{key}": value for key, value in data.DEFAULTS.items()}
    for group, name in (("method", method), ("model", model)):
        if name in GROUPS[group]:
            params = Registry.params(GROUPS[group][name])
            defaults |= {f"{group}.{p}": v for p, v in params.items()}
    return defaults


def conflict_message(folder, stored: dict, flat: dict) -> str:
    """Which keys differ between a folder's configuration and the requested one."""
    keys = sorted(set(stored) | set(flat))
    diff = [f"{k}={show(stored.get(k))} there, {show(flat.get(k))} now" for k in keys
            if stored.get(k) != flat.get(k)]  # fmt: skip
    return (
        f"{folder} holds another configuration ({'; '.join(diff)}): choose another"
        " hydra.sweep.dir (hydra.run.dir for a single run), or delete that folder to"
        " recompute it"
    )
