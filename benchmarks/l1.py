"""Exact L1 (basis_pursuit): batched ADMM against the LARS path, side by side.

    python benchmarks/l1.py speed [--samples 100] [--repeats 3]
    python benchmarks/l1.py agree [--preset phase_diagram] [--trials T]
                                  [--neurons 200,500,800] [--near K]

``speed``: seconds per 1,000 samples of each solver on identical problems near the
boundary (one thread), five sizes, signed and x >= 0. ``agree``: the exact-L1 cells
of a preset (``phase_diagram``: neurons 10-190 at n=200, 18 sparsities, signed and
x >= 0; or some of them: at --neurons, the --near sparsities nearest each theory
boundary), both solvers on the same trials: the cells whose success rates differ by
more than 0.005, the share ADMM certified, and on every certified sample whether the
two agree (the same success verdict; the same x where the LARS path itself ended at
W x = h); every sample whose verdicts differ is solved again by an LP solver
(HiGHS), whose verdict says which is right. LARS runs with max_iter large enough to
end every path here.
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
SPEED = [(200, 40, 0.05, False), (200, 100, 0.19, False), (1000, 200, 0.05, False),
         (1000, 200, 0.065, True), (1000, 500, 0.19, False)]  # fmt: skip


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


def optimum(W, h, positive):
    """The L1 optimum by an LP solver (scipy's HiGHS): the arbiter of a dispute."""
    from scipy.optimize import linprog

    n = W.shape[1]
    if positive:
        return linprog(np.ones(n), A_eq=W, b_eq=h, bounds=(0, None), method="highs").x
    split = linprog(np.ones(2 * n), A_eq=np.hstack([W, -W]), b_eq=h, bounds=(0, None),
                    method="highs").x  # fmt: skip
    return split[:n] - split[n:]


def succeeded(X_hat, X):
    return np.linalg.norm(X_hat - X, axis=1) <= 0.01 * np.linalg.norm(X, axis=1)


def speed(args):
    W, _, H = problem(20, 10, 0.1, 2, False, np.random.default_rng(0))
    both(W, H, False)  # sklearn's import, before anything is timed
    say(f"seconds per 1,000 samples, {args.samples} samples, one thread, median of "
        f"{args.repeats} runs side by side")  # fmt: skip
    say(
        "| n, m, p, signed/x>=0 | LARS path | batched ADMM | LARS / ADMM | certified |",
        "|---|---|---|---|---|",
    )
    for n, m, p, positive in SPEED:
        W, X, H = problem(n, m, p, args.samples, positive, np.random.default_rng(0))
        runs = [both(W, H, positive) for _ in range(args.repeats)]
        t_lars, t_admm = (np.median([run[i] for run in runs]) for i in (4, 5))
        certified = runs[0][3].mean()
        per = 1000 / args.samples
        sign = "x>=0" if positive else "signed"
        say(f"| {n}, {m}, {p}, {sign} | {per * t_lars:.1f} | {per * t_admm:.1f} | "
            f"{t_lars / t_admm:.1f} | {certified:.2f} |")  # fmt: skip


def grid(args) -> list[dict]:
    """The preset's exact-L1 cells, or those at --neurons within --near sparsities of
    the theory boundary."""
    from analysis import theory
    from sweep.grid import expand_cells

    cells = [cell.flat for cell in expand_cells([f"experiment={args.preset}"], True)]
    cells = [c for c in cells if c["method"] == "basis_pursuit"]
    if args.neurons:
        cells = [c for c in cells if c["neurons"] in args.neurons]
    if not args.near:
        return cells
    grid = sorted({c["sparsity"] for c in cells})

    def near(c):
        p = theory.critical_sparsity(c["neurons"] / c["n_features"],
                                     nonneg=c["method.positive"])  # fmt: skip
        closest = sorted(grid, key=lambda q: abs(np.log(q / p)))[: args.near]
        return c["sparsity"] in closest

    return [c for c in cells if near(c)]


def agree(args):
    rng = np.random.default_rng(0)
    over, seconds = [], np.zeros(2)
    count = dict.fromkeys(["samples", "certified", "verdict", "exact", "lars_exact",
                           "lars_short", "disputed_short", "lp_admm", "lp_lars"],
                          0)  # fmt: skip
    cells = grid(args)
    for cell in cells:
        n, m, p = cell["n_features"], cell["neurons"], cell["sparsity"]
        positive, trials = cell["method.positive"], args.trials or cell["trials"]
        rates = np.zeros(2)
        for _ in range(trials):
            W, X, H = problem(n, m, p, cell["n_samples"], positive, rng)
            XL, exact, XA, ok, *times = both(W, H, positive)
            sl, sa = succeeded(XL, X), succeeded(XA, X)
            rates += sl.mean() / trials, sa.mean() / trials
            seconds += times
            same = np.abs(XA - XL).max(axis=1) < 1e-6
            count["samples"] += len(X)
            count["certified"] += ok.sum()
            count["verdict"] += (sl == sa)[ok].sum()
            count["lars_exact"] += (ok & exact).sum()
            count["exact"] += (ok & exact & same).sum()
            count["lars_short"] += (~exact).sum()
            count["disputed_short"] += (ok & (sl != sa) & ~exact).sum()
            for i in np.flatnonzero(sl != sa):  # who is right: the LP's verdict
                lp = succeeded(optimum(W, H[i], positive)[None], X[i][None])[0]
                count["lp_admm" if lp == sa[i] else "lp_lars"] += 1
        if abs(rates[1] - rates[0]) > 0.005:
            over.append((positive, m, p, rates))
    c = count
    say(
        f"experiment={args.preset}: {len(cells)} cells; ADMM certified "
        f"{c['certified']} of "
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
        f"samples whose success verdicts differ: {c['lp_admm'] + c['lp_lars']}; an LP "
        f"solver (HiGHS) gives ADMM's verdict on {c['lp_admm']}, LARS's on "
        f"{c['lp_lars']}"
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="phase_diagram")
    parser.add_argument("--trials", type=int, help="instead of the preset's")
    parser.add_argument("--neurons", type=lambda t: [int(v) for v in t.split(",")])
    parser.add_argument("--near", type=int, help="only the sparsities this many "
                        "nearest each theory boundary")  # fmt: skip
    args = parser.parse_args()
    with threadpool_limits(1):
        (speed if args.part == "speed" else agree)(args)


if __name__ == "__main__":
    main()
