"""Finite-state machines hidden in trained networks: automaton extraction, batched over networks.

A network trained on a symbolic task (Tomita grammars, N-parity, N-DMS, flip-flops) reads a
string symbol by symbol; if it solves the task it must carry, in its continuous state, the
states of a finite automaton. Three ways to read that automaton out, all returning one
:class:`DFA` per network and an ``xarray.Dataset`` with a ``network`` dimension:

**Quantisation** (:func:`extract_automata`; Omlin, C. W. & Giles, C. L. (1996). Extraction of
rules from discrete-time recurrent neural networks. *Neural Networks* 9(1), 41-52): run the
network (through the package's one loop :func:`~dynrnn.run`) on many strings and record the
state after every prefix; cluster the states with k-means; build the transition table by
majority vote over ``(cluster, symbol) -> next cluster``; label each cluster by the majority of
the network's own readout labels over its members (only prefixes at least ``view.min_length``
long: shorter ones were never trained, their clusters' labels are "don't care" and are chosen,
by exhaustive search over at most 16 assignments, to minimise the state count, else read from
the readout at the centroid); complete the table with a rejecting sink (label 0) for transitions
never observed; the initial state (empty prefix) is not clustered but is the DFA's start state
of its own, its successors the clusters of the one-symbol prefixes (otherwise its many identical
copies would dominate the votes of whichever cluster it fell in); drop unreachable states;
minimise (Hopcroft). The number of clusters k is chosen per network by a stated criterion: **the
smallest k in ``k_range`` (from 2 upwards) whose minimal DFA agrees with the network on at least
``fidelity_target`` of the labelled prefixes of a validation set** (every prefix at least
``min_length`` long of strings between the training and the test lengths; prefix-level rather
than end-of-string agreement, so that a wrong transition out of a rarely visited state, e.g. out
of the sink, is not hidden by strings that end elsewhere). If no k reaches it, the result is
flagged ``inconclusive`` ("no finite-state description at this resolution") and the best machine
is returned with the fidelity it reached.

The k-means is written here in torch, batched over networks and restarts (Lloyd's algorithm:
Lloyd, S. P. (1982). Least squares quantization in PCM. *IEEE Trans. Information Theory* 28(2),
129-137; k-means++ seeding: Arthur, D. & Vassilvitskii, S. (2007). k-means++: the advantages of
careful seeding. *SODA*, 1027-1035; seeded by a ``torch.Generator``; stopping rule of
scikit-learn), rather than scikit-learn's KMeans, which fits one network at a time and is not a
dependency of dynrnn: one call clusters the prefix states of all K networks, on whatever device
they live. Measured on a shared 2-core CPU (``benchmarks/automata.py``, 256 3-parity networks):
about the same time per network as a per-network loop over scikit-learn's KMeans (0.9-1.5x),
with the same minimal state counts for 27-29 of 32 networks; it is not faster there. A user
quantiser can replace it.

**Query learning** (:func:`lstar_automata`): Angluin's L* (Angluin, D. (1987). Learning regular
sets from queries and counterexamples. *Information and Computation* 75(2), 87-106) with the
network as membership oracle and equivalence queries answered by sampling strings and comparing
the hypothesis with the network (Weiss, G., Goldberg, Y. & Yahav, E. (2018). Extracting
automata from recurrent neural networks using queries and counterexamples. *ICML*, PMLR 80,
5247-5256). Counterexamples are handled as in Maler, O. & Pnueli, A. (1995). On the learnability
of infinitary regular sets. *Information and Computation* 118(2), 316-326 (all suffixes of the
counterexample become experiments, so the table stays consistent). It is small and written here
rather than depending on AALpy (MIT licensed, maintained): AALpy's learners are per automaton
with a Python SUL object, whereas here membership queries are answered in batches by running
the network on all open queries of a round at once.

**Read off the centroids** (:func:`automaton_from_centroids`) of a state-regularised RNN
(:class:`~dynrnn.models.StateRegularisedRNN`; Wang, C. & Niepert, M. (2019). State-regularized
recurrent neural networks. *ICML*, PMLR 97, 6596-6606): its states are the k centroids, so the
transitions are ``centroid -> cell step with symbol -> nearest centroid`` directly.

Scores (all on held-out strings *longer* than any training string, ``view.test_lengths``):
``fidelity`` = fraction of test strings on which the DFA's label equals the network's label
(read at the string's end); ``prefix_fidelity`` = the same over every prefix at least
``min_length`` long; ``accuracy`` = DFA vs the task's ground truth; ``network_accuracy`` =
network vs ground truth (to tell a network that does not generalise from a failed extraction).

Minimisation: Hopcroft, J. (1971). An n log n algorithm for minimizing states in a finite
automaton. In *Theory of Machines and Computations*, 189-196 (Moore-machine form: the initial
partition is by output label).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch
import xarray as xr

from .._validation import (
    ParameterTypeError,
    check_float,
    check_int,
    check_int_range_pair,
    resolve_generator,
)
from ..models.base import run
from ..tasks.tomita import (
    MAX_STRING_LENGTH,
    SymbolicView,
    check_symbols,
    pad_strings,
    run_transition_table,
)
from ._common import check_model, float64_copy, network_coords

__all__ = [
    "DFA",
    "AutomataResult",
    "hopcroft_minimise",
    "kmeans",
    "extract_automata",
    "lstar",
    "lstar_automata",
    "automaton_from_centroids",
    "reference_dfa",
    "symbolic_view",
    "MAX_STRING_LENGTH",
]


# =============================================================================== the DFA object
@dataclass
class DFA:
    """A complete deterministic finite automaton with labelled states (a Moore machine).

    Attributes:
        transitions: ``[S, A]`` int, ``transitions[s, a]`` = next state on symbol a.
        labels: ``[S]`` int in ``[0, n_classes)``: the output after a string ending in s
            (accept/reject: 1/0).
        start: the initial state.
        n_classes: number of labels C.
    """

    transitions: np.ndarray
    labels: np.ndarray
    start: int = 0
    n_classes: int = 2

    def __post_init__(self):
        t = np.asarray(self.transitions)
        lab = np.asarray(self.labels)
        if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1 or t.dtype.kind not in "iu":
            raise ValueError(
                "The 'transitions' parameter of DFA must be an int array [S, A] with S, A >= 1. "
                f"Got {t.dtype} array of shape {t.shape} instead."
            )
        S = t.shape[0]
        if t.min() < 0 or t.max() >= S:
            raise ValueError(
                f"The 'transitions' parameter of DFA must hold states in [0, {S}) (a complete "
                "DFA). Got values outside."
            )
        if lab.shape != (S,) or lab.dtype.kind not in "iub":
            raise ValueError(
                f"The 'labels' parameter of DFA must be an int array [{S}]. Got {lab.dtype} "
                f"array of shape {lab.shape} instead."
            )
        self.n_classes = check_int("DFA", "n_classes", self.n_classes, 2)
        if lab.min() < 0 or lab.max() >= self.n_classes:
            raise ValueError(
                f"The 'labels' parameter of DFA must hold labels in [0, {self.n_classes})."
            )
        self.start = check_int("DFA", "start", self.start, 0, S - 1)
        self.transitions = t.astype(np.int64)
        self.labels = lab.astype(np.int64)

    # ------------------------------------------------------------------ basic properties
    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def n_symbols(self) -> int:
        return int(self.transitions.shape[1])

    @property
    def accepting(self) -> np.ndarray:
        """``[S]`` bool: states with label 1."""
        return self.labels == 1

    def __repr__(self) -> str:
        return (f"DFA(n_states={self.n_states}, n_symbols={self.n_symbols}, start={self.start}, "
                f"n_classes={self.n_classes})")

    # ------------------------------------------------------------------ running strings
    def _symbols(self, strings: Any, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
        return check_symbols(owner, "strings", strings, self.n_symbols)

    def run(self, strings: Any) -> np.ndarray:
        """States after every prefix, ``[B, T + 1]`` (column 0 = start; padding repeats the
        last state). ``strings``: str of digits, int sequences, or ``[B, T]`` ints (-1 pad)."""
        sym, _ = self._symbols(strings, "DFA.run")
        return run_transition_table(torch.as_tensor(self.transitions), self.start, sym).numpy()

    def prefix_labels(self, strings: Any) -> np.ndarray:
        """Label after every prefix ``[B, T + 1]`` (-1 at padding)."""
        sym, _ = self._symbols(strings, "DFA.prefix_labels")
        st = run_transition_table(torch.as_tensor(self.transitions), self.start, sym).numpy()
        lab = self.labels[st]
        pad = np.concatenate([np.zeros((sym.shape[0], 1), bool), sym.numpy() < 0], 1)
        return np.where(pad, -1, lab)

    def classify(self, strings: Any) -> np.ndarray:
        """The label of each whole string, ``[B]``."""
        sym, lengths = self._symbols(strings, "DFA.classify")
        st = run_transition_table(torch.as_tensor(self.transitions), self.start, sym).numpy()
        return self.labels[st[np.arange(len(st)), lengths.numpy()]]

    def accepts(self, strings: Any) -> np.ndarray:
        """``[B]`` bool: the string ends in a state labelled 1."""
        return self.classify(strings) == 1

    # ------------------------------------------------------------------ transformations
    def reachable(self) -> DFA:
        """The DFA restricted to states reachable from ``start`` (renumbered in BFS order)."""
        order = self._bfs_order()
        index = {s: i for i, s in enumerate(order)}
        t = np.array([[index[int(q)] for q in self.transitions[s]] for s in order])
        return DFA(t, self.labels[order], 0, self.n_classes)

    def _bfs_order(self) -> list[int]:
        seen = {self.start}
        order = [self.start]
        queue = deque([self.start])
        while queue:
            s = queue.popleft()
            for q in self.transitions[s]:
                q = int(q)
                if q not in seen:
                    seen.add(q)
                    order.append(q)
                    queue.append(q)
        return order

    def minimise(self) -> DFA:
        """The minimal equivalent DFA (unreachable states dropped, then Hopcroft); states in
        BFS order from the start, so equal languages give identical tables."""
        return hopcroft_minimise(self)[0]

    # ------------------------------------------------------------------ comparisons
    def counterexample(self, other: DFA) -> list[int] | None:
        """A shortest string on which the two DFAs' labels differ, or None if they compute the
        same function (breadth-first search of the product automaton)."""
        if not isinstance(other, DFA):
            raise ParameterTypeError(
                f"The 'other' parameter of DFA.counterexample must be a DFA. Got "
                f"{type(other).__name__} instead."
            )
        if other.n_symbols != self.n_symbols:
            raise ValueError(
                f"The DFAs have different alphabets ({self.n_symbols} and {other.n_symbols} "
                "symbols)."
            )
        start = (self.start, other.start)
        parent: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
        queue = deque([start])
        while queue:
            p = queue.popleft()
            if self.labels[p[0]] != other.labels[p[1]]:
                out = []
                while parent[p] is not None:
                    p, a = parent[p]
                    out.append(a)
                return out[::-1]
            for a in range(self.n_symbols):
                q = (int(self.transitions[p[0], a]), int(other.transitions[p[1], a]))
                if q not in parent:
                    parent[q] = (p, a)
                    queue.append(q)
        return None

    def equivalent(self, other: DFA) -> bool:
        """Whether both DFAs give every string the same label."""
        return self.counterexample(other) is None

    def agreement(self, other: DFA, strings: Any) -> float:
        """Fraction of ``strings`` on which the two DFAs give the same label."""
        return float(np.mean(self.classify(strings) == other.classify(strings)))

    # ------------------------------------------------------------------ export
    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph``: nodes = states with attributes ``label``, ``accepting``,
        ``start``; one edge per (state, next state) with ``symbols`` (the sorted list of symbols
        taking it) and ``label`` (them joined by commas)."""
        g = nx.DiGraph(n_classes=self.n_classes, start=self.start, n_symbols=self.n_symbols)
        for s in range(self.n_states):
            g.add_node(s, label=int(self.labels[s]), accepting=bool(self.labels[s] == 1),
                       start=s == self.start)
        for s in range(self.n_states):
            for a in range(self.n_symbols):
                q = int(self.transitions[s, a])
                if g.has_edge(s, q):
                    g.edges[s, q]["symbols"].append(a)
                else:
                    g.add_edge(s, q, symbols=[a])
        for _, _, d in g.edges(data=True):
            d["label"] = ",".join(map(str, d["symbols"]))
        return g


