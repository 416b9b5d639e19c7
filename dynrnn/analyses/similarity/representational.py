"""Representational similarity: Procrustes, CCA and CKA distances, pairwise over networks.

States are ``[K, M, N]`` (M samples, e.g. trials x time, N units; ``[K, B, T, N]`` is flattened),
centred per unit; samples must correspond across networks.

* :func:`procrustes_distance` -- orthogonal Procrustes shape metric: unit-norm ``X, Y``,
  angular ``arccos ||X^T Y||_*``;
* :func:`cca_distance` -- the same on whitened data (mean canonical correlation ``rho``),
  ``arccos(mean rho)``;
* :func:`cka_distance` -- linear CKA, angular form ``arccos CKA`` (the angle between the centred
  Gram matrices, a metric).

References:
    Williams, A. H., Kunz, E., Kornblith, S. & Linderman, S. W. (2021). Generalized shape
    metrics on neural representations. NeurIPS 2021.

    Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of neural network
    representations revisited. ICML 2019 (PMLR 97).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from ..._validation import check_float
from .._common import to_numpy
from ._pairwise import _as_samples, _fill, _matrix_dataset, _pair_index

__all__ = ["procrustes_distance", "cca_distance", "cka", "cka_distance"]


def _centre(X: torch.Tensor) -> torch.Tensor:
    return X - X.mean(1, keepdim=True)


def _pairwise_cross(
    Xs: torch.Tensor, Ys: torch.Tensor | None, fn, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``fn(X_i^T Y_j [p, Nx, Ny], i, j)`` over all index pairs in chunks."""
    K = Xs.shape[0]
    L = None if Ys is None else Ys.shape[0]
    Yb = Xs if Ys is None else Ys
    i, j = _pair_index(K, L)
    out = np.empty(len(i))
    for s in range(0, len(i), chunk):
        ii = torch.as_tensor(i[s : s + chunk])
        jj = torch.as_tensor(j[s : s + chunk])
        M = Xs[ii].transpose(1, 2) @ Yb[jj]
        out[s : s + chunk] = to_numpy(fn(M, ii, jj))
    return i, j, out


def _check_pair_samples(X, Y, owner):
    if Y is not None and Y.shape[1] != X.shape[1]:
        raise ValueError(
            f"The 'states' and 'states_b' parameters of {owner} must have the same number of "
            f"samples (same trials and times); got {X.shape[1]} and {Y.shape[1]}."
        )


def procrustes_distance(states: Any, states_b: Any = None) -> xr.Dataset:
    """Orthogonal Procrustes shape metric (Williams et al. 2021), pairwise.

    Each ``X [M, N]`` is centred per unit and scaled to unit Frobenius norm; then
    ``angular = arccos max_Q tr(X^T Y Q) = arccos ||X^T Y||_*`` (Q orthogonal, a partial isometry
    when the numbers of units differ) and ``euclidean = sqrt(2 - 2 ||X^T Y||_*)``.

    Arguments:
        states: ``[K, M, N]`` or ``[K, B, T, N]`` (samples must correspond across networks).
        states_b: ``[L, M, N']`` or None.

    Returns:
        ``xarray.Dataset`` with ``procrustes`` (angular, radians) and ``procrustes_euclidean``.
    """
    owner = "procrustes_distance"
    X = _as_samples(states, owner, "states")
    Y = None if states_b is None else _as_samples(states_b, owner, "states_b")
    _check_pair_samples(X, Y, owner)

    def unit(Z):
        Z = _centre(Z)
        return Z / torch.linalg.matrix_norm(Z).clamp(min=1e-300)[:, None, None]

    Xu = unit(X)
    Yu = None if Y is None else unit(Y)
    i, j, nuc = _pairwise_cross(Xu, Yu, lambda M, a, b: torch.linalg.matrix_norm(M, ord="nuc"))
    nuc = np.clip(nuc, -1.0, 1.0)
    K, L = X.shape[0], None if Y is None else Y.shape[0]
    return _matrix_dataset(
        {
            "procrustes": _fill(K, L, i, j, np.arccos(nuc)),
            "procrustes_euclidean": _fill(K, L, i, j, np.sqrt(np.clip(2 - 2 * nuc, 0, None))),
        },
        K,
        L,
        attrs=dict(analysis="procrustes_distance", references="Williams et al. 2021"),
    )


