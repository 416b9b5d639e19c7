"""Tests of the task generators in dynrnn.tasks."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.tasks import (
    MAX_LYAPUNOV,
    TASK_REGISTRY,
    ChaoticSystemTask,
    DelayedDiscriminationTask,
    DMSTask,
    FlipFlopTask,
    Lorenz63,
    Lorenz96,
    ParityTask,
    PathIntegrationTask,
    Rossler,
    SineWaveTask,
    Task,
    Trials,
    integrate,
    task_from_dict,
)
from dynrnn.tasks.path_integration import ar1_filter, reflect

FAST = settings(max_examples=20, deadline=None)


def small_chaotic(system="lorenz63", **kw):
    kw = {"n_steps": 300, "transient_steps": 500, **kw}
    return ChaoticSystemTask(system=system, **kw)


ALL_TASKS = [
    FlipFlopTask(),
    FlipFlopTask(n_bits=2, n_steps=30, p_pulse=0.2, input_noise=0.1),
    ParityTask(),
    ParityTask(n_values=(1, 4), p_bit=0.3),
    DMSTask(n_values=(2, 3)),
    DelayedDiscriminationTask(),
    DelayedDiscriminationTask(input_noise=0.5),
    SineWaveTask(),
    SineWaveTask(n_freqs=5, washout_steps=10),
    PathIntegrationTask(),
    PathIntegrationTask(boundary=2.0, start_input=False, input_noise=0.1),
    small_chaotic("lorenz63"),
    small_chaotic("rossler"),
    small_chaotic(Lorenz96(n=6)),
]
IDS = [f"{type(t).__name__}-{i}" for i, t in enumerate(ALL_TASKS)]


def _tensors(trials: Trials):
    out = [trials.inputs, trials.targets, trials.mask]
    out += [v for v in trials.info.values() if torch.is_tensor(v)]
    return out


# ----------------------------------------------------------------------------------- generic
@pytest.mark.parametrize("task", ALL_TASKS, ids=IDS)
def test_determinism_per_seed(task: Task):
    a, b, c = task.sample(6, seed=3), task.sample(6, seed=3), task.sample(6, seed=4)
    for x, y in zip(_tensors(a), _tensors(b)):
        assert torch.equal(x, y)
    differs = [
        not torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(c)) if x.shape == y.shape
    ]
    assert (a.inputs.shape != c.inputs.shape) or any(differs)
    # a generator is accepted and advanced; the global RNG is untouched
    state = torch.get_rng_state()
    gen = torch.Generator().manual_seed(3)
    d = task.sample(6, seed=gen)
    assert torch.equal(d.targets, a.targets)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("task", ALL_TASKS, ids=IDS)
def test_contract(task: Task):
    trials = task.sample(5, seed=0)
    B, T = trials.batch_size, trials.n_steps
    assert B == 5
    assert trials.inputs.shape == (B, T, task.n_inputs)
    assert trials.inputs.dtype == torch.float32
    assert trials.mask.dtype == torch.bool
    assert trials.mask.any()
    if task.kind == "classification":
        assert trials.targets.dtype == torch.long
        assert 2 * trials.targets.shape[-1] == task.n_outputs
    else:
        assert task.kind == "regression"
        assert trials.targets.dtype == torch.float32
        assert trials.targets.shape == (B, T, task.n_outputs)
    assert trials.info["task"] == task.to_dict()["task"]
    assert isinstance(trials.info["dt"], float)
    assert torch.isfinite(trials.inputs).all()


@pytest.mark.parametrize("task", ALL_TASKS, ids=IDS)
def test_round_trip_through_dict_and_json(task: Task):
    d = task.to_dict()
    assert task_from_dict(d) == task
    assert task_from_dict(json.loads(json.dumps(d))) == task
    assert d["task"] in TASK_REGISTRY
    hash(task)


@pytest.mark.parametrize("task", ALL_TASKS, ids=IDS)
def test_to_xarray(task: Task):
    trials = task.sample(3, seed=1)
    ds = trials.to_xarray()
    assert ds["inputs"].dims == ("trial", "time", "input")
    assert ds["targets"].dims == ("trial", "time", "output")
    assert ds.sizes["trial"] == 3 and ds.sizes["time"] == trials.n_steps
    assert ds["mask"].dims[:2] == ("trial", "time")
    np.testing.assert_allclose(np.diff(ds["time"].values[:2]), trials.info["dt"])
    per_trial = [k for k, v in trials.info.items() if torch.is_tensor(v) and v.ndim >= 1]
    for key in per_trial:
        assert ds[key].dims[0] == "trial"


def test_trials_indexing_keeps_info():
    trials = ParityTask().sample(8, seed=0)
    sub = trials[2:5]
    assert sub.batch_size == 3
    assert torch.equal(sub.info["lengths"], trials.info["lengths"][2:5])
    assert sub.info["n_values"] == trials.info["n_values"]


# ----------------------------------------------------------------------------------- flip-flop
def _flipflop_reference(pulses: np.ndarray):
    B, T, N = pulses.shape
    target = np.zeros_like(pulses)
    seen = np.zeros(pulses.shape, dtype=bool)
    for b in range(B):
        for i in range(N):
            last = 0.0
            for t in range(T):
                if pulses[b, t, i] != 0:
                    last = pulses[b, t, i]
                target[b, t, i] = last
                seen[b, t, i] = last != 0
    return target, seen


@FAST
@given(
    n_bits=st.integers(1, 4),
    n_steps=st.integers(1, 40),
    p_pulse=st.floats(0.0, 1.0),
    noise=st.sampled_from([0.0, 0.3]),
    mask_first=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_flipflop_matches_reference(n_bits, n_steps, p_pulse, noise, mask_first, seed):
    task = FlipFlopTask(n_bits, n_steps, p_pulse, noise, mask_first)
    trials = task.sample(4, seed=seed)
    assert trials.inputs.shape == (4, n_steps, n_bits)
    assert trials.mask.shape == (4, n_steps, n_bits)
    pulses = trials.info["pulses"].numpy()
    assert set(np.unique(pulses)) <= {-1.0, 0.0, 1.0}
    target, seen = _flipflop_reference(pulses)
    np.testing.assert_array_equal(trials.targets.numpy(), target)
    np.testing.assert_array_equal(trials.mask.numpy(), seen if mask_first else np.ones_like(seen))
    first = np.where(seen.any(1), seen.argmax(1), n_steps)
    np.testing.assert_array_equal(trials.info["first_pulse"].numpy(), first)
    if noise == 0.0:
        assert torch.equal(trials.inputs, trials.info["pulses"])


def test_flipflop_statistics_and_ood():
    task = FlipFlopTask(n_bits=3, n_steps=200, p_pulse=0.1)
    trials = task.sample(200, seed=0)
    pulses = trials.info["pulses"]
    assert abs((pulses != 0).float().mean().item() - 0.1) < 0.01
    assert abs((pulses == 1).float().sum() / (pulses != 0).float().sum() - 0.5) < 0.03
    ood = task.ood()
    assert ood.n_steps == 400 and ood.n_bits == 3
    assert ood.sample(2, seed=0).n_steps == 400


# ----------------------------------------------------------------------------------- parity/DMS
def _reference_labels(bits_row, length, n_values, kind):
    real = [int(b) for b in bits_row[:length]]
    if kind == "parity":
        return [sum(real[-n:]) % 2 for n in n_values]
    return [int(real[-n] == real[-1]) for n in n_values]


@FAST
@given(
    n_values=st.lists(st.integers(1, 7), min_size=1, max_size=4, unique=True),
    p_bit=st.one_of(st.none(), st.floats(0.0, 1.0)),
    extra=st.integers(0, 3),
    cls=st.sampled_from([ParityTask, DMSTask]),
    seed=st.integers(0, 2**31 - 1),
)
def test_parity_dms_labels_match_reference(n_values, p_bit, extra, cls, seed):
    task = cls(n_values=tuple(n_values), p_bit=p_bit)
    n_max = max(n_values) + extra
    trials = task.sample(16, seed=seed, n_max=n_max)
    B, T, H = trials.targets.shape
    assert H == len(n_values) and task.n_outputs == 2 * H
    lengths = trials.info["lengths"]
    assert ((lengths >= n_max + 2) & (lengths < 4 * n_max + 2)).all()
    assert T == int(lengths.max())
    bits = trials.inputs[..., 0]
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    beyond = torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)
    assert (bits[beyond] == 0).all()
    expected_mask = torch.zeros(B, T, dtype=torch.bool)
    expected_mask[torch.arange(B), lengths - 1] = True
    assert torch.equal(trials.mask, expected_mask)
    kind = "parity" if cls is ParityTask else "dms"
    for b in range(B):
        ref = _reference_labels(bits[b].tolist(), int(lengths[b]), n_values, kind)
        assert trials.targets[b, lengths[b] - 1].tolist() == ref
        assert trials.info["labels"][b].tolist() == ref
    if p_bit is not None:
        assert torch.allclose(trials.info["p_bit"], torch.full((B,), float(p_bit)))
    assert trials.info["n_values"] == tuple(n_values)


def test_parity_random_p_and_dms_defaults():
    trials = ParityTask().sample(2000, seed=0)
    p = trials.info["p_bit"]
    assert 0.45 < p.mean().item() < 0.55 and p.min() >= 0 and p.max() <= 1
    assert len(p.unique()) > 1000
    dms = DMSTask()
    assert dms.p_bit == 0.5 and dms.kind == "classification"
    labels = dms.sample(4000, seed=1).info["labels"].float()
    assert ((labels.mean(0) - 0.5).abs() < 0.04).all()
    lengths = ParityTask(n_values=(2, 3)).sample(4000, seed=2).info["lengths"]
    assert set(lengths.tolist()) == set(range(5, 14))


def test_parity_n_max_below_n_values_raises():
    with pytest.raises(ValueError, match="n_max"):
        ParityTask(n_values=(2, 5)).sample(4, seed=0, n_max=3)


# ----------------------------------------------------------------------------------- delayed discr.
@FAST
@given(
    delay=st.tuples(st.integers(0, 10), st.integers(0, 10)).map(sorted),
    stim_steps=st.integers(1, 4),
    pre_steps=st.integers(0, 3),
    response_steps=st.integers(1, 5),
    min_diff=st.floats(0.0, 3.9),
    seed=st.integers(0, 2**31 - 1),
)
def test_delayed_discrimination_structure(
    delay, stim_steps, pre_steps, response_steps, min_diff, seed
):
    task = DelayedDiscriminationTask(
        delay_range=tuple(delay),
        stim_steps=stim_steps,
        pre_steps=pre_steps,
        response_steps=response_steps,
        min_diff=min_diff,
    )
    trials = task.sample(32, seed=seed)
    B, T = 32, task.n_steps
    assert trials.inputs.shape == (B, T, 2) and trials.targets.shape == (B, T, 1)
    f1, f2, d = trials.info["f1"], trials.info["f2"], trials.info["delay"]
    assert ((f1 >= 2) & (f1 <= 10) & (f2 >= 2) & (f2 <= 10)).all()
    assert ((f2 - f1).abs() >= min_diff - 1e-5).all()
    assert ((d >= delay[0]) & (d <= delay[1])).all()
    for b in range(B):
        on2 = pre_steps + stim_steps + int(d[b])
        resp = on2 + stim_steps
        stim = torch.zeros(T)
        stim[pre_steps : pre_steps + stim_steps] = f1[b]
        stim[on2:resp] = f2[b]
        assert torch.equal(trials.inputs[b, :, 0], stim)
        window = torch.zeros(T, dtype=torch.bool)
        window[resp : resp + response_steps] = True
        assert torch.equal(trials.mask[b], window)
        assert torch.equal(trials.inputs[b, :, 1], window.float())
        sign = 1.0 if f2[b] > f1[b] else -1.0
        assert torch.equal(trials.targets[b, :, 0], window.float() * sign)


def test_delayed_discrimination_balance_and_ood():
    task = DelayedDiscriminationTask()
    trials = task.sample(4000, seed=0)
    up = (trials.info["f2"] > trials.info["f1"]).float().mean().item()
    assert abs(up - 0.5) < 0.03
    ood = task.ood()
    assert ood.delay_range == (10, 40)
    assert ood.n_steps == task.n_steps + 20
    assert int(ood.sample(500, seed=0).info["delay"].max()) > 20


# ----------------------------------------------------------------------------------- sine
@FAST
@given(
    lo=st.floats(0.1, 5.0),
    width=st.floats(0.1, 5.0),
    n_freqs=st.one_of(st.none(), st.integers(2, 6)),
    n_steps=st.integers(1, 60),
    seed=st.integers(0, 2**31 - 1),
)
def test_sine_targets(lo, width, n_freqs, n_steps, seed):
    task = SineWaveTask(freq_range=(lo, lo + width), n_freqs=n_freqs, n_steps=n_steps, dt=0.02)
    trials = task.sample(8, seed=seed)
    f = trials.info["freq"].double()
    t = torch.arange(n_steps, dtype=torch.float64) * 0.02
    expected = torch.sin(2 * math.pi * f[:, None] * t[None])
    torch.testing.assert_close(trials.targets[..., 0].double(), expected, atol=2e-5, rtol=0)
    assert ((f >= lo - 1e-6) & (f <= lo + width + 1e-6)).all()
    level = trials.inputs[..., 0]
    assert torch.equal(level, level[:, :1].expand_as(level))
    torch.testing.assert_close(level[:, 0], trials.info["input_level"])
    if n_freqs is not None:
        grid = torch.linspace(lo, lo + width, n_freqs, dtype=torch.float64)
        assert (torch.cdist(f[:, None], grid[:, None]).min(1).values < 1e-5).all()


def test_sine_input_monotone_in_frequency_and_washout():
    task = SineWaveTask(washout_steps=7)
    trials = task.sample(50, seed=0)
    order = trials.info["freq"].argsort()
    assert (trials.info["input_level"][order].diff() >= 0).all()
    assert not trials.mask[:, :7].any() and trials.mask[:, 7:].all()


# ----------------------------------------------------------------------------------- path integr.
def test_ar1_filter_matches_loop():
    e = torch.randn(3, 50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = ar1_filter(e, 0.9)
    ref = e.clone()
    for t in range(1, 50):
        ref[:, t] = 0.9 * ref[:, t - 1] + e[:, t]
    torch.testing.assert_close(y, ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ar1_filter(e, 0.0), e)


def test_reflect_is_identity_inside_and_bounded():
    p = torch.linspace(-0.99, 0.99, 11, dtype=torch.float64)
    torch.testing.assert_close(reflect(p, 1.0), p)
    q = torch.linspace(-50, 50, 1001, dtype=torch.float64)
    r = reflect(q, 1.0)
    assert (r.abs() <= 1.0 + 1e-12).all()
    torch.testing.assert_close(reflect(torch.tensor([1.5, -1.25]), 1.0), torch.tensor([0.5, -0.75]))


@FAST
@given(
    n_steps=st.integers(1, 80),
    dt=st.floats(0.01, 0.5),
    tau=st.floats(0.0, 3.0),
    boundary=st.one_of(st.none(), st.floats(0.5, 5.0)),
    start_input=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_path_integration_target_is_integral_of_input(
    n_steps, dt, tau, boundary, start_input, seed
):
    start_scale = 0.5 if boundary is None else 0.5 * boundary
    task = PathIntegrationTask(
        n_steps=n_steps,
        dt=dt,
        velocity_tau=tau,
        boundary=boundary,
        start_input=start_input,
        start_scale=start_scale,
    )
    trials = task.sample(8, seed=seed)
    assert trials.inputs.shape == (8, n_steps, 4 if start_input else 2)
    start = trials.info["start"]
    assert (start.abs() <= start_scale).all()
    pos = start[:, None].double() + (trials.inputs[..., :2].double() * dt).cumsum(1)
    torch.testing.assert_close(trials.targets.double(), pos, atol=1e-4, rtol=1e-4)
    if boundary is not None:
        assert (trials.targets.abs() <= boundary + 1e-5).all()
    if start_input:
        assert torch.equal(trials.inputs[:, 0, 2:], start)
        assert (trials.inputs[:, 1:, 2:] == 0).all()


def test_path_integration_velocity_is_stationary_ar1():
    task = PathIntegrationTask(n_steps=200, dt=0.1, speed_std=2.0, velocity_tau=1.0)
    v = task.sample(2000, seed=0).info["velocity"].double()
    sd = v.std(dim=(0, 2))
    assert ((sd - 2.0).abs() < 0.15).all()  # stationary from the first step
    lag1 = (v[:, 1:] * v[:, :-1]).mean() / v.var()
    assert abs(lag1.item() - math.exp(-0.1)) < 0.02


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: FlipFlopTask(n_bits=0), "n_bits"),
        (lambda: FlipFlopTask(n_bits=2.5), "n_bits"),
        (lambda: FlipFlopTask(n_steps=0), "n_steps"),
        (lambda: FlipFlopTask(p_pulse=1.5), "p_pulse"),
        (lambda: FlipFlopTask(p_pulse=-0.1), "p_pulse"),
        (lambda: FlipFlopTask(input_noise=-1.0), "input_noise"),
        (lambda: FlipFlopTask(input_noise=math.inf), "input_noise"),
        (lambda: FlipFlopTask(mask_before_first_pulse=1), "mask_before_first_pulse"),
        (lambda: ParityTask(n_values=()), "n_values"),
        (lambda: ParityTask(n_values=(0, 2)), "n_values"),
        (lambda: ParityTask(n_values=(2, 2)), "n_values"),
        (lambda: ParityTask(p_bit=1.2), "p_bit"),
        (lambda: DMSTask(p_bit=-0.5), "p_bit"),
        (lambda: DelayedDiscriminationTask(delay_range=(-1, 5)), "delay_range"),
        (lambda: DelayedDiscriminationTask(delay_range=(6, 5)), "delay_range"),
        (lambda: DelayedDiscriminationTask(f_range=(10.0, 2.0)), "f_range"),
        (lambda: DelayedDiscriminationTask(min_diff=4.0), "min_diff"),
        (lambda: DelayedDiscriminationTask(stim_steps=0), "stim_steps"),
        (lambda: DelayedDiscriminationTask(response_steps=0), "response_steps"),
        (lambda: SineWaveTask(freq_range=(0.0, 1.0)), "freq_range"),
        (lambda: SineWaveTask(n_freqs=1), "n_freqs"),
        (lambda: SineWaveTask(dt=0.0), "dt"),
        (lambda: SineWaveTask(washout_steps=200), "washout_steps"),
        (lambda: PathIntegrationTask(dt=-0.1), "dt"),
        (lambda: PathIntegrationTask(boundary=0.0), "boundary"),
        (lambda: PathIntegrationTask(boundary=1.0, start_scale=2.0), "start_scale"),
        (lambda: PathIntegrationTask(velocity_tau=-1.0), "velocity_tau"),
        (lambda: ChaoticSystemTask(system="henon"), "system"),
        (lambda: ChaoticSystemTask(n_steps=1), "n_steps"),
        (lambda: ChaoticSystemTask(noise=-0.1), "noise"),
        (lambda: ChaoticSystemTask(dt=0.0), "dt"),
        (lambda: ChaoticSystemTask(transient_steps=-5), "transient_steps"),
        (lambda: Lorenz96(n=2), "'n'"),
        (lambda: FlipFlopTask().sample(0, seed=0), "batch_size"),
        (lambda: FlipFlopTask().sample(2, seed=-1), "seed"),
        (lambda: integrate("lorenz63", np.zeros(4), 10, 0.01), "x0"),
        (lambda: integrate("lorenz63", np.ones(3), 10, 0.01, method="euler"), "method"),
        (lambda: task_from_dict({"task": "nope"}), "nope"),
    ],
)
def test_bad_values_raise_value_error_naming_parameter(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()


def test_error_message_states_value_and_range():
    with pytest.raises(ValueError, match=r"'p_pulse'.*\[0, 1\].*1\.5"):
        FlipFlopTask(p_pulse=1.5)


# ----------------------------------------------------------------------------------- chaotic
def test_rhs_vectorised_numpy_and_torch():
    gen = np.random.default_rng(0)
    for system in (Lorenz63(), Rossler(), Lorenz96(n=7)):
        x = gen.normal(size=(4, 5, system.dim))
        f_np = system.rhs(0.0, x)
        f_t = system.rhs(0.0, torch.from_numpy(x))
        assert f_np.shape == x.shape
        np.testing.assert_allclose(f_t.numpy(), f_np, rtol=1e-12)
        np.testing.assert_allclose(f_np[2, 3], system.rhs(0.0, x[2, 3]), rtol=1e-12)


def test_known_fixed_points_have_zero_velocity():
    r, b = 28.0, 8.0 / 3.0
    c = math.sqrt(b * (r - 1))
    fps = np.array([[0.0, 0.0, 0.0], [c, c, r - 1], [-c, -c, r - 1]])
    np.testing.assert_allclose(Lorenz63().rhs(0.0, fps), 0.0, atol=1e-12)
    np.testing.assert_allclose(Lorenz96(n=9).rhs(0.0, np.full(9, 8.0)), 0.0, atol=1e-12)
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # one component by hand, cyclic indices
    assert Lorenz96(n=5, forcing=1.0).rhs(0.0, x)[0] == (x[1] - x[3]) * x[4] - x[0] + 1.0


def test_lorenz63_stays_on_attractor():
    task = ChaoticSystemTask("lorenz63", n_steps=3000, noise=0.05)
    trials = task.sample(4, seed=0)
    clean = trials.info["clean"].double()
    assert clean.mean(1).abs().max() < 1e-5
    assert (clean.std(1) - 1).abs().max() < 1e-5
    raw = clean * trials.info["std"][:, None].double() + trials.info["mean"][:, None].double()
    assert raw[..., 0].abs().max() < 25 and raw[..., 1].abs().max() < 35
    assert raw[..., 2].min() > 0 and raw[..., 2].max() < 55
    # attractor statistics: x, y symmetric around 0, z around 23.5, sd(x) ~ 7.9
    assert raw[..., 2].mean().item() == pytest.approx(23.5, abs=1.5)
    assert trials.info["std"][:, 0].mean().item() == pytest.approx(7.9, abs=1.0)
    noise = trials.targets.double() - clean
    assert noise.std().item() == pytest.approx(0.05, rel=0.1)
    assert trials.inputs.shape == (4, 3000, 0)
    assert task.max_lyapunov == MAX_LYAPUNOV["lorenz63"] == pytest.approx(0.906)


def test_lorenz63_integration_accuracy():
    x0 = np.array([[1.0, 1.0, 20.0], [-5.0, 3.0, 30.0]])
    a = integrate(Lorenz63(), x0, 201, 0.01, rtol=1e-10, atol=1e-10)
    b = integrate(Lorenz63(), x0, 201, 0.01, rtol=1e-12, atol=1e-12)
    c = integrate(Lorenz63(), x0, 201, 0.01, method="rk4", substeps=20)
    assert a.shape == (2, 201, 3)
    np.testing.assert_allclose(a[:, 0], x0)
    # errors grow chaotically (~e^(0.9 t)); at t = 2 tolerance 1e-10 keeps them below 1e-5
    assert np.abs(a - b).max() < 1e-5
    assert np.abs(c - b).max() < 1e-5
    assert np.abs(a - b).max() > 0  # the two tolerances really differ
    # a single initial condition gives [n_steps, D]; the transient shifts the window
    d = integrate("lorenz63", x0[0], 101, 0.01, transient_steps=100)
    np.testing.assert_allclose(d, b[0, 100:], atol=1e-6)


def test_lorenz63_largest_lyapunov_from_nearby_trajectories():
    gen = torch.Generator().manual_seed(0)
    x0 = Lorenz63().initial_conditions(24, gen).numpy()
    x0 = integrate("lorenz63", x0, 1, 0.01, transient_steps=1000)[:, 0]
    delta = 1e-8
    pert = x0 + delta * np.array([1.0, 0.0, 0.0])
    T = 1200
    traj = integrate("lorenz63", np.concatenate([x0, pert]), 2, T * 0.01, rtol=1e-12, atol=1e-12)
    dist = np.linalg.norm(traj[:24, 1] - traj[24:, 1], axis=1)
    lam = np.mean(np.log(dist / delta)) / (T * 0.01)
    assert 0.6 < lam < 1.2


def test_rossler_bounded_and_standardised():
    task = ChaoticSystemTask("rossler", n_steps=4000, dt=0.05, noise=0.0)
    trials = task.sample(3, seed=1)
    assert torch.equal(trials.targets, trials.info["clean"])
    raw = trials.targets.double() * trials.info["std"][:, None] + trials.info["mean"][:, None]
    assert raw[..., :2].abs().max() < 15 and raw[..., 2].min() > -0.1 and raw[..., 2].max() < 30
    assert (trials.info["std"][:, 0] > 3).all()  # on the attractor, not a fixed point
    x0 = np.array([1.0, -2.0, 0.1])
    a = integrate(Rossler(), x0, 101, 0.05, rtol=1e-10, atol=1e-10)
    b = integrate(Rossler(), x0, 101, 0.05, rtol=1e-12, atol=1e-12)
    assert np.abs(a - b).max() < 1e-6
    assert Rossler.max_lyapunov == pytest.approx(0.071)


def test_lorenz96_dimension_and_unstandardised_noise():
    task = ChaoticSystemTask(
        Lorenz96(n=12), n_steps=400, transient_steps=200, standardise=False, noise=0.1
    )
    assert task.n_outputs == 12 and task.n_inputs == 0
    trials = task.sample(2, seed=0)
    assert trials.targets.shape == (2, 400, 12)
    clean = trials.info["clean"]
    torch.testing.assert_close(clean.mean(1), trials.info["mean"], atol=1e-4, rtol=1e-4)
    rel = (trials.targets - clean).std(1) / trials.info["std"]
    assert rel.mean().item() == pytest.approx(0.1, rel=0.15)
    assert task.max_lyapunov is None
    assert task_from_dict(task.to_dict()).system == Lorenz96(n=12)
    assert ChaoticSystemTask("lorenz96").system == Lorenz96(n=20, forcing=8.0)


def test_chaotic_system_parameters_and_replace():
    task = small_chaotic(Lorenz63(rho=24.0))
    assert task.system.rho == 24.0 and task.max_lyapunov is None
    assert task.with_system(rho=28.0).system == Lorenz63()
    assert dataclasses.replace(task, noise=0.0).noise == 0.0
    assert task_from_dict(task.to_dict()) == task
