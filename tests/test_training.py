"""Training: per-network optimisers equal torch's, ensembles train like single networks,
flip-flop networks reach the criterion, curricula advance, divergence is contained."""

import numpy as np
import pytest
import torch

from dynrnn.models import Ensemble, RateRNN, RateRNNConfig, run
from dynrnn.tasks import FlipFlopTask, ParityTask
from dynrnn.training import (
    Curriculum,
    EnsembleOptimizer,
    TrainConfig,
    head_cross_entropy,
    masked_mse,
    train,
)


@pytest.mark.parametrize(
    "kind,torch_opt",
    [
        ("adam", lambda p, lr: torch.optim.Adam(p, lr=lr)),
        ("sgd", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.1, nesterov=True)),
    ],
)
def test_ensemble_optimizer_equals_torch_per_network(kind, torch_opt):
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 5, 4, generator=gen, dtype=torch.float64) for _ in range(6)]
    lrs = torch.tensor([1e-3, 1e-2, 5e-2], dtype=torch.float64)
    ours = torch.nn.Parameter(w0.clone())
    opt = EnsembleOptimizer([ours], kind=kind, lr=lrs, momentum=0.1, nesterov=True)
    refs = [torch.nn.Parameter(w0[k].clone()) for k in range(3)]
    ref_opts = [torch_opt([refs[k]], float(lrs[k])) for k in range(3)]
    for g in grads:
        ours.grad = g.clone()
        opt.step(torch.ones(3, dtype=torch.bool))
        for k in range(3):
            refs[k].grad = g[k].clone()
            ref_opts[k].step()
    for k in range(3):
        torch.testing.assert_close(ours.data[k], refs[k].data, rtol=1e-12, atol=1e-12)


def test_inactive_networks_are_frozen_exactly():
    p = torch.nn.Parameter(torch.randn(2, 3, 3))
    opt = EnsembleOptimizer([p], kind="adam", lr=0.1)
    p.grad = torch.randn(2, 3, 3)
    opt.step(torch.tensor([True, True]))
    before = p.data.clone()
    m_before = opt.state[0]["m"].clone()
    p.grad = torch.full((2, 3, 3), float("nan"))
    opt.step(torch.tensor([False, False]))
    assert torch.equal(p.data, before) and torch.equal(opt.state[0]["m"], m_before)


