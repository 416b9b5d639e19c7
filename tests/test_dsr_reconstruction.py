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


def _grad_norm(model, win, alpha, forcing):
    model.zero_grad()
    gtf_loss(model, win, alpha, forcing=forcing).sum().backward()
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))


def test_gtf_gradients_bounded_on_lorenz_where_bptt_explodes(trained, lorenz_short):
    model, _ = trained
    bptt, gtf = [], []
    for S in (50, 200, 800):
        win = sample_windows(lorenz_short[None], 1, 16, S + 1, torch.Generator().manual_seed(S))
        bptt.append(_grad_norm(model, win, 0.0, "none"))
        gtf.append(_grad_norm(model, win, 0.2, "gtf"))
    # measured: BPTT ~3e1 -> 4e2 -> 2e5; GTF ~1e-2 throughout
    assert bptt[2] / bptt[0] > 100 and bptt[2] > 1e3
    assert max(gtf) < 1.0 and gtf[2] / gtf[0] < 10


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


def _assert_one_meets_issue_criteria(model, data):
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
    _assert_one_meets_issue_criteria(model, data)


@pytest.mark.slow
def test_lorenz_reconstruction_alrnn_p10():
    """AL-RNN with more ReLU units (M=30, P=10), 4 seeds at once, GTF alpha 0.1 on clean data,
    40,000 iterations: at least one network meets the issue's criteria (D_stsp < 0.3,
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
    _assert_one_meets_issue_criteria(model, data)


@pytest.mark.slow
@pytest.mark.parametrize("system, P, dt, expected", [("lorenz63", 2, 0.01, (2, 4)),
                                                      ("rossler", 1, 0.05, (2, 2))])
def test_alrnn_symbolic_dynamics(system, P, dt, expected):
    """AL-RNN (M=20) with P ReLUs: Lorenz uses at most 4 subregions with a connected symbolic
    graph; Rossler with P=1 uses both of its 2 subregions.

    Passes in ~460 s (both cases on 2 cores). What it shows is topology, not a good
    reconstruction: the same settings through ``dynrnn reconstruct`` (100,000 samples, 2 seeds,
    20,000 iterations, 230 s) gave a chaotic two-wing attractor using all 4 subregions, with
    lambda_max 0.70 / 0.48 (true 0.906), D_H 0.76 / 0.46 and D_stsp 11.7 / 11.1 (the geometry is
    still far from the data's; the shPLRNN test above meets the metric criteria)."""
    # weak forcing (alpha 0.05) on data with 5% observation noise: with alpha 0.1-0.3 or
    # sparse forcing and clean data every free run collapsed to a fixed point
    # (unobserved units start at 0: with the learned first state the P=2 free runs fell onto a
    # fixed point more often)
    task = ChaoticSystemTask(system, n_steps=50_000, dt=dt, noise=0.05)
    data = task.sample(1, seed=0).targets[0]
    model = ALRNN(ALRNNConfig(20, 3, n_pwl=P, dt=dt, learn_initial_state=False), n_networks=2)
    train_gtf(model, data, GTFConfig(n_iterations=20000, alpha=0.05, lr_end=1e-5))
    ds = evaluate_reconstruction(model, data, lyapunov=False)
    best = int(np.nanargmin(ds.D_stsp.values))
    net = model.select(best)
    _, Z = generate(net, data[0], 20000)
    G = symbolic_graph(net, Z[0, 0, 5000:])
    lo, hi = expected
    assert lo <= G.number_of_nodes() <= hi
    import networkx as nx

    assert nx.is_strongly_connected(G)
