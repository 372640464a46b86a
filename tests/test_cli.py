"""The real command line: a smoke sweep, bad input, exit codes, analysis of a sweep."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, failing, run_cli

from sweep import schema
from sweep.command import validate_argv
from sweep.grid import expand_cells, options, plan
from sweep.methods import METHODS

SMOKE = "n_features=20,n_samples=40,n_train=100"  # the smoke preset's constants
CELL = f"method=omp,{SMOKE},neurons=5,sparsity=0.05,trials=2"


def _cells(sweep_dir):
    return sorted(
        p.parent.name
        for p in sweep_dir.rglob(schema.METRICS_FILE)
        if schema.ANALYSIS_DIR not in p.parts
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke preset through the real CLI, run from a foreign working directory."""
    where = tmp_path_factory.mktemp("smoke")
    out = run_cli(
        "sweep", "-m", "experiment=smoke", f"hydra.sweep.dir={where / 's'}", cwd=where
    )
    return where / "s", out


def test_smoke_sweep_runs_every_method(smoke):
    sweep_dir, out = smoke
    assert out.returncode == 0, out.stderr[-3000:]
    cells = _cells(sweep_dir)
    assert len(cells) == 2 * 2 * len(options("method"))  # every method file
    assert {c.split(",")[0] for c in cells} == {f"method={m}" for m in METHODS}
    log = out.stdout + out.stderr
    assert f"{len(cells)} cells: {len(cells)} ok, 0 failed, 0 cached" in log
    for k in (1, len(cells)):  # progress: [k/N], elapsed, what is left
        assert f"[{k}/{len(cells)}] ok method=" in log
    assert "elapsed, about" in log
    # one line per finished cell with its key metrics and seconds
    assert log.count("success_rate=") == len(cells)
    metrics = pd.read_parquet(sweep_dir / cells[0] / schema.METRICS_FILE)
    assert metrics["n_features"].eq(20).all() and metrics["sweep"].eq("s").all()


def test_smoke_sweep_is_analysed(smoke):
    """Every registered figure whose condition holds for the smoke sweep is written,
    with its caption on report.html; all but the toy models' apply."""
    import html

    import numpy as np
    from matplotlib.collections import QuadMesh

    from analysis import figures, load, report

    sweep_dir, out = smoke
    analysis = sweep_dir / schema.ANALYSIS_DIR
    results = pd.read_parquet(analysis / "results.parquet")
    assert len(results) == len(_cells(sweep_dir))
    data = report.analysed(sweep_dir, load(sweep_dir))
    planned = {figure.file: figure for figure in figures.planned(data)}
    assert sorted(p.name for p in analysis.glob("*.png")) == sorted(planned)
    page = (analysis / report.REPORT_FILE).read_text()
    for file, figure in planned.items():
        assert f"<code>{file}</code>: {html.escape(figure.caption)}" in page
    skipped = {e.name for e in figures.registered() if not e.files(data)}
    # model=random: no trained W, not a real network; textbook data: every feature
    # fires at one rate
    toy = {e.name for e in figures.registered()
           if e.draw.__module__ in ("analysis.toy", "analysis.network")}  # fmt: skip
    assert skipped <= toy | {"features_by_rate.png"}
    learned = {"phase_mcc.png", "capacity_n_recovered.png", "learned_cosines.png"}
    assert learned <= set(planned)
    fig = planned["phase_mcc.png"].draw()  # the learned methods' cells, their mcc
    meshes = [c for ax in fig.axes[:-1] for c in ax.collections
              if isinstance(c, QuadMesh)]  # fmt: skip
    shown = np.concatenate([mesh.get_array().compressed() for mesh in meshes])
    np.testing.assert_array_equal(np.sort(shown), np.sort(results["mcc"].dropna()))
    assert str(analysis) in out.stdout + out.stderr


