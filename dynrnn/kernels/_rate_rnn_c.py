"""C source of the CPU rate-RNN kernel (compiled on first use by :mod:`._cbuild`).

One network at a time, all its trials and steps: the network's weights (a few tens of KB) and
the current states of its B trials stay in L1/L2 while the whole time loop runs, and the
elementwise work (nonlinearity, leak, readout) is done while a state row is in registers. The
torch path (``_FusedRateRNN``) instead streams ``[K, B, N]`` tensors through memory once per
elementwise op and step, which costs as much as the matmuls at K=256, B=32, N=64.

The matmuls are register-blocked on GCC vector types: ``VW`` scalars per vector (64-byte
vectors; two 256-bit or one 512-bit register), rows of the weights that are summed along the
unit axis padded with zeros to ``NP`` (N rounded up to a multiple of VW).

Layouts (all C-contiguous, time-major per network as in :mod:`.rate_rnn`):
``x [Kx, T, B, I]`` (Kx = 1 or K), ``h0 [K, B, N]``, ``W_in_T [K, I, NP]``, ``b [K, NP]``,
``W_T [K, N, NP]`` (a = h @ W_T), ``W [K, N, NP]`` (the transpose of W_T, for the backward),
``alpha [K, N]`` (or NULL), ``W_out [K, O, N]``, ``b_out [K, O]``, ``noise [K, T, B, N]`` (or
NULL); outputs ``H [K, T, B, N]``, ``Y [K, T, B, O]``, ``A [K, T, B, N]`` (pre-activations, or
NULL when the backward can get phi'(.) from H); gradients of padded inputs are padded alike.

Compile-time switches: ``REAL`` (float/double, with ``REAL_IS_FLOAT`` for float), ``NL``
(nonlinearity code, see ``NL_CODES``), ``LEAK`` (0: none, 1: inside, 2: outside), ``N`` (units)
and ``NP``.
"""

from . import _cbuild

NL_CODES = {"tanh": 0, "relu": 1, "leaky_relu": 2, "softplus": 3, "sigmoid": 4, "identity": 5}
LEAK_CODES = {None: 0, "inside": 1, "outside": 2}

SOURCE = _cbuild.source("rate_rnn")  # csrc/rate_rnn.c
