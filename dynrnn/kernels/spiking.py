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
    "noise_streams",
    "noise_streams_draw",
    "esn_fast",
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
    state, p, cfg, n_steps, *, drive=None, noise=None, rng=None, record_rates=False
):
    """The reference loop (the specification) over ``n_steps`` steps.

    Arguments:
        state: ``(v, u, r, x)``, each ``[K, B, N]``.
        p: parameters (see :func:`izhikevich_step`) plus ``bias [K, 1, N]`` and
            ``noise_std [K, N]`` (per-step std).
        cfg: ``dt, scheme, synapse, v_peak, tau_rise, tau_decay``.
        drive: ``[K, T, B, N]`` input current including the bias, or None (bias only).
        noise: ``[K, T, B, N]`` noise current, or None.
        rng: ``[K, B]`` int64 noise streams (:func:`noise_streams`), used when ``noise`` is None;
            advanced in place.

    Returns:
        ``(state, spikes [K, T, B, N] bool, rates [K, T, B, N] or None)``.
    """
    ext = _external(p, n_steps, drive, noise, rng)
    spikes, rates = [], []
    for t in range(n_steps):
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
#include <cstdint>

// ---- counter-free per-stream Gaussian noise: splitmix64 + Marsaglia-Tsang ziggurat (128 layers)
static inline uint64_t sm64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static inline double uni01(uint64_t& s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

struct Zig {
  double kn[128], wn[128], fn[128];
  Zig() {
    const double m1 = 2147483648.0;
    double dn = 3.442619855899, tn = dn, vn = 9.91256303526217e-3;
    const double q = vn / std::exp(-0.5 * dn * dn);
    kn[0] = (dn / q) * m1; kn[1] = 0;
    wn[0] = q / m1; wn[127] = dn / m1;
    fn[0] = 1.0; fn[127] = std::exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; --i) {
      dn = std::sqrt(-2.0 * std::log(vn / dn + std::exp(-0.5 * dn * dn)));
      kn[i + 1] = (dn / tn) * m1;
      tn = dn;
      fn[i] = std::exp(-0.5 * dn * dn);
      wn[i] = dn / m1;
    }
  }
};
static const Zig ZIG;

static const uint64_t GAMMA = 0x9E3779B97F4A7C15ULL;

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Rejection branch of the ziggurat for the first draw (hz, iz); further draws from stream s.
static double gauss_slow(int32_t hz, int iz, uint64_t& s) {
  const double r = 3.442619855899;
  for (;;) {
    const double x = (double)hz * ZIG.wn[iz];
    const double ahz = hz < 0 ? -(double)hz : (double)hz;
    if (ahz < ZIG.kn[iz]) return x;
    if (iz == 0) {  // tail beyond r
      double xt, yt;
      do {
        xt = -std::log(1.0 - uni01(s)) / r;
        yt = -std::log(1.0 - uni01(s));
      } while (yt + yt < xt * xt);
      return hz > 0 ? r + xt : -r - xt;
    }
    if (ZIG.fn[iz] + uni01(s) * (ZIG.fn[iz - 1] - ZIG.fn[iz]) < std::exp(-0.5 * x * x)) return x;
    const uint64_t bits = sm64(s);
    iz = (int)(bits & 127);
    hz = (int32_t)(uint32_t)(bits >> 32);
  }
}

// n standard normals times sd[i] into out: draw i uses the (i+1)-th splitmix64 output of the
// stream (a vectorisable pass, ~98.8% accepted), then the rejected ones are redone in index
// order with further draws from the stream.
template <typename S>
static inline void gauss_block(uint64_t& s, int64_t n, const S* sd, S* out, uint8_t* rej) {
  const uint64_t base = s;
  int64_t nrej = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t z = mix64(base + (uint64_t)(i + 1) * GAMMA);
    const int iz = (int)(z & 127);
    const int32_t hz = (int32_t)(uint32_t)(z >> 32);
    const double x = (double)hz * ZIG.wn[iz];
    const bool bad = !(std::fabs((double)hz) < ZIG.kn[iz]);
    rej[i] = bad;
    nrej += bad;
    out[i] = sd[i] * (S)x;
  }
  s = base + (uint64_t)n * GAMMA;
  if (nrej == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (!rej[i]) continue;
    const uint64_t z = mix64(base + (uint64_t)(i + 1) * GAMMA);
    out[i] = sd[i] * (S)gauss_slow((int32_t)(uint32_t)(z >> 32), (int)(z & 127), s);
  }
}

