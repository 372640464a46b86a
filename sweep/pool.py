"""Cells in parallel on this machine's cores, each failure confined to its own cell.

The ``pool`` launcher (``conf/hydra/launcher/pool.yaml``, the default) runs cells in
the worker processes of joblib's loky pool, with at most ``n_jobs`` batches in flight,
so the parent always knows which cells are running. A batch is one cell, unless the
cells so far took under BATCH_S / 2 each: then a worker is given about BATCH_S of
them at once (``Progress.batch_size``), as joblib batches short tasks, so that the
round trip to the parent stays small beside the work. When a worker dies (killed by the
kernel for memory, by a signal, or crashed), loky ends every worker and fails every
cell in flight. Those cells then run again one at a time, each alone in a fresh
worker: a cell that kills its worker alone is the culprit and becomes ``failed``,
with the signal in its error; the others finish. The rest of the grid goes on, on a
fresh pool. An error that escapes a cell's own ``try`` (writing the cell's
``.hydra/`` files on a full disk, say) fails that cell the same way.

A cell costs what its science costs: a worker does not compose the cell's
configuration with Hydra nor run Hydra's per-job machinery (together about 0.1 CPU-s
a cell, more than a small cell's work). It builds the configuration from the cell's
overrides as the command's check did (``sweep.grid``, composing once per preset and
group choice), then does what Hydra's job would: the cell's folder, its
``.hydra/config.yaml`` and ``.hydra/overrides.yaml`` (the sweep's Hydra settings are
in its ``multirun.yaml``), its log file ``cell.log`` (``hydra.job_logging``'s file
handler), and ``sweep.job.run``. Hydra's per-job callbacks and ``hydra.job.env_set``
are not applied (none is configured).

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

import yaml
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from joblib.externals.loky import ProcessPoolExecutor
from joblib.externals.loky.process_executor import BrokenProcessPool
from omegaconf import OmegaConf

from sweep import config, folders, grid

log = logging.getLogger(__name__)

WATCH_PARENT_S = 0.5  # how often a worker checks that its parent is alive
HEARTBEAT_S = 30.0  # with no cell finished for this long, say which are running
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS",
               "NUMEXPR_NUM_THREADS")  # fmt: skip
BATCH_S = 0.5  # the work a batch of small cells carries (one IPC round trip)
MAX_BATCH = 64
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, where built


@dataclass(frozen=True)
class Job:
    """One cell's job: its index in the sweep and its Hydra overrides."""

    idx: int
    overrides: tuple[str, ...]

    @property
    def task(self) -> list[str]:
        """Its overrides without the folder the sweeper set."""
        return [o for o in self.overrides if not o.startswith(grid.SUBDIR + "=")]


@dataclass(frozen=True)
class Setting:
    """What a worker needs besides its jobs: where the sweep is, how a cell logs."""

    sweep_dir: Path
    log_name: str  # <hydra.job.name>.log, in the cell's folder
    output_subdir: str | None  # Hydra's ``.hydra`` (None: not written)
    job_logging: dict  # hydra.job_logging without its file handler: the console
    file_format: str | None  # that file handler's format
    verbose: Any  # hydra.verbose

    @classmethod
    def of(cls, hydra_cfg: Any) -> "Setting":
        logging_cfg = OmegaConf.to_container(hydra_cfg.job_logging)
        file_handler = logging_cfg.get("handlers", {}).pop("file", {})
        formatter = logging_cfg.get("formatters", {}).get(file_handler.get("formatter"))
        root = logging_cfg.get("root", {})
        root["handlers"] = [h for h in root.get("handlers", []) if h != "file"]
        verbose = hydra_cfg.verbose  # a bool, a logger's name or a list of them
        if OmegaConf.is_config(verbose):
            verbose = OmegaConf.to_container(verbose)
        return cls(Path(hydra_cfg.sweep.dir), f"{hydra_cfg.job.name}.log",
                   hydra_cfg.output_subdir, logging_cfg,
                   (formatter or {}).get("format"), verbose)  # fmt: skip


