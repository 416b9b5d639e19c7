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

The reference (specification) is :func:`rate_rnn_reference`, the plain autograd loop over the
model's equations (:func:`dynrnn.functional.rate.rate_step`, the function ``RateRNN`` steps
with); tests compare the two on random inputs (values and gradients) and with ``gradcheck``.
"""

from __future__ import annotations

import torch

from .._validation import ParameterTypeError, check_choice, check_shape
from ..functional.nonlin import NONLINEARITIES, dphi, phi
from ..functional.rate import LEAK_FORMS, leak_mix, rate_cell, rate_step
from . import _backends, _cbuild
from . import _rate_rnn_c as _C
from ._workspace import POOL

__all__ = ["BACKENDS", "rate_rnn", "rate_rnn_reference", "triton_available"]


def _drive(x_t, W_in_T, b):
    # x_t [Kx, B, I] (Kx = 1 or K), W_in_T [K, I, N], b [K, 1, N] -> [K, B, N]
    if x_t.shape[0] == 1 and W_in_T.shape[0] > 1:
        return torch.matmul(x_t, W_in_T) + b
    return torch.baddbmm(b, x_t, W_in_T)


def rate_rnn_reference(x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form):
    """Plain autograd loop of :func:`dynrnn.functional.rate.rate_step` (the model's step):
    ``x [Kx, T, B, I]`` -> ``(H [K, T, B, N], Y [K, T, B, O])``, arguments as in
    :func:`rate_rnn`."""
    W_in_T, W_out_T = W_in.transpose(1, 2), W_out.transpose(1, 2)
    b3, bo3 = b[:, None, :], b_out[:, None, :]
    h, hs, ys = h0, [], []
    for t in range(x.shape[1]):
        d = _drive(x[:, t], W_in_T, b3)
        h = rate_step(h, d, W_T, alpha, nonlinearity, leak_form,
                      None if noise is None else noise[:, t])
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
                    h_new.copy_(rate_cell(ZH[:, t, :, :N], a, alpha, nonlinearity, leak_form))
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
                gu = g * dphi(name, leak_mix(h_prev, a, alpha))
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


def _parallel_over_networks(fn, K: int, chunk_args) -> None:
    """Call ``fn(k0, k1, *chunk_args(i))`` on contiguous chunks ``i`` of the K networks, one per
    torch thread (:func:`._cbuild.parallel_ranges`)."""
    _cbuild.parallel_ranges(fn, K, chunk_args)


def _padded_units(n_units: int, dtype: torch.dtype) -> int:
    """N rounded up to whole 64-byte vectors (see :mod:`._rate_rnn_c`)."""
    vw = 64 // (4 if dtype == torch.float32 else 8)
    return -(-n_units // vw) * vw


def _c_library(dtype: torch.dtype, nonlinearity: str, leak_form: str | None, n_units: int):
    """The compiled C kernel for this variant, or None (no compiler / disabled / dtype)."""
    if dtype not in (torch.float32, torch.float64):
        return None
    defines = {
        "REAL": "float" if dtype == torch.float32 else "double",
        "NL": _C.NL_CODES[nonlinearity],
        "LEAK": _C.LEAK_CODES[leak_form],
        "N": n_units,
        "NP": _padded_units(n_units, dtype),
        "VW": 64 // (4 if dtype == torch.float32 else 8),
    }
    if dtype == torch.float32:
        defines["REAL_IS_FLOAT"] = None
    # IEEE by default; libmvec tanh/exp and reassociation only under DYNRNN_FAST_MATH=1
    return _cbuild.load(_C.SOURCE, defines, _cbuild.FAST_MATH)


def _p(t: torch.Tensor | None):
    return None if t is None else t.data_ptr()


def _pad_last(t: torch.Tensor, size: int) -> torch.Tensor:
    """``t`` zero-padded along its last dim to ``size``, contiguous."""
    out = t.new_zeros(*t.shape[:-1], size)
    out[..., : t.shape[-1]] = t
    return out


def _n_threads(K: int) -> int:
    return max(1, min(torch.get_num_threads(), K))


class _CRateRNN(torch.autograd.Function):
    """The same maths as :class:`_FusedRateRNN`, one network at a time in C (see
    :mod:`._rate_rnn_c`): weights and the B current states stay in cache for the whole loop."""

    @staticmethod
    def forward(ctx, x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form,
                lib):
        K, B, N = h0.shape
        Kx, T, _, I = x.shape
        O = W_out.shape[1]
        dt = h0.dtype
        NP = _padded_units(N, dt)
        x, h0 = x.contiguous(), h0.contiguous()
        W_in_T = _pad_last(W_in.transpose(1, 2), NP)
        b = _pad_last(b, NP)
        W_T_pad = _pad_last(W_T, NP)
        W_out, b_out = W_out.contiguous(), b_out.contiguous()
        al = alpha.reshape(K, N).contiguous() if alpha is not None else None
        noise = noise.contiguous() if noise is not None else None
        H = POOL.empty((K, T, B, N), dt)
        Y = POOL.empty((K, T, B, O), dt)
        need_A = not (alpha is None and nonlinearity == "tanh")
        A = POOL.empty((K, T, B, N), dt) if need_A else None
        work = torch.empty(_n_threads(K), 2 * 4 * NP, dtype=dt)
        dims = (T, B, I, O, int(Kx > 1))
        ptrs = [_p(t) for t in (x, h0, W_in_T, b, W_T_pad, al, W_out, b_out, noise, H, Y, A)]
        _parallel_over_networks(lib.rate_fwd, K, lambda i: (*dims, *ptrs, work[i].data_ptr()))
        ctx.save_for_backward(x, h0, W_in_T, W_T, al, W_out, H, A)
        ctx.info = (lib, Kx, alpha is not None)
        ctx.set_materialize_grads(False)
        return H, Y

    @staticmethod
    def backward(ctx, gH, gY):
        x, h0, W_in_T, W_T, al, W_out, H, A = ctx.saved_tensors
        lib, Kx, has_alpha = ctx.info
        need = ctx.needs_input_grad
        K, T, B, N = H.shape
        I, O = x.shape[-1], W_out.shape[1]
        dt = H.dtype
        NP = W_in_T.shape[-1]
        W_pad = _pad_last(W_T.transpose(1, 2), NP)
        gH = gH.contiguous() if gH is not None else None
        gY = gY.contiguous() if gY is not None else None
        g_h0 = torch.empty(K, B, N, dtype=dt)
        g_W_in_T = torch.zeros(K, I, NP, dtype=dt)
        g_b = torch.zeros(K, NP, dtype=dt)
        g_W_T = torch.zeros(K, N, NP, dtype=dt)
        g_alpha = torch.zeros(K, N, dtype=dt) if has_alpha else None
        g_W_out = torch.zeros(K, O, N, dtype=dt)
        g_b_out = torch.zeros(K, O, dtype=dt)
        g_x = torch.empty(K, T, B, I, dtype=dt) if need[0] else None
        g_noise = torch.empty(K, T, B, N, dtype=dt) if need[8] else None
        work = torch.empty(_n_threads(K), 2 * B * NP, dtype=dt)
        dims = (T, B, I, O, int(Kx > 1))
        ptrs = [_p(t) for t in (x, h0, W_in_T, W_pad, al, W_out, H, A, gH, gY, g_h0, g_W_in_T,
                                g_b, g_W_T, g_alpha, g_W_out, g_b_out, g_x, g_noise)]
        _parallel_over_networks(lib.rate_bwd, K, lambda i: (*dims, *ptrs, work[i].data_ptr()))
        if g_x is not None and Kx == 1 and K > 1:
            g_x = g_x.sum(0, keepdim=True)
        return (
            g_x,
            g_h0,
            g_W_in_T[..., :N].transpose(1, 2),
            g_b[:, :N],
            g_W_T[..., :N],
            g_alpha.reshape(K, 1, N) if g_alpha is not None else None,
            g_W_out,
            g_b_out,
            g_noise,
            None,
            None,
            None,
        )


#: the backends of :func:`rate_rnn`: all of :data:`._backends.BACKENDS`
BACKENDS = _backends.BACKENDS


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_rate_rnn(x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form):
    from .rate_rnn_triton import recurrence

    drive = torch.matmul(x, W_in.transpose(1, 2)[:, None]) + b[:, None, None, :]
    if noise is not None:
        drive = drive + noise
    H = recurrence(drive, h0, W_T, alpha, nonlinearity, leak_form)
    Y = torch.matmul(H, W_out.transpose(1, 2)[:, None]) + b_out[:, None, None, :]
    return H, Y


def _check_args(x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form):
    """Every shape of :func:`rate_rnn` (the C and Triton kernels read raw memory)."""
    owner = "rate_rnn"
    for name, t in (("x", x), ("h0", h0), ("W_in", W_in), ("b", b), ("W_T", W_T),
                    ("alpha", alpha), ("W_out", W_out), ("b_out", b_out), ("noise", noise)):
        if t is not None and not (torch.is_tensor(t) and t.is_floating_point()):
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be a floating tensor. Got "
                f"{t.dtype if torch.is_tensor(t) else type(t).__name__} instead."
            )
    check_choice(owner, "nonlinearity", nonlinearity, NONLINEARITIES)
    check_choice(owner, "leak_form", leak_form, LEAK_FORMS)
    check_shape(owner, "h0", h0, [("K", "B", "N")])
    K, B, N = h0.shape
    check_shape(owner, "x", x, [("K|1", "T", "B", "I0")], "h0", K=K, B=B)
    T, I = x.shape[1], x.shape[3]
    sizes = dict(K=K, B=B, N=N, I=I, T=T)
    check_shape(owner, "W_in", W_in, [("K", "N", "I")], "h0' and 'x", **sizes)
    check_shape(owner, "b", b, [("K", "N")], "h0", **sizes)
    check_shape(owner, "W_T", W_T, [("K", "N", "N")], "h0", **sizes)
    check_shape(owner, "W_out", W_out, [("K", "O0", "N")], "h0", **sizes)
    check_shape(owner, "b_out", b_out, [("K", "O")], "W_out", O=W_out.shape[1], K=K)
    if alpha is not None:
        check_shape(owner, "alpha", alpha, [("K", 1, "N"), ("K", "B", "N")], "h0", **sizes)
    if noise is not None:
        check_shape(owner, "noise", noise, [("K", "T", "B", "N")], "h0' and 'x", **sizes)
    for name, t in (("x", x), ("W_in", W_in), ("b", b), ("W_T", W_T), ("alpha", alpha),
                    ("W_out", W_out), ("b_out", b_out), ("noise", noise)):
        if t is not None and t.dtype != h0.dtype:
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must have the dtype of 'h0' ({h0.dtype}). "
                f"Got {t.dtype} instead."
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
    backend="auto",
):
    """Run K rate RNNs with their readouts.

    Arguments:
        x: inputs ``[Kx, T, B, I]`` (time-major per network; ``Kx`` is 1 or K).
        h0: ``[K, B, N]`` initial states.
        W_in, b, W_T, alpha, W_out, b_out: ``[K, N, I]``, ``[K, N]``, ``[K, N, N]``
            (transposed recurrent weights), ``[K, 1, N]`` or None, ``[K, O, N]``, ``[K, O]``.
        noise: ``[K, T, B, N]`` added to the pre-activation, or None.
        nonlinearity, leak_form: as in :class:`~dynrnn.models.RateRNNConfig`.
        backend: ``"auto"`` (``"triton"`` for CUDA tensors where triton is installed, else
            ``"cpu"`` on the CPU and ``"cpu-torch"`` elsewhere); ``"cpu"`` (the fastest exact
            CPU path: the C kernel of :mod:`._rate_rnn_c` where a C compiler works, else
            ``"cpu-torch"``); ``"cpu-torch"`` (the fused torch loop, :class:`_FusedRateRNN`,
            any device); ``"triton"`` (:mod:`.rate_rnn_triton`; on the CPU only through
            ``TRITON_INTERPRET=1``); ``"reference"`` (the autograd loop, the specification).

    Returns:
        ``(H [K, T, B, N], Y [K, T, B, O])``.
    """
    backend = _backends.check_backend("rate_rnn", backend, BACKENDS)
    _check_args(x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form)
    if backend == "auto":
        if h0.device.type == "cuda":
            backend = "triton" if triton_available() else "cpu-torch"
        else:
            backend = "cpu" if h0.device.type == "cpu" else "cpu-torch"
    if backend == "triton":
        if not triton_available():
            raise ValueError("backend='triton' needs the triton package (pip install triton).")
        return _triton_rate_rnn(
            x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form
        )
    if backend == "reference":
        return rate_rnn_reference(
            x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form
        )
    if backend == "cpu":
        tensors = [t for t in (x, h0, W_in, b, W_T, alpha, W_out, b_out, noise) if t is not None]
        uniform = all(t.device.type == "cpu" and t.dtype == h0.dtype for t in tensors)
        alpha_ok = alpha is None or tuple(alpha.shape) == (h0.shape[0], 1, h0.shape[2])
        leak = leak_form if alpha is not None else None
        lib = None
        if uniform and alpha_ok:
            lib = _c_library(h0.dtype, nonlinearity, leak, h0.shape[2])
        if lib is not None:
            return _CRateRNN.apply(
                x, h0, W_in, b, W_T, alpha, W_out, b_out, noise, nonlinearity, leak_form, lib
            )
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
