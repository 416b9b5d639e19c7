/* Batched LU factorisation and solves of small matrices, dynrnn.kernels.linalg.
   Compiled and loaded by dynrnn/kernels/_cbuild.py; see the Python module named for the
   layouts, the compile-time switches and the maths. */
#include <stdint.h>
#include <string.h>
#include <math.h>

#define VL (64 / (int64_t)sizeof(REAL))
typedef REAL vec __attribute__((vector_size(64)));

#if defined(__AVX512F__)
#include <immintrin.h>
/* a shuffle tree; a plain loop over the lanes compiles to a serial chain of 16 scalar adds
   that bounded the solve (2.5 us per 64 x 64 solve) */
static inline REAL hsum(vec v) {
    return sizeof(REAL) == 4 ? (REAL)_mm512_reduce_add_ps((__m512)v)
                             : (REAL)_mm512_reduce_add_pd((__m512d)v);
}
#else
static inline REAL hsum(vec v) {
    REAL s = 0;
    for (int64_t k = 0; k < VL; k++) s += v[k];
    return s;
}
#endif

/* LU with partial pivoting of matrices [b0, b1) of A [B, N, N] (row-major) into LU [B, N, LD],
   rows padded with zeros to LD = whole 64-byte vectors. The rank-1 update runs on whole
   vectors, from the vector holding column j+1 to the end: it uses a copy of row j whose
   entries at columns <= j are zero, so the L entries in that first vector are unchanged
   (x - l * 0 == x). The multiplier is stored after the vector update (a narrow store ahead of
   a wide load of the same line defeats store forwarding: measured 2x slower). */
void lu_factor(int64_t b0, int64_t b1, int64_t N, const REAL *restrict A, REAL *restrict LU,
               int32_t *restrict piv, int32_t *restrict info) {
    const int64_t nv = (N + VL - 1) / VL, LD = nv * VL;
    vec urow[nv];
    for (int64_t b = b0; b < b1; b++) {
        REAL *w = LU + b * N * LD;
        const REAL *a = A + b * N * N;
        for (int64_t i = 0; i < N; i++) {
            memcpy(w + i * LD, a + i * N, N * sizeof(REAL));
            for (int64_t c = N; c < LD; c++) w[i * LD + c] = 0;
        }
        int32_t *p = piv + b * N;
        int32_t bad = 0;
        int64_t imax = 0;
        REAL amax = -1;
        for (int64_t i = 0; i < N; i++) {
            REAL v = fabs(w[i * LD]);
            if (v > amax) { amax = v; imax = i; }
        }
        for (int64_t j = 0; j < N; j++) {
            p[j] = (int32_t)imax;
            if (imax != j) {
                vec *rj = (vec *)(w + j * LD), *ri = (vec *)(w + imax * LD);
                for (int64_t c = 0; c < nv; c++) { vec t = rj[c]; rj[c] = ri[c]; ri[c] = t; }
            }
            const REAL d = w[j * LD + j];
            const int ok = (d != 0) && isfinite(d);
            if (!ok && !bad) bad = (int32_t)(j + 1);
            const REAL inv = ok ? (REAL)1 / d : (REAL)0;
            const int64_t c0 = (j + 1) / VL;
            REAL *u = (REAL *)urow;
            for (int64_t c = c0 * VL; c < LD; c++) u[c] = c > j ? w[j * LD + c] : (REAL)0;
            imax = j + 1;
            amax = -1;
            for (int64_t i = j + 1; i < N; i++) {
                REAL *ri = w + i * LD;
                const REAL l = ri[j] * inv;
                vec *rv = (vec *)ri;
                for (int64_t c = c0; c < nv; c++) rv[c] -= l * urow[c];
                ri[j] = l;
                if (j + 1 < N) {  /* the next pivot column, tracked on the way */
                    REAL v = fabs(ri[j + 1]);
                    if (v > amax) { amax = v; imax = i; }
                }
            }
        }
        info[b] = bad;
    }
}

