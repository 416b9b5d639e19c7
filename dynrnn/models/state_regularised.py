"""State-regularised recurrent networks (Wang & Niepert 2019), batched over K networks.

Wang, C. & Niepert, M. (2019). State-regularized recurrent neural networks. *Proceedings of the
36th International Conference on Machine Learning (ICML)*, PMLR 97, 6596-6606.

After every step of an ordinary recurrent cell (``u = cell(h, x)``: the GRU of
:func:`dynrnn.functional.gated.gru_step` or the vanilla rate cell of
:func:`dynrnn.functional.rate.rate_step`) the state is pulled towards k learnable centroids
``S = [s_1 .. s_k]`` (``[k, N]``)::

    alpha = softmax(u S^T / temperature)            (a distribution over the k centroids)
    h'    = alpha^T S                               (training: a soft mixture of centroids)
    h'    = s_j,  j = argmax_j alpha_j              (evaluation: one-hot, the most similar)

so that at evaluation time the network visits at most k states and is a finite automaton whose
transitions are ``s_j -> argmax softmax(cell(s_j, x_a) S^T)`` (read off by
:func:`dynrnn.analyses.automaton_from_centroids`). The paper uses k around 50 centroids and 100
hidden units; the temperature is annealed towards 0 during training, which moves the soft
mixture towards the hard, one-hot state. Here the temperature is a per-network buffer
multiplied by ``temperature_decay`` after every optimiser step (in :meth:`project_`, which
:func:`dynrnn.training.train` calls after each step) down to ``temperature_min``.

Soft training optimises the mixture ``alpha^T S``, not the hard dynamics that evaluation runs,
and a network can solve a task with mixtures that its argmax dynamics cannot follow (its hard
states then collapse onto few centroids). The option ``straight_through_temperature`` trains
the hard dynamics themselves with the straight-through estimator (Bengio, Léonard & Courville
2013, "Estimating or propagating gradients through stochastic neurons for conditional
computation", arXiv:1308.3432): while a network's temperature is at or below that value its
training forward pass takes the one-hot ``e_j`` of ``j = argmax alpha`` and its backward pass
the softmax's Jacobian::

    alpha_st = e_j + alpha - stopgrad(alpha)        (value e_j, gradient d alpha)
    h'       = alpha_st^T S                        (value s_j, as in evaluation)

Evaluation vs training is the module's ``training`` flag (``model.eval()`` gives hard states;
the analyses' float64 copies are in evaluation mode). Implemented from the paper's equations
only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._validation import Bool, Choice, Constraint, Float, Int, validate_config
from ..functional.gated import gru_step
from ..functional.nonlin import NONLINEARITIES
from ..functional.rate import rate_step
from .base import RecurrentModel

__all__ = ["StateRegularisedConfig", "StateRegularisedRNN"]


@dataclass(frozen=True)
class StateRegularisedConfig:
    """Configuration of one state-regularised RNN.

    Attributes:
        n_inputs, n_units, n_outputs: sizes I, N (hidden), O (paper: N = 100).
        n_centroids: k (paper: about 50).
        cell: ``"gru"`` or ``"rate"`` (vanilla ``phi(W h + U x + b)``).
        nonlinearity: of the rate cell.
        temperature_init: initial softmax temperature (> 0).
        temperature_min: the annealing floor (> 0, <= ``temperature_init``).
        temperature_decay: factor per optimiser step, in (0, 1] (1 = no annealing).
        straight_through_temperature: while a network's temperature is at or below this
            value (>= 0), training runs the hard argmax dynamics with straight-through
            gradients (see the module docstring); 0 (default) never does (soft training, as in
            the paper); ``temperature_min`` switches it on when annealing ends,
            ``temperature_init`` trains hard from the first step.
        centroid_init: ``"uniform"`` (default): centroids start ``U(-c, c)`` per coordinate;
            ``"sphere"``: uniformly distributed directions, all of norm ``c sqrt(N / 3)`` (the
            root-mean-square norm of the uniform draw). The similarity ``u S^T`` favours long
            centroids, so with unequal norms a few long centroids win every argmax and the hard
            dynamics can start (and stay) on one state; equal norms make the argmax depend on
            direction only.
        centroid_scale: c, the scale of the centroids' initialisation (> 0).
        init_scale: multiplies the cell's default ``U(-1/sqrt(N), 1/sqrt(N))`` initialisation.
        readout_bias: include ``b_out``.
        rec_noise_std: std of Gaussian noise added to the cell output u (``run(noise=True)``).
        dt: the time step the map stands for.
    """

    n_inputs: int
    n_units: int
    n_outputs: int
    n_centroids: int = 50
    cell: str = "gru"
    nonlinearity: str = "tanh"
    temperature_init: float = 1.0
    temperature_min: float = 0.05
    temperature_decay: float = 1.0
    straight_through_temperature: float = 0.0
    centroid_init: str = "uniform"
    centroid_scale: float = 1.0
    init_scale: float = 1.0
    readout_bias: bool = True
    rec_noise_std: float = 0.0
    dt: float = 1.0

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_inputs": Int(0),
        "n_units": Int(1),
        "n_outputs": Int(1),
        "n_centroids": Int(1),
        "cell": Choice(("gru", "rate")),
        "nonlinearity": Choice(NONLINEARITIES),
        "temperature_init": Float(0.0, None, low_inclusive=False),
        "temperature_min": Float(0.0, "temperature_init", low_inclusive=False),
        "temperature_decay": Float(0.0, 1.0, low_inclusive=False),
        "straight_through_temperature": Float(0.0),
        "centroid_init": Choice(("uniform", "sphere")),
        "centroid_scale": Float(0.0, None, low_inclusive=False),
        "init_scale": Float(0.0),
        "readout_bias": Bool(),
        "rec_noise_std": Float(0.0),
        "dt": Float(0.0, None, low_inclusive=False),
    }

    def __post_init__(self):
        validate_config(self)


class StateRegularisedRNN(RecurrentModel):
    """K state-regularised RNNs (see the module docstring); state ``[K, B, N]``.

    Parameters (leading dim K): the cell's (GRU: ``W_ih [K, 3N, I]``, ``W_hh [K, 3N, N]``,
    ``b_ih``, ``b_hh [K, 3N]``; rate: ``W_rec [K, N, N]``, ``W_in [K, N, I]``, ``b [K, N]``),
    ``centroids [K, k, N]``, ``W_out [K, O, N]``, ``b_out [K, O]``; buffers ``temperature [K]``,
    ``temperature_min [K]``, ``temperature_decay [K]``, ``straight_through_temperature [K]``,
    ``rec_noise_std [K]``.
    """

    config_class = StateRegularisedConfig
    model_name = "state_regularised_rnn"
    structural_fields = ("n_inputs", "n_units", "n_outputs", "n_centroids", "cell",
                         "nonlinearity", "readout_bias")
    #: networks stored before the straight-through option load with it off (0)
    optional_state = ("straight_through_temperature",)

    def trainable_names(self):
        cell = (("W_ih", "W_hh", "b_ih", "b_hh") if self.configs[0].cell == "gru"
                else ("W_rec", "W_in", "b"))
        return cell + ("centroids", "W_out") + (
            ("b_out",) if self.configs[0].readout_bias else ())

    def _init_network(self, c: StateRegularisedConfig, g: torch.Generator):
        N, I, O, k = c.n_units, c.n_inputs, c.n_outputs, c.n_centroids
        bound = c.init_scale / math.sqrt(N)

        def u(*shape, b=bound):
            return ((torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * b).float()

        if c.cell == "gru":
            params = {"W_ih": u(3 * N, I), "W_hh": u(3 * N, N), "b_ih": u(3 * N),
                      "b_hh": u(3 * N)}
        else:
            params = {"W_rec": torch.randn(N, N, generator=g, dtype=torch.float64).float()
                      * (c.init_scale / math.sqrt(N)),
                      "W_in": u(N, I, b=1 / math.sqrt(max(I, 1))), "b": torch.zeros(N)}
        if c.centroid_init == "uniform":
            centroids = u(k, N, b=c.centroid_scale)
        else:
            d = torch.randn(k, N, generator=g, dtype=torch.float64)
            centroids = (d / d.norm(dim=1, keepdim=True).clamp(min=1e-12)
                         * (c.centroid_scale * math.sqrt(N / 3))).float()
        params.update({
            "centroids": centroids,
            "W_out": u(O, N, b=1 / math.sqrt(N)),
            "b_out": torch.zeros(O),
            "temperature": torch.tensor(float(c.temperature_init)),
            "temperature_min": torch.tensor(float(c.temperature_min)),
            "temperature_decay": torch.tensor(float(c.temperature_decay)),
            "straight_through_temperature": torch.tensor(float(c.straight_through_temperature)),
            "rec_noise_std": torch.tensor(float(c.rec_noise_std)),
        })
        return params

    @property
    def n_units(self) -> int:
        return int(self.config.n_units)

    @property
    def n_centroids(self) -> int:
        return int(self.config.n_centroids)

    def prepare(self):
        if self.config.cell == "gru":
            return {"W_hh_T": self.W_hh.transpose(1, 2), "S_T": self.centroids.transpose(1, 2)}
        return {"W_T": self.W_rec.transpose(1, 2), "S_T": self.centroids.transpose(1, 2)}

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """``W_ih x + b_ih`` (GRU, ``[K, B, (T,) 3N]``) or ``U x + b`` (rate, ``[..., N]``)."""
        K = self.n_networks
        W, b = (self.W_ih, self.b_ih) if self.config.cell == "gru" else (self.W_in, self.b)
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], math.prod(lead[1:]), x.shape[-1])
        out = torch.matmul(flat, W.transpose(1, 2)) + b[:, None, :]
        return out.reshape(K, *lead[1:], W.shape[1])

    def cell_step(self, h, drive, params, noise=None) -> torch.Tensor:
        """The unregularised cell ``u = cell(h, x)`` ``[K, B, N]`` (noise added to u)."""
        if self.config.cell == "gru":
            u = gru_step(h, drive, params["W_hh_T"], self.b_hh)
        else:
            u = rate_step(h, drive, params["W_T"], None, self.config.nonlinearity, "inside")
        return u if noise is None else u + noise

    def centroid_weights(self, u: torch.Tensor, params=None) -> torch.Tensor:
        """``alpha = softmax(u S^T / temperature)`` ``[K, B, k]`` from ``u [K, B, N]``."""
        S_T = self.centroids.transpose(1, 2) if params is None else params["S_T"]
        logits = torch.bmm(u, S_T) / self.temperature[:, None, None]
        return torch.softmax(logits, -1)

    def step_drive(self, h, drive, params, noise=None):
        """Cell step, then ``alpha^T S`` (training), the argmax centroid with straight-through
        gradients (training at temperatures <= ``straight_through_temperature``) or the argmax
        centroid (evaluation)."""
        u = self.cell_step(h, drive, params, noise)
        if self.training:
            alpha = self.centroid_weights(u, params)
            hard = self.temperature <= self.straight_through_temperature  # [K]
            if bool(hard.any()):
                one_hot = torch.nn.functional.one_hot(alpha.argmax(-1), alpha.shape[-1])
                st = one_hot.to(alpha.dtype) + alpha - alpha.detach()
                alpha = torch.where(hard[:, None, None], st, alpha)
            return torch.bmm(alpha, self.centroids)
        idx = torch.bmm(u, params["S_T"]).argmax(-1)  # [K, B]: argmax alpha (any temperature)
        return self.centroids.gather(1, idx[..., None].expand(-1, -1, self.n_units))

    def centroid_transitions(self, symbol_inputs: torch.Tensor):
        """The automaton on the centroids (evaluation mode, hard states).

        Arguments:
            symbol_inputs: ``[A, I]``, the input vector of each symbol.

        Returns:
            ``(next [K, k + 1, A] long, outputs [K, k + 1, O])``: rows ``0 .. k-1`` start at the
            centroids, row k at the initial state (zeros); ``next[:, j, a]`` is the argmax
            centroid after one step from row j with symbol a; ``outputs`` the readout at each
            row's state.
        """
        A, k = symbol_inputs.shape[0], self.n_centroids
        h = torch.cat([self.centroids, self.init_state(1)], 1)  # [K, k+1, N]
        params = self.prepare()
        nxt = []
        for a in range(A):
            x = symbol_inputs[a].to(h.dtype).expand(1, k + 1, -1)
            u = self.cell_step(h, self.input_drive(x), params)
            nxt.append(torch.bmm(u, params["S_T"]).argmax(-1))
        return torch.stack(nxt, -1), self.readout(h)

    def set_temperature(self, value: float | torch.Tensor) -> None:
        """Set every network's temperature (a float or ``[K]``)."""
        with torch.no_grad():
            self.temperature.copy_(torch.as_tensor(value, dtype=self.temperature.dtype)
                                   .expand_as(self.temperature))

    def project_(self) -> None:
        """Anneal: ``temperature <- max(temperature_min, temperature * temperature_decay)``
        (called by :func:`dynrnn.training.train` after every optimiser step)."""
        with torch.no_grad():
            self.temperature.copy_(torch.maximum(self.temperature_min,
                                                 self.temperature * self.temperature_decay))
