"""report.html: one self-contained page of a sweep's analysis (stdlib and pandas only).

``render_report`` builds the page as a string: the sweep's command and grid, every
figure (PNG bytes embedded as ``data:`` URIs, each with a caption), then its tables
(for a sweep: the best method per cell and the failed or missing cells; for a
comparison of sweeps: the shared grid points). The page loads nothing from anywhere:
no URL of any kind, and a Content-Security-Policy that only admits inline styles,
the inline script and ``data:`` images, so it opens from disk with no network.

A tiny inline script checks the page in the browser that opens it: on ``load`` it
counts the images that decoded and the errors seen (uncaught script errors, unhandled
promise rejections, ``console.error`` calls and Content-Security-Policy violations),
and writes them into the DOM, as ``data-*`` attributes of ``<body>`` and as JSON in
the hidden ``<pre id="page-check">``, for a headless browser's ``--dump-dom`` to read.

``best_per_cell`` picks, per cell, the method with the highest success rate (ties broken
by the lowest nmse), or says that none succeeds.
"""

import base64
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import pandas as pd

CHECK_ID = "page-check"  # the <pre> the page's script writes its JSON into
RANK_COLUMNS = ("success_rate", "nmse")  # higher is better, then lower is better
NONE_SUCCEEDS = "none succeeds"  # best_per_cell's method where every rate is 0


class Table(NamedTuple):
    """A section of the page after the figures: its id (the table's is
    "<id>-table"), heading, a sentence saying what it holds, and the frame."""

    id: str
    heading: str
    intro: str
    frame: pd.DataFrame | None


# The only sources the page may use: inline style and script, data: images.
_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

# Registered first in <head>: errors are counted from the start; on load, the images.
_CHECK_SCRIPT = """\
(function () {
  var seen = {errors: 0, messages: []}, loaded = false;
  function publish() {
    var images = document.images, ok = 0, broken = [];
    for (var i = 0; i < images.length; i++) {
      var im = images[i];
      if (im.complete && im.naturalWidth > 0) ok++;
      else broken.push(im.id || im.alt || String(i));
    }
    var b = document.body;
    b.setAttribute('data-images-total', images.length);
    b.setAttribute('data-images-loaded', ok);
    b.setAttribute('data-errors', seen.errors);
    b.setAttribute('data-checked', 'true');
    document.getElementById('CHECK_ID').textContent = JSON.stringify({
      images_total: images.length, images_loaded: ok, broken_images: broken,
      errors: seen.errors, messages: seen.messages
    });
  }
  function note(m) {
    seen.errors++;
    if (seen.messages.length < 20) seen.messages.push(String(m).slice(0, 300));
    if (loaded) publish();  // an error after load still reaches the DOM
  }
  window.addEventListener('error', function (e) { note(e.message || 'error'); });
  window.addEventListener('unhandledrejection', function (e) {
    note('unhandled rejection: ' + e.reason);
  });
  document.addEventListener('securitypolicyviolation', function (e) {
    note('blocked by CSP: ' + e.blockedURI);
  });
  var consoleError = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, ' '));
    return consoleError.apply(console, arguments);
  };
  window.addEventListener('load', function () { loaded = true; publish(); });
})();
""".replace("CHECK_ID", CHECK_ID)

_CSS = """\
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #1d1d1f; background: #fff; margin: 0 auto; padding: 1.5em 2em 4em;
  max-width: 1200px; }
h1 { font-size: 1.6em; margin: 0 0 .6em; }
h2 { font-size: 1.25em; margin: 2em 0 .6em; border-bottom: 1px solid #ddd;
  padding-bottom: .2em; }
pre { background: #f5f5f7; padding: .7em 1em; border-radius: 4px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #d0d0d5; padding: .3em .7em; text-align: left;
  vertical-align: top; }
th { background: #eef0f4; }
tbody tr:nth-child(even) { background: #fafafc; }
td.num, table.frame td { font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0 2.5em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { margin-top: .4em; color: #333; }
figcaption code { font-weight: 600; }
nav ul { padding-left: 1.2em; margin: 0; }
.none { color: #555; font-style: italic; }
"""


