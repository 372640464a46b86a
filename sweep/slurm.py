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
  MARGIN_MIN later (the task's start and its files), and the task ignores SLURM's
  warning signal (``SlurmCellLauncher.__call__``: submitit would end the cell with
  "timed-out too many times", up to a minute early), so nothing cuts a cell short;
- sbatch refusing the array (more memory than a node has, no such partition) is bad
  input: exit 2 with sbatch's reason, nothing ran (a later batch of
  ``hydra.sweeper.max_batch_size``: its cells fail with the reason);
- Ctrl-C or SIGTERM from the submission on cancels every task of the sweep still
  queued or running, and waits until the cluster has let them go, before the
  command returns.
"""

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, setup_globals

from sweep import pool, usage

log = logging.getLogger(__name__)

MARGIN_MIN = 2  # SLURM's time limit: this many minutes past timeout_min
MIN_TIMEOUT_MIN = 1  # SLURM counts whole minutes
POLL_S = 2.0  # how often the queue is read while cells run
LOST_S = 10.0  # out of the queue this long without a result, SLURM saying it failed
RESULT_WAIT_S = 60.0  # ... or saying nothing, or COMPLETED: a shared file system may
# show a result file that late
CANCEL_WAIT_S = 60.0  # after scancel, the longest wait for the tasks to leave
FAILED_STATES = {
    "CANCELLED": "cancelled by SLURM",
    "TIMEOUT": "ran out of time: SLURM ended it at its time limit",
    "OUT_OF_MEMORY": "killed by SLURM: out of memory (hydra.launcher.mem_gb)",
    "NODE_FAIL": "its node failed",
    "PREEMPTED": "preempted by SLURM",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "ran out of time: SLURM's deadline",
    "FAILED": "its task failed before the cell ran (is the project installed on the"
    " node?)",
}
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
    tasks: list = []
    try:
        with _sigterm_interrupts():
            with _interrupts_held():  # a stop waits until sbatch has said the ids
                tasks, refused = _submit(launcher, args)
            if refused and first == 0:  # nothing ran: bad input
                usage.refuse([refused])
            if refused:  # a later batch: its cells fail with the reason
                log.error("%s", refused)
                return [pool.failed(launcher, one, refused) for one in jobs]
            log.info("%d cells submitted to SLURM as job array %s", len(jobs),
                     ", ".join(array_ids(tasks)))  # fmt: skip
            return _wait(launcher, jobs, tasks)
    except BaseException:  # Ctrl-C, SIGTERM, an error: nothing stays on the cluster
        with _interrupts_held():
            cancel(array_ids(tasks))
        raise


def in_task() -> None:
    """In a task, before its cell: SLURM's warning signal ignored (submitit's handler
    would end the cell "timed-out too many times", up to a minute before SLURM's
    limit); the cell's own limit ends it first."""
    signal.signal(submitit_signal(), signal.SIG_IGN)


def submitit_signal() -> signal.Signals:
    """The signal SLURM sends before a task's time limit, as submitit asks (USR2)."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    return SlurmJobEnvironment._usr_sig()


def array_ids(tasks: list) -> list[str]:
    """The job arrays of submitit's tasks (``12`` of ``12_3``)."""
    return sorted({task.job_id.split("_")[0] for task in tasks})


def cell_seconds(timeout_min: float, cell_timeout_s: float | None) -> float:
    """A cell's own time limit on SLURM: ``timeout_min`` minutes, or less if
    ``cell_timeout_s`` says so."""
    limit = 60.0 * timeout_min
    return min(limit, cell_timeout_s) if cell_timeout_s else limit


def sbatch_params(params: dict) -> dict:
    """The launcher's keys as submitit takes them, with the time SLURM is asked for:
    ``timeout_min`` + MARGIN_MIN (its warning signal before the end is ignored:
    ``in_task``)."""
    return dict(params) | {"timeout_min": int(params["timeout_min"]) + MARGIN_MIN}


