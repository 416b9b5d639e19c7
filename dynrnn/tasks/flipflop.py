"""N-bit flip-flop memory task (Sussillo & Barak 2013; Golub & Sussillo 2018).

Each of N input channels receives sparse pulses of +1 or -1; output channel i must hold the sign of
the most recent pulse on input channel i. An ideal solution has 2^N stable fixed points (the
memories) plus saddles, 3^N fixed points in all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Bool,
    Constraint,
    Float,
    Int,
    check_int,
    resolve_generator,
    validate_config,
)
from ._utils import NON_NEGATIVE
from .base import Task, Trials, register_task

__all__ = ["FlipFlopTask"]


@register_task("flipflop")
@dataclass(frozen=True)
class FlipFlopTask(Task):
    """N-bit flip-flop (Sussillo & Barak, Neural Computation 2013).

    On every step and channel a pulse arrives with probability ``p_pulse``; its sign is +1 or -1
    with equal probability. The target on channel i is the sign of the last pulse on i (±1);
    before the first pulse on i the target is 0 and, if ``mask_before_first_pulse``, masked out.

    Arguments:
        n_bits: number of channels N (inputs = outputs = N).
        n_steps: trial length T.
        p_pulse: probability of a pulse per step and channel, in [0, 1].
        input_noise: standard deviation of additive Gaussian noise on the inputs.
        mask_before_first_pulse: mask out channel i before its first pulse.

    ``sample`` returns :class:`Trials` with ``inputs [B, T, N]`` (float32, pulses in {-1, 0, +1}
    plus noise), ``targets [B, T, N]`` (float32 in {-1, 0, +1}), ``mask [B, T, N]`` (bool, per
    channel) and ``info``: ``pulses [B, T, N]`` (noise-free inputs), ``first_pulse [B, N]``
    (step of the first pulse per channel, ``T`` if none), ``n_pulses [B, N]``, ``dt`` (1.0),
    ``task``.
    """

    n_bits: int = 3
    n_steps: int = 100
    p_pulse: float = 0.03
    input_noise: float = 0.0
    mask_before_first_pulse: bool = True

    kind = "regression"

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_bits": Int(1),
        "n_steps": Int(1),
        "p_pulse": Float(0.0, 1.0),
        "input_noise": NON_NEGATIVE,
        "mask_before_first_pulse": Bool(),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return self.n_bits

    @property
    def n_outputs(self) -> int:
        return self.n_bits

    def symbolic_view(self, channel: int | None = None):
        """The :class:`~dynrnn.tasks.tomita.SymbolicView` of the task (pulse patterns as
        symbols; the sign of the last pulse of every channel, or of one ``channel``, as the
        label), for automaton extraction (:func:`dynrnn.tasks.tomita.flipflop_view`)."""
        from .tomita import flipflop_view

        return flipflop_view(self, channel)

    def ood(self) -> FlipFlopTask:
        """The out-of-distribution probe of the degeneracy study: doubled trial length."""
        return dataclasses.replace(self, n_steps=2 * self.n_steps)

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Draw ``batch_size`` trials.

        Arguments:
            batch_size: number of trials B.
            seed: int, ``torch.Generator`` or None (fresh entropy).

        Returns:
            :class:`Trials` as described in the class docstring.
        """
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        T, N = self.n_steps, self.n_bits
        occurs = torch.rand(B, T, N, generator=gen) < self.p_pulse
        signs = torch.where(torch.rand(B, T, N, generator=gen) < 0.5, 1.0, -1.0)
        pulses = occurs.float() * signs

        steps = torch.arange(T).view(1, T, 1).expand(B, T, N)
        last = torch.where(occurs, steps, torch.full_like(steps, -1)).cummax(dim=1).values
        seen = last >= 0
        targets = torch.where(seen, pulses.gather(1, last.clamp(min=0)), 0.0)
        mask = seen if self.mask_before_first_pulse else torch.ones_like(seen)
        first_pulse = torch.where(occurs, steps, torch.full_like(steps, T)).amin(dim=1)

        inputs = pulses
        if self.input_noise > 0:
            inputs = pulses + self.input_noise * torch.randn(B, T, N, generator=gen)
        info = {
            "task": "flipflop",
            "dt": 1.0,
            "pulses": pulses,
            "first_pulse": first_pulse,
            "n_pulses": occurs.sum(dim=1),
        }
        return Trials(inputs.float(), targets.float(), mask.bool(), info)
