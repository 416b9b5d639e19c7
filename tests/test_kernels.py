"""Fused CPU rate-RNN kernel == reference autograd loop (values and gradients)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.kernels import rate_rnn
from dynrnn.models import Ensemble, RateRNNConfig, run

FORMS = [
    (False, "tanh", "inside"),
    (True, "leaky_relu", "inside"),
    (True, "softplus", "outside"),
    (True, "tanh", "outside"),
    (False, "relu", "inside"),
    (False, "softplus", "inside"),
]


def _inputs(K, T, B, N, I, O, shared_x, has_alpha, noise, dtype, seed):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g, dtype=dtype)

    return [
        r(1 if shared_x else K, T, B, I),
        r(K, B, N, scale=0.5),
        r(K, N, I),
        r(K, N, scale=0.1),
        r(K, N, N, scale=N**-0.5),
        (0.2 + 0.8 * torch.rand(K, 1, N, generator=g, dtype=dtype)) if has_alpha else None,
        r(K, O, N),
        r(K, O),
        r(K, T, B, N, scale=0.1) if noise else None,
    ]


def _forward_backward(args, name, leak, backend):
    leaves = [a.detach().clone().requires_grad_(True) if a is not None else None for a in args]
    H, Y = rate_rnn(*leaves, nonlinearity=name, leak_form=leak, backend=backend)
    wH = torch.linspace(-1, 1, H.numel(), dtype=H.dtype).reshape(H.shape)
    ((H * wH).sum() + Y.square().sum()).backward()
    return H.detach(), Y.detach(), [a.grad for a in leaves if a is not None]


@settings(max_examples=25, deadline=None)
@given(
    K=st.integers(1, 4),
    T=st.integers(1, 10),
    B=st.integers(1, 5),
    N=st.integers(1, 9),
    I=st.integers(1, 3),
    O=st.integers(1, 3),
    shared_x=st.booleans(),
    noise=st.booleans(),
    form=st.sampled_from(FORMS),
    seed=st.integers(0, 1000),
)
def test_fused_equals_reference_float32(K, T, B, N, I, O, shared_x, noise, form, seed):
    has_alpha, name, leak = form
    args = _inputs(K, T, B, N, I, O, shared_x, has_alpha, noise, torch.float32, seed)
    ref = _forward_backward(args, name, leak, "reference")
    fused = _forward_backward(args, name, leak, "cpu")
    for r, f in zip(ref[:2], fused[:2]):
        assert (f - r).abs().max() / r.abs().max().clamp(min=1) < 1e-5
    for r, f in zip(ref[2], fused[2]):
        assert (f - r).abs().max() / r.abs().max().clamp(min=1e-3) < 1e-4


@pytest.mark.parametrize("form", [f for f in FORMS if f[1] != "relu"])
@pytest.mark.parametrize("shared_x", [True, False])
def test_fused_backward_gradcheck(form, shared_x):
    has_alpha, name, leak = form
    args = _inputs(2, 4, 3, 3, 2, 2, shared_x, has_alpha, True, torch.float64, 0)
    mask = [a is not None for a in args]
    leaves = [a.requires_grad_(True) for a in args if a is not None]

    def fn(*xs):
        it = iter(xs)
        full = [next(it) if m else None for m in mask]
        return rate_rnn(*full, nonlinearity=name, leak_form=leak, backend="cpu")

    assert torch.autograd.gradcheck(fn, leaves)


def test_run_uses_fused_loop_and_agrees_with_reference():
    cfg = RateRNNConfig(
        3,
        10,
        2,
        tau_init=2.0,
        tau_jitter=1.0,
        train_tau=True,
        rec_noise_std=0.1,
        input_noise_std=0.1,
        nonlinearity="softplus",
    )
    model = Ensemble(cfg, n_networks=3).double()
    x = torch.randn(4, 12, 3, dtype=torch.float64)
    got = {}
    for backend in ("reference", "auto"):
        model.zero_grad()
        states, outputs = run(model, x, backend=backend, noise=True, generator=2)
        (outputs.square().sum() + states.sum()).backward()
        got[backend] = [states.detach(), outputs.detach()] + [
            p.grad.clone() for p in model.parameters()
        ]
    for a, b in zip(got["auto"], got["reference"]):
        torch.testing.assert_close(a, b)


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        run(Ensemble(RateRNNConfig(1, 2, 1)), torch.zeros(1, 2, 1), backend="gpu")
