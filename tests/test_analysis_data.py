"""The analysis of sweeps with data keys (``data.firing`` ...) and the random model's
geometry: config columns and their defaults in older cells, features_by_rate.png,
and the L1 theory only where its assumptions hold.

Cells are written by the real job (``sweep.job.run``) or the real command line, so
their files are what a sweep writes; the theory's gating on hand-made cell tables.
"""

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from matplotlib.figure import Figure
from matplotlib.testing.compare import compare_images
from scipy.special import ndtr

import analysis
from analysis import (
    aggregate,
    compare,
    figures,
    per_feature,
    plots,
    report,
    theory,
    transition,
)
from analysis.aggregate import PlotAxes
from sweep import config, data, job
from sweep.schema import ANALYSIS_DIR, FEATURES_FILE, METRICS_FILE

try:
    from sweep_factory import make_sweep, planned_figures
except ImportError:  # tests/ imported as a package
    from tests.sweep_factory import make_sweep, planned_figures

DATA_COLUMNS = [f"data.{key}" for key in data.KEYS]
LATER_MODEL = ["model.geometry", "model.target_cos"]
NO_CURVE = "no L1 theory curve: its assumptions (independent features of equal rate,"
SMALL = {"n_features": 20, "n_samples": 60, "n_train": 100, "trials": 2}


def flat_config(method: str, **keys) -> dict:
    """A complete flat configuration, as the command line makes it: every default
    (conf/config.yaml, the method's and the random model's), then ``keys``."""
    defaults = config._defaults(method, "random")
    return config.normalise(defaults | {"method": method, "model": "random"} | keys)


def run_cells(root: Path, cells: list[dict]) -> Path:
    """A sweep folder of these flat configurations, each run by the real job."""
    for flat in cells:
        name = config.cell_name(flat)
        status = job.run(config.nest(flat), root / name, sweep=root.name, cell=name)
        assert status["status"] == "ok", status.get("error")
    return root


def analysed(sweep: Path) -> figures.Sweep:
    return report.analysed(sweep, analysis.load(sweep))


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- config columns ------------------------------------------------------------------


def test_data_keys_are_config_columns_never_metrics():
    frame = pd.DataFrame(
        {
            "neurons": [5, 5],
            "data.zipf_exponent": [1.0, 2.0],
            "data.firing": ["zipf", "zipf"],
            "data.new_key": [1, 1],  # a data key this analysis does not know yet
            "model": "random",
            "model.geometry": "gaussian",
            "method": "omp",
            "success_rate": [0.5, 0.6],
        }
    )
    assert aggregate.config_columns(frame) == [
        "neurons", "data.firing", "data.zipf_exponent", "data.new_key", "model",
        "model.geometry", "method",
    ]  # fmt: skip
    assert aggregate.metric_columns(frame) == ["success_rate"]
    assert aggregate.varying_keys(frame) == ["data.zipf_exponent"]


def test_older_rows_get_the_defaults_of_their_method_and_model():
    """Rows written before the keys existed (NaN where newer rows have them) get
    the default of their method and model; a toy model has no geometry."""
    frame = pd.DataFrame(
        {
            "model": ["random", "random", "toy_relu"],
            "method": ["omp", "omp", "readout"],
            "data.firing": ["zipf", None, None],
            "data.zipf_exponent": [2.0, np.nan, np.nan],
            "data.exclusive": [True, None, None],
            "data.hierarchy_trees": [None, None, None],
            "model.geometry": ["orthogonal", None, None],
            "model.target_cos": [0.1, np.nan, np.nan],
        }
    )
    filled = aggregate.tidy(frame)
    assert filled["data.firing"].tolist() == ["zipf", "constant", "constant"]
    assert filled["data.zipf_exponent"].tolist() == [2.0, 1.0, 1.0]
    assert filled["data.exclusive"].tolist() == [True, False, False]
    assert filled["data.hierarchy_trees"].isna().all()  # its default is null
    assert filled["model.geometry"].tolist()[:2] == ["orthogonal", "gaussian"]
    assert filled["model.target_cos"].tolist()[:2] == [0.1, 0.0]
    assert pd.isna(filled["model.geometry"].iloc[2])  # toy_relu: no such key
    without = frame.drop(columns=[c for c in frame if c.startswith("data.")])
    assert aggregate.tidy(without).columns.tolist() == without.columns.tolist()


