"""One cell's I/O: the cached result or a new one, the model cache, the time limit,
the files and their provenance. The only module that writes results; the trial
pipeline itself is ``sweep.pipeline`` (pure).

``run`` never raises: an error becomes ``status=failed`` rows and a traceback in
``status.json``, so that the end-of-sweep summary and analysis always run.
"""

import logging
import platform
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from sweep import PROJECT_ROOT, config, folders, pipeline, schema
from sweep.config import flatten
from sweep.digits import Network
from sweep.folders import load_model, locked, save_model, write_atomic, write_json
from sweep.models import Model

log = logging.getLogger(__name__)

# part of a cached model's key: bump when a cached model's code changes (toy
# training, sweep/models.py; the digits network, sweep/digits.py)
TRAINING_VERSION = 3


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
    if not identity["sweep"] and config.uncompressed(flat):  # a single run
        log.warning("%s: %s", identity["cell"], config.UNCOMPRESSED)
    cached = _previous(out_dir, flat, identity["cell"])
    if cached:
        log.info("cached %s", identity["cell"])
        return cached
    started = time.perf_counter()
    status = {"status": "ok", "error": None, "traceback": None}
    files = {}
    try:
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
    rows = pipeline.rows(metrics, flat, identity, status)
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


def run_trials(
    flat: dict, cache_dir: Path | None = None
) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """All trials of a cell (``pipeline.run_trials``), its models built or loaded
    from the cache: per-trial metric dicts, and the tables to write."""
    start = time.perf_counter()
    models = build_models(flat, cache_dir)
    fit_seconds = (time.perf_counter() - start) / len(models)  # trained together
    return pipeline.run_trials(flat, models, fit_seconds)


def build_models(flat: dict, cache_dir: Path | None = None) -> list[Model]:
    """One model per trial; costly ones (``pipeline.cached``) come from (and go to)
    ``cache_dir``."""
    if not pipeline.cached(flat) or cache_dir is None:
        return pipeline.build_models(flat)
    keys = pipeline.model_keys(flat)
    version = {"seed": flat["seed"], "training": TRAINING_VERSION}
    folder = cache_dir / config.fingerprint(keys | version)[:16]
    with locked(folder):  # a second cell of this model waits, then loads
        models = {t: _load(folder / f"trial{t}.npz") for t in range(flat["trials"])}
        missing = [t for t, model in models.items() if model is None]
        built = pipeline.build_models(flat, missing) if missing else []
        for t, model in zip(missing, built, strict=True):
            save_model(folder / f"trial{t}.npz", *_stored(model))
            models[t] = model
    return [models[t] for t in range(flat["trials"])]


def _stored(model: Model | Network) -> tuple[dict, dict]:
    """A model's arrays and info as the cache keeps them."""
    if isinstance(model, Network):
        arrays = {"H_train": model.H_train, "H": model.H, "rows": model.rows}
        arrays |= {name: value for name in ("labels", "images")
                   if (value := getattr(model, name)) is not None}  # fmt: skip
        return arrays, {"accuracy": model.accuracy, "converged": model.converged}
    arrays = {"W": model.W, "b": model.b, "importance": model.importance,
              "relu": np.array(model.relu)}  # fmt: skip
    return arrays, model.info


def _load(path: Path) -> Model | Network | None:
    stored = load_model(path)
    if stored is None:
        return None
    if "H_train" in stored:
        return Network(**stored.pop("info") | stored)
    return Model(**stored | {"relu": bool(stored["relu"])})


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
    """The cell's line: on the console for a single run; in a sweep, the parent
    prints it with the sweep's progress (``status["line"]``), the cell's log keeps it.
    """
    quiet = bool(status.get("sweep"))  # the parent shows it, with the progress
    if status["status"] == "failed":
        status["line"] = f"failed {cell}: {status['error']}"
        log.log(logging.DEBUG if quiet else logging.ERROR, "%s (%.2f s)",
                status["line"], status["seconds"])  # fmt: skip
        log.debug("%s", status["traceback"])  # in the cell's log file, not the console
        return
    if status.get("warning"):
        log.warning("%s: %s", cell, status["warning"])
    status["line"] = f"ok {cell}: {summary(rows)}"
    log.log(logging.DEBUG if quiet else logging.INFO, "%s (%.2f s)", status["line"],
            status["seconds"])  # fmt: skip
    if "converged" in rows and rows["converged"].mean() < 1:
        log.warning(
            "%s: the solver did not converge in %.0f %% of cases (column "
            "converged: it reached its iteration limit, or basis_pursuit's answer "
            "is not certain to be exact)",
            cell,
            100 * (1 - rows["converged"].mean()),
        )


def summary(rows: pd.DataFrame) -> str:
    """The cell's key metrics (means over trials) in one line."""
    shown = [c for c in schema.SHOWN_METRICS if c in rows and rows[c].notna().any()]
    means = rows[shown].mean()
    return " ".join(f"{k}={v:.3g}" for k, v in means.items())


def _write_parquet(frame: pd.DataFrame, path: Path) -> str:
    """Write a table atomically; return the checksum of the file written."""
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return folders.digest(path)
