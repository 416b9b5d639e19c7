"""Compile every shipped C kernel variant family with ``-Wall -Wextra -Werror``.

``python -m dynrnn.kernels.check_build`` (exit status 1 on any warning, 2 without a compiler)
compiles each source of ``dynrnn/kernels/csrc`` in every configuration the package builds it
in (see :func:`variants`) and prints the diagnostics of those that warn. ``--quick`` checks
one configuration per source and precision.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys

from . import _cbuild
from ._rate_rnn_c import LEAK_CODES, NL_CODES

__all__ = ["variants", "check_all", "main"]


def _real(real: str) -> dict:
    return {"REAL": real, **({"REAL_IS_FLOAT": None} if real == "float" else {})}


def variants(quick: bool = False):
    """``(source name, defines, math flags, generic)`` of the variant families the package
    compiles: every nonlinearity x leak form x precision x (N below / at a whole vector) of the
    rate RNN and both precisions of the others, with the IEEE flags for this machine; the
    fast-math and the generic (no ``-march=native``) builds of one configuration per source
    and precision. ``quick``: one IEEE native configuration per source and precision."""
    reals = ("float", "double")
    out = []

    def rate(real, nl, leak, n):
        vw = 16 if real == "float" else 8
        return {**_real(real), "NL": NL_CODES[nl], "LEAK": LEAK_CODES[leak], "N": n,
                "NP": -(-n // vw) * vw, "VW": vw}

    def others(real):
        tanh = "tanhf" if real == "float" else "tanh"
        return [("linalg", {"REAL": real}), ("hebbian", {"REAL": real}),
                ("esn", {"REAL": real, "TANH": tanh}), ("izhikevich", {"REAL": real})]

    nls = ("tanh",) if quick else tuple(NL_CODES)
    leaks = ("inside",) if quick else tuple(LEAK_CODES)
    sizes = (64,) if quick else (3, 64)
    for real, nl, leak, n in itertools.product(reals, nls, leaks, sizes):
        out.append(("rate_rnn", rate(real, nl, leak, n), _cbuild.IEEE, False))
    for real in reals:
        out += [(name, d, _cbuild.IEEE, False) for name, d in others(real)]
    if quick:
        return out
    for real in reals:
        first = [("rate_rnn", rate(real, "tanh", "inside", 64)), *others(real)]
        for name, d in first:
            if name != "izhikevich":  # compiled EXACT only
                out.append((name, d, _cbuild.FAST_MATH, False))
            out.append((name, d, _cbuild.IEEE, True))
    return out


def check_all(quick: bool = False) -> list[tuple[str, dict, str]]:
    """``[(source, defines, diagnostics)]`` of the variants (:func:`variants`) that do not
    compile cleanly under ``-Wall -Wextra -Werror`` (empty: all clean)."""
    failures = []
    for name, defines, math, generic in variants(quick):
        diag = _cbuild.check_build(_cbuild.source(name), defines, math, generic=generic)
        if diag is not None:
            failures.append((name, defines, diag))
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dynrnn.kernels.check_build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one configuration per source and precision")
    args = parser.parse_args(argv)
    try:
        failures = check_all(quick=args.quick)
    except RuntimeError as err:
        print(f"check_build: {err}", file=sys.stderr)
        return 2
    shown = set()
    for name, defines, diag in failures:
        body = re.sub(r"/tmp/dynrnn-cc-\w+/k\.c", f"csrc/{name}.c", diag)
        print(f"== csrc/{name}.c {defines}", file=sys.stderr)
        if body not in shown:  # the same warnings in many variants: printed once
            shown.add(body)
            print(body, file=sys.stderr)
    n = len(variants(args.quick))
    print(f"check_build: {n} variants, {len(failures)} with warnings")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
