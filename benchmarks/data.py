"""Cost of the data keys: drawing batches of features, option by option.

    python benchmarks/data.py [--rounds 5] [--profile]

``Features.sample`` of a batch of 1,024 samples at n_features = 1,000 and 16,384,
on one core (threadpoolctl), for the textbook case and each data option alone
(firing constant / zipf / linear; each magnitude; each correlation, strength 0.5,
low_rank of rank 25; a hierarchy of depth 3, branching 4, 128 trees at 16k, and
exclusive), then zipf with low_rank, and the SynthSAEBench-like combination (zipf
exponent 0.5, firing_ratio 800, folded_normal magnitudes, low_rank rank 25, depth 3
branching 4 exclusive trees). Sparsity 0.01 at 1,000 features, 0.002 (L0 ~ 33) at
16,384. Measured side by side in one run: the time to build the distribution
(``sweep.data.features``), the median wall and CPU time of one batch (after one
warm-up batch; ``--rounds`` rounds, each timing one batch of every option in turn),
samples per second (wall), and the batch's CPU time over the textbook case's at the
same size ("x text"; CPU time is less disturbed than wall time by other processes
on a shared machine). Then the peak extra memory (tracemalloc) of the low_rank
build against its loading, n_features x rank x 8 bytes, and of one batch against
the batch itself (1,024 x n_features x 8 bytes). ``--profile``: cProfile of one
SynthSAEBench-like batch at 16k. Prints the tables, then one JSON line.
"""

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from sweep.data import DEFAULTS, DataError, features

BATCH = 1024
SIZES = {1000: 0.01, 16_384: 0.002}  # n_features: sparsity
RANK = 25
STRENGTH = 0.5


def hierarchy(n: int) -> dict:
    trees = 128 if n == 16_384 else None  # as many as fit: 11 at 1,000
    return {"hierarchy_depth": 3, "hierarchy_branching": 4, "hierarchy_trees": trees}


def options(n: int) -> dict[str, dict]:
    """Each row's data keys (the rest at their defaults: the textbook case)."""
    corr = {"correlation_strength": STRENGTH, "correlation_rank": RANK}
    return {
        "textbook (constant, uniform)": {},
        "firing=zipf": {"firing": "zipf"},
        "firing=linear": {"firing": "linear"},
        "magnitude=constant": {"magnitude": "constant"},
        "magnitude=folded_normal": {"magnitude": "folded_normal"},
        "magnitude_spread=4 (uniform)": {"magnitude_spread": 4.0},
        "correlation=pairs": {"correlation": "pairs", **corr},
        "correlation=anti_pairs": {"correlation": "anti_pairs", **corr},
        "correlation=random": {"correlation": "random", **corr},
        "correlation=low_rank r=25": {"correlation": "low_rank", **corr},
        "hierarchy d=3 b=4": hierarchy(n),
        "hierarchy d=3 b=4 exclusive": {**hierarchy(n), "exclusive": True},
        "zipf + low_rank r=25": {"firing": "zipf", "correlation": "low_rank", **corr},
        "SynthSAEBench-like": {
            "firing": "zipf", "zipf_exponent": 0.5, "firing_ratio": 800.0,
            "magnitude": "folded_normal", "correlation": "low_rank", **corr,
            **hierarchy(n), "exclusive": True,
        },
    }  # fmt: skip


def build(n: int, keys: dict):
    return features(n, SIZES[n], None, DEFAULTS | keys, np.random.default_rng(0))


def measure(n: int, rounds: int) -> dict[str, dict | None]:
    """Per option at n: build seconds, median batch wall and CPU seconds (None: the
    keys are refused at n). The batches are timed round robin, one of each option a
    round, so that a change in the machine's load hits every option alike."""
    dists, rows = {}, {}
    for name, keys in options(n).items():
        start = time.perf_counter()
        try:
            dists[name] = build(n, keys)
        except DataError:
            rows[name] = None
            continue
        rows[name] = {"build_s": time.perf_counter() - start, "wall": [], "cpu": []}
        dists[name].sample(BATCH, np.random.default_rng(1))  # warm-up
    for r in range(rounds):
        for name, dist in dists.items():
            rng = np.random.default_rng(2 + r)
            start, start_cpu = time.perf_counter(), time.process_time()
            dist.sample(BATCH, rng)
            rows[name]["wall"].append(time.perf_counter() - start)
            rows[name]["cpu"].append(time.process_time() - start_cpu)
    for row in rows.values():
        if row is not None:
            row["batch_s"] = statistics.median(row.pop("wall"))
            row["cpu_s"] = statistics.median(row.pop("cpu"))
    return rows


