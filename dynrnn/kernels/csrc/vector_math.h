#ifndef DYNRNN_VECTOR_MATH_H
#define DYNRNN_VECTOR_MATH_H
/* Vectorised tanh/exp/log1p from glibc's libmvec (x86-64, glibc >= 2.35) without -ffast-math:
   the declarations glibc's <bits/math-vector.h> makes only under __FAST_MATH__. The arithmetic
   stays IEEE (no reassociation, no contraction, no flush-to-zero); only these functions are
   libmvec's (at most 4 ulp from the exact value, as glibc documents for libmvec), and
   -fno-math-errno lets GCC call them on whole vectors. -DNO_VECTOR_MATH keeps scalar libm.
   Included textually by dynrnn.kernels._cbuild.source (after <math.h>). */
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__FAST_MATH__) && \
    !defined(NO_VECTOR_MATH)
#if __GLIBC_PREREQ(2, 35)
#define VDECL __attribute__((__simd__("notinbranch")))
VDECL float tanhf(float);
VDECL float expf(float);
VDECL float log1pf(float);
VDECL double tanh(double);
VDECL double exp(double);
VDECL double log1p(double);
#endif
#endif
#endif
