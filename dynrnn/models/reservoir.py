"""Leaky echo-state network (rate reservoir), the rate counterpart of the Izhikevich reservoir.

Map (Jaeger 2001; leaky integrator form of Jaeger et al. 2007)::

    h_t = (1 - a) h_{t-1} + a tanh(W h_{t-1} + W_in x_t + b + W_fb y_{t-1} + noise_t)
    y_t = W_out h_t (+ b_out)

``W`` is sparse random (density p, Gaussian non-zeros) rescaled to the given spectral radius,
``W_in`` and ``b`` are ``U(-1, 1)`` times the input and bias scalings, ``W_fb`` ``U(-1, 1)`` times
the feedback scaling. ``W_out`` starts at zero and is set by the readout rules of
:mod:`dynrnn.training.readouts` (ridge, FORCE, three-factor).

Without feedback, :func:`dynrnn.models.run` uses a compiled C loop with sparse ``W`` for all K
networks in one call (:func:`dynrnn.kernels.esn.esn_loop`: trials one at a time with vector
gathers, or several trajectories in lockstep, including one long trial cut into time chunks
that are checked against each other); it agrees with the reference loop to rounding
(summation order and libmvec's ``tanh``).

ESN runs show no progress bar. They go through :func:`~dynrnn.models.run`, the one simulation
loop, which is also the inner loop of training and of the analyses and so reports nothing; its
C loop runs all T steps of a network in one call, and cutting that call into chunks for a bar
would rebuild the SELL-C copy of ``W`` at every chunk (measured: the work of ~60-80 steps, 4 ms
at N = 500 and 90 ms at N = 2000). The loops that learn a readout while the reservoir runs
(:func:`dynrnn.training.force_train`) and the spiking reservoir's
:meth:`~dynrnn.models.IzhikevichReservoir.simulate` do show one.
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
    resolve_generator,
    validate_config,
)
from ..kernels.esn import esn_available, esn_loop
from .base import RecurrentModel

__all__ = ["EchoStateConfig", "EchoStateNetwork"]


@dataclass(frozen=True)
class EchoStateConfig:
    """One echo-state network.

    Arguments:
        n_units: reservoir size N.
        n_inputs, n_outputs: I and O.
        spectral_radius: largest ``|eigenvalue|`` of W (> 0); < 1 is usual, ~1.5 for FORCE (chaotic
            reservoir tamed by the feedback).
        leak: a in (0, 1] (1 = no leak).
        input_scaling, bias_scaling, feedback_scaling: scales of ``W_in``, ``b``, ``W_fb``.
        density: fraction of non-zero recurrent weights p in (0, 1].
        noise_std: std of the state noise added inside the tanh when ``run(noise=True)``.
        init_std: std of the Gaussian initial state of ``init_state`` (0 = zeros).
        readout_bias: whether the readout has a bias ``b_out``.
    """

    n_units: int = 500
    n_inputs: int = 1
    n_outputs: int = 1
    spectral_radius: float = 0.9
    leak: float = 1.0
    input_scaling: float = 1.0
    bias_scaling: float = 0.0
    feedback_scaling: float = 0.0
    density: float = 0.1
    noise_std: float = 0.0
    init_std: float = 0.0
    readout_bias: bool = False

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_units": Int(1),
        "n_inputs": Int(0),
        "n_outputs": Int(0),
        "spectral_radius": Float(0.0, 100.0, low_inclusive=False),
        "leak": Float(0.0, 1.0, low_inclusive=False),
        "input_scaling": Float(0.0, 1e6),
        "bias_scaling": Float(0.0, 1e6),
        "feedback_scaling": Float(0.0, 1e6),
        "density": Float(0.0, 1.0, low_inclusive=False),
        "noise_std": Float(0.0, 1e6),
        "init_std": Float(0.0, 1e6),
        "readout_bias": Bool(),
    }

    def __post_init__(self):
        validate_config(self)


class EchoStateNetwork(RecurrentModel):
    """K echo-state networks (buffers ``W [K, N, N]``, ``W_in [K, N, I]``, ``b [K, N]``,
    ``W_fb [K, N, O]``, ``W_out [K, O, N]``, ``b_out [K, O]``, ``leak [K]``)."""

    config_class = EchoStateConfig
    model_name = "esn"
    structural_fields = ("n_units", "n_inputs", "n_outputs", "readout_bias")

    def _init_network(self, cfg: EchoStateConfig, gen: torch.Generator):
        n, f64 = cfg.n_units, torch.float64
        W = torch.randn(n, n, generator=gen, dtype=f64)
        if cfg.density < 1.0:
            W = W * (torch.rand(n, n, generator=gen, dtype=f64) < cfg.density)
        rho = torch.linalg.eigvals(W).abs().max().item() if n > 1 else abs(W.item())
        W = W * (cfg.spectral_radius / rho) if rho > 0 else W
        out = {
            "W": W,
            "W_in": cfg.input_scaling
            * (2 * torch.rand(n, cfg.n_inputs, generator=gen, dtype=f64) - 1),
            "b": cfg.bias_scaling * (2 * torch.rand(n, generator=gen, dtype=f64) - 1),
            "W_fb": cfg.feedback_scaling
            * (2 * torch.rand(n, cfg.n_outputs, generator=gen, dtype=f64) - 1),
            "W_out": torch.zeros(cfg.n_outputs, n, dtype=f64),
            "b_out": torch.zeros(cfg.n_outputs, dtype=f64),
            "leak": torch.tensor(cfg.leak, dtype=f64),
            "rec_noise_std": torch.tensor(cfg.noise_std, dtype=f64),
            "init_std": torch.tensor(cfg.init_std, dtype=f64),
        }
        return {k: v.to(torch.get_default_dtype()) for k, v in out.items()}

    @property
    def n_units(self) -> int:
        return int(self.config.n_units)

    def init_state(self, batch_size, generator=None):
        """Zeros, or ``N(0, init_std^2)`` per network where ``init_std > 0``."""
        h = super().init_state(batch_size)
        if bool((self.init_std > 0).any()):
            gen = resolve_generator(generator if generator is not None else 0)
            z = torch.randn(h.shape, generator=gen, dtype=h.dtype)
            h = h + z * self.init_std.to(h.dtype)[:, None, None]
        return h

    def has_feedback(self) -> bool:
        return self.n_outputs > 0 and bool((self.W_fb != 0).any())

    def prepare(self):
        return {
            "W_T": self.W.transpose(1, 2),
            "W_out_T": self.W_out.transpose(1, 2),
            "W_fb_T": self.W_fb.transpose(1, 2) if self.has_feedback() else None,
            "leak": self.leak[:, None, None],
        }

    def input_drive(self, x):
        """``W_in x + b``: ``x [K or 1, B, (T,) I]`` -> ``[K, B, (T,) N]``."""
        K = self.n_networks
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], math.prod(lead[1:]), x.shape[-1]).expand(K, -1, -1)
        drive = torch.bmm(flat, self.W_in.transpose(1, 2)) + self.b[:, None, :]
        return drive.reshape(K, *lead[1:], self.n_units)

    def step_drive(self, h, drive, params, noise=None):
        pre = torch.baddbmm(drive, h, params["W_T"])
        if params["W_fb_T"] is not None:
            y = torch.bmm(h, params["W_out_T"])
            if self.config.readout_bias:
                y = y + self.b_out[:, None, :]
            pre = pre + torch.bmm(y, params["W_fb_T"])
        if noise is not None:
            pre = pre + noise
        a = params["leak"]
        return h + a * (torch.tanh(pre) - h)

    def has_fused_loop(self) -> bool:
        return (
            not self.has_feedback()
            and not torch.is_grad_enabled()
            and self.device.type == "cpu"
            and self.dtype in (torch.float32, torch.float64)
            and esn_available(self.dtype)
        )

    def fused_loop(self, h0, x, noise, backend: str = "auto"):
        """All K networks in one call of the C loop with sparse (SELL-C-sigma) ``W``
        (:func:`dynrnn.kernels.esn.esn_loop`); the input projection is done inside the loop, so
        no ``[K, T, B, N]`` drive is written. ``h0 [K, B, N]``, ``x [K or 1, T, B, I]``, noise
        ``[K, T, B, N]`` or None -> ``(states [K, T, B, N], outputs [K, T, B, O])``.
        ``backend``: ``"auto"`` or ``"cpu"`` (the only fused loop is the C loop)."""
        S = esn_loop(h0, x, self.W_in, self.b, self.W, self.leak, noise)
        if S is None:
            raise RuntimeError("The compiled echo-state loop is not available.")
        return S, self.readout(S)

    def spectral_radius(self) -> torch.Tensor:
        """Largest ``|eigenvalue|`` of each network's W, ``[K]``."""
        return torch.linalg.eigvals(self.W).abs().amax(-1)
