"""Exact fixed points and k-cycles of piecewise-linear RNNs: SCYFI (Eisenmann et al., NeurIPS
2023) and the brute-force enumeration used as its test oracle.

A PLRNN-family model is affine in each linear region: with the region's switch pattern ``d``
(``model.region_code``), ``F(z) = M_d z + c_d`` (``model.affine_pieces``). For a candidate
sequence of regions ``D_1 .. D_k`` a k-cycle must satisfy ``z* = P z* + s`` with
``P = M_k ... M_1`` and ``s`` the accumulated offsets, i.e. ``z* = (I - P)^{-1} s``. The
candidate is a true cycle iff the orbit ``z*, F(z*), ..`` actually visits ``D_1 .. D_k`` (and
closes). SCYFI iterates: solve for the candidate, simulate k steps, and if the visited regions
differ, restart from the regions actually visited; after ``max_inner`` failed iterations it
re-initialises the sequence randomly (from the regions along a random orbit, or random switch
patterns). Here all restarts of all K networks run as one batch (``[K, B, k, ...]`` tensors,
float64), so the inner loop costs k batched matrix products and one batched solve.

Stability of a cycle: eigenvalues of the cycle's Jacobian product ``P`` (stable iff all
``|lambda| < 1``).

:func:`brute_force_cycles` enumerates all ``(2^R)^k`` region sequences (``R`` switches); it is
exact but exponential and meant for small models (tests, benchmarks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from .._validation import (
    ParameterTypeError,
    check_choice,
    check_float,
    check_int,
    resolve_generator,
)
from ._common import check_model, float64_copy, network_coords

__all__ = ["find_cycles", "brute_force_cycles", "cycle_candidates"]


def _check_pwl(model, owner):
    check_model(model, owner)
    for name in ("region_code", "affine_pieces", "n_region_bits"):
        if not hasattr(model, name):
            raise ParameterTypeError(
                f"The 'model' parameter of {owner} must be piecewise linear (PLRNN, shPLRNN, "
                f"AL-RNN: missing {name!r}). Got {type(model).__name__} instead."
            )
    if getattr(model, "n_inputs", 0):
        raise ValueError(
            f"The 'model' parameter of {owner} must be autonomous (n_inputs = 0); got n_inputs = "
            f"{model.n_inputs}."
        )


def cycle_candidates(model, D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve for the k-cycle candidates of region sequences ``D [K, B, k, R]``.

    Returns ``(z* [K, B, M], P [K, B, M, M], ok [K, B])`` where ``P`` is the Jacobian product
    of the cycle and ``ok`` is False where ``I - P`` is (numerically) singular.
    """
    mats, cs = model.affine_pieces(D)  # [K, B, k, M, M], [K, B, k, M]
    K, B, k, M = cs.shape
    eye = torch.eye(M, dtype=cs.dtype, device=cs.device).expand(K, B, M, M)
    P, s = eye, torch.zeros(K, B, M, dtype=cs.dtype, device=cs.device)
    for j in range(k):
        P = mats[:, :, j] @ P
        s = (mats[:, :, j] @ s.unsqueeze(-1)).squeeze(-1) + cs[:, :, j]
    A = eye - P
    z, info = torch.linalg.solve_ex(A, s.unsqueeze(-1))
    z = z.squeeze(-1)
    cond_ok = torch.linalg.matrix_norm(A, ord=1) > 1e-12
    ok = (info == 0) & torch.isfinite(z).all(-1) & cond_ok
    return torch.where(ok[..., None], z, torch.zeros_like(z)), P, ok


