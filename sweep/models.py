"""Compression models: W (n_neurons, n_features) and b (n_features,) for each trial.

A model is registered with its traits (``ModelTraits``: whether it is trained on the
cell's data) and takes a ``ModelSpec`` and its tunable parameters as keyword-only
arguments; it returns one ``Model`` per trial generator.
"""

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from sweep import activations, digits
from sweep.checks import integer, one_of, optional, path, real
from sweep.data import Features
from sweep.digits import Network
from sweep.registry import Registry
from sweep.thresholds import REPRESENTED, UNREPRESENTED

MODELS = Registry("model")


@dataclass(frozen=True)
class ModelTraits:
    """What a model needs, declared where it is registered."""

    # Trained on the cell's data: its W depends on sparsity / k, so the job caches it
    # in the sweep folder, shared by every method's cell of the same model keys.
    trained: bool
    # H = X W^T from known features: False for a real network's activations (a
    # ``digits.Network`` per trial), where only the learned methods apply and the
    # metrics are those without ground truth.
    truth: bool = True
    # what is wrong with a cell of this model beyond each key's own check
    problems: Callable[[dict], list[str]] | None = None
    # a real network: the rows it has (held out and training), given the cell's
    # keys (None: unknown, as for a missing file)
    rows: Callable[[dict], int | None] | None = None
    # worth keeping for the sweep's other cells though not trained on their data
    # (a network trained once per neurons and trial)
    costly: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """What a cell's models are built from: sizes, one generator per trial, each
    trial's feature distribution (a trained model samples its batches from it), and
    the held-out rows a real network's activations give (n_samples)."""

    n_features: int
    n_neurons: int
    rngs: list  # one numpy Generator per trial
    features: list[Features] = field(default_factory=list)  # one per trial
    n_test: int = 0


@dataclass
class Model:
    """One trial's compression H = X @ W.T; its own decoder is ReLU(W.T h + b)."""

    W: np.ndarray  # (n_neurons, n_features)
    b: np.ndarray  # (n_features,)
    importance: np.ndarray  # (n_features,), weights of the weighted mse
    info: dict = field(default_factory=dict)  # per-trial scalars for metrics.parquet
    relu: bool = True  # its own decoder: ReLU(W.T h + b), or W.T h + b if False


def random_model(
    n_features: int, n_neurons: int, *, rng: np.random.Generator,
    geometry: str = "gaussian", target_cos: float = 0.0,
) -> Model:  # fmt: skip
    """Zero-mean Gaussian W with unit-norm columns (``orthogonal``: then pushed apart,
    ``spread``), b = 0, uniform importance."""
    W = rng.standard_normal((n_neurons, n_features))
    W /= np.linalg.norm(W, axis=0)
    if geometry == "orthogonal":
        W = spread(W, target_cos)
    return Model(W=W, b=np.zeros(n_features), importance=np.ones(n_features))


@MODELS.register(
    "random", ModelTraits(trained=False),
    geometry=one_of("gaussian", "orthogonal"), target_cos=real(0, 1),
)  # fmt: skip
def random_models(
    spec: ModelSpec, *, geometry: str = "gaussian", target_cos: float = 0.0
) -> list[Model]:
    """One ``random_model`` per trial generator."""
    return [
        random_model(spec.n_features, spec.n_neurons, rng=r, geometry=geometry,
                     target_cos=target_cos)
        for r in spec.rngs
    ]  # fmt: skip


SPREAD_STEPS = 1000  # at most this many steps: each costs O(n_features^2 n_neurons)


