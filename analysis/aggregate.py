"""From a sweep folder's files to tables: trials -> one row per cell -> capacity.

Reading goes through ``sweep.folders``; column and file names come from
``sweep.schema``. Which columns are configuration keys is decided here alone
(``config_columns``): the top-level keys, the data keys (``data.firing`` ...) and the
groups' (``model``, ``model.*``, ``method``, ``method.*``). Config columns are tidied
once when loading (one type each, floats rounded, a key added after a cell was
written filled with its default), so that everything after is plain pandas
``groupby`` and ``sort_values``.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype

from analysis import chance
from sweep import config, data, folders
from sweep.schema import (
    CONFIG_KEYS,
    DERIVED_COLUMNS,
    DONE,
    FEATURES_FILE,
    GROUPS,
    IDENTITY_COLUMNS,
    METRIC_COLUMNS,
    METRICS_FILE,
)

log = logging.getLogger(__name__)

CELL_DIR = "cell_dir"  # added here: the cell's folder, relative to the sweep folder
N_TRIALS = "n_trials"
CAPACITY = "max_sparsity"  # capacity.csv: largest sparsity at >= 50 % success
SIG_DIGITS = 10  # floats equal to 10 significant digits are the same config value
AXIS_EXCLUDED = ("seed", "trials")  # varying, but never an axis of a plot
NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal", "empty")
DATA_PREFIX = f"{data.SECTION}."  # the data keys' columns: data.firing, ...
READERS = 4  # threads reading cell folders


class NoResultsError(ValueError):
    """A sweep folder holds no readable metrics file."""


@dataclass(frozen=True)
class PlotAxes:
    """Which varying keys are the x axis, the y axis and the panels of every figure."""

    x: str | None
    y: str | None
    panels: tuple[str, ...]


class Loaded(NamedTuple):
    """A sweep folder's results, as ``analysis.load`` reads them (nothing written).

    trials: one row per trial of every finished cell (status ``ok`` or ``cached``):
        identity (``sweep``, ``cell``, ``trial``, ``status``, ``error``,
        ``schema_version``), ``cell_dir`` (the cell's folder, relative to the sweep
        folder), every config key (``n_features``, ``neurons``, ``sparsity``,
        ``method``, ``method.alpha``...: one type each, floats to 10 significant
        digits), ``S``, and the metrics (``success_rate``, ``nmse``, ...; learned
        methods also ``mcc``...).
    cells: one row per cell, as results.parquet: its config keys, ``cell_dir``,
        ``status``, ``n_trials`` (finished trials) and per metric the mean and
        standard error (``<metric>_sem``) over them; a cell that did not finish has
        n_trials 0 and NaN metrics. Learned cells add ``mcc_chance`` (what random
        atoms of their sizes score, ``analysis.chance``).
    features: one row per trial and feature of every finished cell, from its
        features.parquet (``norm``, ``importance``, ``superposition``,
        ``recovery_mse``...), with ``cell_dir``, the config keys and ``S`` of its
        trial row.
    """

    trials: pd.DataFrame
    cells: pd.DataFrame
    features: pd.DataFrame


def load(sweep_dir: str | Path) -> Loaded:
    """The tidy trials, per-cell means and per-feature rows of a sweep folder,
    read-only (for a notebook). Raises ``NoResultsError`` if no metrics file can be
    read."""
    sweep_dir = Path(sweep_dir)
    return summarise(sweep_dir, load_sweep(sweep_dir)[0])


def summarise(sweep_dir: Path, trials: pd.DataFrame) -> Loaded:
    """``Loaded`` from every trial row of ``load_sweep``: the finished ones, the
    cells they aggregate into, and their features."""
    finished = trials[trials["status"].isin(DONE)].reset_index(drop=True)
    cells = with_chance(aggregate_trials(trials), sweep_dir)
    return Loaded(finished, cells, load_features(sweep_dir, finished))


# --- reading -------------------------------------------------------------------------


def load_sweep(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every cell folder's trial rows, and one row per folder (cell_dir, status, error).

    A row's ``status`` is its folder's (``status.json`` is written last): the trials
    of a failed or missing cell stay in the table but never count.
    """
    frames, cells = [], []
    dirs = folders.cell_dirs(sweep_dir)
    for cell_dir, (status, rows) in zip(dirs, each(_read_cell, dirs), strict=True):
        name = cell_dir.relative_to(sweep_dir).as_posix()
        if rows is not None:
            frames.append(rows.assign(status=status["status"], **{CELL_DIR: name}))
        n_rows = 0 if rows is None else len(rows)
        cells.append({CELL_DIR: name, **status, "rows": n_rows})
    _warn_older(sweep_dir, frames)
    for name in folders.never_started(sweep_dir):  # in grid.json, no folder at all
        cells.append({CELL_DIR: name, "status": "missing", "error": "never started"})
    cells = pd.DataFrame(cells, columns=[CELL_DIR, "status", "error", "rows"])
    for status, names in cells.groupby("status")[CELL_DIR]:
        if status not in DONE:
            log.warning("%s cells: %s", status, ", ".join(names))
    frames = [f for f in frames if len(f)]
    if not frames:
        raise NoResultsError(f"no readable {METRICS_FILE} under it")
    return drop_duplicate_trials(tidy(pd.concat(frames, ignore_index=True))), cells


