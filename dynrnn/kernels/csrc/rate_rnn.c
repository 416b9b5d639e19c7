/* CPU rate-RNN kernel (forward and BPTT backward), dynrnn.kernels._rate_rnn_c.
   Compiled and loaded by dynrnn/kernels/_cbuild.py; see the Python module named for the
   layouts, the compile-time switches and the maths. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vector_math.h"

#define ONE ((REAL)1)
#define LEAKY_SLOPE ((REAL)0.01)
#ifdef REAL_IS_FLOAT
#define TANH tanhf
#define EXP expf
#define LOG1P log1pf
#else
#define TANH tanh
#define EXP exp
#define LOG1P log1p
#endif

#define VBYTES 64
/* VW (scalars per 64-byte vector) is defined by the caller: 16 for float, 8 for double */
#define NV (NP / VW)
typedef REAL vec __attribute__((vector_size(VBYTES), aligned(sizeof(REAL))));
/* trials per register block: the BB x NV accumulators must fit in the vector registers */
#define BB (NV <= 4 ? 4 : (NV <= 8 ? 2 : 1))
#define JB BB
#define UNROLL _Pragma("GCC unroll 16")

static inline REAL act(REAL a) {
#if NL == 0
    return TANH(a);
#elif NL == 1
    return a > 0 ? a : 0;
#elif NL == 2
    return a > 0 ? a : LEAKY_SLOPE * a;
#elif NL == 3
    return a > 20 ? a : LOG1P(EXP(a));
#elif NL == 4
    return ONE / (ONE + EXP(-a));
#else
    return a;
#endif
}

static inline REAL dact(REAL a) {
#if NL == 0
    REAL t = TANH(a); return ONE - t * t;
#elif NL == 1
    return a > 0 ? ONE : 0;
#elif NL == 2
    return a > 0 ? ONE : LEAKY_SLOPE;
#elif NL == 3
    return ONE / (ONE + EXP(-a));
#elif NL == 4
    REAL s = ONE / (ONE + EXP(-a)); return s * (ONE - s);
#else
    (void)a;
    return ONE;
#endif
}

#define VLOAD(p) (*(const vec *)(p))
#define VSTORE(p, v) (*(vec *)(p) = (v))

/* out[q, :NP] = init[q] + sum_m s[q, m] M[m, :NP], q < nq, m < N; rows of s have stride ld_s.
   init is a row shared by all q (bias) when init_shared, else per-q rows of stride NP. */
static inline __attribute__((always_inline)) void rows_times_matrix(
        const int nq, const REAL *s, const int64_t ld_s, const REAL *restrict M,
        const REAL *init, const int init_shared, REAL *out) {
    vec acc[BB][NV];
    UNROLL for (int q = 0; q < nq; q++) {
        const REAL *r = init + (init_shared ? 0 : q * NP);
        UNROLL for (int v = 0; v < NV; v++) acc[q][v] = VLOAD(r + v * VW);
    }
    for (int m = 0; m < N; m++) {
        const REAL *mr = M + m * NP;
        vec w[NV];
        UNROLL for (int v = 0; v < NV; v++) w[v] = VLOAD(mr + v * VW);
        UNROLL for (int q = 0; q < nq; q++) {
            const REAL sm = s[q * ld_s + m];
            UNROLL for (int v = 0; v < NV; v++) acc[q][v] += sm * w[v];
        }
    }
    UNROLL for (int q = 0; q < nq; q++)
        UNROLL for (int v = 0; v < NV; v++) VSTORE(out + q * NP + v * VW, acc[q][v]);
}

/* dst[j, :NP] += sum_{q < B} src[q, j] vecs[q, :NP] for j < J (row strides ld_src, ld_vec,
   ld_dst): an outer-product accumulation with JB destination rows held in registers while
   all B trials stream past. */
