"""The chance level of mcc (``analysis.chance``): what random atoms score, against
a brute-force matching of independent draws, exact limits, and a cell's files."""

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis import chance
from sweep.schema import COSINES_FILE, FEATURES_FILE


def brute_force_mcc(rng, m: int, n: int, n_atoms: int, nonneg: bool) -> float:
    """mcc of one draw by trying every one-to-one matching (n_atoms >= n)."""
    atoms, W = (rng.standard_normal((m, k)) for k in (n_atoms, n))
    C = (atoms / np.linalg.norm(atoms, axis=0)).T @ (W / np.linalg.norm(W, axis=0))
    score = np.clip(C, 0, None) if nonneg else np.abs(C)
    best = max(
        score[list(chosen), range(n)].sum()
        for chosen in itertools.permutations(range(n_atoms), n)
    )
    return best / n


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize(("m", "n", "n_atoms"), [(2, 4, 4), (3, 4, 5), (6, 5, 5)])
def test_chance_matches_a_brute_force_estimate(m, n, n_atoms, nonneg):
    """Within 4 standard errors of 1500 independent brute-force draws."""
    rng = np.random.default_rng(7)
    draws = [brute_force_mcc(rng, m, n, n_atoms, nonneg) for _ in range(1500)]
    se = np.std(draws) / np.sqrt(len(draws))
    level = chance.mcc_chance(m, n, n_atoms, nonneg=nonneg)
    assert abs(level - np.mean(draws)) < 4 * se + 0.008  # 4 of chance's own SE


def test_chance_in_one_dimension_is_exact():
    """With one neuron every cosine is +-1: |cos| matching scores 1 for each
    feature that gets an atom; signed matching only where the signs agree."""
    assert chance.mcc_chance(1, 10, 10, nonneg=False) == 1.0
    assert chance.mcc_chance(1, 10, 4, nonneg=False) == pytest.approx(0.4)
    assert 0.5 < chance.mcc_chance(1, 10, 10, nonneg=True) < 1.0


def test_chance_falls_with_dimension_and_clipping():
    signed = [chance.mcc_chance(m, 20, 20, nonneg=False) for m in (2, 5, 10, 20)]
    clipped = [chance.mcc_chance(m, 20, 20, nonneg=True) for m in (2, 5, 10, 20)]
    assert np.all(np.diff(signed) < 0) and np.all(np.diff(clipped) < 0)
    assert all(c < s for c, s in zip(clipped, signed, strict=True))
    assert chance.mcc_chance(5, 20, 5, nonneg=False) <= 5 / 20  # 15 unmatched


def write_cell(folder, C: np.ndarray, atom_of: list[int]) -> None:
    """cosines.parquet (trial 0, then a trial 1 to be ignored) and the matching."""
    feature, atom = np.indices(C.shape)
    cos = pd.DataFrame({"trial": 0, "atom": atom.ravel(), "feature": feature.ravel(),
                        "cos": C.ravel()})  # fmt: skip
    pd.concat([cos, cos.assign(trial=1, cos=-1.0)]).to_parquet(folder / COSINES_FILE)
    match = {"trial": 0, "feature": range(len(atom_of)), "matched_atom": atom_of}
    pd.DataFrame(match).to_parquet(folder / FEATURES_FILE)


@pytest.mark.parametrize(
    ("signs", "nonneg"), [([1, 1, 1], True), ([1, -1, 1], False)]
)  # fmt: skip
def test_a_cells_sizes_come_from_its_files(tmp_path, signs, nonneg):
    """n_atoms: the atoms in cosines.parquet; nonneg: no matched atom points away
    from its feature (an unmatched atom's negative cosine does not count)."""
    C = np.full((3, 4), -0.3)  # 3 features, 4 atoms; atom 3 unmatched
    atom_of = [2, 0, 1]
    for feature, (atom, sign) in enumerate(zip(atom_of, signs, strict=True)):
        C[feature, atom] = 0.9 * sign
    write_cell(tmp_path, C, atom_of)
    assert chance.learned_sizes(tmp_path) == (4, nonneg)
