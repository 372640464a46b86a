"""What one cell will need, estimated from its keys: memory (and what it may use),
and, roughly, time.

``estimate_bytes`` is an upper estimate of a cell's peak resident memory: the worker
process itself plus the arrays the job holds at its peak (every trial's data, the
recovered features or codes, the largest step on one trial: a draw, the method's own
arrays, scoring, the tables), or a trained model's batches if larger.
``benchmarks/memory.py`` measures it against real cells. ``check`` refuses, before
anything runs, the cells whose estimate exceeds the budget of one cell:
``cell_memory_gb`` if set, else the launcher's ``mem_gb`` (a cluster's job), else the
memory available on this machine divided by the cells that run at once.
"""

import os
import resource
from pathlib import Path
from typing import Any

from sweep.methods import ACTIVATIONS, METHODS
from sweep.models import EVAL_BATCH, MODELS, SPREAD_STEPS
from sweep.sae import CHUNK_ROWS, n_steps

GB = 1e9
F64 = 8  # bytes per float64 (and int64)
F32 = 4
PROCESS_BYTES = 300e6  # a worker with numpy, scipy, sklearn, pandas, pyarrow, Hydra
SLACK = 1.1  # over the counted arrays: allocator slack, other library versions
MAX_LINES = 5  # cells named in the refusal; the rest are counted


def estimate_bytes(flat: dict) -> float:
    """Upper estimate of the peak resident memory of a cell (bytes).

    The larger of a trained model's training (before any data exist) and the arrays:
    what every trial keeps until the cell ends, plus the largest step on top of it.
    Terms count float64 entries; coefficients are measured (benchmarks/memory.py).
    """
    flat = with_train_rows(flat)
    n, m, trials = flat["n_features"], flat["neurons"], flat["trials"]
    test, train = flat["n_samples"], flat["n_train"]
    kept, work, aligning = _METHOD_WORK.get(flat["method"], _default)(flat)
    # X (test, n), H (test, m), H_train (train, m); W, known W and a copy (m, n); each
    # trial's feature distribution (its correlation loading)
    held = trials * (test * (n + m) + train * m + 3 * m * n + _loading(flat)) + kept
    # a draw beside its X: the mask (with k: the sort keys and their argpartition; with
    # a correlation: the latents, their own and shared parts)
    draw = 0.25 if flat["k"] is None else 2.25
    if flat.get("data.correlation", "none") != "none":
        draw += 3
    if flat.get("data.hierarchy_depth"):  # the uniforms, a level's children and parents
        draw += 1.5
    spreading = 6 * n * n if flat.get("model.geometry") == "orthogonal" else 0
    steps = (
        max(draw * test, (draw + 1) * train) * n,  # a draw (X_train is not kept)
        work,  # the method on the last trial (earlier trials' results are kept)
        3 * test * n + 2 * n * n + aligning,  # scoring: errors, squares; (W_i.W_j)^2
        _tables(flat),
        spreading,  # orthogonal directions: W^T W, its residual and their temporaries
    )
    arrays = max(F64 * (held + max(steps)), _training_bytes(flat))
    return PROCESS_BYTES + SLACK * arrays


def with_train_rows(flat: dict) -> dict:
    """The cell with n_train a number: a real network's (n_train null) the rows it
    has not held out (``ModelTraits.rows``; unknown: 1,000)."""
    if flat.get("n_train") is not None:
        return flat
    rows = MODELS.traits[flat["model"]].rows
    found = rows(flat) if rows else None
    return flat | {"n_train": max(found - flat["n_samples"], 0) if found else 1000}


def _loading(flat: dict) -> float:
    """Entries of a trial's correlation loading: (n, rank), or (n, n) for random."""
    n, kind = flat["n_features"], flat.get("data.correlation", "none")
    if kind == "random":
        return n * n
    return n * min(flat.get("data.correlation_rank", 0), n) if kind == "low_rank" else 0


