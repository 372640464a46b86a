"""Synthetic sparse features: each active feature is uniform on [0, 1]."""

import numpy as np


def sparse_features(
    n_samples: int,
    n_features: int,
    *,
    rng: np.random.Generator,
    sparsity: float | None = None,
    k: int | None = None,
) -> np.ndarray:
    """Draw X, shape (n_samples, n_features).

    With ``sparsity`` each feature is active independently with that probability;
    with ``k`` exactly k features, chosen uniformly, are active in every sample.
    """
    if (sparsity is None) == (k is None):
        raise ValueError("give exactly one of sparsity or k")
    if k is not None:
        # The k smallest of n uniform keys pick a uniformly random k-subset per row.
        keys = rng.random((n_samples, n_features))
        active = np.argpartition(keys, k - 1, axis=1)[:, :k] if k else keys[:, :0]
        mask = np.zeros((n_samples, n_features), dtype=bool)
        np.put_along_axis(mask, active.astype(np.intp), True, axis=1)
    else:
        mask = rng.random((n_samples, n_features)) < sparsity
    return mask * rng.random((n_samples, n_features))


def add_noise(H: np.ndarray, *, noise: float, rng: np.random.Generator) -> np.ndarray:
    """H (n_samples, n_neurons) plus Gaussian noise of std ``noise`` x RMS(H)."""
    if noise == 0:
        return H
    rms = np.sqrt(np.mean(H**2))
    return H + noise * rms * rng.standard_normal(H.shape)
