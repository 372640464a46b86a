"""Tests of ``analysis``: tables against hand numbers, figures on fake sweep folders."""

import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.container import BarContainer
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.testing.compare import compare_images

import analysis
from analysis import aggregate, figures, per_feature, plots, report, style
from analysis.aggregate import PlotAxes
from sweep.schema import (
    ANALYSIS_DIR,
    FEATURES_FILE,
    METRICS_FILE,
    SAMPLES_FILE,
    STATUS_FILE,
)

try:
    from sweep_factory import cell_name, make_sweep, planned_figures
except ImportError:  # tests/ imported as a package
    from tests.sweep_factory import cell_name, make_sweep, planned_figures

ROOT = Path(analysis.__file__).resolve().parents[1]
TABLES = ["results.parquet", "capacity.csv", "cells.csv", "report.html"]


def written(sweep: Path) -> list[str]:
    """What an analysis should write: its tables and every planned figure."""
    return sorted([*TABLES, *planned_figures(sweep)])


def panels(fig: Figure) -> list:
    """The titled panels of a figure (not its colorbars); else its one axes."""
    return [ax for ax in fig.axes if ax.get_title()] or fig.axes


def shown_values(fig: Figure) -> np.ndarray:
    """The values a figure of a metric shows, sorted: its heat maps' cells, else its
    bars' heights, else its error-bar lines' points."""
    values = []
    for ax in panels(fig):
        meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        if meshes:
            values += [mesh.get_array().compressed() for mesh in meshes]
        elif bars:
            values += [[patch.get_height() for patch in bar] for bar in bars]
        else:
            values += [c.lines[0].get_ydata() for c in ax.containers]
    return np.sort(np.concatenate(values))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m analysis ARGS`` from ``cwd``, finding this checkout's packages."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=cwd,
        env=os.environ | {"PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- tables --------------------------------------------------------------------------


def test_varying_keys_rounds_floats_counts_nan_and_skips_derived():
    frame = pd.DataFrame(
        {
            "trial": [0, 1, 0, 1],
            "neurons": [5, 5, 10, 10],
            "sparsity": [0.1, 0.1000000000001, 0.1, 0.1],  # equal to 10 digits
            "k": [None, np.nan, None, np.nan],  # missing twice: one value
            "S": [0.9, 0.8, 0.7, 0.6],  # derived: never a key
            "method": ["omp", "omp", "lasso", "lasso"],
            "method.alpha": [np.nan, np.nan, 0.1, 0.1],  # absent for omp: not an axis
            "mse": [1.0, 2.0, 3.0, 4.0],
        }
    )
    assert aggregate.varying_keys(aggregate.tidy(frame)) == ["neurons", "method"]
    frame["method.alpha"] = [np.nan, np.nan, 0.1, 0.01]  # two values for lasso
    varying = aggregate.varying_keys(aggregate.tidy(frame))
    assert varying == ["neurons", "method", "method.alpha"]
    frame["sparsity"] = [0.1, 0.1000001, 0.1, 0.1]  # differs at 7 digits
    assert "sparsity" in aggregate.varying_keys(aggregate.tidy(frame))


def test_n_train_is_an_axis_only_where_it_does_not_follow_the_other_keys():
    """n_train=auto gives a learned method more rows at a lower sparsity, and omp
    1,000: n_train then follows method and sparsity and is no axis of its own."""
    frame = pd.DataFrame({
        "trial": [0] * 4, "sparsity": [0.01, 0.1, 0.01, 0.1],
        "n_train": [10_000, 1000, 1000, 1000],
        "method": ["dict_learning", "dict_learning", "omp", "omp"], "mse": [1.0] * 4,
    })  # fmt: skip
    assert aggregate.varying_keys(aggregate.tidy(frame)) == ["sparsity", "method"]
    frame["sparsity"] = 0.01  # n_train swept: two values for each method
    frame["n_train"] = [10_000, 1000, 1000, 2000]
    assert aggregate.varying_keys(aggregate.tidy(frame)) == ["n_train", "method"]


def test_aggregate_trials_mean_sem_and_new_metrics():
    trials = pd.DataFrame(
        {
            "cell": ["a"] * 4 + ["b"],
            "trial": [0, 1, 2, 3, 0],
            "status": ["ok", "ok", "ok", "failed", "ok"],
            "neurons": [5, 5, 5, 5, 10],
            "S": 0.9,
            "success_rate": [0.2, 0.4, 0.9, 0.0, 0.5],  # the failed 0.0 must not count
            "mcc": [1.0, 1.0, 1.0, 0.0, 0.3],  # not in the schema: aggregated anyway
        }
    )
    cells = aggregate.aggregate_trials(trials).set_index("cell")
    assert cells.loc["a", "success_rate"] == pytest.approx(0.5)
    assert cells.loc["a", "success_rate_sem"] == pytest.approx(math.sqrt(0.13 / 3))
    assert cells.loc["a", "mcc"] == pytest.approx(1.0)
    assert cells.loc["a", "mcc_sem"] == pytest.approx(0.0, abs=1e-12)
    assert cells.loc["a", "n_trials"] == 3 and cells.loc["b", "n_trials"] == 1
    assert np.isnan(cells.loc["b", "success_rate_sem"])  # one trial: no error
    assert list(cells["status"]) == ["ok", "ok"]


def test_capacity_number_matches_hand_table():
    grid = [  # method, neurons, sparsity, mean success_rate
        ("omp", 5, 0.01, 0.9),
        ("omp", 5, 0.1, 0.4),
        ("omp", 5, 0.3, 0.1),
        ("omp", 10, 0.01, 1.0),
        ("omp", 10, 0.1, 0.5),
        ("omp", 10, 0.3, 0.2),
        ("lstsq", 5, 0.01, 0.1),
        ("lstsq", 5, 0.1, 0.0),
        ("lstsq", 5, 0.3, 0.0),
        ("lstsq", 10, 0.01, 0.3),
        ("lstsq", 10, 0.1, 0.6),
        ("lstsq", 10, 0.3, np.nan),
    ]
    columns = ["method", "neurons", "sparsity", "success_rate"]
    results = pd.DataFrame(grid, columns=columns)
    axes = PlotAxes(x="sparsity", y="neurons", panels=("method",))
    table = aggregate.capacity_number(results, axes)
    got = {(m, n): c for m, n, c in table.itertuples(index=False)}
    expected = {("omp", 5): 0.01, ("omp", 10): 0.1, ("lstsq", 10): 0.1}
    assert got.keys() == {("omp", 5), ("omp", 10), ("lstsq", 5), ("lstsq", 10)}
    assert np.isnan(got[("lstsq", 5)])  # never 50 %
    assert {k: v for k, v in got.items() if not np.isnan(v)} == expected


def test_capacity_number_uses_density_for_k():
    results = pd.DataFrame(
        {
            "neurons": [10, 10],
            "k": [1, 4],
            "n_features": 40,
            "S": [1 - 1 / 40, 1 - 4 / 40],
            "success_rate": [0.9, 0.6],
        }
    )
    axes = PlotAxes(x="k", y="neurons", panels=())
    table = aggregate.capacity_number(results, axes)
    assert table[aggregate.CAPACITY].tolist() == pytest.approx([0.1])


def test_failed_cell_is_listed_but_not_averaged(tmp_path):
    failed = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01})
    sweep = make_sweep(tmp_path, failed_cells=(failed,))
    trials, _ = aggregate.load_sweep(sweep)
    results = aggregate.aggregate_trials(trials).set_index("cell_dir")
    assert results.loc[failed, "status"] == "failed"
    assert results.loc[failed, "n_trials"] == 0
    assert np.isnan(results.loc[failed, "success_rate"])
    ok = results.drop(index=failed)
    assert (ok["status"] == "ok").all() and (ok["n_trials"] == 3).all()
    assert ok["success_rate"].notna().all()


