"""Observation models of the PLRNN family beyond the identity: the Poisson observation of spike
counts (log-linear GLM ``x ~ Poisson(dt exp(W_out z + b_out))``), its approximate inversion for
teacher forcing, its likelihood loss, the validation of counts, and a reconstruction of a limit
cycle from the spike counts of 30 neurons."""

import json
import math

import numpy as np
import pytest
import torch

from dynrnn import cli
from dynrnn.analyses import generate
from dynrnn.batch.reconstruct import reconstruct
from dynrnn.models import PLRNN, PLRNNConfig, ShallowPLRNN, ShallowPLRNNConfig
from dynrnn.models.plrnn import smooth_counts
from dynrnn.tasks.recordings import Recording, check_counts, load_recording
from dynrnn.training.gtf import GTFConfig, gtf_loss, poisson_nll, train_gtf

TINY = dict(n_networks=2, n_hidden=8, n_latent=3,
            config={"n_iterations": 6, "seq_len": 20, "batch_size": 2}, validate_every=3,
            lyapunov=False, pe_steps=5)


def _poisson_model(N=6, M=3, K=2, dt=0.5, seed=0, **kw):
    cfg = ShallowPLRNNConfig(M, N, n_hidden=7, observation="poisson", dt=dt, **kw)
    return ShallowPLRNN(cfg, n_networks=K, seed=seed).double()


def _counts(T=400, N=6, seed=0, rate=2.0):
    rng = np.random.default_rng(seed)
    t = np.arange(T) * 0.2
    lam = rate * np.exp(0.5 * np.sin(t[:, None] + rng.uniform(0, 6, N)))
    return rng.poisson(lam).astype(float)


# ----------------------------------------------------------------------------- the model
def test_poisson_readout_is_the_expected_count_of_the_log_linear_glm():
    m = _poisson_model(dt=0.25)
    assert set(m.trainable_names()) >= {"W_out", "b_out"}
    z = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lam = m.readout(z)
    eta = torch.einsum("kbm,knm->kbn", z, m.W_out) + m.b_out[:, None]
    torch.testing.assert_close(lam, 0.25 * torch.exp(eta), rtol=1e-13, atol=0)
    torch.testing.assert_close(m.log_expected_counts(z), eta + math.log(0.25), rtol=1e-13,
                               atol=1e-13)
    a = m.sample_counts(z, seed=3)
    assert torch.equal(a, m.sample_counts(z, seed=3)) and torch.equal(a, a.round())
    assert (a >= 0).all()
    with pytest.raises(ValueError, match="rate_eps"):
        PLRNNConfig(3, 6, observation="poisson", rate_eps=0.0)
    with pytest.raises(ValueError, match="rate_smoothing"):
        PLRNNConfig(3, 6, observation="poisson", rate_smoothing=-1.0)
    with pytest.raises(ValueError, match="observation"):
        PLRNN(PLRNNConfig(3, 3), n_networks=1).log_expected_counts(torch.zeros(1, 1, 3))


def test_inversion_recovers_the_state_from_noiseless_expected_counts():
    """``W_out`` of full column rank: ``W_out^+ (log(lambda) - log dt - b)`` is ``z`` exactly
    (the ``eps`` offset taken back out of the noiseless expected counts first)."""
    m = _poisson_model(N=8, M=3, dt=0.5)
    assert bool((torch.linalg.matrix_rank(m.W_out) == 3).all())
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 50, 3, dtype=torch.float64, generator=g)
    lam = m.readout(z)
    zhat = m.latent_from_observation(lam - m.config.rate_eps)
    torch.testing.assert_close(zhat, z, rtol=0, atol=1e-12)
    zhat0 = m.latent_from_observation(lam[:, :, 0] - m.config.rate_eps, initial=True)
    torch.testing.assert_close(zhat0, z[:, :, 0], rtol=0, atol=1e-12)