def hopcroft_minimise(dfa: DFA) -> tuple[DFA, np.ndarray]:
    """Hopcroft's partition refinement on the reachable part of ``dfa``.

    Returns:
        ``(minimal DFA, block [S])``: ``block[s]`` is the minimal state of the original state s
        (-1 for unreachable states). The minimal DFA's states are in BFS order from its start.
    """
    if not isinstance(dfa, DFA):
        raise ParameterTypeError(
            f"The 'dfa' parameter of hopcroft_minimise must be a DFA. Got {type(dfa).__name__}."
        )
    order = dfa._bfs_order()
    states = set(order)
    A = dfa.n_symbols
    inverse: list[dict[int, set[int]]] = [dict() for _ in range(A)]
    for s in order:
        for a in range(A):
            inverse[a].setdefault(int(dfa.transitions[s, a]), set()).add(s)
    blocks: dict[int, set[int]] = {}
    for s in order:
        blocks.setdefault(int(dfa.labels[s]), set()).add(s)
    partition = [frozenset(b) for b in blocks.values()]
    work = set(partition)
    while work:
        splitter = work.pop()
        for a in range(A):
            pre = set()
            for q in splitter:
                pre |= inverse[a].get(q, set())
            if not pre:
                continue
            new_partition = []
            for Y in partition:
                inter = Y & pre
                if inter and len(inter) < len(Y):
                    diff = Y - inter
                    new_partition += [inter, diff]
                    if Y in work:
                        work.discard(Y)
                        work |= {inter, diff}
                    else:
                        work.add(inter if len(inter) <= len(diff) else diff)
                else:
                    new_partition.append(Y)
            partition = new_partition
    of = {}
    for i, Y in enumerate(partition):
        for s in Y:
            of[s] = i
    # quotient automaton, renumbered in BFS order
    P = len(partition)
    rep = [next(iter(Y)) for Y in partition]
    t = np.array([[of[int(dfa.transitions[r, a])] for a in range(A)] for r in rep])
    lab = dfa.labels[rep]
    quotient = DFA(t.reshape(P, A), lab, of[dfa.start], dfa.n_classes)
    bfs = quotient._bfs_order()
    renum = {b: i for i, b in enumerate(bfs)}
    minimal = DFA(np.array([[renum[int(q)] for q in t[b]] for b in bfs]), lab[bfs], 0,
                  dfa.n_classes)
    block = np.array([renum[of[s]] if s in states else -1 for s in range(dfa.n_states)])
    return minimal, block


