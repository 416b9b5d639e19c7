"""Teacher forcing for DSR: fused rollout = autograd reference, bounded GTF gradients where BPTT
explodes, aGTF alpha rule, STF interval, RAdam, training smoke test, bad input."""

import math

import numpy as np
import pytest
import torch

from dynrnn.models import (
    ALRNN,
    PLRNN,
    ALRNNConfig,
    PLRNNConfig,
    ShallowPLRNN,
    ShallowPLRNNConfig,
)
from dynrnn.tasks.chaotic import ChaoticSystemTask
from dynrnn.training.gtf import (
    GTFConfig,
    estimate_alpha,
    estimate_forcing_interval,
    gtf_loss,
    sample_windows,
    train_gtf,
)
from dynrnn.training.optim import EnsembleOptimizer


@pytest.fixture(scope="module")
def lorenz():
    tr = ChaoticSystemTask("lorenz63", n_steps=3000, dt=0.01, noise=0.0).sample(1, seed=0)
    return tr.targets[0]


MODELS = [
    lambda: ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=16, clipped=True), n_networks=3),
    lambda: ShallowPLRNN(ShallowPLRNNConfig(5, 3, n_hidden=16), n_networks=3),
    lambda: ALRNN(ALRNNConfig(6, 3, n_pwl=2), n_networks=3),
    lambda: PLRNN(PLRNNConfig(4, 3), n_networks=3),
    lambda: PLRNN(PLRNNConfig(4, 3, observation="affine"), n_networks=3),
]


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("forcing", ["gtf", "stf", "none"])
def test_fused_rollout_equals_autograd(make, forcing, lorenz):
    m = make().double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    win = sample_windows(lorenz[None].double(), 3, 4, 41, g)
    alpha = torch.tensor([0.1, 0.5, 0.0], dtype=torch.float64)
    out = []
    for backend in ("auto", "reference"):
        m.zero_grad()
        loss, forced = gtf_loss(m, win, alpha, forcing=forcing, tau=7, backend=backend,
                                return_states=True)
        loss.sum().backward()
        out.append((loss.detach(), forced, [p.grad.clone() for p in m.parameters()]))
    assert torch.allclose(out[0][0], out[1][0], rtol=1e-12)
    assert torch.allclose(out[0][1], out[1][1], rtol=1e-12, atol=1e-12)
    for a, b in zip(out[0][2], out[1][2]):
        assert float((a - b).norm() / b.norm().clamp_min(1e-300)) < 1e-10


def _tent_map_alrnn():
    """AL-RNN whose invariant line z2 = -z1 carries the tent map x' = 1 - 2|x| (Lyapunov
    exponent log 2): chaotic, so BPTT gradients grow like 2^T."""
    m = ALRNN(ALRNNConfig(2, 2, n_pwl=2)).double()
    with torch.no_grad():
        m.A.zero_()
        m.W.copy_(torch.tensor([[[-2.0, -2.0], [2.0, 2.0]]]))
        m.h.copy_(torch.tensor([[1.0, -1.0]]))
    return m


def _grad_norm(m, win, alpha, forcing="gtf"):
    m.zero_grad()
    gtf_loss(m, win, alpha, forcing=forcing).sum().backward()
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in m.parameters()))


