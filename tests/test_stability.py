"""Stability certificates (dynrnn.analyses.stability) and certified-by-construction models."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynrnn.analyses import lyapunov_spectrum
from dynrnn.analyses.stability import (
    certify_matrices,
    echo_state_property,
    perron_vectors,
    stability_certificates,
    weighted_norm_fast,
    weighted_norm_sdp,
)
from dynrnn.functional.nonlin import NONLINEARITIES, max_slope
from dynrnn.models import (
    GRU,
    PLRNN,
    ContractingAssembly,
    ContractingAssemblyConfig,
    ContractingRNN,
    ContractingRNNConfig,
    EchoStateConfig,
    EchoStateNetwork,
    Ensemble,
    GRUConfig,
    PLRNNConfig,
    RateRNNConfig,
    model_from_spec,
    run,
)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _matrices(seed: int, K: int, N: int, scale: float, density: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(K, N, N, generator=g, dtype=torch.float64) * scale / np.sqrt(N)
    mask = torch.rand(K, N, N, generator=g, dtype=torch.float64) < density
    return W * mask


def _rho(W):
    return torch.linalg.eigvals(W).abs().amax(-1)


# ------------------------------------------------------------------------ linear algebra
def test_perron_scaling_attains_rho_of_nonnegative_matrices():
    """||Theta B Theta^-1||_2 = rho(B) at Theta = sqrt(u / v) (the claim the ordering uses)."""
    g = torch.Generator().manual_seed(0)
    B = torch.rand(50, 7, 7, generator=g, dtype=torch.float64)
    B = B * (torch.rand(50, 7, 7, generator=g, dtype=torch.float64) < 0.7) + 1e-3
    up, v, u = perron_vectors(B)
    th = (u / v).sqrt()
    n2 = torch.linalg.matrix_norm(th[:, :, None] * B / th[:, None, :], 2)
    rho = _rho(B)
    assert torch.allclose(n2, rho, rtol=1e-9, atol=0)
    assert torch.allclose(up, rho, rtol=1e-9, atol=0)


@settings(max_examples=40, **SETTINGS)
@given(seed=st.integers(0, 10_000), N=st.integers(2, 8), scale=st.floats(0.2, 3.0),
       density=st.sampled_from([0.3, 0.6, 1.0]))
def test_fast_bound_ordering(seed, N, scale, density):
    """rho(W) <= fast weighted-norm bound <= min(||W||_2, rho(|W|)) (to rounding)."""
    W = _matrices(seed, 4, N, scale, density)
    fast, theta = weighted_norm_fast(W)
    rho = _rho(W)
    n2 = torch.linalg.matrix_norm(W, 2)
    rho_abs = _rho(W.abs())
    assert bool((rho <= fast * (1 + 1e-9) + 1e-12).all())
    assert bool((fast <= n2 * (1 + 1e-12)).all())
    # Perron candidate: built on |W| + eps 1 1^T (eps = 1e-12 max |W|); for an irreducible
    # (dense) |W| its rho equals rho(|W|) to rounding, for a reducible one it may exceed it
    eps = 1e-12 * W.abs().amax(dim=(1, 2), keepdim=True)
    rho_pert = _rho(W.abs() + eps)
    assert bool((fast <= torch.minimum(n2, rho_pert) * (1 + 1e-6) + 1e-12).all())
    if density == 1.0:
        assert bool((fast <= torch.minimum(n2, rho_abs) * (1 + 1e-6)).all())
    # the value is the exact norm at the Theta returned
    exact = torch.linalg.matrix_norm(theta[:, :, None] * W / theta[:, None, :], 2)
    assert torch.allclose(exact, fast, rtol=1e-12, atol=1e-14)


@settings(max_examples=8, **SETTINGS)
@given(seed=st.integers(0, 10_000), N=st.integers(2, 5), scale=st.floats(0.3, 2.5))
def test_sdp_ordering_and_fast_never_below_optimum(seed, N, scale):
    pytest.importorskip("cvxpy")
    W = _matrices(seed, 2, N, scale, 1.0)
    fast, _ = weighted_norm_fast(W)
    gamma, lower, theta, status = weighted_norm_sdp(W, upper=fast.numpy(), rel_tol=1e-7)
    assert status == ["optimal", "optimal"]
    rho = _rho(W).numpy()
    n2 = torch.linalg.matrix_norm(W, 2).numpy()
    rho_abs = _rho(W.abs()).numpy()
    tol = 1e-6
    # rho(W) <= optimum (lower <= optimum <= gamma) <= min(||W||_2, rho(|W|))
    assert np.all(rho <= gamma * (1 + 1e-9))
    assert np.all(lower <= np.minimum(n2, rho_abs) * (1 + tol))
    assert np.all(gamma <= np.minimum(n2, rho_abs) * (1 + tol))
    # the fast bound is never below the SDP optimum
    assert np.all(fast.numpy() >= lower * (1 - tol))


# ------------------------------------------------------------------------ scientific checks
@settings(max_examples=4, **SETTINGS)
@given(seed=st.integers(0, 1000))
def test_no_certificate_for_positive_lyapunov_exponent(seed):
    """Networks at gains around 1 (some chaotic): a certified one never has lambda_max > 0."""
    gains = np.linspace(0.2, 2.4, 10)
    cfgs = [RateRNNConfig(1, 24, 1, init_gain=float(gn), bias=False) for gn in gains]
    model = Ensemble(cfgs, seed=seed)
    cert = stability_certificates(model)
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(1, 1, 700, 1, generator=g)
    lyap = lyapunov_spectrum(model, x, burn_in=200, tangent_burn_in=100, n_exponents=1,
                             progress=False, seed=seed)
    lam = lyap["max_exponent"].values
    certified = cert["certified"].values
    assert not np.any(certified & (lam > 0))
    # where certified, the exponent is at most log(rate) (the certified per-step contraction),
    # up to log(cond(Theta)) / n_steps from measuring in the Euclidean norm (< 0.02 here)
    r = cert["contraction_rate"].values[certified]
    assert np.all(lam[certified] <= np.log(r) + 0.02)
    assert np.all(lam[certified] < 0)


def _certified_zoo():
    nets = [
        Ensemble(RateRNNConfig(2, 10, 1, init_gain=0.5), n_networks=3, seed=1),
        Ensemble(RateRNNConfig(2, 10, 1, init_gain=0.45, leak_form="outside", tau_init=3.0),
                 n_networks=3, seed=2),
        Ensemble(RateRNNConfig(2, 10, 1, init_gain=0.6, leak_form="inside", tau_init=2.0,
                               tau_jitter=1.0), n_networks=3, seed=3),
        EchoStateNetwork(EchoStateConfig(n_units=10, n_inputs=2, spectral_radius=0.5,
                                         leak=0.4, density=0.5), n_networks=3, seed=4),
        ContractingRNN(ContractingRNNConfig(2, 10, 1, leak=0.6, init_gain=0.9), n_networks=2),
        ContractingAssembly(ContractingAssemblyConfig(2, 1, block_sizes=(5, 5), leak=0.1),
                            n_networks=2),
    ]
    return nets


def test_every_certified_network_contracts_at_the_certified_rate():
    """Two trajectories under the same input shrink in each holding condition's metric at
    least as fast as that condition's rate, every step."""
    n_checked = 0
    for model in _certified_zoo():
        cert = stability_certificates(model)
        assert bool(cert["certified"].any()), type(model).__name__
        m64 = model.double()
        K, N = model.n_networks, model.n_units
        g = torch.Generator().manual_seed(7)
        x = torch.randn(1, 1, 60, model.n_inputs, generator=g, dtype=torch.float64)
        x = x.expand(1, 2, 60, model.n_inputs)
        h0 = 2 * torch.randn(K, 2, N, generator=g, dtype=torch.float64)
        with torch.no_grad():
            S, _ = run(m64, x, h0=h0, backend="reference")
        d = torch.cat([(h0[:, 0] - h0[:, 1])[:, None], S[:, 0] - S[:, 1]], 1)  # [K, T+1, N]
        for cond in cert.condition.values:
            sub = cert.sel(condition=cond)
            if not bool(sub["sufficient"]):
                continue
            for k in range(K):
                if not bool(sub["holds"][k]):
                    continue
                theta = torch.as_tensor(sub["theta"].values[k])
                wd = (d[k] * theta).abs()
                dist = wd.norm(dim=-1) if str(sub["metric_norm"].values) == "2" else wd.amax(-1)
                r = float(sub["rate"][k])
                steps = torch.arange(dist.shape[0], dtype=torch.float64)
                bound = dist[0] * r ** steps
                assert bool((dist <= bound * (1 + 1e-9) + 1e-300).all()), (
                    type(model).__name__, cond, k)
                # and every single step, while the distance is above rounding
                big = dist[:-1] > 1e-10 * dist[0]
                assert bool((dist[1:][big] <= r * dist[:-1][big] * (1 + 1e-9)).all())
                n_checked += 1
    assert n_checked >= 20


