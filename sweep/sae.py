"""A sparse autoencoder trained on H, vectorised over instances (trials).

The SAE of interpretability research (Bricken et al. 2023, "Towards Monosemanticity",
section "Sparse Autoencoder Setup"): f = ReLU(W_enc (h - b_dec) + b_enc), h_hat =
W_dec f + b_dec, loss ||h - h_hat||^2 + l1 ||f||_1, decoder columns (atoms) of unit
norm. An architecture (``ARCHITECTURES``) says which of the ReLU'd pre-activations
survive and whether the L1 penalty applies: ``relu`` (all, penalised), ``topk`` (the
k largest of each sample; Gao et al. 2024), ``batchtopk`` (the k x batch largest of a
batch; Bussmann et al. 2024: at inference, those above a threshold, the running mean
of the smallest kept activation during training), ``jumprelu`` (those above their
latent's trained threshold, an L0 penalty; Rajamanoharan et al. 2024). Shapes: I
instances, m = n_neurons, k = n_latents; every array has the instance axis first.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweep.models import AdamW, keep_freed_memory

PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")  # trained; "threshold": batchtopk's
JUMP = "log_threshold"  # jumprelu's trained thresholds theta = exp(log_threshold)
THRESHOLD_DECAY = 0.99  # batchtopk's inference threshold: a running mean over steps
THETA_INIT = 1e-3  # jumprelu's initial thresholds (Rajamanoharan et al. 2024)
# jumprelu's straight-through window: the paper's 1e-3 is for activations normalised to
# norm sqrt(d); here it left the L0 coefficient without effect in 5,000 steps.
BANDWIDTH = 0.05


def _keep_all(acts: np.ndarray, k: int, params: dict) -> np.ndarray:
    return acts > 0


def _keep_above_threshold(acts: np.ndarray, k: int, params: dict) -> np.ndarray:
    """jumprelu: the activations above their latent's threshold."""
    return acts > np.exp(params[JUMP])[:, None, :]


def _keep_topk(acts: np.ndarray, k: int, params: dict) -> np.ndarray:
    """The k largest positive activations of each sample (I, n, latents)."""
    if k >= acts.shape[2]:
        return acts > 0
    kth = -np.partition(-acts, k - 1, axis=2)[:, :, k - 1 : k]
    return (acts >= kth) & (acts > 0)


def _keep_batchtopk(acts: np.ndarray, k: int, params: dict) -> np.ndarray:
    """The k x batch largest positive activations of each instance's batch."""
    flat = acts.reshape(len(acts), -1)
    keep = min(k * acts.shape[1], flat.shape[1])
    kth = -np.partition(-flat, keep - 1, axis=1)[:, keep - 1]
    return (acts >= kth[:, None, None]) & (acts > 0)


@dataclass(frozen=True)
class Architecture:
    """Which ReLU'd pre-activations survive (``keep(acts, k, params)`` -> a boolean
    mask) and the sparsity penalty, ``l1`` times: ``"l1"`` ||f||_1, ``"l0"`` ||f||_0
    (its gradient reaches the thresholds through a straight-through estimator),
    None. A new architecture is one entry of ``ARCHITECTURES``."""

    keep: Callable[[np.ndarray, int, dict], np.ndarray]
    penalty: str | None


ARCHITECTURES = {
    "relu": Architecture(_keep_all, penalty="l1"),
    "topk": Architecture(_keep_topk, penalty=None),
    "batchtopk": Architecture(_keep_batchtopk, penalty=None),
    "jumprelu": Architecture(_keep_above_threshold, penalty="l0"),
}


