"""Constraints shared by the task configs (non-negative and positive floats, float pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._validation import Constraint, Float, check_float

__all__ = [
    "NON_NEGATIVE",
    "POSITIVE",
    "FloatPair",
    "check_float_range_pair",
]

#: a finite float >= 0 ("[0, inf)")
NON_NEGATIVE = Float(0.0)
#: a finite float > 0 ("(0, inf)")
POSITIVE = Float(0.0, None, low_inclusive=False)


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


@dataclass(frozen=True)
class FloatPair(Constraint):
    """A float interval ``(lo, hi)`` (:func:`check_float_range_pair`; stored as a tuple)."""

    low: float | None = None
    high: float | None = None
    strict: bool = True

    def check(self, owner, name, value, config=None):
        return check_float_range_pair(owner, name, value, self.low, self.high, self.strict)