def _orbit(model, z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points ``[K, B, k, M]``, visited regions ``[K, B, k, R]`` and ``F^k(z)``."""
    pts, regs = [], []
    for _ in range(k):
        d = model.region_code(z)
        pts.append(z)
        regs.append(d)
        mats, cs = model.affine_pieces(d)
        z = (mats @ z.unsqueeze(-1)).squeeze(-1) + cs
    return torch.stack(pts, 2), torch.stack(regs, 2), z


def _minimal_period(pts: np.ndarray, tol: float) -> int:
    k = len(pts)
    for p in range(1, k):
        if k % p == 0 and np.linalg.norm(pts[p] - pts[0]) <= tol * (1 + np.linalg.norm(pts[0])):
            return p
    return k


class _CycleSet:
    """De-duplicated cycles of one network (a cycle is equal to any of its rotations)."""

    def __init__(self, tol):
        self.tol = tol
        self.items: list[dict] = []

    def add(self, pts, regs, P) -> bool:
        for it in self.items:
            scale = 1 + np.linalg.norm(pts[0])
            if np.min(np.linalg.norm(it["points"] - pts[0], axis=1)) <= self.tol * scale:
                return False
        ev = np.linalg.eigvals(P)
        self.items.append({"points": pts, "regions": regs, "eigenvalues": ev})
        return True


def _collect(model, D, tol, sets, order):
    """Solve, check consistency, and file the true cycles; returns (consistent, visited)."""
    z, P, ok = cycle_candidates(model, D)
    pts, regs, end = _orbit(model, z, order)
    same = (regs == D).all(-1).all(-1)
    scale = 1 + z.norm(dim=-1)
    closed = (end - z).norm(dim=-1) <= tol * scale
    good = ok & same & closed
    idx = torch.nonzero(good).tolist()
    if idx:
        pts_np, regs_np, P_np = pts.numpy(), regs.numpy(), P.numpy()
        for k, b in idx:
            if _minimal_period(pts_np[k, b], tol) == order:
                sets[k].add(pts_np[k, b], regs_np[k, b].astype(np.int8), P_np[k, b])
    return good, regs, ok


def _to_dataset(model, sets, order, method, extra) -> xr.Dataset:
    K, M = model.n_networks, model.n_units
    rows = [(k, it) for k in range(K) for it in sets[k].items]
    R = model.n_region_bits
    n = len(rows)
    pts = np.zeros((n, order, M))
    regs = np.zeros((n, order, R), dtype=np.int8)
    ev = np.zeros((n, M), dtype=np.complex128)
    for i, (_, it) in enumerate(rows):
        pts[i], regs[i] = it["points"], it["regions"]
        e = it["eigenvalues"]
        ev[i] = e[np.argsort(-np.abs(e))]
    max_abs = np.abs(ev).max(1) if n else np.zeros(0)
    net = np.asarray([k for k, _ in rows], dtype=np.int64)
    counts = np.bincount(net, minlength=K) if n else np.zeros(K, dtype=np.int64)
    ds = xr.Dataset(
        {
            "points": (("cycle", "step", "unit"), pts),
            "regions": (("cycle", "step", "bit"), regs),
            "eigenvalues_real": (("cycle", "eig"), ev.real),
            "eigenvalues_imag": (("cycle", "eig"), ev.imag),
            "max_abs_eigenvalue": ("cycle", max_abs),
            "stable": ("cycle", max_abs < 1.0),
            "n_unstable": ("cycle", (np.abs(ev) > 1.0).sum(1)),
            "network_index": ("cycle", net),
            "n_cycles": ("network", counts),
        },
        coords=network_coords(model),
    )
    ds.attrs.update(analysis=method, order=order, **extra)
    return ds


def find_cycles(
    model: Any,
    order: int = 1,
    *,
    n_restarts: int = 256,
    n_rounds: int = 4,
    max_inner: int = 50,
    init_scale: float = 3.0,
    tol: float = 1e-8,
    seed: int | torch.Generator | None = 0,
    method: str = "auto",
) -> xr.Dataset:
    """All k-cycles (k = ``order``; 1 = fixed points) SCYFI finds, for each of K networks.

    With ``method="auto"`` (default) a small model is not searched but enumerated: when the
    ``(2^R)^k`` region sequences (R region switches) are no more than the candidate solves
    one SCYFI run would make at most (``n_restarts * n_rounds * max_inner``), every sequence
    is solved once (:func:`brute_force_cycles`), which is both cheaper and exhaustive (every
    cycle is found, with certainty). The result's attrs say which was used: ``analysis``
    (``"scyfi"`` or ``"brute_force"``), ``method`` (as asked), ``method_reason`` and
    ``exhaustive`` (1 for the enumeration, 0 for SCYFI).

    Arguments:
        model: PLRNN-family model (``region_code``/``affine_pieces``), autonomous.
        order: cycle length k; only cycles of minimal period k are reported.
        n_restarts: region sequences iterated in parallel per network and round.
        n_rounds: outer rounds; each round re-initialises all sequences (half from the regions
            along orbits of random states ``N(0, init_scale^2)``, half random switch patterns).
        max_inner: SCYFI iterations per round (a sequence that became a cycle or stopped
            changing is re-drawn within the round).
        tol: relative tolerance for closing the cycle and for de-duplication.
        seed: seed of the random initialisations.
        method: ``"auto"`` (enumerate where that is cheaper, see above), ``"scyfi"`` (always
            the randomised search) or ``"enumerate"`` (always enumerate; raises above
            ``2^22`` sequences, see :func:`brute_force_cycles`).

    Returns:
        ``xarray.Dataset`` over ``cycle`` (all networks' cycles): ``points [cycle, step, unit]``,
        ``regions [cycle, step, bit]``, eigenvalues of the Jacobian product (real/imag),
        ``max_abs_eigenvalue``, ``stable``, ``n_unstable``, ``network_index``; and
        ``n_cycles [network]``.
    """
    owner = "find_cycles"
    _check_pwl(model, owner)
    order = check_int(owner, "order", order, 1)
    n_restarts = check_int(owner, "n_restarts", n_restarts, 1)
    n_rounds = check_int(owner, "n_rounds", n_rounds, 1)
    max_inner = check_int(owner, "max_inner", max_inner, 1)
    init_scale = check_float(owner, "init_scale", init_scale, 0.0, None, low_inclusive=False)
    tol = check_float(owner, "tol", tol, 0.0, None, low_inclusive=False)
    check_choice(owner, "method", method, ("auto", "scyfi", "enumerate"))
    gen = resolve_generator(seed, owner=owner)
    R = int(model.n_region_bits)
    n_seq = 2 ** (R * order)
    budget = n_restarts * n_rounds * max_inner
    if method == "enumerate" or (method == "auto" and n_seq <= budget):
        reason = ("asked for" if method == "enumerate" else
                  f"{n_seq} region sequences <= {budget} SCYFI candidate solves")
        ds = brute_force_cycles(model, order, tol=tol, max_sequences=max(budget, 1 << 22))
        ds.attrs.update(method=method, method_reason=reason)
        return ds
    m = float64_copy(model)
    K, M = m.n_networks, m.n_units
    B = n_restarts
    sets = [_CycleSet(max(tol, 1e-6)) for _ in range(K)]

    def draw(n):
        half = n // 2
        z = init_scale * torch.randn(K, n - half, M, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            _, regs, _ = _orbit(m, z, order)
        rnd = (torch.rand(K, half, order, R, generator=gen, dtype=torch.float64) < 0.5).double()
        return torch.cat([regs, rnd], dim=1)

    n_iter = 0
    with torch.no_grad():
        for _ in range(n_rounds):
            D = draw(B)
            for _ in range(max_inner):
                n_iter += 1
                good, visited, ok = _collect(m, D, tol, sets, order)
                stuck = (visited == D).all(-1).all(-1)  # consistent regions but not closed
                redo = good | stuck | ~ok
                D = visited
                if bool(redo.any()):
                    fresh = draw(B)
                    D = torch.where(redo[..., None, None], fresh, D)
    reason = ("asked for" if method == "scyfi" else
              f"{n_seq} region sequences > {budget} SCYFI candidate solves")
    return _to_dataset(m, sets, order, "scyfi",
                       {"n_restarts": n_restarts, "n_rounds": n_rounds, "max_inner": max_inner,
                        "n_iterations": n_iter, "method": method, "method_reason": reason,
                        "exhaustive": 0})


def brute_force_cycles(model: Any, order: int = 1, *, tol: float = 1e-8,
                       max_sequences: int = 1 << 20, chunk: int = 4096) -> xr.Dataset:
    """All k-cycles by enumerating every sequence of k linear regions (the SCYFI oracle).

    Exponential: ``(2^R)^k`` sequences for R region switches; raises ValueError above
    ``max_sequences``. Same output as :func:`find_cycles`.
    """
    owner = "brute_force_cycles"
    _check_pwl(model, owner)
    order = check_int(owner, "order", order, 1)
    tol = check_float(owner, "tol", tol, 0.0, None, low_inclusive=False)
    max_sequences = check_int(owner, "max_sequences", max_sequences, 1)
    chunk = check_int(owner, "chunk", chunk, 1)
    m = float64_copy(model)
    K, R = m.n_networks, m.n_region_bits
    n_seq = 2 ** (R * order)
    if n_seq > max_sequences:
        raise ValueError(
            f"{owner} would enumerate 2^({R}*{order}) = {n_seq} region sequences, more than "
            f"max_sequences={max_sequences}; use find_cycles (SCYFI) for this model."
        )
    sets = [_CycleSet(max(tol, 1e-6)) for _ in range(K)]
    bits = R * order
    with torch.no_grad():
        for start in range(0, n_seq, chunk):
            codes = torch.arange(start, min(start + chunk, n_seq), dtype=torch.int64)
            D = ((codes[:, None] >> torch.arange(bits)) & 1).double().reshape(-1, order, R)
            D = D.unsqueeze(0).expand(K, *D.shape).contiguous()
            _collect(m, D, tol, sets, order)
    return _to_dataset(m, sets, order, "brute_force", {"n_sequences": n_seq, "exhaustive": 1})
