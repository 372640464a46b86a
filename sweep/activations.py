"""A user's own activations: H read from a file, checked, and split into rows.

Formats (rows = samples, columns = neurons):

- ``.npy``: one 2-D array of numbers, memory-mapped (read as it is used);
- ``.npz``: the array ``H`` (or the only 2-D array), and beside it any other array
  with one entry per row (labels, metadata), kept;
- ``.parquet``: the floating-point columns are the neurons, in file order; every
  other column (integers, strings, booleans: labels, metadata) is kept beside.

``problems(path)`` says what is wrong with a file, one line each, before anything
runs; ``load(path)`` reads a good one.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from sweep.digits import Network

FORMATS = (".npy", ".npz", ".parquet")
LABELS = ("labels", "label")  # the kept column that labels the rows, if any
MIN_ROWS = 2  # one test row and one training row, at the least
CHUNK_ROWS = 65_536  # the finiteness check reads a memory-mapped file in such chunks


@dataclass
class Activations:
    """H (n_rows, n_neurons), possibly memory-mapped, and the per-row columns kept
    beside it (name -> (n_rows,) array)."""

    H: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray | None:
        """The kept column that labels the rows (named as LABELS says), if any."""
        return next((self.meta[n] for n in LABELS if n in self.meta), None)


def problems(path: str | Path) -> list[str]:
    """What is wrong with the activations file at ``path``: one line each, naming
    the file (``model.path=...``) and what is allowed; [] for a good file."""
    return checked(path)[1]


def checked(path: str | Path) -> tuple[Activations | None, list[str]]:
    """The file's activations as read (None if unreadable) and ``problems``'."""
    path = Path(path)
    where = f"model.path={path}"
    if path.suffix not in FORMATS:
        return None, [f"{where}: allowed is a {', '.join(FORMATS)} file"]
    if not path.is_file():
        return None, [f"{where}: no such file"]
    try:
        found = load(path)
    except (OSError, ValueError, TypeError) as err:  # unreadable, or no clear H
        return None, [f"{where}: cannot be read as activations ({_first_line(err)})"]
    return found, _content_problems(found, where)


def _content_problems(found: Activations, where: str) -> list[str]:
    H, errors = found.H, []
    if H.ndim != 2:
        return [f"{where}: holds an array of shape {H.shape}; allowed is 2-D (rows ="
                " samples, columns = neurons)"]  # fmt: skip
    if not (np.issubdtype(H.dtype, np.floating) or np.issubdtype(H.dtype, np.integer)):
        return [f"{where}: holds values of dtype {H.dtype}; allowed is numbers"]
    if H.shape[0] < MIN_ROWS or H.shape[1] < 1:
        errors.append(f"{where}: holds {H.shape[0]} rows x {H.shape[1]} neurons;"
                      f" allowed is at least {MIN_ROWS} rows and 1 neuron (a .parquet"
                      " file's neurons: its floating-point columns)")  # fmt: skip
    bad = _first_not_finite(H)
    if bad is not None:
        errors.append(f"{where}: holds NaN or infinite values (the first at row"
                      f" {bad[0]}, column {bad[1]}); allowed is finite numbers")
    errors += [
        f"{where}: its column {name!r} has shape {np.shape(values)} for {H.shape[0]}"
        " rows; allowed is one entry per row"
        for name, values in found.meta.items()
        if np.ndim(values) != 1 or len(values) != H.shape[0]
    ]  # fmt: skip
    labels = found.labels
    if labels is not None and np.ndim(labels) == 1 and _missing(labels):
        errors.append(f"{where}: its labels are missing for some rows; allowed is"
                      " a label for every row")  # fmt: skip
    return errors


def _missing(labels: np.ndarray) -> bool:
    import pandas as pd  # imported where cells run: the command line does not

    return bool(pd.isna(labels).any())


def load(path: str | Path) -> Activations:
    """The activations of a file (``problems`` says whether they are good)."""
    path = Path(path)
    if path.suffix == ".npy":
        return Activations(np.load(path, mmap_mode="r", allow_pickle=False))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            arrays = dict(arrays)
        name = "H" if "H" in arrays else _only_matrix(arrays)
        return Activations(arrays.pop(name), arrays)
    import pandas as pd  # imported where cells run: the command line does not

    frame = pd.read_parquet(path)
    neurons = [c for c in frame if pd.api.types.is_float_dtype(frame[c].dtype)]
    meta = {str(c): frame[c].to_numpy() for c in frame if c not in neurons}
    return Activations(frame[neurons].to_numpy(), meta)


def network(found: Activations, n_test: int, rng: np.random.Generator) -> Network:
    """A file's activations as a network's: ``n_test`` held-out rows drawn by
    ``rng``, every other row for training; the labels, if the file has them."""
    test, train = split(found.H.shape[0], n_test, found.H.shape[0], rng)
    labels = found.labels
    return Network(
        H_train=np.asarray(found.H[train], dtype=float),
        H=np.asarray(found.H[test], dtype=float),
        rows=test,
        labels=None if labels is None else labels[test],
        meta={name: values[test] for name, values in found.meta.items()
              if name not in LABELS},
    )  # fmt: skip


def rows(flat: dict) -> int | None:
    """The number of rows of model.path's file (None: no readable 2-D array)."""
    path = flat.get("model.path")
    try:
        stat = Path(path).stat()
        return _rows(str(path), stat.st_mtime_ns, stat.st_size)
    except (OSError, TypeError, ValueError):
        return None


