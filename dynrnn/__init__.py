"""dynrnn: train recurrent networks on cognitive and dynamical tasks, many at once, and take them
apart (fixed and slow points, linearisation, Lyapunov spectra, timescales, similarity and
degeneracy across networks, reconstruction metrics, exact PLRNN cycles, symbolic dynamics).

Everything is a batch of discrete-time dynamical systems with states ``[K, B, N]``;
see ``dynrnn.models.base`` for the protocol.

Threads on a shared machine: torch's CPU threads come from GNU OpenMP, whose threads by default
spin while they wait at the end of every parallel operation. When another process occupies a
core, a spinning thread holds that core while the thread it waits for is descheduled, and every
small operation then costs a scheduler time slice: on 2 cores shared with other jobs the
fixed-point finder took 37-48 s with 2 threads against 4.3-5.0 s with 1 (measured here, 5
networks of 64 units, 1024 initial states). With ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads
sleep) the same run took 4.7-6.8 s. Importing dynrnn therefore sets ``OMP_WAIT_POLICY=PASSIVE``
when torch has not been imported yet (OpenMP reads it once, when torch loads it) and the
variable is not set already; an explicit value is kept (``OMP_WAIT_POLICY=ACTIVE`` restores
spinning). Worker processes of :mod:`dynrnn.batch` inherit it. If torch was imported first
(as in most notebooks), the policy cannot be changed any more; then the long entry points
(training, fixed points, Lyapunov spectra, DSA) still measure at their start whether their
threads get cores promptly and run on one thread when not (:mod:`dynrnn.kernels._threads`).
"""

import os as _os
import sys as _sys

if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from .models import DynamicalSystem, Ensemble, run  # noqa: E402

__all__ = ["DynamicalSystem", "Ensemble", "reconstruct", "run", "__version__"]


def __getattr__(name):
    # dynrnn.reconstruct (dynrnn.batch.reconstruct) is imported on first use: it pulls in the
    # analyses, the zoo and xarray, which a plain `import dynrnn` does not need
    if name == "reconstruct":
        from .batch.reconstruct import reconstruct

        return reconstruct
    raise AttributeError(f"module 'dynrnn' has no attribute {name!r}")
