"""Recovery methods: X_hat from H = X @ W.T, one registered function per method.

Every method has the signature ``fn(H, W, *, H_train, b, rng, **params) -> Recovery``
with H (n_samples, n_neurons), W (n_neurons, n_features), b (n_features,). Methods in
``LEARNED`` never look at W (beyond its number of columns, the default number of
atoms): they learn a dictionary from H_train (n_train, n_neurons) alone.
Every L1 penalty means, per sample, 1/2 ||h - W x||^2 + alpha ||x||_1; methods
convert where sklearn's convention differs. Unrepresented features (a column of W
below ``models.UNREPRESENTED`` of the longest) are recovered as 0.

sklearn and scipy are imported inside the methods that call them: a sweep's parent
process imports this module only for the registry, to validate a grid, and importing
them there would add about 0.8 s to every command before its first cell starts.
"""

import inspect
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from sweep.checks import boolean, integer, optional, real
from sweep.models import represented
from sweep.registry import Registry
from sweep.sae import sae_encode, train_sae

METHODS = Registry("method")


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


@METHODS.register("omp", tol=real(0, 1), n_nonzero_coefs=optional(integer(1)))
def recover_omp(H, W, *, H_train, b, rng, tol=1e-6, n_nonzero_coefs=None) -> Recovery:
    """Orthogonal matching pursuit on the unit-norm columns of W.

    Stops when ||h - W x||^2 <= tol ||h||^2 (relative squared residual), or after
    ``n_nonzero_coefs`` atoms when that is set (then ``tol`` is not used).
    """
    from sklearn.linear_model import orthogonal_mp_gram

    d = _Dictionary(W)
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


@METHODS.register("lasso_lars", alpha=real(0), positive=boolean, max_iter=integer(1))
def recover_lasso_lars(
    H, W, *, H_train, b, rng, alpha=1e-3, positive=False, max_iter=1000
) -> Recovery:
    """L1-regularised least squares by LARS (sklearn ``sparse_encode``)."""
    from sklearn.decomposition import sparse_encode
    from sklearn.exceptions import ConvergenceWarning

    d = _Dictionary(W)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        codes = sparse_encode(
            H,
            d.W.T,
            algorithm="lasso_lars",
            alpha=alpha,
            positive=positive,
            max_iter=max_iter,
            n_jobs=1,
        )
    return d.scatter(codes, normalised=False)


