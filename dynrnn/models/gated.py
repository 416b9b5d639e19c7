"""GRU and LSTM cells under the dynrnn protocol, batched over K networks.

Equations and gate order follow ``torch.nn.GRU`` / ``torch.nn.LSTM`` exactly (so weights can be
copied in from them):

GRU (gates r, z, n):  ``r = s(Wir x + bir + Whr h + bhr)``, ``z = s(Wiz x + biz + Whz h + bhz)``,
``n = tanh(Win x + bin + r * (Whn h + bhn))``, ``h' = (1 - z) * n + z * h``.

LSTM (gates i, f, g, o): ``c' = f * c + i * g``, ``h' = o * tanh(c')``. The protocol state is the
concatenation ``[h, c]`` so ``n_units = 2 * hidden_size``; the readout uses the ``h`` half.

The cells themselves are :mod:`dynrnn.functional.gated` (with their citations).
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
    validate_config,
)
from ..functional.gated import gru_step, lstm_step
from .base import RecurrentModel

__all__ = ["GRUConfig", "GRU", "LSTMConfig", "LSTM"]


@dataclass(frozen=True)
class GRUConfig:
    """Configuration of one GRU network (sizes; ``init_scale`` multiplies torch's default
    ``U(-1/sqrt(H), 1/sqrt(H))`` initialisation; ``rec_noise_std`` noise on the new state)."""

    n_inputs: int
    n_units: int
    n_outputs: int
    init_scale: float = 1.0
    readout_bias: bool = True
    rec_noise_std: float = 0.0
    dt: float = 1.0

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_inputs": Int(0),
        "n_units": Int(1),
        "n_outputs": Int(1),
        "init_scale": Float(0.0),
        "readout_bias": Bool(),
        "rec_noise_std": Float(0.0),
        "dt": Float(0.0, None, low_inclusive=False),
    }

    def __post_init__(self):
        validate_config(self)


@dataclass(frozen=True)
class LSTMConfig(GRUConfig):
    """Configuration of one LSTM network (``n_units`` is the hidden size H; state is 2H)."""


class _Gated(RecurrentModel):
    n_gates = 3
    structural_fields = ("n_inputs", "n_units", "n_outputs", "readout_bias")

    def trainable_names(self):
        names = ("W_ih", "W_hh", "b_ih", "b_hh", "W_out")
        return names + (("b_out",) if self.configs[0].readout_bias else ())

    @property
    def hidden_size(self) -> int:
        return int(self.config.n_units)

    def _init_network(self, c, g):
        H, I, O = c.n_units, c.n_inputs, c.n_outputs
        G = self.n_gates * H
        bound = c.init_scale / math.sqrt(H)

        def u(*shape, b=bound):
            return ((torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * b).float()

        return {
            "W_ih": u(G, I),
            "W_hh": u(G, H),
            "b_ih": u(G),
            "b_hh": u(G),
            "W_out": u(O, H, b=1 / math.sqrt(H)),
            "b_out": torch.zeros(O),
            "rec_noise_std": torch.tensor(float(c.rec_noise_std)),
        }

    def input_drive(self, x):
        K = self.n_networks
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], math.prod(lead[1:]), x.shape[-1])
        out = torch.matmul(flat, self.W_ih.transpose(1, 2)) + self.b_ih[:, None, :]
        return out.reshape(K, *lead[1:], self.W_ih.shape[1])

    def prepare(self):
        return {"W_hh_T": self.W_hh.transpose(1, 2)}

    def _readout_input(self, h):
        return h[..., : self.hidden_size]

    def weight_layout(self) -> dict[str, torch.Tensor]:
        """Not defined: each hidden unit owns one row in each gate block of ``W_ih`` / ``W_hh``
        (and an LSTM's state also holds the cell c), so there is no single recurrent matrix; a
        weight distance would need gate-aware permutations."""
        raise NotImplementedError(
            f"{type(self).__name__} has gated units ({self.n_gates} weight blocks per unit); "
            "gate-aware permutations are not supported."
        )


class GRU(_Gated):
    """K GRU networks (state ``[K, B, H]``); see module docstring for the equations."""

    config_class = GRUConfig
    model_name = "gru"
    n_gates = 3

    @property
    def n_units(self) -> int:
        return self.hidden_size

    def step_drive(self, h, drive, params, noise=None):
        """One step (:func:`dynrnn.functional.gated.gru_step`), noise added to the new state."""
        h_new = gru_step(h, drive, params["W_hh_T"], self.b_hh)
        if noise is not None:
            h_new = h_new + noise
        return h_new


class LSTM(_Gated):
    """K LSTM networks; protocol state ``[K, B, 2H]`` = ``[h, c]``."""

    config_class = LSTMConfig
    model_name = "lstm"
    n_gates = 4

    @property
    def n_units(self) -> int:
        return 2 * self.hidden_size

    def step_drive(self, h, drive, params, noise=None):
        """One step (:func:`dynrnn.functional.gated.lstm_step`) of the state ``[h, c]``; noise
        is added to the new ``h``."""
        H = self.hidden_size
        h_new, c_new = lstm_step(h[..., :H], h[..., H:], drive, params["W_hh_T"], self.b_hh)
        if noise is not None:
            h_new = h_new + noise[..., :H]
        return torch.cat([h_new, c_new], dim=-1)