def test_missing_cells_are_listed_never_dropped(tmp_path, caplog):
    died = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01})  # no files
    unfinished = cell_name({"method": "omp", "neurons": 10, "sparsity": 0.1})
    failed = cell_name({"method": "lstsq", "neurons": 20, "sparsity": 0.1})
    sweep = make_sweep(tmp_path, failed_cells=(failed,), missing_cells=(died,))
    (sweep / unfinished / STATUS_FILE).unlink()  # metrics written, then it died
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    results = pd.read_parquet(out / "results.parquet").set_index("cell_dir")
    assert results.loc[unfinished, "status"] == "missing"
    assert results.loc[unfinished, "neurons"] == 10  # config from its metrics
    assert results.loc[unfinished, "n_trials"] == 0
    assert np.isnan(results.loc[unfinished, "success_rate"])  # never counted
    assert results.loc[failed, "status"] == "failed"
    assert died not in results.index and len(results) == 11
    cells = pd.read_csv(out / "cells.csv").set_index("cell_dir")
    assert len(cells) == 12 and cells.loc[died, "status"] == "missing"
    assert cells.loc[died, "rows"] == 0 and cells.loc[failed, "status"] == "failed"
    assert f"missing cells: {unfinished}, {died}" in caplog.text  # sorted
    assert str(sweep / died) in caplog.text  # the warning names the folder


