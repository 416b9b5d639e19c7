"""Kernel backends vs the ``reference`` backend (the plain autograd loop), same run, same inputs.

Rate-RNN ensemble (tanh, per-neuron tau "inside" leak, forward + backward of a loss on states
and outputs), default K=256 networks, N=64 units, B=32 trials, T=100 steps, float32:

* on the CPU: ``reference``, ``cpu-torch`` (fused torch loop) and ``cpu`` (C kernel), as ratios
  to ``reference``, and the achieved GFLOP/s of the recurrent matmuls (forward ``2 K B T N^2``,
  backward ``4 K B T N^2``) as a fraction of this machine's float32 ``torch.mm`` peak;
* where a CUDA GPU is available: ``triton`` vs ``reference`` and ``cpu-torch`` in PyTorch eager
  on that GPU, with the achieved FLOP rate as a fraction of the GPU's measured matmul peak, the
  GPU named next to the figures.

Run: ``python benchmarks/kernels.py [--networks 256] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from dynrnn.kernels import rate_rnn, triton_available


def matmul_peak(device: str, n: int = 4096, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def make_inputs(K, T, B, N, I, O, device, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(device)

    leaves = [
        r(K, N, I, scale=0.3),
        r(K, N, scale=0.1),
        r(K, N, N, scale=1.2 * N**-0.5),
        (0.2 + 0.8 * torch.rand(K, 1, N, generator=g)).to(device),
        r(K, O, N, scale=N**-0.5),
        r(K, O),
    ]
    for t in leaves:
        t.requires_grad_(True)
    return r(1, T, B, I), r(K, B, N, scale=0.5), leaves


def time_backend(backend, x, h0, leaves, device, repeats):
    W_in, b, W_T, alpha, W_out, b_out = leaves

    def once():
        for t in leaves:
            t.grad = None
        H, Y = rate_rnn(x, h0, W_in, b, W_T, alpha, W_out, b_out, None, "tanh", "inside",
                        backend=backend)
        (Y.square().mean() + H.mean()).backward()

    once()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        once()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def report(device, backends, K, T, B, N, repeats, name):
    x, h0, leaves = make_inputs(K, T, B, N, 3, 3, device)
    peak = matmul_peak(device)
    flops = 6 * K * B * T * N * N
    print(f"\n== {name}: K={K}, N={N}, B={B}, T={T}, float32, fwd+bwd, median of {repeats} ==")
    print(f"float32 matmul peak (torch.mm 4096^2): {peak:.1f} GFLOP/s")
    times = {be: time_backend(be, x, h0, leaves, device, repeats) for be in backends}
    ref = times["reference"]
    for be, t in times.items():
        rate = flops / t / 1e9
        print(f"{be:>10}: {t * 1e3:9.1f} ms   {ref / t:6.1f}x reference   "
              f"{rate:7.1f} GFLOP/s = {rate / peak:6.1%} of peak")


def report_hebbian_and_spiking(repeats):
    """Three-factor online readout (K=64 readouts, T=2000 steps, F=500 features, float64),
    and the Izhikevich loop (800E/200I, 0.5 ms, 1000 steps, 4 trials): fast CPU backends vs
    their reference loops."""
    from dynrnn.kernels.hebbian import three_factor_online
    from dynrnn.kernels.izhikevich import izhikevich_fast, izhikevich_reference
    from dynrnn.models.spiking import IzhikevichConfig, IzhikevichReservoir

    print("\n== Hebbian / spiking loops on the CPU (median of repeats) ==")
    g = torch.Generator().manual_seed(0)
    K, T, F = 64, 2000, 500
    r = torch.rand(K, T, F, generator=g, dtype=torch.float64)
    target = (torch.rand(K, T, generator=g) < 0.1).double()
    gate = torch.ones(K, T, dtype=torch.float64)
    w0 = torch.zeros(K, F, dtype=torch.float64)
    times = {}
    for be in ("reference", "cpu"):
        three_factor_online(w0, r[:, :10], target[:, :10], gate[:, :10], lr=0.01, lam=0.9,
                            backend=be)  # compile (once per machine; cached) outside the timing
        ts = []
        for _ in range(max(1, repeats // 2)):
            t = time.perf_counter()
            three_factor_online(w0, r, target, gate, lr=0.01, lam=0.9, backend=be)
            ts.append(time.perf_counter() - t)
        times[be] = statistics.median(ts)
    print(f"three-factor online (K={K}, T={T}, F={F}): reference {times['reference']:.3f} s, "
          f"cpu {times['cpu']:.3f} s -> {times['reference'] / times['cpu']:.1f}x")

    model = IzhikevichReservoir(IzhikevichConfig(n_inputs=0, n_outputs=0, dt=0.5), seed=0)
    p, c = model.prepare_simulation(), model._cfg()
    state = model.split_state(model.init_state(4, generator=0))
    noise = model.sample_noise(4, 1000, torch.Generator().manual_seed(1))
    times = {}
    for name, fn in (("reference", izhikevich_reference), ("cpu", izhikevich_fast)):
        fn(state, p, c, 10, noise=noise[:, :10])  # compile (cached) outside the timing
        ts = []
        for _ in range(max(1, repeats // 2)):
            t = time.perf_counter()
            fn(state, p, c, 1000, noise=noise)
            ts.append(time.perf_counter() - t)
        times[name] = statistics.median(ts)
    print(f"Izhikevich 800E/200I x 4 trials x 1000 steps: reference {times['reference']:.3f} s,"
          f" cpu {times['cpu']:.3f} s -> {times['reference'] / times['cpu']:.1f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=256)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    print(f"machine: {platform.machine()} {platform.processor()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    report("cpu", ["reference", "cpu-torch", "cpu"], a.networks, a.steps, a.batch, a.units,
           a.repeats, "CPU")
    report_hebbian_and_spiking(a.repeats)
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
        backends = ["reference", "cpu-torch"] + (["triton"] if triton_available() else [])
        report("cuda", backends, a.networks, a.steps, a.batch, a.units, a.repeats,
               f"GPU {gpu} (cpu-torch = fused torch loop in eager mode)")
    else:
        print("\nno CUDA GPU here: the Triton kernels are not timed (tests run them in the "
              "interpreter)")


if __name__ == "__main__":
    main()
