"""Cells in parallel on this machine's cores, each failure confined to its own cell.

The ``pool`` launcher (``conf/hydra/launcher/pool.yaml``, the default) runs one cell
per worker process of joblib's loky pool, with at most ``n_jobs`` cells in flight, so
the parent always knows which cells are running. When a worker dies (killed by the
kernel for memory, by a signal, or crashed), loky ends every worker and fails every
cell in flight. Those cells then run again one at a time, each alone in a fresh
worker: a cell that kills its worker alone is the culprit and becomes ``failed``,
with the signal in its error; the others finish. The rest of the grid goes on, on a
fresh pool. An error that escapes a cell's own ``try`` (Hydra writing the cell's
``.hydra/`` files on a full disk, say) fails that cell the same way.

Workers never outlive the sweep: each one exits when its parent process is gone.
With ``n_jobs=1`` the cells run in the parent process, one after another, as with
joblib (nothing is isolated then).
"""

import logging
import os
import re
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.process_executor import BrokenProcessPool
from omegaconf import open_dict

from sweep import config, folders

log = logging.getLogger(__name__)

WATCH_PARENT_S = 0.5  # how often a worker checks that its parent is alive
HEARTBEAT_S = 30.0  # with no cell finished for this long, say which are running


@dataclass(frozen=True)
class Job:
    """One cell's job: its index in the sweep and its Hydra overrides."""

    idx: int
    overrides: tuple[str, ...]


