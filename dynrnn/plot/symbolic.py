"""Figures of AL-RNN symbolic dynamics: the transition graph, and the attractor coloured by
linear subregion. Both take results and an optional Axes and return the Axes."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np

from .._validation import ParameterTypeError, check_array, check_float, check_int
from ._style import PALETTE, new_axes

__all__ = ["plot_symbolic_graph", "plot_attractor_subregions"]

_COLOURS = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky_blue",
                                 "yellow", "black", "grey")]


def _colour(symbol: int) -> str:
    return _COLOURS[int(symbol) % len(_COLOURS)]


def plot_symbolic_graph(graph: nx.DiGraph, ax=None, min_probability: float = 0.0):
    """Draw the symbolic transition graph of :func:`dynrnn.analyses.symbolic_graph`.

    Node size ~ occupancy; node edge solid for a real, dashed for a virtual subregion fixed
    point; edge width ~ transition probability; edge labels give the probabilities of edges
    above ``min_probability``; the probability of staying in a subregion (the self-loop) is
    written under its code.
    """
    owner = "plot_symbolic_graph"
    if not isinstance(graph, nx.DiGraph):
        raise ParameterTypeError(
            "The 'graph' parameter of plot_symbolic_graph must be a networkx.DiGraph from "
            f"symbolic_graph. Got {type(graph).__name__}."
        )
    min_probability = check_float(owner, "min_probability", min_probability, 0.0, 1.0)
    ax = new_axes(ax, owner=owner)
    pos = nx.circular_layout(graph) if graph.number_of_nodes() > 1 else {
        n: np.zeros(2) for n in graph.nodes}
    nodes = list(graph.nodes)
    occ = np.array([graph.nodes[n].get("occupancy", 1.0) for n in nodes])
    nx.draw_networkx_nodes(
        graph, pos, nodelist=nodes, ax=ax, node_color=[_colour(n) for n in nodes],
        node_size=list(200 + 1200 * occ),
        edgecolors=["black" if graph.nodes[n].get("real", False) else PALETTE["grey"]
                    for n in nodes],
    )
    # self-loops (dwelling) are written under the node's code instead of drawn: networkx
    # draws them as loops that scale with the figure, often larger than the graph itself
    stay = {n: graph.edges[n, n]["probability"] if graph.has_edge(n, n) else 0.0
            for n in nodes}
    labels = {n: "".join(map(str, graph.nodes[n].get("code", (n,))))
              + (f"\nstay {stay[n]:.2f}" if stay[n] > 0 else "") for n in nodes}
    nx.draw_networkx_labels(graph, pos, labels=labels, ax=ax, font_size=7)
    edges = [(u, v) for u, v, p in graph.edges(data="probability")
             if p >= min_probability and u != v]
    widths = [0.5 + 3 * graph.edges[e]["probability"] for e in edges]
    nx.draw_networkx_edges(graph, pos, edgelist=edges, width=widths, ax=ax, arrows=True,
                           connectionstyle="arc3,rad=0.15", node_size=600)
    nx.draw_networkx_edge_labels(
        graph, pos, ax=ax, font_size=6,
        edge_labels={e: f"{graph.edges[e]['probability']:.2f}" for e in edges},
    )
    # room for the largest node around every position (nodes are never cut off)
    xy = np.array([pos[n] for n in nodes]) if nodes else np.zeros((1, 2))
    pad = 0.45 if len(nodes) > 1 else 1.0
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.set_title(f"{graph.graph.get('n_symbols', len(nodes))} of "
                 f"{graph.graph.get('n_subregions', '?')} subregions")
    ax.set_axis_off()
    return ax


def plot_attractor_subregions(states: Any, symbols: Any, ax=None, dims=(0, 1, 2), s=0.5):
    """Scatter a trajectory ``[T, >=2]`` coloured by its symbols ``[T]`` (3D if 3 dims)."""
    owner = "plot_attractor_subregions"
    states = check_array(owner, "states", states)
    symbols = check_array(owner, "symbols", symbols, finite=True).reshape(-1)
    if not np.array_equal(symbols, np.round(symbols)):
        raise ValueError(
            f"The 'symbols' parameter of {owner} must hold integer symbols (from "
            "symbol_sequence)."
        )
    if states.ndim != 2 or len(states) != len(symbols) or len(states) == 0:
        raise ValueError(
            "The 'states' [T, D] and 'symbols' [T] parameters of plot_attractor_subregions must "
            f"have the same T >= 1. Got {states.shape} and {symbols.shape}."
        )
    if isinstance(dims, (str, bytes)) or not isinstance(dims, (tuple, list)):
        raise ParameterTypeError(
            f"The 'dims' parameter of {owner} must be a sequence of state dimensions. Got "
            f"{dims!r} instead."
        )
    dims = tuple(check_int(owner, "dims", d, 0) for d in dims)
    dims = tuple(d for d in dims if d < states.shape[1])
    if len(dims) < 2:
        raise ValueError(
            f"The 'dims' parameter of {owner} must name at least 2 of the {states.shape[1]} "
            f"state dimensions. Got {dims!r} instead."
        )
    s = check_float(owner, "s", s, 0.0, math.inf, False, False)
    three = len(dims) >= 3
    ax = new_axes(ax, projection="3d" if three else None, owner=owner)
    for sym in np.unique(symbols):
        sel = symbols == sym
        pts = states[sel][:, list(dims[: 3 if three else 2])]
        ax.scatter(*pts.T, s=s, color=_colour(sym), label=f"{int(sym)}", rasterized=True)
    shown = dims[: 3 if three else 2]
    ax.set_xlabel(f"$z_{{{shown[0] + 1}}}$")
    ax.set_ylabel(f"$z_{{{shown[1] + 1}}}$")
    if three:
        ax.set_zlabel(f"$z_{{{shown[2] + 1}}}$", labelpad=-2)
    spread = float(np.ptp(states[:, list(shown)], axis=0).max()) if len(states) else 0.0
    scale = float(np.abs(states[:, list(shown)]).max()) if len(states) else 0.0
    if spread <= 1e-6 * max(scale, 1.0):
        # a collapsed run is one dot: say so on the figure instead of leaving it unexplained
        ax.set_title("the trajectory is a single point (the run collapsed to a fixed point)",
                     fontsize=7)
    # outside the axes: inside, a 3D attractor leaves no free corner for it
    ax.legend(title="subregion", markerscale=6, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              frameon=False)
    return ax
