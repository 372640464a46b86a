"""Fake sweep folders with the real file layout and schema, for analysis tests.

The numbers are plausible, not computed: success falls with the load p n / m and
rises with neurons; lstsq barely succeeds. Every method at the same data keys shows
identical true samples, as in a real sweep.
"""

import itertools
import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, load, report
from sweep.schema import (
    FEATURES_FILE,
    METRIC_COLUMNS,
    METRICS_FILE,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    STATUS_FILE,
)

METHOD_PARAMS = {  # the method.* columns each method's rows carry
    "omp": {"method.tol": 1e-6, "method.n_nonzero_coefs": None},
    "lasso": {"method.alpha": 1e-3, "method.positive": False, "method.tol": 1e-6},
    "basis_pursuit": {"method.positive": False, "method.max_iter": 500},
    "lstsq": {},
}
QUALITY = {"omp": 1.0, "basis_pursuit": 1.2, "lasso": 0.8, "lstsq": 0.05}
N_SHOWN = 8  # samples of trial 0 in samples.parquet
DEFAULTS = {
    "seed": 0,
    "n_features": 40,
    "k": None,
    "n_samples": 50,
    "n_train": 100,
    "noise": 0.0,
    "success_tol": 0.01,
    "model": "random",
}


def planned_figures(sweep_dir: Path) -> dict[str, figures.Planned]:
    """The figures the analysis' registry plans for a sweep folder, by file name:
    each with its caption and ``draw()``, the Figure the analysis writes."""
    sweep = report.analysed(sweep_dir, load(sweep_dir))
    return {planned.file: planned for planned in figures.planned(sweep)}


def cell_name(keys: Mapping[str, object]) -> str:
    """Hydra's override dirname: "method=omp,neurons=5,sparsity=0.01"."""
    return ",".join(f"{key}={value}" for key, value in sorted(keys.items()))


def make_sweep(
    root: Path,
    *,
    methods: Iterable[str] = ("omp", "lstsq"),
    neurons: Iterable[int] = (5, 10, 20),
    sparsity: Iterable[float] = (0.01, 0.1),
    trials: int = 3,
    failed_cells: Iterable[str] = (),
    missing_cells: Iterable[str] = (),
    rng_seed: int = 0,
    extra_keys: Mapping[str, Iterable[object]] | None = None,
    name: str = "2025-01-01_12-00-00",
) -> Path:
    """Write a sweep folder ``root/name`` over the grid; return its path.

    extra_keys: further swept keys, e.g. {"method.alpha": (0.01, 0.1)} or
    {"n_features": (20, 40)}; a "k" entry sweeps k (use sparsity=(None,) with it).
    failed_cells: cell names (see ``cell_name``) written as failed.
    missing_cells: cell names whose job died at once: a ``.hydra`` folder, no files.
    """
    sweep_dir = Path(root) / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    grid = {"method": methods, "neurons": neurons, "sparsity": sparsity}
    grid |= dict(extra_keys or {})
    failed, missing = set(failed_cells), set(missing_cells)
    for values in itertools.product(*map(tuple, grid.values())):
        keys = dict(zip(grid, values, strict=True))
        cell = cell_name(keys)
        config = _config(keys, trials)
        if cell in missing:
            (sweep_dir / cell / ".hydra").mkdir(parents=True, exist_ok=True)
            continue
        _write_cell(sweep_dir, cell, config, failed=cell in failed, seed=rng_seed)
    return sweep_dir


def _config(keys: dict, trials: int) -> dict:
    """A flat config in job.py's column order: top-level keys, model, method.*."""
    config = DEFAULTS | {"trials": trials} | keys
    if config.get("sparsity") is None:
        config["sparsity"] = None  # exactly-k data: sparsity unset
    params = METHOD_PARAMS.get(config["method"], {}) | {
        k: v for k, v in keys.items() if k.startswith("method.")
    }
    top = {k: v for k, v in config.items() if "." not in k and k != "method"}
    return top | {"method": config["method"], **dict(sorted(params.items()))}