def test_same_config_in_two_folders_is_one_cell(tmp_path, caplog):
    sweep = make_sweep(tmp_path)
    implicit = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01})
    explicit = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01, "seed": 0})
    shutil.copytree(sweep / implicit, sweep / explicit)
    metrics = pd.read_parquet(sweep / explicit / METRICS_FILE)
    metrics.assign(success_rate=0.123).to_parquet(sweep / explicit / METRICS_FILE)
    with caplog.at_level(logging.WARNING):
        trials, _ = aggregate.load_sweep(sweep)
    assert explicit in caplog.text and implicit in caplog.text
    results = aggregate.aggregate_trials(trials)
    assert len(results) == 12 and (results["n_trials"] == 3).all()
    (cell,) = results[results["cell_dir"].isin([implicit, explicit])].itertuples()
    assert cell.cell_dir == explicit  # the first folder (sorted) is kept
    assert cell.success_rate == pytest.approx(0.123)


def test_unreadable_metrics_file_is_skipped_with_a_warning(tmp_path, caplog):
    sweep = make_sweep(tmp_path)
    broken = sweep / cell_name({"method": "omp", "neurons": 5, "sparsity": 0.1})
    (broken / METRICS_FILE).write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING):
        trials, _ = aggregate.load_sweep(sweep)
    assert str(broken / METRICS_FILE) in caplog.text
    assert trials[aggregate.CELL_DIR].nunique() == 11


def test_heatmap_cell_is_the_middle_one_shared_by_all_methods(tmp_path):
    sweep = make_sweep(tmp_path, neurons=(5, 10, 20), sparsity=(0.01, 0.1, 0.3))
    results = aggregate.aggregate_trials(aggregate.load_sweep(sweep)[0])
    (cells,) = aggregate.representative_cells(results, aggregate.choose_axes(results))
    assert sorted(cells["method"]) == ["lstsq", "omp"]
    assert (cells["neurons"] == 10).all() and (cells["sparsity"] == 0.1).all()


# --- run and the command line --------------------------------------------------------


