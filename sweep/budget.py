"""Memory: what one cell will need, estimated from its keys, and what it may use.

``estimate_bytes`` is an upper estimate of a cell's peak resident memory: the worker
process itself plus the arrays the job holds at its peak (every trial's data, the
recovered features, the method's own work arrays, a trained model's batches).
``benchmarks/memory.py`` measures it against real cells. ``check`` refuses, before
anything runs, the cells whose estimate exceeds the budget of one cell:
``cell_memory_gb`` if set, else the launcher's ``mem_gb`` (a cluster's job), else the
memory available on this machine divided by the cells that run at once.
"""

import os
import resource
from pathlib import Path
from typing import Any

GB = 1e9
F64 = 8  # bytes per float64
F32 = 4
PROCESS_BYTES = 400e6  # a worker with numpy, scipy, sklearn, pandas, pyarrow, Hydra
MAX_LINES = 5  # cells named in the refusal; the rest are counted


def estimate_bytes(flat: dict) -> float:
    """Upper estimate of the peak resident memory of a cell (bytes)."""
    n, m, trials = flat["n_features"], flat["neurons"], flat["trials"]
    test, train = flat["n_samples"], flat["n_train"]
    held = trials * (2 * test * n + test * m + train * m + 2 * m * n)  # X, X_hat, H..
    drawing = 3 * max(test, train) * n  # a draw's uniforms, mask and product
    scoring = 5 * test * n + 3 * n * n  # errors and squares; feature Gram matrices
    method = _METHOD_WORK.get(flat["method"], _sample_codes)(flat)
    arrays = F64 * (held + max(drawing, scoring) + method)
    return PROCESS_BYTES + arrays + _training_bytes(flat)


def _sample_codes(flat: dict) -> float:
    """A method that holds a few (samples x features) arrays and a Gram matrix."""
    n = flat["n_features"]
    return 3 * flat["n_samples"] * n + 2 * n * n


def _dict_learning(flat: dict) -> float:
    atoms = flat.get("method.n_components") or flat["n_features"]
    batch = flat.get("method.batch_size", 256)
    samples = flat["n_samples"] + flat["n_train"]
    return 3 * atoms * atoms + 3 * samples * atoms + 4 * batch * atoms


def _sae(flat: dict) -> float:
    latents = max(1, round(flat["method.expansion"] * flat["n_features"]))
    batch, m = flat["method.batch_size"], flat["neurons"]
    per_trial = 8 * m * latents + 6 * batch * latents + 2 * flat["n_samples"] * latents
    return flat["trials"] * per_trial


def _ica(flat: dict) -> float:
    return 6 * (flat["n_train"] + flat["n_samples"]) * flat["neurons"]


_METHOD_WORK = {"dict_learning": _dict_learning, "sae": _sae, "ica": _ica}

EVAL_BATCH = 8192  # as sweep.models.EVAL_BATCH: a trained model's evaluation batch


def _training_bytes(flat: dict) -> float:
    """A trained toy model's batches: every trial's restarts train together."""
    if not str(flat.get("model", "")).startswith("toy_"):
        return 0.0
    n, m = flat["n_features"], flat["neurons"]
    instances = flat["trials"] * flat["model.restarts"]
    steps = F32 * 7 * instances * flat["model.batch_size"] * (n + m)
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
            places = [("/sys/fs/cgroup", "memory.max", "memory.current"),
                      ("/sys/fs/cgroup/unified", "memory.max", "memory.current")]
        elif "memory" in controllers.split(","):  # cgroup v1
            places = [("/sys/fs/cgroup/memory", "memory.limit_in_bytes",
                       "memory.usage_in_bytes")]
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
