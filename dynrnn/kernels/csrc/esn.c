#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
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

static void esn_rows(const esn_job* j) {
  const int64_t B = j->B, N = j->N, I = j->I, r0 = j->r0, r1 = j->r1;
  REAL* pre = (REAL*)malloc((size_t)(r1 - r0 + 1) * sizeof(REAL));
  REAL prod[SELL_C];
  const int watch = j->nthreads > 1 && j->r0 == 0 && j->budget > 0.0;
  const double start = watch ? esn_now() : 0.0;
  for (int64_t t = j->t0; t < j->t1; ++t) {
    for (int64_t bb = 0; bb < B; ++bb) {
      const REAL* hh = t ? j->states + ((t - 1) * B + bb) * N : j->h0 + bb * N;
      const REAL* xt = j->x + (t * B + bb) * I;
      REAL* out = j->states + (t * B + bb) * N;
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

static void esn_net(REAL* h, const REAL* x, const REAL* W_in, const REAL* bias,
                    const REAL* noise, const int64_t* rowptr, const int64_t* sptr,
                    const int32_t* col, const REAL* val, const int32_t* perm, int64_t B,
                    int64_t T, int64_t N, int64_t I, double leak_, REAL* states,
                    int64_t nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 64) nthreads = 64;
  if (nthreads > N) nthreads = N;
  atomic_int count = 0, gen = 0;
  esn_job jobs[64], single;
  const int n = (int)nthreads;
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
                        B, T, N, I, r0, r, 0, 0,
                        (REAL)leak_, states, &count, &gen, n, NULL, 0.0, 0.0};
  }
  single = (esn_job){x, W_in, bias, noise, val, h, rowptr, sptr, col, perm,
                     B, T, N, I, 0, N, 0, 0, (REAL)leak_, states, &count, &gen, 1, NULL, 0.0,
                     0.0};
  int64_t reached = 0;
  if (n == 1 || T <= 2 * ESN_SEGMENT) {
    if (n == 1 || esn_segment(jobs, n, 0, T, &count, 0.0, &reached) < 0.0)
      esn_segment(&single, 1, 0, T, &count, 0.0, &reached);
  } else {
    double per_single = 0.0;
    int use_threads = 0, segment = 0, threads_ok = 1;
    int64_t length = ESN_SEGMENT;
    for (int64_t t0 = 0; t0 < T; ++segment) {
      const int64_t t1 = t0 + length < T ? t0 + length : T;
      const int phase = segment % ESN_REPROBE;
      int threaded = threads_ok && (phase == 1 || (phase > 1 && use_threads));
      /* a threaded segment ends early once it is 1.5x slower than one thread */
      double dt = threaded ? esn_segment(jobs, n, t0, t1, &count, 1.5 * per_single, &reached)
                           : -1.0;
      if (dt < 0.0) {  /* single-threaded, or the threads could not be started */
        if (threaded) threads_ok = 0;
        threaded = 0;
        dt = esn_segment(&single, 1, t0, t1, &count, 0.0, &reached);
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
  for (int64_t bb = 0; bb < B; ++bb)
    memcpy(h + bb * N, states + ((T - 1) * B + bb) * N, (size_t)N * sizeof(REAL));
}

/* K networks: h [K, B, N], x [K or 1, T, B, I] (x_stride = T B I, or 0 when shared), W_in
   [K, N, I], bias [K, N], noise [K, T, B, N] or NULL, rowptr [K, N + 1] (per network), sptr
   [K, S + 1] (global group indices into col / val [G, C]), perm [K, S C], leak [K], states
   [K, T, B, N] */
void esn_loop(REAL* h, const REAL* x, int64_t x_stride, const REAL* W_in, const REAL* bias,
              const REAL* noise, const int64_t* rowptr, const int64_t* sptr, const int32_t* col,
              const REAL* val, const int32_t* perm, const double* leak, int64_t K, int64_t B,
              int64_t T, int64_t N, int64_t I, REAL* states, int64_t nthreads) {
  const int64_t S = (N + SELL_C - 1) / SELL_C;
  for (int64_t k = 0; k < K; ++k)
    esn_net(h + k * B * N, x + k * x_stride, W_in + k * N * I, bias + k * N,
            noise ? noise + k * T * B * N : NULL, rowptr + k * (N + 1), sptr + k * (S + 1), col,
            val, perm + k * S * SELL_C, B, T, N, I, leak[k], states + k * T * B * N, nthreads);
}
