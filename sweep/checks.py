"""Value checks for validation: each returns None, or a text saying what is allowed."""

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

Check = Callable[[Any], str | None]

INT64_MAX = 2**63 - 1  # parquet stores integers in 64 bits


def integer(low: int = 1, high: int = INT64_MAX) -> Check:
    """An integer in [low, high] (bools are not integers here)."""
    bound = "< 2**63" if high == INT64_MAX else f"<= {high}"

    def check(value: Any) -> str | None:
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            return f"an integer >= {low}"
        return None if value <= high else f"an integer >= {low} and {bound}"

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


def one_of(*allowed: Any) -> Check:
    """One of the given values."""
    text = " | ".join(map(str, allowed))

    def check(value: Any) -> str | None:
        return None if value in allowed and not isinstance(value, bool) else text

    return check


def optional(inner: Check) -> Check:
    """null, or what ``inner`` allows."""

    def check(value: Any) -> str | None:
        why = inner(value) if value is not None else None
        return None if why is None else f"null or {why}"

    return check


def word_or(word: str, inner: Check) -> Check:
    """The word itself, or what ``inner`` allows."""

    def check(value: Any) -> str | None:
        why = inner(value) if value != word else None
        return None if why is None else f"{word} or {why}"

    return check


def path(value: Any) -> str | None:
    """A file's path (text, not empty)."""
    return None if isinstance(value, str) and value else "a file's path"