def test_yildiz_style_counterexample_rho_below_one_is_not_certified():
    """rho(W) < 1 but two attractors for a constant input (in the spirit of Yildiz, Jaeger &
    Kiebel 2012, Neural Networks 35): unit 2 saturates under a strong input, leaving unit 1 a
    self-coupling of 1.5 > 1 and hence bistable."""
    model = Ensemble(RateRNNConfig(2, 2, 1, bias=False))
    with torch.no_grad():
        model.W_rec.copy_(torch.tensor([[[1.5, 1.0], [-1.25, -1.0]]]))
        model.W_in.copy_(torch.eye(2)[None])
    cert = stability_certificates(model, sdp=_has_cvxpy())
    assert float(cert["spectral_radius"][0]) < 1  # ~0.809
    assert not bool(cert["certified"][0])
    assert str(cert["condition_used"].values[0]) == "inconclusive"
    u = torch.tensor([-1.0, 5.0]).expand(1, 200, 2)
    esp = echo_state_property(model, u, n_initial=16, seed=0)
    assert not bool(esp["esp_empirical"][0])
    assert float(esp["spread_final"][0]) > 0.5  # the two attractors h1 ~ +-0.86 stay apart
    assert not bool(esp["esp_certified"][0])


def test_echo_state_property_reports_certificate_and_empirical_separately():
    esn = EchoStateNetwork(EchoStateConfig(n_units=30, spectral_radius=0.5, density=0.3),
                           n_networks=3)
    u = torch.randn(4, 120, 1, generator=torch.Generator().manual_seed(0))
    ds = echo_state_property(esn, u)
    assert ds["esp_empirical"].values.all()
    assert {"esp_empirical", "esp_certified", "esp_certificate_condition"} <= set(ds.data_vars)
    assert np.all(ds["empirical_rate"].values < 1)


