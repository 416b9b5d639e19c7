"""Central validation of user-facing parameters.

Every config in dynrnn validates its fields in ``__post_init__`` through these helpers, so a bad
value always produces a message of one form::

    The 'p_pulse' parameter of FlipFlopConfig must be a float in the range [0, 1]. Got 1.5 instead.

User input is never checked with ``assert``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = [
    "check_int",
    "check_float",
    "check_choice",
    "check_bool",
    "check_int_range_pair",
    "resolve_generator",
]


def _fmt_bound(value: float | None, default: str) -> str:
    if value is None:
        return default
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range_text(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    left = "[" if (low_inclusive and low is not None) else "("
    right = "]" if (high_inclusive and high is not None) else ")"
    return f"{left}{_fmt_bound(low, '-inf')}, {_fmt_bound(high, 'inf')}{right}"


def check_int(
    owner: str,
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer in [low, high]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int,))
        and not (hasattr(value, "__index__") and not isinstance(value, float))
    ):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be an int in the range "
            f"{_range_text(low, high, True, True)}. Got {value!r} instead."
        )
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be an int in the range "
            f"{_range_text(low, high, True, True)}. Got {value!r} instead."
        )
    return value


def check_float(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float in the given range, or raise ValueError naming it."""
    rng = _range_text(low, high, low_inclusive, high_inclusive)
    msg = (
        f"The {name!r} parameter of {owner} must be a float in the range {rng}. "
        f"Got {value!r} instead."
    )
    if isinstance(value, bool):
        raise ValueError(msg)
    try:
        fvalue = float(value)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if math.isnan(fvalue):
        raise ValueError(msg)
    if low is not None and (fvalue < low or (not low_inclusive and fvalue == low)):
        raise ValueError(msg)
    if high is not None and (fvalue > high or (not high_inclusive and fvalue == high)):
        raise ValueError(msg)
    if math.isinf(fvalue) and not (low is None or high is None):
        raise ValueError(msg)
    return fvalue


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be one of {list(choices)}. "
            f"Got {value!r} instead."
        )
    return value


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a bool. Got {value!r} instead."
        )
    return value


def check_int_range_pair(
    owner: str, name: str, value: Sequence[int], low: int | None = None
) -> tuple[int, int]:
    """Validate an inclusive integer range ``(lo, hi)`` with ``lo <= hi`` (and ``lo >= low``)."""
    msg = (
        f"The {name!r} parameter of {owner} must be a pair (lo, hi) of ints with lo <= hi"
        + (f" and lo >= {low}" if low is not None else "")
        + f". Got {value!r} instead."
    )
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)) or lo > hi:
        raise ValueError(msg)
    if low is not None and lo < low:
        raise ValueError(msg)
    return int(lo), int(hi)


def resolve_generator(
    seed: int | torch.Generator | None, device: torch.device | str | None = None
) -> torch.Generator:
    """Turn ``seed`` (int, Generator or None) into a ``torch.Generator``.

    ``None`` draws a fresh seed from the OS (non-reproducible, by request); an int seeds a new
    generator; a Generator is used as it is (and advanced). Global RNG state is never touched.
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device or "cpu")
    if seed is None:
        gen.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(
                f"The 'seed' parameter must be a non-negative int, a torch.Generator or None. "
                f"Got {seed!r} instead."
            )
        gen.manual_seed(int(seed))
    return gen
