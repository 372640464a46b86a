import numpy as np
import pytest

from sweep.metrics import feature_metrics, recovery_metrics, support_metrics


def _metrics(X, X_hat, W=None, importance=None, tol=0.01):
    W = np.eye(X.shape[1]) if W is None else W
    imp = np.ones(X.shape[1]) if importance is None else importance
    return recovery_metrics(X, X_hat, H=X @ W.T, W=W, importance=imp, success_tol=tol)


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
