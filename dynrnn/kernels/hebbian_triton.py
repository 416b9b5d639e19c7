"""Triton (GPU) backends of :mod:`dynrnn.kernels.hebbian` (see there for the maths).

Without a GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``; tests use small sizes).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["three_factor_triton", "oja_subspace_triton"]


@triton.jit
def _three_factor_kernel(w_ptr, r_ptr, target_ptr, gate_ptr, y_ptr, T, F, lr, lam,
                         NORMALISE: tl.constexpr, BLOCK_F: tl.constexpr):
    k = tl.program_id(0).to(tl.int64)
    f = tl.arange(0, BLOCK_F)
    mf = f < F
    w = tl.load(w_ptr + k * F + f, mask=mf, other=0.0)
    e = w * 0.0
    for t in range(T):
        rt = tl.load(r_ptr + (k * T + t) * F + f, mask=mf, other=0.0).to(w.dtype)
        e = lam * e + (1.0 - lam) * rt
        y = tl.sum(w * rt, axis=0)
        tl.store(y_ptr + k * T + t, y)
        g = tl.load(gate_ptr + k * T + t).to(w.dtype)
        step = lr * g * (tl.load(target_ptr + k * T + t).to(w.dtype) - y)
        if NORMALISE:
            step = step / (1.0 + tl.sum(e * e, axis=0))
        step = tl.where(g > 0, step, 0.0)
        w = w + step * e
    tl.store(w_ptr + k * F + f, w, mask=mf)


def three_factor_triton(w, r, target, gate, lr, lam, normalise):
    K, T, F = r.shape
    w = w.contiguous().clone()
    y = torch.empty(K, T, dtype=w.dtype, device=r.device)
    _three_factor_kernel[(K,)](w, r.contiguous(), target.to(w.dtype).contiguous(),
                               gate.to(w.dtype).contiguous(), y, T, F, float(lr), float(lam),
                               NORMALISE=bool(normalise),
                               BLOCK_F=max(16, triton.next_power_of_2(F)))
    return w, y.to(r.dtype)


@triton.jit
def _oja_y_kernel(x_ptr, h_ptr, y_ptr, R, M, n,
                  ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_M: tl.constexpr,
                  BLOCK_N: tl.constexpr):
    layer = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
    ms = tl.arange(0, BLOCK_M)
    mr, mm = rows < R, ms < M
    acc = tl.zeros((BLOCK_R, BLOCK_M), dtype=ACC)
    for c0 in range(0, n, BLOCK_N):
        cs = c0 + tl.arange(0, BLOCK_N)
        mc = cs < n
        x = tl.load(x_ptr + layer * R * n + rows[:, None] * n + cs[None, :],
                    mask=mr[:, None] & mc[None, :], other=0.0)
        ht = tl.load(h_ptr + layer * M * n + ms[None, :] * n + cs[:, None],
                     mask=mm[None, :] & mc[:, None], other=0.0)  # H^T tile [BLOCK_N, BLOCK_M]
        acc += tl.dot(x, ht, input_precision="ieee")
    tl.store(y_ptr + layer * R * M + rows[:, None] * M + ms[None, :], acc,
             mask=mr[:, None] & mm[None, :])


@triton.jit
def _oja_update_kernel(x_ptr, h_ptr, y_ptr, hout_ptr, xp_ptr, scale_ptr, train_ptr, R, M, n,
                       STORE_XP: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr):
    layer = tl.program_id(0).to(tl.int64)
    cs = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ms = tl.arange(0, BLOCK_M)
    mc, mm = cs < n, ms < M
    h = tl.load(h_ptr + layer * M * n + ms[:, None] * n + cs[None, :],
                mask=mm[:, None] & mc[None, :], other=0.0)  # [BLOCK_M, BLOCK_N]
    acc = h * 0.0
    for r0 in range(0, R, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        mr = rows < R
        x = tl.load(x_ptr + layer * R * n + rows[:, None] * n + cs[None, :],
                    mask=mr[:, None] & mc[None, :], other=0.0)
        y = tl.load(y_ptr + layer * R * M + rows[:, None] * M + ms[None, :],
                    mask=mr[:, None] & mm[None, :], other=0.0)
        xp = x - tl.dot(y, h, input_precision="ieee")  # projected activity of this tile
        if STORE_XP:
            tl.store(xp_ptr + layer * R * n + rows[:, None] * n + cs[None, :], xp,
                     mask=mr[:, None] & mc[None, :])
        acc += tl.dot(tl.trans(y), xp, input_precision="ieee")
    s = tl.load(scale_ptr + layer)
    tr = tl.load(train_ptr + layer * M + ms, mask=mm, other=0.0)[:, None]
    tl.store(hout_ptr + layer * M * n + ms[:, None] * n + cs[None, :], h + s * tr * acc,
             mask=mm[:, None] & mc[None, :])


def oja_subspace_triton(H, X, scale, train, n_iters, return_projected):
    L, M, n = H.shape
    R = X.shape[1]
    X = X.contiguous()
    scale = scale.to(H.dtype).contiguous()
    train = train.reshape(L, M).to(H.dtype).contiguous()
    block_r = max(16, min(64, triton.next_power_of_2(R)))
    block_m = max(16, triton.next_power_of_2(M))
    block_n = max(16, min(64, triton.next_power_of_2(n)))
    Y = torch.empty(L, R, M, dtype=H.dtype, device=H.device)
    acc = tl.float64 if H.dtype == torch.float64 else tl.float32
    xp = torch.empty_like(X) if return_projected else X.new_empty(1)
    H = H.contiguous()
    for it in range(n_iters):
        _oja_y_kernel[(L, triton.cdiv(R, block_r))](X, H, Y, R, M, n, ACC=acc, BLOCK_R=block_r,
                                                    BLOCK_M=block_m, BLOCK_N=block_n)
        H_new = torch.empty_like(H)
        store = return_projected and it == n_iters - 1
        _oja_update_kernel[(L, triton.cdiv(n, block_n))](
            X, H, Y, H_new, xp, scale, train, R, M, n, STORE_XP=store, BLOCK_R=block_r,
            BLOCK_M=block_m, BLOCK_N=block_n,
        )
        H = H_new
    return H, (xp if return_projected else None)
