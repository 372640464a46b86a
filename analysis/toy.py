"""Figures of trained toy models (Elhage et al. 2022, "Toy Models of Superposition").

Drawn only for cells whose folder holds ``weights.parquet`` (model=toy_relu,
toy_linear), from files only: W (weights.parquet), per-feature norms, superposition
and dimensionality (features.parquet), per-trial metrics (results, metrics.parquet).
Every method cell of the same model keys holds the same W, so one cell per model
configuration is used (the first method's).

- ``toy_weights_<keys>.png``: W^T W and ||W_i|| coloured by superposition, a column
  per S (section "Demonstrating Superposition").
- ``toy_represented.png``: features represented against 1/(1-S).
- ``toy_dimensionality.png``: each D_i and D* against 1/(1-S) (section "Feature
  Dimensionality").
- ``toy_directions.png``: the columns W_i in the plane when neurons = 2.
- ``toy_phase_change.png``: n=2, m=1: the outcome over density x relative importance
  (section "Superposition as a Phase Change").

The ``*_of`` functions are the registered figures (``analysis.figures``): from a
``figures.Sweep`` they pick the cells, read their files and call the ``*_figure``
builders, which (like ``draw_*`` on a given ax) do no I/O.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch
from matplotlib.ticker import MaxNLocator

from analysis import style
from analysis.aggregate import (
    AXIS_EXCLUDED,
    CELL_DIR,
    N_TRIALS,
    config_columns,
    label_keys,
    panel_groups,
    varying_keys,
)
from analysis.figures import Sweep, figure
from analysis.plots import cell_edges, draw_errorbar, pivot_grid, set_axis
from sweep import folders
from sweep.schema import DONE, FEATURES_FILE, METRICS_FILE, WEIGHTS_FILE
from sweep.thresholds import REPRESENTED

log = logging.getLogger(__name__)

SUPERPOSITION_NORM = Normalize(0, 1, clip=True)  # 0: orthogonal; >= 1 all yellow
OUTCOMES = ("not represented", "dedicated dimension", "superposition")
OUTCOME_COLORS = ListedColormap([style.CMAP(0.0), style.CMAP(0.45), style.CMAP(0.9)])
REFERENCE_DIMS = ((1, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"))
REFERENCE_DIMS += ((2 / 5, "2/5"), (3 / 8, "3/8"))
MAX_WEIGHT_FIGURES = 12  # toy_weights_*.png per sweep
MAX_COLUMNS = 10  # S values in one toy_weights figure (evenly spaced if more)
MAX_DIRECTION_PANELS = 24
JITTER = 0.12  # spread of D_i points in log x, so that equal points stay visible
INV_DENSITY = "inv_density"  # added column: 1/(1-S)
X_LABEL = "1/(1-S) = 1/p  (p = sparsity: probability a feature is active; S = 1-p)"
CONTEXT_KEYS = ("model", "n_features", "neurons")  # always named in titles


# --- readers and pure helpers --------------------------------------------------------


def trained_cells(sweep_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    """One row of ``results`` per trained model configuration, with 1/(1-S) added.

    Counted cells whose folder holds weights.parquet; of the method cells sharing
    one W, the first. Returns (n_configurations, results columns + inv_density).
    """
    ok = results[results["status"].isin(DONE) & (results[N_TRIALS] > 0)]
    has_w = [(Path(sweep_dir) / d / WEIGHTS_FILE).is_file() for d in ok[CELL_DIR]]
    ok = ok[np.array(has_w, dtype=bool)]
    keys = [c for c in config_columns(ok) if c.split(".", 1)[0] != "method"]
    ok = ok.drop_duplicates(keys).reset_index(drop=True)
    return ok.assign(**{INV_DENSITY: 1 / (1 - ok["S"].astype(float))})


def model_keys(cells: pd.DataFrame) -> list[str]:
    """The varying keys that split trained cells into configurations, besides the
    sparsity (and k), seed, trials and the method keys."""
    skip = {"sparsity", "k", *AXIS_EXCLUDED}
    return [
        k
        for k in varying_keys(cells)
        if k not in skip and k.split(".", 1)[0] != "method"
    ]


def _one_trial(frame: pd.DataFrame, trial: int, path: Path) -> pd.DataFrame:
    """The rows of ``trial`` (else of the first trial present)."""
    if frame.empty:
        raise ValueError(f"empty {path}")
    if not (frame["trial"] == trial).any():
        trial = frame["trial"].min()
    return frame[frame["trial"] == trial]


def load_weights(cell_dir: Path, *, trial: int = 0) -> np.ndarray:
    """W (n_neurons, n_features) of one trial (else the first) from weights.parquet."""
    path = Path(cell_dir) / WEIGHTS_FILE
    frame = _one_trial(folders.read_table(path), trial, path)
    table = frame.pivot(index="neuron", columns="feature", values="value")
    if table.isna().to_numpy().any():
        raise ValueError(f"incomplete W in {path}")
    return table.sort_index().sort_index(axis=1).to_numpy(float)


def load_features(cell_dir: Path, *, trial: int | None = None) -> pd.DataFrame:
    """features.parquet sorted by (trial, feature); one trial's rows if given."""
    path = Path(cell_dir) / FEATURES_FILE
    frame = folders.read_table(path).sort_values(["trial", "feature"])
    return frame if trial is None else _one_trial(frame, trial, path)


