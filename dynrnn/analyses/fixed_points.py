"""Fixed points and slow points of a whole ensemble at once (Sussillo & Barak 2013; Golub &
Sussillo 2018).

For every network k of a model with K networks, P candidate points are optimised together as
one tensor ``[K, P, N]`` to minimise the speed

    q(x) = 1/2 ||F(x, u) - x||^2

under a constant input ``u``. Two phases:

1. a batched first-order phase (Adam on q, gradients by autograd, in the model's dtype) that
   carries every candidate from its noisy initial state into the basin of a zero or a local
   minimum of q;
2. a batched second-order refinement on the residual ``r(x) = F(x) - x`` with Jacobian
   ``A = J - I`` from the protocol's ``model.jacobian``: a damped Newton step ``A dx = -r``
   (one LU per point, :mod:`dynrnn.kernels.linalg`; backtracking on q; further chord steps
   reuse the factors), and for points where Newton fails (singular A, e.g. near slow points)
   Levenberg--Marquardt steps ``(A^T A + mu I) dx = -A^T r`` with a per-point damping ``mu``.
   Residuals, q and the acceptance of every step are float64; for a float32 model the Newton
   linear algebra (Jacobian, LU, solves) runs in float32 -- mixed-precision iterative
   refinement: an inexact Newton direction only changes the rate, not the limit, which is set
   by the float64 residual. Converged points leave the batch (the active set is compacted
   every iteration, and a batch takes only the networks that still have active points, as a
   sub-model), so the cost falls as points converge; near a true zero q falls quadratically
   (to ~1e-20 and below within a couple of steps).

Every candidate keeps its own record (q, status, which fixed point it reached). A candidate is
*converged* when ``q < tol_q``. After every Newton iteration the converged candidates of each
network are deduplicated (as below: greedy, lowest q first, radius ``dedupe_tol``; outliers
apart); the representative of each cluster -- the point that is reported -- is not released
at ``tol_q`` but polished -- stable points, saddles and unstable points alike -- until
``q < 1e-12 tol_q`` or q stops halving for ``patience`` iterations, while its duplicates leave
the batch with the q they reached (below ``tol_q``; ``candidate_q``). The 1024 candidates of a
trained flip-flop network end on ~27 points, so polishing one candidate per point instead of
every candidate saves Newton iterations without changing a reported point (on 8 such
networks, 1 thread: 29% fewer Jacobian factorisations, 32% less CPU time in the Newton phase).
Near a simple zero Newton converges quadratically, so a reported converged point is accurate
to rounding: on trained flip-flop networks (64 units) every converged point, saddles included,
has ``|F(h) - h| < 1e-12`` in float64 (without the polish the saddles stopped at up to 4.5e-7,
just below ``sqrt(2 tol_q)``). Each point's ``q`` is reported, so ``|F(h) - h| = sqrt(2 q)`` is
known per point. A candidate that is not converged
is a *slow point* when ``q <= slow_q_max`` (a local minimum of q where the flow is slow but
not zero), else *not converged*. Converged and slow points
are deduplicated per network (greedy: lowest q first, all points within ``dedupe_tol`` of it are
its duplicates), points farther than ``outlier_scale`` times the mean distance of the initial
states from their centroid are outliers. Candidates that do not converge, outliers and diverged
candidates are counted and listed with their q in the ``candidate_*`` variables, never dropped
silently.

The Jacobian ``J`` at every unique point is eigendecomposed (right eigenvectors = columns ``V``,
left eigenvectors = columns of ``inv(V)^H``, so that ``left^H right = I``) and classified:

* discrete time (the map): a direction is unstable when ``|lambda| > 1``;
* continuous time (the map as the Euler step ``x + dt f(x)`` of a flow with Jacobian
  ``(J - I) / dt``): a direction is unstable when ``Re((lambda - 1) / dt) > 0``;

stable = no unstable direction, unstable = all directions unstable, saddle = in between
(``n_unstable`` counts its unstable directions).

Only the model protocol is used (``prepare``, ``input_drive``, ``step_drive``, ``jacobian``), so
the finder works for rate RNNs, GRUs, LSTMs and any future model.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._progress import finish_early, progress_bar
from .._validation import (
    check_array,
    check_bool,
    check_broadcast,
    check_choice,
    check_float,
    check_int,
    check_shape,
    resolve_generator,
)
from ..kernels._threads import adapts_threads
from ..kernels.linalg import lu_factor, lu_solve
from ..models.base import run
from ._common import (
    as_tensor,
    check_finite,
    check_model,
    check_states,
    constant_inputs,
    float64_copy,
    network_coords,
    network_dts,
    split_batch,
    to_numpy,
)

__all__ = [
    "find_fixed_points",
    "speed",
    "sample_initial_states",
    "classify_eigenvalues",
    "STABILITY_CODES",
    "CANDIDATE_STATUS",
]

#: integer codes of the ``stability`` variable (-1 marks padding)
STABILITY_CODES = {"stable": 0, "saddle": 1, "unstable": 2}
#: integer codes of the ``candidate_status`` variable
CANDIDATE_STATUS = {
    "converged": 0,
    "slow_point": 1,
    "not_converged": 2,
    "outlier": 3,
    "diverged": 4,
}

_OWNER = "find_fixed_points"
#: the shapes ``trajectories`` may have (K = n_networks or 1, N = n_units)
_TRAJECTORY_LAYOUTS = (("K|1", "B", "T", "N"), ("K|1", "M", "N"), ("M", "N"))
_TORCH_DTYPES = {
    np.dtype(np.float64): torch.float64,
    np.dtype(np.complex128): torch.complex128,
}


# --------------------------------------------------------------------------- small pieces
def _drive_and_params(model, u: torch.Tensor, n_points: int):
    """Precompute the protocol's params and the constant drive ``[K, P, D]`` for inputs u."""
    with torch.no_grad():
        params = {k: v.detach() for k, v in model.prepare().items()}
        x = u.to(model.dtype)[:, None, :]
        drive = model.input_drive(x).detach()  # [K, 1, D]
    return params, drive, x