def test_inversion_from_sampled_counts_at_high_rates_is_close():
    """At ~400 counts per bin, the log of a count is within a few % of the log rate, so the
    inversion of the counts (no smoothing) gives the state to within 0.1 (RMS over
    2 networks x 2000 states of 30 neurons; the Poisson noise alone predicts ~0.02)."""
    m = _poisson_model(N=30, M=3, dt=1.0, rate_smoothing=0.0)
    with torch.no_grad():
        m.b_out.fill_(math.log(400.0))
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 1, 2000, 3, dtype=torch.float64, generator=g)
    counts = m.sample_counts(z, seed=5)
    err = (m.latent_from_observation(counts) - z).pow(2).mean().sqrt()
    assert float(err) < 0.1


def test_smooth_counts_is_a_normalised_nan_aware_gaussian():
    x = torch.full((1, 50, 2), 3.0, dtype=torch.float64)
    x[0, 10:13, 0] = math.nan
    r = smooth_counts(x, 2.0, dim=1)
    torch.testing.assert_close(r, torch.full_like(r, 3.0))  # constant stays constant
    y = torch.zeros(40, 1, dtype=torch.float64)
    y[20] = 1.0
    r = smooth_counts(y, 1.5)
    assert float(r.sum()) == pytest.approx(1.0, rel=1e-6)  # the mass is kept away from ends
    assert int(r.argmax()) == 20 and float(r[20, 0]) == pytest.approx(
        1 / (1.5 * math.sqrt(2 * math.pi)), rel=1e-3)
    gap = torch.ones(60, 1, dtype=torch.float64)
    gap[10:40] = math.nan  # 30 missing samples, kernel reach 4 sigma = 8
    r = smooth_counts(gap, 2.0)
    assert torch.isnan(r[19:31]).all() and torch.isfinite(r[:18]).all()
    assert torch.equal(smooth_counts(gap, 0.0), gap) is False  # NaN != NaN; a copy
    torch.testing.assert_close(smooth_counts(gap, 0.0), gap, equal_nan=True)
    with pytest.raises(ValueError, match="sigma"):
        smooth_counts(gap, -1.0)


def test_init_observation_starts_from_the_log_rates():
    m = _poisson_model(N=6, M=2, dt=0.5)
    x = _counts(2000, 6, rate=4.0)
    m.init_observation_(x)
    y = np.log(smooth_counts(x, 2.0).numpy() + 0.1) - math.log(0.5)
    np.testing.assert_allclose(m.b_out[0].detach().numpy(), y.mean(0), rtol=1e-10)
    torch.testing.assert_close(m.W_out[0], m.W_out[1])
    with pytest.raises(ValueError, match="counts"):
        m.init_observation_(np.zeros((10, 5)))


def test_poisson_model_round_trips_through_the_zoo_format(tmp_path):
    from dynrnn.zoo import load_model, save_model

    m = _poisson_model(N=5, M=2, dt=0.3, rate_smoothing=1.5, rate_eps=0.2).float()
    save_model(m, tmp_path / "net")
    back, _ = load_model(tmp_path / "net")
    assert back.config.observation == "poisson" and back.config.rate_smoothing == 1.5
    z = torch.randn(2, 3, 2)
    torch.testing.assert_close(back.readout(z), m.readout(z))
    x = torch.rand(2, 3, 5) * 4
    torch.testing.assert_close(back.latent_from_observation(x), m.latent_from_observation(x))


