import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sweep import methods
from sweep.models import Model

ROOT = Path(__file__).resolve().parents[1]


def run_method(name, H, W, rng, *, H_train=None, b=None, relu=True, **params):
    """Method ``name`` on one trial, given W as the known dictionary (and as the
    model's own W, with ``b`` and ``relu``, for a decoder); H_train defaults to H."""
    n = W.shape[1]
    model = Model(W=W, b=np.zeros(n) if b is None else b, importance=np.ones(n),
                  relu=relu)  # fmt: skip
    inputs = methods.given(name, H, model=model, known=W, rng=rng,
                           H_train=H if H_train is None else H_train)  # fmt: skip
    return methods.recover(name, inputs, **params)


# Loaded by every Python process of a command run with ``hooked`` (sitecustomize):
# cells whose flat configuration has these values raise inside the cell, as a
# crashing method would (the fault injection of the tests, out of the package).
FAIL_WHEN = """
import sweep.job as job
_run_trials = job.run_trials
def run_trials(flat, *args, **kwargs):
    if all(flat.get(k) == v for k, v in {when!r}.items()):
        raise RuntimeError("injected failure")
    return _run_trials(flat, *args, **kwargs)
job.run_trials = run_trials
"""


def hooked(folder: Path, code: str) -> dict:
    """An environment whose Python processes run ``code`` at start."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": str(folder)}


def failing(folder: Path, **when) -> dict:
    """An environment in which the cells with these flat keys fail (``FAIL_WHEN``)."""
    return hooked(folder, FAIL_WHEN.format(when=when))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout=300):
    """Run ``python -m <args>`` in a fresh process; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
