"""Batched LU kernel (dynrnn.kernels.linalg) against torch's LAPACK path."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.kernels import linalg

needs_c = pytest.mark.skipif(
    linalg._lib(torch.float64) is None, reason="no C compiler: the kernel falls back to torch"
)


def _matrices(B, N, dtype, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    A = scale * torch.randn(B, N, N, generator=g, dtype=torch.float64) / N**0.5
    A -= torch.eye(N, dtype=torch.float64)  # well conditioned enough for float32 checks
    return A.to(dtype), torch.randn(B, N, generator=g, dtype=torch.float64).to(dtype)


@needs_c
@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 40),
    N=st.sampled_from([1, 2, 3, 7, 8, 15, 16, 17, 33, 64, 70]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 10_000),
)
def test_c_solve_matches_torch(B, N, dtype, seed):
    A, y = _matrices(B, N, dtype, seed)
    LU, piv, info = linalg.lu_factor(A, backend="cpu")
    assert (info == 0).all()
    x = linalg.lu_solve(LU, piv, y, backend="cpu")
    ref = torch.linalg.solve(A.double(), y.double())
    tol = 2e-4 if dtype == torch.float32 else 1e-10
    assert x.dtype == dtype
    assert torch.allclose(x.double(), ref, rtol=tol, atol=tol)
    # pivots are those of LAPACK (1-based there, 0-based here) for matrices without ties
    _, piv_ref, _ = torch.linalg.lu_factor_ex(A)
    assert torch.equal(piv.long() + 1, piv_ref.long())


@needs_c
def test_c_solve_subset_by_index_and_partial_pivoting():
    A, y = _matrices(50, 64, torch.float64, 3, scale=4.0)
    # a zero leading entry forces a row swap at the first step
    A[:, 0, 0] = 0.0
    LU, piv, _ = linalg.lu_factor(A, backend="cpu")
    index = torch.tensor([49, 0, 7, 7, 13])
    x = linalg.lu_solve(LU, piv, y[index], index, backend="cpu")
    ref = torch.linalg.solve(A[index], y[index])
    assert torch.allclose(x, ref, rtol=1e-9, atol=1e-9)
    ref_be = linalg.lu_solve(*linalg.lu_factor(A, backend="reference")[:2], y[index], index,
                             backend="reference")
    assert torch.allclose(ref_be, ref, rtol=1e-9, atol=1e-9)


@needs_c
def test_c_factor_flags_singular_and_nonfinite_matrices():
    A, _ = _matrices(4, 5, torch.float64, 0)
    A[1] = 0.0  # singular: first pivot is zero
    A[2, :, 3] = A[2, :, 1]  # singular: two equal columns, a zero pivot by step 4 at the latest
    A[3, 2, 2] = float("nan")
    _, _, info = linalg.lu_factor(A, backend="cpu")
    _, _, info_ref = torch.linalg.lu_factor_ex(A[:2])
    assert info[0] == 0 and info[1] == 1 == info_ref[1]
    assert info[2] > 0 and info[3] > 0


def test_bad_arguments():
    A, y = _matrices(3, 4, torch.float64, 0)
    with pytest.raises(ValueError, match="'A'"):
        linalg.lu_factor(A[0])
    LU, piv, _ = linalg.lu_factor(A)
    with pytest.raises(ValueError, match="'y'"):
        linalg.lu_solve(LU, piv, y[:2])
    with pytest.raises(ValueError, match="'index'"):
        linalg.lu_solve(LU, piv, y, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="'backend'"):
        linalg.lu_factor(A, backend="gpu")


def test_reference_backend_without_compiler(monkeypatch):
    monkeypatch.setattr(linalg, "_lib", lambda dtype: None)
    A, y = _matrices(6, 9, torch.float64, 1)
    LU, piv, info = linalg.lu_factor(A)
    x = linalg.lu_solve(LU, piv, y)
    assert torch.allclose(x, torch.linalg.solve(A, y), atol=1e-10)
