"""One cell: run its trials, write its files. The only module that writes results.

``run`` never raises: an error becomes ``status=failed`` rows and a traceback in
``status.json``, so that the end-of-sweep summary and analysis always run.
"""

import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from sweep import PROJECT_ROOT, config, folders, schema
from sweep.align import recovered
from sweep.config import flatten
from sweep.data import add_noise, sparse_features
from sweep.folders import load_model, locked, save_model, write_atomic, write_json
from sweep.methods import Recovery, recover_trials
from sweep.metrics import feature_metrics, recovery_metrics
from sweep.models import MODELS, TRAINED, UNREPRESENTED, Model, known_dictionary

log = logging.getLogger(__name__)

# Test-only switch (fault injection): cells whose name contains one of these
# comma-separated strings raise inside the job, as a crashing method would.
FAIL_ENV = "SWEEP_TEST_FAIL_CELLS"
N_SHOWN = 16  # test samples of trial 0 kept in samples.parquet, for heatmaps
DATA_KEYS = ("n_features", "sparsity", "k")
MODEL_KEYS = ("n_features", "neurons")
TRAINING_VERSION = 2  # part of a cached model's key: bump when training code changes


def run(
    cfg: Any,
    out_dir: Path,
    *,
    sweep: str = "",
    cell: str = "",
    cache_dir: Path | None = None,
) -> dict:
    """Run the cell of ``cfg`` into ``out_dir``; return its status (never raises).

    ``cell`` names it in its rows (default: its configuration's folder name).
    Trained models are cached in (and reused from) ``cache_dir`` when it is given.
    """
    try:
        timeout = cfg.get("cell_timeout_s")
        flat = config.normalise(flatten(cfg))
        identity = {"sweep": sweep, "cell": cell or config.cell_name(flat)}
        return _run(flat, Path(out_dir), identity, cache_dir, timeout)
    except FolderConflict as err:  # nothing is written: the folder keeps its results
        log.error("refused %s: %s", cell or out_dir, err)
        return {"status": "failed", "error": str(err)}
    except Exception as err:  # last resort, e.g. the folder cannot be written
        log.exception("failed %s", cell or out_dir)
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def _run(flat: dict, out_dir: Path, identity: dict, cache_dir, timeout) -> dict:
    cached = _previous(out_dir, flat, identity["cell"])
    if cached:
        log.info("cached %s", identity["cell"])
        return cached
    started = time.perf_counter()
    status = {"status": "ok", "error": None, "traceback": None}
    files = {}
    try:
        _inject_failure(identity["cell"])
        with threadpool_limits(1), time_limit(timeout):  # the sweep is the unit
            metrics, tables = run_trials(flat, cache_dir)  # of parallelism
        for name, table in tables.items():
            files[name] = _write_parquet(table, out_dir / name)
    except Exception as err:  # a cell never raises: its failure is a result
        status = _failure(err, traceback.format_exc())
        metrics = [{} for _ in range(flat.get("trials") or 1)]
    if status["status"] == "ok" and all(m.get("frac_zero") == 1 for m in metrics):
        status["warning"] = (
            "every test sample is all zeros (frac_zero=1): nmse, success_rate and"
            " rel_error are undefined (NaN); raise sparsity or n_samples"
        )
    return _finish(flat, out_dir, identity, status, metrics, files, started)


def record_failure(
    flat: dict, out_dir: Path, *, sweep: str, error: str, trace: str | None
) -> dict:
    """Write the rows and status of a cell that could not run (its worker died, or
    Hydra could not start its job); return its status."""
    status = {"status": "failed", "error": error, "traceback": trace}
    metrics = [{} for _ in range(flat.get("trials") or 1)]
    identity = {"sweep": sweep, "cell": out_dir.name}
    return _finish(flat, out_dir, identity, status, metrics, {}, time.perf_counter())


def _failure(err: BaseException, trace: str) -> dict:
    line = f"{type(err).__name__}: {err}".splitlines()[0]
    return {"status": "failed", "error": line, "traceback": trace}


