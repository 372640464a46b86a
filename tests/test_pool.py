"""The pool launcher's progress lines (the crash isolation: tests/test_faults.py)."""

import json
import logging

import pytest
from hydra.core.utils import JobReturn, JobStatus

from sweep import pool


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (12.4, "12 s"), (65, "1 min 05 s"), (3725, "1 h 02 min")],
)
def test_clock(seconds, text):
    assert pool.clock(seconds) == text


def test_progress_counts_cells_and_says_what_is_left(caplog, monkeypatch):
    now = iter([100.0, 110.0, 130.0])  # start, then two cells finish
    monkeypatch.setattr(pool.time, "monotonic", lambda: next(now))
    progress = pool.Progress(4)
    jobs = [pool.Job(i, ("neurons=5", f"hydra.sweep.subdir='cell{i}'")) for i in (0, 1)]
    ok, failed = ({"line": "ok cell0: x=1"}, {"status": "failed"})
    with caplog.at_level(logging.INFO, logger=pool.log.name):
        for job, status in zip(jobs, (ok, failed), strict=True):  # 10 s, then 30 s
            progress.finished(job, JobReturn(status=JobStatus.COMPLETED,
                                             _return_value=status))  # fmt: skip
    first, second = (r.getMessage() for r in caplog.records)
    assert first == "[1/4] ok cell0: x=1 | 10 s elapsed, about 30 s left"
    assert second == "[2/4] failed cell1 | 30 s elapsed, about 30 s left"


def test_a_heartbeat_names_the_running_cells(caplog, monkeypatch):
    now = iter([0.0, 95.0])
    monkeypatch.setattr(pool.time, "monotonic", lambda: next(now))
    progress = pool.Progress(3)
    running = [pool.Job(0, ("hydra.sweep.subdir='method=sae,neurons=5'",))]
    with caplog.at_level(logging.INFO, logger=pool.log.name):
        progress.waiting(running)
    assert caplog.records[0].getMessage() == (
        "[0/3] still running (1 min 35 s elapsed): method=sae,neurons=5"
    )


def test_a_cell_folder_holding_only_its_log_is_a_missing_cell(tmp_path):
    """Interrupted between Hydra's log file and its .hydra/ folder, a cell folder
    holds only an empty cell.log: it is counted (missing), never dropped, and a cell
    Hydra made is counted as what its status says."""
    from sweep import folders

    (tmp_path / folders.GRID_FILE).write_text(json.dumps({"cells": ["a", "b", "c"]}))
    (tmp_path / "a" / ".hydra").mkdir(parents=True)  # started: no status yet
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cell.log").write_text("")
    statuses = folders.cell_statuses(tmp_path)
    assert sorted(statuses) == ["a", "b", "c"]
    assert statuses["b"]["status"] == statuses["c"]["status"] == "missing"


def test_short_cells_go_to_a_worker_in_batches_of_about_batch_s():
    progress = pool.Progress(1000)
    assert progress.batch_size(1000, 2) == 1  # nothing measured yet: one at a time
    progress.seconds = [0.05] * 10  # 50 ms cells: about BATCH_S of them
    assert progress.batch_size(1000, 2) == round(pool.BATCH_S / 0.05)
    assert progress.batch_size(7, 2) == 4  # at most an equal share of the queue
    progress.seconds = [1e-6] * 10
    assert progress.batch_size(1000, 2) == pool.MAX_BATCH
    progress.seconds = [2.0] * 10  # long cells: one each (exact progress, isolation)
    assert progress.batch_size(1000, 2) == 1
    progress.seconds = [pool.BATCH_S / 2] * 10  # from BATCH_S / 2 on: one each
    assert progress.batch_size(1000, 2) == 1
    progress.seconds = [pool.BATCH_S / 2.2] * 10
    assert progress.batch_size(1000, 2) == 2


def test_workers_get_native_thread_pools_as_joblib_gives_them(monkeypatch):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's setting is kept
    env = pool.worker_env(2)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "4"
    assert env["MKL_NUM_THREADS"] == "3"
    assert pool.worker_env(16)["OMP_NUM_THREADS"] == "1"
