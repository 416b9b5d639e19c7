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


def _augmented(W_in, b, W_T, W_out, b_out):
    """``M [K, N+I+1, N+O]`` with ``[h, x, 1] @ M = [W h + U x + b, W_out h + b_out]``."""
    K, N, I = W_in.shape
    O = W_out.shape[1]
    top = torch.cat([W_T, W_out.transpose(1, 2)], 2)  # [K, N, N+O]
    mid = torch.cat([W_in.transpose(1, 2), W_in.new_zeros(K, I, O)], 2)  # [K, I, N+O]
    bot = torch.cat([b, b_out], 1)[:, None, :]  # [K, 1, N+O]
    return torch.cat([top, mid, bot], 1)


class _FusedRateRNN(torch.autograd.Function):
    """One ``bmm`` per step forward and two backward, on the augmented state ``z = [h, x, 1]``.

    ``z_t M = [a_t - noise_t, y_{t-1}]``: the input projection, bias and the readout of the
    previous state ride along in the recurrent matmul (contraction N+I+1 instead of N), which
    removes the tiny-contraction matmuls (I, O ~ 3) that are as slow as the recurrent one; the
    backward accumulates all weight gradients as ``dM += z_t^T [da_t, dy_{t-1}]``.
    """

    @staticmethod
    def forward(ctx, x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form):
        K, B, N = h0.shape
        T, I = x.shape[1], x.shape[-1]
        O = W_out.shape[1]
        vanilla_tanh = alpha is None and nonlinearity == "tanh"
        M = _augmented(W_in, b, W_T, W_out, b_out)
        # ZH[:, t] = z_t = [h_{t-1}, x_t, 1]; the states are a view, H = ZH[:, 1:, :, :N]
        ZH = torch.empty(K, T + 1, B, N + I + 1, dtype=h0.dtype, device=h0.device)
        ZH[..., N + I] = 1.0
        ZH[:, :T, :, N : N + I] = x.expand(K, -1, -1, -1)
        ZH[:, 0, :, :N] = h0
        A = None if vanilla_tanh else torch.empty(K, T, B, N, dtype=h0.dtype, device=h0.device)
        Y = torch.empty(K, T, B, O, dtype=h0.dtype, device=h0.device)
        with torch.no_grad():
            for t in range(T):
                P = torch.bmm(ZH[:, t], M)
                if t > 0:
                    Y[:, t - 1] = P[..., N:]
                a = P[..., :N]
                if noise is not None:
                    a = a + noise[:, t]
                h_new = ZH[:, t + 1, :, :N]
                if vanilla_tanh:
                    torch.tanh(a, out=h_new)
                else:
                    A[:, t] = a
                    h_new.copy_(_cell(ZH[:, t, :, :N], a, alpha, nonlinearity, leak_form))
            H = ZH[:, 1:, :, :N]
            Y[:, T - 1] = torch.baddbmm(b_out[:, None, :], H[:, T - 1], W_out.transpose(1, 2))
        empty = torch.empty(0)
        ctx.save_for_backward(
            x,
            h0,
            W_out,
            M,
            ZH,
            A if A is not None else empty,
            alpha if alpha is not None else empty,
        )
        ctx.flags = (alpha is not None, vanilla_tanh, nonlinearity, leak_form)
        ctx.set_materialize_grads(False)  # unused states get gH = None, not a zero tensor
        return H, Y

    @staticmethod
    def backward(ctx, gH, gY):
        x, h0, W_out, M, ZH, A, alpha = ctx.saved_tensors
        has_alpha, vanilla_tanh, name, form = ctx.flags
        alpha = alpha if has_alpha else None
        I, O = x.shape[-1], W_out.shape[1]
        K, B, N = h0.shape
        T = ZH.shape[1] - 1
        H = ZH[:, 1:, :, :N]
        need = ctx.needs_input_grad
        M_T = M.transpose(1, 2)
        g_M = torch.zeros_like(M)
        G = torch.zeros(K, B, N + O, dtype=H.dtype, device=H.device)  # [da_t, dy_{t-1}]
        g_alpha = torch.zeros_like(h0) if alpha is not None else None
        g_x = torch.zeros(K, *x.shape[1:], dtype=x.dtype, device=x.device) if need[0] else None
        g_noise = torch.empty(K, T, B, N, dtype=H.dtype, device=H.device) if need[8] else None
        g_W_out_last = g_b_out_last = None
        if gY is not None:
            gY = gY.contiguous()
            gy = gY[:, T - 1]
            carry = torch.bmm(gy, W_out)
            g_W_out_last = torch.bmm(gy.transpose(1, 2), H[:, T - 1])
            g_b_out_last = gy.sum(1)
        else:
            carry = torch.zeros_like(h0)
        leak = None
        for t in range(T - 1, -1, -1):
            g = carry if gH is None else carry + gH[:, t]
            h_prev = H[:, t - 1] if t > 0 else h0
            ga = G[..., :N]
            if vanilla_tanh:
                h = H[:, t]
                torch.addcmul(g, g * h, h, value=-1, out=ga)  # g * (1 - h^2)
            elif alpha is None:
                torch.mul(g, dphi(name, A[:, t]), out=ga)
            elif form == "inside":
                a = A[:, t]
                gu = g * dphi(name, h_prev + alpha * (a - h_prev))
                torch.mul(gu, alpha, out=ga)
                g_alpha += gu * (a - h_prev)
                leak = gu * (1 - alpha)
            else:
                a = A[:, t]
                torch.mul(g * alpha, dphi(name, a), out=ga)
                g_alpha += g * (phi(name, a) - h_prev)
                leak = g * (1 - alpha)
            if g_noise is not None:
                g_noise[:, t] = ga
            if gY is not None and t > 0:
                G[..., N:] = gY[:, t - 1]
            elif gY is not None:
                G[..., N:] = 0.0
            g_M.baddbmm_(ZH[:, t].transpose(1, 2), G)
            gZ = torch.bmm(G, M_T)  # [K, B, N+I+1]
            carry = gZ[..., :N] if leak is None else gZ[..., :N] + leak
            if g_x is not None:
                g_x[:, t] = gZ[..., N : N + I]
        if g_x is not None and x.shape[0] == 1 and K > 1:
            g_x = g_x.sum(0, keepdim=True)
        g_W_T = g_M[:, :N, :N]
        g_W_in = g_M[:, N : N + I, :N].transpose(1, 2)
        g_b = g_M[:, N + I, :N]
        g_W_out = g_M[:, :N, N:].transpose(1, 2)
        g_b_out = g_M[:, N + I, N:]
        if g_W_out_last is not None:
            g_W_out = g_W_out + g_W_out_last
            g_b_out = g_b_out + g_b_out_last
        g_alpha_out = None
        if alpha is not None and need[5]:
            g_alpha_out = g_alpha.sum(1, keepdim=True) if alpha.shape[1] == 1 else g_alpha
        return (
            g_x,
            carry.contiguous(),
            g_W_in.contiguous(),
            g_b.contiguous(),
            g_W_T.contiguous(),
            g_alpha_out,
            g_W_out.contiguous(),
            g_b_out.contiguous(),
            g_noise,
            None,
            None,
        )


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
