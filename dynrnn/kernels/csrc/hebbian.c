/* Online three-factor readout rule, dynrnn.kernels.hebbian.
   Compiled and loaded by dynrnn/kernels/_cbuild.py; see the Python module named for the
   layouts, the compile-time switches and the maths. */
#include <stdint.h>

#ifndef LANES
#define LANES 16 /* partial sums per dot product (a power of two; 16 measured fastest) */
#endif
/* K readouts [k0, k1): w [K, F] updated in place; r [K, T, F]; target, gate [K, T];
   y [K, T] out; e: work of F scalars. */
void three_factor(int64_t k0, int64_t k1, int64_t T, int64_t F, double lr, double lam,
                  int64_t normalise, double *restrict w, const REAL *restrict r,
                  const REAL *restrict target, const REAL *restrict gate, REAL *restrict y,
                  double *restrict e) {
    for (int64_t k = k0; k < k1; k++) {
        double *wk = w + k * F;
        for (int64_t f = 0; f < F; f++) e[f] = 0.0;
        for (int64_t t = 0; t < T; t++) {
            const REAL *rt = r + (k * T + t) * F;
            /* the sums w.r and |e|^2 in LANES interleaved partial sums (lane j holds the
               features f = j mod LANES), added pairwise at the end: a fixed order written in
               the source, so the compiler vectorises it without reassociating (IEEE flags) */
            double dl[LANES] = {0.0}, el[LANES] = {0.0};
            int64_t f = 0;
            for (; f + LANES <= F; f += LANES) {
                for (int j = 0; j < LANES; j++) {
                    const double rf = (double)rt[f + j];
                    const double ef = lam * e[f + j] + (1.0 - lam) * rf;
                    e[f + j] = ef;
                    dl[j] += wk[f + j] * rf;
                    el[j] += ef * ef;
                }
            }
            for (int j = 0; f < F; f++, j++) {
                const double rf = (double)rt[f];
                const double ef = lam * e[f] + (1.0 - lam) * rf;
                e[f] = ef;
                dl[j] += wk[f] * rf;
                el[j] += ef * ef;
            }
            for (int half = LANES / 2; half > 0; half /= 2) {  /* pairwise: a tree of adds */
                for (int j = 0; j < half; j++) {
                    dl[j] += dl[j + half];
                    el[j] += el[j + half];
                }
            }
            const double dot = dl[0], ee = el[0];
            y[k * T + t] = (REAL)dot;
            const double g = (double)gate[k * T + t];
            if (g > 0) {
                double step = lr * g * ((double)target[k * T + t] - dot);
                if (normalise) step /= 1.0 + ee;
                for (int64_t q = 0; q < F; q++) wk[q] += step * e[q];
            }
        }
    }
}
