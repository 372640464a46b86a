"""Faults: no finished result is lost and none is silently wrong.

Bad input through the command line, dead workers and errors outside a cell, memory
budgets, one sweep per folder, a cache that checks itself, one identity per cell,
runs from any folder, no worker outliving its sweep, interrupted sweeps and damaged
files.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from importlib.metadata import requires, version
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, hooked, run_cli
from test_config import BAD

from sweep import job, schema
from sweep.__main__ import cli
from sweep.config import MAX_NAME_BYTES

SMOKE_OFF = ["-m", "experiment=smoke", "hydra.callbacks.sweep_end.analyze=false"]
GRID = [*SMOKE_OFF, "method=omp,nnls"]  # 8 cells
TIMINGS = ["sweep", "fit_seconds", "recover_seconds"]
SMOKE = "n_features=20,n_samples=40,n_train=100"  # the smoke preset's constants


def _metrics(sweep_dir) -> pd.DataFrame:
    """Every ok cell's metrics, timings aside, in a stable order."""
    frames = [
        pd.read_parquet(p)
        for p in sorted(sweep_dir.rglob(schema.METRICS_FILE))
        if schema.ANALYSIS_DIR not in p.parts
    ]
    frame = pd.concat(frames, ignore_index=True).drop(columns=TIMINGS)
    return frame.sort_values(["cell", "trial"], ignore_index=True)


def _status(cell_dir) -> dict:
    return json.loads((cell_dir / schema.STATUS_FILE).read_text())


def _cells(sweep_dir) -> list:
    return sorted(p.parent for p in sweep_dir.glob(f"*/{schema.STATUS_FILE}"))


