"""Threaded paths on a busy machine: 1 thread vs all cores, idle and beside a competing process.

Users run notebooks next to other work, and several Dask workers share a node. A threaded path
must degrade gracefully when a core is taken: this script times each path below in a fresh
subprocess with ``torch.set_num_threads(1)`` and with ``--threads`` threads (default: all
cores), first on the idle machine and then while ``--competitors`` CPU-bound processes (a busy
Python loop each) run beside it, and prints ``threaded / single`` per condition. The goal
(design): under load no threaded path is more than 20% slower than its single-threaded run.

Each threaded run is made under two OpenMP wait policies:

* ``default`` -- what a user gets: ``import dynrnn`` before torch sets
  ``OMP_WAIT_POLICY=PASSIVE`` (see ``dynrnn/__init__.py``): waiting threads sleep;
* ``ACTIVE`` -- GNU OpenMP's own default (threads spin while they wait), the behaviour before
  dynrnn set the policy, as the baseline of the collapse.

Paths (small, fast settings; each timing is the median of ``--repeats`` calls after a warm-up):

* ``fixed_points``: ``find_fixed_points`` on 8 random 64-unit rate RNNs, 256 initial states;
* ``train_gtf``: 30 GTF iterations of 4 shPLRNNs (latent 3, hidden 50) on Lorenz-63;
* ``train``: 20 BPTT steps of 16 rate RNNs (64 units) on the 3-bit flip-flop task;
* ``esn``: a 1000-unit echo-state network (density 0.1) run for 2000 steps.

Usage::

    python benchmarks/busy.py                     # all paths, 1 competitor
    python benchmarks/busy.py --paths fixed_points --competitors 1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PATHS = ("fixed_points", "train_gtf", "train", "esn")

CHILD = r'''
import json, os, statistics, sys, time
os.environ["TQDM_DISABLE"] = "1"
import dynrnn  # first: it sets the OpenMP wait policy unless the environment has one
import torch
path, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)

if path == "fixed_points":
    from dynrnn.analyses import find_fixed_points
    from dynrnn.models import Ensemble, RateRNNConfig
    model = Ensemble(RateRNNConfig(3, 64, 3, init_gain=1.2), n_networks=8, seed=0)
    def work():
        find_fixed_points(model, n_initial=256, seed=0, progress=False)
elif path == "train_gtf":
    import numpy as np
    from dynrnn.models import ShallowPLRNN, ShallowPLRNNConfig
    from dynrnn.tasks.chaotic import integrate
    from dynrnn.training.gtf import GTFConfig, train_gtf
    x = integrate("lorenz63", np.array([1.0, 1.0, 1.0]), 3000, 0.01, transient_steps=500)
    x = torch.as_tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    model = ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=50), n_networks=4, seed=0)
    cfg = GTFConfig(n_iterations=30, seq_len=50, batch_size=16)
    def work():
        train_gtf(model, x, cfg, seed=0, progress=False)
elif path == "train":
    from dynrnn.models import Ensemble, RateRNNConfig
    from dynrnn.tasks import FlipFlopTask
    from dynrnn.training import TrainConfig, train
    task = FlipFlopTask(n_bits=3, n_steps=100)
    cfg = TrainConfig(n_steps=20, batch_size=32, lr=1e-3, eval_every=20)
    def work():
        model = Ensemble(RateRNNConfig(3, 64, 3), n_networks=16, seed=0)
        train(model, task, cfg, seed=0)
elif path == "esn":
    from dynrnn.models import EchoStateConfig, EchoStateNetwork, run
    model = EchoStateNetwork(EchoStateConfig(n_units=1000, n_inputs=1, n_outputs=1,
                                             spectral_radius=0.9, leak=0.3, density=0.1),
                             seed=0).double()
    x = torch.sin(0.1 * torch.arange(2000, dtype=torch.float64)).view(1, -1, 1)
    def work():
        with torch.no_grad():
            run(model, x, return_states=False)
work()  # warm-up: compiled kernels, caches
times = []
for _ in range(repeats):
    t = time.perf_counter()
    work()
    times.append(time.perf_counter() - t)
print(json.dumps({"seconds": statistics.median(times)}))
'''

SPIN = "while True: pass"


def timed(path: str, threads: int, repeats: int, policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", CHILD, path, str(threads), str(repeats)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def measure(path: str, threads: int, repeats: int) -> dict[str, float]:
    return {"1 thread": timed(path, 1, repeats, None),
            f"{threads} threads": timed(path, threads, repeats, None),
            f"{threads} threads, ACTIVE": timed(path, threads, repeats, "ACTIVE")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--competitors", type=int, default=1,
                   help="CPU-bound processes running beside the measurement in the busy phase")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(f"# {os.cpu_count()} cores; threaded runs use {a.threads} threads; busy = "
          f"{a.competitors} competing CPU-bound process(es); median of {a.repeats}")
    results = {}
    for phase in ("idle", "busy"):
        spinners = []
        if phase == "busy":
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN])
                        for _ in range(a.competitors)]
            time.sleep(0.5)
        try:
            for path in a.paths:
                r = measure(path, a.threads, a.repeats)
                results[(phase, path)] = r
                single = r["1 thread"]
                cells = "  ".join(f"{k} {v * 1e3:8.1f} ms ({v / single:4.2f}x)"
                                  for k, v in r.items())
                print(f"{phase:4s} {path:12s} {cells}", flush=True)
        finally:
            for s in spinners:
                s.kill()
                s.wait()
    worst = max(results[("busy", path)][f"{a.threads} threads"]
                / results[("busy", path)]["1 thread"] for path in a.paths)
    print(f"busy: worst threaded / single-threaded (default policy) = {worst:.2f}x "
          "[goal <= 1.20x]")


if __name__ == "__main__":
    main()
