"""Similarity of networks at three levels, all pairwise and batched over networks.

**Dynamics** -- Dynamical Similarity Analysis (Ostrow et al., NeurIPS 2023):

1. each network's trajectories ``[B, T, N]`` are delay-embedded into a Hankel matrix (``n_delays``
   copies, ``delay_interval`` steps apart) whose rows are time points;
2. a truncated SVD ``H = U S V^T`` keeps ``rank`` components; the rows of ``U_r`` are whitened
   eigen-time-delay coordinates ``z_t`` (HAVOK). A linear map ``A`` with ``z_{t+1} = A z_t`` is
   fitted by ridge regression (``method="havok"``: principal-component regression on the top-r
   coordinates, the reference DSA default) or by reduced-rank ridge regression
   (``method="reduced_rank"``: ridge regression on all coordinates, then the rank-r projection
   onto the leading output directions, compressed to those r directions). Both give one
   ``[r, r]`` matrix per network, computed for all networks at once with batched SVDs;
3. the distance between two fitted maps is Procrustes analysis over vector fields,

       d(A_x, A_y) = min over orthogonal C of || A_x - C A_y C^T ||_F        (Euclidean)
       theta(A_x, A_y) = arccos( max_C <A_x, C A_y C^T> / (|A_x| |A_y|) )    (angular),

   where the minimiser is the same for both forms (the maximiser of the inner product).

*Optimiser for C* (written here because no library batches it over pairs). ``f(C) =
<A_x, C A_y C^T>`` is maximised on the orthogonal group by the curvilinear search of Wen & Yin
(2013): the Cayley retraction ``C(t) = (I + t/2 W)^-1 (I - t/2 W) C`` along the skew matrix
``W = G C^T - C G^T`` of the Euclidean gradient ``G``, Barzilai--Borwein step sizes and a
non-monotone Armijo backtracking, per problem. A Cayley path never leaves the connected component
of its start, so both determinant signs are covered by the starts: (1) the *spectral* start, which
aligns the eigenvectors of the symmetric parts of ``A_x`` and ``A_y`` and fixes the eigenvector
signs by a spectral relaxation plus greedy flips (exact for ``A_x = Q A_y Q^T``), (2) the same
with its least certain sign flipped (the other determinant sign), (3) the identity, (4) the
reflection ``diag(-1, 1, ..., 1)``, then random orthogonal matrices; the best start is kept. All
pairs x starts are one batched computation (batched ``solve`` of ``[P * S, r, r]``). Validation
(tests): planted orthogonal transforms of both determinant signs give distance ~0 in a few
iterations; the default starts agree with the best of many random restarts; and in
``benchmarks/similarity.py`` against the reference implementation (Adam on a Cayley
parametrisation, two starts).

The cheap variant :func:`eigenvalue_wasserstein` compares the eigenvalue spectra of the maps (as
points in the complex plane, uniform weights) by the 2-Wasserstein distance, computed exactly by
optimal assignment (``scipy.optimize.linear_sum_assignment``).

**Representations** (Williams et al., NeurIPS 2021; Kornblith et al., ICML 2019): states are
``[K, M, N]`` (M samples, e.g. trials x time, N units), centred per unit.

* :func:`procrustes_distance` -- orthogonal Procrustes shape metric: unit-norm ``X, Y``,
  angular ``arccos ||X^T Y||_*``;
* :func:`cca_distance` -- the same on whitened data (mean canonical correlation ``rho``),
  ``arccos(mean rho)``;
* :func:`cka_distance` -- linear CKA, angular form ``arccos CKA`` (the angle between the centred
  Gram matrices, a metric).

**Weights** -- :func:`weight_distance`: ``min_P ||W_1 - P^T W_2 P||`` over permutations of the
hidden units, with input weights, biases, time constants and readout weights permuted consistently,
normalised by the number of parameters compared (Huang et al. 2025). It is a quadratic assignment
problem; we solve it with ``scipy.optimize.quadratic_assignment`` (FAQ) on a graph whose hidden
nodes are permuted and whose input, output and bias nodes are fixed (``partial_match``), so the
input/output terms enter the same objective. FAQ starts from the Hungarian match of permutation-
invariant unit features (sorted incoming and outgoing weights, input and readout weights, bias)
and from a few randomised starts; the best permutation is kept.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._progress import progress_bar
from .._validation import (
    ParameterTypeError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    resolve_generator,
)
from ._common import as_tensor, check_finite, check_model, check_states, to_numpy

__all__ = [
    "delay_embed",
    "fit_dmd",
    "procrustes_vector_fields",
    "dsa",
    "eigenvalue_wasserstein",
    "procrustes_distance",
    "cca_distance",
    "cka",
    "cka_distance",
    "weight_distance",
    "trajectories",
]


# --------------------------------------------------------------------------- input handling
def _as_trials(states: Any, owner: str, name: str = "states") -> torch.Tensor:
    """``[K, B, T, N]`` float64 from ``[K, B, T, N]``, ``[K, T, N]`` (one trial) or a list of
    ``[B, T, N]`` / ``[T, N]`` arrays of equal shape."""
    if isinstance(states, (list, tuple)) and states and not np.isscalar(states[0]):
        parts = [as_tensor(s, owner, name) for s in states]
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) > 1:
            raise ValueError(
                f"The {name!r} parameter of {owner} must hold arrays of one shape; got "
                f"{sorted(shapes)}. Pass networks of different sizes as separate calls or pad."
            )
        x = torch.stack(parts)
    else:
        x = as_tensor(states, owner, name)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have shape [K, B, T, N] or [K, T, N]. "
            f"Got {tuple(x.shape)} instead."
        )
    if min(x.shape) < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} must not be empty; got {tuple(x.shape)}."
        )
    return check_finite(x, owner, name)


def _as_samples(states: Any, owner: str, name: str) -> torch.Tensor:
    """``[K, M, N]`` float64 (``[K, B, T, N]`` is flattened over trials and time)."""
    x = as_tensor(states, owner, name)
    if x.ndim == 4 and min(x.shape) > 0:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have shape [K, M, N] or [K, B, T, N]. "
            f"Got {tuple(x.shape)} instead."
        )
    if x.shape[1] < 2 or x.shape[2] < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} needs at least 2 samples and 1 unit per network; "
            f"got {tuple(x.shape)}."
        )
    return check_finite(x, owner, name)


def _pair_index(K: int, L: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs: upper triangle (i < j) when comparing a set with itself, else all (i, j)."""
    if L is None:
        i, j = np.triu_indices(K, k=1)
    else:
        i, j = np.meshgrid(np.arange(K), np.arange(L), indexing="ij")
        i, j = i.ravel(), j.ravel()
    return i, j