def peak_bytes(fn) -> int:
    """Peak bytes allocated (tracemalloc, numpy included) while fn() runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def profile(n: int) -> str:
    dist = build(n, options(n)["SynthSAEBench-like"])
    rng = np.random.default_rng(1)
    dist.sample(BATCH, rng)
    prof = cProfile.Profile()
    prof.runcall(dist.sample, BATCH, rng)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    out = sys.stdout
    result: dict = {"rows": {}, "memory": {}}
    with threadpool_limits(1):
        table = {n: measure(n, args.rounds) for n in SIZES}
        memory = {}
        for n in SIZES:
            low_rank = options(n)["correlation=low_rank r=25"]
            dist = build(n, options(n)["SynthSAEBench-like"])
            memory[n] = (
                peak_bytes(lambda n=n, keys=low_rank: build(n, keys)),
                peak_bytes(lambda d=dist: d.sample(BATCH, np.random.default_rng(2))),
            )

    head = "".join(f"{f'n={n}':>51}" for n in SIZES)
    out.write(f"{'':<30}{head}\n")
    cols = f"{'build ms':>9}{'batch ms':>9}{'cpu ms':>9}{'samples/s':>11}{'x text':>10}"
    out.write(f"{'option (batch 1,024, 1 core)':<30}{(' ' * 3 + cols) * len(SIZES)}\n")
    for name in options(1000):
        line = f"{name:<30}"
        for n in SIZES:
            row, base = table[n][name], table[n]["textbook (constant, uniform)"]
            if row is None:
                line += f"{'refused (DataError)':>51}"
                result["rows"].setdefault(name, {})[n] = None
                continue
            rate = BATCH / row["batch_s"]
            ratio = row["cpu_s"] / base["cpu_s"]
            ms = [1e3 * row[key] for key in ("build_s", "batch_s", "cpu_s")]
            line += f"{'':3}{ms[0]:>9.1f}{ms[1]:>9.1f}{ms[2]:>9.1f}"
            line += f"{rate:>11,.0f}{ratio:>10.2f}"
            result["rows"].setdefault(name, {})[n] = {
                "build_ms": round(1e3 * row["build_s"], 2),
                "batch_ms": round(1e3 * row["batch_s"], 2),
                "cpu_ms": round(1e3 * row["cpu_s"], 2),
                "samples_per_s": round(rate), "cpu_over_textbook": round(ratio, 3),
            }  # fmt: skip
        out.write(line + "\n")

    out.write(
        f"\n{'peak extra memory (tracemalloc)':<36}{'MB':>8}{'reference MB':>14}"
        f"{'ratio':>8}\n"
    )
    for n in SIZES:
        build_peak, batch_peak = memory[n]
        loading, batch = n * RANK * 8, BATCH * n * 8
        out.write(f"{f'low_rank build, n={n}':<36}{build_peak / 1e6:>8.2f}"
                  f"{loading / 1e6:>14.2f}{build_peak / loading:>8.2f}\n")  # fmt: skip
        out.write(f"{f'SynthSAEBench-like batch, n={n}':<36}{batch_peak / 1e6:>8.1f}"
                  f"{batch / 1e6:>14.1f}{batch_peak / batch:>8.2f}\n")  # fmt: skip
        result["memory"][n] = {
            "low_rank_build_mb": round(build_peak / 1e6, 3),
            "loading_mb": round(loading / 1e6, 3),
            "batch_mb": round(batch_peak / 1e6, 2), "x_mb": round(batch / 1e6, 2),
        }  # fmt: skip
    if args.profile:
        with threadpool_limits(1):
            out.write("\n" + profile(16_384))
    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
