"""The memory estimate against measured cells, and the refusal of cells over budget."""

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmarks.memory import measure
from sweep import budget
from sweep.grid import expand_cells

GB = budget.GB


def one_cell(*overrides: str):
    (cell,) = expand_cells(list(overrides), multirun=False)
    return cell


def launcher(**settings):
    return OmegaConf.create({"hydra": {"launcher": settings}})


# Each cell peaks at 0.5-1 GB in a few seconds, dominated by a different term.
MEASURED = [
    "method=readout n_samples=30000 n_features=200 neurons=40",  # samples x features
    "method=omp n_features=4000 neurons=200 n_samples=20 trials=1",  # Gram matrices
    # cosines (atoms x features) of every trial, and trial 0's long table
    "method=sae n_features=1000 neurons=20 method.expansion=4 method.steps=5 trials=2",
    # choosing the best restart: float64 evaluation batches of every restart
    "model=toy_relu model.steps=2 model.restarts=2 n_features=1000 neurons=20"
    " trials=2 method=readout",
]


@pytest.mark.parametrize("line", MEASURED)
def test_estimate_is_an_upper_bound_within_3x(line):
    overrides = line.split()
    peak, _ = measure(overrides)
    need = budget.estimate_bytes(one_cell(*overrides).flat)
    assert peak <= need <= 3 * peak, (need / GB, peak / GB)


def test_a_cell_over_the_budget_is_named_and_one_under_is_not():
    cell = one_cell("n_features=150")
    need = budget.estimate_bytes(cell.flat)
    (line,) = budget.check([cell], launcher(mem_gb=0.99 * need / GB))
    assert line.startswith(f"{cell.name}: needs about {need / GB:.1f} GB")
    assert "hydra.launcher.mem_gb" in line
    assert budget.check([cell], launcher(mem_gb=1.01 * need / GB)) == []


def test_cell_memory_gb_overrides_the_default_budget():
    need = budget.estimate_bytes(one_cell("n_features=150").flat)
    roomy = one_cell("n_features=150", f"cell_memory_gb={1.01 * need / GB}")
    tight = one_cell("n_features=150", f"cell_memory_gb={0.99 * need / GB}")
    assert roomy.run["cell_memory_gb"] == pytest.approx(1.01 * need / GB)
    assert budget.check([roomy], launcher(mem_gb=0.5 * need / GB)) == []
    (line,) = budget.check([tight], launcher(mem_gb=100))
    assert line.startswith(f"{tight.name}: needs about")
    assert "(cell_memory_gb)" in line


def test_more_cells_over_the_budget_than_named_are_counted():
    over = budget.MAX_LINES + 2
    sizes = ",".join(str(100 + i) for i in range(over))
    cells = expand_cells(["neurons=20", "sparsity=0.05", "method=omp",
                          f"n_features={sizes}"], multirun=True)  # fmt: skip
    lines = budget.check(cells, launcher(mem_gb=0.01))
    assert len(cells) == over
    assert len(lines) == budget.MAX_LINES + 1
    assert [line.split(":")[0] for line in lines[:-1]] == [
        c.name for c in cells[: budget.MAX_LINES]
    ]
    assert lines[-1] == "... and 2 more cells over the budget"


def test_budget_is_mem_gb_else_available_memory_over_the_cells_at_once(monkeypatch):
    assert budget.budget_bytes([None] * 5, launcher(mem_gb=3, n_jobs=2)) == (
        3 * GB,
        "hydra.launcher.mem_gb",
    )
    monkeypatch.setattr(budget, "available_bytes", lambda: 12 * GB)
    limit, why = budget.budget_bytes([None] * 5, launcher(n_jobs=2))
    assert (limit, why) == (6 * GB, "12.0 GB available / 2 cells at once")
    assert budget.budget_bytes([None] * 3, launcher(n_jobs=4))[0] == 4 * GB
    assert budget.budget_bytes([None] * 5, launcher())[0] == 12 * GB  # one at a time
    cores = min(os.cpu_count() or 1, 5)
    assert budget.budget_bytes([None] * 5, launcher(n_jobs=-1))[0] == 12 * GB / cores


def test_available_memory_is_at_most_the_machine_total():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
    assert 0 < budget.available_bytes() <= total
