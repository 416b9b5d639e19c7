"""Pointwise nonlinearities ``phi`` and their slopes ``phi'`` (the one source of both).

Every function is elementwise: ``a`` has any shape and the result has the same shape and dtype.
``leaky_relu`` has slope :data:`LEAKY_SLOPE` below 0; at the kinks of ``relu`` and
``leaky_relu`` the slope is the left one (0, resp. :data:`LEAKY_SLOPE`), the subgradient that
autograd uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LEAKY_SLOPE", "NONLINEARITIES", "SLOPE_BOUNDS", "phi", "dphi", "max_slope"]

LEAKY_SLOPE = 0.01

NONLINEARITIES = ("tanh", "relu", "leaky_relu", "softplus", "sigmoid", "identity")

#: the slope bound g with ``0 <= phi'(a) <= g`` for all a, per nonlinearity (every one here is
#: monotone): tanh 1 (at a = 0), relu 1, leaky_relu 1 (its slope lies in [0.01, 1]), softplus 1
#: (its slope is sigmoid(a) < 1), sigmoid 1/4 (at a = 0), identity 1
SLOPE_BOUNDS = {
    "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0, "softplus": 1.0, "sigmoid": 0.25,
    "identity": 1.0,
}


def phi(name: str, a: torch.Tensor) -> torch.Tensor:
    """``phi(a)`` for the nonlinearity ``name`` (one of :data:`NONLINEARITIES`).

    ``tanh``; ``relu = max(a, 0)``; ``leaky_relu = max(a, 0.01 a)``;
    ``softplus = log(1 + e^a)``; ``sigmoid = 1 / (1 + e^-a)``; ``identity = a``.
    """
    if name == "tanh":
        return torch.tanh(a)
    if name == "relu":
        return torch.relu(a)
    if name == "leaky_relu":
        return F.leaky_relu(a, LEAKY_SLOPE)
    if name == "softplus":
        return F.softplus(a)
    if name == "sigmoid":
        return torch.sigmoid(a)
    if name == "identity":
        return a
    raise ValueError(f"Unknown nonlinearity {name!r}; choose one of {NONLINEARITIES}.")


def dphi(name: str, a: torch.Tensor) -> torch.Tensor:
    """The slope ``phi'(a)`` (subgradient 0 at the ReLU kink, as autograd uses).

    ``tanh: 1 - tanh(a)^2``; ``relu: [a > 0]``; ``leaky_relu: 1 if a > 0 else 0.01``;
    ``softplus: sigmoid(a)``; ``sigmoid: s (1 - s)``; ``identity: 1``.
    """
    if name == "tanh":
        return 1 - torch.tanh(a) ** 2
    if name == "relu":
        return (a > 0).to(a.dtype)
    if name == "leaky_relu":
        return torch.where(a > 0, torch.ones_like(a), torch.full_like(a, LEAKY_SLOPE))
    if name == "softplus":
        return torch.sigmoid(a)
    if name == "sigmoid":
        s = torch.sigmoid(a)
        return s * (1 - s)
    if name == "identity":
        return torch.ones_like(a)
    raise ValueError(f"Unknown nonlinearity {name!r}; choose one of {NONLINEARITIES}.")


def max_slope(name: str) -> float:
    """The slope bound g of the nonlinearity ``name``: ``0 <= phi'(a) <= g`` for every a
    (:data:`SLOPE_BOUNDS`; what contraction certificates assume of phi).

    Raises:
        ValueError: an unknown name, saying that the certificates need a monotone nonlinearity
            with ``0 <= phi' <= g`` and its g.
    """
    if name in SLOPE_BOUNDS:
        return SLOPE_BOUNDS[name]
    raise ValueError(
        f"No slope bound is known for the nonlinearity {name!r}: a certificate needs a "
        f"monotone phi with 0 <= phi'(a) <= g for all a and that g (known: {SLOPE_BOUNDS})."
    )
