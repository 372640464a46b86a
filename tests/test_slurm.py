"""hydra/launcher=slurm on a real single-node SLURM cluster (``.ci/slurm-cluster
start`` runs one; CI does, and sets SLURM_TESTS=required so that these tests cannot
be skipped there), and its pure parts without one."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, run_cli

from sweep import schema, slurm
from sweep.command import validate_argv
from sweep.folders import read_status

SMOKE = ["neurons=5,10,20", "sparsity=0.01,0.1"]  # the README's SLURM command's grid
ON_SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug",
            "hydra.launcher.mem_gb=1"]  # fmt: skip
LONG = ["method=sae", "method.steps=400000", "neurons=5", "sparsity=0.05",
        "trials=1"]  # fmt: skip  # minutes of work: cancelled or timed out first


def _cluster() -> str:
    """Why no cluster can be used ("" if one answers)."""
    if not shutil.which("sbatch"):
        return "no SLURM client (sbatch) installed: `.ci/slurm-cluster start` as root"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "no SLURM controller answers: `.ci/slurm-cluster start` as root"
    return ""


WHY = _cluster()
needs_cluster = pytest.mark.skipif(
    bool(WHY) and os.environ.get("SLURM_TESTS") != "required", reason=WHY
)


@pytest.fixture
def cluster():
    """A cluster that answers; with SLURM_TESTS=required its absence fails."""
    if WHY:
        pytest.fail(f"SLURM_TESTS=required but {WHY}")


def _sweep(tmp_path, *args, **kw):
    return run_cli("sweep", "-m", *args, f"hydra.sweep.dir={tmp_path}", **kw)


def _metrics(sweep_dir) -> pd.DataFrame:
    paths = sorted(sweep_dir.glob(f"*/{schema.METRICS_FILE}"))
    frames = [pd.read_parquet(p) for p in paths]
    keep = [c for c in frames[0] if not c.endswith("seconds") and c != "sweep"]
    frame = pd.concat(frames)[keep]
    return frame.sort_values(["cell", "trial"], ignore_index=True)


def _arrays(log: str) -> list[str]:
    (line,) = [x for x in log.splitlines() if "submitted to SLURM as job array" in x]
    return line.rsplit("as job array ", 1)[1].split(", ")


def _queued(arrays: list[str]) -> set[str]:
    return slurm.in_queue(arrays) or set()


# --- on a real cluster ---


@needs_cluster
def test_the_readme_sweep_runs_through_sbatch_as_on_this_machine(tmp_path, cluster):
    """Every cell is a task of an sbatch array (sacct lists them, completed), and the
    results are those of the default launcher, number for number."""
    start = time.monotonic()
    out = _sweep(tmp_path / "slurm", *SMOKE, *ON_SLURM, "hydra.launcher.timeout_min=30")
    took = time.monotonic() - start
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    (array,) = _arrays(log)
    acct = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", array],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    states = dict(line.split("|") for line in acct.splitlines())
    cells = list((tmp_path / "slurm").glob(f"*/{schema.STATUS_FILE}"))
    assert len(states) == len(cells) == 18 and set(states.values()) == {"COMPLETED"}
    here = _sweep(tmp_path / "pool", *SMOKE)
    assert here.returncode == 0, here.stderr[-2000:]
    pd.testing.assert_frame_equal(_metrics(tmp_path / "slurm"),
                                  _metrics(tmp_path / "pool"))  # fmt: skip
    assert (tmp_path / "slurm" / schema.ANALYSIS_DIR / "report.html").exists()
    sys.stderr.write(f"the README's SLURM sweep: {took:.0f} s\n")


@needs_cluster
def test_a_failing_cell_fails_alone(tmp_path, cluster):
    """A cell that raises (a diverging toy model) is failed and named; exit 1."""
    out = _sweep(tmp_path, "model=toy_relu", "model.importance_decay=1e300,0.7",
                 "model.steps=5", "method=readout", "neurons=2", "n_features=6",
                 "trials=1", "sparsity=0.1", *ON_SLURM)  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    assert "2 cells: 1 ok, 1 failed" in log and "training diverged" in log
    assert "Traceback" not in out.stderr


def _running(arrays: list[str], tasks: set[str], timeout: float = 120) -> None:
    """Wait until these tasks of the arrays run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "R", "-o", "%i", "-j", ",".join(arrays)],
            capture_output=True, text=True,
        )  # fmt: skip
        if tasks <= set(out.stdout.split()):
            return
        time.sleep(0.5)
    raise AssertionError(f"{tasks} never ran")


