"""Exact L1 (basis_pursuit): batched ADMM against the LARS path, side by side.

    python benchmarks/l1.py speed [--samples 100]
    python benchmarks/l1.py agree [--n 200] [--trials 4] [--samples 100]

``speed``: seconds per 1,000 samples of each solver on identical problems near the
boundary (one thread), the issue's five sizes, signed and x >= 0; LARS with max_iter
large enough to converge. ``agree``: the phase-diagram grid of
``experiment=phase_diagram`` (neurons 10-190 at n=200, 18 sparsities, signed and
x >= 0), both solvers on the same trials: per cell the success rates, their largest
difference, the share ADMM certified, and on every certified sample whether the two
agree (the same success verdict; the same x where the LARS path itself reached W x = h).
"""

import argparse
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from sweep import l1
from sweep.data import sparse_features
from sweep.models import random_model

ADMM_ITER = 1000  # basis_pursuit's default admm_iter
LARS_ITER = 5000  # enough for every path here (the default 500 is not at neurons=500)
SPEED = [(200, 40, 0.055, False), (200, 100, 0.19, False), (1000, 200, 0.05, False),
         (1000, 200, 0.09, True), (1000, 500, 0.19, False)]  # fmt: skip
NEURONS = range(10, 200, 10)
SPARSITY = (0.005, 0.0068, 0.0092, 0.013, 0.017, 0.023, 0.032, 0.043, 0.058, 0.079,
            0.11, 0.15, 0.2, 0.27, 0.37, 0.5, 0.68, 0.93)  # fmt: skip


def say(*lines: str) -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))


def problem(n, m, p, n_samples, positive, rng):
    X = sparse_features(n_samples, n, rng=rng, sparsity=p)
    if not positive:
        X = X * rng.choice([-1.0, 1.0], size=X.shape)
    W = random_model(n, m, rng=rng).W
    return W, X, X @ W.T


def both(W, H, positive):
    """(LARS codes, ADMM codes, certified, seconds LARS, seconds ADMM)."""
    start = time.perf_counter()
    XL, exact = l1.lars(W, H, positive=positive, max_iter=LARS_ITER)
    middle = time.perf_counter()
    XA, certified = l1.admm(W, H, positive=positive, max_iter=ADMM_ITER)
    return XL, exact, XA, certified, middle - start, time.perf_counter() - middle


def succeeded(X_hat, X):
    return np.linalg.norm(X_hat - X, axis=1) <= 0.01 * np.linalg.norm(X, axis=1)


def speed(args):
    say(f"seconds per 1,000 samples, {args.samples} samples, one thread")
    say(
        "| n, m, p, signed/x>=0 | LARS path | batched ADMM | LARS / ADMM | certified |",
        "|---|---|---|---|---|",
    )
    for n, m, p, positive in SPEED:
        W, X, H = problem(n, m, p, args.samples, positive, np.random.default_rng(0))
        _, _, _, certified, t_lars, t_admm = both(W, H, positive)
        per = 1000 / args.samples
        sign = "x>=0" if positive else "signed"
        say(f"| {n}, {m}, {p}, {sign} | {per * t_lars:.1f} | {per * t_admm:.1f} | "
              f"{t_lars / t_admm:.1f} | {certified.mean():.2f} |")  # fmt: skip


def agree(args):
    rng = np.random.default_rng(0)
    over, seconds = [], np.zeros(2)
    count = dict.fromkeys(["samples", "certified", "verdict", "exact", "lars_exact",
                           "lars_short", "disputed_short"], 0)  # fmt: skip
    for positive in (False, True):
        for m in [m * args.n // 200 for m in NEURONS]:
            for p in SPARSITY:
                rates = np.zeros(2)
                for _ in range(args.trials):
                    W, X, H = problem(args.n, m, p, args.samples, positive, rng)
                    XL, exact, XA, ok, *times = both(W, H, positive)
                    sl, sa = succeeded(XL, X), succeeded(XA, X)
                    rates += sl.mean() / args.trials, sa.mean() / args.trials
                    seconds += times
                    same = np.abs(XA - XL).max(axis=1) < 1e-6
                    count["samples"] += len(X)
                    count["certified"] += ok.sum()
                    count["verdict"] += (sl == sa)[ok].sum()
                    count["lars_exact"] += (ok & exact).sum()
                    count["exact"] += (ok & exact & same).sum()
                    count["lars_short"] += (~exact).sum()
                    count["disputed_short"] += (ok & (sl != sa) & ~exact).sum()
                if abs(rates[1] - rates[0]) > 0.005:
                    over.append((positive, m, p, rates))
    c = count
    say(
        f"n={args.n}: {2 * len(NEURONS) * len(SPARSITY)} cells x {args.trials} "
        f"trials x {args.samples} samples; ADMM certified {c['certified']} of "
        f"{c['samples']} samples ({c['certified'] / c['samples']:.3f})"
    )
    say(f"cells whose success rates differ by more than 0.005: {len(over)}")
    for positive, m, p, (a, b) in over:
        say(
            f"  positive={positive} neurons={m} sparsity={p}: LARS {a:.4f} ADMM {b:.4f}"
        )
    say(
        f"certified samples: the same success verdict on {c['verdict']}; the other "
        f"{c['certified'] - c['verdict']}: LARS ended short of W x = h on "
        f"{c['disputed_short']} of them"
    )
    say(
        f"certified samples where LARS is exact: the same x (1e-6) on {c['exact']} "
        f"of {c['lars_exact']}"
    )
    say(
        f"LARS not exact (path ended short of W x = h, or at max_iter): "
        f"{c['lars_short']} samples"
    )
    say(
        f"time: LARS {seconds[0]:.0f} s, ADMM {seconds[1]:.0f} s "
        f"({seconds[0] / seconds[1]:.1f}x)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["speed", "agree"])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    with threadpool_limits(1):
        (speed if args.part == "speed" else agree)(args)


if __name__ == "__main__":
    main()