def reference_dfa(task: Any) -> DFA:
    """The minimal complete DFA of a task with ``reference_dfa()`` (e.g.
    :class:`~dynrnn.tasks.TomitaTask`) as a :class:`DFA`."""
    if not callable(getattr(task, "reference_dfa", None)):
        raise ParameterTypeError(
            "The 'task' parameter of reference_dfa must have a reference_dfa() method (e.g. "
            f"TomitaTask). Got {type(task).__name__} instead."
        )
    table, acc = task.reference_dfa()
    return DFA(np.asarray(table), np.asarray(acc).astype(np.int64), 0, 2)


def symbolic_view(task: Any) -> SymbolicView:
    """``task`` itself if it is a :class:`~dynrnn.tasks.SymbolicView`, else
    ``task.symbolic_view()``; a task without one raises :class:`ParameterTypeError`."""
    if isinstance(task, SymbolicView):
        return task
    if callable(getattr(task, "symbolic_view", None)):
        return task.symbolic_view()
    raise ParameterTypeError(
        "The 'task' parameter must be a symbolic task (TomitaTask, ParityTask, DMSTask, "
        "FlipFlopTask: with a symbolic_view() method) or a SymbolicView. Got "
        f"{type(task).__name__} instead."
    )


# ====================================================================== batched torch k-means
def kmeans(
    points: torch.Tensor, k: int, *, n_init: int = 3, max_iter: int = 100, tol: float = 1e-4,
    seed: int | torch.Generator | None = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k-means of K point clouds at once (Lloyd iterations from k-means++ seeds).

    Arguments:
        points: ``[K, M, D]`` float.
        k: number of clusters (``1 <= k <= M``).
        n_init: restarts; each network keeps its restart of lowest inertia.
        max_iter: Lloyd iterations (stops early when no assignment changes, or when the total
            squared movement of the centres is at most ``tol`` times the mean variance of the
            coordinates in every cloud: scikit-learn's criterion).
        seed: int or ``torch.Generator`` (the k-means++ draws).

    Returns:
        ``(centres [K, k, D], assignment [K, M] long, inertia [K])``. An empty cluster keeps its
        previous centre.
    """
    owner = "kmeans"
    if not torch.is_tensor(points) or points.ndim != 3 or not points.is_floating_point():
        raise ParameterTypeError(
            f"The 'points' parameter of {owner} must be a float tensor [K, M, D]. Got "
            f"{type(points).__name__} {getattr(points, 'shape', '')} instead."
        )
    K, M, D = points.shape
    k = check_int(owner, "k", k, 1, M)
    n_init = check_int(owner, "n_init", n_init, 1)
    max_iter = check_int(owner, "max_iter", max_iter, 1)
    gen = resolve_generator(seed, owner=owner)
    # all restarts of all networks run as one batch of W = n_init * K point clouds
    R = n_init
    X = points.repeat(R, 1, 1)  # [W, M, D], w = r * K + network
    W = X.shape[0]
    # mean variance per coordinate of each cloud [W] (the same for every restart)
    scale = points.var(1).mean(-1).clamp(min=1e-30).repeat(R)
    p2 = X.pow(2).sum(-1, keepdim=True)  # [W, M, 1]
    arW = torch.arange(W)
    # k-means++ seeding (D^2 sampling by inverse CDF: one uniform per cloud and draw)
    idx = torch.randint(0, M, (W,), generator=gen)
    centres = torch.empty(W, k, D, dtype=X.dtype)
    centres[:, 0] = X[arW, idx]
    d2 = _sqdist(X, p2, centres[:, :1])[..., 0]  # [W, M]
    for j in range(1, k):
        cdf = d2.clamp(min=0).cumsum(1)
        tot = cdf[:, -1:]
        u = torch.rand(W, 1, generator=gen, dtype=X.dtype)
        nxt = torch.searchsorted(cdf, u * tot).clamp(max=M - 1)[:, 0]
        nxt = torch.where(tot[:, 0] > 0, nxt, torch.randint(0, M, (W,), generator=gen))
        centres[:, j] = X[arW, nxt]
        d2 = torch.minimum(d2, _sqdist(X, p2, centres[:, j : j + 1])[..., 0])
    # Lloyd iterations; each cloud stops on its own (as scikit-learn's per-fit criterion) and
    # leaves the working set, so the batch does not run at the pace of its slowest cloud
    act = arW  # indices of the clouds still iterating
    Xa, p2a, scale_a = X, p2, scale
    prev = torch.full((W, M), -1, dtype=torch.long)
    for _it in range(max_iter):
        ca = centres[act]
        assign = _sqdist(Xa, p2a, ca).argmin(-1)  # [W', M]
        unchanged = (assign == prev[act]).all(1)
        prev[act] = assign
        n = len(act)
        # cluster sums as one batched matmul with the one-hot assignment (a scatter_add over
        # the D coordinates is several times slower on CPU)
        onehot = torch.zeros(n, M, k, dtype=X.dtype).scatter_(2, assign[..., None], 1.0)
        counts = onehot.sum(1)  # [W', k]
        sums = torch.bmm(onehot.transpose(1, 2), Xa)  # [W', k, D]
        new = torch.where(counts[..., None] > 0, sums / counts.clamp(min=1)[..., None], ca)
        shift = (new - ca).pow(2).sum((1, 2))  # total squared centre movement
        # a cloud whose assignment did not change is at a fixed point (its centres would not
        # move); one whose centres moved less than tol stops after this update
        centres[act] = torch.where(unchanged[:, None, None], ca, new)
        keep = ~(unchanged | (shift <= tol * scale_a))
        if not bool(keep.any()):
            break
        if not bool(keep.all()):
            act, Xa, p2a, scale_a = act[keep], Xa[keep], p2a[keep], scale_a[keep]
    dist = _sqdist(X, p2, centres)
    assign = dist.argmin(-1)
    inertia = dist.gather(-1, assign[..., None])[..., 0].clamp(min=0).sum(1)
    best = inertia.view(R, K).argmin(0) * K + torch.arange(K)  # restart of least inertia
    return centres[best], assign[best], inertia[best]


def _sqdist(points: torch.Tensor, p2: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[K, M, k]`` as ``|x|^2 - 2 x.c + |c|^2`` (one batched matmul; much
    faster than ``torch.cdist`` for few centres)."""
    c2 = centres.pow(2).sum(-1)[:, None, :]
    return torch.baddbmm(p2 + c2, points, centres.transpose(1, 2), alpha=-2.0)


# ========================================================================== running networks
def _check_view_lengths(owner: str, name: str, value: Any) -> tuple[int, int]:
    lo, hi = check_int_range_pair(owner, name, value, 1)
    if hi > MAX_STRING_LENGTH:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be lengths (lo, hi) with hi <= "
            f"{MAX_STRING_LENGTH} (the stated limit on string length). Got {value!r} instead."
        )
    return lo, hi


def _strings_arg(view: SymbolicView, value: Any, owner: str, name: str) -> torch.Tensor:
    """User strings: symbols ``[B, T]`` (ints, -1 padded; str or int sequences), or network
    inputs ``[B, T, I]`` decoded by the view (non-symbolic inputs raise ValueError)."""
    if (torch.is_tensor(value) or isinstance(value, np.ndarray)) and np.ndim(value) == 3:
        value = view.decode(torch.as_tensor(value))
    sym, _ = check_symbols(owner, name, value, view.n_symbols)
    return sym


def _network_prefix(model64, view: SymbolicView, symbols: torch.Tensor, seed: int,
                    keep_states: bool = True):
    """Run all K networks on ``symbols [B, T]``: prefix states ``[K, B, T + 1, N]`` (column 0
    the initial state; None unless ``keep_states``) and labels ``[K, B, T + 1]``."""
    x = view.encode(symbols).to(torch.float64)
    B = symbols.shape[0]
    h0 = model64.init_state(B, generator=resolve_generator(seed))
    with torch.no_grad():
        states, outputs = run(model64, x, h0, return_states=keep_states)
        y0 = model64.readout(h0)[:, :, None, :]
        labels = view.read(torch.cat([y0, outputs], 2)).long()  # [K, B, T+1]
    if keep_states:
        states = torch.cat([h0[:, :, None, :], states], 2)
    return states, labels


def _evaluated(view: SymbolicView, symbols: torch.Tensor) -> torch.Tensor:
    """``[B, T + 1]`` bool: prefixes at least ``min_length`` (and >= 1) symbols long."""
    B, T = symbols.shape
    L = (symbols >= 0).sum(1)
    pos = torch.arange(T + 1)[None]
    return (pos >= max(view.min_length, 1)) & (pos <= L[:, None])


def _final(labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Labels ``[..., B, T + 1]`` at each string's end -> ``[..., B]``."""
    idx = lengths.view(*([1] * (labels.ndim - 2)), -1, 1).expand(*labels.shape[:-1], 1)
    return labels.gather(-1, idx)[..., 0]


# =================================================================== tables -> DFAs per network
def _resolve_dont_cares(table: np.ndarray, labels: np.ndarray, start: int, n_classes: int,
                        fallback: np.ndarray, max_search: int = 16):
    """Complete DFA from ``table [S, A]`` and ``labels [S]`` (-1 = don't care): don't-care
    labels of reachable states are chosen to minimise the minimal state count (exhaustively
    when ``n_classes ** m <= max_search``), else taken from ``fallback [S]``. Returns
    ``(dfa, minimal, block)``."""
    base = DFA(table, np.where(labels < 0, 0, labels), start, n_classes)
    reach = base._bfs_order()
    free = [s for s in reach if labels[s] < 0]
    best = None
    if free and n_classes ** len(free) <= max_search:
        for combo in itertools.product(range(n_classes), repeat=len(free)):
            lab = np.where(labels < 0, 0, labels)
            lab[free] = combo
            cand = DFA(table, lab, start, n_classes)
            m, block = hopcroft_minimise(cand)
            if best is None or m.n_states < best[1].n_states:
                best = (cand, m, block)
        return best
    lab = np.where(labels < 0, fallback, labels)
    cand = DFA(table, lab, start, n_classes)
    m, block = hopcroft_minimise(cand)
    return cand, m, block


def _tables(assign: torch.Tensor, symbols: torch.Tensor, net_labels: torch.Tensor,
            evaluated: torch.Tensor, k: int, A: int, C: int):
    """Majority-vote transition tables and labels for K networks at once.

    ``assign [K, B, T + 1]`` cluster of every prefix state; ``symbols [B, T]``; ``net_labels
    [K, B, T + 1]``; ``evaluated [B, T + 1]``. Returns ``(table [K, k, A] with -1 = never
    seen, labels [K, k] with -1 = no evaluated member)``."""
    K = assign.shape[0]
    real = symbols >= 0  # [B, T]
    src = assign[:, :, :-1][:, real]  # [K, P]
    dst = assign[:, :, 1:][:, real]
    sym = symbols[real].expand(K, -1)
    flat = (src * A + sym) * k + dst
    off = torch.arange(K)[:, None] * (k * A * k)
    counts = torch.zeros(K * k * A * k, dtype=torch.long)
    counts.scatter_add_(0, (flat + off).reshape(-1), torch.ones(flat.numel(), dtype=torch.long))
    counts = counts.view(K, k, A, k)
    table = counts.argmax(-1)
    table = torch.where(counts.sum(-1) > 0, table, torch.full_like(table, -1))
    a_ev = assign[:, evaluated]  # [K, Q]
    l_ev = net_labels[:, evaluated]
    lc = torch.zeros(K * k * C, dtype=torch.long)
    lc.scatter_add_(0, ((a_ev * C + l_ev) + torch.arange(K)[:, None] * (k * C)).reshape(-1),
                    torch.ones(a_ev.numel(), dtype=torch.long))
    lc = lc.view(K, k, C)
    lab = torch.where(lc.sum(-1) > 0, lc.argmax(-1), torch.full((K, k), -1, dtype=torch.long))
    return table, lab


def _build_dfa(table: np.ndarray, labels: np.ndarray, start: int, n_classes: int,
               fallback: np.ndarray):
    """One network: complete ``table [k, A]`` (-1 -> a rejecting sink), drop unreachable
    states, resolve don't cares, minimise. Returns ``(minimal, n_before, cluster_state [k])``."""
    k, A = table.shape
    missing = table < 0
    if missing.any():
        table = np.where(missing, k, table)
        table = np.vstack([table, np.full((1, A), k)])
        labels = np.append(labels, 0)
        fallback = np.append(fallback, 0)
    full, minimal, block = _resolve_dont_cares(table, labels, start, n_classes, fallback)
    n_before = len(full._bfs_order())
    return minimal, n_before, block[:k]


# ============================================================================ the results
@dataclass
class AutomataResult:
    """Extracted automata of K networks.

    Attributes:
        dataset: ``xarray.Dataset`` with a ``network`` dimension (see the extraction functions).
        automata: one minimal :class:`DFA` per network.
        centroids: per network the cluster centres ``[k, N]`` (quantisation and centroid
            methods), else None.
        cluster_states: per network ``[k]`` int, the minimal-DFA state of each cluster (-1 for
            clusters unreachable from the start), else None.
    """

    dataset: xr.Dataset
    automata: list[DFA]
    centroids: list[np.ndarray] | None = None
    cluster_states: list[np.ndarray] | None = None
    view: SymbolicView | None = field(default=None, repr=False)

    def __iter__(self):
        """``ds, automata = result``."""
        return iter((self.dataset, self.automata))

    def dfa_states(self, network: int, states: Any) -> np.ndarray:
        """The DFA state of network states ``[..., N]`` of network ``network`` (nearest
        centroid, then its DFA state; -1 for clusters outside the DFA)."""
        if self.centroids is None or self.cluster_states is None:
            raise ValueError("This result has no centroids (it was learned by queries).")
        network = check_int("AutomataResult.dfa_states", "network", network, 0,
                            len(self.automata) - 1)
        c = torch.as_tensor(self.centroids[network], dtype=torch.float64)
        x = torch.as_tensor(np.asarray(states), dtype=torch.float64)
        if x.shape[-1] != c.shape[-1]:
            raise ValueError(
                f"The 'states' parameter of AutomataResult.dfa_states must end with N="
                f"{c.shape[-1]}. Got shape {tuple(x.shape)} instead."
            )
        near = torch.cdist(x.reshape(-1, x.shape[-1]), c).argmin(-1).numpy()
        return self.cluster_states[network][near].reshape(x.shape[:-1])


def _score(view, model64, automata, test_symbols, seed, net_test=None):
    """fidelity, prefix fidelity, accuracy, network accuracy ``[K]`` each, on test strings."""
    K = len(automata)
    L = (test_symbols >= 0).sum(1)
    if net_test is None:
        _, net_test = _network_prefix(model64, view, test_symbols, seed, keep_states=False)
    truth = view.labels(test_symbols)  # [B, T+1]
    ev = _evaluated(view, test_symbols)
    net_final = _final(net_test, L)  # [K, B]
    truth_final = _final(truth, L)
    has_truth = truth_final >= 0
    out = {k: np.zeros(K) for k in ("fidelity", "prefix_fidelity", "accuracy",
                                    "network_accuracy")}
    for i, dfa in enumerate(automata):
        pl = torch.as_tensor(dfa.prefix_labels(test_symbols))
        dfa_final = _final(pl, L)
        out["fidelity"][i] = float((dfa_final == net_final[i]).double().mean())
        out["prefix_fidelity"][i] = float((pl == net_test[i])[ev].double().mean())
        out["accuracy"][i] = float((dfa_final == truth_final)[has_truth].double().mean())
        out["network_accuracy"][i] = float(
            (net_final[i] == truth_final)[has_truth].double().mean())
    return out


def _dataset(model, view, values: dict, attrs: dict, extra=None) -> xr.Dataset:
    data = {name: (("network",), np.asarray(v)) for name, v in values.items()}
    if extra:
        data.update(extra)
    ds = xr.Dataset(data, coords=network_coords(model))
    ds.attrs.update({"task": view.name, "train_lengths": list(view.train_lengths),
                     "test_lengths": list(attrs.pop("test_lengths")), **attrs})
    ds["fidelity"].attrs["description"] = (
        "fraction of held-out long strings on which the DFA's label equals the network's")
    ds["accuracy"].attrs["description"] = "DFA vs the task's ground truth on the same strings"
    return ds


def _draw(view, n, lengths, gen):
    sym = view.sample(n, lengths, gen)
    T = max(int((sym >= 0).sum(1).max()), 1)
    return sym[:, :T].contiguous()


# ===================================================================== quantisation extraction
def extract_automata(
    model: Any,
    task: Any,
    *,
    strings: Any = None,
    n_strings: int = 1000,
    validation_strings: Any = None,
    n_validation: int = 500,
    test_strings: Any = None,
    n_test: int = 1000,
    test_lengths: tuple[int, int] | None = None,
    k_range: tuple[int, int] = (2, 20),
    fidelity_target: float = 0.999,
    quantiser: Callable[[torch.Tensor], torch.Tensor] | None = None,
    max_fit_points: int = 4000,
    n_init: int = 3,
    max_iter: int = 100,
    seed: int = 0,
) -> AutomataResult:
    """Extract a minimal DFA from each of the K networks of ``model`` by state quantisation
    (the method of the module docstring, batched over networks).

    Arguments:
        model: K networks following the protocol, trained on ``task``.
        task: a symbolic task (``task.symbolic_view()``) or a :class:`SymbolicView`.
        strings: training strings (symbols ``[B, T]`` -1 padded, str / int sequences, or network
            inputs ``[B, T, I]`` decoded by the view); default ``n_strings`` drawn from the view
            at ``view.train_lengths``.
        validation_strings / n_validation: strings for the choice of k (default: lengths between
            the training and the test lengths).
        test_strings / n_test / test_lengths: held-out strings for the scores (default
            ``view.test_lengths``: longer than any training string); at most
            ``MAX_STRING_LENGTH`` symbols.
        k_range: inclusive range of cluster counts tried, smallest first.
        fidelity_target: validation (prefix-level) fidelity at which k stops growing, in
            (0, 1]; the default 0.999 allows about one disagreeing prefix in a thousand.
        quantiser: instead of k-means, ``quantiser(points [K, M, N]) -> [K, M]`` cluster ids
            (ints >= 0) of all prefix states (then no k is searched).
        max_fit_points: prefix states per network the k-means is fitted on (a random subset,
            the same for all networks); all are then assigned.
        n_init, max_iter: k-means restarts and iterations.
        seed: seeds the strings, the initial states and the k-means.

    Returns:
        :class:`AutomataResult` whose ``dataset`` has, along ``network``: ``fidelity``,
        ``prefix_fidelity``, ``accuracy``, ``network_accuracy`` (test strings),
        ``validation_fidelity`` (prefix level, the criterion), ``n_clusters`` (k chosen),
        ``n_states_before`` (reachable states of the completed table, start and sink
        included) and ``n_states_after`` (minimal DFA),
        ``inconclusive`` (no k reached ``fidelity_target``: no finite-state description at
        this resolution; the machine of best validation fidelity is returned) and
        ``validation_fidelity_by_k [network, k]`` (NaN where not tried); attrs describe the
        strings and the criterion.
    """
    owner = "extract_automata"
    check_model(model, owner)
    view = symbolic_view(task)
    seed = check_int(owner, "seed", seed, 0)
    n_strings = check_int(owner, "n_strings", n_strings, 1)
    n_validation = check_int(owner, "n_validation", n_validation, 1)
    n_test = check_int(owner, "n_test", n_test, 1)
    k_lo, k_hi = check_int_range_pair(owner, "k_range", k_range, 1)
    fidelity_target = check_float(owner, "fidelity_target", fidelity_target, 0.0, 1.0,
                                  low_inclusive=False)
    max_fit_points = check_int(owner, "max_fit_points", max_fit_points, 2)
    if quantiser is not None and not callable(quantiser):
        raise ParameterTypeError(
            f"The 'quantiser' parameter of {owner} must be a callable or None. Got "
            f"{type(quantiser).__name__} instead."
        )
    if int(model.n_inputs) != int(view.encode(torch.zeros(1, 1, dtype=torch.long)).shape[-1]):
        raise ValueError(
            f"The model has n_inputs={model.n_inputs}; the task's symbols are encoded as "
            f"{view.encode(torch.zeros(1, 1, dtype=torch.long)).shape[-1]} inputs."
        )
    lo, hi = view.train_lengths
    tl = view.test_lengths if test_lengths is None else _check_view_lengths(
        owner, "test_lengths", test_lengths)
    gen = resolve_generator(seed)
    train = (_draw(view, n_strings, (lo, hi), gen) if strings is None
             else _strings_arg(view, strings, owner, "strings"))
    val = (_draw(view, n_validation, (hi, max(hi + 1, tl[0] - 1)), gen)
           if validation_strings is None
           else _strings_arg(view, validation_strings, owner, "validation_strings"))
    test = (_draw(view, n_test, tl, gen) if test_strings is None
            else _strings_arg(view, test_strings, owner, "test_strings"))

    m64 = float64_copy(model)
    K, A, C = int(model.n_networks), view.n_symbols, view.n_classes
    states, net_train = _network_prefix(m64, view, train, seed)
    _, net_val = _network_prefix(m64, view, val, seed, keep_states=False)
    # the non-empty prefixes: the initial state (empty prefix) is not clustered but is the
    # DFA's own start state, with the clusters of the one-symbol prefixes as its successors
    # (minimisation merges it with an equivalent state); its label is "don't care"
    valid = torch.cat([torch.zeros(train.shape[0], 1, dtype=torch.bool), train >= 0], 1)
    # prefix states [K, M, N] in float32: clustering needs no float64 (half the memory, 2x
    # faster); the networks themselves ran in float64
    pts = states[:, valid].float()
    start_label = net_train[:, :, 0].mode(1).values.numpy()  # readout at the initial state
    del states
    M = pts.shape[1]
    ev = _evaluated(view, train)

    def dfas_for(idx, assign_flat, k, centres):
        """DFAs of the networks ``idx`` from their assignments ``[len(idx), M]``."""
        assign = torch.full((len(idx), *valid.shape), k, dtype=torch.long)  # k = start
        assign[:, valid] = assign_flat
        table, lab = _tables(assign, train, net_train[idx], ev, k + 1, A, C)
        sub_model = m64 if len(idx) == K else getattr(m64, "select", None)
        if sub_model is None:  # a protocol object without select(): no readout fallback
            fallback = np.zeros((len(idx), k), dtype=np.int64)
        else:
            sub_model = sub_model if len(idx) == K else sub_model(idx)
            with torch.no_grad():  # the readout at each centre [k', k, 1, O]
                y = sub_model.readout(centres.to(m64.dtype)[:, :, None, :])
                fallback = view.read(y)[..., 0].numpy()
        fallback = np.concatenate([fallback, start_label[idx][:, None]], 1)
        out = []
        for j in range(len(idx)):
            dfa, n_before, cluster_state = _build_dfa(table[j].numpy(), lab[j].numpy(), k, C,
                                                      fallback[j])
            out.append((dfa, n_before, cluster_state[:k]))  # row k is the start, not a cluster
        return out

    ev_val = _evaluated(view, val)

    def val_fidelity(dfa, i):
        """Agreement with the network on every evaluated prefix of the validation strings
        (stricter than at the strings' ends: a wrong transition out of a rarely visited state
        shows up)."""
        pred = torch.as_tensor(dfa.prefix_labels(val))
        return float((pred == net_val[i])[ev_val].double().mean())

    ks = list(range(k_lo, k_hi + 1))
    by_k = np.full((K, len(ks)), np.nan)
    chosen: list[tuple | None] = [None] * K
    best: list[tuple | None] = [None] * K
    if quantiser is not None:
        assign_flat = torch.as_tensor(quantiser(pts.clone()))
        if assign_flat.shape != (K, M) or assign_flat.is_floating_point() or bool(
                (assign_flat < 0).any()):
            raise ValueError(
                f"The 'quantiser' of {owner} must return cluster ids [K={K}, M={M}] (ints >= "
                f"0). Got {tuple(assign_flat.shape)} {assign_flat.dtype} instead."
            )
        assign_flat = assign_flat.long()
        k = int(assign_flat.max()) + 1
        oh = torch.nn.functional.one_hot(assign_flat, k).float()
        centres = (oh.transpose(1, 2) @ pts) / oh.sum(1).clamp(min=1)[..., None]
        for i, res in enumerate(dfas_for(list(range(K)), assign_flat, k, centres)):
            f = val_fidelity(res[0], i)
            chosen[i] = best[i] = (k, f, res, centres[i])
        ks, by_k = [k], np.array([[c[1]] for c in chosen])
    else:
        kgen = resolve_generator(seed + 1)
        fit_idx = torch.randperm(M, generator=kgen)[: min(M, max_fit_points)]
        p2 = pts.pow(2).sum(-1, keepdim=True)
        for j, k in enumerate(ks):
            todo = [i for i in range(K) if chosen[i] is None]
            if not todo or k > M:
                break
            sub = pts[todo]
            centres, _, _ = kmeans(sub[:, fit_idx], k, n_init=n_init, max_iter=max_iter,
                                   seed=kgen)
            assign_flat = _sqdist(sub, p2[todo], centres).argmin(-1)
            results = dfas_for(todo, assign_flat, k, centres)
            for jj, i in enumerate(todo):
                f = val_fidelity(results[jj][0], i)
                by_k[i, j] = f
                entry = (k, f, results[jj], centres[jj])
                if best[i] is None or f > best[i][1]:
                    best[i] = entry
                if f >= fidelity_target:
                    chosen[i] = entry
    inconclusive = np.array([c is None for c in chosen])
    final = [c if c is not None else b for c, b in zip(chosen, best)]
    automata = [f[2][0] for f in final]
    scores = _score(view, m64, automata, test, seed)
    values = {
        **scores,
        "validation_fidelity": [f[1] for f in final],
        "n_clusters": [f[0] for f in final],
        "n_states_before": [f[2][1] for f in final],
        "n_states_after": [a.n_states for a in automata],
        "inconclusive": inconclusive,
    }
    extra = {"validation_fidelity_by_k": (("network", "k"), by_k)}
    ds = _dataset(model, view, values, {
        "method": "quantisation (k-means, majority-vote table, Hopcroft)",
        "criterion": f"smallest k in [{k_lo}, {k_hi}] with validation fidelity >= "
                     f"{fidelity_target}",
        "fidelity_target": fidelity_target, "test_lengths": tl, "n_strings": int(train.shape[0]),
        "n_test": int(test.shape[0]),
    }, extra)
    ds = ds.assign_coords(k=np.asarray(ks))
    return AutomataResult(ds, automata, [f[3].numpy() for f in final],
                          [f[2][2] for f in final], view)


# ========================================================================= L* query learning
def lstar(
    member: Callable[[list[tuple[int, ...]]], Sequence[int]],
    n_symbols: int,
    n_classes: int,
    find_counterexample: Callable[[DFA], tuple[int, ...] | None],
    *,
    max_states: int = 50,
    max_rounds: int = 100,
) -> tuple[DFA, dict]:
    """Angluin's L* with Maler--Pnueli counterexample processing (see the module docstring).

    Arguments:
        member: membership oracle, a batch of strings (tuples of symbols) -> their labels.
        n_symbols, n_classes: alphabet size and number of labels.
        find_counterexample: equivalence oracle, hypothesis -> a string on which it is wrong,
            or None to accept it.
        max_states: stop (inconclusive) when the hypothesis would exceed this many states.
        max_rounds: stop (inconclusive) after this many equivalence queries.

    Returns:
        ``(hypothesis DFA, info)`` with ``info``: ``n_queries`` (distinct membership queries),
        ``n_rounds`` (equivalence queries), ``conclusive`` (the last hypothesis was accepted).
    """
    cache: dict[tuple[int, ...], int] = {}

    def ask(strings):
        new = [s for s in dict.fromkeys(strings) if s not in cache]
        if new:
            for s, v in zip(new, member(new)):
                cache[s] = int(v)
        return [cache[s] for s in strings]

    S: list[tuple[int, ...]] = [()]
    E: list[tuple[int, ...]] = [()]
    symbols = [(a,) for a in range(n_symbols)]

    def rows(prefixes):
        ask([p + e for p in prefixes for e in E])
        return [tuple(cache[p + e] for e in E) for p in prefixes]

    conclusive = False
    rounds = 0
    hyp = None
    while True:
        # close the table
        while True:
            srows = rows(S)
            index = {r: i for i, r in enumerate(srows)}
            ext = [s + a for s in S for a in symbols]
            erows = rows(ext)
            missing = next((p for p, r in zip(ext, erows) if r not in index), None)
            if missing is None or len(S) >= max_states:
                break
            S.append(missing)
        t = np.array([[index.get(r, 0) for r in erows[i * n_symbols:(i + 1) * n_symbols]]
                      for i in range(len(S))])
        labels = np.array([r[0] for r in srows])
        hyp = DFA(t, labels, 0, n_classes)
        if missing is not None:  # table not closed within max_states
            break
        rounds += 1
        cex = find_counterexample(hyp)
        if cex is None:
            conclusive = True
            break
        if rounds >= max_rounds:
            break
        cex = tuple(int(a) for a in cex)
        for i in range(len(cex) + 1):
            suffix = cex[i:]
            if suffix not in E:
                E.append(suffix)
    return hyp, {"n_queries": len(cache), "n_rounds": rounds, "conclusive": conclusive}


def _label_strings(model_k, view, strings: list[tuple[int, ...]], seed: int) -> np.ndarray:
    """Labels of whole strings: the network's for strings at least ``min_length`` long, the
    task's ground truth for shorter ones (never trained; falling back to the network where
    the task defines none)."""
    sym = pad_strings([list(s) for s in strings])
    L = (sym >= 0).sum(1)
    _, lab = _network_prefix(model_k, view, sym, seed, keep_states=False)
    net = _final(lab, L)[0]
    truth = _final(view.labels(sym), L)
    short = (L < max(view.min_length, 1)) & (truth >= 0)
    return torch.where(short, truth, net).numpy()


def lstar_automata(
    model: Any,
    task: Any,
    *,
    n_equivalence: int = 2000,
    equivalence_lengths: tuple[int, int] | None = None,
    n_test: int = 1000,
    test_lengths: tuple[int, int] | None = None,
    max_states: int = 50,
    max_rounds: int = 50,
    batch_size: int = 4096,
    seed: int = 0,
) -> AutomataResult:
    """Learn a minimal DFA of each network by L* queries (see the module docstring).

    Membership queries run the network (a batch per table round); strings shorter than the
    task's ``min_length`` are answered by the ground truth (the network was never trained on
    them). An equivalence query draws ``n_equivalence`` fresh strings (half from the task's
    sampler, half uniform over the alphabet) with lengths in ``equivalence_lengths`` (default
    1 .. the longest training length x 2) and returns the shortest one on which the hypothesis
    and the network disagree; the hypothesis is accepted when there is none.

    Returns:
        :class:`AutomataResult` (no centroids) whose ``dataset`` has, along ``network``: the
        scores of :func:`extract_automata` on the test strings, ``n_states_before``
        (hypothesis), ``n_states_after`` (after Hopcroft), ``n_queries``, ``n_rounds`` and
        ``inconclusive`` (no hypothesis passed an equivalence query within ``max_states`` /
        ``max_rounds``).
    """
    owner = "lstar_automata"
    check_model(model, owner)
    view = symbolic_view(task)
    seed = check_int(owner, "seed", seed, 0)
    n_equivalence = check_int(owner, "n_equivalence", n_equivalence, 1)
    n_test = check_int(owner, "n_test", n_test, 1)
    max_states = check_int(owner, "max_states", max_states, 1)
    max_rounds = check_int(owner, "max_rounds", max_rounds, 1)
    batch_size = check_int(owner, "batch_size", batch_size, 1)
    hi = view.train_lengths[1]
    el = (1, 2 * hi) if equivalence_lengths is None else _check_view_lengths(
        owner, "equivalence_lengths", equivalence_lengths)
    tl = view.test_lengths if test_lengths is None else _check_view_lengths(
        owner, "test_lengths", test_lengths)
    gen = resolve_generator(seed)
    m64 = float64_copy(model)
    K = int(model.n_networks)
    automata, info = [], []
    for i in range(K):
        mk = m64.select(i) if hasattr(m64, "select") else m64

        def member(strings, mk=mk):
            out = []
            for j in range(0, len(strings), batch_size):
                out.append(_label_strings(mk, view, strings[j:j + batch_size], seed))
            return np.concatenate(out)

        def find_cex(hyp, mk=mk):
            half = max(n_equivalence // 2, 1)
            a = _draw(view, half, el, gen)
            b = _draw_uniform(view.n_symbols, n_equivalence - half, el, gen)
            cands = [a] if b is None else [a, b]
            for sym in cands:
                L = (sym >= 0).sum(1)
                net = torch.as_tensor(member([tuple(r[: int(n)].tolist())
                                              for r, n in zip(sym, L)]))
                pred = torch.as_tensor(hyp.classify(sym))
                bad = (pred != net).nonzero()[:, 0]
                if len(bad):
                    j = bad[L[bad].argmin()]
                    return tuple(sym[j, : int(L[j])].tolist())
            return None

        hyp, inf = lstar(member, view.n_symbols, view.n_classes, find_cex,
                         max_states=max_states, max_rounds=max_rounds)
        automata.append(hyp.minimise())
        info.append((hyp.n_states, inf))
    test = _draw(view, n_test, tl, gen)
    scores = _score(view, m64, automata, test, seed)
    values = {
        **scores,
        "n_states_before": [h for h, _ in info],
        "n_states_after": [a.n_states for a in automata],
        "n_queries": [d["n_queries"] for _, d in info],
        "n_rounds": [d["n_rounds"] for _, d in info],
        "inconclusive": [not d["conclusive"] for _, d in info],
    }
    ds = _dataset(model, view, values, {
        "method": "L* (Angluin 1987) with sampled equivalence queries (Weiss et al. 2018)",
        "equivalence_lengths": list(el), "n_equivalence": n_equivalence, "test_lengths": tl,
        "n_test": n_test,
    })
    return AutomataResult(ds, automata, None, None, view)


def _draw_uniform(A, n, lengths, gen):
    if n < 1:
        return None
    from ..tasks.tomita import uniform_strings

    sym = uniform_strings(n, lengths, gen, A)
    T = max(int((sym >= 0).sum(1).max()), 1)
    return sym[:, :T].contiguous()


# ====================================================== state-regularised RNN: read off centroids
def automaton_from_centroids(
    model: Any, task: Any, *, n_test: int = 1000, test_lengths: tuple[int, int] | None = None,
    seed: int = 0,
) -> AutomataResult:
    """The DFA of each network of a state-regularised RNN, read off its centroids (Wang &
    Niepert 2019): states = the k centroids plus the initial state; ``delta(j, a)`` = the
    centroid nearest to one cell step from centroid j with symbol a (the model's
    ``centroid_transitions``, evaluation mode); labels = the task's reading of the readout at
    each centroid (the initial state's label is "don't care": the empty string is never
    trained); then unreachable states are dropped and the DFA minimised.

    Returns:
        :class:`AutomataResult` with the scores of :func:`extract_automata` (the network run in
        evaluation mode, i.e. with hard nearest-centroid states), ``n_states_before`` (reachable
        centroids + start), ``n_states_after``, ``n_clusters`` (k).
    """
    owner = "automaton_from_centroids"
    check_model(model, owner)
    if not callable(getattr(model, "centroid_transitions", None)):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be a state-regularised RNN (with "
            f"centroid_transitions). Got {type(model).__name__} instead."
        )
    view = symbolic_view(task)
    seed = check_int(owner, "seed", seed, 0)
    n_test = check_int(owner, "n_test", n_test, 1)
    tl = view.test_lengths if test_lengths is None else _check_view_lengths(
        owner, "test_lengths", test_lengths)
    m64 = float64_copy(model)
    A, C = view.n_symbols, view.n_classes
    sym_inputs = view.encode(torch.arange(A)[:, None])[:, 0].to(torch.float64)  # [A, I]
    with torch.no_grad():
        nxt, outputs = m64.centroid_transitions(sym_inputs)  # [K, k+1, A], [K, k+1, O]
        lab = view.read(outputs[:, :, None, :])[..., 0].numpy()  # [K, k+1]
    K, k1, _ = nxt.shape
    automata, before, cstates = [], [], []
    for i in range(K):
        labels = lab[i].copy()
        labels[k1 - 1] = -1
        full, minimal, block = _resolve_dont_cares(nxt[i].numpy(), labels, k1 - 1, C, lab[i])
        automata.append(minimal)
        before.append(len(full._bfs_order()))
        cstates.append(block[: k1 - 1])
    gen = resolve_generator(seed)
    test = _draw(view, n_test, tl, gen)
    scores = _score(view, m64, automata, test, seed)
    values = {**scores, "n_clusters": [k1 - 1] * K, "n_states_before": before,
              "n_states_after": [a.n_states for a in automata],
              "inconclusive": np.zeros(K, bool)}
    ds = _dataset(model, view, values, {"method": "state-regularised centroids",
                                        "test_lengths": tl, "n_test": n_test})
    cents = [c.numpy() for c in m64.centroids.detach()]
    return AutomataResult(ds, automata, cents, cstates, view)
