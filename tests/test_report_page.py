"""What goes on report.html: captions, the command and grid, best method per cell,
unfinished cells; and a real sweep's page opened in headless Chromium."""

import dataclasses
import html

import matplotlib.image as mpimg
import pandas as pd
import pytest
from browser import chromium, page_check
from conftest import run_cli
from sweep_factory import make_sweep, planned_figures

from analysis import figures, load, page, report
from analysis.aggregate import PlotAxes
from sweep import schema

REGISTERED = {entry.name: entry for entry in figures.registered()}


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory):
    """A 2-D sweep (the figures' captions are written for it), its Sweep."""
    sweep = make_sweep(tmp_path_factory.mktemp("captions"), trials=2)
    return report.analysed(sweep, load(sweep))


@pytest.mark.parametrize("entry", REGISTERED.values(), ids=list(REGISTERED))
def test_every_figure_has_a_caption(entry, fake_sweep):
    fields = {field: "nmse" for field in entry.fields}  # a metric, for metric fields
    text = entry.caption_of(fields, fake_sweep)
    assert len(text) > 40 and "{" not in text
    assert entry.matches(entry.name.format(**fields))


def test_phase_caption_names_the_metric(fake_sweep):
    phase = REGISTERED["phase_{metric}.png"]
    text = phase.caption_of({"metric": "success_rate"}, fake_sweep)
    assert text.startswith("Phase diagram of success rate (fraction")
    capacity = REGISTERED["capacity_{metric}.png"]
    text = capacity.caption_of({"metric": "nmse"}, fake_sweep)
    assert text.startswith("Capacity plot of NMSE (")
    assert "against neurons, a line per sparsity value, a panel per method;" in text


def test_figures_that_lead_come_first(fake_sweep, monkeypatch):
    """A figure whose ``leads`` holds for the sweep is planned before the others,
    each group in registry order."""
    entries = figures.registered()
    order = [p.file for p in figures.planned(fake_sweep)]
    heatmaps = next(e for e in entries if e.name == "heatmaps.png")
    leading = dataclasses.replace(heatmaps, leads=figures.always)
    patched = [leading if e is heatmaps else e for e in figures._REGISTRY]
    monkeypatch.setattr(figures, "_REGISTRY", patched)
    led = [p.file for p in figures.planned(fake_sweep)]
    assert led == ["heatmaps.png", *(f for f in order if f != "heatmaps.png")]
    assert order.index("heatmaps.png") > 0


def test_command_and_grid_from_multirun_yaml(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: [hydra.sweep.dir=/x]\n"
        "    task: [experiment=default, 'neurons=5,10', seed=3]\n"
        "  sweeper:\n    params: {neurons: '10,20,40', sparsity: '0.01,0.05'}\n"
    )
    command, grid = page.sweep_command(tmp_path)
    assert command == (
        "python -m sweep -m experiment=default neurons=5,10 seed=3 hydra.sweep.dir=/x"
    )
    assert grid == {"neurons": ["5", "10"], "sparsity": ["0.01", "0.05"]}


def test_ranges_are_expanded_and_quoted_for_the_shell(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: [hydra.mode=MULTIRUN]\n"
        "    task: ['neurons=range(10,40,10)', ++method.max_iter=5, sparsity=0.1]\n"
        "  sweeper:\n    params: {sparsity: '0.01,0.05'}\n"
    )
    command, grid = page.sweep_command(tmp_path)
    assert command == (
        "python -m sweep -m 'neurons=range(10,40,10)' ++method.max_iter=5 sparsity=0.1"
    )
    assert grid == {"sparsity": ["0.1"], "neurons": ["10", "20", "30"]}


def test_a_glob_over_a_config_group_is_shown_as_written(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: []\n    task: [experiment=smoke]\n"
        "  sweeper:\n    params: {neurons: '5,10', method: 'glob(*)'}\n"
    )  # only Hydra's config loader can list the method files
    _, grid = page.sweep_command(tmp_path)
    assert grid == {"neurons": ["5", "10"], "method": ["glob(*)"]}


def test_no_multirun_yaml_says_not_recorded(tmp_path):
    assert page.sweep_command(tmp_path) == ("not recorded", None)


def test_best_methods_tell_variants_apart():
    results = pd.DataFrame({
        "method": ["basis_pursuit", "basis_pursuit", "omp", "omp"],
        "method.positive": [False, True, None, None],
        "neurons": [10, 10, 20, 20], "sparsity": 0.1, "status": "ok",
        "success_rate": [0.5, 0.9, 0.3, 0.3], "nmse": [0.1, 0.2, 0.3, 0.4],
    })  # fmt: skip
    axes = PlotAxes(x="sparsity", y="neurons", panels=("method", "method.positive"))
    best = page.best_methods(results, axes)
    assert best["method"].tolist() == [
        "basis_pursuit method.positive=True", "omp",
    ]  # fmt: skip
    assert best["success_rate"].tolist() == [0.9, 0.3]


def test_smoke_report_opens_in_chromium(tmp_path):
    """The smoke preset's report.html: every figure the analysis wrote is on the
    page and loads, with a caption; no page errors; a screenshot is kept."""
    sweep = tmp_path / "s"
    out = run_cli("sweep", "-m", "experiment=smoke", "method=omp,basis_pursuit,sae",
                  f"hydra.sweep.dir={sweep}", "hydra.job.name=cell")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    analysis = sweep / schema.ANALYSIS_DIR
    text = (analysis / report.REPORT_FILE).read_text()
    drawn = sorted(p.name for p in analysis.glob("*.png"))
    assert len(drawn) >= 8 and all(f in text for f in drawn)
    planned = planned_figures(sweep)  # each with its registered caption
    assert sorted(planned) == drawn
    for file, figure in planned.items():
        assert f"<code>{file}</code>: {html.escape(figure.caption)}" in text
    assert "experiment=smoke" in text
    check = page_check(text, tmp_path, "copy.html")
    assert check["images_total"] == check["images_loaded"] == len(drawn)
    assert check["errors"] == 0, check
    shot = tmp_path / "report-smoke.png"  # pytest's folder: nothing in the checkout
    chromium(analysis / report.REPORT_FILE, f"--screenshot={shot}",
             "--window-size=1280,3000")  # fmt: skip
    assert mpimg.imread(shot)[..., :3].std() > 0.05  # not a blank page
