"""Figures of dynamics: fixed points in PCA space, eigenvalue spectra, Lyapunov spectra, tau vs N.

Every function takes an analysis result (``xarray.Dataset``) and an optional Axes, draws on it
and returns the Axes (its Figure is ``ax.figure``); nothing is shown.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from .._validation import (
    ParameterTypeError,
    check_array,
    check_bool,
    check_choice,
    check_float,
    check_index,
    check_int,
    check_shape,
)
from ._style import PALETTE, STABILITY_COLOURS, new_axes

__all__ = [
    "pca_basis",
    "plot_fixed_points",
    "plot_eigenvalues",
    "plot_lyapunov_spectrum",
    "plot_timescales",
]

_STAB_NAMES = {0: "stable", 1: "saddle", 2: "unstable"}


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, xr.DataArray):
        x = x.values
    return np.asarray(x)


def _check_ds(ds: Any, needed: tuple[str, ...], owner: str) -> None:
    if not isinstance(ds, xr.Dataset):
        raise ParameterTypeError(
            f"The 'ds' parameter of {owner} must be an xarray.Dataset from dynrnn.analyses. "
            f"Got {type(ds).__name__}."
        )
    missing = [v for v in needed if v not in ds]
    if missing:
        kind = ds.attrs.get("analysis")
        raise ValueError(
            f"The 'ds' parameter of {owner} needs the variables {list(needed)}; it lacks "
            f"{missing}. Got a result{f' of {kind!r}' if kind else ''} with the variables "
            f"{sorted(map(str, ds.data_vars))}."
        )


def _check_basis(basis: Any, owner: str, N: int | None, n_components: int):
    """``(mean [N], components [>= n_components, N])`` as float arrays, else raise."""
    if not isinstance(basis, (tuple, list)) or len(basis) != 2:
        raise ParameterTypeError(
            f"The 'basis' parameter of {owner} must be a pair (mean, components) from pca_basis. "
            f"Got {type(basis).__name__} instead."
        )
    mean = check_array(owner, "basis", basis[0], finite=True)
    comps = check_array(owner, "basis", basis[1], finite=True)
    n = mean.shape[-1] if mean.ndim == 1 else N
    if mean.ndim != 1 or comps.ndim != 2 or comps.shape[1] != n or (N is not None and n != N) or (
        comps.shape[0] < n_components
    ):
        raise ValueError(
            f"The 'basis' parameter of {owner} must be (mean [N], components [n_components, N]) "
            f"with N={N} and n_components={n_components}. Got shapes {mean.shape} and "
            f"{comps.shape}."
        )
    return mean, comps


def _network(ds: xr.Dataset, network: int, owner: str) -> xr.Dataset:
    K = ds.sizes.get("network", 1)
    network = check_index(owner, "network", network, K)
    return ds.isel(network=network) if "network" in ds.dims else ds


def pca_basis(data: Any, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes of states ``[..., N]`` (NaN rows ignored).

    Returns:
        ``(mean [N], components [n_components, N])``; project with ``(x - mean) @ components.T``.
    """
    n_components = check_int("pca_basis", "n_components", n_components, 1)
    x = check_array("pca_basis", "data", _numpy(data), min_ndim=1)
    x = x.reshape(-1, x.shape[-1])
    x = x[np.isfinite(x).all(1)]
    if len(x) == 0 or x.shape[1] == 0:
        raise ValueError("The 'data' parameter of pca_basis needs at least one finite state.")
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = np.zeros((n_components, x.shape[1]))
    comps[: min(n_components, len(vt))] = vt[:n_components]
    return mean, comps


