"""Automaton extraction from many networks at once vs a plain per-network loop.

Trains K RateRNNs on 3-parity (``ParityTask(n_values=(3,))``, all K in one batched training
run; cached under ``--cache``), then extracts one minimal DFA per network:

* **dynrnn**: :func:`dynrnn.analyses.extract_automata` on all K networks in one call (batched
  torch k-means, batched majority-vote tables);
* **baseline**: a loop over networks, each with scikit-learn's ``KMeans`` (same k-means++ /
  Lloyd algorithm, ``n_init=3``) and its own numpy majority-vote table, the same choice of k
  (smallest k from 2 whose minimal DFA reaches 99.9% prefix-level validation fidelity), the
  same strings, start state, don't-care labels and Hopcroft minimisation. The baseline runs on
  the first ``--baseline-networks`` networks (its time per network does not depend on K).

Prints the time per network of both, their ratio, and how often the two give the same minimal
state count. Needs scikit-learn for the baseline (``pip install scikit-learn``).

    python benchmarks/automata.py                 # K = 256
    python benchmarks/automata.py --networks 64   # reduced size
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import torch

from dynrnn.analyses.automata import DFA, extract_automata, hopcroft_minimise
from dynrnn.models import Ensemble, RateRNN, RateRNNConfig, run
from dynrnn.tasks import ParityTask
from dynrnn.training import TrainConfig, train


def trained_networks(K: int, cache: str, steps: int) -> RateRNN:
    model = Ensemble(RateRNNConfig(1, 16, 2), n_networks=K, seed=0)
    path = os.path.join(cache, f"parity3_rate16_K{K}_steps{steps}.pt")
    if os.path.exists(path):
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    t = time.perf_counter()
    train(model, ParityTask(n_values=(3,)),
          TrainConfig(n_steps=steps, batch_size=64, lr=0.01, eval_every=25,
                      accuracy_threshold=0.995, progress=False), seed=0)
    print(f"trained {K} networks in {time.perf_counter() - t:.1f} s")
    os.makedirs(cache, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def baseline(model, view, train_sym, val_sym, k_range=(2, 20), target=0.999, n_fit=4000,
             seed=0):
    """Per-network loop: sklearn KMeans + numpy majority-vote table + Hopcroft."""
    from sklearn.cluster import KMeans

    A, C = view.n_symbols, view.n_classes
    m = model.double().eval()
    x = view.encode(train_sym).double()
    h0 = m.init_state(train_sym.shape[0])
    with torch.no_grad():
        states, out = run(m, x, h0)
        lab = view.read(torch.cat([m.readout(h0)[:, :, None], out], 2)).numpy()
        _, out_v = run(m, view.encode(val_sym).double())
        lab_v = view.read(out_v).numpy()
    P = torch.cat([h0[:, :, None], states], 2).numpy()  # [K, B, T+1, N]
    sym = train_sym.numpy()
    B, T = sym.shape
    valid = np.concatenate([np.zeros((B, 1), bool), sym >= 0], 1)  # non-empty prefixes
    ev = (np.arange(T + 1)[None] >= max(view.min_length, 1)) & valid
    vs = val_sym.numpy()
    ev_v = ((np.arange(vs.shape[1] + 1)[None] >= max(view.min_length, 1))
            & np.concatenate([np.zeros((len(vs), 1), bool), vs >= 0], 1))
    rng = np.random.default_rng(seed)
    fit = rng.permutation(int(valid.sum()))[:n_fit]
    counts = []
    for i in range(P.shape[0]):
        pts = P[i][valid]
        for k in range(k_range[0], k_range[1] + 1):
            km = KMeans(k, n_init=3, random_state=seed).fit(pts[fit])
            a = np.full(valid.shape, k)  # row k: the start state (empty prefix)
            a[valid] = km.predict(pts)
            table = np.zeros((k + 1, A, k + 1), int)
            real = sym >= 0
            np.add.at(table, (a[:, :-1][real], sym[real], a[:, 1:][real]), 1)
            nxt = np.where(table.sum(-1) > 0, table.argmax(-1), k + 1)  # k + 1: the sink
            lc = np.zeros((k + 1, C), int)
            np.add.at(lc, (a[ev], lab[i][ev]), 1)
            labels = np.where(lc.sum(-1) > 0, lc.argmax(-1), -1)
            t_full = np.vstack([nxt, np.full((1, A), k + 1)])
            labels = np.append(labels, 0)
            best = None  # don't-care labels chosen to minimise the state count
            free = np.flatnonzero(labels < 0)
            if C ** len(free) > 16:  # as dynrnn: exhaustive only up to 16 assignments
                labels[free], free = 0, free[:0]
            for combo in itertools.product(range(C), repeat=len(free)):
                lab_k = labels.copy()
                lab_k[free] = combo
                d, _ = hopcroft_minimise(DFA(t_full, lab_k, k, C))
                if best is None or d.n_states < best.n_states:
                    best = d
            dfa = best
            pred = dfa.prefix_labels(val_sym)
            fid = np.mean(pred[ev_v] == lab_v[i][ev_v[:, 1:]])
            if fid >= target:
                break
        counts.append(dfa.n_states)
    return np.array(counts)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", type=int, default=256)
    p.add_argument("--baseline-networks", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), ".cache"))
    args = p.parse_args()
    torch.manual_seed(0)
    model = trained_networks(args.networks, args.cache, args.train_steps)
    task = ParityTask(n_values=(3,))
    view = task.symbolic_view()
    gen = torch.Generator().manual_seed(0)
    lo, hi = view.train_lengths
    train_sym = view.sample(1000, (lo, hi), gen)
    val_sym = view.sample(500, (hi, view.test_lengths[0] - 1), gen)

    t = time.perf_counter()
    res = extract_automata(model, task, strings=train_sym, validation_strings=val_sym,
                           n_test=500, seed=0)
    t_batched = (time.perf_counter() - t) / args.networks
    ds = res.dataset

    nb = min(args.baseline_networks, args.networks)
    sub = model.select(list(range(nb)))
    t = time.perf_counter()
    base_counts = baseline(sub, view, train_sym, val_sym)
    t_loop = (time.perf_counter() - t) / nb

    ours = ds.n_states_after.values[:nb]
    print(f"networks: {args.networks} (baseline on {nb}); torch threads "
          f"{torch.get_num_threads()}")
    print(f"minimal states (dynrnn): {np.bincount(ds.n_states_after.values).tolist()} "
          f"(index = states); inconclusive {int(ds.inconclusive.sum())}; "
          f"median fidelity {float(ds.fidelity.median()):.3f}")
    print(f"dynrnn batched:   {1e3 * t_batched:8.1f} ms per network (incl. scores)")
    print(f"sklearn loop:     {1e3 * t_loop:8.1f} ms per network (no test scores)")
    print(f"ratio loop/batched: {t_loop / t_batched:.1f}x")
    print(f"same minimal state count: {int((ours == base_counts).sum())}/{nb}")


if __name__ == "__main__":
    main()
