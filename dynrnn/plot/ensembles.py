"""Figures across networks and of raw activity: distance matrices in hierarchical order,
training histories (median and spread), spike rasters with the population rate, and a
reconstructed attractor against the truth (state space and per-dimension power spectra).

Each function takes a result (an ``xarray.Dataset`` of the package, or the object that has
``to_xarray()``) and an optional Axes (or sequence of Axes), and returns the Axes or Figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .._validation import ParameterTypeError, check_index
from ._style import PALETTE, check_axes, new_axes

__all__ = ["plot_distance_matrix", "plot_training_history", "plot_spike_raster",
           "plot_reconstruction"]


def _dataset(result: Any, owner: str, needed: tuple[str, ...]) -> xr.Dataset:
    ds = result.to_xarray() if hasattr(result, "to_xarray") and not isinstance(
        result, xr.Dataset) else result
    if not isinstance(ds, xr.Dataset):
        raise ParameterTypeError(f"The 'result' parameter of {owner} must be an xarray.Dataset "
                                 f"(or have to_xarray()). Got {type(result).__name__} instead.")
    missing = [v for v in needed if v not in ds]
    if missing:
        raise ValueError(f"The 'result' parameter of {owner} needs the variables "
                         f"{list(needed)}; it lacks {missing}. Got the variables "
                         f"{sorted(map(str, ds.data_vars))}.")
    return ds


def plot_distance_matrix(ds: xr.Dataset, variable: str | None = None, ax=None, *,
                         order: str = "hierarchical", label: str | None = None,
                         cmap: str = "viridis"):
    """A pairwise distance (or similarity) matrix, rows and columns in hierarchical order.

    The order is the leaf order of an average-linkage clustering of the matrix (scipy's
    ``linkage`` on the condensed distances, ``optimal_ordering=True``), so that groups of
    similar networks form blocks on the diagonal; ``order="given"`` keeps the networks' order.
    A similarity (``cka``, values in [0, 1] with ones on the diagonal) is clustered on
    ``1 - similarity``. NaN pairs (e.g. weight distances across sizes) are drawn blank and
    clustered as the largest distance.

    Arguments:
        ds: a pairwise result over ``network`` x ``network_b`` (:func:`dynrnn.analyses.dsa`,
            ``cka``, ``weight_distance``, ``procrustes_distance``,
            :func:`dynrnn.batch.open_pairwise`).
        variable: which variable (default: the first square ``network x network_b`` one).
        ax: Axes (default: a new Figure); label: colour-bar label (default: the variable's
            ``long_name`` / name and units).
        order: ``"hierarchical"`` or ``"given"``.

    Returns:
        The Axes (its ``dynrnn_order`` attribute holds the network order drawn).
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    owner = "plot_distance_matrix"
    ds = _dataset(ds, owner, ())
    square = [v for v in ds.data_vars if ds[v].dims == ("network", "network_b")]
    if not square:
        raise ValueError(f"The 'ds' parameter of {owner} needs a variable over (network, "
                         f"network_b); got the variables {sorted(map(str, ds.data_vars))}.")
    variable = square[0] if variable is None else variable
    if variable not in square:
        raise ValueError(f"The 'variable' parameter of {owner} must be one of {square}; got "
                         f"{variable!r}.")
    if order not in ("hierarchical", "given"):
        raise ValueError(f"The 'order' parameter of {owner} must be 'hierarchical' or 'given'; "
                         f"got {order!r}.")
    M = np.asarray(ds[variable].values, dtype=float)
    n = M.shape[0]
    similarity = bool(np.allclose(np.diag(M), 1.0)) and np.nanmax(M) <= 1.0 + 1e-9
    D = 1.0 - M if similarity else M.copy()
    idx = np.arange(n)
    if order == "hierarchical" and n > 2:
        D = np.where(np.isfinite(D), D, np.nanmax(D[np.isfinite(D)]) if np.isfinite(D).any()
                     else 1.0)
        D = 0.5 * (D + D.T)
        np.fill_diagonal(D, 0.0)
        idx = leaves_list(linkage(squareform(np.clip(D, 0, None), checks=False), "average",
                                  optimal_ordering=True))
    ax = new_axes(ax, owner=owner)
    im = ax.imshow(M[np.ix_(idx, idx)], cmap=cmap, interpolation="nearest")
    attrs = ds[variable].attrs
    if label is None:
        label = attrs.get("long_name", variable)
        if "units" in attrs:
            label = f"{label} ({attrs['units']})"
    ax.figure.colorbar(im, ax=ax, label=label, fraction=0.046, pad=0.04)
    if n <= 30:
        ax.set_xticks(range(n), [str(i) for i in idx], rotation=90)
        ax.set_yticks(range(n), [str(i) for i in idx])
    ax.set_xlabel("network" + (" (hierarchical order)" if order == "hierarchical" else ""))
    ax.set_ylabel("network")
    ax.dynrnn_order = idx
    return ax


