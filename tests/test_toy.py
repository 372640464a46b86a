"""The toy models of Elhage et al. 2022: gradients, training, the paper's results."""

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from sweep import job, schema
from sweep.data import textbook
from sweep.models import (
    MODELS,
    AdamW,
    ModelSpec,
    toy_batch,
    toy_forward,
    toy_loss_and_grads,
    train_toy,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with threadpool_limits(1):
        yield


def trained(name, n, m, sparsity, *, decay=0.7, restarts=1, seed=0):
    rngs = [np.random.default_rng(seed)]
    params = {"importance_decay": decay, "restarts": restarts}
    spec = ModelSpec(n, m, rngs, features=[textbook(n, sparsity)])
    (model,) = MODELS[name](spec, **params)
    return model


def represented(model):
    return np.flatnonzero(np.linalg.norm(model.W, axis=0) > 0.5).tolist()


# --- the gradient and the optimiser ---------------------------------------------


@pytest.mark.parametrize("relu", [True, False])
def test_gradient_equals_central_differences(relu, rng):
    W = rng.normal(size=(3, 4, 9))
    b = rng.normal(size=(3, 9)) * 0.1
    X = rng.random((3, 32, 9)) * (rng.random((3, 32, 9)) < 0.4)
    importance = 0.8 ** np.arange(9)
    _, dW, db = toy_loss_and_grads(W, b, X, importance, relu=relu)
    for param, grad in ((W, dW), (b, db)):
        numeric = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + 1e-6
            up = toy_loss_and_grads(W, b, X, importance, relu=relu)[0][idx[0]]
            param[idx] = old - 1e-6
            down = toy_loss_and_grads(W, b, X, importance, relu=relu)[0][idx[0]]
            param[idx] = old
            numeric[idx] = (up - down) / 2e-6
        assert np.abs(numeric - grad).max() / np.abs(grad).max() < 1e-6


def test_loss_is_the_importance_weighted_error(rng):
    W = rng.normal(size=(1, 2, 3))
    b = rng.normal(size=(1, 3))
    X = rng.random((1, 5, 3))
    importance = np.array([1.0, 0.5, 0.25])
    loss, _, _ = toy_loss_and_grads(W, b, X, importance, relu=True)
    out = np.maximum(X[0] @ W[0].T @ W[0] + b[0], 0)
    assert loss[0] == pytest.approx(np.mean(((X[0] - out) ** 2) @ importance))


def test_adamw_matches_the_pytorch_algorithm_over_several_steps(rng):
    # torch.optim.AdamW, written out per element (its documented algorithm)
    lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
    p0 = rng.normal(size=5)
    grads = rng.normal(size=(6, 5))
    p, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        p = p - lr * wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    ours = p0.copy()
    adam = AdamW([ours], lr=lr, weight_decay=wd)
    for g in grads:
        adam.step([g])
    assert np.allclose(ours, p, rtol=1e-12, atol=1e-14)


def test_adamw_first_step_is_decoupled_decay_plus_sign_step():
    p = np.array([1.0, -2.0])
    AdamW([p], lr=0.1, weight_decay=0.5).step([np.array([3.0, -0.2])])
    # first step: m_hat / sqrt(v_hat) = sign(g); weight decay multiplies p by 1 - lr wd
    expected = np.array([1.0, -2.0]) * (1 - 0.05) - 0.1 * np.array([1.0, -1.0])
    assert np.allclose(p, expected, atol=1e-6)


def test_training_batches_follow_the_cell_distribution():
    rng = np.random.default_rng(0)
    X = toy_batch(rng, 20000, textbook(10, 0.2), dtype=np.float64)
    assert abs(np.mean(X > 0) - 0.2) < 0.01
    assert abs(X[X > 0].mean() - 0.5) < 0.01 and X.max() < 1


@pytest.mark.parametrize("p", [0.9, 0.7, 0.0316])
def test_textbook_batches_are_drawn_as_before(p):
    """The textbook distribution's training batches are what the toy models drew
    before the data keys existed, bit for bit: active when u < p compared in float32
    (a numpy float64 p would compare in float64 and flip the entries where u equals
    float32(p): first at batch 980 of 10,000 for p = 0.9)."""
    new, old = np.random.default_rng(3), np.random.default_rng(3)
    dist = textbook(20, p)
    for _ in range(1500):
        u = old.random((1024, 20), dtype=np.float32)
        before = np.where(u < p, u / np.float32(p), np.float32(0))
        assert np.array_equal(toy_batch(new, 1024, dist, dtype=np.float32), before)


def test_a_trial_does_not_depend_on_the_trials_beside_it():
    def train(seeds):
        rngs = [np.random.default_rng(s) for s in seeds]
        return train_toy(
            8, 3, rngs=rngs, features=[textbook(8, 0.2)] * len(rngs),
            importance=np.ones(8), relu=True,
            lr=1e-2, weight_decay=0.01, batch_size=64, steps=200,
        )[0]  # fmt: skip

    together = train([4, 7, 9])
    alone = train([7])
    assert np.array_equal(together[1], alone[0])
    assert not np.allclose(together[0], together[1])


# --- the paper's statements -------------------------------------------------------


def test_dense_data_represents_the_five_most_important_orthogonally():
    model = trained("toy_relu", 20, 5, sparsity=1.0)
    assert represented(model) == [0, 1, 2, 3, 4]
    W = model.W[:, :5]
    assert np.allclose(W.T @ W, np.eye(5), atol=0.05)


@pytest.mark.parametrize("sparsity", [1.0, 0.1, 0.01])
def test_linear_model_never_superposes(sparsity):
    model = trained("toy_linear", 20, 5, sparsity=sparsity)
    assert represented(model) == [0, 1, 2, 3, 4]
    W = model.W[:, :5]
    assert np.abs(W.T @ W - np.eye(5)).max() < 0.05


def test_sparse_relu_model_superposes():
    model = trained("toy_relu", 20, 5, sparsity=0.1)  # S = 0.9
    assert len(represented(model)) > 5


def test_five_features_in_two_dimensions_form_a_regular_pentagon():
    model = trained("toy_relu", 5, 2, sparsity=0.05, decay=1.0, restarts=3)
    assert len(represented(model)) == 5
    angles = np.sort(np.degrees(np.arctan2(model.W[1], model.W[0])) % 360)
    gaps = np.diff(np.r_[angles, angles[0] + 360])
    assert np.all(np.abs(gaps - 72) <= 3), gaps


# --- in a sweep: cached, shared, reported -------------------------------------


def toy_cell(**changes):
    model = {
        "name": "toy_relu", "importance_decay": 0.7, "lr": 1e-3, "weight_decay": 0.01,
        "batch_size": 256, "steps": 300, "restarts": 2,
    }  # fmt: skip
    base = {
        "seed": 0, "n_features": 12, "neurons": 4, "sparsity": 0.1, "k": None,
        "trials": 2, "n_samples": 50, "n_train": 20, "noise": 0.0,
        "success_tol": 0.01, "model": model, "method": {"name": "readout"},
    }  # fmt: skip
    return base | changes


def test_a_trained_model_is_cached_and_shared_by_methods(tmp_path):
    cache = tmp_path / "models"
    job.run(toy_cell(), tmp_path / "readout", cache_dir=cache)
    files = sorted(cache.rglob("trial*.npz"))
    assert [f.name for f in files] == ["trial0.npz", "trial1.npz"]
    stamps = [f.stat().st_mtime_ns for f in files]
    lstsq = toy_cell(method={"name": "lstsq"})
    job.run(lstsq, tmp_path / "lstsq", cache_dir=cache)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # loaded, not retrained
    weights = [pd.read_parquet(tmp_path / d / schema.WEIGHTS_FILE) for d in
               ("readout", "lstsq")]  # fmt: skip
    pd.testing.assert_frame_equal(*weights)
    # the cache gives what training gives
    job.run(lstsq, tmp_path / "fresh")
    fresh = pd.read_parquet(tmp_path / "fresh" / schema.WEIGHTS_FILE)
    pd.testing.assert_frame_equal(fresh, weights[1])


def test_trained_cell_reports_the_paper_summaries(tmp_path):
    status = job.run(toy_cell(n_samples=3000), tmp_path)
    assert status["status"] == "ok"
    metrics = pd.read_parquet(tmp_path / schema.METRICS_FILE)
    W = pd.read_parquet(tmp_path / schema.WEIGHTS_FILE)
    W0 = W[W.trial == 0].pivot(index="neuron", columns="feature", values="value")
    W0 = W0.to_numpy()
    norms = np.linalg.norm(W0, axis=0)
    row = metrics.iloc[0]
    assert row["n_represented"] == np.sum(norms > 0.5)
    assert row["dims_per_feature"] == pytest.approx(4 / np.sum(W0**2))
    assert row["train_loss"] > 0
    features = pd.read_parquet(tmp_path / schema.FEATURES_FILE)
    f0 = features[features.trial == 0]
    assert np.allclose(f0["norm"], norms)
    assert np.allclose(f0["importance"], 0.7 ** np.arange(12))
    # readout is the model's own decoder: on fresh data its weighted mse estimates
    # the loss the model was selected by
    assert row["weighted_mse"] == pytest.approx(row["train_loss"], rel=0.1)


def test_the_linear_models_readout_is_linear(tmp_path):
    linear = toy_cell(n_samples=3000)
    linear["model"] = linear["model"] | {"name": "toy_linear"}
    job.run(linear, tmp_path)
    row = pd.read_parquet(tmp_path / schema.METRICS_FILE).iloc[0]
    samples = pd.read_parquet(tmp_path / schema.SAMPLES_FILE)
    assert (samples["recovered"] < 0).any()  # no ReLU on the linear model's output
    assert row["weighted_mse"] == pytest.approx(row["train_loss"], rel=0.1)


def test_dead_columns_are_hidden_from_recovery_above_represented_tol(tmp_path):
    # a trained W keeps dead columns of norm ~0.01: OMP divides by them unless they
    # are hidden (represented_tol), and then blows up
    base = toy_cell(n_features=20, neurons=5, trials=1, n_samples=300)
    base["model"] = base["model"] | {"steps": 2000, "batch_size": 1024}
    base["method"] = {"name": "omp", "tol": 1e-6, "n_nonzero_coefs": None}
    nmse = {}
    for tol in (1e-3, 0.1):
        job.run(base | {"represented_tol": tol}, tmp_path / str(tol),
                cache_dir=tmp_path / "models")  # fmt: skip
        nmse[tol] = pd.read_parquet(tmp_path / str(tol) / schema.METRICS_FILE)["nmse"][
            0
        ]
    assert nmse[0.1] < 2 and nmse[1e-3] > 100


@pytest.mark.parametrize("name", ["toy_relu", "toy_linear"])
def test_readout_is_the_models_own_output_at_any_represented_tol(tmp_path, name):
    # readout is the model's decoder on its whole W: hiding columns from the other
    # methods (represented_tol) must not change it; a model loaded from the cache
    # decodes as the one trained (its output ReLU or none)
    base = toy_cell(n_features=8, neurons=3, trials=1, n_samples=40)
    base["model"] = base["model"] | {"name": name, "steps": 200}
    outputs = []
    for tol in (1e-3, 0.5, 0.95):  # 0.95: only the longest columns stay visible
        cell = tmp_path / str(tol)
        assert job.run(base | {"represented_tol": tol}, cell,
                       cache_dir=tmp_path / "models")["status"] == "ok"  # fmt: skip
        W = _table(cell / schema.WEIGHTS_FILE, "neuron", "feature", "value")
        b = pd.read_parquet(cell / schema.FEATURES_FILE).query("trial == 0")["b"]
        X = _table(cell / schema.SAMPLES_FILE, "sample", "feature", "true")
        X_hat = _table(cell / schema.SAMPLES_FILE, "sample", "feature", "recovered")
        _, _, out = toy_forward(W[None], b.to_numpy()[None], X[None],
                                relu=name == "toy_relu")  # fmt: skip
        np.testing.assert_allclose(X_hat, out[0], rtol=0, atol=1e-12)
        outputs.append(X_hat)
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])
    hidden = pd.read_parquet(tmp_path / "0.95" / schema.FEATURES_FILE)["norm"]
    assert (hidden < 0.95 * hidden.max()).any()  # some columns really were hidden


