"""frontier.png (recovery against measured L0, a line per architecture) and
training_curves.png (the SAE cells' training.parquet).

The series and rows are checked on hand-made cell tables; the whole analysis on a
fake sweep folder (``sweep_factory``) whose metrics files gain the columns the
job writes for these figures and whose SAE cells hold a training.parquet.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from analysis import aggregate, figures, frontier
from sweep.schema import ANALYSIS_DIR, METRICS_FILE, TRAINING_COLUMNS, TRAINING_FILE

try:
    from sweep_factory import make_sweep, planned_figures
except ImportError:  # tests/ imported as a package
    from tests.sweep_factory import make_sweep, planned_figures

NAME = "2025-01-01_12-00-00"
KS = (2, 4, 8)
SLOPE = {"topk": 1.0, "batchtopk": 1.5}  # l0 = SLOPE x method.k, + 0.1 per trial
TRUE_L0 = 4.0
STEPS = np.array([0, 20, 50, 100, 200, 500, 1000])
BATCH = 256


# --- hand-made cell tables -----------------------------------------------------------


def scores(l0: float, *, learned: bool) -> dict:
    """Metrics that rise with l0 up to the true L0 (made-up, known numbers)."""
    f1 = 1 / (1 + abs(np.log(l0 / TRUE_L0)))
    found = {"l0": l0, "l0_sem": 0.1, "latent_f1": f1, "latent_f1_sem": 0.02,
             "explained_variance": 1 - 1 / (1 + l0), "explained_variance_sem": 0.01,
             "true_l0": TRUE_L0}  # fmt: skip
    if learned:
        found |= {"mcc_matched": 0.9 * f1, "mcc_matched_sem": 0.03}
    return found


def cell(method: str, l0: float, **keys) -> dict:
    """One row of results.parquet: config, status, and ``scores``."""
    learned = method in ("sae", "dict_learning")
    row = {"n_features": 20, "neurons": 10, "sparsity": 0.2, "S": 0.8, "method": method}
    row |= keys | {"status": "ok", "n_trials": 3}
    return row | scores(l0, learned=learned)


def frontier_table(**keys) -> pd.DataFrame:
    """Two SAE architectures x three sparsity settings (topk by method.k, relu by
    method.l1: l0 falls as l1 rises), omp at one setting, lasso at three alphas."""
    rows = [cell("sae", k, **{"method.architecture": "topk", "method.k": k,
                              "method.l1": 0.3}, **keys) for k in KS]  # fmt: skip
    rows += [cell("sae", 3 / l1, **{"method.architecture": "relu", "method.k": 5,
                                    "method.l1": l1}, **keys)
             for l1 in (0.1, 0.3, 1.0)]  # fmt: skip
    rows += [cell("omp", 4.0, **keys)]
    rows += [cell("lasso", 2 / a, **{"method.alpha": a}, **keys) for a in (0.1, 0.5, 1)]
    frame = pd.DataFrame(rows)
    return frame.assign(cell_dir=[f"cell{i}" for i in range(len(frame))])


def as_sweep(results: pd.DataFrame, folder: Path) -> figures.Sweep:
    axes = aggregate.choose_axes(results)
    return figures.Sweep(folder, results, axes, pd.DataFrame(), pd.DataFrame(),
                         pd.DataFrame())  # fmt: skip


def planned_here(results: pd.DataFrame, folder: Path) -> dict[str, figures.Planned]:
    return {p.file: p for p in figures.planned(as_sweep(results, folder))}


def series_shown(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The error-bar series of a panel: label -> (x, y) of its points."""
    return {
        c.get_label(): (c.lines[0].get_xdata(), c.lines[0].get_ydata())
        for c in ax.containers
    }


