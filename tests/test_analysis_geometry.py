"""coherence.png: recovery against the dictionary's measured overlap (``coherence``).

Sweeps are run by the real command line, so their cells carry the coherence the job
measures; the cap on lines on a hand-made cell table.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from analysis import aggregate, figures, geometry
from sweep.schema import ANALYSIS_DIR

try:
    from sweep_factory import make_sweep, planned_figures
except ImportError:  # tests/ imported as a package
    from tests.sweep_factory import make_sweep, planned_figures

SMALL = ["n_features=40", "neurons=10", "trials=2", "n_samples=50"]


def run_sweep(root: Path, *grid: str) -> Path:
    """A sweep folder of ``grid`` by the real command line, analysed."""
    sweep = root / "sweep"
    done = run_cli("sweep", "-m", *grid, *SMALL, f"hydra.sweep.dir={sweep}",
                   "hydra.callbacks.sweep_end.analyze=false")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    done = run_cli("analysis", str(sweep))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return sweep


@pytest.fixture(scope="module")
def geometry_sweep(tmp_path_factory) -> Path:
    """omp and lstsq on a Gaussian and an orthogonal W: two coherences per method."""
    return run_sweep(
        tmp_path_factory.mktemp("geometry"), "model.geometry=gaussian,orthogonal",
        "model.target_cos=0.3", "sparsity=0.05", "method=omp,lstsq",
    )  # fmt: skip


def test_coherence_figure_plots_each_cells_coherence_and_success(geometry_sweep):
    results = pd.read_parquet(geometry_sweep / ANALYSIS_DIR / "results.parquet")
    assert len(results) == 4 and results["coherence"].notna().all()
    for _, cells in results.groupby("method"):  # orthogonal: features pushed apart
        by = cells.set_index("model.geometry")["coherence"]
        assert by["orthogonal"] < by["gaussian"] - 0.1
    assert (geometry_sweep / ANALYSIS_DIR / geometry.FILE).is_file()
    planned = planned_figures(geometry_sweep)
    assert geometry.FILE in planned
    fig = planned[geometry.FILE].draw()
    left, right = fig.axes[:2]
    assert [line.get_label() for line in left.lines] == ["lstsq", "omp"]
    assert right.get_yscale() == "log"
    for line in left.lines:  # a line per method: its cells, sorted by coherence
        cells = results[results["method"] == line.get_label()]
        cells = cells.sort_values("coherence")
        np.testing.assert_allclose(line.get_xdata(), cells["coherence"])
        np.testing.assert_allclose(line.get_ydata(), cells["success_rate"])
        assert np.all(np.diff(line.get_xdata()) >= 0)
    for line in right.lines:
        cells = results[results["method"] == line.get_label()]
        cells = cells.sort_values("coherence")
        np.testing.assert_allclose(line.get_xdata(), cells["coherence"])
        np.testing.assert_allclose(
            line.get_ydata(), np.clip(cells["nmse"], geometry.NMSE_FLOOR, None)
        )


def test_coherence_caption_says_what_and_which_way(geometry_sweep):
    caption = planned_figures(geometry_sweep)[geometry.FILE].caption
    assert "success rate (left; higher is better)" in caption
    assert "NMSE (right, log scale; lower is better)" in caption
    assert "largest |cos|" in caption and "lower: features more apart" in caption
    assert "a line per method," in caption
    assert "changes here with model.geometry" in caption


def test_no_coherence_figure_where_a_method_has_one_coherence(tmp_path):
    """Only sparsity swept, the same seed: one W per method, one coherence."""
    sweep = run_sweep(tmp_path, "sparsity=0.02,0.05", "method=omp,lstsq")
    results = pd.read_parquet(sweep / ANALYSIS_DIR / "results.parquet")
    assert results["coherence"].nunique() == 1 and len(results) == 4
    assert geometry.FILE not in planned_figures(sweep)
    assert not (sweep / ANALYSIS_DIR / geometry.FILE).exists()


def test_no_coherence_figure_for_a_sweep_without_the_column(tmp_path):
    sweep = make_sweep(tmp_path)  # the fake cells of older sweeps: no coherence
    assert geometry.FILE not in planned_figures(sweep)


def test_at_most_six_lines_and_the_caption_says_so(tmp_path):
    """Eight methods at two neurons values: neurons changes the coherence, so the
    lines are the methods, the first six drawn."""
    methods = [f"m{i}" for i in range(8)]
    rows = pd.DataFrame(
        [{"method": m, "neurons": n, "sparsity": 0.05, "coherence": 1 / n,
          "success_rate": 0.1 * i, "nmse": 0.0}
         for i, m in enumerate(methods) for n in (5, 10)]
    )  # fmt: skip
    axes = aggregate.choose_axes(rows)
    sweep = figures.Sweep(tmp_path, rows, axes, pd.DataFrame(), pd.DataFrame(),
                          pd.DataFrame())  # fmt: skip
    assert geometry.coherence_keys(rows) == ["neurons"]
    (planned,) = [p for p in figures.planned(sweep) if p.file == geometry.FILE]
    assert "a line per method (the first 6 of 8 lines)" in planned.caption
    assert "log scale" not in planned.caption  # nmse 0 everywhere: linear
    left = planned.draw().axes[0]
    assert [line.get_label() for line in left.lines] == methods[:6]
