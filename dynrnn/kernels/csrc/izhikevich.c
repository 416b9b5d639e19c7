/* The Izhikevich (2003) time loop of dynrnn (dynrnn/kernels/izhikevich.py), compiled with
   REAL = double or float, in IEEE order (-ffp-contract=off, no fast maths) so that its spikes
   equal those of the torch loops in float64. The maths of one step is
   dynrnn/functional/izhikevich.py.

   Noise: one splitmix64 stream per network and trial feeding a 128-layer Marsaglia-Tsang
   ziggurat; dynrnn/kernels/_noise.py is the same generator in torch, sample for sample. The
   N samples of a step are a block: sample i is the ziggurat on mix64(s + (i + 1) GAMMA)
   (vectorisable), the state then moves past the block, and the ~1.2% of samples rejected by
   the fast test are redone in index order from the stream. The ziggurat tables are computed
   once in Python and handed over (zig_set), so both paths use the same tables. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t GAMMA = 0x9E3779B97F4A7C15ULL;
static double KN[128], WN[128], FN[128];

void zig_set(const double* kn, const double* wn, const double* fn) {
  memcpy(KN, kn, sizeof(KN));
  memcpy(WN, wn, sizeof(WN));
  memcpy(FN, fn, sizeof(FN));
}

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static inline uint64_t sm64(uint64_t* s) { *s += GAMMA; return mix64(*s); }
static inline double uni01(uint64_t* s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

/* rejection branch for a first draw (hz, iz) that failed the fast test: the ziggurat's wedge
   and tail tests, further draws from the stream s */
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

/* out[i] = sd[i] * z_i for the block of n samples at stream state *s: draw i is the (i+1)-th
   output of the stream (a vectorisable pass, ~98.8% accepted by the fast test); the state
   then moves past the block, and the rejected samples are redone in index order with further
   draws from the stream */
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

/* noise[k, t, b, :] = gauss_block(stream (k, b)) for t = 0..T-1; advances rng [K, B] */
void izh_noise(int64_t* rng, const REAL* sd, REAL* noise, int64_t K, int64_t B, int64_t T,
               int64_t N) {
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

/* The Izhikevich time loop of K networks x B trials (the step of functional/izhikevich.py).
   Layouts: state v, u, r, x [K, B, N] (in-out); bias, a, b, c, d [K, N]; drive, noise
   [K, T, B, N] or NULL; sd [K, N] with rng [K, B] (in-kernel noise) or NULL; WT [K, N, N]
   (row j = outgoing weights of neuron j); Wout [K, O, N], eta [K, N, O] (NULL = no feedback);
   outputs spikes [K, T, B, N] (uint8), rates [K, T, B, N] or NULL, hist [K, T, B, 4N] (the
   state [v, u, r, x] after every step) or NULL.
   synapse 0 delta, 1 exp, 2 double_exp; half 1 = Izhikevich half steps, 0 = Euler. */
void izh_loop(REAL* v, REAL* u, REAL* r, REAL* x, const REAL* bias, const REAL* drive,
              const REAL* noise, const REAL* sd, int64_t* rng, const REAL* a, const REAL* b,
              const REAL* c, const REAL* d, const REAL* WT, const REAL* Wout, const REAL* eta,
              uint8_t* spikes, REAL* rates, REAL* hist, int64_t K, int64_t B, int64_t T,
              int64_t N, int64_t O, int synapse, int half, double dt_, double vpeak_, double tr_,
              double td_) {
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
        if (hist) {
          REAL* o = hist + 4 * toff;
          memcpy(o, vv, (size_t)N * sizeof(REAL));
          memcpy(o + N, uu, (size_t)N * sizeof(REAL));
          memcpy(o + 2 * N, rr, (size_t)N * sizeof(REAL));
          memcpy(o + 3 * N, xx, (size_t)N * sizeof(REAL));
        }
      }
      if (rng) rng[k * B + bb] = (int64_t)st;
    }
  }
  free(J); free(Jx); free(cur); free(nz); free(z); free(fired); free(rej);
}

