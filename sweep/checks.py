"""Value checks for validation: each returns None, or a text saying what is allowed."""

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

Check = Callable[[Any], str | None]


def integer(low: int = 1) -> Check:
    """An integer >= low (bools are not integers here)."""

    def check(value: Any) -> str | None:
        ok = isinstance(value, Integral) and not isinstance(value, bool)
        return None if ok and value >= low else f"an integer >= {low}"

    return check


def real(low: float = 0.0, high: float = math.inf, *, open_low=False) -> Check:
    """A finite real number in [low, high] (or (low, high] with open_low)."""
    bracket = "(" if open_low else "["
    closing = ")" if math.isinf(high) else "]"
    allowed = f"a finite number in {bracket}{low:g}, {high:g}{closing}"

    def check(value: Any) -> str | None:
        if not isinstance(value, Real) or isinstance(value, bool):
            return allowed
        if not math.isfinite(value) or value > high:
            return allowed
        return allowed if value < low or (open_low and value == low) else None

    return check


def boolean(value: Any) -> str | None:
    """true or false."""
    return None if isinstance(value, bool) else "true or false"


def optional(inner: Check) -> Check:
    """null, or what ``inner`` allows."""

    def check(value: Any) -> str | None:
        why = inner(value) if value is not None else None
        return None if why is None else f"null or {why}"

    return check
