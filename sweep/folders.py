"""A sweep folder on disk: its cells, their status and checksums, atomic writes, and
the lock a running sweep holds on its folder.

Shared by ``job`` (writes a cell), the sweeper (finds finished cells), the callbacks
(summarise a sweep) and ``analysis`` (reads one). Light imports only: the analysis
and the command line import it.
"""

import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from sweep import schema


def cell_dirs(sweep_dir: Path) -> list[Path]:
    """Every cell folder of a sweep: a subfolder that Hydra made (``.hydra``) or that
    holds results. A sweep inside a sweep's folder is another sweep, not its cells."""
    marks = [*sweep_dir.glob("*/.hydra"), *sweep_dir.glob(f"*/{schema.METRICS_FILE}")]
    analysis = sweep_dir / schema.ANALYSIS_DIR
    return sorted({m.parent for m in marks if m.parent != analysis})


def read_status(cell_dir: Path) -> dict:
    """The cell's ``status.json``; ``missing`` if it has none (the job died)."""
    try:
        status = json.loads((cell_dir / schema.STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {"status": "missing", "error": "no readable status.json: the job died"}
    if not isinstance(status, dict):
        return {"status": "missing", "error": "status.json holds no status"}
    if status.get("status") not in schema.STATUSES:
        return {"status": "missing", "error": f"unknown status {status.get('status')}"}
    return status


def cell_statuses(sweep_dir: Path) -> dict[str, dict]:
    """Status of every cell of a sweep, keyed by its folder relative to the sweep;
    a cell of the recorded grid that has no folder never started: ``missing``."""
    statuses = {
        str(cell.relative_to(sweep_dir)): read_status(cell)
        for cell in cell_dirs(sweep_dir)
    }
    for name in never_started(sweep_dir):
        statuses[name] = {"status": "missing", "error": "never started"}
    return statuses


def fingerprints(sweep_dir: Path) -> dict[str, str]:
    """The configuration fingerprint of every cell folder of the sweep that records
    one -> the folder's name (a folder named by an older naming rule too)."""
    found = {}
    for cell in cell_dirs(sweep_dir):
        status = read_status(cell)
        if status.get("fingerprint"):
            found.setdefault(status["fingerprint"], cell.name)
    return found


# --- is a cell finished? Its files must read back as they were written -------------


def digest(path: Path) -> str:
    """The sha256 of a file's bytes (status.json records it for each result file)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cell_state(cell_dir: Path, fingerprint: str) -> tuple[str, str | None]:
    """Whether ``cell_dir`` holds the finished cell of this fingerprint.

    Returns ``("done", None)``; ``("foreign", None)`` when the folder holds another
    configuration; or ``("todo", why)`` when the cell must be (re)computed, ``why``
    None for a folder that has no result yet.
    """
    if not (cell_dir / schema.STATUS_FILE).exists():
        return "todo", None
    status = read_status(cell_dir)
    if status["status"] == "missing":
        return "todo", status["error"]
    if status.get("fingerprint") != fingerprint:  # none recorded: unknown, kept
        return "foreign", None
    if status["status"] not in schema.DONE:
        return "todo", f"its last run {status['status']}"
    return ("todo", why) if (why := damaged(cell_dir, status)) else ("done", None)


def damaged(cell_dir: Path, status: dict) -> str | None:
    """What is wrong with the result files of a finished cell, or None.

    They must be of this schema_version, have the checksums status.json records
    (see ``corrupt``), and metrics.parquet must hold one row per trial.
    """
    if status.get("schema_version") != schema.SCHEMA_VERSION:
        return f"written by schema_version {status.get('schema_version')}"
    if why := corrupt(cell_dir, status):
        return why
    rows = metrics_rows(cell_dir / schema.METRICS_FILE)
    trials = (status.get("config") or {}).get("trials")
    if rows is None:
        return f"{schema.METRICS_FILE} is missing or unreadable"
    if trials is not None and rows != trials:
        return f"{schema.METRICS_FILE} has {rows} rows for {trials} trials"
    return None


def corrupt(cell_dir: Path, status: dict, names=None) -> str | None:
    """A result file (of ``names``, default all) whose bytes differ from those
    written (the checksum that status.json records), or that is gone; None if all
    are intact. A cell written before checksums were recorded has none to compare."""
    files = status.get("files") or {}
    for name in files if names is None else [n for n in names if n in files]:
        try:
            if digest(cell_dir / name) != files[name]:
                return f"{name} differs from what was written (checksum)"
        except OSError:
            return f"{name} is missing"
    return None


class DamagedFile(ValueError):
    """A result file whose bytes are not those its cell wrote."""


def read_table(path: Path, columns: list[str] | None = None):
    """A cell's result table, refused with DamagedFile if its checksum is not the
    one its status.json recorded."""
    if why := corrupt(path.parent, read_status(path.parent), [path.name]):
        raise DamagedFile(why)
    return parquet_frame(path, columns)


def parquet_frame(path: Path, columns: list[str] | None = None):
    """A parquet file as a DataFrame, as ``pandas.read_parquet`` reads it, at a
    third of its cost for a cell's small files (no dataset layer, no threads per
    column: the analysis reads many files at once instead)."""
    import pyarrow.parquet as pq  # the command line imports this module

    with pq.ParquetFile(path) as file:
        return file.read(columns=columns, use_threads=False).to_pandas()


def metrics_rows(path: Path) -> int | None:
    """The number of rows a parquet file declares, or None if it cannot be read."""
    import pyarrow.parquet as pq  # only where cells are checked

    try:
        return pq.read_metadata(path).num_rows
    except Exception:  # missing, empty, truncated, not parquet at all
        return None


def mark_cached(cell_dir: Path) -> None:
    """Record that a finished cell was kept, not recomputed, by this run."""
    status = read_status(cell_dir)
    if status["status"] != "cached":
        write_json(status | {"status": "cached"}, cell_dir / schema.STATUS_FILE)


# --- one sweep at a time in a folder --------------------------------------------------

LOCK_FILE = ".sweep.lock"  # held (flock) by the process running a sweep in the folder


class FolderBusy(Exception):
    """Another live process is running a sweep in the folder."""


def hold(folder: Path, command: str) -> object:
    """Take the folder's lock for this process (until it exits); return its handle.

    Raises ``FolderBusy`` naming the holder (pid, host, start time) when a live
    process holds it. A lock whose holder died is released by the kernel and taken
    over. The lock file records who holds it, for that message.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read())
        except ValueError:
            holder = {}
        handle.close()
        raise FolderBusy(
            f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started"
            f" {holder.get('started', '?')}: {holder.get('command', '?')}"
        ) from None
    handle.seek(0)
    handle.truncate()
    holder = {
        "pid": os.getpid(), "host": socket.gethostname(), "command": command,
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
    }  # fmt: skip
    handle.write(json.dumps(holder))
    handle.flush()
    return handle


