"""Delayed discrimination of two amplitudes (Romo et al. 1999 in the form of Huang et al. 2025).

Huang et al. (2025), "Measuring and controlling solution degeneracy across task-trained
recurrent neural networks": two amplitudes f1, f2 in [2, 10] separated by a delay of 5-20 steps;
the network reports sign(f2 - f1); the OOD probe doubles the delay.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Constraint,
    Float,
    Int,
    IntPair,
    check_int,
    resolve_generator,
    validate_config,
)
from ._utils import (
    NON_NEGATIVE,
    FloatPair,
)
from .base import Task, Trials, register_task

__all__ = ["DelayedDiscriminationTask"]


@register_task("delayed_discrimination")
@dataclass(frozen=True)
class DelayedDiscriminationTask(Task):
    """Delayed discrimination (parametric working memory; Huang et al. 2025).

    Trial structure (steps): ``pre_steps`` of silence, stimulus 1 (amplitude f1 on input channel
    0 for ``stim_steps``), a delay of ``d`` steps (``d`` uniform integer in ``delay_range``),
    stimulus 2 (amplitude f2 for ``stim_steps``), then a response window of
    ``response_steps`` in which input channel 1 (the go cue) is 1 and the target is
    ``sign(f2 - f1)``. The target is 0 elsewhere and the loss is read only in the response window
    (the steps after it, present when ``d`` is shorter than the maximal delay, are unmasked
    target-0 steps). The trial length is fixed per config:
    ``T = pre_steps + 2 stim_steps + max(delay_range) + response_steps``.

    f1 ~ U(f_range); f2 is uniform on the part of ``f_range`` at least ``min_diff`` away from f1
    (so ``|f2 - f1| >= min_diff`` always, P(f2 > f1) = 1/2 by symmetry, and no rejection loop is
    needed). ``min_diff`` must be below half the width of ``f_range``.

    Arguments:
        f_range: (lo, hi) of the amplitudes.
        delay_range: inclusive (lo, hi) of the delay in steps, lo >= 0.
        stim_steps: duration of each stimulus.
        pre_steps: silent steps before stimulus 1.
        response_steps: duration of the response window.
        min_diff: smallest ``|f2 - f1|``.
        input_noise: standard deviation of additive Gaussian noise on the stimulus channel.

    ``sample`` returns ``inputs [B, T, 2]`` (stimulus, go cue), ``targets [B, T, 1]`` (float32
    in {-1, 0, +1}), ``mask [B, T]`` and ``info``: ``f1``, ``f2`` (float32 [B]), ``delay``,
    ``stim2_onset``, ``response_onset`` (long [B]), ``dt`` (1.0), ``task``.
    """

    f_range: tuple[float, float] = (2.0, 10.0)
    delay_range: tuple[int, int] = (5, 20)
    stim_steps: int = 5
    pre_steps: int = 5
    response_steps: int = 10
    min_diff: float = 1.0
    input_noise: float = 0.0

    kind = "regression"

    constraints: ClassVar[dict[str, Constraint]] = {
        "f_range": FloatPair(-1e6, 1e6),
        "delay_range": IntPair(0),
        "stim_steps": Int(1),
        "pre_steps": Int(0),
        "response_steps": Int(1),
        "input_noise": NON_NEGATIVE,
        "min_diff": Float(
            0.0, lambda c: (c.f_range[1] - c.f_range[0]) / 2, high_inclusive=False
        ),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return 2

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        """Trial length T (fixed per config, long enough for the maximal delay)."""
        return self.pre_steps + 2 * self.stim_steps + self.delay_range[1] + self.response_steps

    def ood(self) -> DelayedDiscriminationTask:
        """The out-of-distribution probe: doubled delay range (and trial length accordingly)."""
        lo, hi = self.delay_range
        return dataclasses.replace(self, delay_range=(2 * lo, 2 * hi))

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Draw ``batch_size`` trials; see the class docstring for shapes and ``info``."""
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        lo, hi = (float(v) for v in self.f_range)
        m = float(self.min_diff)
        f1 = lo + (hi - lo) * torch.rand(B, generator=gen, dtype=torch.float64)
        below = (f1 - m - lo).clamp(min=0)  # length of [lo, f1 - m]
        above = (hi - f1 - m).clamp(min=0)  # length of [f1 + m, hi]
        u = (below + above) * torch.rand(B, generator=gen, dtype=torch.float64)
        f2 = torch.where(u < below, lo + u, f1 + m + (u - below))
        d_lo, d_hi = self.delay_range
        delay = torch.randint(d_lo, d_hi + 1, (B,), generator=gen)

        T, S = self.n_steps, self.stim_steps
        t = torch.arange(T).unsqueeze(0)  # [1, T]
        on1 = self.pre_steps
        on2 = on1 + S + delay.unsqueeze(1)  # [B, 1]
        resp = on2 + S
        stim1 = (t >= on1) & (t < on1 + S)
        stim2 = (t >= on2) & (t < resp)
        window = (t >= resp) & (t < resp + self.response_steps)  # [B, T]
        f1_, f2_ = f1.float().unsqueeze(1), f2.float().unsqueeze(1)
        stimulus = stim1 * f1_ + stim2 * f2_
        if self.input_noise > 0:
            stimulus = stimulus + self.input_noise * torch.randn(B, T, generator=gen)
        inputs = torch.stack([stimulus, window.float()], dim=-1)
        sign = torch.sign(f2 - f1).float().unsqueeze(1)
        targets = (window * sign).unsqueeze(-1)
        info = {
            "task": "delayed_discrimination",
            "dt": 1.0,
            "f1": f1.float(),
            "f2": f2.float(),
            "delay": delay,
            "stim2_onset": on2.squeeze(1),
            "response_onset": resp.squeeze(1),
        }
        return Trials(inputs.float(), targets.float(), window, info)
