"""Timescales (dynrnn.analyses.timescales): FFT autocorrelation, exponential fits, tau_net."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.analyses import ar1_timescale, autocorrelation, fit_exponential, network_timescale
from dynrnn.models import Ensemble, RateRNNConfig, run


def ar1(phis, n_trials, T, n_units, seed=0):
    """AR(1) processes x[t+1] = phi x[t] + e[t], one phi per network: [K, B, T, N]."""
    g = torch.Generator().manual_seed(seed)
    phi = torch.tensor(phis, dtype=torch.float64)[:, None, None]
    e = torch.randn(len(phis), n_trials, T, n_units, generator=g, dtype=torch.float64)
    x = torch.zeros_like(e)
    x[:, :, 0] = e[:, :, 0] / torch.sqrt(1 - phi**2)  # stationary start
    for t in range(1, T):
        x[:, :, t] = phi * x[:, :, t - 1] + e[:, :, t]
    return x


def test_fit_recovers_the_time_constant_of_an_ar1_process():
    phis = [0.7, 0.9, 0.95]
    x = ar1(phis, n_trials=8, T=4000, n_units=4)
    ds = network_timescale(x, kind="single")
    expect = np.array([ar1_timescale(p) for p in phis])  # 2.80, 9.49, 19.5 steps
    np.testing.assert_allclose(ds.tau_net.values, expect, rtol=0.08)
    assert ds.fit_ok.all()
    # the population ACF is phi^lag
    np.testing.assert_allclose(ds.acf.isel(lag=slice(0, 6)).values,
                               np.array(phis)[:, None] ** np.arange(6), atol=0.03)
    # auto model selection keeps one exponential for a single-exponential ACF
    auto = network_timescale(x, kind="auto")
    np.testing.assert_allclose(auto.tau_net.values, expect, rtol=0.08)


def test_white_noise_has_no_fitted_timescale():
    """Activity that decorrelates within one step (white noise; AR(1) with phi = 0.02, tau
    0.26 steps) is below the fit cutoff at lag 1: reported as not fitted (fit_ok False, NaN),
    never as an arbitrary timescale (fitting the noise floor gave tau ~ 1e6 with fit_ok)."""
    x = ar1([0.0, 0.02, 0.9], n_trials=4, T=2000, n_units=8)
    ds = network_timescale(x, kind="single")
    assert list(ds.fit_ok.values) == [False, False, True]
    assert np.isnan(ds.tau_net.values[:2]).all()
    assert ds.tau_net.values[2] == pytest.approx(ar1_timescale(0.9), rel=0.1)
    out = fit_exponential(np.r_[1.0, 0.01, -0.02, 0.015, 0.0])
    assert out["ok"] == 0.0 and math.isnan(out["tau"])


def test_double_exponential_finds_the_slow_component():
    """Sum of independent AR(1) processes (tau 2 and 25): ACF is an exact double exponential."""
    fast, slow = ar1([math.exp(-1 / 2)], 8, 6000, 3, seed=1), ar1([math.exp(-1 / 25)], 8, 6000,
                                                                     3, seed=2)
    x = 2.0 * fast + 0.5 * slow  # variances ~ 4 * 1.16 and 0.25 * 12.8: comparable weights
    for kind in ("double", "auto"):
        ds = network_timescale(x, kind=kind, cutoff=0.02)
        assert int(ds.n_components[0]) == 2
        np.testing.assert_allclose(float(ds.tau_slow[0]), 25.0, rtol=0.25)
        np.testing.assert_allclose(float(ds.tau_fast[0]), 2.0, rtol=0.25)
        assert float(ds.tau_net[0]) == float(ds.tau_slow[0])


@settings(max_examples=10, deadline=None)
@given(T=st.integers(2, 64), lag=st.integers(0, 10), seed=st.integers(0, 1000))
def test_fft_autocorrelation_matches_direct_sum(T, lag, seed):
    lag = min(lag, T - 1)
    x = np.random.default_rng(seed).normal(size=(2, T))
    acf = autocorrelation(x, lag, normalise=False).numpy()
    xc = x - x.mean(-1, keepdims=True)
    direct = np.array([[np.mean(r[: T - l] * r[l:]) for l in range(lag + 1)] for r in xc])
    np.testing.assert_allclose(acf, direct, atol=1e-10)
    norm = autocorrelation(x, lag).numpy()
    np.testing.assert_allclose(norm[:, 0], 1.0)


def test_leaky_units_have_tau_net_set_by_their_time_constant_and_neuron_tau_is_reported():
    """Uncoupled leaky linear units h' = (1 - 1/tau) h + (1/tau) U x driven by white noise are
    AR(1) with phi = 1 - 1/tau: tau_net = -1/log(1 - 1/tau) (~ tau - 1/2)."""
    taus = (5.0, 10.0)
    cfgs = [RateRNNConfig(4, 8, 1, nonlinearity="identity", leak_form="outside", tau_init=t,
                          init_gain=0.0, bias=False, train_tau=True) for t in taus]
    model = Ensemble(cfgs, seed=0)
    x = torch.randn(16, 2000, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        states, _ = run(model, x)
    ds = network_timescale(states, model, kind="single", discard=100)
    expect = [ar1_timescale(1 - 1 / t) for t in taus]
    np.testing.assert_allclose(ds.tau_net.values, expect, rtol=0.08)
    np.testing.assert_allclose(ds.neuron_tau.values, np.array(taus)[:, None] * np.ones((2, 8)))
    np.testing.assert_allclose(ds.neuron_tau_mean.values, taus)
    np.testing.assert_array_equal(ds.tau_init.values, taus)  # hyperparameter coordinates
    np.testing.assert_allclose(ds.tau_net_time.values, ds.tau_net.values * ds.dt.values)
    per_unit = network_timescale(states, model, kind="single", discard=100, per_unit=True)
    np.testing.assert_allclose(np.nanmedian(per_unit.unit_acf_tau.values, 1), expect, rtol=0.1)


def test_silent_units_are_excluded():
    x = ar1([0.8], 8, 3000, 3)
    x = torch.cat([x, torch.zeros(1, 8, 3000, 2, dtype=torch.float64)], dim=-1)
    ds = network_timescale(x, kind="single")
    assert int(ds.n_active_units[0]) == 3
    np.testing.assert_allclose(float(ds.tau_net[0]), ar1_timescale(0.8), rtol=0.1)


def test_fit_exponential_on_exact_curves():
    lags = np.arange(60)
    fit = fit_exponential(0.8 * np.exp(-lags / 7.0), kind="single", min_lag=0, cutoff=0.0)
    np.testing.assert_allclose([fit["tau"], fit["amplitude"]], [7.0, 0.8], rtol=1e-6)
    y = 0.6 * np.exp(-lags / 2.0) + 0.4 * np.exp(-lags / 15.0)
    fit = fit_exponential(y, kind="double", min_lag=0, cutoff=0.0)
    np.testing.assert_allclose([fit["tau_fast"], fit["tau_slow"]], [2.0, 15.0], rtol=1e-4)
    assert fit["tau"] == fit["tau_slow"] and fit["n_components"] == 2
    bad = fit_exponential(np.full(10, np.nan))
    assert bad["ok"] == 0.0 and math.isnan(bad["tau"])


def test_bad_input():
    with pytest.raises(ValueError, match="states"):
        network_timescale(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="finite"):
        network_timescale(torch.full((1, 2, 10, 3), float("nan")))
    with pytest.raises(ValueError, match="kind"):
        network_timescale(torch.randn(1, 2, 10, 3), kind="triple")
    with pytest.raises(ValueError, match="max_lag"):
        autocorrelation(np.zeros(10), max_lag=10)
