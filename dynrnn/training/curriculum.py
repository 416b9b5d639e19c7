"""Curricula for N-parity / N-DMS (Khajehabdollahi et al., ICLR 2024; see docs/references.md).

A curriculum walks each network through the task's ``n_values`` (N = 2, 3, ...), one level at a
time, per network (networks of an ensemble advance independently). It decides which output head
is trained on which N, via a ``head_map [K, H_out]`` (task column per output head, -1 = off):

* ``"single"``: one output head, re-used: at level l it is trained on N = n_values[l];
* ``"multi"`` (cumulative): head j is trained on n_values[j] for all j <= l;
* ``"sliding"``: heads j with l - window < j <= l are active (the oldest is dropped).

A network advances when the mean accuracy over its active heads AND the newest head's accuracy
exceed ``threshold`` (0.98 in the paper), checked at each evaluation ("epoch").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import Choice, Constraint, Float, Int, validate_config

__all__ = ["Curriculum"]


@dataclass(frozen=True)
class Curriculum:
    """Curriculum over the task's heads.

    Attributes:
        kind: ``"single"``, ``"multi"`` or ``"sliding"``.
        n_levels: number of N values in the task (``len(task.n_values)``).
        start_level: index of the first N value trained.
        window: active heads in the sliding curriculum.
        threshold: accuracy needed on the mean over active heads and on the newest head.
    """

    kind: str = "multi"
    n_levels: int = 1
    start_level: int = 0
    window: int = 2
    threshold: float = 0.98

    constraints: ClassVar[dict[str, Constraint]] = {
        "kind": Choice(("single", "multi", "sliding")),
        "n_levels": Int(1),
        "start_level": Int(0, lambda c: c.n_levels - 1),
        "window": Int(1),
        "threshold": Float(0.0, 1.0),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_output_heads(self) -> int:
        """Output heads the model needs (its ``n_outputs`` is twice this)."""
        return 1 if self.kind == "single" else self.n_levels

    def head_map(self, level: torch.Tensor) -> torch.Tensor:
        """``[K, H_out]`` task column per output head for per-network levels ``[K]``."""
        level = level.long()
        if self.kind == "single":
            return level[:, None].clone()
        j = torch.arange(self.n_levels, device=level.device)[None, :]
        lo = (
            level[:, None] - self.window
            if self.kind == "sliding"
            else torch.full_like(level[:, None], -1)
        )
        on = (j <= level[:, None]) & (j > lo)
        return torch.where(on, j.expand_as(on), torch.full_like(on, -1, dtype=torch.long))

    def newest_head(self, level: torch.Tensor) -> torch.Tensor:
        """Index of the output head of the newest N, ``[K]``."""
        return torch.zeros_like(level) if self.kind == "single" else level.clone()

    def advance(self, level: torch.Tensor, accuracy: torch.Tensor):
        """Return ``(new_level [K], finished [K])`` given head accuracies ``[K, H_out]``.

        ``finished`` marks networks that passed the last level (they keep the last level).
        """
        mean_acc = torch.nanmean(accuracy, dim=1)
        newest = accuracy.gather(1, self.newest_head(level)[:, None]).squeeze(1)
        ok = (mean_acc > self.threshold) & (newest > self.threshold)
        finished = ok & (level >= self.n_levels - 1)
        new_level = torch.where(ok & ~finished, level + 1, level)
        return new_level, finished
