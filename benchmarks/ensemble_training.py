"""Ensemble training vs the idiomatic per-network PyTorch loop.

Trains K flip-flop networks (tanh, 64 units, batch 32, T = 100, 3 bits) for a fixed number of
iterations:

* **dynrnn**: one ``Ensemble`` of K networks, ``dynrnn.training`` machinery (masked MSE per
  network, per-network Adam and gradient clipping) — timed per iteration;
* **baseline**: the idiomatic PyTorch loop over K separate models, each ``nn.RNN`` +
  ``nn.Linear`` + its own ``torch.optim.Adam`` (timed on a subset of the K models and reported
  per network).

Prints the per-network time ratio, and the achieved GFLOP/s of the recurrent matmuls
(forward ``2 K B T N^2`` + backward ``4 K B T N^2``) as a fraction of this machine's float32
matmul peak measured in the same run (a large square ``torch.mm``).

Run: ``python benchmarks/ensemble_training.py [--networks 256] [--iters 10]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from dynrnn.models import Ensemble, RateRNNConfig, run
from dynrnn.tasks import FlipFlopTask
from dynrnn.training import EnsembleOptimizer, masked_mse, per_network_grad_norm


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def time_dynrnn(K, N, trials, iters):
    model = Ensemble(RateRNNConfig(3, N, 3), n_networks=K, seed=0)
    opt = EnsembleOptimizer(list(model.parameters()), kind="adam", lr=1e-3)
    active = torch.ones(K, dtype=torch.bool)

    def one_iter():
        _, y = run(model, trials.inputs, return_states=False)
        loss = masked_mse(y, trials.targets, trials.mask)
        opt.zero_grad()
        loss.sum().backward()
        scale = (1.0 / (per_network_grad_norm(opt.params) + 1e-6)).clamp(max=1.0)
        opt.step(active, scale)

    one_iter()  # warm-up
    return _best_of(one_iter, iters)


def _best_of(fn, repeats):
    """Median wall time of ``fn`` over ``repeats`` calls (robust to a busy machine)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_baseline(n_models, N, trials, iters):
    torch.manual_seed(0)
    models = [
        (torch.nn.RNN(3, N, batch_first=True), torch.nn.Linear(N, 3)) for _ in range(n_models)
    ]
    opts = [
        torch.optim.Adam(list(r.parameters()) + list(l.parameters()), lr=1e-3) for r, l in models
    ]
    x, y, m = trials.inputs, trials.targets, trials.mask.float()

    def one_iter():
        for (rnn, lin), opt in zip(models, opts):
            out = lin(rnn(x)[0])
            loss = ((out - y) ** 2 * m).sum() / m.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(rnn.parameters()) + list(lin.parameters()), 1.0)
            opt.step()

    one_iter()
    return _best_of(one_iter, iters) / n_models


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=256)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument(
        "--baseline-models",
        type=int,
        default=32,
        help="how many of the K separate models the baseline loop times",
    )
    a = p.parse_args()
    K, N, B, T = a.networks, a.units, a.batch, a.steps
    trials = FlipFlopTask(n_bits=3, n_steps=T, p_pulse=0.05).sample(B, seed=0)

    peak = matmul_peak()
    t_ens = time_dynrnn(K, N, trials, a.iters)
    t_base = time_baseline(min(a.baseline_models, K), N, trials, max(2, a.iters // 2))
    flops = 6 * K * B * T * N * N
    achieved = flops / t_ens / 1e9
    floor = flops / (peak * 1e9) / K

    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"float32 matmul peak (torch.mm 2048^2): {peak:.1f} GFLOP/s")
    print(f"K={K} networks, N={N}, batch {B}, T={T}, {a.iters} iterations")
    print(
        f"baseline (nn.RNN + nn.Linear + Adam per model, {min(a.baseline_models, K)} models "
        f"timed, median): {t_base * 1e3:.2f} ms per network per iteration"
    )
    print(
        f"dynrnn Ensemble (median): {t_ens * 1e3:.1f} ms per iteration = "
        f"{t_ens / K * 1e3:.3f} ms per network per iteration"
    )
    print(f"matmul floor at peak: {floor * 1e3:.3f} ms per network per iteration")
    print(f"recurrent matmuls: {achieved:.1f} GFLOP/s = {achieved / peak:.1%} of peak")
    print(f"RATIO per network (baseline / dynrnn): {t_base / (t_ens / K):.1f}x")


if __name__ == "__main__":
    main()
