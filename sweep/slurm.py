"""Cells as the tasks of a SLURM job array (``hydra/launcher=slurm``), each failure
confined to its own cell, as the pool launcher confines a dead worker's.

hydra-submitit-launcher submits a batch of cells with one ``sbatch`` (a job array,
through submitit) and waits for every task; this module replaces that wait, so that
what SLURM does to a task becomes its cell's result and the sweep goes on:

- a task cancelled (``scancel``, preemption), killed for memory or lost with its node
  leaves no result: its cell becomes ``failed``, the error naming what SLURM
  reported (``sacct``'s state; without accounting, that it left the queue);
- time: a cell gets ``timeout_min`` minutes. Its own limit (``cell_timeout_s``, the
  smaller of it and ``timeout_min``) ends it with a clear error; SLURM's limit is
  MARGIN_MIN later, and submitit's warning signal SIGNAL_S before that, so neither
  cuts a cell short of what it was promised;
- sbatch refusing the array (more memory than a node has, no such partition) is bad
  input: exit 2 with sbatch's reason, nothing ran;
- Ctrl-C or SIGTERM while waiting cancels every task of the sweep still queued or
  running, and waits until the cluster has let them go, before the command returns.
"""

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, setup_globals

from sweep import pool, usage

log = logging.getLogger(__name__)

MARGIN_MIN = 1  # SLURM's time limit: this many minutes past timeout_min
SIGNAL_S = 30  # submitit's warning signal: this long before SLURM's limit
MIN_TIMEOUT_MIN = 1  # SLURM counts whole minutes
POLL_S = 2.0  # how often the queue is read while cells run
LOST_S = 10.0  # out of the queue this long without a result: the task has ended
CANCEL_WAIT_S = 60.0  # after scancel, the longest wait for the tasks to leave
EXECUTOR = "slurm"
ASKED = ("partition", "mem_gb", "cpus_per_task", "timeout_min")  # named in a refusal


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], first: int) -> list:
    """Submit the jobs as one array, wait for them; one ``JobReturn`` per job, in
    order (never raises for a job: a cell SLURM ended has ``status=failed``)."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    jobs = [pool.Job(first + i, tuple(o)) for i, o in enumerate(job_overrides)]
    timeout_s = cell_seconds(launcher.params["timeout_min"],
                             launcher.config.get("cell_timeout_s"))  # fmt: skip
    args = [
        ([*one.overrides, f"cell_timeout_s={timeout_s:g}"], "hydra.sweep.dir",
         one.idx, f"job_id_for_{one.idx}", Singleton.get_state())
        for one in jobs
    ]  # fmt: skip
    tasks = _submit(launcher, args)
    arrays = sorted({task.job_id.split("_")[0] for task in tasks})
    log.info("%d cells submitted as SLURM job array %s", len(jobs), ", ".join(arrays))
    try:
        with _sigterm_interrupts():
            return _wait(launcher, jobs, tasks)
    except BaseException:  # Ctrl-C, SIGTERM, an error: nothing stays on the cluster
        cancel(arrays)
        raise


def cell_seconds(timeout_min: float, cell_timeout_s: float | None) -> float:
    """A cell's own time limit on SLURM: ``timeout_min`` minutes, or less if
    ``cell_timeout_s`` says so."""
    limit = 60.0 * timeout_min
    return min(limit, cell_timeout_s) if cell_timeout_s else limit


def sbatch_params(params: dict) -> dict:
    """The launcher's keys as submitit takes them, with the time SLURM is asked for:
    ``timeout_min`` + MARGIN_MIN, its warning SIGNAL_S before the end."""
    params = dict(params)
    params["timeout_min"] = int(params["timeout_min"]) + MARGIN_MIN
    params["signal_delay_s"] = SIGNAL_S
    return params


def _submit(launcher: Any, args: list) -> list:
    """The tasks of one sbatch array of ``launcher`` (its ``__call__`` per job);
    SystemExit(2) with sbatch's reason if sbatch refuses it."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    params = sbatch_params(launcher.params)
    executor = submitit.AutoExecutor(
        cluster=EXECUTOR, folder=params.pop("submitit_folder"),
        **{f"{EXECUTOR}_max_num_timeout": params.pop("max_num_timeout", 0)},
    )  # fmt: skip
    common = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{
        key if key in common else f"{EXECUTOR}_{key}": value
        for key, value in params.items()
    })  # fmt: skip
    try:
        return executor.map_array(launcher, *zip(*args, strict=True))
    except submitit.core.utils.FailedJobError as err:
        asked = ", ".join(f"hydra.launcher.{key}={launcher.params.get(key)}"
                          for key in ASKED)  # fmt: skip
        usage.refuse([f"{asked}: sbatch refused the cells: {reason(err)}"])