def test_run_writes_results_and_every_figure(tmp_path, caplog):
    sweep = make_sweep(tmp_path)  # 2 methods x 3 neurons x 2 sparsities
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    assert out == sweep / ANALYSIS_DIR
    assert sorted(p.name for p in out.iterdir()) == written(sweep)
    data = report.analysed(sweep, analysis.load(sweep))
    drawn = (plots.__name__, per_feature.__name__)  # no toy, learned, boundary, dt
    by_rate = per_feature.RATE_FILE  # features of one firing rate: not drawn
    for entry in figures.registered():
        applies = entry.draw.__module__ in drawn and entry.name != by_rate
        assert bool(entry.files(data)) == applies, entry.name
    kinds = ("phase", "capacity")
    metrics = {f"{kind}_{m}.png" for kind in kinds for m in plots.PHASE_METRICS}
    assert metrics <= set(planned_figures(sweep))
    results = pd.read_parquet(out / "results.parquet")
    cells = {p.parent.name for p in sweep.rglob(METRICS_FILE)}
    assert len(results) == 12 and set(results["cell_dir"]) == cells
    assert errors(caplog) == []
    assert all(str(out / file) in caplog.text for file in written(sweep))


def test_phase_diagram_shows_the_mean_of_each_cell(tmp_path):
    sweep = make_sweep(tmp_path)
    out = analysis.run(sweep)
    results = pd.read_parquet(out / "results.parquet")
    fig = planned_figures(sweep)["phase_success_rate.png"].draw()
    assert [ax.get_title() for ax in panels(fig)] == ["method=lstsq", "method=omp"]
    for ax, (_, rows) in zip(panels(fig), results.groupby("method"), strict=True):
        grid = rows.pivot(index="neurons", columns="sparsity", values="success_rate")
        (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
        np.testing.assert_array_equal(mesh.get_array(), grid.to_numpy())
        corners = mesh.get_coordinates()  # (rows + 1, columns + 1, 2): x, y
        x_edges, y_edges = corners[0, :, 0], corners[:, 0, 1]  # each cell's own
        for edges, values in ((x_edges, grid.columns), (y_edges, grid.index)):
            assert (edges[:-1] < values).all() and (values < edges[1:]).all()
        (contour,) = [c for c in ax.collections if isinstance(c, ContourSet)]
        assert list(contour.levels) == [0.5]


def test_capacity_figures_show_the_means_and_capacity_csv(tmp_path):
    sweep = make_sweep(tmp_path)
    out = analysis.run(sweep)
    results = pd.read_parquet(out / "results.parquet")
    drawn = planned_figures(sweep)
    fig = drawn["capacity_success_rate.png"].draw()
    for ax, (_, rows) in zip(panels(fig), results.groupby("method"), strict=True):
        lines = [c.lines[0].get_xydata() for c in ax.containers]  # a line per sparsity
        expected = [
            at.sort_values("neurons")[["neurons", "success_rate"]].to_numpy()
            for _, at in rows.groupby("sparsity")
        ]
        np.testing.assert_array_equal(lines, expected)
    capacity = pd.read_csv(out / "capacity.csv")
    (ax,) = drawn["capacity_number.png"].draw().axes
    lines = ax.get_lines()
    assert [line.get_label().split(" ")[0] for line in lines] == [
        "method=lstsq", "method=omp",
    ]  # fmt: skip
    for line, (_, rows) in zip(lines, capacity.groupby("method"), strict=True):
        expected = rows.sort_values("neurons")[["neurons", aggregate.CAPACITY]]
        np.testing.assert_array_equal(line.get_xydata(), expected.to_numpy())


def test_heatmaps_show_x_and_each_methods_x_hat(tmp_path):
    sweep = make_sweep(tmp_path)
    out = analysis.run(sweep)
    results = pd.read_parquet(out / "results.parquet")
    (cells,) = aggregate.representative_cells(results, aggregate.choose_axes(results))
    fig = planned_figures(sweep)["heatmaps.png"].draw()
    shown = [ax for ax in fig.axes if ax.images]
    expected, titles = [], []
    for i, cell in enumerate(cells.itertuples()):
        samples = pd.read_parquet(sweep / cell.cell_dir / SAMPLES_FILE)
        wide = samples.pivot(index="sample", columns="feature")
        if i == 0:  # X, the same for every method
            expected.append(wide["true"].to_numpy())
            titles.append("true X\nneurons=10, sparsity=0.01")  # the middle cell
        expected.append(wide["recovered"].to_numpy())
        titles.append(f"recovered X_hat\nmethod={cell.method}")
    assert [ax.get_title() for ax in shown] == titles
    for ax, X in zip(shown, expected, strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), X)


