"""``python -m analysis [SWEEP_DIR]``: tables and figures of a sweep folder.

Without SWEEP_DIR: the newest sweep in ``outputs/sweeps`` of this checkout (never
``outputs/reference``). Exit 0 when done; 2 with one line on stderr when the folder
does not exist or holds no results.
"""

import argparse
import logging
import sys
from pathlib import Path

from analysis import find_latest_sweep, run
from analysis.aggregate import NoResultsError
from sweep import OUTPUTS_DIR

BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    """Analyse one sweep folder; return the exit code."""
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    sweep_dir = args.sweep_dir or find_latest_sweep(OUTPUTS_DIR)
    if sweep_dir is None:
        return _fail(OUTPUTS_DIR / "sweeps", "no sweep folder in it")
    if not sweep_dir.is_dir():
        return _fail(sweep_dir, "does not exist or is not a directory")
    try:
        out = run(sweep_dir)
    except NoResultsError as err:  # no cell folder, or every metrics file unreadable
        return _fail(sweep_dir, f"{err} (not a sweep folder, or no cell finished)")
    sys.stdout.write(f"figures and tables in {out}\n")
    return 0


def _fail(path: Path, what: str) -> int:
    sys.stderr.write(f"error: {path}: {what}\n")
    return BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
