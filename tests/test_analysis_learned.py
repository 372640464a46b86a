"""Tests of ``analysis.learned``: the |cosine| figure of learned dictionaries.

The matched order is checked on hand-made cosines with a known permutation; the
figure on tiny sweeps written cell by cell through ``sweep.job.run``, so the files
are exactly what a real sweep writes.
"""

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

import analysis
from analysis import aggregate, chance, learned, plots
from sweep import align, job
from sweep.schema import COSINES_FILE, FEATURES_FILE

try:
    from sweep_factory import planned_figures
except ImportError:  # tests/ imported as a package
    from tests.sweep_factory import planned_figures

METHODS = {
    "ica": {"name": "ica", "n_components": None, "max_iter": 400, "tol": 1e-4},
    "dict_learning": {
        "name": "dict_learning",
        "alpha": 0.1,
        "transform_alpha": 1e-3,
        "n_components": None,
        "batch_size": 64,
        "max_iter": 5,
        "positive": True,
    },
    "lstsq": {"name": "lstsq"},
}
BASE = {
    "seed": 0,
    "n_features": 8,
    "neurons": 6,
    "sparsity": 0.1,
    "k": None,
    "trials": 2,
    "n_samples": 20,
    "n_train": 200,
    "noise": 0.0,
    "success_tol": 0.01,
    "model": {"name": "random"},
}


def make_sweep(root: Path, methods, *, neurons=(6,), sparsity=(0.1,)) -> Path:
    """A sweep folder of every method x neurons x sparsity cell, run by job.run."""
    sweep = root / "sweep"
    for method in methods:
        for m in neurons:
            for p in sparsity:
                name = f"method={method},neurons={m},sparsity={p}"
                cfg = BASE | {"method": METHODS[method], "neurons": m, "sparsity": p}
                status = job.run(cfg, sweep / name, cell=name)
                assert status["status"] == "ok", status["error"]
    return sweep


def run_analysis(sweep: Path, caplog) -> Path:
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    return out


def shown_cosines(sweep: Path) -> dict[str, np.ndarray]:
    """learned_cosines.png as the analysis draws it: each panel's image by the
    first line of its title (method=..., n_features=...)."""
    fig = planned_figures(sweep)[learned.FILE].draw()
    shown = [ax for ax in fig.axes if ax.images]
    return {ax.get_title().split("\n")[0]: ax.images[0].get_array() for ax in shown}


def permuted_cosines(rng, atom_of, n_atoms):
    """Cosines (n_features, n_atoms) below 0.5 but +-1 at (i, atom_of[i])."""
    C = rng.uniform(-0.5, 0.5, size=(len(atom_of), n_atoms))
    for i, j in enumerate(atom_of):
        if j >= 0:
            C[i, j] = -1.0 if i % 2 else 1.0  # signs do not matter: |cos| is drawn
    return C


# --- the matched order ---------------------------------------------------------------


def test_reorder_puts_matched_atoms_on_the_diagonal(rng):
    atom_of = np.array([3, 0, 5, 1])  # 6 atoms: 2 and 4 unmatched
    C = permuted_cosines(rng, atom_of, 6)
    np.testing.assert_array_equal(learned.matched_order(atom_of, 6), [3, 0, 5, 1, 2, 4])
    M = learned.reorder(C, atom_of)
    assert M.shape == (4, 6)
    np.testing.assert_array_equal(np.diag(M), np.ones(4))
    np.testing.assert_array_equal(M[:, 4:], np.abs(C[:, [2, 4]]))
    assert (M[~np.eye(4, 6, dtype=bool)] < 0.5).all()


def test_features_without_an_atom_get_empty_columns(rng):
    atom_of = np.array([-1, 2, 0, -1, 1])  # 3 atoms for 5 features: ICA compressed
    C = permuted_cosines(rng, atom_of, 3)
    M = learned.reorder(C, atom_of)
    assert M.shape == (5, 5)
    assert np.isnan(M[:, [0, 3]]).all()
    np.testing.assert_array_equal(np.diag(M)[[1, 2, 4]], np.ones(3))


@pytest.mark.parametrize("atom_of", [[0, 0, 1], [0, 1, 3], [2, -1, 2]])
def test_a_matching_that_is_not_one_to_one_is_refused(atom_of):
    with pytest.raises(ValueError, match=r"matched_atom=.*allowed are distinct"):
        learned.matched_order(np.array(atom_of), 3)


