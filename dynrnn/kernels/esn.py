"""Echo-state reservoir loop: K leaky tanh reservoirs with sparse weights, compiled C.

Map (Jaeger, H. (2001). The "echo state" approach to analysing and training recurrent neural
networks. GMD Report 148; leaky form of Jaeger, H., Lukosevicius, M., Popovici, D. & Siewert, U.
(2007). Optimization and applications of echo state networks with leaky-integrator neurons.
*Neural Networks* 20(3), 335-352)::

    h_t = h_{t-1} + leak (tanh(W h_{t-1} + W_in x_t + bias + noise_t) - h_{t-1})

The reference is the model's step (:class:`dynrnn.models.EchoStateNetwork`, run by
:func:`dynrnn.models.run` with ``backend="reference"``). The C loop (``csrc/esn.c``:
vectorised ``tanh`` from libmvec, fused multiply-adds, sums in a fixed order) has two modes,
chosen per call from the batch's shape (the plan and its measured costs are written out in
``csrc/esn.c``):

* **gather mode**, one trial at a time: ``W`` in SELL-C-sigma (:mod:`._sparse`), one vector
  gather per C nonzeros (C = 8 float64 / 16 float32 rows side by side), bound by the gathers;
* **lane mode**, C trajectories stepped together: their states interleaved, so that a CSR
  product reads one contiguous 64-byte vector per nonzero instead of gathering (per step 3.1x
  the time of one gather-mode step for 8 float64 lanes, 4.2x for 16 float32). Used for groups
  of trials, and for one long trial cut into **time chunks**: chunk c starts ``192 / leak``
  steps early from ``h0`` and, by the echo-state property (Jaeger 2001: the state forgets its
  start), reaches the exact trajectory before it writes; each chunk's state where it starts
  writing is compared with its predecessor's, and a chunk that does not agree to 64 ulp is
  recomputed step by step from the exact state. So the result is the step-by-step recursion to
  rounding for any reservoir (``time_chunks=False`` turns chunking off; ``stats`` reports the
  chunks and the recomputed steps). Measured (1 trial, 20,000 steps, leak 0.3, spectral
  radius 0.9, 1 thread, Intel Xeon with AVX-512): 1.4-3.3x faster than step by step in
  float64 (8 chunks), 1.5-3.7x in float32 (15 chunks), over 300-3000 units and 2-20% density;
  no chunk needed recomputing.

A trajectory's states are bitwise the same in either mode. The loop splits each step's rows over
torch's threads (spin-then-yield barrier per step; row boundaries on multiples of 64, so that
results are bitwise independent of the thread count; one thread below 256 units). Whether the
threads are used is measured during the run itself: steps run in segments of a few milliseconds,
one segment on one thread and the next threaded, and the faster is kept, measured again every 16
segments; a threaded segment that falls 1.5x behind one thread ends after its current step
(``benchmarks/busy.py``, 1000 units beside one CPU-bound process on 2 cores: 2 threads 4.2x
slower than 1 before, 1.04x after).
It agrees with the reference to rounding.
"""

from __future__ import annotations

import ctypes

import torch

from .._validation import check_float, check_shape, check_tensor
from . import _cbuild
from ._sparse import csr_and_sell_c_sigma
from ._threads import barrier_threads
from ._workspace import POOL

__all__ = ["esn_fast", "esn_loop", "esn_available"]

_LIBS: dict = {}


def _load_extension(dtype: torch.dtype):
    if dtype not in (torch.float32, torch.float64) or not _cbuild.enabled():
        return None
    if dtype not in _LIBS:
        real = "double" if dtype == torch.float64 else "float"
        defines = {"REAL": real, "TANH": "tanh" if real == "double" else "tanhf"}
        _LIBS[dtype] = _cbuild.load(_cbuild.source("esn"), defines, _cbuild.FAST_MATH)
    return _LIBS[dtype]


def esn_available(dtype: torch.dtype = torch.float64) -> bool:
    """Whether the compiled echo-state loop can be used for ``dtype`` (compiles it once)."""
    return _load_extension(dtype) is not None


def _ptr(t: torch.Tensor | None):
    return ctypes.c_void_p(t.data_ptr() if t is not None else 0)


def _threads(n_units: int) -> int:
    """Threads for one reservoir's rows: torch's thread count, but one below 256 units (a step
    is then shorter than the barrier between steps), and one where threads do not get their
    cores promptly (:func:`dynrnn.kernels._threads.barrier_threads`: the threads meet at a
    barrier every step, so a thread that shares its core with another process stalls every
    step). The rows' arithmetic does not depend on the split: the same states for any thread
    count."""
    return 1 if n_units < 256 else barrier_threads(torch.get_num_threads())


