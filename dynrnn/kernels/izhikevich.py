"""Izhikevich reservoir time loops: the reference (the step of :mod:`dynrnn.functional`) and
fast paths with the same spikes.

The maths of one step (neuron, spike reset, synapses) is
:func:`dynrnn.functional.izhikevich.izhikevich_step` (Izhikevich 2003); every loop here runs
it, or its event-driven projection, over ``n_steps`` steps of K networks x B trials.

Backends (the names of :data:`dynrnn.kernels._backends.BACKENDS`, those of
:func:`dynrnn.models.run`; chosen by measurement, see ``benchmarks/spiking.py``):

* ``cpu``: the whole time loop in C (``csrc/izhikevich.c``, compiled on first use in about a
  second, cached, loaded with ctypes; without a compiler, or with ``DYNRNN_DISABLE_C=1``, the
  torch loop is used). It is event-driven: the recurrent current is kept projected
  (``J = W r`` or ``W x``) and updated by adding only the columns of ``W`` of the neurons that
  spiked, so a step costs O(N + spikes * N) instead of O(N^2). The Gaussian noise is drawn
  inside the loop from the splitmix64/ziggurat streams of :mod:`._noise`, so no
  ``[K, T, B, N]`` noise tensor is written and read. Networks x trials are independent, so
  each runs its own time loop with its state in cache; networks are split over torch's
  threads.
* ``cpu-torch``: a per-step torch loop with preallocated outputs (event-driven for one network
  and trial, the batched step of :mod:`dynrnn.functional` otherwise); the noise streams are
  drawn by the same generator in torch (identical samples).
* ``triton``: one fused kernel per step (:mod:`.spiking_triton`).
* ``reference``: :func:`izhikevich_reference`, the plain loop over the functional step.

The projected current differs from the dense ``W r`` only by floating-point rounding (order of
summation); spike trains are identical to the reference in float64 (tested).
"""

from __future__ import annotations

import ctypes
import warnings

import torch

from ..functional.izhikevich import (
    IZHIKEVICH_SCHEMES,
    IZHIKEVICH_SYNAPSES,
    izhikevich_membrane,
    izhikevich_step,
    izhikevich_synapse_update,
)
from . import _cbuild, _noise
from ._backends import BACKENDS, check_backend

__all__ = [
    "BACKENDS",
    "SYNAPSES",
    "SCHEMES",
    "izhikevich_step",
    "izhikevich_reference",
    "izhikevich_fast",
    "cpp_extension_available",
    "noise_streams",
    "noise_streams_draw",
]

SYNAPSES = IZHIKEVICH_SYNAPSES
SCHEMES = IZHIKEVICH_SCHEMES
noise_streams = _noise.noise_streams

_LIBS: dict = {}


def _load_extension(dtype: torch.dtype = torch.float64):
    """The compiled loop for ``dtype`` (float32/float64), or None (then the torch loop is used;
    ``_cbuild.enabled()`` decides whether C is used at all). Compiled in IEEE order
    (``_cbuild.EXACT``): spikes bit-equal to the reference in float64."""
    if dtype not in (torch.float32, torch.float64) or not _cbuild.enabled():
        return None
    if dtype not in _LIBS:
        real = "double" if dtype == torch.float64 else "float"
        lib = _cbuild.load(_cbuild.source("izhikevich"), {"REAL": real}, _cbuild.EXACT)
        if lib is not None:  # the ziggurat tables of _noise, the same for both paths
            tables = [(ctypes.c_double * 128)(*t) for t in _noise.zig_tables()]
            lib.zig_set(*tables)
        _LIBS[dtype] = lib
    return _LIBS[dtype]


def _ptr(t: torch.Tensor | None):
    return ctypes.c_void_p(t.data_ptr() if t is not None else 0)


def cpp_extension_available(dtype: torch.dtype = torch.float64) -> bool:
    """Whether the compiled C loop can be used (compiles it on first call, ~1 s)."""
    return _load_extension(dtype) is not None