def test_masked_mse_counts_only_masked_entries():
    out = torch.zeros(2, 1, 3, 1)
    target = torch.tensor([[[1.0], [2.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(masked_mse(out, target, mask), torch.tensor([2.5, 2.5]))


def test_head_cross_entropy_uses_each_networks_heads():
    logits = torch.zeros(2, 1, 2, 4)
    logits[0, 0, 1] = torch.tensor([5.0, -5.0, 0.0, 0.0])  # head 0 says class 0
    labels = torch.tensor([[[0, 1], [0, 1]]])
    mask = torch.tensor([[False, True]])
    head_map = torch.tensor([[0, -1], [0, 1]])
    loss = head_cross_entropy(logits, labels, mask, head_map)
    assert loss[0] < 1e-3  # only head 0 counts, and it is right
    assert loss[1] == pytest.approx(2 * np.log(2), rel=1e-5)  # two heads at chance


def test_curriculum_head_maps():
    level = torch.tensor([0, 2])
    multi = Curriculum("multi", n_levels=4).head_map(level)
    assert multi.tolist() == [[0, -1, -1, -1], [0, 1, 2, -1]]
    sliding = Curriculum("sliding", n_levels=4, window=2).head_map(level)
    assert sliding.tolist() == [[0, -1, -1, -1], [-1, 1, 2, -1]]
    single = Curriculum("single", n_levels=4).head_map(level)
    assert single.tolist() == [[0], [2]]
    cur = Curriculum("multi", n_levels=4)
    acc = torch.tensor([[0.99, float("nan"), float("nan"), float("nan")],
                        [0.99, 0.99, 0.97, float("nan")]])
    new_level, finished = cur.advance(level, acc)
    assert new_level.tolist() == [1, 2] and not finished.any()


def _trained_flipflop():
    task = FlipFlopTask(n_bits=3, n_steps=100, p_pulse=0.05)
    model = Ensemble(RateRNNConfig(3, 64, 3), n_networks=16, seed=0)
    cfg = TrainConfig(n_steps=1000, batch_size=32, lr=1e-2, eval_every=50, noise=False)
    return task, model, train(model, task, cfg, seed=0)


def test_flipflop_ensemble_reaches_criterion():
    task, model, history = _trained_flipflop()
    assert history.reached.mean() >= 0.9
    # checked again on fresh held-out trials, outside the training loop
    trials = task.sample(512, seed=12345)
    with torch.no_grad():
        mse = masked_mse(run(model, trials.inputs)[1], trials.targets, trials.mask)
    assert (mse[torch.as_tensor(history.reached)] < 2e-3).all()
    ds = history.to_xarray()
    assert ds.sizes["network"] == 16 and "init_gain" in ds.coords
    # early-stopped networks stop recording training loss
    k = int(np.argmax(history.reached))
    stop = history.steps_to_criterion[k]
    assert np.isnan(history.loss[k, stop:]).all() and np.isfinite(history.loss[k, :stop]).all()


def test_ensemble_training_equals_single_network_training():
    task = FlipFlopTask(n_bits=2, n_steps=20, p_pulse=0.1)
    cfg = TrainConfig(n_steps=15, batch_size=8, lr=(1e-2, 3e-3, 1e-2), eval_every=5,
                      early_stop=False)
    config = RateRNNConfig(2, 10, 2, tau_init=2.0, tau_jitter=1.0, train_tau=True)
    ens = Ensemble(config, n_networks=3, seed=4).double()
    train(ens, task, cfg, seed=7)
    single = RateRNN(config, seed=5).double()
    train(single, task, TrainConfig(**{**cfg.__dict__, "lr": 3e-3}), seed=7)
    for name, p in single.state_dict().items():
        torch.testing.assert_close(p[0], ens.state_dict()[name][1], rtol=1e-9, atol=1e-11)


def test_same_seed_same_result():
    task = FlipFlopTask(n_bits=2, n_steps=20)
    config = RateRNNConfig(2, 8, 2, rec_noise_std=0.05)
    results = []
    for _ in range(2):
        model = Ensemble(config, n_networks=2, seed=1)
        h = train(model, task, TrainConfig(n_steps=10, batch_size=4, eval_every=5), seed=3)
        results.append((model.W_rec.detach().clone(), h.loss))
    assert torch.equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_diverging_network_is_marked_failed_and_others_continue():
    task = FlipFlopTask(n_bits=2, n_steps=30)
    model = Ensemble(RateRNNConfig(2, 16, 2, nonlinearity="relu", init_gain=0.5), n_networks=3)
    cfg = TrainConfig(n_steps=60, batch_size=16, optimizer="sgd", momentum=0.0,
                      lr=(1e-2, 1e3, 1e-2), grad_clip=0.0, eval_every=10, early_stop=False)
    history = train(model, task, cfg, seed=0)
    assert history.failed.tolist() == [False, True, False]
    assert np.isfinite(history.loss[[0, 2], -1]).all()
    assert torch.isfinite(model.W_rec[[0, 2]]).all()
    # the survivors trained exactly as they would have without the diverging network
    alone = Ensemble(RateRNNConfig(2, 16, 2, nonlinearity="relu", init_gain=0.5), seeds=[0, 2])
    train(alone, task, TrainConfig(**{**cfg.__dict__, "lr": (1e-2, 1e-2)}), seed=0)
    torch.testing.assert_close(alone.W_rec, model.W_rec[[0, 2]], rtol=1e-5, atol=1e-6)


def test_parity_multihead_curriculum_advances_to_n5():
    task = ParityTask(n_values=(2, 3, 4, 5))
    cfg = RateRNNConfig(1, 64, 8, nonlinearity="leaky_relu", tau_init=1.0, tau_jitter=1.0,
                        train_tau=True, zero_diagonal=True, h0_scale=0.1)
    model = Ensemble(cfg, n_networks=2, seed=0)
    tc = TrainConfig(n_steps=1500, batch_size=128, lr=3e-3, eval_every=25, eval_batch_size=512,
                     noise=False)
    history = train(model, task, tc, seed=0, curriculum="multi")
    ds = history.to_xarray()
    assert (ds.max_n.isel(eval=-1) == 5).all()
    assert history.reached.all()
    assert ds.tau.sizes == {"network": 2, "eval": ds.sizes["eval"], "unit": 64}
    assert (ds.tau >= 1.0).all()
    assert not np.allclose(ds.tau.isel(eval=0), ds.tau.isel(eval=-1))  # tau was trained


@pytest.mark.parametrize(
    "kwargs,name",
    [({"n_steps": 0}, "n_steps"), ({"lr": -1.0}, "lr"), ({"optimizer": "lbfgs"}, "optimizer"),
     ({"grad_clip": -1.0}, "grad_clip"), ({"momentum": 1.5}, "momentum")],
)
def test_bad_train_config(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_mismatched_model_and_task():
    model = Ensemble(RateRNNConfig(2, 8, 2))
    with pytest.raises(ValueError, match="n_inputs"):
        train(model, FlipFlopTask(n_bits=3), TrainConfig(n_steps=1))
    with pytest.raises(ValueError, match="lr"):
        train(Ensemble(RateRNNConfig(3, 8, 3), n_networks=2), FlipFlopTask(n_bits=3),
              TrainConfig(n_steps=1, lr=(1e-3, 1e-3, 1e-3)))
