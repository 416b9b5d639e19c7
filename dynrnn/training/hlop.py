"""Hebbian learning based orthogonal projection (HLOP) for continual learning.

Xiao, Meng, Zhang, He & Lin, "Hebbian learning based orthogonal projection for continual learning
of spiking neural networks", ICLR 2024 (REFERENCES §2).

Each projected layer l (a weight ``W_l [out, n_l]`` acting on presynaptic activity
``x [n_l]``) gets ``M_l`` lateral *subspace neurons* with weights ``H_l [M_l, n_l]``:

* **Hebbian learning** (Oja's subspace rule): ``y = H x``, ``dH = lr * y (x - H^T y)^T``
  (Hebbian ``y x^T`` minus anti-Hebbian ``y y^T H``), averaged over a batch of activity and
  repeated ``n_iters`` times per batch. It drives the rows of ``H`` to an orthonormal basis of the
  principal subspace of the (uncentred) activity ``E[x x^T]``.
* **Orthogonal projection**: while a new task is learned, the weight update of layer l uses the
  presynaptic activity with the old tasks' subspace projected out,
  ``dW = delta (x - H^T H x)^T``. Because a gradient step of a layer is ``sum delta x^T`` (over
  trials and time steps), this is the same as multiplying the gradient by ``P = I - H^T H`` on its
  input side, which is how :meth:`HLOP.project_gradients` applies it. Old inputs ``x_old`` lie
  (almost) in ``span(H)``, so ``dW x_old ~ 0``: old responses are not disturbed.
* **Growth and freezing**: before task t each layer gets ``n_neurons`` new subspace neurons
  (random orthonormal init, orthogonal to the old ones); only they learn (the Oja residual
  ``x - H^T y`` uses *all* neurons, so new neurons pick up the principal subspace of what the old
  ones do not yet explain); after the task they are frozen and join the projection.

The Oja updates of all layers run as one batched computation: the ``H`` of every layer is a slice
of one zero-padded tensor ``[L, M_max, n_max]`` (padding rows and columns stay exactly zero), so
one call of the fused kernel :func:`dynrnn.kernels.hebbian.oja_subspace` (three batched matmuls
per iteration on CPU, Triton on GPU) updates every layer.

Biases are handled exactly by treating them as a weight column on a constant input 1: a layer with
a bias has presynaptic activity ``[x, 1]`` (size ``n_l + 1``).

Convergence and limits (measured with the tests' permuted-pattern tasks): Oja's rule finds the
strong principal directions within a few hundred iterations, but a direction carrying a fraction
``f`` of the activity power needs of the order of ``1 / (lr f)`` iterations; what matters for
forgetting is the activity power left *outside* the frozen subspace (``x - H^T H x`` of old
inputs), which HLOP does not protect. With low-dimensional activity (the default task: >= 98% of
the power in ~20 dims per layer) task-1 accuracy drops by < 2 points over 3-5 tasks; with more
isotropic input noise spread over all dims it grows: ``noise_std=0.3`` gives a 13-point drop
(SGD: 77), and with also ``variation_std=1.0`` a 26-point drop (SGD: 85).

Gradient projection commutes with plain SGD (optionally with momentum, reset at each task); it
does not with Adam's per-element scaling or weight decay, so :func:`train_continual` uses SGD.

Networks: :class:`MLP` (feed-forward rate network), :class:`SpikingMLP` (leaky integrate-and-fire
layers, surrogate-gradient BPTT, readout of the spike rates) and :class:`HLOPRateRNN` (a
:class:`~dynrnn.models.RateRNN` whose input, recurrent and readout weight updates are projected
with subspaces of the input, the previous state and the read-out state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import (
    check_bool,
    check_choice,
    check_finite,
    check_float,
    check_int,
    check_tensor,
    resolve_generator,
)

__all__ = [
    "HLOPConfig",
    "HLOP",
    "MLP",
    "SpikingMLP",
    "HLOPRateRNN",
    "ContinualResult",
    "train_continual",
    "evaluate_accuracy",
    "principal_angles",
]


# ====================================================================== config
@dataclass(frozen=True)
class HLOPConfig:
    """Hyper-parameters of HLOP.

    Attributes:
        n_neurons: subspace neurons added per layer and task (int, or one int per layer).
            Capped at the layer's presynaptic size.
        lr: Oja learning rate (relative to the activity power when ``normalize_lr``; the paper's
            1e-3..1e-2 is the unnormalised rate on its activity scale).
        n_iters: Oja iterations per batch of activity.
        normalize_lr: divide ``lr`` by the mean squared norm of the layer's activity (per layer,
            per batch), so that one ``lr`` is stable for layers of any scale (the step of the
            dominant direction is then at most ``lr``). False: the paper's plain rule.
        hebbian_batches: batches of the finished task's activity used to train the new neurons
            (by :func:`train_continual`).
        hebbian_batch_size: trials per Hebbian batch (None: the training batch size).
    """

    n_neurons: int | tuple[int, ...] = 20
    lr: float = 0.5
    n_iters: int = 20
    normalize_lr: bool = True
    hebbian_batches: int = 100
    hebbian_batch_size: int | None = None

    def __post_init__(self):
        o = type(self).__name__
        if isinstance(self.n_neurons, (list, tuple)):
            if len(self.n_neurons) == 0:
                raise ValueError(
                    f"The 'n_neurons' parameter of {o} must be an int >= 1 or a non-empty "
                    f"sequence of them. Got {self.n_neurons!r} instead."
                )
            vals = tuple(check_int(o, "n_neurons", v, 1) for v in self.n_neurons)
            object.__setattr__(self, "n_neurons", vals)
        else:
            check_int(o, "n_neurons", self.n_neurons, 1)
        check_float(o, "lr", self.lr, 0.0, None, low_inclusive=False)
        check_int(o, "n_iters", self.n_iters, 1)
        check_bool(o, "normalize_lr", self.normalize_lr)
        check_int(o, "hebbian_batches", self.hebbian_batches, 0)
        if self.hebbian_batch_size is not None:
            check_int(o, "hebbian_batch_size", self.hebbian_batch_size, 1)


def _check_activity(owner: str, activities, sizes) -> list[torch.Tensor]:
    if not isinstance(activities, (list, tuple)) or len(activities) != len(sizes):
        raise ValueError(
            f"The 'activities' parameter of {owner} must be a list of {len(sizes)} tensors "
            f"(one per layer). Got {type(activities).__name__} of length "
            f"{len(activities) if isinstance(activities, (list, tuple)) else '-'} instead."
        )
    out = []
    for i, (a, n) in enumerate(zip(activities, sizes)):
        if not torch.is_tensor(a) or a.shape[-1] != n or a.ndim < 1:
            raise ValueError(
                f"The 'activities' parameter of {owner} must hold tensors [..., n_l]; layer {i} "
                f"needs n_l = {n}. Got "
                f"{tuple(a.shape) if torch.is_tensor(a) else type(a).__name__} instead."
            )
        out.append(a.detach().reshape(-1, n))
    return out


# ====================================================================== the subspace neurons
class HLOP:
    """Lateral subspace neurons of several layers, learned by Oja's rule, used for projection.

    Arguments:
        layer_sizes: presynaptic size ``n_l`` of each projected layer (``+1`` for a bias).
        config: :class:`HLOPConfig`.
        seed: int, ``torch.Generator`` or None: initialisation of new neurons.
        dtype, device: of the lateral weights.
        backend: backend of the batched Oja update (:func:`dynrnn.kernels.hebbian.oja_subspace`:
            ``"auto"``, ``"reference"``, ``"cpu"`` or ``"triton"``).

    Attributes:
        H: ``[L, M_max, n_max]`` zero-padded lateral weights; layer l uses
            ``H[l, :n_active[l], :layer_sizes[l]]``.
        n_frozen, n_active: ``[L]`` numbers of frozen (old tasks) and all neurons per layer.
        n_tasks: number of finished (frozen) tasks.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        config: HLOPConfig | None = None,
        *,
        seed: int | torch.Generator | None = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        backend: str = "auto",
    ):
        o = type(self).__name__
        from ..kernels.hebbian import HEBBIAN_BACKENDS

        self.backend = check_choice(o, "backend", backend, HEBBIAN_BACKENDS)
        if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence) or (
            len(layer_sizes) == 0
        ):
            raise ValueError(
                f"The 'layer_sizes' parameter of {o} must be a non-empty sequence of ints >= 1. "
                f"Got {layer_sizes!r} instead."
            )
        self.layer_sizes = tuple(check_int(o, "layer_sizes", n, 1) for n in layer_sizes)
        self.config = HLOPConfig() if config is None else config
        if not isinstance(self.config, HLOPConfig):
            raise ValueError(
                f"The 'config' parameter of {o} must be an HLOPConfig. Got "
                f"{type(config).__name__} instead."
            )
        per = self.config.n_neurons
        L = len(self.layer_sizes)
        if isinstance(per, tuple) and len(per) != L:
            raise ValueError(
                f"The 'n_neurons' parameter of HLOPConfig must have one entry per layer ({L}). "
                f"Got {per!r} instead."
            )
        self.neurons_per_task = per if isinstance(per, tuple) else (per,) * L
        self.generator = resolve_generator(seed)
        self.H = torch.zeros(L, 0, max(self.layer_sizes), dtype=dtype, device=device)
        self.n_frozen = [0] * L
        self.n_active = [0] * L
        self.n_tasks = 0

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    # ------------------------------------------------------------------ growth / freezing
    def grow(self) -> HLOP:
        """Add the next task's trainable neurons to every layer (random orthonormal rows,
        orthogonal to the existing ones). Returns self."""
        if any(a > f for a, f in zip(self.n_active, self.n_frozen)):
            raise RuntimeError("HLOP.grow called twice without HLOP.freeze in between.")
        new_active = [
            min(a + k, n) for a, k, n in zip(self.n_active, self.neurons_per_task, self.layer_sizes)
        ]
        M = max(new_active)
        H = torch.zeros(self.n_layers, M, self.H.shape[2], dtype=self.H.dtype, device=self.H.device)
        H[:, : self.H.shape[1]] = self.H
        for layer, (a, b, n) in enumerate(zip(self.n_active, new_active, self.layer_sizes)):
            if b == a:
                continue
            old = self.H[layer, :a, :n].double().cpu()
            rand = torch.randn(n, b - a, generator=self.generator, dtype=torch.float64)
            q, _ = torch.linalg.qr(torch.cat([old.T, rand], dim=1))
            H[layer, a:b, :n] = q[:, a:b].T.to(H)
        self.H = H
        self.n_active = new_active
        return self

    def freeze(self) -> HLOP:
        """Freeze the current neurons (end of a task): they now define the projection."""
        self.n_frozen = list(self.n_active)
        self.n_tasks += 1
        return self

    # ------------------------------------------------------------------ Hebbian learning
    def _pad(self, acts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = max(a.shape[0] for a in acts)
        X = torch.zeros(self.n_layers, rows, self.H.shape[2], dtype=self.H.dtype,
                        device=self.H.device)
        for layer, a in enumerate(acts):
            X[layer, : a.shape[0], : a.shape[1]] = a.to(X)
        counts = torch.tensor([a.shape[0] for a in acts], dtype=X.dtype, device=X.device)
        return X, counts

    def hebbian_update(self, activities: Sequence[torch.Tensor]) -> HLOP:
        """``n_iters`` Oja subspace iterations of the trainable neurons on one batch of activity.

        Arguments:
            activities: one tensor ``[..., n_l]`` per layer (leading dims are flattened into
                samples, e.g. trials x time steps).

        Returns:
            self. All layers are updated in one batched computation.
        """
        acts = _check_activity("HLOP.hebbian_update", activities, self.layer_sizes)
        if self.H.shape[1] == 0 or all(a == f for a, f in zip(self.n_active, self.n_frozen)):
            return self
        X, counts = self._pad(acts)  # [L, R, n], [L]
        L, M = self.n_layers, self.H.shape[1]
        rows = torch.arange(M, device=X.device)
        lo = torch.tensor(self.n_frozen, device=X.device)[:, None]
        hi = torch.tensor(self.n_active, device=X.device)[:, None]
        train = ((rows >= lo) & (rows < hi)).to(X.dtype)[:, :, None]  # [L, M, 1]
        lr = torch.full((L,), self.config.lr, dtype=X.dtype, device=X.device)
        if self.config.normalize_lr:
            power = X.pow(2).sum(dim=(1, 2)) / counts
            lr = lr / power.clamp_min(1e-12)
        from ..kernels.hebbian import oja_subspace

        # Y = X H^T, X_perp = X - Y H, H += lr/rows * train * Y^T X_perp, for all layers at once
        H = oja_subspace(self.H, X, lr / counts, train, n_iters=self.config.n_iters,
                         backend=self.backend)
        if not bool(torch.isfinite(H).all()):
            raise FloatingPointError(
                "HLOP Oja update diverged; lower the 'lr' parameter of HLOPConfig or set "
                "normalize_lr=True."
            )
        self.H = H
        return self

    # ------------------------------------------------------------------ projection
    def subspace(self, layer: int, which: str = "frozen") -> torch.Tensor:
        """Lateral weights of one layer: ``[m, n_l]`` rows (``which``: "frozen" or "all")."""
        layer = check_int("HLOP.subspace", "layer", layer, 0, self.n_layers - 1)
        check_choice("HLOP.subspace", "which", which, ("frozen", "all"))
        m = self.n_frozen[layer] if which == "frozen" else self.n_active[layer]
        return self.H[layer, :m, : self.layer_sizes[layer]]

    def projector(self, layer: int) -> torch.Tensor:
        """``P = I - H^T H`` of one layer's frozen neurons, ``[n_l, n_l]``."""
        H = self.subspace(layer)
        eye = torch.eye(H.shape[1], dtype=H.dtype, device=H.device)
        return eye - H.T @ H

    def project(self, activities: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Presynaptic activity with the frozen subspace removed: ``x - H^T H x`` per layer.

        Arguments:
            activities: one tensor ``[..., n_l]`` per layer.

        Returns:
            list of tensors of the same shapes.
        """
        _check_activity("HLOP.project", activities, self.layer_sizes)
        out = []
        for layer, a in enumerate(activities):
            H = self.subspace(layer).to(a)
            out.append(a - (a @ H.T) @ H)
        return out

    def project_gradients(
        self, layers: Sequence[tuple[torch.Tensor, torch.Tensor | None]]
    ) -> None:
        """Project the gradients of every layer's weights in place: ``G <- G (I - H^T H)``.

        Arguments:
            layers: one ``(weight, bias or None)`` pair per layer; ``weight.grad`` is
                ``[..., out, n]`` (any leading dims, e.g. the network dim K), and a bias
                ``[..., out]`` is treated as the weight of a constant input (so ``n + 1`` must
                equal the layer size).
        """
        if len(layers) != self.n_layers:
            raise ValueError(
                f"The 'layers' parameter of HLOP.project_gradients must hold {self.n_layers} "
                f"(weight, bias) pairs. Got {len(layers)} instead."
            )
        for layer, (w, b) in enumerate(layers):
            if self.n_frozen[layer] == 0 or w.grad is None:
                continue
            n = w.shape[-1] + (1 if b is not None else 0)
            if n != self.layer_sizes[layer]:
                raise ValueError(
                    f"The 'layers' parameter of HLOP.project_gradients: layer {layer} has "
                    f"presynaptic size {n} but HLOP was built with {self.layer_sizes[layer]}."
                )
            H = self.subspace(layer).to(w.grad)
            G = w.grad
            if b is not None:
                gb = b.grad if b.grad is not None else torch.zeros_like(b)
                G = torch.cat([G, gb[..., None]], dim=-1)
            G = G - (G @ H.T) @ H
            if b is not None:
                w.grad.copy_(G[..., :-1])
                if b.grad is not None:
                    b.grad.copy_(G[..., -1])
                elif b.requires_grad:
                    b.grad = G[..., -1].clone()
            else:
                w.grad.copy_(G)


# ====================================================================== geometry
def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (degrees, ascending) between the row spaces of ``A [p, n]``, ``B [q, n]``.

    Arguments:
        A, B: matrices whose rows span the two subspaces (need not be orthonormal).

    Returns:
        ``[min(p, q)]`` float64 tensor of angles in degrees, smallest first (the last entry is the
        largest angle).
    """
    A = check_tensor("principal_angles", "A", A, detach=True)
    B = check_tensor("principal_angles", "B", B, detach=True)
    for name, M in (("A", A), ("B", B)):
        if M.ndim != 2:
            raise ValueError(
                f"The {name!r} parameter of principal_angles must be a 2-D tensor [m, n]. Got "
                f"{tuple(M.shape)} instead."
            )
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"The 'A' and 'B' parameters of principal_angles must have the same number of "
            f"columns n; the 'B' parameter has {B.shape[1]}, A has {A.shape[1]}."
        )
    for name, M in (("A", A), ("B", B)):
        if M.numel() == 0:
            raise ValueError(
                f"The {name!r} parameter of principal_angles must not be empty. Got shape "
                f"{tuple(M.shape)}."
            )
        check_finite("principal_angles", name, M.double())
    qa, _ = torch.linalg.qr(A.double().T)
    qb, _ = torch.linalg.qr(B.double().T)
    s = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(s))  # svdvals descend, so the angles ascend


