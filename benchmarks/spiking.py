"""Spiking and echo-state reservoirs vs Brian2, reservoirpy and a naive per-step torch loop.

1. The classic Izhikevich (2003) network: 800 E + 200 I neurons, dense random weights
   (0.5 U(0,1) from E, -U(0,1) from I), thalamic noise (5 / 2 per 1 ms sample), 0.5 ms steps,
   1 s (2000 steps), float64:

   * **dynrnn**: ``IzhikevichReservoir.simulate`` (compiled event-driven loop with in-loop
     noise) for one network, and for 32 networks (K = 32, each with its own weights) and for
     one network x 32 trials (B = 32); also its torch backend (the measured alternative: a
     per-step loop with preallocated buffers and ``index_select`` of the spiking columns);
   * **naive torch**: Izhikevich's MATLAB loop transcribed to per-step torch ops (the way a
     scientist would write it);
   * **Brian2** (``cython`` target, code generation and compilation excluded: timed on a
     second ``run`` after a warm-up run), same equations with Euler-Maruyama noise and
     ``on_pre: v_post += w``. Brian2 runs in a subprocess with ``$BRIAN2_PYTHON`` (default:
     this interpreter), because Brian2 2.9 does not import with NumPy >= 2.4 (``ndarray.ptp``
     was removed); a venv with ``numpy<2.4`` and ``--system-site-packages`` works.

   Goals: one network >= 3x Brian2; 32 networks >= 10x Brian2's neuron-updates/s.

2. Echo-state network, 1000 units (10 % connectivity, spectral radius 0.9, leak 0.3),
   50,000 steps of a 1-D input: fit a ridge readout (one-step prediction) and run it again
   with the readout: **dynrnn** (compiled sparse loop, one trial cut into time chunks that
   run in lockstep, see ``dynrnn/kernels/esn.py``; ``ridge_readout``) vs **reservoirpy**
   (``Reservoir >> Ridge``, ``fit`` then ``run``), both float64. Goal >= 5x. Measured (Intel
   Xeon with AVX-512, 2 cores): 1 thread 1.88 s vs 10.19 s = 5.4x; 2 threads 1.31 s vs
   10.69 s = 8.1x (before the time chunks: 3.6x with 1 thread).

3. ``--esn-grid``: the reservoir loop alone (no readout) at several sizes and densities
   (``ESN_GRID``), against the same map stepped with ``torch.sparse`` CSR matrix-vector
   products and against reservoirpy's ``Reservoir.run``, with the worst and best ratio.
   Measured (Intel Xeon with AVX-512, 5,000 steps; at this length the loop runs step by
   step, without time chunks): 1 thread, dynrnn 2.8 / 11.6 / 24.4 / 62.8 / 85.6 / 218.3 us
   per step at 300/0.1, 1000/0.02, 1000/0.1, 1000/0.2, 3000/0.02, 3000/0.05 (units/density),
   torch.sparse 2.4-7.0x slower, reservoirpy 2.3-6.3x slower (worst 2.3x at 1000/0.2);
   2 threads, torch.sparse 2.9-8.6x, reservoirpy 4.0-6.4x slower. The gather-mode loop
   costs ~0.3 ns per nonzero at 1,000 units, bound by the vector gathers; scipy's CSR
   product under reservoirpy ~0.9 ns.

Run: ``OMP_NUM_THREADS=1 python benchmarks/spiking.py [--repeats 3] [--esn-steps 50000]``
(``--torch-compile`` adds a ``torch.compile``'d per-step loop, the other compiled option).
Prints times and ratios; a peer that cannot be imported is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
import warnings

import torch

from dynrnn.kernels.izhikevich import cpp_extension_available
from dynrnn.models import run
from dynrnn.models.reservoir import EchoStateConfig, EchoStateNetwork
from dynrnn.models.spiking import IzhikevichConfig, IzhikevichReservoir
from dynrnn.training.readouts import reservoir_features, ridge_readout

N_STEPS = 2000  # 1 s at 0.5 ms
N_NEURONS = 1000


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


# ------------------------------------------------------------------------ Izhikevich network
def dynrnn_izhikevich(K, B, repeats, backend="auto"):
    model = IzhikevichReservoir(IzhikevichConfig(n_inputs=0, n_outputs=0, dt=0.5),
                                n_networks=K).double()
    model.simulate(10, batch_size=B, backend=backend)  # compile / warm up

    def sim():
        return model.simulate(N_STEPS, batch_size=B, seed=1, backend=backend)

    t, res = median_time(sim, repeats)
    return t, res.firing_rates().mean().item()


def izhikevich_2003_network():
    """The 800E/200I network of Izhikevich (2003) in float64, for the plain torch loops:
    ``(generator, a, b, c, d, S [post, pre], sigma)``; the generator then draws the noise."""
    g = torch.Generator().manual_seed(0)
    ne, ni = 800, 200
    re = torch.rand(ne, generator=g, dtype=torch.float64)
    ri = torch.rand(ni, generator=g, dtype=torch.float64)
    a = torch.cat([torch.full((ne,), 0.02, dtype=torch.float64), 0.02 + 0.08 * ri])
    b = torch.cat([torch.full((ne,), 0.2, dtype=torch.float64), 0.25 - 0.05 * ri])
    c = torch.cat([-65 + 15 * re**2, torch.full((ni,), -65.0, dtype=torch.float64)])
    d = torch.cat([8 - 6 * re**2, torch.full((ni,), 2.0, dtype=torch.float64)])
    S = torch.cat(
        [0.5 * torch.rand(1000, ne, generator=g, dtype=torch.float64),
         -torch.rand(1000, ni, generator=g, dtype=torch.float64)], 1
    )  # fmt: skip
    sigma = torch.cat([torch.full((ne,), 5.0), torch.full((ni,), 2.0)]).double()
    return g, a, b, c, d, S, sigma


def naive_torch_izhikevich(repeats):
    """Izhikevich's 2003 MATLAB loop, one torch op at a time, 0.5 ms steps."""
    g, a, b, c, d, S, sigma = izhikevich_2003_network()
    dt = 0.5

    def sim():
        v = torch.full((1000,), -65.0, dtype=torch.float64)
        u = b * v
        n_spikes = 0
        fired = torch.zeros(0, dtype=torch.long)
        for _ in range(N_STEPS):
            current = sigma * torch.randn(1000, generator=g, dtype=torch.float64) / dt**0.5
            current = current + S[:, fired].sum(1) / dt
            v = v + 0.5 * dt * (0.04 * v * v + 5 * v + 140 - u + current)
            v = v + 0.5 * dt * (0.04 * v * v + 5 * v + 140 - u + current)
            u = u + dt * a * (b * v - u)
            fired = (v >= 30).nonzero().squeeze(1)
            v[fired] = c[fired]
            u[fired] = u[fired] + d[fired]
            n_spikes += fired.numel()
        return n_spikes / 1000 / (N_STEPS * dt * 1e-3)

    return median_time(sim, repeats)