# --- 6. bad input: exit 2, one line, nothing created --------------------------------


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_exits_2_with_the_message(argv, message, tmp_path, capsys):
    key = "hydra.sweep.dir" if "-m" in argv else "hydra.run.dir"
    named = any(a.startswith(key + "=") for a in argv)
    assert cli([*argv, *([] if named else [f"{key}={tmp_path / 'out'}"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad input, nothing ran:")
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not (ROOT / "grid.json").exists() and not list(ROOT.glob("method=*"))


class Exploit:
    """A pickle that creates a file when it is loaded."""

    def __init__(self, mark):
        self.mark = str(mark)

    def __reduce__(self):
        return (open, (self.mark, "w"))


@pytest.mark.parametrize(
    "spelling", [["--experimental-rerun", "{p}"], ["--experimental-rerun={p}"],
                 ["--exp={p}"]],  # fmt: skip
)
def test_a_pickle_is_never_loaded_however_the_flag_is_spelled(tmp_path, spelling):
    import pickle

    mark, bad = tmp_path / "PWNED", tmp_path / "config.pickle"
    bad.write_bytes(pickle.dumps(Exploit(mark)))
    out = run_cli("sweep", *[s.format(p=bad) for s in spelling])
    assert out.returncode == 2 and "--experimental-rerun: refused" in out.stderr
    assert not mark.exists()
    pickle.loads(bad.read_bytes())  # the control: loading it does make the file
    assert mark.exists()


def test_informational_commands_create_nothing(tmp_path):
    for flags in (["--version"], ["--cfg=job"], ["--info=config"]):
        out = run_cli("sweep", *flags, f"hydra.sweep.dir={tmp_path / 'x'}",
                      f"hydra.run.dir={tmp_path / 'y'}")  # fmt: skip
        assert out.returncode == 0, (flags, out.stderr[-2000:])
    assert not list(tmp_path.iterdir())


def test_the_folder_locked_and_checked_is_the_folder_written(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "neurons=5", "sparsity=0.2"]
    out = run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path / 'a'}",
                  f"hydra.sweep.dir={tmp_path / 'b'}")  # fmt: skip
    assert out.returncode == 2 and "hydra.sweep.dir given twice" in out.stderr
    assert not list(tmp_path.iterdir())
    before = set((ROOT / "outputs" / "sweeps").glob("*"))
    out = run_cli("sweep", *grid, f"++hydra.sweep.dir={tmp_path / 'c'}")
    assert out.returncode == 0 and len(_cells(tmp_path / "c")) == 1
    assert set((ROOT / "outputs" / "sweeps").glob("*")) == before
    out = run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path}/d_${{now:%Y}}")
    year = time.strftime("%Y")
    assert out.returncode == 0 and len(_cells(tmp_path / f"d_{year}")) == 1
    assert not (tmp_path / "d_${now:%Y}").exists()


def test_a_sweep_inside_the_sweep_folder_is_left_alone(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "neurons=5", "sparsity=0.2"]
    inner = tmp_path / "inner"
    assert run_cli("sweep", *grid, f"hydra.sweep.dir={inner}").returncode == 0
    (cell,) = _cells(inner)
    out = run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0 and "1 cells: 1 ok" in out.stdout  # its own cell
    assert _status(cell)["status"] == "ok"  # the inner sweep's cell untouched
    assert json.loads((tmp_path / "grid.json").read_text())["cells"] == [cell.name]


def test_cached_cells_are_not_counted_against_the_memory_budget(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "sparsity=0.2", f"hydra.sweep.dir={tmp_path}"]
    assert run_cli("sweep", *grid, "neurons=5").returncode == 0
    tiny = run_cli("sweep", *grid, "neurons=5", "cell_memory_gb=0.01")
    assert tiny.returncode == 0 and "1 cells: 0 ok, 0 failed, 1 cached" in tiny.stdout
    grown = run_cli("sweep", *grid, "neurons=5,10", "cell_memory_gb=0.01")
    assert grown.returncode == 2 and "neurons=10" in grown.stderr
    assert "neurons=5," not in grown.stderr  # only the cell that would run


def test_a_sweep_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("mine")
    out = run_cli("sweep", "-m", "method=omp", f"hydra.sweep.dir={target}")
    assert out.returncode == 2
    assert "is a file, not a folder" in out.stderr and "Traceback" not in out.stderr
    assert target.read_text() == "mine"


def test_a_model_whose_training_diverges_is_a_failed_cell(tmp_path):
    cell = {
        "seed": 0, "n_features": 6, "neurons": 2, "sparsity": 0.1, "k": None,
        "trials": 1, "n_samples": 20, "n_train": 10, "noise": 0.0,
        "success_tol": 0.01, "represented_tol": 0.1,
        "model": {"name": "toy_relu", "importance_decay": 1e300, "lr": 1e-3,
                  "weight_decay": 0.01, "batch_size": 32, "steps": 5, "restarts": 1},
        "method": {"name": "readout"},
    }  # fmt: skip
    with pytest.warns(RuntimeWarning):  # numpy's overflow, on the way to NaN
        status = job.run(cell, tmp_path)
    assert status["status"] == "failed"
    assert status["error"].startswith("FloatingPointError: training diverged")
    # the control: a sane importance trains and is ok
    sane = cell | {"model": cell["model"] | {"importance_decay": 0.7}}
    assert job.run(sane, tmp_path / "sane")["status"] == "ok"


def test_a_cell_whose_data_is_all_zeros_says_so(tmp_path, caplog):
    cell = {
        "seed": 0, "n_features": 10, "neurons": 4, "sparsity": 1e-9, "k": None,
        "trials": 2, "n_samples": 30, "n_train": 10, "noise": 0.0,
        "success_tol": 0.01, "represented_tol": 1e-3,
        "model": {"name": "random"}, "method": {"name": "lstsq"},
    }  # fmt: skip
    status = job.run(cell, tmp_path)
    assert status["status"] == "ok" and "all zeros" in status["warning"]
    assert "every test sample is all zeros" in caplog.text
    assert "warning" not in job.run(cell | {"sparsity": 0.5}, tmp_path / "dense")


# --- 1. a dead worker is a failed cell, not a dead sweep -----------------------------

# Two cells that fit and two whose test data alone (2e6 x 100 floats, 1.6 GB) does
# not fit under the cap that tests/memory_cap.py enforces as the kernel would.
CAPPED = [
    "-m", "method=lstsq", "neurons=5,10", "n_samples=50,2000000", "sparsity=0.05",
    "trials=1", "cell_memory_gb=100",  # past the budget check: the cap decides
]  # fmt: skip
CAP_MB = "600"


def test_a_dead_worker_is_a_failed_cell_and_the_sweep_goes_on(tmp_path):
    args = [*CAPPED, f"hydra.sweep.dir={tmp_path}"]
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "memory_cap.py"), CAP_MB, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    assert "4 cells: 2 ok, 2 failed, 0 cached" in log
    assert "Traceback" not in log
    for cell in _cells(tmp_path):
        status = _status(cell)
        if "n_samples=2000000" in cell.name:  # each killed alone: the culprit
            assert status["status"] == "failed"
            error = status["error"]
            assert "the worker died: its process was killed by SIGKILL" in error
            assert "ran out of memory" in error
        else:
            assert status["status"] == "ok"
    assert (tmp_path / schema.ANALYSIS_DIR / "results.parquet").exists()
    # re-running keeps the finished cells and tries the others again
    again = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "memory_cap.py"), CAP_MB, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 1 and "4 cells: 0 ok, 2 failed, 2 cached" in again.stdout