def test_the_matching_of_align_gives_a_diagonal(rng):
    W = rng.standard_normal((6, 5))
    perm = rng.permutation(7)[:5]
    atoms = rng.standard_normal((6, 7))
    atoms[:, perm] = W * rng.choice([-2.0, 3.0], size=5)  # flipped and rescaled
    C = align.cosines(atoms, W)  # (n_atoms, n_features)
    atom_of, _ = align.match(np.abs(C))
    M = learned.reorder(C.T, atom_of)
    np.testing.assert_allclose(np.diag(M), 1.0)
    assert learned.RECOVERED is align.RECOVERED  # one definition, imported


def test_a_panel_from_hand_written_files(tmp_path, rng):
    atom_of = np.array([2, -1, 0])  # 3 features, 4 atoms
    C = permuted_cosines(rng, atom_of, 4)
    feature, atom = np.indices(C.shape)
    cos = pd.DataFrame(
        {"trial": 0, "atom": atom.ravel(), "feature": feature.ravel(), "cos": C.ravel()}
    )
    cos.sample(frac=1, random_state=0).to_parquet(tmp_path / COSINES_FILE)  # any order
    matched_cos = [0.95, 0.0, 0.5]
    pd.DataFrame(
        {
            "trial": [1, 1, 1, 0, 0, 0],  # trial 1 first: read by trial, not position
            "feature": [0, 1, 2, 2, 1, 0],
            "matched_cos": [0.1, 0.1, 0.1, *matched_cos[::-1]],
            "matched_atom": [0, 1, 2, *atom_of[::-1]],
        }
    ).to_parquet(tmp_path / FEATURES_FILE)
    panel = learned.cosine_panel(tmp_path, "method=ica")
    np.testing.assert_array_equal(panel.M, learned.reorder(C, atom_of))
    assert panel.n_features == 3 and panel.M.shape == (3, 5)
    assert "mcc=0.483, n_recovered=1/3 (trial 0)" in panel.title


def test_figure_builds_with_no_readable_panel():
    fig = learned.cosines_figure([], what="nothing")
    assert fig.axes and fig.axes[0].texts[0].get_text() == "no cosines could be read"


# --- from a real sweep's files -------------------------------------------------------


def test_figure_is_written_for_a_learned_sweep(tmp_path, caplog):
    sweep = make_sweep(tmp_path, ["ica", "dict_learning", "lstsq"], neurons=(4, 6, 8))
    out = run_analysis(sweep, caplog)
    assert (out / learned.FILE).is_file()
    results = pd.read_parquet(out / "results.parquet")
    cells = learned.learned_cells(results, aggregate.choose_axes(results))
    # one cell per learned method, the middle neurons; lstsq has no mcc
    assert cells["method"].tolist() == ["dict_learning", "ica"]
    assert (cells["neurons"] == 6).all()
    shown = shown_cosines(sweep)  # a panel per cell: its |cos| in matched order
    assert list(shown) == [
        f"method={m}, n_features=8, neurons=6, sparsity=0.1" for m in cells["method"]
    ]
    for image, cell_dir in zip(shown.values(), cells["cell_dir"], strict=True):
        M = learned.cosine_panel(sweep / cell_dir, "").M
        np.testing.assert_array_equal(image, M)
    panel = learned.cosine_panel(sweep / cells[aggregate.CELL_DIR][1], "ica")
    features = pd.read_parquet(sweep / cells[aggregate.CELL_DIR][1] / FEATURES_FILE)
    trial0 = features[features["trial"] == 0]
    shown = re.search(r"mcc=(\d\.\d{3}),", panel.title)
    assert shown, panel.title
    mcc0 = trial0["matched_cos"].mean()
    assert float(shown[1]) == pytest.approx(mcc0, abs=5.01e-4)  # rounded to 0.001
    matched = trial0["matched_atom"].to_numpy() >= 0
    assert matched.sum() == 6  # ICA: at most `neurons` atoms
    np.testing.assert_allclose(
        np.diag(panel.M)[matched], np.abs(trial0["matched_cos"])[matched]
    )


