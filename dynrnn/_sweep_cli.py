"""``dynrnn sweep``: plan, run and follow hyperparameter sweeps declared in TOML files (the
format and the rules are in :mod:`dynrnn.batch.sweep`).

* ``dynrnn sweep plan FILE [--estimate-steps N]``: networks, chunks, structural groups and an
  estimate of the training time (``N`` timed steps of the largest chunk of each group; 0: no
  estimate).
* ``dynrnn sweep run FILE --out DIR [--executor inprocess|processes|dask] [--workers N]
  [--scheduler tcp://host:port] [--retry-failed] [--quiet]``: train the chunks not yet in the
  zoo at DIR; exit status 0 when every chunk is done, 1 when some failed (listed on stderr).
  Re-running the command after an interruption finishes the sweep.
* ``dynrnn sweep status DIR``: done / failed / pending chunks of each sweep in DIR.

Bad input (a missing file, an invalid sweep naming the field and the file, an option out of
range or not applying to the executor) is one line on stderr with exit status 2. The out
directory is never removed on failure or Ctrl-C: it is the record that resumes the sweep.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import CLIError, check_writable

EXECUTOR_CHOICES = ("inprocess", "processes", "dask")


def add_parser(sub) -> None:
    s = sub.add_parser(
        "sweep",
        help="plan, run and follow hyperparameter sweeps (TOML files) into a zoo",
        description=__doc__.replace("``", "").split("\n\n")[0],
    )
    ssub = s.add_subparsers(dest="sweep_command", required=True, metavar="SWEEP_COMMAND")

    p = ssub.add_parser("plan", help="show a sweep's networks, chunks, groups and time",
                        description="Expand the sweep file into networks and chunks, check "
                        "every grid point, and print the plan and a time estimate.")
    p.add_argument("file", metavar="FILE", help="the sweep TOML file")
    p.add_argument("--estimate-steps", type=int, default=2,
                   help="training steps timed on the largest chunk of each structural group "
                        "for the time estimate (0: no estimate)")
    p.add_argument("--networks", action="store_true",
                   help="also list every network (id, seed, grid coordinates, chunk)")
    p.set_defaults(func=cmd_plan, validate=check_plan)

    r = ssub.add_parser("run", help="train the sweep's chunks that are not yet in the zoo",
                        description="Train every chunk of the sweep not yet stored in the zoo "
                        "at --out (resumes an interrupted run; failed chunks are skipped unless "
                        "--retry-failed). Exit status 1 if chunks failed.")
    r.add_argument("file", metavar="FILE", help="the sweep TOML file")
    r.add_argument("--out", dest="sweep_out", required=True, metavar="DIR",
                   help="the zoo directory, created or appended to and never removed "
                        "(default: none, it is required)")
    r.add_argument("--executor", choices=EXECUTOR_CHOICES, default="inprocess",
                   help="where chunks run: this process, local worker processes, or Dask")
    r.add_argument("--workers", type=int, default=None,
                   help="worker processes (processes; dask without --scheduler) (default: 2)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler, tcp://host:port (dask only)")
    r.add_argument("--retry-failed", action="store_true",
                   help="re-run the chunks recorded as failed")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run, validate=check_run)

    st = ssub.add_parser("status", help="done / failed / pending chunks of the sweeps in DIR",
                         description="For every sweep planned in DIR: chunks done, failed and "
                         "pending, networks stored and diverged; the error of each failed "
                         "chunk.")
    st.add_argument("dir", metavar="DIR", help="the out directory of `dynrnn sweep run`")
    st.set_defaults(func=cmd_status, validate=check_status)


def _check_file(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"FILE {path}: no such sweep file")
    if not p.is_file():
        raise CLIError(f"FILE {path}: not a file")


def check_plan(args) -> None:
    """``dynrnn sweep plan``: FILE exists, --estimate-steps >= 0."""
    _check_file(args.file)
    if args.estimate_steps < 0:
        raise CLIError(f"--estimate-steps must be an int >= 0; got {args.estimate_steps}")


def check_run(args) -> None:
    """``dynrnn sweep run``: FILE exists; --workers >= 1 and only for processes/dask;
    --scheduler only for dask and an address; --out writable."""
    _check_file(args.file)
    if args.workers is not None:
        if args.executor == "inprocess":
            raise CLIError("--workers applies only to --executor processes and dask, not to "
                           "--executor inprocess")
        if args.workers < 1:
            raise CLIError(f"--workers must be an int >= 1; got {args.workers}")
    if args.scheduler is not None:
        if args.executor != "dask":
            raise CLIError(f"--scheduler applies only to --executor dask, not to --executor "
                           f"{args.executor}")
        if "://" not in args.scheduler:
            raise CLIError(f"--scheduler must be an address such as tcp://host:8786; got "
                           f"{args.scheduler!r}")
        if args.workers is not None:
            raise CLIError("--workers applies to --executor dask only without --scheduler "
                           "(the scheduler's cluster has its own workers)")
    check_writable(args.sweep_out)


def check_status(args) -> None:
    """``dynrnn sweep status``: DIR is a directory."""
    p = Path(args.dir)
    if not p.is_dir():
        raise CLIError(f"DIR {args.dir}: " + ("not a directory" if p.exists()
                                              else "no such directory"))


def _load(path: str):
    from dynrnn.batch.sweep import plan

    try:
        return plan(path)
    except FileNotFoundError as exc:  # removed between the check and the read
        raise CLIError(str(exc)) from None


def cmd_plan(args) -> int:
    p = _load(args.file)
    print(p.summary())
    if args.networks:
        print(p.table().to_string(index=False))
    if args.estimate_steps:
        est = p.estimate(args.estimate_steps)
        print(f"estimated training time: at most {_duration(est.seconds)} in one process "
              f"(every network running all n_steps; from {est.calibration_steps} timed steps "
              f"of the largest chunk of each group)")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_run(args) -> int:
    from dynrnn.batch.sweep import run_sweep

    p = _load(args.file)
    status = run_sweep(p.sweep, args.sweep_out, executor=args.executor, workers=args.workers,
                       scheduler=args.scheduler, retry_failed=args.retry_failed,
                       progress=not args.quiet)
    print(f"{status.summary()}; trained {len(status.trained)} chunks now "
          f"(zoo {Path(args.sweep_out).resolve()})")
    for chunk, error in status.errors.items():
        print(f"dynrnn sweep: chunk {chunk} failed: {error}", file=sys.stderr)
    if status.chunks_failed:
        hint = "" if args.retry_failed else " (--retry-failed runs them again)"
        print(f"dynrnn sweep: {len(status.chunks_failed)} chunks failed{hint}; records in "
              f"{Path(args.sweep_out) / 'sweeps' / status.name / 'failed'}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args) -> int:
    from dynrnn.batch.sweep import sweep_status

    try:
        statuses = sweep_status(args.dir)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    for st in statuses:
        print(st.summary())
        for chunk, error in st.errors.items():
            print(f"  failed chunk {chunk}: {error}")
    return 0
