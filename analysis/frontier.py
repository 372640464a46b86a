"""Which architecture recovers features best at equal sparsity, and how SAEs train.

- ``frontier.png``: ``mcc_matched``, ``latent_f1`` and ``explained_variance`` (a
  panel each; higher is better) of every cell against its measured ``l0`` (mean
  active latents or codes per test sample). A line per series (``series_of``): a
  learned method's cells that differ only in the keys that set its sparsity
  (``SPARSITY_KEYS``: method.k, method.l1, ...), sorted by l0, labelled by method
  and, for method=sae, its architecture ("sae topk"). Known-dictionary methods
  (cells without ``mcc_matched``: omp, lasso, ...) are drawn on the latent_f1 and
  explained_variance panels only. A row of panels per value of the other swept keys
  (neurons, data.firing, ...; the first ``MAX_ROWS``), a dotted vertical line at the
  row's ``true_l0``. Drawn where a counted cell has both mcc_matched and l0: a sweep
  written before these metrics gets none.
- ``training_curves.png``: the curves of ``training.parquet`` (method=sae cells:
  loss, l0, dead_fraction, explained_variance, mcc_matched on held-out samples per
  logged step) against the training samples seen, the mean over trials, a line per
  cell (the first ``MAX_CURVES`` picked by ``pick_cells``), a colour per
  architecture. A file that cannot be read costs its line, with a warning.

``frontier_figure`` and ``training_figure`` are builders (frames in, Figure out, no
I/O); ``frontier_of`` and ``training_of`` are the registered figures
(``analysis.figures``), the latter reading each cell's file through
``sweep.folders``.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis import style
from analysis.aggregate import (
    AXIS_EXCLUDED,
    CELL_DIR,
    N_TRIALS,
    config_columns,
    label_keys,
    panel_groups,
    truth_cells,
    varying_keys,
)  # fmt: skip
from analysis.figures import Sweep, figure
from analysis.plots import DASHES, MARKERS, SEM_WORDS
from sweep import folders
from sweep.schema import DONE, TRAINING_COLUMNS, TRAINING_FILE

log = logging.getLogger(__name__)

FILE = "frontier.png"
TRAINING = "training_curves.png"
L0 = "l0"  # measured: mean active latents (codes) per test sample
TRUE_L0 = "true_l0"  # the data's: mean active features per test sample
LEARNED_METRIC = "mcc_matched"  # only learned methods write it (sweep/align.py)
METRICS = (LEARNED_METRIC, "latent_f1", "explained_variance")  # a panel each
RATES = (LEARNED_METRIC, "latent_f1", "dead_fraction")  # in [0, 1]
SPARSITY_KEYS = (
    "method.k", "method.target_l0", "method.l1", "method.alpha",
    "method.transform_alpha",
)  # fmt: skip
# a real network's lines (analysis/network.py) run through its dictionary sizes too
NETWORK_ALONG = (*SPARSITY_KEYS, "n_features")
ARCHITECTURE = "method.architecture"
MAX_ROWS = 4  # rows of frontier.png: the first, in the order of their keys' values
MAX_SERIES = 10  # series of frontier.png: learned first, then by label
MAX_CURVES = 12  # cells of training_curves.png (``pick_cells``)
LOG_SPAN = 10  # an axis spanning more than this factor is drawn on a log scale
STEP, SAMPLES = "step", "samples"
CURVES = ("loss", L0, "dead_fraction", "explained_variance", LEARNED_METRIC)
TRUE_STYLE = {"color": "0.35", "linestyle": ":", "lw": 1.2}
SERIES_COLORS = colormaps["tab10"]  # lines of methods: categories, not a scale
ARCHITECTURE_COLORS = SERIES_COLORS

METRIC_LABELS = {
    LEARNED_METRIC: "mcc_matched: mean |cos| of matched\natom-feature pairs (higher"
    " is better)",
    "latent_f1": "latent_f1 (higher is better)",
    "explained_variance": "explained variance of H\n(higher is better)",
    "loss": "training loss (lower is better)",
    L0: "L0: mean active latents per sample",
    "dead_fraction": "dead fraction of latents\n(lower is better)",
}
X_LABEL = "L0: mean active latents (codes) per test sample"
SAMPLES_LABEL = "training samples seen"
METRIC_WORDS = (
    "mcc_matched (mean |cosine| of the Hungarian-matched atom-feature pairs; "
    "learned methods only), latent_f1 (each latent a detector of its best-matching "
    "feature: the mean over latents of its F1) and explained_variance (of H by its "
    "reconstruction); higher is better for all three"
)


def _floats(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def log_scale(values) -> bool:
    """Whether positive values span more than LOG_SPAN (a log axis)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return values.size > 1 and values.max() > LOG_SPAN * values.min()


