/* Online three-factor readout rule, dynrnn.kernels.hebbian.
   Compiled and loaded by dynrnn/kernels/_cbuild.py; see the Python module named for the
   layouts, the compile-time switches and the maths. */
#include <stdint.h>
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
            double dot = 0.0, ee = 0.0;
            for (int64_t f = 0; f < F; f++) {
                e[f] = lam * e[f] + (1.0 - lam) * (double)rt[f];
                dot += wk[f] * (double)rt[f];
                ee += e[f] * e[f];
            }
            y[k * T + t] = (REAL)dot;
            const double g = (double)gate[k * T + t];
            if (g > 0) {
                double step = lr * g * ((double)target[k * T + t] - dot);
                if (normalise) step /= 1.0 + ee;
                for (int64_t f = 0; f < F; f++) wk[f] += step * e[f];
            }
        }
    }
}
