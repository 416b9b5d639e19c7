#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vector_math.h"

/* The echo-state loop of dynrnn (dynrnn/kernels/esn.py): K leaky tanh reservoirs
   h <- h + leak (tanh(W h + W_in x_t + bias + noise_t) - h), one after the other, W in
   SELL-C format (see sell_slice and dynrnn/kernels/_sparse.py; rowptr is W's CSR row pointer,
   used to split the rows over threads by nonzeros). Per network: x [T, B, I], W_in [N, I],
   bias [N], noise [T, B, N] or NULL, h [B, N] (in-out), states [T, B, N]. The row dot
   products are summed in SELL-C order (vectorised gathers), so results agree with the
   reference to rounding, not bitwise. tanh is libmvec's vector tanh (vector_math.h, at most
   4 ulp) in the default IEEE build too; the kernel also tolerates -ffast-math, used only when
   the user opts in (see _cbuild.py).

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
  int64_t B, T, N, I, r0, r1, t0, t1;
  REAL leak;
  REAL* states;
  /* trials b0 .. b1-1 in the SELL mode; lanes > 0 selects the lane mode (see lane_step):
     CSR ccol / cval (W's own row order, rows by rowptr), lanes lane_b / lane_t0 / lane_w0,
     interleaved states H [2, N, LANES] (the step's old and new), check [LANES, N] */
  int64_t b0, b1;
  int lanes;
  const int32_t* ccol;
  const REAL* cval;
  const int64_t *lane_b, *lane_t0, *lane_w0;
  REAL *H, *check;
  atomic_int *count, *gen;
  int nthreads;
  /* threaded segments: the first thread watches the time, and when the steps so far took
     longer than budget seconds per step (plus slack), it ends the segment after the current
     step for every thread (stop_at, read by all after the step's barrier) */
  atomic_llong* stop_at;
  double budget, slack;
} esn_job;

static double esn_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

/* tanh of p[0 .. n-1] in place, n a multiple of SELL_C: always whole vectors of libmvec's
   vector tanh, never the scalar libm tanh of a loop's tail (the two differ in the last bits).
   Both modes (sell_step, lane_step) call this one function, so that a trajectory's states do
   not depend on the mode, on where a thread's rows end, or on N's remainder mod SELL_C. */
static inline int64_t round_lanes(int64_t n) { return (n + SELL_C - 1) / SELL_C * SELL_C; }
static __attribute__((noinline)) void tanh_inplace(REAL* p, int64_t n) {
  for (int64_t m = 0; m < n; ++m) p[m] = TANH(p[m]);
}

/* One step of one trial on this job's rows (SELL mode): hh the previous state [N], xt the
   input [I], nz the noise [N] or NULL, out the new state [N]; pre is scratch
   [round_lanes(r1 - r0)]. */
static void sell_step(const esn_job* j, const REAL* hh, const REAL* xt, const REAL* nz,
                      REAL* out, REAL* pre) {
  const int64_t I = j->I, r0 = j->r0, r1 = j->r1;
  REAL prod[SELL_C];
  /* three passes over this thread's rows, each vectorised: drive, sparse product, and
     the leaky tanh update (libmvec's vector tanh) */
  /* bias + W_in[i, 0] x_0 + W_in[i, 1] x_1 + ..., summed in this order for every row;
     the loop over rows innermost, so that it is vectorised (contiguous for I = 1) */
  for (int64_t i = r0; i < r1; ++i) pre[i - r0] = j->bias[i];
  for (int64_t q = 0; q < I; ++q) {
    const REAL xq = xt[q];
    const REAL* w = j->W_in + q;
    if (I == 1)
      for (int64_t i = r0; i < r1; ++i) pre[i - r0] += w[i] * xq;
    else
      for (int64_t i = r0; i < r1; ++i) pre[i - r0] += w[i * I] * xq;
  }
  if (nz)
    for (int64_t i = r0; i < r1; ++i) pre[i - r0] += nz[i];
  for (int64_t sl = r0 / SELL_C; sl * SELL_C < r1; ++sl) {  /* r0 is a multiple of 64 */
    sell_slice(j, sl, hh, prod);
    const int64_t i0 = sl * SELL_C, n = r1 - i0 < SELL_C ? r1 - i0 : SELL_C;
    for (int64_t l = 0; l < n; ++l) pre[j->perm[i0 + l] - r0] += prod[l];
  }
  const int64_t rows = r1 - r0;
  for (int64_t m = rows; m < round_lanes(rows); ++m) pre[m] = 0;
  tanh_inplace(pre, round_lanes(rows));
  const REAL leak = j->leak;
  for (int64_t i = r0; i < r1; ++i) out[i] = hh[i] + leak * (pre[i - r0] - hh[i]);
}

