"""Triton (GPU) backend of :func:`dynrnn.kernels.rate_rnn`: the FlashRNN pattern for K
independent rate RNNs with per-neuron time constants.

Only the sequential part runs in the kernel. Outside it, in plain torch (large, parallel matmuls):
the input drive ``U x_t + b (+ noise)`` of all steps before the loop, the readout
``W_out h_t + b_out`` of all steps after it, and in the backward the weight gradients
``dW^T = sum_t h_{t-1}^T da_t`` as one ``bmm``. Inside, one program per (network, block of
trials) keeps that network's recurrent matrix and its trials' states on chip for the whole time
loop (one ``tl.dot`` per step forward, one backward).

Maths as :func:`~dynrnn.kernels.rate_rnn.rate_rnn_reference` (``alpha = 1/tau``):
vanilla ``h_t = phi(a_t)``; inside ``h_t = phi(h + alpha (a_t - h))``; outside
``h_t = h + alpha (phi(a_t) - h)``, with ``a_t = drive_t + h_{t-1} W^T``.

Without a GPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``, slow: tests use
small sizes). Importing this module imports triton; :mod:`.rate_rnn` imports it lazily.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._rate_rnn_c import LEAK_CODES, NL_CODES

__all__ = ["recurrence"]


@triton.jit
def _act(a, NL: tl.constexpr):
    if NL == 0:  # tanh
        return 2.0 / (1.0 + tl.exp(-2.0 * a)) - 1.0
    elif NL == 1:  # relu
        return tl.where(a > 0, a, 0.0)
    elif NL == 2:  # leaky relu
        return tl.where(a > 0, a, 0.01 * a)
    elif NL == 3:  # softplus
        return tl.where(a > 20.0, a, tl.log(1.0 + tl.exp(tl.minimum(a, 20.0))))
    elif NL == 4:  # sigmoid
        return 1.0 / (1.0 + tl.exp(-a))
    else:
        return a


@triton.jit
def _dact(a, NL: tl.constexpr):
    if NL == 0:
        t = 2.0 / (1.0 + tl.exp(-2.0 * a)) - 1.0
        return 1.0 - t * t
    elif NL == 1:
        return tl.where(a > 0, 1.0, 0.0)
    elif NL == 2:
        return tl.where(a > 0, 1.0, 0.01)
    elif NL == 3:
        return 1.0 / (1.0 + tl.exp(-a))
    elif NL == 4:
        s = 1.0 / (1.0 + tl.exp(-a))
        return s * (1.0 - s)
    else:
        return a * 0.0 + 1.0


@triton.jit
def _fwd_kernel(
    drive_ptr, h0_ptr, wt_ptr, alpha_ptr, h_ptr, a_ptr,
    T, B, N,
    NL: tl.constexpr, LEAK: tl.constexpr, STORE_A: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
):
    k = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_N)
    mb, mn = rows < B, cols < N
    m2 = mb[:, None] & mn[None, :]
    tile = rows[:, None] * N + cols[None, :]
    k64 = k.to(tl.int64)
    wt = tl.load(wt_ptr + k64 * N * N + cols[:, None] * N + cols[None, :],
                 mask=mn[:, None] & mn[None, :], other=0.0)
    h = tl.load(h0_ptr + k64 * B * N + tile, mask=m2, other=0.0)
    if LEAK != 0:
        al = tl.load(alpha_ptr + k64 * N + cols, mask=mn, other=0.0)[None, :]
    for t in range(T):
        off = (k64 * T + t) * B * N
        a = tl.dot(h, wt, input_precision="ieee") + tl.load(drive_ptr + off + tile, mask=m2,
                                                            other=0.0)
        if STORE_A:
            tl.store(a_ptr + off + tile, a, mask=m2)
        if LEAK == 0:
            hn = _act(a, NL)
        elif LEAK == 1:
            hn = _act(h + al * (a - h), NL)
        else:
            hn = h + al * (_act(a, NL) - h)
        h = tl.where(m2, hn, 0.0)
        tl.store(h_ptr + off + tile, h, mask=m2)


@triton.jit
def _bwd_kernel(
    gh_ptr, h0_ptr, w_ptr, alpha_ptr, h_ptr, a_ptr, ga_ptr, gh0_ptr, galpha_ptr,
    T, B, N,
    NL: tl.constexpr, LEAK: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
):
    k = tl.program_id(0)
    pb = tl.program_id(1)
    rows = pb * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_N)
    mb, mn = rows < B, cols < N
    m2 = mb[:, None] & mn[None, :]
    tile = rows[:, None] * N + cols[None, :]
    k64 = k.to(tl.int64)
    # w = W (untransposed): carry = da @ W
    w = tl.load(w_ptr + k64 * N * N + cols[:, None] * N + cols[None, :],
                mask=mn[:, None] & mn[None, :], other=0.0)
    h0 = tl.load(h0_ptr + k64 * B * N + tile, mask=m2, other=0.0)
    carry = h0 * 0.0
    g_alpha = tl.sum(carry, axis=0)
    if LEAK != 0:
        al = tl.load(alpha_ptr + k64 * N + cols, mask=mn, other=0.0)[None, :]
    for i in range(T):
        t = T - 1 - i
        off = (k64 * T + t) * B * N
        g = carry + tl.load(gh_ptr + off + tile, mask=m2, other=0.0)
        h = tl.load(h_ptr + off + tile, mask=m2, other=0.0)
        if t > 0:
            hp = tl.load(h_ptr + off - B * N + tile, mask=m2, other=0.0)
        else:
            hp = h0
        if LEAK == 0:
            if NL == 0:
                ga = g * (1.0 - h * h)
            else:
                ga = g * _dact(tl.load(a_ptr + off + tile, mask=m2, other=0.0), NL)
            leak = 0.0
        elif LEAK == 1:
            a = tl.load(a_ptr + off + tile, mask=m2, other=0.0)
            if NL == 0:
                gu = g * (1.0 - h * h)
            else:
                gu = g * _dact(hp + al * (a - hp), NL)
            ga = gu * al
            g_alpha += tl.sum(tl.where(m2, gu * (a - hp), 0.0), axis=0)
            leak = gu * (1.0 - al)
        else:
            a = tl.load(a_ptr + off + tile, mask=m2, other=0.0)
            ga = g * al * _dact(a, NL)
            g_alpha += tl.sum(tl.where(m2, g * (_act(a, NL) - hp), 0.0), axis=0)
            leak = g * (1.0 - al)
        ga = tl.where(m2, ga, 0.0)
        tl.store(ga_ptr + off + tile, ga, mask=m2)
        carry = tl.dot(ga, w, input_precision="ieee") + leak
    tl.store(gh0_ptr + k64 * B * N + tile, carry, mask=m2)
    if LEAK != 0:
        n_pb = tl.num_programs(1)
        tl.store(galpha_ptr + (k64 * n_pb + pb) * N + cols, g_alpha, mask=mn)


def _blocks(B: int, N: int) -> tuple[int, int]:
    block_n = max(16, triton.next_power_of_2(N))
    block_b = max(16, min(64, triton.next_power_of_2(B)))
    return block_b, block_n


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, drive, h0, W_T, alpha, nonlinearity, leak_form):
        K, T, B, N = drive.shape
        nl, leak = NL_CODES[nonlinearity], LEAK_CODES[leak_form if alpha is not None else None]
        drive, h0, W_T = drive.contiguous(), h0.contiguous(), W_T.contiguous()
        al = alpha.reshape(K, N).contiguous() if alpha is not None else h0.new_empty(1)
        H = torch.empty_like(drive)
        store_a = not (leak == 0 and nl == 0)
        A = torch.empty_like(drive) if store_a else h0.new_empty(1)
        block_b, block_n = _blocks(B, N)
        grid = (K, triton.cdiv(B, block_b))
        _fwd_kernel[grid](drive, h0, W_T, al, H, A, T, B, N, NL=nl, LEAK=leak,
                          STORE_A=store_a, BLOCK_B=block_b, BLOCK_N=block_n)
        ctx.save_for_backward(h0, W_T, al, H, A)
        ctx.codes = (nl, leak, alpha is not None)
        return H

    @staticmethod
    def backward(ctx, gH):
        h0, W_T, al, H, A = ctx.saved_tensors
        nl, leak, has_alpha = ctx.codes
        K, T, B, N = H.shape
        W = W_T.transpose(1, 2).contiguous()
        GA = torch.empty_like(H)
        g_h0 = torch.empty_like(h0)
        block_b, block_n = _blocks(B, N)
        grid = (K, triton.cdiv(B, block_b))
        g_alpha_parts = torch.zeros(K, grid[1], N, dtype=H.dtype, device=H.device)
        _bwd_kernel[grid](gH.contiguous(), h0, W, al, H, A, GA, g_h0, g_alpha_parts, T, B, N,
                          NL=nl, LEAK=leak, BLOCK_B=block_b, BLOCK_N=block_n)
        # dW^T = sum_t h_{t-1}^T da_t, as two bmm over the flattened (t, b) axis
        g_W_T = torch.bmm(h0.transpose(1, 2), GA[:, 0])
        if T > 1:
            g_W_T += torch.bmm(H[:, :-1].reshape(K, -1, N).transpose(1, 2),
                               GA[:, 1:].reshape(K, -1, N))
        g_alpha = g_alpha_parts.sum(1, keepdim=True) if has_alpha else None
        return GA, g_h0, g_W_T, g_alpha, None, None


def recurrence(drive, h0, W_T, alpha, nonlinearity, leak_form):
    """States ``H [K, T, B, N]`` of ``h_t = cell(h_{t-1}, drive_t + h_{t-1} W_T)``.

    Arguments: ``drive [K, T, B, N]`` (input drive incl. bias and noise), ``h0 [K, B, N]``,
    ``W_T [K, N, N]``, ``alpha [K, 1, N]`` or None; nonlinearity and leak form as in
    :class:`~dynrnn.models.RateRNNConfig`. Differentiable in all tensor arguments.
    """
    return _Recurrence.apply(drive, h0, W_T, alpha, nonlinearity, leak_form)
