"""The model protocol: exactly what :func:`dynrnn.run` and the analyses call on a model.

A model is a batch of K discrete-time dynamical systems ``h_{t+1} = F(h_t, x_t)`` with states
``h [K, B, N]`` (K networks, B trials, N units), inputs ``x [K or 1, B, I]`` per step and
outputs ``y = readout(h) [K, B, O]``. Every dynrnn model (:class:`~dynrnn.models.RecurrentModel`
and its subclasses) follows it; so can a user's own model without subclassing anything: an
object with the attributes and methods of :class:`DynamicalSystem` runs through
:func:`dynrnn.run`, :func:`dynrnn.analyses.find_fixed_points`,
:func:`dynrnn.analyses.lyapunov_spectrum` and the other state-space analyses
(tests/test_user_model.py does this with the Henon map).

A step is split in two so that the input projection of a whole trial is computed once, outside
the time loop: ``drive = input_drive(x)`` (``[K or 1, B, (T,) I] -> [K or 1, B, (T,) D]``) and
``h_next = step_drive(h, drive_t, params, noise_t)``, where ``params = prepare()`` holds what a
step needs that does not change within a run (effective weights; ``{}`` is fine). A model
without inputs can take ``D = I`` and return ``x`` from ``input_drive``.

Optional, used where present: ``has_fused_loop()`` /
``fused_loop(h0, x, noise)`` (a kernel for the whole trial), ``sample_noise`` /
``perturb_inputs`` (``run(noise=True)``), ``network_metadata()`` (coordinates of the results'
``network`` dimension) and, for reconstruction models, :class:`ReconstructionModel`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "DynamicalSystem",
    "ReconstructionModel",
    "RUN_PROTOCOL",
    "ANALYSIS_PROTOCOL",
    "latent_from_observation",
]


@runtime_checkable
class DynamicalSystem(Protocol):
    """What :func:`dynrnn.run` and the state-space analyses need of a model.

    Attributes:
        n_networks: K, the number of networks (systems) held.
        n_inputs: I (0 for an autonomous system).
        n_units: N, the state dimension.
        n_outputs: O, the size of ``readout(h)``.
        dtype, device: of the states the model computes with.
    """

    n_networks: int
    n_inputs: int
    n_units: int
    n_outputs: int
    dtype: torch.dtype
    device: torch.device

    def init_state(self, batch_size: int, generator: Any = None) -> torch.Tensor:
        """Initial states ``[K, B, N]``."""

    def prepare(self) -> dict[str, torch.Tensor]:
        """Tensors ``step_drive`` needs that are fixed within one run (computed once per run)."""

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``[K or 1, B, (T,) I]`` -> drive ``[K or 1, B, (T,) D]``."""

    def step_drive(
        self,
        h: torch.Tensor,
        drive: torch.Tensor,
        params: dict[str, torch.Tensor],
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The map F: ``h [K, B, N]``, ``drive [K, B, D]`` -> ``h_next [K, B, N]``
        (differentiable in ``h``; ``noise [K, B, N]`` or None)."""

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Outputs ``[K, B, (T,) O]`` from states ``[K, B, (T,) N]``."""

    def step(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """The map F for one step: ``h [K, B, N]``, ``x [K or 1, B, I]`` (None: zero input) ->
        ``[K, B, N]`` (what the fixed-point and linearisation analyses evaluate)."""

    def jacobian(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """``J [K, B, N, N]`` with ``J[k, b, i, j] = d F_i / d h_j`` at ``(h, x)``
        (:func:`dynrnn.models.base.jacobian_by_autodiff` computes it from ``step_drive`` where
        no analytic form is at hand)."""


@runtime_checkable
class ReconstructionModel(DynamicalSystem, Protocol):
    """A dynamical-systems reconstruction (the PLRNN family): N latent units of which the first
    ``n_outputs`` are read out as the observations (the identity observation model used by
    generalized teacher forcing; for the affine and Poisson observations,
    ``latent_from_observation`` inverts the observation model instead)."""

    def latent_from_observation(self, x: torch.Tensor, initial: bool = False) -> torch.Tensor:
        """Observations ``[K, B, (T,) O]`` -> latent states ``[K, B, (T,) N]`` (the
        observed units set to ``x``, the others 0; ``initial=True`` marks a first state, which
        a model that learns its initial state fills in from ``x``)."""


#: the attributes :func:`dynrnn.run` checks for
RUN_PROTOCOL: tuple[str, ...] = (
    "n_networks", "n_inputs", "n_units", "n_outputs", "dtype", "device", "init_state", "prepare",
    "input_drive", "step_drive", "readout",
)
#: the attributes the state-space analyses check for (all members of :class:`DynamicalSystem`)
ANALYSIS_PROTOCOL: tuple[str, ...] = (*RUN_PROTOCOL, "step", "jacobian")


def latent_from_observation(model: Any, x: torch.Tensor, initial: bool = False) -> torch.Tensor:
    """The latent state ``zhat`` a model infers from observations ``x [K, *lead, O]`` ->
    ``[K, *lead, N]``: the model's own ``latent_from_observation(x, initial=initial)``
    (:class:`ReconstructionModel`) where it has one, else ``[x; 0]`` (the first ``O`` units
    observed, the others 0; ``x`` itself when ``N == O``).

    Used by teacher forcing (:func:`dynrnn.training.train_gtf`, the forcing signal and the
    first state of each window) and by the free runs of the DSR evaluation
    (:func:`dynrnn.analyses.generate`), so that both infer the same state.
    """
    infer = getattr(model, "latent_from_observation", None)
    if infer is not None:
        return infer(x, initial=initial)
    N, O = model.n_units, model.n_outputs
    if N == O:
        return x
    return torch.cat([x, x.new_zeros(*x.shape[:-1], N - O)], dim=-1)
