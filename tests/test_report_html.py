"""report.html: the page builder, and the page opened in a real headless Chromium.

The browser tests need Debian's chromium (``apt-get install -y chromium``; .ci/run
installs it). Without it they fail, they are not skipped.
"""

import html
import io
import math
import re
import shutil

import matplotlib
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from browser import chromium, find_browser, page_check

from analysis.html import NONE_SUCCEEDS, Table, best_per_cell, render_report

matplotlib.use("Agg")

WINDOW = (1280, 2000)
ODD_CELL = 'cell <&> "x"'  # must come out escaped


# ---------------------------------------------------------------- inputs


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
    ax.plot(rng.normal(size=20).cumsum())
    ax.set_title(f"figure {seed}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


FIGURES = [
    ("phase_success_rate.png", "success rate over sparsity and neurons"),
    ("capacity_nmse.png", "largest sparsity recovered, per method"),
    ("heatmaps.png", "true X and each method's recovery in representative cells"),
]


def _results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_neurons": [8, 8, 16, 16, 16],
            "sparsity": [0.1, 0.1, 0.1, 0.1, 0.1],
            "method": ["lasso", "omp", "lasso", "omp", ODD_CELL],
            "success_rate": [0.9, 0.5, 1.0, 1.0, np.nan],
            "nmse": [0.01, 0.2, 0.003, 0.001, 0.0],
        }
    )


def _page(*, best="default", problems="default", **changes) -> str:
    """A page like a sweep's: its tables are the best method per cell and the
    failed or missing cells (given, or the defaults here)."""
    figures = [(name, _png(i), caption) for i, (name, caption) in enumerate(FIGURES)]
    if isinstance(problems, str):
        problems = pd.DataFrame(
            {
                "cell": ["cells/3", ODD_CELL],
                "status": ["failed", "missing"],
                "error": ["ValueError: boom", ""],
            }
        )
    if isinstance(best, str):
        best = best_per_cell(_results(), cell_keys=["n_neurons", "sparsity"])
    arguments = {
        "title": "Sweep 2024-01-01_00-00-00",
        "command": "python -m sweep -m n_neurons=8,16 'method=lasso,omp'",
        "grid": {"n_neurons": [8, 16], "method": ["lasso", "omp", ODD_CELL]},
        "figures": figures,
        "tables": [
            Table("best", "Best method per cell", "the best, per cell", best),
            Table("problems", "Failed or missing cells", "", problems),
        ],
        "notes": ["2 cells failed or missing"],
    }
    return render_report(**{**arguments, **changes})


def _with_script(page: str, script: str) -> str:
    return page.replace("</body>", f"<script>{script}</script>\n</body>")


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def good_page() -> str:
    return _page()


# ---------------------------------------------------------------- in the browser


def test_every_image_loads_and_no_errors(good_page, tmp_path):
    check = page_check(good_page, tmp_path)
    assert check["images_total"] == len(FIGURES)
    assert check["images_loaded"] == len(FIGURES), check
    assert check["broken_images"] == []
    assert check["errors"] == 0, check["messages"]


def test_broken_image_is_reported(tmp_path):
    figures = [(name, _png(i), caption) for i, (name, caption) in enumerate(FIGURES)]
    figures[1] = ("bogus.png", b"these bytes are not a PNG", "a broken image")
    check = page_check(_page(figures=figures), tmp_path)
    assert check["images_total"] == len(FIGURES)
    assert check["images_loaded"] == len(FIGURES) - 1
    assert check["broken_images"] == ["bogus.png"]  # by its alt text


def test_image_from_outside_the_page_is_blocked(good_page, tmp_path):
    """A file the page points to, not embeds, is refused by its CSP: the page
    stays self-contained even when opened next to its PNGs."""
    (tmp_path / "figure.png").write_bytes(_png(0))
    page = good_page.replace(
        "</body>",
        f'<img id="outside" src="{(tmp_path / "figure.png").as_uri()}">\n</body>',
    )
    check = page_check(page, tmp_path)
    assert check["images_loaded"] == len(FIGURES)
    assert check["broken_images"] == ["outside"]
    assert check["errors"] >= 1 and "blocked by CSP" in check["messages"][0]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("throw new Error('boom from the page');", "boom from the page"),
        ("console.error('logged', 42);", "logged 42"),
        ("Promise.reject('nobody caught me');", "nobody caught me"),
        ("undefinedFunction();", "undefinedFunction"),
    ],
)
def test_page_errors_are_counted(good_page, tmp_path, script, message):
    check = page_check(_with_script(good_page, script), tmp_path)
    assert check["errors"] == 1, check
    assert message in check["messages"][0]
    assert check["images_loaded"] == len(FIGURES)


def test_screenshot(good_page, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(good_page, encoding="utf-8")
    shot = tmp_path / "artifacts" / "report.png"
    shot.parent.mkdir()
    done = chromium(
        path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}"
    )
    assert shot.is_file(), done.stderr
    assert shot.stat().st_size > 20_000
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert pixels[..., :3].std() > 0.05  # not a blank page


