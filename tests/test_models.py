"""The model protocol: shapes, exactness against torch's own cells, ensembles = single nets,
analytic Jacobians = autodiff Jacobians, constraints, bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.models import (
    GRU,
    LSTM,
    Ensemble,
    GRUConfig,
    LSTMConfig,
    RateRNN,
    RateRNNConfig,
    RecurrentModel,
    model_from_spec,
    run,
    stack_networks,
)

CONFIGS = [
    RateRNNConfig(3, 12, 2),
    RateRNNConfig(3, 12, 2, tau_init=2.0, tau_jitter=1.0, train_tau=True),
    RateRNNConfig(3, 12, 2, tau_init=3.0, leak_form="outside", nonlinearity="softplus"),
    RateRNNConfig(3, 12, 2, nonlinearity="relu", dale=True, zero_diagonal=True, tau_init=2.0),
    RateRNNConfig(3, 12, 2, nonlinearity="leaky_relu", zero_diagonal=True, h0_scale=0.1),
    GRUConfig(3, 12, 2),
    LSTMConfig(3, 12, 2),
]


@settings(max_examples=15, deadline=None)
@given(
    k=st.integers(1, 4),
    b=st.integers(1, 5),
    t=st.integers(1, 7),
    which=st.integers(0, len(CONFIGS) - 1),
    shared_input=st.booleans(),
)
def test_run_shapes(k, b, t, which, shared_input):
    model = Ensemble(CONFIGS[which], n_networks=k, seed=3)
    x = torch.randn((b, t, 3) if shared_input else (k, b, t, 3))
    states, outputs = run(model, x, generator=0)
    assert states.shape == (k, b, t, model.n_units)
    assert outputs.shape == (k, b, t, 2)
    assert torch.isfinite(states).all()
    # the loop is the map: state t+1 = step(state t, x t+1)
    h1 = model.step(states[:, :, 0], x[..., 1, :] if t > 1 else x[..., 0, :])
    if t > 1:
        torch.testing.assert_close(h1, states[:, :, 1])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_ensemble_member_equals_single_network(config):
    ens = Ensemble(config, n_networks=5, seed=10).double()
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    s_ens, y_ens = run(ens, x, generator=1)
    for k in (0, 3):
        single = type(ens)(config, seed=10 + k).double()
        for name, p in single.state_dict().items():
            torch.testing.assert_close(p, ens.state_dict()[name][k : k + 1])
        h0 = ens.init_state(4, 1)[k : k + 1]
        s1, y1 = run(single, x, h0=h0)
        torch.testing.assert_close(s1[0], s_ens[k], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(y1[0], y_ens[k], rtol=1e-12, atol=1e-12)


def test_vanilla_rate_rnn_matches_torch_rnn():
    torch.manual_seed(0)
    ref = torch.nn.RNN(3, 16, batch_first=True).double()
    model = RateRNN(RateRNNConfig(3, 16, 1)).double()
    with torch.no_grad():
        model.W_rec.copy_(ref.weight_hh_l0[None])
        model.W_in.copy_(ref.weight_ih_l0[None])
        model.b.copy_((ref.bias_ih_l0 + ref.bias_hh_l0)[None])
    x = torch.randn(5, 20, 3, dtype=torch.float64)
    torch.testing.assert_close(run(model, x)[0][0], ref(x)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls,ref_cls", [(GRU, torch.nn.GRU), (LSTM, torch.nn.LSTM)])
def test_gated_cells_match_torch(cls, ref_cls):
    torch.manual_seed(1)
    ref = ref_cls(3, 16, batch_first=True).double()
    model = cls(cls.config_class(3, 16, 1)).double()
    with torch.no_grad():
        model.W_ih.copy_(ref.weight_ih_l0[None])
        model.W_hh.copy_(ref.weight_hh_l0[None])
        model.b_ih.copy_(ref.bias_ih_l0[None])
        model.b_hh.copy_(ref.bias_hh_l0[None])
    x = torch.randn(5, 20, 3, dtype=torch.float64)
    states = run(model, x)[0][0]
    torch.testing.assert_close(states[..., :16], ref(x)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_jacobian_matches_autodiff(config):
    model = Ensemble(config, n_networks=3, seed=0).double()
    h = 0.5 * torch.randn(3, 4, model.n_units, dtype=torch.float64)
    x = torch.randn(1, 4, 3, dtype=torch.float64)
    J = model.jacobian(h, x)
    assert J.shape == (3, 4, model.n_units, model.n_units)
    J_ref = torch.stack(
        [
            torch.stack(
                [
                    torch.autograd.functional.jacobian(
                        lambda v, k=k, b=b: model.step(
                            h.index_put((torch.tensor(k), torch.tensor(b)), v), x
                        )[k, b],
                        h[k, b],
                    )
                    for b in range(4)
                ]
            )
            for k in range(3)
        ]
    )
    torch.testing.assert_close(J, J_ref, rtol=1e-10, atol=1e-10)
    # the generic (forward-mode) path agrees with the analytic one where one exists
    torch.testing.assert_close(RecurrentModel.jacobian(model, h, x), J, rtol=1e-10, atol=1e-10)


def test_leak_forms_follow_their_equations():
    cfg_in = RateRNNConfig(2, 5, 1, tau_init=4.0, nonlinearity="tanh", leak_form="inside")
    cfg_out = RateRNNConfig(2, 5, 1, tau_init=4.0, nonlinearity="tanh", leak_form="outside")
    m_in, m_out = RateRNN(cfg_in, seed=0).double(), RateRNN(cfg_out, seed=0).double()
    h = torch.randn(1, 3, 5, dtype=torch.float64)
    x = torch.randn(1, 3, 2, dtype=torch.float64)
    a = h @ m_in.W_rec[0].T + x @ m_in.W_in[0].T + m_in.b[0]
    torch.testing.assert_close(m_in.step(h, x), torch.tanh(0.75 * h + 0.25 * a))
    torch.testing.assert_close(m_out.step(h, x), 0.75 * h + 0.25 * torch.tanh(a))


def test_tau_is_clamped_and_projected():
    cfg = RateRNNConfig(1, 6, 1, tau_init=1.0, tau_jitter=0.5, train_tau=True)
    model = RateRNN(cfg)
    with torch.no_grad():
        model.tau[0, 0] = 0.2
    assert model.alpha()[0, 0, 0].item() == pytest.approx(1.0)  # clamped in the forward pass
    model.project_()
    assert model.tau.min() >= 1.0


def test_dale_and_zero_diagonal_constraints():
    cfg = RateRNNConfig(2, 10, 1, nonlinearity="relu", dale=True, zero_diagonal=True)
    model = RateRNN(cfg, n_networks=2)
    W = model.effective_weights()
    n_exc = cfg.n_excitatory
    assert (W[:, :, :n_exc] >= 0).all() and (W[:, :, n_exc:] <= 0).all()
    assert (torch.diagonal(W, dim1=1, dim2=2) == 0).all()


def test_select_stack_roundtrip_keeps_dtype():
    model = Ensemble(RateRNNConfig(3, 8, 2), n_networks=4, seed=0).double()
    sub = model.select([3, 1])
    assert sub.dtype == torch.float64 and sub.seeds == [3, 1]
    torch.testing.assert_close(sub.W_rec, model.W_rec[[3, 1]])
    back = stack_networks([model.select(0), model.select([1, 2, 3])])
    for name, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], v)
    rebuilt = model_from_spec(model.spec())
    assert rebuilt.seeds == model.seeds


def test_per_network_hyperparameters():
    cfgs = [RateRNNConfig(3, 8, 2, init_gain=g) for g in (0.5, 1.0, 2.0)]
    model = Ensemble(cfgs, seed=0)
    norms = model.W_rec.flatten(1).norm(dim=1)
    assert norms[0] < norms[1] < norms[2]
    meta = model.network_metadata()
    assert [m["init_gain"] for m in meta] == [0.5, 1.0, 2.0]
    with pytest.raises(ValueError, match="n_units"):
        Ensemble([RateRNNConfig(3, 8, 2), RateRNNConfig(3, 9, 2)])


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_units": 0}, "n_units"),
        ({"tau_init": 0.5}, "tau_init"),
        ({"tau_min": -1.0}, "tau_min"),
        ({"nonlinearity": "swish"}, "nonlinearity"),
        ({"leak_form": "sideways"}, "leak_form"),
        ({"frac_excitatory": 1.5}, "frac_excitatory"),
        ({"rec_noise_std": -0.1}, "rec_noise_std"),
        ({"dale": True}, "dale"),
    ],
)
def test_bad_config_names_parameter(kwargs, name):
    base = dict(n_inputs=2, n_units=4, n_outputs=1)
    base.update(kwargs)
    with pytest.raises(ValueError, match=name):
        RateRNNConfig(**base)


def test_bad_inputs_name_the_argument():
    model = Ensemble(RateRNNConfig(3, 8, 2), n_networks=2)
    with pytest.raises(ValueError, match="'x'"):
        run(model, torch.randn(4, 5, 2))
    with pytest.raises(ValueError, match="'x'"):
        run(model, torch.randn(3, 4, 5, 3))
    with pytest.raises(ValueError, match="'h'"):
        model.step(torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match="n_networks"):
        Ensemble(RateRNNConfig(3, 8, 2), n_networks=0)
    with pytest.raises(ValueError, match="config"):
        Ensemble("not a config")


def test_noise_is_reproducible_and_off_by_default():
    model = Ensemble(RateRNNConfig(3, 8, 2, rec_noise_std=0.1, input_noise_std=0.1), n_networks=2)
    x = torch.randn(4, 10, 3)
    a = run(model, x, noise=True, generator=5)[0]
    b = run(model, x, noise=True, generator=5)[0]
    c = run(model, x, noise=True, generator=6)[0]
    clean = run(model, x)[0]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, clean)
    assert torch.equal(clean, run(model, x)[0])