def test_certificates_have_network_coordinates():
    cfgs = [RateRNNConfig(1, 8, 1, init_gain=gn) for gn in (0.5, 0.5, 2.0, 2.0)]
    ds = stability_certificates(Ensemble(cfgs))
    assert ds.sizes["network"] == 4
    assert "init_gain" in ds.coords and "seed" in ds.coords
    frac = ds["certified"].groupby("init_gain").mean()
    assert float(frac.sel(init_gain=0.5)) == 1.0
    assert float(frac.sel(init_gain=2.0)) == 0.0
    assert set(ds["sufficient"].values.tolist()) == {False, True}
    assert not bool(ds["sufficient"].sel(condition="spectral_radius"))


def test_continuous_time_kozachkov_condition_with_positive_diagonal():
    """|W| with the positive diagonal kept: a large negative self-coupling does not hurt."""
    W = torch.tensor([[[-5.0, 0.4], [0.3, 0.2]]], dtype=torch.float64)
    ds = certify_matrices(W, nonlinearity="tanh", form="continuous", tau=2.0)
    koz = ds.sel(condition="kozachkov")
    assert bool(koz["holds"][0])
    M = np.array([[0.0, 0.4], [0.3, 0.2]])
    rho = np.abs(np.linalg.eigvals(M)).max()
    assert float(koz["rate"][0]) == pytest.approx((1 - rho) / 2, rel=1e-6)
    assert not bool(ds.sel(condition="spectral_norm")["holds"][0])  # ||W||_2 ~ 5