def plot_fixed_points(
    ds: xr.Dataset,
    network: int = 0,
    trajectories: Any = None,
    *,
    ax=None,
    n_components: int = 2,
    basis: tuple[np.ndarray, np.ndarray] | None = None,
    show_unstable_directions: bool = True,
    direction_scale: float | None = None,
    include_slow_points: bool = True,
    max_trajectories: int = 20,
):
    """Fixed points of one network in PCA space, coloured by stability.

    Stable points are filled blue circles, saddles orange, unstable points vermillion, slow
    points grey rings; through every point with unstable directions a line is drawn along each
    unstable right eigenvector (real part, half-length ``direction_scale`` in state units).

    Arguments:
        ds: result of :func:`dynrnn.analyses.find_fixed_points` (needs eigenvectors for the
            unstable directions).
        network: which network (position along ``network``).
        trajectories: optional states ``[B, T, N]`` of this network or ``[K, B, T, N]`` of all
            (the network is selected); drawn in light grey and used for the PCA.
        ax: Axes to draw on (3-D Axes for ``n_components=3``); default a new Figure.
        n_components: 2 or 3.
        basis: ``(mean, components)`` from :func:`pca_basis` to share axes across plots.
        show_unstable_directions, include_slow_points: see above.
        direction_scale: half-length of the unstable-direction segments in state units
            (default: 8% of the largest extent of the plotted data in PCA space).
        max_trajectories: at most this many trials are drawn.

    Returns:
        The Axes.
    """
    owner = "plot_fixed_points"
    _check_ds(ds, ("points", "stability", "valid"), owner)
    check_choice(owner, "n_components", n_components, (2, 3))
    n_components = int(n_components)
    check_bool(owner, "show_unstable_directions", show_unstable_directions)
    check_bool(owner, "include_slow_points", include_slow_points)
    max_trajectories = check_int(owner, "max_trajectories", max_trajectories, 0)
    if direction_scale is not None:
        direction_scale = check_float(
            owner, "direction_scale", direction_scale, 0.0, math.inf, False, False
        )
    d = _network(ds, network, owner)
    N = d.sizes.get("unit")
    if basis is not None:
        basis = _check_basis(basis, owner, N, n_components)
    valid = _numpy(d["valid"]).astype(bool)
    if not include_slow_points and "is_slow_point" in d:
        valid &= ~_numpy(d["is_slow_point"]).astype(bool)
    pts = _numpy(d["points"])[valid]
    stab = _numpy(d["stability"])[valid]
    slow = _numpy(d["is_slow_point"])[valid] if "is_slow_point" in d else np.zeros(len(pts), bool)
    traj = None
    if trajectories is not None:
        traj = check_array(owner, "trajectories", _numpy(trajectories))
        sizes = {"K": ds.sizes.get("network", 1)} | ({"N": N} if N is not None else {})
        layout = check_shape(
            owner, "trajectories", traj, [("B", "T", "N"), ("K", "B", "T", "N"), ("T", "N")],
            **sizes,
        )
        if layout == 1:
            traj = traj[int(network)]
        if layout == 2:
            traj = traj[None]
    if basis is None:
        source = traj if traj is not None else pts
        if source is None or np.size(source) == 0:
            source = np.zeros((1, d.sizes["unit"]))
        basis = pca_basis(source, n_components)
    mean, comps = basis
    comps = comps[:n_components]

    def proj(x):
        return (np.asarray(x) - mean) @ comps.T

    ax = new_axes(ax, "3d" if n_components == 3 else None, owner)
    P = proj(pts) if len(pts) else np.zeros((0, n_components))
    if direction_scale is None:
        shown = [P] + ([proj(traj.reshape(-1, traj.shape[-1]))] if traj is not None else [])
        shown = np.concatenate(shown)
        span = float(np.ptp(shown, axis=0).max()) if len(shown) else 0.0
        direction_scale = 0.08 * span if span > 0 else 0.25
    if traj is not None:
        for tr in traj[:max_trajectories]:
            p = proj(tr)
            ax.plot(*p.T, color=PALETTE["grey"], lw=0.5, alpha=0.5, zorder=1)
    if show_unstable_directions and "right_eigenvectors" in d and "n_unstable" in d:
        vecs = _numpy(d["right_eigenvectors"])[valid]  # [F, unit, eigen]
        n_unst = _numpy(d["n_unstable"])[valid]
        for i in range(len(pts)):
            for j in range(max(int(n_unst[i]), 0)):
                v = np.real(vecs[i, :, j])
                norm = np.linalg.norm(v)
                if not np.isfinite(norm) or norm == 0:
                    continue
                v = direction_scale * v / norm
                seg = proj(np.stack([pts[i] - v, pts[i] + v]))
                ax.plot(*seg.T, color=STABILITY_COLOURS["unstable"], lw=0.8, zorder=2)
    for code, name in _STAB_NAMES.items():
        sel = (stab == code) & ~slow
        if sel.any():
            ax.scatter(*P[sel].T, s=22, color=STABILITY_COLOURS[name], edgecolor="white",
                       linewidth=0.4, zorder=3, label=f"{name} ({int(sel.sum())})")
    if slow.any():
        ax.scatter(*P[slow].T, s=22, facecolor="none", edgecolor=STABILITY_COLOURS["slow"],
                   linewidth=0.8, zorder=3, label=f"slow ({int(slow.sum())})")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if n_components == 3:
        ax.set_zlabel("PC 3")
    if len(pts):
        ax.legend(loc="best")
    return ax


