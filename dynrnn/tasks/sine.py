"""Sine-wave generation from a static frequency cue (Sussillo & Barak 2013; Huang et al. 2025)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Check,
    Constraint,
    Float,
    Int,
    OrNone,
    check_int,
    resolve_generator,
    validate_config,
)
from ._utils import POSITIVE, check_float_range_pair
from .base import Task, Trials, register_task

__all__ = ["SineWaveTask"]


def _check_freq_range(owner, name, value, config):
    fr = check_float_range_pair(owner, name, value, 0.0, 1e6)
    if fr[0] <= 0:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a pair (lo, hi) of floats with "
            f"0 < lo < hi. Got {value!r} instead."
        )
    return fr


@register_task("sine")
@dataclass(frozen=True)
class SineWaveTask(Task):
    """Generate ``amplitude * sin(2 pi f t)`` given a static input that encodes f.

    After the sine-wave generator of Sussillo & Barak (Neural Computation 2013), whose static
    input is ``j / 51 + 0.25`` for the j-th of 51 frequencies, and the sine task of the
    degeneracy study (Huang et al. 2025). Here the input level is
    ``input_offset + (f - lo) / (hi - lo)`` for ``f`` in ``freq_range = (lo, hi)`` (Hz), held
    for the whole trial. The frequency is uniform on ``[lo, hi]`` (``n_freqs`` None) or uniform
    on the grid ``linspace(lo, hi, n_freqs)``. Time is ``t = k * dt`` for step ``k``.

    Arguments:
        freq_range: (lo, hi) frequencies in Hz, 0 < lo < hi.
        n_freqs: None (continuous) or number (>= 2) of grid frequencies.
        dt: step in seconds.
        n_steps: trial length T.
        amplitude: amplitude of the target.
        input_offset: input level at the lowest frequency.
        washout_steps: first steps excluded from the loss (``mask`` False), < n_steps.

    ``sample`` returns ``inputs [B, T, 1]``, ``targets [B, T, 1]`` (float32), ``mask [B, T]``
    and ``info``: ``freq [B]`` (Hz), ``input_level [B]``, ``dt``, ``task``.
    """

    freq_range: tuple[float, float] = (1.0, 5.0)
    n_freqs: int | None = None
    dt: float = 0.01
    n_steps: int = 200
    amplitude: float = 1.0
    input_offset: float = 0.25
    washout_steps: int = 0

    kind = "regression"

    constraints: ClassVar[dict[str, Constraint]] = {
        "freq_range": Check(_check_freq_range),
        "n_freqs": OrNone(Int(2)),
        "dt": POSITIVE,
        "n_steps": Int(1),
        "amplitude": POSITIVE,
        "input_offset": Float(-1e6, 1e6),
        "washout_steps": Int(0, lambda c: c.n_steps - 1),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return 1

    @property
    def n_outputs(self) -> int:
        return 1

    def input_level(self, freq: torch.Tensor) -> torch.Tensor:
        """The static input level that encodes ``freq`` (any shape)."""
        lo, hi = self.freq_range
        return self.input_offset + (freq - lo) / (hi - lo)

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Draw ``batch_size`` trials; see the class docstring for shapes and ``info``."""
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        lo, hi = self.freq_range
        if self.n_freqs is None:
            freq = lo + (hi - lo) * torch.rand(B, generator=gen, dtype=torch.float64)
        else:
            grid = torch.linspace(lo, hi, self.n_freqs, dtype=torch.float64)
            freq = grid[torch.randint(0, self.n_freqs, (B,), generator=gen)]
        T = self.n_steps
        t = torch.arange(T, dtype=torch.float64) * self.dt
        targets = self.amplitude * torch.sin(2 * math.pi * freq.unsqueeze(1) * t.unsqueeze(0))
        level = self.input_level(freq)
        inputs = level.view(B, 1, 1).expand(B, T, 1)
        mask = (torch.arange(T) >= self.washout_steps).unsqueeze(0).expand(B, T).contiguous()
        info = {
            "task": "sine",
            "dt": float(self.dt),
            "freq": freq.float(),
            "input_level": level.float(),
        }
        return Trials(inputs.float().contiguous(), targets.float().unsqueeze(-1), mask, info)
