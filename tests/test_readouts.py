"""Readout learning: ridge, FORCE with rate and spiking reservoirs, three-factor on what/when."""

import math

import pytest
import torch

from dynrnn.models import run
from dynrnn.models.reservoir import EchoStateConfig, EchoStateNetwork
from dynrnn.models.spiking import IzhikevichConfig, IzhikevichReservoir
from dynrnn.tasks.what_when import WhatWhenTask
from dynrnn.training.readouts import (
    RLSReadout,
    ThreeFactorConfig,
    ThreeFactorReadout,
    force_train,
    reservoir_features,
    ridge_readout,
)

F64 = torch.float64


def test_ridge_recovers_a_linear_readout():
    model = EchoStateNetwork(
        EchoStateConfig(n_units=80, n_inputs=1, n_outputs=2, readout_bias=True), n_networks=2
    ).to(F64)
    x = torch.randn(2, 300, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    feats = reservoir_features(model, x)  # [K, B, T, N]
    W_true = torch.randn(2, 2, 80, generator=torch.Generator().manual_seed(1), dtype=F64)
    y = torch.einsum("kbtn,kon->kbto", feats, W_true) + 0.5
    mse = ridge_readout(model, x, y, alpha=1e-10, washout=20).mse
    assert mse.max() < 1e-12
    torch.testing.assert_close(model.W_out, W_true, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.b_out, torch.full((2, 2), 0.5, dtype=F64))



@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e200])
def test_ridge_names_non_finite_features_in_the_fit(bad):
    model = EchoStateNetwork(EchoStateConfig(n_units=20, n_inputs=1, n_outputs=1)).to(F64)
    x = torch.randn(1, 100, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    feats = reservoir_features(model, x)
    y = torch.zeros(1, 100, 1, dtype=F64)
    poisoned = feats.clone()
    poisoned[0, 0, 50, 3] = bad
    with pytest.raises(ValueError, match="'features' parameter of ridge_readout must be finite"):
        ridge_readout(model, targets=y, features=poisoned, washout=10)
    # an entry the fit does not use (inside the washout) does not matter
    poisoned = feats.clone()
    poisoned[0, 0, 5, 3] = bad
    ridge_readout(model, targets=y, features=poisoned, washout=10)


def _targets(kind, n, dt):
    t = torch.arange(n, dtype=F64) * dt
    if kind == "sine":
        f = torch.sin(2 * math.pi * t / 50.0)
    else:  # sum of sines
        f = (torch.sin(2 * math.pi * t / 50.0) + 0.5 * torch.sin(2 * math.pi * t / 25.0)) / 1.5
    return f.unsqueeze(-1)


@pytest.mark.parametrize("kind", ["sine", "sum"])
def test_force_rate_reservoir(kind):
    # ESN N=300, spectral radius 1.2, leak 0.2, feedback 1; RLS every step (alpha = 1) for
    # 4000 steps, then the readout is frozen and the network runs on its own feedback for
    # 2000 steps: test MSE 6e-5 (sine, variance 0.5) and 4e-6 (sum of sines, variance 0.28).
    model = EchoStateNetwork(
        EchoStateConfig(
            n_units=300, n_inputs=0, n_outputs=1, spectral_radius=1.2, leak=0.2,
            feedback_scaling=1.0, init_std=0.5,
        )
    ).to(F64)  # fmt: skip
    f = _targets(kind, 6000, 1.0)
    res = force_train(model, f[:4000], alpha=1.0, washout=100)
    with torch.no_grad():
        _, Y = run(model, torch.zeros(1, 2000, 0, dtype=F64), h0=res.final_state)
    test_mse = ((Y[0, 0] - f[4000:]) ** 2).mean().item()
    assert res.errors[0, :200].mean() > 0.05  # it started far off
    assert test_mse < 0.01 * f.var().item()  # < 1 % of the target variance


def _spiking_force(kind, seconds=5.0, test_seconds=2.0, n=500, gain=100.0, q=80.0,
                   n_networks=1):
    # Izhikevich RS neurons (2003 form), N=500, Gaussian weights (p=0.1, gain G=100), double-
    # exponential synapses (2 ms rise, 20 ms decay), bias 10, feedback Q=80, 0.5 ms steps with
    # Izhikevich's half steps, RLS every 2 steps with alpha = 0.05 (after Nicola & Clopath 2017)
    cfg = IzhikevichConfig(
        n_excitatory=n, n_inhibitory=0, n_inputs=0, n_outputs=1, neuron_type="RS",
        connectivity="gaussian", density=0.1, gain=gain, synapse="double_exp", bias=10.0,
        noise_exc=0.0, feedback_gain=q, init="random", dt=0.5,
    )  # fmt: skip
    model = IzhikevichReservoir(cfg, n_networks=n_networks, seed=0).to(F64)
    dt = model.dt
    n_train, n_test = int(seconds * 1000 / dt), int(test_seconds * 1000 / dt)
    # 5 Hz sine (period 400 steps); the sum adds its 10 Hz harmonic
    f = _targets(kind, n_train + n_test, 50.0 / 400.0)
    res = force_train(model, f[:n_train], alpha=0.05, update_every=2, washout=400)
    sim = model.simulate(n_test, h0=res.final_state, noise=False, record_outputs=True)
    if n_networks == 1:
        return ((sim.outputs[0, 0] - f[n_train:]) ** 2).mean().item(), f.var().item()
    mse = ((sim.outputs[:, 0] - f[n_train:]) ** 2).mean(dim=(1, 2)).numpy()
    return mse, f.var().item()


@pytest.mark.slow
def test_force_spiking_reservoirs_learn_the_sine():
    """12 spiking reservoirs (model seeds 0-11) trained at once by FORCE: at least 4 reproduce
    the 5 Hz sine on their own feedback with a test MSE below 10% of the target's variance
    (readout frozen, 2 s).

    One realisation is not a test of this: the spiking network is chaotic, and perturbing the
    initial state of seed 0 by 1e-12 gave MSE/variance 0.232, 0.014, 0.039, 0.009, 0.108,
    0.236 (3 of 6 above 0.1). Over model seeds 0-11 (one at a time, AMD EPYC) 8 of 12 were
    below 0.1 (the others 0.12-0.20). For p = 2/3 the chance of fewer than 4 of 12 is ~0.5%.
    """
    mse, var = _spiking_force("sine", n_networks=12)
    assert (mse < 0.1 * var).sum() >= 4, mse / var


@pytest.mark.slow
def test_force_spiking_reservoir_sum_of_sines():
    # 5 + 10 Hz: needs more neurons and chaos: N=1000, G=150, Q=120, 8 s of training.
    # Measured: test MSE 0.034 over 2 s with the readout frozen (target variance 0.28).
    mse, var = _spiking_force("sum", seconds=8.0, n=1000, gain=150.0, q=120.0)
    assert mse < 0.25 * var


def _what_when_run():
    model = EchoStateNetwork(
        EchoStateConfig(
            n_units=200, n_inputs=1, n_outputs=3, spectral_radius=1.5, leak=1.0,
            bias_scaling=0.2, density=0.2, input_scaling=3.0,
        )
    ).to(F64)  # fmt: skip
    task = WhatWhenTask(
        n_stimuli=3, n_steps=60, cue_time=5, stim_duration=3, block_delays=(20.0, 32.0),
        delay_std=1.5, block_probs=((0.6, 0.3, 0.1), (0.1, 0.3, 0.6)), trials_per_block=150,
    )  # fmt: skip
    n_a, n_b = 150, 60
    tr = task.sample(n_a + n_b, seed=1)
    feats = reservoir_features(model, tr.inputs[:, :, :1])[0]  # the cue drives the reservoir
    three = ThreeFactorReadout(200, 3, ThreeFactorConfig(lr_when=0.3, lr_what=0.08))
    force = RLSReadout(200, 3, alpha=1.0)  # FORCE/RLS, P never reset
    snap = {}
    for i in range(n_a + n_b):
        three.trial(feats[i], tr.info["stimuli"][i], cue=tr.inputs[i, :, 0])
        force.trial(feats[i], tr.info["stimuli"][i])
        if i in (n_a - 1, n_a + n_b - 1):
            snap[i] = (
                three.predict(feats[i]),
                force.trial(feats[i], tr.info["stimuli"][i], learn=False),
                tr.targets[i].double(),
                tr.info["expected_time"][i].item() + 1,  # centre of the 3-step stimulus
            )
    return snap, n_a, n_b


def test_three_factor_what_when_adapts_where_force_does_not():
    # Measured: end of block A (delay 20, p = .6/.3/.1; ideal heights .42/.21/.07 at step 26):
    # three-factor peaks at 26 with heights .40/.11/.08 (MSE to the ideal prediction 9e-4),
    # FORCE at 26 with .43/.20/.09 (MSE 2e-5: in a stationary block RLS fits better). After 60
    # trials of block B (delay 32, p = .1/.3/.6; ideal .07/.21/.42 at step 38) the three-factor
    # readout peaks at 38 with .07/.21/.27 (MSE 0.0016), while FORCE with its converged P still
    # peaks at 26 with the old order .31/.14/.09 (MSE 0.0042).
    snap, n_a, n_b = _what_when_run()
    three, force, ideal, expected = snap[n_a - 1]
    assert abs(three.sum(1).argmax().item() - expected) <= 2
    h = three.max(0).values
    assert h[0] > h[1] > h[2]  # amplitude increases with stimulus probability
    assert abs(force.sum(1).argmax().item() - expected) <= 2  # FORCE also learnt block A
    three, force, ideal, expected = snap[n_a + n_b - 1]
    assert abs(three.sum(1).argmax().item() - expected) <= 2  # re-adapted "when"
    h = three.max(0).values
    assert h[2] > h[1] > h[0]  # re-adapted "what"
    assert abs(force.sum(1).argmax().item() - expected) > 5  # FORCE: still the old timing
    hf = force.max(0).values
    assert hf[0] > hf[2]  # and the old identity order
    mse3 = ((three - ideal) ** 2).mean().item()
    msef = ((force - ideal) ** 2).mean().item()
    assert mse3 < 0.6 * msef


def test_bad_readout_input():
    model = EchoStateNetwork(EchoStateConfig(n_units=10, n_inputs=1, n_outputs=1))
    with pytest.raises(ValueError, match="'alpha' parameter"):
        force_train(model, torch.zeros(20, 1), alpha=0.0)
    with pytest.raises(ValueError, match="'update_every' parameter"):
        force_train(model, torch.zeros(20, 1), update_every=0)
    with pytest.raises(ValueError, match="'targets' argument"):
        force_train(model, torch.zeros(20, 3))
    with pytest.raises(ValueError, match="'alpha' parameter"):
        ridge_readout(model, torch.zeros(1, 20, 1), torch.zeros(1, 20, 1), alpha=-1.0)
    with pytest.raises(ValueError, match="'targets' argument"):
        ridge_readout(model, torch.zeros(1, 20, 1), torch.zeros(1, 21, 1))
    with pytest.raises(ValueError, match="'lr_what' parameter"):
        ThreeFactorConfig(lr_what=2.0)
    with pytest.raises(ValueError, match="'tau_eligibility' parameter"):
        ThreeFactorConfig(tau_eligibility=-1.0)
    with pytest.raises(ValueError, match="features"):
        ThreeFactorReadout(5, 2).trial(torch.zeros(10, 4), torch.zeros(10, 2))
