"""Fused fast paths of hot loops. Each has a plain-torch ``reference`` (the specification) that
the tests compare it against; the CPU paths never import Triton.

Every kernel takes ``backend=`` from one vocabulary, :data:`BACKENDS` (:mod:`._backends`):
``auto``, ``reference`` (plain torch, the specification), ``cpu`` (compiled C, :mod:`._cbuild`),
``cpu-torch`` (fused torch loop) and ``triton``; each supports a subset. ``DYNRNN_DISABLE_C=1``
turns every C kernel off; ``DYNRNN_FAST_MATH=1`` opts in to value-changing floating point.

* :func:`rate_rnn` -- rate-RNN ensemble (input projection + recurrence + readout) with a
  hand-written BPTT backward; used by :func:`dynrnn.models.run` for ``RateRNN``. Backends:
  ``reference`` (autograd loop of :func:`dynrnn.functional.rate.rate_step`), ``cpu`` (C kernel
  compiled on first use, :mod:`._rate_rnn_c`),
  ``cpu-torch`` (fused torch loop, any device), ``triton`` (GPU, :mod:`.rate_rnn_triton`);
  ``auto`` picks by device. ``DYNRNN_DISABLE_C=1`` turns the C kernels off;
  :func:`clear_workspace` frees their pooled output buffers.
* :func:`izhikevich_fast` (:mod:`.izhikevich`) -- Izhikevich reservoir time loop (event-driven
  C loop with in-loop splitmix64 noise, :mod:`._noise`, or a torch loop drawing the same
  noise), identical spikes to :func:`izhikevich_reference` in float64, same backend names;
  :func:`esn_fast` / :func:`esn_loop` (:mod:`.esn`) -- echo-state reservoir loop with
  SELL-C-sigma sparse weights (:mod:`._sparse`), K networks per call.
* :func:`plrnn_forced_rollout` / :func:`shplrnn_forced_rollout` (:mod:`.plrnn_rollout`) --
  teacher-forced rollouts of the PLRNN family with hand-written BPTT (reached through the
  models' ``fused_forced_rollout``; reference: the autograd loop of ``gtf_loss``).
* :mod:`.linalg` -- batched LU factorisation and solves of many small matrices (the
  fixed-point finder's Newton steps); C kernel split over threads, torch/LAPACK reference.
"""

from ._backends import BACKENDS
from ._workspace import clear_workspace
from .esn import esn_fast, esn_loop
from .izhikevich import izhikevich_fast, izhikevich_reference
from .plrnn_rollout import plrnn_forced_rollout, shplrnn_forced_rollout
from .rate_rnn import rate_rnn, rate_rnn_reference, triton_available

__all__ = [
    "BACKENDS",
    "clear_workspace",
    "rate_rnn",
    "rate_rnn_reference",
    "triton_available",
    "izhikevich_fast",
    "izhikevich_reference",
    "esn_fast",
    "esn_loop",
    "plrnn_forced_rollout",
    "shplrnn_forced_rollout",
]
