"""Fused teacher-forced rollouts of the PLRNN family with hand-written BPTT (CPU fast path).

The reference is the autograd loop of :func:`dynrnn.training.gtf.gtf_loss`; these functions
compute the same forced rollout

    z~_{t-1} = z_{t-1} + w_t * (zhat_{t-1} - z_{t-1}),     z_t = F(z~_{t-1}),

without building an autograd graph per step. The forward loop stores only the forced states
``z~_t``; the backward loop carries ``dL/dz`` back through time with two small matrix products
per step, and every weight gradient is one batched product over all time steps at the end
(instead of S small ones). Tests compare losses and gradients with the autograd reference.

Layout: time-major ``[K, S, B, M]`` sequences; ``weights [S, K, 1, M]`` are the per-step forcing
weights (alpha on forced units, 0 elsewhere; an all-zero step is no forcing).
"""

from __future__ import annotations

import torch

__all__ = ["fused_rollout", "supports_fused"]


def supports_fused(model) -> bool:
    name = getattr(model, "model_name", None)
    return name in ("shplrnn", "alrnn", "plrnn") and model.n_inputs == 0


class _ShallowRollout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zhat, weights, z0, A, W1, W2, h1, h2, clipped):
        K, S1, B, M = zhat.shape
        S, L = S1 - 1, W1.shape[-1]
        W1T, W2T = W1.transpose(1, 2), W2.transpose(1, 2)
        Ab = A[:, None, :]
        h1b, h2b = h1[:, None, :], h2[:, None, :]
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
            u = torch.bmm(z, W2T)
            a = u + h2b
            torch.gt(a, 0, out=MA[t])
            r = torch.clamp_min(a, 0, out=R[t])
            if clipped:
                torch.sub(r, torch.relu(u), out=R[t])
                torch.sub(MA[t], torch.gt(u, 0).to(u.dtype), out=D[t])
            z = torch.baddbmm(torch.addcmul(h1b, Ab, z), R[t], W1T, out=Z[t])
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
        Ab, hb = A[:, None, :], h[:, None, :]
        ZF = torch.empty(K, S, B, M, dtype=zhat.dtype)
        Z = torch.empty(K, S, B, M, dtype=zhat.dtype)
        z = z0
        lin = n_linear
        for t in range(S):
            if t > 0:
                z = torch.lerp(z, zhat[:, t], weights[t])
            ZF[:, t] = z
            if lin == 0:
                p = torch.relu(z)
            elif lin == M:
                p = z
            else:
                p = torch.cat([z[..., :lin], torch.relu(z[..., lin:])], -1)
            z = torch.baddbmm(torch.addcmul(hb, Ab, z), p, WT)
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


def fused_rollout(model, zhat_tm: torch.Tensor, weights: torch.Tensor,
                  z0: torch.Tensor | None = None):
    """Forced rollout of a PLRNN-family model: ``(Z, ZF)``, the states after each step and the
    forced states before it, both ``[K, S, B, M]`` (``ZF`` carries no gradient).

    Arguments:
        zhat_tm: data-inferred latent states ``[K, S+1, B, M]`` (time-major).
        weights: forcing weights ``[S, K, 1, M]`` (entry t applies before step t; t=0 unused).
        z0: the first state ``[K, B, M]`` (default ``zhat_tm[:, 0]``); gradients flow into it
            (e.g. to a learned map from the first observation to the unobserved units).
    """
    if z0 is None:
        z0 = zhat_tm[:, 0]
    name = model.model_name
    if name == "shplrnn":
        return _ShallowRollout.apply(zhat_tm, weights, z0, model.A, model.W1, model.W2, model.h1,
                                     model.h2, bool(model.config.clipped))
    if name == "alrnn":
        return _DenseRollout.apply(zhat_tm, weights, z0, model.A, model.W, model.h,
                                   model.n_latent - model.n_pwl)
    if name == "plrnn":
        return _DenseRollout.apply(zhat_tm, weights, z0, model.A, model.W * model.offdiag,
                                   model.h, 0)
    raise ValueError(f"No fused rollout for model {name!r}.")