def _fill(K: int, L: int | None, i, j, values: np.ndarray, diag: float = 0.0) -> np.ndarray:
    if L is None:
        D = np.full((K, K), diag, dtype=float)
        D[i, j] = values
        D[j, i] = values
        return D
    D = np.empty((K, L), dtype=float)
    D[i, j] = values
    return D


def _matrix_dataset(name_values: dict, K: int, L: int | None, attrs: dict, coords=None):
    dims = ("network", "network_b")
    ds = xr.Dataset(
        {k: (dims, v) for k, v in name_values.items()},
        coords={"network": np.arange(K), "network_b": np.arange(K if L is None else L)},
        attrs=attrs,
    )
    if coords:
        ds = ds.assign_coords(coords)
    return ds


# --------------------------------------------------------------------------- DSA: DMD
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
        # top-r left singular vectors U_r = H V_r / s_r from the eigendecomposition of the
        # D x D Gram matrix (cheaper than a full SVD when there are more rows than columns)
        evals, V = torch.linalg.eigh(flat.transpose(1, 2) @ flat)
        Vr, sr = V.flip(-1)[..., :r], evals.flip(-1)[..., :r].clamp(min=0).sqrt()
        if bool((sr[:, -1] <= 1e-7 * sr[:, 0]).any()):
            U, _, _ = torch.linalg.svd(flat, full_matrices=False)
            Ur = U[..., :r]
        else:
            Ur = flat @ Vr / sr[:, None, :]
        Z = Ur.reshape(K, B, Tp, r)
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


