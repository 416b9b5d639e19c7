"""Certified-by-construction recurrent networks: contracting for every value of their
parameters, so they stay certified at every step of gradient training.

:class:`ContractingRNN` -- the leaky rate RNN (its step is
:func:`dynrnn.functional.rate.rate_step`) with the recurrent weights parameterised as

    W = Theta^{-1} U Sigma V^T Theta,     U = exp(S_U), V = exp(S_V),  S skew-symmetric,
    Sigma = diag(sigma),                  g sigma_i = max_gain * sigmoid(s_i) < max_gain < 1,

with ``Theta = diag(exp(log_theta))`` positive diagonal (Kozachkov, Ennis & Slotine 2022, "RNNs
of RNNs: Recursive construction of stable assemblies of recurrent neural networks", NeurIPS
2022, arXiv 2106.08928, Theorem 5: ``tau x' = -x + W phi(x) + u`` with ``W = Theta^{-1} U Sigma
V^T Theta``, U and V orthogonal, ``Sigma`` positive diagonal with ``g Sigma < I``, is
contracting in the metric ``M = Theta^2``; this model runs the rate form ``phi(W h + ...)``, for
which the same bound holds because ``D = diag(phi')`` commutes with Theta). Then
``||Theta W Theta^{-1}||_2 = max sigma < max_gain / g`` for every parameter value, and with
``0 <= phi' <= g`` the map ``h+ = phi(W h + U x + b)`` contracts in the metric ``||Theta x||_2``
at rate ``g max sigma < max_gain`` per step; its leaky forms at ``1 - a (1 - g max sigma)``
(outside) and ``g ((1 - a) + a max sigma)`` (inside); its continuous-time reading ``tau h' = -h +
phi(W h + u)`` at ``c = (1 - g max sigma) / tau`` (see :mod:`dynrnn.analyses.stability`).
Orthogonality of ``exp`` of a skew-symmetric matrix holds to rounding (~1e-7 in float32), far
inside the margin ``1 - max_gain``.

``ContractingRNNConfig(parameterisation="symmetric")`` -- symmetric W with ``g W < I``
(Kozachkov et al. 2022, Theorem 2: symmetric W with ``g W - I`` negative definite makes ``tau
x' = -x + W phi(x) + u`` contracting):

    g W = max_gain I - (max_gain + negative_gain) Q,    Q = I - (I + P P^T)^{-1},

with P ``[N, N]`` free. ``Q = P P^T (I + P P^T)^{-1}`` is symmetric with eigenvalues
``sigma_i^2 / (1 + sigma_i^2)`` in ``[0, 1)`` (``sigma_i`` the singular values of P), so the
eigenvalues of ``g W`` lie in ``(-negative_gain, max_gain]`` for EVERY P: ``g W <= max_gain I <
I``. By the ``symmetric`` condition of :mod:`dynrnn.analyses.stability` (its proof there), the
ODE contracts at ``c >= (1 - max_gain) / tau`` (``tau h' = -h + phi(W h + u)`` is the transposed
reading, in the inverse metric), and the leaky step at ``r = max(1 - a (1 - s'), a |s_min| - (1 -
a)) <= max(1 - a (1 - max_gain), a negative_gain - (1 - a))`` (``s' = max(lambda_max(g W),
0.01)``; ``leak_form="inside"``: ``max(|g (1 - a) + a s|)``); the config requires
``negative_gain`` below ``(2 - a) / a`` (outside) or ``(1 + g (1 - a)) / a`` (inside), so the
discrete step is certified too. W is symmetrised after the inverse, ``(W + W^T) / 2``, so it is
exactly symmetric in floating point.

:class:`ContractingAssembly` -- a network of such networks (Kozachkov et al. 2022): blocks
``W_i`` contracting in metrics ``Theta_i``, coupled linearly by negative feedback

    tau x' = -x + W phi(x) + L x + U u + b,      W = blockdiag(W_i),
    L = B - M^{-1} B^T M,   M = Theta^2 = blockdiag(Theta_i^2),   B zero on the diagonal blocks,

so that ``M L`` is skew-symmetric (``Theta L Theta^{-1} = S - S^T`` with ``S = Theta B
Theta^{-1}``) and drops out of ``M J + J^T M``: the whole network contracts in ``M`` at rate ``c
= (1 - max_gain) / tau`` whatever B is. The model runs the Euler step ``x+ = (1 - a) x + a (W
phi(x) + L x + U u + b)`` with ``a = dt / tau`` and reads out the rates, ``y = W_out phi(x) +
b_out`` (from :func:`dynrnn.functional.rate.leak_mix`,
:func:`~dynrnn.functional.rate.rate_preactivation` and :func:`dynrnn.functional.nonlin.phi`).
In discrete time the skew coupling is not free: in the metric the Jacobian is ``(1 - a) I + a S +
a G`` with ``S = Theta L Theta^{-1}`` skew and ``||G|| <= max_gain``; ``(1 - a) I + a S`` is
normal with norm ``sqrt((1 - a)^2 + a^2 ||S||^2)``, so the step contracts at rate ``sqrt((1 -
a)^2 + a^2 l^2) + a max_gain < 1`` iff ``a < 2 (1 - max_gain) / (1 + l^2 - max_gain^2)``. The
coupling is therefore scaled to ``||Theta L Theta^{-1}||_2 <= l = max_coupling`` and the config
requires ``leak`` below that limit, so the discrete map, too, is contracting for every parameter
value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .._validation import Bool, Check, Choice, Constraint, Float, Int, validate_config
from ..functional.nonlin import NONLINEARITIES, dphi, max_slope, phi
from ..functional.rate import leak_mix, rate_cell_jacobian, rate_preactivation, rate_step
from .base import RecurrentModel

__all__ = [
    "ContractingRNNConfig",
    "ContractingRNN",
    "ContractingAssemblyConfig",
    "ContractingAssembly",
]


def _skew_orthogonal(A: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``exp(S)`` with ``S = A - A^T`` (masked to a block structure): orthogonal ``[K, N, N]``."""
    S = A - A.transpose(1, 2)
    if mask is not None:
        S = S * mask
    return torch.linalg.matrix_exp(S)


