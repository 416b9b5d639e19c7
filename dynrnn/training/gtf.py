"""Teacher forcing for dynamical-systems reconstruction (DSR), K networks trained at once.

Generalized teacher forcing (GTF; Hess et al., ICML 2023). At every step the
latent state is pulled towards the state inferred from the data before the map is applied,

    z~_{t-1} = (1 - alpha) z_{t-1} + alpha zhat_{t-1},      z_t = F(z~_{t-1}),

where ``zhat`` inverts the observation model (identity: only the first N "readout" units are
forced -- partial forcing when M > N; affine: ``zhat = W_out^+ (x - b_out)``, the least-squares
latent state, towards which the whole state is pulled; Poisson spike counts: ``zhat = W_out^+
(log(r + eps) - log(dt) - b_out)`` of the Gaussian-smoothed counts ``r``, an approximate
inversion of the log link, see :meth:`dynrnn.models.PLRNN.latent_from_observation`). Models with
external inputs are trained with zero input. The loss is the MSE between the unforced
predictions ``readout(z_t)`` and the data ``x_t`` (identity, affine) or, for the Poisson
observation, the Poisson negative log-likelihood of the counts under the unforced predictions,
``mean_{t,i} [lambda_ti - x_ti log lambda_ti + log x_ti!]`` with ``log lambda = W_out z_t + b_out
+ log(dt)``. Gradients stay bounded when alpha >= alpha* =
1 - 1/sigma_max of the Jacobians; the adaptive variant (aGTF) estimates
``kappa`` = geometric mean of the Jacobian spectral norms along the forced trajectory every
``agtf_every`` batches, sets ``alpha* = max(0, 1 - 1/kappa)`` and takes it if it is larger than
the current alpha, else ``alpha <- decay alpha + (1 - decay) alpha*`` (alpha_0 = 1).

Sparse teacher forcing (STF; Mikhaeil et al., NeurIPS 2022): the readout units are replaced by
the data every ``tau`` steps (alpha = 1 there, 0 elsewhere), which also cuts the gradient
through them; ``tau`` can be estimated from the data (:func:`estimate_forcing_interval`).

Everything is batched over the K networks of the model (leading dim K, per-network alpha,
learning rate, gradient clipping; :class:`~dynrnn.training.optim.EnsembleOptimizer`). The time
loop is a tight loop over preallocated data windows: one ``lerp`` for forcing plus the model's
step per time step. Optimiser: RAdam with exponential decay of the learning rate from ``lr``
to ``lr_end`` over the run (Hess et al. 2023: 1e-3 -> 1e-6; see docs/references.md).
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
    Bool,
    Choice,
    Constraint,
    Float,
    Int,
    OrNone,
    ParameterTypeError,
    check_bool,
    check_choice,
    check_int,
    check_tensor,
    resolve_generator,
    validate_config,
)
from ..kernels._threads import IterationThreads, adapts_threads
from ..models.protocol import latent_from_observation
from .optim import EnsembleOptimizer, per_network_grad_norm

__all__ = [
    "GTFConfig",
    "GTFHistory",
    "train_gtf",
    "gtf_loss",
    "estimate_alpha",
    "estimate_forcing_interval",
    "check_dsr_data",
    "sample_windows",
    "dsr_data",
    "DSRData",
    "RECIPES",
    "poisson_nll",
]

FORCING = ("gtf", "agtf", "stf", "none")

_SHPLRNN_GTF = dict(n_iterations=15000, seq_len=200, batch_size=16, forcing="gtf", alpha=0.2,
                    lr=1e-3, lr_end=1e-5, grad_clip=10.0)

#: The recommended reconstruction recipes, one per model family: ``"gtf"`` holds the
#: :class:`GTFConfig` fields, ``"model"`` the model's size defaults (``n_latent`` None = the
#: observed dimension; ``initial_state`` of the unobserved latent units). Used by
#: :meth:`GTFConfig.recipe`, :func:`dynrnn.reconstruct` and ``dynrnn reconstruct`` alike.
#:
#: * shPLRNN / clipped shPLRNN / PLRNN: generalized teacher forcing with alpha 0.2, M = data
#:   dimension, L = 100 hidden units, sequence 200, batch 16, RAdam 1e-3 decayed exponentially
#:   (Hess, Monfared, Brenner & Durstewitz 2023, Generalized teacher forcing for learning
#:   chaotic dynamics, ICML, PMLR 202: Lorenz-63 shPLRNN M=3, L=100, sequence 200, batch 16,
#:   RAdam 1e-3 -> 1e-6); 15,000 iterations to 1e-5 with gradient clip 10 (the settings
#:   dynrnn's Lorenz-63 tests reach D_stsp < 1 with).
#: * AL-RNN: sparse teacher forcing (interval from the data unless given), 20,000 iterations,
#:   no gradient clipping, M = 40 latent units of which P = 2 are piecewise linear, unobserved
#:   units starting at 0 (Brenner, Hemmer, Monfared & Durstewitz 2024, Almost-linear RNNs yield
#:   highly interpretable symbolic codes in dynamical systems reconstruction, NeurIPS 37: M=20,
#:   P=2 for Lorenz-63 with STF; with M=20 most of dynrnn's P=2 Lorenz free runs collapsed onto
#:   a fixed point, hence 40).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "shplrnn": {"gtf": dict(_SHPLRNN_GTF),
                "model": dict(n_latent=None, n_hidden=100, initial_state="learned")},
    "clipped-shplrnn": {"gtf": dict(_SHPLRNN_GTF),
                        "model": dict(n_latent=None, n_hidden=100, initial_state="learned")},
    "plrnn": {"gtf": dict(_SHPLRNN_GTF), "model": dict(n_latent=None, initial_state="learned")},
    "alrnn": {"gtf": dict(_SHPLRNN_GTF, n_iterations=20000, forcing="stf", grad_clip=None),
              "model": dict(n_latent=40, n_pwl=2, initial_state="zero")},
}


@dataclass(frozen=True)
class GTFConfig:
    """Settings of :func:`train_gtf`.

    Attributes:
        n_iterations: optimiser steps (batches).
        seq_len: length S of the training windows (predicted steps).
        batch_size: windows per network and batch.
        forcing: ``"gtf"`` (fixed alpha), ``"agtf"`` (adaptive alpha), ``"stf"`` (sparse TF
            every ``tau`` steps) or ``"none"`` (plain BPTT from the first state).
        alpha: fixed forcing strength in [0, 1] (``"gtf"``); ``"agtf"`` starts from
            ``alpha_init``.
        alpha_init: alpha_0 of aGTF (paper: 1).
        agtf_every: batches between alpha estimates (paper: 5).
        agtf_decay: weight of the old alpha when the estimate is smaller (paper: 0.999).
        tau: forcing interval of STF; None -> :func:`estimate_forcing_interval`.
        lr, lr_end: learning rate, decayed exponentially to ``lr_end`` at the last planned
            iteration (``n_iterations``; a run stopped earlier -- by ``time_budget`` or a
            callback -- does not reshape this schedule).
        optimizer: ``"radam"`` or ``"adam"``.
        grad_clip: per-network gradient-norm clip (None or 0: off).
        noise_std: std of Gaussian noise added to the teacher signal (data used for forcing)
            each batch (regularisation; 0: off).
        noise_on_targets: add that same noise to the loss targets too, i.e. to the whole
            sampled batch, as the AL-RNN reference code of Brenner et al. (2024) does
            (``add_gaussian_noise!`` on the batch, which is both the forcing signal and the
            target).
        loss_burn_in: leading steps of each window excluded from the loss (lets unobserved
            latent units, which start at 0, settle under forcing; 0: off).
        time_budget: wall-clock seconds of training after which the run stops (checked after
            each iteration; the learning-rate schedule stays that of ``n_iterations``; None:
            no limit).
        stop_after: iterations after which the run stops, the learning-rate schedule staying
            that of ``n_iterations`` (a deterministic budget; None: run ``n_iterations``).
        seed: seed of window sampling and noise.

    The defaults are the recipe of the shPLRNN (``RECIPES["shplrnn"]``, also the defaults of
    ``dynrnn reconstruct``): GTF with alpha 0.2, RAdam 1e-3 -> 1e-5 over 15,000 iterations of
    16 windows of 200 steps, gradient clip 10; :meth:`recipe` gives the others.
    """

    n_iterations: int = 15000
    seq_len: int = 200
    batch_size: int = 16
    forcing: str = "gtf"
    alpha: float = 0.2
    alpha_init: float = 1.0
    agtf_every: int = 5
    agtf_decay: float = 0.999
    tau: int | None = None
    lr: float = 1e-3
    lr_end: float = 1e-5
    optimizer: str = "radam"
    grad_clip: float | None = 10.0
    noise_std: float = 0.0
    noise_on_targets: bool = False
    loss_burn_in: int = 0
    time_budget: float | None = None
    stop_after: int | None = None
    seed: int = 0

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_iterations": Int(1),
        "seq_len": Int(1),
        "batch_size": Int(1),
        "forcing": Choice(FORCING),
        "alpha": Float(0.0, 1.0),
        "alpha_init": Float(0.0, 1.0),
        "agtf_every": Int(1),
        "agtf_decay": Float(0.0, 1.0),
        "tau": OrNone(Int(1)),
        "lr": Float(0.0, None, low_inclusive=False),
        "lr_end": Float(0.0, "lr", low_inclusive=False),
        "optimizer": Choice(("radam", "adam")),
        "grad_clip": OrNone(Float(0.0)),
        "noise_std": Float(0.0),
        "noise_on_targets": Bool(),
        "loss_burn_in": Int(0, lambda c: c.seq_len - 1),
        "time_budget": OrNone(Float(0.0, None, low_inclusive=False)),
        "stop_after": OrNone(Int(1, "n_iterations")),
        "seed": Int(0),
    }

    def __post_init__(self):
        validate_config(self)

    @classmethod
    def recipe(cls, model: str = "shplrnn", **overrides: Any) -> GTFConfig:
        """The training recipe of one model family (``RECIPES[model]["gtf"]``), with
        ``overrides`` (any field) applied: ``GTFConfig.recipe("alrnn", n_iterations=5000)``."""
        check_choice("GTFConfig.recipe", "model", model, tuple(RECIPES))
        return cls(**{**RECIPES[model]["gtf"], **overrides})


@dataclass(repr=False)
class GTFHistory(SummaryRepr):
    """Per-iteration records (lists of ``[K]`` numpy arrays, stacked by :meth:`as_arrays`)."""

    loss: list = field(default_factory=list)
    alpha: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    wall_time: list = field(default_factory=list)
    tau: int | None = None
    stopped: bool = False
    stop_reason: str = ""

    def _summary_rows(self) -> tuple[str, list[tuple[str, str]]]:
        n = len(self.loss)
        rows = [("iterations", str(n)), ("stopped early", str(bool(self.stopped)) + (
                    f" ({self.stop_reason})" if self.stop_reason else "")),
                ("STF interval tau", "-" if self.tau is None else str(self.tau))]
        if n:
            last = np.asarray(self.loss[-1], dtype=float)
            rows.insert(0, ("networks", str(last.size)))
            rows.append(("last loss", f"median {np.nanmedian(last):.3g}, "
                                      f"max {np.nanmax(last):.3g}"))
            rows.append(("wall time", f"{float(self.wall_time[-1]):.1f} s"))
        return f"GTFHistory: {n} iterations", rows


    def as_arrays(self) -> dict[str, np.ndarray]:
        """``loss``, ``alpha``, ``grad_norm`` as ``[n_iterations, K]``; ``lr``, ``wall_time``
        as ``[n_iterations]``."""
        return {
            "loss": np.asarray(self.loss),
            "alpha": np.asarray(self.alpha),
            "grad_norm": np.asarray(self.grad_norm),
            "lr": np.asarray(self.lr),
            "wall_time": np.asarray(self.wall_time),
        }

    def to_xarray(self):
        """The history as an ``xarray.Dataset``: ``loss``, ``alpha``, ``grad_norm``
        ``(network, iteration)``, ``lr`` and ``wall_time`` ``(iteration)``; attrs ``tau``
        (STF forcing interval, -1 if none), ``stopped`` and ``stop_reason``."""
        import xarray as xr

        a = self.as_arrays()
        n = len(self.loss)
        K = a["loss"].shape[1] if n else 0
        per_net = {k: (("network", "iteration"), a[k].reshape(n, K).T)
                   for k in ("loss", "alpha", "grad_norm")}  # fmt: skip
        data = {**per_net, "lr": (("iteration",), a["lr"]),
                "wall_time": (("iteration",), a["wall_time"])}  # fmt: skip
        coords = {"network": np.arange(K), "iteration": np.arange(n)}
        attrs = {"tau": -1 if self.tau is None else int(self.tau), "stopped": int(self.stopped),
                 "stop_reason": self.stop_reason}
        return xr.Dataset(data, coords=coords, attrs=attrs)


def check_dsr_data(data: Any, n_obs: int | None, owner: str, min_len: int = 2,
                   allow_nan: bool = False) -> torch.Tensor:
    """Validate observed time series: ``[T, N]`` or ``[R, T, N]`` -> float tensor ``[R, T, N]``.

    Raises ValueError for non-numeric input, wrong dimensionality, a wrong number of observed
    dimensions, NaN (unless ``allow_nan``: NaN = missing sample; then all-NaN is the error) or
    inf, or series shorter than ``min_len``.
    """
    x = check_tensor(owner, "data", data, dtype=torch.float32, detach=True)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(
            f"The 'data' parameter of {owner} must have shape [T, N] or [R, T, N]. Got "
            f"{tuple(x.shape)} instead."
        )
    if min(x.shape) < 1:
        raise ValueError(
            f"The 'data' parameter of {owner} must not be empty. Got shape {tuple(x.shape)}."
        )
    if n_obs is not None and x.shape[-1] != n_obs:
        raise ValueError(
            f"The 'data' parameter of {owner} must have N={n_obs} observed dimensions (the "
            f"model's n_outputs). Got {x.shape[-1]} (shape {tuple(x.shape)}) instead."
        )
    if allow_nan:
        if bool(torch.isinf(x).any()):
            raise ValueError(f"The 'data' parameter of {owner} contains inf values (NaN marks "
                             f"a missing sample).")
        if bool(torch.isnan(x).all()):
            raise ValueError(f"The 'data' parameter of {owner} is all NaN: no sample observed.")
    elif not bool(torch.isfinite(x).all()):
        raise ValueError(f"The 'data' parameter of {owner} contains NaN or inf values.")
    if x.shape[1] < min_len:
        raise ValueError(
            f"The 'data' parameter of {owner} has T={x.shape[1]} time steps; at least {min_len} "
            f"are needed (seq_len + 1)."
        )
    return x.contiguous()


@dataclass
class DSRData:
    """Training data of :func:`train_gtf`: trials padded to ``values [R, T_max, N]`` (NaN =
    missing sample or after a trial's end) with their ``lengths [R]``; ``starts [W, 2]`` lists
    every window ``(trial, first step)`` of ``length`` steps that lies inside its trial and
    whose first sample is observed in every channel (the state of a window is initialised from
    it), or is None when every trial has ``T_max`` finite samples (then any window is valid).
    """

    values: torch.Tensor
    lengths: torch.Tensor
    starts: torch.Tensor | None
    length: int
    source: str = "<array>"

    @property
    def has_missing(self) -> bool:
        return self.starts is not None and bool(torch.isnan(self.values).any())


def dsr_data(data: Any, n_obs: int | None, owner: str, length: int) -> DSRData:
    """Observations for training -> :class:`DSRData` with windows of ``length`` steps.

    ``data``: a :class:`~dynrnn.tasks.recordings.Recording`, a list of trials ``[T_r, N]`` (of
    different lengths), or an array / tensor ``[T, N]`` / ``[R, T, N]``; NaN marks a missing
    sample (inf is an error). Raises ValueError (naming the file of a Recording) when the data
    are all NaN, have the wrong number of channels, or no trial holds one window of ``length``
    steps starting at a fully observed sample.
    """
    from ..tasks.recordings import Recording, load_recording

    source = "<array>"
    if isinstance(data, Recording) or (isinstance(data, (list, tuple)) and len(data) and all(
            hasattr(d, "shape") for d in data)):
        rec = load_recording(data)
        source = rec.source
        where = f"{owner} (file {source})" if not source.startswith("<") else owner
        if n_obs is not None and rec.n_channels != n_obs:
            raise ValueError(
                f"The 'data' parameter of {where} must have N={n_obs} observed dimensions (the "
                f"model's n_outputs). Got {rec.n_channels} channels."
            )
        padded, lengths = rec.padded()
        x = torch.from_numpy(padded).to(torch.float32)
        lengths = torch.as_tensor(lengths)
    else:
        where = owner
        x = check_dsr_data(data, n_obs, owner, min_len=1, allow_nan=True)
        lengths = torch.full((x.shape[0],), x.shape[1])
    R, T, N = x.shape
    if bool(torch.isfinite(x).all()) and bool((lengths == T).all()):
        if T < length:
            raise ValueError(
                f"The 'data' parameter of {where} has T={T} time steps; at least {length} "
                f"are needed (seq_len + 1)."
            )
        return DSRData(x.contiguous(), lengths, None, length, source)
    first_ok = torch.isfinite(x).all(-1)  # [R, T]
    s = torch.arange(T)
    fits = s[None, :] <= (lengths[:, None] - length)
    r_idx, s_idx = torch.nonzero(first_ok & fits, as_tuple=True)
    if r_idx.numel() == 0:
        raise ValueError(
            f"The 'data' parameter of {where} is too short for one training window: no trial "
            f"has {length} steps (seq_len + 1) from a fully observed sample (trial lengths "
            f"{lengths.tolist()[:8]})."
        )
    return DSRData(x.contiguous(), lengths, torch.stack([r_idx, s_idx], 1), length, source)


def sample_windows(data: Any, K: int, B: int, length: int, gen: torch.Generator):
    """Random windows ``[K, B, length, N]`` (independent per network).

    ``data``: ``[R, T, N]`` (trial and start drawn uniformly) or a :class:`DSRData` with a list
    of valid windows (one drawn uniformly among them: trials weigh by their number of windows).
    """
    if isinstance(data, DSRData):
        if data.starts is None:
            data = data.values
        else:
            pick = torch.randint(0, data.starts.shape[0], (K * B,), generator=gen)
            r, s = data.starts[pick, 0], data.starts[pick, 1]
            idx = s[:, None] + torch.arange(length)[None, :]
            return data.values[r[:, None], idx].reshape(K, B, length, data.values.shape[-1])
    R, T, N = data.shape
    r = torch.randint(0, R, (K * B,), generator=gen)
    s = torch.randint(0, T - length + 1, (K * B,), generator=gen)
    idx = s[:, None] + torch.arange(length)[None, :]
    return data[r[:, None], idx].reshape(K, B, length, N)


def poisson_nll(log_rate: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson negative log-likelihood ``lambda - x log(lambda) + log(x!)`` from
    ``log_rate = log(lambda)`` (same shape as ``counts``; ``log x! = lgamma(x + 1)``).

    Computed from the log rate so that a tiny rate never takes the log of 0."""
    return torch.exp(log_rate) - counts * log_rate + torch.lgamma(counts + 1)


def _is_poisson(model) -> bool:
    return getattr(getattr(model, "config", None), "observation", "identity") == "poisson"


def _forcing_weights(model, alpha: torch.Tensor) -> torch.Tensor:
    """Per-unit forcing weight ``[K, 1, M]``: alpha on the forced units, 0 on the others."""
    K, M = model.n_networks, model.n_units
    w = torch.zeros(K, 1, M, dtype=alpha.dtype, device=alpha.device)
    if getattr(model.config, "observation", "identity") == "identity":
        w[:, :, : model.n_outputs] = alpha[:, None, None]
    else:
        w[:] = alpha[:, None, None]
    return w


def gtf_loss(
    model,
    windows: torch.Tensor,
    alpha: torch.Tensor | float,
    *,
    forcing: str = "gtf",
    tau: int = 1,
    teacher: torch.Tensor | None = None,
    return_states: bool = False,
    backend: str = "auto",
    loss_burn_in: int = 0,
):
    """Forced rollout over data windows and the per-network MSE of unforced predictions.

    Arguments:
        model: a K-network model (PLRNN family, or any model with ``n_outputs`` observed units).
        windows: data ``[K, B, S+1, N]``; step 0 (of ``teacher``) initialises the state and
            must be observed (Poisson observation: spike counts). NaN marks a missing sample:
            it is left out of the loss (the MSE or Poisson NLL is the mean over the observed
            targets of each network), and where the forcing
            signal ``zhat`` is missing the model runs unforced for those units at that step
            (affine observation: a step with any missing channel is unforced); nothing is
            interpolated. Windows with missing samples take the plain autograd loop.
        alpha: forcing strength, float or ``[K]``.
        forcing: ``"gtf"``/``"agtf"`` (every step with weight alpha), ``"stf"`` (weight 1 every
            ``tau`` steps), ``"none"`` (free run from the first state).
        teacher: the data used for forcing (default ``windows``; e.g. a noisy copy). Poisson
            observation: a rate estimate in counts per bin (default: the model's
            ``rate_estimate`` of ``windows``, smoothed within each window; :func:`train_gtf`
            passes the counts smoothed over whole trials instead).
        return_states: also return the forced states ``z~ [K, B, S, M]`` (detached).
        loss_burn_in: leading predicted steps left out of the loss (the unobserved latent units
            start at 0 in every window; a burn-in lets them settle under forcing first).
        backend: ``"auto"`` uses the model's fused rollout with hand-written BPTT where it
            has one (``model.has_fused_forced_rollout()``: autonomous PLRNN-family models,
            :mod:`dynrnn.kernels.plrnn_rollout`);
            ``"reference"`` forces the plain autograd loop (the specification).

    Returns:
        ``loss [K]`` (mean over B, S, N; over the observed entries where samples are missing)
        and, if requested, the forced states. Poisson observation: the mean Poisson negative
        log-likelihood (:func:`poisson_nll`, including ``log x!``) of the counts under the
        unforced predictions.
    """
    K = model.n_networks
    poisson = _is_poisson(model)
    if teacher is None:
        teacher = model.rate_estimate(windows, dim=2) if poisson else windows
    S = windows.shape[2] - 1
    alpha = torch.as_tensor(alpha, dtype=windows.dtype).expand(K)
    check_choice("gtf_loss", "backend", backend, ("auto", "reference"))
    missing = bool(torch.isnan(teacher).any()) or bool(torch.isnan(windows).any())
    if missing and bool(torch.isnan(teacher[:, :, 0]).any()):
        raise ValueError("The 'windows' parameter of gtf_loss must be observed in every channel "
                         "at step 0 (it initialises the state); NaN found there.")
    zhat = latent_from_observation(model, teacher)  # [K, B, S+1, M]
    seen = None
    if missing:  # NaN = missing: no forcing of those units at that step, no loss there
        seen = torch.isfinite(zhat).to(zhat.dtype)
        zhat = torch.nan_to_num(zhat, nan=0.0)
    # [K, B, M], may carry gradient (a learned initial state)
    z0 = latent_from_observation(model, teacher[:, :, 0], initial=True)
    if forcing == "stf":
        w = _forcing_weights(model, torch.ones_like(alpha))
    else:
        w = _forcing_weights(model, alpha)
    use_forcing = forcing in ("gtf", "agtf") and bool((alpha > 0).any())
    if backend == "auto" and model.has_fused_forced_rollout() and not missing:
        weights = torch.zeros(S, *w.shape, dtype=w.dtype)
        if use_forcing:
            weights[:] = w
        elif forcing == "stf":
            weights[:: max(int(tau), 1)] = w
        Z, ZF = model.fused_forced_rollout(zhat.transpose(1, 2).contiguous(), weights, z0)
        Z, forced = Z.transpose(1, 2), ZF.transpose(1, 2)
    else:
        zhat_steps = zhat.unbind(2)
        seen_steps = seen.unbind(2) if seen is not None else None
        z = z0
        params = model.prepare()
        drive = model.input_drive(torch.zeros(1, windows.shape[1], model.n_inputs,
                                              dtype=windows.dtype))
        states, forced = [], []
        for t in range(1, S + 1):
            if t > 1 and (use_forcing or (forcing == "stf" and (t - 1) % tau == 0)):
                wt = w if seen_steps is None else w * seen_steps[t - 1]
                z = torch.lerp(z, zhat_steps[t - 1], wt)
            if return_states:
                forced.append(z.detach())
            z = model.step_drive(z, drive, params)
            states.append(z)
        Z = torch.stack(states, dim=2)  # [K, B, S, M]
        forced = torch.stack(forced, dim=2) if return_states else None
    skip = min(int(loss_burn_in), S - 1)
    target = windows[:, :, 1 + skip:]
    if poisson:
        log_rate = model.log_expected_counts(Z)[:, :, skip:]
        if missing:
            observed = torch.isfinite(target)
            nll = torch.where(observed, poisson_nll(log_rate, torch.nan_to_num(target, nan=0.0)),
                              torch.zeros((), dtype=log_rate.dtype))
            count = observed.sum(dim=(1, 2, 3)).clamp_min(1).to(log_rate.dtype)
            loss = nll.sum(dim=(1, 2, 3)) / count
        else:
            loss = poisson_nll(log_rate, target).mean(dim=(1, 2, 3))
        if return_states:
            return loss, forced
        return loss
    pred = model.readout(Z)
    if missing:
        observed = torch.isfinite(target)
        err = torch.where(observed, pred[:, :, skip:] - torch.nan_to_num(target, nan=0.0),
                          torch.zeros((), dtype=pred.dtype))
        count = observed.sum(dim=(1, 2, 3)).clamp_min(1).to(pred.dtype)
        loss = err.pow(2).sum(dim=(1, 2, 3)) / count
    else:
        loss = (pred[:, :, skip:] - target).pow(2).mean(dim=(1, 2, 3))
    if return_states:
        return loss, forced
    return loss


@torch.no_grad()
def estimate_alpha(model, forced_states: torch.Tensor, max_points: int = 2048) -> torch.Tensor:
    """aGTF estimate ``alpha* = max(0, 1 - 1/kappa)`` per network, ``[K]``.

    ``kappa`` is the geometric mean of the spectral norms of the Jacobians at (up to
    ``max_points`` of) the forced states ``[K, B, S, M]`` along the data.
    """
    K, M = forced_states.shape[0], forced_states.shape[-1]
    z = forced_states.reshape(K, -1, M)
    if z.shape[1] > max_points:
        z = z[:, :: int(math.ceil(z.shape[1] / max_points))]
    J = model.jacobian(z.to(model.dtype))
    norms = torch.linalg.matrix_norm(J.double(), ord=2).clamp_min(1e-12)
    kappa = norms.log().mean(dim=1).exp()
    return (1.0 - 1.0 / kappa).clamp(min=0.0).to(forced_states.dtype)


def _first_local_min(curve: np.ndarray) -> int | None:
    for k in range(1, len(curve) - 1):
        if curve[k] <= curve[k - 1] and curve[k] < curve[k + 1]:
            return k
    return None


def estimate_forcing_interval(
    data: Any, method: str = "mi", max_lag: int = 500, n_bins: int = 32
) -> int:
    """Forcing interval tau of sparse TF from the data (Mikhaeil, Monfared & Durstewitz 2022,
    On the difficulty of learning chaotic dynamics with RNNs, NeurIPS 35: tau from the first
    minimum of the mutual information or of the autocorrelation).

    Arguments:
        data: observations ``[T, N]`` or ``[R, T, N]``, a list of trials ``[T_r, N]`` or a
            :class:`~dynrnn.tasks.recordings.Recording`; NaN = missing sample (pairs with a
            missing member are left out of the sums; nothing is interpolated).
        method: ``"mi"`` -- first local minimum of the time-delayed mutual information
            ``I(x_t; x_{t+k})`` (histogram estimate with ``n_bins`` bins per channel, pooled
            over trials, averaged over channels and smoothed over 5 lags; Fraser & Swinney
            1986, Independent coordinates for strange attractors from mutual information,
            Physical Review A 33, 1134); ``"ac"`` -- first local minimum of the autocorrelation
            ``C(k) = sum_t x_t x_{t+k} / sum_t x_t^2`` (standardised channels, observed pairs,
            summed over trials, averaged over channels) or its first zero crossing, if
            earlier.
        max_lag: largest lag considered (returned if no minimum is found before); at least
            ``max_lag + 2`` samples are needed in the longest trial.

    Returns:
        tau >= 1 (in samples).
    """
    owner = "estimate_forcing_interval"
    check_choice(owner, "method", method, ("mi", "ac"))
    max_lag = check_int(owner, "max_lag", max_lag, 2)
    n_bins = check_int(owner, "n_bins", n_bins, 2)
    d = dsr_data(data, None, owner, length=1)
    lengths = d.lengths.tolist()
    if max(lengths) < max_lag + 2:
        raise ValueError(
            f"The 'data' parameter of {owner} has T={max(lengths)} time steps; at least "
            f"{max_lag + 2} are needed (max_lag + 2)."
        )
    trials = [d.values[r, :n].double().numpy() for r, n in enumerate(lengths)]
    allx = np.concatenate(trials, 0)
    mean, std = np.nanmean(allx, 0), np.nanstd(allx, 0)
    trials = [(x - mean) / np.where(std > 0, std, 1.0) for x in trials]
    N = allx.shape[1]
    lags = np.arange(0, max_lag + 1)
    if method == "ac":
        ac = np.zeros(max_lag + 1)
        for x in trials:
            T = len(x)
            F = np.fft.rfft(np.nan_to_num(x, nan=0.0), n=2 * T, axis=0)
            full = np.fft.irfft(np.abs(F) ** 2, axis=0)[: max_lag + 1].mean(1)
            ac[: len(full)] += full[: max_lag + 1]
        ac = ac / ac[0]
        k_min = _first_local_min(ac)
        zero = np.nonzero(ac <= 0)[0]
        cands = [k for k in (k_min, int(zero[0]) if zero.size else None) if k]
        return int(min(cands)) if cands else max_lag
    edges = [np.linspace(np.nanmin(allx_d), np.nanmax(allx_d) + 1e-12, n_bins + 1)
             for allx_d in np.concatenate(trials, 0).T]
    coded = []
    for x in trials:
        c = np.stack([np.clip(np.digitize(x[:, j], edges[j]) - 1, 0, n_bins - 1)
                      for j in range(N)], 1)
        coded.append(np.where(np.isfinite(x), c, -1))
    mi = np.zeros(len(lags))
    for i, lag in enumerate(lags):
        for j in range(N):
            joint = np.zeros(n_bins * n_bins)
            for c in coded:
                if len(c) <= lag:
                    continue
                a, b = c[: len(c) - lag, j], c[lag:, j]
                ok = (a >= 0) & (b >= 0)
                joint += np.bincount(a[ok] * n_bins + b[ok], minlength=n_bins * n_bins)
            joint = joint.reshape(n_bins, -1)
            if joint.sum() == 0:
                continue
            p = joint / joint.sum()
            pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
            nz = p > 0
            mi[i] += (p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum() / N
    # light smoothing (5 lags) so that histogram noise does not create spurious minima
    smooth = np.convolve(np.pad(mi, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    k = _first_local_min(smooth)
    return int(k) if k else max_lag


@adapts_threads
def train_gtf(
    model,
    data: Any,
    config: GTFConfig | None = None,
    *,
    callback: Callable[[int, Any, GTFHistory], bool | None] | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> GTFHistory:
    """Train the K networks of ``model`` on observed time series with teacher forcing.

    Arguments:
        model: a K-network model whose ``n_outputs`` equals the data dimension N (PLRNN family;
            parameters are updated in place).
        data: observations ``[T, N]`` or ``[R, T, N]``, a list of trials ``[T_r, N]`` of
            different lengths, or a :class:`~dynrnn.tasks.recordings.Recording` (standardise
            them first; for a Poisson observation model spike counts as they are -- every
            observed sample a non-negative integer, else ValueError naming ``data`` and the
            file -- whose forcing signal is the model's ``rate_estimate`` of each whole trial,
            and ``noise_std`` must be 0). NaN marks a missing sample: left out of the loss, and
            no forcing of that unit at that step (see :func:`gtf_loss`); windows of
            ``seq_len + 1`` steps are drawn uniformly among those inside a trial that start at
            a fully observed sample.
        config: a :class:`GTFConfig` (defaults: GTF alpha 0.2, RAdam 1e-3 -> 1e-6, clip 10).
        callback: called as ``callback(iteration, model, history)`` after each iteration;
            returning True stops training (e.g. when DSR metrics are reached, or a validation
            criterion ran out of patience); the learning-rate schedule is not reshaped.
        seed: seeds the window sampling and the teacher noise (same seed -> same result);
            None (default) takes ``config.seed``.
        progress: show a tqdm progress bar on stderr over the iterations; evaluations of a
            :class:`~dynrnn.analyses.BestCheckpoint` callback show on it as ``evaluating``.
            When the callback stops training the bar's total becomes the iterations run.

    Returns:
        :class:`GTFHistory` with per-iteration ``loss [K]``, ``alpha [K]``, ``grad_norm [K]``,
        ``lr`` and wall time; ``tau`` (STF); ``.to_xarray()`` gives them as a Dataset with
        dims ``network`` and ``iteration``.
    """
    owner = "train_gtf"
    config = GTFConfig() if config is None else config
    if not isinstance(config, GTFConfig):
        raise ParameterTypeError(
            f"The 'config' parameter of {owner} must be a GTFConfig. Got {config!r}."
        )
    check_bool(owner, "progress", progress)
    seed = config.seed if seed is None else check_int(owner, "seed", seed, 0)
    if not isinstance(model, torch.nn.Module) or not all(
        hasattr(model, a) for a in ("n_networks", "n_outputs", "step_drive", "readout")
    ):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be a dynrnn model (e.g. a PLRNN). Got "
            f"{type(model).__name__} instead."
        )
    if callback is not None and not callable(callback):
        raise ParameterTypeError(
            f"The 'callback' parameter of {owner} must be callable or None. Got {callback!r}."
        )
    dd = dsr_data(data, model.n_outputs, owner, config.seq_len + 1)
    poisson = _is_poisson(model)
    if poisson:
        from ..tasks.recordings import check_counts

        check_counts(dd.values, owner, "data", dd.source)
        if config.noise_std > 0:
            raise ValueError(
                f"The 'noise_std' parameter of {owner} must be 0 for a Poisson observation "
                f"model (spike counts carry their own noise; Gaussian noise would make them "
                f"non-integer). Got {config.noise_std}."
            )
    dd.values = dd.values.to(model.dtype)
    x = dd.values
    n_obs = x.shape[-1]
    if poisson:  # forcing signal: counts smoothed over whole trials, drawn with the same windows
        rates = model.rate_estimate(x, dim=1)
        dd.values = torch.cat([x, rates], dim=-1)
    K = model.n_networks
    gen = resolve_generator(seed)
    tau = config.tau
    if config.forcing == "stf" and tau is None:
        longest = int(dd.lengths.max())
        tau = estimate_forcing_interval(x if dd.starts is None else data,
                                        max_lag=max(2, min(500, longest - 2)))
    hist = GTFHistory(tau=tau)
    opt = EnsembleOptimizer(
        [p for p in model.parameters() if p.requires_grad], kind=config.optimizer, lr=config.lr
    )
    if config.forcing == "agtf":
        alpha = torch.full((K,), config.alpha_init, dtype=x.dtype)
    elif config.forcing == "gtf":
        alpha = torch.full((K,), config.alpha, dtype=x.dtype)
    else:
        alpha = torch.zeros(K, dtype=x.dtype)
    n = config.n_iterations
    decay = (config.lr_end / config.lr) ** (1.0 / max(n - 1, 1))
    active = torch.ones(K, dtype=torch.bool)
    t0 = time.perf_counter()
    threads = IterationThreads()
    with progress_bar(progress, total=n, desc="train_gtf") as bar:
        for it in range(n):
            threads.tick()
            lr = config.lr * decay**it
            opt.lr.fill_(lr)
            win = sample_windows(dd, K, config.batch_size, config.seq_len + 1, gen)
            teacher = None
            if poisson:
                win, teacher = win[..., :n_obs], win[..., n_obs:]
            if config.noise_std > 0:
                teacher = win + config.noise_std * torch.randn(win.shape, generator=gen,
                                                               dtype=win.dtype)
                if config.noise_on_targets:
                    win, teacher = teacher, None
            want_states = config.forcing == "agtf" and it % config.agtf_every == 0
            out = gtf_loss(model, win, alpha, forcing=config.forcing, tau=tau or 1,
                           teacher=teacher, return_states=want_states,
                           loss_burn_in=config.loss_burn_in)
            loss, forced = out if want_states else (out, None)
            opt.zero_grad()
            loss.sum().backward()
            gnorm = per_network_grad_norm(opt.params)
            finite = torch.isfinite(gnorm) & torch.isfinite(loss.detach())
            scale = None
            if config.grad_clip:
                scale = (config.grad_clip / gnorm.clamp_min(1e-12)).clamp(max=1.0)
                scale = torch.where(finite, scale, torch.zeros_like(scale))
            opt.step(active & finite, scale)
            if hasattr(model, "project_"):
                model.project_()
            if forced is not None:
                est = estimate_alpha(model, forced)
                alpha = torch.where(est > alpha, est,
                                    config.agtf_decay * alpha + (1 - config.agtf_decay) * est)
            hist.loss.append(loss.detach().numpy().copy())
            hist.alpha.append(alpha.numpy().copy())
            hist.grad_norm.append(gnorm.numpy().copy())
            hist.lr.append(lr)
            hist.wall_time.append(time.perf_counter() - t0)
            bar.update(1)
            if callback is not None and callback(it, model, hist):
                hist.stopped, hist.stop_reason = True, "callback"
                if it + 1 < n:
                    finish_early(bar, "stopped by the callback")
                break
            if config.time_budget is not None and hist.wall_time[-1] >= config.time_budget:
                if it + 1 < n:
                    hist.stopped, hist.stop_reason = True, "time budget"
                    finish_early(bar, "time budget reached")
                break
            if config.stop_after is not None and it + 1 >= config.stop_after:
                if it + 1 < n:
                    hist.stopped, hist.stop_reason = True, "stop_after"
                    finish_early(bar, f"stopped after {it + 1} iterations")
                break
    return hist