def log_axis(ax: Axes) -> None:
    """A log x axis with plain tick labels at 1, 2, 5 x 10^i (2, 5, 10, 20)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def counted(results: pd.DataFrame) -> pd.DataFrame:
    """The cells whose results count (status done, trials finished), where the
    frame says so (a hand-made frame may not)."""
    keep = pd.Series(True, index=results.index)
    if "status" in results:
        keep &= results["status"].isin(DONE)
    if N_TRIALS in results:
        keep &= results[N_TRIALS] > 0
    return results[keep]


# --- frontier.png: the series ------------------------------------------------------


@dataclass
class Series:
    """One line of frontier.png: its label, whether its method is learned (it has
    mcc_matched), and its cells sorted by l0."""

    label: str
    learned: bool
    cells: pd.DataFrame


def frontier_cells(results: pd.DataFrame, *, truth: bool = True) -> pd.DataFrame:
    """The counted cells frontier.png shows: those with an l0 (none without the
    column) of a model with ground truth (``truth`` False: of a real network)."""
    if L0 not in results:
        return results.iloc[:0]
    cells = counted(results)
    cells = cells[truth_cells(cells) == truth]
    return cells[_floats(cells[L0]).notna()]


def applies(results: pd.DataFrame) -> bool:
    """Whether frontier.png has something to show: a counted cell with both
    mcc_matched and l0 (a sweep written before them: never)."""
    cells = frontier_cells(results)
    if LEARNED_METRIC not in cells:
        return False
    return bool(_floats(cells[LEARNED_METRIC]).notna().any())


def series_keys(cells: pd.DataFrame) -> list[str]:
    """The keys that split the cells into series: method, every swept method.*
    key but those that set the sparsity, and seed or trials if they vary (never
    averaged over); a method parameter that takes one value per method is left
    out."""
    varying = varying_keys(cells)
    keys = ["method"] if "method" in cells else []
    keys += [
        key for key in varying
        if key.startswith("method.") and key not in SPARSITY_KEYS
    ]  # fmt: skip
    keys += [key for key in AXIS_EXCLUDED if key in varying]
    return label_keys(cells, keys)


def row_keys(cells: pd.DataFrame, along: tuple[str, ...] = SPARSITY_KEYS) -> list[str]:
    """The keys that split the cells into rows of panels: every other swept key
    (neurons, n_features, data.firing, model, ...) but those the lines run
    ``along``."""
    grouped = set(series_keys(cells)) | set(along) | set(AXIS_EXCLUDED)
    return [
        key for key in varying_keys(cells)
        if key not in grouped and key != "method" and not key.startswith("method.")
    ]  # fmt: skip


def series_label(values: dict[str, object], keys: list[str]) -> str:
    """A series' name: the method, the architecture of an sae, then the other
    keys' values ("sae topk", "dict_learning", "sae relu, method.expansion=2")."""
    method = style.fmt(values.get("method")) if "method" in values else "all cells"
    words = [method]
    architecture = values.get(ARCHITECTURE)
    if method == "sae" and architecture is not None and not pd.isna(architecture):
        words.append(style.fmt(architecture))
    rest = [key for key in keys if key not in ("method", ARCHITECTURE)]
    extra = style.panel_label(values, rest) if rest else ""
    return " ".join(words) + (f", {extra}" if extra and extra != "all cells" else "")


def named_keys(cells: pd.DataFrame, keys: list[str]) -> dict[object, list[str]]:
    """Per method, the keys of ``keys`` its series' labels name: those that take
    several values among its cells (method.positive of basis_pursuit where both
    were run, not of dict_learning, which has one)."""
    if "method" not in cells:
        return {}
    return {
        method: [k for k in keys if rows[k].nunique(dropna=False) > 1]
        for method, rows in cells.groupby("method", dropna=False)
    }


