"""Tests of ``analysis.toy``: the trained toy models' figures, on tiny real sweeps.

Sweeps are written cell by cell through ``sweep.job.run`` (short training), so the
files are exactly what a real sweep writes; rules are checked on hand-made arrays.
"""

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.quiver import Quiver

import analysis
from analysis import aggregate, per_feature, toy
from sweep import job
from sweep.schema import FEATURES_FILE, METRICS_FILE, WEIGHTS_FILE

try:
    from sweep_factory import planned_figures
except ImportError:  # tests/ imported as a package
    from tests.sweep_factory import planned_figures

TOY_MODEL = {
    "name": "toy_relu",
    "importance_decay": 0.7,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "batch_size": 64,
    "steps": 40,
    "restarts": 1,
}
BASE = {
    "seed": 0,
    "n_features": 5,
    "neurons": 2,
    "sparsity": 0.1,
    "k": None,
    "trials": 2,
    "n_samples": 20,
    "n_train": 20,
    "noise": 0.0,
    "success_tol": 0.01,
    "model": TOY_MODEL,
    "method": {"name": "readout"},
}
NOT, DEDICATED, SUPERPOSITION = range(3)  # indices into toy.OUTCOMES


def make_toy_sweep(root: Path, grid: dict, **fixed) -> Path:
    """A sweep folder over ``grid`` (key -> values; "model.x" sets a model key),
    every cell run by ``job.run`` with the shared model cache; returns its path."""
    sweep = root / "sweep"
    for values in itertools.product(*grid.values()):
        keys = dict(zip(grid, values, strict=True)) | fixed
        cfg = BASE | {k: v for k, v in keys.items() if "." not in k}
        model = {k.split(".", 1)[1]: v for k, v in keys.items() if "." in k}
        model |= {"name": keys.get("model", TOY_MODEL["name"])}
        cfg["model"] = (TOY_MODEL | model) if model["name"] != "random" else model
        name = ",".join(f"{k}={v}" for k, v in sorted(keys.items()))
        status = job.run(cfg, sweep / name, cell=name, cache_dir=sweep / "models")
        assert status["status"] == "ok", status["error"]
    return sweep


def toy_figures(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("toy_*.png"))


def grams(fig) -> list[np.ndarray]:
    """The W^T W images of a toy_weights figure, left to right."""
    return [ax.images[0].get_array() for ax in fig.axes if ax.images]


def norm_bars(fig) -> list[list[float]]:
    """The ||W_i|| bar lengths of a toy_weights figure, a list per column."""
    bars = [ax for ax in fig.axes if ax.get_xlabel() == r"$\|W_i\|$"]
    return [[bar.get_width() for bar in ax.patches] for ax in bars]


def arrows(fig) -> list[np.ndarray]:
    """The arrows of a toy_directions figure, (2, n_features) per panel."""
    found = [c for ax in fig.axes for c in ax.collections if isinstance(c, Quiver)]
    return [np.stack([quiver.U, quiver.V]) for quiver in found]


def run_analysis(sweep: Path, caplog) -> Path:
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    return out


# --- pure rules ----------------------------------------------------------------------


def test_classify_gives_all_three_outcomes():
    norms = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 0.9], [0.2, 0.3], [0.6, 0.5]])
    expected = [NOT, DEDICATED, SUPERPOSITION, NOT, NOT]  # 0.5 itself is not > 0.5
    np.testing.assert_array_equal(toy.classify(norms), expected)
    assert [toy.OUTCOMES[c] for c in expected[:3]] == [
        "not represented",
        "dedicated dimension",
        "superposition",
    ]