def test_missing_browser_fails_with_install_hint(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        find_browser()


# ---------------------------------------------------------------- the page as text


def test_page_is_self_contained(good_page):
    assert "http://" not in good_page and "https://" not in good_page
    sources = re.findall(r'\ssrc="([^"]*)"', good_page)
    assert len(sources) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in good_page and "@import" not in good_page


def test_sections_captions_and_ids(good_page):
    command = html.escape("python -m sweep -m n_neurons=8,16 'method=lasso,omp'")
    assert f'<pre id="command">{command}</pre>' in good_page
    assert good_page.count("<figure ") == good_page.count("<figcaption>") == 3
    for name, caption in FIGURES:
        assert f"<code>{name}</code>: {html.escape(caption)}</figcaption>" in good_page
    assert 'id="fig-phase_success_rate-png"' in good_page
    assert 'href="#fig-heatmaps-png"' in good_page
    for heading in ("Sweep", "Figures", "Best method per cell", "Failed or missing"):
        assert f"<h2>{heading}" in good_page
    assert (
        '<section id="best">\n<h2>Best method per cell</h2>\n<p>the best' in good_page
    )
    assert 'id="best-table"' in good_page and 'id="problems-table"' in good_page
    assert "<th>n_neurons</th><td>8, 16</td>" in good_page
    assert "ValueError: boom" in good_page
    assert "<li>2 cells failed or missing</li>" in good_page


def test_text_is_escaped(good_page):
    assert ODD_CELL not in good_page and "cell <&>" not in good_page
    assert "<td>lasso, omp, cell &lt;&amp;&gt; &quot;x&quot;</td>" in good_page
    assert '<td>cell &lt;&amp;&gt; "x"</td>' in good_page  # the problems table
    page = _page(title="<script>alert(1)</script>", command="a && b < c")
    assert "<script>alert(1)" not in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert "a &amp;&amp; b &lt; c" in page


def test_empty_sections_say_none():
    page = _page(figures=[], problems=pd.DataFrame(), best=None, grid=None)
    problems = page.split("<h2>Failed or missing cells</h2>")[1]
    assert problems.lstrip().startswith('<p class="none">none</p>')
    assert "<figure" not in page and "<img" not in page
    assert "not recorded" in page


def test_figure_without_caption_is_refused():
    with pytest.raises(ValueError, match="no caption"):
        _page(figures=[("a.png", _png(0), "  ")])


def test_duplicate_figure_names_get_distinct_ids():
    page = _page(figures=[("a.png", _png(0), "one"), ("a.png", _png(1), "two")])
    assert 'id="fig-a-png"' in page and 'id="fig-a-png-2"' in page


# ---------------------------------------------------------------- best_per_cell


def test_best_per_cell_highest_success_then_lowest_nmse():
    best = best_per_cell(_results(), cell_keys=["n_neurons", "sparsity"])
    assert list(best.columns) == [
        "n_neurons",
        "sparsity",
        "method",
        "success_rate",
        "nmse",
    ]
    assert best["n_neurons"].tolist() == [8, 16]
    assert best["method"].tolist() == ["lasso", "omp"]  # 16: a tie, omp's nmse lower
    assert best["success_rate"].tolist() == [0.9, 1.0]
    assert best["nmse"].tolist() == [0.01, 0.001]


def test_best_per_cell_nan_sorts_last():
    results = pd.DataFrame(
        {
            "k": [1, 1, 1, 2, 2],
            "method": ["a", "b", "c", "a", "b"],
            "success_rate": [np.nan, 0.0, 0.0, np.nan, np.nan],
            "nmse": [0.0, np.nan, 0.5, 0.3, 0.1],
            "other": [1, 2, 3, 4, 5],
        }
    )
    rates = [np.nan, 0.1, 0.1, np.nan, np.nan]
    best = best_per_cell(results.assign(success_rate=rates), cell_keys=["k"])
    assert best["method"].tolist() == ["c", "b"]  # k=1: NaN nmse after 0.5
    assert math.isnan(best["success_rate"].iloc[1])  # k=2: no rate, lowest nmse
    assert "other" not in best
    best = best_per_cell(results, cell_keys=["k"])  # k=1: every rate 0 or NaN
    assert best["method"].tolist() == [NONE_SUCCEEDS, "b"]
    assert best["success_rate"].iloc[0] == 0 and math.isnan(best["nmse"].iloc[0])


def test_best_per_cell_full_tie_takes_method_order_and_keeps_nan_keys():
    results = pd.DataFrame(
        {
            "k": [np.nan, np.nan, 3.0],
            "label": ["z", "y", "x"],
            "success_rate": [0.5, 0.5, 0.1],
            "nmse": [0.2, 0.2, 0.9],
        }
    )
    best = best_per_cell(results, cell_keys=["k"], method_key="label")
    assert best["label"].tolist() == ["y", "x"]
    whole = best_per_cell(results, cell_keys=[], method_key="label")
    assert whole["label"].tolist() == ["y"]


def test_best_per_cell_names_missing_columns():
    with pytest.raises(KeyError, match="nmse"):
        best_per_cell(_results().drop(columns="nmse"), cell_keys=["n_neurons"])