def _submit(launcher: Any, args: list) -> tuple[list, str]:
    """The tasks of one sbatch array of ``launcher`` (its ``__call__`` per job),
    and "" ; or no tasks and why sbatch refused them (its words, and what was
    asked)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    params = sbatch_params(launcher.params)
    executor = submitit.AutoExecutor(
        cluster=EXECUTOR, folder=launch_folder(params.pop("submitit_folder")),
        **{f"{EXECUTOR}_max_num_timeout": params.pop("max_num_timeout", 0)},
    )  # fmt: skip
    common = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{
        key if key in common else f"{EXECUTOR}_{key}": value
        for key, value in params.items()
    })  # fmt: skip
    try:
        return executor.map_array(launcher, *zip(*args, strict=True)), ""
    except submitit.core.utils.FailedJobError as err:
        asked = ", ".join(f"hydra.launcher.{key}={launcher.params.get(key)}"
                          for key in ASKED)  # fmt: skip
        more = (f" (SLURM asked for {int(launcher.params['timeout_min']) + MARGIN_MIN}"
                f" minutes: timeout_min + {MARGIN_MIN}; and with more cells than the"
                " cluster's MaxArraySize, set hydra.sweeper.max_batch_size)")
        return [], f"{asked}: sbatch refused the cells: {reason(err)}{more}"


def launch_folder(pattern: str) -> str:
    """submitit's folder for this launch's tasks (``.../.submitit/%j``): one of its
    own, so that a task never reads an earlier launch's result (SLURM reuses job
    ids when a cluster's state is reset)."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return pattern.replace("%j", f"{stamp}/%j") if "%j" in pattern else (
        f"{pattern}/{stamp}")  # fmt: skip


def reason(err: BaseException) -> str:
    """sbatch's own words from submitit's error: its ``sbatch: error:`` lines."""
    lines = [line.split("error:", 1)[1].strip() for line in str(err).splitlines()
             if "sbatch: error:" in line]  # fmt: skip
    return "; ".join(dict.fromkeys(lines)) or str(err).strip().splitlines()[0]


def _wait(launcher: Any, jobs: list[pool.Job], tasks: list) -> list[JobReturn]:
    """Collect each task as it ends, in any order: its cell's return, or its failure
    as SLURM reported it; one line per cell as it ends, a heartbeat between (with
    why SLURM keeps tasks waiting)."""
    progress = pool.Progress(len(jobs))
    pending = dict(zip(jobs, tasks, strict=True))
    results: dict[int, JobReturn] = {}
    gone: dict[pool.Job, float] = {}  # when it left the queue, without a result
    beat = time.monotonic()
    while pending:
        arrays = array_ids(list(pending.values()))
        queued, states = in_queue(arrays), None
        for one, task in list(pending.items()):
            if _has_result(task):
                ret = pool.outcome(launcher, one, partial(_returned, task))
            elif queued is not None and task.job_id in queued:
                gone.pop(one, None)
                continue
            else:
                states = sacct_states(arrays) if states is None else states
                state = states.get(task.job_id, "UNKNOWN")
                if not _ended(state, gone.setdefault(one, time.monotonic())):
                    continue
                ret = pool.failed(launcher, one, ended_error(task.job_id, state))
            results[one.idx] = progress.finished(one, ret)
            del pending[one]
        if pending:
            if time.monotonic() - beat > pool.HEARTBEAT_S:
                progress.waiting(list(pending))
                if waiting := pending_reasons(arrays):
                    log.info("waiting in SLURM's queue: %s", waiting)
                beat = time.monotonic()
            time.sleep(POLL_S)
    return [results[one.idx] for one in jobs]


def _has_result(task: Any) -> bool:
    """Whether the task's result file is there (its folder read afresh: a shared
    file system may cache what it held)."""
    try:
        return task.paths.result_pickle.name in os.listdir(task.paths.folder)
    except OSError:
        return False


