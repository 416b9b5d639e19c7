"""Stability certificates (dynrnn.analyses.stability) and certified-by-construction models."""

from __future__ import annotations

import itertools
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
    stability_structure,
    symmetric_metric,
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


def _vertices(N, g):
    return [torch.diag(torch.tensor(v, dtype=torch.float64))
            for v in itertools.product((0.0, g), repeat=N)]


def _lognorm2(J, theta):
    """mu_2 of J in the metric ||theta * x||_2."""
    Js = theta[:, None] * J / theta[None, :]
    return float(torch.linalg.eigvalsh((Js + Js.T) / 2).max())


@settings(max_examples=12, **SETTINGS)
@given(seed=st.integers(0, 10_000), N=st.integers(2, 5), scale=st.floats(0.2, 2.0),
       per_unit_tau=st.booleans())
def test_kozachkov_theorem1_metric_and_rate(seed, N, scale, per_unit_tau):
    """Theorem 1 of Kozachkov, Ennis & Slotine (2022) for tau x' = -x + W phi(x) + u: a
    DIAGONAL QUADRATIC metric (weighted 2-norm), the condition g rho(|W|_+) < 1, and every
    Jacobian (both readings, every slope vertex) has log-norm <= -rate in that metric."""
    W = _matrices(seed, 3, N, scale, 1.0)
    g = torch.Generator().manual_seed(seed)
    tau = (0.5 + 2 * torch.rand(3, N, generator=g, dtype=torch.float64)) if per_unit_tau \
        else torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    ds = certify_matrices(W, nonlinearity="tanh", form="continuous", tau=tau)
    koz = ds.sel(condition="kozachkov")
    assert str(koz["metric_norm"].values) == "2"
    Wp = W.abs() * (1 - torch.eye(N)) + torch.diag_embed(torch.diagonal(W, 0, 1, 2).clamp_min(0))
    rho_p = _rho(Wp).numpy()
    assert np.allclose(koz["value"].values, rho_p, rtol=1e-8)
    clear = np.abs(rho_p - 1) > 1e-6  # away from the boundary: holds iff g rho(|W|_+) < 1
    np.testing.assert_array_equal(koz["holds"].values[clear], rho_p[clear] < 1)
    if not per_unit_tau:  # the Perron scaling attains the rate (1 - g rho(|W|_+)) / tau
        assert np.allclose(koz["rate"].values, (1 - rho_p) / tau.numpy(), rtol=1e-7, atol=1e-9)
    T = tau if per_unit_tau else tau[:, None].expand(3, N)
    for k in range(3):
        theta = torch.as_tensor(koz["theta"].values[k])
        c = float(koz["rate"][k])
        for D in _vertices(N, 1.0):
            for J in ((-torch.eye(N) + W[k] @ D) / T[k][:, None],
                      (-torch.eye(N) + D @ W[k]) / T[k][:, None]):
                assert _lognorm2(J, theta) <= -c + 1e-9


def test_kozachkov_is_a_continuous_time_condition_only():
    """The theorem is about tau x' = -x + W phi(x) + u: not issued for the discrete forms."""
    W = 0.3 * torch.eye(3, dtype=torch.float64)[None]
    for form, kw in (("map", {}), ("leaky", {"leak": 0.5}),
                     ("plrnn", {"diag": 0.2 * torch.ones(1, 3)})):
        ds = certify_matrices(W, slope_bound=1.0, form=form, **kw)
        assert np.isnan(float(ds["rate"].sel(condition="kozachkov")[0]))
        assert not bool(ds["holds"].sel(condition="kozachkov")[0])


def _symmetric(seed, K, N, lam_max, spread):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(K, N, N, generator=g, dtype=torch.float64) * spread
    S = (A + A.transpose(1, 2)) / 2
    return S - (torch.linalg.eigvalsh(S).amax(-1) - lam_max)[:, None, None] * torch.eye(N)


@settings(max_examples=15, **SETTINGS)
@given(seed=st.integers(0, 10_000), N=st.integers(2, 5), lam=st.floats(-0.5, 0.97),
       spread=st.floats(0.1, 3.0), g=st.sampled_from([1.0, 0.25]),
       leak=st.sampled_from([0.1, 0.5, 1.0]))