def series_of(
    cells: pd.DataFrame, keys: list[str], named: dict[object, list[str]] | None = None
) -> list[Series]:
    """The series of one row's cells: split by ``keys``, each sorted by l0,
    labelled by its method's ``named`` keys (default: all of ``keys``); learned
    ones (with mcc_matched) first, then by label."""
    found = []
    for values, rows in panel_groups(cells, keys):
        first = rows.iloc[0]
        if ARCHITECTURE in rows:
            values = {ARCHITECTURE: first[ARCHITECTURE], **values}
        shown = (named or {}).get(first.get("method"), keys)
        learned = LEARNED_METRIC in rows and _floats(rows[LEARNED_METRIC]).notna().any()
        rows = rows.assign(**{L0: _floats(rows[L0])})
        rows = rows.sort_values(L0, kind="stable", ignore_index=True)
        found.append(Series(series_label(values, shown), bool(learned), rows))
    return sorted(found, key=lambda series: (not series.learned, series.label))


def frontier_rows(results: pd.DataFrame, *, truth: bool = True):
    """(row keys, series keys, every row's (values of the row keys, its series)) of
    the ``frontier_cells``; a real network's (``truth`` False): lines through
    NETWORK_ALONG."""
    cells = frontier_cells(results, truth=truth)
    along = SPARSITY_KEYS if truth else NETWORK_ALONG
    keys, rows = series_keys(cells), row_keys(cells, along)
    named = named_keys(cells, keys)
    groups = panel_groups(cells, rows)
    return rows, keys, [(v, series_of(part, keys, named)) for v, part in groups]


def series_labels(rows: list) -> list[str]:
    """The labels of the series in the rows drawn (the first MAX_ROWS), learned
    ones first: the first MAX_SERIES of them are drawn."""
    series = [s for _, row in rows[:MAX_ROWS] for s in row]
    series.sort(key=lambda s: not s.learned)  # stable: by label within each
    return list(dict.fromkeys(s.label for s in series))


# --- frontier.png: the figure ------------------------------------------------------


def draw_series(ax: Axes, series: Series, metric: str, **look) -> bool:
    """One series' ``metric`` against l0, standard-error bars where the frame has
    ``<metric>_sem`` (and ``l0_sem``); a lone point without a line. False: nothing
    to draw (no such column, or NaN in every cell)."""
    cells = series.cells
    if metric not in cells:
        return False
    y = _floats(cells[metric])
    shown = y.notna().to_numpy()
    if not shown.any():
        return False

    def sem(column: str):
        if f"{column}_sem" not in cells:
            return None
        return _floats(cells[f"{column}_sem"]).fillna(0).to_numpy(float)[shown]

    if shown.sum() == 1:
        look = look | {"linestyle": "none"}
    ax.errorbar(cells[L0].to_numpy(float)[shown], y.to_numpy(float)[shown],
                yerr=sem(metric), xerr=sem(L0), label=series.label, ms=5, lw=1.4,
                capsize=2.5, **look)  # fmt: skip
    return True


def _row_true_l0(series: list[Series]) -> float:
    """The mean true_l0 of a row's cells (NaN without the column)."""
    values = [_floats(s.cells[TRUE_L0]) for s in series if TRUE_L0 in s.cells]
    return float(pd.concat(values).mean()) if values else float("nan")


def frontier_figure(results: pd.DataFrame, *, sweep: str = "") -> Figure:
    """A row of three panels (METRICS) per row of ``frontier_rows`` (the first
    MAX_ROWS): each series against l0, learned series on every panel, the others on
    the last two; a dotted vertical line at the row's true_l0."""
    keys, by, rows = frontier_rows(results)
    shown = rows[:MAX_ROWS]
    labels = series_labels(rows)
    drawn = labels[:MAX_SERIES]
    colors = {label: SERIES_COLORS(i % 10) for i, label in enumerate(drawn)}
    n_rows = max(1, len(shown))
    fig = Figure(figsize=(4.3 * len(METRICS) + 1.4, 3.5 * n_rows + 1.8),
                 layout="constrained")  # fmt: skip
    axs = fig.subplots(n_rows, len(METRICS), squeeze=False, sharex=True, sharey="col")
    l0s = [s.cells[L0] for _, series in shown for s in series]
    log_x = log_scale(pd.concat(l0s)) if l0s else False
    handles: dict[str, object] = {}
    for r, (values, series) in enumerate(shown):
        for ax, metric in zip(axs[r], METRICS, strict=True):
            if metric not in results:
                style.note(ax, f"no {metric} in this sweep")
            for s in series:
                undefined = metric == LEARNED_METRIC and not s.learned
                if s.label not in colors or undefined:
                    continue
                j = drawn.index(s.label)
                look = {"color": colors[s.label], "marker": MARKERS[j % len(MARKERS)],
                        "linestyle": DASHES[0] if s.learned else DASHES[1]}  # fmt: skip
                draw_series(ax, s, metric, **look)
            true_l0 = _row_true_l0(series)
            if np.isfinite(true_l0):
                ax.axvline(true_l0, label="true L0 of the data", **TRUE_STYLE)
            row = f"{style.panel_label(values, keys)}\n" if keys else ""
            style.title(ax, f"{row}{metric}", fontsize=8)
            ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
            if metric in RATES:
                ax.set_ylim(-0.03, 1.03)
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        for ax in axs[r]:
            ax.set_xlabel(X_LABEL if r == n_rows - 1 else "", fontsize=8)
    finish_rows(fig, axs, handles, log_x=log_x, empty="no cell with an l0" if not
                shown else "", legend_title=", ".join(by) or None)  # fmt: skip
    style.suptitle(fig, _what(by, keys), (), sweep,
                   left_out(rows, keys, labels))  # fmt: skip
    return fig