# ====================================================================== networks
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
    """Feed-forward rate network ``sizes[0] -> ... -> sizes[-1]`` with every layer projectable.

    Arguments:
        sizes: layer widths (input, hidden..., classes).
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: include biases (projected as weights of a constant input).
        seed: initialisation seed.

    ``forward(inputs)`` takes ``[B, I]`` or ``[B, T, I]`` (the last step is used) and returns
    ``(logits [B, C], [x_0, ..., x_{L-1}])`` where ``x_l`` is the presynaptic activity of layer l
    (``[B, n_l]``, with a trailing 1 where the layer has a bias).
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

    Arguments:
        config: a :class:`~dynrnn.models.RateRNNConfig` (``n_outputs`` = classes).
        seed: initialisation seed.
        backend: simulation backend of :func:`dynrnn.models.run` (``"reference"`` by default).
    """

    def __init__(self, config, *, seed: int = 0, backend: str = "reference"):
        super().__init__()
        from ..models.rate import RateRNN, RateRNNConfig

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
        from ..models.base import run

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


# ====================================================================== training
@dataclass
class ContinualResult:
    """Outcome of :func:`train_continual`.

    Attributes:
        accuracy: ``[n_tasks, n_tasks]`` array; ``accuracy[i, j]`` is the test accuracy on task j
            after training on tasks ``0..i``.
        hlop: the :class:`HLOP` state (None for the unprotected baseline).
        losses: training loss per task and step, ``[n_tasks, steps_per_task]``.
    """

    accuracy: np.ndarray
    hlop: HLOP | None
    losses: np.ndarray

    @property
    def first_task(self) -> np.ndarray:
        """Accuracy on task 0 after each task, ``[n_tasks]``."""
        return self.accuracy[:, 0]

    @property
    def first_task_drop(self) -> float:
        """Accuracy on task 0 right after learning it minus after the last task (points, %)."""
        return float(100 * (self.accuracy[0, 0] - self.accuracy[-1, 0]))

    @property
    def mean_final_accuracy(self) -> float:
        return float(self.accuracy[-1].mean())

    def to_xarray(self):
        """``xarray.Dataset`` with ``accuracy(trained, evaluated)`` and ``loss(trained, step)``."""
        import xarray as xr

        n = self.accuracy.shape[0]
        return xr.Dataset(
            {
                "accuracy": (("trained", "evaluated"), self.accuracy),
                "loss": (("trained", "step"), self.losses),
            },
            coords={"trained": np.arange(n), "evaluated": np.arange(n)},
            attrs={"method": "hlop" if self.hlop is not None else "sgd"},
        )


