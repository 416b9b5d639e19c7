"""Stability certificates for many networks: the fast batched weighted-norm bound vs the SDP.

Baseline: ``inf_Theta ||Theta W Theta^{-1}||_2`` over positive diagonal Theta solved per network
as an LMI with cvxpy (bisection on gamma, one SDP per step; Clarabel, SCS as fallback), as
:func:`dynrnn.analyses.weighted_norm_sdp` does. Candidate: :func:`dynrnn.analyses.
weighted_norm_fast` (Perron scaling + batched descent, no solver) on all networks at once, and
the whole :func:`dynrnn.analyses.certify_matrices` call (every condition).

The SDP is slow (minutes per 64-unit network), so it runs on ``--n-sdp`` networks and its time
is extrapolated linearly to all networks; the output says so. Prints ratios; not a test.

    python benchmarks/stability.py                      # 10,000 networks of 64 units
    python benchmarks/stability.py --n-networks 1000 --n-sdp 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from dynrnn.analyses import certify_matrices, weighted_norm_fast, weighted_norm_sdp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-networks", type=int, default=10_000)
    ap.add_argument("--n-units", type=int, default=64)
    ap.add_argument("--n-sdp", type=int, default=3, help="networks solved by the SDP")
    ap.add_argument("--rel-tol", type=float, default=1e-4, help="SDP bisection tolerance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-smooth", type=int, default=200,
                    help="networks timed with the Schatten-smoothed fast bound (smooth_iter=60)")
    args = ap.parse_args()
    K, N = args.n_networks, args.n_units
    g = torch.Generator().manual_seed(args.seed)
    gains = 0.3 + 0.9 * torch.rand(K, 1, 1, generator=g, dtype=torch.float64)
    W = torch.randn(K, N, N, generator=g, dtype=torch.float64) * gains / np.sqrt(N)
    print(f"{K} networks of {N} units, W ~ N(0, g^2 / N), g ~ U(0.3, 1.2); "
          f"torch threads: {torch.get_num_threads()}")

    t0 = time.perf_counter()
    fast, _ = weighted_norm_fast(W)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = certify_matrices(W, nonlinearity="tanh")
    t_all = time.perf_counter() - t0
    print(f"fast weighted-norm bound, all {K}: {t_fast:.2f} s "
          f"({1e3 * t_fast / K:.3f} ms per network)")
    print(f"certify_matrices (all conditions), all {K}: {t_all:.2f} s; certified: "
          f"{int(ds['certified'].sum())}/{K}")
    ns = min(args.n_smooth, K)
    t0 = time.perf_counter()
    smooth, _ = weighted_norm_fast(W[:ns], smooth_iter=60, n_iter=30)
    t_smooth = (time.perf_counter() - t0) / ns * K
    print(f"smoothed fast bound (smooth_iter=60) MEASURED on {ns}, EXTRAPOLATED to {K}: "
          f"{t_smooth:.1f} s ({1e3 * t_smooth / K:.1f} ms per network)")

    n = min(args.n_sdp, K)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gamma, lower, _, status = weighted_norm_sdp(
            W[:n], upper=fast[:n].numpy(), rel_tol=args.rel_tol
        )
    t_sdp_meas = time.perf_counter() - t0
    per_net = t_sdp_meas / n
    t_sdp_all = per_net * K
    print(f"SDP (cvxpy, bisection to rel. tol {args.rel_tol:g}) MEASURED on {n} networks: "
          f"{t_sdp_meas:.1f} s ({per_net:.1f} s per network); EXTRAPOLATED to {K}: "
          f"{t_sdp_all:.0f} s = {t_sdp_all / 3600:.2f} h; status {sorted(set(status))}")
    print(f"time ratio SDP / fast (extrapolated SDP): {t_sdp_all / t_fast:.0f}x; "
          f"SDP / smoothed fast (both extrapolated): {t_sdp_all / t_smooth:.0f}x")
    f = fast[:n].numpy()
    ok = np.isfinite(lower)
    if ok.any():
        for name, vals in (("fast", f), ("smoothed fast", smooth[:n].numpy())):
            gap = (vals[ok] - lower[ok]) / lower[ok]
            print(f"{name} bound above the SDP optimum (relative, on the {int(ok.sum())} "
                  f"solved): median {np.median(gap):.2e}, max {gap.max():.2e}")
        rho = torch.linalg.eigvals(W[:n]).abs().amax(-1).numpy()[ok]
        n2 = torch.linalg.matrix_norm(W[:n], 2).numpy()[ok]
        print("rho(W) / SDP optimum / fast / ||W||_2 per solved network:")
        for row in zip(rho, lower[ok], f[ok], n2):
            print("   " + "  ".join(f"{v:.5f}" for v in row))


if __name__ == "__main__":
    main()