def latest_sweep(outputs: Path) -> Path | None:
    """The newest sweep folder in ``outputs/sweeps`` (None if there is none): by the
    timestamp that starts its name (Hydra's default names sort as text); a folder
    without one counts as older than any with one. Never ``outputs/reference``."""
    sweeps = Path(outputs) / "sweeps"
    reference = (Path(outputs) / "reference").resolve()
    listed = sweeps.iterdir() if sweeps.is_dir() else []
    found = [p for p in listed
             if p.is_dir() and not p.resolve().is_relative_to(reference)]  # fmt: skip
    stamped = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")
    return max(found, key=lambda p: (bool(stamped.match(p.name)), p.name), default=None)


GRID_FILE = "grid.json"  # the cell folders every run of this sweep asked for


def record_grid(sweep_dir: Path, names: list[str]) -> None:
    """Add the cell folders a command asks for to the sweep's grid.json."""
    write_json({"cells": sorted(set(expected_cells(sweep_dir)) | set(names))},
               sweep_dir / GRID_FILE)  # fmt: skip


def expected_cells(sweep_dir: Path) -> list[str]:
    """The cell folders recorded in grid.json (none if it is absent or unreadable)."""
    try:
        return list(json.loads((sweep_dir / GRID_FILE).read_text())["cells"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def never_started(sweep_dir: Path) -> list[str]:
    """Cells of the recorded grid without a cell folder (the sweep stopped before
    them; a folder holding only the start of its log counts as none)."""
    started = {cell.name for cell in cell_dirs(sweep_dir)}
    return [name for name in expected_cells(sweep_dir) if name not in started]


def write_atomic(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over.

    A reader never sees a partial file: it sees the old one or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(obj: dict, path: Path) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=1, default=str)
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


# --- trained models, cached per (model keys, trial) in the sweep folder -----------

MODELS_DIR = "models"


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (two cells never train the same model)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_model(path: Path) -> dict | None:
    """Arrays and info of a cached model, or None if absent or unreadable."""
    try:
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files if key != "info"}
            return arrays | {"info": json.loads(str(stored["info"]))}
    except (OSError, ValueError, KeyError):
        return None


def save_model(path: Path, arrays: dict, info: dict) -> None:
    """Cache a model's arrays and info in one .npz file, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a file object: savez adds no suffix
            np.savez(handle, info=json.dumps(info), **arrays)

    write_atomic(path, write)
