"""Figures of HMM-emulating networks (Torre, Viscione, Pompe, Grewe & Mante, "Mechanistic
interpretability of RNNs emulating hidden Markov models", NeurIPS 2025): symbol statistics
against the HMM, transition matrices, dwell times, and one figure per reverse-engineering
analysis of :mod:`dynrnn.analyses.hmm` (collapse without input, noise-sustained orbits, speed
along trajectories, clusters of states by symbol, kick neurons).

Each function takes the ``xarray.Dataset`` of the analysis and an optional Axes (or sequence of
Axes), and returns the Axes (or the Figure, for several panels).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._validation import check_index, check_int
from ._style import PALETTE, check_axes, new_axes
from .ensembles import _dataset, _QuietNaN

__all__ = [
    "plot_symbol_statistics",
    "plot_transition_matrices",
    "plot_dwell_times",
    "plot_autonomous_collapse",
    "plot_noise_orbit",
    "plot_trajectory_speed",
    "plot_symbol_clusters",
    "plot_kick_neurons",
]

_SYMBOL_COLOURS = [PALETTE[k] for k in ("blue", "grey", "orange", "green", "purple",
                                        "vermillion", "sky_blue", "black")]


def _colour(o: int) -> str:
    return _SYMBOL_COLOURS[int(o) % len(_SYMBOL_COLOURS)]


def plot_symbol_statistics(ds: xr.Dataset, ax=None):
    """Symbol frequencies of every network (dots) against the HMM's (bars), one group per
    symbol, with the median volatility of the networks (and the HMM's) in the title.

    Arguments:
        ds: :func:`dynrnn.analyses.evaluate_emulation` (or :func:`emission_statistics`:
            ``frequency``; ``true_frequency`` drawn where present).
        ax: Axes (default: a new Figure).

    Returns:
        The Axes.
    """
    owner = "plot_symbol_statistics"
    ds = _dataset(ds, owner, ("frequency",))
    f = np.asarray(ds["frequency"].values, dtype=float)
    K, O = f.shape
    ax = new_axes(ax, owner=owner)
    x = np.arange(O)
    if "true_frequency" in ds:
        ax.bar(x, ds["true_frequency"].values, width=0.6, color=PALETTE["sky_blue"],
               alpha=0.6, label="HMM")
    jitter = (np.arange(K) - (K - 1) / 2) * (0.4 / max(K, 1))
    for k in range(K):
        ax.plot(x + jitter[k], f[k], "o", color=PALETTE["blue"], ms=3,
                label="networks" if k == 0 else None)
    ax.set_xticks(x, [str(o) for o in x])
    ax.set_xlabel("symbol")
    ax.set_ylabel("frequency")
    if "volatility" in ds:
        v = np.asarray(ds["volatility"].values, dtype=float)
        title = f"volatility {np.median(v):.3f} (median)"
        if "true_volatility" in ds:
            title += f", HMM {float(ds['true_volatility']):.3f}"
        ax.set_title(title)
    ax.set_ylim(0, max(1.0, float(np.nanmax(f)) * 1.05))
    ax.legend(loc="upper center", ncol=2)  # above the bars (frequencies <= 1)
    return ax


def plot_transition_matrices(ds: xr.Dataset, network: int = 0, axes=None):
    """The true HMM transition matrix, the fitted one (states matched), and the network's
    empirical symbol-transition matrix, as three heat maps with their values.

    Arguments:
        ds: :func:`dynrnn.analyses.evaluate_emulation` with ``fit=True``.
        network: which network.
        axes: optional three Axes.

    Returns:
        The Figure.
    """
    import matplotlib.pyplot as plt

    owner = "plot_transition_matrices"
    ds = _dataset(ds, owner, ("true_transition", "matched_transition", "transition"))
    network = check_index(owner, "network", network, ds.sizes["network"])
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.3), layout="constrained")
    axes = check_axes(owner, "axes", axes, 3)
    mats = [(ds["true_transition"].values, "HMM: P(state' | state)"),
            (ds["matched_transition"].values[network], f"fitted to network {network}"),
            (ds["transition"].values[network], "symbols: P(y' | y)")]
    for ax, (M, title) in zip(axes, mats):
        M = np.asarray(M, dtype=float)
        im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(M):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.5 else "black")
        ax.set_title(title)
        ax.set_xticks(range(M.shape[1]))
        ax.set_yticks(range(M.shape[0]))
    axes[0].figure.colorbar(im, ax=list(axes), fraction=0.03, label="probability")
    return axes[0].figure


def plot_dwell_times(ds: xr.Dataset, symbol: int = 0, ax=None, *,
                     reference: xr.Dataset | None = None):
    """Dwell-time distributions of one symbol (complete runs), every network and optionally
    a reference (e.g. :func:`emission_statistics` of HMM sequences), log y.

    Arguments:
        ds: :func:`emission_statistics` / :func:`evaluate_emulation` (``dwell_time``).
        symbol: which symbol.
        ax: Axes; reference: a Dataset with ``dwell_time`` over one or more networks (its
            first network is drawn in black).

    Returns:
        The Axes.
    """
    owner = "plot_dwell_times"
    ds = _dataset(ds, owner, ("dwell_time",))
    symbol = check_index(owner, "symbol", symbol, ds.sizes["symbol"])
    ax = new_axes(ax, owner=owner)
    d = ds["dwell"].values
    P = np.asarray(ds["dwell_time"].values[:, symbol], dtype=float)
    for k, row in enumerate(P):
        ax.plot(d, np.where(row > 0, row, np.nan), color=PALETTE["blue"], lw=0.8, alpha=0.7,
                label="networks" if k == 0 else None)
    if reference is not None:
        ref = _dataset(reference, owner, ("dwell_time",))
        r = np.asarray(ref["dwell_time"].values[0, symbol], dtype=float)
        ax.plot(ref["dwell"].values, np.where(r > 0, r, np.nan), color=PALETTE["black"],
                lw=1.2, label="HMM")
    with _QuietNaN():
        if np.nanmax(np.where(P > 0, P, np.nan), initial=0) > 0:
            ax.set_yscale("log")
    ax.set_xlabel(f"dwell time of symbol {symbol} (steps)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper right")
    return ax


def plot_autonomous_collapse(ds: xr.Dataset, ax=None, *, max_trajectories: int = 16):
    """``|h_t|`` without input (:func:`dynrnn.analyses.autonomous_dynamics`): a few runs per
    network (faint) and each network's median (log y); the title counts the networks that
    collapse to one stable fixed point.

    Returns:
        The Axes.
    """
    owner = "plot_autonomous_collapse"
    ds = _dataset(ds, owner, ("state_norm",))
    m = check_int(owner, "max_trajectories", max_trajectories, 1)
    norm = np.asarray(ds["state_norm"].values, dtype=float)  # [K, P, T]
    K = norm.shape[0]
    ax = new_axes(ax, owner=owner)
    t = np.arange(1, norm.shape[-1] + 1)
    floor = 1e-12
    for k in range(K):
        colour = _SYMBOL_COLOURS[k % len(_SYMBOL_COLOURS)]
        for row in norm[k, :m]:
            ax.plot(t, np.maximum(row, floor), color=colour, lw=0.4, alpha=0.3)
        ax.plot(t, np.maximum(np.median(norm[k], 0), floor), color=colour, lw=1.2,
                label=f"network {k}" if k < 8 else None)
    ax.set_yscale("log")
    ax.set_xlabel("time step (no input)")
    ax.set_ylabel("|h_t|")
    if "collapses" in ds:
        ax.set_title(f"{int(ds['collapses'].values.sum())} of {K} networks collapse to one "
                     "stable fixed point")
    ax.legend(loc="upper right", ncol=2)
    return ax


def plot_noise_orbit(ds: xr.Dataset, network: int = 0, ax=None, *, max_steps: int = 2000):
    """A noise-driven run in its PC1-PC2 plane (:func:`dynrnn.analyses.noise_orbits`), the
    points coloured by the symbol emitted.

    Returns:
        The Axes.
    """
    owner = "plot_noise_orbit"
    ds = _dataset(ds, owner, ("projection", "symbols"))
    network = check_index(owner, "network", network, ds.sizes["network"])
    n = check_int(owner, "max_steps", max_steps, 2)
    p = np.asarray(ds["projection"].values[network, :n], dtype=float)
    y = np.asarray(ds["symbols"].values[network, :n])
    ax = new_axes(ax, owner=owner)
    ax.plot(p[:, 0], p[:, 1], color=PALETTE["grey"], lw=0.3, alpha=0.5, zorder=1)
    for o in np.unique(y):
        sel = y == o
        ax.scatter(p[sel, 0], p[sel, 1], s=2, color=_colour(o), label=f"symbol {o}", zorder=2)
    ev = ds["explained_variance"].values[network]
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}%)")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}%)")
    if "winding" in ds:
        ax.set_title(f"network {network}: {float(ds['winding'].values[network]):+.2f} turns / "
                     "100 steps")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=3)  # outside the data
    return ax


def plot_trajectory_speed(ds: xr.Dataset, network: int = 0, trajectory: int = 0, ax=None,
                          *, max_steps: int = 400):
    """The deterministic drift ``|F(h, 0) - h|`` along a noise-driven run
    (:func:`dynrnn.analyses.trajectory_speed`) with symbol switches as vertical lines and the
    emitted symbol as a coloured strip at the bottom.

    Returns:
        The Axes.
    """
    owner = "plot_trajectory_speed"
    ds = _dataset(ds, owner, ("drift", "switch", "symbols"))
    network = check_index(owner, "network", network, ds.sizes["network"])
    trajectory = check_index(owner, "trajectory", trajectory, ds.sizes["trajectory"])
    n = check_int(owner, "max_steps", max_steps, 2)
    v = np.asarray(ds["drift"].values[network, trajectory, :n], dtype=float)
    sw = np.asarray(ds["switch"].values[network, trajectory, :n], dtype=bool)
    y = np.asarray(ds["symbols"].values[network, trajectory, :n])
    t = np.arange(len(v))
    ax = new_axes(ax, owner=owner)
    ax.plot(t, v, color=PALETTE["black"], lw=0.8, label="|F(h, 0) - h|")
    for ts in np.flatnonzero(sw):
        ax.axvline(ts, color=PALETTE["vermillion"], lw=0.6, alpha=0.7)
    lo = 0.0
    hi = float(np.nanmax(v)) if np.isfinite(v).any() else 1.0
    for o in np.unique(y):
        sel = y == o
        ax.scatter(t[sel], np.full(sel.sum(), lo - 0.04 * (hi - lo + 1e-12)), s=2,
                   color=_colour(o), marker="s", label=f"symbol {o}")
    ax.set_xlabel("time step (noise-driven)")
    ax.set_ylabel("drift (speed)")
    r = float(ds["switch_speed_ratio"].values[network])
    ax.set_title(f"network {network}: drift at switches / elsewhere = {r:.2f}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=3)  # outside the data
    return ax


def plot_symbol_clusters(ds: xr.Dataset, network: int = 0, ax=None, *,
                         max_points: int = 3000):
    """States coloured by emitted symbol in their top two PCs, with the symbol centroids
    (:func:`dynrnn.analyses.symbol_clusters`).

    Returns:
        The Axes.
    """
    owner = "plot_symbol_clusters"
    ds = _dataset(ds, owner, ("projection", "sample_symbol", "centroid_projection"))
    network = check_index(owner, "network", network, ds.sizes["network"])
    n = check_int(owner, "max_points", max_points, 1)
    p = np.asarray(ds["projection"].values[network], dtype=float)
    y = np.asarray(ds["sample_symbol"].values[network])
    step = max(1, len(y) // n)
    p, y = p[::step], y[::step]
    ax = new_axes(ax, owner=owner)
    two = p.shape[1] >= 2
    for o in np.unique(y):
        sel = y == o
        ax.scatter(p[sel, 0], p[sel, 1] if two else np.zeros(sel.sum()), s=2, alpha=0.5,
                   color=_colour(o), label=f"symbol {o}")
    c = np.asarray(ds["centroid_projection"].values[network], dtype=float)
    for o, row in enumerate(c):
        if np.isfinite(row).all():
            ax.scatter(row[0], row[1] if two else 0.0, s=40, marker="X", color=_colour(o),
                       edgecolor="black", linewidth=0.6, zorder=3)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2" if two else "")
    ax.set_title(f"network {network}: separation "
                 f"{float(ds['separation'].values[network]):.2f}, nearest-centroid accuracy "
                 f"{float(ds['nearest_centroid_accuracy'].values[network]):.2f}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=3)  # outside the data
    return ax


def plot_kick_neurons(ds: xr.Dataset, network: int = 0, ax=None, *, n_units: int = 12):
    """Switch-triggered averages (z-scored per unit) of the units with the highest kick scores
    (:func:`dynrnn.analyses.kick_neurons`), one row per unit, lag 0 = the switch.

    Returns:
        The Axes.
    """
    owner = "plot_kick_neurons"
    ds = _dataset(ds, owner, ("triggered_average", "kick_score", "unit_mean", "unit_std"))
    network = check_index(owner, "network", network, ds.sizes["network"])
    n = check_int(owner, "n_units", n_units, 1)
    score = np.asarray(ds["kick_score"].values[network], dtype=float)
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf))[:n]
    sta = np.asarray(ds["triggered_average"].values[network], dtype=float)  # [L, N]
    m = ds["unit_mean"].values[network]
    s = ds["unit_std"].values[network]
    z = (sta - m) / np.where(s > 0, s, 1.0)
    lags = ds["lag"].values
    ax = new_axes(ax, owner=owner)
    Z = z[:, order].T
    lim = float(np.nanmax(np.abs(Z))) if np.isfinite(Z).any() else 1.0
    im = ax.imshow(Z, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                   extent=(lags[0] - 0.5, lags[-1] + 0.5, len(order) - 0.5, -0.5))
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(range(len(order)), [str(u) for u in order])
    ax.set_xlabel("lag from switch (steps)")
    ax.set_ylabel("unit (by kick score)")
    ax.figure.colorbar(im, ax=ax, label="(activity - mean) / std", fraction=0.046, pad=0.04)
    kick = ds["is_kick"].values[network] if "is_kick" in ds else None
    if kick is not None:
        ax.set_title(f"network {network}: {int(kick.sum())} kick neurons")
    return ax