# Known-dictionary methods: per (n_samples x n_features) and (n_features x n_features)
# entries, their arrays on one trial beside X_hat: copies of the codes and of the
# correlations W^T h; Gram matrices W^T W, their copies per sample (LARS, OMP) and
# OMP's Cholesky factor (n x n when it stops at a tolerance).
_KNOWN = {
    "omp": (4.5, 4),
    "threshold": (3.5, 0),
    "basis_pursuit": (2.5, 4),
    "basis_pursuit/admm": (8, 4),  # its iterates, their copies and the duals
    "lasso_lars": (2, 4),
    "lasso": (1.5, 2),
}


def _costed_as(flat: dict) -> str:
    """The method's name in the cost tables; a solver other than the default adds
    its own (basis_pursuit/admm)."""
    solver = flat.get("method.solver", "lars")
    return flat["method"] + ("" if solver == "lars" else f"/{solver}")


def _known(flat: dict) -> tuple[float, float, float]:
    """(kept, work, aligning): X_hat (test, n) of every trial; the method's arrays."""
    n, test = flat["n_features"], flat["n_samples"]
    per_sample, gram = _KNOWN.get(_costed_as(flat), (1.5, 0))
    return flat["trials"] * test * n, per_sample * test * n + gram * n * n, 0.0


def _aligning(flat: dict, atoms: int) -> float:
    """Scoring a learned dictionary: X_hat (test, n) of this trial and trial 0's (its
    sample rows keep it), |codes| (test, atoms), and the cosines (atoms, n): the matrix,
    the matching's copies, their magnitudes (each latent's best feature), trial 0's
    long table (indices, four columns)."""
    n, test = flat["n_features"], flat["n_samples"]
    return 2 * test * n + 1.5 * test * atoms + 7.5 * atoms * n


def _dict_learning(flat: dict) -> tuple[float, float, float]:
    atoms = flat.get("method.n_components") or flat["n_features"]
    test, train, m = flat["n_samples"], flat["n_train"], flat["neurons"]
    # fit: the randomized SVD that initialises the dictionary (H_train @ Q with
    # atoms + 10 columns, its LU), the shuffled H_train; inner stats and Gram (atoms^2)
    fit = 3 * train * (atoms + 10) + train * m + 6 * atoms * atoms
    encode = 2.5 * test * atoms + 2 * atoms * atoms  # correlations, codes (test, atoms)
    return flat["trials"] * test * atoms, max(fit, encode), _aligning(flat, atoms)


def _ica(flat: dict) -> tuple[float, float, float]:
    m = flat["neurons"]
    sources = min(flat.get("method.n_components") or m, m)
    # whitening: a copy of H_train, its SVD (the (m, train) factor and LAPACK's copy);
    # then the sources and their nonlinearity, (sources, train) each iteration
    fit = 4 * flat["n_train"] * m
    return flat["trials"] * flat["n_samples"] * sources, fit, _aligning(flat, sources)