def _speed(model, x, drive, params) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q [K, P], r [K, P, N])`` with ``r = F(x) - x``."""
    r = model.step_drive(x, drive.expand(x.shape[0], x.shape[1], -1), params) - x
    return 0.5 * (r * r).sum(-1), r


def speed(model: Any, points: Any, inputs: Any = None) -> torch.Tensor:
    """The speed ``q = 1/2 ||F(x, u) - x||^2`` of points ``[K, P, N]`` (or ``[P, N]``).

    Arguments:
        model: a dynrnn model with K networks.
        points: ``[K or 1, P, N]`` or ``[P, N]`` states.
        inputs: None (zero input), a constant input ``[I]`` or ``[K, I]``.

    Returns:
        ``q [K, P]`` in the dtype of ``points`` (float64 arithmetic on a float64 copy of the model
        when ``points`` is float64).
    """
    check_model(model, "speed")
    pts, layout = check_states(model, points, "speed", "points")
    if layout == 1:
        pts = pts.unsqueeze(0)
    K = model.n_networks
    m64 = float64_copy(model)
    u = constant_inputs(m64, inputs, "speed")
    params, drive, _ = _drive_and_params(m64, u, pts.shape[1])
    with torch.no_grad():
        q, _ = _speed(m64, pts.expand(K, -1, -1).to(m64.device), drive, params)
    return q


def sample_initial_states(
    trajectories: Any,
    n_initial: int,
    noise_std: float = 0.5,
    seed: int | torch.Generator | None = 0,
    n_networks: int | None = None,
) -> torch.Tensor:
    """Sample initial states from trajectories and add Gaussian noise (Sussillo & Barak 2013).

    Arguments:
        trajectories: states ``[K, B, T, N]`` (e.g. from :func:`dynrnn.models.run`),
            ``[K, M, N]`` or ``[M, N]`` (shared by all networks).
        n_initial: P, number of states per network.
        noise_std: standard deviation of the isotropic Gaussian noise added to each state.
        seed: int or ``torch.Generator``.
        n_networks: K, needed only to broadcast shared ``[M, N]`` trajectories.

    Returns:
        ``[K, P, N]`` float64 initial states.
    """
    owner = "sample_initial_states"
    P = check_int(owner, "n_initial", n_initial, 1)
    if n_networks is not None:
        n_networks = check_int(owner, "n_networks", n_networks, 1)
    noise_std = check_float(owner, "noise_std", noise_std, 0.0, None)
    traj = check_finite(as_tensor(trajectories, owner, "trajectories"), owner, "trajectories")
    sizes = {} if n_networks is None else {"K": n_networks}
    layout = check_shape(owner, "trajectories", traj, _TRAJECTORY_LAYOUTS, **sizes)
    if layout == 0:
        traj = traj.reshape(traj.shape[0], -1, traj.shape[-1])
    elif layout == 2:
        traj = traj.unsqueeze(0)
    K = traj.shape[0] if n_networks is None else int(n_networks)
    if traj.shape[0] not in (1, K):
        raise ValueError(
            f"The 'trajectories' parameter of {owner} has {traj.shape[0]} networks; expected "
            f"{K} (or 1, shared)."
        )
    traj = traj.expand(K, -1, -1)
    gen = resolve_generator(seed, owner=owner)
    idx = torch.randint(0, traj.shape[1], (K, P), generator=gen)
    x0 = traj.gather(1, idx[..., None].expand(K, P, traj.shape[-1]).to(traj.device))
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64).to(x0.device)
    return x0 + noise_std * noise


def classify_eigenvalues(
    eigenvalues: torch.Tensor | np.ndarray,
    convention: str = "discrete",
    dt: float | np.ndarray = 1.0,
    tol: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Number of unstable directions and stability code from eigenvalues of the map's Jacobian.

    Arguments:
        eigenvalues: ``[..., N]`` complex eigenvalues of ``J = dF/dx`` (NaN rows allowed).
        convention: ``"discrete"`` (unstable if ``|lambda| > 1 + tol``) or ``"continuous"``
            (unstable if ``Re((lambda - 1) / dt) > tol``).
        dt: time step of the map, broadcastable to ``eigenvalues.shape[:-1]``.
        tol: margin around the stability boundary.

    Returns:
        ``(n_unstable [...], stability [...])`` as int arrays; stability codes are
        :data:`STABILITY_CODES` (0 stable, 1 saddle, 2 unstable) and -1 for NaN rows.
    """
    owner = "classify_eigenvalues"
    check_choice(owner, "convention", convention, ("discrete", "continuous"))
    tol = check_float(owner, "tol", tol, None, None)
    lam = check_array(owner, "eigenvalues", eigenvalues, complex_ok=True, min_ndim=1)
    dt = check_array(owner, "dt", dt, finite=True, low=0.0, low_inclusive=False)
    check_broadcast(owner, "dt", dt.shape, lam.shape[:-1])
    invalid = np.isnan(lam.real).any(-1)
    if convention == "discrete":
        unstable = np.abs(lam) > 1.0 + tol
    else:
        rate = (lam.real - 1.0) / dt[..., None]
        unstable = rate > tol
    n_unstable = unstable.sum(-1).astype(np.int64)
    n = lam.shape[-1]
    code = np.where(n_unstable == 0, 0, np.where(n_unstable == n, 2, 1)).astype(np.int8)
    code = np.where(invalid, -1, code).astype(np.int8)
    n_unstable = np.where(invalid, -1, n_unstable).astype(np.int64)
    return n_unstable, code


