"""Compression models: W (n_neurons, n_features) and b (n_features,) for each trial."""

from dataclasses import dataclass, field

import numpy as np

from sweep.registry import Registry

MODELS = Registry("model")

# A column of W shorter than this fraction of the longest one is an unrepresented
# feature: recovered as 0, never normalised (DESIGN.md).
UNREPRESENTED = 1e-3


@dataclass
class Model:
    """One trial's compression H = X @ W.T; its own decoder is ReLU(W.T h + b)."""

    W: np.ndarray  # (n_neurons, n_features)
    b: np.ndarray  # (n_features,)
    importance: np.ndarray  # (n_features,), weights of the weighted mse
    info: dict = field(default_factory=dict)  # per-trial scalars for metrics.parquet


@MODELS.register("random")
def random_model(n_features: int, n_neurons: int, *, rng: np.random.Generator) -> Model:
    """Zero-mean Gaussian W with unit-norm columns, b = 0, uniform importance."""
    W = rng.standard_normal((n_neurons, n_features))
    W /= np.linalg.norm(W, axis=0)
    return Model(W=W, b=np.zeros(n_features), importance=np.ones(n_features))


def represented(W: np.ndarray) -> np.ndarray:
    """Boolean (n_features,): columns of W long enough to count as represented."""
    norms = np.linalg.norm(W, axis=0)
    return norms > UNREPRESENTED * norms.max(initial=0.0)
