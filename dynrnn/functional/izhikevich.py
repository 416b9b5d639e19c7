"""The Izhikevich neuron and its synapses as pure tensor functions (the one source of the maths).

Neuron (Izhikevich, E. M. (2003). Simple model of spiking neurons. *IEEE Transactions on Neural
Networks* 14(6), 1569-1572), time in ms, v in mV::

    v' = 0.04 v^2 + 5 v + 140 - u + I,   u' = a (b v - u),   if v >= v_peak: v <- c, u <- u + d

One step of K networks x B trials of N neurons, from the state ``(v, u, r, x)`` (each
``[K, B, N]``) and the external current ``ext_t`` (drive + noise):

1. ``z = W_out r`` (readout of the previous state), fed back as ``eta z``;
2. ``I = ext_t + I_syn + eta z`` with ``I_syn = W x`` for ``delta`` synapses (``x`` = spikes of
   the previous step, Izhikevich's network) and ``I_syn = W r`` for ``exp`` / ``double_exp``
   synapses;
3. membrane update (:func:`membrane`), scheme ``half_step`` (Izhikevich 2003: v advanced in
   two halves of dt/2, then ``u += dt a (b v - u)`` with the new v) or ``euler`` (both from
   the old state);
4. ``spike = v >= v_peak``; where spiking ``v <- c``, ``u <- u + d`` (:func:`spike_reset`;
   the spike is recorded at this step and acts on the others from the next step on);
5. synapses (:func:`synapse_update`, ``e_d = exp(-dt/tau_decay)``, ``e_r = exp(-dt/tau_rise)``):
   ``delta``: ``x <- spike``, ``r <- e_d r + spike / tau_decay`` (r only feeds readouts);
   ``exp``: ``r <- e_d r + spike / tau_decay``;
   ``double_exp``: ``r <- e_d r + dt x``, ``x <- e_r x + spike / (tau_rise tau_decay)``
   (the double-exponential filter of Nicola, W. & Clopath, C. (2017). Supervised learning in
   spiking neural networks with FORCE training. *Nature Communications* 8, 2208).

The synapse update is linear in ``(r, x)`` plus the spikes, so a kernel that keeps the
projected current ``J = W r`` (or ``W x``) applies the same update to ``J`` with the spikes
replaced by the spiking columns of ``W``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "IZHIKEVICH_SYNAPSES",
    "IZHIKEVICH_SCHEMES",
    "izhikevich_membrane",
    "izhikevich_spike_reset",
    "izhikevich_synapse_update",
    "izhikevich_synapse_decay",
    "izhikevich_step",
]

IZHIKEVICH_SYNAPSES = ("delta", "exp", "double_exp")
IZHIKEVICH_SCHEMES = ("half_step", "euler")


def izhikevich_membrane(v, u, current, a, b, dt: float, scheme: str):
    """Membrane update of one step (step 3 of the module docstring), no spike reset.

    Arguments:
        v, u: membrane potential and recovery variable, any shape (e.g. ``[K, B, N]``).
        current: total input current ``I``, broadcastable to ``v``.
        a, b: neuron parameters, broadcastable to ``v`` (e.g. ``[K, 1, N]``).
        dt: step (ms).
        scheme: ``"half_step"`` or ``"euler"``.

    Returns:
        ``(v, u)`` after the step, shaped like ``v``.
    """
    if scheme == "half_step":
        h = 0.5 * dt
        v = v + h * (0.04 * v * v + 5.0 * v + 140.0 - u + current)
        v = v + h * (0.04 * v * v + 5.0 * v + 140.0 - u + current)
        u = u + dt * (a * (b * v - u))
    else:
        dv = dt * (0.04 * v * v + 5.0 * v + 140.0 - u + current)
        u = u + dt * (a * (b * v - u))
        v = v + dv
    return v, u


def izhikevich_spike_reset(v, u, c, d, v_peak: float):
    """Spike detection and reset (step 4): ``spike = v >= v_peak``, then ``v <- c``,
    ``u <- u + d`` where spiking. ``c, d`` broadcast to ``v``. Returns ``(v, u, spike bool)``."""
    spk = v >= v_peak
    v = torch.where(spk, c.expand_as(v), v)
    u = torch.where(spk, u + d, u)
    return v, u, spk


def izhikevich_synapse_decay(dt: float, tau_rise: float, tau_decay: float) -> tuple[float, float]:
    """``(e_d, e_r) = (exp(-dt / tau_decay), exp(-dt / tau_rise))``."""
    return math.exp(-dt / tau_decay), math.exp(-dt / tau_rise)


def izhikevich_synapse_update(r, x, s, synapse: str, dt: float, tau_rise: float,
                              tau_decay: float):
    """Synaptic filters of one step (step 5). ``r, x [..]``, spikes ``s`` as floats of the same
    shape. Returns ``(r, x)``; ``x`` is returned unchanged for ``exp`` synapses."""
    ed, er = izhikevich_synapse_decay(dt, tau_rise, tau_decay)
    if synapse == "delta":
        return ed * r + s / tau_decay, s
    if synapse == "exp":
        return ed * r + s / tau_decay, x
    return ed * r + dt * x, er * x + s / (tau_rise * tau_decay)


def izhikevich_step(state, ext, p, cfg):
    """One step of K Izhikevich networks (steps 1-5 of the module docstring).

    Arguments:
        state: ``(v, u, r, x)``, each ``[K, B, N]``.
        ext: external current ``[K, B, N]`` (drive + noise).
        p: dict with ``a, b, c, d [K, 1, N]``, ``W_T [K, N, N]`` (transposed recurrent weights,
            gain and the ``1 / dt`` of delta synapses included), ``W_out_T [K, N, O]``,
            ``eta_T [K, O, N]`` (None without feedback).
        cfg: dict with ``dt, scheme, synapse, v_peak, tau_rise, tau_decay``.

    Returns:
        ``((v, u, r, x), spikes [K, B, N] bool)``.
    """
    v, u, r, x = state
    syn = torch.bmm(x if cfg["synapse"] == "delta" else r, p["W_T"])
    current = ext + syn
    if p.get("eta_T") is not None:
        current = current + torch.bmm(torch.bmm(r, p["W_out_T"]), p["eta_T"])
    v, u = izhikevich_membrane(v, u, current, p["a"], p["b"], cfg["dt"], cfg["scheme"])
    v, u, spk = izhikevich_spike_reset(v, u, p["c"], p["d"], cfg["v_peak"])
    r, x = izhikevich_synapse_update(
        r, x, spk.to(v.dtype), cfg["synapse"], cfg["dt"], cfg["tau_rise"], cfg["tau_decay"]
    )
    return (v, u, r, x), spk
