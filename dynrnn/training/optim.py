"""Optimisers for a batch of K independent networks.

``torch.optim`` treats a stacked ``[K, ...]`` parameter as one tensor, so it cannot freeze one
network, give each network its own learning rate, or clip each network's gradient norm on its
own. These optimisers do exactly that, with maths identical to ``torch.optim.Adam`` /
``torch.optim.SGD`` for each network (checked in the tests): network k of an ensemble trained
here follows the same trajectory as the same network trained alone.
"""

from __future__ import annotations

import torch

from .._validation import ParameterTypeError

__all__ = ["EnsembleOptimizer", "per_network_grad_norm"]


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-network vector ``[K]`` to broadcast against ``like [K, ...]``."""
    return v.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def per_network_grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """L2 norm of the gradient of each network over all its parameters, ``[K]``.

    ``params`` is a non-empty sequence of tensors with the network dim K first; parameters
    without a gradient count as zero (all zeros when none has one).
    """
    owner = "per_network_grad_norm"
    if isinstance(params, torch.Tensor):
        params = [params]
    if isinstance(params, (str, bytes)) or not isinstance(params, (list, tuple)):
        try:
            params = list(params)
        except TypeError:
            raise ParameterTypeError(
                f"The 'params' parameter of {owner} must be a sequence of tensors [K, ...]. Got "
                f"{type(params).__name__} instead."
            ) from None
    if not params or not all(torch.is_tensor(p) and p.ndim >= 1 for p in params):
        raise ParameterTypeError(
            f"The 'params' parameter of {owner} must be a non-empty sequence of tensors "
            f"[K, ...]. Got {[type(p).__name__ for p in params]} instead."
        )
    K = params[0].shape[0]
    if any(p.shape[0] != K for p in params):
        raise ValueError(
            f"The 'params' parameter of {owner} must hold tensors with one network dim K first; "
            f"got leading sizes {sorted({p.shape[0] for p in params})}."
        )
    total = None
    for p in params:
        if p.grad is None:
            continue
        sq = p.grad.detach().pow(2).reshape(p.shape[0], -1).sum(1)
        total = sq if total is None else total + sq
    if total is None:
        return torch.zeros(K, dtype=params[0].dtype, device=params[0].device)
    return total.sqrt()


def clip_scale(norm: torch.Tensor, max_norm: float | None, eps: float = 1e-6
               ) -> torch.Tensor | None:
    """Per-network gradient-clipping factors ``[K]``: ``min(1, max_norm / (norm + eps))``,
    0 where the norm is not finite (that network's step is then a no-op); None when
    ``max_norm`` is None or 0 (no clipping). ``norm``: :func:`per_network_grad_norm`."""
    if not max_norm:
        return None
    scale = (max_norm / (norm + eps)).clamp(max=1.0)
    return torch.where(torch.isfinite(norm), scale, torch.zeros_like(scale))


class EnsembleOptimizer:
    """Adam, RAdam or SGD (optionally Nesterov) over parameters with a leading network dim K.

    Arguments:
        params: parameters, each ``[K, ...]``.
        kind: ``"adam"``, ``"radam"`` (rectified Adam, as ``torch.optim.RAdam``) or ``"sgd"``.
        lr: learning rate per network ``[K]`` (a float is broadcast).
        betas, eps: Adam constants; momentum, nesterov: SGD constants.
        weight_decay: L2 penalty coefficient (added to the gradient, as torch does), per network.
    """

    def __init__(
        self,
        params,
        kind: str = "adam",
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | torch.Tensor = 0.0,
    ):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError(
                "The 'params' parameter of EnsembleOptimizer holds no trainable tensor."
            )
        self.K = self.params[0].shape[0]
        dev = self.params[0].device
        self.kind = kind
        self.lr = torch.as_tensor(lr, dtype=torch.float64, device=dev).expand(self.K).clone()
        self.weight_decay = (
            torch.as_tensor(weight_decay, dtype=torch.float64, device=dev).expand(self.K).clone()
        )
        self.betas, self.eps = betas, eps
        self.momentum, self.nesterov = momentum, nesterov
        self.step_count = torch.zeros(self.K, dtype=torch.float64, device=dev)
        self.state = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor, grad_scale: torch.Tensor | None = None) -> None:
        """Update the networks where ``active [K]`` is True; ``grad_scale [K]`` multiplies grads
        (gradient clipping). Inactive networks keep their weights and optimiser state exactly."""
        active = active.to(self.params[0].device)
        self.step_count += active.to(torch.float64)
        t = self.step_count.clamp(min=1)
        b1, b2 = self.betas
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            act = _bcast(active, p).bool()
            g = torch.where(act, p.grad, torch.zeros((), dtype=p.dtype, device=p.device))
            if grad_scale is not None:
                g = g * _bcast(grad_scale, p)
            if bool((self.weight_decay != 0).any()):
                g = g + _bcast(self.weight_decay, p) * p
            lr = _bcast(self.lr, p)
            if self.kind == "adam":
                if not st:
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                m = torch.where(act, st["m"] * b1 + (1 - b1) * g, st["m"])
                v = torch.where(act, st["v"] * b2 + (1 - b2) * g * g, st["v"])
                st["m"], st["v"] = m, v
                bc1 = _bcast(1 - b1**t, p)
                bc2 = _bcast((1 - b2**t).sqrt(), p)
                update = (lr / bc1) * m / (v.sqrt() / bc2 + self.eps)
            elif self.kind == "radam":
                if not st:
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                m = torch.where(act, st["m"] * b1 + (1 - b1) * g, st["m"])
                v = torch.where(act, st["v"] * b2 + (1 - b2) * g * g, st["v"])
                st["m"], st["v"] = m, v
                # Liu et al. 2020 (as torch.optim.RAdam): rectify the adaptive step once the
                # variance of the adaptive learning rate is tractable (rho_t > 5)
                rho_inf = 2.0 / (1.0 - b2) - 1.0
                rho_t = rho_inf - 2.0 * t * b2**t / (1.0 - b2**t)
                rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t)).clamp(min=0).sqrt()
                m_hat = m / _bcast(1 - b1**t, p)
                adaptive = _bcast((1 - b2**t).sqrt(), p) / (v.sqrt() + self.eps)
                use = _bcast(rho_t > 5.0, p).bool()
                update = lr * m_hat * torch.where(use, _bcast(rect, p) * adaptive, 1.0)
            else:
                if self.momentum:
                    buf = st.get("buf")
                    buf = (
                        g.clone() if buf is None else torch.where(act, buf * self.momentum + g, buf)
                    )
                    st["buf"] = buf
                    g = g + self.momentum * buf if self.nesterov else buf
                update = lr * g
            p.sub_(torch.where(act, update, torch.zeros((), dtype=p.dtype, device=p.device)))
