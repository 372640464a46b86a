"""From a sweep folder's files to tables: trials -> one row per cell -> capacity.

Pure functions on DataFrames, plus the few small readers and writers ``run`` needs.
Column and file names come from ``sweep.schema``: never retype them here.
"""

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.schema import (
    ANALYSIS_DIR,
    CONFIG_KEYS,
    DERIVED_COLUMNS,
    IDENTITY_COLUMNS,
    METRIC_COLUMNS,
    METRICS_FILE,
    SAMPLES_FILE,
    STATUS_FILE,
)

log = logging.getLogger(__name__)

GROUPS = ("model", "method")  # config groups: `model`, `model.*`, `method`, `method.*`
OK_STATUSES = ("ok", "cached")  # a cached cell holds the results of an ok run
CELL_DIR = "cell_dir"  # added here: the cell's folder, relative to the sweep folder
N_TRIALS = "n_trials"
CAPACITY = "max_sparsity"  # capacity.csv: largest sparsity at >= 50 % success
SIG_DIGITS = 10  # floats equal to 10 significant digits are the same config value
AXIS_EXCLUDED = ("seed", "trials")  # varying, but never an axis of a plot
MISSING = (3,)  # normalize(None) == normalize(NaN): sorts after every value


class NoResultsError(ValueError):
    """A sweep folder holds no readable metrics file."""


@dataclass(frozen=True)
class PlotAxes:
    """Which varying keys are the x axis, the y axis and the panels of every figure."""

    x: str | None
    y: str | None
    panels: tuple[str, ...]


# --- reading -------------------------------------------------------------------------


def find_metric_files(sweep_dir: Path) -> list[Path]:
    """Every cell's metrics file under ``sweep_dir`` (not under its analysis folder)."""
    skip = sweep_dir / ANALYSIS_DIR
    files = (p for p in sweep_dir.rglob(METRICS_FILE) if not p.is_relative_to(skip))
    return sorted(files)  # sorted: the same folder always gives the same tables


def read_parquet(path: Path) -> pd.DataFrame | None:
    """The table in ``path``, or None (with a warning naming it) if unreadable."""
    try:
        return pd.read_parquet(path)
    except Exception as err:  # a partial or corrupt file must not stop the analysis
        log.warning("skipping unreadable %s: %s", path, err)
        return None


def read_status(cell_dir: Path) -> str | None:
    """The status field of ``cell_dir``/status.json; None if absent or unreadable."""
    path = cell_dir / STATUS_FILE
    if not path.exists():
        return None
    try:
        status = json.loads(path.read_text()).get("status")
    except (OSError, ValueError, AttributeError) as err:
        log.warning("skipping unreadable %s: %s", path, err)
        return None
    return status if isinstance(status, str) else None


def load_metrics(sweep_dir: Path) -> pd.DataFrame:
    """All cells' trial rows concatenated, plus ``cell_dir``: (n_rows, n_columns)."""
    frames = []
    for path in find_metric_files(sweep_dir):
        frame = read_parquet(path)
        if frame is not None and len(frame):
            cell_dir = path.parent.relative_to(sweep_dir).as_posix()
            frames.append(frame.assign(**{CELL_DIR: cell_dir}))
    if not frames:
        raise NoResultsError(f"no readable {METRICS_FILE} under it")
    return pd.concat(frames, ignore_index=True)


def load_cell_status(sweep_dir: Path, cell_dirs: Iterable[str]) -> dict[str, str]:
    """status.json's status per cell folder (relative path), where there is one."""
    warn_missing_cells(sweep_dir)
    found = {cell: read_status(sweep_dir / cell) for cell in cell_dirs}
    return {cell: status for cell, status in found.items() if status is not None}


def warn_missing_cells(sweep_dir: Path) -> None:
    """Log the cell folders that have a status.json but no metrics file."""
    skip = sweep_dir / ANALYSIS_DIR
    for path in sorted(sweep_dir.rglob(STATUS_FILE)):
        if not path.is_relative_to(skip) and not (path.parent / METRICS_FILE).exists():
            log.warning("cell without %s: %s", METRICS_FILE, path.parent)


