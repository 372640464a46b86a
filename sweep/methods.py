"""Recovery methods: X_hat from H = X @ W.T, one registered function per method.

A method is registered with its traits (``MethodTraits``): what it is given of a
trial (``uses``: the known dictionary W, the model's own decoder, or only training
activations) and whether a cell's trials are given to it together. It takes one
``Inputs`` (or, with ``together``, the list of a cell's) and its tunable parameters
as keyword-only arguments, and returns a ``Recovery``. Every L1 penalty means, per
sample, 1/2 ||h - W x||^2 + alpha ||x||_1; methods convert where sklearn's convention
differs. Unrepresented features (a column of W below ``represented_tol`` of the
longest, zeroed in the known dictionary) are recovered as 0.

sklearn and scipy are imported inside the methods that call them: a sweep's parent
process imports this module only for the registry, to validate a grid, and importing
them there would add about 0.8 s to every command before its first cell starts.
"""

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sweep import l1, sae
from sweep.checks import boolean, integer, one_of, optional, real
from sweep.models import Model, represented
from sweep.registry import Registry

METHODS = Registry("method")

DICTIONARY = "dictionary"  # uses the known dictionary W (unrepresented columns zeroed)
DECODER = "decoder"  # uses the model's own decoder: its whole W, b and output ReLU
ACTIVATIONS = "activations"  # learns from H_train alone (W only for its column count)


@dataclass(frozen=True)
class MethodTraits:
    """What a method needs, declared where it is registered."""

    uses: str  # DICTIONARY, DECODER or ACTIVATIONS
    together: bool = False  # a cell's trials are given together (trained at once)


KNOWN = MethodTraits(uses=DICTIONARY)
OWN = MethodTraits(uses=DECODER)
LEARNS = MethodTraits(uses=ACTIVATIONS)
LEARNS_TOGETHER = MethodTraits(uses=ACTIVATIONS, together=True)


@dataclass(frozen=True)
class Inputs:
    """One trial's inputs of a method; its traits say which it is given."""

    H: np.ndarray  # (n_samples, n_neurons): the test activations to recover X from
    n_features: int
    rng: np.random.Generator  # the method's own stream (seeds sklearn, inits)
    W: np.ndarray | None = None  # (n_neurons, n_features): DICTIONARY or DECODER
    H_train: np.ndarray | None = None  # (n_train, n_neurons): ACTIVATIONS
    # ACTIVATIONS: n -> the next n fresh training rows (n, n_neurons) of the trial's
    # own stream, for methods that train on as many samples as they are asked
    draw_train: Callable[[int], np.ndarray] | None = None
    b: np.ndarray | None = None  # (n_features,): DECODER
    relu: bool = True  # DECODER: the model's output goes through a ReLU


@dataclass
class Recovery:
    """What a method recovered.

    Known-dictionary methods give X_hat (n_samples, n_features). Learned methods give
    atoms (n_neurons, n_atoms) and codes (n_samples, n_atoms), H ~ codes @ atoms.T +
    offset; ``align`` then matches atoms to features and makes X_hat.
    """

    X_hat: np.ndarray | None = None
    atoms: np.ndarray | None = None
    codes: np.ndarray | None = None
    offset: np.ndarray | None = None  # (n_neurons,)
    nonneg: bool = False  # codes are >= 0: match atoms by signed cosine
    info: dict = field(default_factory=dict)  # per-trial diagnostics, e.g. converged
    # learned while training: one dict per logged step (step, samples, loss, l0,
    # dead_fraction, explained_variance on held-out samples, the atoms then)
    curves: list[dict] = field(default_factory=list)


class _Dictionary:
    """The represented columns of W, raw and unit-norm; scatters codes back."""

    def __init__(self, W: np.ndarray):
        self.mask = represented(W)
        self.W = W[:, self.mask]  # (n_neurons, n_represented)
        self.norms = np.linalg.norm(self.W, axis=0)
        self.atoms = self.W / self.norms  # unit-norm columns, for selection methods
        self.n_features = W.shape[1]

    def scatter(self, codes: np.ndarray, *, normalised: bool, **info) -> Recovery:
        """Codes (n_samples, n_represented) -> Recovery with zeros elsewhere.

        Codes against the unit-norm atoms (``normalised``) are divided by the norms.
        """
        X_hat = np.zeros((codes.shape[0], self.n_features))
        X_hat[:, self.mask] = codes / self.norms if normalised else codes
        return Recovery(X_hat, info=info)


