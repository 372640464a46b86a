"""Peak memory of cells against sweep.budget's estimate (the refusal before a sweep).

    python benchmarks/memory.py [--only SUBSTRING]

Each cell runs alone in a fresh process that imports what a worker imports (sweep.job
with numpy, scipy, sklearn, pandas, pyarrow; Hydra, OmegaConf), runs all trials of the
cell (``job.run_trials``, one thread) and writes its tables to parquet as the job does;
its peak resident memory is the process's max RSS. The cells cover every method and
both trained models, each at a size where its own arrays dominate (many samples for
the known-dictionary methods, many features for the (n_features x n_features) Gram
matrices, training and encoding batches of the SAE, the training set of dictionary
learning and ICA, the training and evaluation batches of the toy models), and the
default cell (the process itself). Every cell takes under a minute of CPU and under
6 GB; they run one after another (about 8 minutes in all).

Prints a table: cell, estimate (GB), measured peak (GB), estimate / measured and the
cell's CPU seconds; then one JSON line with the rows. ``sweep/budget.py`` is calibrated
on it: estimate >= measured everywhere, and at most 2.5 x measured above 1 GB.
"""

import argparse
import json
import subprocess
import sys

from sweep.budget import GB, estimate_bytes
from sweep.grid import expand_cells

CELLS = [
    "method=omp",  # the default cell: the process itself
    # known dictionary: (n_samples x n_features) arrays
    "method=readout n_samples=150000 n_features=200 neurons=40",
    "method=readout n_samples=100000 n_features=200 neurons=40 sparsity=null k=5",
    "method=readout n_train=400000 n_features=200 neurons=20",
    "method=threshold n_samples=100000 n_features=200 neurons=40",
    "method=lstsq n_samples=100000 n_features=200 neurons=40",
    "method=omp n_samples=40000 n_features=500 neurons=20 trials=2",
    "method=lasso n_samples=40000 n_features=1000 neurons=20 trials=1"
    " method.max_iter=20",
    "method=lasso_lars n_samples=8000 n_features=1000 neurons=20 trials=1",
    "method=basis_pursuit n_samples=6000 n_features=1000 neurons=20 trials=1",
    "method=nnls n_samples=30000 n_features=1000 neurons=20 trials=1",
    # known dictionary: (n_features x n_features) Gram matrices
    "method=omp n_features=5000 neurons=200 n_samples=20 trials=1",
    "method=lasso_lars n_features=5000 neurons=200 n_samples=20 trials=1",
    "method=basis_pursuit n_features=5000 neurons=200 n_samples=20 trials=1",
    "method=lasso n_features=5000 neurons=200 n_samples=20 trials=1 method.max_iter=50",
    # learned dictionaries
    "method=sae n_features=200 neurons=20 method.expansion=8"
    " method.batch_size=16384 method.steps=10",
    "method=sae n_features=200 neurons=20 method.expansion=4 method.steps=10"
    " n_samples=40000",
    "method=sae n_features=1000 neurons=500 method.expansion=4 method.steps=10",
    "method=sae n_features=2000 neurons=20 method.expansion=4 method.steps=5 trials=3",
    "method=dict_learning n_train=250000 neurons=20 trials=1 method.max_iter=1",
    "method=dict_learning n_samples=60000 n_features=200 neurons=20 trials=1"
    " method.max_iter=1 method.transform_alpha=0.1",
    "method=ica n_features=60 neurons=60 n_train=200000 method.max_iter=30",
    # trained models: training and evaluation batches
    "model=toy_relu model.steps=20 model.batch_size=4096 model.restarts=4"
    " n_features=500 neurons=20 method=readout",
    "model=toy_relu model.steps=20 model.batch_size=64 model.restarts=4"
    " n_features=1000 neurons=20 method=readout",
    "model=toy_linear model.steps=20 model.batch_size=64 model.restarts=4"
    " n_features=1000 neurons=20 method=readout",
]

# The measuring process: argv[1] is the cell's overrides as JSON. It prints its max
# RSS (bytes) and CPU seconds.
MEASURE = """
import json, resource, sys, tempfile, time
from pathlib import Path

import hydra, omegaconf
from threadpoolctl import threadpool_limits

from sweep import job
from sweep.grid import expand_cells

(cell,) = expand_cells(json.loads(sys.argv[1]), multirun=False)
start = time.process_time()
with threadpool_limits(1):
    metrics, tables = job.run_trials(cell.flat)
with tempfile.TemporaryDirectory() as tmp:
    for name, table in tables.items():
        table.to_parquet(Path(tmp) / name, index=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
sys.stdout.write(json.dumps([peak, time.process_time() - start]) + "\\n")
"""


def measure(overrides: list[str]) -> tuple[float, float]:
    """Peak resident memory (bytes) and CPU seconds of one cell in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(overrides)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{' '.join(overrides)}: {done.stderr.strip()[-2000:]}")
    peak, cpu = json.loads(done.stdout.splitlines()[-1])
    return float(peak), float(cpu)


def estimate(overrides: list[str]) -> float:
    """sweep.budget's estimate of the cell's peak memory (bytes)."""
    (cell,) = expand_cells(overrides, multirun=False)
    return estimate_bytes(cell.flat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="cells containing this string")
    args = parser.parse_args()
    out = sys.stdout
    width = max(len(c) for c in CELLS)
    head = f"{'estimate GB':>13}{'measured GB':>13}{'ratio':>7}{'cpu s':>7}"
    out.write(f"{'cell':<{width}}{head}\n")
    rows = []
    for line in CELLS:
        if args.only not in line:
            continue
        overrides = line.split()
        need = estimate(overrides)
        peak, cpu = measure(overrides)
        row = {"cell": line, "estimate_gb": round(need / GB, 3),
               "measured_gb": round(peak / GB, 3), "ratio": round(need / peak, 2),
               "cpu_s": round(cpu, 1)}  # fmt: skip
        rows.append(row)
        numbers = f"{need / GB:>13.3f}{peak / GB:>13.3f}{need / peak:>7.2f}{cpu:>7.1f}"
        out.write(f"{line:<{width}}{numbers}\n")
        out.flush()
    out.write(json.dumps(rows) + "\n")


if __name__ == "__main__":
    main()
