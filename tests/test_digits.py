"""The bundled real network: an MLP on scikit-learn's digits, its hidden layer as H."""

import numpy as np
from conftest import run_cli
from sklearn.datasets import load_digits

from sweep import budget, digits, job, pipeline
from sweep.command import validate_argv
from sweep.digits import N_DIGITS, digits_mlp
from sweep.grid import expand_cells
from sweep.pipeline import run_cell
from sweep.schema import EXAMPLES_FILE, UNITS_FILE


def test_digits_mlp_classifies_and_its_hidden_layer_is_h():
    """Accuracy on held-out digits well above chance (0.1; measured 0.97-0.98 with
    16-64 units); H is the ReLU layer on disjoint train / held-out digits, with
    the held-out labels and images beside it."""
    net = digits_mlp(32, 300, np.random.default_rng(0))
    assert net.accuracy > 0.9
    assert net.H.shape == (300, 32) and net.H_train.shape == (N_DIGITS - 300, 32)
    assert net.H.min() >= 0 and (net.H > 0).any(axis=0).sum() > 16
    assert net.labels.shape == (300,) and set(net.labels) == set(range(10))
    assert net.images.shape == (300, 8, 8) and net.images.max() <= 16
    same = digits_mlp(32, 300, np.random.default_rng(0))
    other = digits_mlp(32, 300, np.random.default_rng(1))
    assert np.array_equal(net.H, same.H) and not np.array_equal(net.H, other.H)


def test_a_digits_cell_scores_latents_against_the_neurons():
    """model=digits_mlp: H is the hidden layer, no ground truth. The SAE's latents
    reconstruct it and are more selective for the digit than the neurons (measured,
    32 neurons, 64 latents, 3 trials: top share 0.50 against 0.24; 45 of 64 latents
    above the most selective neuron); the ground-truth metrics are absent."""
    rows = run_cell("model=digits_mlp", "method=sae", neurons=32, n_features=64,
                    trials=1)  # fmt: skip
    row = rows.iloc[0]
    assert row.accuracy > 0.9 and row.explained_variance > 0.8 and row.l0 > 1
    assert row.top_share > row.neuron_top_share + 0.1 and row.above_best_neuron > 5
    assert row.label_entropy < row.neuron_label_entropy
    assert np.isnan(row.nmse) and np.isnan(row.success_rate)


def test_a_network_takes_no_sparsity_and_only_learned_methods():
    """Sparsity draws nothing from a network: cells that differ only there are one
    cell. A method given a dictionary, or fresh samples, is refused in one line."""
    a, b = (expand_cells(["model=digits_mlp", "method=sae", f"sparsity={p}"], False)[0]
            for p in (0.01, 0.1))  # fmt: skip
    assert a.fingerprint == b.fingerprint and a.flat["sparsity"] is None
    for line, message in (
        ("method=omp", "method=omp with model=digits_mlp: no dictionary"),
        ("method.train_samples=1000", "allowed is null (a network's activations"),
    ):
        argv = ["model=digits_mlp", "method=sae", line] if "." in line else [
            "model=digits_mlp", line]  # fmt: skip
        errors = validate_argv(argv)
        assert len(errors) == 1 and message in errors[0], errors


def test_n_samples_digits_are_held_out_and_the_rest_train():
    """n_samples is the number of held-out digits (as for a user's file), n_train
    the rest; a split that would leave a class out of either side is refused."""
    (cell,) = expand_cells(["model=digits_mlp", "method=sae", "n_samples=500",
                            "neurons=8", "trials=1", "method.steps=10"], False)
    assert cell.flat["n_train"] is None  # not a key of the cell: its rows decide
    nets = pipeline.build_models(cell.flat)
    metrics, _ = pipeline.run_trials(cell.flat, nets)
    assert metrics[0]["train_rows"] == N_DIGITS - 500 and len(nets[0].H) == 500
    assert budget.with_train_rows(cell.flat)["n_train"] == N_DIGITS - 500
    for n in (9, N_DIGITS - 9):
        errors = validate_argv(["model=digits_mlp", "method=sae", f"n_samples={n}"])
        assert len(errors) == 1 and f"n_samples={n} (model=digits_mlp)" in errors[0]
    assert validate_argv(["model=digits_mlp", "method=sae", "n_samples=10"]) == []


