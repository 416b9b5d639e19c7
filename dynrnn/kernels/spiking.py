"""Izhikevich reservoir time loop: the plain-torch reference (the specification) and fast paths.

One step of K networks x B trials of N Izhikevich (2003) neurons, from the state
``(v, u, r, x)`` (each ``[K, B, N]``) and the external current ``drive_t + noise_t``:

1. ``z = W_out r`` (readout of the previous state) -- fed back as ``eta z``;
2. ``I = (drive_t + noise_t) + I_syn + eta z`` with ``I_syn = W x`` for ``delta`` synapses
   (``x`` = spikes of the previous step, Izhikevich's classic network) and ``I_syn = W r`` for
   ``exp`` / ``double_exp`` synapses (``W`` already includes the gain G);
3. membrane update, scheme ``half_step`` (Izhikevich 2003: v advanced in two halves of dt/2,
   then ``u += dt a (b v - u)`` with the new v) or ``euler`` (both from the old state);
4. ``spike = v >= v_peak``; where spiking ``v <- c``, ``u <- u + d`` (the spike is recorded at
   this step and acts on the others from the next step on);
5. synapses (``e_d = exp(-dt/tau_decay)``, ``e_r = exp(-dt/tau_rise)``):
   ``delta``: ``x <- spike``, ``r <- e_d r + spike / tau_decay`` (r only feeds readouts);
   ``exp``: ``r <- e_d r + spike / tau_decay``;
   ``double_exp``: ``r <- e_d r + dt x``, ``x <- e_r x + spike / (tau_rise tau_decay)``.

Fast paths (chosen by measurement, see ``benchmarks/spiking.py``):

* ``cpp``: the whole time loop in a small C++ extension (compiled once with
  ``torch.utils.cpp_extension.load_inline`` and cached; if compilation fails the torch path is
  used). It is event-driven: the recurrent current is kept projected (``J = W r`` or ``W x``)
  and updated by adding only the columns of ``W`` of the neurons that spiked, so a step costs
  O(N + spikes * N) instead of O(N^2). Networks x trials are independent, so each runs its own
  time loop with its state in cache.
* ``torch``: a per-step torch loop with preallocated buffers (event-driven for one network and
  trial, batched ``bmm`` otherwise).

The projected current differs from the dense ``W r`` only by floating-point rounding (order of
summation); spike trains are identical to the reference in float64 (tested).
"""

from __future__ import annotations

import math
import os
import warnings

import torch

__all__ = [
    "izhikevich_step",
    "izhikevich_reference",
    "izhikevich_fast",
    "cpp_extension_available",
    "SYNAPSES",
    "SCHEMES",
]

SYNAPSES = ("delta", "exp", "double_exp")
SCHEMES = ("half_step", "euler")


def _membrane(v, u, current, a, b, dt, scheme):
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


def izhikevich_step(state, ext, p, cfg):
    """One step of the reference. ``state = (v, u, r, x)`` each ``[K, B, N]``; ``ext [K, B, N]``
    (drive + noise); ``p`` dict with ``a, b, c, d [K, 1, N]``, ``W_T [K, N, N]`` (transposed
    recurrent weights), ``W_out_T [K, N, O]``, ``eta_T [K, O, N]`` (None if no feedback);
    ``cfg`` dict with ``dt, scheme, synapse, v_peak, tau_rise, tau_decay``.
    Returns ``(new_state, spikes [K, B, N] bool)``."""
    v, u, r, x = state
    syn = torch.bmm(x if cfg["synapse"] == "delta" else r, p["W_T"])
    current = ext + syn
    if p.get("eta_T") is not None:
        current = current + torch.bmm(torch.bmm(r, p["W_out_T"]), p["eta_T"])
    v, u = _membrane(v, u, current, p["a"], p["b"], cfg["dt"], cfg["scheme"])
    spk = v >= cfg["v_peak"]
    v = torch.where(spk, p["c"].expand_as(v), v)
    u = torch.where(spk, u + p["d"], u)
    s = spk.to(v.dtype)
    td, tr, dt = cfg["tau_decay"], cfg["tau_rise"], cfg["dt"]
    ed = math.exp(-dt / td)
    if cfg["synapse"] == "delta":
        r = ed * r + s / td
        x = s
    elif cfg["synapse"] == "exp":
        r = ed * r + s / td
    else:
        r = ed * r + dt * x
        x = math.exp(-dt / tr) * x + s / (tr * td)
    return (v, u, r, x), spk


