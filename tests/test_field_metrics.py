"""latent_metrics: the field's per-latent metrics (SAELens' synthetic evals) on
hand-made cases whose every value is known by hand."""

import numpy as np
import pytest

from sweep import metrics
from sweep.metrics import best_features, latent_metrics, r_squared
from sweep.thresholds import ACTIVE, DEAD

TOL = 1e-12  # every expected value below is exact up to float round-off


def _latents(codes, X, score=None):
    """latent_metrics with a reconstruction that does not matter here."""
    codes, X = np.asarray(codes, float), np.asarray(X, float)
    score = np.eye(codes.shape[1], X.shape[1]) if score is None else score
    H = np.ones((X.shape[0], 2))
    feature_of = best_features(np.asarray(score, float))
    return latent_metrics(codes, X, feature_of, H=H, H_hat=H)


def _reconstruction(H, H_hat):
    """latent_metrics with one latent that does not matter here."""
    H, H_hat = np.asarray(H, float), np.asarray(H_hat, float)
    n = H.shape[0]
    return latent_metrics(
        np.ones((n, 1)), np.ones((n, 1)), np.zeros(1, int), H=H, H_hat=H_hat
    )


def test_latent_firing_exactly_with_its_feature():
    X = [[0.5, 0.0], [0.0, 0.7], [0.2, 0.3], [0.0, 0.0]]
    m = _latents(X, X)  # a known dictionary recovering X exactly
    for name in ("latent_precision", "latent_recall", "latent_f1"):
        assert m[name] == pytest.approx(1.0, abs=TOL), name
    assert m["l0"] == pytest.approx(4 / 4, abs=TOL)  # 1 + 1 + 2 + 0 active codes
    assert m["dead_fraction"] == 0.0


def test_latent_firing_also_on_half_the_samples_without_its_feature():
    # feature fires on samples 0, 1; off on 2..5; the latent fires on 0..3:
    # TP = 2, FP = 2 (half of the 4 off samples), FN = 0
    X = [[1.0], [1.0], [0.0], [0.0], [0.0], [0.0]]
    codes = [[0.4], [0.9], [0.3], [0.2], [0.0], [0.0]]
    m = _latents(codes, X)
    assert m["latent_precision"] == pytest.approx(1 / 2, abs=TOL)
    assert m["latent_recall"] == pytest.approx(1.0, abs=TOL)
    assert m["latent_f1"] == pytest.approx(2 / 3, abs=TOL)  # 2 * 0.5 * 1 / 1.5
    assert m["l0"] == pytest.approx(4 / 6, abs=TOL)


def test_latent_missing_half_its_feature():
    # feature fires on samples 0..3, the latent on 0, 1 only: TP = 2, FN = 2
    X = [[1.0], [1.0], [1.0], [1.0], [0.0]]
    codes = [[1.0], [1.0], [0.0], [0.0], [0.0]]
    m = _latents(codes, X)
    assert m["latent_precision"] == pytest.approx(1.0, abs=TOL)
    assert m["latent_recall"] == pytest.approx(1 / 2, abs=TOL)
    assert m["latent_f1"] == pytest.approx(2 / 3, abs=TOL)