class Progress:
    """One line per finished cell: ``[k/N] <its line> | elapsed, about T left``; and
    a heartbeat naming the running cells when none has finished for HEARTBEAT_S."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.monotonic()

    def finished(self, one: Job, ret: JobReturn) -> JobReturn:
        self.done += 1
        status = ret._return_value if isinstance(ret._return_value, dict) else {}
        line = status.get("line") or f"{status.get('status')} {cell_of(one)}"
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        log.info("[%d/%d] %s | %s elapsed, about %s left", self.done, self.total,
                 line, clock(elapsed), clock(left))  # fmt: skip
        return ret

    def waiting(self, running: list[Job]) -> None:
        names = ", ".join(cell_of(one) for one in running)
        log.info("[%d/%d] still running (%s elapsed): %s", self.done, self.total,
                 clock(time.monotonic() - self.start), names)  # fmt: skip


def clock(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``12 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def cell_of(one: Job) -> str:
    """The cell folder a job's overrides name (the sweeper sets hydra.sweep.subdir)."""
    for line in reversed(one.overrides):
        key, _, value = line.partition("=")
        if key == "hydra.sweep.subdir":
            return value.strip("'").replace("\\'", "'")
    return " ".join(one.overrides)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], first: int) -> list:
    """Run the jobs; return one ``JobReturn`` per job, in order (never raises for a
    job: a cell that could not run has ``status=failed`` in its folder)."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    jobs = [Job(first + i, tuple(o)) for i, o in enumerate(job_overrides)]
    n_workers = workers(launcher.n_jobs, len(jobs))
    log.info("running %d cells, %d at a time", len(jobs), n_workers)
    context = (launcher.hydra_context, launcher.config, launcher.task_function,
               Singleton.get_state())  # fmt: skip
    results: dict[int, JobReturn] = {}
    progress = Progress(len(jobs))
    if n_workers == 1 and launcher.n_jobs == 1:  # joblib's meaning: in this process
        for one in jobs:
            ret = outcome(launcher, one, partial(execute, one, *context))
            results[one.idx] = progress.finished(one, ret)
        return [results[j.idx] for j in jobs]
    queue = deque(jobs)
    while queue:
        in_flight, why = _run(queue, n_workers, context, launcher, results, progress)
        if len(in_flight) > 1:
            log.warning("a worker died with %d cells in flight: each runs again alone"
                        " (%s)", len(in_flight), why)  # fmt: skip
        for one in in_flight:  # run each alone to find the culprit
            alone = len(in_flight) > 1 and not _finished(*_cell(launcher, one))
            again, why_alone = (
                _run(deque([one]), 1, context, launcher, results, progress)
                if alone
                else ([one], why)
            )
            if again:  # failed() keeps a cell that finished before its worker died
                why_alone = f"the worker died: {why_alone}"
                ret = failed(launcher, one, why_alone)
                results[one.idx] = progress.finished(one, ret)
    return [results[j.idx] for j in jobs]


def workers(n_jobs: int, n_cells: int) -> int:
    """Cells that run at once: joblib's meaning of n_jobs (-1 all cores, -2 all but
    one, ...), never more than there are cells."""
    cores = os.cpu_count() or 1
    n = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, min(n, n_cells))


def _run(
    queue: deque, n_workers: int, context, launcher, results, progress: Progress
) -> tuple[list, str]:
    """Run the queue on a fresh pool, at most ``n_workers`` cells in flight.

    Returns the jobs that were in flight when a worker died, and why it died
    (nothing if the queue ran out); the jobs not yet started stay in the queue.
    """
    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=init_worker,
                               initargs=(os.getpid(),))  # fmt: skip
    running: dict = {}
    broken: list[Job] = []
    why = ""
    try:
        while (queue or running) and not broken:
            while queue and len(running) < n_workers:
                one = queue.popleft()
                running[pool.submit(execute, one, *context)] = one
            done, _ = wait(running, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            if not done:
                progress.waiting(list(running.values()))
            for future in done:
                one = running.pop(future)
                if isinstance(error := future.exception(), BrokenProcessPool):
                    broken.append(one)
                    why = died(error)
                else:
                    ret = outcome(launcher, one, future.result)
                    results[one.idx] = progress.finished(one, ret)
        broken += running.values()  # failed with the pool, not yet collected
    finally:
        pool.shutdown(wait=not broken, kill_workers=bool(broken) or bool(running))
    return sorted(broken, key=lambda j: j.idx), why


def outcome(launcher, one: Job, get) -> JobReturn:
    """The job's return, or its failure recorded in its cell if it raised (outside
    the cell's own try: Hydra's I/O) or its task did."""
    try:
        ret = get()
    except Exception as err:
        return failed(launcher, one, _line(err), traceback.format_exc())
    if ret.status is JobStatus.FAILED:
        err = ret._return_value
        trace = "".join(traceback.format_exception(err))
        return failed(launcher, one, _line(err), trace)
    return ret


def _line(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


def died(err: BaseException) -> str:
    """A dead worker's exit, from loky's message: the signal, and its likely cause."""
    codes = re.findall(r"\((-?\d+)\)", str(err).split("exit codes", 1)[-1])
    if not codes:
        return "its process ended abruptly"
    code = int(codes[0])
    if code >= 0:
        return f"its process exited with code {code}"
    name = signal.Signals(-code).name
    cause = " (the likely cause: it ran out of memory)" if name == "SIGKILL" else ""
    return f"its process was killed by {name}{cause}"


def failed(launcher, one: Job, error: str, trace: str | None = None) -> JobReturn:
    """Record in its folder that a cell could not run (unless it finished before its
    worker died: then it is kept); its ``JobReturn``."""
    from sweep import job  # the only module that writes results

    status = {"status": "failed", "error": error, "traceback": trace}
    try:
        cell_dir, flat = _cell(launcher, one)
        if _finished(cell_dir, flat):
            status = folders.read_status(cell_dir)
            log.warning("%s finished before its worker died (%s): kept", cell_dir.name,
                        error)  # fmt: skip
        else:
            status = job.record_failure(flat, cell_dir, sweep=cell_dir.parent.name,
                                        error=error, trace=trace)  # fmt: skip
    except Exception as err:  # e.g. a full disk: the summary counts it as missing
        log.error("failed %s: %s; its status could not be written (%s: %s)",
                  " ".join(one.overrides), error, type(err).__name__, err)  # fmt: skip
    # COMPLETED: the failure is the cell's result (a FAILED return would re-raise)
    return JobReturn(overrides=list(one.overrides), status=JobStatus.COMPLETED,
                     _return_value=status)  # fmt: skip


def _cell(launcher, one: Job) -> tuple[Path, dict]:
    """A job's cell folder and configuration, composed as its worker composes them."""
    loader = launcher.hydra_context.config_loader
    cfg = loader.load_sweep_config(launcher.config, list(one.overrides))
    flat = config.normalise(config.flatten(cfg))
    return Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir), flat


def _finished(cell_dir: Path, flat: dict) -> bool:
    """Whether a cell is finished and intact (its worker died after it)."""
    return folders.cell_state(cell_dir, config.fingerprint(flat))[0] == "done"


def execute(one: Job, hydra_context, config_, task_function, singleton_state):
    """One job in a worker (or in this process): compose its config, run the cell."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(
        config_, list(one.overrides)
    )
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{one.idx}"
        sweep_config.hydra.job.num = one.idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def init_worker(parent: int) -> None:
    """In a worker: leave Ctrl-C to the sweep's process (it stops the workers and
    says how to resume), and exit as soon as that process is gone (SIGKILL,
    SIGTERM), so that no worker outlives it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_PARENT_S)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
