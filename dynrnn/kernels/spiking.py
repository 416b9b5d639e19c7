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

* ``cpp``: the whole time loop in C (compiled on first use in about a second with the system
  compiler, cached under ``~/.cache/dynrnn/kernels``, loaded with ctypes; without a compiler,
  or with ``DYNRNN_DISABLE_C=1``, the torch path is used). It is event-driven: the recurrent
  current is kept projected (``J = W r`` or ``W x``) and updated by adding only the columns of
  ``W`` of the neurons that spiked, so a step costs O(N + spikes * N) instead of O(N^2). The
  Gaussian noise is drawn inside the loop (per-trial splitmix64 streams and a ziggurat), so no
  ``[K, T, B, N]`` noise tensor is written and read. Networks x trials are independent, so
  each runs its own time loop with its state in cache.
* ``torch``: a per-step torch loop with preallocated buffers (event-driven for one network and
  trial, batched ``bmm`` otherwise).

The projected current differs from the dense ``W r`` only by floating-point rounding (order of
summation); spike trains are identical to the reference in float64 (tested).
"""

from __future__ import annotations

import ctypes
import math
import os

import torch

from .._validation import check_float, check_shape, check_tensor
from . import _cbuild
from ._workspace import POOL

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


# ------------------------------------------------------------------------- compiled C loops
_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- noise: splitmix64 streams + Marsaglia-Tsang ziggurat (128 layers) ---- */
static const uint64_t GAMMA = 0x9E3779B97F4A7C15ULL;
static double KN[128], WN[128], FN[128];
static int ZIG_READY = 0;

static void zig_init(void) {
  if (ZIG_READY) return;
  const double m1 = 2147483648.0;
  double dn = 3.442619855899, tn = dn, vn = 9.91256303526217e-3;
  const double q = vn / exp(-0.5 * dn * dn);
  KN[0] = (dn / q) * m1; KN[1] = 0;
  WN[0] = q / m1; WN[127] = dn / m1;
  FN[0] = 1.0; FN[127] = exp(-0.5 * dn * dn);
  for (int i = 126; i >= 1; --i) {
    dn = sqrt(-2.0 * log(vn / dn + exp(-0.5 * dn * dn)));
    KN[i + 1] = (dn / tn) * m1;
    tn = dn;
    FN[i] = exp(-0.5 * dn * dn);
    WN[i] = dn / m1;
  }
  ZIG_READY = 1;
}

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static inline uint64_t sm64(uint64_t* s) { *s += GAMMA; return mix64(*s); }
static inline double uni01(uint64_t* s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

/* rejection branch for a first draw (hz, iz); further draws from stream s */
static double gauss_slow(int32_t hz, int iz, uint64_t* s) {
  const double r = 3.442619855899;
  for (;;) {
    const double x = (double)hz * WN[iz];
    const double ahz = hz < 0 ? -(double)hz : (double)hz;
    if (ahz < KN[iz]) return x;
    if (iz == 0) {
      double xt, yt;
      do {
        xt = -log(1.0 - uni01(s)) / r;
        yt = -log(1.0 - uni01(s));
      } while (yt + yt < xt * xt);
      return hz > 0 ? r + xt : -r - xt;
    }
    if (FN[iz] + uni01(s) * (FN[iz - 1] - FN[iz]) < exp(-0.5 * x * x)) return x;
    const uint64_t bits = sm64(s);
    iz = (int)(bits & 127);
    hz = (int32_t)(uint32_t)(bits >> 32);
  }
}

/* out[i] = sd[i] * z_i: draw i is the (i+1)-th output of the stream (vectorisable pass,
   ~98.8% accepted), then the rejected ones are redone in index order from the stream. */
static inline void gauss_block(uint64_t* s, int64_t n, const REAL* sd, REAL* out,
                               uint8_t* rej) {
  const uint64_t base = *s;
  int64_t nrej = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t z = mix64(base + (uint64_t)(i + 1) * GAMMA);
    const int iz = (int)(z & 127);
    const int32_t hz = (int32_t)(uint32_t)(z >> 32);
    const double x = (double)hz * WN[iz];
    const int bad = !(fabs((double)hz) < KN[iz]);
    rej[i] = (uint8_t)bad;
    nrej += bad;
    out[i] = sd[i] * (REAL)x;
  }
  *s = base + (uint64_t)n * GAMMA;
  if (nrej == 0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (!rej[i]) continue;
    const uint64_t z = mix64(base + (uint64_t)(i + 1) * GAMMA);
    out[i] = sd[i] * (REAL)gauss_slow((int32_t)(uint32_t)(z >> 32), (int)(z & 127), s);
  }
}

void rng_init(int64_t seed, int64_t n, int64_t* out) {
  for (int64_t q = 0; q < n; ++q) {
    uint64_t s = (uint64_t)seed * 0xD1B54A32D192ED03ULL + (uint64_t)q * 0x8CB92BA72F3D8DD7ULL;
    out[q] = (int64_t)sm64(&s);
  }
}

/* noise[k, t, b, :] = gauss_block(stream (k, b)) for t = 0..T-1; advances rng [K, B] */
void izh_noise(int64_t* rng, const REAL* sd, REAL* noise, int64_t K, int64_t B, int64_t T,
               int64_t N) {
  zig_init();
  uint8_t* rej = (uint8_t*)malloc((size_t)N);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t bb = 0; bb < B; ++bb) {
      uint64_t s = (uint64_t)rng[k * B + bb];
      for (int64_t t = 0; t < T; ++t)
        gauss_block(&s, N, sd + k * N, noise + ((k * T + t) * B + bb) * N, rej);
      rng[k * B + bb] = (int64_t)s;
    }
  free(rej);
}

/* The Izhikevich time loop of K networks x B trials (see the module docstring for the maths).
   Layouts: state v, u, r, x [K, B, N] (in-out); bias, a, b, c, d [K, N]; drive, noise
   [K, T, B, N] or NULL; sd [K, N] with rng [K, B] (in-kernel noise) or NULL; WT [K, N, N]
   (row j = outgoing weights of neuron j); Wout [K, O, N], eta [K, N, O] (NULL = no feedback);
   outputs spikes [K, T, B, N] (uint8), rates [K, T, B, N] or NULL.
   synapse 0 delta, 1 exp, 2 double_exp; half 1 = Izhikevich half steps, 0 = Euler. */
void izh_loop(REAL* v, REAL* u, REAL* r, REAL* x, const REAL* bias, const REAL* drive,
              const REAL* noise, const REAL* sd, int64_t* rng, const REAL* a, const REAL* b,
              const REAL* c, const REAL* d, const REAL* WT, const REAL* Wout, const REAL* eta,
              uint8_t* spikes, REAL* rates, int64_t K, int64_t B, int64_t T, int64_t N,
              int64_t O, int synapse, int half, double dt_, double vpeak_, double tr_,
              double td_) {
  zig_init();
  const REAL dt = (REAL)dt_, vpeak = (REAL)vpeak_, tr = (REAL)tr_, td = (REAL)td_;
  const REAL ed = (REAL)exp(-dt_ / td_), er = (REAL)exp(-dt_ / tr_);
  const REAL h = (REAL)0.5 * dt;
  const REAL inv_td = (REAL)1 / td, inv_trtd = (REAL)1 / (tr * td);
  REAL* J = (REAL*)calloc((size_t)N, sizeof(REAL));
  REAL* Jx = (REAL*)calloc((size_t)N, sizeof(REAL));
  REAL* cur = (REAL*)malloc((size_t)N * sizeof(REAL));
  REAL* nz = (REAL*)malloc((size_t)N * sizeof(REAL));
  REAL* z = (REAL*)malloc((size_t)(O > 0 ? O : 1) * sizeof(REAL));
  int64_t* fired = (int64_t*)malloc((size_t)N * sizeof(int64_t));
  uint8_t* rej = (uint8_t*)malloc((size_t)N);
  for (int64_t k = 0; k < K; ++k) {
    const REAL* W = WT + k * N * N;
    const REAL* ak = a + k * N; const REAL* bk = b + k * N; const REAL* ck = c + k * N;
    const REAL* dk = d + k * N; const REAL* bi = bias + k * N;
    const REAL* sdk = sd ? sd + k * N : NULL;
    const REAL* Wo = eta ? Wout + k * O * N : NULL;
    const REAL* et = eta ? eta + k * N * O : NULL;
    for (int64_t bb = 0; bb < B; ++bb) {
      const int64_t off = (k * B + bb) * N;
      REAL* vv = v + off; REAL* uu = u + off; REAL* rr = r + off; REAL* xx = x + off;
      uint64_t st = rng ? (uint64_t)rng[k * B + bb] : 0;
      const REAL* src = (synapse == 0) ? xx : rr;
      for (int64_t i = 0; i < N; ++i) { J[i] = 0; Jx[i] = 0; }
      for (int64_t j = 0; j < N; ++j) {
        const REAL sj = src[j];
        const REAL* col = W + j * N;
        if (sj != 0) for (int64_t i = 0; i < N; ++i) J[i] += col[i] * sj;
        if (synapse == 2 && xx[j] != 0) {
          const REAL xj = xx[j];
          for (int64_t i = 0; i < N; ++i) Jx[i] += col[i] * xj;
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        const int64_t toff = ((k * T + t) * B + bb) * N;
        if (drive) { for (int64_t i = 0; i < N; ++i) cur[i] = drive[toff + i]; }
        else { for (int64_t i = 0; i < N; ++i) cur[i] = bi[i]; }
        if (noise) { for (int64_t i = 0; i < N; ++i) cur[i] += noise[toff + i]; }
        else if (sdk) {
          gauss_block(&st, N, sdk, nz, rej);
          for (int64_t i = 0; i < N; ++i) cur[i] += nz[i];
        }
        for (int64_t i = 0; i < N; ++i) cur[i] += J[i];
        if (et) {
          for (int64_t o = 0; o < O; ++o) {
            REAL acc = 0; const REAL* wrow = Wo + o * N;
            for (int64_t j = 0; j < N; ++j) acc += rr[j] * wrow[j];
            z[o] = acc;
          }
          for (int64_t i = 0; i < N; ++i) {
            REAL acc = 0; const REAL* erow = et + i * O;
            for (int64_t o = 0; o < O; ++o) acc += z[o] * erow[o];
            cur[i] += acc;
          }
        }
        for (int64_t i = 0; i < N; ++i) {
          REAL vi = vv[i], ui = uu[i]; const REAL I = cur[i];
          if (half) {
            vi = vi + h * ((REAL)0.04 * vi * vi + (REAL)5 * vi + (REAL)140 - ui + I);
            vi = vi + h * ((REAL)0.04 * vi * vi + (REAL)5 * vi + (REAL)140 - ui + I);
            ui = ui + dt * (ak[i] * (bk[i] * vi - ui));
          } else {
            const REAL dv = dt * ((REAL)0.04 * vi * vi + (REAL)5 * vi + (REAL)140 - ui + I);
            ui = ui + dt * (ak[i] * (bk[i] * vi - ui));
            vi = vi + dv;
          }
          vv[i] = vi; uu[i] = ui;
        }
        /* spikes: a vectorised threshold pass, then reset only in 8-neuron words with a spike */
        int64_t nf = 0;
        uint8_t* so = spikes + toff;
        for (int64_t i = 0; i < N; ++i) so[i] = (uint8_t)(vv[i] >= vpeak);
        for (int64_t i0 = 0; i0 < N; i0 += 8) {
          const int64_t i1 = i0 + 8 < N ? i0 + 8 : N;
          if (i1 - i0 == 8) {
            uint64_t word;
            memcpy(&word, so + i0, 8);
            if (word == 0) continue;
          }
          for (int64_t i = i0; i < i1; ++i)
            if (so[i]) { vv[i] = ck[i]; uu[i] = uu[i] + dk[i]; fired[nf++] = i; }
        }
        if (synapse == 0) {
          for (int64_t i = 0; i < N; ++i) { J[i] = 0; rr[i] = ed * rr[i]; xx[i] = 0; }
          for (int64_t q = 0; q < nf; ++q) {
            const int64_t j = fired[q]; const REAL* col = W + j * N;
            for (int64_t i = 0; i < N; ++i) J[i] += col[i];
            rr[j] += inv_td; xx[j] = 1;
          }
        } else if (synapse == 1) {
          for (int64_t i = 0; i < N; ++i) { rr[i] = ed * rr[i]; J[i] = ed * J[i]; }
          for (int64_t q = 0; q < nf; ++q) {
            const int64_t j = fired[q]; const REAL* col = W + j * N;
            for (int64_t i = 0; i < N; ++i) J[i] += col[i] * inv_td;
            rr[j] += inv_td;
          }
        } else {
          for (int64_t i = 0; i < N; ++i) {
            rr[i] = ed * rr[i] + dt * xx[i]; J[i] = ed * J[i] + dt * Jx[i];
            xx[i] = er * xx[i]; Jx[i] = er * Jx[i];
          }
          for (int64_t q = 0; q < nf; ++q) {
            const int64_t j = fired[q]; const REAL* col = W + j * N;
            for (int64_t i = 0; i < N; ++i) Jx[i] += col[i] * inv_trtd;
            xx[j] += inv_trtd;
          }
        }
        if (rates) memcpy(rates + toff, rr, (size_t)N * sizeof(REAL));
      }
      if (rng) rng[k * B + bb] = (int64_t)st;
    }
  }
  free(J); free(Jx); free(cur); free(nz); free(z); free(fired); free(rej);
}

"""

