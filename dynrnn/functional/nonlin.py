"""Pointwise nonlinearities ``phi`` and their slopes ``phi'`` (the one source of both).

Every function is elementwise: ``a`` has any shape and the result has the same shape and dtype.
``leaky_relu`` has slope :data:`LEAKY_SLOPE` below 0; at the kinks of ``relu`` and
``leaky_relu`` the slope is the left one (0, resp. :data:`LEAKY_SLOPE`), the subgradient that
autograd uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LEAKY_SLOPE", "NONLINEARITIES", "phi", "dphi"]

LEAKY_SLOPE = 0.01

NONLINEARITIES = ("tanh", "relu", "leaky_relu", "softplus", "sigmoid", "identity")


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
