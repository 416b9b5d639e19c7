"""Central validation of user-facing parameters.

Every config dataclass in dynrnn declares one :class:`Constraint` per field, once, in a class-level
``constraints`` dict, and calls :func:`validate_config` from ``__post_init__`` (which also stores
each value normalised: an int given to a float field is kept as a float, a list given to a pair
field as a tuple). Functions check their arguments with the ``check_*`` helpers below. Either way a
bad value always produces a message of one form (the form of scikit-learn's parameter
constraints)::

    The 'p_pulse' parameter of FlipFlopConfig must be a float in the range [0, 1]. Got 1.5 instead.

User input is never checked with ``assert``. A value of the wrong type raises
:class:`ParameterTypeError` (a ``TypeError`` that is also a ``ValueError``); a value of the right
type outside its range raises ``ValueError``. Tensor arguments go through :func:`check_tensor`
(type and dtype), :func:`check_shape` (layouts such as ``[K or 1, B, N]``) and
:func:`check_finite`; :func:`check_model_tensor` checks a state, trajectory or input tensor
against a model's sizes (``K = n_networks``, ``N = n_units``, ``I = n_inputs``,
``O = n_outputs``) in one call.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "ParameterTypeError",
    "check_int",
    "check_float",
    "check_choice",
    "check_bool",
    "check_index",
    "check_int_range_pair",
    "check_tensor",
    "check_array",
    "check_broadcast",
    "check_shape",
    "check_finite",
    "check_model_tensor",
    "resolve_generator",
    "Constraint",
    "Int",
    "Float",
    "Bool",
    "Choice",
    "OrNone",
    "IntPair",
    "Floats",
    "Check",
    "config_constraints",
    "validate_config",
]


class ParameterTypeError(TypeError, ValueError):
    """A parameter of the wrong type (e.g. a string where an int is needed).

    A ``TypeError``, and also a ``ValueError`` so that ``except ValueError`` around a call still
    catches every rejected argument (as scikit-learn's ``InvalidParameterError`` does).
    """


def _of(owner: str | None) -> str:
    return f" of {owner}" if owner else ""


def _fmt_bound(value: float | None, default: str) -> str:
    if value is None:
        return default
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range_text(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    left = "[" if (low_inclusive and low is not None and low != -math.inf) else "("
    right = "]" if (high_inclusive and high is not None and high != math.inf) else ")"
    return f"{left}{_fmt_bound(low, '-inf')}, {_fmt_bound(high, 'inf')}{right}"


def check_int(
    owner: str,
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """Return ``value`` as an int, or raise naming it: :class:`ParameterTypeError` unless it is
    an integer (Python int, numpy integer, 0-d integer tensor; not a bool or a float), ValueError
    unless it lies in [low, high]."""
    msg = (
        f"The {name!r} parameter of {owner} must be an int in the range "
        f"{_range_text(low, high, True, True)}. Got {value!r} instead."
    )
    if isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(msg)
    try:
        ivalue = operator.index(value)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterTypeError(msg) from None
    if (low is not None and ivalue < low) or (high is not None and ivalue > high):
        raise ValueError(msg)
    return int(ivalue)


def check_float(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float in the given range, or raise naming it:
    :class:`ParameterTypeError` for a non-number (strings, bools, arrays of several values),
    ValueError for NaN, +-inf or a value outside the range."""
    rng = _range_text(low, high, low_inclusive, high_inclusive)
    msg = (
        f"The {name!r} parameter of {owner} must be a float in the range {rng}. "
        f"Got {value!r} instead."
    )
    if isinstance(value, (bool, np.bool_, str, bytes)) or (
        torch.is_tensor(value) and value.numel() != 1
    ):
        raise ParameterTypeError(msg)
    try:
        fvalue = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterTypeError(msg) from None
    if math.isnan(fvalue):
        raise ValueError(msg)
    if low is not None and (fvalue < low or (not low_inclusive and fvalue == low)):
        raise ValueError(msg)
    if high is not None and (fvalue > high or (not high_inclusive and fvalue == high)):
        raise ValueError(msg)
    if math.isinf(fvalue):  # a float parameter is always finite (the range text says so)
        raise ValueError(msg)
    return fvalue


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    try:
        ok = bool(value in choices)
    except (TypeError, ValueError, RuntimeError):  # arrays, tensors: no single truth value
        ok = False
    if not ok:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be one of {list(choices)}. "
            f"Got {value!r} instead."
        )
    return value


