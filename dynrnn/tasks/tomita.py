"""Tomita grammars 1-7 as a task, and the *symbolic view* of symbolic tasks.

The seven regular languages over the binary alphabet {0, 1} of Tomita, M. (1982). Dynamic
construction of finite automata from examples using hill-climbing. *Proceedings of the Fourth
Annual Conference of the Cognitive Science Society*, 105-108. Public copies differ in details
(Tomita 6 is sometimes taken mod 5, Tomita 3 is worded ambiguously), so each is defined here
explicitly, by the minimal complete DFA in :data:`TOMITA_DFAS` (start state 0, sink included):

====  =================================================================  ======
  #   language                                                            states
====  =================================================================  ======
  1   ``1*``                                                               2
  2   ``(10)*``                                                            3
  3   no maximal odd-length run of 1s is followed, anywhere later, by a    5
      maximal odd-length run of 0s (a run of 0s ending the string counts)
  4   no ``000`` substring                                                 4
  5   an even number of 0s and an even number of 1s                        4
  6   ``(#0 - #1)`` divisible by 3                                          3
  7   ``0*1*0*1*``                                                         5
====  =================================================================  ======

(:func:`tomita_accepts` is a direct, DFA-free implementation of these definitions; the tests
check that the tables agree with it on every string up to length 10.)

The *symbolic view* (:class:`SymbolicView`) is what automaton extraction
(:mod:`dynrnn.analyses.automata`) needs of a task: the alphabet, how symbols become network
inputs and back, the ground-truth label of every prefix, how a network's output becomes a label,
and a sampler of symbol strings. :class:`TomitaTask`, :class:`~dynrnn.tasks.ParityTask`,
:class:`~dynrnn.tasks.StringParityTask`, :class:`~dynrnn.tasks.DMSTask` and
:class:`~dynrnn.tasks.FlipFlopTask` provide one through ``task.symbolic_view()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._validation import (
    Choice,
    Constraint,
    Float,
    Int,
    IntPair,
    ParameterTypeError,
    check_int,
    resolve_generator,
    validate_config,
)
from .base import Task, Trials, register_task

__all__ = [
    "TOMITA_DFAS",
    "TOMITA_STATE_COUNTS",
    "TomitaTask",
    "SymbolicView",
    "tomita_accepts",
    "run_transition_table",
    "check_symbols",
    "pad_strings",
]

#: the longest string the symbolic views and the extraction accept (a stated limit: the Tomita
#: sampler's acceptance probabilities and the prefix states of a batch grow linearly with it)
MAX_STRING_LENGTH = 4096

# Minimal complete DFAs: transitions [S, 2] (column = symbol), accepting [S]; start state 0.
TOMITA_DFAS: dict[int, tuple[np.ndarray, np.ndarray]] = {
    # 1* : 0 accept, 1 sink
    1: (np.array([[1, 0], [1, 1]]), np.array([True, False])),
    # (10)* : 0 accept (expects 1), 1 expects 0, 2 sink
    2: (np.array([[2, 1], [0, 2], [2, 2]]), np.array([True, False, False])),
    # 3: 0 no odd 1-run completed (in 0-run or even 1-run), 1 in odd 1-run, 2 odd 1-run seen and
    # now in an odd 0-run (reject), 3 odd 1-run seen, no odd 0-run since (accept), 4 sink
    3: (
        np.array([[0, 1], [2, 0], [3, 4], [2, 3], [4, 4]]),
        np.array([True, True, False, True, False]),
    ),
    # no 000 : number of trailing 0s (0, 1, 2), 3 sink
    4: (np.array([[1, 0], [2, 0], [3, 0], [3, 3]]), np.array([True, True, True, False])),
    # even #0 and even #1 : state = (#0 mod 2) + 2 (#1 mod 2)
    5: (np.array([[1, 2], [0, 3], [3, 0], [2, 1]]), np.array([True, False, False, False])),
    # (#0 - #1) mod 3 == 0 : state = (#0 - #1) mod 3
    6: (np.array([[1, 2], [2, 0], [0, 1]]), np.array([True, False, False])),
    # 0*1*0*1* : which block we are in, 4 sink
    7: (
        np.array([[0, 1], [2, 1], [2, 3], [4, 3], [4, 4]]),
        np.array([True, True, True, True, False]),
    ),
}
#: minimal complete state counts (sink included) of Tomita 1-7
TOMITA_STATE_COUNTS = {1: 2, 2: 3, 3: 5, 4: 4, 5: 4, 6: 3, 7: 5}

_TOMITA_RE = {1: re.compile(r"1*"), 2: re.compile(r"(10)*"), 7: re.compile(r"0*1*0*1*")}


def tomita_accepts(grammar: int, string: str) -> bool:
    """Membership of one string of ``'0'``/``'1'`` in Tomita grammar ``grammar``, straight from
    the definitions in the module docstring (no DFA; the reference for the tables' tests)."""
    grammar = check_int("tomita_accepts", "grammar", grammar, 1, 7)
    if not isinstance(string, str) or set(string) - {"0", "1"}:
        raise ValueError(
            f"The 'string' parameter of tomita_accepts must be a str of '0' and '1'. Got "
            f"{string!r} instead."
        )
    if grammar in _TOMITA_RE:
        return _TOMITA_RE[grammar].fullmatch(string) is not None
    if grammar == 3:
        runs = [(m.group()[0], len(m.group())) for m in re.finditer(r"0+|1+", string)]
        seen_odd_ones = False
        for sym, n in runs:
            if sym == "0" and n % 2 == 1 and seen_odd_ones:
                return False
            if sym == "1" and n % 2 == 1:
                seen_odd_ones = True
        return True
    if grammar == 4:
        return "000" not in string
    n0, n1 = string.count("0"), string.count("1")
    if grammar == 5:
        return n0 % 2 == 0 and n1 % 2 == 0
    return (n0 - n1) % 3 == 0


def run_transition_table(
    table: torch.Tensor, start: int | torch.Tensor, symbols: torch.Tensor
) -> torch.Tensor:
    """The states of a DFA after every prefix of a batch of strings.

    Arguments:
        table: transitions ``[S, A]`` (long; ``table[s, a]`` is the next state).
        start: start state (int, or ``[B]`` long: one per string).
        symbols: ``[B, T]`` long in ``[0, A)``, right-padded with -1 (padding keeps the state).

    Returns:
        ``[B, T + 1]`` long: column 0 is the start state, column t the state after t symbols.

    The loop runs over the T positions (a DFA is sequential), each step vectorised over B.
    """
    B, T = symbols.shape
    s = torch.as_tensor(start, dtype=torch.long).expand(B).clone()
    out = torch.empty(B, T + 1, dtype=torch.long)
    out[:, 0] = s
    pad = symbols < 0
    sym = symbols.clamp(min=0)
    for t in range(T):
        s = torch.where(pad[:, t], s, table[s, sym[:, t]])
        out[:, t + 1] = s
    return out


def check_symbols(
    owner: str, name: str, strings: Any, n_symbols: int, max_length: int = MAX_STRING_LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symbol strings as ``(symbols [B, T] long right-padded with -1, lengths [B])``.

    Accepts a sequence of str over ``'0'..'9'`` (A <= 10), a sequence of int sequences, or an
    integer array / tensor ``[B, T]`` (-1 = padding, only after the last symbol). Raises
    :class:`ParameterTypeError` for non-integer values (e.g. continuous inputs) and ValueError
    for symbols outside ``[0, n_symbols)`` (wrong alphabet), padding inside a string, an empty
    batch, or strings longer than ``max_length``.
    """
    if isinstance(strings, str):
        strings = [strings]
    if torch.is_tensor(strings) or isinstance(strings, np.ndarray):
        arr = strings.detach().cpu().numpy() if torch.is_tensor(strings) else strings
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
                raise ParameterTypeError(
                    f"The {name!r} parameter of {owner} must hold integer symbols in "
                    f"[0, {n_symbols}) (non-symbolic, continuous values found). Pass symbol "
                    "strings, not network inputs."
                )
        elif arr.dtype.kind not in "iu":
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be integer symbols [B, T]. Got dtype "
                f"{arr.dtype} instead."
            )
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(
                f"The {name!r} parameter of {owner} must be symbols of shape [B, T] with "
                f"B >= 1. Got shape {arr.shape} instead."
            )
        sym = torch.as_tensor(arr.astype(np.int64))
    else:
        try:
            seqs = [list(map(int, s)) if isinstance(s, str) else list(s) for s in strings]
        except (TypeError, ValueError):
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be strings of symbols (str of digits, "
                f"int sequences or an int array [B, T]). Got {type(strings).__name__} instead."
            ) from None
        for s in seqs:
            for v in s:
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                    if isinstance(v, (float, np.floating)) and float(v).is_integer():
                        continue
                    raise ParameterTypeError(
                        f"The {name!r} parameter of {owner} must hold integer symbols in "
                        f"[0, {n_symbols}). Got {v!r} (non-symbolic) instead."
                    )
        if not seqs:
            raise ValueError(f"The {name!r} parameter of {owner} must hold at least one string.")
        sym = pad_strings([[int(v) for v in s] for s in seqs])
    valid = sym >= 0
    lengths = valid.sum(1)
    if bool((valid[:, 1:] & ~valid[:, :-1]).any()) or bool((sym < -1).any()):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be right-padded with -1 only; found a "
            f"negative symbol other than -1 or padding inside a string (symbols are in "
            f"[0, {n_symbols}))."
        )
    if bool((sym >= n_symbols).any()):
        raise ValueError(
            f"The {name!r} parameter of {owner} has symbols outside the alphabet [0, "
            f"{n_symbols}) (found {int(sym.max())}): wrong alphabet."
        )
    if int(lengths.max()) > max_length:
        raise ValueError(
            f"The {name!r} parameter of {owner} has a string of length {int(lengths.max())}, "
            f"above the limit of {max_length} symbols."
        )
    T = max(int(lengths.max()), 1)
    return sym[:, :T].contiguous(), lengths


def pad_strings(seqs: list[list[int]]) -> torch.Tensor:
    """Integer sequences as ``[B, T]`` long, right-padded with -1 (T >= 1)."""
    T = max([len(s) for s in seqs] + [1])
    out = torch.full((len(seqs), T), -1, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def _one_hot(symbols: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, T]`` symbols (-1 padding) -> one-hot ``[B, T, n]`` float32 (zeros at padding)."""
    oh = torch.nn.functional.one_hot(symbols.clamp(min=0), n).float()
    return oh * (symbols >= 0).unsqueeze(-1).float()


def _decode_one_hot(owner: str, inputs: torch.Tensor, n: int) -> torch.Tensor:
    """One-hot inputs ``[B, T, n]`` (all-zero rows = padding) -> symbols ``[B, T]``."""
    x = torch.as_tensor(inputs)
    if x.ndim != 3 or x.shape[-1] != n:
        raise ValueError(
            f"The 'inputs' parameter of {owner} must be one-hot symbols [B, T, {n}]. Got shape "
            f"{tuple(x.shape)} instead."
        )
    binary = (x == 0) | (x == 1)
    if not bool(binary.all()) or bool((x.sum(-1) > 1).any()):
        raise ValueError(
            f"The 'inputs' parameter of {owner} is not symbolic: every step must be a one-hot "
            f"vector over the {n} symbols (or all zeros for padding); found other values."
        )
    return torch.where(x.sum(-1) > 0, x.argmax(-1), torch.full(x.shape[:2], -1)).long()


def _head_labels(outputs: torch.Tensor, head: int) -> torch.Tensor:
    """Two-logit classification head ``head`` of outputs ``[..., O]`` -> labels ``[...]``."""
    return outputs[..., 2 * head : 2 * head + 2].argmax(-1)


@dataclass(frozen=True)
class SymbolicView:
    """What automaton extraction needs of a symbolic task (see :mod:`dynrnn.analyses.automata`).

    Attributes:
        name: a short description (e.g. ``"tomita4"``, ``"parity(N=2)"``).
        n_symbols: alphabet size A; symbols are ints ``0 .. A-1``.
        n_classes: number of output labels C (2 for accept/reject).
        encode: ``symbols [B, T] (-1 padding) -> inputs [B, T, I]`` float32.
        decode: ``inputs [B, T, I] -> symbols [B, T]``; raises ValueError for inputs that are not
            symbols of this alphabet (continuous values, wrong alphabet).
        labels: ``symbols [B, T] -> [B, T + 1]`` long, the ground-truth label after each prefix
            (column 0: the empty string); -1 where the task defines none (padding, or before a
            flip-flop's first pulse).
        read: network outputs ``[K, B, T, O] -> [K, B, T]`` long labels.
        sample: ``(n, (lo, hi), generator) -> symbols [n, T]`` (lengths uniform in the inclusive
            range, right-padded with -1), drawn as the task draws its strings.
        min_length: the shortest prefix the network was trained to label (shorter prefixes are
            "don't care" for extraction).
        train_lengths: inclusive length range of the training strings.
        test_lengths: inclusive range of the held-out long strings (longer than any training
            string).
    """

    name: str
    n_symbols: int
    n_classes: int
    encode: Callable[[torch.Tensor], torch.Tensor]
    decode: Callable[[torch.Tensor], torch.Tensor]
    labels: Callable[[torch.Tensor], torch.Tensor]
    read: Callable[[torch.Tensor], torch.Tensor]
    sample: Callable[[int, tuple[int, int], torch.Generator], torch.Tensor]
    min_length: int
    train_lengths: tuple[int, int]
    test_lengths: tuple[int, int]

    def __post_init__(self):
        check_int("SymbolicView", "n_symbols", self.n_symbols, 1)
        check_int("SymbolicView", "n_classes", self.n_classes, 2)
        check_int("SymbolicView", "min_length", self.min_length, 0)
        lo, hi = self.train_lengths
        tlo, thi = self.test_lengths
        if not (1 <= lo <= hi < tlo <= thi <= MAX_STRING_LENGTH):
            raise ValueError(
                "The 'train_lengths' and 'test_lengths' parameters of SymbolicView must be "
                "inclusive ranges with 1 <= train lo <= train hi < test lo <= test hi <= "
                f"{MAX_STRING_LENGTH}. Got {self.train_lengths} and {self.test_lengths} instead."
            )


def uniform_strings(
    n: int, lengths: tuple[int, int], generator: torch.Generator, n_symbols: int,
    probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` i.i.d. strings with lengths uniform in the inclusive range ``lengths``; symbols
    uniform over ``n_symbols`` or drawn from ``probs [n or 1, A]`` per string. ``[n, T]``,
    -1 padded."""
    lo, hi = int(lengths[0]), int(lengths[1])
    L = torch.randint(lo, hi + 1, (n,), generator=generator)
    T = int(L.max())
    if probs is None:
        sym = torch.randint(0, n_symbols, (n, T), generator=generator)
    else:
        p = probs.expand(n, -1).double()
        sym = torch.multinomial(p, T, replacement=True, generator=generator)
    return torch.where(torch.arange(T)[None] < L[:, None], sym, torch.full_like(sym, -1))


def _accept_probabilities(table: np.ndarray, accepting: np.ndarray, T: int) -> torch.Tensor:
    """``p[r, s]``: probability that a uniform random string of length r from state s ends in an
    accepting state (``[T + 1, S]`` float64, by the recursion ``p[r] = mean_a p[r-1][d(s, a)]``)."""
    tab = torch.as_tensor(table)
    p = torch.empty(T + 1, tab.shape[0], dtype=torch.float64)
    p[0] = torch.as_tensor(accepting, dtype=torch.float64)
    for r in range(1, T + 1):
        p[r] = p[r - 1][tab].mean(1)
    return p


def _balanced_strings(
    table: np.ndarray, accepting: np.ndarray, n: int, lengths: tuple[int, int],
    generator: torch.Generator, p_positive: float,
) -> torch.Tensor:
    """``n`` strings of a regular language's positive / negative class, each drawn uniformly from
    the strings of its length and class (DFA-guided: symbol by symbol, with probabilities
    proportional to the number of completions that end in the wanted class). Lengths are
    uniform in ``lengths``; the class is positive with probability ``p_positive``, flipped where
    that class has no string of the drawn length (e.g. odd lengths in ``(10)*``)."""
    lo, hi = int(lengths[0]), int(lengths[1])
    L = torch.randint(lo, hi + 1, (n,), generator=generator)
    want = torch.rand(n, generator=generator) < p_positive
    T = int(L.max())
    p = _accept_probabilities(table, accepting, T)  # [T+1, S]
    tab = torch.as_tensor(table)
    p_start = p[L, 0]
    want = torch.where(p_start == 0, torch.zeros_like(want), want)
    want = torch.where(p_start == 1, torch.ones_like(want), want)
    s = torch.zeros(n, dtype=torch.long)
    out = torch.full((n, T), -1, dtype=torch.long)
    u = torch.rand(n, T, generator=generator, dtype=torch.float64)
    for t in range(T):
        r = (L - t - 1).clamp(min=0)  # symbols left after this one
        nxt = tab[s]  # [n, 2]
        pa = p[r[:, None], nxt]  # [n, 2]: P(accepting completion) after each symbol
        w = torch.where(want[:, None], pa, 1 - pa)
        tot = w.sum(1)
        p1 = torch.where(tot > 0, w[:, 1] / tot.clamp(min=1e-300), torch.full_like(tot, 0.5))
        a = (u[:, t] < p1).long()
        live = t < L
        out[:, t] = torch.where(live, a, out[:, t])
        s = torch.where(live, nxt.gather(1, a[:, None]).squeeze(1), s)
    return out


def _check_tomita_lengths(owner, name, value, config):
    lo, hi = IntPair(1).check(owner, name, value, config)
    if hi > MAX_STRING_LENGTH:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a pair (lo, hi) of ints with "
            f"1 <= lo <= hi <= {MAX_STRING_LENGTH}. Got {value!r} instead."
        )
    return lo, hi


class _Lengths(Constraint):
    def check(self, owner, name, value, config=None):
        return _check_tomita_lengths(owner, name, value, config)


@register_task("tomita")
@dataclass(frozen=True)
class TomitaTask(Task):
    """Accept/reject strings of one of the Tomita grammars 1-7 (Tomita 1982; see the module
    docstring for the definitions).

    Inputs are one-hot symbols (2 channels, all zeros after a string's end); the network answers
    with two logits (one classification head, as N-parity's heads). Each trial's class
    (positive / negative) is drawn with probability ``p_positive``, then a string uniformly
    among those of its length and class, so positives and negatives are balanced at every
    length (where a class is empty at a length, the other is taken).

    Arguments:
        grammar: 1-7.
        length_range: inclusive range of training string lengths (uniform).
        test_length_range: inclusive range of the held-out long strings (``split="test"``); must
            start above ``length_range``.
        targets: ``"prefix"`` (the label of every prefix is a target, mask at every real step) or
            ``"end"`` (only the whole string's label, at its last step).
        p_positive: probability that a trial's string is in the language.

    ``sample`` returns :class:`Trials` with ``inputs [B, T, 2]``, ``targets [B, T, 1]`` (long:
    the label of each prefix; 0 at padding), ``mask [B, T]`` and ``info``: ``lengths [B]``,
    ``symbols [B, T]`` (-1 padding), ``labels [B, 1]`` (whole-string label), ``grammar``,
    ``split``, ``dt`` (1.0), ``task``.
    """

    grammar: int = 4
    length_range: tuple[int, int] = (1, 12)
    test_length_range: tuple[int, int] = (24, 48)
    targets: str = "prefix"
    p_positive: float = 0.5

    kind = "classification"

    constraints: ClassVar[dict[str, Constraint]] = {
        "grammar": Int(1, 7),
        "length_range": _Lengths(),
        "test_length_range": _Lengths(),
        "targets": Choice(("prefix", "end")),
        "p_positive": Float(0.0, 1.0),
    }

    def __post_init__(self):
        validate_config(self)
        if self.test_length_range[0] <= self.length_range[1]:
            raise ValueError(
                f"The 'test_length_range' parameter of TomitaTask must start above the longest "
                f"training length {self.length_range[1]}. Got {self.test_length_range!r} "
                "instead."
            )

    @property
    def n_inputs(self) -> int:
        return 2

    @property
    def n_outputs(self) -> int:
        return 2

    @property
    def n_values(self) -> tuple[int, ...]:
        """One classification head (``train`` counts heads by ``n_values``): ``(grammar,)``."""
        return (self.grammar,)

    def reference_dfa(self) -> tuple[np.ndarray, np.ndarray]:
        """The minimal complete DFA: ``(transitions [S, 2], accepting [S])``, start state 0."""
        table, acc = TOMITA_DFAS[self.grammar]
        return table.copy(), acc.copy()

    def prefix_labels(self, symbols: torch.Tensor) -> torch.Tensor:
        """Ground-truth label of every prefix, ``[B, T + 1]`` (column 0: the empty string;
        -1 at padding)."""
        table, acc = TOMITA_DFAS[self.grammar]
        states = run_transition_table(torch.as_tensor(table), 0, symbols)
        lab = torch.as_tensor(acc)[states].long()
        pad = torch.cat([torch.zeros(symbols.shape[0], 1, dtype=torch.bool), symbols < 0], 1)
        return torch.where(pad, torch.full_like(lab, -1), lab)

    def sample_strings(
        self, n: int, lengths: tuple[int, int] | None = None, seed=None
    ) -> torch.Tensor:
        """``n`` balanced strings ``[n, T]`` (-1 padded) with lengths in ``lengths`` (default
        ``length_range``)."""
        n = check_int(type(self).__name__, "n", n, 1)
        lengths = self.length_range if lengths is None else _check_tomita_lengths(
            type(self).__name__, "lengths", lengths, self)
        table, acc = TOMITA_DFAS[self.grammar]
        return _balanced_strings(table, acc, n, lengths, resolve_generator(seed),
                                 self.p_positive)

    def sample(
        self, batch_size: int, seed: int | torch.Generator | None = None, *,
        split: str = "train", **kw,
    ) -> Trials:
        """Draw ``batch_size`` trials (``split="test"``: lengths from ``test_length_range``);
        see the class docstring for shapes."""
        owner = type(self).__name__
        B = check_int(owner, "batch_size", batch_size, 1)
        if split not in ("train", "test"):
            raise ValueError(
                f"The 'split' parameter of {owner}.sample must be one of ['train', 'test']. "
                f"Got {split!r} instead."
            )
        lengths = self.length_range if split == "train" else self.test_length_range
        symbols = self.sample_strings(B, lengths, resolve_generator(seed))
        real = symbols >= 0
        L = real.sum(1)
        lab = self.prefix_labels(symbols)[:, 1:].clamp(min=0)  # [B, T]
        if self.targets == "prefix":
            mask = real
        else:
            mask = torch.arange(symbols.shape[1])[None] == (L - 1)[:, None]
        end = lab.gather(1, (L - 1)[:, None])
        info = {"task": "tomita", "dt": 1.0, "lengths": L, "symbols": symbols, "labels": end,
                "grammar": self.grammar, "split": split}
        return Trials(_one_hot(symbols, 2), lab.unsqueeze(-1), mask, info)

    def symbolic_view(self) -> SymbolicView:
        """The task's :class:`SymbolicView` (one-hot binary symbols, the grammar's labels)."""
        owner = "TomitaTask.symbolic_view"
        lo, hi = self.length_range
        return SymbolicView(
            name=f"tomita{self.grammar}",
            n_symbols=2,
            n_classes=2,
            encode=lambda s: _one_hot(s, 2),
            decode=lambda x: _decode_one_hot(owner, x, 2),
            labels=self.prefix_labels,
            read=lambda y: _head_labels(y, 0),
            sample=lambda n, lengths, gen: self.sample_strings(n, lengths, gen),
            min_length=1 if self.targets == "prefix" else lo,
            train_lengths=(lo, hi),
            test_lengths=tuple(self.test_length_range),
        )


# ------------------------------------------------------------------ views of the other tasks
def _decode_bits(owner: str, inputs: Any) -> torch.Tensor:
    x = torch.as_tensor(inputs)
    if x.ndim != 3 or x.shape[-1] != 1:
        raise ValueError(
            f"The 'inputs' parameter of {owner} must be bits [B, T, 1]. Got shape "
            f"{tuple(x.shape)} instead."
        )
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(
            f"The 'inputs' parameter of {owner} is not symbolic: bits must be exactly 0 or 1."
        )
    return x[..., 0].long()


def binary_stream_view(task: Any, kind: str, head: int) -> SymbolicView:
    """The :class:`SymbolicView` of head ``head`` of an N-parity (``kind="parity"``) or N-DMS
    (``kind="dms"``) task: symbols = bits; label of a prefix of length L = parity of its last N
    bits (all of them when L < N), or ``x[L - N] == x[L - 1]`` (index clamped at 0), exactly as
    the task labels a trial of length L. Training strings as the task's (lengths
    ``[N_max + 2, 4 N_max + 1]``, bit probability ``p_bit`` or U(0, 1) per string); test strings
    2-4x longer."""
    owner = f"{type(task).__name__}.symbolic_view"
    head = check_int(owner, "head", head, 0, len(task.n_values) - 1)
    N = int(task.n_values[head])
    lo, hi_excl = task.length_range()
    hi = hi_excl - 1

    def labels(symbols: torch.Tensor) -> torch.Tensor:
        real = symbols >= 0
        bits = symbols.clamp(min=0) * real
        B, T = bits.shape
        pos = torch.arange(1, T + 1)  # prefix lengths
        start = (pos - N).clamp(min=0)
        if kind == "parity":
            cs = torch.nn.functional.pad(bits.cumsum(1), (1, 0))  # [B, T+1]
            lab = (cs[:, 1:] - cs[:, start]) % 2
        else:
            lab = (bits[:, start] == bits).long()
        out = torch.cat([torch.zeros(B, 1, dtype=torch.long), lab], 1)
        out[:, 1:] = torch.where(real, out[:, 1:], torch.full_like(lab, -1))
        return out

    def sample(n, lengths, gen):
        if task.p_bit is None:
            p1 = torch.rand(n, 1, generator=gen, dtype=torch.float64)
        else:
            p1 = torch.full((1, 1), float(task.p_bit), dtype=torch.float64)
        probs = torch.cat([1 - p1, p1], 1).clamp(min=1e-12)
        return uniform_strings(n, lengths, gen, 2, probs)

    return SymbolicView(
        name=f"{kind}(N={N})", n_symbols=2, n_classes=2,
        encode=lambda s: (s.clamp(min=0) * (s >= 0)).float().unsqueeze(-1),
        decode=lambda x: _decode_bits(owner, x),
        labels=labels, read=lambda y: _head_labels(y, head), sample=sample,
        min_length=lo, train_lengths=(lo, hi), test_lengths=(2 * hi, 4 * hi),
    )


def flipflop_view(task: Any, channel: int | None) -> SymbolicView:
    """The :class:`SymbolicView` of an N-bit flip-flop: symbol ``sum_i d_i 3^i`` with digit
    ``d_i`` = 0 (no pulse on channel i), 1 (+1 pulse), 2 (-1 pulse), so A = 3^N; the label is
    ``sum_i [last pulse on i was +1] 2^i`` (C = 2^N), or for one ``channel`` only that bit
    (C = 2); -1 before the (relevant) channels' first pulses. The network's label is the sign
    pattern of its outputs. Strings as the task draws them (pulses with ``p_pulse``), training
    length ``n_steps``, test lengths 2-4x longer."""
    owner = "FlipFlopTask.symbolic_view"
    N = int(task.n_bits)
    if channel is not None:
        channel = check_int(owner, "channel", channel, 0, N - 1)
    if 3**N > 729:
        raise ValueError(
            f"The 'n_bits' of {owner} must be at most 6 for a symbolic view (alphabet 3^N). "
            f"Got {N} instead."
        )
    A = 3**N
    chans = list(range(N)) if channel is None else [channel]
    pow3 = 3 ** torch.arange(N)

    def digits(symbols):
        s = symbols.clamp(min=0)
        return (s[..., None] // pow3) % 3  # [B, T, N]

    def encode(symbols):
        d = digits(symbols)
        x = torch.where(d == 1, 1.0, torch.where(d == 2, -1.0, 0.0))
        return x * (symbols >= 0).unsqueeze(-1).float()

    def decode(inputs):
        x = torch.as_tensor(inputs)
        if x.ndim != 3 or x.shape[-1] != N:
            raise ValueError(
                f"The 'inputs' parameter of {owner} must be pulses [B, T, {N}]. Got shape "
                f"{tuple(x.shape)} instead."
            )
        if not bool(((x == 0) | (x == 1) | (x == -1)).all()):
            raise ValueError(
                f"The 'inputs' parameter of {owner} is not symbolic: pulses must be exactly "
                "-1, 0 or +1 (noise-free)."
            )
        d = torch.where(x > 0, 1, torch.where(x < 0, 2, 0)).long()
        return (d * pow3).sum(-1)

    def labels(symbols):
        d = digits(symbols)[..., chans]  # [B, T, C]
        B, T, _ = d.shape
        steps = torch.arange(T).view(1, T, 1).expand_as(d)
        last = torch.where(d > 0, steps, torch.full_like(steps, -1)).cummax(1).values
        seen = last >= 0
        bit = (d.gather(1, last.clamp(min=0)) == 1).long()
        w = 2 ** torch.arange(len(chans))
        lab = (bit * w).sum(-1)
        lab = torch.where(seen.all(-1) & (symbols >= 0), lab, torch.full_like(lab, -1))
        return torch.cat([torch.full((B, 1), -1, dtype=torch.long), lab], 1)

    def read(y):
        w = 2 ** torch.arange(len(chans), device=y.device)
        return ((y[..., chans] > 0).long() * w).sum(-1)

    def sample(n, lengths, gen):
        p = float(task.p_pulse)
        q = torch.tensor([1 - p, p / 2, p / 2], dtype=torch.float64)
        probs = q[digits(torch.arange(A)[None])[0]].prod(-1)  # [A]
        return uniform_strings(n, lengths, gen, A, probs[None])

    T = int(task.n_steps)
    return SymbolicView(
        name=f"flipflop(N={N}" + ("" if channel is None else f", channel={channel}") + ")",
        n_symbols=A, n_classes=2 ** len(chans), encode=encode, decode=decode, labels=labels,
        read=read, sample=sample, min_length=1, train_lengths=(T, T),
        test_lengths=(2 * T, 4 * T),
    )