def test_analysis_cli_regenerates_from_files(smoke, tmp_path):
    sweep_dir, _ = smoke
    before = pd.read_parquet(sweep_dir / schema.ANALYSIS_DIR / "results.parquet")
    out = run_cli("analysis", str(sweep_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    after = pd.read_parquet(sweep_dir / schema.ANALYSIS_DIR / "results.parquet")
    pd.testing.assert_frame_equal(before, after)


def test_rerun_caches_finished_cells(smoke):
    sweep_dir, _ = smoke
    out = run_cli(
        "sweep",
        "-m",
        "experiment=smoke",
        "method=omp,lstsq",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.callbacks.sweep_end.analyze=false",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "8 cached" in out.stdout + out.stderr


def test_the_parent_rebuilds_the_configs_hydra_ran(smoke):
    # the same grid again: the parent's configurations of its cells are those the
    # workers computed (same fingerprints), so every cell is found finished
    sweep_dir, _ = smoke
    cells = expand_cells(["experiment=smoke"], multirun=True)
    again = plan(cells, sweep_dir)
    assert not again.todo and not again.errors and len(again.done) == len(cells)
    assert all(again.folders[c.fingerprint] == c.name for c in cells)
    argv = ["-m", "experiment=smoke", f"hydra.sweep.dir={sweep_dir}"]
    assert validate_argv(argv) == []


def test_each_cell_folder_holds_hydras_files_of_its_own_configuration(smoke):
    # written by the pool's worker as a Hydra job writes them: config.yaml is the
    # configuration the cell computed (its fingerprint), overrides.yaml its grid point
    from omegaconf import OmegaConf

    from sweep import config

    sweep_dir, _ = smoke
    for name in _cells(sweep_dir):
        cell = sweep_dir / name
        status = json.loads((cell / schema.STATUS_FILE).read_text())
        cfg = OmegaConf.load(cell / ".hydra" / "config.yaml")
        flat = config.normalise(config.flatten(cfg))
        assert config.fingerprint(flat) == status["fingerprint"], name
        overrides = OmegaConf.load(cell / ".hydra" / "overrides.yaml")
        assert "experiment=smoke" in overrides
        assert f"neurons={status['config']['neurons']}" in overrides
        assert not any(line.startswith("hydra.") for line in overrides)
        assert (cell / "cell.log").read_text().count(" - ok ") == 1  # its own line


def test_a_folder_holding_another_configuration_is_refused(smoke, tmp_path):
    # a folder named as the default preset's cell (named so by an older naming rule,
    # or by hand) that holds the smoke preset's cell: never overwritten
    sweep_dir = tmp_path / "s"
    foreign = sweep_dir / "method=omp,neurons=5,sparsity=0.05"
    shutil.copytree(smoke[0] / CELL, foreign)
    before = pd.read_parquet(foreign / schema.METRICS_FILE)
    out = run_cli(
        "sweep", "-m", "method=omp", "neurons=5", "sparsity=0.05",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert out.returncode == 2
    assert "holds another configuration (n_features=20 there, 100 now" in out.stderr
    assert "choose another hydra.sweep.dir" in out.stderr
    after = pd.read_parquet(foreign / schema.METRICS_FILE)
    pd.testing.assert_frame_equal(before, after)


def test_same_sweep_same_metrics_whatever_the_process(tmp_path):
    # different hash seeds and worker counts: nothing may depend on either
    frames = []
    for n_jobs, hash_seed in [(2, "1"), (1, "2")]:
        where = tmp_path / f"run{n_jobs}"
        out = run_cli(
            "sweep", "-m", "experiment=smoke", "method=basis_pursuit,nnls,sae",
            f"hydra.sweep.dir={where}", f"hydra.launcher.n_jobs={n_jobs}",
            "hydra.callbacks.sweep_end.analyze=false",
            env={"PYTHONHASHSEED": hash_seed},
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-2000:]
        metrics = [pd.read_parquet(p) for p in sorted(where.rglob(schema.METRICS_FILE))]
        frame = pd.concat(metrics, ignore_index=True)
        frames.append(frame.drop(columns=["sweep", "fit_seconds", "recover_seconds"]))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_method_override_narrows_the_grid(tmp_path):
    out = run_cli(
        "sweep",
        "-m",
        "experiment=smoke",
        "method=nnls",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.callbacks.sweep_end.analyze=false",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert _cells(tmp_path) == [
        f"method=nnls,{SMOKE},neurons=10,sparsity=0.05,trials=2",
        f"method=nnls,{SMOKE},neurons=10,sparsity=0.2,trials=2",
        f"method=nnls,{SMOKE},neurons=5,sparsity=0.05,trials=2",
        f"method=nnls,{SMOKE},neurons=5,sparsity=0.2,trials=2",
    ]


def test_failed_cell_gives_exit_1_and_the_rest_finishes(tmp_path):
    out = run_cli(
        "sweep",
        "-m",
        "experiment=smoke",
        "method=omp,lstsq",
        f"hydra.sweep.dir={tmp_path / 's'}",
        env=failing(tmp_path / "hook", method="lstsq"),
    )
    assert out.returncode == 1, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "8 cells: 4 ok, 4 failed, 0 cached" in log
    sweep_dir = tmp_path / "s"
    failed = sweep_dir / CELL.replace("method=omp", "method=lstsq")
    assert f"failed {failed.name}: RuntimeError: injected" in log
    status = json.loads((sweep_dir / CELL / schema.STATUS_FILE).read_text())
    assert status["status"] == "ok"
    assert (sweep_dir / schema.ANALYSIS_DIR / "results.parquet").exists()
    assert (
        "Traceback"
        in json.loads((failed / schema.STATUS_FILE).read_text())["traceback"]
    )
    assert "Traceback (most recent call last)" in (failed / "cell.log").read_text()


def test_single_run(tmp_path):
    out = run_cli(
        "sweep", "neurons=7", "trials=2", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = pd.read_parquet(tmp_path / schema.METRICS_FILE)
    assert metrics["neurons"].eq(7).all() and len(metrics) == 2
    assert f"results in {tmp_path}:" in out.stdout  # its folder, and a table
    mean = [line for line in out.stdout.splitlines() if line.startswith("mean")]
    shown = float(mean[0].split()[1])  # success_rate, the first column
    assert shown == pytest.approx(metrics["success_rate"].mean(), rel=1e-3)


def test_single_run_failure_exit_1(tmp_path):
    env = failing(tmp_path / "hook", trials=1)
    out = run_cli("sweep", "trials=1", f"hydra.run.dir={tmp_path / 'r'}", env=env)
    assert out.returncode == 1 and "RuntimeError: injected failure" in out.stdout
    assert run_cli("sweep", "trials=2", f"hydra.run.dir={tmp_path / 'q'}",
                   env=env).returncode == 0  # the control: a cell it does not match


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "neurons=5,0", "sparsity=0.01,2"],
        ["-m", "method=omp,nope"],
        ["neurons=abc"],
        ["-m", "experiment=smoke", "method.alpha=1"],
    ],
)
def test_bad_input_exit_2_and_nothing_created(tmp_path, args):
    target = tmp_path / "sweep"
    key = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    out = run_cli("sweep", *args, f"{key}={target}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[0] == "error: bad input, nothing ran:"
    assert all("allowed" in line for line in lines[1:]), lines
    assert not target.exists()


def test_analysis_of_nothing_exit_2(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        out = run_cli("analysis", str(path))
        assert out.returncode == 2
        assert len(out.stderr.strip().splitlines()) == 1


def test_a_parameter_of_a_swept_model_group(tmp_path):
    out = run_cli(
        "sweep", "-m", "model=toy_relu,toy_linear", "model.steps=20", "n_features=6",
        "neurons=2", "sparsity=0.2", "method=readout", "trials=1",
        f"hydra.sweep.dir={tmp_path}", "hydra.callbacks.sweep_end.analyze=false",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    metrics = pd.concat(pd.read_parquet(p) for p in tmp_path.rglob(schema.METRICS_FILE))
    assert sorted(metrics["model"]) == ["toy_linear", "toy_relu"]
    assert metrics["model.steps"].eq(20).all()


def test_a_cell_past_cell_timeout_s_fails_and_the_sweep_goes_on(tmp_path):
    out = run_cli(
        "sweep", "-m", "experiment=smoke", "method=lstsq,basis_pursuit", "neurons=10",
        "sparsity=0.2", "n_samples=4000", "trials=5", "cell_timeout_s=0.3",
        f"hydra.sweep.dir={tmp_path}", "hydra.callbacks.sweep_end.analyze=false",
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-2000:]
    assert "2 cells: 1 ok, 1 failed" in out.stdout
    assert "ran past cell_timeout_s=0.3" in out.stdout
    assert not any("cell_timeout_s" in p.name for p in tmp_path.iterdir())


def test_submitit_local_runs_a_sweep_end_to_end(tmp_path):
    # the SLURM launcher's local stand-in; max_batch_size caps cells running at once
    out = run_cli(
        "sweep", "-m", "experiment=smoke", "method=omp,lstsq", "neurons=5",
        "hydra/launcher=submitit_local", "hydra.sweeper.max_batch_size=2",
        f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    assert "4 cells: 4 ok, 0 failed, 0 cached" in out.stdout
    assert (tmp_path / schema.ANALYSIS_DIR / "results.parquet").exists()


COUNT_COMPOSITIONS = """
import runpy, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
calls = []
compose = ConfigLoaderImpl.load_configuration
def counted(self, *args, **kwargs):
    calls.append(1)
    return compose(self, *args, **kwargs)
ConfigLoaderImpl.load_configuration = counted
sys.argv = ["sweep", *sys.argv[1:]]
try:
    runpy.run_module("sweep", run_name="__main__")
finally:
    sys.stderr.write(f"compositions={len(calls)}\\n")
"""


def _compositions(tmp_path, *grid: str) -> tuple[int, int]:
    """Hydra's compositions in a sweep run in this process, and its cells."""
    out = subprocess.run(
        [sys.executable, "-c", COUNT_COMPOSITIONS, "-m", *grid,
         "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={tmp_path}",
         "hydra.callbacks.sweep_end.analyze=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stderr.rsplit("compositions=", 1)[1]), len(_cells(tmp_path))


def test_hydra_composes_once_per_group_choice_not_per_cell(tmp_path):
    """A cell's configuration is built from the composition of its preset and
    group choices (once per process), never composed by Hydra per cell: 3 times the
    cells, the same compositions; a second method, more."""
    few = _compositions(tmp_path / "a", "method=lstsq", "neurons=5", "sparsity=0.1")
    many = _compositions(tmp_path / "b", "method=lstsq", "neurons=5,10,15",
                         "sparsity=0.05,0.1,0.2")  # fmt: skip
    two = _compositions(tmp_path / "c", "method=lstsq,omp", "neurons=5",
                        "sparsity=0.1")  # fmt: skip
    assert (few[1], many[1], two[1]) == (1, 9, 2)
    assert few[0] == many[0] > 0
    assert two[0] > few[0]


def test_help_shows_the_presets_keys_and_exit_codes():
    out = run_cli("sweep", "--help")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "python -m sweep -m ... --dry-run" in out.stdout
    for preset in options("experiment"):
        assert f"  {preset} " in out.stdout
    assert "(72 cells)" in out.stdout  # the reference preset, counted
    assert "n_features: 100   # n: ground-truth features" in out.stdout
    assert "exit codes: 0 every cell ok" in out.stdout
    assert "130 interrupted" in out.stdout


def test_a_dry_run_lists_the_cells_and_runs_nothing(smoke, tmp_path):
    fresh = run_cli("sweep", "-m", "method=omp,lstsq", "neurons=5,10", "--dry-run",
                    f"hydra.sweep.dir={tmp_path / 'new'}")  # fmt: skip
    assert fresh.returncode == 0 and not (tmp_path / "new").exists()
    assert "dry run: 12 cells in" in fresh.stdout
    assert "0 finished (cached), 12 to run" in fresh.stdout
    assert "method=lstsq,neurons=10,sparsity=0.2" in fresh.stdout
    sweep_dir, _ = smoke
    again = run_cli("sweep", "-m", "experiment=smoke", "--dry-run",
                    f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    n = len(_cells(sweep_dir))
    assert f"{n} finished (cached), 0 to run" in again.stdout


def test_a_multirun_shows_its_first_cells_config():
    out = run_cli("sweep", "-m", "experiment=smoke", "method=nnls,omp", "--cfg", "job")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "# the first of 8 cells of this grid (method=nnls," in out.stdout
    assert "name: nnls" in out.stdout and "n_features: 20" in out.stdout
