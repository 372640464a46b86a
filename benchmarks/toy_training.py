"""Training speed of the toy models: instances trained together against one at a time.

    python benchmarks/toy_training.py [--steps 2000]

n_features=20, neurons=5, batch 1024, AdamW, one thread. Prints instance-steps per
second for 10 instances vectorised in one array and for the same 10 trained one after
the other, measured side by side in this run, and their ratio. For reference, the
paper's own framework (PyTorch on CPU, 10 instances in one tensor) trains this at about
2,000 instance-steps per second on one core of this kind of machine (issue 3).
"""

import argparse
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from sweep.models import train_toy

N_FEATURES, N_NEURONS, BATCH, INSTANCES = 20, 5, 1024, 10


def rate(n_instances: int, steps: int, repeats: int) -> float:
    """Instance-steps per second of training ``n_instances`` together (best of runs)."""
    best = np.inf
    for r in range(repeats):
        rngs = [np.random.default_rng([r, i]) for i in range(n_instances)]
        start = time.perf_counter()
        train_toy(
            N_FEATURES, N_NEURONS, rngs=rngs, sparsity=0.1, k=None,
            importance=0.7 ** np.arange(N_FEATURES), relu=True, lr=1e-3,
            weight_decay=0.01, batch_size=BATCH, steps=steps,
        )  # fmt: skip
        best = min(best, time.perf_counter() - start)
    return n_instances * steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with threadpool_limits(1):
        together = rate(INSTANCES, args.steps, args.repeats)
        alone = rate(1, args.steps, args.repeats)  # one at a time: same per instance
    out = sys.stdout
    out.write(f"{'how':<34}{'instance-steps/s':>18}\n")
    out.write(f"{'10 instances in one array':<34}{together:>18,.0f}\n")
    out.write(f"{'one instance at a time':<34}{alone:>18,.0f}\n")
    out.write(f"{'vectorised / one at a time':<34}{together / alone:>18.2f}\n")
    out.write(f"{'vectorised / PyTorch (2,000)':<34}{together / 2000:>18.2f}\n")
    result = {"vectorised": round(together), "one_at_a_time": round(alone),
              "ratio": round(together / alone, 3)}  # fmt: skip
    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