def noise_streams_draw(rng: torch.Tensor, std: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``std [K, N] * z`` as ``[K, T, B, N]``, z drawn from the streams ``rng [K, B]``
    (:func:`noise_streams`) in the order (t, neuron) per stream -- exactly the numbers the
    fused loop draws (C where compiled, else the same generator in torch). Advances rng."""
    K, B = rng.shape
    N = std.shape[-1]
    std = std.contiguous()
    lib = _load_extension(std.dtype)
    if lib is None or std.device.type != "cpu":
        return _noise.draw_torch(rng, std, n_steps)
    out = torch.empty(K, int(n_steps), B, N, dtype=std.dtype)
    i64 = ctypes.c_int64
    lib.izh_noise(_ptr(rng), _ptr(std), _ptr(out), i64(K), i64(B), i64(int(n_steps)), i64(N))
    return out


def _external(p, n_steps, drive, noise, rng):
    """``ext [K, T, B, N] = (drive or bias) + noise`` (noise from the tensor or drawn from the
    per-trial streams ``rng`` with :func:`noise_streams_draw`)."""
    if drive is not None:
        ext = drive
    else:
        K, _, N = p["bias"].shape
        B = rng.shape[1] if rng is not None else (noise.shape[2] if noise is not None else None)
        if B is None:
            raise ValueError("Give 'drive', 'noise' or 'rng' so that the batch size is known.")
        ext = p["bias"][:, None].expand(K, n_steps, B, N)
    if noise is None and rng is not None:
        noise = noise_streams_draw(rng, p["noise_std"], n_steps)
    if noise is not None:
        ext = ext + noise
    return ext.contiguous()


def izhikevich_reference(
    state, p, cfg, n_steps, *, drive=None, noise=None, rng=None, record_rates=False,
    record_states=False,
):  # fmt: skip
    """The reference loop (the specification) over ``n_steps`` steps.

    Arguments:
        state: ``(v, u, r, x)``, each ``[K, B, N]``.
        p: parameters (see :func:`dynrnn.functional.izhikevich.izhikevich_step`) plus
            ``bias [K, 1, N]`` and ``noise_std [K, N]`` (per-step std).
        cfg: ``dt, scheme, synapse, v_peak, tau_rise, tau_decay``.
        drive: ``[K, T, B, N]`` input current including the bias, or None (bias only).
        noise: ``[K, T, B, N]`` noise current, or None.
        rng: ``[K, B]`` int64 noise streams (:func:`noise_streams`), used when ``noise`` is None;
            advanced in place.
        record_rates: also return the filtered rates r of every step.
        record_states: also return the whole state ``[v, u, r, x]`` of every step.

    Returns:
        ``(state, spikes [K, T, B, N] bool, rates [K, T, B, N] or None)``, and with
        ``record_states`` a fourth element, the states ``[K, T, B, 4N]``.
    """
    ext = _external(p, n_steps, drive, noise, rng)
    spikes, rates, hist = [], [], []
    for t in range(n_steps):
        state, spk = izhikevich_step(state, ext[:, t], p, cfg)
        spikes.append(spk)
        if record_rates:
            rates.append(state[2])
        if record_states:
            hist.append(torch.cat(state, -1))
    out = (
        state,
        torch.stack(spikes, 1),
        torch.stack(rates, 1) if record_rates else None,
    )
    return (*out, torch.stack(hist, 1)) if record_states else out


def _cpp_loop(lib, state, p, cfg, n_steps, drive, noise, rng, record_rates, record_states):
    v, u, r, x = (s.contiguous().clone() for s in state)
    K, B, N = v.shape
    a, b, c, d, bias = (p[k].reshape(K, N).contiguous() for k in ("a", "b", "c", "d", "bias"))
    WT = p["W_T"].contiguous()
    Wout = eta = None
    O = 0
    if p.get("eta_T") is not None:
        Wout = p["W_out_T"].transpose(1, 2).contiguous()  # [K, O, N]
        eta = p["eta_T"].transpose(1, 2).contiguous()  # [K, N, O]
        O = Wout.shape[1]
    if drive is not None:
        drive = drive.expand(K, n_steps, B, N).contiguous()
    if noise is not None:
        noise = noise.contiguous()
    std = p["noise_std"].contiguous() if (rng is not None and noise is None) else None
    rng_t = rng if std is not None else None
    spikes = torch.empty(K, n_steps, B, N, dtype=torch.bool)
    rates = torch.empty(K, n_steps, B, N, dtype=v.dtype) if record_rates else None
    hist = torch.empty(K, n_steps, B, 4 * N, dtype=v.dtype) if record_states else None
    i64 = ctypes.c_int64
    per_net = [v, u, r, x, bias, drive, noise, std, rng_t, a, b, c, d, WT, Wout, eta, spikes,
               rates, hist]  # every one has the network dim K first

    def call(k0, k1):
        lib.izh_loop(
            *[_ptr(t[k0:k1] if t is not None else None) for t in per_net],
            i64(k1 - k0), i64(B), i64(int(n_steps)), i64(N), i64(O),
            ctypes.c_int(SYNAPSES.index(cfg["synapse"])),
            ctypes.c_int(1 if cfg["scheme"] == "half_step" else 0),
            ctypes.c_double(cfg["dt"]), ctypes.c_double(cfg["v_peak"]),
            ctypes.c_double(cfg["tau_rise"]), ctypes.c_double(cfg["tau_decay"]),
        )  # fmt: skip

    # independent networks run on torch's thread count (ctypes releases the GIL)
    _cbuild.parallel_ranges(call, K)
    out = (v, u, r, x), spikes, rates
    return (*out, hist) if record_states else out


def _torch_loop(state, p, cfg, n_steps, drive, noise, rng, record_rates, record_states):
    """Per-step torch loop with preallocated outputs; event-driven for K = B = 1."""
    ext = _external(p, n_steps, drive, noise, rng)
    v, u, r, x = (s.clone() for s in state)
    K, T, B, N = ext.shape
    spikes = torch.empty(K, T, B, N, dtype=torch.bool, device=ext.device)
    rates = torch.empty(K, T, B, N, dtype=v.dtype, device=ext.device) if record_rates else None
    hist = (torch.empty(K, T, B, 4 * N, dtype=v.dtype, device=ext.device)
            if record_states else None)  # fmt: skip

    def done(final):
        return (final, spikes, rates, hist) if record_states else (final, spikes, rates)

    if K * B != 1 or p.get("eta_T") is not None:
        for t in range(T):
            (v, u, r, x), spk = izhikevich_step((v, u, r, x), ext[:, t], p, cfg)
            spikes[:, t] = spk
            if record_rates:
                rates[:, t] = r
            if record_states:
                hist[:, t] = torch.cat((v, u, r, x), -1)
        return done((v, u, r, x))
    # one network, one trial: keep the projected currents Jr = W r and Jx = W x; the synapse
    # update is linear, so they follow the same update with the spikes replaced by the sum of
    # the spiking neurons' columns of W
    WT = p["W_T"][0]
    a, b, c, d = (p[k].reshape(N) for k in ("a", "b", "c", "d"))
    dt, syn = cfg["dt"], cfg["synapse"]
    taus = (cfg["tau_rise"], cfg["tau_decay"])
    v, u, r, x = v.reshape(N), u.reshape(N), r.reshape(N), x.reshape(N)
    Jr, Jx = r @ WT, x @ WT
    e = ext[0, :, 0]
    for t in range(T):
        v, u = izhikevich_membrane(v, u, e[t] + (Jx if syn == "delta" else Jr), a, b, dt,
                                   cfg["scheme"])
        spk = v >= cfg["v_peak"]
        idx = spk.nonzero().view(-1)
        if idx.numel():
            v[idx] = c[idx]
            u[idx] += d[idx]
        spikes[0, t, 0] = spk
        r, x = izhikevich_synapse_update(r, x, spk.to(v.dtype), syn, dt, *taus)
        Jr, Jx = izhikevich_synapse_update(Jr, Jx, WT.index_select(0, idx).sum(0), syn, dt,
                                           *taus)
        if record_rates:
            rates[0, t, 0] = r
        if record_states:
            hist[0, t, 0] = torch.cat((v, u, r, x), -1)
    shape = (1, 1, N)
    return done((v.view(shape), u.view(shape), r.view(shape), x.view(shape)))


def izhikevich_fast(
    state, p, cfg, n_steps, *, drive=None, noise=None, rng=None, record_rates=False,
    record_states=False, backend="auto",
):  # fmt: skip
    """Fast loop with the signature of :func:`izhikevich_reference` and identical spikes.

    ``backend``: one of :data:`BACKENDS`: ``"auto"`` (``cpu`` if the C loop compiles, else
    ``cpu-torch``; ``triton`` for CUDA tensors), ``"cpu"`` (falls back to ``cpu-torch`` with a
    warning where no compiler works), ``"cpu-torch"``, ``"triton"`` or ``"reference"``. With
    ``rng`` the C loop draws the noise inside the time loop (no ``[K, T, B, N]`` tensor); the
    other loops draw the same numbers. ``record_states`` adds
    the states ``[K, T, B, 4N]`` of every step as a fourth element (for :func:`dynrnn.run`).
    """
    backend = check_backend("izhikevich_fast", backend)
    dtype = state[0].dtype
    if backend == "auto":
        backend = "triton" if state[0].device.type == "cuda" else "cpu"
        if backend == "cpu" and _load_extension(dtype) is None:
            backend = "cpu-torch"
    kw = {"drive": drive, "noise": noise, "rng": rng, "record_rates": record_rates,
          "record_states": record_states}
    with torch.no_grad():
        if backend == "reference":
            return izhikevich_reference(state, p, cfg, n_steps, **kw)
        if backend == "triton":
            from .spiking_triton import izhikevich_triton

            return izhikevich_triton(state, p, cfg, n_steps, **kw)
        lib = _load_extension(dtype) if backend == "cpu" else None
        if backend == "cpu" and lib is None:
            warnings.warn(
                f"izhikevich_fast: the compiled loop is not available for {dtype} (no working "
                "C compiler, or DYNRNN_DISABLE_C=1); using backend='cpu-torch'.",
                RuntimeWarning, stacklevel=2,
            )
        if lib is not None:
            return _cpp_loop(lib, state, p, cfg, n_steps, drive, noise, rng, record_rates,
                             record_states)
        return _torch_loop(state, p, cfg, n_steps, drive, noise, rng, record_rates,
                           record_states)
