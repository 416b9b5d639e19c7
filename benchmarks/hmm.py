"""HMM emulation: K networks trained at once vs the idiomatic per-network loop.

Trains K noise-driven ReLU RNNs without biases to emit the symbol statistics of the paper's
2-state linear-chain HMM (Torre, Viscione, Pompe, Grewe & Mante, "Mechanistic interpretability
of RNNs emulating hidden Markov models", NeurIPS 2025) for the same number of steps, two ways:

* **dynrnn**: one :func:`dynrnn.training.hmm_emulator` of K networks trained by
  :func:`dynrnn.training.train_hmm_emulator` (one batched run over ``[K, B, T, I]`` noise, one
  batched log-domain Sinkhorn solve over ``[K, B, T*3]``, per-network Adam and clipping);
* **baseline** (the paper's setup, as the authors' code does it): for each network its own
  ``torch.nn.RNN(nonlinearity="relu", bias=False)`` + ``nn.Linear(bias=False)`` readout,
  ``torch.nn.functional.gumbel_softmax(hard=True)``, geomloss
  ``SamplesLoss("sinkhorn", p=2, blur=0.2)``, ``torch.optim.Adam(lr=1e-3)`` and
  ``clip_grad_norm_(0.9)``, one network after another (timed on ``--baseline-networks`` of the
  K and reported per network).

Sizes: the paper's (hidden 150, noise input 100, 3 symbols, T = 30); batch 1024 by default
(the paper's 4096 needs four [K, 4096, 4096] cost matrices, ~4 GB for K = 16 in float32, and
minutes per step on a CPU: pass ``--batch 4096`` on a big machine). Prints the per-network
time per step of both, their ratio, the time of the Sinkhorn solve alone (dynrnn's against
geomloss' batched backend and the per-network geomloss loop), and the final Sinkhorn loss of
both (mean over networks, each network's emissions against a fresh HMM batch, measured with
geomloss for both).

Run: ``python benchmarks/hmm.py [--quick] [--networks 16] [--steps 10] [--batch 1024]``
(needs ``pip install geomloss``, in the ``[bench]`` extra).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from dynrnn.tasks import linear_chain_hmm, sample_hmm
from dynrnn.training import HMMTrainConfig, emit, hmm_emulator, train_hmm_emulator


def dynrnn_run(hmm, K, N, I, B, steps):
    model = hmm_emulator(K, N, I, seed=0)
    hist = train_hmm_emulator(model, hmm, HMMTrainConfig(n_steps=steps, batch_size=B), seed=0)
    wall = hist.wall_time
    per_step = (wall[-1] - wall[0]) / max(len(wall) - 1, 1)  # first step = warm-up
    return model, per_step / K


def baseline_run(hmm, n_models, N, I, B, steps):
    from geomloss import SamplesLoss

    loss_fn = SamplesLoss("sinkhorn", p=2, blur=0.2)
    T, O = hmm.seq_len, hmm.n_symbols
    gen = torch.Generator().manual_seed(0)
    models, times = [], []
    for k in range(n_models):
        torch.manual_seed(k)
        rnn = torch.nn.RNN(I, N, nonlinearity="relu", bias=False, batch_first=True)
        lin = torch.nn.Linear(N, O, bias=False)
        params = list(rnn.parameters()) + list(lin.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        t_start = None
        for step in range(steps):
            if step == 1:
                t_start = time.perf_counter()  # first step = warm-up
            _, sym = sample_hmm(hmm, B, gen)
            target = torch.nn.functional.one_hot(sym, O).float().reshape(B, T * O)
            x = torch.randn(B, T, I)
            h0 = torch.randn(1, B, N)
            out, _ = rnn(x, h0)
            y = torch.nn.functional.gumbel_softmax(lin(out), tau=1.0, hard=True)
            loss = loss_fn(y.reshape(B, T * O), target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.9)
            opt.step()
        times.append((time.perf_counter() - t_start) / max(steps - 1, 1))
        models.append((rnn, lin))
    return models, sum(times) / len(times)


@torch.no_grad()
def final_loss_dynrnn(model, hmm, B):
    from geomloss import SamplesLoss

    loss_fn = SamplesLoss("sinkhorn", p=2, blur=0.2)
    T, O = hmm.seq_len, hmm.n_symbols
    sym = emit(model, B, T, seed=123)
    _, target = sample_hmm(hmm, B, 456)
    tgt = torch.nn.functional.one_hot(target, O).float().reshape(B, T * O)
    y = torch.nn.functional.one_hot(sym, O).float().reshape(model.n_networks, B, T * O)
    return [float(loss_fn(y[k], tgt).detach()) for k in range(model.n_networks)]


@torch.no_grad()
def final_loss_baseline(models, hmm, B, I, N):
    from geomloss import SamplesLoss

    loss_fn = SamplesLoss("sinkhorn", p=2, blur=0.2)
    T, O = hmm.seq_len, hmm.n_symbols
    _, target = sample_hmm(hmm, B, 456)
    tgt = torch.nn.functional.one_hot(target, O).float().reshape(B, T * O)
    torch.manual_seed(123)
    out = []
    for rnn, lin in models:
        h, _ = rnn(torch.randn(B, T, I), torch.randn(1, B, N))
        y = torch.nn.functional.gumbel_softmax(lin(h), tau=1.0, hard=True)
        out.append(float(loss_fn(y.reshape(B, T * O), tgt).detach()))
    return out


def solver_times(K, B, D, repeats=3):
    """Forward + backward of the Sinkhorn divergence alone on one-hot data ``[K, B, D]``:
    dynrnn (one target cloud shared by the K networks, and K target clouds), geomloss' batched
    tensorized backend, and a loop of K geomloss calls (best of ``repeats``)."""
    from geomloss import SamplesLoss

    from dynrnn.training import sinkhorn_divergence

    g = torch.Generator().manual_seed(0)
    onehot = torch.nn.functional.one_hot
    x = onehot(torch.randint(0, 3, (K, B, D // 3), generator=g), 3).float().reshape(K, B, D)
    x.requires_grad_()
    y = onehot(torch.randint(0, 3, (1, B, D // 3), generator=g), 3).float().reshape(1, B, D)
    yK = y.expand(K, -1, -1).contiguous()
    loss = SamplesLoss("sinkhorn", p=2, blur=0.2, backend="tensorized")

    def best(f):
        f()
        out = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            out = min(out, time.perf_counter() - t)
        return out

    return {
        "dynrnn (shared target)": best(lambda: sinkhorn_divergence(x, y).sum().backward()),
        "dynrnn (K targets)": best(lambda: sinkhorn_divergence(x, yK).sum().backward()),
        "geomloss batched": best(lambda: loss(x, yK).sum().backward()),
        "geomloss loop": best(lambda: [loss(x[k], y[0]).backward() for k in range(K)]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=16)
    p.add_argument("--baseline-networks", type=int, default=4,
                   help="networks trained (and timed) by the per-network loop")
    p.add_argument("--units", type=int, default=150)
    p.add_argument("--noise", type=int, default=100)
    p.add_argument("--seq-len", type=int, default=30)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--quick", action="store_true",
                   help="small sizes: 4 networks, 32 units, 10 noise channels, batch 128")
    a = p.parse_args(argv)
    if a.quick:
        a.networks, a.baseline_networks, a.units, a.noise, a.batch, a.steps = 4, 2, 32, 10, 128, 5
    K, N, I, B = a.networks, a.units, a.noise, a.batch
    hmm = linear_chain_hmm(2, seq_len=a.seq_len, n_noise=I)
    print(f"HMM emulation (2-state linear chain, T={a.seq_len}), K={K} networks of {N} ReLU "
          f"units, {I} noise inputs, batch {B}, {a.steps} steps; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    model, t_ours = dynrnn_run(hmm, K, N, I, B, a.steps)
    nb = min(a.baseline_networks, K)
    models, t_base = baseline_run(hmm, nb, N, I, B, a.steps)
    l_ours = final_loss_dynrnn(model, hmm, B)
    l_base = final_loss_baseline(models, hmm, B, I, N)
    print(f"dynrnn   (K={K} at once):           {1e3 * t_ours:9.1f} ms per network and step")
    print(f"baseline (nn.RNN + geomloss, x{nb}): {1e3 * t_base:9.1f} ms per network and step")
    print(f"per-network time ratio baseline / dynrnn: {t_base / t_ours:.2f}")
    times = solver_times(K, min(B, 512), a.seq_len * 3)
    ref = times["geomloss batched"]
    print(f"Sinkhorn solve alone (K={K}, {min(B, 512)} points, forward + backward):")
    for name, t in times.items():
        print(f"  {name:24s} {t:8.3f} s   geomloss batched / this = {ref / t:.2f}")
    print(f"final Sinkhorn loss (geomloss, fresh batch of {B}): dynrnn mean "
          f"{sum(l_ours) / len(l_ours):.3f} (min {min(l_ours):.3f}, max {max(l_ours):.3f}); "
          f"baseline mean {sum(l_base) / len(l_base):.3f} (min {min(l_base):.3f}, "
          f"max {max(l_base):.3f})")


if __name__ == "__main__":
    main()
