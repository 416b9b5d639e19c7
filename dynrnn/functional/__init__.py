"""The equations: pure tensor functions of each cell and step, used by models and kernels.

The lowest layer above the utilities: nothing here imports the rest of dynrnn, so models and
the kernels' reference paths call one implementation of each equation.
"""

from .gated import gru_cell, gru_step, lstm_cell, lstm_step
from .izhikevich import (
    IZHIKEVICH_SCHEMES,
    IZHIKEVICH_SYNAPSES,
    izhikevich_membrane,
    izhikevich_spike_reset,
    izhikevich_step,
    izhikevich_synapse_decay,
    izhikevich_synapse_update,
)
from .losses import masked_mse
from .nonlin import LEAKY_SLOPE, NONLINEARITIES, dphi, phi
from .plrnn import (
    plrnn_affine,
    plrnn_phi,
    plrnn_step,
    plrnn_update,
    shplrnn_affine,
    shplrnn_hidden,
    shplrnn_step,
)
from .rate import (
    LEAK_FORMS,
    leak_mix,
    rate_cell,
    rate_cell_jacobian,
    rate_preactivation,
    rate_step,
)

__all__ = [
    "IZHIKEVICH_SCHEMES",
    "IZHIKEVICH_SYNAPSES",
    "izhikevich_membrane",
    "izhikevich_spike_reset",
    "izhikevich_step",
    "izhikevich_synapse_decay",
    "izhikevich_synapse_update",
    "LEAKY_SLOPE",
    "NONLINEARITIES",
    "phi",
    "dphi",
    "LEAK_FORMS",
    "leak_mix",
    "rate_preactivation",
    "rate_cell",
    "rate_step",
    "rate_cell_jacobian",
    "gru_cell",
    "gru_step",
    "lstm_cell",
    "lstm_step",
    "plrnn_phi",
    "plrnn_update",
    "plrnn_step",
    "shplrnn_hidden",
    "shplrnn_step",
    "plrnn_affine",
    "shplrnn_affine",
    "masked_mse",
]