def test_a_line_per_architecture_sorted_by_l0_known_methods_on_two_panels(tmp_path):
    results = frontier_table().sample(frac=1, random_state=0)  # any order of rows
    planned = planned_here(results, tmp_path)
    assert frontier.FILE in planned
    fig = planned[frontier.FILE].draw()
    mcc, f1, ev = fig.axes[:3]
    assert len(fig.axes) == 3  # one row: nothing but the method keys varies
    learned = ["sae relu", "sae topk"]
    assert list(series_shown(mcc)) == learned  # no mcc_matched for omp and lasso
    assert list(series_shown(f1)) == list(series_shown(ev)) == [*learned, "lasso",
                                                                "omp"]  # fmt: skip
    for ax, metric in ((mcc, "mcc_matched"), (f1, "latent_f1"),
                       (ev, "explained_variance")):  # fmt: skip
        for label, (x, y) in series_shown(ax).items():
            method, *architecture = label.split()
            cells = results[results["method"] == method]
            if architecture:
                cells = cells[cells["method.architecture"] == architecture[0]]
            cells = cells.sort_values("l0")
            assert np.all(np.diff(x) > 0), label  # joined in order of l0
            np.testing.assert_allclose(x, cells["l0"])
            np.testing.assert_allclose(y, cells[metric])
            assert len(x) == (1 if method == "omp" else 3)
    (omp,) = [c for c in f1.containers if c.get_label() == "omp"]
    assert omp.lines[0].get_linestyle() == "None"  # a lone point, not a line
    (relu,) = [c for c in mcc.containers if c.get_label() == "sae relu"]
    assert relu.has_xerr and relu.has_yerr  # from the _sem columns
    segments = [s for bars in relu.lines[2] for s in bars.get_segments()]
    (vertical,) = [s for s in segments if s[0][0] == s[1][0] == 3.0]  # l1=1: l0 3
    assert abs(vertical[1][1] - vertical[0][1]) == pytest.approx(2 * 0.03)
    for ax in (mcc, f1, ev):
        (true,) = [line for line in ax.lines if line.get_label().startswith("true L0")]
        assert list(true.get_xdata()) == [TRUE_L0, TRUE_L0]
    assert mcc.get_xscale() == "log"  # l0 from 2 to 30


def test_caption_says_what_which_way_and_how_lines_are_formed(tmp_path):
    caption = planned_here(frontier_table(), tmp_path)[frontier.FILE].caption
    assert "higher is better for all three" in caption
    assert "A line per method, method.architecture" in caption
    assert "(method.k, method.l1, method.alpha), sorted by L0" in caption
    assert "Known-dictionary methods (lasso; omp) appear on the latent_f1" in caption
    assert "true L0" in caption and "standard error" in caption
    assert "log scale" in caption


def test_a_row_per_other_swept_key_with_its_own_true_l0(tmp_path):
    results = pd.concat([frontier_table(neurons=10),
                         frontier_table(neurons=20).assign(true_l0=6.0)])  # fmt: skip
    fig = planned_here(results, tmp_path)[frontier.FILE].draw()
    assert len(fig.axes) == 6
    for ax, (neurons, true_l0) in zip(fig.axes[::3], ((10, 4.0), (20, 6.0)),
                                      strict=True):  # fmt: skip
        assert f"neurons={neurons}" in ax.get_title()
        (true,) = [line for line in ax.lines if line.get_label().startswith("true L0")]
        assert true.get_xdata()[0] == true_l0
        assert list(series_shown(ax)) == ["sae relu", "sae topk"]
    caption = planned_here(results, tmp_path)[frontier.FILE].caption
    assert "A row per neurons." in caption and "Shown:" not in caption


def test_at_most_four_rows_and_the_caption_names_those_left_out(tmp_path, caplog):
    results = pd.concat([frontier_table(neurons=n) for n in (5, 10, 20, 40, 80, 160)])
    planned = planned_here(results, tmp_path)[frontier.FILE]
    assert "the first 4 of 6 rows (left out: neurons=80; neurons=160)" in (
        planned.caption
    )
    with caplog.at_level(logging.INFO):
        fig = planned.draw()
    assert len(fig.axes) == 4 * 3
    assert "left out: neurons=80; neurons=160" in caplog.text


def test_no_frontier_without_mcc_matched_or_l0(tmp_path):
    table = frontier_table()
    old = table.drop(columns=["mcc_matched", "mcc_matched_sem"])
    assert not frontier.applies(old)  # a sweep written before mcc_matched
    assert not frontier.applies(table.assign(mcc_matched=np.nan))
    assert not frontier.applies(table.drop(columns=["l0"]))
    assert not frontier.applies(table.assign(l0=np.nan))
    assert not frontier.applies(table.assign(status="failed"))
    assert frontier.FILE not in planned_here(old, tmp_path)
    sweep = make_sweep(tmp_path)  # the fake cells of older sweeps
    planned = planned_figures(sweep)
    assert frontier.FILE not in planned and frontier.TRAINING not in planned