def render_report(
    *,
    title: str,
    command: str,
    grid: Mapping[str, Sequence] | None,
    figures: Sequence[tuple[str, bytes, str]],
    tables: Sequence[Table] = (),
    notes: Iterable[str] = (),
    heading: str = "Sweep",
) -> str:
    """The whole page as HTML text; every given string is escaped.

    ``figures``: (file name, PNG bytes, caption) in the order shown; a caption must
    say what the figure shows, so an empty one is a ``ValueError``. ``grid``: each
    swept key and its values (None: not recorded). ``tables``: the sections after
    the figures ("none" for an empty frame); ``notes``: lines under the grid.
    """
    ids = _figure_ids([name for name, _, _ in figures])
    for name, _, caption in figures:
        if not str(caption).strip():
            raise ValueError(f"figure {name!r} has no caption")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        f"<script>\n{_CHECK_SCRIPT}</script>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>\n{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
        '<section id="sweep">',
        f"<h2>{_esc(heading)}</h2>",
        "<p>Command:</p>",
        f'<pre id="command">{_esc(command)}</pre>',
        "<p>Grid:</p>",
        _grid_table(grid),
    ]
    notes = [str(n) for n in notes]
    if notes:
        parts += ["<ul>", *(f"<li>{_esc(n)}</li>" for n in notes), "</ul>"]
    parts += ["</section>", '<section id="figures">', "<h2>Figures</h2>"]
    if figures:
        links = (
            f'<li><a href="#{i}">{_esc(n)}</a></li>'
            for i, (n, _, _) in zip(ids, figures, strict=True)
        )
        parts += ["<nav><ul>", *links, "</ul></nav>"]
    else:
        parts.append('<p class="none">none</p>')
    for fig_id, (name, png, caption) in zip(ids, figures, strict=True):
        parts.append(_figure(fig_id, name, png, caption))
    parts.append("</section>")
    for table in tables:
        parts += [
            f'<section id="{_esc(table.id)}">',
            f"<h2>{_esc(table.heading)}</h2>",
            *([f"<p>{_esc(table.intro)}</p>"] if table.intro else []),
            _frame_table(table.frame, f"{table.id}-table"),
            "</section>",
        ]
    parts += [
        f'<pre id="{CHECK_ID}" hidden></pre>',
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def best_per_cell(
    results: pd.DataFrame, *, cell_keys: Sequence[str], method_key: str = "method"
) -> pd.DataFrame:
    """Per group of ``cell_keys``, the row with the highest ``success_rate``.

    Ties are broken by the lowest ``nmse``, then by the method label; NaN sorts last
    in both, so a method with no success rate wins only a cell where none has one.
    Where the highest success rate is 0 no method wins: the method is
    NONE_SUCCEEDS and nmse NaN (the lowest nmse of failures is no ranking).
    Columns: ``cell_keys``, ``method_key``, ``success_rate``, ``nmse``; one row per
    cell, in the order of the winning rows in ``results``. No cell keys: one row.
    """
    cell_keys = list(cell_keys)
    columns = [*cell_keys, method_key, *RANK_COLUMNS]
    missing = [c for c in columns if c not in results.columns]
    if missing:
        raise KeyError(f"best_per_cell: results have no column {missing}")
    frame = results.loc[:, columns].reset_index(drop=True)
    ranked = frame.sort_values(
        [*RANK_COLUMNS, method_key],
        ascending=[False, True, True],
        na_position="last",
        kind="stable",
    )
    if cell_keys:
        best = ranked.drop_duplicates(subset=cell_keys, keep="first")
    else:
        best = ranked.head(1)
    best = best.sort_index().reset_index(drop=True)
    failed = best["success_rate"] == 0
    best[method_key] = best[method_key].astype(object).where(~failed, NONE_SUCCEEDS)
    best["nmse"] = best["nmse"].where(~failed, float("nan"))
    return best


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _figure_ids(names: Sequence[str]) -> list[str]:
    """One unique, URL-safe id per figure, from its file name."""
    ids: list[str] = []
    for name in names:
        base = "fig-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", str(name)).strip("-") or "x")
        fig_id, n = base, 2
        while fig_id in ids:
            fig_id, n = f"{base}-{n}", n + 1
        ids.append(fig_id)
    return ids


def _figure(fig_id: str, name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(bytes(png)).decode("ascii")
    return (
        f'<figure id="{fig_id}">\n'
        f'<img src="data:image/png;base64,{data}" alt="{_esc(name)}">\n'
        f"<figcaption><code>{_esc(name)}</code>: {_esc(caption)}</figcaption>\n"
        "</figure>"
    )


def _grid_table(grid: Mapping[str, Sequence] | None) -> str:
    if grid is None:
        return '<p class="none">not recorded</p>'
    if not grid:
        return '<p class="none">none (a single cell)</p>'
    rows = "\n".join(
        f"<tr><th>{_esc(key)}</th><td>{_esc(', '.join(map(str, values)))}</td></tr>"
        for key, values in grid.items()
    )
    return (
        '<table id="grid-table">\n<thead><tr><th>key</th><th>values</th></tr></thead>'
        f"\n<tbody>\n{rows}\n</tbody>\n</table>"
    )


def _frame_table(frame: pd.DataFrame | None, table_id: str) -> str:
    if frame is None or frame.empty:
        return '<p class="none">none</p>'
    return frame.to_html(
        escape=True,
        index=False,
        na_rep="",
        border=0,
        classes="frame",
        table_id=table_id,
        float_format=lambda x: f"{x:.4g}",
    )
