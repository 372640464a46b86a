import numpy as np
import pytest

from sweep.metrics import (
    MIN_FIRES,
    feature_metrics,
    label_metrics,
    latent_metrics,
    r_squared,
    recovery_metrics,
    selectivity,
    support_metrics,
    top_rows,
    units,
)
from sweep.thresholds import ACTIVE


def _metrics(X, X_hat, W=None, importance=None, tol=0.01):
    W = np.eye(X.shape[1]) if W is None else W
    imp = np.ones(X.shape[1]) if importance is None else importance
    H = X @ W.T
    found = recovery_metrics(X, X_hat, H=H, W=W, importance=imp, success_tol=tol)
    # a known dictionary's codes are X_hat (latent i: feature i), as pipeline.score
    identity = np.arange(X.shape[1])
    return found | latent_metrics(X_hat, X, identity, H=H, H_hat=X_hat @ W.T)


def test_perfect_recovery():
    X = np.array([[0.0, 0.5, 0.0], [0.2, 0.0, 0.9], [0.0, 0.0, 0.0]])
    m = _metrics(X, X.copy())
    for name in ("mse", "nmse", "rel_error"):
        assert m[name] == pytest.approx(0.0, abs=1e-12), name
    assert m["success_rate"] == 1.0  # the all-zero sample is not counted
    assert m["frac_zero"] == pytest.approx(1 / 3)
    assert m["support_f1"] == 1.0  # from counts: exact
    assert m["r2"] == pytest.approx(1.0, abs=1e-12)
    assert m["r2_h"] == pytest.approx(1.0, abs=1e-12)
    assert m["l0"] == pytest.approx(1.0)


