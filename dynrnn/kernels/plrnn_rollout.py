"""Fused teacher-forced rollouts of the PLRNN family with hand-written BPTT (CPU fast path).

The reference is the autograd loop of :func:`dynrnn.training.gtf.gtf_loss` over the model's
step; these functions compute the same forced rollout

    z~_{t-1} = z_{t-1} + w_t * (zhat_{t-1} - z_{t-1}),     z_t = F(z~_{t-1}),

with the maps ``F`` of :mod:`dynrnn.functional.plrnn` (the forward calls those functions),
without building an autograd graph per step. The forward loop stores only the forced states
``z~_t``; the backward loop carries ``dL/dz`` back through time with two small matrix products
per step, and every weight gradient is one batched product over all time steps at the end
(instead of S small ones). Tests compare losses and gradients with the autograd reference.

The functions take tensors, not models: a model exposes them through
``has_fused_forced_rollout()`` / ``fused_forced_rollout(zhat, weights, z0)``
(:class:`dynrnn.models.PiecewiseLinearRNN`), passing its effective weights.

Layout: time-major ``[K, S+1, B, M]`` data and ``[K, S, B, M]`` results; ``weights
[S, K, 1, M]`` are the per-step forcing weights (alpha on forced units, 0 elsewhere; an
all-zero step is no forcing).
"""

from __future__ import annotations

import torch

from .._validation import ParameterTypeError, check_int, check_shape
from ..functional.plrnn import plrnn_phi, plrnn_update, shplrnn_hidden

__all__ = ["plrnn_forced_rollout", "shplrnn_forced_rollout"]

class _ShallowRollout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zhat, weights, z0, A, W1, W2, h1, h2, clipped):
        K, S1, B, M = zhat.shape
        S, L = S1 - 1, W1.shape[-1]
        W1T, W2T = W1.transpose(1, 2), W2.transpose(1, 2)
        h1b = h1[:, None, :]
        ZF = torch.empty(S, K, B, M, dtype=zhat.dtype)
        Z = torch.empty(S, K, B, M, dtype=zhat.dtype)
        R = torch.empty(S, K, B, L, dtype=zhat.dtype)  # relu outputs
        MA = torch.empty(S, K, B, L, dtype=zhat.dtype)  # relu'(W2 z + h2)
        D = torch.empty(S, K, B, L, dtype=zhat.dtype) if clipped else MA  # d r / d u
        z = z0
        for t in range(S):
            if t > 0:
                z = torch.lerp(z, zhat[:, t], weights[t])
            ZF[t] = z
            _, a, u = shplrnn_hidden(z, W2T, h2, clipped, out=R[t])
            torch.gt(a, 0, out=MA[t])
            if clipped:
                torch.sub(MA[t], torch.gt(u, 0).to(u.dtype), out=D[t])
            z = plrnn_update(z, R[t], h1b, A, W1T, out=Z[t])
        ctx.save_for_backward(ZF, R, MA, D, weights, A, W1, W2)
        ctx.mark_non_differentiable(ZF)
        return Z.permute(1, 0, 2, 3), ZF.permute(1, 0, 2, 3)

    @staticmethod
    def backward(ctx, gZ, _gZF):
        ZF, R, MA, D, weights, A, W1, W2 = ctx.saved_tensors
        S, K, B, M = ZF.shape
        gZ = gZ.permute(1, 0, 2, 3)
        Ab = A[:, None, :]
        keep = 1.0 - weights  # [S, K, 1, M]
        gA = torch.zeros(K, B, M, dtype=ZF.dtype)
        gh1 = torch.zeros(K, B, M, dtype=ZF.dtype)
        gh2 = torch.zeros(K, B, W1.shape[-1], dtype=ZF.dtype)
        gW1 = torch.zeros_like(W1)
        gW2 = torch.zeros_like(W2)
        g = None
        for t in range(S - 1, -1, -1):
            gz = gZ[t] if g is None else gZ[t] + g
            gr = torch.bmm(gz, W1)  # [K, B, L]
            gd = gr * D[t]
            gzf = torch.baddbmm(gz * Ab, gd, W2)
            g = gzf * keep[t] if t > 0 else gzf  # the first state is not forced
            gA.addcmul_(gz, ZF[t])
            gh1.add_(gz)
            gh2.addcmul_(gr, MA[t])
            gW1.baddbmm_(gz.transpose(1, 2), R[t])
            gW2.baddbmm_(gd.transpose(1, 2), ZF[t])
        return None, None, g, gA.sum(1), gW1, gW2, gh1.sum(1), gh2.sum(1), None


