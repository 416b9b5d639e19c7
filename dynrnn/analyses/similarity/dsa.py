"""Dynamical Similarity Analysis (DSA) between all pairs of networks.

Ostrow, Eisen, Kozachkov & Fiete (2023), "Beyond geometry: comparing the temporal structure of
computation in neural circuits with dynamical similarity analysis", NeurIPS 2023.

The maps ``A [K, r, r]`` fitted by :func:`~dynrnn.analyses.similarity.dmd.fit_dmd` are compared
by Procrustes analysis over vector fields::

    d(A_x, A_y) = min over orthogonal C of || A_x - C A_y C^T ||_F        (Euclidean)
    theta(A_x, A_y) = arccos( max_C <A_x, C A_y C^T> / (|A_x| |A_y|) )    (angular),

where the minimiser is the same for both forms (the maximiser of the inner product), found by
the batched search of :mod:`dynrnn.analyses.similarity.orthogonal` from several starts per pair:
(1) the *spectral* start, which aligns the eigenvectors of the symmetric parts of ``A_x`` and
``A_y`` and fixes the eigenvector signs by a spectral relaxation plus greedy flips (exact for
``A_x = Q A_y Q^T``), (2) the same with its least certain sign flipped (the other determinant
sign), (3) the identity, (4) the reflection ``diag(-1, 1, ..., 1)``, then random orthogonal
matrices; the best start is kept. Validation (tests): planted orthogonal transforms of both
determinant signs give distance ~0 in a few iterations; the default starts agree with the best
of many random restarts; and in ``benchmarks/similarity.py`` against the reference
implementation (Adam on a Cayley parametrisation, two starts).

The cheap variant :func:`eigenvalue_wasserstein` compares the eigenvalue spectra of the maps (as
points in the complex plane, uniform weights) by the 2-Wasserstein distance, computed exactly by
optimal assignment (``scipy.optimize.linear_sum_assignment``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..._progress import progress_bar
from ..._validation import check_bool, check_float, check_int, resolve_generator
from ...kernels._threads import adapts_threads
from .._common import as_tensor, check_finite, check_model, check_states, to_numpy
from ._pairwise import _as_trials, _fill, _matrix_dataset, _pair_index
from .dmd import fit_dmd
from .orthogonal import _optimise_c, _random_orthogonal, _spectral_starts

__all__ = ["procrustes_vector_fields", "eigenvalue_wasserstein", "dsa", "trajectories"]


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


@adapts_threads
def procrustes_vector_fields(
    A: Any,
    B: Any = None,
    *,
    n_starts: int = 8,
    max_iters: int = 2000,
    tol: float = 1e-10,
    seed: int = 0,
    n_keep: int = 2,
    explore_iters: int = 60,
    halving: bool = True,
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
        n_keep, explore_iters, halving: all starts run ``explore_iters`` iterations; with
            ``halving`` the better half of each pair's starts then runs ``explore_iters`` more,
            and so on (successive halving) until ``n_keep`` are left; without it the ``n_keep``
            best are kept at once. The kept starts are run to convergence. Accuracy/cost
            trade-off, measured against a 48-start, keep-12 reference on the DMD maps (rank 30)
            of 20 64-unit RNNs (``benchmarks/similarity.py``'s data), mean / max excess over the
            reference in radians: untrained noise-driven networks, the defaults 0.0030 / 0.030
            (the former 40 iterations without halving: 0.0054 / 0.039; 16 starts 0.0021 /
            0.024 at 1.6x the cost); untrained autonomous (chaotic) networks 0.00006 / 0.0010.
            The landscape has many local optima, so no finite number of starts guarantees the
            global minimum; raise ``n_starts`` and ``n_keep`` for tighter values.
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
    check_bool(owner, "halving", halving)
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
                # explore: every start for explore_iters iterations, then (successive halving)
                # the better half of each pair's starts for explore_iters more, ... until
                # n_keep are left, which are refined to convergence
                _phase(bar, "exploring starts")
                rows = torch.arange(p * S)
                C, f, it = _optimise_c(X, Y, C0, min(explore_iters, max_iters), tol)
                kept = S
                while True:
                    kept_next = n_keep if not halving else max(n_keep, kept // 2)
                    fk = torch.full((p * S,), -math.inf, dtype=f.dtype).index_put_((rows,), f)
                    top = fk.reshape(p, S).topk(kept_next, dim=1).indices
                    new_rows = (torch.arange(p)[:, None] * S + top).reshape(-1)
                    pos = torch.empty(p * S, dtype=torch.long)
                    pos[rows] = torch.arange(rows.numel())
                    C, f, it = C[pos[new_rows]], f[pos[new_rows]], it[pos[new_rows]]
                    rows, kept = new_rows, kept_next
                    if kept == n_keep:
                        break
                    C, f, it2 = _optimise_c(X[rows], Y[rows], C, min(explore_iters, max_iters),
                                            tol)
                    it = it + it2
                _phase(bar, "refining the best starts")
                counter = _PairCounter(bar, p, n_keep)
                C, f2, it2 = _optimise_c(X[rows], Y[rows], C, max_iters, tol,
                                         on_finished=counter)
                f = torch.full((p * S,), -math.inf, dtype=f.dtype).index_put_((rows,), f2)
                it = torch.zeros(p * S, dtype=it.dtype).index_put_((rows,), it + it2)
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
            method="batched Cayley curvilinear search on O(n) (Wen & Yin 2013), multi-start",
            references="Ostrow et al. 2023 (DSA)",
            n_starts=S,
            n_keep=n_keep,
            explore_iters=explore_iters,
            halving=int(halving),
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


def trajectories(model: Any, inputs: Any, *, seed: int = 0, noise: bool = False) -> torch.Tensor:
    """States ``[K, B, T, N]`` of every network on the same inputs ``[B, T, I]`` (no grad)."""
    from ...models.base import run

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