def test_gtf_bounds_gradients_where_bptt_explodes():
    m = _tent_map_alrnn()
    x = torch.empty(3000, 1, dtype=torch.float64)
    x[0] = 0.1234
    for t in range(1, 3000):
        x[t] = 1 - 2 * x[t - 1].abs()
    data = torch.cat([x, -x], 1)[None] + 1e-3 * torch.randn(1, 3000, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    # aGTF estimate: kappa = geometric mean of ||J|| = 2 sqrt(2) -> alpha* = 1 - 1/(2 sqrt 2)
    win = sample_windows(data, 1, 8, 31, g)
    _, forced = gtf_loss(m, win, 0.0, return_states=True)
    a_star = float(estimate_alpha(m, forced)[0])
    assert a_star == pytest.approx(1 - 1 / (2 * math.sqrt(2)), rel=1e-6)
    bptt, gtf = [], []
    for S in (10, 20, 40):
        win = sample_windows(data, 1, 8, S + 1, torch.Generator().manual_seed(S))
        bptt.append(_grad_norm(m, win, 0.0, "none"))
        gtf.append(_grad_norm(m, win, a_star))
    assert bptt[2] / bptt[0] > 1e6  # exponential growth in the sequence length
    assert max(gtf) < 1.0 and bptt[2] > 1e6 * max(gtf)  # bounded with alpha >= alpha*
    assert gtf[2] / gtf[0] < 1e3  # no exponential growth (BPTT: ~2^30)


def test_agtf_alpha_rule(lorenz):
    m = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=16), n_networks=2)
    cfg = GTFConfig(n_iterations=12, seq_len=20, batch_size=4, forcing="agtf", agtf_every=5)
    hist = train_gtf(m, lorenz, cfg)
    alpha = hist.as_arrays()["alpha"]
    assert alpha.shape == (12, 2)
    assert np.all((alpha >= 0) & (alpha <= 1))
    # the first estimate replaces alpha only if larger; otherwise alpha decays by 0.1% towards it
    assert np.all(alpha[0] <= 1.0) and np.all(np.diff(alpha[:5], axis=0) == 0)
    # estimate = 1 - 1 / geometric mean of spectral norms
    win = sample_windows(lorenz[None], 2, 4, 21, torch.Generator().manual_seed(0))
    _, forced = gtf_loss(m, win, 0.3, return_states=True)
    J = m.jacobian(forced.reshape(2, -1, 3)).detach().double()
    kappa = torch.linalg.matrix_norm(J, ord=2).log().mean(1).exp()
    assert torch.allclose(estimate_alpha(m, forced).double(), (1 - 1 / kappa).clamp(min=0),
                          atol=1e-5)


def test_forcing_interval_estimates():
    t = np.arange(5000)
    x = np.stack([np.sin(2 * np.pi * t / 100), np.cos(2 * np.pi * t / 100)], 1)
    assert estimate_forcing_interval(x, "ac") in range(24, 27)  # first zero crossing: P/4
    tau = estimate_forcing_interval(x + 0.01 * np.random.default_rng(0).standard_normal(x.shape),
                                    "mi", max_lag=80)
    assert 15 <= tau <= 35  # first MI minimum near a quarter period


def test_radam_matches_torch():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3, 4, 5))
    q = torch.nn.Parameter(p.detach()[2].clone())
    opt = EnsembleOptimizer([p], kind="radam", lr=1e-2)
    ref = torch.optim.RAdam([q], lr=1e-2)
    for _ in range(20):
        grad = torch.randn(3, 4, 5)
        p.grad, q.grad = grad.clone(), grad[2].clone()
        opt.step(torch.ones(3, dtype=torch.bool))
        ref.step()
    assert torch.allclose(p.detach()[2], q.detach(), atol=1e-6)


