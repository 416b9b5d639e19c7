"""Networks that :func:`~dynrnn.training.hlop.train_continual` can protect with HLOP.

Protocol (:class:`_HLOPNet`): ``forward(inputs [B, T, I] or [B, I]) -> (logits [B, C],
activities)`` where ``activities`` holds the presynaptic activity ``[..., n_l]`` of every projected
layer, and ``hlop_layers() -> [(weight, bias or None), ...]`` in the same order.

* :class:`MLP` -- feed-forward rate network;
* :class:`SpikingMLP` -- leaky integrate-and-fire layers, surrogate-gradient BPTT, readout of the
  spike rates;
* :class:`HLOPRateRNN` -- a :class:`~dynrnn.models.RateRNN` whose input, recurrent and readout
  weight updates are projected with subspaces of the input, the previous state and the read-out
  state.

Each network is *one* network (no network dimension K): the HLOP state
(:class:`~dynrnn.training.hlop.HLOP`) holds the subspaces of one network's layers, and projecting
K independent networks would need K sets of subspaces, each learned from its own network's
activity (``H [K, L, M, n]``, not built). Why each one is, or is not, a protocol model
(:class:`~dynrnn.models.RecurrentModel`) is stated in its docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..._validation import check_bool, check_choice, check_float, check_int, resolve_generator

__all__ = ["MLP", "SpikingMLP", "HLOPRateRNN"]


def _with_one(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


class _HLOPNet(nn.Module):
    """Protocol: ``forward(inputs [B, T, I]) -> (logits [B, C], activities list[[.., n_l]])``
    and ``hlop_layers() -> list[(weight, bias | None)]`` in the same order; ``layer_sizes``."""

    def hlop_layers(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        raise NotImplementedError

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(
            w.shape[-1] + (1 if b is not None else 0) for w, b in self.hlop_layers()
        )


def _linear_stack(sizes, bias, g) -> nn.ModuleList:
    layers = nn.ModuleList()
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(a, b, bias=bias)
        bound = 1 / math.sqrt(a)
        with torch.no_grad():
            lin.weight.copy_((torch.rand(b, a, generator=g) * 2 - 1) * bound)
            if bias:
                lin.bias.copy_((torch.rand(b, generator=g) * 2 - 1) * bound)
        layers.append(lin)
    return layers


def _check_sizes(owner: str, sizes) -> tuple[int, ...]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(
            f"The 'sizes' parameter of {owner} must be a sequence of >= 2 ints >= 1 "
            f"(input, hidden..., output). Got {sizes!r} instead."
        )
    return tuple(check_int(owner, "sizes", s, 1) for s in sizes)


class MLP(_HLOPNet):
    """Feed-forward rate network with layer sizes ``sizes`` (input ``sizes[0]``, output
    ``sizes[-1]``), every layer projectable.

    Arguments:
        sizes: layer widths (input, hidden..., classes).
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: include biases (projected as weights of a constant input).
        seed: initialisation seed.

    ``forward(inputs)`` takes ``[B, I]`` or ``[B, T, I]`` (the last step is used) and returns
    ``(logits [B, C], [x_0, ..., x_{L-1}])`` where ``x_l`` is the presynaptic activity of layer l
    (``[B, n_l]``, with a trailing 1 where the layer has a bias).

    Not a protocol model (:class:`~dynrnn.models.RecurrentModel`): a feed-forward network has no
    state carried from one time step to the next, so there is no map ``h_{t+1} = F(h_t, x_t)``,
    no ``init_state`` and no Jacobian of a step for the analyses to use; it maps one input
    pattern to logits. No network dimension K: see the module docstring.
    """

    def __init__(self, sizes: Sequence[int], nonlinearity: str = "tanh", bias: bool = True,
                 *, seed: int | torch.Generator | None = 0):
        super().__init__()
        self.sizes = _check_sizes("MLP", sizes)
        self.nonlinearity = check_choice("MLP", "nonlinearity", nonlinearity, ("tanh", "relu"))
        self.bias = check_bool("MLP", "bias", bias)
        self.layers = _linear_stack(self.sizes, self.bias, resolve_generator(seed))

    def hlop_layers(self):
        return [(lin.weight, lin.bias) for lin in self.layers]

    def forward(self, inputs: torch.Tensor):
        x = inputs[:, -1] if inputs.ndim == 3 else inputs
        f = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        acts = []
        for i, lin in enumerate(self.layers):
            acts.append((_with_one(x) if self.bias else x).detach())
            x = lin(x)
            if i < len(self.layers) - 1:
                x = f(x)
        return x, acts


class _SpikeFn(torch.autograd.Function):
    """Heaviside spike with the fast-sigmoid surrogate ``1 / (1 + slope |v|)^2``."""

    @staticmethod
    def forward(ctx, v, slope):
        ctx.save_for_backward(v)
        ctx.slope = slope
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * v.abs()).pow(2), None


class SpikingMLP(_HLOPNet):
    """Leaky integrate-and-fire network trained by surrogate-gradient BPTT, rate-coded readout.

    Hidden layer l: ``u_t = beta u_{t-1} (1 - s_{t-1}) + W_l x_t``, ``s_t = H(u_t - threshold)``
    (reset to zero after a spike); the input pattern is presented as a constant current for
    ``n_steps`` steps, and the logits are the readout of the last hidden layer's spike *rates*,
    ``W_out mean_t(s_t) + b``. The presynaptic activity of every layer is reported at every time
    step (``[B * n_steps, n_l]``) because the BPTT update is ``sum_t delta_t x_t^T``.

    Not a protocol model (:class:`~dynrnn.models.RecurrentModel`), although its layers carry
    state across the ``n_steps`` steps: (1) its output is not a readout of a state, ``y_t =
    readout(h_t)``, but of the whole trajectory (``W_out mean_t(s_t)``, the spike rate over the
    presentation), so the protocol's per-step ``readout`` and ``run``'s outputs would not be the
    logits; (2) the input is one static pattern presented for a fixed number of steps from a zero
    state, not a sequence ``x [B, T, I]``; (3) the step map is piecewise constant in the state
    (the Heaviside spike), so its Jacobian is zero almost everywhere -- the surrogate derivative
    that training uses is not the derivative of the map -- and the protocol's ``jacobian`` (fixed
    points, linearisation, Lyapunov spectra) would say nothing about it. Spiking dynamics that
    analyses do apply to are :class:`~dynrnn.models.IzhikevichReservoir`. No network dimension
    K: see the module docstring.

    Arguments:
        sizes: layer widths (input, hidden..., classes); at least one hidden layer.
        n_steps: simulation steps per pattern.
        beta: membrane decay per step in (0, 1].
        threshold: firing threshold.
        slope: steepness of the surrogate derivative.
        bias: include biases.
        seed: initialisation seed.
    """

    def __init__(self, sizes: Sequence[int], n_steps: int = 6, beta: float = 0.8,
                 threshold: float = 0.5, slope: float = 5.0, bias: bool = True,
                 *, seed: int | torch.Generator | None = 0):
        super().__init__()
        o = "SpikingMLP"
        self.sizes = _check_sizes(o, sizes)
        if len(self.sizes) < 3:
            raise ValueError(
                f"The 'sizes' parameter of {o} needs at least one hidden layer. Got {sizes!r} "
                "instead."
            )
        self.n_steps = check_int(o, "n_steps", n_steps, 1)
        self.beta = check_float(o, "beta", beta, 0.0, 1.0, low_inclusive=False)
        self.threshold = check_float(o, "threshold", threshold, 0.0, None, low_inclusive=False)
        self.slope = check_float(o, "slope", slope, 0.0, None, low_inclusive=False)
        self.bias = check_bool(o, "bias", bias)
        self.layers = _linear_stack(self.sizes, self.bias, resolve_generator(seed))

    def hlop_layers(self):
        return [(lin.weight, lin.bias) for lin in self.layers]

    def forward(self, inputs: torch.Tensor, return_rates: bool = False):
        x = inputs[:, -1] if inputs.ndim == 3 else inputs
        B, T = x.shape[0], self.n_steps
        hidden = self.layers[:-1]
        drive0 = hidden[0](x)  # constant input current, computed once
        u = [torch.zeros(B, lin.out_features, dtype=x.dtype, device=x.device) for lin in hidden]
        s = [torch.zeros_like(v) for v in u]
        pre = [[] for _ in hidden[1:]]  # presynaptic spikes of hidden layers 1..
        last = []
        for _ in range(T):
            inp = x
            for i, lin in enumerate(hidden):
                if i > 0:
                    pre[i - 1].append(inp)
                cur = drive0 if i == 0 else lin(inp)
                u[i] = self.beta * u[i] * (1 - s[i]) + cur
                s[i] = _SpikeFn.apply(u[i] - self.threshold, self.slope)
                inp = s[i]
            last.append(inp)
        rates = torch.stack(last).mean(0)
        logits = self.layers[-1](rates)
        # layer 0 sees the constant x (its BPTT update is (sum_t delta_t) x^T); hidden layers
        # see spikes at every step; the readout sees the rates.
        acts = [x.detach()] + [torch.stack(q, 1).detach() for q in pre] + [rates.detach()]
        if self.bias:
            acts = [_with_one(a) for a in acts]
        if return_rates:
            return logits, acts, rates
        return logits, acts


class HLOPRateRNN(_HLOPNet):
    """A single :class:`~dynrnn.models.RateRNN` classifying at the last step, HLOP-projectable.

    Projected layers: input ``(W_in, b)`` on ``[x_t, 1]``, recurrent ``W_rec`` on ``h_{t-1}``,
    readout ``(W_out, b_out)`` on ``[h_T, 1]``.

    The dynamical system is already a protocol model: :attr:`rnn` is a
    :class:`~dynrnn.models.RateRNN` (a :class:`~dynrnn.models.RecurrentModel` with K = 1), which
    this class only adapts to the HLOP protocol (logits = the output at the last step; the
    presynaptic activity of the three projected layers). Pass ``net.rnn`` to any analysis, the
    zoo or :func:`dynrnn.models.run`. It is not itself a RecurrentModel because it adds no
    dynamics and a second class with the same parameters would only duplicate RateRNN. K = 1
    because one :class:`~dynrnn.training.hlop.HLOP` holds one network's subspaces (see the
    module docstring); Dale's law, a zeroed diagonal and trained time constants are rejected
    because their weight transforms do not commute with the projection.

    Arguments:
        config: a :class:`~dynrnn.models.RateRNNConfig` (``n_outputs`` = classes).
        seed: initialisation seed.
        backend: simulation backend of :func:`dynrnn.models.run` (``"reference"`` by default).
    """

    def __init__(self, config, *, seed: int = 0, backend: str = "reference"):
        super().__init__()
        from ...models.rate import RateRNN, RateRNNConfig

        if not isinstance(config, RateRNNConfig):
            raise ValueError(
                "The 'config' parameter of HLOPRateRNN must be a RateRNNConfig. Got "
                f"{type(config).__name__} instead."
            )
        if config.dale or config.zero_diagonal or config.train_tau:
            raise ValueError(
                "The 'config' parameter of HLOPRateRNN must have dale=False, "
                "zero_diagonal=False and train_tau=False (their weight transforms do not "
                "commute with the projection)."
            )
        self.rnn = RateRNN(config, seed=seed)
        self.backend = backend

    def hlop_layers(self):
        r, c = self.rnn, self.rnn.config
        return [
            (r.W_in, r.b if c.bias else None),
            (r.W_rec, None),
            (r.W_out, r.b_out if c.readout_bias else None),
        ]

    def forward(self, inputs: torch.Tensor):
        from ...models.base import run

        c = self.rnn.config
        h0 = self.rnn.init_state(inputs.shape[0]).to(inputs)  # [1, B, N]
        states, outputs = run(self.rnn, inputs, h0, backend=self.backend)  # [1, B, T, N]
        h = states[0]
        prev = torch.cat([h0[0][:, None], h[:, :-1]], dim=1).detach()
        x = inputs.detach()
        last = h[:, -1].detach()
        acts = [
            _with_one(x) if c.bias else x,
            prev,
            _with_one(last) if c.readout_bias else last,
        ]
        return outputs[0, :, -1], acts