def gram(W: np.ndarray) -> np.ndarray:
    """W^T W (n_features, n_features) of W (n_neurons, n_features)."""
    return W.T @ W


def classify(norms: np.ndarray, *, threshold: float = REPRESENTED) -> np.ndarray:
    """Outcome codes (n_trials,), indices into OUTCOMES, from ||W_1||, ||W_2||
    (n_trials, 2): feature 2 not represented; only feature 2; both."""
    shown = np.asarray(norms, dtype=float) > threshold
    return np.where(~shown[:, 1], 0, np.where(shown[:, 0], 2, 1))


def majority(codes: np.ndarray, losses: np.ndarray) -> int:
    """The most common outcome of ``codes`` (n_trials,); a tie goes to the outcome
    of the lowest-loss trial (losses (n_trials,); NaN counts as highest) among them."""
    codes = np.asarray(codes)
    counts = np.bincount(codes, minlength=len(OUTCOMES))
    tied = np.flatnonzero(counts == counts.max())
    if tied.size == 1:
        return int(tied[0])
    losses = np.asarray(losses, dtype=float)
    among = np.isin(codes, tied)
    ranked = np.where(np.isfinite(losses), losses, np.inf)[among]
    return int(codes[among][np.argmin(ranked)])


def cell_outcome(cell_dir: Path) -> tuple[int, int, int]:
    """(outcome code, trials with it, trials) of an n=2, m=1 cell, from its files."""
    feats = load_features(cell_dir)
    norms = feats.pivot(index="trial", columns="feature", values="norm")
    metrics = folders.read_table(Path(cell_dir) / METRICS_FILE).set_index("trial")
    losses = metrics.get("train_loss", pd.Series(dtype=float))
    losses = losses.reindex(norms.index).to_numpy(float)
    codes = classify(norms.to_numpy(float))
    winner = majority(codes, losses)
    return winner, int((codes == winner).sum()), len(codes)


def _title_keys(cells: pd.DataFrame, keys: list[str]) -> list[str]:
    """The model keys worth naming, after model, n_features and neurons."""
    shown = label_keys(cells, keys)
    return [*(k for k in CONTEXT_KEYS if k in cells and k not in shown), *shown]


def _context(cells: pd.DataFrame, keys: list[str]) -> str:
    """The constant model, n_features and neurons: "model=toy_relu, neurons=2"."""
    constant = [k for k in CONTEXT_KEYS if k in cells and k not in keys]
    return style.panel_label(cells.iloc[0], constant) if constant else ""


def _file_label(values: dict, keys: list[str]) -> str:
    """The keys' values as a file name: model=toy_relu,model.importance_decay=0.1."""
    text = ",".join(f"{k}={style.fmt(values[k])}" for k in keys if k in values)
    return re.sub(r"[^\w.=,+-]", "_", text)


def _trained(sweep: Sweep) -> tuple[pd.DataFrame, list[str]]:
    """The sweep's ``trained_cells`` and the ``model_keys`` that split them."""
    cells = trained_cells(sweep.dir, sweep.results)
    return cells, model_keys(cells)