def given(name: str, H: np.ndarray, *, model: Model, known: np.ndarray,
          H_train: np.ndarray, rng: np.random.Generator,
          draw_train: Callable[[int], np.ndarray] | None = None) -> Inputs:  # fmt: skip
    """What method ``name`` is given of one trial, by its ``uses`` trait."""
    uses = METHODS.traits[name].uses
    n = model.W.shape[1]
    if uses == DICTIONARY:
        return Inputs(H, n, rng, W=known)
    if uses == DECODER:
        return Inputs(H, n, rng, W=model.W, b=model.b, relu=model.relu)
    return Inputs(H, n, rng, H_train=H_train, draw_train=draw_train)


def recover_trials(name: str, inputs: list[Inputs], **params) -> list[Recovery]:
    """Every trial of a cell: one call per trial, or one for all where the method
    takes its trials together (each still sees only its own data)."""
    fn = METHODS[name]
    if METHODS.traits[name].together:
        return fn(inputs, **params)
    return [fn(one, **params) for one in inputs]


def recover(name: str, inputs: Inputs, **params) -> Recovery:
    """One trial's recovery by method ``name``, whatever its traits."""
    return recover_trials(name, [inputs], **params)[0]


@METHODS.register("omp", KNOWN, tol=real(0, 1), n_nonzero_coefs=optional(integer(1)))
def recover_omp(x: Inputs, *, tol=1e-6, n_nonzero_coefs=None) -> Recovery:
    """Orthogonal matching pursuit on the unit-norm columns of W.

    Stops when ||h - W x||^2 <= tol ||h||^2 (relative squared residual), or after
    ``n_nonzero_coefs`` atoms when that is set (then ``tol`` is not used).
    """
    from sklearn.linear_model import orthogonal_mp_gram

    d, H = _Dictionary(x.W), x.H
    # sklearn's tol is one absolute squared residual for all samples: scale every
    # sample to unit norm so that it becomes relative (OMP is scale-equivariant).
    scale = np.linalg.norm(H, axis=1)
    live = scale > 0
    Hn = H[live] / scale[live, None]
    codes = np.zeros((H.shape[0], d.atoms.shape[1]))
    if live.any() and d.atoms.shape[1]:
        gram, Xy = d.atoms.T @ d.atoms, d.atoms.T @ Hn.T
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # stopped at full rank
            if n_nonzero_coefs is None:
                Z = orthogonal_mp_gram(
                    gram, Xy, tol=tol, norms_squared=np.ones(len(Hn))
                )
            else:
                n = min(n_nonzero_coefs, d.atoms.shape[1])
                Z = orthogonal_mp_gram(gram, Xy, n_nonzero_coefs=n)
        codes[live] = Z.reshape(len(gram), -1).T * scale[live, None]
    return d.scatter(codes, normalised=True)


@METHODS.register(
    "lasso_lars", KNOWN, alpha=real(0), positive=boolean, max_iter=integer(1)
)
def recover_lasso_lars(
    x: Inputs, *, alpha=1e-3, positive=False, max_iter=1000
) -> Recovery:
    """L1-regularised least squares by LARS (sklearn ``sparse_encode``)."""
    from sklearn.decomposition import sparse_encode
    from sklearn.exceptions import ConvergenceWarning

    d = _Dictionary(x.W)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        codes = sparse_encode(
            x.H, d.W.T, algorithm="lasso_lars", alpha=alpha, positive=positive,
            max_iter=max_iter, n_jobs=1,
        )  # fmt: skip
    return d.scatter(codes, normalised=False)