class Progress:
    """One line per finished cell: ``[k/N] <its line> | elapsed, about T left``; and
    a heartbeat naming the running cells when none has finished for HEARTBEAT_S."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.seconds: list[float] = []  # of the cells that finished

    def finished(self, one: Job, ret: JobReturn) -> JobReturn:
        self.done += 1
        status = ret._return_value if isinstance(ret._return_value, dict) else {}
        if isinstance(status.get("seconds"), float):
            self.seconds.append(status["seconds"])
        line = status.get("line") or f"{status.get('status')} {cell_of(one)}"
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        log.info("[%d/%d] %s | %s elapsed, about %s left", self.done, self.total,
                 line, clock(elapsed), clock(left))  # fmt: skip
        return ret

    def batch_size(self, queued: int, n_workers: int) -> int:
        """Cells a worker is given at once: one, unless the cells so far took under
        BATCH_S / 2 each; then about BATCH_S of them (as joblib batches short tasks),
        at most MAX_BATCH, and never more than an equal share of the queue."""
        if not self.seconds:
            return 1
        mean = sum(self.seconds[-100:]) / len(self.seconds[-100:])
        if mean >= BATCH_S / 2:
            return 1
        size = min(MAX_BATCH, round(BATCH_S / max(mean, 1e-3)), -(-queued // n_workers))
        return max(1, size)

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
    context = (Setting.of(launcher.config.hydra),)
    results: dict[int, JobReturn] = {}
    progress = Progress(len(jobs))
    if n_workers == 1 and launcher.n_jobs == 1:  # joblib's meaning: in this process
        configure_log(OmegaConf.create(context[0].job_logging), context[0].verbose)
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


def worker_env(n_workers: int) -> dict[str, str]:
    """As joblib gives its workers: native thread pools (BLAS, OpenMP) of the
    cores / the workers threads each, unless this process's environment sets them
    (a cell limits itself to one thread while it runs; this also covers the
    moments between, where idle BLAS threads would spin against the other cells)."""
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    return {var: os.environ.get(var, threads) for var in THREAD_VARS}


def _run(
    queue: deque, n_workers: int, context, launcher, results, progress: Progress
) -> tuple[list, str]:
    """Run the queue on a fresh pool, at most ``n_workers`` cells in flight.

    Returns the jobs that were in flight when a worker died, and why it died
    (nothing if the queue ran out); the jobs not yet started stay in the queue.
    """
    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=init_worker,
                               initargs=(os.getpid(), *context),
                               env=worker_env(n_workers))  # fmt: skip
    running: dict = {}  # future -> its batch of jobs
    broken: list[Job] = []
    why = ""
    try:
        while (queue or running) and not broken:
            while queue and len(running) < n_workers:
                size = progress.batch_size(len(queue), n_workers)
                batch = [queue.popleft() for _ in range(size)]
                running[pool.submit(execute_batch, batch, *context)] = batch
            done, _ = wait(running, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            if not done:
                progress.waiting([one for batch in running.values() for one in batch])
            for future in done:
                batch = running.pop(future)
                if isinstance(error := future.exception(), BrokenProcessPool):
                    broken += batch
                    why = died(error)
                    continue
                for one, got in zip(batch, future.result(), strict=True):
                    ret = outcome(launcher, one, lambda got=got: got)
                    results[one.idx] = progress.finished(one, ret)
        broken += [one for batch in running.values() for one in batch]  # not collected
    finally:
        pool.shutdown(wait=False, kill_workers=bool(broken) or bool(running))
    return sorted(broken, key=lambda j: j.idx), why


def outcome(launcher, one: Job, get) -> JobReturn:
    """The job's return (a cell's status, or a Hydra job's ``JobReturn``), or its
    failure recorded in its cell if it raised outside the cell's own try (writing
    its folder) or its task did."""
    try:
        ret = get()
    except Exception as err:
        return failed(launcher, one, _line(err), traceback.format_exc())
    if isinstance(ret, Raised):  # in a worker, outside the cell's own try
        return failed(launcher, one, ret.line, ret.trace)
    if isinstance(ret, dict):  # a status, as the cell's folder has it
        return JobReturn(overrides=list(one.overrides), status=JobStatus.COMPLETED,
                         _return_value=ret)  # fmt: skip
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
    """A job's cell folder and configuration, as its worker builds them."""
    cell_dir, cell = cell_at(Path(launcher.config.hydra.sweep.dir), one)
    return cell_dir, cell.flat


def cell_at(sweep_dir: Path, one: Job) -> tuple[Path, grid.Cell]:
    """A job's cell folder, and its cell built from its overrides (as the command's
    check built it)."""
    return sweep_dir / cell_of(one), grid.expand_cells(one.task, multirun=False)[0]


def _finished(cell_dir: Path, flat: dict) -> bool:
    """Whether a cell is finished and intact (its worker died after it)."""
    return folders.cell_state(cell_dir, config.fingerprint(flat))[0] == "done"


@dataclass(frozen=True)
class Raised:
    """An error a worker caught outside a cell's own try: its line and its trace."""

    line: str
    trace: str


def execute_batch(batch: list[Job], setting: Setting) -> list:
    """The jobs of a batch, one after another: each one's status, or ``Raised``."""
    out: list = []
    for one in batch:
        try:
            out.append(execute(one, setting))
        except Exception as err:
            out.append(Raised(_line(err), traceback.format_exc()))
    return out


def execute(one: Job, setting: Setting) -> dict:
    """One cell in a worker (or in this process): its configuration, its folder
    with Hydra's files and its log, then the cell; its status."""
    from sweep import job  # the cell's science: numpy, pandas, sklearn

    cell_dir, cell = cell_at(setting.sweep_dir, one)
    cfg = config.nest(cell.flat) | cell.run
    cell_dir.mkdir(parents=True, exist_ok=True)
    if setting.output_subdir:  # as Hydra's job writes them
        hydra_dir = cell_dir / setting.output_subdir
        hydra_dir.mkdir(exist_ok=True)
        for name, value in (("config", cfg), ("overrides", one.task)):
            text = yaml.dump(value, Dumper=DUMPER, sort_keys=False)
            (hydra_dir / f"{name}.yaml").write_text(text)
    handler = logging.FileHandler(cell_dir / setting.log_name)
    handler.setFormatter(logging.Formatter(setting.file_format))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        return job.run(cfg, cell_dir,
                       sweep=setting.sweep_dir.name, cell=cell_dir.name,
                       cache_dir=setting.sweep_dir / folders.MODELS_DIR)  # fmt: skip
    finally:
        root.removeHandler(handler)
        handler.close()


def init_worker(parent: int, setting: Setting) -> None:
    """In a worker: Hydra's job logging (the console; each cell adds its file);
    leave Ctrl-C to the sweep's process (it stops the workers and says how to
    resume), and exit as soon as that process is gone (SIGKILL, SIGTERM), so that
    no worker outlives it."""
    configure_log(OmegaConf.create(setting.job_logging), setting.verbose)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_PARENT_S)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