def compiled_torch_izhikevich(repeats):
    """The measured alternative of a compiled whole step: ``torch.compile`` (inductor) of one
    0.5 ms step -- both half-steps, reset, and dense propagation ``S @ fired`` (a fixed-shape
    graph; the event-driven column gather has a data-dependent shape) -- called per step from
    Python. Returns (median time, compile time of the first call)."""
    g, a, b, c, d, S, sigma = izhikevich_2003_network()
    dt = 0.5

    def step(v, u, fired, z):
        current = sigma * z / dt**0.5 + (S @ fired) / dt
        v = v + 0.5 * dt * (0.04 * v * v + 5 * v + 140 - u + current)
        v = v + 0.5 * dt * (0.04 * v * v + 5 * v + 140 - u + current)
        u = u + dt * a * (b * v - u)
        spk = v >= 30
        return torch.where(spk, c, v), torch.where(spk, u + d, u), spk.to(torch.float64)

    cstep = torch.compile(step, dynamic=False)

    def sim():
        v = torch.full((1000,), -65.0, dtype=torch.float64)
        u, fired = b * v, torch.zeros(1000, dtype=torch.float64)
        z = torch.randn(N_STEPS, 1000, generator=g, dtype=torch.float64)
        n_spikes = torch.zeros((), dtype=torch.float64)
        for t in range(N_STEPS):
            v, u, fired = cstep(v, u, fired, z[t])
            n_spikes += fired.sum()
        return float(n_spikes) / 1000 / (N_STEPS * dt * 1e-3)

    t0 = time.perf_counter()
    sim()
    t_compile = time.perf_counter() - t0
    return median_time(sim, repeats), t_compile