def _write_cell(sweep_dir: Path, cell: str, config: dict, *, failed: bool, seed: int):
    cell_dir = sweep_dir / cell
    (cell_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (cell_dir / ".hydra" / "overrides.yaml").write_text(f"- {cell}\n")
    (cell_dir / "job.log").write_text("")
    data_keys = {k: config[k] for k in ("n_features", "neurons", "sparsity", "k")}
    data_rng = np.random.default_rng([seed, zlib.crc32(repr(data_keys).encode())])
    rng = np.random.default_rng([seed, zlib.crc32(cell.encode())])
    success = _success(config)
    rows = [
        _row(config, sweep_dir.name, cell, trial, None if failed else success, rng)
        for trial in range(config["trials"])
    ]
    pd.DataFrame(rows).to_parquet(cell_dir / METRICS_FILE, index=False)
    status = {"status": "failed" if failed else "ok", "error": None}
    if failed:
        status["error"] = "RuntimeError: fake failure"
    else:
        _features(config, rng).to_parquet(cell_dir / FEATURES_FILE, index=False)
        _samples(config, success, data_rng, rng).to_parquet(cell_dir / SAMPLES_FILE)
    status |= {"traceback": None, "schema_version": SCHEMA_VERSION}
    (cell_dir / STATUS_FILE).write_text(json.dumps(status))


def _density(config: dict) -> float:
    if config.get("sparsity") is not None:
        return float(config["sparsity"])
    return config["k"] / config["n_features"]


def _success(config: dict) -> float:
    """Expected success: a logistic fall in the load p n / m, scaled by the method."""
    load = _density(config) * config["n_features"] / config["neurons"]
    quality = QUALITY.get(config["method"], 0.5) * (1 + config.get("method.alpha", 0))
    return float(1 / (1 + np.exp(6 * (load / quality - 0.5))))


def _row(config, sweep, cell, trial, success, rng) -> dict:
    """One trial row: identity, config, S, metrics (NaN for a failed cell)."""
    identity = {"schema_version": SCHEMA_VERSION, "sweep": sweep, "cell": cell}
    status = {"status": "ok" if success is not None else "failed", "error": None}
    if success is None:
        status["error"] = "RuntimeError: fake failure"
    row = identity | status | {"trial": trial} | config | {"S": 1 - _density(config)}
    if success is None:
        return row | dict.fromkeys(METRIC_COLUMNS, np.nan)
    s = float(np.clip(success + rng.normal(0, 0.03), 0, 1))
    nmse = float((1 - s) * 0.8 + 10 ** rng.uniform(-14, -8))
    f1 = 0.5 + 0.5 * s
    return row | {
        "mse": nmse * _density(config) / 3,  # E[x^2] = p / 3 for x ~ U[0, 1]
        "nmse": nmse,
        "weighted_mse": nmse * _density(config) * config["n_features"] / 3,
        "rel_error": float(np.sqrt(nmse)),
        "success_rate": s,
        "frac_zero": (1 - _density(config)) ** config["n_features"],
        "support_precision": f1,
        "support_recall": f1,
        "support_f1": f1,
        "r2": 1 - nmse,
        "r2_h": 1.0,
        "l0": _density(config) * config["n_features"] / f1,
        "fit_seconds": 0.0,
        "recover_seconds": float(rng.uniform(0.01, 0.1)),
    }


def _features(config: dict, rng: np.random.Generator) -> pd.DataFrame:
    n, trials = config["n_features"], config["trials"]
    trial, feature = np.divmod(np.arange(trials * n), n)
    return pd.DataFrame(
        {
            "trial": trial,
            "feature": feature,
            "norm": 1.0,
            "b": 0.0,
            "importance": 1.0,
            "dimensionality": rng.uniform(0, 1, trials * n),
            "superposition": rng.uniform(0, 1, trials * n),
            "recovery_mse": rng.uniform(0, 0.01, trials * n),
        }
    )


def _samples(config, success, data_rng, rng) -> pd.DataFrame:
    """Long form, trial 0: X the same for every method, X_hat worse at low success."""
    n = config["n_features"]
    active = data_rng.random((N_SHOWN, n)) < _density(config)
    X = active * data_rng.uniform(0, 1, (N_SHOWN, n))
    X_hat = X + (1 - success) * rng.normal(0, 0.3, X.shape)
    sample, feature = np.indices(X.shape)
    return pd.DataFrame(
        {
            "trial": 0,
            "sample": sample.ravel(),
            "feature": feature.ravel(),
            "true": X.ravel(),
            "recovered": X_hat.ravel(),
        }
    )