torch::Tensor rng_init(int64_t seed, int64_t K, int64_t B) {
  auto st = torch::empty({K, B}, torch::dtype(torch::kInt64));
  int64_t* p = st.data_ptr<int64_t>();
  for (int64_t q = 0; q < K * B; ++q) {
    uint64_t s = (uint64_t)seed * 0xD1B54A32D192ED03ULL + (uint64_t)q * 0x8CB92BA72F3D8DD7ULL;
    p[q] = (int64_t)sm64(s);
  }
  return st;
}

// noise[k, t, b, :] = gauss_block(stream (k, b)) for t = 0..T-1; advances rng.
torch::Tensor izh_noise(torch::Tensor rng, torch::Tensor stdv, int64_t T) {
  const int64_t K = rng.size(0), B = rng.size(1), N = stdv.size(1);
  auto noise = torch::empty({K, T, B, N}, stdv.options());
  int64_t* rp = rng.data_ptr<int64_t>();
  std::vector<uint8_t> rej(N);
  AT_DISPATCH_FLOATING_TYPES(stdv.scalar_type(), "izh_noise", [&] {
    using S = scalar_t;
    const S* sd = stdv.data_ptr<S>(); S* out = noise.data_ptr<S>();
    for (int64_t k = 0; k < K; ++k)
      for (int64_t bb = 0; bb < B; ++bb) {
        uint64_t s = (uint64_t)rp[k * B + bb];
        for (int64_t t = 0; t < T; ++t)
          gauss_block<S>(s, N, sd + k * N, out + ((k * T + t) * B + bb) * N, rej.data());
        rp[k * B + bb] = (int64_t)s;
      }
  });
  return noise;
}

template <typename S>
static void izh_kernel(S* v, S* u, S* r, S* x, const S* bias, const S* drive, const S* noise,
                       const S* stdv, int64_t* rng, const S* a, const S* b, const S* c,
                       const S* d, const S* WT, const S* Wout, const S* eta, bool* spikes,
                       S* rates, int64_t K, int64_t B, int64_t T, int64_t N, int64_t O,
                       int synapse, bool half, S dt, S vpeak, S ed, S er, S tr, S td,
                       bool record_rates) {
  std::vector<S> J(N), Jx(N), cur(N), nz(N), z(O > 0 ? O : 1);
  std::vector<int64_t> fired(N);
  std::vector<uint8_t> rej(N);
  const S h = S(0.5) * dt;
  const S inv_td = S(1) / td, inv_trtd = S(1) / (tr * td);
  for (int64_t k = 0; k < K; ++k) {
    const S* W = WT + k * N * N;  // W[j * N + i] = weight from j to i
    const S* ak = a + k * N; const S* bk = b + k * N; const S* ck = c + k * N;
    const S* dk = d + k * N; const S* bi = bias + k * N;
    const S* sd = stdv != nullptr ? stdv + k * N : nullptr;
    const S* Wo = O > 0 ? Wout + k * O * N : nullptr;
    const S* et = (eta != nullptr) ? eta + k * N * O : nullptr;
    for (int64_t bb = 0; bb < B; ++bb) {
      const int64_t off = (k * B + bb) * N;
      S* vv = v + off; S* uu = u + off; S* rr = r + off; S* xx = x + off;
      uint64_t st = rng != nullptr ? (uint64_t)rng[k * B + bb] : 0;
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
        const int64_t toff = ((k * T + t) * B + bb) * N;
        if (drive != nullptr) { for (int64_t i = 0; i < N; ++i) cur[i] = drive[toff + i]; }
        else { for (int64_t i = 0; i < N; ++i) cur[i] = bi[i]; }
        if (noise != nullptr) { for (int64_t i = 0; i < N; ++i) cur[i] += noise[toff + i]; }
        else if (sd != nullptr) {
          gauss_block<S>(st, N, sd, nz.data(), rej.data());
          for (int64_t i = 0; i < N; ++i) cur[i] += nz[i];
        }
        for (int64_t i = 0; i < N; ++i) cur[i] += J[i];
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
          vv[i] = vi; uu[i] = ui;
        }
        bool* so = spikes + toff;
        for (int64_t i = 0; i < N; ++i) {
          const bool sp = vv[i] >= vpeak;
          so[i] = sp;
          if (sp) { vv[i] = ck[i]; uu[i] = uu[i] + dk[i]; fired[nf++] = i; }
        }
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
          S* ro = rates + toff;
          for (int64_t i = 0; i < N; ++i) ro[i] = rr[i];
        }
      }
      if (rng != nullptr) rng[k * B + bb] = (int64_t)st;
    }
  }
}

