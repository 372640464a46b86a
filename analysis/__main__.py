"""``python -m analysis [SWEEP_DIR]``: tables and figures of a sweep folder.

Without SWEEP_DIR: the newest sweep in ``outputs/sweeps`` of this checkout (never
``outputs/reference``). Exit 0 when done; 2 with one line on stderr when the folder
does not exist or holds no results.
"""

import argparse
import logging
import sys
from pathlib import Path

import analysis
from analysis import find_latest_sweep, run
from analysis.aggregate import NoResultsError, find_metric_files
from sweep.schema import METRICS_FILE

OUTPUTS_DIR = Path(analysis.__file__).resolve().parents[1] / "outputs"
BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    """Analyse one sweep folder; return the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    sweep_dir = args.sweep_dir or find_latest_sweep(OUTPUTS_DIR)
    if sweep_dir is None:
        return _fail(OUTPUTS_DIR / "sweeps", "no sweep folder in it")
    problem = _problem(sweep_dir)
    if problem:
        return _fail(sweep_dir, problem)
    try:
        out = run(sweep_dir)
    except NoResultsError as err:  # every metrics file unreadable
        return _fail(sweep_dir, str(err))
    sys.stdout.write(f"figures and tables in {out}\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Phase diagrams, capacity plots and heatmaps of a sweep folder, "
        "written into SWEEP_DIR/analysis.",
    )
    parser.add_argument(
        "sweep_dir",
        nargs="?",
        type=Path,
        help="a sweep folder (default: the newest in outputs/sweeps)",
    )
    return parser


def _problem(sweep_dir: Path) -> str | None:
    """What makes ``sweep_dir`` unusable, or None."""
    if not sweep_dir.exists():
        return "does not exist"
    if not sweep_dir.is_dir():
        return "is not a directory"
    if not find_metric_files(sweep_dir):
        return f"no {METRICS_FILE} under it (not a sweep folder, or no cell finished)"
    return None


def _fail(path: Path, what: str) -> int:
    sys.stderr.write(f"error: {path}: {what}\n")
    return BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
