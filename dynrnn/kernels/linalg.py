"""Batched LU factorisation and solves of many small dense matrices, split over threads.

The fixed-point finder's Newton phase factorises one ``N x N`` Jacobian per candidate point
(``B`` = tens of thousands of 64 x 64 matrices) and then takes several triangular solves per
factorisation. torch's CPU path calls LAPACK once per matrix (``getrf``/``getrs``), which for
matrices this small is dominated by per-call overhead, and runs the solves on one thread. The
C kernel here keeps each matrix in L1 cache, vectorises the rank-1 updates and the dot products,
solves four right-hand sides interleaved (the substitutions are chains of dependent rows), and
splits the batch over torch's threads (ctypes releases the GIL). Measured per 64 x 64 float32
matrix on 2 threads: factor 4.8 us (torch 13.2 us), solve 1.2 us (torch 2.4 us).

Algorithm (Golub & Van Loan, Alg. 3.4.1, right-looking LU with partial pivoting, as LAPACK's
unblocked ``getf2``): ``P A = L U`` with unit lower-triangular L; at step j the row with the
largest ``|a_ij|`` (i >= j) is swapped into row j (whole rows, so L is permuted too) and the
trailing block gets the rank-1 update. ``piv[j]`` is the row swapped with row j (0-based) and
``info`` is ``j + 1`` for the first zero or non-finite pivot (0 when the factorisation is
regular), as LAPACK. The solve applies the swaps in order, then forward and back substitution.

Backends: ``cpu`` (C, compiled on first use by :mod:`._cbuild`; float32 and float64) and
``reference`` (``torch.linalg.lu_factor_ex`` / ``lu_solve``; any device, also the fallback
without a compiler). Results agree to rounding (the C kernel sums dot products in another
order); pivots are the same except between rows of exactly equal magnitude.
"""

from __future__ import annotations

import torch

from . import _backends, _cbuild
from ._workspace import POOL

__all__ = ["lu_factor", "lu_solve", "LU_BACKENDS"]

#: the names of :data:`._backends.BACKENDS` this kernel supports
LU_BACKENDS = (_backends.AUTO, _backends.REFERENCE, _backends.C)

_LU_C = _cbuild.source("linalg")  # csrc/linalg.c

# what DYNRNN_FAST_MATH=1 may relax: sums reassociated (vector dots), but IEEE NaN/inf kept
# (the pivot check) and no contraction (an FMA in the rank-1 update turns the exactly zero
# pivot of a singular matrix into rounding noise); by default _cbuild.EXACT
_MATH = ["-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros",
         "-fassociative-math"]
_LIBS: dict = {}


def _lib(dtype: torch.dtype):
    if dtype not in _LIBS:
        _LIBS[dtype] = _cbuild.load(
            _LU_C, {"REAL": "float" if dtype == torch.float32 else "double"}, _MATH
        )
    return _LIBS[dtype]


def _backend(backend: str, t: torch.Tensor) -> str:
    backend = _backends.check_backend("lu_factor/lu_solve", backend, LU_BACKENDS)
    usable = t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
    if backend == "cpu" and not usable:
        raise ValueError(
            f"The 'cpu' backend takes float32/float64 CPU tensors; got {t.dtype} on {t.device}."
        )
    if backend == "auto":
        return "cpu" if usable and _lib(t.dtype) is not None else "reference"
    if backend == "cpu" and _lib(t.dtype) is None:
        return "reference"
    return backend


def lu_factor(A: torch.Tensor, *, backend: str = "auto"):
    """LU factorisation with partial pivoting of a batch ``A [B, N, N]``.

    Returns ``(LU, pivots, info)``: the factors (opaque: pass them to :func:`lu_solve` with the
    same ``backend``; ``[B, N, N]`` from ``reference``, rows zero-padded to whole 64-byte
    vectors ``[B, N, LD]`` from ``cpu``), pivots ``[B, N]`` (int32; LAPACK's 1-based ones from
    ``reference``, 0-based from ``cpu``) and ``info [B]`` (0 when regular, else ``j + 1`` for
    the first zero or non-finite pivot, as LAPACK; solves with such factors are not finite).
    """
    if A.ndim != 3 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"The 'A' parameter must have shape [B, N, N]. Got {tuple(A.shape)}.")
    if _backend(backend, A) == "reference":
        return torch.linalg.lu_factor_ex(A)
    B, N = A.shape[:2]
    A = A.contiguous()
    vl = 64 // A.element_size()
    # rows padded to whole vectors; the buffer comes from the kernels' pool (a fresh 32 MB
    # tensor per call measured 5 us of page faults per 64 x 64 matrix, as much as the LU)
    rounded = -(-B // 256) * 256
    LU = POOL.empty((rounded, N, -(-N // vl) * vl), A.dtype)[:B]
    piv = torch.empty(B, N, dtype=torch.int32)
    info = torch.empty(B, dtype=torch.int32)
    lib = _lib(A.dtype)
    pa, pl, pp, pi = A.data_ptr(), LU.data_ptr(), piv.data_ptr(), info.data_ptr()
    _cbuild.parallel_ranges(lambda b0, b1: lib.lu_factor(b0, b1, N, pa, pl, pp, pi), B,
                            min_per_thread=64)
    return LU, piv, info


def lu_solve(LU: torch.Tensor, pivots: torch.Tensor, y: torch.Tensor, index=None, *,
             backend: str = "auto") -> torch.Tensor:
    """Solve ``A x = y`` for a batch of factorised matrices; ``y [S, N]``, returns ``x [S, N]``.

    ``LU, pivots`` come from :func:`lu_factor` (B matrices) with the same ``backend``. Without
    ``index``, ``S == B`` and row b of ``y`` goes with matrix b; with ``index`` (``[S]`` ints
    in ``[0, B)``) row s goes with matrix ``index[s]``, so a subset is solved without copying
    its factors.
    """
    B, N = pivots.shape
    if index is not None:
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= B):
            raise ValueError(f"The 'index' parameter must hold matrix indices in [0, {B}).")
    S = B if index is None else len(index)
    if y.ndim != 2 or y.shape != (S, N):
        raise ValueError(
            f"The 'y' parameter must have shape [S, N] = {(S, N)}. Got {tuple(y.shape)}."
        )
    if _backend(backend, LU) == "reference":
        if index is not None:
            LU, pivots = LU[index], pivots[index]
        return torch.linalg.lu_solve(LU, pivots, y[..., None])[..., 0]
    x = y.to(LU.dtype).contiguous().clone()
    if S == 0:
        return x
    lib = _lib(LU.dtype)
    index = None if index is None else index.contiguous()
    pa, pp, px = LU.data_ptr(), pivots.data_ptr(), x.data_ptr()
    pidx = None if index is None else index.data_ptr()
    _cbuild.parallel_ranges(lambda b0, b1: lib.lu_solve(b0, b1, N, pa, pp, px, pidx), S,
                            min_per_thread=256)
    return x
