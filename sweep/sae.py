"""Sparse autoencoders trained on H, vectorised over instances (trials).

The SAE of interpretability research (Bricken et al. 2023, "Towards Monosemanticity",
section "Sparse Autoencoder Setup"): f = ReLU(W_enc (h - b_dec) + b_enc), h_hat =
W_dec f + b_dec, loss ||h - h_hat||^2 + l1 ||f||_1, decoder columns (atoms) of unit
norm. An architecture (``ARCHITECTURES``) says which of the ReLU'd pre-activations
survive, whether a sparsity penalty applies, and whether nested prefixes of the
dictionary reconstruct on their own: ``relu`` (all, penalised), ``topk`` (the k
largest of each sample; Gao et al. 2024), ``batchtopk`` (the k x batch largest of a
batch; Bussmann et al. 2024: at inference, those above a threshold, the running mean
of the smallest kept activation during training), ``jumprelu`` (those above their
latent's trained threshold, an L0 penalty; Rajamanoharan et al. 2024), ``matryoshka``
(batchtopk whose first n/2^j latents, each prefix, also reconstruct h alone; Bussmann
et al. 2025).

Training (``train_sae``) draws its batches from a ``Resampled`` fixed training set or
a ``Fresh`` stream of new samples, and can steer the penalty's coefficient to a
target L0, revive dead latents (an auxiliary-k loss for the TopK family, resampling),
and log curves on held-out samples. Shapes: I instances, m = n_neurons, L =
n_latents; every array has the instance axis first.
"""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from sweep.metrics import explained_variance
from sweep.models import AdamW, keep_freed_memory
from sweep.thresholds import ACTIVE, DEAD

PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")  # trained; "threshold": batchtopk's
JUMP = "log_threshold"  # jumprelu's trained thresholds theta = exp(log_threshold)
THRESHOLD_DECAY = 0.99  # batchtopk's inference threshold: a running mean over steps
# jumprelu's initial thresholds: the paper's 1e-3 is for activations normalised to
# norm sqrt(d); here pre-activations are of the features' magnitudes (~0.5) and Adam
# moves log(theta) by at most about lr a step: from 1e-3 the thresholds took ~1,000
# steps to reach the data's scale while target_l0's controller wound the coefficient up
THETA_INIT = 0.1
# jumprelu's thresholds: Adam's second-moment memory 1 / (1 - beta2) = 100 steps, below
# the 200 steps per e-fold over which target_l0 rescales the coefficient (which scales
# their gradient); with 0.999 the memory of an early, large coefficient shrank their
# steps ~1e4-fold and froze them (measured: L0 0.89 for a target of 4)
THRESHOLD_BETAS = (0.9, 0.99)
# jumprelu's straight-through window: the paper's 1e-3 is for activations normalised to
# norm sqrt(d); here it left the L0 coefficient without effect in 5,000 steps.
BANDWIDTH = 0.05
AUX_K = 1 / 32  # the auxiliary-k loss's coefficient (Gao et al. 2024, appendix B.1)
DEAD_WINDOW = 20_000  # a latent not fired in this many training samples is dead
# target_l0: the coefficient holds its start for the first 20 % of the steps. The
# L0 of an untrained SAE says nothing of its coefficient: steered from the first step,
# relu's coefficient rose while the encoder was still random and killed latents for
# good (512 features, sparsity 0.01: dead 17 %, mcc_matched 0.869; held first: 6 %,
# 0.943; a fixed coefficient of about the same L0: 4 %, 0.960)
STEER_AFTER = 0.2
SMOOTHING = 0.9  # target_l0's proportional term: the batch L0's error, smoothed
RESAMPLE_AT = (0.2, 0.4, 0.6, 0.8)  # resampling: at these shares of the steps
RESAMPLE_SCALE = 0.2  # a resampled encoder row: 0.2 x the live rows' mean norm
DECAY_SHARE = 0.2  # schedule linear_decay: lr falls to 0 over the last 20 % of steps
SCHEDULES = ("constant", "cosine", "linear_decay")
ARGMAX_ROUNDS = 8  # topk: below this k, argmax passes; above, np.partition
SAMPLE_STRIDE = 17  # batchtopk: the lower bound's sample (17: no power of 2's divisor)
CHUNK_ROWS = 8192  # a Fresh stream draws this many samples per instance at a time


