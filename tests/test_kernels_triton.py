"""Triton rate-RNN backend == reference loop (values, gradients, gradcheck).

Without a GPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``, set in
conftest.py), which is slow: sizes are small. Skipped, with the reason, where triton is missing.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.kernels import rate_rnn

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from test_kernels import FORMS, _forward_backward, _inputs  # noqa: E402


@settings(max_examples=8, deadline=None)
@given(
    K=st.integers(1, 3),
    T=st.integers(1, 5),
    B=st.integers(1, 4),
    N=st.integers(1, 6),
    shared_x=st.booleans(),
    noise=st.booleans(),
    form=st.sampled_from(FORMS),
    seed=st.integers(0, 100),
)
def test_triton_equals_reference_float32(K, T, B, N, shared_x, noise, form, seed):
    has_alpha, name, leak = form
    args = _inputs(K, T, B, N, 2, 2, shared_x, has_alpha, noise, torch.float32, seed)
    ref = _forward_backward(args, name, leak, "reference")
    got = _forward_backward(args, name, leak, "triton")
    for r, f in zip(ref[:2], got[:2]):
        assert (f - r).abs().max() / r.abs().max().clamp(min=1) < 1e-5
    for r, f in zip(ref[2], got[2]):
        assert (f - r).abs().max() / r.abs().max().clamp(min=1e-3) < 1e-4


@pytest.mark.parametrize("form", [FORMS[0], FORMS[2]])
def test_triton_backward_gradcheck(form):
    has_alpha, name, leak = form
    args = _inputs(2, 3, 2, 3, 2, 2, False, has_alpha, True, torch.float64, 0)
    mask = [a is not None for a in args]
    leaves = [a.requires_grad_(True) for a in args if a is not None]

    def fn(*xs):
        it = iter(xs)
        full = [next(it) if m else None for m in mask]
        return rate_rnn(*full, nonlinearity=name, leak_form=leak, backend="triton")

    assert torch.autograd.gradcheck(fn, leaves)