def _whiten(Z: torch.Tensor, eps: float) -> torch.Tensor:
    """Orthonormal basis of the centred column space (drops directions with relative singular
    value below ``eps``), scaled to unit Frobenius norm: ``[K, M, N]`` padded with zeros."""
    U, S, _ = torch.linalg.svd(_centre(Z), full_matrices=False)
    keep = (S > eps * S[:, :1]).to(Z.dtype)
    n_keep = keep.sum(1).clamp(min=1)
    return U * keep[:, None, :] / n_keep.sqrt()[:, None, None], n_keep


def cca_distance(states: Any, states_b: Any = None, *, eps: float = 1e-8) -> xr.Dataset:
    """CCA distance: Procrustes on whitened representations (Williams et al. 2021, alpha=0).

    With orthonormal bases ``Q_x, Q_y`` of the centred data, the canonical correlations are the
    singular values ``rho`` of ``Q_x^T Q_y``; ``cca = arccos(sum rho / sqrt(r_x r_y))`` (= arccos of
    the mean canonical correlation when the ranks agree), a metric.

    Arguments:
        states, states_b: as for :func:`procrustes_distance`.
        eps: relative singular value below which a direction is dropped before whitening.

    Returns:
        ``xarray.Dataset`` with ``cca`` (radians) and ``mean_canonical_correlation``.
    """
    owner = "cca_distance"
    X = _as_samples(states, owner, "states")
    Y = None if states_b is None else _as_samples(states_b, owner, "states_b")
    _check_pair_samples(X, Y, owner)
    check_float(owner, "eps", eps, 0.0, 1.0)
    Xw, rx = _whiten(X, eps)
    Yw, ry = (None, None) if Y is None else _whiten(Y, eps)
    ryb = rx if Y is None else ry
    i, j, nuc = _pairwise_cross(Xw, Yw, lambda M, a, b: torch.linalg.matrix_norm(M, ord="nuc"))
    nuc = np.clip(nuc, -1.0, 1.0)
    # mean canonical correlation = sum(rho) / min rank
    ra, rb = to_numpy(rx)[i], to_numpy(ryb)[j]
    scale = np.sqrt(ra * rb) / np.minimum(ra, rb)
    K, L = X.shape[0], None if Y is None else Y.shape[0]
    return _matrix_dataset(
        {
            "cca": _fill(K, L, i, j, np.arccos(nuc)),
            "mean_canonical_correlation": _fill(K, L, i, j, nuc * scale, diag=1.0),
        },
        K,
        L,
        attrs=dict(analysis="cca_distance", references="Williams et al. 2021", eps=eps),
    )


def cka(states: Any, states_b: Any = None) -> xr.Dataset:
    """Linear centred kernel alignment (Kornblith et al. 2019), pairwise.

    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred data; ``cka_distance =
    arccos CKA`` is the angle between the centred Gram matrices (a metric).

    Returns:
        ``xarray.Dataset`` with ``cka`` (similarity in [0, 1]) and ``cka_distance`` (radians).
    """
    owner = "cka"
    X = _centre(_as_samples(states, owner, "states"))
    Y = None if states_b is None else _centre(_as_samples(states_b, owner, "states_b"))
    _check_pair_samples(X, Y, owner)
    gx = torch.linalg.matrix_norm(X.transpose(1, 2) @ X).clamp(min=1e-300)
    gy = gx if Y is None else torch.linalg.matrix_norm(Y.transpose(1, 2) @ Y).clamp(min=1e-300)

    def fn(M, a, b):
        return (M * M).sum((1, 2)) / (gx[a] * gy[b])

    i, j, vals = _pairwise_cross(X, Y, fn)
    vals = np.clip(vals, 0.0, 1.0)
    K, L = X.shape[0], None if Y is None else Y.shape[0]
    return _matrix_dataset(
        {
            "cka": _fill(K, L, i, j, vals, diag=1.0),
            "cka_distance": _fill(K, L, i, j, np.arccos(vals)),
        },
        K,
        L,
        attrs=dict(analysis="cka", references="Kornblith et al. 2019; Williams et al. 2021"),
    )


def cka_distance(states: Any, states_b: Any = None) -> xr.Dataset:
    """Angular linear CKA distance ``arccos CKA`` (see :func:`cka`)."""
    return cka(states, states_b)[["cka_distance"]]
