"""The degeneracy figure: behaviour, dynamics and weights side by side (Huang et al. 2025)."""

from __future__ import annotations

import numpy as np

from .._validation import ParameterTypeError
from ._style import PALETTE, check_axes

__all__ = ["plot_degeneracy"]

_PANELS = (
    ("behavioural_degeneracy", "ood_error", "behaviour", "OOD error (std across networks)"),
    ("dynamical_degeneracy", "dsa", "dynamics", "mean pairwise DSA distance (rad)"),
    ("weight_degeneracy", "weight_distance", "weights", "mean pairwise weight distance"),
)


def _offdiag(D):
    D = np.asarray(D, dtype=float)
    vals = D[np.triu_indices(D.shape[0], 1)]  # each pair once
    return vals[np.isfinite(vals)]


def plot_degeneracy(report, axes=None):
    """Three panels: behavioural, dynamical and weight degeneracy.

    With a grouped report (``degeneracy_report(..., group_by=...)``) each panel shows the level's
    degeneracy per group (x axis: the first grouping coordinate); otherwise it shows the
    distribution across networks (OOD errors) or pairs (DSA, weight distances).

    Arguments:
        report: the Dataset of :func:`dynrnn.analyses.degeneracy_report`.
        axes: optional sequence of three matplotlib Axes.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    import xarray as xr

    if not isinstance(report, xr.Dataset):
        raise ParameterTypeError(
            "The 'report' parameter of plot_degeneracy must be an xarray.Dataset from "
            f"degeneracy_report. Got {type(report).__name__} instead."
        )
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), constrained_layout=True)
    axes = check_axes("plot_degeneracy", "axes", axes, 3)
    fig = axes[0].figure
    grouped = "group" in report.dims and report.attrs.get("group_by")
    for ax, (summary, raw, title, label) in zip(axes, _PANELS):
        ax.set_title(title)
        if grouped and f"group_{summary}" in report:
            key = report.attrs["group_by"].split()[0]
            x = report[f"group_{key}"].values
            y = report[f"group_{summary}"].values
            try:
                xs = np.asarray(x, dtype=float)
                order = np.argsort(xs)
                ax.plot(xs[order], y[order], "o-", color=PALETTE["blue"])
                if len(xs) <= 12 and np.issubdtype(np.asarray(xs).dtype, np.number):
                    ax.set_xticks(np.asarray(xs)[order])  # the groups' own values
            except (TypeError, ValueError):
                ax.bar([str(v) for v in x], y, color=PALETTE["blue"])
            ax.set_xlabel(key)
            ax.set_ylabel(label)
        elif raw in report:
            vals = report[raw].values
            vals = vals[np.isfinite(vals)] if vals.ndim == 1 else _offdiag(vals)
            if vals.size:
                ax.hist(vals, bins=min(20, max(5, vals.size // 3)), color=PALETTE["blue"])
            ax.set_xlabel("OOD error" if raw == "ood_error" else label.replace("mean ", ""))
            ax.set_ylabel("networks" if raw == "ood_error" else "pairs")
            if vals.size:
                ax.axvline(float(vals.mean()), color=PALETTE["vermillion"], lw=1)
        else:
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
    return fig