def izhikevich_reference(state, ext, p, cfg, record_rates: bool = False):
    """Reference loop over ``ext [K, T, B, N]``. Returns ``(state, spikes [K, T, B, N] bool,
    rates [K, T, B, N] or None)``."""
    spikes, rates = [], []
    for t in range(ext.shape[1]):
        state, spk = izhikevich_step(state, ext[:, t], p, cfg)
        spikes.append(spk)
        if record_rates:
            rates.append(state[2])
    return (
        state,
        torch.stack(spikes, 1),
        torch.stack(rates, 1) if record_rates else None,
    )


# --------------------------------------------------------------------------- C++ extension
_CPP_SOURCE = r"""
#include <torch/extension.h>
#include <cmath>
#include <vector>

template <typename S>
static void izh_kernel(S* v, S* u, S* r, S* x, const S* ext, const S* a, const S* b, const S* c,
                       const S* d, const S* WT, const S* Wout, const S* eta, bool* spikes, S* rates,
                       int64_t K, int64_t B, int64_t T, int64_t N, int64_t O, int synapse,
                       bool half, S dt, S vpeak, S ed, S er, S tr, S td, bool record_rates) {
  std::vector<S> J(N), Jx(N), cur(N), z(O > 0 ? O : 1);
  std::vector<int64_t> fired(N);
  const S h = S(0.5) * dt;
  const S inv_td = S(1) / td, inv_trtd = S(1) / (tr * td);
  for (int64_t k = 0; k < K; ++k) {
    const S* W = WT + k * N * N;  // W[j * N + i] = weight from j to i
    const S* ak = a + k * N; const S* bk = b + k * N; const S* ck = c + k * N;
    const S* dk = d + k * N;
    const S* Wo = O > 0 ? Wout + k * O * N : nullptr;
    const S* et = (eta != nullptr) ? eta + k * N * O : nullptr;
    for (int64_t bb = 0; bb < B; ++bb) {
      const int64_t off = (k * B + bb) * N;
      S* vv = v + off; S* uu = u + off; S* rr = r + off; S* xx = x + off;
      // projected currents from the initial state (dense, once)
      const S* src = (synapse == 0) ? xx : rr;
      for (int64_t i = 0; i < N; ++i) { J[i] = 0; Jx[i] = 0; }
      for (int64_t j = 0; j < N; ++j) {
        const S sj = src[j];
        if (sj != 0) { const S* col = W + j * N; for (int64_t i = 0; i < N; ++i) J[i] += col[i] * sj; }
        if (synapse == 2 && xx[j] != 0) {
          const S xj = xx[j]; const S* col = W + j * N;
          for (int64_t i = 0; i < N; ++i) Jx[i] += col[i] * xj;
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        const S* e = ext + ((k * T + t) * B + bb) * N;
        for (int64_t i = 0; i < N; ++i) cur[i] = e[i] + J[i];
        if (et != nullptr) {
          for (int64_t o = 0; o < O; ++o) {
            S acc = 0; const S* wrow = Wo + o * N;
            for (int64_t j = 0; j < N; ++j) acc += rr[j] * wrow[j];
            z[o] = acc;
          }
          for (int64_t i = 0; i < N; ++i) {
            S acc = 0; const S* erow = et + i * O;
            for (int64_t o = 0; o < O; ++o) acc += z[o] * erow[o];
            cur[i] += acc;
          }
        }
        int64_t nf = 0;
        for (int64_t i = 0; i < N; ++i) {
          S vi = vv[i], ui = uu[i]; const S I = cur[i];
          if (half) {
            vi = vi + h * (S(0.04) * vi * vi + S(5) * vi + S(140) - ui + I);
            vi = vi + h * (S(0.04) * vi * vi + S(5) * vi + S(140) - ui + I);
            ui = ui + dt * (ak[i] * (bk[i] * vi - ui));
          } else {
            const S dv = dt * (S(0.04) * vi * vi + S(5) * vi + S(140) - ui + I);
            ui = ui + dt * (ak[i] * (bk[i] * vi - ui));
            vi = vi + dv;
          }
          const bool sp = vi >= vpeak;
          if (sp) { vi = ck[i]; ui = ui + dk[i]; fired[nf++] = i; }
          vv[i] = vi; uu[i] = ui;
        }
        bool* so = spikes + ((k * T + t) * B + bb) * N;
        for (int64_t i = 0; i < N; ++i) so[i] = false;
        for (int64_t q = 0; q < nf; ++q) so[fired[q]] = true;
        if (synapse == 0) {  // delta: J = W spikes; r filtered for readouts
          for (int64_t i = 0; i < N; ++i) { J[i] = 0; rr[i] = ed * rr[i]; xx[i] = 0; }
          for (int64_t q = 0; q < nf; ++q) {
            const int64_t j = fired[q]; const S* col = W + j * N;
            for (int64_t i = 0; i < N; ++i) J[i] += col[i];
            rr[j] += inv_td; xx[j] = 1;
          }
        } else if (synapse == 1) {  // exp: r = ed r + s/td, J = W r
          for (int64_t i = 0; i < N; ++i) { rr[i] = ed * rr[i]; J[i] = ed * J[i]; }
          for (int64_t q = 0; q < nf; ++q) {
            const int64_t j = fired[q]; const S* col = W + j * N;
            for (int64_t i = 0; i < N; ++i) J[i] += col[i] * inv_td;
            rr[j] += inv_td;
          }
        } else {  // double exp: r = ed r + dt x; x = er x + s/(tr td)
          for (int64_t i = 0; i < N; ++i) {
            rr[i] = ed * rr[i] + dt * xx[i]; J[i] = ed * J[i] + dt * Jx[i];
            xx[i] = er * xx[i]; Jx[i] = er * Jx[i];
          }
          for (int64_t q = 0; q < nf; ++q) {
            const int64_t j = fired[q]; const S* col = W + j * N;
            for (int64_t i = 0; i < N; ++i) Jx[i] += col[i] * inv_trtd;
            xx[j] += inv_trtd;
          }
        }
        if (record_rates) {
          S* ro = rates + ((k * T + t) * B + bb) * N;
          for (int64_t i = 0; i < N; ++i) ro[i] = rr[i];
        }
      }
    }
  }
}

std::vector<torch::Tensor> izh_loop(torch::Tensor v, torch::Tensor u, torch::Tensor r,
                                    torch::Tensor x, torch::Tensor ext, torch::Tensor a,
                                    torch::Tensor b, torch::Tensor c, torch::Tensor d,
                                    torch::Tensor WT, torch::Tensor Wout, torch::Tensor eta,
                                    int64_t synapse, bool half, double dt, double vpeak,
                                    double tr, double td, bool record_rates) {
  const int64_t K = v.size(0), B = v.size(1), N = v.size(2), T = ext.size(1);
  const int64_t O = Wout.size(1);
  auto spikes = torch::empty({K, T, B, N}, v.options().dtype(torch::kBool));
  auto rates = record_rates ? torch::empty({K, T, B, N}, v.options()) : torch::empty({0}, v.options());
  const bool fb = eta.numel() > 0;
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "izh_loop", [&] {
    using S = scalar_t;
    izh_kernel<S>(v.data_ptr<S>(), u.data_ptr<S>(), r.data_ptr<S>(), x.data_ptr<S>(),
                  ext.data_ptr<S>(), a.data_ptr<S>(), b.data_ptr<S>(), c.data_ptr<S>(),
                  d.data_ptr<S>(), WT.data_ptr<S>(), Wout.data_ptr<S>(),
                  fb ? eta.data_ptr<S>() : nullptr, spikes.data_ptr<bool>(),
                  record_rates ? rates.data_ptr<S>() : nullptr, K, B, T, N, fb ? O : 0,
                  (int)synapse, half, (S)dt, (S)vpeak, (S)std::exp(-dt / td),
                  (S)std::exp(-dt / tr), (S)tr, (S)td, record_rates);
  });
  return {v, u, r, x, spikes, rates};
}

template <typename S>
static void esn_kernel(S* h, const S* drive, const int64_t* rowptr, const int64_t* col,
                       const S* val, int64_t B, int64_t T, int64_t N, S leak, S* states) {
  std::vector<S> pre(N);
  for (int64_t bb = 0; bb < B; ++bb) {
    S* hh = h + bb * N;
    for (int64_t t = 0; t < T; ++t) {
      const S* dr = drive + (t * B + bb) * N;
      for (int64_t i = 0; i < N; ++i) {
        S acc = dr[i];
        for (int64_t q = rowptr[i]; q < rowptr[i + 1]; ++q) acc += val[q] * hh[col[q]];
        pre[i] = acc;
      }
      S* out = states + (t * B + bb) * N;
      for (int64_t i = 0; i < N; ++i) {
        const S hn = hh[i] + leak * (std::tanh(pre[i]) - hh[i]);
        out[i] = hn;
      }
      for (int64_t i = 0; i < N; ++i) hh[i] = out[i];
    }
  }
}

torch::Tensor esn_loop(torch::Tensor h, torch::Tensor drive, torch::Tensor rowptr,
                       torch::Tensor col, torch::Tensor val, double leak) {
  const int64_t T = drive.size(0), B = drive.size(1), N = drive.size(2);
  auto states = torch::empty({T, B, N}, drive.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "esn_loop", [&] {
    using S = scalar_t;
    esn_kernel<S>(h.data_ptr<S>(), drive.data_ptr<S>(), rowptr.data_ptr<int64_t>(),
                  col.data_ptr<int64_t>(), val.data_ptr<S>(), B, T, N, (S)leak,
                  states.data_ptr<S>());
  });
  return states;
}
"""

