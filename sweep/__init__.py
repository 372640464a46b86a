"""Superposition sweeps: compress sparse features into fewer neurons, recover them."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
OUTPUTS_DIR = PROJECT_ROOT / "outputs"