# --------------------------------------------------------------------------- initial states
def _initial_states(model, u, initial_states, trajectories, n_initial, noise_std, gen):
    K, N = model.n_networks, model.n_units
    if initial_states is not None:
        if trajectories is not None:
            raise ValueError(
                f"Give either 'initial_states' or 'trajectories' to {_OWNER}, not both."
            )
        x0 = as_tensor(initial_states, _OWNER, "initial_states")
        if x0.ndim == 2:
            x0 = x0.unsqueeze(0)
        if x0.ndim != 3 or x0.shape[-1] != N or x0.shape[0] not in (1, K) or x0.shape[1] < 1:
            raise ValueError(
                f"The 'initial_states' parameter of {_OWNER} must have shape [K={K} or 1, P, "
                f"N={N}] or [P, N]. Got {tuple(x0.shape)} instead."
            )
        check_finite(x0, _OWNER, "initial_states")
        return x0.expand(K, -1, -1).clone().to(model.device)
    if trajectories is None:
        # No data: visit the state space by simulating the autonomous (constant-input) dynamics
        # from standard-normal states, and sample along those transients.
        n_sim = 32
        n_start = max(1, math.ceil(n_initial / 4))
        h = torch.randn(K, n_start, N, generator=gen, dtype=torch.float64).to(model.device)
        x = u.to(model.dtype)[:, None, None, :].expand(-1, n_start, n_sim, -1)  # [K|1, P, T, I]
        with torch.no_grad():
            states, _ = run(model, x, h0=h.to(model.dtype), backend="reference")
        visited = [h, *states.double().unbind(2)]
        trajectories = torch.cat(visited, dim=1)
        if not bool(torch.isfinite(trajectories).all()):
            trajectories = torch.nan_to_num(trajectories, nan=0.0, posinf=0.0, neginf=0.0)
    return sample_initial_states(trajectories, n_initial, noise_std, gen, n_networks=K).to(
        model.device
    )


# --------------------------------------------------------------------------- phase 1
def _first_order(model, x0, u, n_iters, lr, handoff_q, progress=False):
    """Batched Adam on q for all K x P points (model dtype); returns float64 points.

    The step size is ``lr`` times each network's spread of initial states (RMS distance from
    their centroid per coordinate), so the phase behaves alike for states of any scale.
    """
    if n_iters == 0:
        return x0, 0
    params, drive, _ = _drive_and_params(model, u, x0.shape[1])
    spread = (x0 - x0.mean(1, keepdim=True)).pow(2).mean((1, 2), keepdim=True).sqrt()
    lr = lr * torch.where(spread > 0, spread, torch.ones_like(spread)).to(model.dtype)
    x = x0.to(model.dtype).clone()
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8
    it = 0
    with progress_bar(progress, total=n_iters, desc="fixed points: Adam") as bar:
        for it in range(1, n_iters + 1):
            xr_ = x.detach().requires_grad_(True)
            with torch.enable_grad():
                q, _ = _speed(model, xr_, drive, params)
                (g,) = torch.autograd.grad(q.sum(), xr_)
            with torch.no_grad():
                active = (q > handoff_q) & torch.isfinite(q)
                if not bool(active.any()):
                    finish_early(bar, "all points below handoff_q")
                    break
                # Adam with its bias corrections folded into the step size and eps (the same
                # update, fewer passes over the [K, P, N] tensors):
                # x -= lr sqrt(c2) / c1 * m / (sqrt(v) + eps sqrt(c2)), c_i = 1 - b_i^t
                # (while every point is still moving -- the usual case, since q rarely falls
                # below handoff_q within the phase -- the masking passes are skipped)
                everyone = bool(active.all())
                if not everyone:
                    g = torch.where(active[..., None], g, 0.0)  # also zeroes NaN gradients
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                c1, c2 = 1 - b1**it, math.sqrt(1 - b2**it)
                denom = v.sqrt().add_(eps * c2)
                step = lr * (c2 / c1)  # [K, 1, 1]
                if not everyone:
                    step = step * active[..., None]  # [K, P, 1]
                x = x.detach().addcdiv_(m * step, denom, value=-1.0)
            bar.update(1)
    return x.detach().double(), it


# --------------------------------------------------------------------------- phase 2
def _compact(active: torch.Tensor):
    """Indices ``[K, M]`` of the active points of each network (padded) and their mask."""
    counts = active.sum(1)
    M = int(counts.max())
    order = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :M]
    valid = torch.arange(M, device=active.device)[None, :] < counts[:, None]
    return order, valid


def _lm(model, xa, qa, ra, mua, sel, A, drive, params, max_trials):
    """Levenberg--Marquardt trials ``(A^T A + mu I) dx = -A^T r`` for the points ``sel``.

    ``xa, qa, ra, mua`` are padded ``[K, M, ...]``; ``sel = (k, m)`` indexes the points to
    move and ``A [S, N, N]`` holds their ``J - I`` (the linear algebra runs on these S points
    only; F is evaluated on the padded batch, which the protocol's ``[K, B, N]`` layout needs).
    """
    kk, mm = sel
    At = A.transpose(-1, -2)
    g = (At @ ra[kk, mm][..., None])[..., 0]
    H = At @ A
    diag = H.diagonal(dim1=-2, dim2=-1)
    mu = mua[kk, mm]
    q0 = qa[kk, mm]
    pending = torch.ones_like(q0, dtype=torch.bool)
    for _ in range(max_trials):
        # damping added in place and removed again (saves a copy of H per trial)
        diag.add_(mu[:, None])
        L, cinfo = torch.linalg.cholesky_ex(H)
        diag.sub_(mu[:, None])
        dx = -torch.cholesky_solve(g[..., None], L)[..., 0]
        xn = xa.clone()
        xn[kk, mm] = xa[kk, mm] + dx
        qn_all, rn_all = _speed(model, xn, drive, params)
        qn = qn_all[kk, mm]
        ok = pending & (cinfo == 0) & torch.isfinite(qn) & (qn < q0) & torch.isfinite(dx).all(-1)
        okp = torch.zeros_like(qa, dtype=torch.bool)
        okp[kk, mm] = ok
        xa = torch.where(okp[..., None], xn, xa)
        ra = torch.where(okp[..., None], rn_all, ra)
        qa = torch.where(okp, qn_all, qa)
        q0 = torch.where(ok, qn, q0)
        mu = torch.where(ok, mu / 3.0, torch.where(pending, mu * 4.0, mu)).clamp(1e-15, 1e15)
        pending &= ~ok
        if not bool(pending.any()):
            break
    mua = mua.clone()
    mua[kk, mm] = mu
    return xa, qa, ra, mua