def _uniform(shape, bound, g):
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).mul(bound).float()


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class ContractingRNNConfig:
    """One certified-by-construction rate RNN.

    Attributes:
        n_inputs, n_units, n_outputs: sizes I, N, O.
        nonlinearity: one of ``tanh, relu, leaky_relu, softplus, sigmoid, identity``.
        leak_form: ``"outside"`` (``h' = (1 - a) h + a phi(a_pre)``) or ``"inside"``.
        leak: a in (0, 1] (1: the vanilla map ``h' = phi(W h + U x + b)``).
        max_gain: bound on ``g ||Theta W Theta^{-1}||_2``, in (0, 1) (the per-step contraction
            factor of the vanilla map never exceeds it).
        init_gain: initial ``g sigma_i`` (all singular values), in (0, max_gain).
        learn_metric: train the metric ``Theta`` (else it stays the identity; ``"svd"`` only).
        bias, readout_bias: include b and b_out.
        dt: the time step the map stands for.
        parameterisation: ``"svd"`` (``W = Theta^{-1} U Sigma V^T Theta``) or ``"symmetric"``
            (``g W = max_gain I - (max_gain + negative_gain) (I - (I + P P^T)^{-1})``; see
            the module docstring; ``init_gain`` and ``learn_metric`` are not used).
        negative_gain: ``"symmetric"`` only: the eigenvalues of ``g W`` lie in
            ``(-negative_gain, max_gain]``; must be below ``(2 - a) / a`` (``leak_form
            ="outside"``) or ``(1 + g (1 - a)) / a`` (``"inside"``) so that the discrete step is
            certified too.
    """

    n_inputs: int
    n_units: int
    n_outputs: int
    nonlinearity: str = "tanh"
    leak_form: str = "outside"
    leak: float = 1.0
    max_gain: float = 0.95
    init_gain: float = 0.5
    learn_metric: bool = True
    bias: bool = True
    readout_bias: bool = True
    dt: float = 1.0
    parameterisation: str = "svd"
    negative_gain: float = 0.9

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_inputs": Int(0),
        "n_units": Int(1),
        "n_outputs": Int(1),
        "nonlinearity": Choice(NONLINEARITIES),
        "leak_form": Choice(("inside", "outside")),
        "leak": Float(0.0, 1.0, low_inclusive=False),
        "max_gain": Float(0.0, 1.0, low_inclusive=False, high_inclusive=False),
        "init_gain": Float(0.0, "max_gain", low_inclusive=False, high_inclusive=False),
        "learn_metric": Bool(),
        "bias": Bool(),
        "readout_bias": Bool(),
        "dt": Float(0.0, None, low_inclusive=False),
        "parameterisation": Choice(("svd", "symmetric")),
        "negative_gain": Float(0.0, None, low_inclusive=False),
    }

    def __post_init__(self):
        validate_config(self)

    def max_negative_gain(self) -> float:
        """The bound on ``negative_gain`` below which the discrete step of the symmetric
        parameterisation is certified: ``(2 - a) / a`` (outside) or ``(1 + g (1 - a)) / a``
        (inside; ``g`` the slope bound)."""
        a = self.leak
        if self.leak_form == "outside":
            return (2 - a) / a
        return (1 + max_slope(self.nonlinearity) * (1 - a)) / a

    def _check_relations(self):
        if self.parameterisation != "symmetric":
            return
        limit = self.max_negative_gain()
        if not self.negative_gain < limit:
            rest = "1 - a" if self.leak_form == "outside" else "g (1 - a)"
            raise ValueError(
                f"The 'negative_gain' parameter of {type(self).__name__} must lie in (0, "
                f"{limit:.6g}) for leak={self.leak!r}, leak_form={self.leak_form!r} (the "
                f"symmetric map is certified iff a * negative_gain - ({rest}) < 1). Got "
                f"{self.negative_gain!r} instead."
            )