# ----------------------------------------------------------------------------- the loss
def _hand_loss(m, windows, teacher, alpha, burn_in=0):
    """The GTF Poisson loss written out: the forced rollout step by step and the Poisson
    negative log-likelihood summed entry by entry (math.lgamma), observed entries only."""
    K, B, S1, N = windows.shape
    out = []
    for k in range(K):
        net = m.select(k)
        total, count = 0.0, 0
        for b in range(B):
            zh = net.latent_from_observation(teacher[k : k + 1, b : b + 1])  # [1, 1, S+1, M]
            z = net.latent_from_observation(teacher[k : k + 1, b : b + 1, 0], initial=True)
            for t in range(1, S1):
                if t > 1:
                    z = (1 - alpha) * z + alpha * zh[:, :, t - 1]
                z = net.step(z)
                if t - 1 < burn_in:
                    continue
                eta = (net.W_out[0] @ z[0, 0] + net.b_out[0]).tolist()
                for i in range(N):
                    x = float(windows[k, b, t, i])
                    if math.isnan(x):
                        continue
                    lam = net.config.dt * math.exp(eta[i])
                    total += lam - x * math.log(lam) + math.lgamma(x + 1)
                    count += 1
        out.append(total / count)
    return np.asarray(out)


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_loss_is_the_poisson_nll_of_the_unforced_predictions(backend):
    torch.manual_seed(0)
    m = _poisson_model(N=4, M=3, K=2, dt=0.5)
    x = torch.as_tensor(_counts(24, 4, seed=1)).reshape(1, 2, 12, 4).expand(2, 2, 12, 4)
    windows = x.clone()
    teacher = m.rate_estimate(windows, dim=2)
    loss = gtf_loss(m, windows, 0.3, teacher=teacher, backend=backend)
    np.testing.assert_allclose(loss.detach().numpy(), _hand_loss(m, windows, teacher, 0.3),
                               rtol=1e-12)
    # missing targets (NaN) are left out, and values inside the burn-in change nothing
    masked = windows.clone()
    masked[0, 1, 5, 2] = math.nan
    masked[1, 0, 9, :] = math.nan
    masked[:, :, 1:3] = 1e6  # poison inside the burn-in (two predicted steps)
    loss_m = gtf_loss(m, masked, 0.3, teacher=teacher, backend=backend, loss_burn_in=2)
    np.testing.assert_allclose(loss_m.detach().numpy(),
                               _hand_loss(m, masked, teacher, 0.3, burn_in=2), rtol=1e-12)
    loss_m.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    # without a teacher the counts are smoothed within the window
    np.testing.assert_allclose(gtf_loss(m, windows, 0.3).detach().numpy(), loss.detach().numpy(),
                               rtol=1e-12)


def test_poisson_nll_matches_scipy():
    from scipy.stats import poisson

    lam = torch.tensor([0.3, 2.0, 17.5], dtype=torch.float64)
    x = torch.tensor([0.0, 3.0, 12.0], dtype=torch.float64)
    np.testing.assert_allclose(poisson_nll(lam.log(), x).numpy(),
                               -poisson.logpmf(x.numpy(), lam.numpy()), rtol=1e-12)


def test_train_gtf_on_counts_lowers_the_likelihood_loss():
    """From the default start (``b_out = 0``: 0.2 expected counts per bin against a mean of
    ~2), 60 iterations lower the Poisson NLL of a fixed set of 32 windows for both networks."""
    m = _poisson_model(N=6, M=3, K=2, dt=0.2).float()
    x = _counts(600, 6, seed=3)
    fixed = torch.as_tensor(x, dtype=torch.float32).unfold(0, 31, 15)[:32].transpose(1, 2)
    fixed = fixed.unsqueeze(0).expand(2, -1, -1, -1)
    with torch.no_grad():
        before = gtf_loss(m, fixed, 0.2).numpy()
    cfg = GTFConfig(n_iterations=60, seq_len=30, batch_size=8, lr=1e-2)
    hist = train_gtf(m, x, cfg, progress=False)
    with torch.no_grad():
        after = gtf_loss(m, fixed, 0.2).numpy()
    assert np.isfinite(np.asarray(hist.loss)).all()
    assert (after < before - 0.1).all(), (before, after)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("value, kind", [(-1.0, "negative"), (0.5, "not an integer"),
                                         (math.inf, "inf values")])
def test_counts_must_be_non_negative_integers(tmp_path, value, kind):
    """Negative, fractional or infinite counts: ValueError naming the parameter and the file
    (inf is refused by every recording, with its own message; NaN is a missing sample)."""
    x = _counts(100, 3)
    x[7, 1] = value
    x[3, 0] = math.nan  # missing is fine
    with pytest.raises(ValueError, match=rf"'data' parameter of load_recording.*{kind}"):
        load_recording(x, counts=True)
    path = tmp_path / "spikes.npy"
    np.save(path, x)
    name, at = ("source", ".*sample 7") if math.isfinite(value) else ("data", "")
    with pytest.raises(ValueError, match=rf"'{name}' parameter of load_recording \(file "
                                         rf".*spikes.npy\){at}"):
        load_recording(path, counts=True)
    owner = "reconstruct" if math.isfinite(value) else "load_recording"
    with pytest.raises(ValueError, match=rf"'data' parameter of {owner} \(file .*spikes.npy"):
        reconstruct(path, observation="poisson", **TINY)
    with pytest.raises(ValueError, match=r"'data' parameter of f.*Channel 1, sample 7"):
        check_counts(x, "f")
    if math.isfinite(value):  # inf is refused for any data already
        with pytest.raises(ValueError, match="'data' parameter of train_gtf.*spike counts"):
            train_gtf(_poisson_model(N=3).float(), x, GTFConfig(n_iterations=1, seq_len=10),
                      progress=False)
        assert load_recording(x).n_channels == 3  # fine as continuous data
    with pytest.raises(ValueError, match="Channel 2, sample 0, is -2 "):
        check_counts(np.array([[0.0, 1.0, -2.0]]), "f")