_ESN_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Leaky tanh reservoir h <- h + leak (tanh(W h + W_in x_t + bias + noise_t) - h), W in
   SELL-C format (see sell_slice; rowptr is W's CSR row pointer, used to split the rows over
   threads by nonzeros); x [T, B, I], W_in [N, I], bias [N], noise [T, B, N] or NULL, h [B, N]
   (in-out), states [T, B, N]. Compiled with -ffast-math: the row dot products are
   reassociated (vectorised gathers) and tanh comes from libmvec, so results agree with the
   reference to rounding, not bitwise.

   With nthreads > 1 the rows of every step are split over threads that meet at a barrier
   after each step (the step's state is complete before anyone reads it): one reservoir is
   inherently sequential in time, and one sparse product of a 1000-unit reservoir is tens of
   microseconds, so the barrier spins (then yields, so an oversubscribed machine does not
   starve the other thread). Each row is computed by the same code whichever thread runs it,
   so the states do not depend on the number of threads. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

typedef struct {
  const REAL *x, *W_in, *bias, *noise, *val, *h0;
  const int64_t *rowptr, *sptr;
  const int32_t *col, *perm;
  int64_t B, T, N, I, r0, r1;
  REAL leak;
  REAL* states;
  atomic_int *count, *gen;
  int nthreads;
} esn_job;

static void esn_barrier(atomic_int* count, atomic_int* gen, int n) {
  const int g = atomic_load_explicit(gen, memory_order_acquire);
  if (atomic_fetch_add_explicit(count, 1, memory_order_acq_rel) == n - 1) {
    atomic_store_explicit(count, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(gen, 1, memory_order_release);
  } else {
    int spins = 0;
    while (atomic_load_explicit(gen, memory_order_acquire) == g)
      if (++spins > 2000) { sched_yield(); spins = 0; }
  }
}

/* The sparse product of C = 64 / sizeof(REAL) consecutive rows (one SELL-C slice: Kreutzer
   et al. 2014, with sigma = 1): g-th nonzero of each of the C rows side by side, rows padded
   with zeros to the slice's longest row. A vector gather per group of C nonzeros and no
   horizontal sums or per-row tails: measured 1.6x faster than row-wise CSR dot products
   (whose per-row reduction and tail cost as much as the gathers at ~100 nonzeros per row). */
#define SELL_C (64 / (int64_t)sizeof(REAL))
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
static inline void sell_slice(const esn_job* j, int64_t s, const REAL* hh, REAL* out) {
  const int64_t g0 = j->sptr[s], g1 = j->sptr[s + 1];
  const REAL* v = j->val;
  const int32_t* c = j->col;
#if defined(__AVX512F__)
  if (sizeof(REAL) == 8) {
    const double* h = (const double*)hh;
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t g = g0;
    for (; g + 2 <= g1; g += 2) {
      a0 = _mm512_fmadd_pd(_mm512_loadu_pd((const double*)v + g * 8), _mm512_i32gather_pd(
          _mm256_loadu_si256((const __m256i*)(c + g * 8)), h, 8), a0);
      a1 = _mm512_fmadd_pd(_mm512_loadu_pd((const double*)v + g * 8 + 8), _mm512_i32gather_pd(
          _mm256_loadu_si256((const __m256i*)(c + g * 8 + 8)), h, 8), a1);
    }
    if (g < g1)
      a0 = _mm512_fmadd_pd(_mm512_loadu_pd((const double*)v + g * 8), _mm512_i32gather_pd(
          _mm256_loadu_si256((const __m256i*)(c + g * 8)), h, 8), a0);
    _mm512_storeu_pd((double*)out, _mm512_add_pd(a0, a1));
    return;
  }
  if (sizeof(REAL) == 4) {
    const float* h = (const float*)hh;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t g = g0;
    for (; g + 2 <= g1; g += 2) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps((const float*)v + g * 16), _mm512_i32gather_ps(
          _mm512_loadu_si512((const void*)(c + g * 16)), h, 4), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps((const float*)v + g * 16 + 16), _mm512_i32gather_ps(
          _mm512_loadu_si512((const void*)(c + g * 16 + 16)), h, 4), a1);
    }
    if (g < g1)
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps((const float*)v + g * 16), _mm512_i32gather_ps(
          _mm512_loadu_si512((const void*)(c + g * 16)), h, 4), a0);
    _mm512_storeu_ps((float*)out, _mm512_add_ps(a0, a1));
    return;
  }