def finish_rows(
    fig: Figure, axs, handles: dict, *, log_x: bool, empty: str,
    legend_title: str | None = None,
) -> None:  # fmt: skip
    """The end of a figure of rows of panels against l0: log x axes if ``log_x``,
    ``empty`` noted in the first panel (if any text), one legend of ``handles``
    (label -> handle) under the panels."""
    if log_x:
        for ax in axs.ravel():
            log_axis(ax)
    if empty:
        style.note(axs[0, 0], empty)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   fontsize=7, ncols=min(4, len(handles)), title=legend_title,
                   title_fontsize=7)  # fmt: skip


def _what(by: list[str], keys: list[str]) -> str:
    what = "recovery against measured sparsity (L0), a line per "
    what += ", ".join(by) if by else "method"
    what += ", through its sparsity settings"
    return what + (f"; a row per {', '.join(keys)}" if keys else "")


def left_out(rows: list, keys: list[str], labels: list[str]) -> str:
    """What frontier.png leaves out: rows beyond MAX_ROWS, series beyond
    MAX_SERIES; empty if nothing."""
    notes = []
    if len(rows) > MAX_ROWS:
        dropped = "; ".join(style.panel_label(v, keys) for v, _ in rows[MAX_ROWS:])
        notes.append(f"the first {MAX_ROWS} of {len(rows)} rows (left out: {dropped})")
    if len(labels) > MAX_SERIES:
        dropped = "; ".join(labels[MAX_SERIES:])
        notes.append(
            f"the first {MAX_SERIES} of {len(labels)} lines (left out: {dropped})"
        )
    return "; ".join(notes)


def frontier_caption(sweep: Sweep) -> str:
    """The caption of frontier.png: what is plotted, which way is better, how the
    lines and rows are formed, what is left out."""
    results = sweep.results
    keys, by, rows = frontier_rows(results)
    labels = series_labels(rows)
    learned = {s.label for _, series in rows for s in series if s.learned}
    known = sorted(set(labels[:MAX_SERIES]) - learned)
    cells = frontier_cells(results)
    log_x = ", log scale" if log_scale(cells[L0]) else ""
    swept = [k for k in SPARSITY_KEYS if k in varying_keys(cells)]
    through = f" ({', '.join(swept)})" if swept else ""
    per = ", ".join(by) or "method"
    text = (
        f"Which method recovers features best at equal sparsity: {METRIC_WORDS}. "
        f"Each the mean over trials, against the cell's measured L0 (mean active "
        f"latents or codes per test sample{log_x}). A line per {per}, through the "
        f"settings that set its sparsity{through}, sorted by L0 "
        f"(method=sae labelled by its architecture)."
    )
    if known:
        text += (
            f" Known-dictionary methods ({'; '.join(known)}) appear on the latent_f1"
            f" and explained_variance panels only: mcc_matched needs learned atoms."
        )
    if TRUE_L0 in results:
        text += " Dotted vertical line: the data's true L0."
    if any(f"{m}_sem" in results for m in METRICS):
        text += f" {SEM_WORDS[0].upper()}{SEM_WORDS[1:]}."
    if keys:
        text += f" A row per {', '.join(keys)}."
    if left := left_out(rows, keys, labels):
        text += f" Shown: {left}."
    return text


def _frontier_applies(sweep: Sweep) -> bool:
    return applies(sweep.results)