def each(read, items: list) -> list:
    """``read`` of every item, READERS at a time, in order (reading parquet releases
    the GIL: 4 threads read a cell's small files about twice as fast as one)."""
    if len(items) < 2 * READERS:
        return [read(item) for item in items]
    with ThreadPoolExecutor(READERS) as readers:
        return list(readers.map(read, items))


def _read_cell(cell_dir: Path) -> tuple[dict, pd.DataFrame | None]:
    """A cell folder's status and its metrics table (None: unreadable, warned)."""
    status = folders.read_status(cell_dir)
    if why := folders.corrupt(cell_dir, status, [METRICS_FILE]):
        log.warning("damaged %s: %s; its results are left out", cell_dir, why)
        status = {"status": "damaged", "error": why}
    return status, _read_metrics(cell_dir, status["status"])


def _read_metrics(cell_dir: Path, status: str) -> pd.DataFrame | None:
    """The cell's metrics table, or None with a warning naming the folder or file."""
    if status == "damaged":
        return None
    path = cell_dir / METRICS_FILE
    if not path.exists():
        log.warning("no %s in %s (status %s)", METRICS_FILE, cell_dir, status)
        return None
    try:
        return folders.parquet_frame(path)
    except Exception as err:  # a partial or corrupt file must not stop the analysis
        log.warning("skipping unreadable %s: %s", path, err)
        return None


def _warn_older(sweep_dir: Path, frames: list[pd.DataFrame]) -> None:
    """A warning per set of metrics that some cells lack (written by an older
    schema_version, or before a metric existed): they are kept, their gaps NaN. One
    cell: its file named; several lacking the same: how many, and the first. A
    metric no cell has (a sweep written before it existed) is only logged."""
    frames = [rows for rows in frames if len(rows)]
    nowhere = [c for c in METRIC_COLUMNS if not any(c in rows for rows in frames)]
    if nowhere:
        log.debug("no cell has %s (written before they existed)", ", ".join(nowhere))
    lacking: dict[tuple, list[str]] = {}
    for rows in frames:
        missing = tuple(c for c in METRIC_COLUMNS if c not in rows and c not in nowhere)
        if missing:
            version = rows.get("schema_version", pd.Series(["?"])).iloc[0]
            lacking.setdefault((version, missing), []).append(rows[CELL_DIR].iloc[0])
    for (version, missing), names in lacking.items():
        first = Path(sweep_dir) / names[0] / METRICS_FILE
        if len(names) == 1:
            log.warning(
                "%s (schema_version %s) lacks %s: those values are missing from its"
                " cell", first, version, ", ".join(missing),
            )  # fmt: skip
        else:
            log.warning(
                "%d metrics files (schema_version %s) lack %s: those values are"
                " missing from their cells (the first: %s)",
                len(names), version, ", ".join(missing), first,
            )  # fmt: skip