def test_a_panel_whose_metric_the_sweep_lacks_says_so(tmp_path):
    """A sweep with mcc_matched but written before latent_f1: drawn, its middle
    panel empty with a note."""
    results = frontier_table().drop(columns=["latent_f1", "latent_f1_sem"])
    fig = planned_here(results, tmp_path)[frontier.FILE].draw()
    assert list(series_shown(fig.axes[0])) == ["sae relu", "sae topk"]
    assert not fig.axes[1].containers
    assert [t.get_text() for t in fig.axes[1].texts] == ["no latent_f1 in this sweep"]


def test_other_swept_method_keys_split_the_series():
    results = pd.concat([frontier_table().assign(**{"method.expansion": e})
                         for e in (1.0, 2.0)])  # fmt: skip
    results.loc[results["method"] != "sae", "method.expansion"] = np.nan
    results = results.drop_duplicates(["method", "method.alpha", "method.k",
                                       "method.l1", "method.expansion"])  # fmt: skip
    keys, by, rows = frontier.frontier_rows(results)
    assert keys == [] and by == ["method", "method.architecture", "method.expansion"]
    ((_, series),) = rows
    labels = [s.label for s in series]
    assert labels[:4] == [
        "sae relu, method.expansion=1", "sae relu, method.expansion=2",
        "sae topk, method.expansion=1", "sae topk, method.expansion=2",
    ]  # fmt: skip
    assert labels[4:] == ["lasso", "omp"]
    assert [len(s.cells) for s in series] == [3, 3, 3, 3, 3, 1]


# --- training curves -----------------------------------------------------------------


def training_rows(l0: float, *, trials: int = 2) -> pd.DataFrame:
    """training.parquet of a cell: a row per trial and logged step."""
    trial, step = np.meshgrid(np.arange(trials), STEPS, indexing="ij")
    trial, step = trial.ravel(), step.ravel()
    progress = step / STEPS[-1]
    return pd.DataFrame({
        "trial": trial, "step": step, "samples": step * BATCH,
        "loss": 1.0 / (1 + 10 * progress) + 0.01 * trial,
        "l0": l0 * (2 - progress), "dead_fraction": 0.3 * progress,
        "explained_variance": progress, "mcc_matched": 0.5 + 0.4 * progress,
    })[list(TRAINING_COLUMNS)]  # fmt: skip


def sae_sweep(root: Path, *, damaged: str | None = None) -> Path:
    """Two architectures x three method.k of method=sae and one omp cell, with the
    metrics frontier.png needs; every SAE cell holds a training.parquet (``damaged``:
    that cell's is not parquet at all)."""
    sweep = make_sweep(root, methods=("sae",), neurons=(10,), sparsity=(0.2,),
                       trials=2, name=NAME,
                       extra_keys={"method.architecture": tuple(SLOPE),
                                   "method.k": KS})  # fmt: skip
    make_sweep(root, methods=("omp",), neurons=(10,), sparsity=(0.2,), trials=2,
               name=NAME)  # fmt: skip
    for path in sweep.glob(f"*/{METRICS_FILE}"):
        rows = pd.read_parquet(path)
        learned = rows["method"].iloc[0] == "sae"
        l0 = rows["trial"] * 0.1 + (
            rows["method.k"] * rows["method.architecture"].map(SLOPE)
            if learned
            else 4.0
        )
        found = pd.DataFrame([scores(v, learned=learned) for v in l0])
        found = found[[c for c in found if not c.endswith("_sem")]]
        rows = rows.drop(columns=["l0"]).join(found)
        rows.to_parquet(path, index=False)
        if learned:
            training = training_rows(float(l0.iloc[0]))
            training.to_parquet(path.parent / TRAINING_FILE, index=False)
    if damaged:
        (sweep / damaged / TRAINING_FILE).write_bytes(b"not a parquet file")
    return sweep


DAMAGED = "method=sae,method.architecture=topk,method.k=4,neurons=10,sparsity=0.2"


