"""Gaussian noise streams, one per network and trial, with the same samples in C and torch.

A stream is one splitmix64 generator (Steele, G. L., Lea, D. & Flood, C. H. (2014), "Fast
splittable pseudorandom number generators", *OOPSLA 2014*): a 64-bit state ``s`` (``[K, B]``
int64 tensors hold them) whose outputs are ``mix64(s + c GAMMA)``, c = 1, 2, ... -- a hash of a
counter. They feed the 128-layer ziggurat of Marsaglia, G. & Tsang, W. W. (2000), "The ziggurat
method for generating random variables", *Journal of Statistical Software* 5(8). The N samples
of a time step are one block: sample i is the ziggurat's fast test on output i + 1 of the
stream (so the whole block is one vectorised pass), the state then moves past the block, and
the ~1.2 % of samples that fail the fast test are redone in index order with further outputs
of the stream (wedge and tail tests).

The compiled Izhikevich loop (``csrc/izhikevich.c``) draws these numbers inside its time loop;
:func:`draw_torch` is the same generator in torch (the fast pass vectorised over streams and
neurons, the rare rejected samples in Python), used where the C loop is not available, so the
noise never depends on whether a C compiler exists. The ziggurat tables are computed here once
(Python's ``math``, i.e. the C library's ``exp``/``log``/``sqrt``, in the order of Marsaglia and
Tsang's ``zigset``) and handed to the C code, so both paths use the same tables, and the
rejected samples use ``math.exp``/``math.log``, the functions the C code calls.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["noise_streams", "draw_torch", "zig_tables"]

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX_A = 0xBF58476D1CE4E5B9
_MIX_B = 0x94D049BB133111EB
_SEED_A = 0xD1B54A32D192ED03
_SEED_B = 0x8CB92BA72F3D8DD7
_R = 3.442619855899  # the ziggurat's base strip


def _s64(v: int) -> int:
    """The two's-complement int64 value of the uint64 ``v``."""
    v &= _M64
    return v - (1 << 64) if v >= 1 << 63 else v


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 ``z`` (as uint64) by ``k`` bits."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (wrapping arithmetic = uint64 arithmetic)."""
    z = (z ^ _srl(z, 30)) * _s64(_MIX_A)
    z = (z ^ _srl(z, 27)) * _s64(_MIX_B)
    return z ^ _srl(z, 31)


def _mix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX_A) & _M64
    z = ((z ^ (z >> 27)) * _MIX_B) & _M64
    return z ^ (z >> 31)


@functools.cache
def zig_tables() -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """``(KN, WN, FN)``: the 128-layer ziggurat tables of Marsaglia & Tsang (2000) for 32-bit
    signed draws, in float64 (computed in the order of their ``zigset``)."""
    kn, wn, fn = [0.0] * 128, [0.0] * 128, [0.0] * 128
    m1 = 2147483648.0
    dn = tn = _R
    vn = 9.91256303526217e-3
    q = vn / math.exp(-0.5 * dn * dn)
    kn[0], kn[1] = (dn / q) * m1, 0.0
    wn[0], wn[127] = q / m1, dn / m1
    fn[0], fn[127] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = (dn / tn) * m1
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return tuple(kn), tuple(wn), tuple(fn)


@functools.cache
def _tables_tensor() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.tensor(t, dtype=torch.float64) for t in zig_tables())


def noise_streams(seed: int, n_networks: int, batch_size: int) -> torch.Tensor:
    """Independent noise streams ``[K, B]`` (int64 states), one per network and trial, from
    ``seed``: stream ``q = k B + b`` starts at ``mix64(seed A + q B + GAMMA)`` (A, B odd 64-bit
    constants)."""
    q = torch.arange(int(n_networks) * int(batch_size), dtype=torch.int64)
    s = q * _s64(_SEED_B) + _s64((int(seed) % 2**63) * _SEED_A)
    return _mix64(s + _s64(_GAMMA)).view(int(n_networks), int(batch_size))


def _uni01_int(s: int) -> float:
    """``(mix64(s) >> 11) 2^-53``: uniform in [0, 1) with 53 random bits."""
    return (_mix64_int(s) >> 11) * 2.0**-53


def _gauss_slow(hz: int, iz: int, s: int) -> tuple[float, int]:
    """A sample whose first draw ``(hz, iz)`` failed the fast test: the ziggurat's wedge and
    tail tests (``gauss_slow`` of ``csrc/izhikevich.c``) with further outputs of the stream at
    state ``s``. Returns ``(sample, new state)``."""
    KN, WN, FN = zig_tables()
    while True:
        x = float(hz) * WN[iz]
        if abs(float(hz)) < KN[iz]:
            return x, s
        if iz == 0:  # the tail beyond R (Marsaglia 1964)
            while True:
                s = (s + _GAMMA) & _M64
                xt = -math.log(1.0 - _uni01_int(s)) / _R
                s = (s + _GAMMA) & _M64
                yt = -math.log(1.0 - _uni01_int(s))
                if not yt + yt < xt * xt:
                    return (_R + xt if hz > 0 else -_R - xt), s
        s = (s + _GAMMA) & _M64
        if FN[iz] + _uni01_int(s) * (FN[iz - 1] - FN[iz]) < math.exp(-0.5 * x * x):
            return x, s
        s = (s + _GAMMA) & _M64
        bits = _mix64_int(s)
        iz, hz = bits & 127, bits >> 32
        if hz >= 1 << 31:
            hz -= 1 << 32


def draw_torch(rng: torch.Tensor, std: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``std [K, N] * z`` as ``[K, T, B, N]`` in ``std``'s dtype, with ``z`` drawn from the
    streams ``rng [K, B]`` (advanced in place): each step is one block of ``N`` samples per
    stream, exactly the numbers of the compiled loop.

    The blocks of a stream are sequential (the rejected samples of a step move the state on by
    a data-dependent number of outputs), so this loops over the steps; each step is one
    vectorised pass over all streams and neurons plus the ~1.2 % rejected samples."""
    K, B = rng.shape
    N = std.shape[-1]
    T = int(n_steps)
    KN, WN, _ = _tables_tensor()
    out = torch.empty(K, T, B, N, dtype=std.dtype)
    ctr = torch.arange(1, N + 1, dtype=torch.int64) * _s64(_GAMMA)  # [N]
    state = [int(v) & _M64 for v in rng.reshape(-1).tolist()]
    sd = std[:, None, :]  # [K, 1, N]
    for t in range(T):
        base = torch.tensor([_s64(v) for v in state], dtype=torch.int64).view(K * B, 1)
        z = _mix64(base + ctr)  # [K B, N]
        iz = z & 127
        hz = z >> 32  # the signed top 32 bits
        hzf = hz.to(torch.float64)
        x = hzf * WN[iz]
        bad = ~(hzf.abs() < KN[iz])
        state = [(v + N * _GAMMA) & _M64 for v in state]
        rows, cols = bad.nonzero(as_tuple=True)  # row-major: index order within each stream
        if rows.numel():
            fix = []
            for q, h, j in zip(rows.tolist(), hz[bad].tolist(), iz[bad].tolist()):
                value, state[q] = _gauss_slow(h, j, state[q])
                fix.append(value)
            x[rows, cols] = torch.tensor(fix, dtype=torch.float64)
        out[:, t] = x.view(K, B, N).to(std.dtype) * sd
    rng.copy_(torch.tensor([_s64(v) for v in state], dtype=torch.int64).view(K, B))
    return out
