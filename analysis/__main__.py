"""``python -m analysis [SWEEP_DIR ...] [--label L ...] [--metric M] [--out DIR]``.

One sweep folder (default: the newest in ``outputs/sweeps`` of this checkout, never
``outputs/reference``): its tables and figures, written into SWEEP_DIR/analysis.
Several: their comparison (``analysis.compare``), written into ``--out`` (default
``outputs/compare/<date>_<time>`` of this checkout), each sweep named by its
``--label`` (default: its folder's name). Exit 0 when done; 2 with one line on
stderr (and the sweeps it holds, for a folder of sweeps) when a folder does not
exist, is not a sweep or holds no results, or the sweeps share no grid point.
"""

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from analysis import compare, find_latest_sweep, run
from analysis.aggregate import NoResultsError
from analysis.report import is_sweep, sweeps_inside
from sweep import OUTPUTS_DIR

BAD_INPUT = 2


class BadInput(ValueError):
    """A command line that cannot be done: its message is the line to print."""


def parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    found = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Phase diagrams, capacity plots and a report.html of a sweep "
        "folder, written into SWEEP_DIR/analysis; of several sweeps, their comparison.",
    )
    found.add_argument("sweep_dirs", nargs="*", type=Path, metavar="SWEEP_DIR",
                       help="a sweep folder (default: the newest in outputs/sweeps); "
                       "two or more: compare them")  # fmt: skip
    found.add_argument("--label", action="extend", nargs="+", default=[],
                       help="a name per compared sweep, in order: --label a b"
                       " or --label a --label b (default: their folders' names)",
                       )  # fmt: skip
    found.add_argument(
        "--metric",
        default="success_rate",
        help="the metric the comparison maps (default: success_rate)",
    )
    found.add_argument("--out", type=Path,
                       help="the comparison's folder (default: "
                       "outputs/compare/<date>_<time>)")  # fmt: skip
    return found


def main(argv: list[str] | None = None) -> int:
    """Analyse one sweep folder, or compare several; return the exit code."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        out = analyse(args) if len(args.sweep_dirs) < 2 else compare_sweeps(args)
    except (BadInput, NoResultsError, compare.NoSharedGrid) as err:
        sys.stderr.write(f"error: {err}\n")
        return BAD_INPUT
    sys.stdout.write(f"figures and tables in {out}\n")
    return 0


def analyse(args: argparse.Namespace) -> Path:
    """One sweep's analysis; BadInput for comparison options or a bad folder."""
    if args.label or args.out or args.metric != "success_rate":
        raise BadInput("--label, --metric and --out are for two or more sweeps")
    sweep_dir = (
        args.sweep_dirs[0] if args.sweep_dirs else find_latest_sweep(OUTPUTS_DIR)
    )
    if sweep_dir is None:
        raise BadInput(f"{OUTPUTS_DIR / 'sweeps'}: no sweep folder in it")
    check_sweep(sweep_dir)
    try:
        return run(sweep_dir)
    except NoResultsError as err:  # no cell folder, or every metrics file unreadable
        raise BadInput(f"{sweep_dir}: {err} (no cell finished)") from None


def check_sweep(path: Path) -> None:
    """BadInput unless ``path`` is a sweep folder; a folder of sweeps is refused
    with the list of the sweeps it holds."""
    if not path.is_dir():
        raise BadInput(f"{path}: does not exist or is not a directory")
    if is_sweep(path):
        return
    held = sweeps_inside(path)
    if not held:
        raise BadInput(f"{path}: not a sweep folder (no cell folders, grid.json or "
                       "multirun.yaml)")  # fmt: skip
    if len(held) == 1:
        raise BadInput(f"{path}: not a sweep folder; it holds one: {held[0]}")
    names = "".join(f"\n  {sweep}" for sweep in held)
    raise BadInput(
        f"{path}: holds {len(held)} sweeps, not one: analyse one of them, or compare "
        f"them with python -m analysis A B ... --label a --label b ...:{names}"
    )


def compare_sweeps(args: argparse.Namespace) -> Path:
    """The comparison of the sweeps, written into --out; BadInput for bad labels."""
    dirs = args.sweep_dirs
    for path in dirs:
        check_sweep(path)
    labels = args.label or default_labels(dirs)
    if len(labels) != len(dirs):
        raise BadInput(f"--label given {len(labels)} times for {len(dirs)} sweeps: "
                       "one per sweep, in order")  # fmt: skip
    if len(set(labels)) != len(labels):
        raise BadInput(f"two sweeps are labelled alike ({', '.join(labels)}): give "
                       "each a distinct --label")  # fmt: skip
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = args.out or OUTPUTS_DIR / "compare" / stamp
    return compare.write(compare.compare(dirs, labels, args.metric), out)


def default_labels(dirs: list[Path]) -> list[str]:
    """The folders' names; where two are equal, their parent's name too."""
    names = [path.resolve().name for path in dirs]
    return [
        name if names.count(name) == 1 else f"{path.resolve().parent.name}/{name}"
        for name, path in zip(names, dirs, strict=True)
    ]


if __name__ == "__main__":
    raise SystemExit(main())