def test_symmetric_condition_holds_at_every_slope_vertex(seed, N, lam, spread, g, leak):
    """Symmetric W with g W < I: the metric M of symmetric_metric satisfies the contraction
    LMI at every slope vertex D in {0, g}^N (hence for every D in [0, g]^N, affine in D):
    continuous M J + J^T M <= -2 c M for J = -I + W D (Hopfield) and, with M^-1, J = -I + D W
    (rate form); discrete J^T M J <= r^2 M for the Euler / leaky step of both readings."""
    W = _symmetric(seed, 2, N, lam, spread) / g  # g lambda_max(W) = lam
    I = torch.eye(N, dtype=torch.float64)
    ds = certify_matrices(W, slope_bound=g, form="continuous", tau=1.0)
    sym = ds.sel(condition="symmetric")
    assert bool(sym["holds"].all())  # g lambda_max(W) = lam < 1
    lam_max = torch.linalg.eigvalsh(W).amax(-1).numpy()
    assert np.allclose(sym["value"].values, lam_max, rtol=1e-10, atol=1e-12)
    assert np.allclose(sym["rate"].values, 1 - np.maximum(g * lam_max, 0.01), rtol=1e-9)
    form = "map" if leak == 1.0 else "leaky"
    dd = certify_matrices(W, slope_bound=g, form=form, leak=leak)
    r_d = dd["rate"].sel(condition="symmetric").values
    for k in range(2):
        c = float(sym["rate"][k])
        for reading in ("hopfield", "rate"):
            M, _ = symmetric_metric(W, slope_bound=g, form="continuous", reading=reading)
            Md, _ = symmetric_metric(W, slope_bound=g, form=form, leak=leak, reading=reading)
            tol = 1e-9 * float(torch.linalg.cond(M[k]))
            tol_d = 1e-9 * float(torch.linalg.cond(Md[k]))
            for D in _vertices(N, g):
                WD = W[k] @ D if reading == "hopfield" else D @ W[k]
                J = -I + WD
                L = M[k] @ J + J.T @ M[k] + 2 * c * M[k]
                assert float(torch.linalg.eigvalsh(L).max()) <= tol
                Jd = (1 - leak) * I + leak * WD
                Ld = Jd.T @ Md[k] @ Jd - r_d[k] ** 2 * Md[k]
                assert float(torch.linalg.eigvalsh(Ld).max()) <= tol_d


def test_symmetric_condition_applies_only_to_symmetric_weights():
    W = _symmetric(0, 3, 6, 0.8, 2.0)
    ds = certify_matrices(W, nonlinearity="tanh", form="continuous")
    assert bool(ds["holds"].sel(condition="symmetric").all())
    # beats the spectral norm when W has large negative eigenvalues (||W||_2 > 1)
    assert not bool(ds["holds"].sel(condition="spectral_norm").any())
    # asymmetric: not applicable (NaN, not held)
    Wa = W + 0.05 * torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(1),
                                dtype=torch.float64)
    da = certify_matrices(Wa, nonlinearity="tanh", form="continuous")
    assert np.all(np.isnan(da["rate"].sel(condition="symmetric").values))
    assert not bool(da["holds"].sel(condition="symmetric").any())
    # asymmetric at rounding size: applicable, the rate pays the exact perturbation bound
    Wr = W + 1e-9 * torch.triu(torch.ones(6, 6, dtype=torch.float64), 1)
    dr = certify_matrices(Wr, nonlinearity="tanh", form="continuous")
    r, r0 = dr["rate"].sel(condition="symmetric").values, ds["rate"].sel(condition="symmetric")
    assert np.all(r < r0.values) and np.all(r > r0.values - 1e-6)
    # per-unit tau: not applicable
    dt = certify_matrices(W, nonlinearity="tanh", form="continuous",
                          tau=torch.linspace(1, 2, 6, dtype=torch.float64)[None].expand(3, 6))
    assert np.all(np.isnan(dt["rate"].sel(condition="symmetric").values))
    # g lambda_max(W) >= 1: does not hold
    dn = certify_matrices(_symmetric(0, 2, 6, 1.2, 2.0), nonlinearity="tanh", form="continuous")
    assert not bool(dn["holds"].sel(condition="symmetric").any())


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


