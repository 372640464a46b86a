"""The figure of learned dictionaries (method=dict_learning, ica, sae).

- ``learned_cosines.png``: for one cell per learned method, the |cosine| between
  its learned atoms and the true feature directions W_i, atoms in matched order, so
  that a perfect dictionary is a bright diagonal.

Learned cells are those with an ``mcc`` (metrics.parquet; every learned method
writes one, no other does), so the figure needs no list of method names. Each
panel reads the cell's ``cosines.parquet`` (trial 0: trial, atom, feature, cos) and
the matching (``matched_atom``, ``matched_cos``) of ``features.parquet``.
The representative cell of a method is picked as for heatmaps.png: the middle
(neurons, sparsity) cell of the grid that every learned method covers.

``cosines_of`` is the registered figure (``analysis.figures``): it picks the cells,
reads their files and calls the builder ``cosines_figure``, which (like
``draw_cosines`` on a given ax) does no I/O.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis import style
from analysis.aggregate import (
    AXIS_EXCLUDED,
    CELL_DIR,
    N_TRIALS,
    PlotAxes,
    one_per_method,
    varying_keys,
)
from analysis.figures import Sweep, figure
from sweep import folders
from sweep.schema import COSINES_FILE, DONE, FEATURES_FILE
from sweep.thresholds import RECOVERED

log = logging.getLogger(__name__)

FILE = "learned_cosines.png"
LEARNED_METRIC = "mcc"  # a metric only learned methods write (sweep/align.py)
NORM = Normalize(0, 1)
COLORBAR_LABEL = r"$|\cos(\mathrm{atom}, W_i)|$"
CONTEXT_KEYS = ("n_features", "neurons")  # always named in panel titles


# --- the matched order ---------------------------------------------------------------


def matched_order(atom_of: np.ndarray, n_atoms: int) -> np.ndarray:
    """The atom shown in each column: column i holds the atom matched to feature i
    (-1: feature i has no atom), then the unmatched atoms in ascending order.

    atom_of: (n_features,) matched atom per feature, -1 if none. Returns
    (n_features + n_unmatched_atoms,).
    """
    atom_of = np.asarray(atom_of, dtype=int)
    matched = atom_of[atom_of >= 0]
    in_range = matched.size == 0 or matched.max() < n_atoms
    if not in_range or len(np.unique(matched)) < len(matched):
        raise ValueError(
            f"matched_atom={atom_of.tolist()}: allowed are distinct atoms 0.."
            f"{n_atoms - 1} or -1 (a one-to-one matching)"
        )
    unmatched = np.setdiff1d(np.arange(n_atoms), matched)
    return np.concatenate([atom_of, unmatched])


def reorder(C: np.ndarray, atom_of: np.ndarray) -> np.ndarray:
    """|C| (n_features, n_atoms) with its columns in ``matched_order``: NaN columns
    where a feature has no atom. Returns (n_features, n_features + n_unmatched)."""
    order = matched_order(atom_of, C.shape[1])
    M = np.abs(C)[:, np.maximum(order, 0)]
    M[:, order < 0] = np.nan
    return M


# --- reading one cell ----------------------------------------------------------------


@dataclass
class CosinePanel:
    """One cell: title, |cos| in matched order (n_features, n_columns), and the
    number of features (the columns after it are unmatched atoms)."""

    title: str
    M: np.ndarray
    n_features: int


def load_cosines(cell_dir: Path) -> tuple[np.ndarray, int]:
    """Cosines (n_features, n_atoms) of the first trial in cosines.parquet, and
    that trial."""
    path = Path(cell_dir) / COSINES_FILE
    frame = folders.read_table(path)
    if frame.empty:
        raise ValueError(f"empty {path}")
    trial = int(frame["trial"].min())
    frame = frame[frame["trial"] == trial]
    table = frame.pivot(index="feature", columns="atom", values="cos")
    if table.isna().to_numpy().any():
        raise ValueError(f"incomplete cosine matrix in {path}")
    return table.sort_index().sort_index(axis=1).to_numpy(float), trial


def load_match(cell_dir: Path, *, trial: int) -> pd.DataFrame:
    """features.parquet of one trial, sorted by feature: feature, matched_atom,
    matched_cos."""
    path = Path(cell_dir) / FEATURES_FILE
    columns = ["trial", "feature", "matched_atom", "matched_cos"]
    frame = folders.read_table(path, columns=columns)
    frame = frame[frame["trial"] == trial].sort_values("feature")
    if frame.empty:
        raise ValueError(f"no trial {trial} in {path}")
    return frame


def cosine_panel(cell_dir: Path, title: str) -> CosinePanel:
    """A cell's panel; its title gains mcc and n_recovered of the shown trial."""
    C, trial = load_cosines(cell_dir)
    match = load_match(cell_dir, trial=trial)
    if len(match) != C.shape[0]:
        raise ValueError(
            f"{len(match)} features in {FEATURES_FILE}, {C.shape[0]} in {COSINES_FILE}"
        )
    matched_cos = match["matched_cos"].to_numpy(float)
    n = len(matched_cos)
    scores = f"mcc={matched_cos.mean():.3f}, n_recovered="
    scores += f"{int(np.sum(matched_cos > RECOVERED))}/{n} (trial {trial})"
    M = reorder(C, match["matched_atom"].to_numpy(int))
    return CosinePanel(f"{title}\n{scores}", M, n)