def _any_trained(sweep: Sweep) -> bool:
    """Whether the sweep has a counted cell of a trained model."""
    return not trained_cells(sweep.dir, sweep.results).empty


# --- toy_weights_*.png: W^T W and ||W_i|| --------------------------------------------


@dataclass
class WeightsColumn:
    """One trained cell: title, W^T W (n, n), ||W_i|| (n,), superposition (n,)."""

    title: str
    G: np.ndarray
    norms: np.ndarray
    superposition: np.ndarray


def weights_column(cell_dir: Path, title: str) -> WeightsColumn:
    """Trial 0 of a cell: W^T W from weights.parquet, the rest from features.parquet."""
    feats = load_features(cell_dir, trial=0)
    G = gram(load_weights(cell_dir, trial=0))
    norms, superposition = feats["norm"], feats["superposition"]
    return WeightsColumn(title, G, norms.to_numpy(float), superposition.to_numpy(float))


def draw_gram(ax: Axes, G: np.ndarray, *, norm: Normalize):
    """W^T W (n_features, n_features) as an image, feature 0 top left."""
    image = ax.imshow(G, cmap=style.DIVERGING, norm=norm, interpolation="nearest")
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.set_xlabel("feature j", fontsize=8)
    return image


def draw_norms(ax: Axes, norms: np.ndarray, superposition: np.ndarray) -> None:
    """||W_i|| (n_features,) as horizontal bars, feature 0 on top, coloured by
    superposition (n_features,)."""
    n = norms.size
    colors = style.CMAP(SUPERPOSITION_NORM(superposition))
    ax.barh(np.arange(n), norms, height=0.8, color=colors)
    ax.set_ylim(n - 0.5, -0.5)  # the rows of W^T W above
    ax.set_xlim(0, max(1.1, 1.05 * float(np.max(norms, initial=0))))
    ax.axvline(REPRESENTED, color="0.6", lw=0.8, ls=":")
    ax.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.set_xlabel(r"$\|W_i\|$", fontsize=8)


def weights_figure(
    columns: list[WeightsColumn], *, what: str, sweep: str = ""
) -> Figure:
    """The paper's pair per column: W^T W on top, ||W_i|| below; one colour scale
    per row, shared by every column."""
    n = max(1, len(columns))
    fig = Figure(figsize=(max(6.5, 2.3 * n + 2.2), 5.6), layout="constrained")
    axs = fig.subplots(2, n, squeeze=False)
    if not columns:
        style.note(axs[0, 0], "no trained weights could be read")
        return fig
    norm = style.symmetric(np.concatenate([c.G.ravel() for c in columns]))
    for column, (top, bottom) in zip(columns, axs.T, strict=True):
        image = draw_gram(top, column.G, norm=norm)
        style.title(top, column.title)
        draw_norms(bottom, column.norms, column.superposition)
    axs[0, 0].set_ylabel("feature i", fontsize=8)
    axs[1, 0].set_ylabel("feature i", fontsize=8)
    fig.colorbar(image, ax=list(axs[0]), label=r"$(W^TW)_{ij} = W_i \cdot W_j$")
    label = "superposition\n" + r"$\sum_{j\neq i}(\hat{W}_i \cdot W_j)^2$"
    mappable = ScalarMappable(SUPERPOSITION_NORM, style.CMAP)
    fig.colorbar(mappable, ax=list(axs[1]), label=label, extend="max")
    note = (
        "trial 0. Bars: length ||W_i|| (dotted: 0.5, the represented threshold), "
        "colour: superposition, 0 (dark) = a dedicated, orthogonal direction"
    )
    style.suptitle(fig, what, (), sweep, note)
    return fig


def _spread(rows: pd.DataFrame, n_max: int) -> pd.DataFrame:
    """Rows sorted by S, at most ``n_max`` evenly spaced ones."""
    rows = rows.sort_values("S").drop_duplicates("S")
    if len(rows) <= n_max:
        return rows
    return rows.iloc[np.unique(np.linspace(0, len(rows) - 1, n_max).round())]


