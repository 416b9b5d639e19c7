"""Hebbian kernels (three-factor online readout, Oja subspace + projection) == reference."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.kernels.hebbian import oja_subspace, three_factor_online
from dynrnn.kernels.rate_rnn import triton_available

BACKENDS = ["cpu"] + (["triton"] if triton_available() else [])


def _three_factor_inputs(K, T, F, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(K, T, F, generator=g, dtype=dtype)
    target = (torch.rand(K, T, generator=g) < 0.2).to(dtype)
    gate = (torch.rand(K, T, generator=g) < 0.8).to(dtype)
    w0 = 0.1 * torch.randn(K, F, generator=g, dtype=torch.float64)
    return w0, r, target, gate


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=10, deadline=None)
@given(K=st.integers(1, 3), T=st.integers(1, 12), F=st.integers(1, 20),
       normalise=st.booleans(), seed=st.integers(0, 100))
def test_three_factor_backends_equal_reference(backend, K, T, F, normalise, seed):
    w0, r, target, gate = _three_factor_inputs(K, T, F, torch.float64, seed)
    lam = math.exp(-1 / 3)
    w_ref, y_ref = three_factor_online(w0, r, target, gate, lr=0.3, lam=lam,
                                       normalise=normalise, backend="reference")
    w, y = three_factor_online(w0, r, target, gate, lr=0.3, lam=lam, normalise=normalise,
                               backend=backend)
    torch.testing.assert_close(w, w_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)


def test_three_factor_learns_the_timing_density():
    """With a one-hot 'clock' as presynaptic activity and a stimulus at step 6 on 70% of
    trials, w_6 is exactly the exponential moving average (rate lr) of the stimulus outcomes --
    so it tracks the timing density 0.7 -- and the other weights stay 0."""
    T, n, lr = 10, 1000, 0.01
    g = torch.Generator().manual_seed(0)
    clock = torch.eye(T, dtype=torch.float64)[None]
    shown = (torch.rand(n, generator=g) < 0.7).double()
    w = torch.zeros(1, T, dtype=torch.float64)
    ema = 0.0
    for trial in range(n):  # trials in sequence: the weights carry over
        target = torch.zeros(1, T, dtype=torch.float64)
        target[0, 6] = shown[trial]
        w, _ = three_factor_online(w, clock, target, torch.ones(1, T, dtype=torch.float64),
                                   lr=lr, lam=0.0, normalise=False)
        ema += lr * (float(shown[trial]) - ema)
    assert abs(float(w[0, 6]) - ema) < 1e-12
    assert abs(float(w[0, 6]) - 0.7) < 0.1  # the EMA's sd here is ~0.03
    assert float(w[0, torch.arange(T) != 6].abs().max()) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_iters, project", [(1, True), (3, False)])
def test_oja_subspace_backends_equal_reference(backend, n_iters, project):
    g = torch.Generator().manual_seed(1)
    L, M, R, n = 3, 5, 37, 19
    H = 0.3 * torch.randn(L, M, n, generator=g, dtype=torch.float64)
    X = torch.randn(L, R, n, generator=g, dtype=torch.float64)
    train = (torch.arange(M) >= 2).double()[None, :, None].expand(L, M, 1)
    scale = torch.tensor([0.01, 0.02, 0.005], dtype=torch.float64)
    ref = oja_subspace(H, X, scale, train, n_iters=n_iters, return_projected=project,
                       backend="reference")
    got = oja_subspace(H, X, scale, train, n_iters=n_iters, return_projected=project,
                       backend=backend)
    for a, b in zip(got if project else [got], ref if project else [ref]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_oja_converges_to_the_principal_subspace():
    g = torch.Generator().manual_seed(0)
    n, m = 12, 3
    basis = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    std = torch.tensor([3.0, 2.5, 2.0] + [0.3] * (n - 3), dtype=torch.float64)
    H = 0.1 * torch.randn(1, m, n, generator=g, dtype=torch.float64)
    train = torch.ones(1, m, 1, dtype=torch.float64)
    for _ in range(600):
        X = (torch.randn(64, n, generator=g, dtype=torch.float64) * std) @ basis.T
        H = oja_subspace(H, X[None], torch.tensor([0.02 / 64]), train)  # lr 0.02 per sample
    top = basis[:, :3]
    cos = torch.linalg.svdvals(torch.linalg.qr(H[0].T)[0].T @ top)
    assert float(torch.rad2deg(torch.arccos(cos.min().clamp(max=1.0)))) < 2.0  # measured 0.8
    # and the rows are orthonormal (Oja's subspace rule's fixed point; measured 1.4e-4)
    torch.testing.assert_close(H[0] @ H[0].T, torch.eye(m, dtype=torch.float64), atol=1e-3,
                               rtol=0)


def test_bad_input():
    w0, r, target, gate = _three_factor_inputs(2, 5, 4, torch.float64, 0)
    with pytest.raises(ValueError, match="lam"):
        three_factor_online(w0, r, target, gate, lr=0.1, lam=1.5)
    with pytest.raises(ValueError, match="target"):
        three_factor_online(w0, r, target[:, :3], gate, lr=0.1, lam=0.5)
    with pytest.raises(ValueError, match="backend"):
        three_factor_online(w0, r, target, gate, lr=0.1, lam=0.5, backend="gpu")
    with pytest.raises(ValueError, match="oja_subspace"):
        oja_subspace(torch.zeros(2, 3, 4), torch.zeros(2, 5, 6), torch.ones(2),
                     torch.ones(2, 3, 1))