#endif
  REAL acc[SELL_C];
  for (int64_t l = 0; l < SELL_C; ++l) acc[l] = 0;
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t l = 0; l < SELL_C; ++l) acc[l] += v[g * SELL_C + l] * hh[c[g * SELL_C + l]];
  for (int64_t l = 0; l < SELL_C; ++l) out[l] = acc[l];
}

static void esn_rows(const esn_job* j) {
  const int64_t B = j->B, T = j->T, N = j->N, I = j->I, r0 = j->r0, r1 = j->r1;
  REAL* pre = (REAL*)malloc((size_t)(r1 - r0 + 1) * sizeof(REAL));
  REAL prod[SELL_C];
  for (int64_t bb = 0; bb < B; ++bb) {
    for (int64_t t = 0; t < T; ++t) {
      const REAL* hh = t ? j->states + ((t - 1) * B + bb) * N : j->h0 + bb * N;
      const REAL* xt = j->x + (t * B + bb) * I;
      REAL* out = j->states + (t * B + bb) * N;
      /* three passes over this thread's rows, each vectorised: drive, sparse product, and
         the leaky tanh update (libmvec's vector tanh) */
      for (int64_t i = r0; i < r1; ++i) {
        REAL d = j->bias[i];
        for (int64_t q = 0; q < I; ++q) d += j->W_in[i * I + q] * xt[q];
        pre[i - r0] = d;
      }
      if (j->noise) {
        const REAL* nz = j->noise + (t * B + bb) * N;
        for (int64_t i = r0; i < r1; ++i) pre[i - r0] += nz[i];
      }
      for (int64_t sl = r0 / SELL_C; sl * SELL_C < r1; ++sl) {  /* r0 is a multiple of 64 */
        sell_slice(j, sl, hh, prod);
        const int64_t i0 = sl * SELL_C, n = r1 - i0 < SELL_C ? r1 - i0 : SELL_C;
        for (int64_t l = 0; l < n; ++l) pre[j->perm[i0 + l] - r0] += prod[l];
      }
      const REAL leak = j->leak;
      for (int64_t i = r0; i < r1; ++i) out[i] = hh[i] + leak * (TANH(pre[i - r0]) - hh[i]);
      if (j->nthreads > 1) esn_barrier(j->count, j->gen, j->nthreads);
    }
  }
  free(pre);
}