@pytest.mark.parametrize(
    ("codes", "losses", "winner"),
    [
        ([NOT, SUPERPOSITION, SUPERPOSITION], [0.1, 0.5, 0.5], SUPERPOSITION),
        ([NOT, SUPERPOSITION], [0.5, 0.1], SUPERPOSITION),  # tie: lowest loss
        ([NOT, SUPERPOSITION], [0.1, 0.5], NOT),
        ([NOT, DEDICATED, SUPERPOSITION], [np.nan, 0.3, 0.2], SUPERPOSITION),
        ([DEDICATED, NOT], [np.nan, np.nan], DEDICATED),  # no losses: first trial
    ],
)
def test_majority_and_its_tie_break(codes, losses, winner):
    assert toy.majority(np.array(codes), np.array(losses)) == winner


def test_cell_outcome_reads_norms_and_losses(tmp_path):
    norms = [[1.0, 0.1], [1.0, 0.9], [1.1, 0.8]]  # not, superposition twice
    trial, feature = np.divmod(np.arange(6), 2)
    feats = pd.DataFrame({"trial": trial, "feature": feature, "norm": np.ravel(norms)})
    feats.to_parquet(tmp_path / FEATURES_FILE)
    losses = pd.DataFrame({"trial": [0, 1, 2], "train_loss": [0.01, 0.2, 0.3]})
    losses.to_parquet(tmp_path / METRICS_FILE)
    assert toy.cell_outcome(tmp_path) == (SUPERPOSITION, 2, 3)


def test_gram_is_w_transpose_w(rng):
    W = rng.standard_normal((3, 7))
    G = toy.gram(W)
    assert G.shape == (7, 7)
    for i, j in itertools.product(range(7), repeat=2):
        assert G[i, j] == pytest.approx(sum(W[k, i] * W[k, j] for k in range(3)))


def test_figures_build_from_hand_made_arrays(rng):
    W = rng.standard_normal((2, 5))
    column = toy.WeightsColumn("S=0.9", toy.gram(W), np.linalg.norm(W, axis=0), W[0])
    fig = toy.weights_figure([column] * 3, what="w")
    np.testing.assert_array_equal(grams(fig), [W.T @ W] * 3)
    np.testing.assert_array_equal(norm_bars(fig), [np.linalg.norm(W, axis=0)] * 3)
    fig = toy.directions_figure([("S=0.9", W)], what="d")
    np.testing.assert_array_equal(arrows(fig), [W])
    empty = toy.weights_figure([], what="nothing readable")
    assert empty.axes[0].texts[0].get_text() == "no trained weights could be read"


# --- from a real sweep's files -------------------------------------------------------