def truth_cells(frame: pd.DataFrame) -> pd.Series:
    """Which rows are of a model with ground truth (not a real network's
    activations, which have no features, samples or atoms' cosines to read)."""
    if "model" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["model"].map(lambda m: not config.network({"model": m}))


def load_features(sweep_dir: Path, trials: pd.DataFrame) -> pd.DataFrame:
    """Every trial's features.parquet rows (n_trials * n_features, ...) with
    ``cell_dir``, the config keys and S of the trial; trials: the finished rows. A
    cell whose file cannot be read is left out with a warning."""
    derived = [c for c in DERIVED_COLUMNS if c in trials]
    keys = [CELL_DIR, *config_columns(trials), *derived]

    def read(name: str) -> pd.DataFrame | None:
        path = Path(sweep_dir) / name / FEATURES_FILE
        try:
            return folders.read_table(path).assign(**{CELL_DIR: name})
        except Exception as err:  # absent (an older cell) or damaged: costs its rows
            log.warning("no per-feature rows for %s: %s", name, err)
            return None

    names = list(trials.loc[truth_cells(trials), CELL_DIR].unique())
    frames = [frame for frame in each(read, names) if frame is not None]
    if not frames:
        return pd.DataFrame(columns=[*keys, "trial", "feature"])
    features = pd.concat(frames, ignore_index=True)
    rows = trials[[*keys, "trial"]].merge(features, on=[CELL_DIR, "trial"])
    return rows.sort_values([CELL_DIR, "trial", "feature"], ignore_index=True)


def tidy(trials: pd.DataFrame) -> pd.DataFrame:
    """Config and derived columns with one type each: numbers as floats rounded to
    10 significant digits (ints kept), text and bools with None for missing, and a
    column mixing kinds (1e-6 and "auto") as text; a key added after some cells
    were written filled with its default in their rows (``with_defaults``)."""
    trials = with_defaults(trials)
    columns = [*config_columns(trials), *(c for c in DERIVED_COLUMNS if c in trials)]
    return trials.assign(**{c: _tidy_column(trials[c]) for c in columns})


def with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the keys added after the first cells were written
    (``sweep.config.LATER``: the data keys, ``model.geometry``, ``model.target_cos``)
    at their default for the row's method and model, in the rows that lack them: a
    cell written before a key existed computed what its default computes, so it is
    the same configuration as a newer cell at the default. Only columns that some
    row has: a sweep written before them all gains none and analyses as before."""
    later = [c for c in frame if c.startswith(config.LATER)]
    if not later or not frame[later].isna().to_numpy().any():
        return frame
    frame, missing = frame.copy(), frame[later].isna()

    def name(group: str) -> list:
        values = frame[group] if group in frame else [None] * len(frame)
        return [None if pd.isna(v) else str(v) for v in values]

    pairs = list(zip(name("method"), name("model"), strict=True))
    integers = set()  # columns given an integer default: integers again when full
    for pair in dict.fromkeys(pairs):
        defaults = config._defaults(*pair)
        at = np.array([p == pair for p in pairs])
        for column in later:
            rows = at & missing[column].to_numpy()
            if defaults.get(column) is not None and rows.any():
                frame[column] = frame[column].astype(object)
                frame.loc[rows, column] = defaults[column]
                kind = type(defaults[column])
                integers |= {column} if kind is int else set()  # (not bool)
    for column in integers:  # a NaN had made the newer rows' integers floats
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().all() and (values % 1 == 0).all():
            frame[column] = values.astype("int64")
    return frame


def _tidy_column(column: pd.Series) -> pd.Series:
    kind = infer_dtype(column, skipna=True)
    if kind == "integer" and column.notna().all():
        return column.astype("int64")
    if kind in NUMBER_KINDS:
        values = pd.to_numeric(column).astype(float)
        return values.map(lambda v: float(f"{v:.{SIG_DIGITS}g}"))
    if kind not in ("boolean", "string"):
        column = column.astype(str).where(column.notna(), None)
    return column.where(column.notna(), None)  # one missing value, not None and NaN


def drop_duplicate_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, trial): folders holding the same configuration (seed=0
    given or implied) are one cell, not one with doubled trials. Counted rows are
    preferred, then the first folder; a warning names the folders."""
    keys = [*config_columns(trials), "trial"]
    trials = trials.sort_values("status", key=_not_done, kind="stable")
    clash = trials.duplicated(keys, keep=False)
    if clash.any():
        found = trials[clash].groupby(keys, dropna=False, sort=False)[CELL_DIR]
        for names in dict.fromkeys(tuple(n) for n in found.unique() if len(n) > 1):
            log.warning(
                "same configuration in %s: kept the trials of %s only",
                " and ".join(names),
                names[0],
            )
    return trials[~trials.duplicated(keys)].reset_index(drop=True)


