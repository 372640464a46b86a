"""Sweep throughput: the same cells through the CLI, a plain joblib.Parallel, a loop.

    python benchmarks/throughput.py [--seeds 3]

The grid: method=basis_pursuit, n_features=100, neurons in {15, 20, 25, 30}, sparsity
in {0.03, 0.04, 0.05, 0.06}, seed in {0, 1, 2}: 48 cells of about 1 s each (5 trials x
300 samples). Measured side by side in one run:
  (a) `python -m sweep -m ...` with its pool launcher, the end-of-sweep analysis off
      (the analysis is timed on its own afterwards);
  (b) joblib.Parallel(n_jobs=-1) over sweep.job.run on the same cells;
  (c) a plain loop over sweep.job.run.
Prints wall and CPU seconds and the ratios as a table, then one JSON line.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from joblib import Parallel, delayed
from omegaconf import OmegaConf

from sweep import CONF_DIR, PROJECT_ROOT, job
from sweep.grid import expand_cells

AXES = ["method=basis_pursuit", "neurons=15,20,25,30", "sparsity=0.03,0.04,0.05,0.06"]


def grid(n_seeds: int) -> list[str]:
    """The command line's grid overrides."""
    return [*AXES, "seed=" + ",".join(str(s) for s in range(n_seeds))]


def cells(argv: list[str]) -> list[tuple[str, dict]]:
    """(folder name, config) of every cell, composed as Hydra composes a job."""
    out, cells = [], expand_cells(argv[1:], multirun=True)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for cell in cells:
            cfg = compose("config", overrides=list(cell.overrides))
            out.append((cell.name, OmegaConf.to_container(cfg)))
    return out


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its waited-for children) of fn()."""
    wall, cpu = time.perf_counter(), self_cpu() + children_cpu()
    fn()
    return time.perf_counter() - wall, self_cpu() + children_cpu() - cpu


def run_cli(*args: str) -> None:
    cmd = [sys.executable, "-m", *args]
    subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    argv = ["-m", *grid(args.seeds)]
    todo = cells(argv)
    root = Path(tempfile.mkdtemp(prefix="throughput-"))
    off = "hydra.callbacks.sweep_end.analyze=false"
    rows = {
        "sweep": timed(lambda: run_cli("sweep", *argv, off,
                                       f"hydra.sweep.dir={root / 'sweep'}")),
        "analysis": timed(lambda: run_cli("analysis", str(root / "sweep"))),
        "joblib": timed(lambda: Parallel(n_jobs=-1)(
            delayed(job.run)(cfg, root / "joblib" / name) for name, cfg in todo)),
        "serial": timed(lambda: [job.run(cfg, root / "serial" / name)
                                 for name, cfg in todo]),
    }  # fmt: skip
    out = sys.stdout
    out.write(f"{len(todo)} cells; results under {root}\n")
    out.write(f"{'how':<44}{'wall s':>9}{'cpu s':>9}\n")
    names = {
        "sweep": "(a) python -m sweep -m (pool launcher)",
        "analysis": "    the analysis of (a), on its own",
        "joblib": "(b) joblib.Parallel over job.run",
        "serial": "(c) serial loop over job.run",
    }
    for key, (wall, cpu) in rows.items():
        out.write(f"{names[key]:<44}{wall:>9.2f}{cpu:>9.2f}\n")
    sweep_s, joblib_s, serial_s = (rows[k][0] for k in ("sweep", "joblib", "serial"))
    out.write(f"{'sweep / joblib (goal <= 1.2)':<44}{sweep_s / joblib_s:>9.2f}\n")
    out.write(f"{'serial / sweep (goal >= 1.35)':<44}{serial_s / sweep_s:>9.2f}\n")
    result = {
        "sweep_s": round(sweep_s, 2), "joblib_s": round(joblib_s, 2),
        "serial_s": round(serial_s, 2),
        "sweep_over_joblib": round(sweep_s / joblib_s, 3),
        "serial_over_sweep": round(serial_s / sweep_s, 3),
    }  # fmt: skip
    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
