"""Degeneracy: OOD behaviour, the three-level report (ensembles, mixed sizes, zoo queries), the
figure, the lazy/rich readout lever, and (slow) the paper's finding that larger networks are less
dynamically degenerate."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from dynrnn.analyses import (
    behavioural_degeneracy,
    degeneracy_report,
    degeneracy_summary,
    readout_multiplier,
)
from dynrnn.models import Ensemble, RateRNNConfig, run
from dynrnn.plot import plot_degeneracy
from dynrnn.tasks import DelayedDiscriminationTask, FlipFlopTask

matplotlib.use("Agg")

TASK = FlipFlopTask(n_bits=2, n_steps=40, p_pulse=0.1)


def _model(n_units, k=3, seed=0):
    return Ensemble(RateRNNConfig(n_inputs=2, n_units=n_units, n_outputs=2), n_networks=k,
                    seed=seed)


def test_behavioural_degeneracy_uses_the_ood_task():
    m = _model(6)
    ds = behavioural_degeneracy(m, TASK, n_trials=16)
    assert ds["ood_error"].shape == (3,) and ds["error"].shape == (3,)
    assert np.isclose(float(ds["ood_error_std"]), np.std(ds["ood_error"].values))
    assert "n_units" in ds.coords and "seed" in ds.coords
    # the default shifted task is task.ood(); an explicit one gives the same numbers
    same = behavioural_degeneracy(m, TASK, ood_task=TASK.ood(), n_trials=16)
    assert np.array_equal(same["ood_error"].values, ds["ood_error"].values)
    # delayed discrimination: OOD = doubled delay
    dd = DelayedDiscriminationTask()
    md = Ensemble(RateRNNConfig(n_inputs=2, n_units=5, n_outputs=1), n_networks=2)
    out = behavioural_degeneracy(md, dd, n_trials=8)
    assert np.all(np.isfinite(out["ood_error"].values))

    class NoOOD:
        n_inputs = 2

    with pytest.raises(ValueError, match="ood_task"):
        behavioural_degeneracy(m, NoOOD())
    with pytest.raises(ValueError, match="'n_trials'"):
        behavioural_degeneracy(m, TASK, n_trials=0)


def test_report_mixed_sizes_grouped_and_plotted():
    small, large = _model(5, seed=0), _model(8, seed=10)
    rep = degeneracy_report(
        [small, large], TASK, group_by="n_units", n_trials=8, n_dsa_trials=2,
        dsa_kwargs=dict(n_delays=2, rank=6), representations=True,
    )
    K = 6
    for name in ("dsa", "dsa_euclidean", "wasserstein", "weight_distance", "procrustes"):
        D = rep[name].values
        assert D.shape == (K, K)
        assert np.allclose(D, D.T, equal_nan=True)
    W = rep["weight_distance"].values
    assert np.isnan(W[0, 3]) and np.isfinite(W[:3, :3]).all() and np.isfinite(W[3:, 3:]).all()
    assert np.isfinite(rep["dsa"].values).all()  # DSA compares networks of any size
    assert list(rep["group_n_units"].values) == [5, 8]
    # grouped summaries = means over within-group pairs
    for g, sl in enumerate((slice(0, 3), slice(3, 6))):
        block = rep["dsa"].values[sl, sl]
        pairs = block[np.triu_indices(3, 1)]
        assert np.isclose(rep["group_dynamical_degeneracy"].values[g], pairs.mean())
        assert np.isclose(rep["group_behavioural_degeneracy"].values[g],
                          np.std(rep["ood_error"].values[sl]))
    assert np.isclose(float(rep["weight_degeneracy"]),
                      np.nanmean(W[~np.eye(K, dtype=bool)]))
    fig = plot_degeneracy(rep)
    assert len(fig.axes) == 3
    ungrouped = degeneracy_summary(rep)
    assert float(ungrouped["n_networks"]) == K
    fig2 = plot_degeneracy(rep.drop_dims("group"))
    assert len(fig2.axes) == 3
    with pytest.raises(ValueError, match="'by'"):
        degeneracy_summary(rep, "no_such_field")
    with pytest.raises(ValueError, match="'levels'"):
        degeneracy_report(small, TASK, levels=("weights", "genes"))


def test_report_from_a_zoo_query(tmp_path):
    from dynrnn.zoo import Zoo

    zoo = Zoo(tmp_path / "zoo")
    zoo.add(_model(5, k=2), task=TASK, outcome={"l1": 0.0})
    zoo.add(_model(5, k=2, seed=20), task=TASK, outcome={"l1": 1e-3})
    zoo.add(_model(7, k=2, seed=30), task=TASK, outcome={"l1": 0.0})
    ids = zoo.query(task="flipflop")
    rep = degeneracy_report(zoo, TASK, ids=ids, levels=("weights", "behaviour"),
                            group_by=["n_units", "l1"], n_trials=4)
    assert rep.sizes["network"] == 6
    assert set(rep["id"].values) == set(ids)
    assert rep.sizes["group"] == 3
    assert "task.n_bits" in rep.coords
    with pytest.raises(ValueError, match="'ids'"):
        degeneracy_report(zoo, TASK)


def test_readout_scale_lever():
    assert readout_multiplier(64, "standard") == 1.0
    assert math.isclose(readout_multiplier(64, "rich"), 1 / 8)
    assert math.isclose(readout_multiplier(64, "lazy"), 8.0)
    with pytest.raises(ValueError, match="'regime'"):
        readout_multiplier(64, "medium")
    with pytest.raises(ValueError, match="'readout_scale'"):
        RateRNNConfig(n_inputs=1, n_units=4, n_outputs=1, readout_scale=0.0)
    cfgs = [RateRNNConfig(n_inputs=2, n_units=8, n_outputs=2, readout_scale=s, tau_init=2.0)
            for s in (1.0, 0.125)]
    m = Ensemble(cfgs, seed=3)
    x = torch.randn(4, 12, 2, generator=torch.Generator().manual_seed(0))
    states, fast = run(m, x)
    _, ref = run(m, x, backend="reference")
    assert (fast - ref).abs().max() < 1e-5
    with torch.no_grad():
        plain = torch.einsum("kbtn,kon->kbto", states, m.W_out) + m.b_out[:, None, None]
    assert torch.allclose(fast[0], plain[0], atol=1e-5)
    assert torch.allclose(fast[1], 0.125 * (plain[1] - m.b_out[1]) + m.b_out[1], atol=1e-5)
    # gradients agree between the fused kernel and the reference loop
    grads = []
    for backend in ("auto", "reference"):
        m.zero_grad()
        _, y = run(m, x, backend=backend)
        y.pow(2).sum().backward()
        grads.append(m.W_out.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_larger_networks_are_less_dynamically_degenerate():
    """Huang et al. 2025: larger networks reduce dynamical degeneracy (flip-flop)."""
    from dynrnn.training.supervised import TrainConfig, train

    task = FlipFlopTask(n_bits=3, n_steps=100, p_pulse=0.05)
    models = []
    for n in (16, 128):
        m = Ensemble(RateRNNConfig(n_inputs=3, n_units=n, n_outputs=3), n_networks=6, seed=0)
        hist = train(m, task, TrainConfig(n_steps=1500, batch_size=32, lr=3e-3, noise=False),
                     seed=0)
        assert np.all(hist.eval_loss[:, -1] < 5e-3)  # all solve the task
        models.append(m)
    rep = degeneracy_report(models, task, levels=("dynamics", "behaviour"), group_by="n_units",
                            n_dsa_trials=8, dsa_kwargs=dict(n_delays=5, rank=15))
    small, large = rep["group_dynamical_degeneracy"].values
    assert large < small, (small, large)
