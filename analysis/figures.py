"""The figures of an analysis, each registered once, where it is defined.

A figure is a function ``draw(sweep, **fields) -> matplotlib.figure.Figure``
registered with its file name, its caption and when it is drawn::

    @figure("phase_{metric}.png", caption="Phase diagram of {metric}: ...",
            when=drawn_metrics, words=METRIC_WORDS)
    def phase_of(sweep: Sweep, metric: str) -> Figure: ...

``when(sweep)`` is true or false for a fixed name; for a name with fields, a list
with one dict of their values per file ([{"metric": "nmse"}, ...]; empty: none).
The caption is formatted with the same fields, ``words`` turning a value into plain
text; a caption that depends on the sweep (a heat map or lines, which curves) is a
function ``caption(sweep, **fields) -> str``. ``leads(sweep)`` true puts a figure
first on the page (the paper's figures of trained toy models). ``planned(sweep)`` is
what ``python -m analysis`` draws and what the report page shows with its captions;
``stale`` names the files of registered figures that an analysis did not draw.
"""

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from matplotlib.figure import Figure

from analysis.aggregate import PlotAxes

log = logging.getLogger(__name__)

# the modules that define figures, in the order of the report page (others last)
MODULES = (
    "analysis.plots", "analysis.transition", "analysis.toy", "analysis.learned",
    "analysis.frontier", "analysis.network", "analysis.per_feature",
    "analysis.geometry",
)  # fmt: skip
FIELD = re.compile(r"\{(\w+)\}")  # a field of a file name: phase_{metric}.png


@dataclass(frozen=True)
class Sweep:
    """What every figure is drawn from: a sweep folder and its analysis' tables."""

    dir: Path
    results: pd.DataFrame  # one row per cell, as results.parquet
    axes: PlotAxes  # which keys are the x axis, the y axis and the panels
    capacity: pd.DataFrame  # as capacity.csv
    boundary: pd.DataFrame  # as boundary.csv; no rows: no exact-L1 panel
    features: pd.DataFrame  # one row per trial and feature (``Loaded.features``)

    @property
    def name(self) -> str:
        """The sweep folder's name, shown under every figure's title."""
        return self.dir.name


def always(sweep: Sweep) -> bool:
    """The condition of a figure every sweep gets."""
    return True


def never(sweep: Sweep) -> bool:
    """The default of ``leads``: the figure keeps its module's place on the page."""
    return False


Caption = str | Callable[..., str]  # "... {field} ...", or caption(sweep, **fields)


@dataclass(frozen=True)
class Registered:
    """One figure: file name (fields in braces), caption, draw function, condition,
    and whether it leads the page."""

    name: str
    caption: Caption
    draw: Callable[..., Figure]
    when: Callable[[Sweep], object]  # bool, or a list of dicts of the name's fields
    words: Mapping[str, str]  # field value -> plain text in the caption
    leads: Callable[[Sweep], bool] = never

    @property
    def fields(self) -> list[str]:
        """The fields of the file name: ["metric"] for "phase_{metric}.png"."""
        return FIELD.findall(self.name)

    def files(self, sweep: Sweep) -> list[dict[str, str]]:
        """The fields of each file ``sweep`` calls for ([{}]: the one fixed name)."""
        found = self.when(sweep)
        if isinstance(found, list | tuple):
            return list(found)
        return [{}] if found else []

    def caption_of(self, fields: Mapping[str, str], sweep: Sweep) -> str:
        """The caption of the file with these fields, for this sweep: the text with
        each field's value in ``words``, or what ``caption(sweep, **fields)`` says."""
        if callable(self.caption):
            return self.caption(sweep, **fields)
        words = {key: self.words.get(value, value) for key, value in fields.items()}
        return self.caption.format(**words)

    def matches(self, file: str) -> bool:
        """Whether ``file`` is one of this figure's files, whatever its fields."""
        parts = map(re.escape, FIELD.split(self.name)[::2])  # split keeps the fields
        return re.fullmatch("(.+)".join(parts), file) is not None


class Planned(NamedTuple):
    """A figure a sweep calls for: its file, its caption, and ``draw()`` -> Figure."""

    file: str
    caption: str
    draw: Callable[[], Figure]


_REGISTRY: list[Registered] = []


def figure(
    name: str,
    *,
    caption: Caption,
    when: Callable[[Sweep], object] = always,
    words: Mapping[str, str] | None = None,
    leads: Callable[[Sweep], bool] = never,
):
    """Register the decorated ``draw(sweep, **fields)`` as the figure ``name``."""

    def register(draw: Callable[..., Figure]) -> Callable[..., Figure]:
        if any(entry.name == name for entry in _REGISTRY):
            raise ValueError(f"figure {name} is registered twice")
        words_ = dict(words or {})
        _REGISTRY.append(Registered(name, caption, draw, when, words_, leads))
        return draw

    return register


def registered() -> list[Registered]:
    """Every registered figure, in page order: by module, then as defined."""
    for module in MODULES:  # each registers its figures when first imported
        importlib.import_module(module)

    def rank(entry: Registered) -> int:
        module = entry.draw.__module__
        return MODULES.index(module) if module in MODULES else len(MODULES)

    return sorted(_REGISTRY, key=rank)


def planned(sweep: Sweep) -> list[Planned]:
    """Every file of every registered figure whose condition holds for ``sweep``, in
    page order: those that lead first. A condition that raises is logged and costs
    only its figure."""
    first, rest = [], []
    for entry in registered():
        try:
            found = [
                Planned(entry.name.format(**f), entry.caption_of(f, sweep),
                        partial(entry.draw, sweep, **f))
                for f in entry.files(sweep)
            ]  # fmt: skip
            (first if found and entry.leads(sweep) else rest).extend(found)
        except Exception:
            log.exception("could not tell which %s to draw", entry.name)
    return first + rest


def stale(files: Iterable[str], drawn: Iterable[str]) -> list[str]:
    """The files of registered figures among ``files`` that were not ``drawn``: left
    by an earlier analysis, for a figure that no longer applies or failed."""
    drawn, entries = set(drawn), registered()
    return [
        file
        for file in files
        if file not in drawn and any(entry.matches(file) for entry in entries)
    ]
