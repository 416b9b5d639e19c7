"""Delay embedding and dynamic mode decomposition (DMD) in HAVOK coordinates, batched over
networks: the first two stages of Dynamical Similarity Analysis.

1. each network's trajectories ``[B, T, N]`` are delay-embedded into a Hankel matrix (``n_delays``
   copies, ``delay_interval`` steps apart) whose rows are time points;
2. a truncated SVD ``H = U S V^T`` keeps ``rank`` components; the rows of ``U_r`` are whitened
   eigen-time-delay coordinates ``z_t`` (HAVOK: Brunton, Brunton, Proctor, Kaiser & Kutz 2017,
   "Chaos as an intermittently forced linear system", Nature Communications 8, 19). A linear map
   ``A`` with ``z_{t+1} = A z_t`` is fitted by ridge regression (``method="havok"``:
   principal-component regression on the top-r coordinates, the default of the reference DSA
   code) or by reduced-rank ridge regression (``method="reduced_rank"``: ridge regression on all
   coordinates, then the rank-r projection onto the leading output directions, compressed to
   those r directions). Both give one ``[r, r]`` matrix per network, computed for all networks
   at once with batched SVDs.

DSA: Ostrow, Eisen, Kozachkov & Fiete (2023), "Beyond geometry: comparing the temporal structure
of computation in neural circuits with dynamical similarity analysis", NeurIPS 2023.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..._validation import check_choice, check_float, check_int
from .._common import as_tensor
from ._pairwise import _as_trials

__all__ = ["delay_embed", "fit_dmd"]


def delay_embed(x: Any, n_delays: int, delay_interval: int = 1) -> torch.Tensor:
    """Hankel (delay) embedding along the time axis.

    Arguments:
        x: ``[..., T, N]`` trajectories.
        n_delays: number of copies d (1 = no embedding).
        delay_interval: steps between copies.

    Returns:
        ``[..., T - (d - 1) * delay_interval, N * d]``; the block ``j`` of the last axis holds
        ``x[t - j * delay_interval]`` (block 0 is the current time).
    """
    owner = "delay_embed"
    d = check_int(owner, "n_delays", n_delays, 1)
    tau = check_int(owner, "delay_interval", delay_interval, 1)
    x = x if torch.is_tensor(x) else as_tensor(x, owner, "x")
    if x.ndim < 2:
        raise ValueError(
            f"The 'x' argument of {owner} must have shape [..., T, N]; got {tuple(x.shape)}."
        )
    T = x.shape[-2]
    if T < 2 or x.numel() == 0:
        raise ValueError(
            f"The 'x' argument of {owner} needs at least 2 time steps and no empty dims; got "
            f"shape {tuple(x.shape)}."
        )
    span = (d - 1) * tau
    if T - span < 2:
        raise ValueError(
            f"The 'n_delays' parameter of {owner} ({d}, with 'delay_interval' {tau}) leaves "
            f"{T - span} time points of the {T} available; need at least 2."
        )
    blocks = [x[..., span - j * tau : T - j * tau, :] for j in range(d)]
    return torch.cat(blocks, dim=-1)


def fit_dmd(
    states: Any,
    *,
    n_delays: int = 10,
    delay_interval: int = 1,
    rank: int = 30,
    lamb: float = 0.0,
    method: str = "havok",
) -> torch.Tensor:
    """Linear dynamics ``z_{t+1} = A z_t`` in delay-embedded, whitened SVD coordinates, for every
    network at once (Ostrow et al. 2023; HAVOK coordinates).

    Arguments:
        states: ``[K, B, T, N]`` (or ``[K, T, N]``) trajectories of K networks.
        n_delays, delay_interval: the Hankel embedding (see :func:`delay_embed`).
        rank: number of SVD components r kept (at most ``N * n_delays``).
        lamb: ridge penalty of the regression (>= 0).
        method: ``"havok"`` (ridge regression on the top-r coordinates) or ``"reduced_rank"``
            (ridge regression on all coordinates constrained to rank r, expressed in its r leading
            output directions).

    Returns:
        ``A [K, r, r]`` float64.
    """
    owner = "fit_dmd"
    x = _as_trials(states, owner)
    check_float(owner, "lamb", lamb, 0.0, math.inf, high_inclusive=False)
    check_choice(owner, "method", method, ("havok", "reduced_rank"))
    H = delay_embed(x, n_delays, delay_interval)  # [K, B, T', D]
    K, B, Tp, D = H.shape
    r = check_int(owner, "rank", rank, 1, min(D, B * Tp))
    flat = H.reshape(K, B * Tp, D)
    if method == "havok":
        Z = _top_left_singular_vectors(flat, r).reshape(K, B, Tp, r)
    else:
        U, S, _ = torch.linalg.svd(flat, full_matrices=False)  # U [K, M, min(M, D)]
        keep = S > S[:, :1] * 1e-12
        Z = (U * keep[:, None, :]).reshape(K, B, Tp, U.shape[-1])
    Zm = Z[:, :, :-1].reshape(K, -1, Z.shape[-1])
    Zp = Z[:, :, 1:].reshape(K, -1, Z.shape[-1])
    eye = torch.eye(Z.shape[-1], dtype=Z.dtype)
    gram = Zm.transpose(1, 2) @ Zm + lamb * eye
    if method == "havok":
        AT = torch.linalg.lstsq(gram, Zm.transpose(1, 2) @ Zp).solution  # [K, r, r]
        return AT.transpose(1, 2).contiguous()
    # reduced-rank ridge regression: B_ols, then project onto the top-r eigenvectors of the
    # fitted outputs' covariance; A restricted to those r directions
    BT = torch.linalg.lstsq(gram, Zm.transpose(1, 2) @ Zp).solution  # [K, D', D'] (z+ = z B^T)
    fitted = Zm @ BT
    _, V = torch.linalg.eigh(fitted.transpose(1, 2) @ fitted)
    W = V.flip(-1)[..., :r]  # [K, D', r]
    return (W.transpose(1, 2) @ BT.transpose(1, 2) @ W).contiguous()


def _top_left_singular_vectors(flat: torch.Tensor, r: int) -> torch.Tensor:
    """The top-``r`` left singular vectors ``U_r [K, M, r]`` of ``flat [K, M, D]``.

    ``U_r = H V_r / s_r`` from the top-r eigenpairs of the ``D x D`` Gram matrix ``H^T H``
    (cheaper than an SVD when M > D; on the CPU only the r wanted eigenpairs are computed, by
    LAPACK's ``dsyevr``). Squaring the matrix loses the directions whose singular value is
    below ~1e-7 of the largest (their Gram eigenvalues sit at the rounding level), so a network
    whose ``s_r <= 1e-7 s_1`` gets its ``U_r`` from an SVD of its own ``H`` instead; the other
    networks keep the Gram result.
    """
    K, M, D = flat.shape
    gram = flat.transpose(1, 2) @ flat
    if flat.device.type == "cpu" and r < D:
        from scipy.linalg import eigh as scipy_eigh

        g = gram.detach().numpy()
        pairs = [scipy_eigh(g[k], subset_by_index=[D - r, D - 1], driver="evr") for k in range(K)]
        evals = torch.from_numpy(np.stack([w[::-1] for w, _ in pairs])).to(flat.dtype)
        Vr = torch.from_numpy(np.stack([v[:, ::-1] for _, v in pairs])).to(flat.dtype)
    else:
        evals, V = torch.linalg.eigh(gram)
        evals, Vr = evals.flip(-1)[..., :r], V.flip(-1)[..., :r]
    sr = evals.clamp(min=0).sqrt()  # [K, r], descending
    Ur = flat @ Vr / sr.clamp(min=torch.finfo(flat.dtype).tiny)[:, None, :]
    bad = (sr[:, -1] <= 1e-7 * sr[:, 0]).nonzero().flatten()
    if bad.numel():  # one batched SVD of the ill-conditioned networks only
        Ur[bad] = torch.linalg.svd(flat[bad], full_matrices=False)[0][..., :r]
    return Ur
