"""GRU and LSTM cells (the one source of their equations), in the gate order and form of
``torch.nn.GRU`` / ``torch.nn.LSTM`` so that weights copy in from them.

GRU (Cho, K. et al. (2014). Learning phrase representations using RNN encoder-decoder for
statistical machine translation. *EMNLP*), gates ``r, z, n`` stacked in that order along the
last dim of ``gi = W_ih x + b_ih`` and ``gh = W_hh h + b_hh`` (each ``[K, B, 3H]``)::

    r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n),
    h' = (1 - z) n + z h      (computed as n + z (h - n)).

(``r`` multiplies ``W_hn h + b_hn``, as in torch, rather than ``h`` before the product as in
Cho et al.)

LSTM (Hochreiter, S. & Schmidhuber, J. (1997). Long short-term memory. *Neural Computation*
9(8), 1735-1780; with the forget gate of Gers, F. A., Schmidhuber, J. & Cummins, F. (2000).
Learning to forget: continual prediction with LSTM. *Neural Computation* 12(10), 2451-2471),
gates ``i, f, g, o`` of ``W_ih x + b_ih + W_hh h + b_hh`` (``[K, B, 4H]``)::

    c' = sigmoid(f) c + sigmoid(i) tanh(g),     h' = sigmoid(o) tanh(c').
"""

from __future__ import annotations

import torch

__all__ = ["gru_cell", "gru_step", "lstm_cell", "lstm_step"]


def gru_cell(h: torch.Tensor, gi: torch.Tensor, gh: torch.Tensor) -> torch.Tensor:
    """GRU update from the state ``h [K, B, H]`` and the gate pre-activations ``gi, gh
    [K, B, 3H]`` (input and recurrent parts, biases included). Returns ``h' [K, B, H]``."""
    H = h.shape[-1]
    r = torch.sigmoid(gi[..., :H] + gh[..., :H])
    z = torch.sigmoid(gi[..., H : 2 * H] + gh[..., H : 2 * H])
    n = torch.tanh(gi[..., 2 * H :] + r * gh[..., 2 * H :])
    return n + z * (h - n)


def gru_step(
    h: torch.Tensor, drive: torch.Tensor, W_hh_T: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """One GRU step: ``h [K, B, H]``, ``drive = W_ih x + b_ih [K, B, 3H]``, ``W_hh_T
    [K, H, 3H]``, ``b_hh [K, 3H]`` -> ``h' [K, B, H]`` (:func:`gru_cell`)."""
    return gru_cell(h, drive, torch.baddbmm(b_hh[:, None, :], h, W_hh_T))


def lstm_cell(
    c: torch.Tensor, gates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM update from the cell state ``c [K, B, H]`` and the gate pre-activations ``gates
    [K, B, 4H]`` (order i, f, g, o). Returns ``(h' [K, B, H], c' [K, B, H])``."""
    H = c.shape[-1]
    i = torch.sigmoid(gates[..., :H])
    f = torch.sigmoid(gates[..., H : 2 * H])
    g = torch.tanh(gates[..., 2 * H : 3 * H])
    o = torch.sigmoid(gates[..., 3 * H :])
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def lstm_step(
    h: torch.Tensor, c: torch.Tensor, drive: torch.Tensor, W_hh_T: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step: ``h, c [K, B, H]``, ``drive = W_ih x + b_ih [K, B, 4H]``, ``W_hh_T
    [K, H, 4H]``, ``b_hh [K, 4H]`` -> ``(h', c')`` (:func:`lstm_cell`)."""
    return lstm_cell(c, drive + torch.baddbmm(b_hh[:, None, :], h, W_hh_T))
