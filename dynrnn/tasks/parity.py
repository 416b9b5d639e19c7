"""N-parity and N-delayed-match-to-sample on a binary stream (Khajehabdollahi et al., ICLR 2024),
and whole-string parity.

Khajehabdollahi, Zeraati, Giannakakis, Schäfer, Martius & Levina, "Emergent mechanisms for
long timescales depend on training curriculum and affect performance in memory tasks",
ICLR 2024.

:class:`ParityTask`'s N-parity is the parity of the *last* N bits (a sliding window: its
minimal labelled machine remembers the last N - 1 bits, 4 states for N = 2);
:class:`StringParityTask` is the parity of *all* bits so far, the classic two-state automaton
(the regular language of strings with an even number of 1s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Check,
    Choice,
    Constraint,
    Float,
    IntPair,
    OrNone,
    check_int,
    resolve_generator,
    validate_config,
)
from .base import Task, Trials, register_task

__all__ = ["DMSTask", "ParityTask", "StringParityTask"]


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


@register_task("string_parity")
@dataclass(frozen=True)
class StringParityTask(Task):
    """Whole-string parity: the parity of all bits read so far.

    The label after the prefix ``x_1 .. x_t`` is ``(x_1 + ... + x_t) mod 2`` (1 = odd number of
    1s), the language of the two-state automaton (states "even", "odd"; a 1 swaps them, a 0
    keeps them). Unlike :class:`ParityTask` (parity of the last N bits) nothing is ever
    forgotten. Inputs are the bits on one channel (as :class:`ParityTask`), zero after each
    string's end; the network answers with two logits (one classification head).

    Arguments:
        length_range: inclusive range ``(lo, hi)`` of training string lengths (uniform
            integers, ``1 <= lo <= hi``); the symbolic view's held-out strings are 2-4x longer
            than ``hi``.
        p_bit: probability of a 1 (i.i.d. bits), or None for p ~ U(0, 1) per string.
        targets: ``"prefix"`` (the label of every prefix is a target, mask at every real step)
            or ``"end"`` (only the whole string's label, at its last step).

    ``sample`` returns :class:`Trials` with ``inputs [B, T, 1]`` (float32 bits),
    ``targets [B, T, 1]`` (long: the parity of each prefix; 0 at padding), ``mask [B, T]`` and
    ``info``: ``lengths [B]``, ``symbols [B, T]`` (the bits, -1 padding), ``labels [B, 1]``
    (whole-string parity), ``p_bit [B]``, ``dt`` (1.0), ``task``; T is the longest length in
    the batch.
    """

    length_range: tuple[int, int] = (2, 10)
    p_bit: float | None = 0.5
    targets: str = "prefix"

    kind = "classification"

    constraints: ClassVar[dict[str, Constraint]] = {
        "length_range": IntPair(1),
        "p_bit": OrNone(Float(0.0, 1.0)),
        "targets": Choice(("prefix", "end")),
    }

    def __post_init__(self):
        validate_config(self)
        if 4 * self.length_range[1] > 4096:
            raise ValueError(
                "The 'length_range' parameter of StringParityTask must end at most at 1024 "
                f"(held-out strings are up to 4x longer). Got {self.length_range!r} instead."
            )

    @property
    def n_inputs(self) -> int:
        return 1

    @property
    def n_outputs(self) -> int:
        return 2

    @property
    def n_values(self) -> tuple[int, ...]:
        """One classification head (``train`` counts heads by ``n_values``): ``(0,)``, 0 standing
        for "all bits" (no window)."""
        return (0,)

    def reference_dfa(self):
        """The minimal complete DFA ``(transitions [2, 2], accepting [2])``, start state 0 (even);
        "accepting" = label 1 (odd)."""
        import numpy as np

        return np.array([[0, 1], [1, 0]]), np.array([False, True])

    def prefix_labels(self, symbols: torch.Tensor) -> torch.Tensor:
        """Parity of every prefix of bit strings ``[B, T]`` (-1 padding): ``[B, T + 1]`` long
        (column 0: the empty string, parity 0; -1 at padding)."""
        real = symbols >= 0
        cs = (symbols.clamp(min=0) * real).cumsum(1) % 2
        lab = torch.where(real, cs, torch.full_like(cs, -1))
        return torch.cat([torch.zeros(symbols.shape[0], 1, dtype=torch.long), lab.long()], 1)

    def sample_strings(self, n: int, lengths: tuple[int, int] | None = None,
                       generator: torch.Generator | int | None = None) -> torch.Tensor:
        """``n`` bit strings ``[n, T]`` (-1 padding) with lengths uniform in the inclusive range
        ``lengths`` (default ``length_range``), bits i.i.d. with ``p_bit`` (or p ~ U(0, 1) per
        string)."""
        owner = type(self).__name__
        n = check_int(owner, "n", n, 1)
        lengths = self.length_range if lengths is None else IntPair(1).check(
            owner, "lengths", lengths)
        return self._draw(n, lengths, resolve_generator(generator))[0]

    def _draw(self, n: int, lengths: tuple[int, int], gen: torch.Generator):
        """``(symbols [n, T], p_bit [n] float32)``."""
        from .tomita import uniform_strings

        if self.p_bit is None:
            p1 = torch.rand(n, 1, generator=gen, dtype=torch.float64)
        else:
            p1 = torch.full((n, 1), float(self.p_bit), dtype=torch.float64)
        symbols = uniform_strings(n, lengths, gen, 2, torch.cat([1 - p1, p1], 1))
        return symbols, p1[:, 0].float()

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Draw ``batch_size`` strings; see the class docstring for shapes."""
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        symbols, p = self._draw(B, self.length_range, resolve_generator(seed))
        real = symbols >= 0
        L = real.sum(1)
        lab = self.prefix_labels(symbols)[:, 1:].clamp(min=0)  # [B, T]
        if self.targets == "prefix":
            mask = real
        else:
            mask = torch.arange(symbols.shape[1])[None] == (L - 1)[:, None]
        info = {"task": "string_parity", "dt": 1.0, "lengths": L, "symbols": symbols,
                "labels": lab.gather(1, (L - 1)[:, None]), "p_bit": p}
        bits = (symbols.clamp(min=0) * real).float().unsqueeze(-1)
        return Trials(bits, lab.unsqueeze(-1), mask, info)

    def symbolic_view(self):
        """The :class:`~dynrnn.tasks.tomita.SymbolicView` for automaton extraction: bits as
        symbols, the parity of every prefix as label, training strings as :meth:`sample` draws
        them, held-out strings 2-4x longer than the longest training string."""
        from .tomita import SymbolicView, _decode_bits, _head_labels

        owner = "StringParityTask.symbolic_view"
        lo, hi = self.length_range
        return SymbolicView(
            name="string_parity", n_symbols=2, n_classes=2,
            encode=lambda s: (s.clamp(min=0) * (s >= 0)).float().unsqueeze(-1),
            decode=lambda x: _decode_bits(owner, x),
            labels=self.prefix_labels, read=lambda y: _head_labels(y, 0),
            sample=lambda n, lengths, gen: self.sample_strings(n, lengths, gen),
            min_length=1 if self.targets == "prefix" else lo,
            train_lengths=(lo, hi), test_lengths=(2 * hi, 4 * hi),
        )
