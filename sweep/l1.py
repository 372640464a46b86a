"""Exact L1 minimisation, min ||x||_1 s.t. W x = h (or with x >= 0), for many samples.

Two solvers. ``lars`` follows the LARS/lasso path to alpha = 0, one sample at a time
(sklearn has no batched path). ``admm`` solves all samples of a trial together: ADMM
on min ||z||_1 s.t. x = z, W x = h, whose x-step is a projection onto the affine set
{W x = h} with a cached orthonormal basis of W's rows, so that an iteration is two
matrix products over the whole batch; each sample keeps its own penalty rho, balanced
between the primal and dual residuals.

Every ``ROUND`` iterations, each sample whose support held since the last round and
whose dual is nearly feasible is polished (least squares on that support) and
certified: the optimality conditions of the L1 program, checked to ``PRIMAL_TOL`` and
``DUAL_TOL``: W x = h, and a dual y with (W^T y)_i = sign(x_i) on the support and
|W^T y|_i <= 1 off it (x >= 0: x_i > 0 on the support, W^T y = 1 on it and <= 1 off
it). A certified x is an exact optimum and leaves the batch. A sample still uncertified
after ``max_iter`` iterations keeps its last iterate and is counted as not converged.
"""

import warnings

import numpy as np

ITERATE = np.float32  # the ADMM iterates' precision
RHO = 0.5  # the initial penalty, x 1 / mean |x0| (x0: the batch's least-norm solutions)
RELAX = 1.6  # over-relaxation of the x-step (1: none)
BALANCE = 5  # every BALANCE iterations, a sample's rho x TAU when one of its
MU = 10.0  # residuals (primal ||x - z||, dual rho ||z - z_last||) is MU x the other
TAU = 2.0
ROUND = 25  # iterations between certificates
NEAR = 1e-2  # certify only samples with |W^T y| <= 1 + NEAR off the support
PRIMAL_TOL = 1e-7  # ||W x - h|| <= PRIMAL_TOL ||h||
DUAL_TOL = 1e-9  # |W^T y| <= 1 + DUAL_TOL off the support
SUPPORT_TOL = 1e-6  # |W^T y - sign(x)| on the support (exact, up to rounding)
RANK_TOL = 1e-10  # W's rows dependent to this (relative): LARS solves it


def lars(W: np.ndarray, H: np.ndarray, *, positive: bool, max_iter: int):
    """Every row of H by its own LARS path: (codes, exact per sample: the path
    ended within ``max_iter`` steps, at W x = h)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lars_path_gram

    gram, Xy = W.T @ W, H @ W
    codes = np.zeros((H.shape[0], W.shape[1]))
    n_iter = np.zeros(H.shape[0], dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, xy in enumerate(Xy):
            _, _, codes[i], n_iter[i] = lars_path_gram(
                xy, gram, n_samples=W.shape[0], alpha_min=0.0, method="lasso",
                positive=positive, max_iter=max_iter, return_path=False,
                return_n_iter=True,
            )  # fmt: skip
    # a path can also end short of W x = h (measured near full support: residuals
    # up to 1e-3 ||h||, with x >= 0 most): that sample is not exact either
    residual = np.linalg.norm(codes @ W.T - H, axis=1)
    feasible = residual <= PRIMAL_TOL * np.linalg.norm(H, axis=1)
    return codes, (n_iter < max_iter) & feasible


def admm(W: np.ndarray, H: np.ndarray, *, positive: bool, max_iter: int):
    """Every row of H by batched ADMM: (codes, certified per sample), or None when
    W's rows are dependent. Uncertified rows hold the last ADMM iterate."""
    n_samples = H.shape[0]
    codes = np.zeros((n_samples, W.shape[1]))
    certified = np.zeros(n_samples, dtype=bool)
    if W.shape[0] > W.shape[1]:
        return None  # W's rows are dependent: no affine projection this way
    Q, R = np.linalg.qr(W.T)  # W^T = Q R: Q (n, m) spans the rows of W
    diag = np.abs(np.diag(R))
    if diag.min() <= RANK_TOL * diag.max():
        return None
    # the iterations in float32 (twice as fast; they only find the support), the
    # polish and the certificate in float64
    X0 = (_solve_rt(R, H) @ Q.T).astype(ITERATE)  # least-norm solutions W^+ h
    Q_it = Q.astype(ITERATE)
    scale = max(float(np.abs(X0).mean()), np.finfo(ITERATE).tiny)
    rho = np.full((n_samples, 1), RHO / scale, dtype=ITERATE)  # each sample's own
    shrink = _shrink(positive)
    active = np.arange(n_samples)
    Z, U, x0 = X0.copy(), np.zeros_like(X0), X0
    last = np.zeros(X0.shape, dtype=bool)
    for it in range(1, max_iter + 1):
        V = Z - U
        X = V - (V @ Q_it) @ Q_it.T + x0  # projection onto {W x = h}
        X = RELAX * X + (1 - RELAX) * Z
        Z_last, Z = Z, shrink(X + U, 1.0 / rho)
        U += X - Z
        if it % BALANCE == 0:  # residual balancing: primal and dual residuals alike
            r = np.linalg.norm(X - Z, axis=1, keepdims=True)
            s = rho * np.linalg.norm(Z - Z_last, axis=1, keepdims=True)
            up, down = r > MU * s, s > MU * r
            factor = np.where(up, TAU, np.where(down, 1 / TAU, 1.0)).astype(ITERATE)
            rho *= factor
            U /= factor
        if it % ROUND and it < max_iter:
            continue
        support = Z != 0
        # try to certify only samples whose support held since the last round
        # and whose dual is near-feasible: certifying costs a solve per sample
        C = (rho * U).astype(float) @ Q  # the duals in Q's basis: rho U -> W^T y
        dual = np.where(support, 0.0, C @ Q.T)
        near = (dual.max(axis=1) if positive else np.abs(dual).max(axis=1)) < 1 + NEAR
        ready = near & (support == last).all(axis=1)
        last = support
        Y = _solve_r(R, C)
        for j, y in enumerate(Y):
            i = active[j]
            z = Z[j].astype(float)
            codes[i], certified[i] = _certify(W, H[i], z, y, positive, ready[j])
        keep = ~certified[active]
        active, Z, U, x0, rho = active[keep], Z[keep], U[keep], x0[keep], rho[keep]
        last = last[keep]
        if not len(active):
            break
    codes[active] = Z
    return codes, certified


