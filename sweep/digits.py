"""A real network that ships with the project: an MLP trained on scikit-learn's
bundled handwritten digits (1,797 8x8 images, 10 classes; no download).

One hidden layer of ReLU units; its activations are the network's H: on the digits it
was trained on (for learned methods) and on held-out digits (the test rows), with
their labels and images kept for the figures.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

N_DIGITS = 1797  # scikit-learn's digits: 8x8 images of 10 classes
N_CLASSES = 10  # a stratified split holds out at least one digit of each, and keeps one
# what the network is: changing one of these (or the training below) changes the
# networks cached in sweep folders, so it bumps job.TRAINING_VERSION
MAX_ITER = 500  # Adam epochs (scikit-learn's MLPClassifier)
PIXELS = 16.0  # the images' largest value: inputs are scaled to [0, 1]


@dataclass
class Network:
    """A real network's activations: its training rows and held-out (test) rows
    (n, neurons), the held-out rows' places among the network's inputs (n,: a
    user file's rows; the digits' indices), labels (n,; None: unlabelled), images
    (the digits' (n, 8, 8); None for others) and other columns (a user file's
    metadata: name -> (n,); not kept in the sweep's model cache), and the network's
    held-out accuracy (NaN: not a classifier we know)."""

    H_train: np.ndarray
    H: np.ndarray
    rows: np.ndarray
    labels: np.ndarray | None = None
    images: np.ndarray | None = None
    accuracy: float = float("nan")
    converged: bool = True
    meta: dict[str, np.ndarray] = field(default_factory=dict)


def digits_mlp(neurons: int, n_test: int, rng: np.random.Generator) -> Network:
    """Train the classifier (``neurons`` hidden ReLU units) on all digits but
    ``n_test`` held out (stratified by label; split and initial weights from
    ``rng``) and read its hidden layer, ReLU(x W1 + b1), on every digit."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    X, y = digits.data / PIXELS, digits.target
    split_seed, init_seed = (int(s) for s in rng.integers(2**31 - 1, size=2))
    train, test = train_test_split(
        np.arange(len(y)), test_size=n_test, random_state=split_seed, stratify=y
    )
    clf = MLPClassifier(hidden_layer_sizes=(neurons,), activation="relu",
                        max_iter=MAX_ITER, random_state=init_seed)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X[train], y[train])
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    def hidden(rows: np.ndarray) -> np.ndarray:
        return np.maximum(X[rows] @ clf.coefs_[0] + clf.intercepts_[0], 0.0)

    return Network(
        H_train=hidden(train), H=hidden(test), rows=test, labels=y[test],
        images=digits.images[test], accuracy=float(clf.score(X[test], y[test])),
        converged=converged,
    )  # fmt: skip


def problems(flat: dict) -> list[str]:
    """model=digits_mlp: its n_samples (held-out digits) leave a digit of each class
    on both sides of the split."""
    n = flat["n_samples"]
    if N_CLASSES <= n <= N_DIGITS - N_CLASSES:
        return []
    return [f"n_samples={n} (model=digits_mlp): the digits held out; allowed is"
            f" {N_CLASSES}..{N_DIGITS - N_CLASSES} of the {N_DIGITS} (a digit of each"
            " class on both sides)"]  # fmt: skip