def test_no_figure_for_a_known_dictionary_sweep(tmp_path, caplog):
    sweep = make_sweep(tmp_path, ["lstsq"], neurons=(4, 6))
    out = run_analysis(sweep, caplog)
    assert not (out / learned.FILE).exists()
    drawn = planned_figures(sweep)
    assert learned.FILE not in drawn and "heatmaps.png" in drawn
    assert all((out / file).is_file() for file in drawn)  # the rest is drawn


@pytest.mark.parametrize("damage", ["missing", "unreadable"])
def test_a_bad_cosines_file_costs_its_panel_only(tmp_path, caplog, damage):
    sweep = make_sweep(tmp_path, ["ica", "dict_learning"])
    broken = sweep / "method=ica,neurons=6,sparsity=0.1" / COSINES_FILE
    if damage == "missing":
        broken.unlink()
    else:
        broken.write_bytes(b"not parquet")
    out = run_analysis(sweep, caplog)
    assert (out / learned.FILE).is_file()
    ((title, image),) = shown_cosines(sweep).items()  # dict_learning's panel only
    assert title.startswith("method=dict_learning,")
    good = sweep / "method=dict_learning,neurons=6,sparsity=0.1"
    np.testing.assert_array_equal(image, learned.cosine_panel(good, "").M)
    warnings = [r.getMessage() for r in caplog.records if r.name == learned.log.name]
    assert any("no cosines for method=ica" in w for w in warnings)
    assert not any("dict_learning" in w for w in warnings)


# --- the chance level ----------------------------------------------------------------


def test_chance_level_of_each_learned_cell(tmp_path, caplog):
    """results.parquet: mcc_chance of random atoms of the cell's sizes, nonnegative
    codes for dict_learning (positive), signed for ica (neurons atoms); none for
    lstsq. capacity_mcc.png draws it, dotted, against neurons."""
    methods = ["ica", "dict_learning", "lstsq"]
    sweep = make_sweep(tmp_path, methods, neurons=(4, 6), sparsity=(0.1, 0.2))
    results = pd.read_parquet(run_analysis(sweep, caplog) / "results.parquet")
    assert results.columns.get_loc("mcc_chance") == results.columns.get_loc("mcc") + 2
    for cell in results.itertuples():
        if cell.method == "lstsq":
            assert np.isnan(cell.mcc_chance)
            continue
        atoms = cell.neurons if cell.method == "ica" else 8
        nonneg = cell.method == "dict_learning"
        expected = chance.mcc_chance(cell.neurons, 8, atoms, nonneg=nonneg)
        assert cell.mcc_chance == expected
    drawn = planned_figures(sweep)["capacity_mcc.png"]
    assert "Black dotted: chance level" in drawn.caption
    for ax in (ax for ax in drawn.draw().axes if ax.get_title()):
        method = ax.get_title().split("=")[1]
        rows = results[results["method"] == method].groupby("neurons")["mcc_chance"]
        (dotted,) = [line for line in ax.lines if line.get_linestyle() == ":"]
        expected = rows.mean().reset_index().to_numpy()  # equal at each sparsity
        np.testing.assert_array_equal(dotted.get_xydata(), expected)


def test_cells_at_chance_are_hatched_on_the_phase_diagram():
    """A hatched rectangle exactly over each cell whose mcc <= its chance level."""
    results = pd.DataFrame({
        "method": "ica", "neurons": [4, 4, 8, 8], "sparsity": [0.1, 0.2, 0.1, 0.2],
        "mcc": [0.30, 0.50, 0.20, 0.40], "mcc_chance": [0.35, 0.35, 0.25, 0.25],
        "success_rate": 0.0,
    })  # fmt: skip
    axes = aggregate.PlotAxes("sparsity", "neurons", ())
    fig = plots.phase_figure(results, axes, "mcc")
    (ax,) = [ax for ax in fig.axes if ax.get_title() or ax.patches]
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]

    def covers(patch, x, y):
        return patch.get_x() < x < patch.get_x() + patch.get_width() and (
            patch.get_y() < y < patch.get_y() + patch.get_height()
        )

    at_chance = [(0.1, 4), (0.1, 8)]  # mcc 0.30 <= 0.35 and 0.20 <= 0.25
    assert len(hatched) == len(at_chance)
    for x, y in at_chance:
        assert sum(covers(patch, x, y) for patch in hatched) == 1
    assert "hatched: mcc at or below chance" in fig._suptitle.get_text()
