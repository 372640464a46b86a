"""Comparing sweeps (``analysis.compare``, ``python -m analysis A B ...``): the shared
grid and differences against the sweeps' own tables, the figures' data, the
command line's output folder and its refusals."""

import numpy as np
import pandas as pd
import pytest
from browser import page_check
from conftest import run_cli
from matplotlib.collections import QuadMesh
from matplotlib.colors import to_rgba
from matplotlib.contour import ContourSet
from sweep_factory import make_sweep

import analysis
from analysis import compare, plots, style
from sweep.schema import ANALYSIS_DIR

GRID = {"neurons": (5, 10, 20), "sparsity": (0.01, 0.1, 0.3)}


@pytest.fixture
def two_sweeps(tmp_path):
    """a: omp and lstsq at n_features=40; b: omp and lasso at n_features=20."""
    a = make_sweep(tmp_path, name="a", **GRID)
    b = make_sweep(tmp_path, name="b", methods=("omp", "lasso"), rng_seed=1,
                   extra_keys={"n_features": (20,)}, **GRID)  # fmt: skip
    return a, b


def test_shared_points_and_differences(two_sweeps):
    """The shared grid: omp's 9 (neurons, sparsity) points, each sweep's mean as
    in its own results, b - a; n_features is what the sweeps differ in."""
    a, b = two_sweeps
    found = compare.compare([a, b], ["a", "b"], "nmse")
    assert found.keys == ["neurons", "sparsity", "method"]
    shared = found.shared
    assert len(shared) == 9 and (shared["method"] == "omp").all()
    for label, sweep in (("a", a), ("b", b)):
        cells = analysis.load(sweep).cells.query("method == 'omp'")
        mine = shared.merge(cells, on=["neurons", "sparsity"])
        np.testing.assert_array_equal(mine["nmse (" + label + ")"], mine["nmse"])
    np.testing.assert_allclose(
        shared["nmse (b - a)"], shared["nmse (b)"] - shared["nmse (a)"]
    )
    assert (found.axes.x, found.axes.y, found.axes.panels) == (
        "sparsity",
        "neurons",
        (),
    )
    differ = compare.differing_keys(found)
    assert differ.to_dict("records") == [{"key": "n_features", "a": "40", "b": "20"}]


def test_no_shared_point_names_the_values_that_never_meet(tmp_path):
    a = make_sweep(tmp_path, name="a", sparsity=(0.01, 0.1))
    b = make_sweep(tmp_path, name="b", sparsity=(0.2, 0.3))
    with pytest.raises(compare.NoSharedGrid, match=r"sparsity: a 0\.01, 0\.1; b 0\.2"):
        compare.compare([a, b], ["a", "b"], "success_rate")
    with pytest.raises(compare.NoSharedGrid, match="no cell has the metric mcc"):
        compare.compare([a, a], ["a", "c"], "mcc")


def test_boundaries_overlay_each_sweeps_contour(two_sweeps):
    """A panel per method of either sweep; in each, the 50 % contour of every sweep
    that has the method and crosses 50 % there, in that sweep's colour."""
    found = compare.compare(list(two_sweeps), ["a", "b"], "success_rate")
    fig = compare.boundaries_figure(found)
    axs = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axs] == [
        "method=lasso", "method=lstsq", "method=omp",
    ]  # fmt: skip
    colors = dict(zip("ab", style.line_colors(2), strict=True))
    (legend,) = fig.legends
    texts, handles = legend.get_texts(), legend.legend_handles
    legend = {t.get_text(): h.get_color() for t, h in zip(texts, handles, strict=True)}
    assert legend == colors
    for ax in axs:
        method = ax.get_title().split("=")[1]
        crossing = [
            label for label in "ab"
            if plots.success_grid(found.cells.query(
                f"sweep == '{label}' and method == '{method}'"),
                x="sparsity", y="neurons") is not None
        ]  # fmt: skip
        contours = [c for c in ax.collections if isinstance(c, ContourSet)]
        shown = [tuple(c.get_edgecolor()[0]) for c in contours]
        assert shown == [to_rgba(colors[label]) for label in crossing], method
    omp = next(ax for ax in axs if ax.get_title() == "method=omp")
    assert len([c for c in omp.collections if isinstance(c, ContourSet)]) == 2


