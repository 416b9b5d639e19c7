"""Fused fast paths of hot loops. Each has a plain-torch ``reference`` (the specification) that
the tests compare it against; the CPU paths never import Triton.

* :func:`rate_rnn` -- rate-RNN ensemble (input projection + recurrence + readout) with a
  hand-written BPTT backward; used by :func:`dynrnn.models.run` for ``RateRNN``. Backends:
  ``reference`` (autograd loop), ``cpu`` (C kernel compiled on first use, :mod:`._rate_rnn_c`),
  ``cpu-torch`` (fused torch loop, any device), ``triton`` (GPU, :mod:`.rate_rnn_triton`);
  ``auto`` picks by device. ``DYNRNN_DISABLE_C=1`` turns the C kernels off;
  :func:`clear_workspace` frees their pooled output buffers.
* :func:`izhikevich_fast` -- Izhikevich reservoir time loop (event-driven C loop with in-loop
  noise, or a torch loop), identical spikes to :func:`izhikevich_reference` in float64;
  :func:`esn_fast` -- echo-state reservoir loop with SELL-C sparse weights.
* :mod:`.linalg` -- batched LU factorisation and solves of many small matrices (the
  fixed-point finder's Newton steps); C kernel split over threads, torch/LAPACK reference.
"""

from ._workspace import clear_workspace
from .rate_rnn import BACKENDS, rate_rnn, rate_rnn_reference, triton_available
from .spiking import esn_fast, izhikevich_fast, izhikevich_reference

__all__ = [
    "BACKENDS",
    "clear_workspace",
    "rate_rnn",
    "rate_rnn_reference",
    "triton_available",
    "izhikevich_fast",
    "izhikevich_reference",
    "esn_fast",
]
