"""Dynamical-systems reconstruction end to end.

Fast tests use a clipped shPLRNN ensemble trained with GTF on Lorenz-63 (stored in
``tests/data``; produced by the slow test's recipe): BPTT gradients explode with the sequence
length on Lorenz while GTF gradients stay bounded; SCYFI finds the three Lorenz fixed points in
the reconstruction. Slow tests train from scratch and check D_stsp, D_H and lambda_max.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dynrnn.analyses import lyapunov_spectrum
from dynrnn.analyses.dsr_metrics import evaluate_reconstruction, generate
from dynrnn.analyses.scyfi import find_cycles
from dynrnn.analyses.symbolic import symbolic_graph
from dynrnn.models import ALRNN, ALRNNConfig, ShallowPLRNN, ShallowPLRNNConfig
from dynrnn.tasks.chaotic import MAX_LYAPUNOV, ChaoticSystemTask
from dynrnn.training.gtf import GTFConfig, gtf_loss, sample_windows, train_gtf
from dynrnn.zoo import load_model

DATA = Path(__file__).parent / "data" / "lorenz63_clipped_shplrnn"


@pytest.fixture(scope="module")
def trained():
    model, meta = load_model(DATA)
    return model.select(int(meta["best_network"])), meta


@pytest.fixture(scope="module")
def lorenz_short():
    tr = ChaoticSystemTask("lorenz63", n_steps=5000, dt=0.01, noise=0.0, tol=1e-6).sample(
        1, seed=3)
    return tr.targets[0]


def _median_log_grad_norm(model, data, S, alpha, forcing, n_windows, seed):
    """Median over ``n_windows`` random length-S windows of ``data`` of log ||d loss / d theta||.

    The model is replicated into ``n_windows`` identical networks, each given one window, so one
    batched backward pass yields one gradient per window (the windows' losses are independent).
    """
    copies = model.select([0] * n_windows)
    gen = torch.Generator().manual_seed(int(seed))
    win = sample_windows(data[None], n_windows, 1, int(S) + 1, gen)
    copies.zero_grad()
    gtf_loss(copies, win, alpha, forcing=forcing).sum().backward()
    sq = sum(p.grad.pow(2).reshape(n_windows, -1).sum(1) for p in copies.parameters())
    return float(torch.median(0.5 * torch.log(sq)))


def test_gtf_gradients_bounded_on_lorenz_where_bptt_explodes(trained, lorenz_short):
    """Hess et al. (ICML 2023): through a chaotic system BPTT gradients grow like
    exp(lambda_max * S * dt) with the window length S, while GTF with alpha replaces each
    Jacobian J by (1 - alpha) J, so for alpha > 1 - exp(-lambda_max * dt) the products -- and
    the gradients -- stay bounded.

    Measured as *rates* of the median over 32 windows (float64), fitted over S = 200..1600 steps
    (2..16 time units), against the model's own lambda_max (QR method). Measured over three
    Lorenz series (seeds 3, 4, 5): lambda_max 0.878 per time unit; BPTT rate 0.81 / 0.80 / 0.75
    (ratio 0.85-0.92); GTF (alpha 0.2) rate -0.010 / -0.011 / -0.003. Over shorter windows
    (S = 50..400) the finite-time growth is faster (ratio 1.2-1.9), so the fit starts at 200.
    Asserted: BPTT rate within [0.6, 1.4] x lambda_max; GTF rate below 0.1 x lambda_max (no
    growth: its bound max(0, lambda_max + log(1 - alpha) / dt) is 0 here), and GTF's gradients
    at S = 1600 are orders of magnitude below BPTT's.
    """
    model = trained[0].double()
    data = lorenz_short.double()
    dt = float(model.config.dt)
    lam = float(lyapunov_spectrum(model, n_steps=5000, burn_in=500, n_trials=4,
                                  progress=False).exponents_per_time.values[0, 0])
    lengths = np.array([200, 400, 800, 1600])
    bptt = [_median_log_grad_norm(model, data, S, 0.0, "none", 32, S) for S in lengths]
    gtf = [_median_log_grad_norm(model, data, S, 0.2, "gtf", 32, S) for S in lengths]
    bptt_rate = np.polyfit(lengths * dt, bptt, 1)[0]
    gtf_rate = np.polyfit(lengths * dt, gtf, 1)[0]
    assert 0.6 * lam < bptt_rate < 1.4 * lam, (bptt_rate, lam, bptt)
    assert gtf_rate < 0.1 * lam, (gtf_rate, lam, gtf)
    assert bptt[-1] - gtf[-1] > math.log(1e4), (bptt, gtf)


def test_scyfi_finds_lorenz_fixed_points(trained):
    model, _ = trained
    fc = find_cycles(model, 1, n_restarts=128, n_rounds=2, max_inner=30)
    pts = fc.points.values[:, 0]
    assert len(pts) == 3  # origin and the two wing centres
    order = np.argsort(pts[:, 0])
    left, mid, right = pts[order]
    assert mid[2] < -2.0 < left[2] and mid[2] < right[2]  # origin sits below the wings
    assert left[0] < -0.5 and right[0] > 0.5  # the wings' centres, symmetric in x
    assert np.all(fc.max_abs_eigenvalue.values > 0.9)  # none attracts strongly (chaos)


def _assert_one_meets_criteria(model, data):
    """At least one network: D_stsp < 0.3, D_H < 0.1, lambda_max within 10% of Lorenz's."""
    ds = evaluate_reconstruction(model, data, true_lyapunov=MAX_LYAPUNOV["lorenz63"],
                                 lyapunov_steps=50000)
    lam_err = np.abs(ds.max_lyapunov.values - 0.906) / 0.906
    good = (ds.D_stsp.values < 0.3) & (ds.D_H.values < 0.1) & (lam_err < 0.1)
    assert good.sum() >= 1, ds


@pytest.mark.slow
def test_lorenz_reconstruction_shplrnn():
    """Clipped shPLRNN (M=3, L=100), 4 seeds at once, GTF alpha 0.2, 15000 iterations.

    Measured on 2 shared CPU cores (OMP_NUM_THREADS=1): 596 s of training for the 4 seeds
    (1365 s under heavy load from other jobs), plus ~80 s evaluation. Per network D_stsp
    0.210 / 0.189 / 0.304 / 0.246, D_H 0.076 / 0.077 / 0.086 / 0.080, lambda_max 0.870 / 0.927 /
    0.938 / 0.821 per time unit (true 0.906): networks 0, 1 and 3 meet all three criteria.
    (These weights are the fixture in tests/data.)
    """
    task = ChaoticSystemTask("lorenz63", n_steps=100_000, dt=0.01, noise=0.0)
    data = task.sample(1, seed=0).targets[0]
    model = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=100, clipped=True, dt=0.01),
                         n_networks=4)
    train_gtf(model, data, GTFConfig(n_iterations=15000, alpha=0.2, lr_end=1e-5))
    _assert_one_meets_criteria(model, data)