class _DenseRollout(torch.autograd.Function):
    """AL-RNN (``phi`` = identity on the first M-P units, ReLU on the last P) and PLRNN
    (``phi`` = ReLU on all units, W with masked diagonal): ``z' = A z + W phi(z) + h``."""

    @staticmethod
    def forward(ctx, zhat, weights, z0, A, W, h, n_linear):
        K, S1, B, M = zhat.shape
        S = S1 - 1
        WT = W.transpose(1, 2)
        hb = h[:, None, :]
        ZF = torch.empty(K, S, B, M, dtype=zhat.dtype)
        Z = torch.empty(K, S, B, M, dtype=zhat.dtype)
        z = z0
        lin = n_linear
        for t in range(S):
            if t > 0:
                z = torch.lerp(z, zhat[:, t], weights[t])
            ZF[:, t] = z
            z = plrnn_update(z, plrnn_phi(z, lin), hb, A, WT)
            Z[:, t] = z
        ctx.save_for_backward(ZF, weights, A, W)
        ctx.n_linear = lin
        ctx.mark_non_differentiable(ZF)
        return Z, ZF

    @staticmethod
    def backward(ctx, gZ, _gZF):
        ZF, weights, A, W = ctx.saved_tensors
        K, S, B, M = ZF.shape
        lin = ctx.n_linear
        mask = (ZF > 0).to(ZF.dtype)
        if lin:
            mask[..., :lin] = 1.0
        GZ = torch.empty_like(gZ)
        Ab = A[:, None, :]
        g = torch.zeros(K, B, M, dtype=ZF.dtype)
        for t in range(S - 1, -1, -1):
            gz = gZ[:, t] + g
            GZ[:, t] = gz
            gzf = torch.addcmul(gz * Ab, torch.bmm(gz, W), mask[:, t])
            g = gzf - gzf * weights[t] if t > 0 else gzf  # at t = 0: dL/dz0
        zf = ZF.reshape(K, S * B, M)
        gz_flat = GZ.reshape(K, S * B, M)
        P = zf * mask.reshape(K, S * B, M)
        gA = (gz_flat * zf).sum(1)
        gW = torch.bmm(gz_flat.transpose(1, 2), P)
        gh = gz_flat.sum(1)
        return None, None, g, gA, gW, gh, None


def _check_common(owner, zhat, weights, z0, **tensors):
    """Shapes and dtypes of the rollout arguments (``tensors``: name -> (tensor, layout))."""
    named = {"zhat": zhat, "weights": weights, "z0": z0, **{k: v[0] for k, v in tensors.items()}}
    for name, t in named.items():
        if not (torch.is_tensor(t) and t.is_floating_point()):
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be a floating tensor. Got "
                f"{t.dtype if torch.is_tensor(t) else type(t).__name__} instead."
            )
    check_shape(owner, "zhat", zhat, [("K", "S1", "B", "M")])
    K, S1, B, M = zhat.shape
    if S1 < 2:
        raise ValueError(f"The 'zhat' parameter of {owner} needs at least 2 time steps (dim 1). "
                         f"Got {S1} instead.")
    sizes = dict(K=K, S=S1 - 1, B=B, M=M)
    check_shape(owner, "weights", weights, [("S", "K", 1, "M")], "zhat", **sizes)
    check_shape(owner, "z0", z0, [("K", "B", "M")], "zhat", **sizes)
    for name, (t, layout) in tensors.items():
        check_shape(owner, name, t, [layout], "zhat", **sizes)
        sizes.update({d: n for d, n in zip(layout, t.shape) if isinstance(d, str)})
    for name, t in named.items():
        if t.dtype != zhat.dtype:
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must have the dtype of 'zhat' "
                f"({zhat.dtype}). Got {t.dtype} instead."
            )


def shplrnn_forced_rollout(zhat, weights, z0, A, W1, W2, h1, h2, clipped: bool):
    """Forced rollout of K (clipped) shPLRNNs ``z' = A z + W1 r(z) + h1``
    (:func:`dynrnn.functional.plrnn.shplrnn_step`; no external input).

    Arguments:
        zhat: data-inferred latent states ``[K, S+1, B, M]`` (time-major).
        weights: forcing weights ``[S, K, 1, M]`` (entry t applies before step t; t=0 unused).
        z0: the first state ``[K, B, M]``; gradients flow into it.
        A, W1, W2, h1, h2: ``[K, M]``, ``[K, M, L]``, ``[K, L, M]``, ``[K, M]``, ``[K, L]``.
        clipped: the clipped hidden layer ``relu(W2 z + h2) - relu(W2 z)``.

    Returns:
        ``(Z, ZF)``: the states after each step and the forced states before it, both
        ``[K, S, B, M]`` (``ZF`` carries no gradient).
    """
    _check_common("shplrnn_forced_rollout", zhat, weights, z0, A=(A, ("K", "M")),
                  W1=(W1, ("K", "M", "L")), W2=(W2, ("K", "L", "M")), h1=(h1, ("K", "M")),
                  h2=(h2, ("K", "L")))
    return _ShallowRollout.apply(zhat, weights, z0, A, W1, W2, h1, h2, bool(clipped))


def plrnn_forced_rollout(zhat, weights, z0, A, W, h, n_linear: int = 0):
    """Forced rollout of K PLRNNs / AL-RNNs ``z' = A z + W Phi*(z) + h``
    (:func:`dynrnn.functional.plrnn.plrnn_step`; no external input).

    Arguments:
        zhat, weights, z0: as in :func:`shplrnn_forced_rollout`.
        A, W, h: ``[K, M]``, ``[K, M, M]`` (effective: the PLRNN passes its masked diagonal),
            ``[K, M]``.
        n_linear: units on which ``Phi*`` is the identity (PLRNN 0, AL-RNN ``M - P``).

    Returns:
        ``(Z, ZF)`` as in :func:`shplrnn_forced_rollout`.
    """
    owner = "plrnn_forced_rollout"
    _check_common(owner, zhat, weights, z0, A=(A, ("K", "M")), W=(W, ("K", "M", "M")),
                  h=(h, ("K", "M")))
    n_linear = check_int(owner, "n_linear", n_linear, 0, zhat.shape[-1])
    return _DenseRollout.apply(zhat, weights, z0, A, W, h, n_linear)
