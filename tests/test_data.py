import numpy as np
import pytest

from sweep.data import add_noise, sparse_features


@pytest.mark.parametrize("sparsity", [0.01, 0.1, 0.5, 1.0])
def test_bernoulli_density_and_values(rng, sparsity):
    X = sparse_features(4000, 50, rng=rng, sparsity=sparsity)
    assert X.shape == (4000, 50)
    assert X.min() >= 0 and X.max() <= 1
    density = np.mean(X != 0)
    assert (
        abs(density - sparsity) < 4 * np.sqrt(sparsity * (1 - sparsity) / X.size) + 1e-9
    )
    # active values are uniform on [0, 1]: mean 1/2, variance 1/12
    active = X[X != 0]
    assert abs(active.mean() - 0.5) < 0.02
    assert abs(active.var() - 1 / 12) < 0.01


@pytest.mark.parametrize("k", [1, 3, 20])
def test_exactly_k_active_uniform_positions(rng, k):
    X = sparse_features(3000, 20, rng=rng, k=k)
    assert np.all(np.sum(X != 0, axis=1) == k)
    # every feature is active equally often
    freq = np.mean(X != 0, axis=0)
    assert np.allclose(freq, k / 20, atol=0.04)


def test_sparsity_and_k_are_exclusive(rng):
    with pytest.raises(ValueError, match="exactly one"):
        sparse_features(5, 5, rng=rng, sparsity=0.1, k=2)
    with pytest.raises(ValueError, match="exactly one"):
        sparse_features(5, 5, rng=rng)


def test_same_stream_same_data():
    a = sparse_features(10, 8, rng=np.random.default_rng(1), sparsity=0.3)
    b = sparse_features(10, 8, rng=np.random.default_rng(1), sparsity=0.3)
    assert np.array_equal(a, b)


def test_noise_is_relative_to_rms(rng):
    H = rng.standard_normal((2000, 30)) * 7.0
    noisy = add_noise(H, noise=0.1, rng=rng)
    ratio = np.std(noisy - H) / np.sqrt(np.mean(H**2))
    assert abs(ratio - 0.1) < 0.005
    assert add_noise(H, noise=0.0, rng=rng) is H