def test_counts_are_not_standardised_and_not_noised():
    rec = load_recording(_counts(100, 3), counts=True)
    assert rec.counts and rec.metadata()["counts"] and "counts" in repr(rec)
    train, test = rec.split(0.2)
    assert train.counts and test.counts
    with pytest.raises(ValueError, match="counts"):
        rec.standardise()
    with pytest.raises(ValueError, match="counts"):
        Recording(trials=(_counts(10, 2),), mean=[0, 0], std=[1, 1], counts=True)
    with pytest.raises(ValueError, match="noise_std"):
        train_gtf(_poisson_model(N=3).float(), _counts(100, 3),
                  GTFConfig(n_iterations=1, seq_len=10, noise_std=0.1), progress=False)


# ----------------------------------------------------------------------------- reconstruct
def test_reconstruct_counts_returns_counts_and_rates():
    x = _counts(800, 6, seed=4)
    x[50:53, 2] = np.nan
    run = reconstruct(x, dt=0.2, observation="poisson", **TINY)
    res = run.result
    assert run.model.config.observation == "poisson" and run.settings["observation"] == "poisson"
    assert run.settings["mean"] is None and "mean" not in res.attrs  # not standardised
    assert run.train.counts and not run.train.standardised
    assert res.free_run.attrs["units"] == "expected counts per bin"
    assert (res.free_run.values > 0).all() and np.isfinite(res.loss.values).all()
    # the held-out stretch is the rate estimate of the held-out counts
    expect = smooth_counts(x[640:], 2.0).numpy()
    np.testing.assert_allclose(res.heldout.values, expect, rtol=1e-12)
    # a free run from the first held-out rate estimate is what the result holds
    obs, _ = generate(run.model, torch.as_tensor(expect[0], dtype=torch.float32), 5)
    np.testing.assert_allclose(res.forecast.values[:, :5], obs[:, 0].double().numpy(),
                               rtol=1e-6)