class _ContractingBase(RecurrentModel):
    """Shared parts: the SVD parameterisation of W and the input / readout layers."""

    def _metric_init(self, c, N, g):
        return torch.zeros(N)

    def metric(self) -> torch.Tensor:
        """The contraction metric's weights ``theta [K, N]`` (``||theta * dx||_2``)."""
        return self.log_theta.exp()

    def _svd_weights(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        g = max_slope(self.config.nonlinearity)
        U = _skew_orthogonal(self.A_u, mask)
        V = _skew_orthogonal(self.A_v, mask)
        sigma = self.max_gain[:, None] / g * torch.sigmoid(self.s_raw)
        core = (U * sigma[:, None, :]) @ V.transpose(1, 2)
        theta = self.log_theta.exp()
        return core * theta[:, None, :] / theta[:, :, None]  # Theta^-1 core Theta

    @property
    def n_units(self) -> int:
        return int(self.config.n_units)

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """``U x + b``: ``[K or 1, B, (T,) I] -> [K, B, (T,) N]``."""
        K = self.n_networks
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], math.prod(lead[1:]), x.shape[-1])
        out = torch.matmul(flat, self.W_in.transpose(1, 2))
        if self.config.bias:
            out = out + self.b[:, None, :]
        return out.reshape(K, *lead[1:], self.n_units)

    def _alpha(self) -> torch.Tensor | None:
        """Leak ``[K, 1, 1]`` or None when every leak is 1."""
        if bool((self.leak == 1).all()):
            return None
        return self.leak[:, None, None]