def _keep_all(acts: np.ndarray, k: int, params: dict) -> np.ndarray:
    return acts > 0


def _keep_above_threshold(acts: np.ndarray, k: int, params: dict) -> np.ndarray:
    """jumprelu: the activations above their latent's threshold."""
    return acts > np.exp(params[JUMP])[:, None, :]


def _keep_topk(acts: np.ndarray, k: float, params: dict) -> np.ndarray:
    """The k largest positive activations of each sample (I, n, latents); k rounded
    to an integer >= 1."""
    k, n_latents = max(1, round(k)), acts.shape[2]
    if k >= n_latents:
        return acts > 0
    if k <= ARGMAX_ROUNDS:  # a few passes of argmax beat a partition of every row
        rest = acts.copy()
        for _ in range(k - 1):
            top = rest.argmax(axis=2)[:, :, None]
            np.put_along_axis(rest, top, -np.inf, axis=2)
        kth = rest.max(axis=2, keepdims=True)
    else:  # no negated copy: the (L - k)-th smallest is the k-th largest
        kth = np.partition(acts, n_latents - k, axis=2)[:, :, n_latents - k, None]
    return (acts >= kth) & (acts > 0)


def _kth_largest(values: np.ndarray, keep: int) -> np.float32:
    """The keep-th largest of a 1-d array, found among the values above a lower bound
    estimated on every SAMPLE_STRIDE-th value (checked by counting: exact)."""
    sample = values[::SAMPLE_STRIDE]
    rank = min(sample.size, 2 * (keep // SAMPLE_STRIDE) + 16)  # well below the kth
    bound = np.partition(sample, sample.size - rank)[sample.size - rank]
    above = values[values >= bound]
    if above.size < keep:  # the bound was too high: every value
        above = values
    return np.partition(above, above.size - keep)[above.size - keep]


def _keep_batchtopk(acts: np.ndarray, k: float, params: dict) -> np.ndarray:
    """The k x batch largest positive activations of each instance's batch (k may
    be fractional: round(k x batch) of them)."""
    flat = acts.reshape(len(acts), -1)
    keep = min(max(1, round(k * acts.shape[1])), flat.shape[1])
    kth = np.array([_kth_largest(row, keep) for row in flat])
    return (acts >= kth[:, None, None]) & (acts > 0)


@dataclass(frozen=True)
class Architecture:
    """Which ReLU'd pre-activations survive (``keep(acts, k, params)`` -> a boolean
    mask); the sparsity penalty, ``l1`` times: ``"l1"`` ||f||_1, ``"l0"`` ||f||_0 (its
    gradient reaches the thresholds through a straight-through estimator), or None
    (sparsity by k: the TopK family, which the auxiliary-k loss serves); whether
    inference keeps what exceeds a threshold learned in training (``batch``) and
    whether nested prefixes reconstruct on their own (``nested``). A new architecture
    is one entry of ``ARCHITECTURES``."""

    keep: Callable[[np.ndarray, float, dict], np.ndarray]
    penalty: str | None
    batch: bool = False
    nested: bool = False


@dataclass(frozen=True)
class Gains:
    """How ``Steering`` moves a penalty's coefficient towards target_l0."""

    integral: float
    proportional: float = 0.0


# L1's L0 follows its coefficient within a few steps: an integral alone reaches and
# holds a target (measured on sae_bench: within 3 %). jumprelu's thresholds follow
# their L0 coefficient at ~lr a step: an integral alone wound the coefficient down
# while they caught up, and L0 overshot (sae_bench: 8.7 for a target of 5, 19.7 for
# 8); the proportional term damps it (4.9 and 8.4; 2.95 for 3).
GAINS = {"l1": Gains(0.01), "l0": Gains(0.005, proportional=2.0)}

ARCHITECTURES = {
    "relu": Architecture(_keep_all, penalty="l1"),
    "topk": Architecture(_keep_topk, penalty=None),
    "batchtopk": Architecture(_keep_batchtopk, penalty=None, batch=True),
    "jumprelu": Architecture(_keep_above_threshold, penalty="l0"),
    "matryoshka": Architecture(_keep_batchtopk, penalty=None, batch=True, nested=True),
}


@dataclass(frozen=True)
class Setup:
    """An SAE and how it trains: method=sae's keys (README, "Sparse autoencoders")."""

    n_latents: int
    architecture: str = "relu"
    k: float = 5  # the TopK family: latents per sample (``per_sample``)
    l1: float = 0.3  # relu: the L1 coefficient (its start value when target_l0 steers
    target_l0: float | None = None  # it to a target L0); jumprelu: the L0 one
    bandwidth: float = BANDWIDTH  # jumprelu
    prefixes: int = 3  # matryoshka: nested dictionaries of n/2^j latents, j < prefixes
    aux_k: float = AUX_K  # the TopK family: the auxiliary-k loss's coefficient (0: off)
    resample: bool = False  # reinitialise dead latents at RESAMPLE_AT
    lr: float = 3e-3
    schedule: str = "constant"
    steps: int = 5000
    batch_size: int = 256
    log_every: int = 0  # curves on held-out samples every this many steps (0: none)

    @property
    def widths(self) -> tuple[int, ...]:
        """The prefixes that reconstruct on their own, the whole dictionary last."""
        if not ARCHITECTURES[self.architecture].nested:
            return (self.n_latents,)
        return tuple(sorted({math.ceil(self.n_latents / 2**j)
                             for j in range(self.prefixes)}))  # fmt: skip

    @property
    def per_sample(self) -> float:
        """The TopK family's latents per sample: target_l0 when it is set, else k."""
        topk_family = ARCHITECTURES[self.architecture].penalty is None
        return self.target_l0 if topk_family and self.target_l0 is not None else self.k

    @property
    def steered(self) -> bool:
        """Whether the penalty's coefficient is steered to ``target_l0``."""
        penalised = ARCHITECTURES[self.architecture].penalty is not None
        return penalised and self.target_l0 is not None

    @property
    def auxiliary(self) -> bool:
        """Whether the auxiliary-k loss applies (the TopK family, aux_k > 0)."""
        return ARCHITECTURES[self.architecture].penalty is None and self.aux_k > 0


def n_steps(*, steps: int, batch_size: int, train_samples: int | None) -> int:
    """Adam steps of training: ``steps`` on a fixed training set, or as many batches
    as ``train_samples`` fresh samples fill."""
    return steps if train_samples is None else math.ceil(train_samples / batch_size)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The learning rate's factor at ``step`` (0-based) of ``steps``."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / steps))
    if schedule == "linear_decay":
        return min(1.0, (steps - step) / (DECAY_SHARE * steps))
    return 1.0


def _forward(
    params: dict[str, np.ndarray], H: np.ndarray, architecture: str, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centred input (I, n, m), the mask of surviving latents (I, n, L), codes and
    the pre-activations."""
    C = H - params["b_dec"][:, None, :]
    pre = C @ params["W_enc"].transpose(0, 2, 1)
    pre += params["b_enc"][:, None, :]
    acts = np.maximum(pre, 0)
    keep = ARCHITECTURES[architecture].keep
    mask = keep(acts, k, params)
    if keep is not _keep_all:  # relu: acts * (acts > 0) is acts
        acts *= mask
    return C, mask, acts, pre


def sae_encode(
    params: dict[str, np.ndarray], H: np.ndarray, *, architecture: str = "relu",
    k: int = 1,
) -> np.ndarray:  # fmt: skip
    """Codes F (I, n, L) >= 0 of H (I, n, m); batchtopk and matryoshka with a trained
    threshold keep the activations above it (no batch at inference)."""
    if ARCHITECTURES[architecture].batch and "threshold" in params:
        C = H - params["b_dec"][:, None, :]
        pre = C @ params["W_enc"].transpose(0, 2, 1) + params["b_enc"][:, None, :]
        return pre * (pre > params["threshold"][:, None, None])
    return _forward(params, H, architecture, k)[2]


def sae_decode(params: dict[str, np.ndarray], F: np.ndarray) -> np.ndarray:
    """Reconstruction H_hat (I, n, m) of codes F (I, n, L)."""
    return F @ params["W_dec"].transpose(0, 2, 1) + params["b_dec"][:, None, :]


@dataclass
class Pass:
    """A batch through the SAE: the loss (I,) and its gradients, the batch's mean
    number of surviving latents per sample (I,), the latents that fired (I, L), and
    the smallest kept activation (I,) (the batch threshold; inf: none kept; None for
    an architecture without one)."""

    loss: np.ndarray
    grads: dict[str, np.ndarray]
    l0: np.ndarray
    fired: np.ndarray
    smallest: np.ndarray | None


def sae_pass(
    params: dict[str, np.ndarray], H: np.ndarray, setup: Setup, *,
    coef: np.ndarray | float | None = None, dead: np.ndarray | None = None,
) -> Pass:  # fmt: skip
    """The loss per instance and its gradients on a batch H (I, batch, m).

    Loss: the mean over the batch of sum over the prefixes (one, the whole
    dictionary, unless matryoshka) of ||h - h_hat_prefix||^2, plus ``coef`` (I,)
    (default ``setup.l1``) x the architecture's penalty, plus for the TopK family with
    ``dead`` latents (I, L) the auxiliary-k loss: aux_k x min(n_dead / k_aux, 1) x
    ||e - W_dec z||^2, e = h - h_hat held fixed, z the k_aux = m // 2 largest
    pre-activations of the dead latents (Gao et al. 2024). Gradients hold the
    surviving latents' pattern fixed: exact wherever no activation ties another or a
    threshold; jumprelu's thresholds by the straight-through estimator. The unit-norm
    constraint on W_dec's columns is not part of the loss (``sae_step`` projects).
    """
    arch = ARCHITECTURES[setup.architecture]
    C, mask, F, pre = _forward(params, H, setup.architecture, setup.per_sample)
    batch, W_dec = H.shape[1], params["W_dec"]
    coef = np.reshape(setup.l1 if coef is None else coef, (-1, 1)).astype(H.dtype)
    # each prefix's reconstruction error, the next prefix adding its block of latents
    blocks = list(zip((0, *setup.widths[:-1]), setup.widths, strict=True))
    diffs = []  # h_hat - h = W_dec f - (h - b_dec), prefix by prefix
    for lo, hi in blocks:
        diff = F[:, :, lo:hi] @ W_dec[:, :, lo:hi].transpose(0, 2, 1)
        if diffs:
            diff += diffs[-1]
        else:
            diff -= C
        diffs.append(diff)
    flat = len(F), -1
    sparse = 0.0
    if arch.penalty == "l1":
        sparse = F.reshape(flat).sum(axis=1)
    elif arch.penalty == "l0":
        sparse = np.count_nonzero(mask.reshape(flat), axis=1)
    squares = sum(np.square(d).reshape(flat).sum(axis=1) for d in diffs)
    loss = (squares + coef[:, 0] * sparse) / batch
    # a block's latents reach every prefix from theirs on: the errors' suffix sums
    g_fs, dW_decs, suffix = [], [], 0.0
    for (lo, hi), d in reversed(list(zip(blocks, diffs, strict=True))):
        suffix = suffix + (2.0 / batch) * d  # dL/dh_hat of the prefixes from here on
        g_fs.insert(0, suffix @ W_dec[:, :, lo:hi])
        dW_decs.insert(0, suffix.transpose(0, 2, 1) @ F[:, :, lo:hi])
    g_f, dW_dec = (p[0] if len(p) == 1 else np.concatenate(p, axis=2)
                   for p in (g_fs, dW_decs))  # fmt: skip
    if arch.penalty == "l0":
        grads_jump = _threshold_grad(params, pre, g_f, coef / batch, setup.bandwidth)
    g_pre = g_f  # in place: g_f is not needed further
    if arch.penalty == "l1":
        g_pre += coef[:, :, None] / batch
    g_pre *= mask
    if dead is not None and setup.auxiliary and dead.any():
        aux_loss, aux_pre = _auxiliary(pre, dead, diffs[-1], W_dec, dW_dec, setup.aux_k)
        loss, g_pre = loss + aux_loss, g_pre + aux_pre
    db_enc = g_pre.sum(axis=1)
    # b_dec enters twice: added to h_hat, subtracted from h before the encoder
    db_dec = suffix.sum(axis=1) - (db_enc[:, None, :] @ params["W_enc"])[:, 0, :]
    grads = {
        "W_enc": g_pre.transpose(0, 2, 1) @ C,
        "b_enc": db_enc,
        "W_dec": dW_dec,
        "b_dec": db_dec,
    }
    if arch.penalty == "l0":
        grads[JUMP] = grads_jump
    smallest = None
    if arch.batch:
        smallest = np.min(F.reshape(flat), axis=1, where=mask.reshape(flat),
                          initial=np.inf)  # fmt: skip
    l0 = np.count_nonzero(mask.reshape(flat), axis=1) / batch
    return Pass(loss, grads, l0, mask.any(axis=1), smallest)


def _auxiliary(pre, dead, diff, W_dec, dW_dec, aux_k):
    """The auxiliary-k loss (I,) and its gradient on the pre-activations; adds its
    gradient on W_dec to ``dW_dec``. ``diff`` = h_hat - h (I, batch, m), held fixed."""
    batch, m = diff.shape[1:]
    k_aux = min(max(1, m // 2), pre.shape[2])
    weight = aux_k * np.minimum(dead.sum(axis=1) / k_aux, 1.0)  # (I,)
    candidates = np.where(dead[:, None, :], pre, -np.inf)
    kth = -np.partition(-candidates, k_aux - 1, axis=2)[:, :, k_aux - 1 : k_aux]
    chosen = (candidates >= kth) & dead[:, None, :]  # fewer dead: all of them
    z = np.where(chosen, pre, 0.0)
    r = z @ W_dec.transpose(0, 2, 1) + diff  # W_dec z - e
    g_r = (2.0 * weight / batch)[:, None, None] * r
    dW_dec += g_r.transpose(0, 2, 1) @ z
    return weight * np.sum(r**2, axis=2).mean(axis=1), (g_r @ W_dec) * chosen


def _threshold_grad(params, pre, g_f, l0, bandwidth) -> np.ndarray:
    """dL/dlog_theta by the straight-through estimator of Rajamanoharan et al. 2024:
    d/dtheta [z H(z - theta)] = -(theta / eps) K((z - theta) / eps) and d/dtheta
    H(z - theta) = -(1 / eps) K(...), K the rectangle on [-1/2, 1/2], eps the
    bandwidth; ``l0`` (I, 1) the penalty's coefficient / batch."""
    theta = np.exp(params[JUMP])
    # in pre's dtype: a boolean / a float would make float64 arrays of the batch's size
    near = (np.abs(pre - theta[:, None, :]) < bandwidth / 2).astype(pre.dtype)
    g_near, n_near = (g_f * near).sum(axis=1), near.sum(axis=1)
    d_theta = -(theta * g_near + l0 * n_near) / bandwidth
    return d_theta * theta


def sae_loss_and_grads(
    params: dict[str, np.ndarray], H: np.ndarray, *, l1: float,
    architecture: str = "relu", k: int = 1, bandwidth: float = BANDWIDTH,
    prefixes: int = 3,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """``sae_pass``'s loss (I,) and gradients without the auxiliary loss, for params
    W_enc (I, L, m), b_enc (I, L), W_dec (I, m, L), b_dec (I, m) (jumprelu: and
    log_threshold (I, L)) and H (I, batch, m)."""
    setup = Setup(params["W_dec"].shape[2], architecture, k=k, l1=l1,
                  bandwidth=bandwidth, prefixes=prefixes)  # fmt: skip
    step = sae_pass(params, H, setup)
    return step.loss, step.grads


# --- training ------------------------------------------------------------------------


class Resampled:
    """Batches drawn with replacement from each instance's own fixed training set
    H_train (I, n_train, m), with its own generator: an instance does not depend on
    how many train beside it."""

    def __init__(self, H_train: np.ndarray, rngs: list[np.random.Generator]):
        if H_train.ndim != 3 or H_train.shape[0] != len(rngs):
            raise ValueError(
                f"H_train must be (n_inst, n_train, n_neurons) with n_inst = len(rngs)"
                f" = {len(rngs)}; got shape {H_train.shape}"
            )
        self.H, self.rngs = H_train, rngs
        self.mean = H_train.mean(axis=1)

    def batches(self, steps: int, batch_size: int, dtype) -> Iterator[np.ndarray]:
        H, inst = self.H.astype(dtype), np.arange(len(self.rngs))[:, None]
        for _ in range(steps):
            rows = [rng.integers(0, H.shape[1], batch_size) for rng in self.rngs]
            yield H[inst, np.stack(rows)]


class Fresh:
    """Batches of new samples: ``draws[i](n)`` gives instance i's next n training rows
    (n, m) from its own generator, a chunk of about CHUNK_ROWS (whole batches) at a
    time, never all at once: the last chunk's unused rows are the only ones drawn and
    not trained on. The initial b_dec is the mean of each instance's first chunk."""

    def __init__(self, draws: list[Callable[[int], np.ndarray]], batch_size: int):
        self.draws = draws
        self.chunk = batch_size * max(1, CHUNK_ROWS // batch_size)
        self.first = np.stack([draw(self.chunk) for draw in draws])
        self.mean = self.first.mean(axis=1)

    def batches(self, steps: int, batch_size: int, dtype) -> Iterator[np.ndarray]:
        per_chunk, chunk = self.chunk // batch_size, self.first
        for start in range(0, steps, per_chunk):
            if chunk is None:
                chunk = np.stack([draw(self.chunk) for draw in self.draws])
            n = min(per_chunk, steps - start)
            rows = chunk[:, : n * batch_size].astype(dtype)
            for i in range(n):
                yield rows[:, i * batch_size : (i + 1) * batch_size]
            chunk = None


def init_sae(
    mean: np.ndarray, *, rngs: list[np.random.Generator], n_latents: int
) -> dict[str, np.ndarray]:
    """Initial float64 params, one generator per instance; ``mean`` (I, m) of each
    instance's training data.

    Gaussian unit-norm decoder atoms, W_enc = W_dec.T, b_enc = 0, b_dec = the mean.
    """
    n_inst, n_neurons = mean.shape
    W_dec = np.stack([rng.standard_normal((n_neurons, n_latents)) for rng in rngs])
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    return {
        "W_enc": W_dec.transpose(0, 2, 1).copy(),
        "b_enc": np.zeros((n_inst, n_latents)),
        "W_dec": W_dec,
        "b_dec": mean.copy(),
    }


@dataclass
class Trained:
    """Trained float64 params shaped as ``sae_pass``'s (batchtopk, matryoshka: and
    their inference ``threshold`` (I,); jumprelu: its ``log_threshold`` (I, L)); the
    penalty's final coefficient (I,); the fraction of latents dead at the end of
    training (I,), by DEAD_WINDOW; and, with ``log_every``, the curves: one dict per
    logged step (``evaluate``'s, with step, samples and the atoms (I, m, L))."""

    params: dict[str, np.ndarray]
    coef: np.ndarray
    dead_fraction: np.ndarray
    curves: list[dict] = field(default_factory=list)


def train_sae(
    source: Resampled | Fresh, *, rngs: list[np.random.Generator], setup: Setup,
    held_out: np.ndarray | None = None, dtype=np.float32,
) -> Trained:  # fmt: skip
    """Train one SAE per generator on its own batches from ``source``, all together.

    Adam from ``init_sae`` with ``setup.lr`` x its schedule; after every step W_dec's
    columns are renormalised, and before it the part of W_dec's gradient parallel to
    each column is removed. With ``target_l0`` the penalty's coefficient is steered
    by the batch L0 (``Steering``, GAINS); a latent is dead after DEAD_WINDOW samples
    without firing (the auxiliary loss's and resampling's latents). Curves every
    ``log_every`` steps on ``held_out`` (I, n, m), samples not trained on.
    """
    keep_freed_memory()
    n_inst = len(rngs)
    start = init_sae(source.mean, rngs=rngs, n_latents=setup.n_latents)
    params = {name: p.astype(dtype) for name, p in start.items()}
    names = trained_names(setup.architecture)
    if JUMP in names:
        params[JUMP] = np.full((n_inst, setup.n_latents), np.log(THETA_INIT), dtype)
    betas = [THRESHOLD_BETAS if name == JUMP else (0.9, 0.999) for name in names]
    adam = AdamW([params[name] for name in names], lr=setup.lr, weight_decay=0.0,
                 betas=betas)  # fmt: skip
    coef = np.full(n_inst, setup.l1)
    penalty = ARCHITECTURES[setup.architecture].penalty
    steer = None
    if setup.steered:
        after = round(STEER_AFTER * setup.steps)
        steer = Steering(coef, setup.target_l0, GAINS[penalty], after=after)
    unfired = np.zeros((n_inst, setup.n_latents))  # samples since each last fired
    resample_at = {round(share * setup.steps) for share in RESAMPLE_AT}
    threshold, curves = None, []
    logs = held_out is not None and setup.log_every > 0
    batches = source.batches(setup.steps, setup.batch_size, dtype)
    for step, batch in enumerate(batches):
        adam.lr = setup.lr * lr_factor(setup.schedule, step, setup.steps)
        dead = unfired >= DEAD_WINDOW
        done = sae_step(params, adam, batch, setup, coef=coef, dead=dead)
        unfired = np.where(done.fired, 0.0, unfired + setup.batch_size)
        if setup.steered:
            coef = steer.update(step, done.l0)
        if ARCHITECTURES[setup.architecture].batch:
            smallest = np.where(np.isfinite(done.smallest), done.smallest, 0.0)
            threshold = smallest if threshold is None else (
                THRESHOLD_DECAY * threshold + (1 - THRESHOLD_DECAY) * smallest
            )  # fmt: skip
        if setup.resample and step + 1 in resample_at:
            _resample(params, adam, batch, setup, dead, rngs)
            unfired[dead] = 0.0
        if logs and ((step + 1) % setup.log_every == 0 or step + 1 == setup.steps):
            now = _with_threshold(params, threshold)
            curves.append(
                {"step": step + 1, "samples": (step + 1) * setup.batch_size}
                | evaluate(now, held_out, setup, coef)
                | {"atoms": params["W_dec"].astype(np.float64)}
            )
    trained = _with_threshold(params, threshold)
    trained = {name: p.astype(np.float64) for name, p in trained.items()}
    return Trained(trained, coef, (unfired >= DEAD_WINDOW).mean(axis=1), curves)


@dataclass
class Steering:
    """target_l0's controller of the penalty's coefficient c, per instance: with
    e = log(batch L0 / target) at each step from ``after`` on,
    log c = log c0 + g_I sum(e) + g_P clip(e_smooth, -1, 1), e_smooth the exponential
    mean of e over ~10 steps (SMOOTHING), (g_I, g_P) = ``gains``; before it, c = c0."""

    start: np.ndarray  # (I,) c0: the coefficients before steering
    target: float
    gains: Gains
    after: int = 0
    summed: np.ndarray | float = field(init=False, default=0.0)  # g_I sum(e)
    smoothed: np.ndarray | float = field(init=False, default=0.0)  # e_smooth

    def update(self, step: int, l0: np.ndarray) -> np.ndarray:
        """The coefficients (I,) after ``step`` (from 0), whose batch L0 was ``l0``."""
        if step < self.after:
            return self.start
        error = np.log(np.maximum(l0, 1e-3) / self.target)
        self.summed = self.summed + self.gains.integral * error
        self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * error
        push = self.gains.proportional * np.clip(self.smoothed, -1.0, 1.0)
        return self.start * np.exp(self.summed + push)


def _with_threshold(params: dict, threshold: np.ndarray | None) -> dict:
    return params if threshold is None else params | {"threshold": threshold}


def evaluate(
    params: dict, H: np.ndarray, setup: Setup, coef: np.ndarray
) -> dict[str, np.ndarray]:
    """On held-out H (I, n, m), per instance: the loss (reconstruction of every prefix
    plus the penalty, as trained), and ``l0``, ``dead_fraction`` and
    ``explained_variance`` as the cell's metrics define them (README, "Outputs")."""
    H = H.astype(params["W_dec"].dtype)
    F = sae_encode(params, H, architecture=setup.architecture, k=setup.per_sample)
    H_hat = sae_decode(params, F)
    loss = sae_pass(params, H, setup, coef=coef).loss
    explained = [explained_variance(*pair) for pair in zip(H, H_hat, strict=True)]
    return {
        "loss": loss.astype(np.float64),
        "l0": (F > ACTIVE).sum(axis=2).mean(axis=1),
        "dead_fraction": (~(F > DEAD).any(axis=1)).mean(axis=1),
        "explained_variance": np.array(explained),
    }


def trained_names(architecture: str) -> tuple[str, ...]:
    """The params Adam trains: jumprelu's thresholds too."""
    return (*PARAMS, JUMP) if ARCHITECTURES[architecture].penalty == "l0" else PARAMS


def sae_step(
    params: dict[str, np.ndarray], adam: AdamW, H: np.ndarray, setup: Setup, *,
    coef: np.ndarray | float | None = None, dead: np.ndarray | None = None,
) -> Pass:  # fmt: skip
    """One Adam step on a batch H (I, batch, m), keeping W_dec's columns unit norm.

    Updates params in place and returns the step's ``Pass``; ``adam`` was built on
    ``[params[n] for n in trained_names(setup.architecture)]``.
    """
    done = sae_pass(params, H, setup, coef=coef, dead=dead)
    W_dec, dW_dec = params["W_dec"], done.grads["W_dec"]
    # A move along an atom only changes its norm, which is renormalised away; left in,
    # Adam's per-coordinate scaling would turn it into a rotation.
    dW_dec -= np.sum(dW_dec * W_dec, axis=1, keepdims=True) * W_dec
    adam.step([done.grads[name] for name in trained_names(setup.architecture)])
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    return done


def _resample(params, adam, H, setup, dead, rngs) -> None:
    """Reinitialise each instance's dead latents (Bricken et al. 2023): the decoder
    atom becomes a batch sample's centred input, drawn with probability proportional
    to its squared reconstruction loss, normalised; the encoder row the same
    direction at RESAMPLE_SCALE x the live rows' mean norm; the bias 0; their Adam
    moments 0."""
    C, _, F, _ = _forward(params, H, setup.architecture, setup.per_sample)
    loss = np.sum((sae_decode(params, F) - H) ** 2, axis=2).astype(np.float64)
    rows = {name: i for i, name in enumerate(trained_names(setup.architecture))}
    for i, rng in enumerate(rngs):
        latents = np.flatnonzero(dead[i])
        if latents.size == 0:
            continue
        weight = loss[i] ** 2
        p = weight / weight.sum() if weight.sum() > 0 else None
        picks = rng.choice(len(C[i]), size=latents.size, p=p)
        v = C[i][picks]
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        live = np.linalg.norm(params["W_enc"][i][~dead[i]], axis=1)
        gain = RESAMPLE_SCALE * (live.mean() if live.size else 1.0)
        params["W_dec"][i][:, latents] = v.T
        params["W_enc"][i][latents] = gain * v
        params["b_enc"][i][latents] = 0.0
        for name, axis in (("W_dec", 1), ("W_enc", 0), ("b_enc", 0)):
            for moments in (adam.m, adam.v):
                np.moveaxis(moments[rows[name]][i], axis, 0)[latents] = 0.0
