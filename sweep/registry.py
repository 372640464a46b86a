"""A name -> function registry: refuses duplicates, knows each parameter's range."""

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from sweep.checks import Check


class Registry(dict):
    """Maps a name to a function; ``checks[name][param]`` validates a parameter."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.checks: dict[str, dict[str, Check]] = {}

    def register(self, name: str, **checks: Check) -> Callable:
        """Decorator: add ``fn`` as ``name``; each keyword parameter needs a check."""

        def add(fn: Callable) -> Callable:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            missing = set(self.params(fn)) ^ set(checks)
            if missing:
                raise ValueError(f"{self.kind} {name!r}: checks != params: {missing}")
            self[name] = fn
            self.checks[name] = checks
            return fn

        return add

    @staticmethod
    @cache
    def params(fn: Callable) -> dict[str, Any]:
        """The tunable keyword-only parameters of ``fn`` with their defaults."""
        fixed = {"H_train", "b", "rng", "rngs", "sparsity", "k", "relu"}  # by the job
        return {
            p.name: p.default
            for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in fixed
        }