class ContractingRNN(_ContractingBase):
    """K rate RNNs contracting by construction (see the module docstring).

    Parameters (leading dim K): ``"svd"``: ``A_u, A_v [K, N, N]`` (generators of U, V), ``s_raw
    [K, N]`` (singular values), ``log_theta [K, N]`` (metric; a buffer unless ``learn_metric``);
    ``"symmetric"``: ``P [K, N, N]`` and the buffer ``negative_gain [K]`` (``log_theta`` stays a
    zero buffer); both: ``W_in [K, N, I]``, ``b [K, N]``, ``W_out [K, O, N]``, ``b_out [K, O]``;
    buffers ``leak [K]``, ``max_gain [K]``. :meth:`recurrent_weights` is ``W [K, N, N]``.
    """

    config_class = ContractingRNNConfig
    model_name = "contracting_rnn"
    structural_fields = ("n_inputs", "n_units", "n_outputs", "nonlinearity", "leak_form",
                         "learn_metric", "bias", "readout_bias", "parameterisation")
    legacy_config_defaults = {"parameterisation": "svd", "negative_gain": 0.9}

    def trainable_names(self):
        c = self.configs[0]
        if c.parameterisation == "symmetric":
            names = ["P", "W_in", "W_out"]
        else:
            names = ["A_u", "A_v", "s_raw", "W_in", "W_out"]
        if c.learn_metric and c.parameterisation == "svd":
            names.append("log_theta")
        if c.bias:
            names.append("b")
        if c.readout_bias:
            names.append("b_out")
        return tuple(names)

    def _init_network(self, c: ContractingRNNConfig, g: torch.Generator):
        N, I, O = c.n_units, c.n_inputs, c.n_outputs
        if c.parameterisation == "symmetric":
            recurrent = {
                "P": torch.randn(N, N, generator=g, dtype=torch.float64).float() / math.sqrt(N),
                "negative_gain": torch.tensor(float(c.negative_gain)),
            }
        else:
            s0 = _logit(c.init_gain / c.max_gain)
            recurrent = {
                "A_u": torch.randn(N, N, generator=g, dtype=torch.float64).float()
                / math.sqrt(N),
                "A_v": torch.randn(N, N, generator=g, dtype=torch.float64).float()
                / math.sqrt(N),
                "s_raw": s0 + 0.1 * torch.randn(N, generator=g, dtype=torch.float64).float(),
            }
        return {
            **recurrent,
            "log_theta": torch.zeros(N),
            "W_in": _uniform((N, I), 1 / math.sqrt(max(I, 1)), g),
            "b": torch.zeros(N),
            "W_out": _uniform((O, N), 1 / math.sqrt(N), g),
            "b_out": torch.zeros(O),
            "leak": torch.tensor(float(c.leak)),
            "max_gain": torch.tensor(float(c.max_gain)),
        }

    def recurrent_weights(self) -> torch.Tensor:
        """``W [K, N, N]``: ``Theta^{-1} U Sigma V^T Theta`` (``"svd"``) or the symmetric ``(1 /
        g) (max_gain I - (max_gain + negative_gain) (I - (I + P P^T)^{-1}))``."""
        if self.config.parameterisation == "svd":
            return self._svd_weights()
        g = max_slope(self.config.nonlinearity)
        eye = torch.eye(self.n_units, dtype=self.P.dtype, device=self.P.device)
        Q = eye - torch.linalg.inv(eye + self.P @ self.P.transpose(1, 2))  # eigenvalues in [0, 1)
        gam = self.max_gain[:, None, None]
        W = (gam * eye - (gam + self.negative_gain[:, None, None]) * Q) / g
        return (W + W.transpose(1, 2)) / 2  # exactly symmetric (rounding of the inverse)

    def prepare(self) -> dict[str, torch.Tensor]:
        params = {"W_T": self.recurrent_weights().transpose(1, 2)}
        alpha = self._alpha()
        if alpha is not None:
            params["alpha"] = alpha
        return params

    def step_drive(self, h, drive, params, noise=None):
        """One step, :func:`dynrnn.functional.rate.rate_step`."""
        c = self.config
        return rate_step(h, drive, params["W_T"], params.get("alpha"), c.nonlinearity,
                         c.leak_form, noise)

    def jacobian(self, h, x=None):
        """Analytic Jacobian ``[K, B, N, N]``
        (:func:`dynrnn.functional.rate.rate_cell_jacobian`)."""
        h = self._check_state(h, "jacobian")
        drive = self._drive_for_step(h, x, "jacobian")
        params = self.prepare()
        a = rate_preactivation(h, drive, params["W_T"])
        W = params["W_T"].transpose(1, 2)[:, None]
        alpha = params.get("alpha")
        if alpha is not None:
            alpha = alpha.expand(-1, 1, self.n_units)
        c = self.config
        return rate_cell_jacobian(h, a, W, alpha, c.nonlinearity, c.leak_form)

    def stability_structure(self, time: str = "discrete") -> dict[str, Any]:
        """Keyword arguments of :func:`dynrnn.analyses.certify_matrices` for these networks,
        including (``"svd"``) the model's own metric ``Theta`` (a candidate of
        ``diagonal_fast``)."""
        c = self.config
        with torch.no_grad():
            W = self.recurrent_weights().double()
            leak = self.leak.double()
            out: dict[str, Any] = {"nonlinearity": c.nonlinearity}
            if c.parameterisation == "svd":
                out["metric"] = self.metric().double()
            if time == "continuous":
                if c.leak_form == "inside" and bool((leak < 1).any()):
                    raise ValueError("leak_form='inside' is not the Euler step of an ODE; use "
                                     "time='discrete'.")
                dts = torch.tensor([float(cf.dt) for cf in self.configs], dtype=torch.float64)
                out.update(W=W, form="continuous", tau=dts / leak)
            elif bool((leak == 1).all()):
                out.update(W=W, form="map")
            elif c.leak_form == "inside":
                eye = torch.eye(W.shape[-1], dtype=W.dtype)
                out.update(W=(1 - leak)[:, None, None] * eye + leak[:, None, None] * W,
                           form="map")
            else:
                out.update(W=W, form="leaky", leak=leak)
        return out


