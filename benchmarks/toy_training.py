"""Training speed of the toy models: instances trained together against one at a time.

    python benchmarks/toy_training.py [--steps 2000]

n_features=20, neurons=5, batch 1024, AdamW, one thread. Prints instance-steps per
second for 10 instances vectorised in one array and for the same 10 trained one after
the other, and, if PyTorch is installed (`pip install torch`; not a dependency), the
paper's own way: 10 instances in one tensor, torch.optim.AdamW, autograd, one thread.
All are measured side by side in this run; the ratios are printed.
"""

import argparse
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from sweep.data import textbook
from sweep.models import train_toy

N_FEATURES, N_NEURONS, BATCH, INSTANCES = 20, 5, 1024, 10


def rate(n_instances: int, steps: int, repeats: int) -> float:
    """Instance-steps per second of training ``n_instances`` together (best of runs)."""
    best = np.inf
    for r in range(repeats):
        rngs = [np.random.default_rng([r, i]) for i in range(n_instances)]
        start = time.perf_counter()
        train_toy(
            N_FEATURES, N_NEURONS, rngs=rngs,
            features=[textbook(N_FEATURES, 0.1)] * n_instances,
            importance=0.7 ** np.arange(N_FEATURES), relu=True, lr=1e-3,
            weight_decay=0.01, batch_size=BATCH, steps=steps,
        )  # fmt: skip
        best = min(best, time.perf_counter() - start)
    return n_instances * steps / best


def torch_rate(steps: int, repeats: int) -> float | None:
    """The same training in PyTorch as the paper's notebook does it; None without it."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    best = np.inf
    for r in range(repeats):
        torch.manual_seed(r)
        W = torch.nn.Parameter(torch.empty(INSTANCES, N_NEURONS, N_FEATURES))
        torch.nn.init.xavier_normal_(W)
        b = torch.nn.Parameter(torch.zeros(INSTANCES, N_FEATURES))
        opt = torch.optim.AdamW([W, b], lr=1e-3, weight_decay=0.01)
        importance = 0.7 ** torch.arange(N_FEATURES)
        start = time.perf_counter()
        for _ in range(steps):
            shape = (INSTANCES, BATCH, N_FEATURES)
            x = torch.where(torch.rand(shape) < 0.1, torch.rand(shape), 0.0)
            h = torch.einsum("ibn,imn->ibm", x, W)
            out = torch.relu(torch.einsum("ibm,imn->ibn", h, W) + b[:, None, :])
            loss = (importance * (x - out) ** 2).mean(dim=1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        best = min(best, time.perf_counter() - start)
    return INSTANCES * steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with threadpool_limits(1):
        together = rate(INSTANCES, args.steps, args.repeats)
        alone = rate(1, args.steps, args.repeats)  # one at a time: same per instance
        torch = torch_rate(args.steps, args.repeats)
    out = sys.stdout
    out.write(f"{'how':<36}{'instance-steps/s':>18}\n")
    out.write(f"{'numpy, 10 instances in one array':<36}{together:>18,.0f}\n")
    out.write(f"{'numpy, one instance at a time':<36}{alone:>18,.0f}\n")
    if torch is None:
        out.write("PyTorch: not installed, not measured\n")
    else:
        out.write(f"{'PyTorch, 10 instances in a tensor':<36}{torch:>18,.0f}\n")
    out.write(f"{'numpy vectorised / one at a time':<36}{together / alone:>18.2f}\n")
    result = {"vectorised": round(together), "one_at_a_time": round(alone),
              "vectorised_over_one": round(together / alone, 3)}  # fmt: skip
    if torch is not None:
        out.write(f"{'numpy vectorised / PyTorch':<36}{together / torch:>18.2f}\n")
        result |= {
            "torch": round(torch),
            "numpy_over_torch": round(together / torch, 3),
        }
    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