def _returned(task: Any) -> JobReturn:
    """The task's JobReturn; an error outside the cell (the task's own Python, Hydra
    composing its config) raised as the error it was, its trace's last line."""
    from submitit.core.utils import pickle_load

    outcome, value = pickle_load(task.paths.result_pickle)
    if outcome == "success":
        return value
    last = str(value).strip().splitlines()[-1] if str(value).strip() else "an error"
    raise TaskError(f"{last} (SLURM job {task.job_id}; its log: {task.paths.stderr})")


class TaskError(Exception):
    """A task that raised outside its cell (its trace is in its SLURM log)."""


def _ended(state: str, left: float) -> bool:
    """Whether a task out of the queue since ``left`` without a result has ended:
    at once if SLURM says it failed (LOST_S: its result may come a little late),
    RESULT_WAIT_S if SLURM says it completed or nothing (no accounting)."""
    wait = LOST_S if state.split()[0] in FAILED_STATES else RESULT_WAIT_S
    return time.monotonic() - left > wait


def ended_error(job_id: str, state: str) -> str:
    """Why a task left no result, as SLURM's accounting says."""
    why = FAILED_STATES.get(state.split()[0], "ended without a result (SLURM"
                            " accounting did not say why)")  # fmt: skip
    return f"{why} (SLURM job {job_id}: {state})"


def _slurm(*command: str) -> subprocess.CompletedProcess | None:
    """A SLURM client command's output, None if it could not run; its own session,
    so a Ctrl-C at the terminal does not reach it."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30,
                              start_new_session=True)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None


def in_queue(arrays: list[str]) -> set[str] | None:
    """The array tasks still queued or running (``12_3``, one per task), or None if
    squeue cannot say (the controller does not answer)."""
    if not arrays:
        return set()
    out = _slurm("squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays))
    if out is None:
        return None
    if out.returncode != 0:  # an array that has left the queue: "Invalid job id"
        return set() if "Invalid job id" in out.stderr else None
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def sacct_states(arrays: list[str]) -> dict[str, str]:
    """Each task's state in SLURM's accounting (``12_3`` -> ``CANCELLED by 0``);
    {} without accounting."""
    out = _slurm("sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(arrays))
    if out is None or out.returncode != 0:
        return {}
    pairs = (line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)
    return {job: state.strip() for job, state in pairs}


def pending_reasons(arrays: list[str]) -> str:
    """Why SLURM holds the arrays' pending tasks ("3 tasks: Resources"), if any."""
    out = _slurm("squeue", "-h", "-r", "-t", "PD", "-o", "%r", "-j", ",".join(arrays))
    if out is None or out.returncode != 0 or not out.stdout.split():
        return ""
    counts: dict[str, int] = {}
    for why in out.stdout.split():
        counts[why] = counts.get(why, 0) + 1
    return ", ".join(f"{n} tasks: {why}" for why, n in counts.items())


def cancel(arrays: list[str]) -> None:
    """scancel the arrays (every task, queued or running) and wait, up to
    CANCEL_WAIT_S, until the queue holds none of them."""
    if not arrays:
        return
    log.warning("cancelling SLURM job array %s", ", ".join(arrays))
    _slurm("scancel", *arrays)
    deadline = time.monotonic() + CANCEL_WAIT_S
    left = in_queue(arrays)
    while (left is None or left) and time.monotonic() < deadline:
        time.sleep(POLL_S / 2)
        left = in_queue(arrays)
    if left or left is None:
        log.error("SLURM may still hold tasks of %s after scancel: check squeue",
                  ", ".join(arrays))  # fmt: skip


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (the command killed, a job of the user's own scheduler ending) as
    Ctrl-C while the cells run: the tasks are cancelled, the resume line printed."""
    if not _main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _interrupts_held():
    """Ctrl-C and SIGTERM held back (delivered after) while sbatch returns the
    array's id, or while it is cancelled: never an array nobody knows of."""
    if not _main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
