"""Matching learned atoms to the true feature directions, for every learned method.

A learned method returns atoms (n_neurons, n_atoms) and codes (n_samples, n_atoms) with
H ~ codes @ atoms.T + offset. Each true feature i (column W_i) is matched one-to-one to
an atom j by the Hungarian assignment on the cosines, and recovered as
x_hat_i = s_j z_j with s_j = (a_j . W_i) / ||W_i||^2: the coefficient that turns atom j
into W_i. Only the dictionaries are used, never the test X.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from sweep.metrics import r_squared
from sweep.models import represented
from sweep.thresholds import DEAD, RECOVERED


@dataclass
class Alignment:
    """The matching of atoms to features and what follows from it."""

    cosines: np.ndarray  # (n_atoms, n_features) cosines of atoms and true directions
    atom_of: np.ndarray  # (n_features,) matched atom per feature, -1 if none
    matched_cos: np.ndarray  # (n_features,) cosine of the match (0 if none)
    X_hat: np.ndarray  # (n_samples, n_features) codes permuted and rescaled
    H_hat: np.ndarray  # (n_samples, n_neurons) the method's own reconstruction of H
    info: dict  # per-trial metrics: mmcs, mcc, n_recovered, dead_latents, r2_h


def cosines(atoms: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Cosines (n_atoms, n_features) of atoms and W's columns (0 for zero columns)."""
    a = _unit(atoms)
    w = _unit(W)
    return a.T @ w


def match(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching maximising the total score (n_atoms, n_features).

    Returns the atom of each feature (-1 if unmatched: more features than atoms) and
    the matched score (0 if unmatched).
    """
    atoms, features = linear_sum_assignment(score, maximize=True)
    atom_of = np.full(score.shape[1], -1)
    atom_of[features] = atoms
    matched = np.zeros(score.shape[1])
    matched[features] = score[atoms, features]
    return atom_of, matched


def align(
    atoms: np.ndarray,
    codes: np.ndarray,
    W: np.ndarray,
    *,
    H: np.ndarray,
    offset: np.ndarray | None = None,
    nonneg: bool,
) -> Alignment:
    """Match atoms (n_neurons, k) to W (n_neurons, n); codes (n_samples, k) -> X_hat.

    With nonnegative codes an atom can only represent a feature pointing its way, so
    the matching maximises the signed cosine clipped at 0 (what ``mcc`` counts: an
    atom pointing away recovers nothing); otherwise |cosine| (the sign goes into s_j).
    """
    live = represented(W)  # an unrepresented feature is never matched, recovered as 0
    C = cosines(atoms, W) * live
    score = np.clip(C, 0.0, None) if nonneg else np.abs(C)
    atom_of, matched = match(score)
    unmatched = ~live | (matched <= 0)  # no atom points the feature's way
    atom_of[unmatched], matched[unmatched] = -1, 0.0
    norms2 = np.sum(W**2, axis=0)
    X_hat = np.zeros((codes.shape[0], W.shape[1]))
    for i in np.flatnonzero(atom_of >= 0):
        j = atom_of[i]
        X_hat[:, i] = codes[:, j] * (atoms[:, j] @ W[:, i]) / norms2[i]
    H_hat = reconstruct(codes, atoms, offset)
    info = field_metrics(np.abs(cosines(atoms, W))) | {
        "mmcs": float(np.abs(C).max(axis=0, initial=0.0).mean()),  # max |cos|
        "mcc": float(matched.mean()),
        "n_recovered": int(np.sum(matched > RECOVERED)),
        "dead_latents": int(np.sum(np.all(np.abs(codes) <= DEAD, axis=0))),
        "r2_h": r_squared(H, H_hat),
    }
    return Alignment(C, atom_of, matched, X_hat, H_hat, info)


def reconstruct(
    codes: np.ndarray, atoms: np.ndarray, offset: np.ndarray | None
) -> np.ndarray:
    """A learned dictionary's H_hat (n_samples, n_neurons): codes @ atoms.T + offset."""
    return codes @ atoms.T + (0.0 if offset is None else offset)


def field_metrics(score: np.ndarray) -> dict[str, float]:
    """The field's dictionary metrics (SAELens' synthetic evals, SynthSAEBench) from
    |cosines| (n_atoms, n_features): ``mcc_matched``, the mean |cos| over the
    Hungarian-matched pairs, min(n_atoms, n_features) of them (our ``mcc`` averages
    over features, an unmatched one counting 0); ``uniqueness``, the distinct
    features among the atoms' best matches / the number of atoms."""
    if score.size == 0:
        return {"mcc_matched": float("nan"), "uniqueness": float("nan")}
    atoms, features = linear_sum_assignment(score, maximize=True)
    best = np.argmax(score, axis=1)
    return {
        "mcc_matched": float(score[atoms, features].mean()),
        "uniqueness": len(np.unique(best)) / score.shape[0],
    }


def _unit(A: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(A, axis=0)
    return A / np.where(norms > 0, norms, 1.0)


def recovered(
    recovery, W: np.ndarray, *, H: np.ndarray
) -> tuple[np.ndarray, Alignment | None]:
    """X_hat of any method's Recovery: learned dictionaries are aligned to W first."""
    if recovery.atoms is None:
        return recovery.X_hat, None
    found = align(
        recovery.atoms, recovery.codes, W, H=H, offset=recovery.offset,
        nonneg=recovery.nonneg,
    )  # fmt: skip
    return found.X_hat, found