typedef struct { esn_job* job; atomic_int* gate; } esn_start;

static void* esn_thread(void* arg) {
  const esn_start* st = (const esn_start*)arg;
  while (!atomic_load_explicit(st->gate, memory_order_acquire)) sched_yield();
  esn_rows(st->job);
  return NULL;
}

void esn_loop(REAL* h, const REAL* x, const REAL* W_in, const REAL* bias, const REAL* noise,
              const int64_t* rowptr, const int64_t* sptr, const int32_t* col, const REAL* val,
              const int32_t* perm, int64_t B, int64_t T,
              int64_t N, int64_t I, double leak_, REAL* states, int64_t nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 64) nthreads = 64;
  if (nthreads > N) nthreads = N;
  atomic_int count = 0, gen = 0, gate = 0;
  esn_job jobs[64];
  esn_start starts[64];
  pthread_t tids[64];
  /* start the helper threads first; they wait at the gate until their rows are known, so a
     thread that fails to start only means fewer participants */
  int n = 1;
  for (int k = 1; k < nthreads; ++k) {
    starts[n] = (esn_start){&jobs[n], &gate};
    if (pthread_create(&tids[n], NULL, esn_thread, &starts[n]) != 0) break;
    ++n;
  }
  /* rows split by nonzeros, so that every participant does about the same work */
  int64_t r = 0;
  for (int k = 0; k < n; ++k) {
    const int64_t r0 = r;
    if (k == n - 1) {
      r = N;
    } else {
      const int64_t goal = rowptr[N] * (k + 1) / n;
      while (r < N && rowptr[r + 1] <= goal) ++r;
      /* boundaries on multiples of 64 rows: every row then falls in the same vector chunk
         (or scalar tail) as in a single-thread run, so results do not depend on the split */
      r = (r + 63) / 64 * 64;
      if (r > N) r = N;
    }
    jobs[k] = (esn_job){x, W_in, bias, noise, val, h, rowptr, sptr, col, perm,
                        B, T, N, I, r0, r,
                        (REAL)leak_, states, &count, &gen, n};
  }
  atomic_store_explicit(&gate, 1, memory_order_release);
  esn_rows(&jobs[0]);
  for (int k = 1; k < n; ++k) pthread_join(tids[k], NULL);
  for (int64_t bb = 0; bb < B; ++bb)
    memcpy(h + bb * N, states + ((T - 1) * B + bb) * N, (size_t)N * sizeof(REAL));
}
"""

_LIBS: dict = {}
_TRIED: dict = {}
# -march=native lets the compiler vectorise the neuron, noise and spike-column loops;
# -ffp-contract=off (and no -ffast-math) keeps every operation rounded as in the torch
# reference, so that spike trains match it exactly.
def _load_extension(dtype: torch.dtype = torch.float64, kind: str = "spiking"):
    """The compiled C loops for ``dtype`` (float32/float64), or None (then the torch loop is
    used). Disabled by ``DYNRNN_NO_CPP=1`` or ``DYNRNN_DISABLE_C=1``."""
    disabled = os.environ.get("DYNRNN_NO_CPP", "0").lower() not in ("", "0", "false", "no")
    if dtype not in (torch.float32, torch.float64) or disabled or not _cbuild.enabled():
        return None
    key = (dtype, kind)
    if key not in _TRIED:
        _TRIED[key] = True
        # the spiking loop in IEEE order (spikes bit-equal to the reference); the ESN loop with
        # fast maths (vectorised tanh); see _cbuild for the cache and the fallback warning
        real = "double" if dtype == torch.float64 else "float"
        defines = {"REAL": real, "TANH": "tanh" if real == "double" else "tanhf"}
        source, math_mode = (
            (_C_SOURCE, _cbuild.EXACT) if kind == "spiking" else (_ESN_SOURCE, _cbuild.FAST_MATH)
        )
        _LIBS[key] = _cbuild.load(source, defines, math_mode)
    return _LIBS.get(key)


def _ptr(t: torch.Tensor | None):
    return ctypes.c_void_p(t.data_ptr() if t is not None else 0)


def cpp_extension_available(dtype: torch.dtype = torch.float64) -> bool:
    """Whether the compiled C loops can be used (compiles them on first call, ~1 s)."""
    return _load_extension(dtype) is not None


def noise_streams(seed: int, n_networks: int, batch_size: int) -> torch.Tensor | None:
    """Independent Gaussian noise streams, one per network and trial (``[K, B]`` int64 states of
    splitmix64 generators feeding a 128-layer Marsaglia-Tsang ziggurat), or None if the C
    loops are unavailable (then noise is drawn with ``torch.randn``)."""
    lib = _load_extension()
    if lib is None:
        return None
    out = torch.empty(int(n_networks), int(batch_size), dtype=torch.int64)
    lib.rng_init(ctypes.c_int64(int(seed) % 2**63), ctypes.c_int64(out.numel()), _ptr(out))
    return out


def noise_streams_draw(rng: torch.Tensor, std: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``std [K, N] * z`` as ``[K, T, B, N]``, z drawn from the streams ``rng [K, B]`` in the
    order (t, neuron) per stream -- exactly the numbers the fused loop draws. Advances rng."""
    lib = _load_extension(std.dtype)
    if lib is None:
        raise RuntimeError("Noise streams need the compiled C loops.")
    K, B = rng.shape
    N = std.shape[-1]
    std = std.contiguous()
    out = torch.empty(K, int(n_steps), B, N, dtype=std.dtype)
    i64 = ctypes.c_int64
    lib.izh_noise(_ptr(rng), _ptr(std), _ptr(out), i64(K), i64(B), i64(int(n_steps)), i64(N))
    return out