def weight_groups(cells: pd.DataFrame, keys: list[str]) -> dict[str, pd.DataFrame]:
    """The cells of each model configuration (a toy_weights_*.png), by file label."""
    named = list(dict.fromkeys(["model", *keys]))
    groups = panel_groups(cells, keys)
    return {_file_label(rows.iloc[0].to_dict(), named): rows for _, rows in groups}


def _weight_files(sweep: Sweep) -> list[dict[str, str]]:
    """The labels of toy_weights_*.png: the first MAX_WEIGHT_FIGURES configurations."""
    labels = list(weight_groups(*_trained(sweep)))
    if len(labels) > MAX_WEIGHT_FIGURES:
        log.warning("toy_weights: drawing the first %d of %d model configurations",
                    MAX_WEIGHT_FIGURES, len(labels))  # fmt: skip
    return [{"label": label} for label in labels[:MAX_WEIGHT_FIGURES]]


@figure(
    "toy_weights_{label}.png", when=_weight_files, leads=_any_trained,
    caption="Trained toy model {label}: W^T W (top) and the norm of each feature's "
    "column (bottom), coloured by how much it shares its direction (superposition), "
    "a column per sparsity.",
)  # fmt: skip
def weights_of(sweep: Sweep, label: str) -> Figure:
    """toy_weights_<label>.png: one model configuration, a column per S."""
    cells, keys = _trained(sweep)
    rows = weight_groups(cells, keys)[label]
    shown = _spread(rows, MAX_COLUMNS)
    columns = []
    for _, cell in shown.iterrows():
        try:
            columns.append(
                weights_column(sweep.dir / cell[CELL_DIR], f"S={style.fmt(cell.S)}")
            )
        except Exception as err:  # a bad file costs its column, not the figure
            log.warning("no weights for %s: %s", cell[CELL_DIR], err)
    skipped = (
        f" ({len(shown)} of {len(rows)} S values)" if len(shown) < len(rows) else ""
    )
    title = style.panel_label(rows.iloc[0], _title_keys(cells, keys))
    what = (
        f"trained W of {title}: W^T W (top) and "
        f"||W_i|| (bottom), a column per swept S = 1 - sparsity{skipped}"
    )
    return weights_figure(columns, what=what, sweep=sweep.name)


# --- toy_represented.png -------------------------------------------------------------


def _log_x(ax: Axes, xs: np.ndarray) -> None:
    """A log x axis of 1/(1-S), ticks at the swept values; one value: a decade."""
    values = np.unique(xs[np.isfinite(xs)])
    if values.size == 1:  # log limits of one point are singular
        ax.set_xlim(values[0] / 3, values[0] * 3)
    set_axis(ax, "x", INV_DENSITY, values, log=True)
    ax.set_xlabel(X_LABEL, fontsize=8)


def _reference_line(ax: Axes, value: float, label: str) -> None:
    """A dotted horizontal line labelled at the right end, outside the panel."""
    ax.axhline(value, color="0.6", lw=0.8, ls=":")
    text_style = {"va": "center", "fontsize": 7, "color": "0.35"}
    ax.text(1.01, value, label, transform=ax.get_yaxis_transform(), **text_style)


def represented_figure(
    cells: pd.DataFrame, keys: list[str], *, sweep: str = ""
) -> Figure:
    """Mean n_represented (± s.e.m.) against 1/(1-S), a line per model
    configuration. cells: from ``trained_cells``."""
    fig = Figure(figsize=(7.6, 4.8), layout="constrained")
    ax = fig.add_subplot()
    shown = label_keys(cells, keys)
    groups = panel_groups(cells, keys)
    colors = style.line_colors(len(groups))
    for (values, rows), color in zip(groups, colors, strict=True):
        label = style.panel_label(values, shown)
        draw_errorbar(
            ax, rows, x=INV_DENSITY, metric="n_represented", color=color, label=label
        )
    for m in np.unique(cells["neurons"]):
        _reference_line(ax, m, f"m={style.fmt(m)}")
    for n in np.unique(cells["n_features"]):
        _reference_line(ax, n, f"n={style.fmt(n)}")
    _log_x(ax, cells[INV_DENSITY].to_numpy(float))
    ax.set_ylabel(
        rf"features represented ($\|W_i\| > {REPRESENTED}$)"
        + "\nmean over trials ± s.e.m."
    )
    ax.set_ylim(bottom=0)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    lines = f", a line per {', '.join(shown)}" if shown else ""
    what = f"trained toy models ({_context(cells, keys)}): features represented "
    what += f"against swept sparsity{lines}"
    style.suptitle(fig, what, (), sweep, "dotted: m neurons and n features")
    return fig


