"""Overhead of training through ``dynrnn sweep run`` (``dynrnn.batch.run_sweep``) against
training the same ensembles directly.

A sweep of N 3-bit flip-flop rate RNNs (64 tanh units; ``--seeds`` seeds x the
``--sizes`` grid, chunks of ``--chunk-size``) is trained for ``--steps`` optimiser steps:

* ``direct``: for every chunk, ``train_chunk(plan.work_item(chunk))`` -- build the chunk's
  ensemble and call ``train`` on it, nothing written (the baseline: the same ensembles, the same
  training, no batch layer);
* ``sweep run``: ``run_sweep`` into a fresh zoo in this process -- planning, the manifest,
  ``map_chunks``, one ``Zoo.add`` per chunk (safetensors + JSON, fsync'd, hashed).

``sweep / direct - 1`` is the batch layer's overhead (goal <= 10%). Timings are the minimum of
``--repeats`` interleaved runs. Defaults finish in about a minute on 2 cores; the issue's size::

    python benchmarks/batch_sweep.py --seeds 250 --sizes 64 --chunk-size 64 --steps 200
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from dynrnn.batch import Sweep, plan, run_sweep  # noqa: E402
from dynrnn.batch.sweep import train_chunk  # noqa: E402


def make_sweep(args) -> Sweep:
    return Sweep(
        name="bench", n_seeds=args.seeds, chunk_size=args.chunk_size,
        task={"name": "flipflop", "n_bits": 3, "n_steps": 100},
        model={"kind": "rate_rnn", "nonlinearity": "tanh"},
        training={"n_steps": args.steps, "batch_size": 32, "lr": 1e-2,
                  "eval_every": args.steps},
        grid={"model.n_units": list(args.sizes)},
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--sizes", type=int, nargs="+", default=[64])
    p.add_argument("--chunk-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=40, help="optimiser steps per network")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    sweep = make_sweep(a)
    pl = plan(sweep)
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"sweep: {len(pl.networks)} networks, {len(pl.chunks)} chunks (<= {a.chunk_size}), "
          f"{a.steps} training steps each")
    direct, swept = [], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        for chunk in pl.chunks:
            train_chunk(pl.work_item(chunk))
        direct.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            status = run_sweep(sweep, os.path.join(tmp, "zoo"))
            swept.append(time.perf_counter() - t)
            assert not status.chunks_failed and not status.chunks_pending, status
    d, s = min(direct), min(swept)
    n = len(pl.networks)
    print(f"direct train of the same ensembles: {d:7.2f} s  ({n / d:6.1f} networks/s)")
    print(f"dynrnn sweep run (in process):      {s:7.2f} s  ({n / s:6.1f} networks/s)")
    print(f"batch-layer overhead: {s / d - 1:+.1%}   [goal <= +10%]")


if __name__ == "__main__":
    main()
