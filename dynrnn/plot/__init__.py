"""Publication figures from analysis results (``xarray.Dataset``).

Every plot function takes a result and an optional ``ax``, draws, and returns the Axes (the
Figure is ``ax.figure``); none calls ``plt.show()``. Wrap figures in :func:`style` for
publication defaults and the colour-blind-safe palette :data:`PALETTE`.
"""

from ._style import PALETTE, STABILITY_COLOURS, panel_letters, style
from .degeneracy import plot_degeneracy
from .dynamics import (
    pca_basis,
    plot_eigenvalues,
    plot_fixed_points,
    plot_lyapunov_spectrum,
    plot_timescales,
)
from .outputs import plot_outputs
from .summary import plot_network_summary
from .symbolic import plot_attractor_subregions, plot_symbolic_graph

__all__ = [
    "PALETTE",
    "STABILITY_COLOURS",
    "pca_basis",
    "panel_letters",
    "plot_network_summary",
    "plot_degeneracy",
    "plot_attractor_subregions",
    "plot_symbolic_graph",
    "plot_eigenvalues",
    "plot_fixed_points",
    "plot_lyapunov_spectrum",
    "plot_outputs",
    "plot_timescales",
    "style",
]
