"""The bundled real network: an MLP on scikit-learn's digits, its hidden layer as H."""

import numpy as np

from sweep.digits import digits_mlp


def test_digits_mlp_classifies_and_its_hidden_layer_is_h():
    """Accuracy on held-out digits well above chance (0.1; measured 0.97-0.98 with
    16-64 units); H is the ReLU layer on disjoint train / held-out digits, with
    the held-out labels and images beside it."""
    net = digits_mlp(32, np.random.default_rng(0))
    assert net.accuracy > 0.9
    assert net.H.shape == (540, 32) and net.H_train.shape == (1257, 32)
    assert net.H.min() >= 0 and (net.H > 0).any(axis=0).sum() > 16
    assert net.labels.shape == (540,) and set(net.labels) == set(range(10))
    assert net.images.shape == (540, 8, 8) and net.images.max() <= 16
    same = digits_mlp(32, np.random.default_rng(0))
    other = digits_mlp(32, np.random.default_rng(1))
    assert np.array_equal(net.H, same.H) and not np.array_equal(net.H, other.H)