def _start(tmp_path, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sweep", "-m", *args, f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _submitted(proc: subprocess.Popen) -> tuple[list[str], list[str]]:
    """The arrays a running sweep submitted, and its lines up to there."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "submitted to SLURM as job array" in line:
            return _arrays(line), lines
    raise AssertionError("".join(lines)[-3000:])


@needs_cluster
def test_a_cancelled_task_fails_its_cell_and_a_rerun_completes_it(tmp_path, cluster):
    """scancel of a running task: its cell failed "cancelled by SLURM", the others
    finish, summary and analysis run, exit 1, nothing of the sweep left on the
    cluster; the same command again runs only that cell (and it finishes). The
    cancelled cell takes ~20 s, SLURM kills it 5 s after the cancel (KillWait)."""
    args = [*LONG[:1], "method.steps=50000,1000", *LONG[2:], *ON_SLURM]
    proc = _start(tmp_path, *args)
    arrays, lines = _submitted(proc)
    first = f"{arrays[0]}_0"  # the grid's first cell: method.steps=50000
    _running(arrays, {first})
    subprocess.run(["scancel", first], check=True)
    code = proc.wait(timeout=300)
    log = "".join(lines) + proc.stdout.read()
    assert code == 1, log[-3000:]
    assert "2 cells: 1 ok, 1 failed" in log and "cancelled by SLURM" in log
    assert "Traceback" not in log and not _queued(arrays)
    (cancelled,) = [p.parent for p in tmp_path.glob(f"*/{schema.STATUS_FILE}")
                    if read_status(p.parent)["status"] == "failed"]  # fmt: skip
    assert "method.steps=50000" in cancelled.name
    assert (tmp_path / schema.ANALYSIS_DIR / "report.html").exists()
    again = _sweep(tmp_path, *args)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "2 cells: 1 ok, 0 failed, 1 cached" in again.stdout + again.stderr


@needs_cluster
def test_an_interrupted_sweep_leaves_nothing_on_the_cluster(tmp_path, cluster):
    """SIGTERM (or Ctrl-C) of the command while tasks run: every task of the sweep
    is cancelled before it returns, exit 130 with the line that resumes it."""
    proc = _start(tmp_path, *LONG[:1], "method.steps=400000,400001", *LONG[2:],
                  *ON_SLURM)  # fmt: skip
    arrays, lines = _submitted(proc)
    _running(arrays, {f"{arrays[0]}_0", f"{arrays[0]}_1"})
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    log = "".join(lines) + proc.stdout.read()
    assert code == 130, log[-3000:]
    assert not _queued(arrays), "tasks left on the cluster"
    assert f"resume with: python -m sweep resume {tmp_path}" in log


@needs_cluster
def test_a_cell_gets_its_timeout_min_then_fails_clearly(tmp_path, cluster):
    """timeout_min=1: the long cell runs its minute and fails with the time limit
    in its error (SLURM's own limit, a minute later, never hits); the short one is
    ok; exit 1."""
    out = _sweep(tmp_path, *LONG[:1], "method.steps=400000,1000", *LONG[2:],
                 *ON_SLURM, "hydra.launcher.timeout_min=1", timeout=400)  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]
    (timed,) = [p.parent for p in tmp_path.glob(f"*/{schema.STATUS_FILE}")
                if read_status(p.parent)["status"] == "failed"]  # fmt: skip
    status = read_status(timed)
    assert "ran past cell_timeout_s=60" in status["error"]
    assert status["seconds"] >= 59  # it had its minute
    assert "Traceback" not in out.stderr


@needs_cluster
def test_a_request_the_cluster_cannot_satisfy_is_bad_input(tmp_path, cluster):
    out = _sweep(tmp_path, "neurons=5", "method=omp", *ON_SLURM[:2],
                 "hydra.launcher.mem_gb=100000")  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "hydra.launcher.mem_gb=100000" in out.stderr
    assert "sbatch refused the cells: Memory specification can not be satisfied" in (
        out.stderr)  # fmt: skip
    assert "Traceback" not in out.stderr and not list(tmp_path.glob("*/status.json"))


# --- without a cluster ---


def test_a_cell_is_promised_timeout_min_and_slurm_waits_longer():
    """The cell's own limit is timeout_min (or a smaller cell_timeout_s); SLURM is
    asked for MARGIN_MIN more; a task ignores SLURM's warning signal (submitit's
    handler would end the cell early), and too small a timeout is bad input."""
    assert slurm.cell_seconds(30, None) == 1800 and slurm.cell_seconds(30, 60) == 60
    asked = slurm.sbatch_params({"timeout_min": 30, "signal_delay_s": 120, "x": 1})
    assert asked["timeout_min"] == 30 + slurm.MARGIN_MIN and asked["x"] == 1
    usr2 = slurm.submitit_signal()
    previous = signal.getsignal(usr2)
    try:
        signal.signal(usr2, lambda *_: pytest.fail("submitit's handler ran"))
        slurm.in_task()
        assert signal.getsignal(usr2) is signal.SIG_IGN
        os.kill(os.getpid(), usr2)  # ignored: nothing happens
    finally:
        signal.signal(usr2, previous)
    for bad in ("0", "0.5", "-1", "ten"):
        errors = validate_argv(["hydra/launcher=slurm",
                                f"hydra.launcher.timeout_min={bad}"])  # fmt: skip
        assert len(errors) == 1 and "whole number of minutes >= 1" in errors[0]
    assert validate_argv(["hydra/launcher=slurm", "hydra.launcher.timeout_min=1"]) == []


def test_what_slurm_did_to_a_task_is_the_cells_error():
    said = slurm.ended_error("12_3", "CANCELLED by 0")
    assert said == "cancelled by SLURM (SLURM job 12_3: CANCELLED by 0)"
    assert "out of memory" in slurm.ended_error("1_0", "OUT_OF_MEMORY")
    assert "time limit" in slurm.ended_error("1_0", "TIMEOUT")
    assert "installed on the node" in slurm.ended_error("1_0", "FAILED")
    assert "did not say why" in slurm.ended_error("1_0", "UNKNOWN")


def test_a_task_out_of_the_queue_without_a_result_has_ended():
    """Out of squeue without a result: ended LOST_S later if SLURM says it failed
    (the result file may lag a little), RESULT_WAIT_S later if SLURM says it
    completed, or says nothing (no accounting; a shared file system may lag)."""
    now = time.monotonic()
    assert not slurm._ended("CANCELLED by 0", now)
    assert slurm._ended("CANCELLED by 0", now - slurm.LOST_S - 1)
    assert not slurm._ended("UNKNOWN", now - slurm.LOST_S - 1)
    assert not slurm._ended("COMPLETED", now - slurm.LOST_S - 1)
    assert slurm._ended("UNKNOWN", now - slurm.RESULT_WAIT_S - 1)


def test_each_launch_keeps_its_tasks_files_apart():
    """A resumed sweep on a cluster that reuses job ids never reads an earlier
    launch's result file as its task's."""
    folder = slurm.launch_folder("/s/.submitit/%j")
    assert folder.startswith("/s/.submitit/") and folder.endswith("/%j")
    assert folder.count("/") == 4 and str(os.getpid()) in folder


def test_sbatchs_reason_is_taken_from_its_error_lines():
    err = RuntimeError("Could not submit\nsbatch: error: Memory specification can not"
                       " be satisfied\nsbatch: error: Batch job submission failed: X")
    assert slurm.reason(err) == ("Memory specification can not be satisfied; Batch"
                                 " job submission failed: X")  # fmt: skip
    assert slurm.reason(RuntimeError("plain\nmore")) == "plain"