@torch.no_grad()
def evaluate_accuracy(net: nn.Module, task, n_trials: int = 1000, seed: int = 12345) -> float:
    """Fraction of correctly classified trials of ``task`` (label read at the last step)."""
    trials = task.sample(n_trials, seed)
    logits = net(trials.inputs)[0]
    return float((logits.argmax(-1) == trials.info["labels"]).float().mean())


def train_continual(
    net: _HLOPNet,
    tasks: Sequence,
    *,
    hlop: HLOPConfig | None = None,
    steps_per_task: int = 300,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.0,
    eval_trials: int = 1000,
    seed: int = 0,
) -> ContinualResult:
    """Train ``net`` on ``tasks`` one after another, with HLOP (``hlop`` given) or plain SGD.

    For each task: (HLOP) grow new subspace neurons; train ``steps_per_task`` SGD steps on fresh
    batches of the task with every layer's gradient projected out of the frozen subspace;
    (HLOP) train the new neurons with Oja's rule on ``hebbian_batches`` batches of the task's
    presynaptic activity and freeze them; evaluate on every task.

    Arguments:
        net: an :class:`MLP`, :class:`SpikingMLP` or :class:`HLOPRateRNN` (or any module with
            the same ``forward -> (logits, activities)`` / ``hlop_layers()`` protocol).
        tasks: sequence of classification tasks with ``sample(B, seed) -> Trials`` whose
            ``info["labels"]`` are the class labels (e.g. :func:`dynrnn.tasks.continual_sequence`).
        hlop: :class:`HLOPConfig`, or None for the unprotected SGD baseline.
        steps_per_task, batch_size: SGD steps per task and trials per step.
        lr, momentum: SGD constants (the momentum buffer is reset at each task).
        eval_trials: test trials per task (a fixed test set per task).
        seed: seed of the training batches and of the subspace initialisation.

    Returns:
        :class:`ContinualResult`.
    """
    o = "train_continual"
    if not isinstance(net, nn.Module) or not hasattr(net, "hlop_layers"):
        raise ValueError(
            f"The 'net' parameter of {o} must be an nn.Module with hlop_layers() (MLP, "
            f"SpikingMLP, HLOPRateRNN). Got {type(net).__name__} instead."
        )
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence) or len(tasks) == 0:
        raise ValueError(
            f"The 'tasks' parameter of {o} must be a non-empty sequence of tasks. Got "
            f"{tasks!r} instead."
        )
    if hlop is not None and not isinstance(hlop, HLOPConfig):
        raise ValueError(
            f"The 'hlop' parameter of {o} must be an HLOPConfig or None. Got "
            f"{type(hlop).__name__} instead."
        )
    steps = check_int(o, "steps_per_task", steps_per_task, 1)
    B = check_int(o, "batch_size", batch_size, 1)
    lr = check_float(o, "lr", lr, 0.0, None, low_inclusive=False)
    momentum = check_float(o, "momentum", momentum, 0.0, 1.0, high_inclusive=False)
    eval_trials = check_int(o, "eval_trials", eval_trials, 1)
    seed = check_int(o, "seed", seed, 0)

    layers = net.hlop_layers()
    params = [p for p in net.parameters() if p.requires_grad]
    proj = HLOP(net.layer_sizes, hlop, seed=seed) if hlop is not None else None
    n = len(tasks)
    acc = np.zeros((n, n))
    losses = np.zeros((n, steps))
    for t, task in enumerate(tasks):
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
        if proj is not None:
            proj.grow()
        for step in range(steps):
            trials = task.sample(B, seed * 1_000_003 + t * 100_003 + step)
            logits, _ = net(trials.inputs)
            loss = nn.functional.cross_entropy(logits, trials.info["labels"])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            if proj is not None:
                proj.project_gradients(layers)
            opt.step()
            losses[t, step] = float(loss.detach())
        if proj is not None:
            with torch.no_grad():
                hb = hlop.hebbian_batch_size or B
                for k in range(hlop.hebbian_batches):
                    trials = task.sample(hb, seed * 1_000_003 + t * 100_003 + 50_000 + k)
                    proj.hebbian_update(net(trials.inputs)[1])
            proj.freeze()
        for j, other in enumerate(tasks):
            acc[t, j] = evaluate_accuracy(net, other, eval_trials, seed=987_654 + j)
    return ContinualResult(acc, proj, losses)