def test_weights_are_read_exactly_from_weights_parquet(tmp_path):
    sweep = make_toy_sweep(tmp_path, {"sparsity": (0.1,)}, n_features=6, neurons=3)
    (cell,) = [p for p in sweep.iterdir() if (p / WEIGHTS_FILE).exists()]
    long = pd.read_parquet(cell / WEIGHTS_FILE)
    long = long[long["trial"] == 1]
    W = np.zeros((3, 6))
    for row in long.itertuples():
        W[row.neuron, row.feature] = row.value
    np.testing.assert_array_equal(toy.load_weights(cell, trial=1), W)
    # W^T W by BLAS on arrays of other memory layouts: equal to rounding only
    G = toy.gram(toy.load_weights(cell, trial=1))
    np.testing.assert_allclose(G, W.T @ W, rtol=1e-12, atol=1e-12)
    column = toy.weights_column(cell, "t")  # trial 0
    trial0 = toy.load_weights(cell, trial=0)
    np.testing.assert_allclose(column.G, trial0.T @ trial0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(column.norms, np.linalg.norm(trial0, axis=0))


def test_one_cell_per_model_configuration(tmp_path):
    grid = {"sparsity": (0.3, 0.03), "method": ("readout", "lstsq")}
    sweep = tmp_path / "sweep"
    for values in itertools.product(*grid.values()):
        keys = dict(zip(grid, values, strict=True))
        cfg = BASE | {"sparsity": keys["sparsity"], "method": {"name": keys["method"]}}
        job.run(cfg, sweep / f"m={keys['method']},s={keys['sparsity']}")
    results = aggregate.aggregate_trials(aggregate.load_sweep(sweep)[0])
    cells = toy.trained_cells(sweep, results)
    assert len(results) == 4 and len(cells) == 2  # methods share one W
    assert sorted(cells["S"]) == pytest.approx([0.7, 0.97])  # S = 1 - sparsity
    np.testing.assert_allclose(cells[toy.INV_DENSITY], 1 / (1 - cells["S"]))


def test_sparsity_sweep_of_two_neurons_draws_directions(tmp_path, caplog):
    grid = {"sparsity": (1, 0.1), "model": ("toy_relu", "toy_linear")}
    sweep = make_toy_sweep(tmp_path, grid)
    out = run_analysis(sweep, caplog)
    assert toy_figures(out) == [
        "toy_dimensionality.png",
        "toy_directions.png",
        "toy_represented.png",
        "toy_weights_model=toy_linear.png",
        "toy_weights_model=toy_relu.png",
    ]
    drawn = planned_figures(sweep)
    assert toy_figures(out) == sorted(f for f in drawn if f.startswith("toy_"))
    results = pd.read_parquet(out / "results.parquet")
    cells = toy.trained_cells(sweep, results).sort_values(["model", "S"])
    W = {cell.cell_dir: toy.load_weights(sweep / cell.cell_dir) for cell in
         cells.itertuples()}  # fmt: skip
    # a panel per cell, sorted by model then S: the columns of its trial-0 W
    directions = arrows(drawn["toy_directions.png"].draw())
    np.testing.assert_array_equal(directions, list(W.values()))
    for model, rows in cells.groupby("model"):  # a column per S: W^T W, ||W_i||
        fig = drawn[f"toy_weights_model={model}.png"].draw()
        shown = [W[cell_dir] for cell_dir in rows["cell_dir"]]
        np.testing.assert_allclose(grams(fig), [w.T @ w for w in shown], atol=1e-12)
        norms = [np.linalg.norm(w, axis=0) for w in shown]
        np.testing.assert_allclose(norm_bars(fig), norms, rtol=1e-6)


def test_no_directions_without_two_neurons(tmp_path, caplog):
    out = run_analysis(
        make_toy_sweep(tmp_path, {"sparsity": (1, 0.1)}, neurons=3), caplog
    )
    assert "toy_directions.png" not in toy_figures(out)
    assert "toy_represented.png" in toy_figures(out)


def test_phase_change_for_two_features_in_one_neuron(tmp_path, caplog):
    grid = {"model.importance_decay": (0.3, 3.0), "sparsity": (1, 0.1)}
    sweep = make_toy_sweep(tmp_path, grid, n_features=2, neurons=1, trials=3)
    out = run_analysis(sweep, caplog)
    assert "toy_phase_change.png" in toy_figures(out)
    assert "toy_directions.png" not in toy_figures(out)
    weights = [n for n in toy_figures(out) if n.startswith("toy_weights_")]
    assert len(weights) == 2  # one per importance
    results = pd.read_parquet(out / "results.parquet")
    cells = toy.phase_cells(toy.trained_cells(sweep, results))
    table = toy.phase_table(sweep, cells)
    assert len(table) == 4 and (table["n_trials"] == 3).all()
    for cell, found in zip(cells.itertuples(), table.itertuples(), strict=True):
        feats = toy.load_features(sweep / cell.cell_dir)
        norms = feats.pivot(index="trial", columns="feature", values="norm")
        losses = pd.read_parquet(sweep / cell.cell_dir / METRICS_FILE)["train_loss"]
        codes = toy.classify(norms.to_numpy())
        assert found.density == pytest.approx(1 - cell.S)
        assert found.outcome == toy.majority(codes, losses.to_numpy())
        assert found.n_win == (codes == found.outcome).sum()


@pytest.mark.parametrize(
    ("grid", "fixed"),
    [
        ({"sparsity": (1, 0.1)}, {"n_features": 2, "neurons": 1}),  # no importance
        ({"model.importance_decay": (0.3, 3.0)}, {"n_features": 2, "neurons": 1}),
        (
            {"model.importance_decay": (0.3, 3.0), "sparsity": (1, 0.1)},
            {"n_features": 3, "neurons": 1},
        ),
    ],
)
def test_no_phase_change_otherwise(tmp_path, caplog, grid, fixed):
    out = run_analysis(make_toy_sweep(tmp_path, grid, **fixed), caplog)
    assert "toy_phase_change.png" not in toy_figures(out)


def test_random_model_sweep_writes_no_toy_figure(tmp_path, caplog):
    grid = {"sparsity": (0.3, 0.1), "neurons": (2, 3)}
    sweep = make_toy_sweep(tmp_path, grid, model="random")
    assert not list(sweep.rglob(WEIGHTS_FILE))
    out = run_analysis(sweep, caplog)
    assert toy_figures(out) == []
    assert (out / "phase_success_rate.png").exists()  # the rest is drawn


def test_unreadable_weights_are_logged_never_raised(tmp_path, caplog):
    sweep = make_toy_sweep(tmp_path, {"sparsity": (1, 0.1)})
    broken = next(sweep.rglob(WEIGHTS_FILE))
    broken.write_bytes(b"not parquet")
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    assert str(broken.parent.name) in caplog.text
    assert toy_figures(out) == [
        "toy_dimensionality.png",
        "toy_directions.png",
        "toy_represented.png",
        "toy_weights_model=toy_relu.png",
    ]


def test_the_papers_figures_lead_and_empty_figures_are_not_drawn(tmp_path, caplog):
    """A toy-model sweep's page starts with its toy_* figures; a metric equal in
    every cell (readout never recovers a sample to 1 %) gets no figure, and with
    one swept axis no capacity_* plot repeats the phase_* lines."""
    sweep = make_toy_sweep(tmp_path, {"sparsity": (1, 0.1), "model": ("toy_relu",
                                      "toy_linear")})  # fmt: skip
    out = run_analysis(sweep, caplog)
    drawn = list(planned_figures(sweep))
    n_toy = len(toy_figures(out))
    assert n_toy == 5 and all(f.startswith("toy_") for f in drawn[:n_toy])
    assert not any(f.startswith("toy_") for f in drawn[n_toy:])
    results = pd.read_parquet(out / "results.parquet")
    assert (results["success_rate"] == 0).all()  # the premise
    assert "phase_success_rate.png" not in drawn and "phase_nmse.png" in drawn
    assert not [f for f in drawn if f.startswith("capacity_")]
    page = (out / "report.html").read_text()
    assert "success_rate is 0 in every cell" in page
    assert page.index("toy_weights_model=toy_linear.png") < page.index("phase_nmse.png")


def test_per_feature_view_of_a_trained_model(tmp_path, caplog):
    """Importance, norm and superposition all vary between a trained model's
    features: a column each, every feature of every trial a point."""
    sweep = make_toy_sweep(tmp_path, {"sparsity": (0.1,)}, trials=2)
    out = run_analysis(sweep, caplog)
    features = analysis.load(sweep).features
    assert (out / "features.png").is_file()
    fig = planned_figures(sweep)["features.png"].draw()
    axs = [ax for ax in fig.axes if ax.collections]
    assert [ax.get_xlabel() for ax in axs] == list(per_feature.QUANTITIES.values())
    error = np.clip(features["recovery_mse"], 1e-12, None)
    for ax, key in zip(axs, per_feature.QUANTITIES, strict=True):
        (points,) = ax.collections
        expected = np.stack([features[key], error], axis=1)
        np.testing.assert_array_equal(points.get_offsets(), expected)
    assert axs[0].get_xscale() == "log"  # importance 0.7^i: geometric
