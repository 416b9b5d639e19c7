"""Masked losses computed per network (shape ``[K]``), so an ensemble's total loss is their sum
and each network's gradient is exactly its own loss's gradient.

:func:`masked_mse` is defined in :mod:`dynrnn.functional.losses` (analyses use it too) and
re-exported here."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import ParameterTypeError, check_shape
from ..functional.losses import _real, masked_mse

__all__ = ["masked_mse", "head_cross_entropy", "head_accuracy"]


def _integer(owner: str, name: str, value) -> torch.Tensor:
    """An integer tensor (tensors, integer arrays and nested lists of ints)."""
    msg = f"The {name!r} parameter of {owner} must be an integer tensor. Got {{}} instead."
    if torch.is_tensor(value):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            raise ParameterTypeError(msg.format(type(value).__name__)) from None
        if arr.dtype.kind not in "iu":
            raise ParameterTypeError(msg.format(f"an array of dtype {arr.dtype}"))
        t = torch.from_numpy(arr.astype(np.int64))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ParameterTypeError(msg.format(f"dtype {t.dtype}"))
    return t


def _check_heads(owner, outputs, labels, mask, head_map):
    """Validated ``(outputs, labels, mask, head_map)`` of the two-class head losses."""
    outputs = _real(owner, "outputs", outputs)
    if outputs.dtype == torch.bool:
        outputs = outputs.to(torch.get_default_dtype())
    check_shape(owner, "outputs", outputs, [("K", "B", "T", "O")])
    K, B, T, O = outputs.shape
    labels = _integer(owner, "labels", labels)
    check_shape(owner, "labels", labels, [("B", "T", "H")], "outputs", B=B, T=T)
    mask = _real(owner, "mask", mask)
    check_shape(owner, "mask", mask, [("B", "T")], "outputs", B=B, T=T)
    head_map = _integer(owner, "head_map", head_map)
    check_shape(owner, "head_map", head_map, [("K", "H")], "outputs", K=K)
    H_task = labels.shape[-1]
    if bool(((head_map < -1) | (head_map >= H_task)).any()):
        raise ValueError(
            f"The 'head_map' parameter of {owner} must hold task columns in [0, {H_task}) or -1 "
            f"(off). Got values in [{int(head_map.min())}, {int(head_map.max())}]."
        )
    if O < 2 * head_map.shape[1]:
        raise ValueError(
            f"The 'outputs' parameter of {owner} has {O} outputs; the {head_map.shape[1]} "
            f"two-class heads of 'head_map' need {2 * head_map.shape[1]}."
        )
    return outputs, labels, mask, head_map


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
    outputs, labels, mask, head_map = _check_heads(
        "head_cross_entropy", outputs, labels, mask, head_map
    )
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
    outputs, labels, mask, head_map = _check_heads(
        "head_accuracy", outputs, labels, mask, head_map
    )
    K, H_out = head_map.shape
    logits = _head_logits(outputs, H_out)
    sel = mask.nonzero(as_tuple=True)
    pred = logits[:, sel[0], sel[1]].argmax(-1)  # [K, M, H_out]
    lab = labels[sel[0], sel[1]][:, head_map.clamp(min=0)].permute(1, 0, 2)
    acc = (pred == lab).to(torch.float64).mean(1)
    return torch.where(head_map >= 0, acc, torch.full_like(acc, float("nan")))