@figure(
    "toy_represented.png", when=_any_trained, leads=_any_trained,
    caption=f"Features represented by the trained models (||W_i|| > {REPRESENTED})"
    " against sparsity: superposition stores more features than neurons.",
)  # fmt: skip
def represented_of(sweep: Sweep) -> Figure:
    """toy_represented.png: ``represented_figure`` of the sweep's trained cells."""
    return represented_figure(*_trained(sweep), sweep=sweep.name)


# --- toy_dimensionality.png ----------------------------------------------------------


def dimensionality_points(sweep_dir: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Every D_i of every trial of the cells ``rows``: columns x = 1/(1-S) spread
    by ``JITTER`` in log x, and D. Unreadable cells are skipped with a warning."""
    frames = []
    for _, cell in rows.iterrows():
        try:
            D = load_features(sweep_dir / cell[CELL_DIR])["dimensionality"]
        except Exception as err:
            log.warning("no features for %s: %s", cell[CELL_DIR], err)
            continue
        spread = np.linspace(-JITTER / 2, JITTER / 2, len(D)) if len(D) > 1 else 0
        x = cell[INV_DENSITY] * np.exp(spread)
        frames.append(pd.DataFrame({"x": x, "D": D.to_numpy(float)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def draw_dimensionality(ax: Axes, points: pd.DataFrame, rows: pd.DataFrame) -> None:
    """D_i as points (points: x, D) and D* as a line (rows: one per cell) against
    1/(1-S), with the paper's reference fractions."""
    for value, label in REFERENCE_DIMS:
        _reference_line(ax, value, label)
    if len(points):
        look = {"s": 9, "lw": 0, "color": style.CMAP(0.4)}
        look["alpha"] = 0.3 if len(points) > 300 else 0.6  # many points overlap
        ax.scatter(
            points["x"], points["D"], label=r"$D_i$ (a feature, a trial)", **look
        )
    label = r"$D^* = m / \|W\|_F^2$, mean over trials"
    draw_errorbar(
        ax, rows, x=INV_DENSITY, metric="dims_per_feature", color="black", label=label
    )
    _log_x(ax, rows[INV_DENSITY].to_numpy(float))
    ax.set_ylabel(r"dimensions per feature ($D_i$, $D^*$)", fontsize=8)
    ax.set_ylim(-0.03, 1.1)


@figure(
    "toy_dimensionality.png", when=_any_trained, leads=_any_trained,
    caption="Feature dimensionality D_i of the trained models against sparsity, with "
    "dims per feature D* and the paper's reference fractions.",
)  # fmt: skip
def dimensionality_of(sweep: Sweep) -> Figure:
    """toy_dimensionality.png: a panel per model configuration."""
    cells, keys = _trained(sweep)
    shown = label_keys(cells, keys)
    groups = panel_groups(cells, keys)
    fig, axs = style.panel_grid(len(groups), width=4.6, height=3.6)
    for ax, (values, rows) in zip(axs, groups, strict=True):
        draw_dimensionality(ax, dimensionality_points(sweep.dir, rows), rows)
        style.title(ax, style.panel_label(values, shown) if shown else "")
    style.outer_labels(axs)
    handles, labels = axs[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    note = (
        r"D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 (0: not represented); "
        f"points spread ±{JITTER / 2:.0%} in x for visibility; "
        "dotted: the fractions the paper finds (1, 3/4, 2/3, 1/2, 2/5, 3/8)"
    )
    what = f"feature dimensionality of trained toy models ({_context(cells, keys)}) "
    what += "against swept sparsity"
    style.suptitle(fig, what, shown, sweep.name, note)
    return fig


# --- toy_directions.png --------------------------------------------------------------


def draw_directions(ax: Axes, W: np.ndarray, *, colors) -> None:
    """Each column of W (2, n_features) as an arrow from the origin, with the unit
    circle; colors: one per feature."""
    n = W.shape[1]
    ax.add_patch(Circle((0, 0), 1, fill=False, ls=":", color="0.6", lw=0.8))
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    ax.quiver(
        np.zeros(n), np.zeros(n), W[0], W[1], color=colors, angles="xy",
        scale_units="xy", scale=1, width=0.014,
    )  # fmt: skip
    if n <= 12:
        for i, (u, v) in enumerate(W.T):
            if np.hypot(u, v) > 0.1:
                ax.text(
                    1.12 * u, 1.12 * v, str(i), ha="center", va="center", fontsize=7
                )
    limit = max(1.25, 1.2 * float(np.abs(W).max(initial=0)))
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("neuron 1: W[0, i]", fontsize=8)
    ax.set_ylabel("neuron 2: W[1, i]", fontsize=8)


def directions_figure(
    panels: list[tuple[str, np.ndarray]], *, what: str, sweep: str = ""
) -> Figure:
    """A panel per (title, W (2, n_features)); arrows coloured by feature index."""
    fig, axs = style.panel_grid(max(1, len(panels)), width=3.2, height=3.2)
    if not panels:
        style.note(axs[0], "no trained weights could be read")
        return fig
    n = max(W.shape[1] for _, W in panels)
    colors = ListedColormap(style.line_colors(n))
    for ax, (title, W) in zip(axs, panels, strict=True):
        draw_directions(ax, W, colors=colors(np.arange(W.shape[1])))
        style.title(ax, title, fontsize=8)
    style.outer_labels(axs)
    ticks = np.arange(n) if n <= 12 else None
    mappable = ScalarMappable(Normalize(-0.5, n - 0.5), colors)
    label = "feature i (importance\n" + r"$I_i$ = importance_decay$^i$)"
    fig.colorbar(mappable, ax=axs, ticks=ticks, label=label)
    note = "trial 0; dotted circle: ||W_i|| = 1; equal aspect"
    style.suptitle(fig, what, (), sweep, note)
    return fig


def _two_neurons(sweep: Sweep) -> bool:
    """Whether a trained model of the sweep has 2 neurons."""
    return bool((trained_cells(sweep.dir, sweep.results)["neurons"] == 2).any())


@figure(
    "toy_directions.png", when=_two_neurons, leads=_any_trained,
    caption="The directions W_i of the trained models with 2 neurons (the paper's "
    "intro figure: antipodal pairs, pentagons).",
)  # fmt: skip
def directions_of(sweep: Sweep) -> Figure:
    """toy_directions.png: every neurons=2 configuration, sorted by keys then S."""
    cells, keys = _trained(sweep)
    cells = cells[cells["neurons"] == 2].sort_values([*keys, "S"], kind="stable")
    shown = ["S", *label_keys(cells, keys)]
    panels = []
    for _, cell in cells.head(MAX_DIRECTION_PANELS).iterrows():
        try:
            W = load_weights(sweep.dir / cell[CELL_DIR], trial=0)
        except Exception as err:
            log.warning("no weights for %s: %s", cell[CELL_DIR], err)
            continue
        panels.append((style.panel_label(cell, shown), W))
    more = len(cells) - MAX_DIRECTION_PANELS
    skipped = f" (first {MAX_DIRECTION_PANELS} of {len(cells)})" if more > 0 else ""
    what = f"feature directions W_i of trained models ({_context(cells, keys)})"
    what += f", a panel per swept configuration{skipped}"
    return directions_figure(panels, what=what, sweep=sweep.name)


# --- toy_phase_change.png ------------------------------------------------------------

PHASE_KEY = "model.importance_decay"  # n=2: importance [1, d], d relative to feature 1


def phase_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Trained n=2, m=1 cells if both the importance and the sparsity vary among
    them, else none (an empty frame)."""
    if PHASE_KEY not in cells:
        return cells.iloc[:0]
    pairs = cells[(cells["n_features"] == 2) & (cells["neurons"] == 1)]
    if pairs[PHASE_KEY].nunique() > 1 and pairs["S"].nunique() > 1:
        return pairs
    return cells.iloc[:0]


def phase_table(sweep_dir: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: density 1-S, importance, outcome, n_win, n_trials."""
    table = []
    for _, cell in rows.iterrows():
        try:
            outcome, n_win, n_trials = cell_outcome(sweep_dir / cell[CELL_DIR])
        except Exception as err:  # the cell stays grey
            log.warning("no outcome for %s: %s", cell[CELL_DIR], err)
            continue
        density, importance = 1 - float(cell["S"]), float(cell[PHASE_KEY])
        table.append((density, importance, outcome, n_win, n_trials))
    columns = ["density", "importance", "outcome", "n_win", "n_trials"]
    table = pd.DataFrame(table, columns=columns)
    return table.drop_duplicates(["density", "importance"])


def draw_phase_change(ax: Axes, table: pd.DataFrame) -> None:
    """Outcome per (density, importance) cell, with trials-with-it / trials."""
    xs, ys, Z = pivot_grid(table, x="density", y="importance", value="outcome")
    if Z.size == 0:
        style.note(ax, "no readable cells")
        return
    ax.set_facecolor("0.85")  # grey: a failed or missing cell
    edges = cell_edges(xs, log=True), cell_edges(ys, log=True)
    norm = BoundaryNorm(np.arange(len(OUTCOMES) + 1) - 0.5, len(OUTCOMES))
    ax.pcolormesh(*edges, np.ma.masked_invalid(Z), cmap=OUTCOME_COLORS, norm=norm)
    for row in table.itertuples():
        color = "white" if row.outcome == 0 else "black"
        text = f"{row.n_win}/{row.n_trials}"
        ax.text(row.density, row.importance, text, ha="center", va="center",
                fontsize=7, color=color)  # fmt: skip
    set_axis(ax, "x", "density", xs, log=True)
    set_axis(ax, "y", "importance", ys, log=True)
    ax.set_xlabel("feature density 1-S (= sparsity p)", fontsize=8)
    ax.set_ylabel("relative importance of feature 2\n(I_2 / I_1 = importance_decay)",
                  fontsize=8)  # fmt: skip


def _phase_pairs(sweep: Sweep) -> bool:
    """Whether the sweep has the n=2, m=1 cells of a phase change (``phase_cells``)."""
    return not phase_cells(trained_cells(sweep.dir, sweep.results)).empty


@figure(
    "toy_phase_change.png", when=_phase_pairs, leads=_any_trained,
    caption="Phase change of a 2-feature, 1-neuron toy model over density and "
    "relative importance: not represented, dedicated dimension, or superposition.",
)  # fmt: skip
def phase_change_of(sweep: Sweep) -> Figure:
    """toy_phase_change.png: a panel per other model configuration."""
    cells = phase_cells(trained_cells(sweep.dir, sweep.results))
    keys = [k for k in model_keys(cells) if k != PHASE_KEY]
    groups = panel_groups(cells, keys)
    fig, axs = style.panel_grid(len(groups), width=5.2, height=4.0)
    shown = label_keys(cells, keys)
    for ax, (values, rows) in zip(axs, groups, strict=True):
        draw_phase_change(ax, phase_table(sweep.dir, rows))
        style.title(ax, style.panel_label(values, shown) if shown else "")
    style.outer_labels(axs)
    handles = [Patch(color=OUTCOME_COLORS(i), label=o) for i, o in enumerate(OUTCOMES)]
    handles.append(Patch(color="0.85", label="failed or missing cell"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    restarts = cells.get("model.restarts", pd.Series([1])).dropna().unique()
    K = ", ".join(style.fmt(k) for k in sorted(restarts)) or "1"
    note = (
        f"each trial keeps the lowest-loss of K={K} restarts; colour: the outcome of "
        "most trials (ties: that of the lowest-loss trial); numbers: trials with it / "
        f"trials. Represented: ||W_i|| > {REPRESENTED}. Not represented: feature 2 "
        "is not; dedicated dimension: only feature 2 is; superposition: both are"
    )
    what = f"phase change ({_context(cells, keys)}): swept density 1-S x relative "
    what += "importance of feature 2"
    style.suptitle(fig, what, shown, sweep.name, note)
    return fig