@settings(max_examples=2, **SETTINGS)
@given(seed=st.integers(0, 1000))
def test_no_symmetric_certificate_for_positive_lyapunov_exponent(seed):
    """Leaky rate RNNs (a = 1/2) with symmetric W at gains 0.2-2.4: where the symmetric
    condition certifies, lambda_max <= log(rate) (the exponent does not depend on the constant
    metric). Symmetric networks are not chaotic (measured, seeds 0-1: every lambda_max in
    [-0.55, -0.07]; the two smallest gains certified with lambda_max -0.44 / -0.12 against
    log(rate) -0.43 / -0.10: the rate is nearly attained)."""
    gains = np.linspace(0.2, 2.4, 10)
    N = 16
    model = Ensemble([RateRNNConfig(1, N, 1, bias=False, leak_form="outside", tau_init=2.0)
                      for _ in gains], seed=seed)
    A = torch.randn(10, N, N, generator=torch.Generator().manual_seed(seed))
    W = torch.as_tensor(gains, dtype=torch.float32)[:, None, None] * (A + A.transpose(1, 2)) \
        / np.sqrt(2 * N)
    with torch.no_grad():
        model.W_rec.copy_(W)
    cert = stability_certificates(model, conditions="symmetric")
    sym = cert.sel(condition="symmetric")
    holds = sym["holds"].values
    assert 0 < holds.sum() < 10  # some certified, some not
    x = 0.3 * torch.randn(1, 1, 500, 1, generator=torch.Generator().manual_seed(seed))
    lam = lyapunov_spectrum(model, x, burn_in=150, tangent_burn_in=100, n_exponents=1,
                            progress=False, seed=seed)["max_exponent"].values
    assert np.all(lam[holds] <= np.log(sym["rate"].values[holds]) + 0.02)


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
        ContractingRNN(ContractingRNNConfig(2, 10, 1, parameterisation="symmetric", leak=0.5),
                       n_networks=2),
        _symmetric_rate_rnn(),
    ]
    return nets


def _symmetric_rate_rnn():
    """Leaky rate RNNs (a = 1/3) with symmetric W, lambda_max = 0.8 and lambda_min ~ -4:
    ||W||_2 > 1, certified by the symmetric condition only."""
    model = Ensemble(RateRNNConfig(2, 10, 1, leak_form="outside", tau_init=3.0), n_networks=3,
                     seed=5)
    W = _symmetric(0, 3, 10, 0.8, 0.6).float()
    with torch.no_grad():
        model.W_rec.copy_(W)
    return model


def test_every_certified_network_contracts_at_the_certified_rate():
    """Two trajectories under the same input shrink in each holding condition's metric at
    least as fast as that condition's rate, every step."""
    n_checked, checked = 0, set()
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
        struct = stability_structure(model)
        if struct["form"] in ("map", "leaky"):
            M_sym, _ = symmetric_metric(struct["W"], nonlinearity=struct["nonlinearity"],
                                        form=struct["form"], leak=struct.get("leak"))
        for cond in cert.condition.values:
            sub = cert.sel(condition=cond)
            if not bool(sub["sufficient"]):
                continue
            for k in range(K):
                if not bool(sub["holds"][k]):
                    continue
                norm = str(sub["metric_norm"].values)
                if norm == "quadratic":  # sqrt(d^T M d)
                    dist = torch.einsum("ti,ij,tj->t", d[k], M_sym[k], d[k]).sqrt()
                else:
                    wd = (d[k] * torch.as_tensor(sub["theta"].values[k])).abs()
                    dist = wd.norm(dim=-1) if norm == "2" else wd.amax(-1)
                r = float(sub["rate"][k])
                steps = torch.arange(dist.shape[0], dtype=torch.float64)
                bound = dist[0] * r ** steps
                assert bool((dist <= bound * (1 + 1e-9) + 1e-300).all()), (
                    type(model).__name__, cond, k)
                # and every single step, while the distance is above rounding
                big = dist[:-1] > 1e-10 * dist[0]
                assert bool((dist[1:][big] <= r * dist[:-1][big] * (1 + 1e-9)).all())
                n_checked += 1
                checked.add(cond)
    assert n_checked >= 20
    assert {"symmetric", "diagonal_fast", "abs_spectral_radius", "feedback_metric"} <= checked


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
def _train_certified(model, n_steps, lr=1e-2):
    from dynrnn.tasks import ParityTask
    from dynrnn.training import TrainConfig, train

    task = ParityTask(n_values=(2,))
    if isinstance(model, ContractingAssembly):
        conds = ("feedback_metric",)
    elif model.config.parameterisation == "symmetric":
        conds = ("symmetric",)
    else:
        conds = ("diagonal_fast",)
    worst = []
    original = model.project_

    times = ("discrete", "continuous") if conds == ("symmetric",) else ("discrete",)

    def project_and_check():
        original()
        for time in times:  # the step the model runs (and the ODE it is the Euler step of)
            cert = certify_matrices(**stability_structure(model, time), conditions=conds,
                                    fast_iter=0)
            assert bool(cert["holds"].sel(condition=conds[0]).all()), time
            if time == "discrete":
                worst.append(float(cert["rate"].sel(condition=conds[0]).max()))

    model.project_ = project_and_check
    hist = train(model, task, TrainConfig(n_steps=n_steps, batch_size=64, lr=lr,
                                          eval_every=25, noise=False, eval_batch_size=256),
                 progress=False, seed=0)
    return hist, np.asarray(worst)


