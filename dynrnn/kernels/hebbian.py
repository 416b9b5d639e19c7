"""Hebbian hot loops, batched over K readouts / L layers, each with a plain-torch reference.

* :func:`three_factor_online` -- the online ("when") part of the error-modulated,
  attention-gated three-factor readout of :class:`dynrnn.training.readouts.ThreeFactorReadout`,
  for K independent readouts (networks or trials) at once::

      e_t = lam e_{t-1} + (1 - lam) r_t            (presynaptic eligibility trace)
      y_t = w . r_t                                 (prediction, before this step's update)
      w  += lr g_t (s_t - y_t) e_t / (1 + |e_t|^2)  (third factor: error s_t - y_t, gate g_t;
                                                     the normalisation only if ``normalise``)

  Backends: ``reference`` (torch loop over t, batched over K), ``cpu`` (the time loop in C,
  one readout at a time with w and e in cache; compiled on first use by :mod:`._cbuild`,
  falls back to ``reference``), ``triton`` (one program per readout, time loop in the kernel).

* :func:`oja_subspace` -- the Oja subspace rule of HLOP (Xiao et al. 2024) fused with the
  projection of the presynaptic activity, for L layers at once (rows padded to a common size)::

      Y = X H^T;  X_perp = X - Y H;  H += scale * train * (Y^T X_perp)     (n_iters times)

  ``X_perp`` of the last iteration is the activity projected out of the (current) subspace.
  Backends: ``reference``/``cpu`` (three batched matmuls per iteration: already the fastest
  CPU form) and ``triton`` (Y in one kernel; the projection and the update accumulated tile by
  tile in a second, so X_perp never goes to memory unless asked for).
"""

from __future__ import annotations

import torch

from . import _backends, _cbuild

__all__ = ["three_factor_online", "oja_subspace", "HEBBIAN_BACKENDS"]

#: the names of :data:`._backends.BACKENDS` these kernels support
HEBBIAN_BACKENDS = (_backends.AUTO, _backends.REFERENCE, _backends.C, _backends.TRITON)

_THREE_FACTOR_C = _cbuild.source("hebbian")  # csrc/hebbian.c


def _three_factor_reference(w, r, target, gate, lr, lam, normalise):
    K, T, F = r.shape
    w = w.clone()
    e = torch.zeros_like(w)
    y = torch.empty(K, T, dtype=r.dtype, device=r.device)
    for t in range(T):
        rt = r[:, t].to(w.dtype)
        e = lam * e + (1.0 - lam) * rt
        yt = (w * rt).sum(-1)
        y[:, t] = yt.to(r.dtype)
        step = lr * gate[:, t].to(w.dtype) * (target[:, t].to(w.dtype) - yt)
        if normalise:
            step = step / (1.0 + (e * e).sum(-1))
        w = w + torch.where(gate[:, t].to(w.dtype) > 0, step, 0.0)[:, None] * e
    return w, y


def _three_factor_c(w, r, target, gate, lr, lam, normalise):
    dtype = r.dtype
    if dtype not in (torch.float32, torch.float64) or r.device.type != "cpu":
        return None
    defines = {"REAL": "float" if dtype == torch.float32 else "double"}
    lib = _cbuild.load(_THREE_FACTOR_C, defines)  # IEEE (the sums are float64 already)
    if lib is None:
        return None
    K, T, F = r.shape
    w = w.to(torch.float64).contiguous().clone()
    r, target, gate = r.contiguous(), target.to(dtype).contiguous(), gate.to(dtype).contiguous()
    y = torch.empty(K, T, dtype=dtype)
    e = torch.empty(F, dtype=torch.float64)
    lib.three_factor(0, K, T, F, float(lr), float(lam), int(normalise), w.data_ptr(),
                     r.data_ptr(), target.data_ptr(), gate.data_ptr(), y.data_ptr(),
                     e.data_ptr())
    return w, y


def _check_backend(backend: str, device: torch.device) -> str:
    backend = _backends.check_backend("three_factor_online/oja_subspace", backend,
                                      HEBBIAN_BACKENDS)
    if backend == "auto":
        if device.type == "cuda":
            from .rate_rnn import triton_available

            return "triton" if triton_available() else "reference"
        return "cpu" if device.type == "cpu" else "reference"
    return backend