def plot_training_history(history: Any, ax=None, *, variable: str = "loss",
                          logy: bool = True, show_networks: bool = True):
    """Training curves across an ensemble: the median over networks and the 10-90% band,
    with every network's curve faint behind them.

    Arguments:
        history: :class:`dynrnn.training.History` or its ``to_xarray()``; ``variable``
            ``"loss"`` (per step) or ``"eval_loss"`` (per evaluation), or the ``loss`` of a
            :class:`~dynrnn.training.gtf.GTFHistory` Dataset (per iteration).
        ax: Axes (default: a new Figure); logy: log y axis; show_networks: faint curves.

    Returns:
        The Axes.
    """
    owner = "plot_training_history"
    ds = _dataset(history, owner, (variable,))
    da = ds[variable]
    if "network" not in da.dims or da.ndim != 2:
        raise ValueError(f"The variable {variable!r} given to {owner} must be (network, step); "
                         f"got dims {da.dims}.")
    da = da.transpose("network", ...)
    step_dim = da.dims[1]
    y = np.asarray(da.values, dtype=float)
    x = (np.asarray(ds["eval_step"].values) if step_dim == "eval" and "eval_step" in ds
         else np.arange(y.shape[1]))
    ax = new_axes(ax, owner=owner)
    if show_networks:
        for row in y:
            ax.plot(x, row, color=PALETTE["grey"], lw=0.4, alpha=0.35, zorder=1)
    with np.errstate(all="ignore"), _QuietNaN():
        med = np.nanmedian(y, 0)
        lo, hi = np.nanpercentile(y, 10, 0), np.nanpercentile(y, 90, 0)
    ax.fill_between(x, lo, hi, color=PALETTE["blue"], alpha=0.25, lw=0, zorder=2,
                    label="10-90% of networks")
    ax.plot(x, med, color=PALETTE["blue"], lw=1.4, zorder=3,
            label=f"median of {y.shape[0]} networks")
    if logy and np.nanmin(y) > 0:
        ax.set_yscale("log")
    ax.set_xlabel({"eval": "training step", "step": "training step",
                   "iteration": "iteration"}.get(step_dim, step_dim))
    ax.set_ylabel({"loss": "training loss", "eval_loss": "held-out loss"}.get(variable,
                                                                            variable))
    ax.legend(loc="upper right")
    return ax


