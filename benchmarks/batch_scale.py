"""Scale of the zoo and of the result stores: metadata of 10,000 networks, a lazy open of a
10,000-network result, and a 3,000 x 3,000 pairwise matrix computed and stored in blocks.

The goals (the batch layer's design): querying the metadata of 10,000 networks and opening a
10,000-network result (lazily: dask arrays, chunk markers checked by size) take well under a
second each; a pairwise matrix over thousands of networks is computed block by block, so that
memory is bounded by a block and a crash loses at most the blocks in flight.

The networks are random, untrained rate RNNs (``--entries`` entries of ``--entry-size``
networks, ``n_units`` cycling through 8, 16, 24, 32 so that ``groupby("n_units")`` has four
groups): the analyses' cost and the store's layout do not depend on training. The analysis
written at full size is ``timescales`` with reduced settings (its cost is not the point
here); the pairwise one is linear CKA on short simulations.

Every timing is the minimum of ``--repeats`` runs, each in a fresh ``Zoo`` object (no cache
carried over). Defaults: 10,000 networks, 3,000 for the pairwise matrix; a few minutes on 2
cores, most of it building the zoo and the CKA blocks.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SIZES = (8, 16, 24, 32)


def build_zoo(path: Path, entries: int, entry_size: int):
    from dynrnn.models import Ensemble, RateRNNConfig
    from dynrnn.zoo import Zoo

    zoo = Zoo(path, create=True)
    for e in range(entries):
        N = SIZES[e % len(SIZES)]
        model = Ensemble(RateRNNConfig(2, N, 1, init_gain=1.2), n_networks=entry_size, seed=e)
        zoo.add(model, outcome={"final_loss": [0.01 * k for k in range(entry_size)]},
                tags=["scale"])
    return zoo


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100)
    p.add_argument("--entry-size", type=int, default=100)
    p.add_argument("--pairwise", type=int, default=3000,
                   help="networks in the pairwise (CKA) matrix")
    p.add_argument("--block-size", type=int, default=500)
    p.add_argument("--chunk-size", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    import torch

    from dynrnn.batch import analyze, open_pairwise, open_result
    from dynrnn.zoo import Zoo

    n = args.entries * args.entry_size
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        zoo = build_zoo(Path(tmp) / "zoo", args.entries, args.entry_size)
        print(f"{n} random rate RNNs in {args.entries} entries (n_units {SIZES}), built in "
              f"{time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}, "
              f"cores {os.cpu_count()}")

        t, rows = best_of(args.repeats, lambda: Zoo(zoo.path).networks(as_frame=False))
        print(f"  metadata of {len(rows)} networks (Zoo(path).networks):     {t * 1e3:8.1f} ms")
        t, frame = best_of(args.repeats, lambda: Zoo(zoo.path).networks())
        print(f"  the same as a pandas DataFrame:                       {t * 1e3:8.1f} ms")
        t, q = best_of(args.repeats, lambda: Zoo(zoo.path).query(n_units=16))
        print(f"  query n_units=16 ({len(q)} networks):                     {t * 1e3:8.1f} ms")

        t0 = time.perf_counter()
        analyze(zoo, "timescales", chunk_size=args.chunk_size,
                timescales=dict(n_trials=2, n_steps=60, discard=10))
        print(f"  analyze timescales over {n} networks (reduced settings): "
              f"{time.perf_counter() - t0:8.1f} s")
        t, ds = best_of(args.repeats, lambda: open_result(Zoo(zoo.path), "timescales"))
        lazy = all(hasattr(v.data, "dask") for v in ds.data_vars.values())
        print(f"  open_result, {ds.sizes['network']} networks (lazy: {lazy}):         "
              f"{t * 1e3:8.1f} ms")
        var = "tau_net"
        t, g = best_of(args.repeats,
                       lambda: open_result(Zoo(zoo.path), "timescales")[var]
                       .groupby("n_units").mean().compute())
        print(f"  open + mean {var!r} by n_units (computed):   {t * 1e3:8.1f} ms "
              f"({g.sizes['n_units']} groups)")

        m = min(args.pairwise, n)
        ids = zoo.ids()[:m]
        t0 = time.perf_counter()
        r = analyze(zoo, "cka", ids=ids, block_size=args.block_size,
                    cka=dict(n_trials=2, n_steps=40, discard=10))["cka"]
        print(f"  CKA {m} x {m} in {len(r.computed)} blocks of {args.block_size}^2 pairs: "
              f"{time.perf_counter() - t0:8.1f} s")
        t, P = best_of(args.repeats, lambda: open_pairwise(Zoo(zoo.path), "cka"))
        print(f"  open_pairwise {P.sizes['network']} x {P.sizes['network_b']} (lazy):          "
              f"{t * 1e3:8.1f} ms; complete: {P.attrs['complete']}")


if __name__ == "__main__":
    main()