_EXT = None
_EXT_TRIED = False


def _load_extension():
    """Compile (first call, ~1 min, then cached by torch) and return the C++ extension, or None.

    Disabled with the environment variable ``DYNRNN_NO_CPP=1``; any compilation failure falls
    back to the torch path with a warning.
    """
    global _EXT, _EXT_TRIED
    if _EXT_TRIED:
        return _EXT
    _EXT_TRIED = True
    if os.environ.get("DYNRNN_NO_CPP", "0") not in ("", "0"):
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        _EXT = load_inline(
            name="dynrnn_spiking_v1",
            cpp_sources=_CPP_SOURCE,
            functions=["izh_loop", "esn_loop"],
            extra_cflags=["-O3"],
            verbose=False,
        )
    except Exception as err:  # pragma: no cover - depends on the toolchain
        warnings.warn(
            f"dynrnn: the C++ spiking kernel could not be compiled ({type(err).__name__}: "
            f"{err}); using the slower torch loop.",
            RuntimeWarning,
            stacklevel=3,
        )
        _EXT = None
    return _EXT


def cpp_extension_available() -> bool:
    """Whether the compiled C++ loops can be used (compiles them on first call)."""
    return _load_extension() is not None


def _cpp_loop(ext_mod, state, ext, p, cfg, record_rates):
    v, u, r, x = (s.contiguous().clone() for s in state)
    K, _, N = v.shape
    a, b, c, d = (p[k].reshape(K, N).contiguous() for k in ("a", "b", "c", "d"))
    WT = p["W_T"].contiguous()
    if p.get("eta_T") is not None:
        Wout = p["W_out_T"].transpose(1, 2).contiguous()  # [K, O, N]
        eta = p["eta_T"].transpose(1, 2).contiguous()  # [K, N, O]
    else:
        Wout = v.new_zeros(K, 0, N)
        eta = v.new_zeros(0)
    out = ext_mod.izh_loop(
        v, u, r, x, ext.contiguous(), a, b, c, d, WT, Wout, eta,
        SYNAPSES.index(cfg["synapse"]), cfg["scheme"] == "half_step", float(cfg["dt"]),
        float(cfg["v_peak"]), float(cfg["tau_rise"]), float(cfg["tau_decay"]), record_rates,
    )  # fmt: skip
    v, u, r, x, spikes, rates = out
    return (v, u, r, x), spikes, (rates if record_rates else None)