def _not_done(status: pd.Series) -> pd.Series:
    return ~status.isin(DONE)  # a sort key: counted rows first


# --- columns -------------------------------------------------------------------------


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The config-key columns present, in a fixed order: the top-level keys (schema
    order), the data keys (``data.firing`` ...: in ``sweep.data.KEYS`` order, then any
    other, sorted), then each group and its parameters. The one place that says
    which columns are configuration: they split cells and may be axes or panels;
    every other numeric column is a metric."""
    top = [key for key in CONFIG_KEYS if key in frame]
    known = [DATA_PREFIX + key for key in data.KEYS]
    data_keys = [key for key in known if key in frame]
    data_keys += sorted(
        c for c in frame if c.startswith(DATA_PREFIX) and c not in known
    )
    grouped = []
    for group in GROUPS:
        params = sorted(c for c in frame if c.startswith(group + "."))
        grouped += [group] * (group in frame) + params
    return top + data_keys + grouped


def is_number(column: pd.Series) -> bool:
    """Whether a column holds numbers (bools are not numbers here)."""
    return is_numeric_dtype(column) and not is_bool_dtype(column)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The schema's metrics, and every other numeric column that is not identity,
    config or derived: metrics added later are aggregated too."""
    other = {*IDENTITY_COLUMNS, *DERIVED_COLUMNS, *config_columns(frame), CELL_DIR}
    extra = [c for c in frame if c not in other and is_number(frame[c])]
    return [c for c in frame if c in METRIC_COLUMNS or c in extra]


# Keys whose default follows from other keys (n_train=auto: from the method and the
# sparsity; null for a real network): an axis only where they take several values for
# one setting of the others.
FOLLOWING = ("n_train",)


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """Config keys with more than one distinct value; missing counts as one value.

    A parameter of a group (``method.alpha``) varies only if it takes several values
    for one method: being absent for the other methods is not a sweep axis. Nor is a
    FOLLOWING key that only follows the other varying keys.
    """
    keys = [key for key in config_columns(frame) if not _constant(frame, key)]
    others = [key for key in keys if key not in FOLLOWING]
    return [k for k in keys if k not in FOLLOWING or not _follows(frame, k, others)]


def _follows(frame: pd.DataFrame, key: str, others: list[str]) -> bool:
    """Whether ``key`` takes one value within each combination of ``others``."""
    if not others:
        return False
    counts = frame.groupby(others, dropna=False)[key].nunique(dropna=False)
    return bool((counts <= 1).all())


def _constant(frame: pd.DataFrame, key: str, by: str | None = None) -> bool:
    """Whether ``key`` takes one value within each value of ``by`` (default: its
    group column, if present; else over the whole frame)."""
    by = by or key.split(".", 1)[0]
    if by == key or by not in frame:
        return frame[key].nunique(dropna=False) <= 1
    return bool((frame.groupby(by, dropna=False)[key].nunique(dropna=False) <= 1).all())