def _check_blocks(owner, name, value, config):
    msg = (f"The {name!r} parameter of {owner} must be a non-empty sequence of ints >= 1. Got "
           f"{value!r} instead.")
    if isinstance(value, (str, bytes)):
        raise ValueError(msg)
    try:
        blocks = tuple(value)
    except TypeError:
        raise ValueError(msg) from None
    if not blocks or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                         for b in blocks):
        raise ValueError(msg)
    return blocks


@dataclass(frozen=True)
class ContractingAssemblyConfig:
    """A network of contracting networks with negative-feedback coupling.

    Attributes:
        n_inputs, n_outputs: sizes I, O; the state has ``sum(block_sizes)`` units.
        block_sizes: units per block (subnetwork).
        nonlinearity: one of ``tanh, relu, leaky_relu, softplus, sigmoid, identity``.
        leak: ``a = dt / tau`` of the Euler step, in (0, 2 (1 - max_gain) / (1 + max_coupling^2
            - max_gain^2)) (the discrete map's contraction condition; see :meth:`max_leak`).
        max_gain: bound on ``g ||Theta_i W_i Theta_i^{-1}||_2`` per block, in (0, 1).
        max_coupling: bound on ``||Theta L Theta^{-1}||_2`` (> 0).
        init_gain: initial ``g sigma`` of the blocks, in (0, max_gain).
        bias, readout_bias: include b and b_out.
        dt: the time step of the Euler step (time units), so ``tau = dt / leak``.
    """

    n_inputs: int
    n_outputs: int
    block_sizes: tuple[int, ...] = (8, 8)
    nonlinearity: str = "tanh"
    leak: float = 0.1
    max_gain: float = 0.9
    max_coupling: float = 1.0
    init_gain: float = 0.5
    bias: bool = True
    readout_bias: bool = True
    dt: float = 1.0

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_inputs": Int(0),
        "n_outputs": Int(1),
        "block_sizes": Check(_check_blocks),
        "nonlinearity": Choice(NONLINEARITIES),
        "leak": Float(0.0, 1.0, low_inclusive=False),
        "max_gain": Float(0.0, 1.0, low_inclusive=False, high_inclusive=False),
        "max_coupling": Float(0.0, None, low_inclusive=False),
        "init_gain": Float(0.0, "max_gain", low_inclusive=False, high_inclusive=False),
        "bias": Bool(),
        "readout_bias": Bool(),
        "dt": Float(0.0, None, low_inclusive=False),
    }

    def __post_init__(self):
        if isinstance(self.block_sizes, list):
            object.__setattr__(self, "block_sizes", tuple(self.block_sizes))
        validate_config(self)

    def _check_relations(self):
        limit = self.max_leak()
        if not (self.leak < limit or limit == 1.0):
            raise ValueError(
                f"The 'leak' parameter of {type(self).__name__} must be below 2 (1 - max_gain) /"
                f" (1 + max_coupling^2 - max_gain^2) = {limit:.6g} for the Euler step to stay "
                f"contracting (range (0, {limit:.6g})). Got {self.leak!r} instead."
            )

    def max_leak(self) -> float:
        """The leak below which the Euler step is certified: ``2 (1 - max_gain) / (1 +
        max_coupling^2 - max_gain^2)`` (capped at 1)."""
        g, ell = self.max_gain, self.max_coupling
        return min(1.0, 2 * (1 - g) / (1 + ell ** 2 - g ** 2))

    @property
    def n_units(self) -> int:
        return int(sum(self.block_sizes))