def _torch_loop(state, ext, p, cfg, record_rates):
    """Per-step torch loop with preallocated outputs; event-driven for K = B = 1."""
    v, u, r, x = (s.clone() for s in state)
    K, T, B, N = ext.shape
    spikes = torch.empty(K, T, B, N, dtype=torch.bool)
    rates = torch.empty(K, T, B, N, dtype=v.dtype) if record_rates else None
    if K * B != 1 or p.get("eta_T") is not None:
        for t in range(T):
            (v, u, r, x), spk = izhikevich_step((v, u, r, x), ext[:, t], p, cfg)
            spikes[:, t] = spk
            if record_rates:
                rates[:, t] = r
        return (v, u, r, x), spikes, rates
    # one network, one trial: keep the projected current J = W src and add spiking columns
    WT = p["W_T"][0]
    a, b, c, d = (p[k].reshape(N) for k in ("a", "b", "c", "d"))
    dt, td, tr = cfg["dt"], cfg["tau_decay"], cfg["tau_rise"]
    ed, er = math.exp(-dt / td), math.exp(-dt / tr)
    syn = cfg["synapse"]
    v, u, r, x = v.view(N), u.view(N), r.view(N), x.view(N)
    J = (x if syn == "delta" else r) @ WT
    Jx = x @ WT if syn == "double_exp" else None
    e = ext[0, :, 0]
    for t in range(T):
        v, u = _membrane(v, u, e[t] + J, a, b, dt, cfg["scheme"])
        spk = v >= cfg["v_peak"]
        idx = spk.nonzero().view(-1)
        if idx.numel():
            v[idx] = c[idx]
            u[idx] += d[idx]
        spikes[0, t, 0] = spk
        cols = WT.index_select(0, idx).sum(0)
        if syn == "delta":
            J = cols
            r.mul_(ed)
            r[idx] += 1.0 / td
            x.zero_()
            x[idx] = 1.0
        elif syn == "exp":
            r.mul_(ed)
            r[idx] += 1.0 / td
            J = ed * J + cols / td
        else:
            r.mul_(ed).add_(dt * x)
            J = ed * J + dt * Jx
            x.mul_(er)
            x[idx] += 1.0 / (tr * td)
            Jx = er * Jx + cols / (tr * td)
        if record_rates:
            rates[0, t, 0] = r
    shape = (1, 1, N)
    return (v.view(shape), u.view(shape), r.view(shape), x.view(shape)), spikes, rates


