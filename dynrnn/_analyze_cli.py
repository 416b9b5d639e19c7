"""``dynrnn analyze ZOO``: map analyses over every network of a zoo into resumable zarr result
stores ``ZOO/results/<analysis>.zarr`` (see :func:`dynrnn.batch.analyze.analyze`)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

DESCRIPTION = (
    "Run analyses over every network of the zoo at ZOO, chunk by chunk, into one zarr store "
    "per analysis (ZOO/results/<analysis>.zarr), in this process, in local worker processes "
    "(--executor processes) or on Dask (--executor dask, a local cluster of --workers or "
    "--scheduler tcp://host:port). A run that stops (crash, Ctrl-C) is resumed by running the "
    "same command again: chunks already written are skipped. Shows one progress bar per "
    "analysis (--quiet: none) and prints one summary line per analysis."
)

#: flags -> analysis names of dynrnn.batch.analyze
FLAGS = {"fixed_points": "fixed_points", "lyapunov": "lyapunov", "timescales": "timescales",
         "degeneracy": "degeneracy", "stability": "stability", "cka": "cka", "dsa": "dsa",
         "weight_distance": "weight_distance"}


def add_parser(sub) -> None:
    a = sub.add_parser("analyze", help="run analyses over a zoo into zarr result stores",
                       description=DESCRIPTION)
    a.add_argument("zoo", metavar="ZOO", help="the zoo directory")
    a.add_argument("--fixed-points", action="store_true", help="fixed and slow points")
    a.add_argument("--lyapunov", action="store_true", help="Lyapunov spectra (QR method)")
    a.add_argument("--timescales", action="store_true",
                   help="network timescales from noise-driven activity")
    a.add_argument("--degeneracy", action="store_true",
                   help="in- and out-of-distribution error on the task stored with each entry "
                        "(behavioural degeneracy)")
    a.add_argument("--stability", action="store_true",
                   help="contraction (stability) certificates of every network, solver-free")
    a.add_argument("--cka", action="store_true",
                   help="pairwise linear CKA of all networks (a network x network matrix)")
    a.add_argument("--dsa", action="store_true",
                   help="pairwise dynamical similarity analysis (DSA, Ostrow et al. 2023) of all "
                        "networks (a network x network matrix)")
    a.add_argument("--weight-distance", action="store_true",
                   help="pairwise permutation-invariant weight distance (networks of one model "
                        "and size)")
    a.add_argument("--chunk-size", type=int, default=64, help="networks per chunk")
    a.add_argument("--block-size", type=int, default=256,
                   help="networks per side of a block of pairs (--cka, --dsa, --weight-distance)")
    a.add_argument("--executor", choices=("inprocess", "processes", "dask"),
                   default="inprocess", help="where the chunks run")
    a.add_argument("--workers", type=int, default=None,
                   help="worker processes (--executor processes or dask) (default: 2)")
    a.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler, e.g. tcp://host:8786 "
                        "(--executor dask)")
    a.add_argument("--overwrite", action="store_true",
                   help="start the result stores again instead of resuming them")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=cmd_analyze, validate=check_analyze,
                   option_names={"chunk_size": "--chunk-size", "block_size": "--block-size",
                                 "workers": "--workers", "scheduler": "--scheduler",
                                 "executor": "--executor"})


def check_analyze(args) -> None:
    """Every option of ``dynrnn analyze`` and the zoo path, before any work."""
    from .cli import CLIError, check_range, reject_given

    names = [n for n in FLAGS if getattr(args, n, False)]
    if not names:
        raise CLIError("give at least one analysis: --fixed-points, --lyapunov, --timescales, "
                       "--degeneracy, --stability, --cka, --dsa or --weight-distance")
    check_range(args, "chunk_size", 1)
    check_range(args, "block_size", 1)
    check_range(args, "workers", 1)
    if args.executor == "inprocess":
        reject_given(args, ["workers", "scheduler"],
                     "only to --executor processes or dask, not to --executor inprocess")
    if args.executor == "processes":
        reject_given(args, ["scheduler"], "only to --executor dask, not to --executor processes")
    if args.scheduler is not None:
        if "://" not in args.scheduler:
            raise CLIError(f"--scheduler must be an address such as tcp://host:8786; got "
                           f"{args.scheduler}")
        reject_given(args, ["workers"], "only without --scheduler (the cluster has its own)")
    path = Path(args.zoo)
    if not path.exists():
        raise CLIError(f"no zoo at {args.zoo} (the directory does not exist)")
    if not path.is_dir():
        raise CLIError(f"the zoo path {args.zoo} is not a directory")
    if not (path / "entries").is_dir():
        raise CLIError(f"{args.zoo} is not a zoo (it has no entries/ directory)")
    args.analyses = names


def cmd_analyze(args) -> int:
    from .cli import CLIError
    from .zoo import Zoo, ZooIntegrityWarning

    zoo = Zoo(args.zoo)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooIntegrityWarning)
        n = len(zoo.networks(as_frame=False))
    for w in caught:
        if issubclass(w.category, ZooIntegrityWarning):
            raise CLIError(str(w.message))
    if n == 0:
        raise CLIError(f"the zoo at {args.zoo} holds no networks")
    from .batch.analyze import PAIRWISE, analyze

    reports = analyze(zoo, args.analyses, chunk_size=args.chunk_size,
                      block_size=args.block_size, executor=args.executor, workers=args.workers,
                      scheduler=args.scheduler, progress=not args.quiet,
                      overwrite=args.overwrite)
    status = 0
    for name, r in reports.items():
        unit = "blocks" if name in PAIRWISE else "chunks"
        line = (f"{name}: {len(r.computed)} {unit} computed, {len(r.skipped)} already done, "
                f"{len(r.errors)} raised, {len(r.failed)} networks failed -> {r.path}")
        print(line)
        for key, err in sorted(r.errors.items()):
            print(f"dynrnn analyze: {name}: chunk {key} raised: {err}", file=sys.stderr)
            status = 1
    return status