def test_contracting_rnn_stays_certified_and_learns_parity():
    model = ContractingRNN(ContractingRNNConfig(1, 32, 2, max_gain=0.95), n_networks=3)
    hist, worst = _train_certified(model, 400)
    assert len(worst) >= 75 and np.all(worst < 0.95 + 1e-6)
    assert hist.reached.all()


def _symmetric_model():
    cfg = ContractingRNNConfig(1, 32, 2, parameterisation="symmetric", leak=0.5, max_gain=0.95)
    return ContractingRNN(cfg, n_networks=3)


def test_symmetric_contracting_rnn_stays_certified_and_learns_parity():
    """As above, trained to the parity criterion (measured: reached at 200-225 steps)."""
    hist, worst = _train_certified(_symmetric_model(), 400, lr=2e-2)
    # r = max(1 - a (1 - s'), a |s_min| - (1 - a)) <= 1 - 0.5 * 0.05
    assert len(worst) >= 50 and np.all(worst <= 1 - 0.5 * 0.05 + 1e-6)
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
        sym = ContractingRNN(ContractingRNNConfig(2, 12, 1, parameterisation="symmetric",
                                                  leak=0.4, negative_gain=3.9), n_networks=2,
                             seed=seed)
        with torch.no_grad():  # wild parameters: the parameterisation still certifies
            for p in (*m.parameters(), *a.parameters(), *sym.parameters()):
                p.add_(3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
        for model in (m, a, sym):
            for time in ("discrete", "continuous"):
                assert bool(stability_certificates(model, time=time)["certified"].all())
        # the symmetric one by its own condition: W = W^T, g W < I, a * negative_gain - (1 - a)
        # = 0.96 < 1
        W = sym.recurrent_weights()
        assert torch.equal(W, W.transpose(1, 2))
        ds = stability_certificates(sym, conditions="symmetric")
        assert bool(ds["holds"].sel(condition="symmetric").all())
        assert float(ds["rate"].sel(condition="symmetric").max()) <= 0.96 + 1e-5


def test_certified_models_follow_the_protocol_and_round_trip(tmp_path):
    from dynrnn.models.base import jacobian_by_autodiff
    from dynrnn.zoo import load_model, save_model

    for model in (ContractingRNN(ContractingRNNConfig(2, 6, 1, leak=0.5), n_networks=2),
                  ContractingRNN(ContractingRNNConfig(2, 6, 1, leak=0.5,
                                                      parameterisation="symmetric"),
                                 n_networks=2),
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


def test_symmetric_parameterisation_bad_input():
    with pytest.raises(ValueError, match="negative_gain"):
        ContractingRNNConfig(1, 4, 1, parameterisation="symmetric", leak=0.5, negative_gain=3.0)
    with pytest.raises(ValueError, match="parameterisation"):
        ContractingRNNConfig(1, 4, 1, parameterisation="orthogonal")
    with pytest.raises(ValueError, match="one leak per network"):
        symmetric_metric(torch.eye(2)[None], slope_bound=1.0, form="leaky",
                         leak=torch.tensor([[0.2, 0.5]]))


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
