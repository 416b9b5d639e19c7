"""GRU and LSTM cells under the dynrnn protocol, batched over K networks.

Equations and gate order follow ``torch.nn.GRU`` / ``torch.nn.LSTM`` exactly (so weights can be
copied in from them):

GRU (gates r, z, n):  ``r = s(Wir x + bir + Whr h + bhr)``, ``z = s(Wiz x + biz + Whz h + bhz)``,
``n = tanh(Win x + bin + r * (Whn h + bhn))``, ``h' = (1 - z) * n + z * h``.

LSTM (gates i, f, g, o): ``c' = f * c + i * g``, ``h' = o * tanh(c')``. The protocol state is the
concatenation ``[h, c]`` so ``n_units = 2 * hidden_size``; the readout uses the ``h`` half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validation import check_bool, check_float, check_int
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

    def __post_init__(self):
        o = type(self).__name__
        check_int(o, "n_inputs", self.n_inputs, 0)
        check_int(o, "n_units", self.n_units, 1)
        check_int(o, "n_outputs", self.n_outputs, 1)
        check_float(o, "init_scale", self.init_scale, 0.0, None)
        check_bool(o, "readout_bias", self.readout_bias)
        check_float(o, "rec_noise_std", self.rec_noise_std, 0.0, None)
        check_float(o, "dt", self.dt, 0.0, None, low_inclusive=False)


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


class GRU(_Gated):
    """K GRU networks (state ``[K, B, H]``); see module docstring for the equations."""

    config_class = GRUConfig
    model_name = "gru"
    n_gates = 3

    @property
    def n_units(self) -> int:
        return self.hidden_size

    def step_drive(self, h, drive, params, noise=None):
        H = self.hidden_size
        gh = torch.baddbmm(self.b_hh[:, None, :], h, params["W_hh_T"])
        r = torch.sigmoid(drive[..., :H] + gh[..., :H])
        z = torch.sigmoid(drive[..., H : 2 * H] + gh[..., H : 2 * H])
        n = torch.tanh(drive[..., 2 * H :] + r * gh[..., 2 * H :])
        h_new = n + z * (h - n)
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
        H = self.hidden_size
        hid, c = h[..., :H], h[..., H:]
        gates = drive + torch.baddbmm(self.b_hh[:, None, :], hid, params["W_hh_T"])
        i = torch.sigmoid(gates[..., :H])
        f = torch.sigmoid(gates[..., H : 2 * H])
        g = torch.tanh(gates[..., 2 * H : 3 * H])
        o = torch.sigmoid(gates[..., 3 * H :])
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        if noise is not None:
            h_new = h_new + noise[..., :H]
        return torch.cat([h_new, c_new], dim=-1)
