"""Piecewise-linear RNNs for dynamical-systems reconstruction, batched over K.

Four latent maps of ``z [K, B, M]`` (see docs/references.md), each with an optional external input
``C s`` (``n_inputs > 0``):

* :class:`PLRNN` (Koppe et al. 2019): ``z' = A z + W relu(z) + h``, ``A`` diagonal, ``W`` with
  zero diagonal;
* :class:`ShallowPLRNN` (Hess et al. 2023): ``z' = A z + W1 relu(W2 z + h2) + h1`` with
  ``W1 [M, L]``, ``W2 [L, M]``; ``clipped=True`` gives the clipped shPLRNN
  ``z' = A z + W1 [relu(W2 z + h2) - relu(W2 z)] + h1`` (bounded orbits when ``|A| < 1``);
* :class:`ALRNN` (Brenner et al. 2024): ``z' = A z + W Phi*(z) + h``, where only the last
  ``P = n_pwl`` units pass through a ReLU; ``2^P`` linear subregions.

Observation models (``PLRNNConfig.observation``):

* ``"identity"`` reads the first ``n_outputs`` latent units (the readout units; teacher forcing
  replaces exactly these);
* ``"affine"`` is the linear-Gaussian ``x = W_out z + b_out`` of a latent state of any size;
* ``"poisson"`` is the log-linear Poisson GLM for spike counts of N neurons in bins of width
  ``dt``, ``x_t[i] ~ Poisson(lambda_t[i])`` with ``lambda_t = dt * exp(W_out z_t + b_out)``
  (the expected count per bin; :meth:`~PiecewiseLinearRNN.readout` returns it). This is the
  observation model of the Poisson linear dynamical system (Macke, Buesing, Cunningham, Yu,
  Shenoy & Sahani 2011, Empirical models of spiking in neural populations, Advances in Neural
  Information Processing Systems 24, 1350-1358), here on a PLRNN latent state as in the
  multi-modal PLRNN's generalized-linear observation models (Kramer, Bommer, Tombolini, Koppe
  & Durstewitz 2022, Reconstructing nonlinear dynamical systems from multi-modal time series,
  Proceedings of the 39th International Conference on Machine Learning, PMLR 162).
  Teacher forcing needs a latent state from the counts; :meth:`~PiecewiseLinearRNN.
  latent_from_observation` inverts the link approximately (see there and
  :func:`smooth_counts`).

Every model is piecewise affine: in the linear region with code ``d`` (a 0/1 vector of
``n_region_bits`` switches) the map is ``z' = M_d z + c_d``. :meth:`region_code` and
:meth:`affine_pieces` expose this to the exact fixed-point/cycle search
(:mod:`dynrnn.analyses.scyfi`) and to symbolic dynamics (:mod:`dynrnn.analyses.symbolic`).
Jacobians are analytic: ``J = M_d`` at the state's region.

Initialisation (Hess et al. 2023; Brenner et al. 2024): ``A`` is the diagonal of
``S = R^T R / M + I`` normalised to largest eigenvalue 1 (``R ~ N(0, 1)``; the PLRNN's ``W`` is
the off-diagonal of the same ``S``); shPLRNN ``W1, W2 ~ U(+-1/sqrt(fan_in))``,
``h2 ~ U(+-1/sqrt(M))``, ``h1 = 0``; AL-RNN ``W ~ N(0, 0.01^2)``, ``h = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._validation import (
    Bool,
    Choice,
    Constraint,
    Float,
    Int,
    check_float,
    resolve_generator,
    validate_config,
)
from ..functional.plrnn import (
    plrnn_affine,
    plrnn_phi,
    plrnn_step,
    shplrnn_affine,
    shplrnn_step,
)
from .base import RecurrentModel

__all__ = [
    "PLRNNConfig",
    "ShallowPLRNNConfig",
    "ALRNNConfig",
    "PLRNN",
    "ShallowPLRNN",
    "ALRNN",
    "PiecewiseLinearRNN",
    "OBSERVATIONS",
    "smooth_counts",
]

#: the observation models of the PLRNN family
OBSERVATIONS = ("identity", "affine", "poisson")

_COMMON_STRUCTURAL = ("n_latent", "n_outputs", "n_inputs", "observation", "readout_bias",
                      "learn_initial_state", "rate_smoothing", "rate_eps")


@dataclass(frozen=True)
class PLRNNConfig:
    """Configuration of one PLRNN.

    Attributes:
        n_latent: M, latent dimension.
        n_outputs: N, observed dimension (``N <= M`` for the identity observation).
        n_inputs: dimension of an external input (0: autonomous).
        observation: ``"identity"`` (first N latent units), ``"affine"`` (``x = W_out z +
            b_out``) or ``"poisson"`` (spike counts ``x ~ Poisson(dt exp(W_out z + b_out))``).
        readout_bias: include ``b_out`` in the affine / Poisson observation model.
        dt: the time step one map iteration stands for (for exponents per time unit; for
            ``"poisson"`` also the bin width of the counts, so ``exp(W_out z + b_out)`` is a
            rate per time unit).
        rate_smoothing: ``"poisson"``: standard deviation, in samples (bins), of the Gaussian
            kernel with which :meth:`PiecewiseLinearRNN.rate_estimate` smooths counts into the
            rate estimate that teacher forcing inverts (acausal; 0: no smoothing). Default 2.
        rate_eps: ``"poisson"``: counts per bin added to the rate estimate before the log of
            the inversion, so that empty bins give a finite latent state. Default 0.1.
        learn_initial_state: identity observation with ``M > N``: infer the ``M - N``
            unobserved units of a window's (or a free run's) first state from its first
            observation with a trained matrix ``L [M-N, N]``, ``z_0 = [x_0; L x_0]`` (as the
            AL-RNN reference code of Brenner et al. 2024 does; ``L ~ U(+-1/sqrt(N))``).
            False: they start at 0.
    """

    n_latent: int
    n_outputs: int
    n_inputs: int = 0
    observation: str = "identity"
    readout_bias: bool = True
    dt: float = 1.0
    learn_initial_state: bool = True
    rate_smoothing: float = 2.0
    rate_eps: float = 0.1

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_latent": Int(1),
        "n_outputs": Int(1),
        "n_inputs": Int(0),
        "observation": Choice(OBSERVATIONS),
        "readout_bias": Bool(),
        "dt": Float(0.0, None, low_inclusive=False),
        "learn_initial_state": Bool(),
        "rate_smoothing": Float(0.0),
        "rate_eps": Float(0.0, None, low_inclusive=False),
    }

    def __post_init__(self):
        validate_config(self)

    def _check_relations(self):
        if self.observation == "identity" and self.n_outputs > self.n_latent:
            raise ValueError(
                f"The 'n_outputs' parameter of {type(self).__name__} must be <= "
                f"n_latent={self.n_latent} for the identity observation model. Got "
                f"{self.n_outputs} instead."
            )


@dataclass(frozen=True)
class ShallowPLRNNConfig(PLRNNConfig):
    """shPLRNN: adds ``n_hidden`` (L, width of the ReLU layer) and ``clipped``."""

    n_hidden: int = 100
    clipped: bool = False

    constraints: ClassVar[dict[str, Constraint]] = {"n_hidden": Int(1), "clipped": Bool()}


@dataclass(frozen=True)
class ALRNNConfig(PLRNNConfig):
    """AL-RNN: adds ``n_pwl`` (P, number of ReLU units; the last P latent units)."""

    n_pwl: int = 2

    constraints: ClassVar[dict[str, Constraint]] = {"n_pwl": Int(0, "n_latent")}


def _init_a_w(M: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    R = torch.randn(M, M, generator=g, dtype=torch.float64)
    S = R.T @ R / M + torch.eye(M, dtype=torch.float64)
    S = S / torch.linalg.eigvalsh(S).max()
    A = torch.diagonal(S).clone()
    W = S - torch.diag(A)
    return A.float(), W.float()


def _uniform(shape, bound, g):
    return ((torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound).float()


def smooth_counts(x: Any, sigma: float, dim: int = -2) -> torch.Tensor:
    """Gaussian-kernel rate estimate of binned counts along time, NaN-aware and acausal.

    ``r_t = sum_s k(t - s) m_s x_s / sum_s k(t - s) m_s`` with ``k(u) = exp(-u^2 / (2 sigma^2))``
    truncated at ``|u| <= ceil(4 sigma)`` and ``m_s`` = 1 where ``x_s`` is observed (finite),
    0 where it is missing (NaN); the normalisation also corrects the truncated kernel at the
    ends of the series. ``r_t`` is NaN where no observed sample lies within reach. ``sigma =
    0`` returns ``x`` unchanged (a copy).

    Arguments:
        x: counts (or any values) ``[..., T, ...]``, a tensor or array; time along ``dim``.
        sigma: kernel standard deviation in samples (>= 0).
        dim: the time dimension (default -2: ``[..., T, N]``).

    Returns:
        The smoothed series, same shape (a tensor, float dtype of ``x`` or float64).
    """
    owner = "smooth_counts"
    sigma = check_float(owner, "sigma", sigma, 0.0, math.inf, True, False)
    t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not t.is_floating_point():
        t = t.double()
    if t.ndim == 0:
        raise ValueError(f"The 'x' parameter of {owner} must have a time dimension. Got a "
                         f"scalar.")
    if sigma == 0:
        return t.clone()
    moved = t.movedim(dim, -1)
    T = moved.shape[-1]
    flat = moved.reshape(-1, 1, T)
    radius = int(math.ceil(4 * sigma))
    u = torch.arange(-radius, radius + 1, dtype=flat.dtype, device=flat.device)
    kernel = torch.exp(-0.5 * (u / sigma) ** 2).reshape(1, 1, -1)
    seen = torch.isfinite(flat).to(flat.dtype)
    num = torch.nn.functional.conv1d(torch.nan_to_num(flat, nan=0.0) * seen, kernel,
                                     padding=radius)
    den = torch.nn.functional.conv1d(seen, kernel, padding=radius)
    tiny = torch.finfo(flat.dtype).tiny
    out = torch.where(den > kernel.max() * 1e-12 + tiny, num / den.clamp_min(tiny),
                      torch.full_like(num, math.nan))
    return out.reshape(moved.shape).movedim(-1, dim)


class PiecewiseLinearRNN(RecurrentModel):
    """Shared machinery of the PLRNN family (observation model, inputs, affine pieces).

    Subclasses implement ``_init_core``, ``step_drive``, ``region_code`` and
    ``affine_pieces``; parameters have the network dim K first.
    """

    # files saved before the learned initial state existed started the unobserved units at 0
    legacy_config_defaults = {"learn_initial_state": False}
    optional_state = ("L_init",)

    def trainable_names(self):
        names = list(self.core_trainable())
        if self.n_inputs > 0:
            names.append("C")
        if self.config.observation in ("affine", "poisson"):
            names.append("W_out")
            if self.config.readout_bias:
                names.append("b_out")
        elif self._learns_initial_state():
            names.append("L_init")
        return tuple(names)

    def _learns_initial_state(self) -> bool:
        c = self.config
        return bool(c.learn_initial_state) and c.n_latent > c.n_outputs

    def core_trainable(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _init_network(self, c, g):
        M, N, I = c.n_latent, c.n_outputs, c.n_inputs
        params = self._init_core(c, g)
        params["C"] = _uniform((M, I), 1 / math.sqrt(max(I, 1)), g)
        W_out = torch.zeros(N, M)
        W_out[:, : min(N, M)] = torch.eye(N, min(N, M))
        params["W_out"] = W_out
        params["b_out"] = torch.zeros(N)
        params["L_init"] = _uniform((max(M - N, 0), N), 1 / math.sqrt(N), g)
        if c.observation == "poisson":  # N neurons load on all M latents (drawn last)
            params["W_out"] = _uniform((N, M), 1 / math.sqrt(M), g)
        return params

    @property
    def n_units(self) -> int:
        return int(self.config.n_latent)

    @property
    def n_latent(self) -> int:
        return int(self.config.n_latent)

    @property
    def observation(self) -> str:
        return self.config.observation

    # ----------------------------------------------------------------- protocol
    def _bias(self) -> torch.Tensor:
        """The constant drive ``[K, M]`` added every step (``h`` or ``h1``)."""
        raise NotImplementedError

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """``C s + h``: ``[K or 1, *lead, I] -> [K, *lead, M]``."""
        K, M = self.n_networks, self.n_latent
        lead = x.shape[1:-1]
        bias = self._bias()
        if self.n_inputs == 0:
            out = bias.reshape(K, *([1] * len(lead)), M).expand(K, *lead, M)
            return out
        flat = x.reshape(x.shape[0], math.prod(lead), x.shape[-1])
        out = torch.matmul(flat, self.C.transpose(1, 2)) + bias[:, None, :]
        return out.reshape(K, *lead, M)

    def latent_from_observation(self, x: torch.Tensor, initial: bool = False) -> torch.Tensor:
        """The latent state inferred from observations ``x [K, *lead, N]`` -> ``[K, *lead, M]``.

        Identity observation: ``[x; 0]``, or ``[x; L x]`` for a first state (``initial=True``)
        when ``learn_initial_state`` (differentiable in ``L``); affine: the least-squares
        solution ``W_out^+ (x - b_out)`` (not differentiated). Both are exact inversions of the
        observation model.

        Poisson: ``x`` is a rate estimate in counts per bin (e.g. :meth:`rate_estimate` of the
        counts: teacher forcing passes the Gaussian-smoothed counts) and the link is inverted
        in the least-squares sense, ``zhat = W_out^+ (log(x + eps) - log(dt) - b_out)`` with
        ``eps = rate_eps`` (not differentiated). This is exact for the expected counts
        ``lambda = dt exp(W_out z + b_out)`` of a state ``z`` up to the ``eps`` offset (exact
        as ``eps -> 0``) when ``W_out`` has full column rank; from counts it is an
        approximation (the smoothing biases fast changes, ``eps`` biases low rates). A
        missing channel (NaN) makes the whole inferred state of that step NaN.
        """
        K, M, N = self.n_networks, self.n_latent, self.n_outputs
        if self.config.observation == "identity":
            if M == N:
                return x
            lead = x.shape[1:-1]
            if initial and self._learns_initial_state():
                flat = x.reshape(K, -1, N)
                hidden = torch.bmm(flat, self.L_init.transpose(1, 2)).reshape(K, *lead, M - N)
            else:
                hidden = x.new_zeros(K, *lead, M - N)
            return torch.cat([x, hidden], dim=-1)
        W = self.W_out.detach().to(x.dtype)
        b = self.b_out.detach() if self.config.readout_bias else torch.zeros_like(self.b_out)
        b = b.to(x.dtype)
        if self.config.observation == "poisson":
            b = b + self._log_dt(x.dtype)[:, None]
            x = torch.log(x + self.config.rate_eps)
        pinv = torch.linalg.pinv(W)  # [K, M, N]
        flat = (x - b.reshape(K, *([1] * (x.ndim - 2)), N)).reshape(K, -1, N)
        return torch.bmm(flat, pinv.transpose(1, 2)).reshape(*x.shape[:-1], M)

    def _log_dt(self, dtype=None) -> torch.Tensor:
        """``log(dt)`` of every network ``[K]`` (the Poisson model's bin width)."""
        dts = [float(c.dt) for c in self.configs]
        return torch.log(torch.tensor(dts, dtype=dtype or self.dtype, device=self.device))

    def log_expected_counts(self, h: torch.Tensor) -> torch.Tensor:
        """Poisson observation: ``log lambda = W_out z + b_out + log(dt)``, ``[K, *lead, M] ->
        [K, *lead, N]`` (differentiable; what the Poisson likelihood of teacher forcing is
        computed from, without forming ``lambda`` first)."""
        if self.config.observation != "poisson":
            raise ValueError(
                f"The 'observation' parameter of {type(self).__name__} must be 'poisson' for "
                f"log_expected_counts. Got {self.config.observation!r}."
            )
        h = self._check_readout_state(h)
        eta = super().readout(h)
        return eta + self._log_dt(eta.dtype).reshape(-1, *([1] * (eta.ndim - 1)))

    def rate_estimate(self, counts: Any, dim: int = -2) -> torch.Tensor:
        """The rate estimate (counts per bin) that the Poisson inversion of
        :meth:`latent_from_observation` takes: :func:`smooth_counts` with this model's
        ``rate_smoothing`` (Gaussian, acausal; NaN-aware), along ``dim`` (time)."""
        return smooth_counts(counts, self.config.rate_smoothing, dim=dim)

    @torch.no_grad()
    def init_observation_(self, counts: Any) -> PiecewiseLinearRNN:
        """Data-driven start of the Poisson observation model (in place; returns the model).

        From counts ``[T, N]`` / ``[R, T, N]`` (NaN = missing; or a list of trials): the log
        rate estimate ``y = log(rate_estimate(x) + eps) - log(dt)`` gives ``b_out = mean_t y``
        (with ``readout_bias``) and ``W_out`` = the top ``min(M, N)`` principal axes of ``y``
        scaled by their standard deviations (principal-component scores of unit variance are
        then the latent state that reproduces ``y`` best in the least-squares sense; remaining
        columns keep their random start). All K networks get the same start; their dynamics
        keep their seeds.
        """
        owner = type(self).__name__ + ".init_observation_"
        if self.config.observation != "poisson":
            raise ValueError(f"The 'observation' parameter of {owner} must be 'poisson'. Got "
                             f"{self.config.observation!r}.")
        trials = counts if isinstance(counts, (list, tuple)) else [counts]
        ys = []
        for tr in trials:
            t = tr if torch.is_tensor(tr) else torch.as_tensor(np.asarray(tr, dtype=np.float64))
            t = t.double()
            t = t.reshape(-1, *t.shape[-2:]) if t.ndim >= 2 else t.reshape(1, -1, 1)
            if t.shape[-1] != self.n_outputs:
                raise ValueError(f"The 'counts' parameter of {owner} must have N="
                                 f"{self.n_outputs} channels. Got shape {tuple(t.shape)}.")
            r = smooth_counts(t, self.config.rate_smoothing, dim=-2)
            ys.append(torch.log(r + self.config.rate_eps).reshape(-1, self.n_outputs))
        y = torch.cat(ys, 0)
        y = y[torch.isfinite(y).all(-1)]
        if y.shape[0] < 2:
            raise ValueError(f"The 'counts' parameter of {owner} needs at least two fully "
                             f"observed samples.")
        mean = y.mean(0)
        _, svals, vh = torch.linalg.svd(y - mean, full_matrices=False)
        r = min(self.n_latent, vh.shape[0])
        W = vh[:r].T * (svals[:r] / math.sqrt(y.shape[0]))  # [N, r]
        log_dt = self._log_dt(torch.float64)
        for k in range(self.n_networks):
            self.W_out[k, :, :r] = W.to(self.W_out.dtype)
            if self.config.readout_bias:
                self.b_out[k] = (mean - log_dt[k]).to(self.b_out.dtype)
        return self

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Observations ``[K, B, (T,) N]`` of states ``[K, B, (T,) M]``: the first N units
        (identity), ``W_out z + b_out`` (affine) or the expected counts per bin ``lambda =
        dt exp(W_out z + b_out)`` (Poisson; free runs therefore generate expected counts, and
        :meth:`sample_counts` draws counts from them)."""
        if self.config.observation == "identity":
            return self._check_readout_state(h)[..., : self.n_outputs]
        if self.config.observation == "poisson":
            return torch.exp(self.log_expected_counts(h))
        return super().readout(h)

    def sample_counts(self, h: torch.Tensor, *, seed: Any = None) -> torch.Tensor:
        """Poisson observation: counts ``x ~ Poisson(readout(h))`` drawn with an explicit
        ``seed`` (int or ``torch.Generator``), same shape as :meth:`readout`."""
        lam = self.readout(h).detach()
        return torch.poisson(lam, generator=resolve_generator(seed))

    def jacobian(self, h, x=None):
        """Analytic Jacobian ``[K, B, M, M]``: the matrix ``M_d`` of the state's region."""
        h = self._check_state(h, "jacobian")
        mats, _ = self.affine_pieces(self.region_code(h))
        return mats

    # ----------------------------------------------------------------- piecewise-affine view
    @property
    def n_region_bits(self) -> int:  # pragma: no cover - abstract
        """Number of ReLU switches whose on/off pattern labels a linear region."""
        raise NotImplementedError

    def region_code(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """0/1 switch pattern ``[K, *lead, R]`` (dtype of z) of the region containing ``z``."""
        raise NotImplementedError

    def affine_pieces(self, d: torch.Tensor, with_bias: bool = True):
        """Affine map of region ``d [K, *lead, R]``: ``(M_d [K, *lead, M, M], c_d [K, *lead,
        M])`` with ``F(z) = M_d z + c_d`` (``c_d`` excludes external inputs)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def observed_units(self) -> slice:
        """The latent units teacher forcing replaces (identity observation: the first N)."""
        return slice(0, self.n_outputs)

    def has_fused_forced_rollout(self) -> bool:
        """Autonomous PLRNN-family models have a fused teacher-forced rollout
        (:mod:`dynrnn.kernels.plrnn_rollout`)."""
        return self.n_inputs == 0

    def _expand(self, t: torch.Tensor, lead_ndim: int) -> torch.Tensor:
        """Insert ``lead_ndim`` singleton dims after K."""
        return t.reshape(t.shape[0], *([1] * lead_ndim), *t.shape[1:])


class PLRNN(PiecewiseLinearRNN):
    """K PLRNNs ``z' = A z + W relu(z) + h`` (+ ``C s``); ``W`` has zero diagonal.

    Parameters ``A [K, M]``, ``W [K, M, M]``, ``h [K, M]``, ``C [K, M, I]``; affine observation
    ``W_out [K, N, M]``, ``b_out [K, N]``.
    """

    config_class = PLRNNConfig
    model_name = "plrnn"
    structural_fields = _COMMON_STRUCTURAL

    def core_trainable(self):
        return ("A", "W", "h")

    def _init_core(self, c, g):
        A, W = _init_a_w(c.n_latent, g)
        return {"A": A, "W": W, "h": torch.zeros(c.n_latent),
                "offdiag": 1.0 - torch.eye(c.n_latent)}

    def _bias(self):
        return self.h

    def prepare(self):
        return {"W_T": (self.W * self.offdiag).transpose(1, 2)}

    def step_drive(self, h, drive, params, noise=None):
        out = plrnn_step(h, drive, self.A, params["W_T"])
        return out if noise is None else out + noise

    def fused_forced_rollout(self, zhat, weights, z0):
        from ..kernels.plrnn_rollout import plrnn_forced_rollout

        return plrnn_forced_rollout(zhat, weights, z0, self.A, self.W * self.offdiag, self.h, 0)

    @property
    def n_region_bits(self):
        return self.n_latent

    def region_code(self, z):
        return (z > 0).to(z.dtype)

    def affine_pieces(self, d, with_bias=True):
        n = d.ndim - 2
        mats = plrnn_affine(self._expand(self.A, n), self._expand(self.W * self.offdiag, n), d)
        c = self._expand(self.h, n).expand(*d.shape[:-1], self.n_latent)
        return mats, c


class ShallowPLRNN(PiecewiseLinearRNN):
    """K (clipped) shallow PLRNNs ``z' = A z + W1 relu(W2 z + h2) + h1`` (+ ``C s``).

    Parameters ``A [K, M]``, ``W1 [K, M, L]``, ``W2 [K, L, M]``, ``h1 [K, M]``, ``h2 [K, L]``.
    Region code: the L switches ``W2 z + h2 > 0`` (plus, when clipped, the L switches
    ``W2 z > 0``: ``R = 2 L``).
    """

    config_class = ShallowPLRNNConfig
    model_name = "shplrnn"
    structural_fields = _COMMON_STRUCTURAL + ("n_hidden", "clipped")

    def core_trainable(self):
        return ("A", "W1", "W2", "h1", "h2")

    def _init_core(self, c, g):
        M, L = c.n_latent, c.n_hidden
        A, _ = _init_a_w(M, g)
        return {
            "A": A,
            "W1": _uniform((M, L), 1 / math.sqrt(L), g),
            "W2": _uniform((L, M), 1 / math.sqrt(M), g),
            "h1": torch.zeros(M),
            "h2": _uniform((L,), 1 / math.sqrt(M), g),
        }

    def _bias(self):
        return self.h1

    def prepare(self):
        return {"W1_T": self.W1.transpose(1, 2), "W2_T": self.W2.transpose(1, 2)}

    def step_drive(self, h, drive, params, noise=None):
        out = shplrnn_step(h, drive, self.A, params["W1_T"], params["W2_T"], self.h2,
                           bool(self.config.clipped))
        return out if noise is None else out + noise

    def fused_forced_rollout(self, zhat, weights, z0):
        from ..kernels.plrnn_rollout import shplrnn_forced_rollout

        return shplrnn_forced_rollout(zhat, weights, z0, self.A, self.W1, self.W2, self.h1,
                                      self.h2, bool(self.config.clipped))

    @property
    def n_region_bits(self):
        return self.config.n_hidden * (2 if self.config.clipped else 1)

    def region_code(self, z):
        K = z.shape[0]
        flat = z.reshape(K, -1, z.shape[-1])
        u = torch.bmm(flat, self.W2.transpose(1, 2).to(z.dtype))
        d = (u + self.h2[:, None, :].to(z.dtype) > 0).to(z.dtype)
        if self.config.clipped:
            d = torch.cat([d, (u > 0).to(z.dtype)], dim=-1)
        return d.reshape(*z.shape[:-1], d.shape[-1])

    def affine_pieces(self, d, with_bias=True):
        n = d.ndim - 2
        L = self.config.n_hidden
        d1 = d[..., :L]
        eff = d1 - d[..., L:] if self.config.clipped else d1
        e = self._expand
        return shplrnn_affine(e(self.A, n), e(self.W1, n), e(self.W2, n), e(self.h1, n),
                              e(self.h2, n), d1, eff)


class ALRNN(PiecewiseLinearRNN):
    """K AL-RNNs ``z' = A z + W Phi*(z) + h`` (+ ``C s``): only the last P units are ReLU.

    Parameters ``A [K, M]``, ``W [K, M, M]``, ``h [K, M]``. Region code: the P switches
    ``z_i > 0`` of the ReLU units (``2^P`` subregions; symbol = their binary number, unit
    ``M-P`` being the most significant bit).
    """

    config_class = ALRNNConfig
    model_name = "alrnn"
    structural_fields = _COMMON_STRUCTURAL + ("n_pwl",)

    def core_trainable(self):
        return ("A", "W", "h")

    def _init_core(self, c, g):
        M = c.n_latent
        A, _ = _init_a_w(M, g)
        W = torch.randn(M, M, generator=g, dtype=torch.float64).float() * 0.01
        return {"A": A, "W": W, "h": torch.zeros(M)}

    @property
    def n_pwl(self) -> int:
        return int(self.config.n_pwl)

    def _bias(self):
        return self.h

    def prepare(self):
        return {"W_T": self.W.transpose(1, 2)}

    def phi(self, z):
        """``Phi*(z)``: identity on the first M-P units, ReLU on the last P
        (:func:`dynrnn.functional.plrnn.plrnn_phi`)."""
        return plrnn_phi(z, self.n_latent - self.n_pwl)

    def step_drive(self, h, drive, params, noise=None):
        out = plrnn_step(h, drive, self.A, params["W_T"], self.n_latent - self.n_pwl)
        return out if noise is None else out + noise

    def fused_forced_rollout(self, zhat, weights, z0):
        from ..kernels.plrnn_rollout import plrnn_forced_rollout

        return plrnn_forced_rollout(zhat, weights, z0, self.A, self.W, self.h,
                                    self.n_latent - self.n_pwl)

    @property
    def n_region_bits(self):
        return self.n_pwl

    def region_code(self, z):
        return (z[..., self.n_latent - self.n_pwl:] > 0).to(z.dtype)

    def affine_pieces(self, d, with_bias=True):
        n = d.ndim - 2
        M, P = self.n_latent, self.n_pwl
        full = torch.ones(*d.shape[:-1], M, dtype=d.dtype, device=d.device)
        if P:
            full = torch.cat([full[..., : M - P], d], dim=-1)
        mats = plrnn_affine(self._expand(self.A, n), self._expand(self.W, n), full)
        c = self._expand(self.h, n).expand(*d.shape[:-1], M)
        return mats, c
