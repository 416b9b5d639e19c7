"""Pointwise nonlinearities with their derivatives (for analytic Jacobians)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LEAKY_SLOPE = 0.01

NONLINEARITIES = ("tanh", "relu", "leaky_relu", "softplus", "sigmoid", "identity")


def phi(name: str, a: torch.Tensor) -> torch.Tensor:
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
    """Derivative phi'(a) (subgradient 0 at the ReLU kink, as autograd uses)."""
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
    """Upper bound g of phi' (used by stability certificates)."""
    return {
        "tanh": 1.0,
        "relu": 1.0,
        "leaky_relu": 1.0,
        "softplus": 1.0,
        "sigmoid": 0.25,
        "identity": 1.0,
    }[name]
