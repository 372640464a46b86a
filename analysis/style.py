"""The look every figure shares: colormap, resolution, panel grid, titles, labels.

Figure modules (``plots``, ``toy``, ``learned``, ``transition``) import it; nothing
here reads files or knows a figure.
"""

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

CMAP = colormaps["viridis"]
DIVERGING = colormaps["RdBu_r"]  # signed data (W^T W, differences): white at 0
DPI = 120  # of every PNG the analysis writes
CHARS_PER_INCH_PT = 110  # characters of text per inch, times its size in points


def fmt(value: object) -> str:
    """A config value for a title or a tick: 0.01, 20, True, omp, None."""
    if pd.isna(value):
        return "None"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{value:.3g}"
    return str(value)


def panel_label(values: dict[str, object], keys: Sequence[str]) -> str:
    """The keys' values for a title: "method=lasso, method.alpha=0.1". A method or
    model parameter that is NaN (the method has no such parameter) is left out."""
    shown = [(k, values.get(k)) for k in keys]
    parts = [f"{k}={fmt(v)}" for k, v in shown if "." not in k or not pd.isna(v)]
    return ", ".join(parts) or "all cells"


def note(ax: Axes, text: str) -> None:
    """``text`` in the middle of an empty panel: why nothing is drawn there."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def line_colors(n: int) -> list:
    """n colours of CMAP for n lines; its last tenth is too pale on white."""
    return [CMAP(x) for x in np.linspace(0, 0.9, n)] if n > 1 else [CMAP(0.35)]


def symmetric(values: np.ndarray) -> Normalize:
    """A colour scale centred at 0 for signed values (for ``DIVERGING``)."""
    limit = float(np.nanmax(np.abs(values), initial=0.0)) or 1.0
    return Normalize(-limit, limit)


def panel_grid(n: int, *, width: float = 3.9, height: float = 3.3, share: bool = True):
    """A constrained Figure with n panels, at most 4 per row: (fig, list of n axes).

    ``share``: one x and one y axis for all panels (tick labels on the outer ones),
    so that panels compare at a glance."""
    n_cols = max(1, min(n, 4))
    n_rows = max(1, -(-n // n_cols))
    size = (width * n_cols + 1.4, height * n_rows + 1.0)
    fig = Figure(figsize=size, layout="constrained")
    axs = fig.subplots(
        n_rows, n_cols, squeeze=False, sharex=share, sharey=share
    ).ravel()
    for ax in axs[n:]:
        ax.remove()
    for ax in axs[max(0, n - n_cols) : n]:  # nothing below: they show the x ticks
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig, list(axs[:n])


def outer_labels(axs: Sequence[Axes]) -> None:
    """Axis labels on the outer panels of a grid of shared axes only: a y label in
    the first column, an x label where no panel lies below (as their tick labels)."""
    for i, ax in enumerate(axs):
        spec = ax.get_subplotspec()
        if not spec.is_first_col():
            ax.set_ylabel("")
        if i + spec.get_gridspec().ncols < len(axs):
            ax.set_xlabel("")


def title(ax: Axes, text: str, *, fontsize: float = 9) -> None:
    """``ax.set_title`` wrapped to the panel's width, so that it is never clipped."""
    width = ax.get_position().width  # fraction of the figure, before the layout
    if spec := ax.get_subplotspec():  # its grid's share, less room for tick labels
        width = 0.85 * len(spec.colspan) / spec.get_gridspec().ncols
    chars = max(
        12, int(width * ax.figure.get_figwidth() * CHARS_PER_INCH_PT / fontsize)
    )
    lines = [part for line in text.split("\n") for part in textwrap.wrap(line, chars)]
    ax.set_title("\n".join(lines), fontsize=fontsize)


def suptitle(
    fig: Figure, what: str, panels: Sequence[str], sweep: str, fine_print: str = ""
) -> None:
    """What was swept, how panels split it, a note, the sweep name; wrapped to the
    figure's width, so that it is never clipped."""
    by = f"; a panel per {', '.join(panels)}" if panels else ""
    width = int(fig.get_figwidth() * CHARS_PER_INCH_PT / 10)  # of 10 pt text
    lines = textwrap.wrap(f"{what}{by}", width) + textwrap.wrap(fine_print, width)
    fig.suptitle("\n".join(lines + ([f"sweep {sweep}"] if sweep else [])), fontsize=10)
