"""dynrnn: train recurrent networks on cognitive and dynamical tasks, many at once, and take them
apart (fixed and slow points, linearisation, Lyapunov spectra, timescales, similarity and
degeneracy across networks, reconstruction metrics, exact PLRNN cycles, symbolic dynamics).

Everything is a batch of discrete-time dynamical systems with states ``[K, B, N]``;
see ``dynrnn.models.base`` for the protocol.
"""

from ._version import __version__
from .models import DynamicalSystem, Ensemble, run

__all__ = ["DynamicalSystem", "Ensemble", "run", "__version__"]
