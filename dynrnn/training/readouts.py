"""Readout learning for reservoirs: offline ridge, FORCE / RLS, and a three-factor Hebbian rule.

* :func:`ridge_readout` -- ``W_out = argmin ||X W^T - Y||^2 + alpha ||W||^2`` per network from
  the reservoir features (ESN states, or filtered spike rates of an Izhikevich reservoir).
* :func:`force_train` -- FORCE learning (Sussillo & Abbott 2009) with recursive least squares:
  ``k = P r``, ``c = 1 / (1 + r.k)``, ``P <- P - c k k^T``, ``e = W_out r - f``,
  ``W_out <- W_out - c e k^T``, ``P(0) = I / alpha``, every ``update_every`` steps, while the
  output is fed back into the reservoir; for rate (ESN) and spiking (Izhikevich, Nicola &
  Clopath 2017) reservoirs alike.
* :class:`ThreeFactorReadout` (trained on a sequence of trials by :func:`train_three_factor`)
  -- error-modulated, attention-gated Hebbian readout for the
  what/when paradigm (after Yamada & Chao 2025; the trace time constant and gate form are our
  choice, stated below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from .._progress import progress_bar
from .._validation import (
    Bool,
    Check,
    Choice,
    Constraint,
    Float,
    Int,
    ParameterTypeError,
    check_bool,
    check_finite,
    check_float,
    check_int,
    check_model_tensor,
    check_shape,
    check_tensor,
    resolve_generator,
    validate_config,
)
from ..kernels._threads import adapts_threads
from ..kernels.hebbian import three_factor_online
from ..models.base import RecurrentModel, run

__all__ = [
    "reservoir_features",
    "ridge_readout",
    "RidgeResult",
    "force_train",
    "ForceResult",
    "ThreeFactorConfig",
    "ThreeFactorReadout",
    "ThreeFactorResult",
    "train_three_factor",
    "RLSReadout",
]


def _is_spiking(model) -> bool:
    return hasattr(model, "simulate") and hasattr(model, "n_neurons")


def _check_reservoir(model, owner: str) -> None:
    """A dynrnn model with a linear readout ``W_out`` on ``_readout_input`` (reservoirs)."""
    if not isinstance(model, RecurrentModel) or not hasattr(model, "W_out"):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be a dynrnn model with a linear readout "
            f"W_out (EchoStateNetwork, IzhikevichReservoir, ...). Got {type(model).__name__} "
            f"instead."
        )


def _check_seed(seed, owner: str):
    """``seed`` (None, a non-negative int or a Generator) checked naming ``seed``."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return check_int(owner, "seed", seed, 0)


def _check_noise(noise, owner: str):
    return None if noise is None else check_bool(owner, "noise", noise)