static inline __attribute__((always_inline)) void outer_accumulate(
        const int64_t J, const int64_t B, const REAL *restrict src, const int64_t ld_src,
        const REAL *restrict vecs, const int64_t ld_vec, REAL *restrict dst,
        const int64_t ld_dst) {
    int64_t j0 = 0;
    for (; j0 + JB <= J; j0 += JB) {
        vec acc[JB][NV];
        UNROLL for (int jj = 0; jj < JB; jj++)
            UNROLL for (int v = 0; v < NV; v++)
                acc[jj][v] = VLOAD(dst + (j0 + jj) * ld_dst + v * VW);
        for (int64_t q = 0; q < B; q++) {
            vec g[NV];
            UNROLL for (int v = 0; v < NV; v++) g[v] = VLOAD(vecs + q * ld_vec + v * VW);
            UNROLL for (int jj = 0; jj < JB; jj++) {
                const REAL h = src[q * ld_src + j0 + jj];
                UNROLL for (int v = 0; v < NV; v++) acc[jj][v] += h * g[v];
            }
        }
        UNROLL for (int jj = 0; jj < JB; jj++)
            UNROLL for (int v = 0; v < NV; v++)
                VSTORE(dst + (j0 + jj) * ld_dst + v * VW, acc[jj][v]);
    }
    for (; j0 < J; j0++) {
        vec acc[NV];
        UNROLL for (int v = 0; v < NV; v++) acc[v] = VLOAD(dst + j0 * ld_dst + v * VW);
        for (int64_t q = 0; q < B; q++) {
            const REAL h = src[q * ld_src + j0];
            UNROLL for (int v = 0; v < NV; v++) acc[v] += h * VLOAD(vecs + q * ld_vec + v * VW);
        }
        UNROLL for (int v = 0; v < NV; v++) VSTORE(dst + j0 * ld_dst + v * VW, acc[v]);
    }
}

/* dst[:NP] += sum_{q < B} vecs[q, :NP] */
static inline void sum_rows(const int64_t B, const REAL *restrict vecs, REAL *restrict dst) {
    vec acc[NV];
    UNROLL for (int v = 0; v < NV; v++) acc[v] = VLOAD(dst + v * VW);
    for (int64_t q = 0; q < B; q++)
        UNROLL for (int v = 0; v < NV; v++) acc[v] += VLOAD(vecs + q * NP + v * VW);
    UNROLL for (int v = 0; v < NV; v++) VSTORE(dst + v * VW, acc[v]);
}

/* out[q, :NP] = bias + x[q, :I] @ W_in_T + h[q, :N] @ W_T for q < nq, accumulated in
   registers from the start (a bias row copied through memory and reloaded as a wider vector
   stalls on store forwarding) */
static inline __attribute__((always_inline)) void pre_activation_block(
        const int nq, const REAL *x, const int64_t I, const REAL *restrict W_in_T,
        const REAL *restrict bias, const REAL *h, const REAL *restrict W_T, REAL *out) {
    vec acc[BB][NV];
    UNROLL for (int q = 0; q < nq; q++)
        UNROLL for (int v = 0; v < NV; v++) acc[q][v] = VLOAD(bias + v * VW);
    for (int64_t i = 0; i < I; i++) {
        const REAL *wr = W_in_T + i * NP;
        UNROLL for (int q = 0; q < nq; q++) {
            const REAL xi = x[q * I + i];
            UNROLL for (int v = 0; v < NV; v++) acc[q][v] += xi * VLOAD(wr + v * VW);
        }
    }
    for (int m = 0; m < N; m++) {
        const REAL *mr = W_T + m * NP;
        vec w[NV];
        UNROLL for (int v = 0; v < NV; v++) w[v] = VLOAD(mr + v * VW);
        UNROLL for (int q = 0; q < nq; q++) {
            const REAL sm = h[q * N + m];
            UNROLL for (int v = 0; v < NV; v++) acc[q][v] += sm * w[v];
        }
    }
    UNROLL for (int q = 0; q < nq; q++)
        UNROLL for (int v = 0; v < NV; v++) VSTORE(out + q * NP + v * VW, acc[q][v]);
}

