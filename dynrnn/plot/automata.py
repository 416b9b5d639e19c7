"""Figures of extracted automata: the state diagram, and the state space coloured by DFA state.

Both take results (a :class:`~dynrnn.analyses.DFA`, or states with their DFA states) and an
optional Axes, and return the Axes; neither calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import ParameterTypeError, check_array, check_float
from ..analyses.automata import DFA
from ._style import PALETTE, new_axes

__all__ = ["plot_automaton", "plot_automaton_states"]

_COLOURS = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky_blue",
                                 "yellow", "black", "grey")]


def _layout(graph, n: int):
    import networkx as nx

    if n == 1:
        return {0: np.zeros(2)}
    if n <= 8:
        return nx.circular_layout(graph)
    return nx.kamada_kawai_layout(graph)


def _node_radius(ax, node_size: float) -> float:
    """The radius of a node marker of area ``node_size`` (points^2) in data units of ``ax``
    (after its limits and aspect are set)."""
    ax.figure.canvas.draw_idle()
    ax.apply_aspect()
    bbox = ax.get_window_extent()
    x0, x1 = ax.get_xlim()
    px = np.sqrt(node_size) / 2 * ax.figure.dpi / 72  # radius in pixels
    return float(px * (x1 - x0) / max(bbox.width, 1.0))


def plot_automaton(dfa: DFA, ax=None, symbol_names: Any = None, node_size: float = 500.0,
                   title: str | None = None):
    """Draw a DFA: states as circles (accepting states, label 1, with a double ring and filled;
    for more than two labels the fill colour gives the label), the start state marked by an
    incoming arrow, edges labelled with the symbols that take them (self-loops drawn as small
    loops above their node). The axis limits leave room for every node and loop.

    Arguments:
        dfa: a :class:`~dynrnn.analyses.DFA`.
        ax: Axes to draw into (default: a new Figure).
        symbol_names: optional names of the symbols (sequence of length A).
        node_size: marker area of the states (points^2).
        title: default ``"<S> states"``.

    Returns:
        The Axes.
    """
    owner = "plot_automaton"
    if not isinstance(dfa, DFA):
        raise ParameterTypeError(
            f"The 'dfa' parameter of {owner} must be a DFA (dynrnn.analyses.DFA). Got "
            f"{type(dfa).__name__} instead."
        )
    node_size = check_float(owner, "node_size", node_size, 1.0, None)
    names = [str(a) for a in range(dfa.n_symbols)]
    if symbol_names is not None:
        names = [str(s) for s in symbol_names]
        if len(names) != dfa.n_symbols:
            raise ValueError(
                f"The 'symbol_names' parameter of {owner} must name the {dfa.n_symbols} "
                f"symbols. Got {len(names)} names instead."
            )
    import networkx as nx

    ax = new_axes(ax, owner=owner)
    g = dfa.to_networkx()
    pos = _layout(g, dfa.n_states)
    nodes = list(g.nodes)
    xy = np.array([pos[n] for n in nodes])
    binary = dfa.n_classes == 2
    colours = [
        (PALETTE["sky_blue"] if g.nodes[n]["accepting"] else "white") if binary
        else _COLOURS[g.nodes[n]["label"] % len(_COLOURS)] for n in nodes
    ]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colours, edgecolors="black",
                           node_size=node_size, linewidths=1.0)
    acc = [n for n in nodes if g.nodes[n]["accepting"]]
    if binary and acc:
        nx.draw_networkx_nodes(g, pos, nodelist=acc, ax=ax, node_color="none",
                               edgecolors="black", node_size=node_size * 0.55, linewidths=0.8)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=7)
    edge_label = {(u, v): ",".join(names[a] for a in d["symbols"])
                  for u, v, d in g.edges(data=True)}
    others = [e for e in g.edges if e[0] != e[1]]
    both = {e for e in others if (e[1], e[0]) in g.edges}
    straight = [e for e in others if e not in both]
    curved = [e for e in others if e in both]
    margin = np.sqrt(node_size) / 2 + 2
    common = dict(ax=ax, arrows=True, arrowstyle="-|>", arrowsize=9, node_size=node_size,
                  width=0.8, min_source_margin=margin / 3, min_target_margin=margin / 3)
    if straight:
        nx.draw_networkx_edges(g, pos, edgelist=straight, **common)
        nx.draw_networkx_edge_labels(g, pos, ax=ax, font_size=6,
                                     edge_labels={e: edge_label[e] for e in straight})
    if curved:
        nx.draw_networkx_edges(g, pos, edgelist=curved, connectionstyle="arc3,rad=0.2",
                               **common)
        for (u, v) in curved:  # labels beside the arc, on its own side
            p, q = np.asarray(pos[u]), np.asarray(pos[v])
            mid, d = (p + q) / 2, q - p
            normal = np.array([d[1], -d[0]]) / (np.linalg.norm(d) + 1e-12)
            lp = mid + 0.1 * np.linalg.norm(d) * normal
            ax.text(lp[0], lp[1], edge_label[(u, v)], fontsize=6, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    # limits first (room for loops and the start arrow), then the node radius in data units
    span = float(np.ptp(xy, axis=0).max()) if len(xy) > 1 else 1.0
    span = max(span, 1e-6)
    pad = 0.3 * span if len(xy) > 1 else 1.0
    lo, hi = xy.min(0) - pad, xy.max(0) + pad
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal", adjustable="box")
    r_node = _node_radius(ax, node_size)
    centre = xy.mean(0)
    from matplotlib.patches import Circle

    for n in nodes:
        if not g.has_edge(n, n):
            continue
        p = np.asarray(pos[n], dtype=float)
        u = p - centre
        u = u / np.linalg.norm(u) if np.linalg.norm(u) > 1e-9 else np.array([0.0, 1.0])
        rl = 0.5 * r_node
        c = p + u * (r_node + 0.6 * rl)
        ax.add_patch(Circle(c, rl, fill=False, lw=0.8, color="black", zorder=0.5))
        # arrowhead where the loop re-enters the node
        w = np.array([-u[1], u[0]])
        tip = p + (u * 0.8 + w * 0.6) / np.hypot(0.8, 0.6) * r_node
        tail = tip + u * 0.5 * rl + w * 0.35 * rl
        ax.annotate("", xy=tip, xytext=tail, zorder=0.6,
                    arrowprops=dict(arrowstyle="-|>", lw=0.8, color="black",
                                    shrinkA=0, shrinkB=0, mutation_scale=7))
        lp = c + u * (rl + 0.45 * r_node)
        ax.text(lp[0], lp[1], edge_label[(n, n)], fontsize=6, ha="center", va="center")
    # start arrow, from the side away from the other states
    p = np.asarray(pos[dfa.start], dtype=float)
    v = p - centre
    v = v / np.linalg.norm(v) if np.linalg.norm(v) > 1e-9 else np.array([-1.0, 0.0])
    v = np.array([v[1], -v[0]]) if g.has_edge(dfa.start, dfa.start) else v
    ax.annotate("", xy=p + v * r_node * 1.05, xytext=p + v * r_node * 2.6,
                arrowprops=dict(arrowstyle="-|>", lw=0.9, color="black", shrinkA=0,
                                shrinkB=0))
    ax.set_title(f"{dfa.n_states} states" if title is None else title)
    ax.set_axis_off()
    return ax


def plot_automaton_states(states: Any, dfa_states: Any, ax=None, s: float = 4.0,
                          alpha: float = 0.6):
    """The state space seen through the automaton: prefix states ``[M, N]`` projected on their
    first two principal components, coloured by their DFA state ``[M]`` (-1 = outside the DFA,
    grey).

    Arguments:
        states: network states ``[M, N]`` (N >= 2), e.g. every prefix state of a batch.
        dfa_states: ``[M]`` ints, e.g. from :meth:`~dynrnn.analyses.AutomataResult.dfa_states`.
        ax: Axes (default: a new Figure).

    Returns:
        The Axes.
    """
    owner = "plot_automaton_states"
    x = check_array(owner, "states", states, finite=True)
    lab = check_array(owner, "dfa_states", dfa_states, finite=True).reshape(-1)
    if x.ndim != 2 or x.shape[0] != lab.shape[0] or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(
            f"The 'states' [M, N] (M, N >= 2) and 'dfa_states' [M] parameters of {owner} must "
            f"match. Got shapes {x.shape} and {lab.shape}."
        )
    if not np.array_equal(lab, np.round(lab)):
        raise ValueError(f"The 'dfa_states' parameter of {owner} must hold integer states.")
    s = check_float(owner, "s", s, 0.0, None)
    alpha = check_float(owner, "alpha", alpha, 0.0, 1.0)
    ax = new_axes(ax, owner=owner)
    xc = x - x.mean(0)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    pc = xc @ vt[:2].T
    var = sv**2 / max((sv**2).sum(), 1e-300)
    lab = lab.astype(int)
    for q in np.unique(lab):
        sel = lab == q
        colour = PALETTE["grey"] if q < 0 else _COLOURS[q % len(_COLOURS)]
        ax.scatter(pc[sel, 0], pc[sel, 1], s=s, alpha=alpha, color=colour,
                   label="outside" if q < 0 else f"state {q}", linewidths=0)
    ax.set_xlabel(f"PC 1 ({100 * var[0]:.0f}%)")
    ax.set_ylabel(f"PC 2 ({100 * var[1]:.0f}%)")
    ax.legend(markerscale=2, fontsize=6)
    return ax
