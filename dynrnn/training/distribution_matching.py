"""Training RNNs to emulate hidden Markov models by distribution matching (K networks at once).

Torre, E., Viscione, M., Pompe, L., Grewe, B. F. & Mante, V. (2025). "Mechanistic
interpretability of RNNs emulating hidden Markov models." Advances in Neural Information
Processing Systems 38 (NeurIPS 2025); arXiv:2510.25674.

The networks receive no task input. Network k is the vanilla ReLU RNN without biases (the
paper's ``torch.nn.RNN(nonlinearity="relu", bias=False)``; here a
:class:`~dynrnn.models.RateRNN` with tau = 1)

    h_t = relu(W h_{t-1} + U x_t),    x_t ~ N(0, I) i.i.d.,    h_0 ~ N(0, I),
    l_t = W_out h_t,    y_t = onehot(argmax(l_t + G_t)) (forward),  softmax((l_t + G_t) / tau)
    (backward),

with Gumbel noise ``G_t = -log(-log U)``, ``U ~ U(0, 1)`` -- the straight-through ("hard")
Gumbel-softmax (Jang, Gu & Poole 2017, "Categorical reparameterization with Gumbel-softmax",
ICLR 2017): the forward pass emits a sample of ``softmax(l_t)``, the backward pass uses the
gradient of the relaxed sample (temperature tau = 1). A batch of B emitted sequences, each
flattened to a vector of ``T * O`` entries, is compared with a batch of B HMM sequences by the
debiased Sinkhorn divergence (:func:`dynrnn.training.sinkhorn.sinkhorn_divergence`, cost
``|x - y|^2 / 2``, blur 0.2), which is the loss. Optimiser: Adam (lr 1e-3), gradient-norm
clipping at 0.9 per network (the authors' configuration: hidden 150, 100 noise channels,
batch 4096, 500-1000 epochs over 30,000 sequences).

All K networks are one batched computation: one :func:`dynrnn.models.run` over ``[K, B, T, I]``
noise, one Sinkhorn solve over ``[K, B, T*O]``, per-network Adam and clipping
(:class:`~dynrnn.training.optim.EnsembleOptimizer`).

Sequence length matters for the dynamics the networks learn (measured at small scale: 5
networks of 50 units, 10 noise channels, batches of 256, 700 steps, Adam 3e-3 -> 1e-4;
tests/test_hmm.py). Trained on T = 30 only, all 5 emit the 2-state chain's statistics over 30
steps, but none collapses without input: their autonomous activity grows by 0.4-4 % a step
along a ray (a bias-free ReLU network is positively homogeneous, ``relu(W c h) = c relu(W h)``),
and so does their noise-driven activity. Growth only sharpens the emission probabilities
within T steps, so a loss over 30 steps hardly penalises it. With each batch's length drawn
from 30..100 (``seq_len_max``; the paper's data sets hold sequences of 30 to 100 steps, one
length per data set; a length drawn per batch covers that range at the cost of about 65),
3 of 5 collapse to the origin, as Torre et al. found, and their noise-driven activity is
stationary. Train on lengths at
least as long as those you will evaluate on, and check
:func:`dynrnn.analyses.autonomous_dynamics` and :func:`dynrnn.analyses.noise_orbits` on longer
runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .._progress import finish_early, progress_bar
from .._repr import SummaryRepr
from .._validation import (
    Constraint,
    Float,
    Int,
    OrNone,
    ParameterTypeError,
    check_bool,
    check_int,
    check_tensor,
    resolve_generator,
    validate_config,
)
from ..kernels._threads import adapts_threads
from ..models.base import run
from ..models.rate import RateRNN, RateRNNConfig
from ..tasks.hmm import HMMConfig, sample_hmm
from .optim import EnsembleOptimizer, clip_scale, per_network_grad_norm
from .sinkhorn import sinkhorn_divergence

__all__ = [
    "HMMTrainConfig",
    "HMMHistory",
    "hmm_emulator",
    "train_hmm_emulator",
    "gumbel_softmax_st",
    "emit",
]


@dataclass(frozen=True)
class HMMTrainConfig:
    """Settings of :func:`train_hmm_emulator` (defaults: the authors' configuration, except
    the number of steps).

    Attributes:
        n_steps: optimiser steps (batches).
        batch_size: B, sequences per batch and network (paper: 4096).
        seq_len: T of the training sequences; None takes the HMM's ``seq_len`` (or the
            length of the given sequences).
        seq_len_max: None (default): every batch has length ``seq_len``. An int >= that
            length: variable lengths, each batch's T drawn uniformly from ``seq_len ..
            seq_len_max`` (seeded; the paper's sequences are 30 to 100 steps long). A loss
            over T steps does not see what the networks do after T steps; longer batches
            penalise autonomous growth that short ones let through (module docstring).
        lr: Adam learning rate (paper: 1e-3).
        lr_end: learning rate at the last step, reached by exponential decay from ``lr``
            (``lr_t = lr (lr_end / lr)^(t / (n_steps - 1))``); None (default, the paper): no
            decay.
        grad_clip: per-network gradient-norm clip (paper: 0.9; None or 0: off). As
            ``torch.nn.utils.clip_grad_norm_``: gradients are scaled by
            ``min(1, grad_clip / (norm + 1e-6))``.
        blur: blur of the Sinkhorn divergence, ``eps = blur^2`` (paper: 0.2).
        scaling: eps-scaling ratio of the Sinkhorn solver (geomloss' default 0.5).
        gumbel_tau: temperature of the Gumbel-softmax relaxation (paper: 1).
        h0_std: standard deviation of the Gaussian initial state (paper: 1).
        noise_std: standard deviation of the Gaussian input noise (paper: 1).
        seed: seed of noise, Gumbel noise and HMM batches.
    """

    n_steps: int = 1000
    batch_size: int = 4096
    seq_len: int | None = None
    seq_len_max: int | None = None
    lr: float = 1e-3
    lr_end: float | None = None
    grad_clip: float | None = 0.9
    blur: float = 0.2
    scaling: float = 0.5
    gumbel_tau: float = 1.0
    h0_std: float = 1.0
    noise_std: float = 1.0
    seed: int = 0

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_steps": Int(1),
        "batch_size": Int(2),
        "seq_len": OrNone(Int(2)),
        "seq_len_max": OrNone(Int(2)),
        "lr": Float(0.0, None, low_inclusive=False),
        "lr_end": OrNone(Float(0.0, "lr", low_inclusive=False)),
        "grad_clip": OrNone(Float(0.0)),
        "blur": Float(0.0, None, low_inclusive=False),
        "scaling": Float(0.0, 1.0, False, False),
        "gumbel_tau": Float(0.0, None, low_inclusive=False),
        "h0_std": Float(0.0),
        "noise_std": Float(0.0),
        "seed": Int(0),
    }

    def __post_init__(self):
        validate_config(self)

    def _check_relations(self):
        if (self.seq_len_max is not None and self.seq_len is not None
                and self.seq_len_max < self.seq_len):
            raise ValueError(
                f"The 'seq_len_max' parameter of HMMTrainConfig must be >= seq_len "
                f"({self.seq_len}) or None. Got {self.seq_len_max} instead."
            )


@dataclass(repr=False)
class HMMHistory(SummaryRepr):
    """Per-step records of :func:`train_hmm_emulator` (lists of ``[K]`` arrays; ``seq_len``:
    the length T of each step's batch)."""

    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    seq_len: list = field(default_factory=list)
    wall_time: list = field(default_factory=list)
    stopped: bool = False

    def _summary_rows(self) -> tuple[str, list[tuple[str, str]]]:
        n = len(self.loss)
        rows = [("steps", str(n)), ("stopped early", str(bool(self.stopped)))]
        if n:
            last = np.asarray(self.loss[-1], dtype=float)
            rows.insert(0, ("networks", str(last.size)))
            rows.append(("last Sinkhorn loss", f"median {np.nanmedian(last):.3g}, "
                                               f"max {np.nanmax(last):.3g}"))
            rows.append(("wall time", f"{float(self.wall_time[-1]):.1f} s"))
        return f"HMMHistory: {n} steps", rows


    def to_xarray(self):
        """``loss`` and ``grad_norm`` over ``(network, step)``, ``wall_time`` over ``step``."""
        import xarray as xr

        n = len(self.loss)
        loss = np.asarray(self.loss, dtype=float).reshape(n, -1)
        K = loss.shape[1]
        grad = np.asarray(self.grad_norm, dtype=float).reshape(n, K)
        return xr.Dataset(
            {"loss": (("network", "step"), loss.T,
                      {"long_name": "Sinkhorn divergence (training batch)"}),
             "grad_norm": (("network", "step"), grad.T),
             "seq_len": (("step",), np.asarray(self.seq_len, dtype=np.int64),
                         {"long_name": "length T of the training batch"}),
             "wall_time": (("step",), np.asarray(self.wall_time, dtype=float), {"units": "s"})},
            coords={"network": np.arange(K), "step": np.arange(n)},
            attrs={"stopped": int(self.stopped)},
        )


def hmm_emulator(n_networks: int = 1, n_units: int = 150, n_noise: int = 100,
                 n_symbols: int = 3, *, seed: int = 0) -> RateRNN:
    """K noise-driven ReLU RNNs without biases, the architecture of Torre et al. (NeurIPS 2025):
    ``h_t = relu(W h_{t-1} + U x_t)``, readout ``W_out h_t`` (``RateRNN`` with tau = 1,
    ``bias=False``, ``readout_bias=False``).

    Initialisation: ``W ~ N(0, 1 / (3 N))`` (``init_gain = 1/sqrt(3)``: the variance of
    ``torch.nn.RNN``'s ``U(-1/sqrt(N), 1/sqrt(N))``), ``U ~ U(+-1/sqrt(I))``,
    ``W_out ~ U(+-1/sqrt(N))``. Network k has seed ``seed + k``.
    """
    owner = "hmm_emulator"
    K = check_int(owner, "n_networks", n_networks, 1)
    cfg = RateRNNConfig(
        n_inputs=check_int(owner, "n_noise", n_noise, 1),
        n_units=check_int(owner, "n_units", n_units, 1),
        n_outputs=check_int(owner, "n_symbols", n_symbols, 2),
        nonlinearity="relu", bias=False, readout_bias=False, init_gain=1.0 / math.sqrt(3.0),
    )
    return RateRNN(cfg, n_networks=K, seed=check_int(owner, "seed", seed, 0))


def gumbel_softmax_st(logits: torch.Tensor, generator: torch.Generator,
                      tau: float = 1.0) -> torch.Tensor:
    """Straight-through Gumbel-softmax (Jang et al., ICLR 2017): one-hot samples of
    ``softmax(logits)`` in the forward pass, the gradient of ``softmax((logits + G) / tau)``
    in the backward pass. ``logits [..., O]`` -> ``[..., O]``; seeded by ``generator``
    (``torch.nn.functional.gumbel_softmax`` draws from the global RNG)."""
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype,
                   device=logits.device)
    tiny = torch.finfo(logits.dtype).tiny
    g = -torch.log((-torch.log(u.clamp_min(tiny))).clamp_min(tiny))
    soft = torch.softmax((logits + g) / tau, dim=-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def _check_model(model: Any, owner: str, n_symbols: int | None) -> None:
    if not isinstance(model, torch.nn.Module) or not all(
        hasattr(model, a) for a in ("n_networks", "n_outputs", "n_inputs", "step_drive")
    ):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be a dynrnn model (e.g. hmm_emulator()). "
            f"Got {type(model).__name__} instead."
        )
    if model.n_inputs < 1:
        raise ValueError(
            f"The 'model' parameter of {owner} needs n_inputs >= 1 noise channels. Got "
            f"{model.n_inputs}."
        )
    if n_symbols is not None and model.n_outputs != n_symbols:
        raise ValueError(
            f"The 'model' parameter of {owner} must have n_outputs = {n_symbols} (the number "
            f"of symbols of the HMM). Got {model.n_outputs} instead."
        )


def _noise_run(model, B: int, T: int, gen: torch.Generator, noise_std: float = 1.0,
               h0_std: float = 1.0, return_states: bool = False):
    """One noise-driven run: ``(states or None, logits [K, B, T, O])``."""
    K, dtype, dev = model.n_networks, model.dtype, model.device
    x = noise_std * torch.randn(K, B, T, model.n_inputs, generator=gen, dtype=dtype,
                                device=dev) if noise_std > 0 else torch.zeros(
        K, B, T, model.n_inputs, dtype=dtype, device=dev)
    h0 = h0_std * torch.randn(K, B, model.n_units, generator=gen, dtype=dtype, device=dev)
    states, logits = run(model, x, h0, return_states=return_states)
    return states, logits


@torch.no_grad()
def emit(model, n_sequences: int, seq_len: int, *, seed: int | torch.Generator | None = 0,
         noise_std: float = 1.0, h0_std: float = 1.0, return_states: bool = False):
    """Symbol sequences emitted by the K networks when driven by Gaussian noise.

    The networks run on i.i.d. ``N(0, noise_std^2)`` inputs from ``h0 ~ N(0, h0_std^2)``;
    symbol ``y_t`` is a sample of ``softmax(W_out h_t)`` (the forward pass of the hard
    Gumbel-softmax used in training).

    Arguments:
        model: K networks with ``n_inputs >= 1`` noise channels.
        n_sequences: B; seq_len: T (>= 2).
        seed: seed of noise and sampling.
        return_states: also return the hidden states ``[K, B, T, N]``.

    Returns:
        ``symbols [K, B, T]`` (long), or ``(symbols, states)``.
    """
    owner = "emit"
    _check_model(model, owner, None)
    B = check_int(owner, "n_sequences", n_sequences, 1)
    T = check_int(owner, "seq_len", seq_len, 2)
    gen = resolve_generator(seed, owner=owner)
    states, logits = _noise_run(model, B, T, gen, noise_std, h0_std, return_states)
    symbols = gumbel_softmax_st(logits, gen).argmax(-1)
    return (symbols, states) if return_states else symbols


def _sequences(data: Any, owner: str, n_symbols: int) -> torch.Tensor:
    """User-given sequences as one-hot ``[R, T, O]`` float (from ``[R, T]`` integer symbols in
    ``0 .. n_symbols - 1``, or ``[R, T, O]`` one-hot)."""
    t = check_tensor(owner, "hmm_or_sequences", data, detach=True)
    if t.ndim == 2:
        if (t != t.round()).any() or (t < 0).any() or (t >= n_symbols).any():
            raise ValueError(
                f"The 'hmm_or_sequences' parameter of {owner} given as [R, T] must hold "
                f"integer symbols in 0..{n_symbols - 1} (the model's n_outputs)."
            )
        t = torch.nn.functional.one_hot(t.long(), n_symbols).float()
    if t.ndim != 3 or t.shape[1] < 2:
        raise ValueError(
            f"The 'hmm_or_sequences' parameter of {owner} must be an HMMConfig or sequences "
            f"[R, T] (symbols) / [R, T, O] (one-hot) with T >= 2. Got shape {tuple(t.shape)}."
        )
    return t.float()


@adapts_threads
def train_hmm_emulator(
    model,
    hmm_or_sequences: HMMConfig | Any,
    config: HMMTrainConfig | None = None,
    *,
    seed: int | None = None,
    callback: Callable[[int, Any, HMMHistory], bool | None] | None = None,
    progress: bool = False,
) -> HMMHistory:
    """Train the K networks of ``model`` to emit the symbol statistics of an HMM.

    See the module docstring for the method (Torre et al., NeurIPS 2025).

    Arguments:
        model: K networks with noise inputs (``n_inputs >= 1``) and ``n_outputs`` = number of
            symbols O, e.g. :func:`hmm_emulator`; updated in place.
        hmm_or_sequences: an :class:`~dynrnn.tasks.HMMConfig` (a fresh batch of B HMM
            sequences is sampled every step: unlimited data), or a fixed data set of
            sequences ``[R, T]`` (symbols) or ``[R, T, O]`` (one-hot), from which B are drawn
            at random every step (e.g. ``hmm.sample(30000, seed).targets``, the paper's 30,000
            sequences).
        config: :class:`HMMTrainConfig`.
        seed: overrides ``config.seed``.
        callback: ``callback(step, model, history)`` after each step; True stops training.
        progress: show a progress bar.

    Returns:
        :class:`HMMHistory`: per-step Sinkhorn loss ``[K]`` and gradient norm ``[K]``.
    """
    owner = "train_hmm_emulator"
    config = HMMTrainConfig() if config is None else config
    if not isinstance(config, HMMTrainConfig):
        raise ParameterTypeError(
            f"The 'config' parameter of {owner} must be an HMMTrainConfig. Got "
            f"{type(config).__name__}."
        )
    check_bool(owner, "progress", progress)
    if callback is not None and not callable(callback):
        raise ParameterTypeError(
            f"The 'callback' parameter of {owner} must be callable or None. Got {callback!r}."
        )
    seed = config.seed if seed is None else check_int(owner, "seed", seed, 0)
    if isinstance(hmm_or_sequences, HMMConfig):
        hmm, data = hmm_or_sequences, None
        O = hmm.n_symbols
        T = hmm.seq_len if config.seq_len is None else config.seq_len
    else:
        _check_model(model, owner, None)
        hmm, data = None, _sequences(hmm_or_sequences, owner, int(model.n_outputs))
        O = data.shape[-1]
        T = data.shape[1] if config.seq_len is None else config.seq_len
        if max(T, config.seq_len_max or 0) > data.shape[1]:
            raise ValueError(
                f"The 'seq_len' / 'seq_len_max' of {owner}'s config ({T} / "
                f"{config.seq_len_max}) exceeds the length of the given sequences "
                f"({data.shape[1]})."
            )
    T_max = T if config.seq_len_max is None else config.seq_len_max
    if T_max < T:
        raise ValueError(
            f"The 'seq_len_max' of {owner}'s config ({T_max}) must be >= the training length "
            f"seq_len = {T} (taken from the HMM when the config's seq_len is None)."
        )
    _check_model(model, owner, O)
    K, B = model.n_networks, config.batch_size
    gen = resolve_generator(seed)
    opt = EnsembleOptimizer([p for p in model.parameters() if p.requires_grad], kind="adam",
                            lr=config.lr)
    active = torch.ones(K, dtype=torch.bool)
    hist = HMMHistory()
    decay = 1.0 if config.lr_end is None else (config.lr_end / config.lr) ** (
        1.0 / max(config.n_steps - 1, 1))
    t0 = time.perf_counter()
    with progress_bar(progress, total=config.n_steps, desc=owner) as bar:
        for step in range(config.n_steps):
            if decay != 1.0:
                opt.lr.fill_(config.lr * decay**step)
            Ts = T if T_max == T else int(torch.randint(T, T_max + 1, (1,), generator=gen))
            if hmm is not None:
                _, symbols = sample_hmm(hmm, B, gen, seq_len=Ts)
                target = torch.nn.functional.one_hot(symbols, O).to(model.dtype)
            else:
                idx = torch.randint(0, data.shape[0], (B,), generator=gen)
                target = data[idx, :Ts].to(model.dtype)
            _, logits = _noise_run(model, B, Ts, gen, config.noise_std, config.h0_std)
            y = gumbel_softmax_st(logits, gen, config.gumbel_tau)
            loss = sinkhorn_divergence(y.reshape(K, B, Ts * O), target.reshape(1, B, Ts * O),
                                       blur=config.blur, scaling=config.scaling)
            opt.zero_grad()
            loss.sum().backward()
            gnorm = per_network_grad_norm(opt.params)
            finite = torch.isfinite(gnorm) & torch.isfinite(loss.detach())
            opt.step(active & finite, clip_scale(gnorm, config.grad_clip))
            if hasattr(model, "project_"):
                model.project_()
            hist.loss.append(loss.detach().cpu().numpy().copy())
            hist.grad_norm.append(gnorm.cpu().numpy().copy())
            hist.seq_len.append(Ts)
            hist.wall_time.append(time.perf_counter() - t0)
            bar.update(1)
            if callback is not None and callback(step, model, hist):
                hist.stopped = True
                if step + 1 < config.n_steps:
                    finish_early(bar, "stopped by the callback")
                break
    return hist
