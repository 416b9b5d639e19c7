"""Fused time loop of the leaky rate RNN ensemble (forward + hand-written BPTT backward).

The reference is the plain autograd loop in :func:`dynrnn.models.run` (one ``baddbmm`` and one
nonlinearity per step, recorded by autograd). This CPU backend computes the same maths as one
``torch.autograd.Function``:

* forward: the time loop under ``no_grad`` (no graph bookkeeping), storing the states ``H`` and
  the pre-activations ``A``;
* backward: one ``bmm`` per step for the state gradient, then the recurrent weight gradient as a
  single large ``bmm`` over all time steps and trials, ``dW^T = H_prev^T dA``
  (``[K, N, T*B] x [K, T*B, N]``), instead of T small ones plus T accumulations.

Update forms (``alpha = 1/tau``, ``a_t = d_t + h_{t-1} W^T``; ``d_t`` is the input drive plus
noise), as in :mod:`dynrnn.models.rate`:

* vanilla (alpha None): ``h_t = phi(a_t)``;
* ``"inside"``:  ``h_t = phi(h_{t-1} + alpha (a_t - h_{t-1}))``;
* ``"outside"``: ``h_t = h_{t-1} + alpha (phi(a_t) - h_{t-1})``.
"""

from __future__ import annotations

import torch

from ..models._nonlin import dphi, phi

__all__ = ["rate_loop", "rate_loop_reference"]


def _step(h, d, W_T, alpha, name, form):
    a = torch.baddbmm(d, h, W_T)
    if alpha is None:
        return phi(name, a), a
    if form == "inside":
        return phi(name, h + alpha * (a - h)), a
    return h + alpha * (phi(name, a) - h), a


def rate_loop_reference(drive, h0, W_T, alpha, nonlinearity, leak_form):
    """Plain autograd loop (the specification): ``drive [T, K, B, N]`` -> ``[T, K, B, N]``."""
    h, out = h0, []
    for d in drive.unbind(0):
        h, _ = _step(h, d, W_T, alpha, nonlinearity, leak_form)
        out.append(h)
    return torch.stack(out)


class _RateLoop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, drive, h0, W_T, alpha, nonlinearity, leak_form):
        T = drive.shape[0]
        H = torch.empty_like(drive)
        A = torch.empty_like(drive)
        h = h0
        with torch.no_grad():
            for t in range(T):
                h, a = _step(h, drive[t], W_T, alpha, nonlinearity, leak_form)
                H[t] = h
                A[t] = a
        ctx.save_for_backward(H, A, h0, W_T, alpha if alpha is not None else torch.empty(0))
        ctx.has_alpha = alpha is not None
        ctx.names = (nonlinearity, leak_form)
        return H

    @staticmethod
    def backward(ctx, gH):
        H, A, h0, W_T, alpha = ctx.saved_tensors
        name, form = ctx.names
        alpha = alpha if ctx.has_alpha else None
        T, K, B, N = H.shape
        W = W_T.transpose(1, 2)
        gA = torch.empty_like(H)
        carry = torch.zeros_like(h0)
        g_alpha = torch.zeros_like(h0) if alpha is not None else None
        for t in range(T - 1, -1, -1):
            g = gH[t] + carry
            a = A[t]
            if alpha is None:
                if name == "tanh":
                    ga = g * (1 - H[t] * H[t])
                else:
                    ga = g * dphi(name, a)
                carry = torch.bmm(ga, W)
            else:
                h_prev = H[t - 1] if t > 0 else h0
                if form == "inside":
                    u = h_prev + alpha * (a - h_prev)
                    gu = g * dphi(name, u)
                    ga = gu * alpha
                    g_alpha += gu * (a - h_prev)
                    carry = torch.baddbmm(gu * (1 - alpha), ga, W)
                else:
                    dp = dphi(name, a)
                    ga = g * alpha * dp
                    g_alpha += g * (phi(name, a) - h_prev)
                    carry = torch.baddbmm(g * (1 - alpha), ga, W)
            gA[t] = ga
        g_W_T = None
        if ctx.needs_input_grad[2]:
            H_prev = torch.cat([h0.unsqueeze(0), H[:-1]], 0)  # [T, K, B, N]
            hp = H_prev.permute(1, 3, 0, 2).reshape(K, N, T * B)
            ga_flat = gA.permute(1, 0, 2, 3).reshape(K, T * B, N)
            g_W_T = torch.bmm(hp, ga_flat)
        g_alpha_out = None
        if alpha is not None and ctx.needs_input_grad[3]:
            g_alpha_out = g_alpha.sum(1, keepdim=True) if alpha.shape[1] == 1 else g_alpha
        return gA, carry, g_W_T, g_alpha_out, None, None


def rate_loop(drive, h0, W_T, alpha, nonlinearity: str, leak_form: str, backend: str = "cpu"):
    """Run the rate-RNN time loop.

    Arguments:
        drive: ``[T, K, B, N]`` input drive (``U x + b``, plus noise) per step.
        h0: ``[K, B, N]`` initial state.
        W_T: ``[K, N, N]`` transposed effective recurrent weights.
        alpha: ``[K, 1, N]`` (``1/tau``) or None for the vanilla RNN.
        nonlinearity, leak_form: as in :class:`~dynrnn.models.RateRNNConfig`.
        backend: ``"cpu"`` (fused autograd Function) or ``"reference"`` (autograd loop).

    Returns:
        states ``[T, K, B, N]``.
    """
    if backend == "reference":
        return rate_loop_reference(drive, h0, W_T, alpha, nonlinearity, leak_form)
    if backend != "cpu":
        raise ValueError(f"The 'backend' parameter must be 'cpu' or 'reference'. Got {backend!r}.")
    return _RateLoop.apply(drive, h0, W_T, alpha, nonlinearity, leak_form)
