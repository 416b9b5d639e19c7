"""Fused fast paths of hot loops. Each has a plain-torch ``reference`` (the specification) that
the tests compare it against; the CPU paths never import Triton.

* :func:`rate_rnn` -- rate-RNN ensemble (input projection + recurrence + readout) with a
  hand-written BPTT backward; used by :func:`dynrnn.models.run` for ``RateRNN``.
"""

from .rate_rnn import rate_rnn, rate_rnn_reference

__all__ = ["rate_rnn", "rate_rnn_reference"]