/* The lane mode: LANES = SELL_C trajectories of one network stepped together (lane l: trial
   lane_b[l] from global time lane_t0[l]; its states are written from time lane_w0[l] on, and
   its state at time lane_w0[l] - 1 goes to check[l] when lane_w0[l] > lane_t0[l]). Their states
   are interleaved, H[i * LANES + l], so the sparse product reads, per nonzero, one contiguous
   vector of the LANES lanes' values of its column instead of gathering (a CSR product with
   LANES right-hand sides); lanes past j->lanes are idle (zero input, never written). Each row is
   summed exactly as sell_slice sums it (the same accumulators in the same order), and the
   drive and update are the same expressions as sell_step's, so a trajectory gets the same
   states in either mode. */
#define LANES SELL_C
static inline void lane_dot(const esn_job* j, int64_t i, const REAL* H, REAL* out) {
  const int64_t p0 = j->rowptr[i], p1 = j->rowptr[i + 1];
  const REAL* v = j->cval;
  const int32_t* c = j->ccol;
#if defined(__AVX512F__)
  if (sizeof(REAL) == 8) {
    const double* h = (const double*)H;
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t n = p0;
    for (; n + 2 <= p1; n += 2) {
      a0 = _mm512_fmadd_pd(_mm512_set1_pd((double)v[n]),
                           _mm512_loadu_pd(h + (int64_t)c[n] * 8), a0);
      a1 = _mm512_fmadd_pd(_mm512_set1_pd((double)v[n + 1]),
                           _mm512_loadu_pd(h + (int64_t)c[n + 1] * 8), a1);
    }
    if (n < p1)
      a0 = _mm512_fmadd_pd(_mm512_set1_pd((double)v[n]),
                           _mm512_loadu_pd(h + (int64_t)c[n] * 8), a0);
    _mm512_storeu_pd((double*)out, _mm512_add_pd(a0, a1));
    return;
  }
  if (sizeof(REAL) == 4) {
    const float* h = (const float*)H;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t n = p0;
    for (; n + 2 <= p1; n += 2) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps((float)v[n]),
                           _mm512_loadu_ps(h + (int64_t)c[n] * 16), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps((float)v[n + 1]),
                           _mm512_loadu_ps(h + (int64_t)c[n + 1] * 16), a1);
    }
    if (n < p1)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps((float)v[n]),
                           _mm512_loadu_ps(h + (int64_t)c[n] * 16), a0);
    _mm512_storeu_ps((float*)out, _mm512_add_ps(a0, a1));
    return;
  }
#endif
  REAL acc[LANES];
  for (int64_t l = 0; l < LANES; ++l) acc[l] = 0;
  for (int64_t n = p0; n < p1; ++n) {
    const REAL w = v[n];
    const REAL* hc = H + (int64_t)c[n] * LANES;
    for (int64_t l = 0; l < LANES; ++l) acc[l] += w * hc[l];
  }
  for (int64_t l = 0; l < LANES; ++l) out[l] = acc[l];
}

/* Lockstep step tau of the lanes on this job's rows; xl is scratch [I, LANES], P scratch
   [r1 - r0, LANES]. Three passes, as in sell_step: the pre-activations of all rows, the
   vector tanh over them (one contiguous loop, so that libmvec's vector tanh is used), the
   update. */