def _with_data_columns(sweep: Path, cells: list[Path] | None = None) -> None:
    """Write the data keys and the random model's geometry at their defaults into
    the metrics.parquet of ``cells`` (default: all), as a newer sweep writes them."""
    defaults = config._defaults("omp", "random")
    added = {key: defaults[key] for key in [*DATA_COLUMNS, *LATER_MODEL]}
    for cell in cells or [p.parent for p in sweep.glob(f"*/{METRICS_FILE}")]:
        rows = pd.read_parquet(cell / METRICS_FILE)
        rows.assign(**added).to_parquet(cell / METRICS_FILE, index=False)


def test_old_sweep_analyses_as_a_new_one_at_the_defaults(tmp_path, caplog):
    """The same sweep without the data columns (written before they existed), with
    them at their defaults in every cell, and in half of its cells: the same cells,
    numbers and figures; the older one gains no column; nothing is taken for a
    duplicate configuration."""
    old = make_sweep(tmp_path / "old")
    new, mixed = (tmp_path / kind / old.name for kind in ("new", "mixed"))
    for copy in (new, mixed):
        shutil.copytree(old, copy)
    _with_data_columns(new)
    _with_data_columns(mixed, sorted(p.parent for p in mixed.glob("*/metrics*"))[::2])
    with caplog.at_level(logging.INFO):
        outs = [analysis.run(sweep) for sweep in (old, new, mixed)]
    assert errors(caplog) == [] and "same configuration" not in caplog.text
    results = [pd.read_parquet(out / "results.parquet") for out in outs]
    assert not any(c.startswith(("data.", "model.")) for c in results[0])
    for later in results[1:]:
        assert later["data.firing"].eq("constant").all()
        assert later["model.geometry"].eq("gaussian").all()
        shown = later.drop(columns=[*DATA_COLUMNS, *LATER_MODEL])
        pd.testing.assert_frame_equal(shown, results[0])
    pd.testing.assert_frame_equal(results[1], results[2])
    plans = [planned_figures(sweep) for sweep in (old, new, mixed)]
    assert list(plans[0]) == list(plans[1]) == list(plans[2])
    for file, planned in plans[0].items():
        assert plans[1][file].caption == plans[2][file].caption == planned.caption
        for out in outs[1:]:
            assert compare_images(outs[0] / file, out / file, 1.0) is None, file


