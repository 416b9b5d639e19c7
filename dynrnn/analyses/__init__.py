"""Analyses of batches of networks; every result is an ``xarray.Dataset`` with a ``network``
dimension whose coordinates are the networks' hyperparameters.

* :mod:`.fixed_points` -- fixed and slow points of whole ensembles (batched Adam, then batched
  damped Newton / Levenberg--Marquardt in float64), stability, eigenvectors;
* :mod:`.linearisation` -- Jacobians, modes, local time constants, input coupling;
* :mod:`.lyapunov` -- Lyapunov spectra (QR method) and two-trajectory maximal exponents;
* :mod:`.timescales` -- FFT autocorrelation, exponential fits, network timescale tau_net.
"""

from ._common import merge_complex, split_complex
from .fixed_points import (
    CANDIDATE_STATUS,
    STABILITY_CODES,
    classify_eigenvalues,
    find_fixed_points,
    sample_initial_states,
    speed,
)
from .linearisation import (
    input_jacobians,
    jacobians,
    linearise,
    linearise_trajectory,
    local_time_constants,
)
from .lyapunov import kaplan_yorke_dimension, lyapunov_spectrum, max_lyapunov_two_trajectory
from .timescales import ar1_timescale, autocorrelation, fit_exponential, network_timescale

__all__ = [
    "CANDIDATE_STATUS",
    "STABILITY_CODES",
    "ar1_timescale",
    "autocorrelation",
    "classify_eigenvalues",
    "find_fixed_points",
    "fit_exponential",
    "input_jacobians",
    "jacobians",
    "kaplan_yorke_dimension",
    "linearise",
    "linearise_trajectory",
    "local_time_constants",
    "merge_complex",
    "lyapunov_spectrum",
    "max_lyapunov_two_trajectory",
    "network_timescale",
    "sample_initial_states",
    "speed",
    "split_complex",
]