BRIAN2_SCRIPT = textwrap.dedent(
    """
    import json, time, numpy as np
    from brian2 import NeuronGroup, Synapses, Network, SpikeMonitor, ms, prefs, defaultclock
    prefs.codegen.target = "cython"
    defaultclock.dt = 0.5 * ms
    rng = np.random.default_rng(0)
    Ne, Ni = 800, 200
    N = Ne + Ni
    re, ri = rng.random(Ne), rng.random(Ni)
    eqs = '''dv/dt = (0.04*v**2 + 5*v + 140 - u)/ms + sigma*xi/sqrt(ms) : 1
    du/dt = a*(b*v - u)/ms : 1
    a : 1
    b : 1
    c : 1
    d : 1
    sigma : 1'''
    G = NeuronGroup(N, eqs, threshold="v>=30", reset="v = c; u += d", method="euler")
    G.a = np.r_[0.02 * np.ones(Ne), 0.02 + 0.08 * ri]
    G.b = np.r_[0.2 * np.ones(Ne), 0.25 - 0.05 * ri]
    G.c = np.r_[-65 + 15 * re**2, -65 * np.ones(Ni)]
    G.d = np.r_[8 - 6 * re**2, 2 * np.ones(Ni)]
    G.sigma = np.r_[5 * np.ones(Ne), 2 * np.ones(Ni)]
    G.v = -65
    G.u = G.b * -65
    S = Synapses(G, G, "w : 1", on_pre="v_post += w")
    S.connect()
    W = np.c_[0.5 * rng.random((N, Ne)), -rng.random((N, Ni))]  # W[post, pre]
    S.w = W[S.j[:], S.i[:]]
    M = SpikeMonitor(G)
    net = Network(G, S, M)
    net.run(5 * ms)  # code generation + compilation (excluded)
    times = []
    for _ in range(REPEATS):
        n0 = M.num_spikes
        t = time.perf_counter()
        net.run(1000 * ms)
        times.append(time.perf_counter() - t)
        rate = (M.num_spikes - n0) / N
    print(json.dumps({"time": sorted(times)[len(times) // 2], "rate": rate}))
    """
)


def brian2_izhikevich(repeats):
    python = os.environ.get("BRIAN2_PYTHON", sys.executable)
    script = BRIAN2_SCRIPT.replace("REPEATS", str(repeats))
    try:
        out = subprocess.run(
            [python, "-c", script], capture_output=True, text=True, timeout=1200, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1]), None
    except subprocess.CalledProcessError as err:
        last = (err.stderr or "").strip().splitlines()[-1:] or ["?"]
        return None, last[0]
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        return None, f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------------------------- ESN
def esn_input(T):
    t = torch.arange(T + 1, dtype=torch.float64)
    return (torch.sin(0.1 * t) + 0.5 * torch.sin(0.0311 * t)).view(1, -1, 1)


def dynrnn_esn(T, repeats):
    cfg = EchoStateConfig(
        n_units=1000, n_inputs=1, n_outputs=1, spectral_radius=0.9, leak=0.3, density=0.1,
        readout_bias=True,
    )  # fmt: skip
    model = EchoStateNetwork(cfg, seed=0).double()
    u = esn_input(T)
    x, y = u[:, :-1], u[:, 1:]
    with torch.no_grad():
        run(model, x[:, :50])  # compile / warm up

    def fit_run():
        with torch.no_grad():
            feats = reservoir_features(model, x)
            ridge_readout(model, targets=y, features=feats, alpha=1e-6, washout=100)
            _, out = run(model, x, return_states=False)  # outputs only, as reservoirpy
        return ((out[0, 0, 100:] - y[0, 100:]) ** 2).mean().item()

    return median_time(fit_run, repeats)