def test_the_analysis_draws_both_figures_and_skips_a_damaged_training_file(tmp_path):
    sweep = sae_sweep(tmp_path, damaged=DAMAGED)
    done = run_cli("analysis", str(sweep))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = sweep / ANALYSIS_DIR
    for file in (frontier.FILE, frontier.TRAINING):
        assert (out / file).stat().st_size > 0
        assert f"<code>{file}</code>" in (out / "report.html").read_text()
    assert f"WARNING: no training curve for {DAMAGED}" in done.stderr
    assert "ERROR" not in done.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert {"mcc_matched", "mcc_matched_sem", "latent_f1_sem"} <= set(results)
    planned = planned_figures(sweep)
    mcc, f1, _ = planned[frontier.FILE].draw().axes[:3]
    assert list(series_shown(mcc)) == ["sae batchtopk", "sae topk"]
    assert list(series_shown(f1)) == ["sae batchtopk", "sae topk", "omp"]
    for architecture, slope in SLOPE.items():
        x, _ = series_shown(mcc)[f"sae {architecture}"]
        np.testing.assert_allclose(x, slope * np.array(KS) + 0.05)  # trials 0, 1
    assert "A line per method, method.architecture" in planned[frontier.FILE].caption


def test_training_curves_a_line_per_readable_cell_mean_over_trials(tmp_path, caplog):
    sweep = sae_sweep(tmp_path, damaged=DAMAGED)
    planned = planned_figures(sweep)[frontier.TRAINING]
    with caplog.at_level(logging.WARNING):
        fig = planned.draw()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING
                  and frontier.__name__ == r.name]  # fmt: skip
    assert DAMAGED in warning.getMessage()
    loss, l0, dead, ev, mcc = fig.axes[:5]
    labels = [line.get_label() for line in loss.lines]
    assert len(labels) == 5  # six SAE cells, one unreadable
    assert "topk, method.k=4" not in labels and "batchtopk, method.k=4" in labels
    assert loss.get_yscale() == "log" and loss.get_xscale() == "log"
    expected = training_rows(2.0).groupby("step").mean()  # topk, k=2: its trial 0
    for ax, column in ((l0, "l0"), (loss, "loss")):  # loss differs between trials
        (line,) = [line for line in ax.lines if line.get_label() == "topk, method.k=2"]
        np.testing.assert_allclose(line.get_xdata(), expected["samples"])
        np.testing.assert_allclose(line.get_ydata(), expected[column])
    colors = {line.get_label().split(",")[0]: line.get_color() for line in mcc.lines}
    same = [line.get_color() for line in mcc.lines if line.get_label()
            .startswith("topk")]  # fmt: skip
    assert len(set(map(str, same))) == 1  # a colour per architecture
    assert colors["topk"] != colors["batchtopk"]
    assert [t.get_text() for t in fig.axes[5].get_legend().get_texts()] == labels
    assert "loss (log scale; lower is better)" in planned.caption
    for ax in (dead, ev):
        assert len(ax.lines) == 5


def test_at_most_twelve_cells_spread_over_each_architecture(tmp_path, caplog):
    cells = pd.DataFrame(
        [{"method": "sae", "method.architecture": a, "method.k": k,
          "cell_dir": f"{a}-{k:02d}", "status": "ok", "n_trials": 1}
         for a, n in (("topk", 14), ("relu", 6)) for k in range(n)]
    )  # fmt: skip
    picked, left = frontier.pick_cells(cells)
    assert len(picked) == frontier.MAX_CURVES and len(left) == 8
    by = picked.groupby("method.architecture")["method.k"].apply(list)
    assert by["relu"] == list(range(6))
    assert len(by["topk"]) == 6 and by["topk"][0] == 0 and by["topk"][-1] == 13
    assert set(picked["cell_dir"]).isdisjoint(left["cell_dir"])
    for name in cells["cell_dir"]:
        (tmp_path / name).mkdir()
        training_rows(1.0).to_parquet(tmp_path / name / TRAINING_FILE)
    planned = planned_here(cells, tmp_path)[frontier.TRAINING]
    assert "12 of 20 cells" in planned.caption
    with caplog.at_level(logging.INFO):
        fig = planned.draw()
    assert len(fig.axes[0].lines) == 12
    shown = [line.get_label() for line in fig.axes[0].lines]
    assert "relu, method.k=0" in shown and "topk, method.k=13" in shown
    names = [f"{a}, method.k={k}" for a, k in left[["method.architecture", "method.k"]]
             .itertuples(index=False)]  # fmt: skip
    assert f"left out: {'; '.join(names)}" in caplog.text
