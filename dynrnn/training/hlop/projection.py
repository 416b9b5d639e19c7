"""Hebbian learning based orthogonal projection (HLOP): the subspace neurons and the projection.

Xiao, M., Meng, Q., Zhang, Z., He, D. & Lin, Z. (2024). Hebbian learning based orthogonal
projection for continual learning of spiking neural networks. International Conference on
Learning Representations (ICLR 2024).

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..._validation import (
    Bool,
    Check,
    Constraint,
    Float,
    Int,
    OrNone,
    check_choice,
    check_finite,
    check_int,
    check_tensor,
    resolve_generator,
    validate_config,
)

__all__ = ["HLOPConfig", "HLOP", "principal_angles"]


def _check_n_neurons(owner: str, name: str, value, config=None):
    """An int >= 1, or a non-empty sequence of them (one per layer; stored as a tuple)."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(
                f"The {name!r} parameter of {owner} must be an int >= 1 or a non-empty "
                f"sequence of them. Got {value!r} instead."
            )
        return tuple(check_int(owner, name, v, 1) for v in value)
    return check_int(owner, name, value, 1)


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

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_neurons": Check(_check_n_neurons),
        "lr": Float(0.0, None, low_inclusive=False),
        "n_iters": Int(1),
        "normalize_lr": Bool(),
        "hebbian_batches": Int(0),
        "hebbian_batch_size": OrNone(Int(1)),
    }

    def __post_init__(self):
        validate_config(self)


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
        from ...kernels.hebbian import HEBBIAN_BACKENDS

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
        from ...kernels.hebbian import oja_subspace

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
