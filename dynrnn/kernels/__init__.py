"""Fused fast paths of hot loops. Each has a plain-torch ``reference`` (the specification) that
the tests compare it against; the CPU paths never import Triton.

* :func:`rate_rnn` -- rate-RNN ensemble (input projection + recurrence + readout) with a
  hand-written BPTT backward; used by :func:`dynrnn.models.run` for ``RateRNN``. Backends:
  ``reference`` (autograd loop), ``cpu`` (C kernel compiled on first use, :mod:`._rate_rnn_c`),
  ``cpu-torch`` (fused torch loop, any device), ``triton`` (GPU, :mod:`.rate_rnn_triton`);
  ``auto`` picks by device. ``DYNRNN_DISABLE_C=1`` turns the C kernels off;
  :func:`clear_workspace` frees their pooled output buffers.
"""

from ._workspace import clear_workspace
from .rate_rnn import BACKENDS, rate_rnn, rate_rnn_reference, triton_available

__all__ = ["BACKENDS", "clear_workspace", "rate_rnn", "rate_rnn_reference", "triton_available"]