std::vector<torch::Tensor> izh_loop(torch::Tensor v, torch::Tensor u, torch::Tensor r,
                                    torch::Tensor x, torch::Tensor bias, torch::Tensor drive,
                                    torch::Tensor noise, torch::Tensor stdv, torch::Tensor rng,
                                    int64_t T, torch::Tensor a, torch::Tensor b, torch::Tensor c,
                                    torch::Tensor d, torch::Tensor WT, torch::Tensor Wout,
                                    torch::Tensor eta, int64_t synapse, bool half, double dt,
                                    double vpeak, double tr, double td, bool record_rates) {
  const int64_t K = v.size(0), B = v.size(1), N = v.size(2);
  const int64_t O = Wout.size(1);
  auto spikes = torch::empty({K, T, B, N}, v.options().dtype(torch::kBool));
  auto rates = record_rates ? torch::empty({K, T, B, N}, v.options()) : torch::empty({0}, v.options());
  const bool fb = eta.numel() > 0;
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "izh_loop", [&] {
    using S = scalar_t;
    izh_kernel<S>(v.data_ptr<S>(), u.data_ptr<S>(), r.data_ptr<S>(), x.data_ptr<S>(),
                  bias.data_ptr<S>(), drive.numel() > 0 ? drive.data_ptr<S>() : nullptr,
                  noise.numel() > 0 ? noise.data_ptr<S>() : nullptr,
                  (noise.numel() == 0 && rng.numel() > 0) ? stdv.data_ptr<S>() : nullptr,
                  rng.numel() > 0 ? rng.data_ptr<int64_t>() : nullptr,
                  a.data_ptr<S>(), b.data_ptr<S>(), c.data_ptr<S>(),
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
# -march=native lets gcc vectorise the neuron, noise and spike-column loops (AVX2/AVX-512);
# -ffp-contract=off keeps every operation rounded as in the torch reference (no fused FMAs).
_CFLAGS = ["-O3", "-ffp-contract=off"] + (
    [] if os.environ.get("DYNRNN_CPP_PORTABLE", "0") not in ("", "0") else ["-march=native"]
)


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
            name="dynrnn_spiking_v3" + ("_native" if "-march=native" in _CFLAGS else ""),
            cpp_sources=_CPP_SOURCE,
            functions=["izh_loop", "esn_loop", "izh_noise", "rng_init"],
            extra_cflags=_CFLAGS,
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


def noise_streams(seed: int, n_networks: int, batch_size: int) -> torch.Tensor | None:
    """Independent Gaussian noise streams, one per network and trial (``[K, B]`` int64 states of
    splitmix64 generators feeding a 128-layer Marsaglia-Tsang ziggurat), or None if the C++
    extension is unavailable (then noise is drawn with ``torch.randn``)."""
    ext_mod = _load_extension()
    if ext_mod is None:
        return None
    return ext_mod.rng_init(int(seed), int(n_networks), int(batch_size))


def noise_streams_draw(rng: torch.Tensor, std: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``std [K, N] * z`` as ``[K, T, B, N]``, z drawn from the streams ``rng [K, B]`` in the
    order (t, neuron) per stream -- exactly the numbers the fused kernel draws. Advances rng."""
    ext_mod = _load_extension()
    if ext_mod is None:
        raise RuntimeError("Noise streams need the C++ extension.")
    return ext_mod.izh_noise(rng, std.contiguous(), int(n_steps))


def _cpp_loop(ext_mod, state, p, cfg, n_steps, drive, noise, rng, record_rates):
    v, u, r, x = (s.contiguous().clone() for s in state)
    K, B, N = v.shape
    a, b, c, d, bias = (p[k].reshape(K, N).contiguous() for k in ("a", "b", "c", "d", "bias"))
    WT = p["W_T"].contiguous()
    empty = v.new_zeros(0)
    if p.get("eta_T") is not None:
        Wout = p["W_out_T"].transpose(1, 2).contiguous()  # [K, O, N]
        eta = p["eta_T"].transpose(1, 2).contiguous()  # [K, N, O]
    else:
        Wout, eta = v.new_zeros(K, 0, N), empty
    drive = empty if drive is None else drive.expand(K, n_steps, B, N).contiguous()
    noise = empty if noise is None else noise.contiguous()
    rng_t = torch.zeros(0, dtype=torch.int64) if rng is None else rng
    std = p["noise_std"].contiguous() if rng is not None else empty
    out = ext_mod.izh_loop(
        v, u, r, x, bias, drive, noise, std, rng_t, int(n_steps), a, b, c, d, WT, Wout, eta,
        SYNAPSES.index(cfg["synapse"]), cfg["scheme"] == "half_step", float(cfg["dt"]),
        float(cfg["v_peak"]), float(cfg["tau_rise"]), float(cfg["tau_decay"]), record_rates,
    )  # fmt: skip
    v, u, r, x, spikes, rates = out
    return (v, u, r, x), spikes, (rates if record_rates else None)


def _torch_loop(state, p, cfg, n_steps, drive, noise, rng, record_rates):
    """Per-step torch loop with preallocated outputs; event-driven for K = B = 1."""
    ext = _external(p, n_steps, drive, noise, rng)
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
    v, u, r, x = v.reshape(N), u.reshape(N), r.reshape(N), x.reshape(N)
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


def izhikevich_fast(
    state, p, cfg, n_steps, *, drive=None, noise=None, rng=None, record_rates=False,
    backend="auto",
):  # fmt: skip
    """Fast loop with the signature of :func:`izhikevich_reference` and identical spikes.

    ``backend``: ``"auto"`` (C++ if it compiles, else torch), ``"cpp"`` or ``"torch"``. With
    ``rng`` the C++ loop draws the noise inside the time loop (no ``[K, T, B, N]`` tensor).
    """
    if backend not in ("auto", "cpp", "torch"):
        raise ValueError(
            f"The 'backend' parameter must be one of ['auto', 'cpp', 'torch']. Got {backend!r}."
        )
    ext_mod = _load_extension() if backend in ("auto", "cpp") else None
    if backend == "cpp" and ext_mod is None:
        raise RuntimeError("The C++ spiking kernel is not available (see the earlier warning).")
    with torch.no_grad():
        if ext_mod is not None and state[0].dtype in (torch.float32, torch.float64):
            return _cpp_loop(ext_mod, state, p, cfg, n_steps, drive, noise, rng, record_rates)
        return _torch_loop(state, p, cfg, n_steps, drive, noise, rng, record_rates)


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