def test_plrnn_and_leaky_forms():
    p = PLRNN(PLRNNConfig(n_latent=6, n_outputs=2), n_networks=2)
    with torch.no_grad():
        p.A.mul_(0.5)
        p.W.mul_(0.5)
    ds = stability_certificates(p)
    assert ds.attrs["form"] == "plrnn"
    # leaky map: rate 1 - a (1 - g gamma) with one leak
    W = 0.5 * torch.eye(3, dtype=torch.float64)[None]
    ds = certify_matrices(W, slope_bound=1.0, form="leaky", leak=0.2)
    assert float(ds.sel(condition="spectral_norm")["rate"][0]) == pytest.approx(0.9)


# ------------------------------------------------------------------------ certified models
def _train_certified(model, n_steps):
    from dynrnn.tasks import ParityTask
    from dynrnn.training import TrainConfig, train

    task = ParityTask(n_values=(2,))
    conds = ("feedback_metric",) if isinstance(model, ContractingAssembly) else ("diagonal_fast",)
    worst = []
    original = model.project_

    def project_and_check():
        original()
        cert = stability_certificates(model, conditions=conds, fast_iter=0)
        worst.append(float(cert["rate"].sel(condition=conds[0]).max()))
        assert bool(cert["certified"].all())

    model.project_ = project_and_check
    hist = train(model, task, TrainConfig(n_steps=n_steps, batch_size=64, lr=1e-2,
                                          eval_every=25, noise=False, eval_batch_size=256),
                 progress=False, seed=0)
    return hist, np.asarray(worst)


def test_contracting_rnn_stays_certified_and_learns_parity():
    model = ContractingRNN(ContractingRNNConfig(1, 32, 2, max_gain=0.95), n_networks=3)
    hist, worst = _train_certified(model, 400)
    assert len(worst) >= 75 and np.all(worst < 0.95 + 1e-6)
    assert hist.reached.all()


def test_contracting_assembly_stays_certified_and_learns_parity():
    cfg = ContractingAssemblyConfig(1, 2, block_sizes=(16, 16), leak=0.7, max_gain=0.9,
                                    max_coupling=0.3)
    model = ContractingAssembly(cfg, n_networks=3)
    hist, worst = _train_certified(model, 400)
    assert len(worst) >= 100 and np.all(worst < 1)
    assert hist.reached.all()


