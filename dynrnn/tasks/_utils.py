"""Small helpers shared by the task generators (validation of float pairs, time grids)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._validation import check_float

__all__ = ["check_float_range_pair", "check_nonnegative", "set_field"]


def check_float_range_pair(
    owner: str,
    name: str,
    value: Sequence[float],
    low: float | None = None,
    high: float | None = None,
    strict: bool = True,
) -> tuple[float, float]:
    """Validate a float interval ``(lo, hi)`` with ``lo < hi`` (``lo <= hi`` if not ``strict``).

    Both ends must lie in ``[low, high]``. Raises ValueError naming ``name`` otherwise.
    """
    order = "<" if strict else "<="
    msg = (
        f"The {name!r} parameter of {owner} must be a pair (lo, hi) of floats with lo {order} hi"
        + (f" and lo >= {low:g}" if low is not None else "")
        + (f" and hi <= {high:g}" if high is not None else "")
        + f". Got {value!r} instead."
    )
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    try:
        lo = check_float(owner, name, lo, low, high)
        hi = check_float(owner, name, hi, low, high)
    except ValueError:
        raise ValueError(msg) from None
    if lo > hi or (strict and lo == hi):
        raise ValueError(msg)
    return lo, hi


def set_field(obj: Any, name: str, value: Any) -> None:
    """Normalise a field of a frozen dataclass inside ``__post_init__``."""
    object.__setattr__(obj, name, value)


def check_nonnegative(owner: str, name: str, value: Any, strict: bool = False) -> float:
    """A finite float >= 0 (> 0 if ``strict``); ValueError naming ``name`` otherwise."""
    return check_float(
        owner, name, value, 0.0, math.inf, low_inclusive=not strict, high_inclusive=False
    )
