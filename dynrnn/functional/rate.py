"""The leaky rate-RNN cell (the one source of its equations; models and kernels call these).

For K networks, B trials, N units, with ``alpha = 1 / tau`` per neuron (``[K, 1, N]`` or
``[K, B, N]``), the pre-activation

    a = W h + drive (+ noise),        drive = U x + b,

and one of two leak forms (Khajehabdollahi, S., Zeraati, R., Giannakakis, E., Schäfer, T. J.,
Martius, G. & Levina, A. (2024). Emergent mechanisms for long timescales depend on training
curriculum and affect performance in memory tasks. *International Conference on Learning
Representations (ICLR 2024)*):

* ``leak_form="inside"``:  ``h' = phi((1 - alpha) h + alpha a)``;
* ``leak_form="outside"``: ``h' = (1 - alpha) h + alpha phi(a)`` (the Euler step of
  ``tau dh/dt = -h + phi(a)``);
* ``alpha is None`` (every tau = 1, both forms): the vanilla RNN ``h' = phi(a)``.

The leaky mix ``(1 - alpha) h + alpha a`` is computed as ``h + alpha (a - h)``.
"""

from __future__ import annotations

import torch

from .nonlin import dphi, phi

__all__ = [
    "LEAK_FORMS",
    "leak_mix",
    "rate_preactivation",
    "rate_cell",
    "rate_step",
    "rate_cell_jacobian",
]

LEAK_FORMS = ("inside", "outside")


def leak_mix(h: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``(1 - alpha) h + alpha a``, computed as ``h + alpha (a - h)`` (broadcast shapes)."""
    return h + alpha * (a - h)


def rate_preactivation(
    h: torch.Tensor, drive: torch.Tensor, W_T: torch.Tensor, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """``a = drive + h W^T (+ noise)``.

    Arguments:
        h: states ``[K, B, N]``.
        drive: input drive ``U x + b``, ``[K, B, N]`` (or broadcastable to it).
        W_T: transposed recurrent weights ``[K, N, N]``.
        noise: ``[K, B, N]`` added after the recurrent sum, or None.

    Returns:
        ``[K, B, N]``.
    """
    a = torch.baddbmm(drive, h, W_T)
    if noise is not None:
        a = a + noise
    return a


def rate_cell(
    h: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor | None, nonlinearity: str,
    leak_form: str,
) -> torch.Tensor:
    """The next state from the state ``h [K, B, N]`` and the pre-activation ``a [K, B, N]``.

    ``alpha [K, 1 or B, N]`` or None (vanilla ``phi(a)``); ``"inside"``:
    ``phi((1 - alpha) h + alpha a)``; ``"outside"``: ``(1 - alpha) h + alpha phi(a)``.
    Returns ``[K, B, N]``.
    """
    if alpha is None:
        return phi(nonlinearity, a)
    if leak_form == "inside":
        return phi(nonlinearity, leak_mix(h, a, alpha))
    return leak_mix(h, phi(nonlinearity, a), alpha)


def rate_step(
    h: torch.Tensor, drive: torch.Tensor, W_T: torch.Tensor, alpha: torch.Tensor | None,
    nonlinearity: str, leak_form: str, noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One step ``h [K, B, N] -> [K, B, N]``: :func:`rate_cell` of :func:`rate_preactivation`."""
    return rate_cell(h, rate_preactivation(h, drive, W_T, noise), alpha, nonlinearity, leak_form)


def rate_cell_jacobian(
    h: torch.Tensor, a: torch.Tensor, W: torch.Tensor, alpha: torch.Tensor | None,
    nonlinearity: str, leak_form: str,
) -> torch.Tensor:
    """``d h' / d h`` of :func:`rate_step`, ``[K, B, N, N]`` (``J[..., i, j] = d h'_i / d h_j``).

    Arguments:
        h, a: state and pre-activation ``[K, B, N]``.
        W: recurrent weights ``[K, 1, N, N]`` (untransposed, broadcast over B).
        alpha: ``[K, 1 or B, N]`` or None; nonlinearity, leak_form as in :func:`rate_cell`.

    Returns:
        vanilla ``diag(phi'(a)) W``; inside ``diag(phi'(u)) ((1 - alpha) I + alpha W)`` with
        ``u = (1 - alpha) h + alpha a``; outside ``(1 - alpha) I + diag(alpha phi'(a)) W``.
    """
    if alpha is None:
        return dphi(nonlinearity, a)[..., :, None] * W
    eye = torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
    alpha = alpha.expand_as(h)
    if leak_form == "inside":
        inner = (1 - alpha)[..., None] * eye + alpha[..., :, None] * W
        return dphi(nonlinearity, leak_mix(h, a, alpha))[..., :, None] * inner
    return (1 - alpha)[..., None] * eye + (alpha * dphi(nonlinearity, a))[..., :, None] * W