def test_certified_models_stay_certified_for_random_parameters():
    for seed in range(3):
        m = ContractingRNN(ContractingRNNConfig(2, 12, 1, init_gain=0.94, max_gain=0.95),
                           n_networks=2, seed=seed)
        a = ContractingAssembly(ContractingAssemblyConfig(2, 1, block_sizes=(4, 8), leak=0.15),
                                n_networks=2, seed=seed)
        with torch.no_grad():  # wild parameters: the parameterisation still certifies
            for p in (*m.parameters(), *a.parameters()):
                p.add_(3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
        for model in (m, a):
            for time in ("discrete", "continuous"):
                assert bool(stability_certificates(model, time=time)["certified"].all())


def test_certified_models_follow_the_protocol_and_round_trip(tmp_path):
    from dynrnn.models.base import jacobian_by_autodiff
    from dynrnn.zoo import load_model, save_model

    for model in (ContractingRNN(ContractingRNNConfig(2, 6, 1, leak=0.5), n_networks=2),
                  ContractingAssembly(ContractingAssemblyConfig(2, 1, block_sizes=(3, 3)),
                                      n_networks=2)):
        m = model.double()
        h = torch.randn(2, 3, 6, dtype=torch.float64)
        x = torch.randn(1, 3, 2, dtype=torch.float64)
        J = m.jacobian(h, x)
        J_ad = jacobian_by_autodiff(m, h, m._drive_for_step(h, x))
        assert torch.allclose(J, J_ad, atol=1e-12)
        rebuilt = model_from_spec(model.spec())
        assert type(rebuilt) is type(model)
        save_model(model, tmp_path / model.model_name)
        loaded, _ = load_model(tmp_path / model.model_name)
        xs = torch.randn(2, 5, 2, dtype=torch.float64)
        assert torch.allclose(run(loaded, xs)[1], run(model, xs)[1])


# ------------------------------------------------------------------------ bad input
def test_unsupported_nonlinearity_names_the_slope_bound():
    with pytest.raises(ValueError, match="slope bound g with 0 <= phi'"):
        certify_matrices(torch.eye(3), nonlinearity="swish")
    ds = certify_matrices(0.5 * torch.eye(3), slope_bound=1.1)
    assert float(ds["slope_bound"][0]) == 1.1
    with pytest.raises(ValueError, match="not cover"):
        stability_certificates(GRU(GRUConfig(1, 4, 1)))
    assert {n: max_slope(n) for n in NONLINEARITIES}["sigmoid"] == 0.25


def test_non_square_weights_raise():
    with pytest.raises(ValueError, match="must be square"):
        certify_matrices(torch.ones(2, 3, 4), nonlinearity="tanh")
    with pytest.raises(ValueError, match="must be square"):
        weighted_norm_fast(torch.ones(3, 2))


def test_missing_solver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ImportError, match=r"dynrnn\[stability\]"):
        weighted_norm_sdp(torch.eye(2))
    with pytest.raises(ImportError, match=r"dynrnn\[stability\]"):
        certify_matrices(torch.eye(2), nonlinearity="tanh", sdp=True)


def test_failing_solver_reports_inconclusive_with_status(monkeypatch):
    cp = pytest.importorskip("cvxpy")

    def fail(self, *a, **k):
        raise cp.error.SolverError("numerical trouble (injected)")

    monkeypatch.setattr(cp.Problem, "solve", fail)
    W = torch.tensor([[[0.0, 0.9], [0.9, 0.0]]], dtype=torch.float64)
    ds = certify_matrices(W, nonlinearity="tanh", sdp=True,
                          conditions=("diagonal_sdp",))
    assert "solver error" in str(ds["solver_status"].values[0])
    assert "injected" in str(ds["solver_status"].values[0])
    assert not bool(ds.sel(condition="diagonal_sdp")["holds"][0])
    assert str(ds["condition_used"].values[0]) == "inconclusive"


def _has_cvxpy() -> bool:
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------ plots
def test_stability_plots_return_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dynrnn.plot import plot_certificate_bounds, plot_rate_vs_performance

    cfgs = [RateRNNConfig(1, 8, 1, init_gain=gn) for gn in (0.3, 0.6, 1.0, 2.0)]
    ds = stability_certificates(Ensemble(cfgs))
    ax = plot_certificate_bounds(ds)
    assert ax.get_xscale() == "log" and len(ax.collections) >= 3
    fig, ax2 = plt.subplots()
    out = plot_rate_vs_performance(ds, np.array([0.1, 0.2, 0.3, 0.4]), ax=ax2)
    assert out is ax2
    with pytest.raises(ValueError, match="one value per network"):
        plot_rate_vs_performance(ds, np.ones(3))
    plt.close("all")
