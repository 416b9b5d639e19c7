"""Fused rate-RNN ensemble: input projection, recurrence and readout in one time loop, with a
hand-written BPTT backward (CPU backend of :func:`dynrnn.models.run` for ``RateRNN``).

Why: on a CPU the unfused computation is bound by memory traffic, not FLOPs. For K=256 networks,
B=32 trials, T=100 steps, N=64 units, every ``[K, T, B, N]`` tensor is 210 MB, and the unfused
graph streams about ten of them (input drive, states, their gradients, the readout gradient).
Here the per-step input drive ``U x_t + b`` and readout ``W_out h_t + b_out`` are computed while
``h_t`` is in cache, and the backward accumulates the weight gradients step by step, so the only
sequence-length tensors are the states ``H`` (written forward, read backward) and, for leaky or
non-tanh units, the pre-activations ``A``.

Maths (``a_t = U x_t + b + noise_t + W h_{t-1}``, ``alpha = 1/tau``):

* vanilla (alpha None): ``h_t = phi(a_t)``;
* ``"inside"``:  ``h_t = phi(h_{t-1} + alpha (a_t - h_{t-1}))``;
* ``"outside"``: ``h_t = h_{t-1} + alpha (phi(a_t) - h_{t-1})``;
* ``y_t = W_out h_t + b_out``.

The reference (specification) is :func:`rate_rnn_reference`, the plain autograd loop; tests
compare the two on random inputs (values and gradients) and with ``gradcheck``.
"""

from __future__ import annotations

import torch

from ..models._nonlin import dphi, phi

__all__ = ["rate_rnn", "rate_rnn_reference"]


def _drive(x_t, W_in_T, b):
    # x_t [Kx, B, I] (Kx = 1 or K), W_in_T [K, I, N], b [K, 1, N] -> [K, B, N]
    if x_t.shape[0] == 1 and W_in_T.shape[0] > 1:
        return torch.matmul(x_t, W_in_T) + b
    return torch.baddbmm(b, x_t, W_in_T)


def _cell(h, a, alpha, name, form):
    if alpha is None:
        return phi(name, a)
    if form == "inside":
        return phi(name, h + alpha * (a - h))
    return h + alpha * (phi(name, a) - h)


def rate_rnn_reference(x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form):
    """Plain autograd loop. ``x [Kx, T, B, I]`` -> ``(H [K, T, B, N], Y [K, T, B, O])``."""
    W_in_T, W_out_T = W_in.transpose(1, 2), W_out.transpose(1, 2)
    b3, bo3 = b[:, None, :], b_out[:, None, :]
    h, hs, ys = h0, [], []
    for t in range(x.shape[1]):
        d = _drive(x[:, t], W_in_T, b3)
        if noise is not None:
            d = d + noise[:, t]
        h = _cell(h, torch.baddbmm(d, h, W_T), alpha, nonlinearity, leak_form)
        hs.append(h)
        ys.append(torch.baddbmm(bo3, h, W_out_T))
    return torch.stack(hs, 1), torch.stack(ys, 1)


