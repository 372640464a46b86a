import numpy as np
import pytest

from sweep.align import align, cosines, match
from sweep.models import random_model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuted_flipped_rescaled_w_is_matched_exactly(seed):
    rng = np.random.default_rng(seed)
    W = random_model(15, 8, rng=rng).W
    perm = rng.permutation(15)
    signs = rng.choice([-1.0, 1.0], size=15)
    scales = rng.uniform(0.2, 5.0, size=15)
    atoms = W[:, perm] * signs * scales  # atom j is feature perm[j]
    X = rng.random((40, 15)) * (rng.random((40, 15)) < 0.3)
    codes = X[:, perm] / (signs * scales)  # so that codes @ atoms.T == X @ W.T
    H = X @ W.T
    found = align(atoms, codes, W, H=H, nonneg=False)
    assert found.info["mcc"] == pytest.approx(1.0)
    assert found.info["n_recovered"] == 15
    assert np.array_equal(found.atom_of[perm], np.arange(15))
    assert np.allclose(found.X_hat, X)  # rescaled by the dictionaries alone
    assert found.info["r2_h"] == pytest.approx(1.0)


def test_nonnegative_codes_cannot_use_a_flipped_atom():
    W = np.eye(3)
    atoms = -np.eye(3)  # every atom points away from its feature
    codes = np.ones((4, 3))
    signed = align(atoms, codes, W, H=codes @ atoms.T, nonneg=True)
    unsigned = align(atoms, codes, W, H=codes @ atoms.T, nonneg=False)
    assert signed.info["mcc"] == 0 and signed.info["n_recovered"] == 0
    assert np.all(signed.atom_of == -1) and np.all(signed.X_hat == 0)
    assert signed.info["mmcs"] == pytest.approx(1.0)  # mmcs: max |cos|, any sign
    assert unsigned.info["mcc"] == pytest.approx(1.0)


def test_fewer_atoms_than_features_leave_features_unmatched():
    rng = np.random.default_rng(0)
    W = random_model(10, 4, rng=rng).W
    atoms = W[:, :3]
    found = align(atoms, rng.random((5, 3)), W, H=rng.random((5, 4)), nonneg=False)
    assert (found.atom_of >= 0).sum() == 3
    assert np.all(found.X_hat[:, found.atom_of < 0] == 0)
    assert found.info["mcc"] <= 0.3 + 1e-12
    assert found.info["n_recovered"] == 3


def test_mmcs_mcc_dead_latents_by_hand():
    W = np.eye(2)
    atoms = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # two atoms on feature 0
    codes = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # atoms 1 and 2 never fire
    found = align(atoms, codes, W, H=codes @ atoms.T, nonneg=True)
    assert found.info["mmcs"] == pytest.approx(1.0)
    assert found.info["mcc"] == pytest.approx(1.0)
    assert found.info["dead_latents"] == 2


def test_zero_feature_columns_are_never_divided_by():
    W = np.array([[1.0, 0.0], [0.0, 0.0]])
    C = cosines(np.eye(2), W)
    np.testing.assert_allclose(C, [[1.0, 0.0], [0.0, 0.0]], rtol=0, atol=1e-12)
    found = align(np.eye(2), np.ones((3, 2)), W, H=np.ones((3, 2)), nonneg=False)
    assert np.all(np.isfinite(found.X_hat)) and np.all(found.X_hat[:, 1] == 0)


def test_match_maximises_the_total():
    score = np.array([[0.9, 0.8], [0.85, 0.1]])
    atom_of, matched = match(score)
    # greedy would give feature 0 atom 0 (0.9) and feature 1 atom 1 (0.1): 1.0 total
    assert atom_of.tolist() == [1, 0] and matched.sum() == pytest.approx(1.65)


def test_nonnegative_matching_maximises_what_mcc_counts():
    # cosines (atoms x features) [[0.32, -0.95], [0.95, 0.30]]: the signed sum prefers
    # atom 0 -> feature 0, atom 1 -> feature 1 (0.62 against 0.01), but an atom
    # pointing away recovers nothing, and what mcc counts (clipped at 0) prefers
    # atom 1 -> feature 0 (0.95 against 0.62)
    W = np.eye(2)
    atoms = np.array([[0.3, 0.95], [-0.9, 0.3]])
    atoms /= np.linalg.norm(atoms, axis=0)
    C = cosines(atoms, W)
    found = align(atoms, np.ones((2, 2)), W, H=np.ones((2, 2)), nonneg=True)
    assert found.atom_of.tolist() == [1, -1]  # feature 1: no atom points its way
    assert found.info["mcc"] == pytest.approx(C[1, 0] / 2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("nonneg", [False, True])
def test_mcc_is_the_best_one_to_one_matching_on_random_draws(seed, nonneg):
    # against brute force over every assignment of atoms to features
    from itertools import permutations

    rng = np.random.default_rng(seed)
    n, k, m = 4, int(rng.integers(2, 6)), 3
    W, atoms = rng.normal(size=(m, n)), rng.normal(size=(m, k))
    C = cosines(atoms, W)
    score = np.clip(C, 0, None) if nonneg else np.abs(C)
    best = 0.0
    for chosen in permutations(range(k), min(k, n)):
        for features in permutations(range(n), len(chosen)):
            pairs = zip(chosen, features, strict=True)
            best = max(best, sum(score[a, f] for a, f in pairs) / n)
    found = align(atoms, np.ones((2, k)), W, H=np.ones((2, m)), nonneg=nonneg)
    assert found.info["mcc"] == pytest.approx(best, rel=1e-12)
    assert found.info["mmcs"] == pytest.approx(np.abs(C).max(axis=0).mean())


def test_the_fields_dictionary_metrics_on_hand_made_dictionaries():
    """mcc_matched (mean |cos| over the min(atoms, features) Hungarian pairs) and
    uniqueness (distinct best-matched features / atoms), SAELens' definitions, where
    each value is known: an exact dictionary; a narrower one (mcc_matched 1 where our
    mcc, unmatched features counting 0, is 0.5); three copies of one feature."""
    from sweep.align import field_metrics

    W = np.eye(4)
    H = np.zeros((1, 4))
    exact = align(W, np.zeros((1, 4)), W, H=H, nonneg=False).info
    assert exact["mcc_matched"] == exact["uniqueness"] == exact["mcc"] == 1.0
    narrow = align(W[:, :2], np.zeros((1, 2)), W, H=H, nonneg=False).info
    assert narrow["mcc_matched"] == 1.0 and narrow["mcc"] == 0.5
    assert narrow["uniqueness"] == 1.0
    copies = np.repeat(W[:, :1], 3, axis=1) * np.array([1.0, -2.0, 0.5])  # signs, norms
    same = align(copies, np.zeros((1, 3)), W, H=H, nonneg=False).info
    assert same["uniqueness"] == pytest.approx(1 / 3)
    assert same["mcc_matched"] == pytest.approx(1 / 3)  # one match of 1, two of 0
    tilted = field_metrics(np.array([[0.6, 0.8], [0.8, 0.6]]))
    assert tilted["mcc_matched"] == pytest.approx(0.8)  # the better assignment
    assert tilted["uniqueness"] == 1.0
