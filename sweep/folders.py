"""A sweep folder on disk: its cells, their status, atomic writes.

Shared by ``job`` (writes a cell), the callbacks (summarise a sweep) and ``analysis``
(reads one). Light imports only: the analysis imports it.
"""

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sweep import schema


def cell_dirs(sweep_dir: Path) -> list[Path]:
    """Every cell folder of a sweep: Hydra made it (``.hydra``) or it holds results."""
    marks = [*sweep_dir.rglob(".hydra"), *sweep_dir.rglob(schema.METRICS_FILE)]
    analysis = sweep_dir / schema.ANALYSIS_DIR
    cells = {m.parent for m in marks if analysis not in m.parents}
    return sorted(cells)


def read_status(cell_dir: Path) -> dict:
    """The cell's ``status.json``; ``missing`` if it has none (the job died)."""
    try:
        status = json.loads((cell_dir / schema.STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {"status": "missing", "error": "no readable status.json: the job died"}
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
    """Cells of the recorded grid without a folder (the sweep stopped before them)."""
    return [
        name for name in expected_cells(sweep_dir) if not (sweep_dir / name).is_dir()
    ]


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
