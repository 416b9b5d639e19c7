"""The flip-flop recipe and its outcome check, shared by the fast fixture tests, the slow
statistical test and ``tests/data/make_flipflop_fixtures.py``.

An n-bit flip-flop network is *canonical* (Sussillo & Barak, Neural Computation 2013) when it
solves the task and its memories are 2^n stable fixed points whose readouts are the corners of
the cube {-1, +1}^n. Some trained networks hold memories on limit cycles instead: their
free-running state never comes to rest, and they have no stable fixed points to find.

Everything here is decided in float64, with margins far from rounding: after 400 input-free
steps a network at rest moves by ~2e-15 per step, one on a limit cycle by ~6 (measured on the
3-bit fixture); the at-rest threshold is 1e-9.
"""

from __future__ import annotations

import numpy as np
import torch

from dynrnn.analyses import find_fixed_points
from dynrnn.models import Ensemble, RateRNNConfig, run
from dynrnn.tasks import FlipFlopTask
from dynrnn.training import TrainConfig, train

#: the recipe: tanh rate RNNs with recurrent noise 0.05 during training (memories become robust
#: attractors), Adam lr 1e-2, batch 64, trials of 100 steps with pulse probability 0.05, trained
#: until every network's held-out masked MSE is below 1e-3 (at most 1500 iterations).
REC_NOISE = 0.05
TRAIN = TrainConfig(n_steps=1500, batch_size=64, lr=1e-2, eval_every=50, noise=True)
AT_REST = 1e-9
N_FREE = 400


def flipflop_task(n_bits: int) -> FlipFlopTask:
    return FlipFlopTask(n_bits=n_bits, n_steps=100, p_pulse=0.05)


def train_flipflop_ensemble(n_bits: int, n_units: int, n_networks: int, seed: int = 0):
    """K networks trained at once by the package's own ``train``; returns (model, history)."""
    cfg = RateRNNConfig(n_bits, n_units, n_bits, rec_noise_std=REC_NOISE)
    model = Ensemble(cfg, n_networks=n_networks, seed=seed)
    history = train(model, flipflop_task(n_bits), TRAIN, seed=seed)
    return model, history


def flipflop_outcome(model, n_bits: int) -> dict:
    """Per-network outcome, all in float64.

    Returns a dict of ``[K]`` arrays: ``free_step`` (largest last-step displacement of the free
    run after pulses), ``at_rest``, ``n_stable``, ``corners`` (the stable points' readouts have
    exactly the 2^n sign patterns, each within 0.15 of +-1), ``ends_on_stable`` (every state the
    free run rests in lies within 1e-6 of a stable point), ``q_max`` (largest q of the converged
    points), ``canonical`` (at rest, exactly 2^n stable points, corners, ends on them); and
    ``fixed_points``, the Dataset of :func:`find_fixed_points`.
    """
    model = model.double()
    trials = flipflop_task(n_bits).sample(64, seed=5)
    x = torch.cat([trials.inputs.double(),
                   torch.zeros(64, N_FREE, n_bits, dtype=torch.float64)], dim=1)
    with torch.no_grad():
        S, _ = run(model, x)
    free_step = (S[:, :, -1] - S[:, :, -2]).norm(dim=-1).amax(1).numpy()
    ds = find_fixed_points(model, trajectories=S[:, :, :160], n_initial=512, seed=0,
                           progress=False)
    corners = {tuple(c) for c in
               np.array(np.meshgrid(*[[-1, 1]] * n_bits)).reshape(n_bits, -1).T}
    K = model.n_networks
    out = {name: np.zeros(K, dtype=bool) for name in ("corners", "ends_on_stable")}
    out["q_max"] = np.zeros(K)
    for k in range(K):
        d = ds.isel(network=k)
        conv = d.converged.values & d.valid.values
        out["q_max"][k] = d.q.values[conv].max() if conv.any() else np.nan
        stable = d.points.values[conv & (d.stability.values == 0)]
        if len(stable) == 0:
            continue
        with torch.no_grad():
            y = model.select(k).readout(torch.as_tensor(stable)[None])[0].numpy()
        out["corners"][k] = (np.abs(np.abs(y) - 1).max() < 0.15
                             and {tuple(np.sign(r).astype(int)) for r in y} == corners)
        ends = S[k, :, -1].numpy()
        out["ends_on_stable"][k] = (
            np.linalg.norm(ends[:, None] - stable[None], axis=-1).min(1).max() < 1e-6)
    out["free_step"] = free_step
    out["at_rest"] = free_step < AT_REST
    out["n_stable"] = ds.n_stable.values
    out["canonical"] = (out["at_rest"] & (out["n_stable"] == 2**n_bits) & out["corners"]
                        & out["ends_on_stable"])
    out["fixed_points"] = ds
    return out