@lru_cache(maxsize=16)
def _rows(path: str, mtime: int, size: int) -> int | None:
    """``rows`` of a file as it was at (mtime, size): read once per process."""
    H = load(path).H
    return H.shape[0] if H.ndim == 2 else None


def cell_problems(flat: dict) -> list[str]:
    """model=activations: what is wrong with its file, or with the cell's keys
    against it (``neurons`` its width; fewer test rows than it has)."""
    path = flat.get("model.path")
    if path is None:
        return ["model.path=null (model=activations): allowed is a .npy, .npz or"
                " .parquet file of activations, rows = samples"]  # fmt: skip
    found, errors = checked(path)
    if errors:
        return errors
    rows, width = found.H.shape
    if flat["neurons"] != width:
        errors.append(f"neurons={flat['neurons']} (model.path={path}): the file has"
                      f" {width} neurons; set neurons={width}")  # fmt: skip
    if flat["n_samples"] >= rows:
        errors.append(f"n_samples={flat['n_samples']} (model.path={path}): the file"
                      f" has {rows} rows; allowed is fewer (the rest train)")
    return errors


def split(n_rows: int, n_test: int, n_train: int, rng: np.random.Generator):
    """Test and training row indices, disjoint, drawn by ``rng``: a random
    permutation of the rows gives the first ``n_test`` to the test and up to
    ``n_train`` of the rest to training (all of them if fewer), each sorted."""
    order = rng.permutation(n_rows)
    test, train = order[:n_test], order[n_test : n_test + n_train]
    return np.sort(test), np.sort(train)


def _only_matrix(arrays: dict[str, np.ndarray]) -> str:
    matrices = [name for name, a in arrays.items() if a.ndim == 2]
    if len(matrices) != 1:
        raise ValueError(
            f"{len(matrices)} 2-D arrays ({', '.join(matrices) or 'none'}): name the"
            " activations 'H'"
        )
    return matrices[0]


def _first_not_finite(H: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first NaN or infinite value of H, read in chunks."""
    if np.issubdtype(H.dtype, np.integer):
        return None
    for start in range(0, H.shape[0], CHUNK_ROWS):
        bad = np.argwhere(~np.isfinite(H[start : start + CHUNK_ROWS]))
        if len(bad):
            return int(bad[0, 0]) + start, int(bad[0, 1])
    return None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