def _newton_lm_step(model, jac_model, xa, qa, ra, mua, valid, u, drive, params, stop_q,
                    n_chord, n_backtrack, max_trials):
    """One outer iteration for a chunk of points ``[K, M, N]``: Newton, chord steps, LM.

    ``stop_q [K, M]`` is each point's q at which its chord steps end (``tol_q`` for a point
    that only has to converge, ``1e-12 tol_q`` for a point being polished).

    The Jacobian ``A = J - I`` of the valid points is LU-factorised once (padding slots of the
    ``[K, M]`` layout are skipped by the linear algebra). The Newton direction
    ``dx = -A^-1 r`` is a descent direction of q (``grad q . dx = -2 q``) and is tried with
    steps 1, 1/2, 1/4, ... (Armijo). While a point keeps converging fast (q falls by 4x or
    more per step) up to ``n_chord`` further steps reuse the same factorisation (the
    Shamanskii / chord variant of Newton: superlinear at the cost of one triangular solve).
    Points where the Newton step fails (singular A or a poor direction, e.g. near slow points)
    take Levenberg--Marquardt steps with per-point damping ``mu``.
    """
    K, M = xa.shape[:2]
    kk, mm = torch.nonzero(valid, as_tuple=True)
    jdt = jac_model.dtype
    J = jac_model.jacobian(xa.to(jdt), u.to(jdt).expand(K, M, -1))  # [K, M, N, N]
    if len(kk) == K * M and J.is_contiguous() and J._base is None:
        # every slot is a point (the usual case in the first iterations): the model's fresh
        # Jacobian tensor is used in place, without a copy of its [K, M, N, N] entries (the
        # copy of a chunk's 32 MB cost as much as the LU of its matrices)
        A = J.view(K * M, J.shape[-2], J.shape[-1])
    else:
        A = J[kk, mm]  # [V, N, N], a copy
    del J
    A.diagonal(dim1=-2, dim2=-1).sub_(1.0)
    LU, piv, info = lu_factor(A)
    going = torch.zeros_like(valid)
    going[kk, mm] = info == 0
    failed = valid & ~going
    for c in range(n_chord + 1):
        if not bool(going.any()):
            break
        # solve only for the points still going (each against its own factors)
        sel = torch.nonzero(going[kk, mm])[:, 0]
        if len(sel) == K * M:  # every slot (matrix k * M + m is point (k, m)): no gathers
            dx = lu_solve(LU, piv, ra.reshape(K * M, -1).neg().to(jdt)).view_as(xa)
            dx = dx.to(xa.dtype)
        else:
            ks, ms = kk[sel], mm[sel]
            dx = torch.zeros_like(xa)
            dx[ks, ms] = lu_solve(LU, piv, -ra[ks, ms].to(jdt), sel).to(xa.dtype)
        finite = torch.isfinite(dx).all(-1)
        dx = torch.where(finite[..., None], dx, torch.zeros_like(dx))
        if c == 0:
            failed |= valid & ~finite
        going &= finite
        q_before = qa
        pend = going.clone()
        step = torch.ones_like(qa)
        for _ in range(n_backtrack if c == 0 else 1):
            if not bool(pend.any()):
                break
            xn = xa + step[..., None] * dx
            qn, rn = _speed(model, xn, drive, params)
            ok = pend & torch.isfinite(qn) & (qn <= qa * (1.0 - 2e-4 * step))
            xa = torch.where(ok[..., None], xn, xa)
            ra = torch.where(ok[..., None], rn, ra)
            qa = torch.where(ok, qn, qa)
            pend &= ~ok
            step = torch.where(pend, step * 0.5, step)
        if c == 0:
            failed |= pend
        going &= ~pend & (qa < 0.25 * q_before) & (qa > stop_q)
    mua = torch.where(failed, mua, mua / 3.0).clamp_min(1e-15)
    if bool(failed.any()):
        pos = torch.full((K, M), -1, dtype=torch.long, device=xa.device)
        pos[kk, mm] = torch.arange(len(kk), device=xa.device)
        sel = torch.nonzero(failed, as_tuple=True)
        xa, qa, ra, mua = _lm(model, xa, qa, ra, mua, sel, A[pos[sel]].to(xa.dtype), drive,
                              params, max_trials)
    return xa, qa, mua


