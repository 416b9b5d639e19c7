"""dynrnn: train recurrent networks on cognitive and dynamical tasks, many at once, and take them
apart (fixed points, Lyapunov spectra, degeneracy, automata, stability certificates).

Everything is a batch of discrete-time dynamical systems with states ``[K, B, N]``;
see ``dynrnn.models.base`` for the protocol.
"""

from .models import Ensemble, run

__version__ = "0.1.0"
__all__ = ["Ensemble", "run", "__version__"]