@METHODS.register(
    "lasso",
    KNOWN,
    alpha=real(0, open_low=True),
    positive=boolean,
    max_iter=integer(1),
    tol=real(0, open_low=True),
)
def recover_lasso(
    x: Inputs, *, alpha=1e-3, positive=False, max_iter=1000, tol=1e-6
) -> Recovery:
    """L1-regularised least squares by coordinate descent (sklearn ``Lasso``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    d = _Dictionary(x.W)
    # Lasso minimises 1/(2 n_rows) ||h - W x||^2 + a ||x||_1 with n_rows = n_neurons.
    model = Lasso(
        alpha=alpha / x.W.shape[0], fit_intercept=False, positive=positive,
        max_iter=max_iter, tol=tol, precompute=d.W.T @ d.W,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as `converged`
        model.fit(d.W, x.H.T)
    converged = np.mean(np.asarray(model.n_iter_) < max_iter)
    codes = model.coef_.reshape(x.H.shape[0], -1)
    return d.scatter(codes, normalised=False, converged=float(converged))


@METHODS.register("threshold", KNOWN, alpha=real(0), positive=boolean)
def recover_threshold(x: Inputs, *, alpha=0.1, positive=False) -> Recovery:
    """Soft thresholding: x_i = soft(W_i . h, alpha) / ||W_i||^2.

    The exact L1 solution when the columns of W are orthogonal (one alpha convention).
    """
    from sklearn.decomposition import sparse_encode

    d = _Dictionary(x.W)
    codes = sparse_encode(
        x.H, d.W.T, algorithm="threshold", alpha=alpha, positive=positive, n_jobs=1
    )
    return d.scatter(codes / d.norms**2, normalised=False)


@METHODS.register(
    "basis_pursuit", KNOWN, positive=boolean, solver=one_of("lars", "admm"),
    max_iter=integer(1), admm_iter=integer(1),
)  # fmt: skip
def recover_basis_pursuit(
    x: Inputs, *, positive=False, solver="lars", max_iter=500, admm_iter=1000
) -> Recovery:
    """Exact L1 minimisation, min ||x||_1 s.t. W x = h (``l1``): by the LARS path to
    alpha = 0 per sample (at most ``max_iter`` steps), or by ADMM over all samples
    together (``admm_iter`` iterations), each certified optimal or not converged."""
    d = _Dictionary(x.W)
    codes, converged = l1.solve(
        d.W, x.H, positive=positive, solver=solver, max_iter=max_iter,
        admm_iter=admm_iter,
    )  # fmt: skip
    return d.scatter(codes, normalised=False, converged=converged)


@METHODS.register("lstsq", KNOWN)
def recover_lstsq(x: Inputs) -> Recovery:
    """Minimum-norm least squares: the baseline that uses no sparsity at all."""
    d = _Dictionary(x.W)
    codes = np.linalg.lstsq(d.W, x.H.T, rcond=None)[0].T
    return d.scatter(codes, normalised=False)


@METHODS.register("nnls", KNOWN)
def recover_nnls(x: Inputs) -> Recovery:
    """Nonnegative least squares (scipy ``nnls``: one call per sample, none batched)."""
    from scipy.optimize import nnls

    d = _Dictionary(x.W)
    codes = np.array([nnls(d.W, h)[0] for h in x.H]).reshape(x.H.shape[0], -1)
    return d.scatter(codes, normalised=False)


@METHODS.register("readout", OWN)
def recover_readout(x: Inputs) -> Recovery:
    """The model's own decoder on its whole W: ReLU(W.T h + b), or W.T h + b for a
    linear model (b = 0 for a random W): exactly the model's output."""
    out = x.H @ x.W + x.b
    return Recovery(np.maximum(out, 0.0) if x.relu else out)


# --- methods that learn the dictionary from H_train alone ------------------------


def _seed(rng: np.random.Generator) -> int:
    """An integer seed for sklearn, drawn from the cell's method stream."""
    return int(rng.integers(2**31 - 1))


