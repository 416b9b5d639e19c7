"""Benchmark: fixed points of many trained 3-bit flip-flop networks.

dynrnn (``dynrnn.analyses.find_fixed_points``: all K networks x P initial states in one batched
optimisation -- Adam, then damped Newton / Levenberg--Marquardt with float64 residuals and the
C batched LU of ``dynrnn.kernels.linalg``) against a straightforward per-network
loop in the style of the well-known reference finder (FixedPointFinder, Golub & Sussillo 2018):
Adam on the mean of q with initial learning rate 1.0 and plateau decay, gradient-norm clipping,
stopping when every q < 1e-12 (or |dq| < 1e-20) or after 10,000 iterations; then deduplication,
outlier removal, Jacobians and eigendecomposition per network. The baseline is written here from
the published description (no reference code is used).

Both methods start from the *same* initial states (trajectory states + N(0, 0.5^2) noise). The
baseline is run on a subset of the networks, half from those where dynrnn finds stable fixed
points and half from those without (memories held on slow cycles, where the baseline runs all
its iterations); its time is extrapolated per group, linearly in the group's size (it is a loop
over networks); the output says so.

Usage::

    python benchmarks/fixed_points.py                       # 64 networks x 1024 inits
    python benchmarks/fixed_points.py --baseline-networks 8 --threads 2
    python benchmarks/fixed_points.py --model tests/data/flipflop3_rate64 --threads 1

Trained networks are cached under ``--cache`` (default: a temp dir) so reruns skip training;
the first run trains the 64-network zoo together (about 2,500 Adam steps: tens of minutes on two
CPU cores).

Reading the ratio: the baseline's cost depends on the network. Where every candidate reaches
q < 1e-12 it stops after ~400 iterations; where some candidates never converge (networks that
hold memories on limit cycles, with slow regions but no fixed point nearby) it runs all 10,000.
The output therefore also gives the ratio on the same subset and on its early-stopping part,
and, per kind of network (with stable fixed points / without), dynrnn's time on all networks
of the kind at once against the baseline's mean per network of the kind, in wall and in CPU
time, the worst kind beside the best, and whether both methods find the same number of stable
points on every compared network. dynrnn timings are medians of ``--repeats`` runs. On a
machine shared with other jobs the wall time includes waiting for a core; the CPU time of the
process (one thread) is the steadier measure.

``--model tests/data/flipflop3_rate64`` runs on stored networks instead of training a zoo;
``--eigenvalues-only`` runs dynrnn with ``eigenvectors=False`` (the baseline computes
eigenvalues only; by default dynrnn also returns right and left eigenvectors, ~1.6 ms more per
unique 64 x 64 point).

Measured (32-network zoo of this script, seed 0, 1024 initial states, 1 thread, a 2-core
machine shared with 3-4 other jobs; baseline on 2 + 2 networks): networks with stable fixed
points 139 ms CPU per network (280 ms wall) against the baseline's 690 ms (1048 ms) -> 4.9x
CPU / 3.7x wall, the worst kind; networks without 230 ms against 2358 ms -> 10.2x CPU /
13.3x wall. The goal on the stable kind is >= 20x. Where dynrnn's time goes on it: Adam phase
~40 ms (50 iterations), Newton phase ~75 ms (one Jacobian + LU per candidate in its first
iteration), eigendecompositions of the ~27 unique points ~35 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dynrnn.analyses import find_fixed_points, sample_initial_states, speed
from dynrnn.models import Ensemble, RateRNNConfig


# --------------------------------------------------------------------------- the zoo
def flipflop_batch(batch, T, n_bits, p, gen):
    occ = torch.rand(batch, T, n_bits, generator=gen) < p
    sign = torch.where(torch.rand(batch, T, n_bits, generator=gen) < 0.5, 1.0, -1.0)
    pulses = occ.float() * sign
    steps = torch.arange(T).view(1, T, 1).expand(batch, T, n_bits)
    last = torch.where(occ, steps, torch.full_like(steps, -1)).cummax(1).values
    seen = last >= 0
    targets = torch.where(seen, pulses.gather(1, last.clamp(min=0)), 0.0)
    return pulses, targets, seen.float()


def simulate(model, x, noise=0.0, gen=None):
    params = model.prepare()
    drive = model.input_drive(x[None]).expand(model.n_networks, -1, -1, -1)
    h = model.init_state(x.shape[0])
    states = []
    for d in drive.unbind(2):
        h = model.step_drive(h, d, params)
        if noise:
            h = h + noise * torch.randn(h.shape, generator=gen)
        states.append(h)
    S = torch.stack(states, 2)
    return S, model.readout(S)


def train_zoo(n_networks, n_units, n_bits, max_iters, seed=0, log=print):
    """K tanh RNNs trained together (independent parameters; Adam; state noise 0.05)."""
    model = Ensemble(RateRNNConfig(n_bits, n_units, n_bits), n_networks=n_networks, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    test = flipflop_batch(64, 200, n_bits, 0.05, torch.Generator().manual_seed(999))
    t0 = time.perf_counter()
    for it in range(max_iters):
        x, y, m = flipflop_batch(64, 100, n_bits, 0.05, gen)
        _, out = simulate(model, x, 0.05, gen)
        loss = (((out - y) ** 2 * m).sum((1, 2, 3)) / m.sum()).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 0 or it == max_iters - 1:
            with torch.no_grad():
                _, out = simulate(model, test[0])
                mse = ((out - test[1]) ** 2 * test[2]).sum((1, 2, 3)) / test[2].sum()
            n_ok = int((mse < 1e-3).sum())
            log(f"  train it {it:5d}  {time.perf_counter() - t0:7.1f}s  "
                f"{n_ok}/{n_networks} networks with MSE < 1e-3")
            if n_ok >= int(0.95 * n_networks):
                break
    return model, mse


def load_or_train(cache: Path, n_networks, n_units, n_bits, max_iters, log=print):
    tag = f"flipflop{n_bits}_K{n_networks}_N{n_units}"
    weights, meta = cache / f"{tag}.pt", cache / f"{tag}.json"
    model = Ensemble(RateRNNConfig(n_bits, n_units, n_bits), n_networks=n_networks, seed=0)
    if weights.exists() and meta.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
        mse = torch.tensor(json.loads(meta.read_text())["mse"])
        log(f"loaded {n_networks} trained networks from {weights}")
        return model, mse
    log(f"training {n_networks} networks (cached to {cache}) ...")
    model, mse = train_zoo(n_networks, n_units, n_bits, max_iters, log=log)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    meta.write_text(json.dumps({"mse": mse.tolist()}))
    return model, mse


# --------------------------------------------------------------------------- the baseline
def reference_style_finder(net, x0, u, *, lr=1.0, max_iters=10_000, tol_q=1e-12, tol_dq=None,
                           clip=1.0, dedupe_tol=1e-3, outlier_scale=10.0):
    """One network, float32, Adam on mean q with plateau decay (FixedPointFinder style).

    Stops when every q < tol_q, after ``max_iters``, or -- only if ``tol_dq`` is given -- when
    the mean q changes by less than ``tol_dq`` between iterations.
    """
    x = x0.float().clone().requires_grad_(True)
    xin = u.float().expand(1, x.shape[0], -1)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=20)
    prev = math.inf
    n_iters = 0
    for it in range(1, max_iters + 1):
        n_iters = it
        r = net.step(x[None], xin)[0] - x
        q = 0.5 * (r * r).sum(-1)
        loss = q.mean()
        value = float(loss.detach())
        if float(q.detach().max()) < tol_q or (tol_dq is not None and abs(prev - value) < tol_dq):
            break
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([x], clip)
        opt.step()
        sched.step(value)
        prev = value
    x = x.detach()
    with torch.no_grad():
        r = net.step(x[None], xin)[0] - x
        q = 0.5 * (r * r).sum(-1)
    # outliers, then greedy deduplication (lowest q first)
    c = x0.float().mean(0)
    d0 = (x0.float() - c).norm(dim=-1).mean()
    keep = (x - c).norm(dim=-1) <= outlier_scale * d0
    xs, qs = x[keep], q[keep]
    order = torch.argsort(qs)
    xs, qs = xs[order], qs[order]
    taken = torch.zeros(len(xs), dtype=torch.bool)
    uniq = []
    for i in range(len(xs)):
        if taken[i]:
            continue
        uniq.append(i)
        taken |= (xs - xs[i]).norm(dim=-1) < dedupe_tol
    fps, fq = xs[uniq], qs[uniq]
    J = torch.stack([torch.autograd.functional.jacobian(
        lambda h: net.step(h[None, None], xin[:, :1])[0, 0], p) for p in fps])
    lam = torch.linalg.eigvals(J)
    stable = (lam.abs().amax(-1) < 1) & (fq < tol_q)
    return {"points": fps, "q": fq, "stable": stable, "iterations": n_iters, "final_q": q}


# --------------------------------------------------------------------------- main
def timed(fn, repeats=1):
    """``(result of the last call, median wall s, median CPU s of this process)``.

    On a machine shared with other jobs the wall time includes waiting for a core; the CPU
    time of this process (one thread: the work it did) is the steadier measure of cost.
    """
    walls, cpus, out = [], [], None
    for _ in range(max(1, repeats)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return out, float(np.median(walls)), float(np.median(cpus))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-networks", type=int, default=64)
    p.add_argument("--n-units", type=int, default=64)
    p.add_argument("--n-bits", type=int, default=3)
    p.add_argument("--n-initial", type=int, default=1024)
    p.add_argument("--baseline-networks", type=int, default=8,
                   help="networks the per-network baseline runs on, half with and half without "
                        "stable fixed points, evenly spaced within each group over the "
                        "zoo (its time is extrapolated linearly to all networks)")
    p.add_argument("--max-iters", type=int, default=10_000, help="baseline iterations")
    p.add_argument("--train-iters", type=int, default=2500)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3,
                   help="dynrnn runs per timing (the median is reported)")
    p.add_argument("--eigenvalues-only", action="store_true",
                   help="dynrnn without eigenvectors (eigenvectors=False), the output the "
                        "baseline computes (its eigvals); by default dynrnn also computes the "
                        "right and left eigenvectors of every point")
    p.add_argument("--model", type=Path, default=None,
                   help="stored networks (dynrnn.zoo.save_model stem, e.g. "
                        "tests/data/flipflop3_rate64) instead of the trained zoo; cast to "
                        "float32")
    p.add_argument("--cache", type=Path,
                   default=Path(tempfile.gettempdir()) / "dynrnn_bench_fixed_points")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs")

    P = args.n_initial
    vectors = not args.eigenvalues_only
    if args.model is not None:
        from dynrnn.zoo import load_model

        model, _ = load_model(args.model, dtype=torch.float32)
        args.n_bits = int(model.n_inputs)
        with torch.no_grad():
            tx, ty, tm = flipflop_batch(64, 200, args.n_bits, 0.05,
                                        torch.Generator().manual_seed(999))
            _, out = simulate(model, tx)
            mse = ((out - ty) ** 2 * tm).sum((1, 2, 3)) / tm.sum()
        print(f"loaded {model.n_networks} networks from {args.model}")
    else:
        model, mse = load_or_train(args.cache, args.n_networks, args.n_units, args.n_bits,
                                   args.train_iters)
    K = int(model.n_networks)
    model.requires_grad_(False)
    trained = (mse < 1e-3).numpy()
    print(f"{int(trained.sum())}/{K} networks reach masked MSE < 1e-3")

    x, _, _ = flipflop_batch(128, 200, args.n_bits, 0.05, torch.Generator().manual_seed(7))
    with torch.no_grad():
        traj, _ = simulate(model, x)
    x0 = sample_initial_states(traj, P, noise_std=0.5, seed=0)  # [K, P, N] shared by both
    u = torch.zeros(args.n_bits)

    # ---------------- dynrnn, all networks at once
    find_fixed_points(model.select([0]), initial_states=x0[:1, :8],  # warm-up (lazy imports)
                      progress=False, eigenvectors=vectors)
    ds, t_ours, c_ours = timed(
        lambda: find_fixed_points(model, u, initial_states=x0, progress=False,
                                  eigenvectors=vectors), args.repeats)
    print(f"\ndynrnn: {K} networks x {P} initial states in {t_ours:.1f}s wall, "
          f"{c_ours:.1f}s CPU (median of {args.repeats}) "
          f"(first-order {ds.attrs['seconds_first_order']:.1f}s, "
          f"LM {ds.attrs['seconds_refinement']:.1f}s, "
          f"max LM iterations {ds.attrs['newton_iterations']})")
    conv = int((ds.candidate_status == 0).sum())
    print(f"  candidates converged (q < 1e-12): {conv}/{K * P}; slow: "
          f"{int((ds.candidate_status == 1).sum())}; not converged: "
          f"{int(ds.n_not_converged.sum())}; outliers: {int(ds.n_outliers.sum())}")
    ok = ds.valid & ds.converged
    print(f"  max q over fixed points: {float(ds.q.where(ok).max()):.2e}")
    n_st = ds.n_stable.values
    print(f"  stable fixed points per network: {np.bincount(n_st).nonzero()[0].tolist()} "
          f"(counts {np.bincount(n_st)[np.bincount(n_st) > 0].tolist()}); "
          f"{int((n_st[trained] == 2 ** args.n_bits).sum())}/{int(trained.sum())} trained "
          f"networks have exactly {2 ** args.n_bits}")

    # ---------------- baseline, one network at a time
    # Stratified subset: networks whose memories are fixed points (dynrnn finds stable points)
    # and networks that hold them on slow cycles (no stable point) cost the baseline very
    # differently, so the subset takes half from each group and the extrapolation weights
    # each group by its size.
    n_sub = max(1, min(args.baseline_networks, K))
    with_stable = np.flatnonzero(n_st > 0)
    without = np.flatnonzero(n_st == 0)
    groups = [g for g in (with_stable, without) if len(g)]
    per_group = max(1, n_sub // len(groups))
    picks = {}
    for g in groups:
        idx = g[np.linspace(0, len(g) - 1, min(per_group, len(g))).round().astype(int)]
        picks[id(g)] = sorted(int(i) for i in idx)
    subset = sorted(k for ks in picks.values() for k in ks)
    t_base = 0.0
    base_times: list[float] = []
    base_cpu: dict[int, float] = {}
    base_stable: dict[int, int] = {}
    agree = []
    n_unique = [0, 0]
    print(f"\nbaseline (per-network Adam, lr 1.0 + plateau decay, max {args.max_iters} its) on "
          f"{len(subset)} networks:")
    for k in subset:
        net = model.select(k)
        c0, t0 = time.process_time(), time.perf_counter()
        res = reference_style_finder(net, x0[k], u[None], max_iters=args.max_iters)
        dt = time.perf_counter() - t0
        base_cpu[k] = time.process_time() - c0
        t_base += dt
        base_times.append(dt)
        ref_stable = res["points"][res["stable"]].double()
        base_stable[k] = len(ref_stable)
        d = ds.isel(network=k)
        our_stable = torch.as_tensor(d.points.values[(d.valid & d.converged).values
                                                     & (d.stability.values == 0)])
        if len(ref_stable) and len(our_stable):
            dist = torch.cdist(ref_stable, our_stable)
            matched_ref = int((dist.min(1).values < 1e-3).sum())
            matched_ours = int((dist.min(0).values < 1e-3).sum())
            max_d = float(dist.min(1).values.max())
        else:
            matched_ref = matched_ours = 0
            max_d = math.nan
        same = matched_ref == len(ref_stable) == len(our_stable) == matched_ours
        agree.append(same)
        extra = ""
        if not same and len(ref_stable) and len(our_stable):
            # a stable point one method found and the other missed: is it a true fixed point?
            miss_ours = ref_stable[dist.min(1).values >= 1e-3]
            miss_ref = our_stable[dist.min(0).values >= 1e-3]
            q_a = speed(net.double(), miss_ours[None]) if len(miss_ours) else torch.zeros(1, 0)
            q_b = speed(net.double(), miss_ref[None]) if len(miss_ref) else torch.zeros(1, 0)
            extra = (f"\n    (found by the baseline only: {len(miss_ours)}, float64 q "
                     f"{q_a.flatten().tolist()}; by dynrnn only: {len(miss_ref)}, float64 q "
                     f"{q_b.flatten().tolist()}: different basins reached from the same "
                     f"initial states)")
        n_unique[0] += int((res["q"] < 1e-12).sum())
        n_unique[1] += int((d.valid & d.converged).sum())
        print(f"  network {k}: {dt:6.1f}s, {res['iterations']} its, baseline max q "
              f"{float(res['final_q'].max()):.1e} (fraction q<1e-12: "
              f"{float((res['final_q'] < 1e-12).float().mean()):.2f}); stable points "
              f"baseline {len(ref_stable)} / dynrnn {len(our_stable)}, matched within 1e-3: "
              f"{matched_ref}; max distance {max_d:.1e}; same set: {same}{extra}")
    sub_model = model.select(subset)
    t0 = time.perf_counter()
    find_fixed_points(sub_model, u, initial_states=x0[subset], progress=False,
                      eigenvectors=vectors)
    t_ours_sub = time.perf_counter() - t0
    quick = [k for k, t in zip(subset, base_times) if t < 5.0]
    t0 = time.perf_counter()
    if quick:
        find_fixed_points(model.select(quick), u, initial_states=x0[quick], progress=False,
                          eigenvectors=vectors)
    t_ours_quick = time.perf_counter() - t0
    time_of = dict(zip(subset, base_times))
    t_base_all = 0.0
    for g in groups:
        ks = picks[id(g)]
        mean_t = sum(time_of[k] for k in ks) / len(ks)
        t_base_all += mean_t * len(g)
        kind = "with stable fixed points" if g is with_stable else "without (slow cycles)"
        print(f"  group {kind}: {len(g)} networks, baseline mean {mean_t:.2f}s per network "
              f"on {len(ks)} of them")
    print(f"\nbaseline time: {t_base:.1f}s for {len(subset)} networks -> extrapolated "
          f"{t_base_all:.1f}s for {K} networks (per group, linear in its size)")
    print(f"dynrnn time:   {t_ours:.1f}s for {K} networks")
    print(f"speed-up (baseline / dynrnn): {t_base_all / t_ours:.1f}x   [goal >= 50x]")
    print(f"same {len(subset)} networks only: baseline {t_base:.1f}s, dynrnn {t_ours_sub:.1f}s "
          f"-> {t_base / t_ours_sub:.1f}x")
    if quick:
        t_b = sum(t for t in base_times if t < 5.0)
        print(f"the {len(quick)} of them where the baseline converged early (< 5 s): baseline "
              f"{t_b:.1f}s, dynrnn {t_ours_quick:.1f}s -> {t_b / t_ours_quick:.1f}x")
    print(f"same stable fixed points on all compared networks: {all(agree)} "
          f"({sum(agree)}/{len(agree)})")
    print(f"unique fixed points found on the compared networks: baseline {n_unique[0]} "
          f"(float32, q < 1e-12 in float32), dynrnn {n_unique[1]} (float64, q < 1e-12)")

    # ---------------- the ratio per kind of network
    # dynrnn runs on all networks of the kind at once (as a scientist would); the baseline's
    # mean per network of the kind (on its subset) times the kind's size.
    print("\nper kind of network (dynrnn on all networks of the kind at once, median of "
          f"{args.repeats}; baseline: mean per network on its subset x the kind's size):")
    rows = []
    for g in groups:
        ks = picks[id(g)]
        kind = "with stable fixed points" if g is with_stable else "without (slow cycles)"
        sel = [int(k) for k in g]
        _, tw, tc = timed(lambda sel=sel: find_fixed_points(
            model.select(sel), u, initial_states=x0[sel], progress=False,
            eigenvectors=vectors), args.repeats)
        bw = sum(time_of[k] for k in ks) / len(ks) * len(g)
        bc = sum(base_cpu[k] for k in ks) / len(ks) * len(g)
        rows.append((kind, bw / tw, bc / tc))
        same = sum(base_stable[k] == int(n_st[k]) for k in ks)
        print(f"  {kind}: {len(g)} networks; dynrnn {tw / len(g) * 1e3:.0f} ms wall / "
              f"{tc / len(g) * 1e3:.0f} ms CPU per network, baseline {bw / len(g) * 1e3:.0f} ms "
              f"wall / {bc / len(g) * 1e3:.0f} ms CPU per network -> {bw / tw:.1f}x wall, "
              f"{bc / tc:.1f}x CPU   [goal >= 20x]; stable points per network equal on "
              f"{same}/{len(ks)} compared (baseline {[base_stable[k] for k in ks]}, dynrnn "
              f"{[int(n_st[k]) for k in ks]})")
    if rows:
        worst = min(rows, key=lambda r: r[2])
        best = max(rows, key=lambda r: r[2])
        print(f"worst kind: {worst[0]} {worst[1]:.1f}x wall / {worst[2]:.1f}x CPU; best kind: "
              f"{best[0]} {best[1]:.1f}x wall / {best[2]:.1f}x CPU")


if __name__ == "__main__":
    main()
