"""Hebbian learning based orthogonal projection (HLOP) for continual learning.

Xiao, M., Meng, Q., Zhang, Z., He, D. & Lin, Z. (2024). Hebbian learning based orthogonal
projection for continual learning of spiking neural networks. International Conference on
Learning Representations (ICLR 2024).

* :mod:`.projection` -- the algorithm: :class:`HLOPConfig`, :class:`HLOP` (lateral subspace
  neurons of every layer learned by Oja's subspace rule, growth and freezing per task, gradients
  projected as ``G (I - H^T H)``) and :func:`principal_angles`;
* :mod:`.networks` -- the networks it protects: :class:`MLP`, :class:`SpikingMLP`,
  :class:`HLOPRateRNN`;
* :mod:`.continual` -- the training loop over a task sequence: :func:`train_continual`,
  :class:`ContinualResult`, :func:`evaluate_accuracy`.
"""

from .continual import ContinualResult, evaluate_accuracy, train_continual
from .networks import MLP, HLOPRateRNN, SpikingMLP
from .projection import HLOP, HLOPConfig, principal_angles

__all__ = [
    "HLOPConfig",
    "HLOP",
    "MLP",
    "SpikingMLP",
    "HLOPRateRNN",
    "ContinualResult",
    "train_continual",
    "evaluate_accuracy",
    "principal_angles",
]