@pytest.mark.parametrize(
    ("grid", "x", "y"),
    [
        (
            {"methods": ("lasso",), "extra_keys": {"method.alpha": (0.01, 0.1)}},
            "sparsity",
            "neurons",
        ),
        (
            {"neurons": (10,), "extra_keys": {"n_features": (20, 40)}},
            "sparsity",
            "n_features",
        ),
        ({"sparsity": (None,), "extra_keys": {"k": (1, 2, 4)}}, "k", "neurons"),
        ({"neurons": (10,)}, "sparsity", None),  # line plots
        ({"neurons": (10,), "sparsity": (0.1,)}, None, None),  # bar charts
    ],
)
def test_run_on_other_grids_draws_every_figure(tmp_path, caplog, grid, x, y):
    sweep = make_sweep(tmp_path, trials=2, **grid)
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    results = pd.read_parquet(out / "results.parquet")
    axes = aggregate.choose_axes(results)
    assert (axes.x, axes.y) == (x, y)
    assert errors(caplog) == []
    assert sorted(p.name for p in out.iterdir()) == written(sweep)
    for metric in ("success_rate", "nmse"):  # heat maps, lines or bars of each cell
        fig = planned_figures(sweep)[f"phase_{metric}.png"].draw()
        floor = plots.NMSE_FLOOR if metric == "nmse" else -np.inf
        expected = np.sort(np.maximum(results[metric], floor))
        np.testing.assert_allclose(shown_values(fig), expected, rtol=1e-12)


def test_run_twice_gives_identical_files(tmp_path):
    sweep = make_sweep(
        tmp_path,
        failed_cells=(cell_name({"method": "lstsq", "neurons": 20, "sparsity": 0.1}),),
    )
    out = analysis.run(sweep)
    first = {file: (out / file).read_bytes() for file in written(sweep)}
    analysis.run(sweep)  # the analysis folder must not be read as a cell
    assert {file: (out / file).read_bytes() for file in written(sweep)} == first


def test_a_failed_figure_costs_itself_and_stale_figures_go(
    tmp_path, caplog, monkeypatch
):
    """A figure that raises is logged and not written (nor left from before); the
    files of registered figures this analysis does not draw are removed."""
    sweep = make_sweep(tmp_path)
    out = analysis.run(sweep)
    for stale in ("boundary.png", "toy_weights_model=toy_relu.png", "mine.png"):
        (out / stale).write_bytes(b"an earlier analysis")

    def broken(*args, **kwargs):
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(plots, "heatmap_figure", broken)
    with caplog.at_level(logging.INFO):
        analysis.run(sweep)
    assert f"could not draw {out / 'heatmaps.png'}" in errors(caplog)
    drawn = [f for f in written(sweep) if f != "heatmaps.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*drawn, "mine.png"])
    page = (out / "report.html").read_text()
    assert "<code>heatmaps.png</code>" not in page
    assert "<code>phase_nmse.png</code>" in page


def test_load_reads_trials_cells_and_features_and_writes_nothing(tmp_path):
    failed = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01})
    sweep = make_sweep(tmp_path, failed_cells=(failed,))
    before = {p: p.stat().st_mtime_ns for p in sweep.rglob("*")}
    trials, cells, features = analysis.load(str(sweep))  # a str or a Path
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("*")} == before
    assert len(trials) == 11 * 3 and (trials["status"] == "ok").all()
    assert failed not in set(trials["cell_dir"])
    for _, rows in trials.groupby("cell_dir"):  # each trial as its metrics.parquet
        metrics = pd.read_parquet(sweep / rows["cell_dir"].iloc[0] / METRICS_FILE)
        assert rows["trial"].tolist() == metrics["trial"].tolist() == [0, 1, 2]
        for column in ("neurons", "sparsity", "method", "success_rate", "nmse"):
            assert rows[column].tolist() == metrics[column].tolist()
    out = analysis.run(sweep)
    pd.testing.assert_frame_equal(cells, pd.read_parquet(out / "results.parquet"))
    assert "mcc_chance" not in cells  # no learned method: no chance level


