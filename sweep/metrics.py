"""Pure metric functions: how well X_hat recovers X (definitions in README.md)."""

from typing import TYPE_CHECKING

import numpy as np

from sweep.thresholds import ACTIVE, DEAD

if TYPE_CHECKING:
    import pandas as pd

# SAELens' synthetic evals (ShrinkageCalculator): samples with ||h|| at or below this
# are left out of ``shrinkage``
MIN_INPUT_NORM = 1e-6
# SAELens' ExplainedVarianceCalculator: below this total variance (per sample) the
# explained variance is 1 if the mean squared residual is below it too, else 0
MIN_VARIANCE = 1e-10
BLOCK_ENTRIES = 2**22  # latent_metrics reads codes this many entries at a time
MIN_FIRES = 10  # selectivity: a latent firing on fewer samples is not judged


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
        "true_l0": float(np.mean(np.sum(np.abs(X) > ACTIVE, axis=1))),
    }


def latent_metrics(
    codes: np.ndarray,
    X: np.ndarray,
    feature_of: np.ndarray,
    *,
    H: np.ndarray,
    H_hat: np.ndarray,
) -> dict[str, float]:
    """The field's per-latent metrics, as SAELens' synthetic evals define them
    (``sae_lens/synthetic/evals.py``, ``eval_sae_on_synthetic_data``; SynthSAEBench).

    codes (n_samples, n_latents): the method's codes on the test samples (a learned
    method: its latents; a known dictionary: X_hat, latent i = feature i). X
    (n_samples, n_features): the true features. feature_of (n_latents,): each
    latent's best-matching feature, the ``argmax`` of its |cosine| with every true
    feature (``best_features``; a known dictionary: latent i is feature i). H,
    H_hat (n_samples, n_neurons): the input and the method's reconstruction of it.

    - ``latent_precision``, ``latent_recall``, ``latent_f1``: each latent is a
      binary classifier of its best-matching feature (not the Hungarian match:
      several latents may share a feature). Per latent TP/(TP+FP),
      TP/(TP+FN) and their harmonic mean, each 0 where undefined, then the mean
      over all latents: a latent that never fires counts 0 in all three.
    - ``l0``: mean over samples of the number of firing latents.
    - ``dead_fraction``: latents whose |code| never exceeds ``DEAD`` / n_latents
      (the reference counts latents never > 0, as a number).
    - ``shrinkage``: mean over samples with ||h|| > 1e-6 of ||h_hat|| / ||h|| (h
      neither centred nor normalised; SAELens' ``l2_ratio`` in
      ``sae_lens/evals.py`` divides by 1 instead where ||h|| < 1e-4).
    - ``explained_variance``: 1 - mean ||h - h_hat||^2 / (mean ||h||^2 -
      ||mean h||^2), pooled over samples and neurons; when that total variance is
      below 1e-10: 1 if the mean squared residual is below 1e-10 too, else 0. Away
      from that case it equals ``r_squared(H, H_hat)`` (``r2_h``), which is NaN
      there.

    Firing: a feature fires where |x| > ACTIVE, a latent where |code| > ACTIVE.
    The reference uses x > 0 and code > 0 (``sae_lens/evals.py`` counts its l0 with
    code != 0, for signed latents). The magnitude, because codes and X may be
    signed and score is |cosine| (a latent matched with its sign flipped fires
    negative); ACTIVE, because codes here also come from numerical solvers whose
    zeros are round-off (~1e-12), and ACTIVE is the threshold of ``support_*`` and
    ``true_l0``. For a ReLU or TopK SAE, whose silent
    latents are exactly 0, the two differ only for activations in (0, ACTIVE].

    NaN where nothing is averaged (no latents, no samples, no sample with ||h|| >
    1e-6); the reference returns 0 there.
    """
    n_samples, n_latents = codes.shape
    if X.shape[0] != n_samples or feature_of.shape != (n_latents,):
        raise ValueError(
            f"codes {codes.shape}, X {X.shape} and feature_of {feature_of.shape} do"
            " not fit"
        )
    nan = float("nan")
    out = {"latent_precision": nan, "latent_recall": nan, "latent_f1": nan}
    if n_latents and n_samples and X.shape[1]:
        feature = np.asarray(feature_of)
        fired = np.empty(n_latents)  # samples where the latent fires: TP + FP
        truth = np.empty(n_latents)  # samples where its feature fires: TP + FN
        tp = np.empty(n_latents)  # both
        for part in _blocks(codes):
            fires = np.abs(codes[:, part]) > ACTIVE
            matched = np.abs(X[:, feature[part]]) > ACTIVE
            fired[part] = fires.sum(axis=0)
            truth[part] = matched.sum(axis=0)
            tp[part] = np.sum(fires & matched, axis=0)
        zeros = np.zeros(n_latents)
        precision = np.divide(tp, fired, out=zeros.copy(), where=fired > 0)
        recall = np.divide(tp, truth, out=zeros.copy(), where=truth > 0)
        # 2 p r / (p + r) = 2 TP / (2 TP + FP + FN) when TP > 0; 0 otherwise
        f1 = np.divide(2 * tp, fired + truth, out=zeros.copy(), where=tp > 0)
        out = {
            "latent_precision": float(precision.mean()),
            "latent_recall": float(recall.mean()),
            "latent_f1": float(f1.mean()),
        }
    return out | code_metrics(codes, H=H, H_hat=H_hat)