def test_a_cell_running_beside_a_dead_worker_runs_again_alone_and_finishes(tmp_path):
    # both cells start together; the big one dies within a second, while basis
    # pursuit on 2,000 samples still runs: both were in flight when the pool broke
    args = ["-m", "method=basis_pursuit", "neurons=20", "sparsity=0.05",
            "n_samples=2000000,2000",
            "trials=1", "cell_memory_gb=100", f"hydra.sweep.dir={tmp_path}",
            "hydra.callbacks.sweep_end.analyze=false"]  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "memory_cap.py"), CAP_MB, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-3000:]
    assert "a worker died with 2 cells in flight: each runs again alone" in out.stdout
    assert "2 cells: 1 ok, 1 failed, 0 cached" in out.stdout


# Kills the worker right after a cell has finished (its files and status written),
# in the one cell whose folder name has neurons=5; loaded by every process.
DIE_AFTER = """
import os, signal
import sweep.job as job
_run = job.run
def run(cfg, out_dir, **kwargs):
    status = _run(cfg, out_dir, **kwargs)
    if ",neurons=5," in str(out_dir):
        os.kill(os.getpid(), signal.SIGKILL)
    return status
job.run = run
"""


# Replaces sweep.job.run in every process (loaded by Python at start): with
# DIE_AFTER a worker is killed right after its cell finished (files and status
# written); with RAISE, the task itself raises before the cell runs.
DIE_AFTER = """
import os, signal
import sweep.job as job
_run = job.run
def run(cfg, out_dir, **kwargs):
    status = _run(cfg, out_dir, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
job.run = run
"""
RAISE = """
import sweep.job as job
def run(cfg, out_dir, **kwargs):
    raise MemoryError("no room")
job.run = run
"""


def _run_hooked(tmp_path, hook: str, *args):
    return run_cli("sweep", *args, env=hooked(tmp_path / "hook", hook))


def test_a_worker_that_dies_after_its_cell_finished_keeps_the_result(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "neurons=5", "sparsity=0.2"]
    out = _run_hooked(tmp_path, DIE_AFTER, *grid, f"hydra.sweep.dir={tmp_path / 's'}")
    assert "finished before its worker died" in out.stdout, out.stdout[-3000:]
    assert out.returncode == 0 and "1 cells: 1 ok" in out.stdout
    (cell,) = _cells(tmp_path / "s")
    status = _status(cell)
    assert status["status"] == "ok" and schema.FEATURES_FILE in status["files"]
    assert pd.read_parquet(cell / schema.METRICS_FILE)["status"].eq("ok").all()