def reason(err: BaseException) -> str:
    """sbatch's own words from submitit's error: its ``sbatch: error:`` lines."""
    lines = [line.split("error:", 1)[1].strip() for line in str(err).splitlines()
             if "sbatch: error:" in line]  # fmt: skip
    return "; ".join(dict.fromkeys(lines)) or str(err).strip().splitlines()[0]


def _wait(launcher: Any, jobs: list[pool.Job], tasks: list) -> list[JobReturn]:
    """Collect each task as it ends, in any order: its cell's return, or its failure
    as SLURM reported it; one line per cell as it ends, a heartbeat between."""
    progress = pool.Progress(len(jobs))
    pending = dict(zip(jobs, tasks, strict=True))
    results: dict[int, JobReturn] = {}
    gone: dict[pool.Job, float] = {}  # left the queue at, without a result yet
    beat = time.monotonic()
    while pending:
        queued = in_queue(sorted({t.job_id.split("_")[0] for t in pending.values()}))
        for one, task in list(pending.items()):
            if task.paths.result_pickle.exists():
                ret = pool.outcome(launcher, one, lambda task=task: task.results()[0])
            elif _ended(task, queued, gone.setdefault(one, time.monotonic())):
                ret = pool.failed(launcher, one, ended_error(task))
            else:
                if queued is None or task.job_id in queued:
                    gone.pop(one, None)
                continue
            results[one.idx] = progress.finished(one, ret)
            del pending[one]
        if pending:
            if time.monotonic() - beat > pool.HEARTBEAT_S:
                progress.waiting(list(pending))
                beat = time.monotonic()
            time.sleep(POLL_S)
    return [results[one.idx] for one in jobs]


def _ended(task: Any, queued: set[str] | None, left: float) -> bool:
    """Whether a task without a result has ended: out of the queue for LOST_S (a
    result file may lag on a shared file system), or so says sacct."""
    if queued is not None and task.job_id in queued:
        return False
    if queued is not None and time.monotonic() - left > LOST_S:
        return True
    return queued is None and task.done()  # squeue failed: submitit asks sacct


def ended_error(task: Any) -> str:
    """Why a task left no result, as SLURM's accounting says (``sacct``)."""
    try:
        state = task.get_info(mode="force").get("State") or "UNKNOWN"
    except Exception:  # no accounting: sacct fails
        state = "UNKNOWN"
    words = {
        "CANCELLED": "cancelled by SLURM",
        "TIMEOUT": "ran out of time: SLURM ended it at its time limit",
        "OUT_OF_MEMORY": "killed by SLURM: out of memory (hydra.launcher.mem_gb)",
        "NODE_FAIL": "its node failed",
        "PREEMPTED": "preempted by SLURM",
        "BOOT_FAIL": "its node failed to boot",
        "DEADLINE": "ran out of time: SLURM's deadline",
    }
    why = words.get(state.split()[0], "ended without a result (SLURM accounting"
                    " did not say why)")  # fmt: skip
    return f"{why} (SLURM job {task.job_id}: {state})"


def in_queue(arrays: list[str]) -> set[str] | None:
    """The array tasks still queued or running (``12_3``, one per task), or None if
    squeue cannot say (the controller does not answer)."""
    if not arrays:
        return set()
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # an array that has left the queue: "Invalid job id"
        return set() if "Invalid job id" in out.stderr else None
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def cancel(arrays: list[str]) -> None:
    """scancel the arrays (every task, queued or running) and wait, up to
    CANCEL_WAIT_S, until none is left on the cluster."""
    if not arrays:
        return
    log.warning("cancelling SLURM job array %s", ", ".join(arrays))
    subprocess.run(["scancel", *arrays], capture_output=True, timeout=30)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while (left := in_queue(arrays)) and time.monotonic() < deadline:
        time.sleep(POLL_S / 2)
    if left:
        log.error("SLURM still lists %s after scancel", ", ".join(sorted(left)))


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (the command killed, a job of the user's own scheduler ending) as
    Ctrl-C while the cells run: the tasks are cancelled, the resume line printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