def _finish(flat, out_dir, identity, status, metrics, files, started) -> dict:
    """Write the cell's rows, then its status.json (last: it marks the cell
    complete, with the checksum of every file written); log the cell's line."""
    rows = _rows(metrics, flat, identity, status)
    try:
        files[schema.METRICS_FILE] = _write_parquet(rows, out_dir / schema.METRICS_FILE)
    except Exception as err:  # e.g. a full disk: the cell fails, its status says why
        status = _failure(err, traceback.format_exc())
        rows = rows.assign(status="failed", error=status["error"])
    seconds = time.perf_counter() - started
    status.update(_provenance(flat, identity, rows, seconds) | {"files": files})
    write_json(status, out_dir / schema.STATUS_FILE)
    _log_cell(status, rows, identity["cell"])
    return status


class CellTimeout(Exception):
    """A cell ran past cell_timeout_s."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CellTimeout in this (main) thread after ``seconds`` of wall time.

    SIGALRM interrupts Python code between bytecodes: a long single C call (one big
    solver call) is interrupted when it returns.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise CellTimeout(f"ran past cell_timeout_s={seconds:g}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _inject_failure(cell: str) -> None:
    marks = [m for m in os.environ.get(FAIL_ENV, "").split(",") if m]
    if any(m in cell for m in marks):
        raise RuntimeError(f"injected failure ({FAIL_ENV})")


def run_trials(
    flat: dict, cache_dir: Path | None = None
) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """All trials of a cell: per-trial metric dicts, and the tables to write."""
    t0 = time.perf_counter()
    models = build_models(flat, cache_dir)
    fit_seconds = (time.perf_counter() - t0) / len(models)  # trials train together
    data = [draw(flat, trial, model) for trial, model in enumerate(models)]
    t1 = time.perf_counter()
    tol = flat.get("represented_tol", UNREPRESENTED)  # a config older than the key
    known = [known_dictionary(m.W, tol) for m in models]
    recoveries = recover_trials(
        flat["method"], [d.H for d in data], known,
        H_trains=[d.H_train for d in data], bs=[m.b for m in models],
        rngs=[stream(flat, t, "method", flat) for t in range(len(models))],
        relus=[m.relu for m in models], **_params(flat, "method"),
    )  # fmt: skip
    recover_seconds = (time.perf_counter() - t1) / len(models)  # may run together
    metrics, features = [], []
    for trial, (model, d, recovery) in enumerate(
        zip(models, data, recoveries, strict=True)
    ):
        result = score(flat, model, d, recovery, known[trial])
        learned = result.row.pop("fit_seconds", 0.0)  # a learned method's own fit
        metrics.append(result.row | {
            "fit_seconds": fit_seconds + learned,
            "recover_seconds": recover_seconds - learned,
        })  # fmt: skip
        features.append(result.features.assign(trial=trial))
        if trial == 0:  # kept for figures: a few samples, the atoms' cosines
            X, X_hat = result.X[:N_SHOWN], result.X_hat[:N_SHOWN]
            tables = {schema.SAMPLES_FILE: _long_form(X, X_hat, trial)}
            if result.cosines is not None:
                tables[schema.COSINES_FILE] = _cosines(result.cosines, trial)
    tables[schema.FEATURES_FILE] = pd.concat(features, ignore_index=True)
    if flat["model"] in TRAINED:  # the paper's figures need the trained W itself
        tables[schema.WEIGHTS_FILE] = _weights(models)
    return metrics, tables


def build_models(flat: dict, cache_dir: Path | None = None) -> list[Model]:
    """One model per trial; trained models come from (and go to) ``cache_dir``."""
    keys = _model_keys(flat)
    rngs = [stream(flat, t, "model", keys) for t in range(flat["trials"])]
    params = _params(flat, "model")
    if flat["model"] in TRAINED:
        params |= {"sparsity": flat["sparsity"], "k": flat["k"]}

    def build(gens: list) -> list[Model]:
        n, m = flat["n_features"], flat["neurons"]
        return MODELS[flat["model"]](n, m, rngs=gens, **params)

    if flat["model"] not in TRAINED or cache_dir is None:
        return build(rngs)
    version = {"seed": flat["seed"], "training": TRAINING_VERSION}
    folder = cache_dir / config.fingerprint(keys | version)[:16]
    with locked(folder):  # a second cell of this model waits, then loads
        models = {t: _load(folder / f"trial{t}.npz") for t in range(len(rngs))}
        missing = [t for t, model in models.items() if model is None]
        built = build([rngs[t] for t in missing]) if missing else []
        for t, model in zip(missing, built, strict=True):
            arrays = {"W": model.W, "b": model.b, "importance": model.importance}
            save_model(folder / f"trial{t}.npz", arrays, model.info)
            models[t] = model
    return [models[t] for t in range(len(rngs))]


def _load(path: Path) -> Model | None:
    stored = load_model(path)
    return None if stored is None else Model(**stored)


def _model_keys(flat: dict) -> dict:
    """The keys a trial's model depends on (trained ones: on the data too)."""
    keys = _group(flat, "model") | {key: flat[key] for key in MODEL_KEYS}
    if flat["model"] in TRAINED:
        keys |= {key: flat[key] for key in DATA_KEYS}
    return keys


