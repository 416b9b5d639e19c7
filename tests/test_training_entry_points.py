"""One entry-point style for every learning rule.

``train``, ``train_gtf``, ``train_continual``, ``ridge_readout``, ``force_train`` and
``train_three_factor`` each take ``seed`` and ``progress`` as keywords and return a result object
with ``.to_xarray()`` (a Dataset with a ``network`` dim where there are networks). For each: the
same seed gives the same result, a different seed a different one (where the seed drives
anything random), ``progress=False`` writes nothing, and the Dataset has the documented dims.
"""

from __future__ import annotations

import pytest
import torch
import xarray as xr

from dynrnn import models as M
from dynrnn import tasks as TS
from dynrnn import training as TR

K = 2


def _izhikevich():
    cfg = M.IzhikevichConfig(n_excitatory=16, n_inhibitory=4, n_inputs=1, n_outputs=1,
                             dt=0.5, noise_exc=5.0, noise_inh=2.0)  # fmt: skip
    return M.IzhikevichReservoir(cfg, n_networks=K, seed=0).to(torch.float64)


def _train(seed, progress):
    model = M.Ensemble(M.RateRNNConfig(1, 4, 1), n_networks=K, seed=0)
    cfg = TR.TrainConfig(n_steps=3, batch_size=4, eval_every=2, eval_batch_size=4)
    return TR.train(model, TS.FlipFlopTask(n_bits=1, n_steps=10), cfg, seed=seed,
                    progress=progress)  # fmt: skip


def _train_gtf(seed, progress):
    model = M.PLRNN(M.PLRNNConfig(3, 2), n_networks=K, seed=0)
    data = torch.randn(60, 2, generator=torch.Generator().manual_seed(0))
    cfg = TR.GTFConfig(n_iterations=3, seq_len=5, batch_size=2, noise_std=0.1)
    return TR.train_gtf(model, data, cfg, seed=seed, progress=progress)


def _ridge(seed, progress):
    x = torch.rand(2, 40, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.sin(torch.arange(40, dtype=torch.float64) / 5)[None, :, None].expand(2, 40, 1)
    return TR.ridge_readout(_izhikevich(), x, y, alpha=1e-3, seed=seed, progress=progress)


def _force(seed, progress):
    f = torch.sin(torch.arange(60, dtype=torch.float64) / 5)[:, None]
    return TR.force_train(_izhikevich(), f, seed=seed, progress=progress)


def _three_factor(seed, progress):
    task = TS.WhatWhenTask(n_stimuli=2, n_steps=30, cue_time=3, stim_duration=2,
                           block_delays=(10.0,), delay_std=1.0)  # fmt: skip
    tr = task.sample(3, seed=0)
    return TR.train_three_factor(
        _izhikevich(), tr.inputs[:, :, :1].double(), tr.info["stimuli"], cue=tr.inputs[:, :, 0],
        seed=seed, progress=progress,
    )  # fmt: skip


def _continual(seed, progress):
    tasks = TS.continual_sequence(2, n_dims=8, n_classes=2)
    net = TR.MLP([8, 6, 2], seed=0)
    return TR.train_continual(net, tasks, steps_per_task=2, batch_size=4, eval_trials=8,
                              seed=seed, progress=progress)  # fmt: skip


#: entry point -> (call(seed, progress), dims of the Dataset, whether the seed changes it)
ENTRY_POINTS = {
    "train": (_train, {"network": K, "step": 3}, True),
    "train_gtf": (_train_gtf, {"network": K, "iteration": 3}, True),
    "ridge_readout": (_ridge, {"network": K, "output": 1, "feature": 20}, True),
    "force_train": (_force, {"network": K, "time": 60, "output": 1}, True),
    "train_three_factor": (
        _three_factor, {"network": K, "trial": 3, "time": 30, "stimulus": 2}, True
    ),
    "train_continual": (_continual, {"trained": 2, "evaluated": 2, "step": 2}, True),
}


def _dataset(result) -> xr.Dataset:
    ds = result.to_xarray()
    assert isinstance(ds, xr.Dataset)
    return ds.drop_vars([v for v in ("wall_time", "time_s") if v in ds.variables])


@pytest.fixture(params=sorted(ENTRY_POINTS))
def entry(request):
    if request.param == "train_continual" and not hasattr(TR, "MLP"):
        pytest.skip("HLOP is not importable")
    return request.param


def test_same_seed_same_result(entry):
    call, _, seed_matters = ENTRY_POINTS[entry]
    a, b = _dataset(call(3, False)), _dataset(call(3, False))
    xr.testing.assert_identical(a, b)
    if seed_matters:
        c = _dataset(call(4, False))
        assert not a.identical(c), f"{entry}: the seed changed nothing"


def test_to_xarray_dims(entry):
    call, dims, _ = ENTRY_POINTS[entry]
    ds = _dataset(call(0, False))
    for dim, size in dims.items():
        assert ds.sizes[dim] == size, (entry, dict(ds.sizes))
    if "network" in dims:
        assert (ds["network"].values == list(range(K))).all()


def test_progress_false_is_silent_and_true_shows_a_bar(entry, capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the test run silences bars globally
    call, _, _ = ENTRY_POINTS[entry]
    capsys.readouterr()
    call(0, False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    call(0, True)
    assert capsys.readouterr().err != ""


def test_progress_and_seed_are_keyword_only_and_checked(entry):
    call, _, _ = ENTRY_POINTS[entry]
    with pytest.raises(TypeError, match="'progress'"):
        call(0, 1)
    with pytest.raises(ValueError, match="'seed'"):
        call(-1, False)


def test_old_call_forms_still_work():
    # train: TrainConfig.progress is the default of the keyword; the keyword overrides it
    model = M.Ensemble(M.RateRNNConfig(1, 4, 1), n_networks=K, seed=0)
    cfg = TR.TrainConfig(n_steps=2, batch_size=2, eval_every=2, eval_batch_size=2, progress=False)
    hist = TR.train(model, TS.FlipFlopTask(n_bits=1, n_steps=10), cfg)
    assert hist.loss.shape == (K, 2)
    # train_gtf: without the keyword, GTFConfig.seed seeds the run
    data = torch.randn(60, 2, generator=torch.Generator().manual_seed(0))
    runs = []
    for kw in ({}, {"seed": 7}):
        model = M.PLRNN(M.PLRNNConfig(3, 2), n_networks=K, seed=0)
        cfg = TR.GTFConfig(n_iterations=2, seq_len=5, batch_size=2, seed=7)
        runs.append(_dataset(TR.train_gtf(model, data, cfg, progress=False, **kw)))
    xr.testing.assert_identical(*runs)
    # ridge_readout: the fitted MSE per network
    res = _ridge(0, False)
    assert res.mse.shape == (K,) and res.W_out.shape == (K, 1, 20)
