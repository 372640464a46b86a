"""How a sweep's wall time and memory grow with its cells, n_features and trials,
measured side by side with a plain joblib loop over the same job function.

    python benchmarks/scaling.py [--cells 50,800,10000] [--features 20,80,320]
                                 [--trials 5,20,80] [--axes cells,features,trials]
                                 [--repeats 3]

Every point is a phase-diagram grid of small cells (method=threshold, 300 samples per
trial): 10 values of neurons up to n_features, times up to 100 sparsities in [0.01,
0.9], times seeds for the rest. It runs two ways, each in its own process, one after
the other on the same machine:
  (a) the command line, ``python -m sweep -m neurons=... sparsity=... seed=...``, its
      end-of-sweep analysis off (``python -m analysis`` on its folder is timed alone);
  (b) a plain loop: the configuration composed once, one dict per grid point,
      ``joblib.Parallel(n_jobs=-1)`` over ``sweep.job.run`` into one folder per cell.
Memory is the peak resident memory of the process started (the sweep's parent, not
its workers), read from /proc while it runs. The axes: the number of cells (n_features
20, 5 trials); n_features (50 cells, 5 trials); trials (50 cells, n_features 20).

Each way runs ``--repeats`` times per point, in turn (the medians are shown; once
for grids over 2,000 cells). Prints, per axis, a row per point (wall seconds and peak
MB of each way, the ratio (a)/(b), the analysis's seconds), the exponent b of
wall ~ size^b fitted by least squares on log-log for (a), (b) and the analysis, then
one JSON line with every row.
"""

import argparse
import itertools
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sweep import PROJECT_ROOT

POLL_S = 0.05
AXES = {"cells": "cells", "features": "n_features", "trials": "trials"}


def say(*lines: str) -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def overrides(cells: int, n_features: int, trials: int) -> list[str]:
    """The grid of one point, as command-line overrides (``cells`` a multiple of 10)."""
    neurons = range(n_features // 10, n_features + 1, n_features // 10)
    n_sparsities = min(cells // len(neurons), 100)
    sparsities = np.linspace(0.01, 0.9, n_sparsities)
    return [
        "method=threshold", f"n_features={n_features}", f"trials={trials}",
        "n_samples=300", "neurons=" + ",".join(str(m) for m in neurons),
        "sparsity=" + ",".join(f"{p:.4f}" for p in sparsities),
        f"seed=range(0,{cells // (len(neurons) * n_sparsities)})",
    ]  # fmt: skip


def points(grid: list[str]) -> tuple[list[str], list[dict]]:
    """The fixed overrides of a grid and its points (the swept keys' values)."""
    fixed, axes = [], {}
    for line in grid:
        key, value = line.split("=", 1)
        if value.startswith("range("):
            axes[key] = list(range(*map(int, value[6:-1].split(","))))
        elif "," in value:
            axes[key] = [float(v) if "." in v else int(v) for v in value.split(",")]
        else:
            fixed.append(line)
    return fixed, [dict(zip(axes, values, strict=True))
                   for values in itertools.product(*axes.values())]  # fmt: skip


def measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and the peak resident MB of the process ``cmd`` starts."""
    with tempfile.TemporaryFile("w+") as errors:  # a pipe would fill and block it
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=errors, text=True)  # fmt: skip
        peak = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError):  # it ended between poll and read
                pass
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        errors.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {errors.read()[-2000:]}")
    return wall, peak / 1024


def plain(folder: str, grid: list[str]) -> None:
    """(b), in this process: compose once, one dict per cell, joblib over job.run."""
    from hydra import compose, initialize_config_dir
    from joblib import Parallel, delayed
    from omegaconf import OmegaConf

    from sweep import CONF_DIR, job

    fixed, cells = points(grid)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        base = OmegaConf.to_container(compose("config", overrides=fixed))
    Parallel(n_jobs=-1)(
        delayed(job.run)(base | cell, Path(folder) / f"cell{i}")
        for i, cell in enumerate(cells)
    )


def point(root: Path, name: str, grid: list[str], repeats: int) -> dict:
    """Both ways, ``repeats`` times in turn (each into new folders: nothing cached),
    their medians; and the analysis of the first sweep."""
    off = "hydra.callbacks.sweep_end.analyze=false"
    cli, loop = [], []
    for r in range(repeats):
        folder = f"hydra.sweep.dir={root / name / f'sweep{r}'}"
        cli.append(measured([sys.executable, "-m", "sweep", "-m", *grid, off, folder]))
        loop.append(measured([sys.executable, __file__, "--plain",
                              str(root / name / f"plain{r}"), *grid]))  # fmt: skip
    analysis = measured([sys.executable, "-m", "analysis", str(root / name / "sweep0")])
    (cli_s, cli_mb), (plain_s, plain_mb) = np.median(cli, 0), np.median(loop, 0)
    return {"cli_s": cli_s, "cli_mb": cli_mb, "plain_s": plain_s,
            "plain_mb": plain_mb, "analysis_s": analysis[0],
            "analysis_mb": analysis[1], "repeats": repeats}  # fmt: skip


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """b of seconds ~ a * size^b, least squares on log-log."""
    if len(sizes) < 2:
        return math.nan
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="50,800,10000")
    parser.add_argument("--features", default="20,80,320")
    parser.add_argument("--trials", default="5,20,80")
    parser.add_argument("--axes", default="cells,features,trials")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each way per point, in turn (median); one"
                             " for grids over 2,000 cells")  # fmt: skip
    parser.add_argument("--plain", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain(args.plain[0], args.plain[1:])
        return
    root = Path(tempfile.mkdtemp(prefix="scaling-"))
    say(f"results under {root}")
    rows = []
    for axis in args.axes.split(","):
        sizes = [int(s) for s in getattr(args, axis).split(",")]
        say("", f"{AXES[axis]:>10} {'sweep s':>9} {'loop s':>9} {'ratio':>6}"
            f" {'sweep MB':>9} {'loop MB':>8} {'analysis s':>11} {'analysis MB':>12}")
        found = []
        for size in sizes:
            shape = {"cells": 50, "n_features": 20, "trials": 5} | {AXES[axis]: size}
            repeats = args.repeats if shape["cells"] <= 2000 else 1
            row = point(root, f"{axis}{size}", overrides(**shape), repeats)
            row |= {"axis": AXES[axis], "size": size,
                    "ratio": row["cli_s"] / row["plain_s"]}  # fmt: skip
            found.append(row)
            say(f"{size:>10} {row['cli_s']:>9.1f} {row['plain_s']:>9.1f}"
                f" {row['ratio']:>6.2f} {row['cli_mb']:>9.0f} {row['plain_mb']:>8.0f}"
                f" {row['analysis_s']:>11.1f} {row['analysis_mb']:>12.0f}")
        fits = {key: exponent(sizes, [r[f"{key}_s"] for r in found])
                for key in ("cli", "plain", "analysis")}  # fmt: skip
        say(f"{'exponent b':>10} {fits['cli']:>9.2f} {fits['plain']:>9.2f} {'':>6}"
            f" {'':>9} {'':>8} {fits['analysis']:>11.2f}   (wall ~ size^b)")
        rows += found
    say(json.dumps([{k: round(v, 3) if isinstance(v, float) else v
                     for k, v in r.items()} for r in rows]))  # fmt: skip


if __name__ == "__main__":
    main()
