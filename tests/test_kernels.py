"""Fused CPU rate-RNN kernel == reference autograd loop (values and gradients)."""

import itertools

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
    N=st.sampled_from([1, 3, 9, 16, 17]),  # below, at and above one 64-byte vector (C kernel)
    I=st.integers(1, 3),
    O=st.integers(1, 3),
    shared_x=st.booleans(),
    noise=st.booleans(),
    form=st.sampled_from(FORMS),
    seed=st.integers(0, 1000),
    backend=st.sampled_from(["cpu", "cpu-torch"]),
)
def test_fused_equals_reference_float32(K, T, B, N, I, O, shared_x, noise, form, seed, backend):
    has_alpha, name, leak = form
    args = _inputs(K, T, B, N, I, O, shared_x, has_alpha, noise, torch.float32, seed)
    ref = _forward_backward(args, name, leak, "reference")
    fused = _forward_backward(args, name, leak, backend)
    for r, f in zip(ref[:2], fused[:2]):
        assert (f - r).abs().max() / r.abs().max().clamp(min=1) < 1e-5
    for r, f in zip(ref[2], fused[2]):
        assert (f - r).abs().max() / r.abs().max().clamp(min=1e-3) < 1e-4


@pytest.mark.parametrize("backend", ["cpu", "cpu-torch"])
@pytest.mark.parametrize("form", [f for f in FORMS if f[1] != "relu"])
@pytest.mark.parametrize("shared_x", [True, False])
def test_fused_backward_gradcheck(form, shared_x, backend):
    has_alpha, name, leak = form
    args = _inputs(2, 4, 3, 3, 2, 2, shared_x, has_alpha, True, torch.float64, 0)
    mask = [a is not None for a in args]
    leaves = [a.requires_grad_(True) for a in args if a is not None]

    def fn(*xs):
        it = iter(xs)
        full = [next(it) if m else None for m in mask]
        return rate_rnn(*full, nonlinearity=name, leak_form=leak, backend=backend)

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


def test_c_kernel_is_used_and_float64_matches_reference_exactly_enough():
    """The "cpu" backend runs the compiled C kernel where a compiler works (it does on the
    machines the package is tested on), with float64 results equal to the reference loop."""
    from importlib import import_module

    from dynrnn.kernels import _cbuild

    if not _cbuild.enabled():
        pytest.skip("C kernels disabled by DYNRNN_DISABLE_C")
    if _cbuild._compiler() is None:
        pytest.skip("no C compiler on this machine (the torch fallback is what runs)")
    mod = import_module("dynrnn.kernels.rate_rnn")
    assert mod._c_library(torch.float64, "tanh", "inside", 20) is not None
    for (has_alpha, name, leak), N in itertools.product(FORMS, (16, 20)):  # NP == N and not
        args = _inputs(3, 30, 7, N, 3, 2, False, has_alpha, True, torch.float64, 5)
        ref = _forward_backward(args, name, leak, "reference")
        got = _forward_backward(args, name, leak, "cpu")
        for r, f in zip([*ref[:2], *ref[2]], [*got[:2], *got[2]]):
            torch.testing.assert_close(f, r, rtol=1e-10, atol=1e-12)


def test_c_kernel_threads_split_networks_identically():
    args = _inputs(5, 9, 4, 17, 2, 3, True, True, False, torch.float64, 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _forward_backward(args, "tanh", "inside", "cpu")
        torch.set_num_threads(3)
        three = _forward_backward(args, "tanh", "inside", "cpu")
    finally:
        torch.set_num_threads(before)
    for a, b in zip([*one[:2], *one[2]], [*three[:2], *three[2]]):
        assert torch.equal(a, b)


def test_disabling_c_falls_back_to_torch(monkeypatch):
    monkeypatch.setenv("DYNRNN_DISABLE_C", "1")
    from importlib import import_module

    mod = import_module("dynrnn.kernels.rate_rnn")
    assert mod._c_library(torch.float32, "tanh", None, 8) is None
    args = _inputs(2, 5, 3, 8, 2, 2, True, False, False, torch.float32, 0)
    ref = _forward_backward(args, "tanh", "inside", "reference")
    got = _forward_backward(args, "tanh", "inside", "cpu")
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-6)


def test_workspace_pool_never_reuses_a_buffer_still_in_use():
    from dynrnn.kernels._workspace import MIN_BYTES, WorkspacePool

    pool = WorkspacePool()
    shape = (MIN_BYTES // 4 // 8 + 1, 8)
    a = pool.empty(shape, torch.float32)
    a.fill_(1.0)
    b = pool.empty(shape, torch.float32)  # a is alive: must be a different buffer
    assert a.data_ptr() != b.data_ptr()
    view = a[1:]
    del a
    c = pool.empty(shape, torch.float32)  # a's storage is alive through `view`
    assert c.data_ptr() != view.data_ptr() - view.element_size() * 8
    ptr_b = b.data_ptr()
    del b
    d = pool.empty(shape, torch.float32)  # b's buffer is idle now: reused
    assert d.data_ptr() == ptr_b
    assert torch.all(view == 1.0)


def test_c_kernel_works_in_a_forked_child_after_threaded_use():
    """A worker forked after the kernel ran on several threads (multiprocessing, dask) must
    not wait forever on the parent's (absent) thread pool."""
    import multiprocessing as mp

    args = _inputs(4, 5, 3, 8, 2, 2, True, False, False, torch.float64, 0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        expected = _forward_backward(args, "tanh", "inside", "cpu")[1]
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            got = pool.apply_async(_forked_forward, (args,)).get(timeout=120)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(got, expected)


def _forked_forward(args):
    torch.set_num_threads(2)
    return _forward_backward(args, "tanh", "inside", "cpu")[1]