def test_a_task_that_raises_is_recorded_as_a_failed_cell(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "neurons=5", "sparsity=0.2"]
    out = _run_hooked(tmp_path, RAISE, *grid, f"hydra.sweep.dir={tmp_path / 's'}")
    assert out.returncode == 1 and "1 cells: 0 ok, 1 failed" in out.stdout
    (cell,) = _cells(tmp_path / "s")
    assert _status(cell)["error"] == "MemoryError: no room"
    assert "MemoryError" in _status(cell)["traceback"]


def test_an_error_outside_the_cell_fails_only_that_cell(tmp_path):
    # Hydra cannot write the cell's .hydra/ folder (a file stands there): an OSError
    # in Hydra's code, outside the cell's own try, as on a full disk
    grid = [*SMOKE_OFF, "method=omp", "neurons=5,10", "sparsity=0.05"]
    blocked = tmp_path / f"method=omp,{SMOKE},neurons=10,sparsity=0.05,trials=2"
    blocked.mkdir(parents=True)
    (blocked / ".hydra").write_text("in the way")
    out = run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "2 cells: 1 ok, 1 failed, 0 cached" in out.stdout
    assert _status(blocked)["error"].startswith("FileExistsError")
    assert "Traceback" in _status(blocked)["traceback"]
    (blocked / ".hydra").unlink()
    again = run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path}")
    assert again.returncode == 0 and "2 cells: 1 ok, 0 failed, 1 cached" in again.stdout


# --- interrupted sweeps ---------------------------------------------------------------

# A slow sweep: 8 cells of basis pursuit on many samples (0.5-1.7 s each), so that
# an interrupt after the first cell lands while most of them are still to run.
SLOW = [
    "-m", "experiment=smoke", "method=basis_pursuit", "neurons=5,10,15,20",
    "n_samples=1500", "trials=3", "hydra.callbacks.sweep_end.analyze=false",
]  # fmt: skip
N_SLOW = 8


def _start(sweep_dir, *extra):
    """The slow sweep in its own process group, with Ctrl-C's default action: a
    shell ignores SIGINT in the jobs it starts in the background (``cmd &``), and
    the ignored disposition would be inherited by the sweep."""
    args = [sys.executable, "-m", "sweep", *SLOW, f"hydra.sweep.dir={sweep_dir}",
            *extra]  # fmt: skip
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _wait_for_cells(sweep_dir, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(sweep_dir.rglob(schema.STATUS_FILE))) >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {n} cells finished in {timeout} s")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _assert_nothing_partial_and_resume(sweep_dir, reference, *resume) -> None:
    # no file that analysis would read as a finished cell: every metrics file of a
    # cell without an ok status.json is ignored, and no temporary file has the name
    for status in sweep_dir.rglob(schema.STATUS_FILE):
        assert pd.read_json(status, typ="series")["status"] in ("ok", "failed")
    out = run_cli("analysis", str(sweep_dir))
    assert out.returncode == 0, out.stderr
    cells = pd.read_csv(sweep_dir / schema.ANALYSIS_DIR / "cells.csv")
    done = cells[cells["status"] == "ok"]
    assert len(done) == len(list(sweep_dir.rglob(schema.STATUS_FILE)))
    again = run_cli("sweep", *(resume or [*SLOW, f"hydra.sweep.dir={sweep_dir}"]))
    assert again.returncode == 0, again.stdout[-2000:]
    assert "cached" in again.stdout
    pd.testing.assert_frame_equal(_metrics(sweep_dir), reference)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    where = tmp_path_factory.mktemp("whole")
    proc = _start(where)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()[-2000:]
    return _metrics(where)