/* Forward for networks [k0, k1). work: BB * NP scalars (64-byte aligned) per thread. */
void rate_fwd(int64_t k0, int64_t k1, int64_t T, int64_t B, int64_t I, int64_t O,
              int64_t x_per_net, const REAL *restrict x, const REAL *restrict h0,
              const REAL *restrict W_in_T, const REAL *restrict bias,
              const REAL *restrict W_T, const REAL *restrict alpha,
              const REAL *restrict W_out, const REAL *restrict b_out,
              const REAL *restrict noise, REAL *restrict H, REAL *restrict Y,
              REAL *restrict A, REAL *restrict work) {
    REAL *arow = work;  /* [BB, NP]: pre-activations of the block */
    for (int64_t k = k0; k < k1; k++) {
        const REAL *xk = x + (x_per_net ? k * T * B * I : 0);
        const REAL *Wi = W_in_T + k * I * NP, *bk = bias + k * NP, *Wk = W_T + k * N * NP;
        const REAL *al = alpha ? alpha + k * N : NULL;
        (void)al;  /* unused without a leak (LEAK == 0) */
        const REAL *Wo = W_out + k * O * N, *bo = b_out + k * O;
        const REAL *nk = noise ? noise + k * T * B * N : NULL;
        REAL *Hk = H + k * T * B * N, *Yk = Y + k * T * B * O;
        REAL *Ak = A ? A + k * T * B * N : NULL;
        for (int64_t t = 0; t < T; t++) {
            const REAL *hprev = t ? Hk + (t - 1) * B * N : h0 + k * B * N;
            for (int64_t b0 = 0; b0 < B; b0 += BB) {
                const int nb = B - b0 < BB ? (int)(B - b0) : BB;
                const REAL *xb = xk + (t * B + b0) * I;
                if (nb == BB)
                    pre_activation_block(BB, xb, I, Wi, bk, hprev + b0 * N, Wk, arow);
                else for (int q = 0; q < nb; q++)
                    pre_activation_block(1, xb + q * I, I, Wi, bk, hprev + (b0 + q) * N, Wk,
                                         arow + q * NP);
                for (int q = 0; q < nb; q++) {
                    const int64_t row = t * B + b0 + q;
                    const REAL *hp = hprev + (b0 + q) * N;
                    (void)hp;
                    REAL *a = arow + q * NP, *hn = Hk + row * N;
                    if (nk) for (int n = 0; n < N; n++) a[n] += nk[row * N + n];
                    if (Ak) memcpy(Ak + row * N, a, N * sizeof(REAL));
                    for (int n = 0; n < N; n++) {
#if LEAK == 0
                        hn[n] = act(a[n]);
#elif LEAK == 1
                        hn[n] = act(hp[n] + al[n] * (a[n] - hp[n]));
#else
                        hn[n] = hp[n] + al[n] * (act(a[n]) - hp[n]);
#endif
                    }
                    for (int64_t o = 0; o < O; o++) {
                        const REAL *wo = Wo + o * N;
                        REAL s = 0;
                        for (int n = 0; n < N; n++) s += hn[n] * wo[n];
                        Yk[row * O + o] = bo[o] + s;
                    }
                }
            }
        }
    }
}

/* Backward for networks [k0, k1). Accumulates (+=) into the zeroed gradients g_W_in_T, g_b,
   g_W_T, g_alpha, g_W_out, g_b_out; writes g_h0 and, where non-NULL, g_x [K, T, B, I] and
   g_noise. work: 2 * B * NP scalars (64-byte aligned) per thread. */