static void lane_step(const esn_job* j, int64_t tau, REAL* xl, REAL* P) {
  const int64_t B = j->B, T = j->T, N = j->N, I = j->I, r0 = j->r0, r1 = j->r1;
  const REAL* Hold = j->H + (tau & 1) * N * LANES;
  REAL* Hnew = j->H + ((tau + 1) & 1) * N * LANES;
  int64_t g[LANES], b[LANES];
  int active[LANES], write[LANES], capture[LANES];
  for (int l = 0; l < LANES; ++l) {
    active[l] = l < j->lanes && j->lane_t0[l] + tau < T;
    g[l] = active[l] ? j->lane_t0[l] + tau : 0;
    b[l] = active[l] ? j->lane_b[l] : 0;
    write[l] = active[l] && g[l] >= j->lane_w0[l];
    capture[l] = active[l] && g[l] == j->lane_w0[l] - 1;
    for (int64_t q = 0; q < I; ++q) xl[q * LANES + l] = active[l] ? j->x[(g[l] * B + b[l]) * I + q] : 0;
  }
  for (int64_t i = r0; i < r1; ++i) {
    REAL* pre = P + (i - r0) * LANES;
    REAL prod[LANES];
    for (int l = 0; l < LANES; ++l) pre[l] = j->bias[i];
    for (int64_t q = 0; q < I; ++q) {
      const REAL w = j->W_in[i * I + q];
      for (int l = 0; l < LANES; ++l) pre[l] += w * xl[q * LANES + l];
    }
    if (j->noise)
      for (int l = 0; l < LANES; ++l)
        if (active[l]) pre[l] += j->noise[(g[l] * B + b[l]) * N + i];
    lane_dot(j, i, Hold, prod);
    for (int l = 0; l < LANES; ++l) pre[l] += prod[l];
  }
  const int64_t M = (r1 - r0) * LANES;
  tanh_inplace(P, M);
  const REAL leak = j->leak;
  const REAL* ho = Hold + r0 * LANES;
  REAL* hn = Hnew + r0 * LANES;
  for (int64_t m = 0; m < M; ++m) hn[m] = ho[m] + leak * (P[m] - ho[m]);
  for (int l = 0; l < LANES; ++l) {
    if (write[l]) {
      REAL* out = j->states + (g[l] * B + b[l]) * N;
      for (int64_t i = r0; i < r1; ++i) out[i] = hn[(i - r0) * LANES + l];
    }
    if (capture[l])
      for (int64_t i = r0; i < r1; ++i) j->check[l * N + i] = hn[(i - r0) * LANES + l];
  }
}