def test_sigint_of_the_sweep_then_resume(tmp_path, uninterrupted):
    proc = _start(tmp_path)
    _wait_for_cells(tmp_path, 1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    assert proc.wait(timeout=60) == 130, proc.stdout.read()[-3000:]
    said = proc.stdout.read()
    assert "Traceback" not in said
    (line,) = [x for x in said.splitlines() if x.startswith("interrupted: ")]
    assert f"cells done; resume with: python -m sweep resume {tmp_path}" in line
    assert len(list(tmp_path.rglob(schema.STATUS_FILE))) < N_SLOW
    assert run_cli("analysis", str(tmp_path)).returncode == 0
    cells = pd.read_csv(tmp_path / schema.ANALYSIS_DIR / "cells.csv")
    assert len(cells) == N_SLOW  # the cells that never started are listed as missing
    assert set(cells["status"]) <= {"ok", "missing"} and "missing" in set(
        cells["status"]
    )
    _assert_nothing_partial_and_resume(tmp_path, uninterrupted, "resume", str(tmp_path))


def test_sigkill_of_the_workers_then_resume(tmp_path, uninterrupted):
    proc = _start(tmp_path)
    _wait_for_cells(tmp_path, 1)
    workers = _children(proc.pid)
    assert workers, "no worker found"
    for pid in workers:  # the pool's workers (and loky's resource tracker)
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=120)
    _assert_nothing_partial_and_resume(tmp_path, uninterrupted)


# --- 3. one sweep per folder ----------------------------------------------------------


def test_a_folder_held_by_a_running_sweep_is_refused_then_taken_over(tmp_path):
    first = _start(tmp_path)
    _wait_for_cells(tmp_path, 1)
    other = [a for a in SLOW if not a.startswith("neurons=")] + ["neurons=5"]
    second = run_cli("sweep", *other, f"hydra.sweep.dir={tmp_path}")
    assert second.returncode == 2
    assert f"a running sweep holds it (pid {first.pid} on " in second.stderr
    assert "started 20" in second.stderr and "Traceback" not in second.stderr
    os.killpg(first.pid, signal.SIGKILL)  # the holder dies: its lock goes with it
    first.wait(timeout=60)
    third = run_cli("sweep", *SLOW, f"hydra.sweep.dir={tmp_path}")
    assert third.returncode == 0, third.stdout[-2000:]
    assert f"{N_SLOW} cells: " in third.stdout and "cached" in third.stdout


# --- 8. nothing left behind -----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_worker_outlives_the_sweep(tmp_path, sig):
    proc = _start(tmp_path)
    _wait_for_cells(tmp_path, 1)
    workers = _children(proc.pid)
    assert workers
    os.kill(proc.pid, sig)  # the parent alone, not its process group
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z"  # a zombie has exited; only its parent's wait() is missing


# --- 4. a cache that checks itself ----------------------------------------------------