def test_cli_reconstructs_a_counts_file(tmp_path, capsys):
    x = _counts(600, 5, seed=6)
    path = tmp_path / "spikes.csv"
    header = "time," + ",".join(f"n{i}" for i in range(5))
    rows = [f"{0.05 * t:.4f}," + ",".join(str(int(v)) for v in row) for t, row in enumerate(x)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["reconstruct", "--data", str(path), "--observation", "poisson", "--latent", "2",
            "--networks", "2", "--hidden", "8", "--iterations", "6", "--seq-len", "20",
            "--batch-size", "2", "--validate-every", "3", "--lyapunov-steps", "50", "--quiet"]
    assert cli.main(args + ["--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["observation"] == "poisson"
    assert metrics["settings"]["recording"]["counts"] is True
    assert metrics["settings"]["recording"]["dt"] == pytest.approx(0.05)
    assert metrics["settings"]["validation_metric"] == "D_stsp"
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\n" + "\n".join(rows[:3] + ["0.1500,1,2.5,0,0,1"] + rows[4:]) + "\n")
    assert cli.main(args + ["--data", str(bad), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "bad.csv" in err and "not an integer" in err
    assert err.count("\n") == 1 and not (tmp_path / "r2").exists()


# ----------------------------------------------------------------------------- science
def _van_der_pol_counts(seed, T=6000, dt=0.1, n_neurons=30, mu=1.0):
    """Spike counts of ``n_neurons`` Poisson neurons driven by the van der Pol limit cycle
    ``x'' = mu (1 - x^2) x' - x`` (mu = 1: period 6.663 time units, 67 bins of dt = 0.1)
    through a random log-linear map: ``log lambda = B z + b`` with ``z`` the standardised
    (x, x'), ``B ~ N(0, 0.5^2)``, ``b ~ U(-0.5, 0.5)`` (about one count per bin)."""
    from scipy.integrate import solve_ivp

    t = np.arange(T + 500) * dt
    sol = solve_ivp(lambda _, s: [s[1], mu * (1 - s[0] ** 2) * s[1] - s[0]], (0, t[-1]),
                    [0.5, 0.0], t_eval=t, rtol=1e-9, atol=1e-9)
    z = sol.y.T[500:]
    z = (z - z.mean(0)) / z.std(0)
    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 0.5, size=(2, n_neurons))
    b = rng.uniform(-0.5, 0.5, n_neurons)
    lam = np.exp(z @ B + b)
    return rng.poisson(lam).astype(float), lam


def _period_and_amplitude(x, axis, mean, dt):
    """Dominant period (peak of the Hann-windowed power spectrum, zero-padded to 2^17 points)
    and standard deviation of the projection of rates ``[T, N]`` on ``axis``."""
    pc = (x - mean) @ axis
    pc = pc - pc.mean()
    n = 1 << 17
    power = np.abs(np.fft.rfft(pc * np.hanning(len(pc)), n=n)) ** 2
    k = 1 + int(np.argmax(power[1:]))
    return 1.0 / np.fft.rfftfreq(n, dt)[k], float(pc.std())


@pytest.mark.slow
def test_limit_cycle_is_reconstructed_from_spike_counts():
    """30 Poisson neurons (about one spike per bin) observe a van der Pol limit cycle; 4
    shPLRNNs (M = 3, L = 50) are trained by GTF (alpha 0.1, 2000 iterations) with the Poisson
    likelihood on the first 80% and validated by D_stsp (Gaussian mixtures) on the held-out
    20%. Criterion, fixed before the run: a free run of 6000 steps from the rate estimate of
    the first held-out sample (the first 1000 dropped) has its dominant period within 10% of
    the true one and an amplitude along the true rates' first principal axis within a factor
    2 of the true one, for at least 3 of the 4 networks. (Measured: see the report in the
    function body.)"""
    # Measured with this pipeline (2-core machine shared with other jobs, 100-120 s of
    # training): data seed 0, period errors +2.5 / +1.6 / +3.1 / -0.7 %, amplitude ratios
    # 1.02 / 1.02 / 0.97 / 1.07; data seed 1 (not tested here), +2.7 / +5.1 / +0.8 / -1.0 %,
    # 0.96 / 0.97 / 1.02 / 1.02. Validating by D_H instead kept early states whose free runs
    # decay onto a fixed point for 2 of the 4 networks of data seed 1.
    dt = 0.1
    counts, lam = _van_der_pol_counts(seed=0)
    mean = lam.mean(0)
    axis = np.linalg.svd(lam - mean, full_matrices=False)[2][0]
    true_period, true_amp = _period_and_amplitude(lam, axis, mean, dt)
    assert true_period == pytest.approx(6.663, rel=0.01)
    run = reconstruct(counts, dt=dt, observation="poisson", model="shplrnn", n_latent=3,
                      n_hidden=50, n_networks=4, heldout=0.2, patience=None, validate_every=100,
                      config={"n_iterations": 2000, "seq_len": 100, "batch_size": 16,
                              "alpha": 0.1},
                      lyapunov=False, pe_steps=5, seed=0)
    start = run.model.rate_estimate(counts[4800:], dim=0)[0].float()
    obs, _ = generate(run.model, start, 6000)
    free = obs[:, 0, 1000:].double().numpy()
    measured = [_period_and_amplitude(f, axis, mean, dt) for f in free]
    period_err = np.array([p / true_period - 1 for p, _ in measured])
    amp_ratio = np.array([a / true_amp for _, a in measured])
    ok = (np.abs(period_err) < 0.10) & (amp_ratio > 0.5) & (amp_ratio < 2.0)
    assert ok.sum() >= 3, (period_err.round(3), amp_ratio.round(3))
