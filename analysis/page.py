"""What goes on a sweep's report.html besides its figures: the command and grid, the
best method per cell, a real network's cells side by side, the cells that did not
finish.

Read from the sweep folder alone (``multirun.yaml``, which Hydra writes, and the
analysis' own tables); the figures and their captions come from the registry
(``analysis.figures``); ``analysis.html`` renders the page.
"""

import shlex
from pathlib import Path

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from omegaconf import OmegaConf

from analysis import html
from analysis.aggregate import CELL_DIR, PlotAxes, truth_cells, varying_keys
from sweep.schema import DONE

MULTIRUN_FILE = "multirun.yaml"  # Hydra's record of the command that made the sweep
BEST_INTRO = (
    "Per cell, the method with the highest success rate; ties are broken by the "
    f"lowest nmse; '{html.NONE_SUCCEEDS}' where every method's success rate is 0."
)
NETWORK_INTRO = (
    "A real network's activations, no ground truth: per cell and method, the"
    " network's held-out accuracy, the L0 of the latents and of the neurons, the"
    " explained variance of H (higher is better), the mean top share of the"
    " latents and of the neurons (higher is more selective), and the latents more"
    " selective than the most selective neuron; each the mean over trials."
)
TRUST_INTRO = (
    "Where ground truth is known: do the metrics without it rank the learned"
    " methods as mcc does? Per setting of the data and model keys, over its learned"
    " cells, the Spearman rank correlation of mcc with each (label_entropy"
    " negated: +1 is the same ranking, 0 none). The samples are labelled by their"
    " most active true feature."
)
NETWORK_SHOWN = (
    "accuracy", "l0", "neuron_l0", "explained_variance", "top_share",
    "neuron_top_share", "above_best_neuron",
)  # fmt: skip
_PARSER = OverridesParser.create()


def sweep_command(sweep_dir: Path) -> tuple[str, dict[str, list[str]] | None]:
    """The command line of the sweep and its grid (key -> values), from the
    ``multirun.yaml`` of its last run; ("not recorded", None) without one."""
    try:
        hydra_cfg = OmegaConf.load(sweep_dir / MULTIRUN_FILE).hydra
        task = list(hydra_cfg.overrides.task)
        settings = [o for o in hydra_cfg.overrides.hydra if o != "hydra.mode=MULTIRUN"]
        params = dict(hydra_cfg.sweeper.params or {})
    except Exception:  # absent or unreadable: the page says so
        return "not recorded", None
    lines = [f"{key}={value}" for key, value in params.items()] + task
    grid = {}  # the command line overrides the preset's axes key by key
    for override in _PARSER.parse_overrides(lines):
        key = override.key_or_group
        if override.is_sweep_override():
            grid[key] = _values(override)
        elif key in grid:  # a preset axis fixed to one value on the command line
            grid[key] = [str(override.value())]
    command = " ".join(["python -m sweep -m", *map(_shell, [*task, *settings])])
    return command, grid


def _values(override: Override) -> list[str]:
    """The values of a sweep override; a glob over a config group, which only
    Hydra's config loader can list, as written: ["glob(*)"]."""
    if isinstance(override.value(), Glob):
        return [override.input_line.split("=", 1)[1]]
    return [str(v) for v in override.sweep_iterator()]


def _shell(override: str) -> str:
    """An override as one shell word: range(...) and spaces quoted; one that Hydra
    already quoted (a path: hydra.sweep.dir='...') is one as it stands."""
    return override if "'" in override or '"' in override else shlex.quote(override)


def best_methods(results: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """Per cell of the data grid, the method with the highest success rate (ties:
    lowest nmse); methods differing in a ``method.*`` key are told apart."""
    done = results[results["status"].isin(DONE)] if "status" in results else results
    done = done[truth_cells(done)]  # a real network's: ``network_cells``
    method_keys = [k for k in axes.panels if k.startswith("method.")]
    keys = [k for k in (axes.y, axes.x, *axes.panels) if k and k != "method"]
    keys = [k for k in keys if k not in method_keys]

    def label(row: pd.Series) -> str:  # e.g. basis_pursuit method.positive=True
        named = [f"{k}={row[k]}" for k in method_keys if pd.notna(row[k])]
        return " ".join([str(row["method"]), *named])

    labelled = done.assign(method=done.apply(label, axis=1) if len(done) else [])
    return html.best_per_cell(labelled, cell_keys=list(dict.fromkeys(keys)))


def network_cells(results: pd.DataFrame) -> pd.DataFrame:
    """A real network's finished cells: the swept keys, then NETWORK_SHOWN (those
    the results have), a row per cell; none: an empty frame."""
    done = results[results["status"].isin(DONE)] if "status" in results else results
    done = done[~truth_cells(done)]
    keys = [k for k in varying_keys(done) if k in done] if len(done) > 1 else []
    keys = ["method", *(k for k in keys if k != "method")] if "method" in done else keys
    shown = [c for c in NETWORK_SHOWN if c in done]
    return done[[*keys, *shown]].reset_index(drop=True)


def problems(cells: pd.DataFrame) -> pd.DataFrame:
    """The cell folders that did not finish: folder, status, error."""
    bad = cells[~cells["status"].isin(DONE)]
    return bad[[CELL_DIR, "status", "error"]].reset_index(drop=True)