def code_metrics(codes: np.ndarray, *, H: np.ndarray, H_hat: np.ndarray) -> dict:
    """The metrics of ``latent_metrics`` that need no ground truth: ``l0``,
    ``dead_fraction``, ``shrinkage`` and ``explained_variance``, defined there;
    codes (n_samples, n_latents), H and H_hat (n_samples, n_neurons)."""
    if H.shape != H_hat.shape:
        raise ValueError(f"H {H.shape} and H_hat {H_hat.shape} differ in shape")
    n_samples, n_latents = codes.shape
    out = {"l0": float("nan"), "dead_fraction": float("nan")}
    if n_latents and n_samples:
        fired, alive = 0, np.empty(n_latents, dtype=bool)
        for part in _blocks(codes):
            mag = np.abs(codes[:, part])
            fired += np.count_nonzero(mag > ACTIVE)
            alive[part] = np.any(mag > DEAD, axis=0)
        out = {"l0": fired / n_samples, "dead_fraction": float(np.mean(~alive))}
    h_norm = np.linalg.norm(H, axis=1)
    valid = h_norm > MIN_INPUT_NORM
    out["shrinkage"] = _mean(np.linalg.norm(H_hat[valid], axis=1) / h_norm[valid])
    out["explained_variance"] = explained_variance(H, H_hat)
    return out


def _blocks(codes: np.ndarray):
    """Slices of latents to read at a time: O(BLOCK_ENTRIES) memory."""
    n_samples, n_latents = codes.shape
    block = max(1, BLOCK_ENTRIES // max(n_samples, 1))
    return [slice(start, start + block) for start in range(0, n_latents, block)]


def best_features(score: np.ndarray) -> np.ndarray:
    """Each latent's best-matching feature: the argmax of its row of |cosines|
    (n_latents, n_features); a row of zeros matches feature 0, as in the reference."""
    return np.argmax(score, axis=1)


def explained_variance(H: np.ndarray, H_hat: np.ndarray) -> float:
    """SAELens' ExplainedVarianceCalculator.compute on all samples at once (README:
    ``explained_variance``)."""
    n = H.shape[0]
    if n == 0:
        return float("nan")
    mse = np.sum((H - H_hat) ** 2) / n  # E ||h - h_hat||^2
    variance = np.sum((H - H.mean(axis=0)) ** 2) / n  # E ||h||^2 - ||E h||^2
    if variance < MIN_VARIANCE:
        return 1.0 if mse < MIN_VARIANCE else 0.0
    return float(1.0 - mse / variance)


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
) -> "pd.DataFrame":
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
    import pandas as pd  # imported where cells run: the command line does not

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


