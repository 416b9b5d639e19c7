"""Throughput and memory of batch analyses over a zoo (``dynrnn.batch.analyze``).

N stored 3-bit flip-flop rate RNNs (64 tanh units, 3 inputs, 3 outputs; RANDOM, untrained
networks with recurrent gain ``--gain``: training thousands is expensive and the analyses' cost
does not depend on training) are analysed -- fixed points, Lyapunov spectrum, timescales --
through ``analyze`` in process and on a 2-worker Dask LocalCluster, and compared with calling
the three analyses directly:

* ``direct (one ensemble)``: one call per analysis on all N networks loaded as one model (the
  baseline the issue names);
* ``direct (same chunks)``: one call per analysis and chunk, on ``zoo.load(chunk ids)`` -- the
  same computation ``analyze`` does, so ``analyze / this - 1`` is the batch layer's own
  overhead (loading, screening, padding, writing, reading back, hashing, markers).

Peak resident memory (``VmHWM`` of a fresh process running ``analyze`` in process) is
measured at N/4, N/2 and N networks; the goal is flat (chunks are written and dropped).

Timings are the minimum of ``--repeats`` interleaved runs (the Dask run, which includes
starting the cluster and its workers importing torch, runs once). Defaults finish in a few
minutes on 2 cores (N=32, reduced analysis settings). Larger runs::

    python benchmarks/batch.py --networks 1024 --chunk-size 64 --fp-initial 1024 \\
        --lyap-steps 1000 --ts-steps 1000          # the analyses' own defaults
    python benchmarks/batch.py --networks 10000 --chunk-size 128 --workers 16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _options(args) -> dict:
    return dict(
        fixed_points=dict(n_initial=args.fp_initial),
        lyapunov=dict(n_steps=args.lyap_steps, burn_in=args.lyap_steps // 2),
        timescales=dict(n_steps=args.ts_steps, n_trials=args.ts_trials,
                        discard=args.ts_steps // 10),
    )


NAMES = ("fixed_points", "lyapunov", "timescales")


def build_zoo(path: Path, n: int, units: int, gain: float, entry_size: int):
    from dynrnn.models import Ensemble, RateRNNConfig
    from dynrnn.tasks import FlipFlopTask
    from dynrnn.zoo import Zoo

    zoo = Zoo(path, create=True)
    task = FlipFlopTask(n_bits=3, n_steps=100, p_pulse=0.05)
    for start in range(0, n, entry_size):
        k = min(entry_size, n - start)
        model = Ensemble(RateRNNConfig(3, units, 3, init_gain=gain), n_networks=k, seed=start)
        zoo.add(model, task=task, outcome={"trained": False})
    return zoo


def direct(zoo, ids, opts, chunks=None) -> float:
    from dynrnn.batch.analyze import _resolve_options, _run_analysis

    groups = [ids] if chunks is None else chunks
    t0 = time.perf_counter()
    for name in NAMES:
        o = _resolve_options(name, opts[name])
        for g in groups:
            _run_analysis(name, zoo.load(g), o)
    return time.perf_counter() - t0


def child(zoo_path: str, n: int, chunk_size: int, opts: dict) -> None:
    """Run analyze on the first n networks in a fresh process; print its peak RSS (MiB)."""
    from dynrnn.batch.analyze import analyze
    from dynrnn.zoo import Zoo

    zoo = Zoo(zoo_path)
    ids = zoo.ids()[:n]
    analyze(zoo, NAMES, ids=ids, chunk_size=chunk_size, overwrite=True, **opts)
    print(json.dumps({"n": n, "peak_rss_mib": _peak_rss_mib()}))


def _peak_rss_mib() -> float:
    """This process's own peak resident memory: ``VmHWM`` of /proc/self/status (reset by
    exec). Not ``ru_maxrss``: on Linux that keeps the high-water mark of the process before
    ``exec`` -- i.e. of the parent at fork -- so a child of a large parent reports the parent's
    peak (this benchmark once read a flat 16.9 GB that was the parent's)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # other systems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", type=int, default=32, help="N networks in the zoo")
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--gain", type=float, default=1.2, help="recurrent gain of the random nets")
    p.add_argument("--entry-size", type=int, default=64, help="networks per zoo entry")
    p.add_argument("--chunk-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    p.add_argument("--fp-initial", type=int, default=128,
                   help="fixed points: initial states per network (analysis default 1024)")
    p.add_argument("--lyap-steps", type=int, default=200,
                   help="Lyapunov accumulation steps (burn-in half of it; default 1000/500)")
    p.add_argument("--ts-steps", type=int, default=400, help="timescales: steps per trial")
    p.add_argument("--ts-trials", type=int, default=8, help="timescales: trials")
    p.add_argument("--repeats", type=int, default=3,
                   help="interleaved repeats of the in-process timings (minimum reported)")
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--memory-only", action="store_true",
                   help="only the peak-memory runs (no timings)")
    p.add_argument("--child", nargs=2, metavar=("ZOO", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    opts = _options(args)
    if args.child:
        child(args.child[0], int(args.child[1]), args.chunk_size, opts)
        return

    import torch

    from dynrnn.batch.analyze import _chunks, analyze

    N = args.networks
    with tempfile.TemporaryDirectory() as tmp:
        zoo = build_zoo(Path(tmp) / "zoo", N, args.units, args.gain, args.entry_size)
        ids = zoo.ids()
        chunks = [c["ids"] for c in _chunks(ids, args.chunk_size)]
        print(f"{N} random 3-bit flip-flop rate RNNs ({args.units} units), chunk size "
              f"{args.chunk_size}, torch threads {torch.get_num_threads()}, "
              f"cores {os.cpu_count()}; options {opts}")
        if args.memory_only:
            _report_memory(args, zoo, N)
            return
        direct(zoo, chunks[0][:2], opts)  # warm-up: kernel compilation, first-call costs
        # interleaved repeats, minimum of each: the machine may be shared
        t_one = t_same = t_in = float("inf")
        for _ in range(args.repeats):
            t_one = min(t_one, direct(zoo, ids, opts))
            t_same = min(t_same, direct(zoo, ids, opts, chunks))
            t0 = time.perf_counter()
            analyze(zoo, NAMES, chunk_size=args.chunk_size, overwrite=True, **opts)
            t_in = min(t_in, time.perf_counter() - t0)
        rows = [("direct (one ensemble of N)", t_one), ("direct (same chunks)", t_same),
                ("analyze, in process", t_in)]
        if not args.no_dask:
            t0 = time.perf_counter()
            analyze(zoo, NAMES, chunk_size=args.chunk_size, overwrite=True, executor="dask",
                    workers=args.workers, **opts)
            rows.append((f"analyze, Dask LocalCluster({args.workers}) incl. startup",
                         time.perf_counter() - t0))
        for label, t in rows:
            print(f"  {label:48s} {t:8.2f} s  {N / t:8.2f} networks/s")
        print(f"  analyze in process / direct one ensemble:  {t_in / t_one:.3f}")
        print(f"  analyze in process / direct same chunks:   {t_in / t_same:.3f}  (batch layer "
              f"overhead {100 * (t_in / t_same - 1):+.1f}%)")
        if not args.no_dask:
            print(f"  Dask / in process:                         {rows[-1][1] / t_in:.3f}")
        _report_memory(args, zoo, N)


def _report_memory(args, zoo, N: int) -> None:
    print("peak resident memory (VmHWM) of a fresh process running analyze in process:")
    for n in sorted({max(1, N // 4), max(1, N // 2), N}):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(zoo.path), str(n),
             "--chunk-size", str(args.chunk_size), "--fp-initial", str(args.fp_initial),
             "--lyap-steps", str(args.lyap_steps), "--ts-steps", str(args.ts_steps),
             "--ts-trials", str(args.ts_trials)],
            check=True, capture_output=True, text=True).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        print(f"  N={rec['n']:6d}: {rec['peak_rss_mib']:8.1f} MiB")


if __name__ == "__main__":
    main()