def test_features_carry_the_config_of_their_trial(tmp_path):
    """One row per trial and feature of every finished cell, its values those of
    features.parquet, its config columns those of its trial's row."""
    failed = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01})
    sweep = make_sweep(tmp_path, failed_cells=(failed,))
    trials, _, features = analysis.load(sweep)
    assert len(features) == 11 * 3 * 40  # cells x trials x n_features
    assert failed not in set(features["cell_dir"])
    for cell_dir, rows in features.groupby("cell_dir"):
        written = pd.read_parquet(sweep / cell_dir / FEATURES_FILE)
        written = written.sort_values(["trial", "feature"], ignore_index=True)
        shown = rows.reset_index(drop=True)
        for column in ("trial", "feature", "superposition", "recovery_mse"):
            assert shown[column].tolist() == written[column].tolist()
    keys = ["cell_dir", "trial", "method", "neurons", "sparsity", "S", "n_features"]
    joined = features[keys].drop_duplicates().merge(trials[keys], how="left",
                                                    indicator=True)  # fmt: skip
    assert (joined["_merge"] == "both").all() and len(joined) == len(trials)


def test_a_damaged_features_file_costs_only_its_rows(tmp_path, caplog):
    sweep = make_sweep(tmp_path)
    broken = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.1})
    (sweep / broken / FEATURES_FILE).write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING):
        trials, _, features = analysis.load(sweep)
    assert f"no per-feature rows for {broken}" in caplog.text
    assert set(features["cell_dir"]) == set(trials["cell_dir"]) - {broken}