static void esn_rows(const esn_job* j) {
  const int64_t B = j->B, N = j->N, I = j->I;
  const int64_t rows = j->r1 - j->r0;
  REAL* pre = (REAL*)malloc((size_t)(round_lanes(rows + 1) * (j->lanes ? LANES : 1) +
                                     I * LANES) * sizeof(REAL));
  const int watch = j->nthreads > 1 && j->r0 == 0 && j->budget > 0.0;
  const double start = watch ? esn_now() : 0.0;
  for (int64_t t = j->t0; t < j->t1; ++t) {
    if (j->lanes) {
      lane_step(j, t, pre + (rows + 1) * LANES, pre);
    } else {
      for (int64_t bb = j->b0; bb < j->b1; ++bb) {
        const REAL* hh = t ? j->states + ((t - 1) * B + bb) * N : j->h0 + bb * N;
        sell_step(j, hh, j->x + (t * B + bb) * I,
                  j->noise ? j->noise + (t * B + bb) * N : NULL,
                  j->states + (t * B + bb) * N, pre);
      }
    }
    if (j->nthreads > 1) {
      if (watch && esn_now() - start > j->budget * (double)(t + 1 - j->t0) + j->slack)
        atomic_store_explicit(j->stop_at, t + 1, memory_order_relaxed);
      esn_barrier(j->count, j->gen, j->nthreads);  /* publishes stop_at to every thread */
      if (t + 1 >= atomic_load_explicit(j->stop_at, memory_order_relaxed)) break;
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

/* Steps [t0, t1) of every trial with the n row ranges of jobs (n = 1: one job, all rows):
   helper threads are started for the segment and joined at its end, so the states up to the
   last step run are complete when it returns. With n > 1 and budget > 0 the segment ends early
   once its steps took longer than budget seconds per step plus slack (see esn_job). Returns
   the wall time in seconds and sets *t_end to the step after the last one run, or returns -1
   (nothing run) when a helper thread could not be started. */
static double esn_segment(esn_job* jobs, int n, int64_t t0, int64_t t1, atomic_int* count,
                          double budget, int64_t* t_end) {
  const double start = esn_now();
  atomic_llong stop_at = t1;
  for (int k = 0; k < n; ++k) {
    jobs[k].t0 = t0;
    jobs[k].t1 = t1;
    jobs[k].nthreads = n;
    jobs[k].stop_at = &stop_at;
    jobs[k].budget = budget;
    jobs[k].slack = 5e-4;  /* starting the threads */
  }
  atomic_int gate = 0;
  esn_start starts[64];
  pthread_t tids[64];
  int started = 1;
  for (int k = 1; k < n; ++k) {
    starts[k] = (esn_start){&jobs[k], &gate};
    if (pthread_create(&tids[k], NULL, esn_thread, &starts[k]) != 0) break;
    ++started;
  }
  if (started < n) {  /* could not start every thread: the caller runs the segment alone */
    for (int k = 1; k < started; ++k) jobs[k].t1 = jobs[k].t0;  /* they leave at once */
    atomic_store_explicit(&gate, 1, memory_order_release);
    for (int k = 1; k < started; ++k) pthread_join(tids[k], NULL);
    return -1.0;
  }
  atomic_store_explicit(count, 0, memory_order_relaxed);
  atomic_store_explicit(&gate, 1, memory_order_release);
  esn_rows(&jobs[0]);
  for (int k = 1; k < n; ++k) pthread_join(tids[k], NULL);
  *t_end = (int64_t)atomic_load(&stop_at);
  return esn_now() - start;
}

/* The thread count is chosen by measurement, segment by segment. Steps run in segments (the
   first of ESN_SEGMENT steps, then as many as take about ESN_SEGMENT_SECONDS on one thread, so
   that starting the threads of a segment costs little); the first segment runs on one thread
   and the second on nthreads, and the run continues with whichever took less time per step.
   The choice is measured again every ESN_REPROBE segments, and a threaded segment slower per
   step than the last single-threaded one switches back at once. The per-step barrier runs at
   the pace of the slowest thread, so a thread that shares its core with another process (a
   busy machine: notebooks next to other work, several workers on a node) can make the
   threaded loop many times slower than one thread; a probe taken before the run cannot see
   this reliably (a thread that has slept is favoured by the scheduler for its first
   milliseconds), the run's own steps can. The states do not depend on the choice: each row
   is computed by the same code whatever the split. Runs of at most 2 ESN_SEGMENT steps use
   nthreads as given (the caller's probe). */
#define ESN_SEGMENT 128
#define ESN_SEGMENT_SECONDS 4e-3
#define ESN_REPROBE 16

/* Steps [0, steps) of the jobs' mode (SELL trials b0 .. b1-1, or the lanes), on one thread or
   on n, chosen by measurement as described above. */
static void esn_steps(esn_job* jobs, esn_job* single, int n, int64_t steps, atomic_int* count) {
  int64_t reached = 0;
  if (n == 1 || steps <= 2 * ESN_SEGMENT) {
    if (n == 1 || esn_segment(jobs, n, 0, steps, count, 0.0, &reached) < 0.0)
      esn_segment(single, 1, 0, steps, count, 0.0, &reached);
    return;
  }
  double per_single = 0.0;
  int use_threads = 0, segment = 0, threads_ok = 1;
  int64_t length = ESN_SEGMENT;
  for (int64_t t0 = 0; t0 < steps; ++segment) {
    const int64_t t1 = t0 + length < steps ? t0 + length : steps;
    const int phase = segment % ESN_REPROBE;
    int threaded = threads_ok && (phase == 1 || (phase > 1 && use_threads));
    /* a threaded segment ends early once it is 1.5x slower than one thread */
    double dt = threaded ? esn_segment(jobs, n, t0, t1, count, 1.5 * per_single, &reached)
                         : -1.0;
    if (dt < 0.0) {  /* single-threaded, or the threads could not be started */
      if (threaded) threads_ok = 0;
      threaded = 0;
      dt = esn_segment(single, 1, t0, t1, count, 0.0, &reached);
    }
    const double per_step = dt / (double)(reached - t0);
    if (threaded) {
      if (phase == 1) use_threads = per_step < per_single;
      if (per_step > per_single) use_threads = 0;
    } else {
      per_single = per_step;
      if (segment == 0 && per_single > 0.0) {  /* segments of about ESN_SEGMENT_SECONDS */
        const double want = ESN_SEGMENT_SECONDS / per_single;
        length = want < ESN_SEGMENT ? ESN_SEGMENT : want > 65536 ? 65536 : (int64_t)want;
      }
    }
    t0 = reached;
  }
}

/* When to step trajectories together (the lane mode) and when to cut one trial's time into
   chunks. LANE_COST: the time of one lockstep step of LANES lanes over that of one trial's SELL
   step, measured at 1000 units, 10% density (Intel Xeon, AVX-512, 1 thread): 3.1 for float64
   (8 lanes, 82 us against 26 us) and 4.2 for float32 (16 lanes, 89 against 21 us): the lanes
   load one 64-byte vector per nonzero (from L2: the lanes' states are 64 bytes per unit), the
   SELL loop one gather per 8 (or 16) nonzeros. A group of k trials runs in lanes when
   LANE_COST < 0.8 k (float64: 4 or more, float32: 6 or more), the others step by step.

   Time chunks (Jaeger's echo-state property: the state forgets where it started): a trial of
   T steps is cut into C chunks that run as C lanes; chunk 0 starts at time 0 from h0 and is the
   exact recursion; chunk c >= 1 starts from h0 CHUNK_WASHOUT / leak steps (the washout W)
   before the first step it writes, s_c, so that by s_c it has forgotten its start. Its state
   at s_c - 1 is then compared with chunk c-1's state there (which is exact when chunk c-1 is):
   if the largest difference is at most CHUNK_TOL (64 ulp of 1, times max(1, max |h|)), chunk
   c starts within rounding of the exact state and is kept; otherwise it is recomputed from
   chunk c-1's state step by step (SELL) until it agrees with the stored chunk to CHUNK_TOL (at
   once, when chunk c had nearly forgotten its start; the whole chunk, when the reservoir does
   not forget: no echo-state property). So the states are those of the step-by-step recursion
   to rounding, whatever the reservoir (measured: ~5e-16 with the echo-state property and no
   repair; ~2e-14 at spectral radius 1.5, leak 1, after 354 of 3000 steps were recomputed;
   bitwise equal for a chaotic reservoir, all of whose chunks are recomputed, since a step is
   computed identically in the two modes). The washout: two tanh reservoirs of 1000 units from
   different starts (spectral radius 0.9-1.1, 10% density, sinusoidal input) came within 1e-13
   of each other after 94 steps at leak 1, 310-533 at leak 0.3 and 1307 at leak 0.1 (then stay
   at the rounding floor, 2-4e-16, not bitwise equal), hence 192 / leak. Chunking is used when
   every chunk writes at least 2 W steps and the lanes cost less than 0.8 of the trials'
   step-by-step time. */
#define LANE_COST (sizeof(REAL) == 8 ? 3.1 : 4.2)
#define CHUNK_WASHOUT 192.0
#define CHUNK_TOL ((REAL)64 * (sizeof(REAL) == 8 ? (REAL)DBL_EPSILON : (REAL)FLT_EPSILON))

static REAL max_abs(const REAL* a, int64_t N) {
  REAL m = 0;
  for (int64_t i = 0; i < N; ++i) m = fabs(a[i]) > m ? fabs(a[i]) : m;
  return m;
}

static REAL max_abs_diff(const REAL* a, const REAL* b, int64_t N) {
  REAL m = 0;
  for (int64_t i = 0; i < N; ++i) m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
  return m;
}

/* Recompute trial b's steps s .. e-1 (s >= 1) from its state at s - 1, one thread, SELL, until
   a recomputed state agrees with the stored one to CHUNK_TOL; returns the steps recomputed. */
static int64_t esn_repair(const esn_job* single, int64_t b, int64_t s, int64_t e, REAL* tmp,
                          REAL* pre) {
  const int64_t B = single->B, N = single->N, I = single->I;
  int64_t done = 0;
  for (int64_t t = s; t < e; ++t) {
    REAL* st = single->states + (t * B + b) * N;
    sell_step(single, st - B * N, single->x + (t * B + b) * I,
              single->noise ? single->noise + (t * B + b) * N : NULL, tmp, pre);
    const REAL d = max_abs_diff(tmp, st, N), scale = max_abs(tmp, N);
    memcpy(st, tmp, (size_t)N * sizeof(REAL));
    ++done;
    if (d <= CHUNK_TOL * (scale > 1 ? scale : 1)) break;
  }
  return done;
}

static void set_mode(esn_job* jobs, int n, esn_job* single, int64_t b0, int64_t b1, int lanes,
                     const int64_t* lane_b, const int64_t* lane_t0, const int64_t* lane_w0) {
  for (int k = 0; k <= n; ++k) {
    esn_job* j = k < n ? &jobs[k] : single;
    j->b0 = b0;
    j->b1 = b1;
    j->lanes = lanes;
    j->lane_b = lane_b;
    j->lane_t0 = lane_t0;
    j->lane_w0 = lane_w0;
  }
}

/* One network; info[0] = the number of time chunks per trial (1: none), info[1] = the steps
   recomputed by the chunks' checks. */
static void esn_net(REAL* h, const REAL* x, const REAL* W_in, const REAL* bias,
                       const REAL* noise, const int64_t* rowptr, const int64_t* sptr,
                       const int32_t* col, const REAL* val, const int32_t* perm,
                       const int32_t* ccol, const REAL* cval, int64_t B, int64_t T, int64_t N,
                       int64_t I, double leak_, REAL* states, int64_t nthreads,
                       int64_t time_chunks, int64_t* info) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 64) nthreads = 64;
  if (nthreads > N) nthreads = N;
  atomic_int count = 0, gen = 0;
  esn_job jobs[64], single;
  const int n = (int)nthreads;
  REAL* H = (REAL*)aligned_alloc(64, (size_t)(2 * N * LANES) * sizeof(REAL));
  /* check [LANES, N], then esn_repair's scratch: a state [N] and sell_step's pre */
  REAL* check = (REAL*)malloc((size_t)(LANES * N + N + round_lanes(N)) * sizeof(REAL));
  /* rows split by nonzeros, so that every participant does about the same work */
  int64_t r = 0;
  for (int k = 0; k <= n; ++k) {
    const int64_t r0 = k < n ? r : 0;
    if (k == n) {
      r = N;
    } else if (k == n - 1) {
      r = N;
    } else {
      const int64_t goal = rowptr[N] * (k + 1) / n;
      while (r < N && rowptr[r + 1] <= goal) ++r;
      /* boundaries on multiples of 64 rows: every row then falls in the same vector chunk
         (or scalar tail) as in a single-thread run, so results do not depend on the split */
      r = (r + 63) / 64 * 64;
      if (r > N) r = N;
    }
    esn_job* j = k < n ? &jobs[k] : &single;
    *j = (esn_job){x, W_in, bias, noise, val, h, rowptr, sptr, col, perm,
                   B, T, N, I, r0, r, 0, 0, (REAL)leak_, states,
                   0, B, 0, ccol, cval, NULL, NULL, NULL, H, check,
                   &count, &gen, k < n ? n : 1, NULL, 0.0, 0.0};
  }
  /* the plan: C chunks per trial (C >= 2 only when B <= LANES / 2), or groups of trials */
  int64_t C = 1, W = 0, Q = T;
  if (time_chunks && B <= LANES / 2 && T > 1) {
    W = (int64_t)ceil(CHUNK_WASHOUT / leak_);
    if (W < 16) W = 16;
    for (int64_t c = LANES / B; c >= 2; --c) {
      const int64_t q = (T - W + c - 1) / c;
      if (q >= 2 * W && (double)(W + q) * LANE_COST < 0.8 * (double)(T * B)) {
        C = c;
        Q = q;
        break;
      }
    }
  }
  int64_t lane_b[LANES], lane_t0[LANES], lane_w0[LANES], repaired = 0;
  const int64_t tasks = B * C;
  int64_t first_sell = B;  /* trials first_sell .. B-1 run in the SELL mode */
  if (C == 1) first_sell = LANE_COST < 0.8 * (double)(B % LANES) ? B : B - B % LANES;
  for (int64_t t0 = 0; t0 < (C == 1 ? first_sell : tasks); t0 += LANES) {
    const int lanes = (int)(tasks - t0 < LANES ? tasks - t0 : LANES);
    for (int l = 0; l < LANES; ++l) {
      const int64_t task = t0 + (l < lanes ? l : 0), b = task / C, c = task % C;
      lane_b[l] = b;
      lane_t0[l] = c ? W + c * Q - W : 0;
      lane_w0[l] = c ? W + c * Q : 0;
      for (int64_t i = 0; i < N; ++i) H[i * LANES + l] = l < lanes ? h[b * N + i] : 0;
    }
    set_mode(jobs, n, &single, 0, B, lanes, lane_b, lane_t0, lane_w0);
    esn_steps(jobs, &single, n, C == 1 ? T : W + Q, &count);
  }
  if (C > 1) {  /* check each chunk against its predecessor, in order; repair where needed */
    set_mode(jobs, n, &single, 0, B, 0, NULL, NULL, NULL);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 1; c < C; ++c) {
        const int64_t s = W + c * Q, e = s + Q < T ? s + Q : T;
        if (s >= T) break;
        const REAL* ref = states + ((s - 1) * B + b) * N;
        const REAL scale = max_abs(ref, N);
        if (max_abs_diff(check + (b * C + c) * N, ref, N) > CHUNK_TOL * (scale > 1 ? scale : 1))
          repaired += esn_repair(&single, b, s, e, check + LANES * N, check + LANES * N + N);
      }
  }
  if (first_sell < B) {
    set_mode(jobs, n, &single, first_sell, B, 0, NULL, NULL, NULL);
    esn_steps(jobs, &single, n, T, &count);
  }
  for (int64_t bb = 0; bb < B; ++bb)
    memcpy(h + bb * N, states + ((T - 1) * B + bb) * N, (size_t)N * sizeof(REAL));
  free(H);
  free(check);
  info[0] = C;
  info[1] = repaired;
}