@figure(FILE, caption=frontier_caption, when=_frontier_applies)
def frontier_of(sweep: Sweep) -> Figure:
    """frontier.png: ``frontier_figure`` of the sweep's cells; rows and lines left
    out are logged."""
    keys, _, rows = frontier_rows(sweep.results)
    labels = series_labels(rows)
    if left := left_out(rows, keys, labels):
        log.info("%s shows %s", FILE, left)
    return frontier_figure(sweep.results, sweep=sweep.name)


# --- training_curves.png -----------------------------------------------------------


@dataclass
class Curve:
    """One line of training_curves.png: label, architecture (its colour) and the
    mean over trials per logged step (step, samples, and the CURVES it has)."""

    label: str
    architecture: str
    frame: pd.DataFrame


def training_cells(results: pd.DataFrame, sweep_dir: Path) -> pd.DataFrame:
    """The counted cells whose folder holds a training.parquet."""
    cells = counted(results)
    if CELL_DIR not in cells:
        return cells.iloc[:0]
    folder = Path(sweep_dir)
    has = [(folder / name / TRAINING_FILE).is_file() for name in cells[CELL_DIR]]
    return cells[np.array(has, dtype=bool)].reset_index(drop=True)


def _architecture(cell: pd.Series) -> str:
    value = cell.get(ARCHITECTURE)
    if value is None or pd.isna(value):
        return style.fmt(cell.get("method", "sae"))
    return style.fmt(value)


def pick_cells(cells: pd.DataFrame, limit: int = MAX_CURVES):
    """At most ``limit`` representative cells: a fair share per architecture (taken
    in turn), evenly spread over each architecture's cells in the order of their
    config keys (the first and last among them). Returns (picked, left out)."""
    if len(cells) <= limit:
        return cells, cells.iloc[:0]
    order = [*config_columns(cells), CELL_DIR]
    cells = cells.sort_values([k for k in order if k in cells], kind="stable")
    groups = [rows for _, rows in cells.groupby(cells.apply(_architecture, axis=1))]
    quota = [0] * len(groups)
    while sum(quota) < limit:
        for g, rows in enumerate(groups):
            if sum(quota) < limit and quota[g] < len(rows):
                quota[g] += 1
    picked = []
    for rows, q in zip(groups, quota, strict=True):
        at = [len(rows) // 2] if q == 1 else np.linspace(0, len(rows) - 1, q)
        picked.append(rows.iloc[sorted({int(round(i)) for i in at})])
    picked = pd.concat(picked)
    left = cells[~cells.index.isin(picked.index)]
    return picked.reset_index(drop=True), left.reset_index(drop=True)


def curve_keys(cells: pd.DataFrame) -> list[str]:
    """The keys that tell the cells of the figure apart, besides the architecture."""
    varying = varying_keys(cells)
    return [key for key in varying if key not in ("method", ARCHITECTURE)]


def curve_label(cell: pd.Series, keys: list[str]) -> str:
    """A curve's name: the architecture, then the keys' values ("topk,
    method.k=5, neurons=10")."""
    rest = style.panel_label(cell.to_dict(), keys) if keys else ""
    return _architecture(cell) + (f", {rest}" if rest and rest != "all cells" else "")


def load_training(path: Path) -> pd.DataFrame:
    """A cell's training.parquet (checked against its status.json's checksum);
    ValueError if it has no rows or lacks step or samples."""
    frame = folders.read_table(path)
    missing = [c for c in (STEP, SAMPLES) if c not in frame]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"empty {path}")
    return frame