def test_difference_maps_show_b_minus_a(two_sweeps):
    found = compare.compare(list(two_sweeps), ["a", "b"], "success_rate")
    fig = compare.difference_figure(found)
    (ax,) = [ax for ax in fig.axes if ax.get_title()]
    assert ax.get_title() == "comparison=b - a"
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    grid = found.shared.pivot(index="neurons", columns="sparsity",
                              values="success_rate (b - a)")  # fmt: skip
    np.testing.assert_array_equal(mesh.get_array(), grid.to_numpy())
    assert mesh.get_cmap().name == style.DIVERGING.name
    assert mesh.norm.vmin == -mesh.norm.vmax == -np.abs(grid.to_numpy()).max()
    assert "at method=omp" in fig._suptitle.get_text()


def test_one_shared_axis_gives_lines(tmp_path):
    a = make_sweep(tmp_path, name="a", neurons=(10,), sparsity=(0.01, 0.1, 0.3))
    b = make_sweep(tmp_path, name="b", neurons=(10,), sparsity=(0.1, 0.3), rng_seed=2)
    found = compare.compare([a, b], ["a", "b"], "nmse")
    assert len(found.shared) == 4  # 2 methods x 2 shared sparsities
    (ax,) = compare.difference_figure(found).axes
    for bars, (_, rows) in zip(ax.containers, found.shared.groupby("method"),
                               strict=True):  # fmt: skip
        expected = rows.sort_values("sparsity")[["sparsity", "nmse (b - a)"]]
        np.testing.assert_array_equal(bars.lines[0].get_xydata(), expected.to_numpy())
    assert [f for f, _, _ in compare.planned(found)] == ["compare_nmse.png"]


# --- the command line ----------------------------------------------------------------


def test_cli_writes_a_comparison_and_nothing_into_the_sweeps(two_sweeps, tmp_path):
    a, b = two_sweeps
    out = tmp_path / "cmp"
    done = run_cli("analysis", str(a), str(b), "--label", "fifty", "--label", "twenty",
                   "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "compare.csv", "compare_boundaries.png", "compare_success_rate.png",
        "report.html",
    ]  # fmt: skip
    table = pd.read_csv(out / "compare.csv")
    assert list(table.columns[-3:]) == [
        "success_rate (fifty)", "success_rate (twenty)",
        "success_rate (twenty - fifty)",
    ]  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<h1>Comparison of fifty, twenty</h1>" in page
    assert "<td>n_features</td>" in page and "9 shared grid points" in page
    assert not (a / ANALYSIS_DIR).exists() and not (b / ANALYSIS_DIR).exists()
    check = page_check(page, tmp_path, "copy.html")  # in headless Chromium
    assert check["images_total"] == check["images_loaded"] == 2
    assert check["errors"] == 0, check


def test_cli_refusals_exit_2_with_one_line(two_sweeps, tmp_path):
    a, b = two_sweeps
    disjoint = make_sweep(tmp_path / "other", name="c", neurons=(7,))
    cases = [
        ([str(a), str(tmp_path / "nope")], "does not exist or is not a directory"),
        ([str(a), str(disjoint)], "share no grid point"),
        ([str(a), str(b), "--label", "x"], "--label given 1 times for 2 sweeps"),
        ([str(a), "--out", str(tmp_path / "o")], "are for two or more sweeps"),
    ]
    for args, message in cases:
        done = run_cli("analysis", *args, cwd=tmp_path)
        assert done.returncode == 2, args
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_a_folder_of_sweeps_is_refused_with_their_list(two_sweeps, tmp_path):
    """tmp_path holds sweeps a and b (and other/c, one level further down): each
    is named, and nothing is analysed."""
    make_sweep(tmp_path / "other", name="c")
    done = run_cli("analysis", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"error: {tmp_path}: holds 3 sweeps, not one: analyse one of them, or "
        "compare them with python -m analysis A B ... --label a --label b ...:"
    )
    assert lines[1:] == [f"  {tmp_path / n}" for n in ("a", "b", "other/c")]
    assert not list(tmp_path.rglob(ANALYSIS_DIR))


def test_two_single_cells_compare_as_one_bar(tmp_path):
    """No key varies: the one shared point is the two cells; a bar of b - a."""
    one = {"methods": ("omp",), "neurons": (10,), "sparsity": (0.1,)}
    a = make_sweep(tmp_path, name="a", **one)
    b = make_sweep(tmp_path, name="b", extra_keys={"n_features": (20,)}, **one)
    found = compare.compare([a, b], ["a", "b"], "success_rate")
    assert found.keys == [] and len(found.shared) == 1
    (ax,) = compare.difference_figure(found).axes
    (bar,) = ax.patches
    assert bar.get_height() == found.shared["success_rate (b - a)"].iloc[0]
    assert compare.differing_keys(found)["key"].tolist() == ["n_features"]
