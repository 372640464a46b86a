"""The committed reference sweep (outputs/reference): its analysis regenerates
results.parquet and boundary.csv (to a stated tolerance) and every committed figure,
including the README's."""

import json
import re
import shutil

import pandas as pd
import pytest
from conftest import ROOT
from matplotlib.testing.compare import compare_images

import analysis
from sweep import job
from sweep.config import LATER, _defaults, nest
from sweep.schema import ANALYSIS_DIR, METRICS_FILE, NETWORK_COLUMNS, STATUS_FILE

REFERENCE = ROOT / "outputs" / "reference"
COMMITTED = REFERENCE / ANALYSIS_DIR
FIGURES = sorted(p.name for p in COMMITTED.glob("*.png"))
RMS_TOL = 1.0  # of 255 grey levels: the same picture, whatever font hinting does


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """The reference sweep's files without its analysis, analysed afresh."""
    copy = tmp_path_factory.mktemp("ref") / REFERENCE.name  # same name: same titles
    shutil.copytree(REFERENCE, copy, ignore=shutil.ignore_patterns(ANALYSIS_DIR))
    return analysis.run(copy)


def test_reference_is_small_and_complete():
    kept = {".parquet", ".json", ".yaml", ".png", ".csv"}  # what git keeps of it
    size = sum(p.stat().st_size for p in REFERENCE.rglob("*") if p.suffix in kept)
    assert size < 5e6
    assert (REFERENCE / "multirun.yaml").is_file()
    assert len(list(REFERENCE.glob("*/status.json"))) == 72
    assert len(FIGURES) >= 9  # phase, capacity (3 metrics each), number, heatmaps...
    assert "boundary.png" in FIGURES


def test_results_are_reproduced(regenerated):
    """The same tables, to a stated tolerance: means and standard errors are sums
    whose last bits depend on the processor's SIMD path, and the probit fit of
    boundary.csv is iterative (it differs in the 9th digit across processors)."""
    pd.testing.assert_frame_equal(
        pd.read_parquet(regenerated / "results.parquet"),
        pd.read_parquet(COMMITTED / "results.parquet"),
        check_exact=False, rtol=1e-9, atol=1e-12,
    )  # fmt: skip
    pd.testing.assert_frame_equal(
        pd.read_csv(regenerated / "boundary.csv"),
        pd.read_csv(COMMITTED / "boundary.csv"),
        check_exact=False, rtol=1e-6, atol=1e-9,
    )  # fmt: skip


@pytest.mark.parametrize("figure", FIGURES)
def test_every_figure_is_reproduced(regenerated, figure):
    assert (regenerated / figure).is_file()
    assert compare_images(COMMITTED / figure, regenerated / figure, RMS_TOL) is None


def test_readme_figures_come_from_the_reference():
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert shown
    for path in shown:
        assert path.startswith("outputs/reference/analysis/"), path
        assert (ROOT / path).name in FIGURES, path


# A cell of each panel, near 50 % success (where a changed solver shows first).
GOLDEN = [
    "method=basis_pursuit,n_features=50,n_samples=100,neurons=20,sparsity=0.16,trials=3",
    "method=basis_pursuit,method.positive=true,n_features=50,n_samples=100,neurons=10,"
    "sparsity=0.08,trials=3",
    "method=omp,n_features=50,n_samples=100,neurons=20,sparsity=0.16,trials=3",
]
TIMINGS = ["fit_seconds", "recover_seconds"]


@pytest.mark.parametrize("name", GOLDEN)
def test_cells_are_recomputed_as_committed(name, tmp_path):
    """The real job on a committed cell's configuration, with today's defaults for
    the keys added since (the data keys, the random model's geometry), gives its
    metrics.parquet: a change in data drawing, models, solvers or metrics fails here.
    Floats to 1e-9 relative (another processor's SIMD path moves the last bits), all
    else exactly; the columns added since are the only new ones."""
    committed = REFERENCE / name
    flat = json.loads((committed / STATUS_FILE).read_text())["config"]
    defaults = _defaults(flat["method"], flat["model"])
    added = {key: value for key, value in defaults.items()
             if key.startswith(LATER) and key not in flat}  # fmt: skip
    assert added, "the keys added later have defaults"
    status = job.run(nest(added | flat), tmp_path / name, sweep=REFERENCE.name,
                     cell=name)  # fmt: skip
    assert status["status"] == "ok", status.get("traceback")
    stored = json.loads((committed / STATUS_FILE).read_text())["fingerprint"]
    assert status["fingerprint"] == stored  # the same cell as before
    again, before = (
        pd.read_parquet(d / METRICS_FILE).drop(columns=TIMINGS)
        for d in (tmp_path / name, committed)
    )
    since = {"true_l0", "coherence", "latent_precision", "latent_recall", "latent_f1",
             "dead_fraction", "shrinkage", "explained_variance",
             *NETWORK_COLUMNS}  # fmt: skip
    assert set(again.columns) - set(before.columns) == {*added, *since}
    pd.testing.assert_frame_equal(again[before.columns], before, check_exact=False,
                                  rtol=1e-9, atol=1e-12)  # fmt: skip
    assert again["success_rate"].between(0.05, 0.95).any()  # not a trivial cell