# --------------------------------------------------------------------------- DSA: Procrustes
def _random_orthogonal(n_mats: int, n: int, gen: torch.Generator) -> torch.Tensor:
    G = torch.randn(n_mats, n, n, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(G)
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[:, None, :]


def _spectral_starts(X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two informed starts per pair ``X, Y [P, n, n]``: align the eigenvectors of the symmetric
    parts (sorted by eigenvalue; exact for ``X = Q Y Q^T`` with distinct eigenvalues up to the
    eigenvector signs), fix the signs ``d`` by the leading eigenvector of
    ``M_ij = X'_ij Y'_ij + X'_ji Y'_ji`` (the spectral relaxation of max ``sum M_ij d_i d_j``)
    followed by greedy single flips, and return that C and its reflection (the least certain
    sign flipped, so the other determinant sign is covered too)."""
    _, Vx = torch.linalg.eigh(0.5 * (X + X.transpose(1, 2)))
    _, Vy = torch.linalg.eigh(0.5 * (Y + Y.transpose(1, 2)))
    Xp = Vx.transpose(1, 2) @ X @ Vx
    Yp = Vy.transpose(1, 2) @ Y @ Vy
    M = Xp * Yp
    M = M + M.transpose(1, 2)
    _, E = torch.linalg.eigh(M)
    d = torch.sign(E[..., -1])
    d[d == 0] = 1.0
    for _ in range(2 * X.shape[-1]):  # greedy flips while they help
        gain = -4 * d * ((M * d[:, None, :]).sum(-1) - torch.diagonal(M, dim1=1, dim2=2) * d)
        best, at = gain.max(1)
        flip = best > 1e-14
        if not bool(flip.any()):
            break
        rows = flip.nonzero().squeeze(1)
        d[rows, at[rows]] *= -1
    conf = (M * d[:, None, :]).sum(-1).mul(d).abs()
    d2 = d.clone()
    weakest = conf.argmin(1)
    d2[torch.arange(d.shape[0]), weakest] *= -1
    C1 = Vx @ (d[:, :, None] * Vy.transpose(1, 2))
    C2 = Vx @ (d2[:, :, None] * Vy.transpose(1, 2))
    return C1, C2


def _optimise_c(
    X: torch.Tensor,
    Y: torch.Tensor,
    C0: torch.Tensor,
    max_iters: int,
    tol: float,
    gtol: float = 1e-6,
    on_finished=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maximise ``<X, C Y C^T>`` over orthogonal C for a batch ``X, Y, C0 [P, n, n]``.

    Curvilinear search on the orthogonal group (Wen & Yin 2013): Cayley retraction
    ``C(t) = (I + t/2 W)^-1 (I - t/2 W) C`` along the skew matrix ``W = G C^T - C G^T`` of the
    Euclidean gradient ``G`` of ``-f``, Barzilai--Borwein step sizes and a non-monotone
    (Zhang--Hager) Armijo backtracking, all per problem and batched. Each start stays in the
    connected component (determinant sign) of ``C0``. A problem stops when the Riemannian
    gradient norm ``||W||_F`` falls below ``gtol`` (times ``|X| |Y|``) or the objective changes by
    less than ``tol`` (relative) twice in a row. Returns ``(C, f, iterations)``.
    ``on_finished(rows)``, if given, is called with the indices of the problems that have just
    stopped (for progress reporting).
    """
    P, n, _ = X.shape
    eye = torch.eye(n, dtype=X.dtype)
    scale = (torch.linalg.matrix_norm(X) * torch.linalg.matrix_norm(Y)).clamp(min=1e-300)
    C = C0.clone()
    f, G = _fgrad(X, Y, C)
    W = _skew(G, C)
    WC = W @ C
    tau = torch.full((P,), 0.1, dtype=X.dtype)
    ref = -f.clone()  # Zhang-Hager reference value of -f
    q = torch.ones(P, dtype=X.dtype)
    eta, rho = 0.85, 1e-4
    iters = torch.zeros(P, dtype=torch.long)
    small = torch.zeros(P, dtype=torch.long)
    # the working set: indices into the full batch, compacted when it has shrunk enough
    idx = torch.arange(P)
    Xs, Ys = X, Y
    for _ in range(max_iters):
        if idx.numel() == 0:
            break
        Ca, Wa, WCa, fa = C[idx], W[idx], WC[idx], f[idx]
        nW2 = (Wa * Wa).sum((1, 2))
        t = tau[idx].clone()
        Cn, fn, Gn = Ca.clone(), fa.clone(), torch.empty_like(Ca)
        todo = torch.arange(idx.numel())
        for bt in range(30):
            h = (0.5 * t[todo])[:, None, None] * Wa[todo]
            Ct = torch.linalg.solve(eye + h, Ca[todo] - h @ Ca[todo])
            whole = todo.numel() == idx.numel()
            ft, Gt = _fgrad(Xs if whole else Xs[todo], Ys if whole else Ys[todo], Ct)
            ok = -ft <= ref[idx[todo]] - rho * t[todo] * 0.5 * nW2[todo]
            if bt == 29:
                ok = torch.ones_like(ok)
            sel = todo[ok]
            Cn[sel], fn[sel], Gn[sel] = Ct[ok], ft[ok], Gt[ok]
            todo = todo[~ok]
            if todo.numel() == 0:
                break
            t[todo] = t[todo] * 0.3
        Wn = _skew(Gn, Cn)
        WCn = Wn @ Cn
        # Barzilai-Borwein step from the Riemannian gradients W C
        S = Cn - Ca
        Dg = WCn - WCa
        sy = (S * Dg).sum((1, 2)).abs()
        even = (iters[idx] % 2) == 0
        bb = torch.where(
            even,
            (S * S).sum((1, 2)) / sy.clamp(min=1e-300),
            sy / (Dg * Dg).sum((1, 2)).clamp(min=1e-300),
        )
        tau[idx] = torch.nan_to_num(bb, nan=0.1, posinf=1.0).clamp(1e-10, 1e10)
        change = (fn - fa).abs()
        C[idx], f[idx], W[idx], WC[idx] = Cn, fn, Wn, WCn
        qn = eta * q[idx] + 1
        ref[idx] = (eta * q[idx] * ref[idx] - fn) / qn
        q[idx] = qn
        iters[idx] += 1
        grad_small = (Wn * Wn).sum((1, 2)) < (gtol * scale[idx]) ** 2
        tiny = change <= tol * fn.abs().clamp(min=1e-12)
        small[idx] = torch.where(tiny, small[idx] + 1, torch.zeros_like(small[idx]))
        done = grad_small | (small[idx] >= 2)
        if bool(done.any()):
            if on_finished is not None:
                on_finished(idx[done])
            keep = ~done
            idx = idx[keep]
            Xs, Ys = Xs[keep], Ys[keep]
    return C, f, iters


class _PairCounter:
    """Advances ``bar`` by the pairs of a chunk whose ``per_pair`` problems (the rows
    ``pair * per_pair`` to ``pair * per_pair + per_pair - 1``) have all stopped; :meth:`close`
    counts the pairs left at the iteration cap."""

    def __init__(self, bar, n_pairs: int, per_pair: int):
        self.bar, self.per_pair, self.n_pairs, self.done = bar, per_pair, n_pairs, 0
        self.left = torch.full((n_pairs,), per_pair, dtype=torch.long)

    def __call__(self, rows: torch.Tensor) -> None:
        if self.bar.disable:
            return
        pairs = rows // self.per_pair
        self.left.index_add_(0, pairs, torch.full_like(pairs, -1))
        n = int((self.left[torch.unique(pairs)] == 0).sum())
        self.done += n
        self.bar.update(n)

    def close(self) -> None:
        self.bar.update(self.n_pairs - self.done)
        self.done = self.n_pairs


def _phase(bar, name: str) -> None:
    """Name the stage of the loop on its progress bar."""
    if not bar.disable:
        bar.set_postfix_str(name, refresh=True)


def _skew(G, C):
    GC = G @ C.transpose(1, 2)
    return GC - GC.transpose(1, 2)


def _fgrad(X, Y, C):
    """``f = <X, C Y C^T> = <X C, C Y>`` and the gradient of ``-f``."""
    XC = X @ C
    CY = C @ Y
    f = (XC * CY).sum((1, 2))
    G = -(XC @ Y.transpose(1, 2) + X.transpose(1, 2) @ CY)
    return f, G


def procrustes_vector_fields(
    A: Any,
    B: Any = None,
    *,
    n_starts: int = 8,
    max_iters: int = 2000,
    tol: float = 1e-10,
    seed: int = 0,
    n_keep: int = 2,
    explore_iters: int = 40,
    chunk_size: int = 512,
    return_transforms: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Pairwise Procrustes analysis over vector fields (the DSA distance) between linear maps.

    Arguments:
        A: ``[K, n, n]`` maps (e.g. from :func:`fit_dmd`).
        B: ``[L, n, n]`` maps, or None to compare ``A`` with itself (pairs i < j; the diagonal
            is 0 and the matrix symmetric).
        n_starts: starts per pair (>= 1): the spectral alignment of the symmetric parts and its
            reflection, the identity, the reflection diag(-1, 1, ...), then random orthogonal
            matrices (both determinant signs).
        max_iters: iteration cap of the optimiser; tol: relative change of the objective at which
            a start has converged.
        n_keep, explore_iters: all starts run ``explore_iters`` iterations, then only the
            ``n_keep`` best starts of each pair are run to convergence. Accuracy/cost trade-off
            (measured on DMD maps of 64-unit RNNs, rank 30): the defaults (8 starts, keep 2)
            were on average 0.002 rad (max 0.014 rad) above a 32-start, keep-8 reference, at
            ~1/2.5 the cost of keeping all 8; raise both for tighter values. The landscape has
            many local optima, so no finite number of starts guarantees the global minimum.
        seed: seeds the random starts.
        chunk_size: pairs optimised together (memory ~ ``chunk_size * n_starts * n^2`` floats).
        return_transforms: also return the optimal ``C [network, network_b, n, n]`` (only when
            comparing fewer than ~500 maps).
        progress: show a tqdm progress bar on stderr over the pairs (a pair counts once all of
            its refined starts have converged; the postfix names the stage of the chunk).

    Returns:
        ``xarray.Dataset`` with ``angular [network, network_b]`` (radians, in [0, pi]),
        ``euclidean`` (``min_C ||A - C B C^T||_F``), ``det_c`` (the determinant sign of the
        optimal C), ``iterations`` (of the best start).
    """
    owner = "procrustes_vector_fields"
    Ax = as_tensor(A, owner, "A")
    Ay = None if B is None else as_tensor(B, owner, "B")
    for name, M in (("A", Ax), ("B", Ay)):
        if M is None:
            continue
        if M.ndim == 2:
            M = M.unsqueeze(0)
        if M.ndim != 3 or M.shape[-1] != M.shape[-2] or min(M.shape) < 1:
            raise ValueError(
                f"The {name!r} parameter of {owner} must have shape [K, n, n] with K, n >= 1. "
                f"Got {tuple(M.shape)}."
            )
        check_finite(M, owner, name)
    Ax = Ax if Ax.ndim == 3 else Ax.unsqueeze(0)
    if Ay is not None:
        Ay = Ay if Ay.ndim == 3 else Ay.unsqueeze(0)
        if Ay.shape[-1] != Ax.shape[-1]:
            raise ValueError(
                f"The 'A' and 'B' parameters of {owner} must have the same map size n; got "
                f"{Ax.shape[-1]} and {Ay.shape[-1]} (use the same DMD rank)."
            )
    S = check_int(owner, "n_starts", n_starts, 1)
    max_iters = check_int(owner, "max_iters", max_iters, 1)
    tol = check_float(owner, "tol", tol, 0.0, None)
    chunk_size = check_int(owner, "chunk_size", chunk_size, 1)
    n_keep = check_int(owner, "n_keep", n_keep, 1)
    explore_iters = check_int(owner, "explore_iters", explore_iters, 1)
    check_bool(owner, "return_transforms", return_transforms)
    check_bool(owner, "progress", progress)
    gen = resolve_generator(seed, owner=owner)
    K, n = Ax.shape[0], Ax.shape[-1]
    L = None if Ay is None else Ay.shape[0]
    Ybank = Ax if Ay is None else Ay
    nx = torch.linalg.matrix_norm(Ax).clamp(min=1e-300)
    ny = torch.linalg.matrix_norm(Ybank).clamp(min=1e-300)
    Xn, Yn = Ax / nx[:, None, None], Ybank / ny[:, None, None]
    i, j = _pair_index(K, L)
    P = len(i)
    fixed = [torch.eye(n, dtype=torch.float64)]
    R = torch.eye(n, dtype=torch.float64)
    R[0, 0] = -1.0
    fixed.append(R)
    if S > 4:
        fixed.extend(_random_orthogonal(S - 4, n, gen).unbind(0))
    fixed = torch.stack(fixed)  # [S_fixed, n, n]
    cos = np.empty(P)
    det = np.empty(P)
    its = np.empty(P, dtype=np.int64)
    C_best = np.empty((P, n, n)) if return_transforms else None
    with progress_bar(progress, total=P, desc="procrustes_vector_fields", unit="pair") as bar:
        for s in range(0, P, chunk_size):
            ii = torch.as_tensor(i[s : s + chunk_size])
            jj = torch.as_tensor(j[s : s + chunk_size])
            p = len(ii)
            X = Xn[ii].repeat_interleave(S, 0)
            Y = Yn[jj].repeat_interleave(S, 0)
            s1, s2 = _spectral_starts(Xn[ii], Yn[jj])
            C0 = torch.cat([s1[:, None], s2[:, None], fixed[None].expand(p, -1, -1, -1)], 1)
            C0 = C0[:, :S].reshape(p * S, n, n)
            if S > n_keep:
                # explore: every start for a few iterations, then refine the n_keep best per pair
                _phase(bar, "exploring starts")
                C, f, it = _optimise_c(X, Y, C0, min(explore_iters, max_iters), tol)
                top = f.reshape(p, S).topk(n_keep, dim=1).indices
                rows = (torch.arange(p)[:, None] * S + top).reshape(-1)
                _phase(bar, "refining the best starts")
                counter = _PairCounter(bar, p, n_keep)
                C, f2, it2 = _optimise_c(X[rows], Y[rows], C[rows], max_iters, tol,
                                         on_finished=counter)
                f = torch.full((p * S,), -math.inf, dtype=f.dtype).index_put_((rows,), f2)
                it = it.index_put_((rows,), it[rows] + it2)
                C = torch.zeros_like(X).index_put_((rows,), C)
            else:
                _phase(bar, "optimising")
                counter = _PairCounter(bar, p, S)
                C, f, it = _optimise_c(X, Y, C0, max_iters, tol, on_finished=counter)
            counter.close()
            f = f.reshape(p, S)
            best = f.argmax(1)
            rows = torch.arange(p) * S + best
            cos[s : s + p] = to_numpy(f.max(1).values)
            det[s : s + p] = to_numpy(torch.sign(torch.linalg.det(C[rows])))
            its[s : s + p] = to_numpy(it[rows])
            if return_transforms:
                C_best[s : s + p] = to_numpy(C[rows])
        _phase(bar, "")
    cos = np.clip(cos, -1.0, 1.0)
    ang = np.arccos(cos)
    a, b = to_numpy(nx)[i], to_numpy(ny)[j]
    euc = np.sqrt(np.clip(a * a + b * b - 2 * a * b * cos, 0.0, None))
    data = {
        "angular": _fill(K, L, i, j, ang),
        "euclidean": _fill(K, L, i, j, euc),
        "det_c": _fill(K, L, i, j, det, diag=1.0),
        "iterations": _fill(K, L, i, j, its.astype(float)),
    }
    ds = _matrix_dataset(
        data,
        K,
        L,
        attrs=dict(
            analysis="procrustes_vector_fields",
            method="batched majorise-minimise polar iteration over O(n), multi-start",
            references="Ostrow et al. 2023 (DSA)",
            n_starts=S,
            max_iters=max_iters,
            tol=tol,
        ),
    )
    ds["angular"].attrs.update(units="rad", long_name="arccos max_C <A, C B C^T>/(|A||B|)")
    ds["euclidean"].attrs.update(long_name="min_C ||A - C B C^T||_F")
    if return_transforms:
        Cm = np.zeros((K, K if L is None else L, n, n))
        Cm[i, j] = C_best
        if L is None:
            Cm[j, i] = np.transpose(C_best, (0, 2, 1))
            Cm[np.arange(K), np.arange(K)] = np.eye(n)
        ds["transform"] = (("network", "network_b", "row", "col"), Cm)
    return ds


def eigenvalue_wasserstein(A: Any, B: Any = None, *, progress: bool = True) -> xr.Dataset:
    """2-Wasserstein distance between the eigenvalue spectra of linear maps (uniform weights).

    The eigenvalues of each map are points in the complex plane; with equal numbers of points and
    uniform weights the optimal transport plan is an assignment, solved exactly with
    ``scipy.optimize.linear_sum_assignment``. ``W2 = sqrt(mean_i |lambda_i - mu_pi(i)|^2)``.
    Invariant to any similarity transform (not only orthogonal ones); a lower bound-type, cheap
    proxy of DSA.

    Arguments:
        A: ``[K, n, n]``; B: ``[L, n, n]`` or None (A against itself).
        progress: show a tqdm progress bar on stderr over the pairs (one assignment each).

    Returns:
        ``xarray.Dataset`` with ``wasserstein [network, network_b]`` and ``eigenvalues_real``,
        ``eigenvalues_imag [network, eigen]`` of A.
    """
    from scipy.optimize import linear_sum_assignment

    owner = "eigenvalue_wasserstein"
    check_bool(owner, "progress", progress)
    Ax = check_finite(as_tensor(A, owner, "A"), owner, "A")
    if Ax.ndim != 3 or Ax.shape[-1] != Ax.shape[-2] or min(Ax.shape) < 1:
        raise ValueError(
            f"The 'A' parameter of {owner} must have shape [K, n, n] with K, n >= 1. Got "
            f"{tuple(Ax.shape)}."
        )
    ex = to_numpy(torch.linalg.eigvals(Ax))
    if B is None:
        ey, L = ex, None
    else:
        By = check_finite(as_tensor(B, owner, "B"), owner, "B")
        if By.ndim != 3 or By.shape[-1] != Ax.shape[-1] or By.shape[-2] != Ax.shape[-1] or (
            By.shape[0] < 1
        ):
            raise ValueError(
                f"The 'B' parameter of {owner} must have shape [L, {Ax.shape[-1]}, "
                f"{Ax.shape[-1]}]. Got {tuple(By.shape)}."
            )
        ey, L = to_numpy(torch.linalg.eigvals(By)), By.shape[0]
    K = ex.shape[0]
    i, j = _pair_index(K, L)
    vals = np.empty(len(i))
    with progress_bar(progress, total=len(i), desc="eigenvalue_wasserstein", unit="pair") as bar:
        for p, (a, b) in enumerate(zip(i, j)):
            cost = np.abs(ex[a][:, None] - ey[b][None, :]) ** 2
            r, c = linear_sum_assignment(cost)
            vals[p] = math.sqrt(cost[r, c].mean())
            bar.update(1)
    ds = _matrix_dataset(
        {"wasserstein": _fill(K, L, i, j, vals)},
        K,
        L,
        attrs=dict(analysis="eigenvalue_wasserstein", references="Ostrow et al. 2023"),
    )
    ds["eigenvalues_real"] = (("network", "eigen"), ex.real)
    ds["eigenvalues_imag"] = (("network", "eigen"), ex.imag)
    return ds


def dsa(
    states: Any,
    states_b: Any = None,
    *,
    n_delays: int = 10,
    delay_interval: int = 1,
    rank: int = 30,
    lamb: float = 0.0,
    method: str = "havok",
    n_starts: int = 8,
    max_iters: int = 2000,
    tol: float = 1e-10,
    seed: int = 0,
    wasserstein: bool = True,
    progress: bool = True,
) -> xr.Dataset:
    """Dynamical Similarity Analysis between all pairs of networks (Ostrow et al. 2023).

    Arguments:
        states: ``[K, B, T, N]`` trajectories (e.g. the states of :func:`dynrnn.models.run` on
            the same inputs for every network) or ``[K, T, N]``.
        states_b: trajectories of L other networks (N may differ), or None (pairs within
            ``states``).
        n_delays, delay_interval, rank, lamb, method: the DMD (see :func:`fit_dmd`).
        n_starts, max_iters, tol, seed: the optimiser (see :func:`procrustes_vector_fields`).
        wasserstein: also compute the eigenvalue-Wasserstein variant.
        progress: show tqdm progress bars on stderr over the pairs (the optimisation of C,
            then the Wasserstein variant); the DMD fits are batched SVDs and ridge solves of
            all networks at once, with no loop to report on.

    Returns:
        ``xarray.Dataset`` with ``dsa`` (angular, radians) and ``dsa_euclidean``
        ``[network, network_b]``, ``wasserstein`` (if requested), the maps
        ``dmd [network, mode, mode_from]`` and the settings as attrs.
    """
    check_bool("dsa", "wasserstein", wasserstein)
    states = _as_trials(states, "dsa", "states")
    states_b = None if states_b is None else _as_trials(states_b, "dsa", "states_b")
    kw = dict(n_delays=n_delays, delay_interval=delay_interval, rank=rank, lamb=lamb, method=method)
    A = fit_dmd(states, **kw)
    Bm = None if states_b is None else fit_dmd(states_b, **kw)
    pv = procrustes_vector_fields(A, Bm, n_starts=n_starts, max_iters=max_iters, tol=tol, seed=seed,
                                  progress=progress)
    ds = pv.rename({"angular": "dsa", "euclidean": "dsa_euclidean"})
    if wasserstein:
        ds["wasserstein"] = eigenvalue_wasserstein(A, Bm, progress=progress)["wasserstein"]
    ds["dmd"] = (("network", "mode", "mode_from"), to_numpy(A))
    ds.attrs.update(analysis="dsa", **kw)
    return ds


# --------------------------------------------------------------------------- representations
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


# --------------------------------------------------------------------------- weights
_PERMUTED = ("W_rec", "W_in", "b", "tau", "W_out")


def _network_weights(model: Any, owner: str, name: str = "model") -> list[dict[str, np.ndarray]]:
    """Per network: ``W [N, N]``, ``U [N, I]``, ``b [N]``, ``tau [N]`` (if trained), ``V [O, N]``,
    ``c [O]`` as float64 numpy arrays (effective recurrent weights)."""
    if isinstance(model, (list, tuple)):
        out = []
        for d in model:
            if not isinstance(d, dict) or "W" not in d:
                raise ParameterTypeError(
                    f"The {name!r} parameter of {owner} must be a RateRNN-like model or a list of "
                    "dicts with at least 'W' [N, N] (optional 'U' [N, I], 'b' [N], 'V' [O, N], "
                    "'c' [O], 'tau' [N])."
                )
            out.append({k: np.asarray(to_numpy(as_tensor(v, owner, k))) for k, v in d.items()})
        return out
    if not all(hasattr(model, a) for a in ("W_rec", "W_in", "W_out")):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must have W_rec, W_in and W_out (a RateRNN); got "
            f"{type(model).__name__}. Gated models need gate-aware permutations (not supported)."
        )
    with torch.no_grad():
        W = model.effective_weights() if hasattr(model, "effective_weights") else model.W_rec
        W, U, V = (to_numpy(t.double()) for t in (W, model.W_in, model.W_out))
        cfg = model.configs
        b = to_numpy(model.b.double()) if getattr(cfg[0], "bias", False) else None
        c = to_numpy(model.b_out.double()) if getattr(cfg[0], "readout_bias", False) else None
        tau = to_numpy(model.tau.double()) if getattr(cfg[0], "train_tau", False) else None
    out = []
    for k in range(W.shape[0]):
        d = {"W": W[k], "U": U[k], "V": V[k]}
        if b is not None:
            d["b"] = b[k]
        if c is not None:
            d["c"] = c[k]
        if tau is not None:
            d["tau"] = tau[k]
        out.append(d)
    return out


def _graph(d: dict) -> tuple[np.ndarray, int]:
    """Adjacency of the network graph: hidden nodes first (permuted), then fixed nodes (inputs,
    outputs, one bias node). Edge (i, j) holds the weight from j to i."""
    W = d["W"]
    N = W.shape[0]
    U = d.get("U", np.zeros((N, 0)))
    V = d.get("V", np.zeros((0, N)))
    I, O = U.shape[1], V.shape[0]
    size = N + I + O + 1
    G = np.zeros((size, size))
    G[:N, :N] = W
    G[:N, N : N + I] = U
    G[N + I : N + I + O, :N] = V
    bias = N + I + O
    if "b" in d:
        G[:N, bias] = d["b"]
    if "tau" in d:  # per-unit parameter: an edge from the unit to the bias node
        G[bias, :N] = d["tau"]
    if "c" in d:
        G[N + I : N + I + O, bias] = d["c"]
    return G, N


def _unit_features(d: dict) -> np.ndarray:
    """Permutation-invariant features of each hidden unit (for the Hungarian seed)."""
    W = d["W"]
    N = W.shape[0]
    parts = [np.sort(W, axis=1), np.sort(W, axis=0).T, np.diag(W)[:, None]]
    if "U" in d:
        parts.append(d["U"])
    if "V" in d:
        parts.append(d["V"].T)
    for key in ("b", "tau"):
        if key in d:
            parts.append(np.asarray(d[key]).reshape(N, 1))
    return np.concatenate(parts, axis=1)


def _match_pair(d1: dict, d2: dict, n_restarts: int, rng: np.random.Generator):
    """Best hidden-unit permutation ``perm`` (unit i of net 1 <-> unit perm[i] of net 2)."""
    from scipy.optimize import linear_sum_assignment, quadratic_assignment

    G1, N = _graph(d1)
    G2, _ = _graph(d2)
    size = G1.shape[0]
    fixed = np.arange(N, size)
    partial = np.stack([fixed, fixed], 1) if len(fixed) else None
    f1, f2 = _unit_features(d1), _unit_features(d2)
    cost = ((f1[:, None, :] - f2[None, :, :]) ** 2).sum(-1)
    _, seed_perm = linear_sum_assignment(cost)
    candidates = [seed_perm]

    def sq_dist(perm):
        full = np.concatenate([perm, fixed])
        return float(((G1 - G2[np.ix_(full, full)]) ** 2).sum())

    def run_faq(P0):
        opts = {"maximize": True, "P0": P0, "tol": 1e-8, "maxiter": 100,
                "rng": np.random.default_rng(int(rng.integers(2**31)))}
        if partial is not None:
            opts["partial_match"] = partial
        res = quadratic_assignment(G1, G2, method="faq", options=opts)
        return np.asarray(res.col_ind)[:N]

    # FAQ's P0 refers to the free (unmatched) nodes only
    E = np.eye(N)[seed_perm]
    candidates.append(run_faq(E))
    for _ in range(n_restarts):
        # randomised start: barycentre mixed with a random doubly stochastic matrix
        M = rng.random((N, N))
        for _ in range(20):
            M /= M.sum(0, keepdims=True)
            M /= M.sum(1, keepdims=True)
        candidates.append(run_faq(0.5 * M + 0.5 * np.full((N, N), 1.0 / N)))
    scores = [sq_dist(c) for c in candidates]
    best = int(np.argmin(scores))
    return candidates[best], scores[best]


def weight_distance(
    model: Any,
    model_b: Any = None,
    *,
    n_restarts: int = 2,
    seed: int = 0,
    return_permutations: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Permutation-invariant weight distance (Huang et al. 2025), pairwise.

    ``d = min_P sqrt(||W_1 - P^T W_2 P||^2 + ||U_1 - P^T U_2||^2 + ||b_1 - P^T b_2||^2 +
    ||tau_1 - P^T tau_2||^2 + ||V_1 - V_2 P||^2 + ||c_1 - c_2||^2) / n_params`` over permutations
    P of the hidden units (one permutation for all weights, so input and readout weights move
    with their units); ``n_params`` is the number of parameters compared. Solved as a quadratic
    assignment (graph matching) with scipy's FAQ, hidden nodes free and input/output/bias nodes
    fixed (``partial_match``), seeded by the Hungarian match of sorted weight features plus
    ``n_restarts`` randomised starts.

    Arguments:
        model: a RateRNN with K networks (effective recurrent weights are used, so Dale's law and
            masks are respected), or a list of dicts ``{"W", "U", "b", "V", "c", "tau"}``.
        model_b: L other networks of the same sizes, or None (pairs within ``model``).
        n_restarts: randomised FAQ starts per pair in addition to the seeded one.
        seed: seeds the randomised starts.
        return_permutations: also return ``permutation [network, network_b, unit]`` (unit i of
            network a is matched with unit ``permutation[a, b, i]`` of network b).
        progress: show a tqdm progress bar on stderr over the pairs (one graph matching each).

    Returns:
        ``xarray.Dataset`` with ``weight_distance [network, network_b]`` (normalised),
        ``weight_distance_unnormalised`` (the Frobenius norm) and attr ``n_params``.
    """
    owner = "weight_distance"
    check_int(owner, "n_restarts", n_restarts, 0)
    check_int(owner, "seed", seed, 0)
    check_bool(owner, "return_permutations", return_permutations)
    check_bool(owner, "progress", progress)
    nets = _network_weights(model, owner)
    nets_b = nets if model_b is None else _network_weights(model_b, owner, "model_b")
    keys = set(nets[0])
    shapes = {k: np.shape(v) for k, v in nets[0].items()}
    for d in list(nets) + list(nets_b):
        if set(d) != keys or any(np.shape(d[k]) != shapes[k] for k in keys):
            raise ValueError(
                f"The networks of the 'model' and 'model_b' parameters of {owner} must all have "
                f"the same parameters and shapes; got "
                f"{ {k: np.shape(v) for k, v in d.items()} } vs {shapes}."
            )
    n_params = int(sum(np.prod(s) for s in shapes.values()))
    rng = np.random.default_rng(seed)
    K = len(nets)
    L = None if model_b is None else len(nets_b)
    i, j = _pair_index(K, L)
    vals = np.empty(len(i))
    perms = np.empty((len(i), shapes["W"][0]), dtype=np.int64)
    with progress_bar(progress, total=len(i), desc="weight_distance", unit="pair") as bar:
        for p, (a, b) in enumerate(zip(i, j)):
            perm, sq = _match_pair(nets[a], nets_b[b], n_restarts, rng)
            vals[p] = math.sqrt(max(sq, 0.0))
            perms[p] = perm
            bar.update(1)
    ds = _matrix_dataset(
        {
            "weight_distance": _fill(K, L, i, j, vals / n_params),
            "weight_distance_unnormalised": _fill(K, L, i, j, vals),
        },
        K,
        L,
        attrs=dict(
            analysis="weight_distance",
            method="scipy quadratic_assignment (FAQ), Hungarian-seeded + randomised restarts",
            references="Huang et al. 2025; Vogelstein et al. 2015 (FAQ)",
            n_params=n_params,
            parameters=" ".join(sorted(keys)),
        ),
    )
    if return_permutations:
        N = shapes["W"][0]
        Pm = np.tile(np.arange(N), (K, K if L is None else L, 1))
        Pm[i, j] = perms
        if L is None:
            Pm[j, i] = np.argsort(perms, axis=1)
        ds["permutation"] = (("network", "network_b", "unit"), Pm)
    return ds


# --------------------------------------------------------------------------- trajectories
def trajectories(model: Any, inputs: Any, *, seed: int = 0, noise: bool = False) -> torch.Tensor:
    """States ``[K, B, T, N]`` of every network on the same inputs ``[B, T, I]`` (no grad)."""
    from ..models.base import run

    owner = "trajectories"
    check_model(model, owner)
    check_bool(owner, "noise", noise)
    gen = resolve_generator(seed, owner=owner)
    x = inputs.inputs if hasattr(inputs, "inputs") else inputs
    x, _ = check_states(
        model, x, owner, "inputs", (("B", "T", "I"), ("K|1", "B", "T", "I")), finite=False
    )
    with torch.no_grad():
        states, _ = run(model, x.to(model.dtype), noise=noise, generator=gen)
    return states.double()
