"""Steps of the piecewise-linear RNN family (the one source of their equations).

Latent states ``z [K, B, M]``; ``drive [K, B, M]`` (or broadcastable to it) is the constant
bias plus any external input, ``h + C s``; ``A [K, M]`` is the diagonal of the linear part.
All maps share the update :func:`plrnn_update`, ``z' = A z + W p + drive``, with ``p``:

* PLRNN (Koppe, G., Toutounji, H., Kirsch, P., Lis, S. & Durstewitz, D. (2019). Identifying
  nonlinear dynamical systems via generative recurrent neural networks with applications to
  fMRI. *PLOS Computational Biology* 15(8), e1007263): ``p = relu(z)``;
* AL-RNN (Brenner, M., Hemmer, C. J., Monfared, Z. & Durstewitz, D. (2024). Almost-linear RNNs
  yield highly interpretable symbolic codes in dynamical systems reconstruction. *Advances in
  Neural Information Processing Systems (NeurIPS)*): ``p = Phi*(z)``, identity on the first
  ``M - P`` units and ReLU on the last ``P`` (:func:`plrnn_phi` with ``n_linear = M - P``);
* shPLRNN (Hess, F., Monfared, Z., Brenner, M. & Durstewitz, D. (2023). Generalized teacher
  forcing for learning chaotic dynamics. *International Conference on Machine Learning
  (ICML)*): ``p = relu(W2 z + h2)``, or for the clipped shPLRNN
  ``p = relu(W2 z + h2) - relu(W2 z)`` (:func:`shplrnn_hidden`), with ``W = W1 [K, M, L]``.

Each map is affine in every linear region: ``z' = M_d z + c_d`` (:func:`plrnn_affine`,
:func:`shplrnn_affine`), which is also its Jacobian ``M_d``.
"""

from __future__ import annotations

import torch

__all__ = [
    "plrnn_phi",
    "plrnn_update",
    "plrnn_step",
    "shplrnn_hidden",
    "shplrnn_step",
    "plrnn_affine",
    "shplrnn_affine",
]


def plrnn_phi(z: torch.Tensor, n_linear: int = 0) -> torch.Tensor:
    """``Phi*(z)``: identity on the first ``n_linear`` units, ReLU on the others (``[..., M]``
    -> ``[..., M]``; ``n_linear = 0``: the PLRNN's ``relu(z)``; ``n_linear >= M``: ``z``)."""
    M = z.shape[-1]
    if n_linear <= 0:
        return torch.relu(z)
    if n_linear >= M:
        return z
    return torch.cat([z[..., :n_linear], torch.relu(z[..., n_linear:])], -1)


def plrnn_update(
    z: torch.Tensor, p: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W_T: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``z' = A z + W p + drive``.

    Arguments:
        z: states ``[K, B, M]``; p: the nonlinear features ``[K, B, P]`` (``phi(z)`` or the
        shPLRNN's hidden layer); drive: ``[K, B, M]`` or broadcastable (``[K, 1, M]``);
        A: ``[K, M]``; W_T: ``W^T [K, P, M]``.
        out: ``[K, B, M]`` to write the result into (no autograd; same values), or None.

    Returns:
        ``[K, B, M]``.
    """
    if out is None:
        return torch.baddbmm(drive, p, W_T) + A[:, None, :] * z
    return torch.baddbmm(drive, p, W_T, out=out).add_(A[:, None, :] * z)


def plrnn_step(
    z: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W_T: torch.Tensor, n_linear: int = 0
) -> torch.Tensor:
    """PLRNN (``n_linear = 0``) / AL-RNN (``n_linear = M - P``) step
    ``z' = A z + W Phi*(z) + drive`` (``[K, B, M] -> [K, B, M]``, ``W_T [K, M, M]``)."""
    return plrnn_update(z, plrnn_phi(z, n_linear), drive, A, W_T)


def shplrnn_hidden(
    z: torch.Tensor, W2_T: torch.Tensor, h2: torch.Tensor, clipped: bool,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shPLRNN's hidden layer: ``(r, a, u)`` with ``u = W2 z``, ``a = u + h2`` and
    ``r = relu(a)`` (``clipped``: ``relu(a) - relu(u)``), each ``[K, B, L]``
    (``z [K, B, M]``, ``W2_T [K, M, L]``, ``h2 [K, L]``; ``out``: a ``[K, B, L]`` tensor to
    write ``r`` into, no autograd, same values)."""
    u = torch.bmm(z, W2_T)
    a = u + h2[:, None, :]
    if out is None:
        r = torch.relu(a)
        if clipped:
            r = r - torch.relu(u)
        return r, a, u
    torch.clamp_min(a, 0, out=out)  # = relu(a)
    if clipped:
        torch.sub(out, torch.relu(u), out=out)
    return out, a, u


def shplrnn_step(
    z: torch.Tensor, drive: torch.Tensor, A: torch.Tensor, W1_T: torch.Tensor,
    W2_T: torch.Tensor, h2: torch.Tensor, clipped: bool,
) -> torch.Tensor:
    """(Clipped) shPLRNN step ``z' = A z + W1 r + drive`` with ``r`` of :func:`shplrnn_hidden`
    (``z [K, B, M]``, ``W1_T [K, L, M]``) -> ``[K, B, M]``."""
    r = shplrnn_hidden(z, W2_T, h2, clipped)[0]
    return plrnn_update(z, r, drive, A, W1_T)


def plrnn_affine(A: torch.Tensor, W: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """``M_d = diag(A) + W diag(s)``, the PLRNN / AL-RNN matrix of a linear region.

    Arguments:
        A, W: ``[K, *1, M]`` and ``[K, *1, M, M]`` (singleton lead dims).
        slopes: the slope of ``Phi*`` per unit in the region, ``[K, *lead, M]`` (0/1; 1 on
            linear units).

    Returns:
        ``[K, *lead, M, M]``.
    """
    return W * slopes.unsqueeze(-2) + torch.diag_embed(A.expand(*slopes.shape[:-1], -1))


def shplrnn_affine(
    A: torch.Tensor, W1: torch.Tensor, W2: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor,
    on: torch.Tensor, eff: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M_d, c_d)`` of a shPLRNN region: ``M_d = diag(A) + W1 diag(e) W2``,
    ``c_d = h1 + W1 diag(d) h2``.

    Arguments:
        A, W1, W2, h1, h2: ``[K, *1, M]``, ``[K, *1, M, L]``, ``[K, *1, L, M]``, ``[K, *1, M]``,
            ``[K, *1, L]`` (singleton lead dims).
        on: ``d = [W2 z + h2 > 0]``, ``[K, *lead, L]``.
        eff: the slope of the hidden layer ``e`` (``d``, or ``d - [W2 z > 0]`` when clipped).

    Returns:
        ``M_d [K, *lead, M, M]``, ``c_d [K, *lead, M]`` (external inputs excluded).
    """
    mats = (W1 * eff.unsqueeze(-2)) @ W2
    mats = mats + torch.diag_embed(A.expand(*on.shape[:-1], -1))
    c = h1 + ((W1 * on.unsqueeze(-2)) @ h2.unsqueeze(-1)).squeeze(-1)
    return mats, c
