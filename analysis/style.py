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
from matplotlib.figure import Figure

CMAP = colormaps["viridis"]
DPI = 120  # of every PNG the analysis writes


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


def panel_grid(n: int, *, width: float = 3.9, height: float = 3.3):
    """A constrained Figure with n panels, at most 4 per row: (fig, list of n axes)."""
    n_cols = max(1, min(n, 4))
    n_rows = max(1, -(-n // n_cols))
    size = (width * n_cols + 1.4, height * n_rows + 1.0)
    fig = Figure(figsize=size, layout="constrained")
    axs = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axs[n:]:
        ax.remove()
    return fig, list(axs[:n])


def suptitle(
    fig: Figure, what: str, panels: Sequence[str], sweep: str, fine_print: str = ""
) -> None:
    """What was swept, how panels split it, a note in small print, the sweep name."""
    by = f"; a panel per {', '.join(panels)}" if panels else ""
    width = int(fig.get_figwidth() * 11)  # characters of 11 pt text that fit
    lines = textwrap.wrap(f"{what}{by}", width)
    lines += textwrap.wrap(fine_print, width * 5 // 4)
    fig.suptitle("\n".join(lines + ([f"sweep {sweep}"] if sweep else [])), fontsize=10)