@pytest.mark.slow
def test_lorenz_reconstruction_alrnn_p10():
    """AL-RNN with more ReLU units (M=30, P=10), 4 seeds at once, GTF alpha 0.1 on clean data,
    40,000 iterations: at least one network meets the target criteria (D_stsp < 0.3,
    D_H < 0.1, lambda_max within 10% of 0.906).

    Measured with one thread (2 cores shared with another run): 582 s of training; the same
    trajectory with 2 threads (benchmarks/dsr.py, identical metrics at every checkpoint).
    Per network D_stsp 0.084 / 0.549 / 1.816 / 1.505, D_H 0.073 / 0.114 / 0.173 / 0.148,
    lambda_max 0.875 / 0.791 / 0.973 / 0.932 per time unit: network 0 meets all three (it
    first did at 28,000 iterations). The P=2 AL-RNN does not get there: its linear region
    around each Lorenz focus ends up with |lambda| at or just below 1 (benchmarks/dsr.py).
    """
    task = ChaoticSystemTask("lorenz63", n_steps=100_000, dt=0.01, noise=0.0)
    data = task.sample(1, seed=0).targets[0]
    model = ALRNN(ALRNNConfig(30, 3, n_pwl=10, dt=0.01), n_networks=4, seed=0)
    train_gtf(model, data, GTFConfig(n_iterations=40000, alpha=0.1, lr_end=1e-5))
    _assert_one_meets_criteria(model, data)


def _train_alrnn_brenner2024(system, P, dt, tau):
    """4 AL-RNNs (M=40, P ReLUs, unobserved units starting at 0) trained at once after the
    recipe of Brenner et al. (2024) (sparse TF every tau steps, 5% observation noise,
    RAdam 1e-3 -> 1e-5, no clipping; 20,000 iterations) on 100,000 samples; returns the model and
    the clean series."""
    trials = ChaoticSystemTask(system, n_steps=100_000, dt=dt, noise=0.05).sample(1, seed=0)
    data, clean = trials.targets[0], trials.info["clean"][0]
    model = ALRNN(ALRNNConfig(40, 3, n_pwl=P, dt=dt, learn_initial_state=False),
                  n_networks=4, seed=0)
    train_gtf(model, data, GTFConfig(n_iterations=20000, forcing="stf", tau=tau, grad_clip=None,
                                     lr_end=1e-5))
    return model, clean


