"""Loss equations computed per network (shape ``[K]``), so an ensemble's total loss is their sum
and each network's gradient is exactly its own loss's gradient."""

from __future__ import annotations

import torch

from .._validation import check_shape, check_tensor

__all__ = ["masked_mse"]


def _real(owner: str, name: str, value) -> torch.Tensor:
    """A real tensor (kept as it is when it already is one, so gradients flow)."""
    if torch.is_tensor(value) and (value.is_floating_point() or value.dtype == torch.bool):
        return value
    return check_tensor(owner, name, value)


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked entries, per network.

    Arguments:
        outputs: ``[K, B, T, O]``.
        targets: ``[B, T, O]`` or ``[K, B, T, O]``.
        mask: ``[B, T]`` or ``[B, T, O]`` (or with a leading K), True where counted.

    Returns:
        ``[K]``: ``sum(mask * (y - target)^2) / sum(mask)`` (mask expanded over O).
    """
    owner = "masked_mse"
    outputs = _real(owner, "outputs", outputs)
    if outputs.dtype == torch.bool:
        outputs = outputs.to(torch.get_default_dtype())
    targets = _real(owner, "targets", targets).to(outputs.dtype)
    mask = _real(owner, "mask", mask)
    check_shape(owner, "outputs", outputs, [("K", "B", "T", "O")])
    K, B, T, O = outputs.shape
    sizes = dict(K=K, B=B, T=T, O=O)
    if check_shape(owner, "targets", targets, [("B", "T", "O"), ("K|1", "B", "T", "O")],
                   "outputs", **sizes) == 0:
        check_shape(owner, "mask", mask, [("B", "T"), ("B", "T", "O")], "outputs", **sizes)
    else:
        check_shape(owner, "mask", mask, [("K|1", "B", "T"), ("K|1", "B", "T", "O")], "outputs",
                    **sizes)
    if mask.ndim == targets.ndim - 1:
        mask = mask.unsqueeze(-1)
    m = mask.expand_as(targets).to(outputs.dtype)
    err = (outputs - targets).pow(2) * m
    return err.sum(dim=(-3, -2, -1)) / m.sum(dim=(-3, -2, -1)).clamp(min=1)
