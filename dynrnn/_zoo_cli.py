"""``dynrnn zoo``: commands on a zoo directory (``dynrnn zoo check PATH``; see
:meth:`dynrnn.zoo.Zoo.check` for what is checked)."""

from __future__ import annotations

import sys

CHECK_DESCRIPTION = (
    "List every damaged file of the zoo at PATH: entry JSONs that cannot be read or are "
    "invalid, weights files that are missing, not valid safetensors, disagree with the layout "
    "recorded in their JSON or with their model spec, or do not match their recorded sha256, "
    "weights files without an entry JSON, and result files that cannot be read. Prints one "
    "line per problem on stdout, '<file>: <kind> (entry <id>): <what is wrong>', and exits "
    "with status 1 if there is any; prints one 'ok' line and exits with 0 if there is none; "
    "exits with 2 (one line on stderr) if PATH does not exist or is not a directory."
)


def add_parser(sub) -> None:
    z = sub.add_parser(
        "zoo",
        help="inspect a zoo directory (check its files)",
        description="Commands on a zoo directory of trained networks and analysis results.",
    )
    zsub = z.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    c = zsub.add_parser(
        "check",
        help="list damaged or missing files of a zoo (exit status 1 if any)",
        description=CHECK_DESCRIPTION,
    )
    c.add_argument("path", metavar="PATH", help="the zoo directory")
    c.add_argument(
        "--no-verify", dest="verify", action="store_false", default=True,
        help="do not hash the weights files against the sha256 recorded in their JSON (reads "
             "only JSONs, file headers and results; faster on large zoos) (default: off, "
             "every weights file is hashed)",
    )
    c.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    """Run ``dynrnn zoo check``: 0 no problems, 1 problems listed, 2 no zoo at the path."""
    from dynrnn.zoo import Zoo

    try:
        zoo = Zoo(args.path)
        problems = zoo.check(verify=args.verify)
    except FileNotFoundError:
        print(f"dynrnn: error: no zoo at {args.path} (the directory does not exist)",
              file=sys.stderr)
        return 2
    except ValueError as exc:  # the path exists and is not a directory
        print(f"dynrnn: error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        n = len(problems)
        print(f"dynrnn zoo check: {n} problem{'s' if n != 1 else ''} in {zoo.path}",
              file=sys.stderr)
        return 1
    print(f"{zoo.path}: ok ({len(zoo.entries())} entries, {len(zoo)} networks, "
          f"{len(zoo.results())} results{'' if args.verify else '; sha256 not checked'})")
    return 0