def solve(W, H, *, positive: bool, solver: str, max_iter: int, admm_iter: int):
    """(codes of every row of H, the share of samples solved exactly: converged).

    ``lars``: a sample is exact when its path ended within ``max_iter`` steps, at
    W x = h;
    ``admm``: when certified within ``admm_iter`` iterations. A W with dependent rows
    has no projection for ADMM: LARS solves it.
    """
    found = None
    if solver == "admm":
        found = admm(W, H, positive=positive, max_iter=admm_iter)
    codes, exact = found or lars(W, H, positive=positive, max_iter=max_iter)
    return codes, float(exact.mean()) if len(exact) else 1.0


def _shrink(positive: bool):
    """The proximal map of t ||z||_1 (with x >= 0: of t 1^T z on z >= 0)."""
    if positive:
        return lambda V, t: np.maximum(V - t, 0.0)
    return lambda V, t: np.sign(V) * np.maximum(np.abs(V) - t, 0.0)


def _solve_r(R, B):
    """Rows of B R^-T, i.e. R^-1 b for each row b."""
    from scipy.linalg import solve_triangular

    return solve_triangular(R, B.T, lower=False).T


def _solve_rt(R, B):
    """Rows of B R^-1, i.e. R^-T b for each row b."""
    from scipy.linalg import solve_triangular

    return solve_triangular(R, B.T, trans="T", lower=False).T


def _certify(W, h, z, y, positive, ready):
    """(x, certified): z polished on its support if ``ready``, and whether x is an
    exact optimum (else z, False)."""
    S = np.flatnonzero(z)
    if not len(S):
        return z, not h.any()  # x = 0 is optimal exactly when it is feasible
    x = _exact_on(W, h, S, y, positive) if ready and len(S) <= W.shape[0] else None
    return (z, False) if x is None else (x, True)


def _exact_on(W, h, S, y, positive):
    """The L1 optimum with support S, or None if no certificate holds.

    The dual is ADMM's y corrected to fit the support exactly; failing that, the
    least-norm dual of the support.
    """
    WS = W[:, S]
    try:
        gram = WS.T @ WS
        xs = np.linalg.solve(gram, WS.T @ h)
    except np.linalg.LinAlgError:
        return None
    if positive and (xs <= 0).any():
        return None
    x = np.zeros(W.shape[1])
    x[S] = xs
    if np.linalg.norm(W @ x - h) > PRIMAL_TOL * np.linalg.norm(h):
        return None
    target = np.ones(len(S)) if positive else np.sign(xs)
    for dual in (y + WS @ np.linalg.solve(gram, target - WS.T @ y),
                 WS @ np.linalg.solve(gram, target)):  # fmt: skip
        c = W.T @ dual
        if np.abs(c[S] - target).max() > SUPPORT_TOL:
            continue  # the support's gram is too ill-conditioned to fit it
        c[S] = 0.0
        worst = c.max(initial=0.0) if positive else np.abs(c).max(initial=0.0)
        if worst <= 1.0 + DUAL_TOL:
            return x
    return None