@METHODS.register(
    "dict_learning",
    LEARNS,
    alpha=real(0, open_low=True),
    transform_alpha=real(0, open_low=True),
    n_components=optional(integer(1)),
    batch_size=integer(1),
    max_iter=integer(1),
    positive=boolean,
)
def recover_dict_learning(
    x: Inputs, *, alpha=0.1, transform_alpha=0.1, n_components=None,
    batch_size=256, max_iter=10, positive=True,
) -> Recovery:  # fmt: skip
    """Mini-batch dictionary learning (sklearn) on H_train; codes by L1 through it.

    ``alpha`` is the sparsity of learning, ``transform_alpha`` that of the test codes
    (1/2 ||h - D z||^2 + alpha ||z||_1 both); n_components defaults to n_features.
    Positive codes need coordinate descent.
    """
    from sklearn.decomposition import MiniBatchDictionaryLearning, sparse_encode
    from sklearn.exceptions import ConvergenceWarning

    model = MiniBatchDictionaryLearning(
        n_components=n_components or x.n_features, alpha=alpha, batch_size=batch_size,
        max_iter=max_iter, tol=0.0, max_no_improvement=None,  # exactly max_iter passes
        fit_algorithm="cd" if positive else "lars",
        positive_code=positive, random_state=_seed(x.rng), n_jobs=1,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        D = model.fit(x.H_train).components_  # (n_atoms, n_neurons), unit rows
        fit_seconds = time.perf_counter() - start
        codes = sparse_encode(
            x.H, D, algorithm="lasso_cd" if positive else "lasso_lars",
            alpha=transform_alpha, positive=positive, n_jobs=1,
        )  # fmt: skip
    info = {"fit_seconds": fit_seconds}
    return Recovery(atoms=D.T, codes=codes, nonneg=positive, info=info)


@METHODS.register(
    "ica",
    LEARNS,
    n_components=optional(integer(1)),
    max_iter=integer(1),
    tol=real(0, open_low=True),
)
def recover_ica(x: Inputs, *, n_components=None, max_iter=400, tol=1e-4) -> Recovery:
    """FastICA (sklearn) on H_train: at most n_neurons sources, their mean restored."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    m = x.H.shape[1]
    # no more sources than H_train's rank: whitening divides by its singular values,
    # and a neuron that never fires (a real network's) left NaN
    rank = np.linalg.matrix_rank(x.H_train - x.H_train.mean(axis=0))
    ica = FastICA(
        n_components=max(1, min(n_components or m, m, rank)), whiten="unit-variance",
        max_iter=max_iter, tol=tol, random_state=_seed(x.rng),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as `converged`
        # whitening divides by every singular value, then keeps the rank's first
        warnings.filterwarnings("ignore", "invalid value encountered in divide")
        start = time.perf_counter()
        ica.fit(x.H_train)
        fit_seconds = time.perf_counter() - start
    codes = x.H @ ica.components_.T  # the sources without their mean removed
    offset = ica.mean_ - ica.mean_ @ ica.components_.T @ ica.mixing_.T
    info = {"converged": float(ica.n_iter_ < max_iter), "fit_seconds": fit_seconds}
    return Recovery(atoms=ica.mixing_, codes=codes, offset=offset, info=info)


@METHODS.register(
    "sae",
    LEARNS_TOGETHER,
    architecture=one_of(*sae.ARCHITECTURES),
    expansion=real(0, open_low=True),
    k=integer(1),
    l1=real(0),
    target_l0=optional(real(0, open_low=True)),
    bandwidth=real(0, open_low=True),
    prefixes=integer(1),
    aux_k=real(0),
    resample=boolean,
    train_samples=optional(integer(1)),
    steps=integer(1),
    batch_size=integer(1),
    lr=real(0, open_low=True),
    schedule=one_of(*sae.SCHEDULES),
    log_every=integer(0),
)
def recover_sae(
    xs: list[Inputs], *, architecture="relu", expansion=1.0, k=5, l1=0.3,
    target_l0=None, bandwidth=sae.BANDWIDTH, prefixes=3, aux_k=sae.AUX_K,
    resample=False, train_samples=None, steps=5000, batch_size=256, lr=3e-3,
    schedule="constant", log_every=500,
) -> list[Recovery]:  # fmt: skip
    """Sparse autoencoders (sweep/sae.py) of a cell's trials, trained together, each
    on its own data; atoms = decoder columns, codes >= 0.

    n_latents = round(expansion x n_features). Training: ``train_samples`` fresh
    samples from each trial's stream, or (null) ``steps`` batches drawn from its
    H_train. ``target_l0``: relu steers its L1 coefficient there; the TopK family
    takes it as its k (a sweep over L0 is one key). Every other key is a field of
    ``sae.Setup``; curves every ``log_every`` steps on the test H (never trained on).
    """
    setup = sae.Setup(
        max(1, round(expansion * xs[0].n_features)), architecture, k=k, l1=l1,
        target_l0=target_l0, bandwidth=bandwidth, prefixes=prefixes, aux_k=aux_k,
        resample=resample, lr=lr, schedule=schedule, batch_size=batch_size,
        steps=sae.n_steps(steps=steps, batch_size=batch_size,
                          train_samples=train_samples),
        log_every=log_every,
    )  # fmt: skip
    rngs = [x.rng for x in xs]
    start = time.perf_counter()
    if train_samples is None:
        source = sae.Resampled(np.stack([x.H_train for x in xs]), rngs)
    else:
        source = sae.Fresh([x.draw_train for x in xs], batch_size)
    H = np.stack([x.H for x in xs])
    done = sae.train_sae(source, rngs=rngs, setup=setup, held_out=H)
    info = {"fit_seconds": (time.perf_counter() - start) / len(xs)}  # one share each
    codes = sae.sae_encode(done.params, H, architecture=architecture,
                           k=setup.per_sample)  # fmt: skip
    params, penalised = done.params, sae.ARCHITECTURES[architecture].penalty
    return [
        Recovery(
            atoms=params["W_dec"][t], codes=codes[t], offset=params["b_dec"][t],
            nonneg=True, curves=[_trial(c, t) for c in done.curves],
            info=info | {"sparsity_coefficient": float(done.coef[t]) if penalised
                         else float("nan"),
                         "train_dead_fraction": float(done.dead_fraction[t])},
        )
        for t in range(len(xs))
    ]  # fmt: skip


def _trial(logged: dict, t: int) -> dict:
    """Trial t's values of a dict of per-instance arrays (scalars stay)."""
    return {k: v[t] if isinstance(v, np.ndarray) else v for k, v in logged.items()}