def _cpp_loop(lib, state, p, cfg, n_steps, drive, noise, rng, record_rates):
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
    i64 = ctypes.c_int64
    per_net = [v, u, r, x, bias, drive, noise, std, rng_t, a, b, c, d, WT, Wout, eta, spikes,
               rates]  # every one has the network dim K first

    def call(k0, k1):
        lib.izh_loop(
            *[_ptr(t[k0:k1] if t is not None else None) for t in per_net],
            i64(k1 - k0), i64(B), i64(int(n_steps)), i64(N), i64(O),
            ctypes.c_int(SYNAPSES.index(cfg["synapse"])),
            ctypes.c_int(1 if cfg["scheme"] == "half_step" else 0),
            ctypes.c_double(cfg["dt"]), ctypes.c_double(cfg["v_peak"]),
            ctypes.c_double(cfg["tau_rise"]), ctypes.c_double(cfg["tau_decay"]),
        )  # fmt: skip

    # independent networks run on torch's thread count (ctypes releases the GIL); the first,
    # empty call initialises the ziggurat tables before any thread can read them
    call(0, 0)
    _cbuild.parallel_ranges(call, K)
    return (v, u, r, x), spikes, rates


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
    dtype = state[0].dtype
    lib = _load_extension(dtype) if backend in ("auto", "cpp") else None
    if backend == "cpp" and lib is None:
        raise RuntimeError(
            f"The compiled spiking loop is not available for {dtype} (see the earlier warning)."
        )
    with torch.no_grad():
        if lib is not None:
            return _cpp_loop(lib, state, p, cfg, n_steps, drive, noise, rng, record_rates)
        return _torch_loop(state, p, cfg, n_steps, drive, noise, rng, record_rates)