def load_samples(cell_dir: Path, *, trial: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X and X_hat of one trial from samples.parquet: both (n_samples, n_features)."""
    frame = read_parquet(cell_dir / SAMPLES_FILE)
    if frame is None or frame.empty:
        raise FileNotFoundError(f"no readable {SAMPLES_FILE} in {cell_dir}")
    if not (frame["trial"] == trial).any():
        trial = frame["trial"].min()
    frame = frame[frame["trial"] == trial]
    X = frame.pivot_table(index="sample", columns="feature", values="true")
    X_hat = frame.pivot_table(index="sample", columns="feature", values="recovered")
    return X.to_numpy(float), X_hat.reindex_like(X).to_numpy(float)


# --- columns and values --------------------------------------------------------------


def is_config_key(column: str) -> bool:
    """Whether ``column`` is a configuration key (top-level, model or method)."""
    group = column.split(".", 1)[0]
    return column in CONFIG_KEYS or group in GROUPS


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The config-key columns present, in a fixed order: schema order, then groups."""
    top = [key for key in CONFIG_KEYS if key in frame]
    grouped = []
    for group in GROUPS:
        params = sorted(c for c in frame if c.startswith(group + "."))
        grouped += [group] * (group in frame) + params
    return top + grouped


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def is_numeric(series: pd.Series) -> bool:
    """Whether a column holds numbers: a numeric dtype (not bool), or objects that
    are all numbers, at least one (None-only columns carry no numbers)."""
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    values = series.dropna()
    return len(values) > 0 and all(_is_number(v) for v in values)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The schema's metrics, and every other numeric column that is not identity,
    config or derived: metrics added later are aggregated too."""
    other = {*IDENTITY_COLUMNS, *DERIVED_COLUMNS, CELL_DIR}
    return [
        c
        for c in frame
        if c in METRIC_COLUMNS
        or (c not in other and not is_config_key(c) and is_numeric(frame[c]))
    ]


def normalize(value: object) -> tuple:
    """A hashable, sortable stand-in for a config value: floats rounded, NaN one value.

    Tagged tuples, so that True and 1.0 differ and mixed types still sort.
    """
    if value is None or (not isinstance(value, str) and _is_missing(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return (1, bool(value))
    if _is_number(value):
        number = float(value)
        if math.isfinite(number):
            number = float(f"{number:.{SIG_DIGITS}g}")
        return (0, number)
    return (2, str(value))


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are values
        return False


def normalized(frame: pd.DataFrame, keys: Iterable[str]) -> list[tuple]:
    """One tuple of normalized values per row of ``frame``: (n_rows,) keys."""
    columns = [[normalize(v) for v in frame[key].tolist()] for key in keys]
    return list(zip(*columns, strict=True)) if columns else [()] * len(frame)


def group_ids(frame: pd.DataFrame, keys: Iterable[str]) -> np.ndarray:
    """An integer group per row: rows equal in every normalized key share one."""
    ids: dict[tuple, int] = {}
    return np.array([ids.setdefault(t, len(ids)) for t in normalized(frame, keys)])


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """Config keys with more than one distinct (rounded) value; NaN counts as one.

    A parameter of a group (``method.alpha``) varies only if it takes several values
    for one method: being absent for the other methods is not a sweep axis.
    """
    return [key for key in config_columns(frame) if _varies(frame, key)]


def _varies(frame: pd.DataFrame, key: str) -> bool:
    group = key.split(".")[0]
    if group == key or group not in frame:
        return len(set(normalized(frame, [key]))) > 1
    parts = frame.groupby(group, dropna=False, sort=False)
    return any(len(set(normalized(part, [key]))) > 1 for _, part in parts)


def sort_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame`` sorted by the normalized values of ``keys`` (missing last)."""
    order = sorted(range(len(frame)), key=normalized(frame, keys).__getitem__)
    return frame.iloc[order].reset_index(drop=True)


# --- trials -> cells -----------------------------------------------------------------


def aggregate_trials(
    trials: pd.DataFrame, cell_status: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per cell: its config keys, ``n_trials`` ok rows, ``status``, and per
    metric the mean and standard error (``<metric>_sem``) over ok trials.

    trials: (n_rows, ...) from ``load_metrics``. cell_status: status.json's status per
    ``cell_dir``; cells not in it get "ok" if they have an ok row, else "failed".
    """
    keys = config_columns(trials)
    gid = group_ids(trials, keys)  # by config, not by folder name: Hydra's names vary
    ok = _ok_rows(trials)
    metrics = metric_columns(trials)
    values = trials[metrics].apply(pd.to_numeric, errors="coerce")
    values.loc[~ok] = np.nan  # failed rows never enter a mean
    grouped = values.groupby(gid, sort=False)
    mean, sem = grouped.mean(), grouped.std(ddof=1) / np.sqrt(grouped.count())
    first = pd.Series(gid).drop_duplicates().index  # each cell's first row
    ident = [c for c in (*DERIVED_COLUMNS, "cell", CELL_DIR) if c in trials]
    cells = trials.iloc[first][keys + ident].reset_index(drop=True)
    cells[N_TRIALS] = ok.groupby(gid, sort=False).sum().to_numpy()
    cells["status"] = _cell_status(cells, cell_status or {})
    for metric in metrics:
        cells[metric] = mean[metric].to_numpy()
        cells[f"{metric}_sem"] = sem[metric].to_numpy()
    return sort_rows(cells, keys + [c for c in ("cell", CELL_DIR) if c in cells])


def _ok_rows(trials: pd.DataFrame) -> pd.Series:
    if "status" not in trials:
        return pd.Series(True, index=trials.index)
    return trials["status"].isin(OK_STATUSES)


def _cell_status(cells: pd.DataFrame, cell_status: Mapping[str, str]) -> list[str]:
    folders = cells[CELL_DIR] if CELL_DIR in cells else [None] * len(cells)
    derived = np.where(cells[N_TRIALS] > 0, "ok", "failed")
    return [cell_status.get(f, d) for f, d in zip(folders, derived, strict=True)]


# --- axes and panels -----------------------------------------------------------------


def choose_axes(results: pd.DataFrame) -> PlotAxes:
    """x: sparsity, else k, else another numeric key; y: neurons, else the next one.

    Every other varying key becomes a panel (method, method.*, n_features, model...).
    """
    varying = varying_keys(results)
    numeric = [k for k in varying if k not in AXIS_EXCLUDED and is_numeric(results[k])]
    # sparsity and k may be NaN where the other one is set; other axes must be full
    full = [k for k in numeric if results[k].notna().all()]
    others = [k for k in full if k not in ("sparsity", "k", "neurons")]
    x = _first([k for k in ("sparsity", "k") if k in numeric] + others)
    y = _first([k for k in ("neurons", *others) if k in full and k != x])
    if x is None:
        x, y = y, None
    panels = tuple(k for k in varying if k not in (x, y))
    return PlotAxes(x=x, y=y, panels=panels)


def _first(keys: list[str]) -> str | None:
    return keys[0] if keys else None


def panel_groups(
    results: pd.DataFrame, keys: Iterable[str]
) -> list[tuple[dict[str, object], pd.DataFrame]]:
    """Rows of ``results`` split by the values of ``keys``, in sorted order.

    Returns (values of the keys, that panel's rows) pairs; one pair if keys is empty.
    """
    keys = list(keys)
    if results.empty:
        return []
    results = sort_rows(results, keys)
    gid = group_ids(results, keys)
    groups = []
    for g in dict.fromkeys(gid.tolist()):
        rows = results[gid == g].reset_index(drop=True)
        groups.append(({key: rows[key].iloc[0] for key in keys}, rows))
    return groups


def label_keys(results: pd.DataFrame, keys: Iterable[str]) -> list[str]:
    """The panel keys worth naming in a title: a ``method.*``/``model.*`` key that
    takes one value per method (model) adds nothing to ``method=...`` and is left out.
    """
    keys = list(keys)
    named = []
    for key in keys:
        group = key.split(".", 1)[0]
        if group != key and group in keys:
            pairs = set(normalized(results, [group, key]))
            if len(pairs) == len({g for g, _ in pairs}):  # one value per group name
                continue
        named.append(key)
    return named


def numeric_values(series: pd.Series) -> pd.Series:
    """``series`` as floats (non-numbers NaN), values equal to 10 digits made equal."""
    values = pd.to_numeric(series, errors="coerce").astype(float)
    return values.map(lambda v: normalize(v)[-1] if math.isfinite(v) else v)


# --- capacity ------------------------------------------------------------------------


def capacity_number(
    results: pd.DataFrame, axes: PlotAxes, *, threshold: float = 0.5
) -> pd.DataFrame:
    """Per panel and y value (neurons), the largest sparsity with mean success_rate
    >= threshold (NaN when none); for exactly-k data the density k/n = 1 - S.

    Returns (n_panels * n_y, panels + y + ``max_sparsity``); empty without a
    sparsity or k axis.
    """
    by = [*axes.panels, *([axes.y] if axes.y else [])]
    if axes.x not in ("sparsity", "k") or "success_rate" not in results:
        return pd.DataFrame(columns=[*by, CAPACITY])
    results = sort_rows(results, by)
    density = _density(results, axes.x)
    success = pd.to_numeric(results["success_rate"], errors="coerce")
    passed = density.where(success >= threshold)
    gid = group_ids(results, by)
    first = pd.Series(gid).drop_duplicates().index
    table = results.iloc[first][by].reset_index(drop=True)
    table[CAPACITY] = passed.groupby(gid, sort=False).max().to_numpy()
    return table


def _density(results: pd.DataFrame, x: str) -> pd.Series:
    """Fraction of active features per row: sparsity, or 1 - S (= k / n) for k."""
    if x == "sparsity":
        return numeric_values(results["sparsity"])
    if "S" in results:
        return 1 - numeric_values(results["S"])
    return numeric_values(results["k"]) / numeric_values(results["n_features"])


# --- the representative cell of the heatmaps -----------------------------------------


def representative_cells(results: pd.DataFrame, axes: PlotAxes) -> list[pd.DataFrame]:
    """Cells whose samples the heatmaps show: one table per row of the figure.

    Within each combination of data keys (panel keys other than method.*), the
    middle (y, x) cell present in every method panel, so that all methods are shown
    on identical data; if there is none, each panel's own middle cell in its own row.
    """
    ok = results[results["status"].isin(OK_STATUSES) & (results[N_TRIALS] > 0)]
    method_keys = [k for k in axes.panels if k.split(".", 1)[0] == "method"]
    data_keys = [k for k in axes.panels if k not in method_keys]
    rows = []
    for _, group in panel_groups(ok, data_keys):
        panels = [p for _, p in panel_groups(group, method_keys)]
        coords = [set(_coords(p, axes)) for p in panels]
        common = set.intersection(*coords)
        if common:
            target = _middle(common)
            rows.append(pd.concat([_at(p, axes, target) for p in panels]))
        else:
            rows += [
                _at(p, axes, _middle(set(c)))
                for p, c in zip(panels, coords, strict=True)
            ]
    return rows


def _coords(panel: pd.DataFrame, axes: PlotAxes) -> list[tuple]:
    """(y, x) normalized per row; a missing axis is a constant."""
    ys = normalized(panel, [axes.y]) if axes.y else [()] * len(panel)
    xs = normalized(panel, [axes.x]) if axes.x else [()] * len(panel)
    return list(zip(ys, xs, strict=True))


def _middle(coords: set[tuple]) -> tuple:
    """The middle y, then the middle x among the cells at that y. Between two
    middles, the easier side: more neurons, lower sparsity."""
    ys = sorted({y for y, _ in coords})
    y = ys[len(ys) // 2]
    xs = sorted(x for yy, x in coords if yy == y)
    return y, xs[(len(xs) - 1) // 2]


def _at(panel: pd.DataFrame, axes: PlotAxes, target: tuple) -> pd.DataFrame:
    hits = [i for i, c in enumerate(_coords(panel, axes)) if c == target]
    return panel.iloc[hits[:1]]


# --- writing -------------------------------------------------------------------------


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` atomically; mixed-type object columns stored as text."""
    atomic_write(path, lambda tmp: arrow_safe(frame).to_parquet(tmp, index=False))


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV atomically."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with object columns mixing kinds (bool, number, text) as text,
    which parquet cannot store in one column (e.g. method.tol: 1e-6 and "auto")."""
    frame = frame.copy()
    for column in frame.columns:
        if not pd.api.types.is_object_dtype(frame[column]):
            continue
        kinds = {normalize(v)[0] for v in frame[column].dropna()}
        if len(kinds) > 1:
            frame[column] = frame[column].map(str).where(frame[column].notna(), None)
    return frame


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