def check_bool(owner: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool (Python or numpy bool), else :class:`ParameterTypeError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a bool. Got {value!r} instead."
        )
    return bool(value)


def check_index(owner: str, name: str, value: Any, size: int) -> int:
    """``value`` as a position in ``[0, size)`` (negative values count from the end, as in
    Python indexing): :class:`ParameterTypeError` unless it is an int, ValueError unless
    ``-size <= value < size``."""
    msg = (
        f"The {name!r} parameter of {owner} must be an int in the range [{-size}, {size}) (a "
        f"position among {size}). Got {value!r} instead."
    )
    if isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(msg)
    try:
        i = operator.index(value)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterTypeError(msg) from None
    if not -size <= i < size:
        raise ValueError(msg)
    return int(i) % size


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
    seed: int | torch.Generator | None,
    device: torch.device | str | None = None,
    *,
    owner: str | None = None,
    name: str = "seed",
) -> torch.Generator:
    """Turn ``seed`` (int, Generator or None) into a ``torch.Generator``.

    ``None`` draws a fresh seed from the OS (non-reproducible, by request); an int seeds a new
    generator; a Generator is used as it is (and advanced). Global RNG state is never touched.
    ``owner`` and ``name`` (the function and its argument) go into the error message:
    :class:`ParameterTypeError` for a value that is not an int, Generator or None, ValueError
    for a negative int.
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device or "cpu")
    if seed is None:
        gen.seed()
        return gen
    msg = (
        f"The {name!r} parameter{_of(owner)} must be a non-negative int, a torch.Generator or "
        f"None. Got {seed!r} instead."
    )
    if isinstance(seed, (bool, np.bool_)):
        raise ParameterTypeError(msg)
    try:
        iseed = operator.index(seed)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterTypeError(msg) from None
    if iseed < 0:
        raise ValueError(msg)
    gen.manual_seed(int(iseed))
    return gen


# --------------------------------------------------------------------------- config constraints
#: a bound of a constraint: a number, None (unbounded), the name of another field of the config
#: (its already validated value), or a function of the config
Bound = float | int | str | Callable[[Any], float] | None


def _bound(bound: Bound, config: Any) -> Any:
    if isinstance(bound, str):
        return getattr(config, bound)
    if callable(bound):
        return bound(config)
    return bound


class Constraint:
    """The allowed values of one config field (declared in the config's ``constraints``).

    ``check(owner, name, value, config)`` returns the value normalised or raises naming the
    field: :class:`ParameterTypeError` for a wrong type, ValueError for a value out of range.
    Bounds may name another field (validated before this one) or be a function of the config.
    """

    def check(self, owner: str, name: str, value: Any, config: Any = None) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Constraint):
    """An int in ``[low, high]`` (:func:`check_int`: bools and floats such as ``2.0`` are a
    ``ParameterTypeError``; numpy integers are stored as Python ints)."""

    low: Bound = None
    high: Bound = None

    def check(self, owner, name, value, config=None):
        return check_int(owner, name, value, _bound(self.low, config), _bound(self.high, config))


@dataclass(frozen=True)
class Float(Constraint):
    """A finite float in the range ``low .. high`` (:func:`check_float`; ints and numpy numbers
    are stored as Python floats, so ``2`` and ``2.0`` give equal configs; bools, NaN and inf are
    rejected)."""

    low: Bound = None
    high: Bound = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def check(self, owner, name, value, config=None):
        return check_float(
            owner, name, value, _bound(self.low, config), _bound(self.high, config),
            self.low_inclusive, self.high_inclusive,
        )  # fmt: skip


@dataclass(frozen=True)
class Bool(Constraint):
    """A bool (:func:`check_bool`; ints such as 0/1 are a ``ParameterTypeError``)."""

    def check(self, owner, name, value, config=None):
        return check_bool(owner, name, value)


@dataclass(frozen=True)
class Choice(Constraint):
    """One of ``choices`` (:func:`check_choice`)."""

    choices: tuple

    def __post_init__(self):
        object.__setattr__(self, "choices", tuple(self.choices))

    def check(self, owner, name, value, config=None):
        return check_choice(owner, name, value, self.choices)


@dataclass(frozen=True)
class OrNone(Constraint):
    """None, or a value allowed by ``inner``."""

    inner: Constraint

    def check(self, owner, name, value, config=None):
        return None if value is None else self.inner.check(owner, name, value, config)


@dataclass(frozen=True)
class IntPair(Constraint):
    """An inclusive int range ``(lo, hi)``, ``lo <= hi`` and ``lo >= low``
    (:func:`check_int_range_pair`; stored as a tuple)."""

    low: int | None = None

    def check(self, owner, name, value, config=None):
        return check_int_range_pair(owner, name, value, self.low)


@dataclass(frozen=True)
class Floats(Constraint):
    """A float allowed by ``inner``, or a non-empty sequence of them (one per network; stored as
    a tuple of floats)."""

    inner: Float

    def check(self, owner, name, value, config=None):
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"The {name!r} parameter of {owner} must not be empty.")
            return tuple(self.inner.check(owner, name, v, config) for v in value)
        return self.inner.check(owner, name, value, config)


@dataclass(frozen=True)
class Check(Constraint):
    """A field with its own rule: ``fn(owner, name, value, config)`` returns the normalised value
    or raises (ValueError / :class:`ParameterTypeError` naming the field, in the same message
    form)."""

    fn: Callable[[str, str, Any, Any], Any]

    def check(self, owner, name, value, config=None):
        return self.fn(owner, name, value, config)


def config_constraints(cls: type) -> dict[str, Constraint]:
    """The constraints of a config class: its own ``constraints`` and those of its bases (a
    subclass declares only its new or changed fields), in declaration order, bases first."""
    out: dict[str, Constraint] = {}
    for klass in reversed(cls.__mro__):
        own = klass.__dict__.get("constraints")
        if isinstance(own, Mapping):
            out.update(own)
    return out


def validate_config(config: Any) -> None:
    """Validate and normalise every field of a config dataclass (called by its
    ``__post_init__``).

    Runs the constraint of each field of :func:`config_constraints` in order, naming the config
    class in the messages, and stores the normalised values (``object.__setattr__``, so frozen
    dataclasses work too); then calls the config's ``_check_relations()`` (checks across
    fields, e.g. ``tau_min <= tau_init``) where it has one.
    """
    owner = type(config).__name__
    for name, constraint in config_constraints(type(config)).items():
        value = constraint.check(owner, name, getattr(config, name), config)
        object.__setattr__(config, name, value)
    relations = getattr(config, "_check_relations", None)
    if relations is not None:
        relations()


# --------------------------------------------------------------------------- tensors
def check_tensor(
    owner: str,
    name: str,
    value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    finite: bool = False,
    detach: bool = False,
) -> torch.Tensor:
    """``value`` (tensor, numpy array or nested list of numbers) as a real floating tensor.

    Integer and bool values are converted (to ``dtype``, or to the default float dtype when
    ``dtype`` is None); a floating tensor keeps its dtype unless ``dtype`` is given (the
    conversion is differentiable unless ``detach``). Raises :class:`ParameterTypeError` naming
    the argument for anything else (strings, dicts, complex numbers, ragged lists) and, with
    ``finite=True``, ValueError when it holds NaN or inf.
    """
    msg = (
        f"The {name!r} parameter of {owner} must be a real tensor or array of numbers. "
        f"Got {_type_text(value)} instead."
    )
    if torch.is_tensor(value):
        t = value.detach() if detach else value
    elif isinstance(value, (str, bytes, dict, set)) or value is None:
        raise ParameterTypeError(msg)
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            raise ParameterTypeError(msg) from None
        if arr.dtype.kind not in "biuf":
            raise ParameterTypeError(msg)
        if arr.dtype.kind == "f" and arr.dtype.itemsize < 4:
            arr = arr.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex() or not (t.is_floating_point() or t.dtype == torch.bool or _is_int(t)):
        raise ParameterTypeError(msg)
    target = dtype if dtype is not None else (
        t.dtype if t.is_floating_point() else torch.get_default_dtype()
    )
    if t.dtype != target or (device is not None and t.device != torch.device(device)):
        t = t.to(device=device, dtype=target)
    if finite:
        check_finite(owner, name, t)
    return t


def check_array(
    owner: str,
    name: str,
    value: Any,
    *,
    complex_ok: bool = False,
    min_ndim: int = 0,
    finite: bool = False,
    low: float | None = None,
    low_inclusive: bool = True,
) -> np.ndarray:
    """``value`` (array, tensor, nested list or number) as a float64 (or, with ``complex_ok``,
    complex128) numpy array with at least ``min_ndim`` dims.

    Raises :class:`ParameterTypeError` naming the argument for non-numbers (strings, dicts,
    ragged lists; complex numbers unless ``complex_ok``); ValueError for too few dims, NaN /
    inf with ``finite``, or entries below ``low`` (or equal to it unless ``low_inclusive``).
    """
    kinds = "biufc" if complex_ok else "biuf"
    what = "numbers" if complex_ok else "real numbers"
    msg = (
        f"The {name!r} parameter of {owner} must be an array of {what}. "
        f"Got {_type_text(value)} instead."
    )
    if isinstance(value, (str, bytes, dict, set)) or value is None:
        raise ParameterTypeError(msg)
    if torch.is_tensor(value):
        value = value.detach().cpu().resolve_conj().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ParameterTypeError(msg) from None
    if arr.dtype.kind not in kinds:
        raise ParameterTypeError(msg)
    arr = arr.astype(np.complex128 if arr.dtype.kind == "c" else np.float64)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have at least {min_ndim} dimension"
            f"{'s' if min_ndim > 1 else ''}. Got shape {arr.shape} instead."
        )
    if finite and not np.isfinite(arr).all():
        raise ValueError(
            f"The {name!r} parameter of {owner} must be finite; it has "
            f"{int((~np.isfinite(arr)).sum())} NaN or inf entries."
        )
    if low is not None:
        with np.errstate(invalid="ignore"):
            bad = np.isnan(arr) | ((arr < low) if low_inclusive else (arr <= low))
        if bad.any():
            bound = f">= {low:g}" if low_inclusive else f"> {low:g}"
            raise ValueError(
                f"The {name!r} parameter of {owner} must be {bound} everywhere. Got "
                f"{arr.ravel()[np.argmax(bad.ravel())]!r} instead."
            )
    return arr


def check_broadcast(
    owner: str, name: str, shape: Sequence[int], target: Sequence[int]
) -> None:
    """Raise ValueError naming the argument unless ``shape`` broadcasts to ``target``."""
    shape, target = tuple(shape), tuple(target)
    try:
        ok = np.broadcast_shapes(shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"The {name!r} parameter of {owner} must broadcast to shape {target}. Got shape "
            f"{shape} instead."
        )


def _is_int(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def _type_text(value: Any) -> str:
    if torch.is_tensor(value):
        return f"a tensor of dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}" if isinstance(value, (str, int, float)) else (
        type(value).__name__
    )


def check_finite(owner: str, name: str, t: torch.Tensor) -> torch.Tensor:
    """Raise ValueError naming the argument when tensor ``t`` holds NaN or inf."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"The {name!r} parameter of {owner} must be finite; it has {n_bad} NaN or inf "
            f"entries."
        )
    return t


def _dim_text(dim: Any, sizes: dict[str, int]) -> str:
    if isinstance(dim, int):
        return str(dim)
    if dim.endswith("|1"):
        base = dim[:-2]
        return f"{base}={sizes[base]} or 1" if base in sizes else f"{base} or 1"
    if dim in sizes:
        return f"{dim}={sizes[dim]}"
    return f"{dim[:-1]}>=0" if dim.endswith("0") and len(dim) > 1 else dim


def layout_text(layouts: Sequence[Sequence[Any]], sizes: dict[str, int]) -> str:
    """``"[K=2 or 1, B, N=3] or [B, N=3]"`` for the layouts of :func:`check_shape`."""
    parts = ["[" + ", ".join(_dim_text(d, sizes) for d in lay) + "]" for lay in layouts]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def check_shape(
    owner: str,
    name: str,
    t: torch.Tensor,
    layouts: Sequence[Sequence[Any]],
    against: str | None = None,
    **sizes: int,
) -> int:
    """Index of the first layout that ``t.shape`` matches; ValueError naming the argument if none.

    ``against`` names the argument the ``sizes`` were read from (e.g. ``"outputs"``), so that a
    mismatch between two arguments names both.

    A layout is a sequence of dims, one per axis. A dim is an int (exactly that size), a name
    given in ``sizes`` (exactly that size, e.g. ``N=3``), such a name with ``"|1"`` (that size or
    1, for a dim that broadcasts, e.g. ``"K|1"``), or any other name (a free dim such as ``"B"``
    or ``"T"``: any size >= 1; a name ending in ``"0"``, e.g. ``"T0"``, allows 0).
    """
    shape = tuple(t.shape)
    for i, lay in enumerate(layouts):
        if len(lay) != len(shape):
            continue
        ok = True
        for dim, n in zip(lay, shape):
            if isinstance(dim, int):
                ok = n == dim
            elif dim.endswith("|1"):
                ok = n == 1 or (dim[:-2] in sizes and n == sizes[dim[:-2]]) or (
                    dim[:-2] not in sizes and n >= 1
                )
            elif dim in sizes:
                ok = n == sizes[dim]
            else:
                ok = n >= (0 if dim.endswith("0") else 1)
            if not ok:
                break
        if ok:
            return i
    source = f" (sizes from '{against}')" if against else ""
    raise ValueError(
        f"The {name!r} parameter of {owner} must have shape {layout_text(layouts, sizes)}"
        f"{source}. Got {shape} instead."
    )


def check_model_tensor(
    owner: str,
    name: str,
    value: Any,
    model: Any,
    layouts: Sequence[Sequence[Any]],
    *,
    dtype: torch.dtype | None = None,
    finite: bool = False,
    detach: bool = False,
    **sizes: int,
) -> tuple[torch.Tensor, int]:
    """``(tensor, layout index)`` for a state / trajectory / input argument of ``model``.

    :func:`check_tensor` (type, dtype; on the model's device) then :func:`check_shape` with the
    model's sizes ``K`` (networks), ``N`` (units), ``I`` (inputs) and ``O`` (outputs), plus any
    further ``sizes``; ``finite=True`` also rejects NaN / inf. For example
    ``check_model_tensor("speed", "points", x, model, [("K|1", "P", "N"), ("P", "N")])``.
    """
    model_sizes = {
        "K": int(model.n_networks),
        "N": int(model.n_units),
        "I": int(getattr(model, "n_inputs", 0)),
        "O": int(getattr(model, "n_outputs", 0)),
    }
    model_sizes.update(sizes)
    device = getattr(model, "device", None)
    t = check_tensor(owner, name, value, dtype=dtype, device=device, detach=detach)
    idx = check_shape(owner, name, t, layouts, **model_sizes)
    if finite:
        check_finite(owner, name, t)
    return t, idx