def mean_curve(frame: pd.DataFrame) -> pd.DataFrame:
    """The mean over trials per logged step: step, samples and each of
    TRAINING_COLUMNS the frame has, sorted by step."""
    columns = [c for c in TRAINING_COLUMNS if c in frame and c not in ("trial", STEP)]
    values = frame[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    mean = values.groupby(_floats(frame[STEP])).mean()
    return mean.rename_axis(STEP).reset_index().sort_values(STEP, ignore_index=True)


def training_figure(curves: list[Curve], *, sweep: str = "", note: str = "") -> Figure:
    """A panel per CURVES against the training samples seen, a line per curve
    (a colour per architecture, a line style per cell within it); the legend in
    the sixth place."""
    fig = Figure(figsize=(3.9 * 3 + 1.4, 3.3 * 2 + 1.6), layout="constrained")
    axs = fig.subplots(2, 3, squeeze=False, sharex=True).ravel()
    panels, key = axs[: len(CURVES)], axs[len(CURVES)]
    key.axis("off")
    architectures = list(dict.fromkeys(sorted(c.architecture for c in curves)))
    colors = {a: ARCHITECTURE_COLORS(i % 10) for i, a in enumerate(architectures)}
    samples = [c.frame[SAMPLES] for c in curves]
    log_x = log_scale(pd.concat(samples)) if samples else False
    for ax, metric in zip(panels, CURVES, strict=True):
        n_drawn, within = 0, dict.fromkeys(architectures, 0)
        for curve in curves:
            i = within[curve.architecture]
            within[curve.architecture] += 1
            if metric not in curve.frame or curve.frame[metric].isna().all():
                continue
            frame = curve.frame.dropna(subset=[metric])
            ax.plot(frame[SAMPLES], frame[metric], label=curve.label, lw=1.3,
                    color=colors[curve.architecture],
                    linestyle=DASHES[i % len(DASHES)],
                    marker=MARKERS[i % len(MARKERS)], ms=3.5,
                    markevery=max(1, len(frame) // 6))  # fmt: skip
            n_drawn += 1
        if not n_drawn:
            style.note(ax, f"no {metric}" if curves else "no training curves")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        ax.set_xlabel(SAMPLES_LABEL, fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
        values = [c.frame[metric] for c in curves if metric in c.frame]
        if metric == "loss" and values and (pd.concat(values) > 0).any():
            ax.set_yscale("log", nonpositive="clip")
        elif metric in RATES:
            ax.set_ylim(-0.03, 1.03)
        style.title(ax, metric, fontsize=9)
    if log_x:
        for ax in panels:
            log_axis(ax)
    handles, labels = panels[0].get_legend_handles_labels()
    for ax in panels[1:]:  # a curve without loss is still in the key
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        key.legend(handles, labels, loc="center", fontsize=7, frameon=False,
                   title="architecture, keys", title_fontsize=7)  # fmt: skip
    what = "training curves on held-out samples, the mean over trials, a line per cell"
    style.suptitle(fig, what, (), sweep, note)
    return fig


def _picked(sweep: Sweep):
    """(picked cells, left out, their label keys) of training_curves.png."""
    cells = training_cells(sweep.results, sweep.dir)
    picked, left = pick_cells(cells)
    return picked, left, curve_keys(cells)


def _shown_note(picked: pd.DataFrame, left: pd.DataFrame) -> str:
    if left.empty:
        return ""
    total = len(picked) + len(left)
    return (
        f"{len(picked)} of {total} cells (a share per architecture, evenly spread "
        "over its cells)"
    )


def training_caption(sweep: Sweep) -> str:
    """The caption of training_curves.png: what is plotted, which way is better,
    the lines, what is left out."""
    picked, left, _ = _picked(sweep)
    text = (
        "Training of the sparse autoencoders, on held-out samples at each logged "
        "step: loss (log scale; lower is better), L0 (mean active latents per "
        "sample), dead fraction of latents (lower is better), explained variance "
        "(higher is better) and mcc_matched (higher is better) against the training "
        "samples seen, each the mean over trials; a line per cell, a colour per "
        "architecture."
    )
    if len(left):
        text += f" Shown: {_shown_note(picked, left)}."
    return text


def _any_training(sweep: Sweep) -> bool:
    """Whether a counted cell holds a training.parquet."""
    return not training_cells(sweep.results, sweep.dir).empty


@figure(TRAINING, caption=training_caption, when=_any_training)
def training_of(sweep: Sweep) -> Figure:
    """training_curves.png: a line per picked cell (``pick_cells``); a cell whose
    file cannot be read costs its line, with a warning; the cells left out are
    logged."""
    picked, left, keys = _picked(sweep)
    if len(left):
        names = "; ".join(curve_label(cell, keys) for _, cell in left.iterrows())
        log.info("%s shows %d of %d cells; left out: %s", TRAINING, len(picked),
                 len(picked) + len(left), names)  # fmt: skip
    curves = []
    for _, cell in picked.iterrows():
        path = sweep.dir / cell[CELL_DIR] / TRAINING_FILE
        try:
            frame = mean_curve(load_training(path))
        except Exception as err:  # a bad file costs its line, not the figure
            log.warning("no training curve for %s: %s", cell[CELL_DIR], err)
            continue
        curves.append(Curve(curve_label(cell, keys), _architecture(cell), frame))
    note = _shown_note(picked, left)
    return training_figure(curves, sweep=sweep.name, note=note)
