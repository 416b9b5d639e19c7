"""Masked losses computed per network (shape ``[K]``), so an ensemble's total loss is their sum
and each network's gradient is exactly its own loss's gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["masked_mse", "head_cross_entropy", "head_accuracy"]


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked entries, per network.

    Arguments:
        outputs: ``[K, B, T, O]``.
        targets: ``[B, T, O]`` or ``[K, B, T, O]``.
        mask: ``[B, T]`` or ``[B, T, O]`` (or with a leading K), True where counted.

    Returns:
        ``[K]``: ``sum(mask * (y - target)^2) / sum(mask)`` (mask expanded over O).
    """
    if mask.ndim == targets.ndim - 1:
        mask = mask.unsqueeze(-1)
    m = mask.expand_as(targets).to(outputs.dtype)
    err = (outputs - targets).pow(2) * m
    return err.sum(dim=(-3, -2, -1)) / m.sum(dim=(-3, -2, -1)).clamp(min=1)


def _head_logits(outputs: torch.Tensor, n_heads: int) -> torch.Tensor:
    K, B, T, O = outputs.shape
    if O < 2 * n_heads:
        raise ValueError(f"Model has {O} outputs; {n_heads} two-class heads need {2 * n_heads}.")
    return outputs[..., : 2 * n_heads].reshape(K, B, T, n_heads, 2)


def head_cross_entropy(
    outputs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, head_map: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy summed over each network's active heads, averaged over masked steps.

    Arguments:
        outputs: ``[K, B, T, 2 * H_out]`` logits, two per output head.
        labels: ``[B, T, H_task]`` long, one column per task head (e.g. per N of N-parity).
        mask: ``[B, T]`` bool, the steps where labels are read.
        head_map: ``[K, H_out]`` long: the task column each output head is trained on, -1 = off.

    Returns:
        ``[K]`` loss per network.
    """
    K, H_out = head_map.shape
    logits = _head_logits(outputs, H_out)  # [K, B, T, H_out, 2]
    sel = mask.nonzero(as_tuple=True)  # (b, t)
    lg = logits[:, sel[0], sel[1]]  # [K, M, H_out, 2]
    lab = labels[sel[0], sel[1]]  # [M, H_task]
    cols = head_map.clamp(min=0)  # [K, H_out]
    lab_k = lab[:, cols].permute(1, 0, 2)  # [K, M, H_out]
    ce = F.cross_entropy(lg.reshape(-1, 2), lab_k.reshape(-1), reduction="none").reshape(
        lab_k.shape
    )
    active = (head_map >= 0).to(ce.dtype)  # [K, H_out]
    return (ce.mean(1) * active).sum(1)


@torch.no_grad()
def head_accuracy(
    outputs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, head_map: torch.Tensor
) -> torch.Tensor:
    """Accuracy ``[K, H_out]`` of each output head on its task column (NaN for inactive heads)."""
    K, H_out = head_map.shape
    logits = _head_logits(outputs, H_out)
    sel = mask.nonzero(as_tuple=True)
    pred = logits[:, sel[0], sel[1]].argmax(-1)  # [K, M, H_out]
    lab = labels[sel[0], sel[1]][:, head_map.clamp(min=0)].permute(1, 0, 2)
    acc = (pred == lab).to(torch.float64).mean(1)
    return torch.where(head_map >= 0, acc, torch.full_like(acc, float("nan")))