def _count_connected_symbolic_graphs(model, x0, networks, min_nodes, max_nodes):
    """How many of ``networks`` visit min_nodes..max_nodes subregions, with a strongly connected
    symbolic graph, in a free run from ``x0`` (all K generated at once; 20,000 steps, the first
    5,000 dropped)."""
    import networkx as nx

    _, Z = generate(model, x0, 20000)
    count = 0
    for k in networks:
        G = symbolic_graph(model.select(int(k)), Z[k, 0, 5000:])
        count += min_nodes <= G.number_of_nodes() <= max_nodes and nx.is_strongly_connected(G)
    return count


@pytest.mark.slow
def test_lorenz_reconstruction_alrnn_p2():
    """AL-RNN with P=2 (the topologically minimal PWL form of Lorenz), 4 seeds at once: the
    recipe of Brenner et al. 2024 (sparse TF tau 16, 5% observation noise, RAdam 1e-3 -> 1e-5,
    no gradient clipping) with M=40 and the unobserved units starting at 0, 20,000 iterations.

    Asserted: at least 3 of 4 free runs are chaotic two-wing attractors (lambda_max > 0, at most 4
    subregions, at least 3 of them visited, strongly connected symbolic graph) as close to the data
    as the D_stsp 3.52 reported by the AL-RNN tutorial of Brenner et al. 2024, and one network's
    lambda_max is within 10% of 0.906. Measured (final states, D_stsp / D_H / lambda_max): model
    seed 0 2.32 / 0.27 / 1.02, 2.79 / 0.50 / 0.70, 2.06 / 0.31 / 0.81, 2.18 / 0.29 / 0.88; model
    seed 1 2.47 / 0.27 / 0.85, 3.46 / 0.63 / 0.44, 2.20 / 0.38 / 0.68, 2.76 / 0.39 / 0.55; all 8
    use 4 subregions with a connected graph. With M=20 the same recipe left all 4 free runs on a
    fixed point, and no P=2 network got near the target D_stsp < 0.2 (benchmarks/dsr.py). Passed in
    369 s on one thread (2 cores shared with another test).
    """
    model, clean = _train_alrnn_brenner2024("lorenz63", P=2, dt=0.01, tau=16)
    ds = evaluate_reconstruction(model, clean, true_lyapunov=MAX_LYAPUNOV["lorenz63"],
                                 lyapunov_steps=50000)
    lam = ds.max_lyapunov.values
    candidates = np.flatnonzero((ds.D_stsp.values < 3.52) & (lam > 0))  # NaN (diverged): out
    assert _count_connected_symbolic_graphs(model, clean[0], candidates, 3, 4) >= 3, ds
    assert np.any(np.abs(lam - 0.906) / 0.906 < 0.1), ds


@pytest.mark.slow
def test_alrnn_rossler_p1():
    """AL-RNN with P=1 on Rossler (100,000 samples, dt 0.05), 4 seeds, ``dynrnn reconstruct``'s
    AL-RNN defaults (sparse TF with tau 8 as in Brenner et al. 2024, 5% observation noise, no
    clipping; M=40, unobserved units starting at 0; 20,000 iterations): at least 2 networks use
    both of the 2 subregions with a strongly connected symbolic graph, D_stsp < 3 and lambda_max
    within 25% of Rossler's 0.071.

    Measured once through the CLI (same data, seeds and settings): D_stsp 1.71 / 2.01 / 16.4 /
    1.39, D_H 0.165 / 0.147 / 1.0 / 0.240, lambda_max 0.079 / 0.054 / NaN / 0.075 (network 2's
    free run diverged; the others meet the criteria); 315 s of training on 2 threads. The test
    passed in 394 s on one thread."""
    model, clean = _train_alrnn_brenner2024("rossler", P=1, dt=0.05, tau=8)
    ds = evaluate_reconstruction(model, clean, true_lyapunov=MAX_LYAPUNOV["rossler"])
    lam_err = np.abs(ds.max_lyapunov.values - MAX_LYAPUNOV["rossler"]) / MAX_LYAPUNOV["rossler"]
    candidates = np.flatnonzero((ds.D_stsp.values < 3) & (lam_err < 0.25))  # NaN: out
    assert _count_connected_symbolic_graphs(model, clean[0], candidates, 2, 2) >= 2, ds