def _esn_threads(n_units: int) -> int:
    """Threads for one reservoir's rows: torch's thread count, but one below 256 units (a step
    is then shorter than the barrier between steps)."""
    return 1 if n_units < 256 else max(1, torch.get_num_threads())


_SELL_SIGMA = 64  # rows sorted by length within blocks of 64 (the thread-split granularity)


def _sell(W: torch.Tensor, dtype: torch.dtype):
    """``W [N, N]`` in SELL-C-sigma (Kreutzer et al. 2014) with C = 64 bytes / element size and
    sigma = 64, as the C loop reads it: ``(rowptr [N+1] (CSR), slice_ptr [S+1], cols int32
    [G, C], vals [G, C], perm int32 [S*C])``. Within each block of 64 rows the rows are sorted
    by their number of nonzeros (so the C rows of a slice have similar lengths and little
    padding: 13% -> ~2% of gathers at 10% density); position p of the sorted order is row
    ``perm[p]``, slice s holds positions ``s*C .. s*C+C-1`` and its g-th group the g-th
    nonzero of each (zero-padded). Blocks never straddle the threads' row ranges (multiples of
    64), so results stay independent of the thread count."""
    C = 64 // torch.empty(0, dtype=dtype).element_size()
    N = W.shape[0]
    rows, cols = W.nonzero(as_tuple=True)  # row-major order
    counts = torch.bincount(rows, minlength=N)
    crow = torch.zeros(N + 1, dtype=torch.int64)
    crow[1:] = counts.cumsum(0)
    S = -(-N // C)
    perm = torch.full((S * C,), N, dtype=torch.int64)  # N marks padding positions
    for b0 in range(0, N, _SELL_SIGMA):
        b1 = min(N, b0 + _SELL_SIGMA)
        perm[b0:b1] = b0 + torch.argsort(-counts[b0:b1], stable=True)
    where = torch.empty(N, dtype=torch.int64)  # sorted position of each row
    where[perm[:N]] = torch.arange(N)
    padded_counts = torch.zeros(S * C, dtype=torch.int64)
    padded_counts[:N] = counts[perm[:N]]
    slice_len = padded_counts.view(S, C).amax(1)
    sptr = torch.zeros(S + 1, dtype=torch.int64)
    sptr[1:] = slice_len.cumsum(0)
    G = int(sptr[-1])
    pos = torch.arange(len(rows)) - crow[rows]  # index of the nonzero within its row
    p = where[rows]
    flat = (sptr[p // C] + pos) * C + p % C
    sval = torch.zeros(G * C, dtype=dtype)
    scol = torch.zeros(G * C, dtype=torch.int32)
    sval[flat] = W[rows, cols].to(dtype)
    scol[flat] = cols.to(torch.int32)
    return crow, sptr, scol, sval, perm.to(torch.int32)


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
    one network, ``W`` in CSR (compiled C), over ``x [T, B, I]`` (``noise [T, B, N]`` or None);
    returns states ``[T, B, N]``, or None if the compiled loops are unavailable.

    Shapes: ``h0 [B, N]``, ``W_in [N, I]``, ``bias [N]``, ``W [N, N]`` (dense), with
    ``T, B >= 1``; the C loop reads raw memory, so every shape is checked first (ValueError /
    TypeError naming the argument)."""
    _check_esn_args(h0, x, W_in, bias, W, leak, noise)
    dtype = h0.dtype
    lib = _load_extension(dtype, "esn")
    if lib is None:
        return None
    with torch.no_grad():
        crow, sptr, cols, vals, perm = _sell(W, dtype)
        h = h0.contiguous().clone()
        x = x.to(dtype).contiguous()
        W_in, bias = W_in.to(dtype).contiguous(), bias.to(dtype).contiguous()
        if noise is not None:
            noise = noise.to(dtype).contiguous()
        T, B, I = x.shape
        N = W.shape[0]
        states = POOL.empty((T, B, N), dtype)  # no page faults on a reused 400 MB buffer
        i64 = ctypes.c_int64
        lib.esn_loop(
            _ptr(h), _ptr(x), _ptr(W_in), _ptr(bias), _ptr(noise), _ptr(crow), _ptr(sptr),
            _ptr(cols), _ptr(vals), _ptr(perm), i64(B), i64(T), i64(N), i64(I),
            ctypes.c_double(float(leak)), _ptr(states), i64(_esn_threads(N)),
        )  # fmt: skip
        return states