def test_hand_computed_values():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    X_hat = np.array([[1.0, 0.5], [0.0, 0.0]])
    m = _metrics(X, X_hat, importance=np.array([1.0, 3.0]))
    assert m["mse"] == pytest.approx((0.25 + 1.0) / 4)
    assert m["nmse"] == pytest.approx(1.25 / 2)
    assert m["weighted_mse"] == pytest.approx((3 * 0.25 + 3 * 1.0) / 2)
    assert m["rel_error"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["success_rate"] == 0.0
    # one true positive, one false positive, one false negative
    assert m["support_precision"] == 0.5 and m["support_recall"] == 0.5


def test_success_tolerance_is_relative():
    X = np.array([[1.0, 1.0]])
    just_in = X + np.array([[0.01 * np.sqrt(2) * 0.99, 0.0]])
    just_out = X + np.array([[0.01 * np.sqrt(2) * 1.01, 0.0]])
    assert _metrics(X, just_in)["success_rate"] == 1.0
    assert _metrics(X, just_out)["success_rate"] == 0.0


def test_support_counts_pooled():
    truth = np.array([[True, False], [True, True]])
    pred = np.array([[True, True], [False, True]])
    s = support_metrics(truth, pred)
    assert s["support_precision"] == pytest.approx(2 / 3)
    assert s["support_recall"] == pytest.approx(2 / 3)
    assert s["support_f1"] == pytest.approx(2 / 3)


def test_dimensionality_orthogonal_antipodal_and_dead():
    # features 0, 1 antipodal on axis 0 (each half a dimension), feature 2 alone on
    # axis 1 (a whole dimension), feature 3 unrepresented
    W = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    X = np.zeros((3, 4))
    f = feature_metrics(X, X, W=W, b=np.zeros(4), importance=np.ones(4))
    assert f["dimensionality"].tolist() == pytest.approx([0.5, 0.5, 1.0, 0.0])
    assert f["superposition"].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert f["norm"].tolist() == pytest.approx([1.0, 1.0, 2.0, 0.0])
    # sum of dimensionalities equals the number of dimensions used (paper's D*)
    assert f["dimensionality"].sum() == pytest.approx(2.0)


def test_truth_and_prediction_use_one_activity_threshold():
    # an active feature below the threshold counts in neither: X_hat = X scores 1
    X = np.array([[0.5, 1e-4, 0.0], [0.0, 0.3, 5e-4]])
    m = _metrics(X, X.copy())
    assert m["support_recall"] == 1.0 and m["support_precision"] == 1.0
    assert m["l0"] == pytest.approx(1.0)  # 0.5 and 0.3 only
    # the control: a prediction that misses a clearly active feature loses recall
    missed = X.copy()
    missed[0, 0] = 0.0
    assert _metrics(X, missed)["support_recall"] == pytest.approx(0.5)


def _reference(X, X_hat, H, W, importance, tol):
    """The metrics of README's table, computed sample by sample."""
    err = X - X_hat
    live = [i for i in range(len(X)) if np.linalg.norm(X[i]) > 0]
    rel = [np.linalg.norm(err[i]) / np.linalg.norm(X[i]) for i in live]
    truth, pred = np.abs(X) > ACTIVE, np.abs(X_hat) > ACTIVE
    tp, fp, fn = (truth & pred).sum(), (~truth & pred).sum(), (truth & ~pred).sum()
    H_hat = X_hat @ W.T
    return {
        "mse": np.mean(err**2),
        "nmse": np.sum(err**2) / np.sum(X**2),
        "weighted_mse": np.mean([importance @ e**2 for e in err]),
        "rel_error": np.mean(rel),
        "success_rate": np.mean([r <= tol for r in rel]),
        "frac_zero": 1 - len(live) / len(X),
        "support_precision": tp / (tp + fp),
        "support_recall": tp / (tp + fn),
        "support_f1": 2 * tp / (2 * tp + fp + fn),
        "r2": 1 - np.sum(err**2) / np.sum((X - X.mean(axis=0)) ** 2),
        "r2_h": 1 - np.sum((H - H_hat) ** 2) / np.sum((H - H.mean(axis=0)) ** 2),
        "l0": np.mean(pred.sum(axis=1)),
    }


@pytest.mark.parametrize("seed", range(5))
def test_metrics_on_random_draws_equal_their_definitions(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(5, 30), rng.integers(2, 10)
    X = rng.random((60, n)) * (rng.random((60, n)) < rng.uniform(0.05, 0.5))
    noise = rng.normal(0, rng.uniform(1e-4, 0.3), X.shape)
    X_hat = X + noise * (rng.random(X.shape) < 0.5)
    W, importance = rng.normal(size=(m, n)), rng.uniform(0.1, 1, n)
    tol = rng.uniform(0.01, 0.5)
    got = _metrics(X, X_hat, W=W, importance=importance, tol=tol)
    want = _reference(X, X_hat, X @ W.T, W, importance, tol)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_r_squared_is_the_coefficient_of_determination(rng):
    from sklearn.metrics import r2_score

    H, H_hat = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    want = r2_score(H, H_hat, multioutput="variance_weighted")
    assert r_squared(H, H_hat) == pytest.approx(want, rel=1e-12)


def test_selectivity_of_hand_made_latents():
    """Four labels. Latent 0 fires on label 2 only (share 1, entropy 0); latent 1
    evenly on all (1/4, 1); latent 2 half on label 0, half on 1 with negative codes
    (mass is |code|: 1/2, log 2 / log 4 = 1/2); latent 3 never (NaN)."""
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    codes = np.zeros((8, 4))
    codes[labels == 2, 0] = [0.5, 1.5]
    codes[:, 1] = 0.7
    codes[labels == 0, 2] = -1.0
    codes[labels == 1, 2] = [-0.5, -1.5]
    labels, codes = np.tile(labels, 10), np.tile(codes, (10, 1))  # 80 samples
    share, entropy = selectivity(codes, labels)
    np.testing.assert_allclose(share[:3], [1.0, 0.25, 0.5])
    np.testing.assert_allclose(entropy[:3], [0.0, 1.0, 0.5], atol=1e-12)
    assert np.isnan(share[3]) and np.isnan(entropy[3])
    rare = np.zeros((80, 1))
    rare[: MIN_FIRES - 1] = 1.0  # too few firings to judge; one more: judged
    assert np.isnan(selectivity(rare, labels)[0][0])
    rare[MIN_FIRES - 1] = 1.0
    assert np.isfinite(selectivity(rare, labels)[0][0])
    one_label = selectivity(codes, np.zeros(80))  # nothing to be selective between
    assert np.isnan(one_label[0]).all() and np.isnan(one_label[1]).all()


def test_label_metrics_set_latents_against_the_neurons():
    """Two labels. The neurons each fire on both (top share 0.75 and 0.5); latent 0
    on label 0 only (1.0, above the best neuron), latent 1 like neuron 0 (0.75, not
    above), latent 2 never (left out of the means)."""
    labels = np.array([0, 0, 1, 1])
    H = np.array([[3.0, 1.0], [3.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    codes = np.array([[1.0, 3, 0], [1, 3, 0], [0, 1, 0], [0, 1, 0]])
    ten = (10, 1)  # each unit fires on enough samples to be judged
    got = label_metrics(np.tile(codes, ten), np.tile(H, ten), np.tile(labels, 10))
    assert got["neuron_top_share"] == pytest.approx((0.75 + 0.5) / 2)
    assert got["top_share"] == pytest.approx((1.0 + 0.75) / 2)
    assert got["above_best_neuron"] == 1
    assert got["label_entropy"] < got["neuron_label_entropy"]


def test_units_and_their_top_rows_of_hand_made_codes():
    """units: each unit's firing share, selectivity and top label (as text); top_rows:
    its most active samples by |code|, largest first, -1 / NaN once it stops firing."""
    labels = np.tile(["a", "b"], 10)  # 20 samples
    codes = np.zeros((20, 3))
    codes[labels == "b", 0] = np.arange(1, 11)  # unit 0: label b only, 1..10
    codes[:, 1] = -0.5  # unit 1: everywhere, negative
    codes[3, 2] = 2.0  # unit 2: once (too rare to judge)
    table = units(codes, labels)
    np.testing.assert_allclose(table["fire_rate"], [0.5, 1.0, 0.05])
    assert table["top_share"][0] == 1.0 and table["top_share"][1] == 0.5
    assert table["top_label"][0] == "b" and np.isnan(table["top_share"][2])
    assert table["top_label"][2] is None
    unlabelled = units(codes, None)
    assert unlabelled["top_share"].isna().all() and unlabelled["fire_rate"][1] == 1.0
    rows, values = top_rows(codes, 3)
    assert rows[:, 0].tolist() == [19, 17, 15] and values[:, 0].tolist() == [10, 9, 8]
    assert set(rows[:, 1]) <= set(range(20)) and (values[:, 1] == -0.5).all()
    assert rows[:, 2].tolist() == [3, -1, -1] and np.isnan(values[1:, 2]).all()
