"""Symbolic dynamics of AL-RNNs (Brenner et al., NeurIPS 2024).

An AL-RNN with P ReLU units is affine in each of its ``2^P`` linear subregions; the symbol of a
state is the on/off pattern of the ReLU units (``model.region_code``), read as a binary number
(the first ReLU unit is the most significant bit). A long generated trajectory becomes a symbol
sequence, and the transition graph between symbols (a ``networkx.DiGraph``) summarises the
topology of the attractor: edge ``i -> j`` carries the empirical probability
``P(s_{t+1} = j | s_t = i)``, self-loops the probability of dwelling. Each subregion has one
analytic fixed point ``z* = (I - M_d)^{-1} c_d`` (``M_d = diag(A) + W D``); it is *real* if it
lies in its own subregion and *virtual* otherwise, and stable iff ``max |eig(M_d)| < 1``.

Works for any piecewise-linear model exposing ``region_code``/``affine_pieces`` (PLRNN,
shPLRNN), but is meant for AL-RNNs with small P.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import torch
import xarray as xr

from .._validation import ParameterTypeError, check_int
from ._common import check_model, check_states, float64_copy, network_coords

__all__ = ["symbol_sequence", "subregion_fixed_points", "symbolic_graph", "symbols_used"]


def _check(model, owner):
    check_model(model, owner)
    if not hasattr(model, "region_code") or not hasattr(model, "affine_pieces"):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be piecewise linear (AL-RNN, PLRNN, "
            f"shPLRNN). Got {type(model).__name__} instead."
        )


def _latent(model, trajectory, owner) -> torch.Tensor:
    z, layout = check_states(
        model, trajectory, owner, "trajectory", (("T", "N"), ("K|1", "T", "N"))
    )
    if layout == 0:
        z = z.unsqueeze(0)
    return z.expand(model.n_networks, *z.shape[1:])


def symbol_sequence(model: Any, trajectory: Any) -> np.ndarray:
    """Symbols ``[K, T]`` (ints in ``[0, 2^R)``) of latent states ``[K or 1, T, M]``."""
    owner = "symbol_sequence"
    _check(model, owner)
    m = float64_copy(model)
    z = _latent(m, trajectory, owner)
    d = m.region_code(z).round().to(torch.int64)  # [K, T, R]
    R = d.shape[-1]
    weights = 2 ** torch.arange(R - 1, -1, -1, dtype=torch.int64)
    return (d * weights).sum(-1).numpy()


def symbols_used(symbols: np.ndarray) -> list[int]:
    """Number of distinct symbols visited by each network, from ``[K, T]``."""
    arr = np.asarray(symbols.detach().cpu() if torch.is_tensor(symbols) else symbols)
    if arr.dtype.kind not in "biu" or arr.ndim not in (1, 2) or arr.size == 0:
        raise ParameterTypeError(
            "The 'symbols' parameter of symbols_used must be a non-empty int array [T] or [K, T] "
            f"(from symbol_sequence). Got {arr.dtype} array of shape {arr.shape} instead."
        )
    return [len(np.unique(s)) for s in np.atleast_2d(arr)]


def subregion_fixed_points(model: Any) -> xr.Dataset:
    """The analytic fixed point of every linear subregion of every network.

    Returns:
        ``xarray.Dataset`` with ``fixed_point [network, symbol, unit]`` (NaN where
        ``I - M_d`` is singular), ``real [network, symbol]`` (the point lies in its own
        subregion), ``max_abs_eigenvalue`` and ``stable`` of ``M_d``.
    """
    owner = "subregion_fixed_points"
    _check(model, owner)
    m = float64_copy(model)
    K, M, R = m.n_networks, m.n_units, m.n_region_bits
    if R > 16:
        raise ValueError(f"{owner} enumerates 2^R subregions; R = {R} is too many (max 16).")
    S = 2**R
    codes = torch.arange(S)
    D = ((codes[:, None] >> torch.arange(R - 1, -1, -1)) & 1).double()
    D = D.unsqueeze(0).expand(K, S, R).contiguous()
    with torch.no_grad():
        mats, cs = m.affine_pieces(D)
        eye = torch.eye(M, dtype=torch.float64)
        z, info = torch.linalg.solve_ex(eye - mats, cs.unsqueeze(-1))
        z = z.squeeze(-1)
        okay = (info == 0) & torch.isfinite(z).all(-1)
        z = torch.where(okay[..., None], z, torch.full_like(z, float("nan")))
        real = okay & (m.region_code(torch.nan_to_num(z)) == D).all(-1)
        eig = torch.linalg.eigvals(mats).abs().amax(-1)
    ds = xr.Dataset(
        {
            "fixed_point": (("network", "symbol", "unit"), z.numpy()),
            "real": (("network", "symbol"), real.numpy()),
            "max_abs_eigenvalue": (("network", "symbol"), eig.numpy()),
            "stable": (("network", "symbol"), (eig < 1).numpy()),
        },
        coords={**network_coords(model), "symbol": np.arange(S)},
    )
    ds.attrs.update(analysis="subregion_fixed_points", n_region_bits=R)
    return ds


def symbolic_graph(model: Any, trajectory: Any, network: int = 0) -> nx.DiGraph:
    """Transition graph of the symbolic dynamics of one network along a trajectory.

    Arguments:
        model: AL-RNN (or other piecewise-linear model) with K networks.
        trajectory: latent states ``[T, M]`` or ``[K or 1, T, M]`` (e.g. the latent output of
            :func:`dynrnn.analyses.dsr_metrics.generate` after a transient).
        network: which network's graph to build.

    Returns:
        ``networkx.DiGraph``; nodes are the visited symbols with attributes ``occupancy``
        (fraction of time), ``code`` (switch pattern), ``fixed_point``, ``real``, ``stable``,
        ``max_abs_eigenvalue``; edges ``i -> j`` (including self-loops for dwelling) carry
        ``probability`` = P(next = j | now = i) and ``count``. Graph attributes:
        ``n_symbols`` (visited), ``n_subregions`` (2^R).
    """
    owner = "symbolic_graph"
    _check(model, owner)
    K = model.n_networks
    network = check_int(owner, "network", network, 0, K - 1)
    s = symbol_sequence(model, trajectory)[network]
    if len(s) < 2:
        raise ValueError(f"The 'trajectory' of {owner} needs at least 2 time steps.")
    fps = subregion_fixed_points(model.select(network)).isel(network=0)
    R = model.n_region_bits
    G = nx.DiGraph(n_subregions=2**R)
    vals, counts = np.unique(s, return_counts=True)
    for v, c in zip(vals, counts):
        v = int(v)
        G.add_node(
            v,
            occupancy=float(c) / len(s),
            code=tuple(int(b) for b in np.binary_repr(v, width=R)),
            fixed_point=fps.fixed_point.values[v],
            real=bool(fps["real"].values[v]),
            stable=bool(fps.stable.values[v]),
            max_abs_eigenvalue=float(fps.max_abs_eigenvalue.values[v]),
        )
    pair = s[:-1].astype(np.int64) * (2**R) + s[1:]
    pv, pc = np.unique(pair, return_counts=True)
    out_total = {int(v): 0 for v in vals}
    for p, c in zip(pv, pc):
        out_total[int(p) // 2**R] += int(c)
    for p, c in zip(pv, pc):
        i, j = int(p) // 2**R, int(p) % 2**R
        G.add_edge(i, j, count=int(c), probability=float(c) / out_total[i])
    G.graph["n_symbols"] = G.number_of_nodes()
    return G
