"""What ``python -m sweep`` tells a user about a command before and after it runs:
its help, a dry run (the cells, how many are finished, about how long the rest
takes), how to resume a sweep, and one line when it is interrupted."""

import json
import re
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from omegaconf import OmegaConf

from sweep import CONF_DIR, OUTPUTS_DIR, budget, folders, schema
from sweep.grid import PRESETS, BadInput, Cell, expand_cells, options

SHOWN = 20  # cells a dry run lists by name

USAGE = """\
python -m sweep: sparse features compressed into fewer neurons, then recovered; any
key swept as a grid, run in parallel, each cell's results in its own folder.

usage:
  python -m sweep [key=value ...]           one cell
  python -m sweep -m [key=a,b ...]          a grid: lists (a,b), range(start,stop,step),
                                            glob(*) for every method or model
  python -m sweep -m experiment=NAME ...    a preset's grid; axes given replace its axes
  python -m sweep -m ... --dry-run          the cells, how many are finished, the time
  python -m sweep resume [SWEEP_DIR]        the rest of the newest (or that) sweep
  python -m analysis [SWEEP_DIR]            the figures and report.html of a sweep
"""

EXIT_CODES = """\
exit codes: 0 every cell ok (or cached); 1 some cell failed (the summary names them);
2 bad input, nothing ran; 130 interrupted (the line printed says how to resume).
README.md has the rest; Hydra's own help: --hydra-help."""


def help_text() -> str:
    """The help of ``python -m sweep --help``."""
    keys = _config_lines()
    groups = [f"  {g}=  {', '.join(options(g))}" for g in ("method", "model")]
    return "\n".join([
        USAGE, "presets (experiment=NAME), with their cells:", *_presets(), "",
        "keys (conf/config.yaml; S= and density= are sparsity= in the paper's words):",
        *keys, "", "groups (parameters: method.alpha=..., model.steps=...; each"
        " option's own yaml in conf/ states its defaults):", *groups, "", EXIT_CODES,
    ])  # fmt: skip


def _presets() -> list[str]:
    """One line per preset: its name, the first line of its comment, its cells."""
    lines = []
    for name in options(PRESETS):
        text = (CONF_DIR / PRESETS / f"{name}.yaml").read_text().splitlines()
        about = next((t.lstrip("# ") for t in text[1:] if t.startswith("#")), "")
        about = re.split(r": |; | \(", about)[0]  # its first clause
        try:
            cells = {c.fingerprint for c in expand_cells([f"{PRESETS}={name}"], True)}
        except BadInput as bad:  # a preset edited by hand: help still helps
            lines.append(f"  {name:<19} {about} (broken: {bad.lines[0]})")
            continue
        lines.append(f"  {name:<19} {about} ({len(cells)} cells)")
    return lines


def _config_lines() -> list[str]:
    """conf/config.yaml's top-level keys with their comments."""
    lines, keep = [], False
    for line in (CONF_DIR / "config.yaml").read_text().splitlines():
        keep = (keep or line.startswith("n_features:")) and not line.startswith("hydra")
        if keep and line.strip():
            lines.append("  " + line)
    return lines


def dry_run(argv: list[str], target: Path, todo: list[Cell], done: list[Cell]) -> str:
    """What a command would run: its cells, how many are finished, about how long."""
    from sweep import pipeline  # pandas: only where a dry run needs it
    from sweep.pool import clock, workers

    parallel = workers(_n_jobs(argv), len(todo)) if todo else 1
    trained, seconds = set(), 0.0
    for cell in todo:  # a costly model is built once, shared by its methods' cells
        keys = pipeline.model_keys(cell.flat) | {"seed": cell.flat["seed"]}
        model = json.dumps(keys, sort_keys=True, default=str)
        seconds += budget.estimate_seconds(cell.flat, train=model not in trained)
        trained.add(model)
    seconds /= parallel
    head = (f"dry run: {_count(len(todo) + len(done), 'cell')} in {target}:"
            f" {len(done)} finished (cached), {len(todo)} to run, about"
            f" {clock(seconds)} on {_count(parallel, 'core')} (a rough estimate from"
            " the cells' sizes)")  # fmt: skip
    names = [f"  {cell.name}" for cell in todo[:SHOWN]]
    more = [f"  ... and {len(todo) - SHOWN} more"] if len(todo) > SHOWN else []
    return "\n".join([head, *names, *more, "nothing ran (--dry-run)"])


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _n_jobs(argv: list[str]) -> int:
    found = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.launcher.n_jobs=")]
    return int(found[-1]) if found else -1


def resume_argv(path: str | None) -> list[str]:
    """The command that made a sweep (its multirun.yaml), on that sweep's folder:
    the newest under outputs/sweeps without ``path``."""
    sweep_dir = Path(path) if path else folders.latest_sweep(OUTPUTS_DIR)
    if sweep_dir is None or not (sweep_dir / "multirun.yaml").is_file():
        where = sweep_dir or OUTPUTS_DIR / "sweeps"
        raise FileNotFoundError(f"{where}: no sweep to resume (no multirun.yaml)")
    made = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides
    settings = [o for o in made.hydra
                if not re.match(r"hydra\.(mode|sweep\.dir)=", o)]  # fmt: skip
    return ["-m", *made.task, *settings, f"hydra.sweep.dir={sweep_dir.absolute()}"]


def interrupted(argv: list[str], target: Path, multirun: bool) -> str:
    """One line when a command is interrupted: how far it got, how to go on."""
    if not multirun:
        again = shlex.join(["python", "-m", "sweep", *argv])
        return f"interrupted, nothing kept; run it again with: {again}\n"
    statuses = folders.cell_statuses(target)
    done = sum(s.get("status") in schema.DONE for s in statuses.values())
    again = shlex.join(["python", "-m", "sweep", "resume", str(target.absolute())])
    return f"interrupted: {done} of {len(statuses)} cells done; resume with: {again}\n"


def run_table(target: Path) -> str:
    """A single run's folder and its metrics, a row per trial and their mean."""
    import pandas as pd  # only once a single run has finished

    try:
        rows = pd.read_parquet(target / schema.METRICS_FILE)
    except Exception:  # a run refused before it wrote anything: its log said why
        return ""
    if not rows["status"].eq("ok").all():  # its log has the traceback
        return f"results in {target}: failed: {rows['error'].iloc[0]}\n"
    shown = [c for c in schema.SHOWN_METRICS if c in rows and rows[c].notna().any()]
    table = rows.set_index("trial")[shown]
    table.loc["mean"] = table.mean()
    return f"results in {target}:\n{table.to_string(float_format='{:.4g}'.format)}\n"


def bad_input(lines: list[str]) -> str:
    """The message of bad input: nothing ran, one line per problem."""
    return "error: bad input, nothing ran:\n" + "".join(f"  {line}\n" for line in lines)


def refuse(lines: list[str]) -> NoReturn:
    """Bad input found once the sweep has started (inside Hydra): its message, and
    exit 2, through Hydra (SystemExit is not an error it reports)."""
    sys.stderr.write(bad_input(lines))
    raise SystemExit(2)
