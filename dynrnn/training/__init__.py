"""Training: supervised BPTT for ensembles, curricula, per-network optimisers."""

from .curriculum import Curriculum
from .losses import head_accuracy, head_cross_entropy, masked_mse
from .optim import EnsembleOptimizer, per_network_grad_norm
from .supervised import History, TrainConfig, train

__all__ = [
    "train",
    "TrainConfig",
    "History",
    "Curriculum",
    "EnsembleOptimizer",
    "per_network_grad_norm",
    "masked_mse",
    "head_cross_entropy",
    "head_accuracy",
]