def izhikevich_fast(state, ext, p, cfg, record_rates: bool = False, backend: str = "auto"):
    """Fast loop, same signature and results (identical spikes) as :func:`izhikevich_reference`.

    ``backend``: ``"auto"`` (C++ if it compiles, else torch), ``"cpp"`` or ``"torch"``.
    """
    if backend not in ("auto", "cpp", "torch"):
        raise ValueError(
            f"The 'backend' parameter must be one of ['auto', 'cpp', 'torch']. Got {backend!r}."
        )
    ext_mod = _load_extension() if backend in ("auto", "cpp") else None
    if backend == "cpp" and ext_mod is None:
        raise RuntimeError("The C++ spiking kernel is not available (see the earlier warning).")
    with torch.no_grad():
        if ext_mod is not None and ext.dtype in (torch.float32, torch.float64):
            return _cpp_loop(ext_mod, state, ext, p, cfg, record_rates)
        return _torch_loop(state, ext, p, cfg, record_rates)


def esn_fast(h0, drive, W, leak):
    """Leaky tanh reservoir ``h <- h + leak (tanh(W h + drive_t) - h)`` over ``drive [T, B, N]``
    (one network) with sparse ``W`` (CSR, C++), or None if the extension is unavailable."""
    ext_mod = _load_extension()
    if ext_mod is None:
        return None
    Wc = W.to_sparse_csr()
    with torch.no_grad():
        return ext_mod.esn_loop(
            h0.contiguous().clone(),
            drive.contiguous(),
            Wc.crow_indices().to(torch.int64).contiguous(),
            Wc.col_indices().to(torch.int64).contiguous(),
            Wc.values().contiguous(),
            float(leak),
        )
