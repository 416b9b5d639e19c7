"""PLRNN family: shapes, analytic Jacobians, affine pieces, ensembles = single networks,
initialisation, zoo round trip, bad configs."""

import pytest
import torch

from dynrnn.models import (
    ALRNN,
    PLRNN,
    ALRNNConfig,
    Ensemble,
    PLRNNConfig,
    RecurrentModel,
    ShallowPLRNN,
    ShallowPLRNNConfig,
    run,
)
from dynrnn.zoo import load_model, save_model

MODELS = [
    lambda k: PLRNN(PLRNNConfig(5, 3), n_networks=k),
    lambda k: PLRNN(PLRNNConfig(4, 2, n_inputs=2, observation="affine"), n_networks=k),
    lambda k: ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=7), n_networks=k),
    lambda k: ShallowPLRNN(ShallowPLRNNConfig(4, 3, n_hidden=7, clipped=True), n_networks=k),
    lambda k: ALRNN(ALRNNConfig(6, 3, n_pwl=2), n_networks=k),
    lambda k: ALRNN(ALRNNConfig(4, 2, n_pwl=0), n_networks=k),
]


def _perturb(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


@pytest.mark.parametrize("make", MODELS)
def test_jacobian_and_affine_pieces(make):
    m = _perturb(make(3).double())
    h = torch.randn(3, 5, m.n_units, dtype=torch.float64)
    x = torch.randn(1, 5, m.n_inputs, dtype=torch.float64)
    J = m.jacobian(h, x)
    J_ref = RecurrentModel.jacobian(m, h, x)  # autodiff (torch.func)
    assert J.shape == (3, 5, m.n_units, m.n_units)
    assert torch.allclose(J, J_ref, atol=1e-12)
    mats, c = m.affine_pieces(m.region_code(h))
    ext = m.input_drive(x) - m._bias()[:, None]
    F = (mats @ h.unsqueeze(-1)).squeeze(-1) + c + ext
    assert torch.allclose(F, m.step(h, x), atol=1e-12)
    assert torch.equal(mats, J)


@pytest.mark.parametrize("make", MODELS)
def test_run_shapes_and_ensemble_equals_single(make):
    m = _perturb(make(3))
    x = torch.randn(4, 9, m.n_inputs)
    S, Y = run(m, x)
    assert S.shape == (3, 4, 9, m.n_units) and Y.shape == (3, 4, 9, m.n_outputs)
    single = type(m)(m.configs[1], seed=m.seeds[1])
    single.load_state_dict({k: v[1:2] for k, v in m.state_dict().items()})
    S1, Y1 = run(single, x)
    assert torch.allclose(S1[0], S[1], atol=1e-6)
    fresh = type(m)(m.configs[0], n_networks=3, seed=m.seeds[0])
    one = type(m)(m.configs[0], seed=m.seeds[0] + 2)
    for k, v in one.state_dict().items():
        assert torch.equal(v[0], fresh.state_dict()[k][2])


def test_identity_observation_reads_first_units():
    m = ALRNN(ALRNNConfig(5, 2, n_pwl=1))
    h = torch.randn(1, 3, 5)
    assert torch.equal(m.readout(h), h[..., :2])


def test_initialisation():
    p = PLRNN(PLRNNConfig(6, 3), n_networks=2)
    assert torch.all(torch.diagonal(p.W, dim1=1, dim2=2) == 0)
    for m in (p, ShallowPLRNN(ShallowPLRNNConfig(3, 3)), ALRNN(ALRNNConfig(20, 3))):
        A = m.A.detach()
        assert float(A.max()) <= 1.0 + 1e-6 and float(A.min()) > 0
    a = ALRNN(ALRNNConfig(20, 3, n_pwl=2))
    assert float(a.W.detach().std()) < 0.02 and torch.all(a.h == 0)
    s = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=100))
    assert float(s.W1.detach().abs().max()) <= 0.1 + 1e-6  # U(+-1/sqrt(L))
    assert isinstance(Ensemble(ALRNNConfig(5, 3), n_networks=2), ALRNN)


def test_plrnn_diagonal_stays_off():
    m = _perturb(PLRNN(PLRNNConfig(4, 4)))
    with torch.no_grad():
        m.W.fill_(1.0)
    J = m.jacobian(torch.ones(1, 1, 4))
    assert torch.allclose(torch.diagonal(J[0, 0]), m.A[0])


def test_zoo_round_trip(tmp_path):
    m = _perturb(ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=5, clipped=True, dt=0.01),
                              n_networks=2))
    save_model(m, tmp_path / "sh")
    m2, _ = load_model(tmp_path / "sh")
    x = torch.zeros(2, 6, 0)
    assert torch.equal(run(m, x)[0], run(m2, x)[0])
    assert m2.dt == 0.01


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda: PLRNNConfig(0, 1), "n_latent"),
        (lambda: PLRNNConfig(2, 3), "n_outputs"),
        (lambda: PLRNNConfig(3, 3, observation="linear"), "observation"),
        (lambda: ShallowPLRNNConfig(3, 3, n_hidden=0), "n_hidden"),
        (lambda: ALRNNConfig(3, 3, n_pwl=4), "n_pwl"),
        (lambda: PLRNNConfig(3, 3, dt=0.0), "dt"),
    ],
)
def test_bad_config(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