def test_training_reduces_loss(lorenz):
    m = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=32, clipped=True), n_networks=2)
    cfg = GTFConfig(n_iterations=150, seq_len=30, batch_size=8, lr=1e-2, lr_end=1e-3,
                    alpha=0.5, noise_std=0.01)
    hist = train_gtf(m, lorenz, cfg)
    loss = hist.as_arrays()["loss"]
    assert loss.shape == (150, 2)
    assert np.all(loss[-10:].mean(0) < 0.5 * loss[:5].mean(0))
    stf = train_gtf(ALRNN(ALRNNConfig(5, 3, n_pwl=2)), lorenz,
                    GTFConfig(n_iterations=3, seq_len=30, batch_size=2, forcing="stf"))
    assert stf.tau is not None and stf.tau >= 1


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_stf_training_equals_plain_loop(lorenz, noise):
    """train_gtf with sparse TF follows, step for step, a plain autograd loop written from the
    AL-RNN reference procedure (first state [x0; L x0]; the readout units replaced by the data
    every tau steps; MSE of the readout units; torch RAdam with exponential decay; with noise,
    fresh Gaussian noise added to each sampled batch, forcing signal and targets alike)."""
    from dynrnn._validation import resolve_generator

    M, P, N, S, tau, its = 7, 2, 3, 40, 8, 60
    data = lorenz[:2000].float()
    m = ALRNN(ALRNNConfig(M, N, n_pwl=P), seed=5)
    A, W, h, L = (getattr(m, n)[0].detach().clone().requires_grad_()
                  for n in ("A", "W", "h", "L_init"))
    opt = torch.optim.RAdam([A, W, h, L], lr=1e-2)
    gen = resolve_generator(1)
    decay = (1e-4 / 1e-2) ** (1.0 / (its - 1))
    for it in range(its):
        for group in opt.param_groups:
            group["lr"] = 1e-2 * decay**it
        win = sample_windows(data[None], 1, 4, S + 1, gen)
        if noise:
            win = win + noise * torch.randn(win.shape, generator=gen, dtype=win.dtype)
        x, y = win[0, :, :-1], win[0, :, 1:]
        z, preds = torch.cat([x[:, 0], x[:, 0] @ L.T], 1), []
        for t in range(S):
            if t % tau == 0 and t > 0:
                z = torch.cat([x[:, t], z[:, N:]], 1)
            lin = torch.cat([z[:, : M - P], torch.relu(z[:, M - P:])], 1)
            z = A * z + lin @ W.T + h
            preds.append(z[:, :N])
        loss = ((torch.stack(preds, 1) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    hist = train_gtf(m, data, GTFConfig(n_iterations=its, seq_len=S, batch_size=4, forcing="stf",
                                        tau=tau, lr=1e-2, lr_end=1e-4, grad_clip=None, seed=1,
                                        noise_std=noise, noise_on_targets=True))
    assert hist.loss[-1][0] == pytest.approx(float(loss), rel=1e-4)
    for name, ref in (("A", A), ("W", W), ("h", h), ("L_init", L)):
        assert torch.allclose(getattr(m, name)[0].detach(), ref.detach(), atol=1e-5), name


def test_best_checkpoint_restores_each_networks_best(lorenz):
    from dynrnn.analyses import BestCheckpoint
    from dynrnn.analyses.dsr_metrics import evaluate_reconstruction

    m = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=16, clipped=True), n_networks=3)
    ckpt = BestCheckpoint(lorenz, every=10, max_samples=1500)
    train_gtf(m, lorenz, GTFConfig(n_iterations=40, seq_len=30, batch_size=4, lr=2e-2),
              callback=ckpt)
    assert [h[0] for h in ckpt.history] == [10, 20, 30, 40]
    scores = np.stack([h[1] for h in ckpt.history])
    assert np.allclose(ckpt.best_score, scores.min(0))
    assert np.array_equal(ckpt.best_iteration, 10 * (scores.argmin(0) + 1))
    assert ckpt.restore(m).all()
    again = evaluate_reconstruction(m, lorenz[:1500], lyapunov=False, pe_steps=1)
    assert np.allclose(again.D_stsp.values, ckpt.best_score)
    ds = ckpt.to_xarray()
    assert ds.D_stsp.dims == ("network", "evaluation") and ds.D_stsp.shape == (3, 4)
    assert list(ds.iteration.values) == [10, 20, 30, 40]
    assert np.array_equal(ds.best_iteration.values, ckpt.best_iteration)
    with pytest.raises(ValueError, match="every"):
        BestCheckpoint(lorenz, every=0)
    with pytest.raises(ValueError, match="metric"):
        BestCheckpoint(lorenz, metric="loss")


def test_callback_stops():
    m = PLRNN(PLRNNConfig(3, 3))
    hist = train_gtf(m, np.random.default_rng(0).standard_normal((100, 3)),
                     GTFConfig(n_iterations=50, seq_len=10, batch_size=2),
                     callback=lambda it, model, h: it == 4)
    assert hist.stopped and len(hist.loss) == 5


def test_bad_input(lorenz):
    m = PLRNN(PLRNNConfig(3, 3))
    cfg = GTFConfig(n_iterations=1, seq_len=50)
    bad = lorenz.clone()
    bad[10, 1] = float("inf")  # NaN is a missing sample (tests/test_reconstruct.py); inf is not
    with pytest.raises(ValueError, match="inf"):
        train_gtf(m, bad, cfg)
    with pytest.raises(ValueError, match="all NaN"):
        train_gtf(m, torch.full_like(lorenz, float("nan")), cfg)
    with pytest.raises(ValueError, match="time_budget"):
        GTFConfig(time_budget=0)
    with pytest.raises(ValueError, match="time steps"):
        train_gtf(m, lorenz[:30], cfg)
    with pytest.raises(ValueError, match="N=3"):
        train_gtf(m, lorenz[:, :2], cfg)
    with pytest.raises(ValueError, match="shape"):
        train_gtf(m, lorenz[None, None], cfg)
    with pytest.raises(ValueError, match="alpha"):
        GTFConfig(alpha=1.5)
    with pytest.raises(ValueError, match="forcing"):
        GTFConfig(forcing="teacher")
    with pytest.raises(ValueError, match="noise_on_targets"):
        GTFConfig(noise_on_targets="yes")