# --- trials -> cells -----------------------------------------------------------------


def aggregate_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its config keys, ``n_trials`` counted rows, ``status``, and
    per metric the mean and standard error (``<metric>_sem``) over counted trials.

    trials: (n_rows, ...) from ``load_sweep``. A row counts if its status is in
    ``schema.DONE``; a cell's status is that of a counted row, if it has one.
    """
    keys = config_columns(trials)
    trials = trials.sort_values("status", key=_not_done, kind="stable")
    done = trials["status"].isin(DONE)
    metrics = metric_columns(trials)
    values = trials[metrics].apply(pd.to_numeric, errors="coerce").astype(float)
    values.loc[~done] = np.nan  # failed rows never enter a mean
    if keys:  # by config, not by folder name: Hydra's names vary
        gid = trials.groupby(keys, dropna=False, sort=False).ngroup()
    else:
        gid = pd.Series(0, index=trials.index)
    first = ~gid.duplicated()
    ident = [c for c in (*DERIVED_COLUMNS, "cell", CELL_DIR, "status") if c in trials]
    cells = trials.loc[first, keys + ident].reset_index(drop=True)
    ids = gid[first].to_numpy()
    cells[N_TRIALS] = done.groupby(gid).sum().loc[ids].to_numpy()
    grouped = values.groupby(gid)
    mean, sem = grouped.mean(), grouped.std(ddof=1) / np.sqrt(grouped.count())
    columns = {}  # all at once: one insert per metric fragments the frame
    for metric in metrics:
        columns[metric] = mean[metric].loc[ids].to_numpy()
        columns[f"{metric}_sem"] = sem[metric].loc[ids].to_numpy()
    cells = pd.concat([cells, pd.DataFrame(columns, index=cells.index)], axis=1)
    order = keys + [c for c in ("cell", CELL_DIR) if c in cells]
    return cells.sort_values(order, kind="stable", ignore_index=True)


def with_chance(cells: pd.DataFrame, sweep_dir: Path) -> pd.DataFrame:
    """``cells`` with ``mcc_chance`` after ``mcc_sem`` for the cells that have an
    mcc (learned methods): what random atoms of their sizes score. Unchanged without
    such cells; NaN, with a warning, for a cell whose files cannot be read."""
    if "mcc" not in cells or cells["mcc"].isna().all():
        return cells
    level = pd.Series(np.nan, index=cells.index)
    for i, cell in cells[cells["mcc"].notna()].iterrows():
        try:
            n_atoms, nonneg = chance.learned_sizes(Path(sweep_dir) / cell[CELL_DIR])
        except Exception as err:  # the column stays NaN for this cell
            log.warning("no chance level for %s: %s", cell[CELL_DIR], err)
            continue
        sizes = int(cell["neurons"]), int(cell["n_features"]), n_atoms
        level[i] = chance.mcc_chance(*sizes, nonneg=nonneg)
    cells = cells.copy()
    cells.insert(cells.columns.get_loc("mcc_sem") + 1, chance.CHANCE, level)
    return cells


# --- axes and panels -----------------------------------------------------------------


def choose_axes(results: pd.DataFrame) -> PlotAxes:
    """x: sparsity, else k, else another numeric key; y: neurons, else the next one.

    Every other varying key becomes a panel (method, method.*, n_features, model...).
    """
    varying = varying_keys(results)
    numeric = [k for k in varying if k not in AXIS_EXCLUDED and is_number(results[k])]
    # sparsity and k may be NaN where the other one is set; other axes must be full
    full = [k for k in numeric if results[k].notna().all()]
    others = [k for k in full if k not in ("sparsity", "k", "neurons")]
    x = next((k for k in ("sparsity", "k", *others) if k in numeric), None)
    y = next((k for k in ("neurons", *others) if k in full and k != x), None)
    if x is None:
        x, y = y, None
    panels = tuple(k for k in varying if k not in (x, y))
    return PlotAxes(x=x, y=y, panels=panels)


def panel_groups(
    results: pd.DataFrame, keys: tuple[str, ...] | list[str]
) -> list[tuple[dict[str, object], pd.DataFrame]]:
    """Rows of ``results`` split by the values of ``keys``, sorted, missing last.

    Returns (values of the keys, that panel's rows) pairs; one pair if keys is empty.
    """
    if results.empty:
        return []
    if not keys:
        return [({}, results.reset_index(drop=True))]
    groups = results.groupby(list(keys), dropna=False, sort=True)
    return [
        (dict(zip(keys, values, strict=True)), rows.reset_index(drop=True))
        for values, rows in groups
    ]


def label_keys(results: pd.DataFrame, keys: tuple[str, ...] | list[str]) -> list[str]:
    """The panel keys worth naming in a title: a ``method.*``/``model.*`` key that
    takes one value per method (model) adds nothing to ``method=...`` and is left out.
    """
    keys = list(keys)

    def implied(key: str) -> bool:
        group = key.split(".", 1)[0]
        return group != key and group in keys and _constant(results, key, group)

    return [key for key in keys if not implied(key)]


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
    passed = _density(results, axes.x).where(results["success_rate"] >= threshold)
    if not by:
        return pd.DataFrame({CAPACITY: [passed.max()]})
    grouped = passed.groupby([results[k] for k in by], dropna=False, sort=True)
    return grouped.max().rename(CAPACITY).reset_index()


def _density(results: pd.DataFrame, x: str) -> pd.Series:
    """Fraction of active features per row: sparsity, or 1 - S (= k / n) for k."""
    if x == "sparsity":
        return results["sparsity"].astype(float)
    if "S" in results:
        return 1 - results["S"].astype(float)
    return results["k"].astype(float) / results["n_features"].astype(float)


# --- the representative cells of the heatmaps ----------------------------------------


def representative_cells(results: pd.DataFrame, axes: PlotAxes) -> list[pd.DataFrame]:
    """Cells whose samples the heatmaps show: one table per row of the figure.

    Within each combination of data keys (panel keys other than method.*), the
    middle (y, x) cell present in every method panel, so that all methods are shown
    on identical data; if there is none, each panel's own middle cell in its own row.
    """
    ok = results[results["status"].isin(DONE) & (results[N_TRIALS] > 0)]
    method_keys = [k for k in axes.panels if k.split(".", 1)[0] == "method"]
    data_keys = [k for k in axes.panels if k not in method_keys]
    coords = [k for k in (axes.y, axes.x) if k]
    rows = []
    for _, group in panel_groups(ok, data_keys):
        panels = [p for _, p in panel_groups(group, method_keys)]
        if not coords:  # nothing swept but the panels: any cell is the middle one
            rows.append(pd.concat([p.iloc[:1] for p in panels]))
            continue
        common = panels[0][coords].drop_duplicates()
        for panel in panels[1:]:
            common = common.merge(panel[coords].drop_duplicates())
        if common.empty:
            rows += [_middle(p, axes) for p in panels]
        else:
            target = _middle(common, axes)[coords]
            rows.append(pd.concat([p.merge(target).iloc[:1] for p in panels]))
    return rows


def one_per_method(cells: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """One counted cell per method among ``cells``, the first of its
    ``representative_cells``; sorted by method (none: an empty frame)."""
    rows = representative_cells(cells, axes) if not cells.empty else []
    if not rows:
        return cells.iloc[:0]
    picked = pd.concat(rows).drop_duplicates("method")
    return picked.sort_values("method", kind="stable", ignore_index=True)


def _middle(cells: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """The cell at the middle y, then at the middle x among those. Between two
    middles, the easier side: more neurons, lower sparsity."""
    for key, upper in ((axes.y, True), (axes.x, False)):
        values = np.sort(cells[key].dropna().unique()) if key else []
        if len(values):
            middle = values[len(values) // 2 if upper else (len(values) - 1) // 2]
            cells = cells[cells[key] == middle]
    return cells.iloc[:1]
