"""The one backend vocabulary of every fused kernel (rate RNN, Izhikevich, echo-state, Hebbian,
batched LU) and of :func:`dynrnn.models.run` / ``model.fused_loop``.

* ``"auto"`` -- the kernel picks by device and by what works here (the C kernel on the CPU
  where a compiler works, Triton on CUDA where it is installed, else the torch path).
* ``"reference"`` -- the plain-torch (autograd) loop: the specification the others are tested
  against.
* ``"cpu"`` -- the compiled C kernel (:mod:`._cbuild`); falls back to ``"cpu-torch"`` (or
  ``"reference"`` where a kernel has no fused torch loop) with a warning where no compiler
  works or ``DYNRNN_DISABLE_C=1``.
* ``"cpu-torch"`` -- the fused torch loop (no compiled code; any device).
* ``"triton"`` -- the Triton GPU kernel (on the CPU only through ``TRITON_INTERPRET=1``).

A kernel supports a subset (``SUPPORTED`` below its module docstring) and validates a name with
:func:`check_backend`. The aliases ``"c"`` (for ``"cpu"``) and ``"torch"`` (for
``"cpu-torch"``) are accepted with a ``DeprecationWarning``.
"""

from __future__ import annotations

import warnings

#: every backend name, in the order documented above
BACKENDS: tuple[str, ...] = ("auto", "reference", "cpu", "cpu-torch", "triton")
AUTO, REFERENCE, C, TORCH, TRITON = BACKENDS
#: other spellings accepted (with a DeprecationWarning) and the name each stands for
ALIASES: dict[str, str] = {"c": C, "torch": TORCH}


def check_backend(owner: str, backend: str, supported: tuple[str, ...] = BACKENDS) -> str:
    """``backend`` as one of ``supported`` (a subset of :data:`BACKENDS`), with an alias
    replaced by its name; raises ``ValueError`` naming ``owner`` and the allowed names."""
    if isinstance(backend, str) and backend in ALIASES and ALIASES[backend] in supported:
        warnings.warn(
            f"backend={backend!r} is deprecated; use {ALIASES[backend]!r}.",
            DeprecationWarning, stacklevel=3,
        )
        backend = ALIASES[backend]
    if not isinstance(backend, str) or backend not in supported:
        raise ValueError(
            f"The 'backend' parameter of {owner} must be one of {list(supported)}. "
            f"Got {backend!r} instead."
        )
    return backend