def spread(W: np.ndarray, target: float, lr: float = 0.01) -> np.ndarray:
    """Unit columns of W (n_neurons, n_features) pushed apart until no two have
    |cos| > ``target``, or as far as SPREAD_STEPS get.

    With no more features than neurons: orthonormal columns (QR). Otherwise Adam on
    the sphere on sum_{i != j} max(|cos_ij| - t, 0)^2, t lowered from the largest
    |cos| by 5 % each time it is met, down to ``target``; the result is the W of
    the lowest coherence (``metrics.coherence``) met on the way, never above the
    start's.
    """
    m, n = W.shape
    if n <= m:
        Q, R = np.linalg.qr(W)
        return Q * np.sign(np.diag(R))  # the Gram-Schmidt of W's columns
    m1, v = np.zeros_like(W), np.zeros_like(W)
    G = _overlaps(W)
    best, lowest = W, np.abs(G).max(axis=1).mean()
    t = max(target, 0.95 * np.abs(G).max())
    for step in range(1, SPREAD_STEPS + 1):
        R = np.sign(G) * np.maximum(np.abs(G) - t, 0.0)
        if np.abs(R).max() < 1e-4:  # t met
            if (found := np.abs(G).max(axis=1).mean()) < lowest:
                best, lowest = W, found
            if t <= target:
                break
            t = max(target, 0.95 * t)
            continue
        g = 4.0 * W @ R
        g -= W * np.sum(g * W, axis=0)  # along the sphere
        m1 = 0.9 * m1 + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        W = W - lr * (m1 / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        W /= np.linalg.norm(W, axis=0)
        G = _overlaps(W)
    return best


def _overlaps(W: np.ndarray) -> np.ndarray:
    """W^T W with a zero diagonal: the cosines of unit columns with each other."""
    G = W.T @ W
    np.fill_diagonal(G, 0.0)
    return G


def represented(W: np.ndarray, tol: float = UNREPRESENTED) -> np.ndarray:
    """Boolean (n_features,): columns longer than ``tol`` x the longest column."""
    norms = np.linalg.norm(W, axis=0)
    return norms > tol * norms.max(initial=0.0)


def known_dictionary(W: np.ndarray, tol: float) -> np.ndarray:
    """W with its unrepresented columns (``represented(W, tol)``) set to zero.

    What recovery methods are given: a feature the model barely represents is
    recovered as 0, never divided by its tiny norm.
    """
    return W * represented(W, tol)


# --- trained toy models (Elhage et al. 2022, section "Demonstrating Superposition") ---


def toy_forward(
    W: np.ndarray, b: np.ndarray, X: np.ndarray, *, relu: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x' = ReLU(W^T W x + b) for a stack of instances.

    W (n_inst, n_neurons, n_features), b (n_inst, n_features), X (n_inst, batch, n).
    Returns H (n_inst, batch, n_neurons), the pre-activation and x'.
    """
    H = X @ W.transpose(0, 2, 1)
    pre = H @ W + b[:, None, :]
    return H, pre, np.maximum(pre, 0.0) if relu else pre


def toy_loss_and_grads(
    W: np.ndarray, b: np.ndarray, X: np.ndarray, importance: np.ndarray, *, relu: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss mean_batch sum_i I_i (x_i - x'_i)^2 per instance, and its exact gradients.

    Shapes as in ``toy_forward``; importance (n_features,). Returns loss (n_inst,),
    dL/dW like W and dL/db like b.
    """
    H, pre, out = toy_forward(W, b, X, relu=relu)
    diff = out - X
    loss = (diff**2 @ importance).mean(axis=1)
    g = (2.0 / X.shape[1]) * diff * importance  # dL/dx'
    if relu:
        g = g * (pre > 0)  # dL/dpre
    # pre = X W^T W + b: the W^T W term has two paths back to W
    dW = H.transpose(0, 2, 1) @ g + (g @ W.transpose(0, 2, 1)).transpose(0, 2, 1) @ X
    return loss, dW, g.sum(axis=1)


def toy_batch(
    rng: np.random.Generator, batch_size: int, dist: Features, *, dtype
) -> np.ndarray:
    """A fresh training batch (batch_size, n_features) from the trial's distribution."""
    if not dist.plain:
        return dist.sample(batch_size, rng).astype(dtype)
    # One uniform u per entry: active when u < p, and then u / p is again U[0, 1).
    sparsity = float(dist.draw[0])  # a Python float: u < p compares in u's dtype
    u = rng.random((batch_size, dist.n_features), dtype=dtype)
    return np.where(u < sparsity, u / dtype(sparsity), dtype(0))


def train_toy(
    n_features: int,
    n_neurons: int,
    *,
    rngs: list[np.random.Generator],
    features: list[Features],
    importance: np.ndarray,
    relu: bool,
    lr: float,
    weight_decay: float,
    batch_size: int,
    steps: int,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Train one instance per generator, all together; each sees only its own stream
and samples from its own distribution (``features``, one per generator).

    AdamW (decoupled weight decay, as PyTorch's) from W ~ N(0, 2/(n+m)), b = 0.
    Returns W (n_inst, n_neurons, n_features) and b (n_inst, n_features), float64.
    """
    keep_freed_memory()
    scale = np.sqrt(2.0 / (n_features + n_neurons))
    W = np.stack([rng.normal(0, scale, (n_neurons, n_features)) for rng in rngs])
    params = [W.astype(dtype), np.zeros((len(rngs), n_features), dtype)]
    adam = AdamW(params, lr=lr, weight_decay=weight_decay)
    importance = importance.astype(dtype)
    for _ in range(steps):
        X = np.stack([
            toy_batch(rng, batch_size, dist, dtype=dtype)
            for rng, dist in zip(rngs, features, strict=True)
        ])  # fmt: skip
        _, dW, db = toy_loss_and_grads(*params, X, importance, relu=relu)
        adam.step([dW, db])
    return params[0].astype(np.float64), params[1].astype(np.float64)


TOY_CHECKS = {
    "importance_decay": real(0, open_low=True),
    "lr": real(0, open_low=True),
    "weight_decay": real(0),
    "batch_size": integer(1),
    "steps": integer(1),
    "restarts": integer(1),
}


def _register_toy(name: str, *, relu: bool, doc: str) -> None:
    """Register a toy model: one trained model per trial generator."""

    def build(
        spec: ModelSpec, *, importance_decay=0.7, lr=1e-3, weight_decay=0.01,
        batch_size=1024, steps=10_000, restarts=1,
    ) -> list[Model]:  # fmt: skip
        return toy_models(
            spec.n_features, spec.n_neurons, rngs=spec.rngs, features=spec.features,
            importance_decay=importance_decay, restarts=restarts, relu=relu,
            lr=lr, weight_decay=weight_decay, batch_size=batch_size, steps=steps,
        )  # fmt: skip

    build.__name__, build.__doc__ = name, doc
    MODELS.register(name, ModelTraits(trained=True), **TOY_CHECKS)(build)


_register_toy("toy_relu", relu=True, doc="The ReLU output model ReLU(W^T W x + b).")
_register_toy("toy_linear", relu=False, doc="The linear model W^T W x + b.")


@MODELS.register(
    "activations",
    ModelTraits(trained=False, truth=False, problems=activations.cell_problems,
                rows=activations.rows),
    path=optional(path),
)
def activation_models(spec: ModelSpec, *, path=None) -> list[Network]:
    """A user's activations file (sweep/activations.py) per trial generator: its
    own held-out rows, the rest for training."""
    found = activations.load(path)  # once for every trial
    return [activations.network(found, spec.n_test, rng) for rng in spec.rngs]


@MODELS.register(
    "digits_mlp",
    ModelTraits(trained=False, truth=False, problems=digits.problems,
                rows=lambda flat: digits.N_DIGITS, costly=True),
)  # fmt: skip
def digits_models(spec: ModelSpec) -> list[Network]:
    """A digits classifier with ``neurons`` hidden ReLU units per trial generator
    (sweep/digits.py), ``n_samples`` digits held out: its hidden activations are H."""
    return [digits.digits_mlp(spec.n_neurons, spec.n_test, rng) for rng in spec.rngs]


def toy_models(
    n_features,
    n_neurons,
    *,
    rngs,
    features,
    importance_decay,
    restarts,
    relu,
    **train,
) -> list[Model]:
    """Train ``restarts`` instances per trial, all together; keep each trial's best.

    Importance I_i = importance_decay ** i. A trial's restarts and its evaluation
    batches come from its own generator only, so a trial's model does not depend on
    how many trials train beside it. The best restart has the lowest loss on one
    batch; ``train_loss`` is measured on another, so it is not biased by the choice.
    """
    importance = importance_decay ** np.arange(n_features, dtype=float)
    children = [rng.spawn(restarts + 2) for rng in rngs]  # restarts, select, report
    W, b = train_toy(
        n_features, n_neurons, rngs=[c for cs in children for c in cs[:restarts]],
        features=[dist for dist in features for _ in range(restarts)],
        importance=importance, relu=relu, **train,
    )  # fmt: skip

    def loss(rng, W, b, dist) -> np.ndarray:
        X = toy_batch(rng, EVAL_BATCH, dist, dtype=float)
        X = np.broadcast_to(X, (len(W), *X.shape))
        return toy_loss_and_grads(W, b, X, importance, relu=relu)[0]

    models = []
    for t, cs in enumerate(children):
        runs = slice(t * restarts, (t + 1) * restarts)
        dist = features[t]
        best = t * restarts + int(np.argmin(loss(cs[restarts], W[runs], b[runs], dist)))
        one = slice(best, best + 1)
        reported = float(loss(cs[restarts + 1], W[one], b[one], dist)[0])
        if not (np.isfinite(reported) and np.isfinite(W[best]).all()):
            raise FloatingPointError(
                f"training diverged (trial {t}: loss {reported}, W finite:"
                f" {bool(np.isfinite(W[best]).all())}); importance ="
                f" importance_decay ** i reaches {importance.max():.3g}"
            )
        models.append(_trained(W[best], b[best], importance, reported, relu))
    return models


EVAL_BATCH = 8192  # samples that choose the best restart, and that report its loss


def _trained(
    W: np.ndarray, b: np.ndarray, importance, loss: float, relu: bool
) -> Model:
    """A trained Model with the paper's per-trial summaries."""
    norms = np.linalg.norm(W, axis=0)
    info = {
        "n_represented": int(np.sum(norms > REPRESENTED)),
        "dims_per_feature": float(W.shape[0] / np.sum(W**2)),
        "train_loss": loss,
    }
    return Model(W=W, b=b, importance=importance, info=info, relu=relu)


class AdamW:
    """PyTorch's AdamW (betas 0.9, 0.999, eps 1e-8), updating arrays in place;
    ``betas`` one pair, or one pair per parameter (as PyTorch's parameter groups)."""

    def __init__(self, params, *, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.wd = params, lr, weight_decay
        per_param = isinstance(betas[0], tuple | list)
        self.betas = list(betas) if per_param else [tuple(betas)] * len(params)
        self.eps = eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads) -> None:
        """One update of every parameter from its gradient."""
        self.t += 1
        moments = zip(self.params, grads, self.m, self.v, self.betas, strict=True)
        for p, g, m, v, (b1, b2) in moments:
            c1, c2 = 1 - b1**self.t, 1 - b2**self.t
            if self.wd:
                p *= 1 - self.lr * self.wd
            m *= b1
            m += (1 - b1) * g
            v *= b2
            g = g * g  # a scratch array: the caller's gradient is left alone
            g *= 1 - b2
            v += g
            denom = np.sqrt(v, out=g)
            denom *= c2**-0.5  # a Python float: stays in the params' dtype
            denom += self.eps
            np.divide(m, denom, out=denom)
            denom *= self.lr / c1
            p -= denom


@cache
def keep_freed_memory() -> None:
    """Let glibc keep freed blocks instead of unmapping them (measured: 2x faster).

    A training step allocates temporaries of about 1 MB; by default glibc returns such
    blocks to the OS and page-faults fresh ones in on the next step.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