def test_an_old_sweep_compares_with_a_new_one_at_the_defaults(tmp_path):
    """Compared, an old sweep and a newer one at the defaults differ in no key; one
    on Zipf data differs in data.firing alone."""
    old = make_sweep(tmp_path / "old", neurons=(5, 10))
    new, zipf = (tmp_path / kind / old.name for kind in ("new", "zipf"))
    for copy in (new, zipf):
        shutil.copytree(old, copy)
    _with_data_columns(new)
    _with_data_columns(zipf)
    for cell in zipf.glob(f"*/{METRICS_FILE}"):
        pd.read_parquet(cell).assign(**{"data.firing": "zipf"}).to_parquet(cell)
    same = compare.compare([old, new], ["old", "new"], "success_rate")
    assert same.keys == ["neurons", "sparsity", "method"]
    assert compare.differing_keys(same).empty
    other = compare.compare([old, zipf], ["old", "zipf"], "success_rate")
    differ = compare.differing_keys(other)
    assert differ.to_dict("records") == [
        {"key": "data.firing", "old": "constant", "zipf": "zipf"}
    ]


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory) -> Path:
    """The real command line: data.firing x data.correlation, string-valued keys."""
    sweep = tmp_path_factory.mktemp("cli") / "sweep"
    grid = [
        "-m", "data.firing=zipf,linear", "data.correlation=none,pairs", "method=omp",
        "neurons=8", "n_features=20", "n_samples=40", "trials=2", "sparsity=0.05",
        "cell_memory_gb=2", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    done = run_cli("sweep", *grid)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "same configuration" not in done.stdout + done.stderr
    return sweep


def test_string_data_keys_split_cells_and_become_panels(cli_sweep):
    results = pd.read_parquet(cli_sweep / ANALYSIS_DIR / "results.parquet")
    assert len(results) == 4 and (results["n_trials"] == 2).all()
    pairs = set(zip(results["data.firing"], results["data.correlation"], strict=True))
    assert pairs == {(f, c) for f in ("zipf", "linear") for c in ("none", "pairs")}
    assert "data.zipf_exponent_sem" not in results  # a key, not a metric
    sweep = analysed(cli_sweep)
    assert sweep.axes.panels == ("data.firing", "data.correlation")
    fig = planned_figures(cli_sweep)["phase_success_rate.png"].draw()
    bars = [p.get_height() for p in fig.axes[0].patches]
    expected = results.sort_values(["data.firing", "data.correlation"])
    np.testing.assert_allclose(bars, expected["success_rate"])


def test_the_cells_table_lists_every_cell(cli_sweep):
    cells = pd.read_csv(cli_sweep / ANALYSIS_DIR / "cells.csv")
    assert len(cells) == 4 and (cells["status"] == "ok").all()
    assert all("data.firing=" in name for name in cells["cell_dir"])


# --- features_by_rate.png ------------------------------------------------------------


@pytest.fixture(scope="module")
def rate_sweep(tmp_path_factory) -> Path:
    """omp (given W) and ica (learned) on Zipf data at two sparsities, by the job."""
    root = tmp_path_factory.mktemp("rates") / "sweep"
    keys = SMALL | {"neurons": 10, "data.firing": "zipf"}
    cells = [
        flat_config(method, sparsity=p, **keys)
        for method in ("omp", "ica")
        for p in (0.02, 0.06)
    ]
    return run_cells(root, cells)


def test_mean_square_of_a_value_matches_draws():
    """E[v_i^2] of each magnitude, against the values the sweep draws."""
    rng = np.random.default_rng(0)
    for magnitude in ("uniform", "constant", "folded_normal"):
        keys = data.DEFAULTS | {"magnitude": magnitude, "magnitude_spread": 3.0,
                                "magnitude_mean": 0.5}  # fmt: skip
        dist = data.features(5, 0.5, None, keys, rng)
        X = dist.sample(40_000, rng)
        cell = pd.Series({"n_features": 5, "sparsity": 0.5, "k": np.nan})
        cell = pd.concat([cell, pd.Series(keys).add_prefix("data.")])
        expected = dist.rates * per_feature.active_mean_square(cell)
        np.testing.assert_allclose((X**2).mean(axis=0), expected, rtol=0.04)


def test_bins_and_their_means_by_hand():
    rates = np.array([0.001, 0.002, 0.01, 0.1])
    edges = per_feature.rate_bins(rates)
    assert len(edges) == 5 and edges[0] == 0.001 and edges[-1] >= 0.1
    pooled = pd.DataFrame({per_feature.RATE: rates, "v": [1.0, 3.0, 5.0, 7.0]})
    line = per_feature.binned(pooled, "v", np.array([0.001, 0.005, 0.2]))
    np.testing.assert_allclose(line["v"], [2.0, 6.0])
    np.testing.assert_allclose(line[per_feature.RATE], [np.sqrt(2e-6), np.sqrt(1e-3)])
    assert line["features"].tolist() == [2, 2]
    assert len(per_feature.rate_bins(np.full(3, 0.1))) == 2  # equal rates: one bin


def _line(ax, label: str):
    (found,) = [line for line in ax.lines if line.get_label() == label]
    return found


def test_by_rate_draws_relative_error_and_matched_cosine(rate_sweep):
    sweep = analysed(rate_sweep)
    assert per_feature._applies_by_rate(sweep)
    fig = planned_figures(rate_sweep)[per_feature.RATE_FILE].draw()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["sparsity=0.02", "sparsity=0.06"] * 2
    features = sweep.features
    rates = pd.to_numeric(features[per_feature.RATE]).to_numpy(float)
    edges = per_feature.rate_bins(rates[rates > 0])
    for row, (method, value) in enumerate((("omp", "error"), ("ica", "cosine"))):
        for ax, p in zip(titled[2 * row : 2 * row + 2], (0.02, 0.06), strict=True):
            assert ax.get_xscale() == "log"
            cell = features[
                (features["method"] == method) & (features["sparsity"] == p)
            ]
            n = cell.groupby("trial").size().iloc[0]
            assert len(cell) == 2 * n  # both trials pooled
            rate = cell[per_feature.RATE].to_numpy(float)
            if value == "error":  # U[0, 1] values: E[x_i^2] = rate_i / 3
                y = cell[per_feature.ERROR].to_numpy(float) / (rate / 3)
            else:
                y = cell[per_feature.COSINE].to_numpy(float)
            pooled = pd.DataFrame({per_feature.RATE: rate, "y": y,
                                   "feature": cell["feature"].to_numpy()})  # fmt: skip
            pooled = pooled.groupby("feature").mean().sort_values(per_feature.RATE)
            line = per_feature.binned(pooled, "y", edges)
            shown = _line(ax, method)
            np.testing.assert_allclose(shown.get_xdata(), line[per_feature.RATE])
            low = per_feature.NMSE_FLOOR if value == "error" else -np.inf
            np.testing.assert_allclose(shown.get_ydata(), np.clip(line["y"], low, None))
            assert len(ax.lines) == 2  # its method's line, the dotted reference
    assert titled[0].get_yscale() == "log" and titled[2].get_yscale() == "linear"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ica", "omp"]


def test_by_rate_caption_says_what_is_better(rate_sweep):
    caption = planned_figures(rate_sweep)[per_feature.RATE_FILE].caption
    assert "mse_i / E[x_i^2]" in caption and "lower is better" in caption
    assert "cosine of the atom matched to it (higher is better" in caption
    assert "a line per method" in caption and "at neurons=" not in caption
    assert "a column per sparsity (0.02, 0.06)" in caption


def test_by_rate_only_where_rates_differ(tmp_path, rate_sweep):
    constant = run_cells(tmp_path / "constant", [
        flat_config("omp", sparsity=0.05, neurons=10, **SMALL),
        flat_config("omp", sparsity=0.05, neurons=10, **SMALL, **{"data.firing":
                    "linear", "data.firing_ratio": 1.0}),  # equal rates after all
    ])  # fmt: skip
    assert per_feature.RATE_FILE not in planned_figures(constant)
    assert per_feature.RATE_FILE in planned_figures(rate_sweep)
    old = make_sweep(tmp_path / "old")  # written before firing_rate existed
    assert per_feature.RATE_FILE not in planned_figures(old)
    tree = {"data.hierarchy_depth": 1, "data.hierarchy_branching": 3}
    trees = run_cells(tmp_path / "tree", [
        flat_config("omp", sparsity=0.05, neurons=10, **SMALL, **tree)
    ])  # fmt: skip
    assert per_feature.RATE_FILE not in planned_figures(trees)  # children as parents
    run_cells(trees, [flat_config("omp", sparsity=0.05, neurons=10, **SMALL, **tree,
                                  **{"data.exclusive": True})])  # fmt: skip
    assert per_feature.RATE_FILE in planned_figures(trees)  # a child: 1/3 a parent


# --- the L1 theory only where its assumptions hold -----------------------------------


def _cells(**keys) -> pd.DataFrame:
    base = {"model": "random", "method": "basis_pursuit", "method.positive": False,
            "n_features": 200, "noise": 0.0, "neurons": 100, "sparsity": 0.1,
            "success_tol": 0.01, **{f"data.{k}": v for k, v in data.DEFAULTS.items()},
            "model.geometry": "gaussian", "model.target_cos": 0.0}  # fmt: skip
    return pd.DataFrame([base | keys])


@pytest.mark.parametrize(
    ("keys", "failing"),
    [
        ({}, []),
        ({"sparsity": None, "k": 20}, []),  # exactly k: one rate
        ({"data.magnitude": "folded_normal"}, []),  # exact L1: support and signs
        ({"data.firing": "zipf"}, ["data.firing=zipf"]),
        ({"data.firing": "linear", "data.firing_ratio": 1.0}, []),  # one rate
        ({"data.correlation": "pairs"}, ["data.correlation=pairs"]),
        ({"data.correlation": "low_rank", "data.correlation_strength": 0.0}, []),
        ({"data.hierarchy_depth": 2}, ["data.hierarchy_depth=2"]),
        ({"model.geometry": "orthogonal"}, ["model.geometry=orthogonal"]),
        ({"data.firing": "zipf", "model.geometry": "orthogonal"},
         ["data.firing=zipf", "model.geometry=orthogonal"]),
    ],
)  # fmt: skip
def test_curve_only_where_its_assumptions_hold(keys, failing):
    cells = _cells(**keys)
    assert transition.assumptions_fail(cells) == failing
    assert transition.curve_kind(cells) is (None if failing else False)
    assert transition.solver_kind(cells) is False  # basis pursuit on random W


def test_cells_without_the_keys_hold_the_assumptions():
    old = _cells().drop(columns=[*DATA_COLUMNS, *LATER_MODEL])
    assert transition.curve_kind(old) is False


AXES = PlotAxes("sparsity", "neurons", ("data.firing", "method"))


def _trials(firing: str, method: str = "basis_pursuit", n: int = 200) -> pd.DataFrame:
    """Rows whose success falls through 50 % at the theory's boundary."""
    rows = []
    for m in range(n // 10, n, n // 10):
        p50 = theory.critical_sparsity(m / n)
        for p in np.geomspace(0.005, 0.95, 12):
            rate = float(ndtr((np.log(p50) - np.log(p)) / 0.25))
            cells = _cells(neurons=m, sparsity=p, n_features=n, method=method,
                           **{"data.firing": firing})  # fmt: skip
            rows.append(cells.assign(success_rate=rate, frac_zero=0.0, n_samples=2000))
    return pd.concat(rows, ignore_index=True)


def _theory_lines(fig: Figure) -> list[int]:
    color = transition.THEORY_STYLE["color"]
    return [sum(line.get_color() == color for line in ax.lines)
            for ax in fig.axes if ax.get_title()]  # fmt: skip


def test_phase_diagram_has_no_curve_where_assumptions_fail_and_says_why():
    trials = pd.concat([_trials("constant"), _trials("zipf")], ignore_index=True)
    fig = plots.phase_figure(trials, AXES, "success_rate")
    assert _theory_lines(fig) == [1, 0]  # constant, zipf
    marks = plots.phase_marks(trials, AXES, "success_rate")
    assert f"{NO_CURVE} Gaussian W) do not hold for data.firing=zipf" in marks
    assert NO_CURVE in " ".join(fig.get_suptitle().split())  # as wrapped
    assert not any(NO_CURVE in m for m in plots.phase_marks(
        _trials("constant"), AXES, "success_rate"))  # fmt: skip
    omp = _trials("zipf", method="omp").assign(**{"method.positive": None})
    assert not any(NO_CURVE in m for m in plots.phase_marks(omp, AXES, "success_rate"))


def test_no_boundary_comparison_where_assumptions_fail():
    trials = pd.concat([_trials("constant"), _trials("zipf")], ignore_index=True)
    table = transition.boundaries(trials, AXES)
    assert set(table["panel"]) == {"data.firing=constant, method=basis_pursuit"}
    assert all("zipf" not in line for line in transition.verdicts(table))
    sweep = figures.Sweep(Path("s"), trials, AXES, pd.DataFrame(), table,
                          pd.DataFrame())  # fmt: skip
    (line,) = transition.omitted(sweep)
    assert line.startswith("No L1 theory curve and no 50 % boundary compared with it")
    assert line.endswith("do not hold for data.firing=zipf")
    only_constant = figures.Sweep(Path("s"), _trials("constant"), AXES,
                                  pd.DataFrame(), table, pd.DataFrame())  # fmt: skip
    assert transition.omitted(only_constant) == []


def test_donoho_tanner_plane_has_no_curve_where_assumptions_fail():
    trials = pd.concat([_trials("zipf", n=100), _trials("zipf", n=200)])
    axes = PlotAxes("sparsity", "neurons", ("n_features", "method", "data.firing"))
    fig = plots.dt_figure(trials, axes, "success_rate")
    assert _theory_lines(fig) == [0]
    assert any(NO_CURVE in mark for mark in plots.dt_marks(trials, axes))
    constant = pd.concat([_trials("constant", n=100), _trials("constant", n=200)])
    assert _theory_lines(plots.dt_figure(constant, axes, "success_rate")) == [1]
    assert not any(NO_CURVE in mark for mark in plots.dt_marks(constant, axes))


def test_a_real_sweep_says_why_on_its_captions_and_page(tmp_path, caplog):
    """basis pursuit on constant and Zipf firing, by the real job: the curve and
    the boundary for the constant panel only, the sentence on the captions and
    the page."""
    cells = [
        flat_config("basis_pursuit", neurons=m, sparsity=p, **SMALL,
                    **{"data.firing": firing})
        for firing in ("constant", "zipf") for m in (6, 12) for p in (0.02, 0.08)
    ]  # fmt: skip
    sweep = run_cells(tmp_path / "sweep", cells)
    with caplog.at_level(logging.INFO):
        out = analysis.run(sweep)
    assert errors(caplog) == []
    planned = planned_figures(sweep)
    sentence = f"{NO_CURVE} Gaussian W) do not hold for data.firing=zipf"
    caption = planned["phase_success_rate.png"].caption
    assert sentence[1:] in caption and "Red dashed" in caption
    fig = planned["phase_success_rate.png"].draw()
    assert _theory_lines(fig) == [1, 0]
    page = (out / "report.html").read_text()
    assert "No L1 theory curve and no 50 % boundary compared with it" in page
    boundary = analysed(sweep).boundary
    assert set(boundary["panel"]) <= {"data.firing=constant"}
    assert pd.read_parquet(out / "results.parquet")["data.firing"].nunique() == 2
    for cell in cells:
        assert (sweep / config.cell_name(cell) / FEATURES_FILE).is_file()
