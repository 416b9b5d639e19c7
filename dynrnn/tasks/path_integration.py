"""2-D path integration: integrate a smooth random velocity into a position.

As in the path-integration task of the degeneracy study (Huang et al. 2025) and grid-cell RNN
studies (Cueva & Wei, ICLR 2018).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Bool,
    Constraint,
    Float,
    Int,
    OrNone,
    check_int,
    resolve_generator,
    validate_config,
)
from ._utils import NON_NEGATIVE, POSITIVE
from .base import Task, Trials, register_task

__all__ = ["PathIntegrationTask", "ar1_filter", "reflect"]


def ar1_filter(innovations: torch.Tensor, decay: float) -> torch.Tensor:
    """Apply ``y_t = decay * y_{t-1} + e_t`` (with ``y_0 = e_0``) along dim 1, without a loop.

    The recursion is a causal convolution with the kernel ``decay**k``, computed with an FFT of
    length ``2T`` in float64 (exact up to round-off for every T).

    Arguments:
        innovations: ``[B, T, ...]`` tensor ``e``.
        decay: the AR(1) coefficient, in [0, 1).

    Returns:
        ``[B, T, ...]`` float64 tensor ``y``.
    """
    T = innovations.shape[1]
    if decay == 0.0:
        return innovations.double()
    e = innovations.double().movedim(1, -1)
    kernel = decay ** torch.arange(T, dtype=torch.float64)
    n = 2 * T
    y = torch.fft.irfft(torch.fft.rfft(e, n=n) * torch.fft.rfft(kernel, n=n), n=n)[..., :T]
    return y.movedim(-1, 1)


def reflect(p: torch.Tensor, half_width: float) -> torch.Tensor:
    """Fold unbounded coordinates ``p`` into ``[-L, L]`` (``L = half_width``) by reflection.

    The fold is the triangle wave of period ``4L``: the path of a point bouncing elastically
    between the walls.
    """
    L = half_width
    y = torch.remainder(p + L, 4 * L)
    return L - (y - 2 * L).abs()


@register_task("path_integration")
@dataclass(frozen=True)
class PathIntegrationTask(Task):
    """Integrate a 2-D velocity into a position (Huang et al. 2025; Cueva & Wei 2018).

    Each velocity component is a stationary AR(1) (discretised Ornstein-Uhlenbeck) process with
    standard deviation ``speed_std`` and correlation time ``velocity_tau`` (decay
    ``exp(-dt / velocity_tau)``; ``velocity_tau = 0`` gives white velocity), generated without a
    loop by :func:`ar1_filter`. The start is uniform in ``[-start_scale, start_scale]^2``. The
    unbounded position is ``start + cumsum(v dt)``; with ``boundary = L`` it is folded into the
    box ``[-L, L]^2`` by elastic reflection (:func:`reflect`), and the velocity *input* is the
    realised velocity of the reflected path, so that the target always equals
    ``start + cumsum(inputs[..., :2] * dt)`` exactly (up to float32 round-off).

    Arguments:
        n_steps: trial length T.
        dt: time step.
        speed_std: stationary standard deviation of each velocity component.
        velocity_tau: correlation time of the velocity (0 for white noise).
        boundary: None (open field) or half-width L > 0 of a reflecting square box.
        start_scale: half-width of the square the start is drawn from (<= boundary).
        start_input: if True, the start position is given on input channels 2-3 at step 0
            (zero afterwards), so ``n_inputs = 4``; otherwise ``n_inputs = 2``.
        input_noise: standard deviation of additive Gaussian noise on the velocity inputs.

    ``sample`` returns ``inputs [B, T, 2 or 4]``, ``targets [B, T, 2]`` (the position after
    the step's displacement), ``mask [B, T]`` (all True), and ``info``: ``start [B, 2]``,
    ``velocity [B, T, 2]`` (noise-free velocity input), ``dt``, ``task``.
    """

    n_steps: int = 100
    dt: float = 0.1
    speed_std: float = 1.0
    velocity_tau: float = 1.0
    boundary: float | None = None
    start_scale: float = 1.0
    start_input: bool = True
    input_noise: float = 0.0

    kind = "regression"

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_steps": Int(1),
        "dt": POSITIVE,
        "speed_std": NON_NEGATIVE,
        "velocity_tau": NON_NEGATIVE,
        "boundary": OrNone(POSITIVE),
        "start_scale": Float(0.0, "boundary"),  # no upper bound without a boundary
        "start_input": Bool(),
        "input_noise": NON_NEGATIVE,
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return 4 if self.start_input else 2

    @property
    def n_outputs(self) -> int:
        return 2

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Draw ``batch_size`` trials; see the class docstring for shapes and ``info``."""
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        T, dt = self.n_steps, float(self.dt)
        decay = math.exp(-dt / self.velocity_tau) if self.velocity_tau > 0 else 0.0
        start = self.start_scale * (2 * torch.rand(B, 2, generator=gen, dtype=torch.float64) - 1)
        eps = torch.randn(B, T, 2, generator=gen, dtype=torch.float64)
        # first innovation at the stationary sd, later ones scaled so the process stays stationary
        scale = torch.full((T,), math.sqrt(1 - decay**2), dtype=torch.float64)
        scale[0] = 1.0
        velocity = self.speed_std * ar1_filter(eps * scale.view(1, T, 1), decay)
        position = start.unsqueeze(1) + velocity.cumsum(dim=1) * dt
        if self.boundary is not None:
            position = reflect(position, float(self.boundary))
            previous = torch.cat([start.unsqueeze(1), position[:, :-1]], dim=1)
            velocity = (position - previous) / dt
        vel_in = velocity.float()
        if self.input_noise > 0:
            vel_in = vel_in + self.input_noise * torch.randn(B, T, 2, generator=gen)
        channels = [vel_in]
        if self.start_input:
            cue = torch.zeros(B, T, 2)
            cue[:, 0] = start.float()
            channels.append(cue)
        inputs = torch.cat(channels, dim=-1)
        info = {
            "task": "path_integration",
            "dt": dt,
            "start": start.float(),
            "velocity": velocity.float(),
        }
        mask = torch.ones(B, T, dtype=torch.bool)
        return Trials(inputs, position.float(), mask, info)
