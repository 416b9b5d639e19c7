"""Publication figures from analysis results (``xarray.Dataset``).

Every plot function takes a result and an optional ``ax``, draws, and returns the Axes (the
Figure is ``ax.figure``); none calls ``plt.show()``. Wrap figures in :func:`style` for
publication defaults and the colour-blind-safe palette :data:`PALETTE`.
"""

from ._style import PALETTE, STABILITY_COLOURS, panel_letters, style
from .automata import plot_automaton, plot_automaton_states
from .continual import plot_accuracy_matrix
from .degeneracy import plot_degeneracy
from .dynamics import (
    pca_basis,
    plot_eigenvalues,
    plot_fixed_points,
    plot_lyapunov_spectrum,
    plot_timescales,
)
from .ensembles import (
    plot_distance_matrix,
    plot_reconstruction,
    plot_spike_raster,
    plot_training_history,
)
from .hmm import (
    plot_autonomous_collapse,
    plot_dwell_times,
    plot_kick_neurons,
    plot_noise_orbit,
    plot_symbol_clusters,
    plot_symbol_statistics,
    plot_trajectory_speed,
    plot_transition_matrices,
)
from .outputs import plot_outputs
from .stability import plot_certificate_bounds, plot_rate_vs_performance
from .summary import plot_network_summary
from .symbolic import plot_attractor_subregions, plot_symbolic_graph

__all__ = [
    "PALETTE",
    "STABILITY_COLOURS",
    "pca_basis",
    "plot_distance_matrix",
    "plot_reconstruction",
    "plot_spike_raster",
    "plot_training_history",
    "plot_accuracy_matrix",
    "panel_letters",
    "plot_network_summary",
    "plot_automaton",
    "plot_automaton_states",
    "plot_degeneracy",
    "plot_attractor_subregions",
    "plot_symbolic_graph",
    "plot_certificate_bounds",
    "plot_rate_vs_performance",
    "plot_eigenvalues",
    "plot_fixed_points",
    "plot_lyapunov_spectrum",
    "plot_outputs",
    "plot_autonomous_collapse",
    "plot_dwell_times",
    "plot_kick_neurons",
    "plot_noise_orbit",
    "plot_symbol_clusters",
    "plot_symbol_statistics",
    "plot_trajectory_speed",
    "plot_transition_matrices",
    "plot_timescales",
    "style",
]