class _FusedRateRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form):
        K, B, N = h0.shape
        T = x.shape[1]
        O = W_out.shape[1]
        vanilla_tanh = alpha is None and nonlinearity == "tanh"
        H = torch.empty(K, T, B, N, dtype=h0.dtype, device=h0.device)
        A = None if vanilla_tanh else torch.empty_like(H)
        Y = torch.empty(K, T, B, O, dtype=h0.dtype, device=h0.device)
        W_in_T, W_out_T = W_in.transpose(1, 2), W_out.transpose(1, 2)
        b3, bo3 = b[:, None, :], b_out[:, None, :]
        h = h0
        with torch.no_grad():
            for t in range(T):
                d = _drive(x[:, t], W_in_T, b3)
                if noise is not None:
                    d += noise[:, t]
                if vanilla_tanh:
                    h = torch.tanh_(torch.baddbmm(d, h, W_T, out=H[:, t]))
                else:
                    a = torch.baddbmm(d, h, W_T, out=A[:, t])
                    h = _cell(h, a, alpha, nonlinearity, leak_form)
                    H[:, t] = h
                torch.baddbmm(bo3, h, W_out_T, out=Y[:, t])
        empty = torch.empty(0)
        ctx.save_for_backward(
            x,
            h0,
            W_in,
            W_T,
            W_out,
            H,
            A if A is not None else empty,
            alpha if alpha is not None else empty,
        )
        ctx.flags = (alpha is not None, vanilla_tanh, nonlinearity, leak_form)
        return H, Y

    @staticmethod
    def backward(ctx, gH, gY):
        x, h0, W_in, W_T, W_out, H, A, alpha = ctx.saved_tensors
        has_alpha, vanilla_tanh, name, form = ctx.flags
        alpha = alpha if has_alpha else None
        K, T, B, N = H.shape
        need = ctx.needs_input_grad
        W = W_T.transpose(1, 2)
        g_W_T = torch.zeros_like(W_T)
        g_W_in = torch.zeros_like(W_in)
        g_b = torch.zeros(K, N, dtype=H.dtype, device=H.device)
        g_W_out = torch.zeros_like(W_out)
        g_b_out = torch.zeros(K, W_out.shape[1], dtype=H.dtype, device=H.device)
        g_alpha = torch.zeros_like(h0) if alpha is not None else None
        g_x = torch.zeros(K, *x.shape[1:], dtype=x.dtype, device=x.device) if need[0] else None
        g_noise = torch.empty_like(H) if need[8] else None
        carry = torch.zeros_like(h0)
        shared_x = x.shape[0] == 1 and K > 1
        for t in range(T - 1, -1, -1):
            h = H[:, t]
            h_prev = H[:, t - 1] if t > 0 else h0
            x_t = x[:, t]
            if gY is not None:
                gy = gY[:, t]
                g = torch.baddbmm(carry, gy, W_out)
                g_W_out.baddbmm_(gy.transpose(1, 2), h)
                g_b_out += gy.sum(1)
            else:
                g = carry
            if gH is not None:
                g = g + gH[:, t]
            if vanilla_tanh:
                ga = torch.addcmul(g, g * h, h, value=-1)  # g * (1 - h^2)
                leak = None
            elif alpha is None:
                ga = g * dphi(name, A[:, t])
                leak = None
            elif form == "inside":
                a = A[:, t]
                gu = g * dphi(name, h_prev + alpha * (a - h_prev))
                ga = gu * alpha
                g_alpha += gu * (a - h_prev)
                leak = gu * (1 - alpha)
            else:
                a = A[:, t]
                ga = g * alpha * dphi(name, a)
                g_alpha += g * (phi(name, a) - h_prev)
                leak = g * (1 - alpha)
            g_W_T.baddbmm_(h_prev.transpose(1, 2), ga)
            if shared_x:
                g_W_in += torch.matmul(ga.transpose(1, 2), x_t)
            else:
                g_W_in.baddbmm_(ga.transpose(1, 2), x_t)
            g_b += ga.sum(1)
            if g_x is not None:
                g_x[:, t] = torch.bmm(ga, W_in)
            if g_noise is not None:
                g_noise[:, t] = ga
            carry = torch.bmm(ga, W) if leak is None else torch.baddbmm(leak, ga, W)
        if g_x is not None and shared_x:
            g_x = g_x.sum(0, keepdim=True)
        g_alpha_out = None
        if alpha is not None and need[5]:
            g_alpha_out = g_alpha.sum(1, keepdim=True) if alpha.shape[1] == 1 else g_alpha
        return (g_x, carry, g_W_in, g_b, g_W_T, g_alpha_out, g_W_out, g_b_out, g_noise, None, None)


def rate_rnn(
    x,
    h0,
    W_in,
    b,
    W_T,
    alpha,
    W_out,
    b_out,
    noise=None,
    nonlinearity="tanh",
    leak_form="inside",
    backend="cpu",
):
    """Run K rate RNNs with their readouts.

    Arguments:
        x: inputs ``[Kx, T, B, I]`` (time-major per network; ``Kx`` is 1 or K).
        h0: ``[K, B, N]`` initial states.
        W_in ``[K, N, I]``, b ``[K, N]``, W_T ``[K, N, N]`` (transposed recurrent weights),
        alpha ``[K, 1, N]`` or None, W_out ``[K, O, N]``, b_out ``[K, O]``.
        noise: ``[K, T, B, N]`` added to the pre-activation, or None.
        nonlinearity, leak_form: as in :class:`~dynrnn.models.RateRNNConfig`.
        backend: ``"cpu"`` (fused) or ``"reference"`` (autograd loop).

    Returns:
        ``(H [K, T, B, N], Y [K, T, B, O])``.
    """
    if backend == "reference":
        return rate_rnn_reference(
            x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form
        )
    if backend != "cpu":
        raise ValueError(f"The 'backend' parameter must be 'cpu' or 'reference'. Got {backend!r}.")
    return _FusedRateRNN.apply(
        x.contiguous(),
        h0.contiguous(),
        W_in,
        b,
        W_T,
        alpha,
        W_out,
        b_out,
        noise,
        nonlinearity,
        leak_form,
    )
