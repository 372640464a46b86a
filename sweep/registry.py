"""A name -> function registry: refuses duplicates; knows each entry's traits (what it
needs, declared where it is registered) and each parameter's check."""

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from sweep.checks import Check


class Registry(dict):
    """Maps a name to a function; ``traits[name]`` says what it needs and
    ``checks[name][param]`` validates a parameter."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.traits: dict[str, Any] = {}
        self.checks: dict[str, dict[str, Check]] = {}

    def register(self, name: str, traits: Any, **checks: Check) -> Callable:
        """Decorator: add ``fn`` as ``name``; each keyword-only parameter (each tunable
        parameter: a function takes its inputs positionally) needs a check."""

        def add(fn: Callable) -> Callable:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            missing = set(self.params(fn)) ^ set(checks)
            if missing:
                raise ValueError(f"{self.kind} {name!r}: checks != params: {missing}")
            self[name] = fn
            self.traits[name] = traits
            self.checks[name] = checks
            return fn

        return add

    @staticmethod
    @cache
    def params(fn: Callable) -> dict[str, Any]:
        """The tunable parameters of ``fn`` (its keyword-only ones) with defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }

    def having(self, **traits: Any) -> list[str]:
        """Sorted names whose traits have these values: ``having(trained=True)``."""
        return sorted(
            name
            for name, found in self.traits.items()
            if all(getattr(found, key) == value for key, value in traits.items())
        )
