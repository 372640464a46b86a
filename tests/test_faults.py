"""Fault injection: bad input through the CLI, interrupted sweeps, damaged files."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, run_cli
from test_config import BAD

from sweep import schema
from sweep.__main__ import cli

GRID = [
    "-m",
    "experiment=smoke",
    "method=omp,nnls",
    "hydra.callbacks.sweep_end.analyze=false",
]
TIMINGS = ["sweep", "fit_seconds", "recover_seconds"]


def _metrics(sweep_dir) -> pd.DataFrame:
    """Every ok cell's metrics, timings aside, in a stable order."""
    frames = [
        pd.read_parquet(p)
        for p in sorted(sweep_dir.rglob(schema.METRICS_FILE))
        if schema.ANALYSIS_DIR not in p.parts
    ]
    frame = pd.concat(frames, ignore_index=True).drop(columns=TIMINGS)
    return frame.sort_values(["cell", "trial"], ignore_index=True)


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_exits_2_with_the_message(argv, message, tmp_path, capsys):
    key = "hydra.sweep.dir" if "-m" in argv else "hydra.run.dir"
    assert cli([*argv, f"{key}={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad input, nothing ran:")
    assert message in err
    assert not (tmp_path / "out").exists()


def test_grown_grid_keeps_finished_cells_and_matches_a_fresh_sweep(tmp_path):
    small, grown, fresh = tmp_path / "grown", tmp_path / "grown", tmp_path / "fresh"
    assert (
        run_cli("sweep", *GRID, "neurons=5", f"hydra.sweep.dir={small}").returncode == 0
    )
    out = run_cli("sweep", *GRID, "neurons=5,10", f"hydra.sweep.dir={grown}")
    assert out.returncode == 0, out.stdout[-2000:]
    assert "8 cells: 4 ok, 0 failed, 4 cached" in out.stdout
    assert (
        run_cli("sweep", *GRID, "neurons=5,10", f"hydra.sweep.dir={fresh}").returncode
        == 0
    )
    pd.testing.assert_frame_equal(_metrics(grown), _metrics(fresh))


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


def _assert_nothing_partial_and_resume(sweep_dir, reference) -> None:
    # no file that analysis would read as a finished cell: every metrics file of a
    # cell without an ok status.json is ignored, and no temporary file has the name
    for status in sweep_dir.rglob(schema.STATUS_FILE):
        assert pd.read_json(status, typ="series")["status"] in ("ok", "failed")
    out = run_cli("analysis", str(sweep_dir))
    assert out.returncode == 0, out.stderr
    cells = pd.read_csv(sweep_dir / schema.ANALYSIS_DIR / "cells.csv")
    done = cells[cells["status"] == "ok"]
    assert len(done) == len(list(sweep_dir.rglob(schema.STATUS_FILE)))
    again = run_cli("sweep", *SLOW, f"hydra.sweep.dir={sweep_dir}")
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
    assert proc.wait(timeout=60) != 0, proc.stdout.read()[-3000:]
    assert len(list(tmp_path.rglob(schema.STATUS_FILE))) < N_SLOW
    assert run_cli("analysis", str(tmp_path)).returncode == 0
    cells = pd.read_csv(tmp_path / schema.ANALYSIS_DIR / "cells.csv")
    assert len(cells) == N_SLOW  # the cells that never started are listed as missing
    assert set(cells["status"]) <= {"ok", "missing"} and "missing" in set(
        cells["status"]
    )
    _assert_nothing_partial_and_resume(tmp_path, uninterrupted)


def test_sigkill_of_a_worker_then_resume(tmp_path, uninterrupted):
    proc = _start(tmp_path)
    _wait_for_cells(tmp_path, 1)
    workers = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert workers, "no joblib worker found"
    for pid in workers:  # the loky workers (and its resource tracker)
        os.kill(int(pid), signal.SIGKILL)
    proc.wait(timeout=120)
    _assert_nothing_partial_and_resume(tmp_path, uninterrupted)


def test_damaged_result_files_are_named_and_the_rest_analysed(tmp_path):
    assert run_cli("sweep", *GRID, f"hydra.sweep.dir={tmp_path}").returncode == 0
    cells = sorted(p.parent for p in tmp_path.rglob(schema.METRICS_FILE))
    truncated, emptied, old = cells[0], cells[1], cells[2]
    data = (truncated / schema.METRICS_FILE).read_bytes()
    (truncated / schema.METRICS_FILE).write_bytes(data[: len(data) // 2])
    (emptied / schema.METRICS_FILE).write_bytes(b"")
    older = pd.read_parquet(old / schema.METRICS_FILE).drop(columns=["support_f1"])
    older.assign(schema_version=0).to_parquet(old / schema.METRICS_FILE)
    out = run_cli("analysis", str(tmp_path))
    assert out.returncode == 0, out.stderr
    log = out.stdout + out.stderr
    assert f"unreadable {truncated / schema.METRICS_FILE}" in log
    assert f"unreadable {emptied / schema.METRICS_FILE}" in log
    assert f"{old / schema.METRICS_FILE} (schema_version 0) lacks support_f1" in log
    results = pd.read_parquet(tmp_path / schema.ANALYSIS_DIR / "results.parquet")
    assert len(results) == len(cells) - 2  # the two unreadable cells are left out
    listed = pd.read_csv(tmp_path / schema.ANALYSIS_DIR / "cells.csv")
    assert set(listed["cell_dir"]) == {c.name for c in cells}  # ... but listed
    rows = dict(zip(listed["cell_dir"], listed["rows"], strict=True))
    assert rows[truncated.name] == 0 and rows[emptied.name] == 0
