"""Training: supervised BPTT for ensembles, curricula, per-network optimisers, teacher forcing
(GTF/aGTF/STF) for dynamical-systems reconstruction, HMM emulation by Sinkhorn distribution
matching."""

from .curriculum import Curriculum
from .data_constrained import (
    ActivityFit,
    RLSActivityConfig,
    activity_variance_explained,
    fit_to_activity,
    fit_to_activity_rls,
    rls_block_update,
)
from .distribution_matching import (
    HMMHistory,
    HMMTrainConfig,
    emit,
    gumbel_softmax_st,
    hmm_emulator,
    train_hmm_emulator,
)
from .gtf import RECIPES, GTFConfig, GTFHistory, estimate_forcing_interval, train_gtf
from .hlop import (
    HLOP,
    MLP,
    ContinualResult,
    HLOPConfig,
    HLOPRateRNN,
    SpikingMLP,
    principal_angles,
    train_continual,
)
from .losses import head_accuracy, head_cross_entropy, masked_mse
from .optim import EnsembleOptimizer, per_network_grad_norm
from .readouts import (
    ForceResult,
    RidgeResult,
    RLSReadout,
    ThreeFactorConfig,
    ThreeFactorReadout,
    ThreeFactorResult,
    force_train,
    reservoir_features,
    ridge_readout,
    train_three_factor,
)
from .sinkhorn import sinkhorn_divergence
from .supervised import History, TrainConfig, train

__all__ = [
    "train_hmm_emulator",
    "HMMTrainConfig",
    "HMMHistory",
    "hmm_emulator",
    "emit",
    "gumbel_softmax_st",
    "sinkhorn_divergence",
    "HLOP",
    "HLOPConfig",
    "HLOPRateRNN",
    "MLP",
    "SpikingMLP",
    "ContinualResult",
    "train_continual",
    "principal_angles",
    "train_gtf",
    "GTFConfig",
    "GTFHistory",
    "RECIPES",
    "estimate_forcing_interval",
    "train",
    "TrainConfig",
    "History",
    "Curriculum",
    "EnsembleOptimizer",
    "per_network_grad_norm",
    "masked_mse",
    "head_cross_entropy",
    "head_accuracy",
    "force_train",
    "ForceResult",
    "ridge_readout",
    "reservoir_features",
    "RLSReadout",
    "ThreeFactorConfig",
    "ThreeFactorReadout",
    "ThreeFactorResult",
    "train_three_factor",
    "RidgeResult",
    "fit_to_activity",
    "fit_to_activity_rls",
    "RLSActivityConfig",
    "ActivityFit",
    "activity_variance_explained",
    "rls_block_update",
]
