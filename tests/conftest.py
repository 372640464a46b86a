import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