/* K networks: h [K, B, N], x [K or 1, T, B, I] (x_stride = T B I, or 0 when shared), W_in
   [K, N, I], bias [K, N], noise [K, T, B, N] or NULL, rowptr [K, N + 1] (per network), sptr
   [K, S + 1] (global group indices into col / val [G, C]), perm [K, S C], ccol / cval: the
   CSR nonzeros of all networks in order (network k's from csr_off[k]), leak [K], states
   [K, T, B, N]; time_chunks: allow chunks in time (see above); info [K, 2]: per network, the
   time chunks per trial and the steps the chunks' checks recomputed (see esn_net). */
void esn_loop(REAL* h, const REAL* x, int64_t x_stride, const REAL* W_in, const REAL* bias,
                 const REAL* noise, const int64_t* rowptr, const int64_t* sptr,
                 const int32_t* col, const REAL* val, const int32_t* perm, const int32_t* ccol,
                 const REAL* cval, const int64_t* csr_off, const double* leak, int64_t K,
                 int64_t B, int64_t T, int64_t N, int64_t I, REAL* states, int64_t nthreads,
                 int64_t time_chunks, int64_t* info) {
  const int64_t S = (N + SELL_C - 1) / SELL_C;
  for (int64_t k = 0; k < K; ++k)
    esn_net(h + k * B * N, x + k * x_stride, W_in + k * N * I, bias + k * N,
                        noise ? noise + k * T * B * N : NULL, rowptr + k * (N + 1),
                        sptr + k * (S + 1), col, val, perm + k * S * SELL_C,
                        ccol + csr_off[k], cval + csr_off[k], B, T, N, I, leak[k],
                        states + k * T * B * N, nthreads, time_chunks, info + 2 * k);
}