# --- the figure ----------------------------------------------------------------------


def draw_cosines(ax: Axes, M: np.ndarray, *, n_features: int) -> None:
    """|cos| (n_features, n_columns) as an image, feature 0 top left; grey where a
    feature has no atom; a white line before the unmatched atoms."""
    ax.set_facecolor("0.85")  # NaN columns: features without an atom
    ax.imshow(M, cmap=style.CMAP, norm=NORM, aspect="auto", interpolation="nearest")
    if M.shape[1] > n_features:
        ax.axvline(n_features - 0.5, color="white", lw=1.5)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(6, integer=True))
    ax.set_xlabel("learned atom, matched order\n(column i: the atom matched to "
                  "feature i)", fontsize=8)  # fmt: skip
    ax.set_ylabel("true feature i (direction $W_i$)", fontsize=8)


def cosines_figure(panels: list[CosinePanel], *, what: str, sweep: str = "") -> Figure:
    """A panel per learned method, one shared colorbar (viridis, 0..1)."""
    fig, axs = style.panel_grid(
        max(1, len(panels)), width=4.8, height=4.2, share=False
    )  # matrices of other sizes
    if not panels:
        style.note(axs[0], "no cosines could be read")
        return fig
    for ax, panel in zip(axs, panels, strict=True):
        draw_cosines(ax, panel.M, n_features=panel.n_features)
        style.title(ax, panel.title, fontsize=8)
    fig.colorbar(ScalarMappable(NORM, style.CMAP), ax=axs, label=COLORBAR_LABEL)
    note = (
        "column i: the atom matched to feature i (one-to-one, Hungarian); grey: "
        "feature i has no atom; right of the white line: unmatched atoms. mcc: mean "
        f"matched cosine; n_recovered: matched cosine > {RECOVERED}"
    )
    style.suptitle(fig, what, (), sweep, note)
    return fig


# --- which cells, which figure -------------------------------------------------------


def learned_cells(results: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """One counted cell per learned method, as heatmaps.png picks its cells: the
    middle (y, x) cell common to every learned method panel. None: an empty frame."""
    if LEARNED_METRIC not in results:
        return results.iloc[:0]
    done = results["status"].isin(DONE) & (results[N_TRIALS] > 0)
    return one_per_method(results[done & results[LEARNED_METRIC].notna()], axes)


def title_keys(cells: pd.DataFrame, axes: PlotAxes) -> list[str]:
    """The keys named after the method: n_features, neurons, sparsity (or k), the
    swept axes, and whatever else varies among the learned cells shown."""
    density = "sparsity" if cells["sparsity"].notna().any() else "k"
    keys = [*CONTEXT_KEYS, density, *(k for k in (axes.y, axes.x) if k)]
    keys += [k for k in varying_keys(cells) if k not in AXIS_EXCLUDED]
    return [k for k in dict.fromkeys(keys) if k in cells and k != "method"]


def _what(axes: PlotAxes) -> str:
    coords = [k for k in (axes.y, axes.x) if k]
    picked = (
        f"its middle cell of the swept {' x '.join(coords)} (as heatmaps.png)"
        if coords
        else "its only cell"
    )
    return (
        "|cosine| of learned atoms and true feature directions W_i (perfect: a "
        f"bright diagonal), a panel per learned method: {picked}"
    )


def _any_learned(sweep: Sweep) -> bool:
    """Whether a counted cell of the sweep has learned atoms."""
    return not learned_cells(sweep.results, sweep.axes).empty


@figure(
    FILE, when=_any_learned,
    caption="|cosine| between the atoms a learned method found and the true feature "
    "directions, in matched order (grey: a feature without an atom).",
)  # fmt: skip
def cosines_of(sweep: Sweep) -> Figure:
    """learned_cosines.png: a panel per learned method (``learned_cells``); a cell
    whose files cannot be read costs its panel."""
    cells = learned_cells(sweep.results, sweep.axes)
    keys = title_keys(cells, sweep.axes)
    panels = []
    for _, cell in cells.iterrows():
        try:
            title = style.panel_label(cell, ["method", *keys])
            panels.append(cosine_panel(sweep.dir / cell[CELL_DIR], title))
        except Exception as err:  # a bad file costs its panel, not the figure
            log.warning("no cosines for %s: %s", cell[CELL_DIR], err)
    return cosines_figure(panels, what=_what(sweep.axes), sweep=sweep.name)
