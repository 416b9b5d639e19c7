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


def test_learned_initial_state():
    """Identity observation, M > N: the first state is [x0; L x0] (trained L), else [x0; 0]."""
    from dynrnn.analyses.dsr_metrics import generate

    m = _perturb(ALRNN(ALRNNConfig(6, 2, n_pwl=2), n_networks=2))
    assert "L_init" in dict(m.named_parameters())
    assert m.L_init.shape == (2, 4, 2)
    x0 = torch.randn(2, 5, 2)
    z0 = m.latent_from_observation(x0, initial=True)
    assert torch.allclose(z0, torch.cat([x0, x0 @ m.L_init.transpose(1, 2)], -1))
    assert torch.equal(m.latent_from_observation(x0)[..., 2:], torch.zeros(2, 5, 4))
    _, Z = generate(m, x0, 1)
    assert torch.allclose(Z[:, :, 0], m.step(z0), atol=1e-6)
    off = ALRNN(ALRNNConfig(6, 2, n_pwl=2, learn_initial_state=False))
    assert "L_init" not in dict(off.named_parameters())
    assert torch.equal(off.latent_from_observation(x0[:1], initial=True)[..., 2:],
                       torch.zeros(1, 5, 4))
    # nothing to infer when every unit is observed
    assert "L_init" not in dict(ShallowPLRNN(ShallowPLRNNConfig(3, 3)).named_parameters())


def test_file_saved_before_learned_initial_state_loads(tmp_path):
    """A pair written before ``learn_initial_state``/``L_init`` existed loads with the
    behaviour it was trained with (unobserved units start at 0)."""
    import json

    from safetensors.torch import load_file, save_file

    m = _perturb(ALRNN(ALRNNConfig(5, 2, n_pwl=1, learn_initial_state=False), n_networks=2))
    stem = save_model(m, tmp_path / "old")
    weights, meta = stem.with_name("old.safetensors"), stem.with_name("old.json")
    tensors = load_file(str(weights))
    del tensors["L_init"]
    save_file(tensors, str(weights))
    header = json.loads(meta.read_text())
    header.pop("weights_sha256", None)
    for c in header["spec"]["configs"]:
        del c["learn_initial_state"]
    meta.write_text(json.dumps(header))
    old, _ = load_model(tmp_path / "old")
    assert old.config.learn_initial_state is False
    x = torch.zeros(2, 7, 0)
    assert torch.equal(run(m, x)[0], run(old, x)[0])


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
