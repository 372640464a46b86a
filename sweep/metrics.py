"""Pure metric functions: how well X_hat recovers X (definitions in README.md)."""

import numpy as np
import pandas as pd

from sweep.thresholds import ACTIVE


def recovery_metrics(
    X: np.ndarray,
    X_hat: np.ndarray,
    *,
    H: np.ndarray,
    W: np.ndarray,
    importance: np.ndarray,
    success_tol: float,
) -> dict[str, float]:
    """Per-trial metrics of X_hat against X, both (n_samples, n_features).

    H (n_samples, n_neurons) is what the method saw, W (n_neurons, n_features).
    ``success_rate`` and ``rel_error`` are over the samples with x != 0 only:
    an all-zero sample is neither a success nor a failure (see ``frac_zero``).
    """
    err = X - X_hat
    sq = np.sum(err**2)
    x_norm = np.linalg.norm(X, axis=1)
    err_norm = np.linalg.norm(err, axis=1)
    live = x_norm > 0
    return {
        "mse": float(np.mean(err**2)),
        "nmse": _ratio(sq, np.sum(X**2)),
        "weighted_mse": float(np.mean(err**2 @ importance)),
        "rel_error": _mean(err_norm[live] / x_norm[live]),
        "success_rate": _mean(err_norm[live] <= success_tol * x_norm[live]),
        "frac_zero": float(np.mean(~live)),
        **support_metrics(np.abs(X) > ACTIVE, np.abs(X_hat) > ACTIVE),
        "r2": 1.0 - _ratio(sq, np.sum((X - X.mean(axis=0)) ** 2)),
        "r2_h": r_squared(H, X_hat @ W.T),
        "l0": float(np.mean(np.sum(np.abs(X_hat) > ACTIVE, axis=1))),
        "true_l0": float(np.mean(np.sum(np.abs(X) > ACTIVE, axis=1))),
    }


def coherence(W: np.ndarray, block: int = 2048) -> float:
    """The dictionary's overlap: the mean over features of the largest |cos| between
    its column of W (n_neurons, n_features) and another's (a zero column: 0).
    Computed in blocks of features: memory O(block x n_features)."""
    norms = np.linalg.norm(W, axis=0)
    unit = W / np.where(norms > 0, norms, 1.0)
    n = W.shape[1]
    if n < 2:
        return float("nan")
    largest = np.empty(n)
    for start in range(0, n, block):
        cos = np.abs(unit[:, start : start + block].T @ unit)
        rows = np.arange(cos.shape[0])
        cos[rows, start + rows] = 0.0  # not with itself
        largest[start : start + block] = cos.max(axis=1)
    return float(largest.mean())


def r_squared(H: np.ndarray, H_hat: np.ndarray) -> float:
    """The coefficient of determination 1 - ||H - H_hat||^2 / ||H - mean(H)||^2 of
    H, H_hat (n_samples, n_neurons): variance-weighted over neurons, as sklearn's
    ``r2_score(..., multioutput="variance_weighted")``."""
    return 1.0 - _ratio(np.sum((H - H_hat) ** 2), np.sum((H - H.mean(axis=0)) ** 2))


def support_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of the predicted support, counts pooled over samples."""
    tp = np.sum(truth & predicted)
    fp = np.sum(~truth & predicted)
    fn = np.sum(truth & ~predicted)
    return {
        "support_precision": _ratio(tp, tp + fp),
        "support_recall": _ratio(tp, tp + fn),
        "support_f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def feature_metrics(
    X: np.ndarray,
    X_hat: np.ndarray,
    *,
    W: np.ndarray,
    b: np.ndarray,
    importance: np.ndarray,
) -> pd.DataFrame:
    """One row per feature: norm, b, importance, dimensionality, superposition, mse.

    Dimensionality D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 (Elhage et al. 2022,
    section "Feature Dimensionality"; 0 for a zero column); superposition is
    sum_{j != i} (W_i_hat . W_j)^2.
    """
    norms = np.linalg.norm(W, axis=0)
    safe = np.where(norms > 0, norms, 1.0)
    overlaps = ((W / safe).T @ W) ** 2  # (n, n): (W_i_hat . W_j)^2
    total = overlaps.sum(axis=1)
    dims = np.divide(norms**2, total, out=np.zeros_like(total), where=total > 0)
    return pd.DataFrame(
        {
            "feature": np.arange(W.shape[1]),
            "norm": norms,
            "b": b,
            "importance": importance,
            "dimensionality": dims,
            "superposition": total - np.diag(overlaps),
            "recovery_mse": np.mean((X - X_hat) ** 2, axis=0),
        }
    )


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")