def _sae(flat: dict) -> tuple[float, float, float]:
    latents = max(1, round(flat["method.expansion"] * flat["n_features"]))
    trials, m, batch = flat["trials"], flat["neurons"], flat["method.batch_size"]
    test, train = flat["n_samples"], flat["n_train"]
    # kept: codes (test, latents) and the float64 encoder and decoder (latents, m)
    kept = trials * (test * latents + 2 * latents * m)
    # training, all trials at once in float32 (half a float64): a batch's
    # pre-activations, codes and their gradients (batch, latents); the weights, their
    # gradients, Adam's moments and its temporaries; H_train in float32 and stacked
    selects = 2 if flat.get("method.architecture", "relu") != "relu" else 0
    training = (
        F32 / F64 * trials * ((4.5 + selects) * batch * latents + 12 * latents * m
                              + 3 * train * m)
        + trials * train * m
    )
    if flat.get("method.train_samples") is not None:  # a Fresh stream: a chunk of H
        # rows per trial, in float64 and float32, and the X of one trial's draw
        rows = batch * max(1, CHUNK_ROWS // batch)
        training += 1.5 * trials * rows * m + rows * flat["n_features"]
    encoding = trials * test * latents  # the pre-activations beside the codes
    return kept, max(training, encoding), _aligning(flat, latents)


def _default(flat: dict) -> tuple[float, float, float]:
    """A method without a term of its own: as a known-dictionary method, plus the
    alignment of as many atoms as features if it learns its dictionary."""
    kept, work, _ = _known(flat)
    learns = flat["method"] in METHODS.having(uses=ACTIVATIONS)
    return kept, work, _aligning(flat, flat["n_features"]) if learns else 0.0


_METHOD_WORK = {"dict_learning": _dict_learning, "sae": _sae, "ica": _ica}

def _tables(flat: dict) -> float:
    """A trained model's weights table: long form of every trial's W (m, n), four
    columns, built per trial then concatenated."""
    if flat.get("model") not in MODELS.having(trained=True):
        return 0.0
    return 10 * flat["trials"] * flat["neurons"] * flat["n_features"]


def _training_bytes(flat: dict) -> float:
    """A trained toy model's batches: every trial's restarts train together."""
    if flat.get("model") not in MODELS.having(trained=True):
        return 0.0
    n, m = flat["n_features"], flat["neurons"]
    instances = flat["trials"] * flat["model.restarts"]
    # a step: X, pre-activation, output, error, gradients (batch, n) per instance
    steps = F32 * 7 * instances * flat["model.batch_size"] * (n + m)
    # choosing the best restart: the same arrays in float64 for one evaluation batch
    evaluation = F64 * 6 * flat["model.restarts"] * EVAL_BATCH * (n + m)
    return max(steps, evaluation) + F64 * 6 * instances * m * n


# --- the budget ---------------------------------------------------------------------


def check(cells: list, hydra_cfg: Any) -> list[str]:
    """A line per cell over the budget of one cell (MAX_LINES at most, then a count)."""
    if not cells:
        return []
    limit, why = budget_bytes(cells, hydra_cfg)
    needs = [(cell, estimate_bytes(cell.flat)) for cell in cells]
    over = [(cell, need) for cell, need in needs if need > cell_limit(cell, limit)]
    lines = [
        f"{cell.name}: needs about {need / GB:.1f} GB (estimated peak memory of the"
        f" cell), over the budget of {cell_limit(cell, limit) / GB:.1f} GB per cell"
        f" ({why if cell.run.get('cell_memory_gb') is None else 'cell_memory_gb'});"
        " lower n_samples, n_train, trials or n_features, run fewer cells at once"
        " (hydra.launcher.n_jobs), or set cell_memory_gb"
        for cell, need in over[:MAX_LINES]
    ]
    if len(over) > MAX_LINES:
        lines.append(f"... and {len(over) - MAX_LINES} more cells over the budget")
    return lines


def cell_limit(cell: Any, default: float) -> float:
    """A cell's own budget: its cell_memory_gb, else the sweep's default."""
    gb = cell.run.get("cell_memory_gb")
    return default if gb is None else gb * GB


def budget_bytes(cells: list, hydra_cfg: Any) -> tuple[float, str]:
    """The default budget of one cell, and where it comes from (for the message)."""
    from sweep.pool import workers

    launcher = hydra_cfg.hydra.launcher
    if launcher.get("mem_gb") is not None:  # a cluster job's own memory
        return launcher.mem_gb * GB, "hydra.launcher.mem_gb"
    n_jobs = launcher.get("n_jobs", 1)  # Hydra's basic launcher: one at a time
    parallel = workers(n_jobs if isinstance(n_jobs, int) else 1, len(cells))
    available = available_bytes()
    return available / parallel, (
        f"{available / GB:.1f} GB available / {parallel} cells at once"
    )


def available_bytes() -> float:
    """Memory this process may still use: the least of the machine's available
    memory, its control group's limit and its address-space limit."""
    limits = [_meminfo_available(), _cgroup_free()]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(float(soft))
    return min(x for x in limits if x is not None)


def _meminfo_available() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _cgroup_free() -> float | None:
    """The memory limit of this process's control group minus its usage, if any."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            places = [
                ("/sys/fs/cgroup", "memory.max", "memory.current"),
                ("/sys/fs/cgroup/unified", "memory.max", "memory.current"),
            ]
        elif "memory" in controllers.split(","):  # cgroup v1
            places = [
                (
                    "/sys/fs/cgroup/memory",
                    "memory.limit_in_bytes",
                    "memory.usage_in_bytes",
                )
            ]
        else:
            continue
        for root, limit, usage in places:  # fmt: skip
            try:
                text = (Path(root + path) / limit).read_text().strip()
                used = float((Path(root + path) / usage).read_text())
            except (OSError, ValueError):
                continue
            if text != "max" and float(text) < 2**62:
                return float(text) - used
    return None


# --- time: a rough estimate for dry runs ----------------------------------------------

# Seconds per test sample at n_features=100, neurons=20, one thread (measured by
# benchmarks/methods.py), and the power of n_features / 100 the cost grows with.
PER_SAMPLE = {
    "omp": (1.2e-4, 1.0), "lasso_lars": (5.7e-4, 1.5), "lasso": (1e-3, 1.5),
    "threshold": (1e-5, 1.0), "basis_pursuit": (6.6e-4, 1.5), "lstsq": (1e-5, 1.0),
    "nnls": (1.3e-4, 1.5), "readout": (1e-6, 1.0),
    # measured over experiment=phase_diagram (n=200) and _large (n=1000)
    "basis_pursuit/admm": (2.1e-4, 2.25),
}  # fmt: skip
NETWORK_SECONDS = 2.0  # training the digits MLP, per trial (measured: 1-2.2 s)
JOB_SECONDS = 0.3  # a job's own cost: composing its config, its files and log


def estimate_seconds(flat: dict, *, train: bool = True) -> float:
    """A rough estimate of a cell's wall time on one core (seconds): recovering its
    test samples, fitting a learned dictionary, training a toy model (``train``:
    False when another cell of the sweep trains the same model, or pushes the same
    directions apart, first)."""
    flat = with_train_rows(flat)
    n, m, trials = flat["n_features"], flat["neurons"], flat["trials"]
    cost, power = PER_SAMPLE.get(_costed_as(flat), (1e-4, 1.0))
    seconds = JOB_SECONDS + trials * flat["n_samples"] * cost * (n / 100) ** power
    seconds += trials * n * n * m * 1e-9  # the dictionary's coherence: W^T W in blocks
    if flat["method"] == "sae":  # per step: a batch through (latents x neurons)
        latents = flat["method.expansion"] * n
        fresh = flat.get("method.train_samples")
        batch = flat["method.batch_size"]
        steps = n_steps(steps=flat["method.steps"], batch_size=batch,
                        train_samples=fresh)  # fmt: skip
        seconds += trials * steps * batch * latents * m * 4.5e-10
        seconds += trials * (fresh or 0) * n * 2e-8  # drawing the fresh samples
    elif flat["method"] == "dict_learning":  # passes over H_train, atoms x neurons
        atoms = flat.get("method.n_components") or n
        seconds += trials * flat["n_train"] * flat["method.max_iter"] * atoms * m * 6e-8
    spreads = train and flat.get("model.geometry") == "orthogonal"
    if spreads and n > m:  # measured: 40 ms a
        seconds += trials * SPREAD_STEPS * n * n * m * 4e-10  # step at n=1000, m=100
    if train and flat.get("model") in MODELS.having(costly=True):
        seconds += trials * NETWORK_SECONDS
    if train and flat.get("model") in MODELS.having(trained=True):
        # a step's fixed cost, and 7,800 instance-steps/s at n=20, m=5, batch 1024
        instances = trials * flat["model.restarts"]
        per_step = 3e-4 + instances * flat["model.batch_size"] * (n + m) * 5e-9
        seconds += flat["model.steps"] * per_step
    return seconds