def test_dead_latents_count_zero_in_every_average():
    # latent 0 perfect; latent 1 dead while its feature fires (recall 0, precision
    # 0: undefined, counted 0); latent 2 dead and its feature never fires (all TN:
    # still 0 in all three, as the reference does)
    X = [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    codes = [[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]]
    m = _latents(codes, X)
    for name in ("latent_precision", "latent_recall", "latent_f1"):
        assert m[name] == pytest.approx(1 / 3, abs=TOL), name
    assert m["dead_fraction"] == pytest.approx(2 / 3, abs=TOL)
    assert m["l0"] == pytest.approx(2 / 3, abs=TOL)


def test_thresholds_firing_above_active_dead_at_most_dead():
    # latent 0: |code| 1e-4 everywhere: not dead (> DEAD) yet never fires (<= ACTIVE)
    # latent 1: |code| at most DEAD: dead
    # latent 2: fires at 2 x ACTIVE, exactly where its feature is above ACTIVE; the
    # feature's 0.5 x ACTIVE on sample 1 is not firing
    X = [[1.0, 1.0, 2 * ACTIVE], [1.0, 1.0, 0.5 * ACTIVE]]
    codes = [[1e-4, DEAD, 2 * ACTIVE], [-1e-4, -DEAD, 0.0]]
    m = _latents(codes, X)
    assert m["dead_fraction"] == pytest.approx(1 / 3, abs=TOL)
    assert m["l0"] == pytest.approx(1 / 2, abs=TOL)
    assert m["latent_precision"] == pytest.approx(1 / 3, abs=TOL)  # 0, 0, 1
    assert m["latent_recall"] == pytest.approx(1 / 3, abs=TOL)


def test_signed_codes_fire_by_magnitude():
    X = [[1.0], [0.0], [1.0]]
    codes = [[-0.8], [0.0], [-0.5]]  # a latent matched with its sign flipped
    m = _latents(codes, X)
    assert m["latent_precision"] == pytest.approx(1.0, abs=TOL)
    assert m["latent_recall"] == pytest.approx(1.0, abs=TOL)
    assert m["l0"] == pytest.approx(2 / 3, abs=TOL)


def test_each_latent_matched_to_its_best_feature_not_one_to_one():
    # both latents point mostly at feature 1 (argmax of their |cos| rows); a
    # one-to-one (Hungarian) match would give latent 1 feature 0 instead
    score = [[0.1, 0.9], [0.6, 0.8]]
    X = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    codes = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]
    m = _latents(codes, X, score)
    # latent 0 vs feature 1: TP 2 -> 1, 1, 1; latent 1 vs feature 1: TP 1, FN 1 ->
    # precision 1, recall 1/2, F1 2/3 (against feature 0 all three would be 0)
    assert m["latent_precision"] == pytest.approx(1.0, abs=TOL)
    assert m["latent_recall"] == pytest.approx(3 / 4, abs=TOL)
    assert m["latent_f1"] == pytest.approx((1 + 2 / 3) / 2, abs=TOL)


def test_more_latents_than_features_averaged_over_latents():
    # 3 latents on 1 feature: one perfect, two firing everywhere
    X = [[1.0], [0.0], [0.0], [0.0]]
    codes = [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    m = _latents(codes, X, np.ones((3, 1)))
    assert m["latent_precision"] == pytest.approx((1 + 1 / 4 + 1 / 4) / 3, abs=TOL)
    assert m["latent_recall"] == pytest.approx(1.0, abs=TOL)
    assert m["latent_f1"] == pytest.approx((1 + 0.4 + 0.4) / 3, abs=TOL)  # 2/(4+1)
    assert m["l0"] == pytest.approx((3 + 2 + 2 + 2) / 4, abs=TOL)


def test_blocks_of_latents_give_the_whole_answer(monkeypatch):
    """Latents read a few at a time agree with a per-latent transcription of the
    reference's counts."""
    rng = np.random.default_rng(0)
    n, k, f = 50, 11, 7
    X = rng.random((n, f)) * (rng.random((n, f)) < 0.3)
    codes = rng.normal(size=(n, k)) * (rng.random((n, k)) < 0.4)
    codes[:, 4] = 0.0  # a dead latent
    score = rng.random((k, f))
    H = rng.normal(size=(n, 3))
    monkeypatch.setattr(metrics, "BLOCK_ENTRIES", 3 * n)  # 3 latents per block
    m = latent_metrics(codes, X, best_features(score), H=H, H_hat=H)
    p, r, f1 = [], [], []
    for j in range(k):
        fires, truth = np.abs(codes[:, j]) > ACTIVE, X[:, np.argmax(score[j])] > ACTIVE
        tp, fp, fn = (
            np.sum(fires & truth),
            np.sum(fires & ~truth),
            np.sum(~fires & truth),
        )
        p.append(tp / (tp + fp) if tp + fp else 0.0)
        r.append(tp / (tp + fn) if tp + fn else 0.0)
        f1.append(2 * p[-1] * r[-1] / (p[-1] + r[-1]) if p[-1] + r[-1] else 0.0)
    assert m["latent_precision"] == pytest.approx(np.mean(p), abs=TOL)
    assert m["latent_recall"] == pytest.approx(np.mean(r), abs=TOL)
    assert m["latent_f1"] == pytest.approx(np.mean(f1), abs=TOL)
    assert m["l0"] == pytest.approx(np.mean(np.sum(np.abs(codes) > ACTIVE, axis=1)))
    assert m["dead_fraction"] == pytest.approx(1 / k, abs=TOL)


def test_shrinkage_half_the_norm():
    H = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]])
    assert _reconstruction(H, H / 2)["shrinkage"] == pytest.approx(0.5, abs=TOL)
    assert _reconstruction(H, H)["shrinkage"] == pytest.approx(1.0, abs=TOL)


