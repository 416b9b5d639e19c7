"""Data-constrained fitting of K students at once vs one student at a time.

Each student is a 64-unit tanh rate RNN fitted to 32 recorded units of a random teacher
(3 inputs, 64 units, gain 1.2) on 32 trials of 100 steps:

* **RLS** (:func:`dynrnn.training.fit_to_activity_rls`, 2 epochs, batch 8): one call with an
  ensemble of K students vs K calls with one student each (the per-network loop a user would
  write around a single-network RLS fit);
* **BPTT** (:func:`dynrnn.training.fit_to_activity`, 20 steps, batch 32): the same two ways.

Both sides run the same code on the same data, in float32, in the same process; the script
prints the wall-clock time per student and the ratio (per-network loop / ensemble). Results
are identical either way (network k of the ensemble equals the single fit with seed ``10 + k``
up to float rounding of batched matmuls).

Run: ``python benchmarks/data_constrained.py [--networks 16] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from dynrnn.models import RateRNN, RateRNNConfig, run
from dynrnn.training import RLSActivityConfig, TrainConfig, fit_to_activity, fit_to_activity_rls


def recording(n_trials=32, T=100, N=64, M=32, I=3):
    teacher = RateRNN(RateRNNConfig(I, N, 1, init_gain=1.2), seed=123)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n_trials, T, I, generator=g) < 0.05).float() * torch.sign(
        torch.randn(n_trials, T, I, generator=g))
    with torch.no_grad():
        S, _ = run(teacher, x)
    return S[0][..., :M].clone(), x


def fit(kind, students, A, x):
    rec = np.arange(A.shape[-1])
    if kind == "rls":
        fit_to_activity_rls(students, A, x, recorded=rec, h0="zeros",
                            config=RLSActivityConfig(n_epochs=2, batch_size=8, progress=False))
    else:
        fit_to_activity(students, A, x, recorded=rec, h0="zeros",
                        config=TrainConfig(n_steps=20, batch_size=32, lr=3e-3, eval_every=20,
                                           criterion=0.0, noise=False, progress=False))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    K = args.networks
    A, x = recording()
    cfg = RateRNNConfig(3, 64, 1)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), K = {K} students")
    for kind in ("rls", "bptt"):
        fit(kind, RateRNN(cfg, n_networks=1, seed=10), A, x)  # warm-up (kernel build)
        t_ens = timed(lambda kind=kind: fit(kind, RateRNN(cfg, n_networks=K, seed=10), A, x))
        t_loop = timed(lambda kind=kind: [
            fit(kind, RateRNN(cfg, n_networks=1, seed=10 + k), A, x) for k in range(K)])
        print(f"{kind:>4}: ensemble {1e3 * t_ens / K:8.1f} ms/student   per-network loop "
              f"{1e3 * t_loop / K:8.1f} ms/student   ratio (loop / ensemble) "
              f"{t_loop / t_ens:5.1f}x")


if __name__ == "__main__":
    main()