def three_factor_online(w, r, target, gate, *, lr, lam, normalise=True, backend="auto"):
    """Online three-factor updates of K readouts over T steps.

    Arguments:
        w: initial weights ``[K, F]`` (float64 recommended; updates are accumulated in
            float64 by the ``cpu`` backend and in ``w``'s dtype otherwise).
        r: presynaptic activity ``[K, T, F]``.
        target: observed signal ``[K, T]`` (e.g. stimulus presence); gate: ``[K, T]`` in [0, 1].
        lr: learning rate; lam: trace decay ``exp(-1/tau)`` in [0, 1); normalise: divide the
            step by ``1 + |e|^2``.
        backend: see the module docstring.

    Returns:
        ``(w [K, F] after the T steps, y [K, T] predictions before each step's update)``.
    """
    if r.dim() != 3 or w.shape != (r.shape[0], r.shape[2]):
        raise ValueError(
            f"three_factor_online needs w [K, F] and r [K, T, F]. Got {tuple(w.shape)} and "
            f"{tuple(r.shape)}."
        )
    if target.shape != r.shape[:2] or gate.shape != r.shape[:2]:
        raise ValueError(
            f"The 'target' and 'gate' parameters must have shape [K, T] = {tuple(r.shape[:2])}."
            f" Got {tuple(target.shape)} and {tuple(gate.shape)}."
        )
    if not 0.0 <= lam < 1.0:
        raise ValueError(f"The 'lam' parameter must be in the range [0, 1). Got {lam}.")
    backend = _check_backend(backend, r.device)
    with torch.no_grad():
        if backend == "cpu":
            out = _three_factor_c(w, r, target, gate, lr, lam, normalise)
            if out is not None:
                return out[0].to(w.dtype), out[1]
        if backend == "triton":
            from .hebbian_triton import three_factor_triton

            return three_factor_triton(w, r, target, gate, lr, lam, normalise)
        return _three_factor_reference(w, r, target, gate, lr, lam, normalise)


def _oja_reference(H, X, scale, train, n_iters):
    resid = X
    for _ in range(n_iters):
        Y = torch.bmm(X, H.transpose(1, 2))
        resid = X - torch.bmm(Y, H)
        H = H + scale[:, None, None] * train * torch.bmm(Y.transpose(1, 2), resid)
    return H, resid


def oja_subspace(H, X, scale, train, *, n_iters=1, return_projected=False, backend="auto"):
    """``n_iters`` Oja subspace updates of L layers' lateral weights on one batch of activity.

    Arguments:
        H: ``[L, M, n]`` lateral weights (rows padded with zeros where a layer has fewer).
        X: ``[L, R, n]`` presynaptic activity (rows / columns padded with zeros).
        scale: ``[L]`` step size per layer (learning rate / number of rows).
        train: ``[L, M, 1]`` 1 for trainable rows, 0 for frozen (and padding) rows.
        return_projected: also return ``X_perp = X - (X H^T) H`` of the last iteration.

    Returns:
        ``H`` after the updates, and ``X_perp [L, R, n]`` if ``return_projected``.
    """
    if H.dim() != 3 or X.dim() != 3 or H.shape[0] != X.shape[0] or H.shape[2] != X.shape[2]:
        raise ValueError(
            f"oja_subspace needs H [L, M, n] and X [L, R, n]. Got {tuple(H.shape)} and "
            f"{tuple(X.shape)}."
        )
    if n_iters < 1:
        raise ValueError(f"The 'n_iters' parameter must be >= 1. Got {n_iters}.")
    backend = _check_backend(backend, X.device)
    with torch.no_grad():
        if backend == "triton":
            from .hebbian_triton import oja_subspace_triton

            H, resid = oja_subspace_triton(H, X, scale, train, n_iters, return_projected)
        else:
            H, resid = _oja_reference(H, X, scale, train, n_iters)
    return (H, resid) if return_projected else H