def reservoir_features(
    model: RecurrentModel,
    x: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    seed: int | torch.Generator | None = 0,
    noise: bool | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The readout features ``[K, B, T, F]``: ESN states, or Izhikevich filtered rates.

    ``noise`` defaults to False for rate reservoirs and True for spiking ones (their
    thalamic noise). ``progress``: show the tqdm progress bar of
    :meth:`~dynrnn.models.IzhikevichReservoir.simulate` (spiking reservoirs; an ESN runs
    through :func:`~dynrnn.models.run`, which has no bar -- see
    :mod:`dynrnn.models.reservoir`)."""
    owner = "reservoir_features"
    _check_reservoir(model, owner)
    noise = _check_noise(noise, owner)
    seed = _check_seed(seed, owner)
    check_bool(owner, "progress", progress)
    x, _ = check_model_tensor(
        owner, "x", x, model, [("B", "T", "I"), ("K|1", "B", "T", "I")], dtype=model.dtype,
        detach=True,
    )
    with torch.no_grad():
        if _is_spiking(model):
            res = model.simulate(
                x=x, h0=h0, seed=seed, noise=True if noise is None else noise, record_rates=True,
                progress=progress,
            )
            return res.rates
        S, _ = run(model, x, h0, noise=bool(noise), generator=seed)
        return model._readout_input(S)


@dataclass
class RidgeResult:
    """Outcome of :func:`ridge_readout` (the weights are also written into the model).

    Attributes:
        mse: ``[K]`` training MSE per network (float32).
        W_out: ``[K, O, F]`` fitted readout weights.
        b_out: ``[K, O]`` fitted readout bias, or None when the model has none.
        alpha: the ridge penalty used.
        washout: leading steps excluded from the fit.
    """

    mse: torch.Tensor
    W_out: torch.Tensor
    b_out: torch.Tensor | None
    alpha: float
    washout: int

    def to_xarray(self):
        """``mse (network)``, ``W_out (network, output, feature)``, ``b_out (network, output)``
        as an ``xarray.Dataset``; attrs ``alpha``, ``washout``."""
        import xarray as xr

        K = self.mse.shape[0]
        data = {
            "mse": (("network",), self.mse.detach().cpu().numpy()),
            "W_out": (("network", "output", "feature"), self.W_out.detach().cpu().numpy()),
        }
        if self.b_out is not None:
            data["b_out"] = (("network", "output"), self.b_out.detach().cpu().numpy())
        attrs = {"alpha": self.alpha, "washout": self.washout}
        return xr.Dataset(data, coords={"network": np.arange(K)}, attrs=attrs)


def ridge_readout(
    model: RecurrentModel,
    x: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    *,
    features: torch.Tensor | None = None,
    alpha: float = 1e-6,
    washout: int = 0,
    mask: torch.Tensor | None = None,
    seed: int | torch.Generator | None = 0,
    progress: bool = True,
) -> RidgeResult:
    """Fit ``W_out`` (and ``b_out`` if the model has a readout bias) by ridge regression.

    Arguments:
        model: a reservoir (``EchoStateNetwork`` or ``IzhikevichReservoir``) with K networks.
        x: inputs ``[B, T, I]`` or ``[K or 1, B, T, I]`` (ignored if ``features`` given).
        targets: ``[B, T, O]`` or ``[K, B, T, O]``.
        features: precomputed features ``[K, B, T, F]`` (e.g. from :func:`reservoir_features`).
        alpha: ridge penalty (>= 0) on the weights (not on the bias).
        washout: first steps excluded.
        mask: ``[B, T]`` bool, steps used (after washout).
        seed: seed of the reservoir's noise (when the features are computed here).
        progress: show a tqdm progress bar on stderr while the features of a spiking
            reservoir are simulated (see :func:`reservoir_features`); the fit itself is a few
            batched matrix products and solves.

    Returns:
        :class:`RidgeResult` with the per-network training MSE ``mse [K]`` and the fitted
        weights (``.to_xarray()``: a Dataset with a ``network`` dim). The weights are written
        into the model.
    """
    owner = "ridge_readout"
    _check_reservoir(model, owner)
    alpha = check_float(owner, "alpha", alpha, 0.0, 1e12)
    washout = check_int(owner, "washout", washout, 0)
    seed = _check_seed(seed, owner)
    check_bool(owner, "progress", progress)
    if targets is None:
        raise ValueError("The 'targets' argument of ridge_readout is required.")
    targets = check_tensor(owner, "targets", targets, finite=True, detach=True)
    if features is None:
        if x is None:
            raise ValueError("ridge_readout needs 'x' or 'features'.")
        features = reservoir_features(model, x, seed=seed, progress=progress)
    else:
        # finiteness is checked on the Gram matrix below (its diagonal holds each feature's
        # sum of squares, non-finite exactly when a used entry is): a separate isfinite pass
        # over a [K, B, T, F] tensor cost ~40% of the products on a 50,000 x 1,000 fit
        features = check_tensor(owner, "features", features, detach=True)
        F_model = int(model.W_out.shape[-1])
        check_shape(owner, "features", features, [("K", "B", "T", "F")], "model",
                    K=model.n_networks, F=F_model)
    K, B, T, F = features.shape
    if targets.ndim not in (3, 4):
        raise ValueError(
            f"The 'targets' argument of {owner} must have shape [(K,) B={B}, T={T}, "
            f"O={model.n_outputs}]. Got {tuple(targets.shape)}."
        )
    if mask is not None:
        mask = check_tensor(owner, "mask", mask, detach=True)
        check_shape(owner, "mask", mask, [("B", "T")], "features", B=B, T=T)
    Y = targets if targets.ndim == 4 else targets.unsqueeze(0)
    if Y.shape[1:3] != (B, T) or Y.shape[0] not in (1, K) or Y.shape[-1] != model.n_outputs:
        raise ValueError(
            f"The 'targets' argument of {owner} must have shape [(K,) B={B}, T={T}, "
            f"O={model.n_outputs}] (B and T of 'x' / 'features'). Got {tuple(targets.shape)}."
        )
    if washout >= T:
        raise ValueError(f"The 'washout' parameter of {owner} must be < T={T}. Got {washout}.")
    dtype = torch.float64
    if mask is None:  # a view for B = 1: no copy of the (large) feature tensor
        X = features[:, :, washout:].reshape(K, -1, F).to(dtype)
        Yk = Y[:, :, washout:].expand(K, -1, -1, -1).reshape(K, -1, Y.shape[-1]).to(dtype)
    else:
        keep = torch.zeros(B, T, dtype=torch.bool)
        keep[:, washout:] = True
        keep &= mask.bool()
        X = features[:, keep].to(dtype)  # [K, M, F]
        Yk = Y.expand(K, -1, -1, -1)[:, keep].to(dtype)
    use_bias = bool(getattr(model.config, "readout_bias", False))
    O = Yk.shape[-1]
    if X.device.type == "cpu":
        # numpy's BLAS measured ~1.5x faster than torch.matmul for this tall-skinny X^T X;
        # X^T [Y 1] gives X^T Y and the column sums of X in one pass over X
        Xn, Yn = X.detach().numpy(), Yk.detach().numpy()
        ones = np.ones((X.shape[1], 1))
        with np.errstate(all="ignore"):  # non-finite features are reported below
            G = torch.stack([torch.from_numpy(xk.T @ xk) for xk in Xn])
            RS = torch.stack([torch.from_numpy(xk.T @ np.concatenate([yk, ones], 1))
                              for xk, yk in zip(Xn, Yn)])
        R, sx_all = RS[..., :O], RS[..., O]
    else:
        G = X.transpose(1, 2) @ X
        R = X.transpose(1, 2) @ Yk
        sx_all = None
    if not bool(torch.isfinite(torch.diagonal(G, dim1=1, dim2=2)).all()):
        # the used entries of the features hold NaN or inf (or overflow when squared)
        check_finite(owner, "features", X)
        raise ValueError(f"The 'features' parameter of {owner} must be finite; its sum of "
                         f"squares overflows (entries too large).")
    if use_bias:  # [X 1]^T [X 1] without concatenating a column of ones
        sx = X.sum(1) if sx_all is None else sx_all  # [K, F]
        sy = Yk.sum(1)  # [K, O]
        M = torch.full((K, 1, 1), float(X.shape[1]), dtype=dtype)
        G = torch.cat([torch.cat([G, sx[:, :, None]], 2), torch.cat([sx[:, None, :], M], 2)], 1)
        R = torch.cat([R, sy[:, None, :]], 1)
    reg = torch.full((G.shape[-1],), alpha, dtype=dtype)
    if use_bias:
        reg[-1] = 0.0
    G = G + torch.diag(reg)
    W = torch.linalg.solve(G, R)  # [K, F(+1), O]
    with torch.no_grad():
        model.W_out.copy_(W[:, :F].transpose(1, 2).to(model.W_out.dtype))
        if use_bias:
            model.b_out.copy_(W[:, F].to(model.b_out.dtype))
    pred = X @ W[:, :F]
    if use_bias:
        pred = pred + W[:, F][:, None, :]
    mse = ((pred - Yk) ** 2).mean((1, 2)).to(torch.float32)
    return RidgeResult(
        mse=mse,
        W_out=W[:, :F].transpose(1, 2).contiguous(),
        b_out=W[:, F].clone() if use_bias else None,
        alpha=alpha,
        washout=washout,
    )


# --------------------------------------------------------------------------------- FORCE
@dataclass
class ForceResult:
    """Outcome of :func:`force_train`.

    Attributes:
        outputs: ``[K, T, O]`` readout during training (before each update).
        errors: ``[K, T]`` squared error ``|z - f|^2`` during training.
        P: ``[K, F, F]`` final inverse correlation matrix.
        final_state: ``[K, 1, n_units]`` to continue the run with the frozen readout.
    """

    outputs: torch.Tensor
    errors: torch.Tensor
    P: torch.Tensor
    final_state: torch.Tensor

    def to_xarray(self):
        """``outputs (network, time, output)``, ``errors (network, time)`` and ``P (network,
        feature, feature_2)`` as an ``xarray.Dataset``."""
        import xarray as xr

        K, T, _ = self.outputs.shape
        data = {
            "outputs": (("network", "time", "output"), self.outputs.detach().cpu().numpy()),
            "errors": (("network", "time"), self.errors.detach().cpu().numpy()),
            "P": (("network", "feature", "feature_2"), self.P.detach().cpu().numpy()),
        }
        return xr.Dataset(data, coords={"network": np.arange(K), "time": np.arange(T)})


@adapts_threads
def force_train(
    model: RecurrentModel,
    targets: torch.Tensor,
    x: torch.Tensor | None = None,
    *,
    alpha: float = 1.0,
    update_every: int = 1,
    washout: int = 0,
    h0: torch.Tensor | None = None,
    P0: torch.Tensor | None = None,
    noise: bool | None = None,
    seed: int | torch.Generator | None = 0,
    progress: bool = True,
) -> ForceResult:
    """FORCE-train the readout ``W_out`` of each of the K networks (one trial each) in place.

    The reservoir runs with its output fed back (``W_fb`` of an ESN, ``eta`` of an Izhikevich
    reservoir) through the readout being learnt; the RLS update (module docstring) is applied
    every ``update_every`` steps after ``washout`` steps.

    Arguments:
        model: ``EchoStateNetwork`` or ``IzhikevichReservoir``.
        targets: ``[T, O]`` or ``[K, T, O]`` target outputs f.
        x: inputs ``[T, I]`` / ``[1, T, I]`` / ``[K, 1, T, I]`` or None (no input).
        alpha: regulariser, ``P(0) = I / alpha`` (> 0).
        update_every: steps between RLS updates (>= 1).
        washout: steps before the first update.
        h0: initial state ``[K or 1, 1, n_units]``; default ``model.init_state(1)``.
        P0: initial ``P [K, F, F]`` (e.g. from a previous call) instead of ``I / alpha``.
        noise: per-step noise (default: True for spiking reservoirs, False for rate ones).
        seed: seed of the noise (same seed -> same result).
        progress: show a tqdm progress bar on stderr over the T steps.

    Returns:
        :class:`ForceResult` (``.to_xarray()``: a Dataset with a ``network`` dim).
    """
    owner = "force_train"
    _check_reservoir(model, owner)
    alpha = check_float(owner, "alpha", alpha, 0.0, math.inf, low_inclusive=False)
    update_every = check_int(owner, "update_every", update_every, 1)
    washout = check_int(owner, "washout", washout, 0)
    check_bool(owner, "progress", progress)
    noise = _check_noise(noise, owner)
    K = model.n_networks
    dtype = model.dtype
    targets = check_tensor(owner, "targets", targets, dtype=dtype, finite=True, detach=True)
    f = targets if targets.ndim == 3 else targets.unsqueeze(0)
    if f.ndim != 3 or f.shape[0] not in (1, K) or f.shape[-1] != model.n_outputs or (
        f.shape[1] < 1
    ):
        raise ValueError(
            f"The 'targets' argument of {owner} must have shape [(K,) T, O={model.n_outputs}] "
            f"with T >= 1. Got {tuple(targets.shape)}."
        )
    T = f.shape[1]
    f = f.expand(K, -1, -1)
    if x is None:
        x = torch.zeros(1, 1, T, model.n_inputs, dtype=dtype)
    x, _ = check_model_tensor(
        owner, "x", x, model, [("T", "I"), (1, "T", "I"), ("K|1", 1, "T", "I")], dtype=dtype,
        detach=True, T=T,
    )
    while x.ndim < 4:
        x = x.unsqueeze(0)
    spiking = _is_spiking(model)
    if noise is None:
        noise = spiking
    gen = resolve_generator(seed, owner=owner)
    if h0 is None:
        h = model.init_state(1, gen)
    else:
        h = model._check_state(h0, owner, "h0").to(dtype)
        if h.shape[1] != 1:
            raise ValueError(
                f"The 'h0' parameter of {owner} must hold the state of one trial [K or 1, 1, N]. "
                f"Got {tuple(h.shape)} instead."
            )
    h = h.expand(K, -1, -1).clone()
    if P0 is not None:
        F0 = model._readout_input(h).shape[-1]
        P0, _ = check_model_tensor(
            owner, "P0", P0, model, [("K|1", "F", "F"), ("F", "F")], dtype=dtype, finite=True,
            detach=True, F=F0,
        )
    bar_cm = progress_bar(progress, total=T, desc="force_train", unit="step")
    with torch.no_grad(), bar_cm as bar:
        params = model.prepare()
        drive = model.input_drive(x.transpose(1, 2)).expand(K, -1, -1, -1)  # [K, T, 1, D]
        noise_seq = model.sample_noise(1, T, gen) if noise else None
        F = model._readout_input(h).shape[-1]
        if P0 is None:
            P = torch.eye(F, dtype=dtype).expand(K, F, F) / alpha
        else:
            P = P0.to(dtype).expand(K, F, F)
        P = P.clone()
        W = model.W_out  # [K, O, F], updated in place (params hold views of it)
        outs = torch.empty(K, T, model.n_outputs, dtype=dtype)
        for t in range(T):
            nz = None if noise_seq is None else noise_seq[:, t]
            h = model.step_drive(h, drive[:, t], params, nz)
            r = model._readout_input(h)[:, 0]  # [K, F]
            z = torch.bmm(W, r.unsqueeze(-1)).squeeze(-1)
            outs[:, t] = z
            if t >= washout and (t - washout) % update_every == 0:
                k = torch.bmm(P, r.unsqueeze(-1)).squeeze(-1)  # [K, F]
                c = 1.0 / (1.0 + (r * k).sum(-1))  # [K]
                P.sub_(c[:, None, None] * k.unsqueeze(-1) * k.unsqueeze(-2))
                e = z - f[:, t]
                W.sub_(c[:, None, None] * e.unsqueeze(-1) * k.unsqueeze(-2))
            bar.update(1)
    errors = ((outs - f) ** 2).sum(-1)
    return ForceResult(outputs=outs, errors=errors, P=P, final_state=h)


class RLSReadout:
    """Stand-alone RLS (FORCE) readout on given features, trial after trial, P never reset.

    ``y = W r``; per step ``k = P r, c = 1/(1 + r.k), P -= c k k^T, W -= c (y - f) k^T``.
    Used to contrast FORCE with the three-factor rule after block switches.
    """

    def __init__(self, n_features: int, n_outputs: int, alpha: float = 1.0):
        owner = type(self).__name__
        check_int(owner, "n_features", n_features, 1)
        check_int(owner, "n_outputs", n_outputs, 1)
        alpha = check_float(owner, "alpha", alpha, 0.0, math.inf, low_inclusive=False)
        self.P = torch.eye(n_features, dtype=torch.float64) / alpha
        self.W = torch.zeros(n_outputs, n_features, dtype=torch.float64)

    def trial(self, features: torch.Tensor, targets: torch.Tensor, learn: bool = True):
        """``features [T, F]``, ``targets [T, O]`` -> outputs ``[T, O]`` (before each update)."""
        features, targets = features.double(), targets.double()
        out = torch.empty(features.shape[0], self.W.shape[0], dtype=torch.float64)
        for t in range(features.shape[0]):
            r = features[t]
            y = self.W @ r
            out[t] = y
            if learn:
                k = self.P @ r
                c = 1.0 / (1.0 + r @ k)
                self.P -= c * torch.outer(k, k)
                self.W -= c * torch.outer(y - targets[t], k)
        return out


# --------------------------------------------------------------------------- three-factor
@dataclass(frozen=True)
class ThreeFactorConfig:
    """Hyperparameters of :class:`ThreeFactorReadout`.

    Arguments:
        lr_when: learning rate of the online "when" weights (per step, > 0).
        lr_what: rate of the offline consolidation of "what" (per trial, in (0, 1]).
        tau_eligibility: time constant (steps) of the presynaptic eligibility trace (>= 0;
            0 = the present activity only).
        gate: ``"cue"`` (attention on from the first cue step to the end of the trial) or
            ``"always"``; a per-step gate can also be passed to :meth:`ThreeFactorReadout.trial`.
        normalise: scale the "when" step by ``1 / (1 + |e|^2)`` (normalised LMS), which makes
            ``lr_when`` independent of the number of features.
    """

    lr_when: float = 0.5
    lr_what: float = 0.2
    tau_eligibility: float = 0.0
    gate: str = "cue"
    normalise: bool = True

    constraints: ClassVar[dict[str, Constraint]] = {
        "lr_when": Float(0.0, 10.0, low_inclusive=False),
        "lr_what": Float(0.0, 1.0, low_inclusive=False),
        "tau_eligibility": Float(0.0, 1e6),
        "gate": Choice(("cue", "always")),
        "normalise": Bool(),
    }

    def __post_init__(self):
        validate_config(self)


def _check_three_factor_config(owner, name, value, config):
    if not isinstance(value, ThreeFactorConfig):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a ThreeFactorConfig. Got "
            f"{type(value).__name__} instead."
        )
    return value


@dataclass
class ThreeFactorReadout:
    """Error-modulated, attention-gated three-factor Hebbian readout ("what" and "when").

    Outputs ``y_s(t) = q_s * (w . r(t))`` for stimulus s:

    * "when": ``y_when(t) = w . r(t)`` predicts that *some* stimulus is on at t. Online, each
      step: ``w += lr_when * g(t) * (s_any(t) - y_when(t)) * e(t) / (1 + |e(t)|^2)`` with the
      presynaptic eligibility trace ``e(t) = lambda e(t-1) + (1 - lambda) r(t)``
      (``lambda = exp(-1/tau_eligibility)``), the third factor the prediction error of the
      output neuron (observed stimulus presence minus prediction) and ``g(t)`` the attention
      gate. With a constant rate the weights track ``E[s_any(t) | cue]`` -- the timing density
      -- and follow changes of timing without a reset.
    * "what": ``q_s`` the consolidated probability of identity s; offline, after each trial
      with a stimulus, ``q <- q + lr_what (onehot(identity) - q)`` (and after an omission
      nothing changes: the omission rate already lives in the "when" amplitude).

    So the peak of ``y_s`` sits at the expected stimulus time and its height is
    ``P(stimulus) * q_s``, increasing with the probability of s.

    Arguments:
        n_features: F (reservoir units).
        n_stimuli: S.
        config: :class:`ThreeFactorConfig`.
    """

    n_features: int
    n_stimuli: int
    config: ThreeFactorConfig = field(default_factory=ThreeFactorConfig)

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_features": Int(1),
        "n_stimuli": Int(1),
        "config": Check(_check_three_factor_config),
    }

    def __post_init__(self):
        validate_config(self)
        self.w = torch.zeros(self.n_features, dtype=torch.float64)
        self.q = torch.full((self.n_stimuli,), 1.0 / self.n_stimuli, dtype=torch.float64)

    @property
    def weights(self) -> torch.Tensor:
        """Effective readout ``[S, F]`` = ``q w^T``."""
        return self.q[:, None] * self.w[None, :]

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """``features [T, F]`` -> ``[T, S]`` without learning."""
        return (features.double() @ self.w)[:, None] * self.q[None, :]

    def trial(
        self,
        features: torch.Tensor,
        stimuli: torch.Tensor,
        cue: torch.Tensor | None = None,
        gate: torch.Tensor | None = None,
        learn: bool = True,
    ) -> torch.Tensor:
        """Run one trial and learn from it.

        Arguments:
            features: ``[T, F]`` reservoir activity r(t).
            stimuli: ``[T, S]`` observed stimuli (0/1).
            cue: ``[T]`` cue channel (for ``gate="cue"``).
            gate: ``[T]`` attention gate in [0, 1] overriding the config's gate.
            learn: apply the updates.

        Returns:
            Outputs ``[T, S]`` (each step's prediction before that step's update).
        """
        cfg = self.config
        r = features.double()
        T = r.shape[0]
        if r.shape[-1] != self.n_features or stimuli.shape != (T, self.n_stimuli):
            raise ValueError(
                f"ThreeFactorReadout.trial needs features [T, {self.n_features}] and stimuli "
                f"[T, {self.n_stimuli}]. Got {tuple(features.shape)} and {tuple(stimuli.shape)}."
            )
        if gate is None:
            if cfg.gate == "always" or cue is None:
                gate = torch.ones(T, dtype=torch.float64)
            else:
                on = (cue.double() > 0).cumsum(0) > 0
                gate = on.double()
        gate = gate.double()
        s_any = stimuli.double().sum(-1)
        lam = math.exp(-1.0 / cfg.tau_eligibility) if cfg.tau_eligibility > 0 else 0.0
        if learn:  # the online loop is a kernel (C on the CPU), see kernels.hebbian
            w, y = three_factor_online(self.w[None], r[None], s_any[None], gate[None],
                                       lr=cfg.lr_when, lam=lam, normalise=cfg.normalise)
            self.w = w[0]
            y_when = y[0]
        else:
            y_when = r @ self.w
        out = y_when[:, None] * self.q[None, :]
        if learn:
            shown = stimuli.double().sum(0)
            if shown.sum() > 0:
                onehot = shown / shown.sum()
                self.q += cfg.lr_what * (onehot - self.q)
        return out


@dataclass
class ThreeFactorResult:
    """Outcome of :func:`train_three_factor`.

    Attributes:
        readouts: the K trained :class:`ThreeFactorReadout` (one per network).
        outputs: ``[K, B, T, S]`` outputs during training (each step's prediction before that
            step's update).
        w: ``[K, B, F]`` "when" weights after each trial.
        q: ``[K, B, S]`` "what" probabilities after each trial.
    """

    readouts: list[ThreeFactorReadout]
    outputs: torch.Tensor
    w: torch.Tensor
    q: torch.Tensor

    def to_xarray(self):
        """``outputs (network, trial, time, stimulus)``, ``w (network, trial, feature)`` and
        ``q (network, trial, stimulus)`` as an ``xarray.Dataset``."""
        import xarray as xr

        K, B, T, _ = self.outputs.shape
        data = {
            "outputs": (("network", "trial", "time", "stimulus"), self.outputs.cpu().numpy()),
            "w": (("network", "trial", "feature"), self.w.cpu().numpy()),
            "q": (("network", "trial", "stimulus"), self.q.cpu().numpy()),
        }
        coords = {"network": np.arange(K), "trial": np.arange(B), "time": np.arange(T)}
        return xr.Dataset(data, coords=coords)


def train_three_factor(
    model: RecurrentModel | None,
    x: torch.Tensor | None = None,
    stimuli: torch.Tensor | None = None,
    *,
    cue: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    config: ThreeFactorConfig | None = None,
    noise: bool | None = None,
    seed: int | torch.Generator | None = 0,
    progress: bool = True,
) -> ThreeFactorResult:
    """Train one :class:`ThreeFactorReadout` per network on B trials shown in order.

    The features of each network (:func:`reservoir_features` of ``model`` on ``x``, or the
    given ``features``) are fed trial after trial to :meth:`ThreeFactorReadout.trial`; the
    readouts are not reset between trials (they track changes of the stimulus statistics).

    Arguments:
        model: a reservoir with K networks (``EchoStateNetwork``, ``IzhikevichReservoir``);
            may be None when ``features`` are given.
        x: reservoir inputs ``[B, T, I]`` or ``[K or 1, B, T, I]`` (ignored if ``features``).
        stimuli: ``[B, T, S]`` observed stimuli (0/1), e.g. ``WhatWhenTask`` trials'
            ``info["stimuli"]``.
        cue: ``[B, T]`` cue channel for ``gate="cue"`` (None: the gate is always on).
        features: precomputed features ``[K, B, T, F]``.
        config: :class:`ThreeFactorConfig` (default: its defaults).
        noise: reservoir noise when the features are computed here (see
            :func:`reservoir_features`).
        seed: seed of the reservoir's noise when the features are computed here (the rule
            itself is deterministic; same seed -> same result).
        progress: show a tqdm progress bar on stderr over the K * B trials (and the spiking
            simulation's bar while the features are computed).

    Returns:
        :class:`ThreeFactorResult` (``.to_xarray()``: a Dataset with a ``network`` dim).
    """
    owner = "train_three_factor"
    check_bool(owner, "progress", progress)
    seed = _check_seed(seed, owner)
    config = ThreeFactorConfig() if config is None else config
    if not isinstance(config, ThreeFactorConfig):
        raise ParameterTypeError(
            f"The 'config' parameter of {owner} must be a ThreeFactorConfig or None. Got "
            f"{type(config).__name__} instead."
        )
    if features is None:
        if model is None or x is None:
            raise ValueError(f"{owner} needs 'model' and 'x', or 'features'.")
        _check_reservoir(model, owner)
        features = reservoir_features(model, x, seed=seed, noise=noise, progress=progress)
    else:
        features = check_tensor(owner, "features", features, finite=True, detach=True)
        check_shape(owner, "features", features, [("K", "B", "T", "F")])
    K, B, T, F = features.shape
    if stimuli is None:
        raise ValueError(f"The 'stimuli' argument of {owner} is required.")
    stimuli = check_tensor(owner, "stimuli", stimuli, dtype=torch.float64, finite=True,
                           detach=True)  # fmt: skip
    check_shape(owner, "stimuli", stimuli, [("B", "T", "S")], "features", B=B, T=T)
    S = stimuli.shape[-1]
    if cue is not None:
        cue = check_tensor(owner, "cue", cue, dtype=torch.float64, finite=True, detach=True)
        check_shape(owner, "cue", cue, [("B", "T")], "features", B=B, T=T)
    readouts = [ThreeFactorReadout(F, S, config) for _ in range(K)]
    outputs = torch.empty(K, B, T, S, dtype=torch.float64)
    w = torch.empty(K, B, F, dtype=torch.float64)
    q = torch.empty(K, B, S, dtype=torch.float64)
    with progress_bar(progress, total=K * B, desc=owner, unit="trial") as bar:
        for k, readout in enumerate(readouts):
            for b in range(B):
                c = None if cue is None else cue[b]
                outputs[k, b] = readout.trial(features[k, b], stimuli[b], cue=c)
                w[k, b], q[k, b] = readout.w, readout.q
                bar.update(1)
    return ThreeFactorResult(readouts=readouts, outputs=outputs, w=w, q=q)
