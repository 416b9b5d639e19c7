"""Leaky rate RNN with per-neuron trainable time constants (batched over K networks).

Two update forms (Khajehabdollahi et al., ICLR 2024), with ``alpha = 1 / tau``
per neuron and ``a = W h + U x + b`` (plus noise):

* ``leak_form="inside"``:  ``h' = phi((1 - alpha) h + alpha a)`` (the paper's main form);
* ``leak_form="outside"``: ``h' = (1 - alpha) h + alpha phi(a)`` (the classic rate-RNN Euler step).

With ``tau = 1`` both reduce to the vanilla RNN ``h' = phi(W h + U x + b)`` (``torch.nn.RNN``).
tau is clamped to ``>= tau_min`` (1 by default) in the forward pass, and the stored parameter is
projected back after each optimiser step (:meth:`RateRNN.project_`).

Options: Dale's law (``dale=True``: columns of W are excitatory or inhibitory,
``W_eff = |W_raw| * sign``), zeroed recurrent diagonal, recurrent and input noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import (
    Bool,
    Choice,
    Constraint,
    Float,
    Int,
    check_int,
    resolve_generator,
    validate_config,
)
from ..functional.nonlin import NONLINEARITIES
from ..functional.rate import rate_cell_jacobian, rate_preactivation, rate_step
from .base import RecurrentModel

__all__ = ["RateRNNConfig", "RateRNN"]


@dataclass(frozen=True)
class RateRNNConfig:
    """Configuration of one leaky rate RNN.

    Attributes:
        n_inputs, n_units, n_outputs: sizes I, N, O.
        nonlinearity: one of ``tanh, relu, leaky_relu, softplus, sigmoid, identity``.
        leak_form: ``"inside"`` or ``"outside"`` (see module docstring).
        tau_init: tau0; initial tau = tau0 + tau_jitter * U(0, 1) per neuron (paper: jitter 1).
        tau_jitter: width of the uniform jitter of the initial tau.
        train_tau: make tau a trainable parameter.
        tau_min: lower clamp of tau (paper: 1).
        init_gain: g; W ~ N(0, g^2 / N) (for Dale: ``|N(0, g^2/N)|`` with balanced E/I columns).
        zero_diagonal: keep the recurrent diagonal at 0 (paper's parity networks).
        dale: Dale's law with a fraction ``frac_excitatory`` of excitatory units.
        bias, readout_bias: include the biases b and b_out.
        rec_noise_std: std of Gaussian noise added to ``a`` each step when ``run(noise=True)``.
        input_noise_std: std of Gaussian noise added to the inputs when ``run(noise=True)``.
        h0_scale: initial state ``h0_scale * U(0, 1)`` per unit and trial (paper: 0.1); 0 -> zeros.
        dt: the time step the map stands for (used only to express time in seconds).
        readout_scale: multiplier m of the readout, ``y = m W_out h + b_out`` (feature-learning
            strength, "lazy vs rich": see ``dynrnn.analyses.readout_multiplier``); 1 = plain.
    """

    n_inputs: int
    n_units: int
    n_outputs: int
    nonlinearity: str = "tanh"
    leak_form: str = "inside"
    tau_init: float = 1.0
    tau_jitter: float = 0.0
    train_tau: bool = False
    tau_min: float = 1.0
    init_gain: float = 1.0
    zero_diagonal: bool = False
    dale: bool = False
    frac_excitatory: float = 0.8
    bias: bool = True
    readout_bias: bool = True
    rec_noise_std: float = 0.0
    input_noise_std: float = 0.0
    h0_scale: float = 0.0
    dt: float = 1.0
    readout_scale: float = 1.0

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_inputs": Int(0),
        "n_units": Int(1),
        "n_outputs": Int(1),
        "nonlinearity": Choice(NONLINEARITIES),
        "leak_form": Choice(("inside", "outside")),
        "tau_min": Float(0.0, None, low_inclusive=False),
        "tau_init": Float("tau_min", None),
        "tau_jitter": Float(0.0),
        "train_tau": Bool(),
        "init_gain": Float(0.0),
        "zero_diagonal": Bool(),
        "dale": Bool(),
        "frac_excitatory": Float(0.0, 1.0),
        "bias": Bool(),
        "readout_bias": Bool(),
        "rec_noise_std": Float(0.0),
        "input_noise_std": Float(0.0),
        "h0_scale": Float(0.0),
        "dt": Float(0.0, None, low_inclusive=False),
        "readout_scale": Float(0.0, None, low_inclusive=False),
    }

    def __post_init__(self):
        validate_config(self)

    def _check_relations(self):
        if self.dale and self.nonlinearity in ("tanh", "identity"):
            raise ValueError(
                f"The 'dale' parameter of {type(self).__name__} needs non-negative rates; use a "
                f"nonlinearity from ('relu', 'softplus', 'sigmoid', 'leaky_relu'), not "
                f"{self.nonlinearity!r}."
            )

    @property
    def n_excitatory(self) -> int:
        return int(round(self.frac_excitatory * self.n_units))


def _uniform(shape, bound, g):
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).mul(bound).float()


class RateRNN(RecurrentModel):
    """K leaky rate RNNs run as one batched computation.

    Arguments:
        config: a :class:`RateRNNConfig` (shared by all networks) or one config per network
            (structural fields must agree; init gain, tau init, noise levels may differ).
        n_networks: K, when ``config`` is a single config.
        seed: network k is initialised with seed ``seed + k``, so network k of an ensemble is
            identical to ``RateRNN(config, seed=seed + k)``.
        seeds: explicit per-network seeds (overrides ``seed``).

    Parameters (leading dim K): ``W_rec [K, N, N]``, ``W_in [K, N, I]``, ``b [K, N]``,
    ``W_out [K, O, N]``, ``b_out [K, O]``, ``tau [K, N]``; buffers ``sign [K, N]`` (Dale column
    signs), ``diag_mask [K, N, N]``, noise levels ``[K]``.
    """

    config_class = RateRNNConfig
    model_name = "rate_rnn"
    structural_fields = (
        "n_inputs",
        "n_units",
        "n_outputs",
        "nonlinearity",
        "leak_form",
        "train_tau",
        "zero_diagonal",
        "dale",
        "frac_excitatory",
        "bias",
        "readout_bias",
    )

    def trainable_names(self):
        names = ["W_rec", "W_in", "W_out"]
        if self.configs[0].bias:
            names.append("b")
        if self.configs[0].readout_bias:
            names.append("b_out")
        if self.configs[0].train_tau:
            names.append("tau")
        return tuple(names)

    def _init_network(self, c: RateRNNConfig, g: torch.Generator) -> dict[str, torch.Tensor]:
        N, I, O = c.n_units, c.n_inputs, c.n_outputs
        W = torch.randn(N, N, generator=g, dtype=torch.float64).float() * (
            c.init_gain / math.sqrt(N)
        )
        sign = torch.ones(N)
        if c.dale:
            ne = c.n_excitatory
            sign[ne:] = -1.0
            W = W.abs()
            if 0 < ne < N:  # balance: total inhibition equals total excitation on average
                W[:, ne:] *= ne / (N - ne)
        diag_mask = torch.ones(N, N)
        if c.zero_diagonal:
            diag_mask.fill_diagonal_(0.0)
            W = W * diag_mask
        tau = c.tau_init + c.tau_jitter * torch.rand(N, generator=g, dtype=torch.float64).float()
        return {
            "W_rec": W,
            "W_in": _uniform((N, I), 1 / math.sqrt(max(I, 1)), g),
            "b": torch.zeros(N),
            "W_out": _uniform((O, N), 1 / math.sqrt(N), g),
            "b_out": torch.zeros(O),
            "tau": tau,
            "sign": sign,
            "diag_mask": diag_mask,
            "rec_noise_std": torch.tensor(float(c.rec_noise_std)),
            "input_noise_std": torch.tensor(float(c.input_noise_std)),
            "h0_scale": torch.tensor(float(c.h0_scale)),
            "tau_min": torch.tensor(float(c.tau_min)),
        }

    # ----------------------------------------------------------------- protocol
    @property
    def n_units(self) -> int:
        return int(self.config.n_units)

    def effective_weights(self) -> torch.Tensor:
        """Recurrent weights ``[K, N, N]`` after Dale's law and the diagonal mask."""
        W = self.W_rec
        if self.config.dale:
            W = W.abs() * self.sign[:, None, :]
        if self.config.zero_diagonal:
            W = W * self.diag_mask
        return W

    def weight_layout(self) -> dict[str, torch.Tensor]:
        """The weights by role (see :meth:`RecurrentModel.weight_layout`): ``recurrent`` = the
        effective weights ``[K, N, N]`` (Dale's law and the diagonal mask applied), ``input`` =
        ``W_in [K, N, I]``, ``output`` = ``W_out [K, O, N]`` (before ``readout_scale``), and
        ``bias`` = ``b [K, N]``, ``output_bias`` = ``b_out [K, O]``, ``tau [K, N]`` when the
        config has ``bias``, ``readout_bias``, ``train_tau``."""
        c = self.config
        layout = {"recurrent": self.effective_weights(), "input": self.W_in, "output": self.W_out}
        if c.bias:
            layout["bias"] = self.b
        if c.readout_bias:
            layout["output_bias"] = self.b_out
        if c.train_tau:
            layout["tau"] = self.tau
        return layout

    def alpha(self) -> torch.Tensor | None:
        """``1 / max(tau, tau_min)`` as ``[K, 1, N]``, or None when every tau is exactly 1."""
        if not self.config.train_tau and bool((self.tau == 1).all()):
            return None
        tau = torch.maximum(self.tau, self.tau_min[:, None])
        return (1.0 / tau)[:, None, :]

    def prepare(self) -> dict[str, torch.Tensor]:
        params = {"W_T": self.effective_weights().transpose(1, 2)}
        alpha = self.alpha()
        if alpha is not None:
            params["alpha"] = alpha
        return params

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """``U x + b``: ``[K or 1, B, (T,) I] -> [K, B, (T,) N]``."""
        K = self.n_networks
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], math.prod(lead[1:]), x.shape[-1])
        out = torch.matmul(flat, self.W_in.transpose(1, 2))  # [K, B*T, N] (x broadcast over K)
        if self.config.bias:
            out = out + self.b[:, None, :]
        return out.reshape(K, *lead[1:], self.n_units)

    def step_drive(self, h, drive, params, noise=None):
        """One step (:func:`dynrnn.functional.rate.rate_step`): ``h [K, B, N]``, ``drive = U x
        + b [K, B, N]``, state noise ``[K, B, N]`` added to the pre-activation, or None."""
        c = self.config
        return rate_step(h, drive, params["W_T"], params.get("alpha"), c.nonlinearity,
                         c.leak_form, noise)

    def has_fused_loop(self) -> bool:
        return True

    def _readout_scales(self) -> torch.Tensor | None:
        """Per-network readout multipliers ``[K]``, or None when all are 1."""
        scales = [float(c.readout_scale) for c in self.configs]
        if all(s == 1.0 for s in scales):
            return None
        return torch.tensor(scales, dtype=self.W_out.dtype, device=self.W_out.device)

    def _scaled_readout_weights(self) -> torch.Tensor:
        m = self._readout_scales()
        return self.W_out if m is None else self.W_out * m[:, None, None]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """``y = readout_scale * W_out h + b_out`` (``[K, B, (T,) O]``)."""
        m = self._readout_scales()
        if m is None:
            return super().readout(h)
        h = self._check_readout_state(h)
        K = h.shape[0]
        flat = h.reshape(K, -1, h.shape[-1])
        y = torch.bmm(flat, self._scaled_readout_weights().transpose(1, 2))
        if self.config.readout_bias:
            y = y + self.b_out[:, None, :]
        return y.reshape(*h.shape[:-1], self.n_outputs)

    def fused_loop(self, h0, x, noise):
        from ..kernels.rate_rnn import rate_rnn

        params = self.prepare()
        c = self.config
        return rate_rnn(
            x, h0, self.W_in, self.b if c.bias else torch.zeros_like(self.b), params["W_T"],
            params.get("alpha"), self._scaled_readout_weights(),
            self.b_out if c.readout_bias else torch.zeros_like(self.b_out), noise,
            c.nonlinearity, c.leak_form,
        )

    def init_state(self, batch_size, generator=None):
        batch_size = check_int("init_state", "batch_size", batch_size, 1)
        K, N = self.n_networks, self.n_units
        h = torch.zeros(K, batch_size, N, device=self.device, dtype=self.dtype)
        if bool((self.h0_scale > 0).any()):
            g = resolve_generator(generator, owner="init_state", name="generator")
            u = torch.rand(K, batch_size, N, generator=g, dtype=self.dtype, device=self.device)
            h = u * self.h0_scale.to(self.dtype)[:, None, None]
        return h

    def jacobian(self, h, x=None):
        """Analytic Jacobian ``[K, B, N, N]`` (:func:`dynrnn.functional.rate.rate_cell_jacobian`).

        inside: ``J = diag(phi'(u)) ((1 - alpha) I + alpha W)`` with ``u = (1-alpha) h + alpha a``;
        outside: ``J = (1 - alpha) I + diag(alpha phi'(a)) W``; tau = 1: ``diag(phi'(a)) W``.
        """
        h = self._check_state(h, "jacobian")
        drive = self._drive_for_step(h, x, "jacobian")
        params = self.prepare()
        W = params["W_T"].transpose(1, 2)[:, None]  # [K, 1, N, N]
        a = rate_preactivation(h, drive, params["W_T"])
        c = self.config
        return rate_cell_jacobian(h, a, W, params.get("alpha"), c.nonlinearity, c.leak_form)

    def project_(self) -> None:
        with torch.no_grad():
            if self.config.train_tau:
                self.tau.copy_(torch.maximum(self.tau, self.tau_min[:, None]))
            if self.config.zero_diagonal:
                self.W_rec.mul_(self.diag_mask)

    def perturb_inputs(self, x, generator):
        std = self.input_noise_std
        if not bool((std > 0).any()):
            return x
        x = x.expand(self.n_networks, *x.shape[1:])
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + noise * std.to(x.dtype)[:, None, None, None]
