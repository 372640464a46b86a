"""Hydra plugins of this project (Hydra finds plugins only under ``hydra_plugins``)."""