def selectivity(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How concentrated each latent's activation is on one label, without ground
    truth. With m_jc the activation mass |codes| of latent j on the samples of label
    c and p_jc = m_jc / sum_c m_jc: ``top_share`` max_c p_jc (1: one label only; 1 /
    n_labels: spread evenly; higher is more selective) and ``label_entropy``
    -sum_c p_jc log p_jc / log(n_labels) (0: one label; 1: even; lower is more
    selective). codes (n_samples, n_latents), labels (n_samples,); a latent that
    fires (|code| > ACTIVE) on fewer than MIN_FIRES samples gets NaN in both: one
    firing is perfectly selective by chance; so does every latent when the samples
    have fewer than two labels."""
    share, entropy, _ = _selectivity(codes, labels)
    return share, entropy


def _selectivity(codes: np.ndarray, labels: np.ndarray):
    """``selectivity``'s top shares and entropies, and each latent's top label."""
    classes, index = np.unique(labels, return_inverse=True)
    mass = np.zeros((len(classes), codes.shape[1]))
    np.add.at(mass, index, np.abs(codes))
    total = mass.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = mass / total
        terms = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -terms.sum(axis=0) / np.log(len(classes)) if len(classes) > 1 else (
        np.zeros(codes.shape[1]))  # fmt: skip
    live = np.count_nonzero(np.abs(codes) > ACTIVE, axis=0) >= MIN_FIRES
    live &= len(classes) > 1  # with one label every latent would be "selective"
    top = classes[np.argmax(np.nan_to_num(p), axis=0)] if len(classes) else None
    return np.where(live, p.max(axis=0), np.nan), np.where(live, entropy, np.nan), top


def units(codes: np.ndarray, labels: np.ndarray | None) -> "pd.DataFrame":
    """One row per unit (a latent; or a neuron, with H as the codes): ``unit``,
    ``fire_rate`` (the share of samples where |code| > ACTIVE) and, with labels,
    ``selectivity``'s ``top_share`` and ``label_entropy`` and the unit's
    ``top_label`` (as text; NaN and None without labels)."""
    n_samples, n_units = codes.shape
    fires = np.count_nonzero(np.abs(codes) > ACTIVE, axis=0)
    table = {"unit": np.arange(n_units),
             "fire_rate": fires / n_samples if n_samples else np.full(n_units, np.nan)}
    share = entropy = np.full(n_units, np.nan)
    top = [None] * n_units
    if labels is not None and n_samples:
        share, entropy, classes = _selectivity(codes, labels)
        pairs = zip(share, classes, strict=True)
        top = [None if np.isnan(s) else str(c) for s, c in pairs]
    import pandas as pd

    return pd.DataFrame(table | {"top_share": share, "label_entropy": entropy,
                                 "top_label": pd.Series(top, dtype=object)})


def top_rows(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, its (at most) k samples of largest |code|, largest first: sample
    indices and codes, each (k, n_units); -1 and NaN where a unit fires (|code| >
    ACTIVE) on fewer than k samples. codes: (n_samples >= 1, n_units)."""
    k = min(k, codes.shape[0])
    mag = np.abs(codes)
    part = np.argpartition(-mag, k - 1, axis=0)[:k]
    order = np.argsort(-np.take_along_axis(mag, part, axis=0), axis=0, kind="stable")
    rows = np.take_along_axis(part, order, axis=0)
    values = np.take_along_axis(codes, rows, axis=0).astype(float)
    quiet = np.abs(values) <= ACTIVE
    return np.where(quiet, -1, rows), np.where(quiet, np.nan, values)


def label_metrics(codes: np.ndarray, H: np.ndarray, labels: np.ndarray) -> dict:
    """A cell's selectivity without ground truth (``selectivity``), its latents
    against the network's own neurons as the baseline: ``top_share`` and
    ``label_entropy``, their means over the latents judged (firing on at least
    MIN_FIRES samples);
    ``neuron_top_share`` and ``neuron_label_entropy``, the same of the neurons (H
    as codes); ``above_best_neuron``, the number of latents whose top share exceeds
    the most selective neuron's."""
    return unit_summary(units(codes, labels), units(H, labels))


def unit_summary(latents: "pd.DataFrame", neurons: "pd.DataFrame") -> dict:
    """``label_metrics`` from the ``units`` tables of the latents and the neurons."""
    share, entropy = latents["top_share"].to_numpy(), latents["label_entropy"]
    neuron_share = neurons["top_share"].to_numpy()
    best = np.nanmax(neuron_share) if np.isfinite(neuron_share).any() else np.inf
    return {
        "top_share": _mean(share[np.isfinite(share)]),
        "label_entropy": _mean(entropy.dropna().to_numpy()),
        "neuron_top_share": _mean(neuron_share[np.isfinite(neuron_share)]),
        "neuron_label_entropy": _mean(neurons["label_entropy"].dropna().to_numpy()),
        "above_best_neuron": int(np.sum(share > best)),
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")