def test_shrinkage_is_a_mean_of_ratios_without_zero_inputs():
    H = [[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]]
    H_hat = [[0.5, 0.0], [3.0, 0.0], [5.0, 5.0]]  # ratios 0.5, 1, and h = 0: left out
    # the mean of the ratios, not ||H_hat||_sum / ||H||_sum = 3.5 / 4
    assert _reconstruction(H, H_hat)["shrinkage"] == pytest.approx(0.75, abs=TOL)


def test_shrinkage_undefined_without_a_nonzero_input():
    assert np.isnan(_reconstruction(np.zeros((2, 2)), np.ones((2, 2)))["shrinkage"])


def test_explained_variance_perfect_and_mean():
    rng = np.random.default_rng(1)
    H = rng.normal(size=(20, 4)) + 5.0
    assert _reconstruction(H, H)["explained_variance"] == pytest.approx(1.0, abs=TOL)
    mean = np.broadcast_to(H.mean(axis=0), H.shape)
    assert _reconstruction(H, mean)["explained_variance"] == pytest.approx(0.0, abs=TOL)


def test_explained_variance_pooled_and_centred():
    # centred rows (1,0), (-1,0), (0,3), (0,-3): total variance (1+1+9+9)/4 = 5;
    # only row 0 is wrong, by (1, 0): mean squared residual 1/4 -> 1 - 0.05 = 0.95.
    # Per sample averaged (SAELens' explained_variance_legacy) it would be 0.75;
    # without centring 1 - 1 / sum ||h||^2, which the offset 10 moves far from 0.95.
    centred = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    H = centred + 10.0
    H_hat = H.copy()
    H_hat[0, 0] -= 1.0
    ev = _reconstruction(H, H_hat)["explained_variance"]
    assert ev == pytest.approx(0.95, abs=TOL)
    assert ev == pytest.approx(r_squared(H, H_hat), abs=TOL)  # = r2_h here


def test_explained_variance_of_a_constant_input():
    H = np.full((5, 3), 2.0)  # no variance: 1 if reconstructed, else 0 (not NaN)
    assert _reconstruction(H, H)["explained_variance"] == 1.0
    assert _reconstruction(H, H + 0.1)["explained_variance"] == 0.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="feature_of"):
        latent_metrics(
            np.ones((3, 2)),
            np.ones((3, 4)),
            np.zeros(3, int),
            H=np.ones((3, 1)),
            H_hat=np.ones((3, 1)),
        )
    with pytest.raises(ValueError, match="H_hat"):
        latent_metrics(
            np.ones((3, 2)),
            np.ones((3, 4)),
            np.zeros(2, int),
            H=np.ones((3, 1)),
            H_hat=np.ones((3, 2)),
        )