def test_find_latest_sweep_by_timestamp_never_reference(tmp_path):
    assert analysis.find_latest_sweep(tmp_path) is None
    for name in ("2024-05-01_10-00-00", "2025-01-02_03-04-05", "my_sweep"):
        (tmp_path / "sweeps" / name).mkdir(parents=True)
    (tmp_path / "reference" / "2099-01-01_00-00-00").mkdir(parents=True)
    latest = analysis.find_latest_sweep(tmp_path)
    assert latest == tmp_path / "sweeps" / "2025-01-02_03-04-05"


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_cli_bad_folder_exits_2_with_one_line(tmp_path, make):
    target = make(tmp_path)  # a folder that does not exist; an empty folder
    done = run_cli(str(target), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {target}: ")
    assert not (tmp_path / ANALYSIS_DIR).exists()


def test_cli_on_a_sweep_exits_0(tmp_path):
    sweep = make_sweep(tmp_path, neurons=(5, 10), trials=2)
    done = run_cli(str(sweep), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = sweep / ANALYSIS_DIR
    assert str(out) in done.stdout
    assert sorted(p.name for p in out.iterdir()) == written(sweep)
    here = tmp_path / "drawn_here.png"  # the picture of the registered figure
    fig = planned_figures(sweep)["phase_success_rate.png"].draw()
    fig.savefig(here, dpi=style.DPI, format="png")
    assert compare_images(here, out / "phase_success_rate.png", tol=0.01) is None


# --- what is drawn, and what each figure says -----------------------------------------


def set_metrics(sweep: Path, **values) -> None:
    """Overwrite these metrics in every trial row of the sweep's cells."""
    for path in sweep.glob(f"*/{METRICS_FILE}"):
        pd.read_parquet(path).assign(**values).to_parquet(path, index=False)


def test_a_metric_equal_in_every_cell_is_not_drawn_and_the_page_says_so(tmp_path):
    sweep = make_sweep(tmp_path)
    set_metrics(sweep, success_rate=0.0)  # as readout's on the toy presets
    drawn = planned_figures(sweep)
    for kind in ("phase", "capacity"):
        assert f"{kind}_success_rate.png" not in drawn
        assert f"{kind}_nmse.png" in drawn
    assert "capacity_number.png" not in drawn  # no cell reaches 50 %
    page = (analysis.run(sweep) / "report.html").read_text()
    assert "success_rate is 0 in every cell: no phase_success_rate.png" in page
    assert "no capacity_number.png: no cell reached 50 % success" in page


def test_one_swept_axis_draws_lines_once_and_captions_say_so(tmp_path):
    """phase_* are line plots against the one axis; capacity_* would repeat them."""
    sweep = make_sweep(tmp_path, neurons=(10,), sparsity=(0.01, 0.1, 0.3))
    drawn = planned_figures(sweep)
    assert not [f for f in drawn if f.startswith("capacity_") and "number" not in f]
    caption = drawn["phase_nmse.png"].caption
    assert caption.startswith("NMSE (||X - X_hat||^2 / ||X||^2) against sparsity")
    assert "a line per method" in caption and "Phase diagram" not in caption
    (ax,) = drawn["phase_nmse.png"].draw().axes
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["method=lstsq", "method=omp"]
    page = (analysis.run(sweep) / "report.html").read_text()
    assert "only sparsity is swept: phase_*.png show the metrics against it" in page


def test_phase_caption_names_only_what_is_drawn(tmp_path):
    sweep = make_sweep(tmp_path)  # success crosses 50 %; no exact-L1 method
    caption = planned_figures(sweep)["phase_success_rate.png"].caption
    assert "neurons x sparsity grid, a panel per method." in caption
    assert "White line: 50 % success contour." in caption
    assert "L1 phase transition" not in caption and "grey" not in caption
    failed = cell_name({"method": "omp", "neurons": 5, "sparsity": 0.01})
    sweep = make_sweep(tmp_path / "b", failed_cells=(failed,))
    caption = planned_figures(sweep)["phase_success_rate.png"].caption
    assert caption.endswith("Grey: a failed or missing cell.")


def test_panels_of_a_figure_share_their_axes(tmp_path):
    sweep = make_sweep(tmp_path, methods=("omp", "lstsq", "lasso"))
    drawn = planned_figures(sweep)
    for file in ("phase_success_rate.png", "capacity_nmse.png"):
        first, *others = panels(drawn[file].draw())
        assert len(others) == 2, file
        for ax in others:
            assert first.get_shared_x_axes().joined(first, ax), file
            assert first.get_shared_y_axes().joined(first, ax), file
            assert (
                ax.get_xlim() == first.get_xlim() and ax.get_ylim() == first.get_ylim()
            )


def test_heatmaps_use_a_diverging_map_for_signed_recoveries(tmp_path):
    sweep = make_sweep(tmp_path)  # X_hat = X + noise: below 0 somewhere
    fig = planned_figures(sweep)["heatmaps.png"].draw()
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert min(image.get_array().min() for image in images) < 0
    for image in images:
        assert image.get_cmap().name == style.DIVERGING.name
        assert image.norm.vmin == -image.norm.vmax  # white at 0
    row = plots.HeatmapRow("t", np.ones((2, 3)), [("m", np.full((2, 3), 0.5))])
    assert plots.activation_norm(row).vmin == 0  # nonnegative: viridis from 0
    fig = plots.heatmap_figure([row])
    assert {ax.images[0].get_cmap().name for ax in fig.axes if ax.images} == {
        style.CMAP.name
    }


@pytest.mark.parametrize(
    "grid",
    [
        {"methods": ("omp", "lstsq", "lasso", "basis_pursuit", "omp2")},
        {"methods": ("lasso",), "extra_keys": {"method.alpha": (0.01, 0.1, 0.3)}},
        {"neurons": (10,), "extra_keys": {"n_features": (20, 40)}},
        {"neurons": (10, 20), "extra_keys": {"n_features": (20, 40)}},  # DT plane
    ],
)
def test_titles_are_never_clipped(tmp_path, grid):
    """Every title of every figure lies inside its picture, once drawn."""
    sweep = make_sweep(tmp_path, trials=2, **grid)
    for file, planned in planned_figures(sweep).items():
        fig = planned.draw()
        FigureCanvasAgg(fig).draw()
        box = fig.bbox
        texts = [fig._suptitle, *(ax.title for ax in fig.axes)]
        for text in (t for t in texts if t is not None and t.get_text()):
            extent = text.get_window_extent()
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, (file, text)
            assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, (file, text)


def test_per_feature_view_plots_each_features_error(tmp_path):
    """features.png: a panel per method with superposition (the one quantity that
    varies in a random W) against recovery_mse of every trial and feature of the
    cells at the middle neurons value, a point set per sparsity."""
    sweep = make_sweep(tmp_path)  # neurons 5, 10, 20: the middle is 10
    _, _, features = analysis.load(sweep)
    assert per_feature.varying_quantities(features) == ["superposition"]
    drawn = planned_figures(sweep)["features.png"]
    assert "against its superposition in the cells at neurons=10" in drawn.caption
    axs = panels(drawn.draw())
    assert [ax.get_title() for ax in axs] == ["method=lstsq", "method=omp"]
    for ax, (_, rows) in zip(axs, features.groupby("method"), strict=True):
        shown = rows[rows["neurons"] == 10]
        for points, (_, at) in zip(ax.collections, shown.groupby("sparsity"),
                                   strict=True):  # fmt: skip
            error = np.clip(at["recovery_mse"], plots.NMSE_FLOOR, None)
            expected = np.stack([at["superposition"], error], axis=1)
            np.testing.assert_array_equal(points.get_offsets(), expected)


def test_no_per_feature_view_without_a_varying_quantity(tmp_path):
    sweep = make_sweep(tmp_path)
    for path in sweep.glob(f"*/{FEATURES_FILE}"):
        pd.read_parquet(path).assign(superposition=0.5).to_parquet(path)
    assert "features.png" not in planned_figures(sweep)


def test_phase_diagrams_turn_to_donoho_tanner_coordinates_when_n_varies(tmp_path):
    """With n_features a panel key of a sparsity x neurons sweep, every phase_*.png
    is one plane of markers (m/n, k/m) per method; otherwise heat maps."""
    grid = {"neurons": (10, 20), "extra_keys": {"n_features": (20, 40)}}
    drawn = planned_figures(make_sweep(tmp_path / "a", trials=2, **grid))
    caption = drawn["phase_nmse.png"].caption
    assert "NMSE (||X - X_hat||^2 / ||X||^2) in Donoho-Tanner coordinates" in caption
    axs = panels(drawn["phase_success_rate.png"].draw())
    assert [ax.get_title() for ax in axs] == ["method=lstsq", "method=omp"]
    for ax in axs:
        assert ax.get_xlabel() == plots.DT_LABELS[0]
        assert len(ax.collections) == 2  # a marker set per n_features
        assert not [c for c in ax.collections if isinstance(c, QuadMesh)]
    drawn = planned_figures(make_sweep(tmp_path / "b", trials=2))
    assert "Donoho-Tanner" not in drawn["phase_nmse.png"].caption
    (ax, _) = panels(drawn["phase_nmse.png"].draw())
    assert [c for c in ax.collections if isinstance(c, QuadMesh)]
