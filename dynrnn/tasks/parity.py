"""N-parity and N-delayed-match-to-sample on a binary stream (Khajehabdollahi et al., ICLR 2024).

Khajehabdollahi, Zeraati, Giannakakis, Schäfer, Martius & Levina, "Emergent mechanisms for
long timescales depend on training curriculum and affect performance in memory tasks",
ICLR 2024.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Check,
    Constraint,
    Float,
    OrNone,
    check_int,
    resolve_generator,
    validate_config,
)
from .base import Task, Trials, register_task

__all__ = ["DMSTask", "ParityTask"]


def _check_n_values(owner: str, value: Sequence[int]) -> tuple[int, ...]:
    msg = (
        f"The 'n_values' parameter of {owner} must be a non-empty sequence of distinct ints "
        f">= 1. Got {value!r} instead."
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(msg)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(msg)
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError(msg)
    return tuple(out)


@dataclass(frozen=True)
class _BinaryStreamTask(Task):
    """Shared generator of padded binary sequences with one classification head per N."""

    n_values: tuple[int, ...] = (2, 3, 4, 5)
    p_bit: float | None = None

    kind = "classification"
    _task_name = ""

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_values": Check(lambda owner, name, value, config: _check_n_values(owner, value)),
        "p_bit": OrNone(Float(0.0, 1.0)),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return 1

    @property
    def n_heads(self) -> int:
        return len(self.n_values)

    @property
    def n_outputs(self) -> int:
        """Two logits per head: ``2 * len(n_values)``."""
        return 2 * self.n_heads

    def length_range(self, n_max: int | None = None) -> tuple[int, int]:
        """Half-open range ``[N_max + 2, 4 N_max + 2)`` of sequence lengths."""
        n_max = max(self.n_values) if n_max is None else n_max
        return n_max + 2, 4 * n_max + 2

    def _labels(self, bits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def symbolic_view(self, head: int = 0):
        """The :class:`~dynrnn.tasks.tomita.SymbolicView` of output head ``head`` (bits as
        symbols, the head's label of every prefix), for automaton extraction
        (:func:`dynrnn.tasks.tomita.binary_stream_view`)."""
        from .tomita import binary_stream_view

        return binary_stream_view(self, self._task_name, head)

    def sample(
        self,
        batch_size: int,
        seed: int | torch.Generator | None = None,
        *,
        n_max: int | None = None,
        **kw,
    ) -> Trials:
        """Draw ``batch_size`` right-padded binary sequences.

        Arguments:
            batch_size: number of trials B.
            seed: int, ``torch.Generator`` or None (fresh entropy).
            n_max: largest N of the curriculum, which sets the length range
                ``[n_max + 2, 4 n_max + 2)``; defaults to ``max(n_values)`` and must be at least
                that.

        Returns:
            :class:`Trials` with ``inputs [B, T, 1]`` (float32 bits, zero after each trial's
            end), ``targets [B, T, H]`` (long labels, the trial's label repeated at every
            step), ``mask [B, T]`` (True only at each trial's last step ``length - 1``), where
            T is the longest length in the batch and H = ``len(n_values)``; ``info``:
            ``lengths [B]`` (long), ``p_bit [B]`` (float32), ``labels [B, H]`` (long),
            ``n_values`` (tuple), ``n_max``, ``dt`` (1.0), ``task``.
        """
        owner = type(self).__name__
        B = check_int(owner, "batch_size", batch_size, 1)
        n_max = check_int(
            owner, "n_max", max(self.n_values) if n_max is None else n_max, max(self.n_values)
        )
        gen = resolve_generator(seed)
        lo, hi = self.length_range(n_max)
        lengths = torch.randint(lo, hi, (B,), generator=gen)
        if self.p_bit is None:
            p = torch.rand(B, generator=gen)
        else:
            p = torch.full((B,), float(self.p_bit))
        T = int(lengths.max())
        real = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        bits = (torch.rand(B, T, generator=gen) < p.unsqueeze(1)) & real
        labels = self._labels(bits.long(), lengths)  # [B, H]
        targets = labels.unsqueeze(1).expand(B, T, self.n_heads).contiguous()
        mask = torch.arange(T).unsqueeze(0) == (lengths - 1).unsqueeze(1)
        info = {
            "task": self._task_name,
            "dt": 1.0,
            "lengths": lengths,
            "p_bit": p.float(),
            "labels": labels,
            "n_values": self.n_values,
            "n_max": n_max,
        }
        return Trials(bits.float().unsqueeze(-1), targets, mask, info)


@register_task("parity")
@dataclass(frozen=True)
class ParityTask(_BinaryStreamTask):
    """N-parity on a binary stream (Khajehabdollahi et al., ICLR 2024).

    Head k answers the parity of the last ``N = n_values[k]`` bits of the sequence, read only at
    the last step: label = (sum of the last N bits) mod 2. The bit probability p of each sequence
    is drawn from U(0, 1) when ``p_bit`` is None, otherwise fixed to ``p_bit``. Sequence lengths
    are uniform integers in ``[N_max + 2, 4 N_max + 2)``. See :meth:`sample` for shapes.

    Arguments:
        n_values: the N of each head (distinct ints >= 1).
        p_bit: probability of a 1, or None for p ~ U(0, 1) per sequence.
    """

    n_values: tuple[int, ...] = (2, 3, 4, 5)
    p_bit: float | None = None

    _task_name = "parity"

    def _labels(self, bits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        csum = torch.nn.functional.pad(bits.cumsum(dim=1), (1, 0))  # [B, T+1], csum[:, t]=sum<t
        ends = csum.gather(1, lengths.unsqueeze(1))  # sum of all real bits
        n = torch.tensor(self.n_values).unsqueeze(0)  # [1, H]
        starts = csum.gather(1, (lengths.unsqueeze(1) - n).clamp(min=0))
        return (ends - starts) % 2


@register_task("dms")
@dataclass(frozen=True)
class DMSTask(_BinaryStreamTask):
    """N-delayed-match-to-sample on a binary stream (Khajehabdollahi et al., ICLR 2024).

    Head k answers whether the bit N = ``n_values[k]`` steps from the end matches the last bit:
    label = int(x[L - N] == x[L - 1]) for a trial of length L (``x[-N] == x[-1]``), read only at
    the last step. Bits are i.i.d. with probability ``p_bit`` (0.5 in the paper). Sequence
    lengths are uniform integers in ``[N_max + 2, 4 N_max + 2)``. See :meth:`sample` for shapes.

    Arguments:
        n_values: the N of each head (distinct ints >= 1; N = 1 is trivially always a match).
        p_bit: probability of a 1, or None for p ~ U(0, 1) per sequence.
    """

    n_values: tuple[int, ...] = (2, 3, 4, 5)
    p_bit: float | None = 0.5

    _task_name = "dms"

    def _labels(self, bits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n = torch.tensor(self.n_values).unsqueeze(0)  # [1, H]
        last = bits.gather(1, (lengths - 1).unsqueeze(1))  # [B, 1]
        sample = bits.gather(1, (lengths.unsqueeze(1) - n).clamp(min=0))  # [B, H]
        return (sample == last).long()
