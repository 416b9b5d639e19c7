"""The equations in dynrnn.functional: one source used by models and kernel references alike;
GRU/LSTM cells equal torch's; the layer below models and kernels imports neither."""

import ast
import itertools
from pathlib import Path

import pytest
import torch

from dynrnn.functional import (
    NONLINEARITIES,
    dphi,
    gru_step,
    lstm_step,
    phi,
    plrnn_step,
    rate_step,
    shplrnn_step,
)
from dynrnn.kernels import rate_rnn_reference
from dynrnn.models import (
    ALRNN,
    GRU,
    LSTM,
    ALRNNConfig,
    GRUConfig,
    LSTMConfig,
    RateRNN,
    RateRNNConfig,
    ShallowPLRNN,
    ShallowPLRNNConfig,
)

PKG = Path(__file__).resolve().parents[1] / "dynrnn"


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports (top level and inside functions), as absolute names."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1])  # the package a relative import starts from
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def test_functional_and_kernels_do_not_import_upward():
    for path in (PKG / "functional").glob("*.py"):
        bad = {m for m in _imported_modules(path) if m.startswith("dynrnn.")
               and not m.startswith(("dynrnn.functional", "dynrnn._validation"))}
        assert not bad, (path.name, bad)
    for path in (PKG / "kernels").glob("*.py"):
        bad = {m for m in _imported_modules(path) if m.startswith("dynrnn.models")
               or m.startswith(("dynrnn.training", "dynrnn.analyses"))}
        assert not bad, (path.name, bad)


@pytest.mark.parametrize("name", NONLINEARITIES)
def test_dphi_is_the_autograd_slope(name):
    a = torch.linspace(-3, 3, 61, dtype=torch.float64).requires_grad_()
    (g,) = torch.autograd.grad(phi(name, a).sum(), a)
    torch.testing.assert_close(dphi(name, a.detach()), g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("leak_form,train_tau", list(itertools.product(("inside", "outside"),
                                                                       (False, True))))
def test_rate_model_and_kernel_reference_run_the_same_step(leak_form, train_tau):
    cfg = RateRNNConfig(3, 9, 2, leak_form=leak_form, train_tau=train_tau, tau_init=2.0,
                        tau_jitter=1.0, nonlinearity="softplus")
    m = RateRNN(cfg, n_networks=3, seed=0).double()
    g = torch.Generator().manual_seed(1)
    h = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)
    x = torch.randn(1, 4, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)
    params = m.prepare()
    drive = m.input_drive(x)
    expected = rate_step(h, drive, params["W_T"], params.get("alpha"), "softplus", leak_form,
                         noise)
    assert torch.equal(m.step_drive(h, drive, params, noise), expected)
    H, _ = rate_rnn_reference(x[:, None], h, m.W_in, m.b, params["W_T"], params.get("alpha"),
                              m.W_out, m.b_out, noise[:, None], "softplus", leak_form)
    torch.testing.assert_close(H[:, 0], expected, rtol=1e-14, atol=1e-14)


def test_gru_and_lstm_cells_equal_torch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g)
    for cls, cfg, step, cell in ((GRU, GRUConfig, gru_step, torch.nn.GRUCell),
                                 (LSTM, LSTMConfig, lstm_step, torch.nn.LSTMCell)):
        m = cls(cfg(3, 6, 2), seed=2)
        ref = cell(3, 6)
        with torch.no_grad():
            ref.weight_ih.copy_(m.W_ih[0])
            ref.weight_hh.copy_(m.W_hh[0])
            ref.bias_ih.copy_(m.b_ih[0])
            ref.bias_hh.copy_(m.b_hh[0])
        state = torch.randn(1, 5, m.n_units, generator=g)
        drive = m.input_drive(x[None])
        if cls is GRU:
            got = step(state, drive, m.W_hh.transpose(1, 2), m.b_hh)
            want = ref(x, state[0])
            torch.testing.assert_close(got[0], want)
        else:
            h, c = state[..., :6], state[..., 6:]
            got_h, got_c = step(h, c, drive, m.W_hh.transpose(1, 2), m.b_hh)
            want_h, want_c = ref(x, (h[0], c[0]))
            torch.testing.assert_close(got_h[0], want_h)
            torch.testing.assert_close(got_c[0], want_c)
        torch.testing.assert_close(m.step(state, x), torch.cat(
            [want] if cls is GRU else [want_h, want_c], -1)[None])


def test_plrnn_steps_are_the_models_and_affine_in_each_region():
    g = torch.Generator().manual_seed(0)
    for m in (ALRNN(ALRNNConfig(5, 3, n_pwl=2), n_networks=2).double(),
              ShallowPLRNN(ShallowPLRNNConfig(5, 3, n_hidden=7, clipped=True),
                           n_networks=2).double()):
        z = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
        params = m.prepare()
        drive = m.input_drive(torch.zeros(1, 4, 0, dtype=torch.float64))
        if isinstance(m, ALRNN):
            want = plrnn_step(z, drive, m.A, params["W_T"], 5 - 2)
        else:
            want = shplrnn_step(z, drive, m.A, params["W1_T"], params["W2_T"], m.h2, True)
        assert torch.equal(m.step(z), want)
        mats, c = m.affine_pieces(m.region_code(z))
        torch.testing.assert_close((mats @ z[..., None])[..., 0] + c, want, rtol=1e-12,
                                   atol=1e-12)


def test_forced_rollout_kernels_check_their_arguments():
    from dynrnn.kernels import plrnn_forced_rollout, shplrnn_forced_rollout

    K, S, B, M, L = 2, 5, 3, 4, 6
    zhat, z0 = torch.zeros(K, S + 1, B, M), torch.zeros(K, B, M)
    w, A, h = torch.zeros(S, K, 1, M), torch.zeros(K, M), torch.zeros(K, M)
    Z, ZF = plrnn_forced_rollout(zhat, w, z0, A, torch.zeros(K, M, M), h, 2)
    assert Z.shape == ZF.shape == (K, S, B, M)
    with pytest.raises(ValueError, match="'W'"):
        plrnn_forced_rollout(zhat, w, z0, A, torch.zeros(K, M, M + 1), h)
    with pytest.raises(ValueError, match="'weights'"):
        plrnn_forced_rollout(zhat, w[1:], z0, A, torch.zeros(K, M, M), h)
    with pytest.raises(ValueError, match="'n_linear'"):
        plrnn_forced_rollout(zhat, w, z0, A, torch.zeros(K, M, M), h, M + 1)
    with pytest.raises(TypeError, match="'z0'"):
        plrnn_forced_rollout(zhat, w, z0.double(), A, torch.zeros(K, M, M), h)
    W1, W2, h2 = torch.zeros(K, M, L), torch.zeros(K, L, M), torch.zeros(K, L)
    assert shplrnn_forced_rollout(zhat, w, z0, A, W1, W2, h, h2, True)[0].shape == (K, S, B, M)
    with pytest.raises(ValueError, match="'h2'"):
        shplrnn_forced_rollout(zhat, w, z0, A, W1, W2, h, h2[:, 1:], False)