def _forward(
    params: dict[str, np.ndarray], H: np.ndarray, architecture: str, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centred input (I, n, m), the mask of surviving latents (I, n, k), codes and
    the pre-activations."""
    C = H - params["b_dec"][:, None, :]
    pre = C @ params["W_enc"].transpose(0, 2, 1) + params["b_enc"][:, None, :]
    acts = np.maximum(pre, 0)
    mask = ARCHITECTURES[architecture].keep(acts, k, params)
    return C, mask, acts * mask, pre


def sae_encode(
    params: dict[str, np.ndarray], H: np.ndarray, *, architecture: str = "relu",
    k: int = 1,
) -> np.ndarray:  # fmt: skip
    """Codes F (I, n, k) >= 0 of H (I, n, m); batchtopk with a trained threshold
    keeps the activations above it (no batch at inference)."""
    if architecture == "batchtopk" and "threshold" in params:
        C = H - params["b_dec"][:, None, :]
        pre = C @ params["W_enc"].transpose(0, 2, 1) + params["b_enc"][:, None, :]
        return pre * (pre > params["threshold"][:, None, None])
    return _forward(params, H, architecture, k)[2]


def sae_decode(params: dict[str, np.ndarray], F: np.ndarray) -> np.ndarray:
    """Reconstruction H_hat (I, n, m) of codes F (I, n, k)."""
    return F @ params["W_dec"].transpose(0, 2, 1) + params["b_dec"][:, None, :]


def sae_loss_and_grads(
    params: dict[str, np.ndarray], H: np.ndarray, *, l1: float,
    architecture: str = "relu", k: int = 1, bandwidth: float = BANDWIDTH,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Loss mean_batch ||h - h_hat||^2 (+ l1 x the architecture's penalty) per
    instance, and its gradients (the surviving latents' pattern held fixed: exact
    wherever no activation ties another or a threshold; jumprelu's thresholds by the
    straight-through estimator).

    params W_enc (I, k, m), b_enc (I, k), W_dec (I, m, k), b_dec (I, m);
    H (I, batch, m).
    Returns loss (I,) and a dict of gradients shaped like params. The unit-norm
    constraint on W_dec's columns is not part of the loss (``train_sae`` projects).
    """
    C, mask, F, pre = _forward(params, H, architecture, k)
    penalty = ARCHITECTURES[architecture].penalty
    diff = sae_decode(params, F) - H
    batch = H.shape[1]
    sparse = {"l1": F, "l0": mask}[penalty].sum(axis=2) if penalty else 0.0
    loss = (np.sum(diff**2, axis=2) + l1 * sparse).mean(axis=1)
    g_out = (2.0 / batch) * diff  # dL/dh_hat (I, batch, m)
    g_f = g_out @ params["W_dec"]  # dL/df (I, batch, k)
    g_pre = (g_f + (l1 / batch if penalty == "l1" else 0.0)) * mask
    db_enc = g_pre.sum(axis=1)
    # b_dec enters twice: added to h_hat, subtracted from h before the encoder
    db_dec = g_out.sum(axis=1) - (db_enc[:, None, :] @ params["W_enc"])[:, 0, :]
    grads = {
        "W_enc": g_pre.transpose(0, 2, 1) @ C,
        "b_enc": db_enc,
        "W_dec": g_out.transpose(0, 2, 1) @ F,
        "b_dec": db_dec,
    }
    if penalty == "l0":
        grads[JUMP] = _threshold_grad(params, pre, g_f, l1 / batch, bandwidth)
    return loss, grads


def _threshold_grad(params, pre, g_f, l0, bandwidth) -> np.ndarray:
    """dL/dlog_theta by the straight-through estimator of Rajamanoharan et al. 2024:
    d/dtheta [z H(z - theta)] = -(theta / eps) K((z - theta) / eps) and d/dtheta
    H(z - theta) = -(1 / eps) K(...), K the rectangle on [-1/2, 1/2], eps the
    bandwidth."""
    theta = np.exp(params[JUMP])
    near = (np.abs(pre - theta[:, None, :]) < bandwidth / 2) / bandwidth
    d_theta = -(g_f * theta[:, None, :] * near).sum(axis=1) - l0 * near.sum(axis=1)
    return d_theta * theta


def init_sae(
    H_train: np.ndarray, *, rngs: list[np.random.Generator], n_latents: int
) -> dict[str, np.ndarray]:
    """Initial float64 params for H_train (I, n_train, m), one generator per instance.

    Gaussian unit-norm decoder atoms, W_enc = W_dec.T, b_enc = 0, b_dec = the mean of
    the instance's training data.
    """
    n_inst, _, n_neurons = H_train.shape
    W_dec = np.stack([rng.standard_normal((n_neurons, n_latents)) for rng in rngs])
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    return {
        "W_enc": W_dec.transpose(0, 2, 1).copy(),
        "b_enc": np.zeros((n_inst, n_latents)),
        "W_dec": W_dec,
        "b_dec": H_train.mean(axis=1),
    }


def train_sae(
    H_train: np.ndarray,
    *,
    rngs: list[np.random.Generator],
    n_latents: int,
    l1: float,
    lr: float,
    steps: int,
    batch_size: int,
    architecture: str = "relu",
    k: int = 1,
    bandwidth: float = BANDWIDTH,
    dtype=np.float32,
) -> dict[str, np.ndarray]:
    """Train one SAE per generator on its own H_train[i] (I, n_train, m), all together.

    Adam from ``init_sae``; each step draws a minibatch of ``batch_size`` rows with
    replacement from the instance's own training set with its own generator, so an
    instance does not depend on how many train beside it. After every step W_dec's
    columns are renormalised, and before it the part of W_dec's gradient parallel to
    each column is removed. Returns float64 params shaped as ``sae_loss_and_grads``'s
    (batchtopk: and its inference ``threshold`` (I,); jumprelu: its trained
    ``log_threshold`` (I, n_latents), from log(THETA_INIT)).
    """
    if H_train.ndim != 3 or H_train.shape[0] != len(rngs):
        raise ValueError(
            f"H_train must be (n_inst, n_train, n_neurons) with n_inst = len(rngs) = "
            f"{len(rngs)}; got shape {H_train.shape}"
        )
    keep_freed_memory()
    params = {
        name: p.astype(dtype)
        for name, p in init_sae(H_train, rngs=rngs, n_latents=n_latents).items()
    }
    names = _trained_names(architecture)
    if JUMP in names:
        params[JUMP] = np.full((len(rngs), n_latents), np.log(THETA_INIT), dtype)
    adam = AdamW([params[name] for name in names], lr=lr, weight_decay=0.0)
    H_train = H_train.astype(dtype)
    inst = np.arange(len(rngs))[:, None]
    threshold = None
    for _ in range(steps):
        rows = np.stack([rng.integers(0, H_train.shape[1], batch_size) for rng in rngs])
        batch = H_train[inst, rows]
        sae_step(params, adam, batch, l1=l1, architecture=architecture, k=k,
                 bandwidth=bandwidth)  # fmt: skip
        if architecture == "batchtopk":
            threshold = _smallest_kept(params, batch, k, threshold)
    trained = {name: p.astype(np.float64) for name, p in params.items()}
    if threshold is not None:
        trained["threshold"] = threshold.astype(np.float64)
    return trained


def _smallest_kept(params, H, k, running):
    """batchtopk: the running mean over steps of the smallest activation kept in
    each instance's batch (its inference threshold)."""
    _, mask, F, _ = _forward(params, H, "batchtopk", k)
    smallest = np.where(mask, F, np.inf).min(axis=(1, 2))
    smallest = np.where(np.isfinite(smallest), smallest, 0.0)
    if running is None:
        return smallest
    return THRESHOLD_DECAY * running + (1 - THRESHOLD_DECAY) * smallest


def _trained_names(architecture: str) -> tuple[str, ...]:
    """The params Adam trains: jumprelu's thresholds too."""
    return (*PARAMS, JUMP) if ARCHITECTURES[architecture].penalty == "l0" else PARAMS


def sae_step(
    params: dict[str, np.ndarray], adam: AdamW, H: np.ndarray, *, l1: float,
    architecture: str = "relu", k: int = 1, bandwidth: float = BANDWIDTH,
) -> None:  # fmt: skip
    """One Adam step on a batch H (I, batch, m), keeping W_dec's columns unit norm.

    Updates params in place; ``adam`` was built on ``[params[n] for n in
    _trained_names(architecture)]``.
    """
    _, grads = sae_loss_and_grads(params, H, l1=l1, architecture=architecture, k=k,
                                  bandwidth=bandwidth)  # fmt: skip
    W_dec, dW_dec = params["W_dec"], grads["W_dec"]
    # A move along an atom only changes its norm, which is renormalised away; left in,
    # Adam's per-coordinate scaling would turn it into a rotation.
    dW_dec -= np.sum(dW_dec * W_dec, axis=1, keepdims=True) * W_dec
    adam.step([grads[name] for name in _trained_names(architecture)])
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
