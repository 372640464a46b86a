"""What goes on a sweep's report.html: its command and grid, a caption for every
figure, the best method per cell, the cells that did not finish.

Read from the sweep folder alone (``multirun.yaml``, which Hydra writes, and the
analysis' own tables); ``analysis.html`` renders the page.
"""

import re
import shlex
from pathlib import Path

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from analysis import html
from analysis.aggregate import CELL_DIR, PlotAxes
from sweep.schema import DONE

MULTIRUN_FILE = "multirun.yaml"  # Hydra's record of the command that made the sweep
_PARSER = OverridesParser.create()
PHASE = (
    "Phase diagram of {what}: the mean over trials in each cell of the grid. White "
    "line: 50 % success contour; red dashed line: the L1 phase transition "
    "(Donoho-Tanner) on panels of exact L1 solvers on random Gaussian W; grey: a "
    "failed or missing cell."
)
METRICS = {  # plain-text names of the metrics in file names (others: their name)
    "success_rate": "success rate (fraction of samples with x != 0 recovered to within "
    "success_tol relative error)",
    "nmse": "NMSE (||X - X_hat||^2 / ||X||^2)",
    "support_f1": "support F1 (truth x != 0, prediction |x_hat| > 1e-3)",
    "mcc": "mcc (mean matched cosine of learned atoms and true directions)",
    "n_recovered": "features recovered by a learned atom (matched cosine > 0.9)",
}
CAPTIONS = {  # file name pattern -> what the figure shows
    r"phase_(.+)\.png": PHASE,
    r"capacity_number\.png": "Capacity number: per neurons value, the largest "
    "sparsity recovered at >= 50 % success, a line per method (and other panel key).",
    r"capacity_(.+)\.png": "Capacity plot of {what} against neurons, a line per "
    "sparsity; error bars: standard error over trials.",
    r"heatmaps\.png": "True features X (left) and each method's recovered X_hat on "
    "the same test samples (paired data), for a few representative cells.",
    r"boundary\.png": "The Donoho-Tanner picture: the measured 50 % success boundary "
    "(probit fit per neurons value, +- 1 standard error) of each exact-L1 panel on the "
    "theory curves (signed and x >= 0); the table is boundary.csv.",
    r"toy_weights_(.+)\.png": "Trained toy model {what}: W^T W (left) and the norm of "
    "each feature's column, coloured by how much it shares its direction "
    "(superposition), a column per sparsity.",
    r"toy_represented\.png": "Features represented by the trained models (||W_i|| > "
    "0.5) against sparsity: superposition stores more features than neurons.",
    r"toy_dimensionality\.png": "Feature dimensionality D_i of the trained models "
    "against sparsity, with dims per feature D* and the paper's reference fractions.",
    r"toy_directions\.png": "The directions W_i of the trained models with 2 neurons "
    "(the paper's intro figure: antipodal pairs, pentagons).",
    r"toy_phase_change\.png": "Phase change of a 2-feature, 1-neuron toy model over "
    "density and relative importance: not represented, dedicated dimension, or "
    "superposition.",
    r"learned_cosines\.png": "|cosine| between the atoms a learned method found and "
    "the true feature directions, in matched order (grey: a feature without an atom).",
}


def caption(file: str) -> str:
    """What the figure ``file`` shows (every figure the analysis writes has one)."""
    for pattern, text in CAPTIONS.items():
        if match := re.fullmatch(pattern, file):
            what = match.group(1) if match.groups() else ""
            return text.format(what=METRICS.get(what, what))
    return f"{file} (no caption registered for this figure)"


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
            grid[key] = [str(v) for v in override.sweep_iterator()]
        elif key in grid:  # a preset axis fixed to one value on the command line
            grid[key] = [str(override.value())]
    command = " ".join(["python -m sweep -m", *map(_shell, [*task, *settings])])
    return command, grid


def _shell(override: str) -> str:
    """An override as one shell word: range(...) and spaces quoted; one that Hydra
    already quoted (a path: hydra.sweep.dir='...') is one as it stands."""
    return override if "'" in override or '"' in override else shlex.quote(override)


def best_methods(results: pd.DataFrame, axes: PlotAxes) -> pd.DataFrame:
    """Per cell of the data grid, the method with the highest success rate (ties:
    lowest nmse); methods differing in a ``method.*`` key are told apart."""
    done = results[results["status"].isin(DONE)] if "status" in results else results
    method_keys = [k for k in axes.panels if k.startswith("method.")]
    keys = [k for k in (axes.y, axes.x, *axes.panels) if k and k != "method"]
    keys = [k for k in keys if k not in method_keys]

    def label(row: pd.Series) -> str:  # e.g. basis_pursuit method.positive=True
        named = [f"{k}={row[k]}" for k in method_keys if pd.notna(row[k])]
        return " ".join([str(row["method"]), *named])

    labelled = done.assign(method=done.apply(label, axis=1) if len(done) else [])
    return html.best_per_cell(labelled, cell_keys=list(dict.fromkeys(keys)))


def problems(cells: pd.DataFrame) -> pd.DataFrame:
    """The cell folders that did not finish: folder, status, error."""
    bad = cells[~cells["status"].isin(DONE)]
    return bad[[CELL_DIR, "status", "error"]].reset_index(drop=True)
