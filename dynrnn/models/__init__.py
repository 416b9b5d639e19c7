"""Models: every model is a batch of K discrete-time dynamical systems (see ``base``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import MODEL_REGISTRY, RecurrentModel, model_from_spec, run, stack_networks
from .contracting import (
    ContractingAssembly,
    ContractingAssemblyConfig,
    ContractingRNN,
    ContractingRNNConfig,
)
from .gated import GRU, LSTM, GRUConfig, LSTMConfig
from .plrnn import (
    ALRNN,
    OBSERVATIONS,
    PLRNN,
    ALRNNConfig,
    PiecewiseLinearRNN,
    PLRNNConfig,
    ShallowPLRNN,
    ShallowPLRNNConfig,
    smooth_counts,
)
from .protocol import DynamicalSystem, ReconstructionModel
from .rate import RateRNN, RateRNNConfig
from .reservoir import EchoStateConfig, EchoStateNetwork
from .spiking import NEURON_TYPES, IzhikevichConfig, IzhikevichReservoir, SpikingResult
from .state_regularised import StateRegularisedConfig, StateRegularisedRNN

__all__ = [
    "DynamicalSystem",
    "ReconstructionModel",
    "RecurrentModel",
    "run",
    "model_from_spec",
    "stack_networks",
    "MODEL_REGISTRY",
    "RateRNN",
    "RateRNNConfig",
    "GRU",
    "GRUConfig",
    "LSTM",
    "LSTMConfig",
    "Ensemble",
    "PLRNN",
    "PLRNNConfig",
    "ShallowPLRNN",
    "ShallowPLRNNConfig",
    "ALRNN",
    "ALRNNConfig",
    "PiecewiseLinearRNN",
    "OBSERVATIONS",
    "smooth_counts",
    "EchoStateConfig",
    "EchoStateNetwork",
    "IzhikevichConfig",
    "IzhikevichReservoir",
    "SpikingResult",
    "NEURON_TYPES",
    "StateRegularisedConfig",
    "StateRegularisedRNN",
    "ContractingRNN",
    "ContractingRNNConfig",
    "ContractingAssembly",
    "ContractingAssemblyConfig",
]

_CONFIG_TO_MODEL = {
    RateRNNConfig: RateRNN,
    GRUConfig: GRU,
    LSTMConfig: LSTM,
    PLRNNConfig: PLRNN,
    ShallowPLRNNConfig: ShallowPLRNN,
    ALRNNConfig: ALRNN,
    EchoStateConfig: EchoStateNetwork,
    IzhikevichConfig: IzhikevichReservoir,
    StateRegularisedConfig: StateRegularisedRNN,
    ContractingRNNConfig: ContractingRNN,
    ContractingAssemblyConfig: ContractingAssembly,
}


def Ensemble(  # noqa: N802 - reads as a constructor, returns the batched model
    config: Any | Sequence[Any],
    n_networks: int | None = None,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
) -> RecurrentModel:
    """K independently initialised networks run as one batched computation.

    Arguments:
        config: one model config (shared) or a sequence of configs, one per network, whose
            structural fields agree (per-network hyperparameters such as init gain, tau init and
            noise may differ).
        n_networks: K when a single config is given.
        seed / seeds: network k gets ``seed + k`` (or ``seeds[k]``); it is then identical to the
            single network built from the same config and seed.

    Returns:
        The model class matching the config type (``RateRNN``, ``GRU`` or ``LSTM``) holding K
        networks; all parameters have a leading dim K.
    """
    first = config if not isinstance(config, Sequence) else (config[0] if config else None)
    cls = _CONFIG_TO_MODEL.get(type(first))
    if cls is None:
        raise ValueError(
            f"The 'config' parameter of Ensemble must be one of "
            f"{[c.__name__ for c in _CONFIG_TO_MODEL]} (or a sequence of them). Got {config!r}."
        )
    return cls(config, n_networks=n_networks, seed=seed, seeds=seeds)