def reservoirpy_esn(T, repeats):
    try:
        import numpy as np
        from reservoirpy.nodes import Reservoir, Ridge
    except Exception as err:  # noqa: BLE001 - any import problem means "peer unavailable"
        return None, f"{type(err).__name__}: {err}"
    u = esn_input(T).numpy()[0]
    x, y = u[:-1], u[1:]

    def fit_run():
        res = Reservoir(units=1000, lr=0.3, sr=0.9, rc_connectivity=0.1, seed=0)
        esn = res >> Ridge(ridge=1e-6)
        esn.fit(x, y, warmup=100)
        out = esn.run(x)
        return float(np.mean((out[100:] - y[100:]) ** 2))

    return median_time(fit_run, repeats), None


# Reservoir loops alone (no readout) over sizes and densities: dynrnn's C loop (SELL-C-sigma,
# vector gathers) against the same map stepped with torch.sparse (CSR matrix-vector products)
# and against reservoirpy's Reservoir.run. Each network is built by dynrnn (spectral radius 0.9,
# leak 0.3) and handed to the torch.sparse loop as it is; reservoirpy builds its own with the
# same size, density, spectral radius and leak.
ESN_GRID = ((300, 0.1), (1000, 0.02), (1000, 0.1), (1000, 0.2), (3000, 0.02), (3000, 0.05))