def test_a_network_is_trained_once_per_neurons_and_trial(tmp_path, monkeypatch):
    """The digits MLP is cached in the sweep folder like a toy model: a cell of
    another dictionary size (or method) loads it, identical, instead of training."""
    trained = []

    def counted(*args):
        trained.append(args[:2])
        return real(*args)

    real = digits.digits_mlp
    monkeypatch.setattr(digits, "digits_mlp", counted)
    flats = [expand_cells(["model=digits_mlp", "method=sae", "neurons=8", "trials=2",
                           f"n_features={n}"], False)[0].flat for n in (16, 32)]
    first = job.build_models(flats[0], tmp_path)
    again = job.build_models(flats[1], tmp_path)
    assert len(trained) == 2  # one per trial, then loaded
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.H, b.H) and np.array_equal(a.H_train, b.H_train)
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.images, b.images)
        assert np.array_equal(a.rows, b.rows)
        assert a.accuracy == b.accuracy and a.converged == b.converged
    assert not np.array_equal(first[0].H, first[1].H)  # trials differ


def test_a_digits_cell_keeps_its_units_and_the_digits_that_activate_them():
    """units.parquet: every latent and neuron of every trial; examples.parquet: per
    unit of trial 0, the held-out digits of largest activation, largest first, each
    with its label and image (checked against the network's own H for neurons)."""
    (cell,) = expand_cells(["model=digits_mlp", "method=sae", "neurons=8",
                            "n_features=12", "trials=2", "method.steps=300"], False)
    nets = pipeline.build_models(cell.flat)
    metrics, tables = pipeline.run_trials(cell.flat, nets)
    units, examples = tables[UNITS_FILE], tables[EXAMPLES_FILE]
    assert len(units) == 2 * (12 + 8) and set(units["kind"]) == {"latent", "neuron"}
    assert metrics[0]["neuron_l0"] > 0 and (units["fire_rate"] <= 1).all()
    net = nets[0]
    for (kind, unit), rows in examples.groupby(["kind", "unit"]):
        acts = rows.sort_values("rank")["activation"].to_numpy()
        assert (np.diff(acts) <= 1e-12).all() and len(acts) <= pipeline.TOP_EXAMPLES
        row = rows["row"].to_numpy()  # the digit's index in scikit-learn's set
        where = {r: i for i, r in enumerate(net.rows)}
        place = np.array([where[r] for r in row])  # among the held-out digits
        if kind == "neuron":
            np.testing.assert_allclose(rows["activation"], net.H[place, unit])
        assert (rows["label"] == net.labels[place].astype(str)).all()
        images = np.stack(rows["image"].to_list()).reshape(-1, 8, 8)
        np.testing.assert_array_equal(images, load_digits().images[row])


def test_a_digits_sweep_is_analysed_without_ground_truth(tmp_path):
    """Through the command line: the analysis draws the selectivity figures and
    none of those that need true features (heatmaps of X)."""
    out = run_cli("sweep", "-m", "model=digits_mlp", "method=sae", "neurons=8,16",
                  "n_features=16", "trials=1", "method.steps=300",
                  f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    drawn = {p.name for p in (tmp_path / "s" / "analysis").glob("*.png")}
    assert "phase_top_share.png" in drawn and "heatmaps.png" not in drawn
    assert {"network_frontier.png", "selectivity.png", "top_inputs_sae.png"} <= drawn
    assert "frontier.png" not in drawn
    assert "phase_nmse.png" not in drawn
    assert "Traceback" not in out.stderr and "no per-feature rows" not in out.stderr
