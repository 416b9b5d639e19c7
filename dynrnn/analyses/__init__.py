"""Analyses of batches of networks; every result is an ``xarray.Dataset`` with a ``network``
dimension whose coordinates are the networks' hyperparameters.

* :mod:`.fixed_points` -- fixed and slow points of whole ensembles (batched Adam, then batched
  damped Newton / Levenberg--Marquardt in float64), stability, eigenvectors;
* :mod:`.linearisation` -- Jacobians, modes, local time constants, input coupling;
* :mod:`.lyapunov` -- Lyapunov spectra (QR method) and two-trajectory maximal exponents;
* :mod:`.timescales` -- FFT autocorrelation, exponential fits, network timescale tau_net;
* :mod:`.dsr_metrics` -- D_stsp, D_H, PE(n), reconstruction evaluation, the GTF callback
  ``BestCheckpoint``;
* :mod:`.scyfi` -- exact fixed points and k-cycles of PLRNNs (SCYFI, brute-force oracle);
* :mod:`.symbolic` -- AL-RNN symbolic dynamics (symbols, transition graph);
* :mod:`.stability` -- contraction certificates (echo-state property) batched over networks.
* :mod:`.automata` -- finite automata of networks on symbolic tasks (quantisation, L*,
  state-regularised centroids), minimal DFAs, fidelity.
* :mod:`.hmm` -- HMM-emulating networks: symbol statistics, batched Baum--Welch fits,
  collapse without input, noise-sustained orbits, speed, symbol clusters, kick neurons.
"""

from ._common import merge_complex, split_complex
from .automata import (
    DFA,
    AutomataResult,
    automaton_from_centroids,
    extract_automata,
    hopcroft_minimise,
    lstar_automata,
    reference_dfa,
)
from .degeneracy import (
    behavioural_degeneracy,
    degeneracy_report,
    degeneracy_summary,
    readout_multiplier,
)
from .dsr_metrics import (
    BestCheckpoint,
    evaluate_reconstruction,
    generate,
    power_spectrum_distance,
    prediction_error,
    state_space_divergence,
)
from .fixed_points import (
    CANDIDATE_STATUS,
    STABILITY_CODES,
    classify_eigenvalues,
    find_fixed_points,
    sample_initial_states,
    speed,
)
from .hmm import (
    autonomous_dynamics,
    compare_hmm,
    emission_statistics,
    evaluate_emulation,
    fit_hmm,
    hmm_symbol_statistics,
    kick_neurons,
    noise_orbits,
    symbol_clusters,
    trajectory_speed,
)
from .linearisation import (
    input_jacobians,
    jacobians,
    linearise,
    linearise_trajectory,
    local_time_constants,
)
from .lyapunov import kaplan_yorke_dimension, lyapunov_spectrum, max_lyapunov_two_trajectory
from .scyfi import brute_force_cycles, find_cycles
from .similarity import (
    cca_distance,
    cka,
    cka_distance,
    delay_embed,
    dsa,
    eigenvalue_wasserstein,
    fit_dmd,
    procrustes_distance,
    procrustes_vector_fields,
    trajectories,
    weight_distance,
)
from .stability import (
    certify_matrices,
    echo_state_property,
    stability_certificates,
    symmetric_metric,
    weighted_norm_fast,
    weighted_norm_sdp,
)
from .symbolic import subregion_fixed_points, symbol_sequence, symbolic_graph, symbols_used
from .timescales import ar1_timescale, autocorrelation, fit_exponential, network_timescale

__all__ = [
    "autonomous_dynamics",
    "compare_hmm",
    "emission_statistics",
    "evaluate_emulation",
    "fit_hmm",
    "hmm_symbol_statistics",
    "kick_neurons",
    "noise_orbits",
    "symbol_clusters",
    "trajectory_speed",
    "DFA",
    "AutomataResult",
    "automaton_from_centroids",
    "extract_automata",
    "hopcroft_minimise",
    "lstar_automata",
    "reference_dfa",
    "behavioural_degeneracy",
    "cca_distance",
    "cka",
    "cka_distance",
    "degeneracy_report",
    "degeneracy_summary",
    "delay_embed",
    "dsa",
    "eigenvalue_wasserstein",
    "fit_dmd",
    "procrustes_distance",
    "procrustes_vector_fields",
    "readout_multiplier",
    "trajectories",
    "weight_distance",
    "brute_force_cycles",
    "certify_matrices",
    "echo_state_property",
    "stability_certificates",
    "symmetric_metric",
    "weighted_norm_fast",
    "weighted_norm_sdp",
    "evaluate_reconstruction",
    "BestCheckpoint",
    "find_cycles",
    "generate",
    "power_spectrum_distance",
    "prediction_error",
    "state_space_divergence",
    "subregion_fixed_points",
    "symbol_sequence",
    "symbolic_graph",
    "symbols_used",
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