/* Solve A x = y for right-hand sides [b0, b1) of y [S, N] (overwritten by x), each with the
   matrix index[b] (or b when index is NULL) of the factors LU [B, N, LD].

   Both substitutions are dot products over whole vectors against the solution, which is zero
   where not yet computed, so the other triangle's entries contribute nothing. The vector of
   the solution being filled is kept in a register and a new entry is added as a one-hot
   vector (a scalar store followed by a vector load of the same line stalls on store
   forwarding). A substitution is a chain of dependent rows, so G right-hand sides are solved
   interleaved, which lets the CPU overlap their chains (G = 4 measured 2.5x faster than 1). */
static inline __attribute__((always_inline)) void solve_group(
        const int G, const int64_t *bs, int64_t N, const REAL *restrict LU,
        const int32_t *restrict piv, REAL *restrict y, const int64_t *restrict index,
        const vec *restrict onehot, vec *restrict zv, vec *restrict xv) {
    const int64_t nv = (N + VL - 1) / VL, LD = nv * VL;
    const REAL *a[G];
    REAL *yb[G];
    for (int g = 0; g < G; g++) {
        const int64_t m = index ? index[bs[g]] : bs[g];
        a[g] = LU + m * N * LD;
        yb[g] = y + bs[g] * N;
        const int32_t *p = piv + m * N;
        for (int64_t j = 0; j < N; j++) {
            int64_t k = p[j];
            if (k != j) { REAL t = yb[g][j]; yb[g][j] = yb[g][k]; yb[g][k] = t; }
        }
    }
    vec cur[G];
    for (int g = 0; g < G; g++) cur[g] = (vec){0};
    for (int64_t i = 0; i < N; i++) {              /* L z = P y (unit diagonal) */
        const int64_t bi = i / VL;
        for (int g = 0; g < G; g++) {
            const vec *ri = (const vec *)(a[g] + i * LD);
            const vec *z = zv + g * nv;
            vec acc = ri[bi] * cur[g];
            for (int64_t c = 0; c < bi; c++) acc += ri[c] * z[c];
            cur[g] += onehot[i % VL] * (yb[g][i] - hsum(acc));
        }
        if (i % VL == VL - 1 || i == N - 1)
            for (int g = 0; g < G; g++) { zv[g * nv + bi] = cur[g]; cur[g] = (vec){0}; }
    }
    for (int64_t i = N - 1; i >= 0; i--) {         /* U x = z */
        const int64_t bi = i / VL;
        for (int g = 0; g < G; g++) {
            const vec *ri = (const vec *)(a[g] + i * LD);
            const vec *x = xv + g * nv;
            vec acc = ri[bi] * cur[g];
            for (int64_t c = bi + 1; c < nv; c++) acc += ri[c] * x[c];
            const REAL zi = zv[g * nv + bi][i % VL];
            cur[g] += onehot[i % VL] * ((zi - hsum(acc)) / a[g][i * LD + i]);
        }
        if (i % VL == 0)
            for (int g = 0; g < G; g++) { xv[g * nv + bi] = cur[g]; cur[g] = (vec){0}; }
    }
    for (int g = 0; g < G; g++) memcpy(yb[g], xv + g * nv, N * sizeof(REAL));
}

#define GROUP 4
void lu_solve(int64_t b0, int64_t b1, int64_t N, const REAL *restrict LU,
              const int32_t *restrict piv, REAL *restrict y, const int64_t *restrict index) {
    const int64_t nv = (N + VL - 1) / VL;
    vec zv[GROUP * nv], xv[GROUP * nv], onehot[VL];
    for (int64_t k = 0; k < VL; k++) {
        onehot[k] = (vec){0};
        onehot[k][k] = 1;
    }
    int64_t b = b0;
    for (; b + GROUP <= b1; b += GROUP) {
        int64_t bs[GROUP];
        for (int g = 0; g < GROUP; g++) bs[g] = b + g;
        solve_group(GROUP, bs, N, LU, piv, y, index, onehot, zv, xv);
    }
    for (; b < b1; b++) solve_group(1, &b, N, LU, piv, y, index, onehot, zv, xv);
}
