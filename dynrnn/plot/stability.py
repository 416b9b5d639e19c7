"""Figures of stability certificates (:func:`dynrnn.analyses.stability_certificates`).

* :func:`plot_certificate_bounds` -- per network, each condition's bound (``g`` times the
  condition's matrix quantity) against ``rho(W)``: the ordering ``rho(W) <= weighted norms <=
  min(||W||_2, rho(|W|))`` shows as points above the diagonal, and a certificate holds below the
  horizontal line at 1.
* :func:`plot_rate_vs_performance` -- the certified contraction rate of each network against its
  task performance (e.g. the final held-out loss of :func:`dynrnn.training.train`).

Both take an optional Axes and return it (its Figure is ``ax.figure``); nothing is shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .._validation import ParameterTypeError
from ._style import PALETTE, new_axes

__all__ = ["plot_certificate_bounds", "plot_rate_vs_performance"]

_COLOURS = [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "purple", "sky_blue")]
_MARKERS = {"spectral_norm": "s", "diagonal_fast": "o", "diagonal_sdp": "D",
            "abs_spectral_radius": "^", "kozachkov": "v", "symmetric": "X",
            "feedback_metric": "P"}


def _check_cert(ds: Any, owner: str, needed=("value", "certified", "spectral_radius")) -> None:
    if not isinstance(ds, xr.Dataset):
        raise ParameterTypeError(
            f"The 'ds' parameter of {owner} must be the xarray.Dataset of "
            f"dynrnn.analyses.stability_certificates. Got {type(ds).__name__} instead."
        )
    missing = [v for v in needed if v not in ds]
    if missing:
        raise ValueError(f"The 'ds' parameter of {owner} lacks the variables {missing}.")


def plot_certificate_bounds(ds: xr.Dataset, *, ax=None, conditions: Any = None):
    """Each condition's bound ``g * value`` per network against ``rho(W)`` (log-log).

    Arguments:
        ds: result of :func:`dynrnn.analyses.stability_certificates` (or
            :func:`~dynrnn.analyses.certify_matrices`).
        ax: Axes (default: a new Figure).
        conditions: the sufficient conditions to draw (default: all present with finite
            values).

    Returns:
        The Axes.
    """
    owner = "plot_certificate_bounds"
    _check_cert(ds, owner)
    ax = new_axes(ax, owner=owner)
    rho = np.asarray(ds["spectral_radius"].values, dtype=float)
    g = np.asarray(ds["slope_bound"].values, dtype=float) if "slope_bound" in ds.coords else 1.0
    names = [str(c) for c in ds["condition"].values if str(c) != "spectral_radius"]
    if conditions is not None:
        wanted = [conditions] if isinstance(conditions, str) else list(conditions)
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise ValueError(
                f"The 'conditions' parameter of {owner} names {unknown}, not among {names}."
            )
        names = wanted
    for i, name in enumerate(names):
        vals = g * np.asarray(ds["value"].sel(condition=name).values, dtype=float)
        ok = np.isfinite(vals) & (vals > 0) & np.isfinite(rho) & (rho > 0)  # log axes
        if not ok.any():
            continue
        ax.scatter(rho[ok] * np.broadcast_to(g, rho.shape)[ok], vals[ok], s=12,
                   marker=_MARKERS.get(name, "o"), color=_COLOURS[i % len(_COLOURS)],
                   label=name, alpha=0.8, linewidth=0)
    lims = [v for v in (*ax.get_xlim(), *ax.get_ylim()) if v > 0]
    lo, hi = (min(lims), max(lims)) if lims else (0.1, 10)
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--", label="bound = g rho(W)")
    ax.axhline(1.0, color="0.2", lw=0.8, ls=":", label="certificate threshold")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):  # labels at 1, 2, 5 x 10^k; no colliding minor labels
        axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("g rho(W) (necessary: < 1)")
    ax.set_ylabel("g x condition's norm (sufficient: < 1)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_rate_vs_performance(
    ds: xr.Dataset, performance: Any, *, ax=None, label: str = "task loss",
    log_performance: bool = True,
):
    """Certified contraction (``-log rate`` per step, or ``c`` in continuous time) against task
    performance, one point per network; uncertified networks are drawn at 0 as open markers.

    Arguments:
        ds: result of :func:`dynrnn.analyses.stability_certificates`.
        performance: one value per network (array ``[K]`` or a DataArray along ``network``).
        ax: Axes (default: a new Figure).
        label: the performance axis label; log_performance: log scale for it.

    Returns:
        The Axes.
    """
    owner = "plot_rate_vs_performance"
    _check_cert(ds, owner, ("contraction_rate", "certified"))
    perf = np.asarray(getattr(performance, "values", performance), dtype=float).reshape(-1)
    K = ds.sizes["network"]
    if perf.shape != (K,):
        raise ValueError(
            f"The 'performance' parameter of {owner} must hold one value per network ({K}). "
            f"Got shape {perf.shape} instead."
        )
    ax = new_axes(ax, owner=owner)
    cert = np.asarray(ds["certified"].values, dtype=bool)
    rate = np.asarray(ds["contraction_rate"].values, dtype=float)
    continuous = ds.attrs.get("time") == "continuous"
    with np.errstate(divide="ignore", invalid="ignore"):
        y = rate if continuous else -np.log(rate)
    y = np.where(cert, y, 0.0)
    ax.scatter(perf[cert], y[cert], s=14, color=PALETTE["blue"], label="certified", linewidth=0)
    if (~cert).any():
        ax.scatter(perf[~cert], y[~cert], s=14, facecolors="none", edgecolors=PALETTE["vermillion"],
                   label="inconclusive / not contracting")
    if log_performance and np.all(perf[np.isfinite(perf)] > 0):
        ax.set_xscale("log")
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        # labels at 1, 2, 3, 5, 7 x 10^k: readable also when the values span under a decade
        ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)
    ax.set_ylabel("certified contraction rate c" if continuous
                  else "certified contraction -log(rate) per step")
    ax.legend(loc="best", fontsize="small")
    return ax
