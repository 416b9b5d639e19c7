"""Triton (GPU) backend of the Izhikevich reservoir loop: one fused kernel per time step.

Each program owns a tile of (network k, a block of trials, a block of neurons) and does, for
that tile, everything of one step of :func:`dynrnn.functional.izhikevich.izhikevich_step`: the
synaptic propagation ``I_syn = s W^T`` (``tl.dot`` over the presynaptic axis, with ``s`` the
previous spikes for ``delta`` synapses and the filtered rates otherwise), the external and
feedback currents, the membrane update (``half_step`` or ``euler``), spike detection and reset,
and the synaptic filters. State is double-buffered (read step t, write step t + 1), so tiles
never race. Readout feedback ``eta W_out r`` is a small batched matmul added to the external
current in torch before the step.

Same signature and results as :func:`~dynrnn.kernels.izhikevich.izhikevich_reference` (spikes
identical in float64 up to the summation order of ``I_syn``). Without a GPU it runs in Triton's
interpreter (``TRITON_INTERPRET=1``; tests use small sizes).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .izhikevich import _external

__all__ = ["izhikevich_triton"]

_SYN = {"delta": 0, "exp": 1, "double_exp": 2}
_SCHEME = {"half_step": 0, "euler": 1}


@triton.jit
def _izh_step_kernel(
    v_ptr, u_ptr, r_ptr, x_ptr,  # state at t, [K, B, N]
    vo_ptr, uo_ptr, ro_ptr, xo_ptr,  # state at t + 1
    spk_ptr,  # [K, B, N] spikes of this step (0/1, state dtype)
    ext_ptr,  # [K, B, N] external current of this step (drive + noise + feedback)
    wt_ptr,  # [K, N, N] transposed recurrent weights: I_syn = s @ W_T
    a_ptr, b_ptr, c_ptr, d_ptr,  # [K, N]
    B, N, dt, v_peak, ed, er, tau_d, tau_r,
    SYN: tl.constexpr, SCHEME: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr,
):
    k = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
    mb, mn = rows < B, cols < N
    m2 = mb[:, None] & mn[None, :]
    base = k * B * N
    tile = base + rows[:, None] * N + cols[None, :]
    # recurrent current of this tile from all presynaptic neurons
    if SYN == 0:
        src_ptr = x_ptr
    else:
        src_ptr = r_ptr
    cur = tl.load(ext_ptr + tile, mask=m2, other=0.0)
    for j0 in range(0, N, BLOCK_J):
        js = j0 + tl.arange(0, BLOCK_J)
        mj = js < N
        s = tl.load(src_ptr + base + rows[:, None] * N + js[None, :],
                    mask=mb[:, None] & mj[None, :], other=0.0)
        w = tl.load(wt_ptr + k * N * N + js[:, None] * N + cols[None, :],
                    mask=mj[:, None] & mn[None, :], other=0.0)
        cur += tl.dot(s, w, input_precision="ieee")
    v = tl.load(v_ptr + tile, mask=m2, other=0.0)
    u = tl.load(u_ptr + tile, mask=m2, other=0.0)
    r = tl.load(r_ptr + tile, mask=m2, other=0.0)
    x = tl.load(x_ptr + tile, mask=m2, other=0.0)
    pa = tl.load(a_ptr + k * N + cols, mask=mn, other=0.0)[None, :]
    pb = tl.load(b_ptr + k * N + cols, mask=mn, other=0.0)[None, :]
    pc = tl.load(c_ptr + k * N + cols, mask=mn, other=0.0)[None, :]
    pd = tl.load(d_ptr + k * N + cols, mask=mn, other=0.0)[None, :]
    if SCHEME == 0:  # Izhikevich (2003): v in two half steps, then u with the new v
        h = 0.5 * dt
        v = v + h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        v = v + h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        u = u + dt * (pa * (pb * v - u))
    else:  # Euler from the old state
        dv = dt * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        u = u + dt * (pa * (pb * v - u))
        v = v + dv
    spike = v >= v_peak
    s = tl.where(spike, 1.0, 0.0)
    v = tl.where(spike, pc, v)
    u = tl.where(spike, u + pd, u)
    if SYN == 0:
        r = ed * r + s / tau_d
        x = s
    elif SYN == 1:
        r = ed * r + s / tau_d
    else:
        r = ed * r + dt * x
        x = er * x + s / (tau_r * tau_d)
    tl.store(vo_ptr + tile, v, mask=m2)
    tl.store(uo_ptr + tile, u, mask=m2)
    tl.store(ro_ptr + tile, r, mask=m2)
    tl.store(xo_ptr + tile, x, mask=m2)
    tl.store(spk_ptr + tile, s, mask=m2)


def izhikevich_triton(
    state, p, cfg, n_steps, *, drive=None, noise=None, rng=None, record_rates=False,
    record_states=False,
):  # fmt: skip
    """The loop of :func:`~dynrnn.kernels.izhikevich.izhikevich_reference` with one fused Triton
    kernel per step. Returns ``(state, spikes [K, T, B, N] bool, rates or None)`` and, with
    ``record_states``, the states ``[K, T, B, 4N]`` of every step."""
    ext = _external(p, n_steps, drive, noise, rng)  # [K, T, B, N]
    K, T, B, N = ext.shape
    dtype = ext.dtype
    cur = [t.contiguous().clone() for t in state]
    nxt = [torch.empty_like(t) for t in cur]
    wt = p["W_T"].contiguous()
    prm = [p[n].reshape(K, N).to(dtype).contiguous() for n in ("a", "b", "c", "d")]
    spikes = torch.empty(K, T, B, N, dtype=torch.bool, device=ext.device)
    spk = torch.empty(K, B, N, dtype=dtype, device=ext.device)
    rates = torch.empty(K, T, B, N, dtype=dtype, device=ext.device) if record_rates else None
    hist = (torch.empty(K, T, B, 4 * N, dtype=dtype, device=ext.device)
            if record_states else None)  # fmt: skip
    dt, td, tr = float(cfg["dt"]), float(cfg["tau_decay"]), float(cfg["tau_rise"])
    ed, er = math.exp(-dt / td), math.exp(-dt / tr)
    block_b = max(16, min(32, triton.next_power_of_2(B)))
    block_n = max(16, min(64, triton.next_power_of_2(N)))
    block_j = max(16, min(64, triton.next_power_of_2(N)))
    grid = (K, triton.cdiv(B, block_b), triton.cdiv(N, block_n))
    feedback = p.get("eta_T") is not None
    for t in range(T):
        e = ext[:, t]
        if feedback:
            e = e + torch.bmm(torch.bmm(cur[2], p["W_out_T"]), p["eta_T"])
        _izh_step_kernel[grid](
            *cur, *nxt, spk, e.contiguous(), wt, *prm,
            B, N, dt, float(cfg["v_peak"]), ed, er, td, tr,
            SYN=_SYN[cfg["synapse"]], SCHEME=_SCHEME[cfg["scheme"]],
            BLOCK_B=block_b, BLOCK_N=block_n, BLOCK_J=block_j,
        )
        spikes[:, t] = spk > 0
        if record_rates:
            rates[:, t] = nxt[2]
        if record_states:
            hist[:, t] = torch.cat(nxt, -1)
        cur, nxt = nxt, cur
    return (tuple(cur), spikes, rates, hist) if record_states else (tuple(cur), spikes, rates)