class ContractingAssembly(_ContractingBase):
    """K networks of contracting networks (see the module docstring).

    Parameters (leading dim K): ``A_u, A_v [K, N, N]`` (block-masked generators), ``s_raw``,
    ``log_theta [K, N]``, ``B [K, N, N]`` (raw coupling, off-diagonal blocks), ``W_in``, ``b``,
    ``W_out``, ``b_out``; buffers ``block_mask``, ``leak``, ``max_gain``, ``max_coupling``.
    """

    config_class = ContractingAssemblyConfig
    model_name = "contracting_assembly"
    structural_fields = ("n_inputs", "n_outputs", "block_sizes", "nonlinearity", "bias",
                         "readout_bias")

    def trainable_names(self):
        c = self.configs[0]
        names = ["A_u", "A_v", "s_raw", "log_theta", "B", "W_in", "W_out"]
        if c.bias:
            names.append("b")
        if c.readout_bias:
            names.append("b_out")
        return tuple(names)

    def _init_network(self, c: ContractingAssemblyConfig, g: torch.Generator):
        N, I, O = c.n_units, c.n_inputs, c.n_outputs
        mask = torch.zeros(N, N)
        start = 0
        for size in c.block_sizes:
            mask[start:start + size, start:start + size] = 1
            start += size
        s0 = _logit(c.init_gain / c.max_gain)
        nb = max(c.block_sizes)
        return {
            "A_u": torch.randn(N, N, generator=g, dtype=torch.float64).float() / math.sqrt(nb),
            "A_v": torch.randn(N, N, generator=g, dtype=torch.float64).float() / math.sqrt(nb),
            "s_raw": s0 + 0.1 * torch.randn(N, generator=g, dtype=torch.float64).float(),
            "log_theta": torch.zeros(N),
            "B": (1 - mask) * torch.randn(N, N, generator=g, dtype=torch.float64).float()
            / math.sqrt(N),
            "W_in": _uniform((N, I), 1 / math.sqrt(max(I, 1)), g),
            "b": torch.zeros(N),
            "W_out": _uniform((O, N), 1 / math.sqrt(N), g),
            "b_out": torch.zeros(O),
            "block_mask": mask,
            "leak": torch.tensor(float(c.leak)),
            "max_gain": torch.tensor(float(c.max_gain)),
            "max_coupling": torch.tensor(float(c.max_coupling)),
        }

    @property
    def n_units(self) -> int:
        return int(self.config.n_units)

    def recurrent_weights(self) -> torch.Tensor:
        """The blocks ``W = blockdiag(Theta_i^{-1} U_i Sigma_i V_i^T Theta_i)``, ``[K, N, N]``."""
        return self._svd_weights(self.block_mask) * self.block_mask

    def coupling(self) -> torch.Tensor:
        """``L = B - M^{-1} B^T M`` (``M = Theta^2``) scaled to ``||Theta L Theta^{-1}||_F <=
        max_coupling`` (so the 2-norm is too), ``[K, N, N]``."""
        theta = self.log_theta.exp()
        Bm = self.B * (1 - self.block_mask)
        S = Bm * theta[:, :, None] / theta[:, None, :]  # Theta B Theta^-1
        skew = S - S.transpose(1, 2)  # Theta L Theta^-1
        # the Frobenius norm bounds the 2-norm and is cheap to differentiate (no SVD)
        norm = torch.linalg.matrix_norm(skew, ord="fro")
        scale = torch.clamp(self.max_coupling / norm.clamp_min(1e-30), max=1.0)
        skew = skew * scale[:, None, None]
        return skew * theta[:, None, :] / theta[:, :, None]  # Theta^-1 (.) Theta

    def _readout_input(self, h: torch.Tensor) -> torch.Tensor:
        """The readout sees the rates ``phi(x)``: ``y = W_out phi(x) + b_out``."""
        return phi(self.config.nonlinearity, h)

    def prepare(self) -> dict[str, torch.Tensor]:
        return {
            "W_T": self.recurrent_weights().transpose(1, 2),
            "L_T": self.coupling().transpose(1, 2),
            "alpha": self.leak[:, None, None],
        }

    def step_drive(self, h, drive, params, noise=None):
        """``x+ = (1 - a) x + a (W phi(x) + L x + drive (+ noise))``."""
        inner = drive + torch.bmm(h, params["L_T"])
        if noise is not None:
            inner = inner + noise
        pre = rate_preactivation(phi(self.config.nonlinearity, h), inner, params["W_T"])
        return leak_mix(h, pre, params["alpha"])

    def jacobian(self, h, x=None):
        """``(1 - a) I + a (W diag(phi'(x)) + L)``, ``[K, B, N, N]``."""
        h = self._check_state(h, "jacobian")
        params = self.prepare()
        W = params["W_T"].transpose(1, 2)[:, None]
        L = params["L_T"].transpose(1, 2)[:, None]
        a = params["alpha"][..., None]
        d = dphi(self.config.nonlinearity, h)[..., None, :]
        eye = torch.eye(self.n_units, dtype=h.dtype, device=h.device)
        return (1 - a) * eye + a * (W * d + L)

    def stability_structure(self, time: str = "discrete") -> dict[str, Any]:
        """Keyword arguments of :func:`dynrnn.analyses.certify_matrices` (form
        ``"assembly"``)."""
        with torch.no_grad():
            out: dict[str, Any] = {
                "W": self.recurrent_weights().double(),
                "coupling": self.coupling().double(),
                "metric": self.metric().double(),
                "nonlinearity": self.config.nonlinearity,
                "form": "assembly",
            }
            leak = self.leak.double()
            if time == "continuous":
                dts = torch.tensor([float(c.dt) for c in self.configs], dtype=torch.float64)
                out["tau"] = dts / leak
            else:
                out["leak"] = leak
        return out