void rate_bwd(int64_t k0, int64_t k1, int64_t T, int64_t B, int64_t I, int64_t O,
              int64_t x_per_net, const REAL *restrict x, const REAL *restrict h0,
              const REAL *restrict W_in_T, const REAL *restrict W, const REAL *restrict alpha,
              const REAL *restrict W_out, const REAL *restrict H, const REAL *restrict A,
              const REAL *restrict gH, const REAL *restrict gY,
              REAL *restrict g_h0, REAL *restrict g_W_in_T, REAL *restrict g_b,
              REAL *restrict g_W_T, REAL *restrict g_alpha, REAL *restrict g_W_out,
              REAL *restrict g_b_out, REAL *restrict g_x, REAL *restrict g_noise,
              REAL *restrict work) {
    REAL *carry = work;           /* [B, NP]: dL/dh_t through the steps after t */
    REAL *ga = work + B * NP;     /* [B, NP]: dL/da_t; columns >= N stay 0 */
    for (int64_t k = k0; k < k1; k++) {
        const REAL *xk = x + (x_per_net ? k * T * B * I : 0);
        const REAL *Wi = W_in_T + k * I * NP, *Wk = W + k * N * NP;
        const REAL *al = alpha ? alpha + k * N : NULL;
        const REAL *Wo = W_out + k * O * N;
        const REAL *Hk = H + k * T * B * N;
        const REAL *Ak = A ? A + k * T * B * N : NULL;
        (void)Ak;  /* unused where phi'(.) comes from H */
        const REAL *gHk = gH ? gH + k * T * B * N : NULL;
        const REAL *gYk = gY ? gY + k * T * B * O : NULL;
        REAL *dWi = g_W_in_T + k * I * NP, *db = g_b + k * NP, *dW = g_W_T + k * N * NP;
        REAL *dal = al ? g_alpha + k * N : NULL;
        (void)dal;
        REAL *dWo = g_W_out + k * O * N, *dbo = g_b_out + k * O;
        REAL *gxk = g_x ? g_x + k * T * B * I : NULL;
        REAL *gnk = g_noise ? g_noise + k * T * B * N : NULL;
        memset(work, 0, 2 * B * NP * sizeof(REAL));
        for (int64_t t = T - 1; t >= 0; t--) {
            const REAL *hprev = t ? Hk + (t - 1) * B * N : h0 + k * B * N;
            /* H was written by the forward long ago (it is in DRAM or L3 by now); the weight
               gradient of step t reads H[t-1] (perf: a third of the backward waited on these
               lines). Each row's elementwise work prefetches one row of the states the next
               step will need, H[t-2], so the lines arrive a whole step ahead. */
            const REAL *ahead = t >= 2 ? Hk + (t - 2) * B * N : (t == 1 ? h0 + k * B * N : NULL);
            for (int64_t bq = 0; bq < B; bq++) {
                if (ahead)
                    for (int64_t e = 0; e < N; e += 64 / (int64_t)sizeof(REAL))
                        __builtin_prefetch(ahead + bq * N + e, 0, 3);
                const int64_t row = t * B + bq;
                const REAL *h = Hk + row * N, *hp = hprev + bq * N;
                (void)h, (void)hp;  /* which of them a variant reads depends on NL, LEAK */
                REAL *c = carry + bq * NP, *g_a = ga + bq * NP;
#if NP == N
                /* whole vectors (no padding): g = carry + gH + gy W_out in registers */
                vec gv[NV];
                UNROLL for (int v = 0; v < NV; v++) gv[v] = VLOAD(c + v * VW);
                if (gHk)
                    UNROLL for (int v = 0; v < NV; v++) gv[v] += VLOAD(gHk + row * N + v * VW);
                if (gYk)
                    for (int64_t o = 0; o < O; o++) {
                        const REAL gy = gYk[row * O + o];
                        UNROLL for (int v = 0; v < NV; v++)
                            gv[v] += gy * VLOAD(Wo + o * N + v * VW);
                    }
                REAL g[NP] __attribute__((aligned(64)));
                UNROLL for (int v = 0; v < NV; v++) VSTORE(g + v * VW, gv[v]);
#else
                REAL g[NP];
                for (int n = 0; n < N; n++) g[n] = c[n];
                if (gHk) for (int n = 0; n < N; n++) g[n] += gHk[row * N + n];
                if (gYk) {
                    for (int64_t o = 0; o < O; o++) {
                        const REAL gy = gYk[row * O + o];
                        const REAL *wo = Wo + o * N;
                        REAL *dwo = dWo + o * N;
                        for (int n = 0; n < N; n++) { g[n] += gy * wo[n]; dwo[n] += gy * h[n]; }
                    }
                }
#endif
#if LEAK == 0 && NL == 0 && NP == N
                UNROLL for (int v = 0; v < NV; v++) {
                    const vec hv = VLOAD(h + v * VW);
                    VSTORE(g_a + v * VW, gv[v] * (ONE - hv * hv));
                    VSTORE(c + v * VW, (vec){0});
                }
#else
                for (int n = 0; n < N; n++) {
#if LEAK == 0
#if NL == 0
                    g_a[n] = g[n] * (ONE - h[n] * h[n]);
#else
                    g_a[n] = g[n] * dact(Ak[row * N + n]);
#endif
                    c[n] = 0;
#elif LEAK == 1
                    const REAL a = Ak[row * N + n];
#if NL == 0
                    const REAL gu = g[n] * (ONE - h[n] * h[n]);
#else
                    const REAL gu = g[n] * dact(hp[n] + al[n] * (a - hp[n]));
#endif
                    g_a[n] = gu * al[n];
                    dal[n] += gu * (a - hp[n]);
                    c[n] = gu * (ONE - al[n]);
#else
                    const REAL a = Ak[row * N + n];
                    g_a[n] = g[n] * al[n] * dact(a);
                    dal[n] += g[n] * (act(a) - hp[n]);
                    c[n] = g[n] * (ONE - al[n]);
#endif
                }
#endif
                if (gnk) memcpy(gnk + row * N, g_a, N * sizeof(REAL));
                if (gxk) {
                    for (int64_t i = 0; i < I; i++) {
                        const REAL *wi = Wi + i * NP;
                        REAL s = 0;
                        for (int n = 0; n < N; n++) s += g_a[n] * wi[n];
                        gxk[row * I + i] = s;
                    }
                }
            }
            /* weight gradients of this step, blocked over the B trials:
               dW_T[j] += sum_b hprev[b, j] ga[b];  dW_in_T[i] += sum_b x[b, i] ga[b];
               db += sum_b ga[b];  dW_out[o] += sum_b gy[b, o] h[b] (and db_out) */
            outer_accumulate(N, B, hprev, N, ga, NP, dW, NP);
            outer_accumulate(I, B, xk + t * B * I, I, ga, NP, dWi, NP);
            sum_rows(B, ga, db);
#if NP == N
            if (gYk) {
                outer_accumulate(O, B, gYk + t * B * O, O, Hk + t * B * N, N, dWo, N);
                for (int64_t bq = 0; bq < B; bq++)
                    for (int64_t o = 0; o < O; o++) dbo[o] += gYk[(t * B + bq) * O + o];
            }
#else
            if (gYk)
                for (int64_t bq = 0; bq < B; bq++)
                    for (int64_t o = 0; o < O; o++) dbo[o] += gYk[(t * B + bq) * O + o];
#endif
            /* carry[q, :] = leak part (set above) + ga[q, :] @ W_T^T */
            int64_t b0 = 0;
            for (; b0 + BB <= B; b0 += BB)
                rows_times_matrix(BB, ga + b0 * NP, NP, Wk, carry + b0 * NP, 0, carry + b0 * NP);
            for (; b0 < B; b0++)
                rows_times_matrix(1, ga + b0 * NP, NP, Wk, carry + b0 * NP, 0, carry + b0 * NP);
        }
        for (int64_t q = 0; q < B; q++)
            memcpy(g_h0 + (k * B + q) * N, carry + q * NP, N * sizeof(REAL));
    }
}