class _QuietNaN:
    """Silence numpy's "All-NaN slice" warnings (networks that stopped are NaN after)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def plot_spike_raster(result: Any, network: int = 0, trial: int = 0, axes=None, *,
                      max_neurons: int | None = 400, bin_ms: float = 5.0,
                      n_excitatory: int | None = None):
    """A spike raster (one dot per spike) over the population rate (Hz, in ``bin_ms`` bins).

    Arguments:
        result: :class:`dynrnn.models.SpikingResult` or its ``to_xarray()`` (``spikes``
            ``[network, trial, time, neuron]``, time in ms).
        network, trial: which to show.
        axes: optional two Axes (raster, rate); default a new Figure.
        max_neurons: at most this many neurons in the raster (the first ones; None: all).
        bin_ms: bin of the population rate.
        n_excitatory: draw neurons from this index on (inhibitory) in another colour.

    Returns:
        The Figure.
    """
    import matplotlib.pyplot as plt

    owner = "plot_spike_raster"
    ds = _dataset(result, owner, ("spikes",))
    K, B = ds.sizes["network"], ds.sizes["trial"]
    network = check_index(owner, "network", network, K)
    trial = check_index(owner, "trial", trial, B)
    spikes = np.asarray(ds["spikes"].values[network, trial], dtype=bool)  # [T, N]
    t_ms = np.asarray(ds["time"].values, dtype=float)
    dt = float(t_ms[1] - t_ms[0]) if len(t_ms) > 1 else float(ds.attrs.get("dt", 1.0))
    if axes is None:
        fig, axes = plt.subplots(2, 1, sharex=True, figsize=(5.0, 3.2), layout="constrained",
                                 height_ratios=[3, 1])
    axes = check_axes(owner, "axes", axes, 2)
    fig = axes[0].figure
    N = spikes.shape[1]
    shown = N if max_neurons is None else min(N, int(max_neurons))
    tt, ii = np.nonzero(spikes[:, :shown])
    colour = np.where((n_excitatory is not None) & (ii >= (n_excitatory or 0)),
                      PALETTE["vermillion"], PALETTE["black"])
    axes[0].scatter(t_ms[tt], ii, s=0.6, c=colour, marker=".", linewidths=0, rasterized=True)
    axes[0].set_ylabel("neuron")
    axes[0].set_ylim(-0.5, shown - 0.5)
    per_bin = max(1, int(round(bin_ms / dt)))
    n_bins = spikes.shape[0] // per_bin
    counts = spikes[: n_bins * per_bin].reshape(n_bins, per_bin, N).sum((1, 2))
    rate = counts / (N * per_bin * dt * 1e-3)
    axes[1].plot(t_ms[: n_bins * per_bin : per_bin] + 0.5 * per_bin * dt, rate,
                 color=PALETTE["blue"], lw=0.9)
    axes[1].set_ylabel("rate (Hz)")
    axes[1].set_xlabel("time (ms)")
    return fig


def plot_reconstruction(truth: Any, generated: Any = None, axes=None, *, dims=(0, 1, 2),
                        dt: float = 1.0, names: tuple[str, ...] | None = None,
                        max_points: int = 5000, network: int | None = None,
                        time_series: bool | None = None, series_steps: int = 2000):
    """A reconstructed attractor against the true one: the state space (3-D, or 2-D with
    two dims) and the power spectrum of every dimension (log scale), truth in black and the
    model's free-running trajectory in blue; optionally the time series of every dimension.

    Arguments:
        truth, generated: trajectories ``[T, D]`` (observation space; the same D); or
            ``truth`` the result of :func:`dynrnn.reconstruct` (an ``xarray.Dataset`` with
            ``heldout (time, channel)`` and ``free_run (network, time, channel)``, data
            units) and ``generated`` None: the held-out data against the free run of
            ``network`` (default the result's ``best_network``), ``dt`` and ``names`` from
            the result, time series shown.
        time_series: also draw the first ``series_steps`` samples of every dimension (data
            and free run, which starts from the data and drifts away where the system is
            chaotic; for a Dataset its ``forecast``, the free run from the stretch's first
            sample); None: only for a Dataset.
        axes: optional ``1 + D`` Axes (``1 + 2 D`` with time series: state space, D spectra,
            D time series; the first 3-D for three dims); default a new Figure.
        dims: the state-space dims drawn (2 or 3).
        dt: sampling interval of the trajectories (for the frequency axis).
        names: names of the D dimensions (default ``x_1 .. x_D``).
        max_points: at most this many points per trajectory in the state-space panel.

    Returns:
        The Figure.
    """
    import matplotlib.pyplot as plt

    owner = "plot_reconstruction"
    series_pair = None  # (data, free run from the data's first sample) for the time series
    if isinstance(truth, xr.Dataset):
        if generated is not None or not {"heldout", "free_run"} <= set(truth.data_vars):
            raise ValueError(f"The 'truth' parameter of {owner} must be a reconstruct() result "
                             f"(variables heldout, free_run) with generated=None.")
        k = int(truth.attrs.get("best_network", 0)) if network is None else check_index(
            owner, "network", network, truth.sizes["network"])
        dt = float(truth.attrs.get("dt", dt))
        names = tuple(str(c) for c in truth["channel"].values) if names is None else names
        series_pair = (truth["heldout"].values, truth["forecast"].values[k]) if (
            "forecast" in truth.data_vars) else None
        generated = truth["free_run"].values[k]
        truth = truth["heldout"].values
        time_series = True if time_series is None else time_series
    a = np.asarray(truth.detach().cpu() if hasattr(truth, "detach") else truth, dtype=float)
    b = np.asarray(generated.detach().cpu() if hasattr(generated, "detach") else generated,
                   dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"The 'truth' and 'generated' parameters of {owner} must be [T, D] "
                         f"with the same D; got {a.shape} and {b.shape}.")
    D = a.shape[1]
    dims = tuple(int(d) for d in dims if int(d) < D)
    if len(dims) not in (2, 3):
        raise ValueError(f"The 'dims' parameter of {owner} must name 2 or 3 of the {D} "
                         f"dimensions; got {dims}.")
    names = tuple(names) if names is not None else tuple(f"$x_{{{i + 1}}}$" for i in range(D))
    three = len(dims) == 3
    series = bool(time_series)
    if axes is None:
        fig = plt.figure(figsize=(3.0 + 1.6 * D + (3.2 if series else 0.0),
                                  max(3.0, 1.1 * D) if series else 3.0), layout="constrained")
        grid = fig.add_gridspec(D, 3 if series else 2,
                                width_ratios=[1.6, 1.0, 1.6] if series else [1.6, 1.0])
        axes = [fig.add_subplot(grid[:, 0], projection="3d" if three else None)]
        axes += [fig.add_subplot(grid[i, 1]) for i in range(D)]
        if series:
            axes += [fig.add_subplot(grid[i, 2]) for i in range(D)]
    axes = check_axes(owner, "axes", axes, 1 + (2 * D if series else D))
    fig = axes[0].figure
    if series:
        sa, sb = series_pair if series_pair is not None else (a, b)
        n_show = min(int(series_steps), len(sa), len(sb))
        t = np.arange(n_show) * dt
        for i, ax in enumerate(axes[1 + D:]):
            ax.plot(t, sa[:n_show, i], color=PALETTE["black"], lw=0.6)
            ax.plot(t, sb[:n_show, i], color=PALETTE["blue"], lw=0.6)
            ax.set_ylabel(names[i])
            if i < D - 1:
                ax.tick_params(labelbottom=False)
        axes[-1].set_xlabel("time" if dt != 1.0 else "time (steps)")
        axes = axes[: 1 + D]
    ss = axes[0]
    for traj, colour, lab, lw in ((a, PALETTE["black"], "truth", 0.4),
                                  (b, PALETTE["blue"], "model (free run)", 0.4)):
        pts = traj[:: max(1, len(traj) // max_points)][:, list(dims)]
        ss.plot(*pts.T, color=colour, lw=lw, alpha=0.8, label=lab)
    ss.set_xlabel(names[dims[0]])
    ss.set_ylabel(names[dims[1]])
    if three:
        ss.set_zlabel(names[dims[2]], labelpad=-2)
    ss.legend(loc="upper left", bbox_to_anchor=(0.0, 1.08), ncol=2, frameon=False)
    for i, ax in enumerate(axes[1:]):
        for traj, colour in ((a, PALETTE["black"]), (b, PALETTE["blue"])):
            x = traj[:, i] - traj[:, i].mean()
            power = np.abs(np.fft.rfft(x)) ** 2
            freqs = np.fft.rfftfreq(len(x), dt)
            ax.semilogy(freqs[1:], power[1:] + 1e-30, color=colour, lw=0.6)
            if traj is a:  # show the band holding the truth's power (99.9%), with margin
                cum = np.cumsum(power[1:]) / max(power[1:].sum(), 1e-300)
                f_hi = freqs[1:][min(np.searchsorted(cum, 0.999), len(cum) - 1)]
                ax.set_xlim(0.0, min(freqs[-1], 2.0 * f_hi) if f_hi > 0 else freqs[-1])
                top = float(power[1:].max()) if len(power) > 1 else 1.0
        # a collapsed model run has (numerically) no power: keep the axis on the truth's range
        if top > 0:
            ax.set_ylim(bottom=top * 1e-8)
        ax.set_ylabel(f"power {names[i]}")
        if i < D - 1:
            ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("frequency (1 / time unit)" if dt != 1.0 else "frequency (1 / step)")
    return fig