def _flip_a_bit(path) -> None:
    data = bytearray(path.read_bytes())
    spot = random.Random(0).randrange(len(data) // 4, len(data) // 2)
    data[spot] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = [  # (file, how)
    (schema.METRICS_FILE, lambda p: p.write_bytes(p.read_bytes()[:-100])),  # truncated
    (schema.METRICS_FILE, lambda p: p.write_bytes(b"")),  # emptied
    (schema.METRICS_FILE, lambda p: p.write_bytes(random.Random(1).randbytes(999))),
    (schema.METRICS_FILE, _flip_a_bit),
    (schema.FEATURES_FILE, _flip_a_bit),  # not read by this analysis: recomputed only
]


def test_damaged_results_are_recomputed_and_named(tmp_path):
    assert run_cli("sweep", *GRID, f"hydra.sweep.dir={tmp_path}").returncode == 0
    reference = _metrics(tmp_path)
    cells = _cells(tmp_path)
    hurt = cells[: len(DAMAGE)]
    for cell, (name, damage) in zip(hurt, DAMAGE, strict=True):
        damage(cell / name)
    out = run_cli("analysis", str(tmp_path))
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    metrics_hurt = [c for c, (name, _) in zip(hurt, DAMAGE, strict=True)
                    if name == schema.METRICS_FILE]  # fmt: skip
    for cell in metrics_hurt:
        assert f"damaged {cell}: metrics.parquet differs from what was written" in log
    listed = pd.read_csv(tmp_path / schema.ANALYSIS_DIR / "cells.csv")
    damaged = listed.loc[listed["status"] == "damaged", "cell_dir"]
    assert sorted(damaged) == sorted(c.name for c in metrics_hurt)
    again = run_cli("sweep", *GRID, f"hydra.sweep.dir={tmp_path}")
    assert again.returncode == 0, again.stdout[-3000:]
    for cell in hurt:
        assert f"recomputing {cell.name}: " in again.stdout
    n, k = len(cells), len(hurt)
    assert f"{n} cells: {k} ok, 0 failed, {n - k} cached" in again.stdout
    pd.testing.assert_frame_equal(_metrics(tmp_path), reference)


def test_an_older_cell_without_checksums_is_still_analysed(tmp_path):
    assert run_cli("sweep", *GRID, f"hydra.sweep.dir={tmp_path}").returncode == 0
    old = _cells(tmp_path)[0]
    status = _status(old)
    del status["files"]  # written before checksums were recorded
    (old / schema.STATUS_FILE).write_text(json.dumps(status))
    older = pd.read_parquet(old / schema.METRICS_FILE).drop(columns=["support_f1"])
    older.assign(schema_version=0).to_parquet(old / schema.METRICS_FILE)
    out = run_cli("analysis", str(tmp_path))
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    assert f"{old / schema.METRICS_FILE} (schema_version 0) lacks support_f1" in log
    results = pd.read_parquet(tmp_path / schema.ANALYSIS_DIR / "results.parquet")
    assert len(results) == len(_cells(tmp_path))


# --- 5. one identity per cell ---------------------------------------------------------


def test_equal_configurations_are_one_cell_whatever_the_spelling(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "neurons=5"]
    spellings = "sparsity=0.1,1e-1,0.10"
    out = run_cli("sweep", *grid, spellings, f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stdout[-2000:]
    assert "3 grid points are 1 distinct cells" in out.stdout
    assert "1 cells: 1 ok, 0 failed, 0 cached" in out.stdout
    assert [c.name for c in _cells(tmp_path)] == [
        f"method=omp,{SMOKE},neurons=5,sparsity=0.1,trials=2"
    ]
    # the paper's S and the word density are the same key: the same cell
    for synonym in ("S=0.9", "density=0.1"):
        again = run_cli("sweep", *grid, synonym, f"hydra.sweep.dir={tmp_path}")
        assert again.returncode == 0, again.stderr
        assert "1 cells: 0 ok, 0 failed, 1 cached" in again.stdout
    # the same cell, the preset's constants typed out: found again
    typed = run_cli(
        "sweep", "-m", "method=omp", "neurons=5", "sparsity=0.1", "n_features=20",
        "n_samples=40", "n_train=100", "trials=2", f"hydra.sweep.dir={tmp_path}",
        "hydra.callbacks.sweep_end.analyze=false",
    )  # fmt: skip
    assert typed.returncode == 0 and "1 cells: 0 ok, 0 failed, 1 cached" in typed.stdout


def test_naming_overrides_never_put_two_cells_in_one_folder(tmp_path):
    # Hydra's override_dirname no longer names cells: excluding every swept key
    # from it changes nothing (hydra.sweep.subdir itself is refused: see BAD)
    out = run_cli(
        "sweep", *SMOKE_OFF, "method=omp", "neurons=5,10", "sparsity=0.05",
        "hydra.job.config.override_dirname.exclude_keys=[neurons,sparsity,method]",
        f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    assert "2 cells: 2 ok" in out.stdout and len(_cells(tmp_path)) == 2


def test_a_swept_model_group_finds_the_cells_of_a_fixed_one(tmp_path):
    keys = ["method=readout", "n_features=5", "neurons=2", "sparsity=0.1", "trials=1",
            "model.steps=20", f"hydra.sweep.dir={tmp_path}",
            "hydra.callbacks.sweep_end.analyze=false"]  # fmt: skip
    assert run_cli("sweep", "-m", "model=toy_relu", *keys).returncode == 0
    both = run_cli("sweep", "-m", "model=toy_relu,toy_linear", *keys)  # ++model.steps
    assert both.returncode == 0, both.stdout[-2000:]
    assert "2 cells: 1 ok, 0 failed, 1 cached" in both.stdout
    assert len(_cells(tmp_path)) == 2


def test_many_pinned_keys_give_a_short_unique_folder_name(tmp_path):
    pinned = [
        "seed=1", "n_features=21", "neurons=6", "sparsity=0.123456789", "trials=1",
        "n_samples=11", "n_train=12", "noise=0.001", "success_tol=0.0123",
        "represented_tol=0.00123", "method=lasso", "method.alpha=0.000123",
        "method.positive=true", "method.max_iter=77", "method.tol=0.0000123",
        "model=toy_relu", "model.importance_decay=0.777", "model.lr=0.00123",
        "model.weight_decay=0.0123", "model.batch_size=17", "model.steps=3",
    ]  # fmt: skip
    args = ["-m", *pinned, f"hydra.sweep.dir={tmp_path}",
            "hydra.callbacks.sweep_end.analyze=false"]  # fmt: skip
    out = run_cli("sweep", *args)
    assert out.returncode == 0, out.stdout[-2000:]
    (cell,) = _cells(tmp_path)
    assert len(cell.name.encode()) <= MAX_NAME_BYTES and ",hash=" in cell.name
    assert cell.name.startswith("method=lasso,method.alpha=0.000123,")
    other = [a.replace("0.123456789", "0.123456788") for a in args]
    again = run_cli("sweep", *other)
    assert again.returncode == 0 and len(_cells(tmp_path)) == 2  # another config


def test_a_folder_named_by_an_older_rule_is_found_by_its_configuration(tmp_path):
    grid = [*SMOKE_OFF, "method=omp", "neurons=5", "sparsity=0.05"]
    assert run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path}").returncode == 0
    (cell,) = _cells(tmp_path)
    old = "method=omp,neurons=5,sparsity=0.05"  # as Hydra's override_dirname named it
    cell.rename(tmp_path / old)
    (tmp_path / "grid.json").write_text(json.dumps({"cells": [old]}))
    again = run_cli("sweep", *grid, f"hydra.sweep.dir={tmp_path}")
    assert again.returncode == 0 and "1 cells: 0 ok, 0 failed, 1 cached" in again.stdout
    assert [c.name for c in _cells(tmp_path)] == ["method=omp,neurons=5,sparsity=0.05"]


# --- 7. runs from any folder ----------------------------------------------------------


def test_runs_from_a_folder_holding_sweep_and_analysis_folders(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "analysis").mkdir()
    out = run_cli("sweep", "-m", "experiment=smoke", "method=omp", "neurons=5",
                  "hydra.sweep.dir=s",
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "2 cells: 2 ok" in out.stdout
    for _ in range(2):  # the second time, the sweep's own analysis/ is in the way
        again = run_cli("analysis", ".", cwd=tmp_path / "s")
        assert again.returncode == 0, again.stderr[-2000:]


# --- 9. security floor ----------------------------------------------------------------


def test_pyarrow_is_past_its_code_execution_flaw():
    assert any(r.replace(" ", "").startswith("pyarrow>=14.0.1")
               for r in requires("superposition-sweeps"))  # fmt: skip
    assert tuple(int(x) for x in version("pyarrow").split(".")[:3]) >= (14, 0, 1)
