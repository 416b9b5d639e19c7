"""The what/when prediction paradigm (after Yamada & Chao 2025, "what/when" prediction).

Each trial: a cue at ``cue_time``; then, after a delay drawn from the current block's timing
distribution, one of ``n_stimuli`` stimuli (identity drawn with the block's probabilities; the
remaining probability mass is an omission trial without stimulus). Trials are consecutive trials
of one session: trial ``i`` belongs to timing block ``i // trials_per_block`` (cycling through
``block_delays``) and to probability block ``i // trials_per_block`` (cycling through
``block_probs``), so a session contains switches of timing, of probability, or of both.

The ground-truth *prediction object* in ``info``: when (``expected_time``, ``delay_std``), what
(``probs [B, S]``) and with what probability; ``targets`` are the ideal predictions
``P(stimulus s is on at step t | cue, block)``, i.e. ``p_s`` times the probability that the
stimulus window covers t under the block's (discretised Gaussian) delay distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Check,
    Constraint,
    Int,
    check_int,
    resolve_generator,
    validate_config,
)
from ._utils import NON_NEGATIVE, POSITIVE
from .base import Task, Trials, register_task

__all__ = ["WhatWhenTask"]


def _check_block_delays(owner, name, value, config):
    try:
        delays = tuple(float(d) for d in value)
    except (TypeError, ValueError):
        delays = ()
    latest = config.n_steps - config.stim_duration - config.cue_time
    if not delays or any(not (1 <= d <= latest) for d in delays):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a non-empty sequence of delays "
            f"in [1, {latest}] steps (so that the stimulus fits into the trial). "
            f"Got {value!r} instead."
        )
    return delays


def _check_block_probs(owner, name, value, config):
    S = config.n_stimuli
    msg = (
        f"The {name!r} parameter of {owner} must be a non-empty sequence of "
        f"{S}-tuples of probabilities in [0, 1] with sum <= 1. Got {value!r}."
    )
    try:
        probs = tuple(tuple(float(p) for p in row) for row in value)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if not probs or any(
        len(r) != S or any(not (0 <= p <= 1) for p in r) or sum(r) > 1 + 1e-9 for r in probs
    ):
        raise ValueError(msg)
    return probs


@register_task("what_when")
@dataclass(frozen=True)
class WhatWhenTask(Task):
    """Cue -> (delay) -> stimulus identity, with timing and probability blocks.

    Arguments:
        n_stimuli: S stimulus identities.
        n_steps: trial length T.
        dt: step (ms), only recorded in ``info``.
        cue_time, cue_duration: cue onset (step) and length (steps).
        stim_duration: stimulus length (steps).
        block_delays: mean cue-onset -> stimulus-onset delay (steps) of each timing block.
        delay_std: std (steps) of the delay around the block mean (rounded to whole steps and
            clipped so the stimulus fits into the trial).
        block_probs: identity probabilities of each probability block (S values, sum <= 1;
            ``1 - sum`` is the omission probability).
        trials_per_block: trials per block (timing and probability blocks switch together
            every ``trials_per_block`` trials; a single-entry list never switches).
        first_trial: session index of the first sampled trial (to continue a session).

    ``sample(B, seed)`` returns ``inputs [B, T, 1 + S]`` (cue, then the stimulus channels),
    ``targets [B, T, S]`` (ideal predictions), ``mask [B, T]`` and ``info``: ``trial_index``,
    ``timing_block``, ``prob_block``, ``expected_time``, ``delay_std``, ``probs [B, S]``,
    ``delay``, ``stim_time`` (onset step, -1 if omitted), ``identity`` (-1 if omitted),
    ``stimuli [B, T, S]`` (the observed stimuli, the learning signal), ``dt``, ``task``.
    """

    n_stimuli: int = 2
    n_steps: int = 60
    dt: float = 10.0
    cue_time: int = 5
    cue_duration: int = 2
    stim_duration: int = 3
    block_delays: tuple[float, ...] = (20.0,)
    delay_std: float = 2.0
    block_probs: tuple[tuple[float, ...], ...] = ((0.8, 0.2),)
    trials_per_block: int = 50
    first_trial: int = 0

    kind = "regression"

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_stimuli": Int(1),
        "n_steps": Int(2),
        "dt": POSITIVE,
        "cue_time": Int(0, lambda c: c.n_steps - 1),
        "cue_duration": Int(1, "n_steps"),
        "stim_duration": Int(1, "n_steps"),
        "delay_std": NON_NEGATIVE,
        "trials_per_block": Int(1),
        "first_trial": Int(0),
        "block_delays": Check(_check_block_delays),
        "block_probs": Check(_check_block_probs),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return 1 + self.n_stimuli

    @property
    def n_outputs(self) -> int:
        return self.n_stimuli

    def _delay_pmf(self, mean: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` probability of each integer delay (discretised, clipped Gaussian)."""
        T = self.n_steps
        d = torch.arange(T, dtype=torch.float64)
        latest = T - self.stim_duration - self.cue_time
        if self.delay_std == 0:
            pmf = (d[None, :] == mean.round()[:, None]).double()
        else:
            pmf = torch.exp(-0.5 * ((d[None, :] - mean[:, None]) / self.delay_std) ** 2)
        pmf = pmf * ((d >= 1) & (d <= latest)).double()[None, :]
        return pmf / pmf.sum(1, keepdim=True)

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Draw ``batch_size`` consecutive trials of the session; see the class docstring."""
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        T, S = self.n_steps, self.n_stimuli
        trial = self.first_trial + torch.arange(B)
        block = trial // self.trials_per_block
        t_block = block % len(self.block_delays)
        p_block = block % len(self.block_probs)
        mean = torch.tensor(self.block_delays, dtype=torch.float64)[t_block]
        probs = torch.tensor(self.block_probs, dtype=torch.float64)[p_block]  # [B, S]
        pmf = self._delay_pmf(mean)  # [B, T]
        delay = torch.multinomial(pmf, 1, generator=gen).squeeze(1)
        cum = torch.cat([probs, (1 - probs.sum(1, keepdim=True)).clamp_min(0)], 1).cumsum(1)
        u = torch.rand(B, 1, generator=gen, dtype=torch.float64)
        identity = (u > cum).sum(1).clamp_max(S)  # S = omission
        omitted = identity == S
        onset = self.cue_time + delay
        t = torch.arange(T)
        stim_on = (t[None, :] >= onset[:, None]) & (
            t[None, :] < onset[:, None] + self.stim_duration
        )
        stimuli = torch.zeros(B, T, S, dtype=torch.float64)
        stimuli[torch.arange(B)[~omitted], :, identity[~omitted]] = stim_on[~omitted].double()
        cue = ((t >= self.cue_time) & (t < self.cue_time + self.cue_duration)).double()
        inputs = torch.cat([cue.expand(B, T).unsqueeze(-1), stimuli], -1)
        # P(stimulus window covers t) = sum over onsets o in (t - dur, t] of pmf(o - cue)
        on_pmf = torch.zeros(B, T, dtype=torch.float64)
        shifted = torch.zeros(B, T, dtype=torch.float64)
        shifted[:, self.cue_time :] = pmf[:, : T - self.cue_time]
        for k in range(self.stim_duration):  # a few steps; vectorised over trials and time
            on_pmf[:, k:] += shifted[:, : T - k]
        targets = probs[:, None, :] * on_pmf[:, :, None]
        info = {
            "task": "what_when",
            "dt": float(self.dt),
            "trial_index": trial,
            "timing_block": t_block,
            "prob_block": p_block,
            "expected_time": (self.cue_time + mean).float(),
            "delay_std": torch.full((B,), float(self.delay_std)),
            "probs": probs.float(),
            "delay": delay,
            "stim_time": torch.where(omitted, torch.full_like(onset, -1), onset),
            "identity": torch.where(omitted, torch.full_like(identity, -1), identity),
            "stimuli": stimuli.float(),
        }
        mask = torch.ones(B, T, dtype=torch.bool)
        return Trials(inputs.float(), targets.float(), mask, info)
