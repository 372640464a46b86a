"""The bundled real network: an MLP on scikit-learn's digits, its hidden layer as H."""

import numpy as np
from conftest import run_cli

from sweep.command import validate_argv
from sweep.digits import digits_mlp
from sweep.grid import expand_cells
from sweep.pipeline import run_cell


def test_digits_mlp_classifies_and_its_hidden_layer_is_h():
    """Accuracy on held-out digits well above chance (0.1; measured 0.97-0.98 with
    16-64 units); H is the ReLU layer on disjoint train / held-out digits, with
    the held-out labels and images beside it."""
    net = digits_mlp(32, np.random.default_rng(0))
    assert net.accuracy > 0.9
    assert net.H.shape == (540, 32) and net.H_train.shape == (1257, 32)
    assert net.H.min() >= 0 and (net.H > 0).any(axis=0).sum() > 16
    assert net.labels.shape == (540,) and set(net.labels) == set(range(10))
    assert net.images.shape == (540, 8, 8) and net.images.max() <= 16
    same = digits_mlp(32, np.random.default_rng(0))
    other = digits_mlp(32, np.random.default_rng(1))
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


def test_a_digits_sweep_is_analysed_without_ground_truth(tmp_path):
    """Through the command line: the analysis draws the selectivity figures and
    none of those that need true features (heatmaps of X)."""
    out = run_cli("sweep", "-m", "model=digits_mlp", "method=sae", "neurons=8,16",
                  "n_features=16", "trials=1", "method.steps=300",
                  f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    drawn = {p.name for p in (tmp_path / "s" / "analysis").glob("*.png")}
    assert "phase_top_share.png" in drawn and "heatmaps.png" not in drawn
    assert "phase_nmse.png" not in drawn
    assert "Traceback" not in out.stderr and "no per-feature rows" not in out.stderr