@METHODS.register(
    "lasso",
    alpha=real(0, open_low=True),
    positive=boolean,
    max_iter=integer(1),
    tol=real(0, open_low=True),
)
def recover_lasso(
    H, W, *, H_train, b, rng, alpha=1e-3, positive=False, max_iter=1000, tol=1e-6
) -> Recovery:
    """L1-regularised least squares by coordinate descent (sklearn ``Lasso``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    d = _Dictionary(W)
    # Lasso minimises 1/(2 n_rows) ||h - W x||^2 + a ||x||_1 with n_rows = n_neurons.
    model = Lasso(
        alpha=alpha / W.shape[0],
        fit_intercept=False,
        positive=positive,
        max_iter=max_iter,
        tol=tol,
        precompute=d.W.T @ d.W,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as `converged`
        model.fit(d.W, H.T)
    converged = np.mean(np.asarray(model.n_iter_) < max_iter)
    codes = model.coef_.reshape(H.shape[0], -1)
    return d.scatter(codes, normalised=False, converged=float(converged))


@METHODS.register("threshold", alpha=real(0), positive=boolean)
def recover_threshold(H, W, *, H_train, b, rng, alpha=0.1, positive=False) -> Recovery:
    """Soft thresholding: x_i = soft(W_i . h, alpha) / ||W_i||^2.

    The exact L1 solution when the columns of W are orthogonal (one alpha convention).
    """
    from sklearn.decomposition import sparse_encode

    d = _Dictionary(W)
    codes = sparse_encode(
        H, d.W.T, algorithm="threshold", alpha=alpha, positive=positive, n_jobs=1
    )
    return d.scatter(codes / d.norms**2, normalised=False)


@METHODS.register("basis_pursuit", positive=boolean, max_iter=integer(1))
def recover_basis_pursuit(
    H, W, *, H_train, b, rng, positive=False, max_iter=500
) -> Recovery:
    """Exact L1 minimisation, min ||x||_1 s.t. W x = h, by the LARS path to alpha = 0.

    One ``lars_path_gram`` call per sample: sklearn has no batched LARS path.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lars_path_gram

    d = _Dictionary(W)
    gram, Xy = d.W.T @ d.W, H @ d.W
    codes = np.zeros((H.shape[0], d.W.shape[1]))
    n_iter = np.zeros(H.shape[0], dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, xy in enumerate(Xy):
            _, _, codes[i], n_iter[i] = lars_path_gram(
                xy,
                gram,
                n_samples=W.shape[0],
                alpha_min=0.0,
                method="lasso",
                positive=positive,
                max_iter=max_iter,
                return_path=False,
                return_n_iter=True,
            )
    converged = float(np.mean(n_iter < max_iter))
    return d.scatter(codes, normalised=False, converged=converged)


@METHODS.register("lstsq")
def recover_lstsq(H, W, *, H_train, b, rng) -> Recovery:
    """Minimum-norm least squares: the baseline that uses no sparsity at all."""
    d = _Dictionary(W)
    codes = np.linalg.lstsq(d.W, H.T, rcond=None)[0].T
    return d.scatter(codes, normalised=False)


@METHODS.register("nnls")
def recover_nnls(H, W, *, H_train, b, rng) -> Recovery:
    """Nonnegative least squares (scipy ``nnls``: one call per sample, none batched)."""
    from scipy.optimize import nnls

    d = _Dictionary(W)
    codes = np.array([nnls(d.W, h)[0] for h in H]).reshape(H.shape[0], -1)
    return d.scatter(codes, normalised=False)


@METHODS.register("readout")
def recover_readout(H, W, *, H_train, b, rng, relu=True) -> Recovery:
    """The model's own decoder: ReLU(W.T h + b), or W.T h + b for a linear model
    (``relu`` comes from the model, not the config; b = 0 for a random W)."""
    out = H @ W + b
    return Recovery(np.maximum(out, 0.0) if relu else out)


# --- methods that learn the dictionary from H_train alone ------------------------

LEARNED = frozenset({"dict_learning", "ica", "sae"})


def _seed(rng: np.random.Generator) -> int:
    """An integer seed for sklearn, drawn from the cell's method stream."""
    return int(rng.integers(2**31 - 1))


@METHODS.register(
    "dict_learning",
    alpha=real(0, open_low=True),
    transform_alpha=real(0, open_low=True),
    n_components=optional(integer(1)),
    batch_size=integer(1),
    max_iter=integer(1),
    positive=boolean,
)
def recover_dict_learning(
    H, W, *, H_train, b, rng, alpha=0.1, transform_alpha=1e-3, n_components=None,
    batch_size=256, max_iter=10, positive=True,
) -> Recovery:  # fmt: skip
    """Mini-batch dictionary learning (sklearn) on H_train; codes by L1 through it.

    ``alpha`` is the sparsity of learning, ``transform_alpha`` that of the test codes
    (1/2 ||h - D z||^2 + alpha ||z||_1 both). Positive codes need coordinate descent.
    """
    from sklearn.decomposition import MiniBatchDictionaryLearning, sparse_encode
    from sklearn.exceptions import ConvergenceWarning

    model = MiniBatchDictionaryLearning(
        n_components=n_components or W.shape[1], alpha=alpha, batch_size=batch_size,
        max_iter=max_iter, tol=0.0, max_no_improvement=None,  # exactly max_iter passes
        fit_algorithm="cd" if positive else "lars",
        positive_code=positive, random_state=_seed(rng), n_jobs=1,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        D = model.fit(H_train).components_  # (n_atoms, n_neurons), unit rows
        fit_seconds = time.perf_counter() - start
        codes = sparse_encode(
            H, D, algorithm="lasso_cd" if positive else "lasso_lars",
            alpha=transform_alpha, positive=positive, n_jobs=1,
        )  # fmt: skip
    info = {"fit_seconds": fit_seconds}
    return Recovery(atoms=D.T, codes=codes, nonneg=positive, info=info)


@METHODS.register(
    "ica",
    n_components=optional(integer(1)),
    max_iter=integer(1),
    tol=real(0, open_low=True),
)
def recover_ica(
    H, W, *, H_train, b, rng, n_components=None, max_iter=400, tol=1e-4
) -> Recovery:
    """FastICA (sklearn) on H_train: at most n_neurons sources, their mean restored."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    k = min(n_components or H.shape[1], H.shape[1])
    ica = FastICA(
        n_components=k, whiten="unit-variance", max_iter=max_iter, tol=tol,
        random_state=_seed(rng),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as `converged`
        start = time.perf_counter()
        ica.fit(H_train)
        fit_seconds = time.perf_counter() - start
    codes = H @ ica.components_.T  # the sources without their mean removed
    offset = ica.mean_ - ica.mean_ @ ica.components_.T @ ica.mixing_.T
    info = {"converged": float(ica.n_iter_ < max_iter), "fit_seconds": fit_seconds}
    return Recovery(atoms=ica.mixing_, codes=codes, offset=offset, info=info)


def recover_trials(
    name: str, Hs, Ws, *, H_trains, bs, rngs, relus, **params
) -> list[Recovery]:
    """Every trial of a cell: one call per trial, or one for all where a method
    trains its trials together (``BATCHED``; each still sees only its own data).
    ``relus``: whether each trial's model decodes through a ReLU (for ``readout``)."""
    if name in BATCHED:
        return BATCHED[name](Hs, Ws, H_trains=H_trains, rngs=rngs, **params)
    fn = METHODS[name]
    takes_relu = "relu" in inspect.signature(fn).parameters
    calls = zip(Hs, Ws, H_trains, bs, rngs, relus, strict=True)
    return [
        fn(
            H,
            W,
            H_train=Ht,
            b=b,
            rng=rng,
            **params,
            **({"relu": r} if takes_relu else {}),
        )
        for H, W, Ht, b, rng, r in calls
    ]


def recover_sae_trials(
    Hs, Ws, *, H_trains, rngs, expansion, l1, lr, steps, batch_size
) -> list[Recovery]:
    """Sparse autoencoders of all trials, trained together (sweep/sae.py)."""
    k = max(1, round(expansion * Ws[0].shape[1]))
    start = time.perf_counter()
    params = train_sae(
        np.stack(H_trains), rngs=rngs, n_latents=k, l1=l1, lr=lr, steps=steps,
        batch_size=batch_size,
    )  # fmt: skip
    info = {"fit_seconds": (time.perf_counter() - start) / len(Hs)}  # one share each
    codes = sae_encode(params, np.stack(Hs))
    return [
        Recovery(atoms=params["W_dec"][t], codes=codes[t], offset=params["b_dec"][t],
                 nonneg=True, info=dict(info))
        for t in range(len(Hs))
    ]  # fmt: skip


BATCHED = {"sae": recover_sae_trials}


@METHODS.register(
    "sae",
    expansion=real(0, open_low=True),
    l1=real(0),
    lr=real(0, open_low=True),
    steps=integer(1),
    batch_size=integer(1),
)
def recover_sae(
    H, W, *, H_train, b, rng, expansion=1.0, l1=0.3, lr=3e-3, steps=5000,
    batch_size=256,
) -> Recovery:  # fmt: skip
    """A sparse autoencoder trained on H_train (sweep/sae.py); atoms = decoder columns.

    n_latents = round(expansion x n_features); the codes are nonnegative.
    """
    (recovery,) = recover_sae_trials(
        [H], [W], H_trains=[H_train], rngs=[rng], expansion=expansion, l1=l1, lr=lr,
        steps=steps, batch_size=batch_size,
    )  # fmt: skip
    return recovery
