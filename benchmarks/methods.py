"""Cost of each recovery method, and our overhead over the sklearn call it wraps.

    python benchmarks/methods.py [--samples 300]

Seconds per 1,000 samples at n_features=100, neurons=20, sparsity=0.05, and at
n_features = 400 and 1600 with neurons = n_features / 5 (one thread, random W). Each
sklearn-backed method is timed next to the direct sklearn call on the same arrays
(ratio ~1 means no overhead of ours). Then the peak memory (max RSS) of one default cell
per method, each measured in a fresh process. Learned methods include their fit and
are not timed at n_features=1600 (their fit alone takes minutes there).
"""

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np
from sklearn.decomposition import sparse_encode
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, orthogonal_mp_gram
from threadpoolctl import threadpool_limits

from sweep import methods
from sweep.data import sparse_features
from sweep.methods import ACTIVATIONS, METHODS
from sweep.models import random_model
from sweep.registry import Registry

SIZES = (100, 400, 1600)


def direct(name: str, H: np.ndarray, W: np.ndarray):
    """The sklearn call a method wraps, on the same arrays (None if it wraps none)."""
    params = Registry.params(METHODS[name])
    if name == "omp":
        Hn = H / np.linalg.norm(H, axis=1, keepdims=True)
        return lambda: orthogonal_mp_gram(
            W.T @ W, W.T @ Hn.T, tol=params["tol"], norms_squared=np.ones(len(H))
        )
    if name in ("lasso_lars", "threshold"):
        return lambda: sparse_encode(H, W.T, algorithm=name, alpha=params["alpha"])
    if name == "lasso":
        model = Lasso(alpha=params["alpha"] / W.shape[0], fit_intercept=False,
                      max_iter=params["max_iter"], tol=params["tol"],
                      precompute=W.T @ W)  # fmt: skip
        return lambda: model.fit(W, H.T)
    return None


def per_1000(fn, n_samples: int) -> float:
    """Seconds per 1,000 samples of fn() (best of 2)."""
    best = np.inf
    for _ in range(2):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / n_samples


def timings(n: int, n_samples: int) -> dict[str, tuple[float, float | None]]:
    rng = np.random.default_rng(0)
    W = random_model(n, n // 5, rng=rng).W
    H = sparse_features(n_samples, n, rng=rng, sparsity=0.05) @ W.T
    H = H[np.linalg.norm(H, axis=1) > 0]
    H_train = sparse_features(1000, n, rng=rng, sparsity=0.05) @ W.T
    out = {}
    model = random_model(n, n // 5, rng=rng)
    model.W = W
    for name in sorted(METHODS):
        if name in METHODS.having(uses=ACTIVATIONS) and n > 400:  # minutes at 1600
            out[name] = (float("nan"), None)
            continue

        def ours_call(name=name):
            inputs = methods.given(name, H, model=model, known=W, H_train=H_train,
                                   rng=np.random.default_rng(0))  # fmt: skip
            return methods.recover(name, inputs)

        ours = per_1000(ours_call, len(H))
        call = direct(name, H, W)
        out[name] = (ours, None if call is None else per_1000(call, len(H)))
    return out


def peak_memory_mb(method: str) -> float:
    """Max RSS of a fresh process that runs one default cell of ``method``."""
    code = (
        "import resource, tempfile; from hydra import compose, initialize_config_dir;"
        "from omegaconf import OmegaConf; from sweep import CONF_DIR, job\n"
        "with initialize_config_dir(str(CONF_DIR), version_base='1.3'):\n"
        f"    cfg = compose('config', overrides=['method={method}'])\n"
        "job.run(OmegaConf.to_container(cfg), tempfile.mkdtemp())\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    with threadpool_limits(1):
        table = {n: timings(n, args.samples if n < 1600 else args.samples // 3)
                 for n in SIZES}  # fmt: skip
    out = sys.stdout
    head = "".join(f"{f'n={n} s/1k':>13}" for n in SIZES)
    out.write(
        f"{'method':<15}{head}{'sklearn s/1k':>14}{'ours/sklearn':>14}{'peak MB':>9}\n"
    )
    result = {}
    for name in sorted(METHODS):
        cols = "".join(f"{table[n][name][0]:>13.3f}" for n in SIZES)
        ours, sk = table[100][name]
        ratio = f"{ours / sk:>14.2f}" if sk else f"{'-':>14}"
        skcol = f"{sk:>14.3f}" if sk else f"{'-':>14}"
        memory = peak_memory_mb(name)
        out.write(f"{name:<15}{cols}{skcol}{ratio}{memory:>9.0f}\n")
        seconds = [table[n][name][0] for n in SIZES]
        result[name] = {"s_per_1000": [None if np.isnan(t) else round(t, 4)
                                       for t in seconds],
                        "over_sklearn": round(ours / sk, 3) if sk else None,
                        "peak_mb": round(memory)}  # fmt: skip
    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
