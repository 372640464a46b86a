"""The chance level of ``mcc``: what random atoms score against the true directions.

In few dimensions random directions already have large cosines, so a learned
dictionary's mcc means something only above what random atoms of the same sizes
score, matched as ``sweep/align.py`` matches (one-to-one, Hungarian; |cosine|, or the
signed cosine clipped at 0 for nonnegative codes; an unmatched feature counts 0).
The true directions are drawn as for ``model=random``: Gaussian, unit columns.

A learned cell's sizes come from its files: ``n_atoms`` from cosines.parquet, and
whether its codes are nonnegative from the signs there: an atom matched by |cosine|
points away from its feature about half the time, one matched by signed cosine never.
"""

from functools import cache
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from sweep import folders
from sweep.schema import COSINES_FILE, FEATURES_FILE

CHANCE = "mcc_chance"  # the column results.parquet gains for learned cells
FEATURE_DRAWS = 20_000  # features matched over all draws: standard error ~0.002
MAX_DRAWS = 2000


@cache
def mcc_chance(n_neurons: int, n_features: int, n_atoms: int, *, nonneg: bool) -> float:
    """Expected mcc of n_atoms random unit atoms against n_features random unit
    directions in n_neurons dimensions; a fixed seed per sizes (reproducible)."""
    rng = np.random.default_rng([n_neurons, n_features, n_atoms, int(nonneg)])
    draws = int(np.clip(FEATURE_DRAWS // n_features, 2, MAX_DRAWS))
    scores = []
    for _ in range(draws):
        atoms, W = (_unit(rng.standard_normal((n_neurons, k))) for k in
                    (n_atoms, n_features))  # fmt: skip
        C = atoms.T @ W  # (n_atoms, n_features)
        score = np.clip(C, 0.0, None) if nonneg else np.abs(C)
        rows, cols = linear_sum_assignment(score, maximize=True)
        scores.append(score[rows, cols].sum() / n_features)
    return float(np.mean(scores))


def _unit(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=0)


def learned_sizes(cell_dir: Path) -> tuple[int, bool]:
    """(n_atoms, nonneg) of a learned cell, from trial 0 of cosines.parquet and the
    matching in features.parquet (nonneg: no matched atom has a negative cosine)."""
    cos = folders.read_table(Path(cell_dir) / COSINES_FILE)
    cos = cos[cos["trial"] == cos["trial"].min()]
    columns = ["trial", "feature", "matched_atom"]
    match = folders.read_table(Path(cell_dir) / FEATURES_FILE, columns=columns)
    match = match[match["matched_atom"] >= 0].rename(columns={"matched_atom": "atom"})
    pairs = match.merge(cos, on=["trial", "feature", "atom"])
    return int(cos["atom"].nunique()), bool((pairs["cos"] >= 0).all())
