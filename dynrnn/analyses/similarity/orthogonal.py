"""Maximising ``f(C) = <X, C Y C^T>`` over the orthogonal group O(n), batched over problems.

Written here because no library batches it over pairs. ``f`` is maximised by the curvilinear
search of Wen & Yin (2013): the Cayley retraction ``C(t) = (I + t/2 W)^-1 (I - t/2 W) C`` along
the skew matrix ``W = G C^T - C G^T`` of the Euclidean gradient ``G``, Barzilai--Borwein step
sizes and a non-monotone (Zhang--Hager) Armijo backtracking, per problem. A Cayley path never
leaves the connected component of its start (its determinant sign), so the caller chooses
starts of both signs; :func:`_spectral_starts` gives two informed ones (exact for
``X = Q Y Q^T``), :func:`_random_orthogonal` random ones. All problems are one batched
computation (batched ``solve`` of ``[P, n, n]``).

References:
    Wen, Z. & Yin, W. (2013). A feasible method for optimization with orthogonality constraints.
    Mathematical Programming 142, 397--434.

    Barzilai, J. & Borwein, J. M. (1988). Two-point step size gradient methods. IMA Journal of
    Numerical Analysis 8(1), 141--148.

    Zhang, H. & Hager, W. W. (2004). A nonmonotone line search technique and its application to
    unconstrained optimization. SIAM Journal on Optimization 14(4), 1043--1056.
"""

from __future__ import annotations

import torch


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
    eta, rho = 0.85, 1e-4
    C_out = C0.clone()
    f_out = torch.empty(P, dtype=X.dtype)
    it_out = torch.zeros(P, dtype=torch.long)
    # the state of the problems still running, compacted whenever some stop (so an iteration
    # touches only them, without gathers from and scatters into the full batch)
    idx = torch.arange(P)
    Xs, Ys, C = X, Y, C0.clone()
    scale = (torch.linalg.matrix_norm(X) * torch.linalg.matrix_norm(Y)).clamp(min=1e-300)
    f, W = _f_and_w(Xs, Ys, C)
    WC = W @ C
    tau = torch.full((P,), 0.1, dtype=X.dtype)
    ref = -f.clone()  # Zhang-Hager reference value of -f
    q = torch.ones(P, dtype=X.dtype)
    iters = torch.zeros(P, dtype=torch.long)
    small = torch.zeros(P, dtype=torch.long)
    for _ in range(max_iters):
        if idx.numel() == 0:
            break
        nW2 = (W * W).sum((1, 2))
        t = tau.clone()
        Cn = fn = Wn = None  # the accepted steps, filled as problems accept theirs
        todo = None  # None: every running problem is still backtracking
        for bt in range(30):
            Ca, Wa = (C, W) if todo is None else (C[todo], W[todo])
            h = (0.5 * (t if todo is None else t[todo]))[:, None, None] * Wa
            Ct = torch.linalg.solve(eye + h, torch.baddbmm(Ca, h, Ca, alpha=-1.0))
            ft, Wt = _f_and_w(Xs if todo is None else Xs[todo],
                              Ys if todo is None else Ys[todo], Ct)
            tt, r0, n0 = (t, ref, nW2) if todo is None else (t[todo], ref[todo], nW2[todo])
            ok = -ft <= r0 - rho * tt * 0.5 * n0
            if bt == 29:
                ok = torch.ones_like(ok)
            if todo is None and bool(ok.all()):  # the usual case: every first step accepted
                Cn, fn, Wn = Ct, ft, Wt
                break
            if Cn is None:
                Cn, fn, Wn = C.clone(), f.clone(), torch.empty_like(C)
            rows = torch.arange(ok.numel()) if todo is None else todo
            sel = rows[ok]
            Cn[sel], fn[sel], Wn[sel] = Ct[ok], ft[ok], Wt[ok]
            todo = rows[~ok]
            if todo.numel() == 0:
                break
            t[todo] = t[todo] * 0.3
        WCn = Wn @ Cn
        # Barzilai-Borwein step from the Riemannian gradients W C
        S = Cn - C
        Dg = WCn - WC
        sy = (S * Dg).sum((1, 2)).abs()
        even = (iters % 2) == 0
        bb = torch.where(
            even,
            (S * S).sum((1, 2)) / sy.clamp(min=1e-300),
            sy / (Dg * Dg).sum((1, 2)).clamp(min=1e-300),
        )
        tau = torch.nan_to_num(bb, nan=0.1, posinf=1.0).clamp(1e-10, 1e10)
        change = (fn - f).abs()
        C, f, W, WC = Cn, fn, Wn, WCn
        qn = eta * q + 1
        ref = (eta * q * ref - fn) / qn
        q = qn
        iters += 1
        grad_small = (Wn * Wn).sum((1, 2)) < (gtol * scale) ** 2
        tiny = change <= tol * fn.abs().clamp(min=1e-12)
        small = torch.where(tiny, small + 1, torch.zeros_like(small))
        done = grad_small | (small >= 2)
        if bool(done.any()):
            stopped = idx[done]
            C_out[stopped], f_out[stopped], it_out[stopped] = C[done], f[done], iters[done]
            if on_finished is not None:
                on_finished(stopped)
            keep = ~done
            idx = idx[keep]
            Xs, Ys, C, W, WC, f = Xs[keep], Ys[keep], C[keep], W[keep], WC[keep], f[keep]
            tau, ref, q, iters, small, scale = (tau[keep], ref[keep], q[keep], iters[keep],
                                                small[keep], scale[keep])
    if idx.numel():  # at the iteration cap
        C_out[idx], f_out[idx], it_out[idx] = C, f, iters
    return C_out, f_out, it_out


def _f_and_w(X, Y, C):
    """``f = <X, C Y C^T>`` and the Riemannian gradient's skew matrix ``W = G C^T - C G^T`` of
    the Euclidean gradient ``G = -(X C Y^T + X^T C Y)`` of ``-f``; with ``A = C Y C^T``,
    ``G C^T = -(X A^T + X^T A)`` (four batched products)."""
    A = (C @ Y) @ C.transpose(1, 2)
    f = (X * A).sum((1, 2))
    M = -(X @ A.transpose(1, 2)).add_(X.transpose(1, 2) @ A)
    return f, M - M.transpose(1, 2)