def esn_grid_row(n, density, T, repeats):
    cfg = EchoStateConfig(n_units=n, n_inputs=1, n_outputs=1, spectral_radius=0.9, leak=0.3,
                          density=density)
    model = EchoStateNetwork(cfg, seed=0).double()
    x = esn_input(T)[:, :-1]
    with torch.no_grad():
        run(model, x[:, :50])
        t_dyn, _ = median_time(lambda: run(model, x, return_states=True), repeats)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            W = model.W[0].to_sparse_csr()
        W_in, b, leak = model.W_in[0, :, 0], model.b[0], float(model.leak[0])
        xs = x[0, :, 0].tolist()

        def sparse_loop():
            h = torch.zeros(n, dtype=torch.float64)
            out = torch.empty(T, n, dtype=torch.float64)
            for t in range(T):
                pre = torch.mv(W, h) + W_in * xs[t] + b
                h = h + leak * (torch.tanh(pre) - h)
                out[t] = h
            return out

        t_sp, _ = median_time(sparse_loop, max(1, repeats - 1))
    t_rp = None
    try:
        from reservoirpy.nodes import Reservoir

        u = x[0].numpy()

        def rp_run():
            return Reservoir(units=n, lr=0.3, sr=0.9, rc_connectivity=density, seed=0).run(u)

        t_rp, _ = median_time(rp_run, max(1, repeats - 1))
    except Exception:  # noqa: BLE001 - any import problem means "peer unavailable"
        pass
    return t_dyn, t_sp, t_rp


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--esn-steps", type=int, default=50_000)
    p.add_argument("--skip-esn", action="store_true")
    p.add_argument("--skip-izhikevich", action="store_true")
    p.add_argument("--esn-grid", action="store_true",
                   help="also time the reservoir loop alone over sizes and densities against "
                        "a torch.sparse CSR loop and reservoirpy")
    p.add_argument("--grid-steps", type=int, default=5000)
    p.add_argument("--torch-compile", action="store_true",
                   help="also time a torch.compile'd step (first call compiles: ~20 s)")
    args = p.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"compiled loops: {cpp_extension_available()}")  # fmt: skip
    if not args.skip_izhikevich:
        updates = N_NEURONS * N_STEPS
        print("\n## Izhikevich 800E/200I, dense, thalamic noise, dt 0.5 ms, 1 s, float64")
        t1, r1 = dynrnn_izhikevich(1, 1, args.repeats)
        print(f"dynrnn   1 network        {t1:8.4f} s  rate {r1:5.1f} Hz  "
              f"{updates / t1 / 1e6:8.1f} M neuron-updates/s")  # fmt: skip
        t32, r32 = dynrnn_izhikevich(32, 1, args.repeats)
        print(f"dynrnn  32 networks (K)   {t32:8.4f} s  rate {r32:5.1f} Hz  "
              f"{32 * updates / t32 / 1e6:8.1f} M neuron-updates/s")  # fmt: skip
        tb, rb = dynrnn_izhikevich(1, 32, args.repeats)
        print(f"dynrnn  32 trials (B)     {tb:8.4f} s  rate {rb:5.1f} Hz  "
              f"{32 * updates / tb / 1e6:8.1f} M neuron-updates/s")  # fmt: skip
        tt, rt = dynrnn_izhikevich(1, 1, max(1, args.repeats - 1), backend="cpu-torch")
        print(f"dynrnn torch backend, 1 network {tt:8.4f} s  rate {rt:5.1f} Hz  "
              f"(preallocated per-step loop, event-driven columns)")  # fmt: skip
        tn, rn = naive_torch_izhikevich(max(1, args.repeats - 1))
        print(f"naive torch loop          {tn:8.4f} s  rate {rn:5.1f} Hz  "
              f"{updates / tn / 1e6:8.1f} M neuron-updates/s")  # fmt: skip
        print(f"ratio naive torch / dynrnn (1 network): {tn / t1:6.1f}x")
        if args.torch_compile:
            (tc, rc), t_comp = compiled_torch_izhikevich(max(1, args.repeats - 1))
            print(f"torch.compile'd step      {tc:8.4f} s  rate {rc:5.1f} Hz  "
                  f"(compilation {t_comp:.1f} s excluded; dense propagation); "
                  f"ratio to dynrnn {tc / t1:.1f}x")  # fmt: skip
        b2, why = brian2_izhikevich(args.repeats)
        if b2 is None:
            print(f"Brian2: not available ({why}); set BRIAN2_PYTHON to an interpreter with it")
        else:
            tb2 = b2["time"]
            print(f"Brian2 (cython)           {tb2:8.4f} s  rate {b2['rate']:5.1f} Hz  "
                  f"{updates / tb2 / 1e6:8.1f} M neuron-updates/s")  # fmt: skip
            print(f"ratio Brian2 / dynrnn, 1 network:                {tb2 / t1:6.1f}x (goal >= 3)")
            thr = (32 * updates / t32) / (updates / tb2)
            thr_b = (32 * updates / tb) / (updates / tb2)
            print(f"throughput dynrnn 32 networks / Brian2:          {thr:6.1f}x (goal >= 10)")
            print(f"throughput dynrnn 32 trials / Brian2:            {thr_b:6.1f}x")
    if not args.skip_esn:
        T = args.esn_steps
        print(f"\n## ESN 1000 units, {T} steps: ridge fit + run, float64")
        td, mse_d = dynrnn_esn(T, args.repeats)
        print(f"dynrnn                    {td:8.3f} s  (one-step MSE {mse_d:.2e})")
        rp, why = reservoirpy_esn(T, max(1, args.repeats - 2))
        if rp is None:
            print(f"reservoirpy: not available ({why})")
        else:
            tr, mse_r = rp
            print(f"reservoirpy               {tr:8.3f} s  (one-step MSE {mse_r:.2e})")
            print(f"ratio reservoirpy / dynrnn: {tr / td:6.1f}x (goal >= 5)")
    if args.esn_grid:
        T = args.grid_steps
        print(f"\n## Reservoir loop alone, {T} steps, float64 (us per step; ratios to dynrnn)")
        print(f"{'units':>6} {'density':>7} {'dynrnn':>8} {'torch.sparse':>13} {'ratio':>6} "
              f"{'reservoirpy':>12} {'ratio':>6}")  # fmt: skip
        worst = best = None
        for n, d in ESN_GRID:
            t_dyn, t_sp, t_rp = esn_grid_row(n, d, T, args.repeats)
            rp_text = (f"{t_rp / T * 1e6:12.1f} {t_rp / t_dyn:5.1f}x" if t_rp is not None
                       else f"{'n/a':>12} {'':>6}")
            print(f"{n:6d} {d:7.2f} {t_dyn / T * 1e6:8.1f} {t_sp / T * 1e6:13.1f} "
                  f"{t_sp / t_dyn:5.1f}x {rp_text}")  # fmt: skip
            if t_rp is not None:
                r = t_rp / t_dyn
                worst = r if worst is None else min(worst, r)
                best = r if best is None else max(best, r)
        if worst is not None:
            print(f"reservoirpy / dynrnn over the grid: worst {worst:.1f}x, best {best:.1f}x")


if __name__ == "__main__":
    main()