def _weights(models: list[Model]) -> pd.DataFrame:
    """W of every trial in long form: trial, neuron, feature, value."""
    frames = []
    for trial, model in enumerate(models):
        neuron, feature = np.indices(model.W.shape)
        frames.append(pd.DataFrame({
            "trial": trial, "neuron": neuron.ravel(), "feature": feature.ravel(),
            "value": model.W.ravel(),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


@dataclass
class TrialResult:
    """One trial's metrics, per-feature table, X and X_hat (n_samples, n_features),
    and for a learned dictionary the cosines of its atoms with the true features."""

    row: dict
    features: pd.DataFrame
    X: np.ndarray
    X_hat: np.ndarray
    cosines: np.ndarray | None = None  # (n_atoms, n_features)


@dataclass
class Data:
    """One trial's test X (n_samples, n_features), its H and the training H."""

    X: np.ndarray
    H: np.ndarray
    H_train: np.ndarray


def draw(flat: dict, trial: int, model: Model) -> Data:
    """One trial's data, compressed by the trial's model (streams of their own)."""
    data = {key: flat[key] for key in DATA_KEYS}
    X = _features(flat, flat["n_samples"], stream(flat, trial, "test", data))
    noise_keys = _model_keys(flat) | data | {"noise": flat["noise"]}
    H = add_noise(
        X @ model.W.T, noise=flat["noise"], rng=stream(flat, trial, "noise", noise_keys)
    )
    return Data(X, H, _training_data(flat, trial, model.W, data, noise_keys))


def score(
    flat: dict, model: Model, data: Data, recovery: Recovery, known: np.ndarray
) -> TrialResult:
    """One trial's metrics; a learned dictionary is aligned to the known W first."""
    X, H = data.X, data.H
    X_hat, found = recovered(recovery, known, H=H)
    info = recovery.info | (found.info if found is not None else {})
    row = recovery_metrics(
        X, X_hat, H=H, W=model.W, importance=model.importance,
        success_tol=flat["success_tol"],
    )  # fmt: skip
    row |= model.info | info
    feats = feature_metrics(X, X_hat, W=model.W, b=model.b, importance=model.importance)
    if found is None:
        return TrialResult(row, feats, X, X_hat)
    feats["matched_cos"], feats["matched_atom"] = found.matched_cos, found.atom_of
    return TrialResult(row, feats, X, X_hat, found.cosines)


def _cosines(C: np.ndarray, trial: int) -> pd.DataFrame:
    """The cosine matrix (n_atoms, n_features) in long form: atom, feature, cos."""
    atom, feature = np.indices(C.shape)
    return pd.DataFrame(
        {"atom": atom.ravel(), "feature": feature.ravel(), "cos": C.ravel(),
         "trial": trial}
    )  # fmt: skip


def _training_data(flat, trial, W, data, noise_keys) -> np.ndarray:
    """H_train (n_train, n_neurons), drawn from streams of its own."""
    rng = stream(flat, trial, "train", data | {"n_train": flat["n_train"]})
    X_train = _features(flat, flat["n_train"], rng)
    rng_noise = stream(flat, trial, "train_noise", noise_keys)
    return add_noise(X_train @ W.T, noise=flat["noise"], rng=rng_noise)


def _features(flat: dict, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """X (n_samples, n_features) for the cell's data keys."""
    return sparse_features(
        n_samples, flat["n_features"], rng=rng, sparsity=flat["sparsity"], k=flat["k"]
    )


def stream(flat: dict, trial: int, name: str, keys: dict) -> np.random.Generator:
    """An independent random stream keyed on (seed, trial, name, keys).

    A stable hash (never Python's salted ``hash``) of exactly the keys a draw depends
    on: every method at the same data and model keys sees identical X and W.
    """
    text = json.dumps([name, keys], sort_keys=True, default=str)
    words = np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], dtype=np.uint32)
    seq = np.random.SeedSequence([flat["seed"], trial, *words.tolist()])
    return np.random.default_rng(seq)


def _group(flat: dict, group: str) -> dict:
    return {k: v for k, v in flat.items() if k == group or k.startswith(group + ".")}


def _params(flat: dict, group: str) -> dict:
    prefix = group + "."
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


def _long_form(X: np.ndarray, X_hat: np.ndarray, trial: int) -> pd.DataFrame:
    sample, feature = np.indices(X.shape)
    return pd.DataFrame(
        {
            "trial": trial,
            "sample": sample.ravel(),
            "feature": feature.ravel(),
            "true": X.ravel(),
            "recovered": X_hat.ravel(),
        }
    )


def _rows(
    metrics: list[dict], flat: dict, identity: dict, status: dict
) -> pd.DataFrame:
    """One row per trial: identity, every config key, derived S, the metrics."""
    p = flat["sparsity"] if flat.get("sparsity") is not None else None
    if p is None and flat.get("k") and flat.get("n_features"):
        p = flat["k"] / flat["n_features"]
    base = {
        "schema_version": schema.SCHEMA_VERSION,
        **identity,
        "status": status["status"],
        "error": status["error"],
        **flat,
        "S": None if p is None else 1 - p,
    }
    frame = pd.DataFrame([base | {"trial": t} | row for t, row in enumerate(metrics)])
    for column in schema.METRIC_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    return frame


def _previous(out_dir: Path, flat: dict, cell: str) -> dict | None:
    """The stored status if this folder already holds this cell, finished and intact
    (its files read back as written); the log says why a result is recomputed.

    Raises ``FolderConflict`` if the folder holds another configuration: results are
    never overwritten with, or mixed into, a different cell's.
    """
    state, why = folders.cell_state(out_dir, config.fingerprint(flat))
    if state == "foreign":
        stored = folders.read_status(out_dir).get("config", {})
        raise FolderConflict(config.conflict_message(out_dir, stored, flat))
    if state == "todo":
        if why:
            log.warning("recomputing %s: %s", cell, why)
        return None
    folders.mark_cached(out_dir)
    return folders.read_status(out_dir)


class FolderConflict(Exception):
    """A cell folder holds the results of a different configuration."""


def _provenance(flat: dict, identity: dict, rows: pd.DataFrame, seconds: float) -> dict:
    return {
        **identity,
        "config": flat,
        "fingerprint": config.fingerprint(flat),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "fit_seconds": float(rows["fit_seconds"].sum()),
        "recover_seconds": float(rows["recover_seconds"].sum()),
        "schema_version": schema.SCHEMA_VERSION,
        "versions": _versions(),
        "git_commit": _git_commit(),
    }


@cache
def _versions() -> dict:
    names = ["numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "hydra-core"]
    return {"python": platform.python_version()} | {n: version(n) for n in names}


@cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _log_cell(status: dict, rows: pd.DataFrame, cell: str) -> None:
    if status["status"] == "failed":
        log.error("failed %s: %s (%.2f s)", cell, status["error"], status["seconds"])
        log.debug("%s", status["traceback"])  # in the cell's log file, not the console
        return
    if status.get("warning"):
        log.warning("%s: %s", cell, status["warning"])
    means = rows[["success_rate", "nmse", "support_f1"]].mean()
    log.info(
        "ok %s: success_rate=%.3f nmse=%.3g support_f1=%.3f (%.2f s)",
        cell,
        means["success_rate"],
        means["nmse"],
        means["support_f1"],
        status["seconds"],
    )
    if "mcc" in rows:
        log.info(
            "%s: mcc=%.3f n_recovered=%.1f", cell, rows["mcc"].mean(),
            rows["n_recovered"].mean(),
        )  # fmt: skip
    if "converged" in rows and rows["converged"].mean() < 1:
        log.warning(
            "%s: the solver stopped at max_iter before converging in %.0f %% of cases",
            cell,
            100 * (1 - rows["converged"].mean()),
        )


def _write_parquet(frame: pd.DataFrame, path: Path) -> str:
    """Write a table atomically; return the checksum of the file written."""
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return folders.digest(path)