def _refine(model, jac_model, x, u, tol_q, max_iters, chunk, dedupe_tol=0.0, far=None,
            mu0=1e-2, patience=2, n_chord=4, n_backtrack=5, max_trials=2, progress=False):
    """Batched damped Newton / LM in float64 with per-point convergence.

    Returns ``(points, q, iterations)``. Every point is iterated until it converges
    (``q < tol_q``); then the converged candidates of each network are deduplicated (greedy,
    lowest q first, radius ``dedupe_tol``, as in the post-processing) and only the
    representative of each cluster stays in the batch to be polished until
    ``q < 1e-12 tol_q``, so the fixed points reported are accurate to about
    ``sqrt(2 q) / |1 - lambda|`` rather than merely below the threshold; its duplicates are
    released with the q they reached (below ``tol_q``). A trained flip-flop network's 1024
    candidates end on ~27 points, so polishing one candidate per point instead of all of them
    saves ~30% of the Newton phase. ``dedupe_tol = 0`` polishes every candidate;
    ``far(x) -> [K, P]`` marks the outliers, which are never released (the post-processing
    leaves them out of the deduplication, so each of them is polished). The clusters are
    recomputed after every iteration, so a released candidate that becomes a representative
    is taken back and polished.
    Points whose q fails to halve in ``patience`` consecutive iterations stop (local minima of
    q -- slow points -- or failures, reported as such with their q; a converged point that
    stops this way keeps the q it reached).
    """
    K, P, N = x.shape
    params, drive, u3 = _drive_and_params(model, u, P)
    target = tol_q * 1e-12
    batch = chunk * K  # points per batched Jacobian / LU
    can_select = hasattr(model, "select") and hasattr(jac_model, "select")
    bar_cm = progress_bar(progress and max_iters > 0, total=max_iters, desc="fixed points: Newton")
    with torch.no_grad(), bar_cm as bar:
        q, _ = _speed(model, x, drive, params)
        q = torch.where(torch.isfinite(q), q, torch.full_like(q, math.inf))
        mu = torch.full_like(q, mu0)
        stall = torch.zeros_like(q, dtype=torch.int64)
        iters = torch.zeros_like(q, dtype=torch.int64)
        done = (q < target) | ~torch.isfinite(q)
        # the q at which a point's chord steps end: tol_q until it is a cluster's
        # representative, then the polishing target
        stop = torch.full_like(q, tol_q)
        for _ in range(max_iters):
            active = ~done
            if not bool(active.any()):
                finish_early(bar, "all points done")
                break
            if not bar.disable:
                bar.set_postfix_str(f"{int(active.sum())} points left", refresh=False)
            idx, valid = _compact(active)
            counts = valid.sum(1)
            start = 0
            while start < idx.shape[1]:
                # Networks keep different numbers of active points (those holding memories on
                # slow cycles keep all of theirs). A batch takes only the networks that still
                # have points at this offset (a sub-model of them), and is wider when they are
                # few, so batches stay full instead of padding every network to the largest.
                nets = torch.nonzero(counts > start)[:, 0] if can_select else torch.arange(K)
                Kc = len(nets)
                width = max(chunk, batch // Kc)
                sl = slice(start, start + width)
                start += width
                if Kc == K:
                    sub, sub_jac, c_params, c_drive, c_u = model, jac_model, params, drive, u3
                else:
                    sub = model.select(nets)
                    sub_jac = sub if jac_model is model else jac_model.select(nets)
                    c_params, c_drive, c_u = _drive_and_params(sub, u[nets], 1)
                ci, cv = idx[nets, sl], valid[nets, sl]
                ck = nets[:, None].expand_as(ci)
                xa, qa, mua = x[ck, ci], q[ck, ci], mu[ck, ci]
                qa2, ra = _speed(sub, xa, c_drive, c_params)
                xa, qn, mua = _newton_lm_step(
                    sub, sub_jac, xa, qa2, ra, mua, cv, c_u, c_drive, c_params, stop[ck, ci],
                    n_chord, n_backtrack, max_trials,
                )
                progress = qn < 0.5 * qa
                kv, pv = ck[cv], ci[cv]
                x[kv, pv] = xa[cv]
                q[kv, pv] = qn[cv]
                mu[kv, pv] = mua[cv]
                stall[kv, pv] = torch.where(progress[cv], 0, stall[kv, pv] + 1)
                iters[kv, pv] += 1
            # converged candidates: one representative per cluster is polished (until q is
            # below ``target`` or stops halving: converged means accurate to rounding, not
            # merely below the threshold); its duplicates are released
            # (outliers are left out of the clusters, as in the post-processing, so each of
            # them is polished); clusters are recomputed every iteration over all converged
            # candidates, and a released candidate that has become a representative (its
            # cluster's points moved while being polished) is taken back and polished
            converged = q < tol_q
            clusterable = converged if far is None else converged & ~far(x)
            rep = (_cluster_representatives(x, q, clusterable, dedupe_tol)
                   | (converged & ~clusterable))
            new_rep = rep & (stop > target)
            stop = torch.where(rep, target, stop)
            ended = (q < target) | (stall >= patience) | (mu >= 1e14)
            done = (done | ended | (converged & ~rep)) & ~(new_rep & ~ended)
            bar.update(1)
    return x, q, iters


def _cluster_representatives(x, q, converged, tol):
    """``[K, P]`` mask of the lowest-q candidate of each cluster of converged candidates."""
    rep = converged.clone()
    if tol <= 0:
        return rep
    counts = converged.sum(1).tolist()
    for k, n in enumerate(counts):
        if n < 2:
            continue
        pool = torch.nonzero(converged[k])[:, 0]
        reps, _ = _dedupe(to_numpy(x[k, pool]), to_numpy(q[k, pool]), tol)
        rep[k, pool] = False
        rep[k, pool[torch.as_tensor(reps, dtype=torch.long)]] = True
    return rep


# --------------------------------------------------------------------------- post-processing
def _dedupe(points: np.ndarray, q: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy per-network deduplication: lowest q first. Returns (rep indices, assignment).

    The lowest-q unassigned point takes every unassigned point within ``tol`` of it, until
    none is left. Distances are computed from each representative only -- ``O(F M N)`` for F
    representatives of M points, instead of all ``M^2`` pairs (1024 candidates of a flip-flop
    network end on ~27 points).
    """
    M = len(q)
    assign = np.full(M, -1, dtype=np.int64)
    if M == 0:
        return np.zeros(0, dtype=np.int64), assign
    order = np.argsort(q, kind="stable")
    pts = np.ascontiguousarray(points[order])
    sq = (pts * pts).sum(1)
    unassigned = np.ones(M, dtype=bool)
    reps = []
    tol2 = tol * tol
    i = 0
    while i < M:
        # squared distances from representative i to all points (one matrix-vector product)
        d2 = sq - 2.0 * (pts @ pts[i]) + sq[i]
        members = unassigned & (d2 < tol2)
        members[i] = True
        assign[order[members]] = len(reps)
        reps.append(order[i])
        unassigned &= ~members
        rest = np.flatnonzero(unassigned[i + 1:])
        i = i + 1 + int(rest[0]) if len(rest) else M
    return np.asarray(reps, dtype=np.int64), assign


def _eig(J: torch.Tensor, convention: str, dt: torch.Tensor, vectors: bool = True):
    """Sorted eigenvalues and right/left eigenvectors of ``J [M, N, N]`` (float64).

    With ``vectors=False`` only the eigenvalues are computed (LAPACK ``geev`` without
    eigenvectors and no inverse: ~1.1 ms instead of ~2.7 ms per 64 x 64 matrix) and the
    eigenvector slots are None.
    """
    if vectors:
        lam, V = split_batch(torch.linalg.eig, J, min_per_thread=16)
    else:
        lam = split_batch(torch.linalg.eigvals, J, min_per_thread=16)
    if convention == "discrete":
        key = lam.abs()
    else:
        key = (lam.real - 1.0) / dt[:, None]
    order = torch.argsort(key, dim=-1, descending=True)
    lam = lam.gather(-1, order)
    if not vectors:
        return lam, None, None
    V = V.gather(-1, order[:, None, :].expand_as(V))
    try:
        left = split_batch(torch.linalg.inv, V, min_per_thread=16).conj().transpose(-1, -2)
        left = left.resolve_conj()
    except RuntimeError:  # defective Jacobian: fall back to a pseudo-inverse
        left = torch.linalg.pinv(V).conj().transpose(-1, -2).resolve_conj()
    return lam, V, left


# --------------------------------------------------------------------------- the finder
@adapts_threads
def find_fixed_points(
    model: Any,
    inputs: Any = None,
    *,
    initial_states: Any = None,
    trajectories: Any = None,
    n_initial: int = 1024,
    noise_std: float = 0.5,
    seed: int | torch.Generator | None = 0,
    tol_q: float = 1e-12,
    slow_q_max: float = 1e-4,
    first_order_iters: int = 50,
    lr: float = 0.1,
    handoff_q: float = 1e-8,
    max_newton_iters: int = 60,
    dedupe_tol: float = 1e-3,
    outlier_scale: float | None = 10.0,
    convention: str = "discrete",
    stability_tol: float = 0.0,
    eigenvectors: bool = True,
    return_jacobians: bool = False,
    return_candidates: bool = False,
    chunk_size: int | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Fixed points and slow points of all K networks of ``model`` in one batched optimisation.

    See the module docstring for the method. Fixed points under a constant non-zero input are
    found by passing ``inputs``.

    Arguments:
        model: a dynrnn model (protocol: ``prepare``, ``input_drive``, ``step_drive``,
            ``jacobian``) with K networks of N units and I inputs. Not modified.
        inputs: None (zero input) or a constant input ``[I]`` (all networks) or ``[K, I]``.
        initial_states: ``[K or 1, P, N]`` or ``[P, N]`` starting points (used as given); or
        trajectories: states ``[K, B, T, N]`` / ``[K, M, N]`` / ``[M, N]`` from which
            ``n_initial`` states per network are sampled and perturbed with Gaussian noise of
            std ``noise_std``. With neither, the constant-input dynamics are simulated for 32
            steps from standard-normal states and sampled the same way.
        n_initial, noise_std, seed: sampling of initial states (seeded; no global RNG).
        tol_q: a candidate with ``q < tol_q`` is converged.
        slow_q_max: unconverged candidates with ``q <= slow_q_max`` are slow points.
        first_order_iters, lr, handoff_q: the Adam phase (step size ``lr`` times the spread
            of the network's initial states -- RMS distance from their centroid per unit -- so
            it is scale-free; a point stops moving once its q is below ``handoff_q``).
        max_newton_iters: maximum Newton / Levenberg--Marquardt iterations per point.
        dedupe_tol: points closer than this (Euclidean) are duplicates (lowest q kept).
        outlier_scale: candidates farther from the initial states' centroid than this times their
            mean distance to it are outliers (None: keep all).
        convention: ``"discrete"`` or ``"continuous"`` stability (module docstring); ``dt`` per
            network from the model config.
        stability_tol: margin around the stability boundary.
        eigenvectors: store right and left eigenvectors.
        return_jacobians: store the Jacobian at every point.
        return_candidates: store initial and final states of every candidate.
        chunk_size: points per network per batched Jacobian / LU (default: about 64 MB per
            ``[K, chunk, N, N]`` float64 tensor).
        progress: show tqdm progress bars on stderr for the two phases (Adam iterations, then
            Newton iterations with the number of points still being refined); a phase that
            ends early ends its bar there.

    Returns:
        ``xarray.Dataset`` with dims ``network`` (coordinates from ``model.network_metadata()``),
        ``fixed_point`` (padded with NaN / -1 / False per network: networks find different
        numbers; converged points first, stable before saddles before unstable, then by q),
        ``unit``, ``eigen``, ``input`` and ``initial_state``. Variables:

        * ``points [network, fixed_point, unit]``, ``q``, ``valid``, ``converged``,
          ``is_slow_point``, ``stability`` (int8 codes, see attrs), ``n_unstable``,
          ``n_members`` (candidates that ended at the point), ``eigenvalues [.., eigen]``
          (complex, sorted by decreasing growth), ``right_eigenvectors`` /
          ``left_eigenvectors [.., unit, eigen]`` (``left^H right = I``), optionally
          ``jacobians [.., unit, unit_from]``;
        * per network: ``n_fixed_points`` (converged, unique, not outliers), ``n_stable``,
          ``n_saddles``, ``n_unstable_points``, ``n_slow_points``, ``n_not_converged``,
          ``n_outliers``, ``n_diverged``, ``inputs [network, input]``;
        * per candidate: ``candidate_q``, ``candidate_status`` (codes in attrs),
          ``candidate_fixed_point`` (index into ``fixed_point`` or -1), ``candidate_iterations``
          and, with ``return_candidates``, ``initial_states`` / ``final_states``.

    Raises:
        ValueError: on a model without the protocol, non-finite parameters, inputs or initial
            states, or out-of-range options.
    """
    t_start = time.perf_counter()
    check_model(model, _OWNER)
    n_initial = check_int(_OWNER, "n_initial", n_initial, 1)
    noise_std = check_float(_OWNER, "noise_std", noise_std, 0.0, None)
    tol_q = check_float(_OWNER, "tol_q", tol_q, 0.0, None, low_inclusive=False)
    slow_q_max = check_float(_OWNER, "slow_q_max", slow_q_max, 0.0, None)
    first_order_iters = check_int(_OWNER, "first_order_iters", first_order_iters, 0)
    lr = check_float(_OWNER, "lr", lr, 0.0, None, low_inclusive=False)
    handoff_q = check_float(_OWNER, "handoff_q", handoff_q, 0.0, None)
    max_newton_iters = check_int(_OWNER, "max_newton_iters", max_newton_iters, 0)
    dedupe_tol = check_float(_OWNER, "dedupe_tol", dedupe_tol, 0.0, None)
    if outlier_scale is not None:
        outlier_scale = check_float(
            _OWNER, "outlier_scale", outlier_scale, 0.0, None, low_inclusive=False
        )
    check_choice(_OWNER, "convention", convention, ("discrete", "continuous"))
    stability_tol = check_float(_OWNER, "stability_tol", stability_tol, 0.0, None)
    check_bool(_OWNER, "eigenvectors", eigenvectors)
    check_bool(_OWNER, "return_jacobians", return_jacobians)
    check_bool(_OWNER, "return_candidates", return_candidates)
    check_bool(_OWNER, "progress", progress)

    if initial_states is not None and trajectories is not None:
        raise ValueError(f"Give either 'initial_states' or 'trajectories' to {_OWNER}, not both.")
    if initial_states is not None:
        initial_states, _ = check_states(model, initial_states, _OWNER, "initial_states")
    if trajectories is not None:
        trajectories, _ = check_states(
            model, trajectories, _OWNER, "trajectories", _TRAJECTORY_LAYOUTS
        )

    K, N = int(model.n_networks), int(model.n_units)
    if chunk_size is None:
        chunk_size = max(1, (1 << 25) // max(1, 4 * K * N * N))
    chunk_size = check_int(_OWNER, "chunk_size", chunk_size, 1)

    m64 = float64_copy(model)
    u = constant_inputs(m64, inputs, _OWNER)
    gen = resolve_generator(seed, owner=_OWNER)
    x0 = _initial_states(m64, u, initial_states, trajectories, n_initial, noise_std, gen)
    P = x0.shape[1]

    # phase 1 in the model's own dtype (float32 matmuls are twice as fast on CPU)
    # (gradients are taken w.r.t. the points only; the model's .grad fields are untouched)
    x1, n_first = _first_order(model, x0, u, first_order_iters, lr, handoff_q, progress)
    x1 = torch.where(torch.isfinite(x1), x1, x0)
    t_first = time.perf_counter()

    # outliers: candidates farther from the initial states' centroid than outlier_scale times
    # their mean distance to it
    far = None
    if outlier_scale is not None:
        centroid = x0.mean(1, keepdim=True)
        d0 = (x0 - centroid).norm(dim=-1).mean(1, keepdim=True)

        def far(x):
            return ((x - centroid).norm(dim=-1) > outlier_scale * d0) & (d0 > 0)

    # phase 2 in float64
    # phase 2: residuals, q and step acceptance in float64; the Newton linear algebra (Jacobian,
    # LU, triangular solves) in the model's dtype when that is float32 (mixed precision)
    jac_model = model if model.dtype == torch.float32 else m64
    xf, qf, iters = _refine(m64, jac_model, x1, u, tol_q, max_newton_iters, chunk_size,
                            dedupe_tol, far, progress=progress)
    t_refine = time.perf_counter()

    # ---------------------------------------------------------------- per-candidate status
    finite = torch.isfinite(qf) & torch.isfinite(xf).all(-1)
    converged = finite & (qf < tol_q)
    slow = finite & ~converged & (qf <= slow_q_max)
    status = torch.full((K, P), CANDIDATE_STATUS["not_converged"], dtype=torch.int8)
    status[converged.cpu()] = CANDIDATE_STATUS["converged"]
    status[slow.cpu()] = CANDIDATE_STATUS["slow_point"]
    status[(~finite).cpu()] = CANDIDATE_STATUS["diverged"]
    if far is not None:
        status[(far(xf) & finite).cpu()] = CANDIDATE_STATUS["outlier"]

    xf_np, qf_np, status_np = to_numpy(xf), to_numpy(qf), status.numpy()
    cand_fp = np.full((K, P), -1, dtype=np.int64)
    keep_idx: list[np.ndarray] = []
    members: list[np.ndarray] = []
    for k in range(K):
        pool = np.flatnonzero(status_np[k] <= CANDIDATE_STATUS["slow_point"])
        # lowest q first: converged points (q < tol_q) always precede slow points, so a slow
        # point never represents a true fixed point
        reps, assign = _dedupe(xf_np[k, pool], qf_np[k, pool], dedupe_tol)
        keep_idx.append(pool[reps])
        cand_fp[k, pool] = assign
        members.append(np.bincount(assign, minlength=len(reps)) if len(reps) else np.zeros(0))

    # ---------------------------------------------------------------- Jacobians, eigen
    F = max([len(r) for r in keep_idx] + [0])
    dts = network_dts(model)
    flat_k = np.concatenate([np.full(len(r), k) for k, r in enumerate(keep_idx)]).astype(int)
    flat_p = np.concatenate(keep_idx).astype(int) if keep_idx else np.zeros(0, int)
    M = len(flat_k)
    flat_j = np.concatenate([np.arange(len(r)) for r in keep_idx]).astype(int)
    if M:
        # one padded [K, F, N] batch through the protocol's Jacobian
        tk, tj = torch.as_tensor(flat_k), torch.as_tensor(flat_j)
        h = torch.zeros(K, F, N, dtype=torch.float64, device=xf.device)
        h[tk, tj] = xf[tk, torch.as_tensor(flat_p)]
        with torch.no_grad():
            J = m64.jacobian(h, u[:, None, :].expand(K, F, -1))[tk, tj].detach().cpu()
        lam, V, left = _eig(J, convention, torch.as_tensor(dts[flat_k]), eigenvectors)
        n_unst, stab = classify_eigenvalues(lam, convention, dts[flat_k], stability_tol)
    else:
        stab = n_unst = np.zeros(0, dtype=np.int64)
    # sort within network: converged first, then stability code, then q
    order_in_net: list[np.ndarray] = []
    pos = 0
    for k in range(K):
        n = len(keep_idx[k])
        if n == 0:
            order_in_net.append(np.zeros(0, dtype=int))
            continue
        sl = slice(pos, pos + n)
        conv_k = status_np[k, keep_idx[k]] == 0
        key = np.lexsort((qf_np[k, keep_idx[k]], stab[sl], ~conv_k))
        order_in_net.append(pos + key)
        pos += n

    # ---------------------------------------------------------------- assemble the Dataset
    nan = np.nan

    def padded(shape, fill, dtype=float):
        # allocate without a full fill pass; only the padding slots are filled below. The
        # memory comes from torch: numpy asks the kernel for transparent huge pages on large
        # arrays, and where THP defragmentation is on ("madvise") the first touch of those
        # pages measured 6x slower (0.5 s instead of 0.08 s per 240 MB eigenvector array).
        out = torch.empty(shape, dtype=_TORCH_DTYPES[np.dtype(dtype)]).numpy()
        for k in range(K):
            out[k, len(keep_idx[k]):] = fill
        return out

    points = np.full((K, F, N), nan)
    q_out = np.full((K, F), nan)
    valid = np.zeros((K, F), dtype=bool)
    conv_out = np.zeros((K, F), dtype=bool)
    slow_out = np.zeros((K, F), dtype=bool)
    stab_out = np.full((K, F), -1, dtype=np.int8)
    nu_out = np.full((K, F), -1, dtype=np.int64)
    mem_out = np.zeros((K, F), dtype=np.int64)
    eig_out = np.full((K, F, N), nan + 0j, dtype=np.complex128)
    cnan = complex(nan, nan)
    rv_out = padded((K, F, N, N), cnan, np.complex128) if eigenvectors else None
    lv_out = padded((K, F, N, N), cnan, np.complex128) if eigenvectors else None
    jac_out = padded((K, F, N, N), nan) if return_jacobians else None
    remap = np.full((K, max(F, 1)), -1, dtype=np.int64)
    lam_np = lam.numpy() if M else None
    V_np = V.numpy() if (M and eigenvectors) else None
    left_np = left.numpy() if (M and eigenvectors) else None
    offset = 0
    for k in range(K):
        rows = order_in_net[k]  # flat indices, in the output order of network k
        n = len(rows)
        if n:
            p = flat_p[rows]
            points[k, :n] = xf_np[k, p]
            q_out[k, :n] = qf_np[k, p]
            valid[k, :n] = True
            conv_out[k, :n] = status_np[k, p] == 0
            slow_out[k, :n] = status_np[k, p] == 1
            stab_out[k, :n] = stab[rows]
            nu_out[k, :n] = n_unst[rows]
            mem_out[k, :n] = members[k][rows - offset]
            remap[k, rows - offset] = np.arange(n)
            eig_out[k, :n] = lam_np[rows]
            if eigenvectors:
                rv_out[k, :n] = V_np[rows]
                lv_out[k, :n] = left_np[rows]
            if return_jacobians:
                jac_out[k, :n] = J.numpy()[rows]
        offset += len(keep_idx[k])
        has = cand_fp[k] >= 0
        cand_fp[k, has] = remap[k, cand_fp[k, has]]

    fp_counts = conv_out & valid
    data_vars = {
        "points": (("network", "fixed_point", "unit"), points),
        "q": (("network", "fixed_point"), q_out),
        "valid": (("network", "fixed_point"), valid),
        "converged": (("network", "fixed_point"), conv_out),
        "is_slow_point": (("network", "fixed_point"), slow_out),
        "stability": (("network", "fixed_point"), stab_out),
        "n_unstable": (("network", "fixed_point"), nu_out),
        "n_members": (("network", "fixed_point"), mem_out),
        "eigenvalues": (("network", "fixed_point", "eigen"), eig_out),
        "n_fixed_points": ("network", fp_counts.sum(1)),
        "n_stable": ("network", (fp_counts & (stab_out == 0)).sum(1)),
        "n_saddles": ("network", (fp_counts & (stab_out == 1)).sum(1)),
        "n_unstable_points": ("network", (fp_counts & (stab_out == 2)).sum(1)),
        "n_slow_points": ("network", (slow_out & valid).sum(1)),
        "n_not_converged": ("network", (status_np == 2).sum(1)),
        "n_outliers": ("network", (status_np == 3).sum(1)),
        "n_diverged": ("network", (status_np == 4).sum(1)),
        "inputs": (("network", "input"), to_numpy(u)),
        "candidate_q": (("network", "initial_state"), qf_np),
        "candidate_status": (("network", "initial_state"), status_np),
        "candidate_fixed_point": (("network", "initial_state"), cand_fp),
        "candidate_iterations": (("network", "initial_state"), to_numpy(iters)),
    }
    if eigenvectors:
        data_vars["right_eigenvectors"] = (("network", "fixed_point", "unit", "eigen"), rv_out)
        data_vars["left_eigenvectors"] = (("network", "fixed_point", "unit", "eigen"), lv_out)
    if return_jacobians:
        data_vars["jacobians"] = (("network", "fixed_point", "unit", "unit_from"), jac_out)
    if return_candidates:
        data_vars["initial_states"] = (("network", "initial_state", "unit"), to_numpy(x0))
        data_vars["final_states"] = (("network", "initial_state", "unit"), xf_np)

    coords = network_coords(model)
    coords.update(
        fixed_point=np.arange(F),
        unit=np.arange(N),
        eigen=np.arange(N),
        input=np.arange(int(model.n_inputs)),
        initial_state=np.arange(P),
    )
    coords["dt"] = ("network", dts)
    ds = xr.Dataset(data_vars, coords=coords)
    ds["stability"].attrs.update(
        flag_values=[-1, 0, 1, 2],
        flag_meanings="padding stable saddle unstable",
        convention=convention,
    )
    ds["candidate_status"].attrs.update(
        flag_values=list(CANDIDATE_STATUS.values()),
        flag_meanings=" ".join(CANDIDATE_STATUS),
    )
    ds["q"].attrs["long_name"] = "speed q = 1/2 ||F(x,u) - x||^2 (float64)"
    ds["eigenvalues"].attrs["long_name"] = (
        "eigenvalues of the map's Jacobian dF/dx, sorted by decreasing growth"
    )
    ds["candidate_fixed_point"].attrs["long_name"] = "index into fixed_point, -1 if none"
    ds.attrs.update(
        analysis="fixed_points",
        method="batched Adam, then batched damped Newton / Levenberg-Marquardt (float64)",
        references="Sussillo & Barak 2013; Golub & Sussillo 2018",
        convention=convention,
        tol_q=tol_q,
        slow_q_max=slow_q_max,
        dedupe_tol=dedupe_tol,
        outlier_scale=-1.0 if outlier_scale is None else outlier_scale,
        noise_std=noise_std,
        seed=-1 if not isinstance(seed, int) else seed,
        n_initial=P,
        first_order_iterations=n_first,
        newton_iterations=int(iters.max()) if iters.numel() else 0,
        seconds_first_order=t_first - t_start,
        seconds_refinement=t_refine - t_first,
        seconds_total=time.perf_counter() - t_start,
    )
    return ds