def esn_loop(h0, x, W_in, bias, W, leak, noise=None, *, time_chunks=True, stats=None):
    """The compiled loop for K networks (shapes as the model holds them, checked by the caller).

    Arguments:
        h0: ``[K, B, N]``; x: ``[K or 1, T, B, I]``; W_in: ``[K, N, I]``; bias: ``[K, N]``;
        W: ``[K, N, N]`` (dense; converted to SELL-C-sigma and CSR here); leak: ``[K]``;
        noise: ``[K, T, B, N]`` or None.
        time_chunks: allow one long trial to be cut into time chunks that run together (each
            checked against its predecessor and recomputed where it does not match; see the
            module docstring). False: every trial step by step from its start.
        stats: a dict, or None; given, it receives ``"time_chunks"`` (a list: per network,
            the chunks each trial was cut into; 1 = none) and ``"repaired_steps"`` (a list:
            per network, the steps the chunks' checks recomputed, over all trials).

    Returns:
        states ``[K, T, B, N]``, or None if the compiled loop is unavailable.
    """
    dtype = h0.dtype
    lib = _load_extension(dtype)
    if lib is None:
        return None
    with torch.no_grad():
        rowptr, (csr_off, csr_cols, csr_vals), (sptr, cols, vals, perm) = csr_and_sell_c_sigma(
            W, dtype)
        h = h0.contiguous().clone()
        x = x.to(dtype).contiguous()
        W_in, bias = W_in.to(dtype).contiguous(), bias.to(dtype).contiguous()
        leak = torch.as_tensor(leak, dtype=torch.float64).reshape(-1).contiguous()
        if noise is not None:
            noise = noise.to(dtype).contiguous()
        K, B, N = h.shape
        T, I = x.shape[1], x.shape[3]
        x_stride = T * B * I if x.shape[0] > 1 else 0
        states = POOL.empty((K, T, B, N), dtype)  # no page faults on a reused 400 MB buffer
        i64 = ctypes.c_int64
        info = torch.zeros(K, 2, dtype=torch.int64)
        lib.esn_loop(
            _ptr(h), _ptr(x), i64(x_stride), _ptr(W_in), _ptr(bias), _ptr(noise), _ptr(rowptr),
            _ptr(sptr), _ptr(cols), _ptr(vals), _ptr(perm), _ptr(csr_cols), _ptr(csr_vals),
            _ptr(csr_off), _ptr(leak), i64(K), i64(B), i64(T), i64(N), i64(I), _ptr(states),
            i64(_threads(N)), i64(bool(time_chunks)), _ptr(info),
        )  # fmt: skip
        if stats is not None:
            stats["time_chunks"] = info[:, 0].tolist()
            stats["repaired_steps"] = info[:, 1].tolist()
        return states


def _check_esn_args(h0, x, W_in, bias, W, leak, noise) -> None:
    owner = "esn_fast"
    for name, t in (("h0", h0), ("x", x), ("W_in", W_in), ("bias", bias), ("W", W),
                    ("noise", noise)):
        if t is not None:
            check_tensor(owner, name, t)
    check_shape(owner, "h0", h0, [("B", "N")])
    B, N = h0.shape
    check_shape(owner, "x", x, [("T", "B", "I0")], "h0", B=B)
    T, _, I = x.shape
    check_shape(owner, "W", W, [("N", "N")], "h0", N=N)
    check_shape(owner, "W_in", W_in, [("N", "I")], "h0' and 'x", N=N, I=I)
    check_shape(owner, "bias", bias, [("N",)], "h0", N=N)
    if noise is not None:
        check_shape(owner, "noise", noise, [("T", "B", "N")], "h0' and 'x", T=T, B=B, N=N)
    check_float(owner, "leak", leak, 0.0, 1.0, low_inclusive=False)


def esn_fast(h0, x, W_in, bias, W, leak, noise=None):
    """Leaky tanh reservoir ``h <- h + leak (tanh(W h + W_in x_t + bias + noise_t) - h)`` for
    one network (compiled C, ``W`` read in SELL-C-sigma) over ``x [T, B, I]`` (``noise
    [T, B, N]`` or None); returns states ``[T, B, N]``, or None if the compiled loop is
    unavailable. :func:`esn_loop` is the same for K networks.

    Shapes: ``h0 [B, N]``, ``W_in [N, I]``, ``bias [N]``, ``W [N, N]`` (dense), with
    ``T, B >= 1``; the C loop reads raw memory, so every shape is checked first (ValueError /
    TypeError naming the argument)."""
    _check_esn_args(h0, x, W_in, bias, W, leak, noise)
    dtype = h0.dtype
    S = esn_loop(h0[None], x[None].to(dtype), W_in[None], bias[None], W[None].to(dtype),
                 [float(leak)], None if noise is None else noise[None])
    return None if S is None else S[0]