def plot_eigenvalues(
    ds: xr.Dataset,
    network: int = 0,
    fixed_point: int | None = None,
    *,
    ax=None,
    convention: str = "discrete",
    colour_by_stability: bool = True,
    kinds: tuple[str, ...] = ("stable", "saddle", "unstable"),
):
    """Eigenvalues of the Jacobian in the complex plane.

    With the fixed points' stability known, each kind has its colour and marker and the
    kinds are drawn unstable first, then saddles, then stable points on top (the spectra a
    reader looks for are not hidden under the saddles'); ``kinds`` selects which are drawn
    (e.g. ``("stable",)``: the memories only), and the legend counts the points of each.

    Discrete convention: eigenvalues ``lambda`` of the map with the unit circle; continuous:
    ``(lambda - 1) / dt`` with the imaginary axis.

    Arguments:
        ds: a result with ``eigenvalues`` (:func:`find_fixed_points`, :func:`linearise`).
        network: which network; fixed_point: one point (index) or None for all.
        ax: Axes (default new Figure).
        convention: ``"discrete"`` or ``"continuous"``.
        colour_by_stability: colour points by the stability of their fixed point (if known).
        kinds: the stability kinds drawn (with ``colour_by_stability``).

    Returns:
        The Axes.
    """
    owner = "plot_eigenvalues"
    _check_ds(ds, ("eigenvalues",), owner)
    check_choice(owner, "convention", convention, ("discrete", "continuous"))
    check_bool(owner, "colour_by_stability", colour_by_stability)
    if isinstance(kinds, str):
        kinds = (kinds,)
    for kind in kinds:
        check_choice(owner, "kinds", kind, tuple(_STAB_NAMES.values()))
    d = _network(ds, network, owner)
    point_dim = next((dim for dim in d["eigenvalues"].dims if dim != "eigen"), None)
    if fixed_point is not None and point_dim is not None:
        fixed_point = check_index(owner, "fixed_point", fixed_point, d.sizes[point_dim])
        d = d.isel({point_dim: [fixed_point]})
    lam = _numpy(d["eigenvalues"])
    lam = lam.reshape(-1, lam.shape[-1]) if lam.ndim > 1 else lam[None]
    dt = float(_numpy(d["dt"])) if "dt" in d.coords else 1.0
    z = lam if convention == "discrete" else (lam - 1.0) / dt
    codes = None
    if colour_by_stability and "stability" in d and point_dim == "fixed_point":
        codes = _numpy(d["stability"]).reshape(-1)
    ax = new_axes(ax, owner=owner)
    if convention == "discrete":
        th = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(th), np.sin(th), color=PALETTE["black"], lw=0.6, ls="--", zorder=1)
        ax.set_xlabel(r"Re $\lambda$")
        ax.set_ylabel(r"Im $\lambda$")
        ax.set_aspect("equal", adjustable="datalim")
    else:
        ax.axvline(0.0, color=PALETTE["black"], lw=0.6, ls="--", zorder=1)
        ax.set_xlabel(r"Re $(\lambda - 1)/dt$")
        ax.set_ylabel(r"Im $(\lambda - 1)/dt$")
    if codes is None:
        zz = z[np.isfinite(z)]
        ax.scatter(zz.real, zz.imag, s=8, color=PALETTE["blue"], zorder=2)
    else:
        markers = {"stable": "o", "saddle": "^", "unstable": "s"}
        for z_order, code in enumerate((2, 1, 0)):  # stable points drawn last, on top
            name = _STAB_NAMES[code]
            if name not in kinds:
                continue
            rows = codes == code
            zz = z[rows]
            zz = zz[np.isfinite(zz)]
            if zz.size:
                n_pts = int(rows.sum())
                ax.scatter(zz.real, zz.imag, s=9, marker=markers[name],
                           color=STABILITY_COLOURS[name], zorder=2 + z_order, alpha=0.8,
                           linewidth=0, label=f"{name} ({n_pts} point{'s' * (n_pts != 1)})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
    return ax


def plot_lyapunov_spectrum(
    ds: xr.Dataset,
    *,
    ax=None,
    networks: Any = None,
    per_time: bool = False,
    show_mean: bool = True,
    group_by: str | None = None,
):
    """Lyapunov spectra (exponent vs index) of several networks, with the zero line.

    With ``group_by`` (a network coordinate, e.g. ``"n_units"`` or ``"init_gain"``) the
    spectra are grouped: one line per group value (the mean over its networks) with a band
    of +- one standard deviation, so that thousands of networks stay readable.

    Arguments:
        ds: result of :func:`dynrnn.analyses.lyapunov_spectrum`.
        ax: Axes (default new Figure).
        networks: positions to draw (default all).
        per_time: plot exponents per time unit instead of per step.
        show_mean: overlay the mean spectrum over the drawn networks.
        group_by: a coordinate along ``network`` to group by (see above).

    Returns:
        The Axes.
    """
    owner = "plot_lyapunov_spectrum"
    check_bool(owner, "per_time", per_time)
    check_bool(owner, "show_mean", show_mean)
    var = "exponents_per_time" if per_time else "exponents"
    _check_ds(ds, (var,), owner)
    lam = _numpy(ds[var])
    if lam.ndim == 1:
        lam = lam[None]
    if networks is None:
        idx = np.arange(lam.shape[0])
    else:
        chosen = networks.tolist() if hasattr(networks, "tolist") else networks
        chosen = chosen if isinstance(chosen, (list, tuple)) else [chosen]
        idx = np.asarray(
            [check_index(owner, "networks", i, lam.shape[0]) for i in chosen], dtype=int
        )
    lam = lam[idx]
    ax = new_axes(ax, owner=owner)
    x = np.arange(1, lam.shape[1] + 1)
    if group_by is not None:
        if group_by not in ds.coords or ds[group_by].dims != ("network",):
            coords = sorted(c for c in ds.coords if ds[c].dims == ("network",))
            raise ValueError(f"The 'group_by' parameter of {owner} must be a coordinate along "
                             f"'network' ({coords}); got {group_by!r}.")
        keys = _numpy(ds[group_by])[idx]
        for value in sorted(set(keys.tolist()), key=lambda v: (str(type(v)), v)):
            rows = lam[keys == value]
            mean, sd = np.nanmean(rows, 0), np.nanstd(rows, 0)
            (line,) = ax.plot(x, mean, lw=1.2, marker="o" if lam.shape[1] <= 20 else None,
                              ms=2, label=f"{group_by} = {value} ({len(rows)})")
            ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(0.0, color=PALETTE["black"], lw=0.6, ls="--")
        ax.set_xlabel("index i")
        ax.set_ylabel(r"$\lambda_i$ " + ("(per time unit)" if per_time else "(per step)"))
        ax.legend(loc="best")
        return ax
    alpha = 1.0 if len(lam) <= 8 else 0.3
    for i, row in enumerate(lam):
        ax.plot(x, row, lw=0.8, alpha=alpha, marker="o" if lam.shape[1] <= 20 else None,
                ms=2, color=None if len(lam) <= 8 else PALETTE["grey"],
                label=f"network {int(idx[i])}" if len(lam) <= 8 else None)
    if show_mean and len(lam) > 1:
        ax.plot(x, lam.mean(0), color=PALETTE["black"], lw=1.5, label="mean")
    ax.axhline(0.0, color=PALETTE["black"], lw=0.6, ls="--")
    ax.set_xlabel("index i")
    ax.set_ylabel(r"$\lambda_i$ " + ("(per time unit)" if per_time else "(per step)"))
    if len(lam) <= 8 or show_mean:
        ax.legend(loc="best")
    return ax


def plot_timescales(
    ds: xr.Dataset,
    x: str = "n_units",
    y: str = "tau_net",
    *,
    ax=None,
    show_neuron_tau: bool = True,
    logy: bool = False,
):
    """Timescale against a per-network quantity (e.g. network size or the task's N).

    Each network is a dot; the mean per value of ``x`` is a line. With ``show_neuron_tau`` the
    mean single-neuron time constant (``neuron_tau_mean``) is drawn alongside, so network
    timescales built by recurrence can be compared with slow single units.

    Arguments:
        ds: result of :func:`dynrnn.analyses.network_timescale` (any dataset with ``y`` and
            ``x`` along ``network``; attach e.g. the curriculum N with
            ``ds.assign_coords(N=("network", values))``).
        x: coordinate or variable on the horizontal axis.
        y: variable on the vertical axis.
        ax: Axes (default new Figure).
        show_neuron_tau: also plot ``neuron_tau_mean`` when present.
        logy: logarithmic vertical axis.

    Returns:
        The Axes.
    """
    owner = "plot_timescales"
    check_bool(owner, "show_neuron_tau", show_neuron_tau)
    check_bool(owner, "logy", logy)
    _check_ds(ds, (), owner)
    if not isinstance(y, str):
        raise ParameterTypeError(
            f"The 'y' parameter of {owner} must be the name of a variable. Got {y!r}."
        )
    if y not in ds:
        raise ValueError(
            f"The 'ds' parameter of {owner} lacks the variable {y!r} named by its 'y' "
            f"parameter (it has {sorted(ds.data_vars)})."
        )
    if not isinstance(x, str) or x not in ds.variables:
        raise ValueError(
            f"The 'x' parameter of {owner} must name a coordinate or variable of the dataset "
            f"(e.g. {sorted(ds.coords)}). Got {x!r}."
        )
    xv = _numpy(ds[x]).astype(float)
    ax = new_axes(ax, owner=owner)
    series = [(y, PALETTE["blue"], r"$\tau_{net}$" if y == "tau_net" else y)]
    if show_neuron_tau and "neuron_tau_mean" in ds:
        series.append(("neuron_tau_mean", PALETTE["orange"], r"single-neuron $\tau$"))
    for var, colour, label in series:
        yv = _numpy(ds[var]).astype(float)
        ok = np.isfinite(xv) & np.isfinite(yv)
        ax.scatter(xv[ok], yv[ok], s=10, color=colour, alpha=0.5, zorder=2)
        ux = np.unique(xv[ok])
        if len(ux):
            means = [yv[ok][xv[ok] == u].mean() for u in ux]
            ax.plot(ux, means, color=colour, lw=1.2, marker="o", ms=3, label=label, zorder=3)
    ax.set_xlabel(x)
    ax.set_ylabel("timescale (steps)")
    if logy:
        ax.set_yscale("log")
    ax.legend(loc="best")
    return ax