def _table(path, rows, columns, values) -> np.ndarray:
    """Trial 0 of a long-form result table as a matrix."""
    frame = pd.read_parquet(path).query("trial == 0")
    return frame.pivot(index=rows, columns=columns, values=values).to_numpy()


@pytest.mark.parametrize("correlation", ["pairs", "anti_pairs", "none"])
def test_correlated_features_are_orthogonal_and_anticorrelated_antipodal(correlation):
    """The paper's "Correlated and Anticorrelated Features", as experiment=
    paper_correlated trains them (n=4 in m=2, pairs (0, 1) and (2, 3)): features that
    always fire together end up orthogonal, a local orthogonal basis (and antipodal to
    the other pair); features that never fire together end up antipodal. The
    control: independent features also form two antipodal pairs, but which features
    pair up is chance, so some trial breaks each geometry."""
    from sweep.grid import expand_cells
    from sweep.pipeline import build_models

    lines = ["experiment=paper_correlated", "model=toy_relu", "sparsity=0.05",
             f"data.correlation={correlation}", "trials=4"]  # fmt: skip
    (cell,) = expand_cells(lines, multirun=False)
    orthogonal, antipodal = [], []
    for model in build_models(cell.flat):
        cos = _cosines(model.W)
        assert np.allclose(np.linalg.norm(model.W, axis=0), 1.0, atol=0.1)
        within = np.array([cos[0, 1], cos[2, 3]])
        across = min(cos[0, 2], cos[0, 3])  # the other pair
        orthogonal.append(np.abs(within).max() < 0.2 and across < -0.9)
        antipodal.append(within.max() < -0.95)
    if correlation == "pairs":
        assert all(orthogonal), orthogonal
    elif correlation == "anti_pairs":
        assert all(antipodal), antipodal
    else:
        assert not all(orthogonal) and not all(antipodal), (orthogonal, antipodal)


def _cosines(W):
    unit = W / np.linalg.norm(W, axis=0)
    return unit.T @ unit
