"""Stability certificates: is a network provably contracting (one attractor for every input,
the echo-state property), by which condition, in which metric, at what rate?

A map ``F`` is *contracting* in a norm ``||.||`` at rate ``r < 1`` if
``||F(h1, x) - F(h2, x)|| <= r ||h1 - h2||`` for all states and every input ``x``; then any two
trajectories driven by the same input converge as ``r^t`` and the network has the echo-state
property. It suffices that every Jacobian the map can have satisfies ``||J|| <= r`` in the
induced matrix norm (mean-value argument along the segment between the two states; the set
of Jacobians is convex in the slopes). A continuous-time system ``x' = f(x, u)`` is contracting at
rate ``c > 0`` if the matrix measure (log-norm) of every Jacobian is ``mu(J) <= -c``; then
``||x1(t) - x2(t)|| <= e^{-c t} ||x1(0) - x2(0)||`` (Lohmiller & Slotine 1998, "On contraction
analysis for non-linear systems", Automatica 34(6)).

Every certificate assumes only that the nonlinearity is monotone with slope bound ``g``:
``0 <= phi'(a) <= g`` (tanh, relu, leaky_relu, softplus: g = 1; sigmoid: g = 1/4;
:func:`dynrnn.functional.nonlin.max_slope`), so the slopes enter as an unknown diagonal
``D = diag(phi')`` with entries in ``[0, g]``.

Forms (``W`` the effective recurrent matrix, ``D`` the slopes)
------------------------------------------------------------------
* ``"map"``: ``h+ = phi(W h + U x + b)``, ``J = D W`` (vanilla RNN; the rate RNN with tau = 1;
  the rate RNN's ``leak_form="inside"`` with ``W_eff = (I - A) + A W``, ``A = diag(1/tau)``;
  the ESN with leak 1; an ESN with output feedback uses ``W + W_fb W_out``).
* ``"leaky"``: ``h+ = (1 - a) h + a phi(W h + U x + b)``, ``J = (I - A) + A D W`` (the rate RNN's
  ``leak_form="outside"``, the leaky ESN; ``a`` per network or per unit).
* ``"plrnn"``: ``z+ = A z + W phi(z) + h``, ``J = A + W D`` (PLRNN, AL-RNN; the AL-RNN's linear
  units have slope exactly 1, inside ``[0, 1]``).
* ``"continuous"``: ``tau_i x_i' = -x_i + (W phi(x))_i + u_i``, ``J = T^{-1} (-I + W D)`` (the
  form of Kozachkov et al. 2022), and equally the rate form ``tau h' = -h + phi(W h + u)``,
  ``J = T^{-1} (-I + D W)`` (whose Euler step is the ``"leaky"`` map): every bound below holds for
  both (the ``symmetric`` one in the inverse metric). The rate is per time unit (tau in time
  units).
* ``"assembly"``: a network of contracting blocks with negative-feedback coupling ``L``,
  ``tau x' = -x + W phi(x) + L x + u`` and its Euler step ``x+ = (1-a) x + a (W phi(x) + L x + u)``
  (:class:`dynrnn.models.ContractingAssembly`).

Conditions (the ``condition`` dimension)
----------------------------------------
* ``spectral_radius`` -- NECESSARY only: the Jacobian at ``D = g I`` (reached e.g. by tanh at a
  zero pre-activation) must be stable: ``rho(J) < 1`` (discrete) or ``max Re eig(J) < 0``. For the
  map form this is ``g rho(W) < 1``. It never certifies: ``rho(W) < 1`` does not imply the
  echo-state property (Yildiz, Jaeger & Kiebel 2012, "Re-visiting the echo state property",
  Neural Networks 35, 1-9, give counterexamples; tests/test_stability.py has one).
* ``spectral_norm`` -- metric: the Euclidean 2-norm. ``||D W||_2 <= g ||W||_2``.
* ``diagonal_fast`` / ``diagonal_sdp`` -- metric: the weighted 2-norm ``||Theta x||_2`` with a
  positive diagonal ``Theta``. Because ``D`` and ``Theta`` commute,
  ``||Theta D W Theta^{-1}||_2 <= g ||Theta W Theta^{-1}||_2``; the best Theta minimises
  ``gamma(Theta) = ||Theta W Theta^{-1}||_2``, i.e. the LMI ``W^T P W <= gamma^2 P`` with ``P =
  Theta^2`` diagonal positive (a quasi-convex generalised-eigenvalue problem).
  ``diagonal_sdp`` solves it by bisection on ``gamma`` with one SDP per step (cvxpy with
  Clarabel or SCS; ``pip install dynrnn[stability]``), one network at a time.
  ``diagonal_fast`` is solver-free and batched over all networks: it takes the best of Theta = I,
  the Perron scaling ``Theta = diag(sqrt(u / v))`` (``u``, ``v`` the left and right Perron
  vectors of ``|W|``), and a descent on ``log Theta`` from there (the largest singular value of
  ``e^X W e^{-X}`` is convex in the diagonal X: Sezginer & Overton 1990, "The largest singular
  value of e^X A_0 e^{-X} is convex on convex sets of commuting matrices", IEEE Transactions on
  Automatic Control 35(2), 229-230; its gradient in ``X_ii`` is ``sigma (y_i^2 - x_i^2)`` with
  ``x``, ``y`` the top right / left singular vectors). Every Theta tried is a valid metric, and
  the reported ``gamma`` is the exact 2-norm (SVD) at the Theta kept, so the fast bound is never
  below the optimum, only possibly above it.
* ``abs_spectral_radius`` -- metric: the weighted infinity norm ``max_i |x_i| / v_i`` with ``v``
  the Perron vector of the entrywise majorant of the Jacobians (``g |W|`` for the map form). For
  a nonnegative matrix ``B`` and positive ``v``, ``||V^{-1} B V||_inf = max_i (B v)_i / v_i``,
  which equals ``rho(B)`` at the Perron vector (Collatz-Wielandt), so the condition reads
  ``g rho(|W|) < 1``. This is a different norm from the 2-norm ones -- each condition is a valid
  contraction metric on its own; the rate is reported in that condition's metric.
* ``kozachkov`` -- metric: the weighted 2-norm ``||Theta x||_2`` with a positive diagonal Theta
  (the quadratic diagonal metric ``P = Theta^2``); continuous time only. Kozachkov, Ennis &
  Slotine (2022), "RNNs of RNNs: Recursive construction of stable assemblies of recurrent neural
  networks", NeurIPS 2022 (arXiv 2106.08928), Theorem 1 ("absolute-value restricted weights"),
  for ``tau x' = -x + W phi(x) + u`` with ``0 <= phi' <= g``: if some positive diagonal ``P``
  makes ``P (g |W| - I) + (g |W| - I)^T P`` negative definite, the network is contracting in the
  metric ``P``; where a self-connection is not excitatory (``W_ii <= 0``) its entry of ``|W|``
  may be replaced by 0. Here ``|W|_+`` is ``|W|`` with the diagonal ``max(W_ii, 0)``; ``g |W|_+ -
  I`` is Metzler, so such a P exists iff it is Hurwitz, i.e. iff ``g rho(|W|_+) < 1`` (the value
  reported). The module takes the majorant of every Jacobian, ``Jbar = T^{-1} (g |W|_+ - I)``
  (``T = diag(tau)``; it bounds ``T^{-1} (-I + W D)`` and the rate form's ``T^{-1} (-I + D W)``
  entrywise off the diagonal in modulus and on it from above), and ``Theta = sqrt(u / v)`` from
  its left / right Perron vectors (of ``Jbar + max(1 / tau) I``): then ``w = sqrt(u v)`` is a left
  and right Perron vector of ``Theta Jbar Theta^{-1}``, whose symmetric part therefore has the
  largest eigenvalue ``lambda_P(Jbar)``, and ``x^T sym(Theta J Theta^{-1}) x <= |x|^T
  sym(Theta Jbar Theta^{-1}) |x|`` gives ``mu_2,Theta(J) <= lambda_max(sym(Theta Jbar
  Theta^{-1}))``. The rate reported is ``c = -lambda_max(sym(Theta Jbar Theta^{-1}))`` (exact
  eigvalsh at the Theta kept, so valid whatever the Perron iteration did): ``(1 - g rho(|W|_+)) /
  tau`` for one tau. NaN for the discrete forms (the theorem is about the ODE; the map form's
  counterpart is ``abs_spectral_radius``).
* ``symmetric`` -- metric: a constant quadratic form ``sqrt(x^T M x)`` (a full matrix, from
  :func:`symmetric_metric`; ``theta`` is NaN). Kozachkov et al. (2022), Theorem 2 ("symmetric
  weights"): for symmetric ``W`` and ``0 <= phi' <= g``, ``g W < I`` (negative definite ``g W -
  I``) makes ``tau x' = -x + W phi(x) + u`` contracting. The metric and the rate used here are
  constructed and proved in this module (the simple candidates ``I - g W`` and ``(I - g
  W)^{-1}`` do not work: numerically, admissible slopes ``D`` exist with ``M J + J^T M`` not
  negative definite). Proof: with ``S = g W = V diag(s) V^T`` and ``psi = phi / g``, a difference
  obeys ``dx' = -dx + S dpsi`` with ``dpsi_i (dx_i - dpsi_i) >= 0`` (slopes in [0, 1]). For ``M =
  V diag(q) V^T`` and the multiplier ``2 dpsi^T (dx - dpsi)`` (S-procedure) it suffices that
  ``[[-2 (1 - c) M, M S + I], [S M + I, -2 I]] <= 0``; all blocks are functions of S, so this
  splits into 2x2 blocks per eigenvalue, ``(q s + 1)^2 <= 4 q (1 - c)``, solvable in ``q > 0`` iff
  ``s <= 1 - c =: s'``. Taking ``s' = max(lambda_max(S), 0.01)`` and the smaller root ``q = 1 /
  (2 s' - s + 2 sqrt(s' (s' - s)))`` gives ``M J + J^T M <= -2 c M`` for every slope, ``c = 1 -
  s'`` (per tau; one tau per network, else NaN). Discrete (the leaky / Euler step with leak a,
  ``J = (1 - a) I + a S E``): the same per-eigenvalue block for ``J^T M J <= r^2 M`` is solvable
  iff ``r >= max_{e in [0, 1]} |1 - a + a s e|``, so ``r = max(1 - a + a s', a |s_min| - (1 - a))``
  (the worst scalar mode: tight), with ``q = 1 / (beta + sqrt(beta^2 - alpha))``, ``beta = r^2 -
  (1 - a)^2 - (1 - a) a s``, ``alpha = a^2 s^2 r^2``; ``"map"`` is a = 1 (then ``r = max(s',
  |s_min|)``, the spectral norm). The rate form ``tau h' = -h + phi(W h + u)`` and the leaky map
  have the transposed Jacobians ``-I + D W``, so they contract in ``M^{-1}`` at the same rate
  (``||A^T||_{M^{-1}} = ||A||_M``). Applied where ``||W - W^T||_2 / 2 <= 1e-6 max(||W||_2, 1)``
  (NaN otherwise); the residual asymmetric part ``A`` is paid for exactly: ``c -= g ||A||
  sqrt(cond M)``, ``r += a g ||A|| sqrt(cond M)``.
* ``feedback_metric`` -- (assembly only) the block metric of a network of networks: each block
  ``W_i`` contracting in ``Theta_i`` and the coupling ``L = B - M^{-1} B^T M``, ``M = Theta^2``,
  so that ``S = Theta L Theta^{-1}`` is skew-symmetric and drops out of the symmetric part of the
  Jacobian. This is the negative-feedback combination of Kozachkov et al. (2022): two systems
  contracting in metrics ``M_1``, ``M_2``, coupled as ``x_1' = f_1(x_1) + B x_2``, ``x_2' =
  f_2(x_2) - M_2^{-1} B^T M_1 x_1``, form a system contracting in ``blockdiag(M_1, M_2)`` at the
  slower of the two rates, whatever ``B`` (the cross terms of ``M J + J^T M`` cancel), and such
  combinations can be repeated recursively. The blocks here are the Theorem 5 (SVD)
  parameterisation in the form ``tau x' = -x + W phi(x) + L x + u``. Continuous time: ``c = (1 - g
  gamma - lambda_max(sym S)) / tau``. Discrete (Euler, step a): ``(1 - a) I + a S`` is normal
  with norm ``sqrt((1 - a)^2 + a^2 ||S||^2)`` for skew S, so the rate is at most
  ``sqrt((1 - a)^2 + a^2 ||skew S||^2) + a (g gamma + ||sym S||)``; also at most
  ``sqrt(1 - 2 a c + a^2 kappa^2)``, ``kappa = 1 + g gamma + ||S||``; the smaller is reported.

The ordering ``rho(W) <= inf_Theta ||Theta W Theta^{-1}||_2 <= min(||W||_2, rho(|W|))`` holds:
the first because the spectral radius is similarity-invariant and below every induced norm, the
second by Theta = I and by the Perron scaling. That last claim -- for a nonnegative irreducible
``B`` with left / right Perron vectors ``u, v``, ``Theta = diag(sqrt(u / v))`` gives
``||Theta B Theta^{-1}||_2 = rho(B)`` -- is the classical diagonal-scaling result (Stoer &
Witzgall 1962, "Transformations by diagonal matrices in a normed space", Numerische Mathematik 4,
158-171); proof: ``w = sqrt(u v)`` is a right and left Perron vector of ``C = Theta B Theta^{-1}``,
so ``C^T C w = rho^2 w`` with ``C^T C >= 0`` and ``w > 0``, hence ``||C||_2 = rho``; and
``||Theta W Theta^{-1}||_2 <= || |Theta W Theta^{-1}| ||_2 = ||Theta |W| Theta^{-1}||_2``. It is
checked numerically in tests/test_stability.py (max deviation ~1e-15).

Rates. Discrete time: ``rate`` is the per-step contraction factor in the condition's metric (a
certificate holds iff ``rate < 1 - 1e-9``); map: ``g gamma``; leaky (2-norm metrics):
``(1 - a_min) + a_max g gamma`` (= ``1 - a (1 - g gamma)`` for one leak: the leaky map stays
contracting for every ``a`` in (0, 1] under the Theta condition); PLRNN: ``max |A_ii| + g
gamma``. Continuous time: ``rate`` is ``c`` per time unit (holds iff ``c > 1e-9``); 2-norm
metrics in ``Theta T^{1/2}``: ``c = (1 - g gamma) / tau_max``; infinity-norm ones: ``c = min_i
(1 - g r_i) / tau_i``. The margin 1e-9 is far above float64 rounding of the norms (~1e-15 N).

Each condition's metric is its own: the ``rate`` of a condition is a contraction rate in that
condition's metric (the ``metric`` and ``metric_norm`` coordinates), not in the Euclidean norm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._validation import ParameterTypeError, check_bool, check_choice, check_float, check_int
from ..functional.nonlin import SLOPE_BOUNDS, max_slope
from ..models.base import run
from ._common import check_model, float64_copy, network_coords, network_dts, to_numpy

__all__ = [
    "CONDITIONS",
    "FORMS",
    "certify_matrices",
    "stability_certificates",
    "echo_state_property",
    "weighted_norm_fast",
    "weighted_norm_sdp",
    "perron_vectors",
    "slope_bound",
    "symmetric_metric",
    "stability_structure",
]

CONDITIONS = (
    "spectral_radius", "spectral_norm", "diagonal_fast", "diagonal_sdp", "abs_spectral_radius",
    "kozachkov", "symmetric", "feedback_metric",
)
FORMS = ("map", "leaky", "plrnn", "continuous", "assembly")
_SUFFICIENT = {c: c != "spectral_radius" for c in CONDITIONS}
_NORM = {
    "spectral_radius": "none", "spectral_norm": "2", "diagonal_fast": "2", "diagonal_sdp": "2",
    "abs_spectral_radius": "inf", "kozachkov": "2", "symmetric": "quadratic",
    "feedback_metric": "2",
}
_METRIC = {
    "spectral_radius": "none (necessary condition only)",
    "spectral_norm": "Euclidean 2-norm ||x||_2",
    "diagonal_fast": "weighted 2-norm ||theta * x||_2 (theta: positive diagonal, batched descent)",
    "diagonal_sdp": "weighted 2-norm ||theta * x||_2 (theta: positive diagonal, LMI / SDP)",
    "abs_spectral_radius": "weighted inf-norm max_i theta_i |x_i| (theta = 1 / Perron vector)",
    "kozachkov": "weighted 2-norm ||theta * x||_2 (theta = sqrt(u / v), u, v the Perron "
                 "vectors of T^-1 (g |W|_+ - I))",
    "symmetric": "quadratic sqrt(x^T M x), M = f(g W) (tau x' = -x + W phi(x) + u) or M^-1 "
                 "(rate form, leaky map): dynrnn.analyses.stability.symmetric_metric",
    "feedback_metric": "weighted 2-norm ||theta * x||_2 (the assembly's block metric)",
}
_TOL = 1e-9
_INCONCLUSIVE = "inconclusive"


# ------------------------------------------------------------------------ slope bounds
def slope_bound(nonlinearity: Any = None, slope: Any = None, owner: str = "slope_bound") -> float:
    """The slope bound g (``0 <= phi' <= g``) from a nonlinearity name or an explicit value.

    Raises:
        ValueError: an unknown nonlinearity without an explicit ``slope``, naming the slope
            bound the certificates need.
    """
    if slope is not None:
        return check_float(owner, "slope_bound", slope, 0.0, None, low_inclusive=False)
    if not isinstance(nonlinearity, str):
        raise ParameterTypeError(
            f"The 'nonlinearity' parameter of {owner} must be a name from {sorted(SLOPE_BOUNDS)} "
            f"(or pass slope_bound=g). Got {nonlinearity!r} instead."
        )
    try:
        return max_slope(nonlinearity)
    except ValueError:
        raise ValueError(
            f"The nonlinearity {nonlinearity!r} of {owner} is not supported: the certificates "
            f"need a slope bound g with 0 <= phi'(a) <= g for all a (a monotone nonlinearity); "
            f"pass slope_bound=g if it has one. Known: {SLOPE_BOUNDS}."
        ) from None


# ------------------------------------------------------------------------ linear algebra
def _check_square(W: Any, owner: str, name: str = "W") -> torch.Tensor:
    if isinstance(W, (str, bytes)) or W is None:
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a real tensor [K, N, N] or [N, N]. Got "
            f"{type(W).__name__} instead."
        )
    try:
        t = torch.as_tensor(np.asarray(W) if not torch.is_tensor(W) else W)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a real tensor [K, N, N] or [N, N]. Got "
            f"{type(W).__name__} instead."
        ) from None
    if t.is_complex() or t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (
            torch.int32, torch.int64)):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be real. Got dtype {t.dtype} instead."
        )
    t = t.detach().to(torch.float64)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[-1] != t.shape[-2] or t.shape[-1] < 1 or t.shape[0] < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be square, [K, N, N] or [N, N]. Got shape "
            f"{tuple(t.shape)} instead."
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"The {name!r} parameter of {owner} holds NaN or inf.")
    return t


def _per_unit(value: Any, K: int, N: int, owner: str, name: str, low: float, high: float | None,
              low_inclusive: bool = False) -> torch.Tensor:
    """A scalar, ``[K]`` or ``[K, N]`` parameter as ``[K, N]`` float64 in the allowed range."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.ndim == 0:
        t = t.expand(K, N)
    elif t.ndim == 1 and t.shape[0] == K:
        t = t[:, None].expand(K, N)
    elif t.ndim == 1 and K == 1 and t.shape[0] == N:
        t = t[None]
    elif not (t.ndim == 2 and t.shape == (K, N)):
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a scalar, [K={K}] or [K={K}, N={N}]. Got "
            f"shape {tuple(t.shape)} instead."
        )
    bad = ~torch.isfinite(t) | (t < low if low_inclusive else t <= low)
    if high is not None:
        bad |= t > high
    if bool(bad.any()):
        lo = "[" if low_inclusive else "("
        raise ValueError(
            f"The {name!r} parameter of {owner} must lie in {lo}{low}, "
            f"{'inf)' if high is None else str(high) + ']'}. Got {t[bad][0].item()!r}."
        )
    return t.clone()


def perron_vectors(B: Any, n_iter: int = 2000, tol: float = 1e-13) -> tuple[torch.Tensor, ...]:
    """Perron root and right / left Perron vectors of nonnegative matrices, batched.

    Power iteration on ``B + eps 1 1^T + I`` (eps = 1e-12 max B: strictly positive, so the
    vectors are positive even for reducible B; the identity shift makes it primitive), stopped
    when the Collatz-Wielandt bounds ``min_i (Bv)_i / v_i <= rho(B) <= max_i (Bv)_i / v_i`` agree
    to ``tol`` (relative). Solver-free and batched (``torch.linalg.eig`` is slower at K = 10^4);
    small batches (``K N^3 <= 5e7``) use ``torch.linalg.eig`` of the perturbed matrix instead,
    which stays accurate when B is (nearly) reducible and power iteration converges slowly.
    For a reducible B the Perron scaling exists only as a limit, so the bounds built on the
    perturbed matrix may exceed ``rho(B)`` by the eigenvalue shift of ``eps 1 1^T``.

    Arguments:
        B: nonnegative ``[K, N, N]``.
        n_iter: maximum iterations; tol: relative gap of the Collatz-Wielandt bounds.

    Returns:
        ``(upper [K], v [K, N], u [K, N])``: ``upper = max_i (B v)_i / v_i``, an upper bound of
        ``rho(B)`` attained as a weighted inf-norm (the value a certificate can use), and the
        positive right (``B v ~ rho v``) and left (``B^T u ~ rho u``) vectors, max-normalised.
    """
    B = _check_square(B, "perron_vectors", "B")
    if bool((B < 0).any()):
        raise ValueError("The 'B' parameter of perron_vectors must be nonnegative.")
    K, N, _ = B.shape
    scale = B.amax(dim=(1, 2), keepdim=True).clamp_min(1e-300)
    Bp = B + 1e-12 * scale
    eye = torch.eye(N, dtype=B.dtype)
    S = Bp + eye * scale  # shifted: same vectors, primitive
    v = torch.ones(K, N, 1, dtype=B.dtype)
    u = torch.ones(K, N, 1, dtype=B.dtype)
    ST = S.transpose(1, 2)
    if K * N ** 3 <= 5e7:  # small batches: exact eigenvectors (robust for nearly reducible B)
        v, u = _perron_eig(Bp), _perron_eig(Bp.transpose(1, 2))
        n_iter = 0
    for it in range(n_iter):
        v = torch.bmm(S, v)
        v = v / v.amax(dim=1, keepdim=True)
        u = torch.bmm(ST, u)
        u = u / u.amax(dim=1, keepdim=True)
        if it % 10 == 9:
            ratio = torch.bmm(Bp, v)[..., 0] / v[..., 0]
            hi, lo = ratio.amax(-1), ratio.amin(-1)
            ratio_u = torch.bmm(Bp.transpose(1, 2), u)[..., 0] / u[..., 0]
            gap = torch.maximum(hi - lo, ratio_u.amax(-1) - ratio_u.amin(-1))
            if bool((gap <= tol * hi.clamp_min(1e-300)).all()):
                break
    v, u = v[..., 0], u[..., 0]
    upper = (torch.bmm(B, v[..., None])[..., 0] / v).amax(-1)
    return upper, v, u


def _perron_eig(B: torch.Tensor) -> torch.Tensor:
    """Right Perron vectors ``[K, N, 1]`` of positive ``B`` by ``torch.linalg.eig``."""
    ev, V = torch.linalg.eig(B)
    i = ev.real.argmax(-1)
    vec = V.gather(-1, i[:, None, None].expand(-1, B.shape[-1], 1))[..., 0]
    ref = vec.gather(-1, vec.abs().argmax(-1, keepdim=True))
    vec = (vec / ref).real.clamp_min(1e-300)
    return (vec / vec.amax(-1, keepdim=True))[..., None]


def _norm2(M: torch.Tensor) -> torch.Tensor:
    """Exact (SVD) spectral norms ``[K]`` of ``[K, N, N]``."""
    return torch.linalg.matrix_norm(M, ord=2)


def _scaled(W: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``Theta W Theta^{-1}`` for positive ``theta [K, N]``."""
    return theta[:, :, None] * W / theta[:, None, :]


def weighted_norm_fast(
    W: Any, n_iter: int = 100, step: float = 0.2, *, power_steps: int = 3,
    smooth_iter: int = 0, norm_identity: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched, solver-free upper bound of ``inf_Theta ||Theta W Theta^{-1}||_2`` over positive
    diagonal Theta, with the Theta attaining it.

    Candidates: Theta = I; the Perron scaling of ``|W|`` (``sqrt(u / v)``, which attains
    ``rho(|W|)`` for ``|W|``); then ``smooth_iter`` Adam steps on ``X = log Theta`` minimising
    the smooth Schatten-p norm ``(tr (M^T M)^{p/2})^{1/p} >= ||M||_2`` (``M = e^X W e^{-X}``,
    p = 16, 64, 256 in turn; ``(M^T M)^{p/2}`` by repeated squaring with trace normalisation,
    float32, batched); then ``n_iter`` steps of descent from the best so far,
    with the gradient ``sigma (y^2 - x^2)`` of the top singular value
    (Sezginer & Overton 1990: convex in X); the top singular vectors come from ``power_steps``
    warm-started power steps per iteration (``M x = theta * (W (x / theta))``, float32, never
    forming M), and each network's step shrinks when its estimate rises. The value returned is
    the exact float64 SVD norm at the best Theta, so it is a valid bound whatever the descent
    did.

    Arguments:
        W: ``[K, N, N]`` or ``[N, N]``.
        n_iter: steps of the singular-vector descent; step: its initial step.
        power_steps: power-iteration steps per descent step.
        smooth_iter: Adam steps on the Schatten-p surrogate (0, the default: none). Measured
            (2 CPU cores): on 20 random 6-unit Gaussian matrices the bound was at most 5.2%
            above the SDP optimum without it (median 3e-7), at most 0.8% with 60 steps; on two
            64-unit networks (benchmarks/stability.py) 6.8% and 7.5% above without it (2.6 ms
            per network), 0.6% and 0.7% with 60 steps (~0.1 s per network); the descent on
            the top singular vectors barely moves at N = 64 (the maximum is non-smooth there).
        norm_identity: ``||W||_2 [K]`` if already computed.

    Returns:
        ``(gamma [K], theta [K, N])`` with ``gamma = ||diag(theta) W diag(theta)^{-1}||_2``,
        ``theta`` max-normalised.
    """
    owner = "weighted_norm_fast"
    W = _check_square(W, owner)
    n_iter = check_int(owner, "n_iter", n_iter, 0)
    power_steps = check_int(owner, "power_steps", power_steps, 1)
    smooth_iter = check_int(owner, "smooth_iter", smooth_iter, 0)
    step = check_float(owner, "step", step, 0.0, None, low_inclusive=False)
    K, N, _ = W.shape
    ones = torch.ones(K, N, dtype=W.dtype)
    g_id = _norm2(W) if norm_identity is None else torch.as_tensor(norm_identity).double()
    _, v, u = perron_vectors(W.abs())
    th_p = (u / v).sqrt()
    th_p = th_p / th_p.amax(-1, keepdim=True)
    th_p = torch.where(torch.isfinite(th_p) & (th_p > 0), th_p, 1.0)
    g_p = _norm2(_scaled(W, th_p))
    use_p = g_p < g_id
    best = torch.minimum(g_p, g_id)
    best_th = torch.where(use_p[:, None], th_p, ones)
    if smooth_iter and N > 1:
        X = _schatten_descent(W, best_th.log(), smooth_iter).clamp(-40.0, 40.0)
        th = X.exp()
        M = _scaled(W, th)
        fin = torch.isfinite(M).all(-1).all(-1)
        g_s = torch.where(fin, _norm2(torch.where(fin[:, None, None], M, 0.0)), math.inf)
        better = g_s < best
        best = torch.where(better, g_s, best)
        best_th = torch.where(better[:, None], th, best_th)
    if n_iter and N > 1:
        W32 = W.float()
        W32T = W32.transpose(1, 2)
        X = best_th.log().float()
        eta = torch.full((K, 1), step, dtype=torch.float32)
        x = torch.full((K, N, 1), 1.0 / math.sqrt(N), dtype=torch.float32)
        prev = torch.full((K,), math.inf, dtype=torch.float32)
        best_est = torch.full((K,), math.inf, dtype=torch.float32)
        best_X = X.clone()
        warmup = min(20, n_iter // 2)  # early power estimates are low (not yet converged)
        for it in range(n_iter):
            th = X.exp()[..., None]
            for _ in range(power_steps):
                y = th * torch.bmm(W32, x / th)
                y = y / y.norm(dim=1, keepdim=True).clamp_min(1e-30)
                x = torch.bmm(W32T, th * y) / th
                sigma = x.norm(dim=1)[:, 0]
                x = x / sigma.clamp_min(1e-30)[:, None, None]
            better = (sigma < best_est) & (it >= warmup)
            best_est = torch.where(better, sigma, best_est)
            best_X = torch.where(better[:, None], X, best_X)
            eta = torch.where((sigma > prev)[:, None], eta * 0.5, eta * 1.05)
            prev = sigma
            X = X - eta * (y[..., 0] ** 2 - x[..., 0] ** 2)
            X = (X - X.amax(-1, keepdim=True)).clamp_min(-40.0)  # Theta_i >= e^-40
        for Xc in (best_X, X):  # the best estimate and the last iterate, checked exactly
            th = Xc.double().exp()
            M = _scaled(W, th)
            fin = torch.isfinite(M).all(-1).all(-1)
            g_d = torch.where(fin, _norm2(torch.where(fin[:, None, None], M, 0.0)), math.inf)
            better = g_d < best
            best = torch.where(better, g_d, best)
            best_th = torch.where(better[:, None], th, best_th)
    return best, best_th


def _schatten_descent(W: torch.Tensor, X0: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Adam on ``X`` minimising ``log ||e^X W e^{-X}||_{S_p}`` (p = 16 -> 64 -> 256)."""
    W32 = W.float()
    X = X0.float().clone().requires_grad_(True)
    opt = torch.optim.Adam([X], lr=0.05)
    stages = (3, 5, 7)  # (M^T M)^(2^k): p = 2^(k+1)
    with torch.enable_grad():
        for it in range(n_iter):
            k = stages[min(len(stages) - 1, it * len(stages) // max(n_iter, 1))]
            th = X.exp()
            M = th[:, :, None] * W32 / th[:, None, :]
            A = M.transpose(1, 2) @ M
            tr = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1).clamp_min(1e-30)
            logc = tr.log()
            A = A / tr[:, None, None]
            for _ in range(k):
                A = A @ A
                tr = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1).clamp_min(1e-30)
                logc = 2 * logc + tr.log()
                A = A / tr[:, None, None]
            loss = (logc / 2 ** (k + 1)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return X.detach().double()


def weighted_norm_sdp(
    W: Any, *, solver: str | None = None, rel_tol: float = 1e-6, max_condition: float = 1e8,
    upper: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``inf_Theta ||Theta W Theta^{-1}||_2`` over positive diagonal Theta by an LMI, one network
    at a time (cvxpy; ``pip install dynrnn[stability]``).

    ``||Theta W Theta^{-1}||_2 <= gamma`` iff ``gamma^2 P - W^T P W >= 0`` with ``P = Theta^2``
    (a linear matrix inequality in the diagonal P for fixed gamma). The optimum is found by
    bisection on gamma in ``[rho(W), upper]`` (upper: the fast bound or ``||W||_2``) to relative
    tolerance ``rel_tol``; each step solves ``max t s.t. gamma^2 P - W^T P W >= t I,
    I <= P <= max_condition I, t <= 1`` and calls gamma feasible when ``t > 0``.

    Arguments:
        W: ``[K, N, N]`` or ``[N, N]``.
        solver: a cvxpy solver name (default Clarabel, else SCS).
        rel_tol: relative width of the final bisection bracket.
        max_condition: the largest ``P_max / P_min`` allowed (keeps the SDP bounded).
        upper: ``[K]`` starting upper ends (default ``||W||_2``).

    Returns:
        ``(gamma [K], lower [K], theta [K, N], status)``: ``gamma`` is the exact 2-norm
        ``||Theta W Theta^{-1}||_2`` at the best feasible P found (a valid bound; NaN when the
        solver failed), ``lower`` the bracket's lower end (the optimum lies above it when the
        solver's verdicts are right), ``status`` per network ("optimal" or the solver's status /
        error when it failed).

    Raises:
        ImportError: cvxpy missing, naming the extra.
    """
    owner = "weighted_norm_sdp"
    W = _check_square(W, owner)
    rel_tol = check_float(owner, "rel_tol", rel_tol, 0.0, 1.0, low_inclusive=False)
    max_condition = check_float(owner, "max_condition", max_condition, 1.0, None)
    try:
        import cvxpy as cp
    except ImportError as e:  # pragma: no cover - exercised by monkeypatching in the tests
        raise ImportError(
            "weighted_norm_sdp needs cvxpy (an SDP solver): pip install dynrnn[stability]"
        ) from e
    if solver is None:
        installed = cp.installed_solvers()
        solver = "CLARABEL" if "CLARABEL" in installed else "SCS"
    K, N, _ = W.shape
    Wn = W.numpy()
    rho = torch.linalg.eigvals(W).abs().amax(-1).numpy()
    n2 = _norm2(W).numpy()
    up = n2 if upper is None else np.asarray(upper, dtype=np.float64).reshape(K)
    gammas = np.full(K, np.nan)
    lowers = np.full(K, np.nan)
    thetas = np.full((K, N), np.nan)
    statuses: list[str] = []
    for k in range(K):
        scale = float(max(up[k], 1e-300))
        Wk = Wn[k] / scale  # the optimum of the scaled problem is gamma / scale (near 1)
        p = cp.Variable(N)
        t = cp.Variable()
        g2 = cp.Parameter(nonneg=True)
        # W^T diag(p) W = sum_i p_i w_i w_i^T (w_i the rows of W), as one affine map of p
        C = np.einsum("ia,ib->abi", Wk, Wk).reshape(N * N, N)
        lhs = g2 * cp.diag(p) - cp.reshape(C @ p, (N, N), order="C")
        cons = [lhs >> t * np.eye(N), p >= 1, p <= max_condition, t <= 1]
        prob = cp.Problem(cp.Maximize(t), cons)

        def feasible(gamma, prob=prob, g2=g2, t=t, p=p):
            g2.value = float(gamma) ** 2
            last = "unknown"
            for name in dict.fromkeys((solver, "SCS")):
                try:
                    prob.solve(solver=name)
                except cp.error.SolverError as err:
                    last = f"{name}: solver error: {str(err).splitlines()[0][:160]}"
                    continue
                if prob.status in ("optimal", "optimal_inaccurate") and t.value is not None:
                    return bool(t.value > 0), np.asarray(p.value, dtype=np.float64)
                last = f"{name}: {prob.status}"
            return None, last

        lo, hi = float(rho[k]) / scale, 1.0
        best_p, status = None, "optimal"
        # the upper end: the fast bound is feasible up to solver accuracy; widen if needed
        for widen in (1e-6, 1e-3, 1e-2, 1e-1):
            ok, res = feasible(hi * (1 + widen))
            if ok is None or ok:
                break
        if ok is None:
            status = str(res)
        elif not ok:
            status = "no feasible P found at the upper end"
        else:
            hi, best_p = hi * (1 + widen), res
            while hi - lo > rel_tol * hi:
                mid = 0.5 * (lo + hi)
                ok, res = feasible(mid)
                if ok is None:
                    status = str(res)
                    break
                if ok:
                    hi, best_p = mid, res
                else:
                    lo = mid
        statuses.append(status)
        if best_p is not None and status == "optimal":
            th = np.sqrt(np.clip(best_p, 1e-300, None))
            th = th / th.max()
            thetas[k] = th
            gammas[k] = float(np.linalg.norm(th[:, None] * Wn[k] / th[None, :], 2))
            lowers[k] = lo * scale
    return gammas, lowers, thetas, statuses


def _row_bound(Bmat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(B v)_i / v_i`` rows ``[K, N]`` of a nonnegative ``B`` and positive ``v``."""
    return torch.bmm(Bmat, v[..., None])[..., 0] / v


def _offdiag_abs(W: torch.Tensor) -> torch.Tensor:
    return W.abs() * (1 - torch.eye(W.shape[-1], dtype=W.dtype))


_SYM_FLOOR = 1e-2  # s' = max(lambda_max(g W), 0.01): keeps the metric well conditioned
_SYM_TOL = 1e-6  # "symmetric to rounding": ||W - W^T||_2 / 2 <= 1e-6 max(||W||_2, 1)


def _symmetric_parts(W: torch.Tensor, g: float, leak: torch.Tensor | None):
    """Eigen-decomposition behind the ``symmetric`` condition (module docstring).

    ``S = g (W + W^T) / 2 = V diag(s) V^T``, ``s' = max(max s, 0.01)``. Continuous time (``leak``
    None): metric eigenvalues ``q = 1 / (2 s' - s + 2 sqrt(s' (s' - s)))``, base rate ``c = 1 -
    s'``. Euler / leaky step with leak ``a [K]``: ``r = max(1 - a + a s', a |min s| - (1 - a))``
    and ``q = 1 / (beta + sqrt(beta^2 - alpha))`` with ``beta = r^2 - (1 - a)^2 - (1 - a) a s``,
    ``alpha = a^2 s^2 r^2``.

    Returns:
        ``(applicable [K], s [K, N], V [K, N, N], base [K], q [K, N], asym [K])`` with ``base``
        the rate ``c`` (continuous) or ``r`` (discrete) for exactly symmetric W and ``asym =
        ||W - W^T||_2 / 2``.
    """
    Wsym = (W + W.transpose(1, 2)) / 2
    asym = _norm2((W - W.transpose(1, 2)) / 2)
    applicable = asym <= _SYM_TOL * _norm2(W).clamp_min(1.0)
    s, V = torch.linalg.eigh(g * Wsym)
    sp = s.amax(-1).clamp_min(_SYM_FLOOR)[:, None]
    if leak is None:
        q = 1.0 / (2 * sp - s + 2 * (sp * (sp - s).clamp_min(0)).sqrt())
        return applicable, s, V, 1 - sp[:, 0], q, asym
    a = leak[:, None]
    r = torch.maximum(1 - a + a * sp, a * (-s.amin(-1, keepdim=True)) - (1 - a))
    beta = r ** 2 - (1 - a) ** 2 - (1 - a) * a * s
    alpha = (a * s * r) ** 2
    q = 1.0 / (beta + (beta ** 2 - alpha).clamp_min(0).sqrt())
    return applicable, s, V, r[:, 0], q, asym


def symmetric_metric(
    W: Any, *, nonlinearity: str | None = None, slope_bound: float | None = None,
    form: str = "continuous", leak: Any = None, reading: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The constant quadratic metric ``M`` of the ``symmetric`` condition, ``[K, N, N]``.

    ``M = V diag(q) V^T`` with ``S = g W = V diag(s) V^T`` and ``q`` from the per-eigenvalue
    S-procedure of the module docstring. In the Hopfield reading (``tau x' = -x + W phi(x) + u``
    and its Euler step ``x+ = (1 - a) x + a (W phi(x) + u)``) differences contract in ``sqrt(d^T
    M d)``; in the rate reading (``tau h' = -h + phi(W h + u)``, the leaky map ``h+ = (1 - a) h +
    a phi(W h + u)``), whose Jacobians are the transposes, in ``sqrt(d^T M^{-1} d)``: this returns
    ``M^{-1}`` then. Scaled to largest eigenvalue 1.

    Arguments:
        W: symmetric ``[K, N, N]`` or ``[N, N]`` (its symmetric part is used).
        nonlinearity / slope_bound: the slope bound ``g``.
        form: ``"continuous"``, ``"leaky"`` or ``"map"`` (leak 1), as in :func:`certify_matrices`.
        leak: ``a`` for ``"leaky"``: scalar, ``[K]`` or ``[K, N]`` (one value per network).
        reading: ``"hopfield"`` or ``"rate"``; default ``"hopfield"`` for ``"continuous"``,
            ``"rate"`` for the maps (the forms :func:`certify_matrices` means).

    Returns:
        ``(M [K, N, N], rate [K])``: the metric and the condition's rate for exactly symmetric W
        (``c`` per time unit with tau = 1, or the per-step factor ``r``).
    """
    owner = "symmetric_metric"
    W = _check_square(W, owner)
    K, N, _ = W.shape
    g = _slope(nonlinearity, slope_bound, owner)
    form = check_choice(owner, "form", form, ("continuous", "leaky", "map"))
    if reading is None:
        reading = "hopfield" if form == "continuous" else "rate"
    reading = check_choice(owner, "reading", reading, ("hopfield", "rate"))
    a = None
    if form != "continuous":
        a = _per_unit(1.0 if leak is None or form == "map" else leak, K, N, owner, "leak", 0.0,
                      1.0)
        if not bool(torch.isclose(a.amin(-1), a.amax(-1), rtol=1e-12, atol=0.0).all()):
            raise ValueError(f"The 'leak' parameter of {owner} must be one leak per network "
                             "(the symmetric condition does not cover per-unit leaks).")
        a = a.amax(-1)
    _, _, V, base, q, _ = _symmetric_parts(W, g, a)
    if reading == "rate":
        q = 1.0 / q
    q = q / q.amax(-1, keepdim=True)
    return (V * q[:, None, :]) @ V.transpose(1, 2), base


def _symmetric_condition(W, g, form, a, T, rate, value) -> None:
    """Fill ``rate`` / ``value`` of the ``symmetric`` condition (NaN where not applicable:
    W not symmetric to rounding, per-unit tau or leak)."""
    # cheap screen: max |A_ij| <= ||A||_2 and ||W||_2 <= ||W||_F (asymmetric W skip the eigh)
    amax = ((W - W.transpose(1, 2)) / 2).abs().amax(dim=(1, 2))
    maybe = amax <= _SYM_TOL * torch.linalg.matrix_norm(W).clamp_min(1.0)
    if not bool(maybe.any()):
        return
    if form == "continuous":
        uniform = torch.isclose(T.amin(-1), T.amax(-1), rtol=1e-12, atol=0.0)
        leak = None
    else:
        uniform = torch.isclose(a.amin(-1), a.amax(-1), rtol=1e-12, atol=0.0)
        leak = a.amax(-1)
    applicable, s, V, base, q, asym = _symmetric_parts(W, g, leak)
    value["symmetric"] = torch.where(applicable, s.amax(-1) / g, math.nan)
    # a rounding-size asymmetric part A adds g ||A|| sqrt(cond M) to the log-norm (times a to
    # the step's norm) in the metric: an exact bound
    extra = g * asym * (q.amax(-1) / q.amin(-1)).sqrt()
    r = (base - extra) / T.amax(-1) if leak is None else base + leak * extra
    rate["symmetric"] = torch.where(applicable & uniform, r, math.nan)


# ------------------------------------------------------------------------ the certificates
def certify_matrices(
    W: Any,
    *,
    nonlinearity: str | None = None,
    slope_bound: float | None = None,
    form: str = "map",
    leak: Any = None,
    diag: Any = None,
    tau: Any = None,
    coupling: Any = None,
    metric: Any = None,
    sdp: bool = False,
    solver: str | None = None,
    fast_iter: int = 150,
    smooth_iter: int = 0,
    conditions: Any = None,
) -> xr.Dataset:
    """Contraction certificates for K networks given as matrices (see the module docstring).

    Arguments:
        W: effective recurrent weights ``[K, N, N]`` (or ``[N, N]``); must be square.
        nonlinearity / slope_bound: the nonlinearity's name (its g from
            :func:`dynrnn.functional.nonlin.max_slope`) or g itself (``0 <= phi' <= g``).
        form: one of :data:`FORMS`.
        leak: ``a`` in (0, 1] for ``"leaky"`` / ``"assembly"``: scalar, ``[K]`` or ``[K, N]``.
        diag: the PLRNN's diagonal ``A``, ``[K, N]`` (``"plrnn"``).
        tau: time constants (time units) for ``"continuous"`` / ``"assembly"``: scalar, ``[K]``
            or ``[K, N]`` (default 1).
        coupling: the assembly's coupling ``L [K, N, N]`` (``"assembly"``).
        metric: a known metric theta ``[K, N]``: the assembly's block metric, or for the other
            forms one more candidate of ``diagonal_fast`` (a certified model's own Theta).
        sdp: also solve the LMI per network (``diagonal_sdp``; needs cvxpy).
        solver: cvxpy solver for ``diagonal_sdp``.
        fast_iter, smooth_iter: descent and Schatten-surrogate steps of ``diagonal_fast``
            (:func:`weighted_norm_fast`).
        conditions: subset of :data:`CONDITIONS` to report (default: all that apply).

    Returns:
        ``xarray.Dataset`` with dims ``network``, ``condition``, ``unit``: ``rate [network,
        condition]`` (discrete: per-step factor, holds iff < 1; continuous: c per time unit,
        holds iff > 0; NaN where not applicable), ``value`` (the matrix quantity: rho, the
        norm in the metric, the Perron root), ``holds`` (bool), ``theta [network, condition,
        unit]`` (metric weights: the metric norm of a difference d is ``||theta * d||_p``;
        NaN for ``symmetric``, whose metric is a full matrix),
        coordinates ``sufficient``, ``metric_norm`` ("2", "inf", "quadratic": the full matrix
        of :func:`symmetric_metric`, "none") and ``metric`` per
        condition; ``certified``, ``condition_used`` ("inconclusive" where no sufficient
        condition holds), ``contraction_rate`` (best certified rate, NaN if none),
        ``necessary_holds``, ``verdict``, ``spectral_radius`` (rho(W) itself),
        ``slope_bound``, ``solver_status`` per network; attrs ``form``, ``time``, ``rate_units``.

    Raises:
        ValueError: a non-square W, an unsupported nonlinearity (naming the slope bound needed),
            a bad form or parameter.
        ImportError: ``sdp=True`` without cvxpy (``pip install dynrnn[stability]``).
    """
    owner = "certify_matrices"
    W = _check_square(W, owner)
    K, N, _ = W.shape
    form = check_choice(owner, "form", form, FORMS)
    g = _slope(nonlinearity, slope_bound, owner)
    check_bool(owner, "sdp", sdp)
    wanted = _conditions(conditions, owner)
    continuous = form == "continuous"
    eye = torch.eye(N, dtype=torch.float64)
    a = _per_unit(1.0 if leak is None else leak, K, N, owner, "leak", 0.0, 1.0)
    T = _per_unit(1.0 if tau is None else tau, K, N, owner, "tau", 0.0, None)
    if form == "plrnn":
        if diag is None:
            raise ValueError(f"The 'diag' parameter of {owner} (the PLRNN's A [K, N]) is needed "
                             "for form='plrnn'.")
        A = _per_unit(diag, K, N, owner, "diag", -math.inf, None)
    if form == "assembly":
        if coupling is None or metric is None:
            raise ValueError(f"form='assembly' of {owner} needs 'coupling' (L [K, N, N]) and "
                             "'metric' (theta [K, N]).")
        L = _check_square(coupling, owner, "coupling")
        if L.shape != W.shape:
            raise ValueError(f"The 'coupling' parameter of {owner} must have W's shape "
                             f"{tuple(W.shape)}. Got {tuple(L.shape)} instead.")
        th_as = _per_unit(metric, K, N, owner, "metric", 0.0, None)

    rate = {c: torch.full((K,), math.nan, dtype=torch.float64) for c in CONDITIONS}
    value = {c: torch.full((K,), math.nan, dtype=torch.float64) for c in CONDITIONS}
    theta = {c: torch.full((K, N), math.nan, dtype=torch.float64) for c in CONDITIONS}
    status = ["not run"] * K
    ones = torch.ones(K, N, dtype=torch.float64)
    rho_W = torch.linalg.eigvals(W).abs().amax(-1)

    # necessary: the Jacobian at D = g I must be stable
    if form == "map":
        J0 = g * W
    elif form == "leaky":
        J0 = (1 - a)[..., None] * eye + a[..., None] * g * W
    elif form == "plrnn":
        J0 = torch.diag_embed(A) + g * W
    elif form == "continuous":
        J0 = (-eye + g * W) / T[..., None]
    else:
        J0 = (1 - a)[..., None] * eye + a[..., None] * (g * W + L)
    ev = torch.linalg.eigvals(J0)
    value["spectral_radius"] = rho_W
    rate["spectral_radius"] = -ev.real.amax(-1) if continuous else ev.abs().amax(-1)

    def two_norm_rate(gamma):
        if form == "map":
            return g * gamma
        if form == "leaky":
            return (1 - a.amin(-1)) + a.amax(-1) * g * gamma
        if form == "plrnn":
            return A.abs().amax(-1) + g * gamma
        if form == "continuous":
            return (1 - g * gamma) / T.amax(-1)
        return None

    if form != "assembly":
        if "spectral_norm" in wanted:
            value["spectral_norm"] = _norm2(W)
            theta["spectral_norm"] = ones.clone()
            rate["spectral_norm"] = two_norm_rate(value["spectral_norm"])
        if "diagonal_fast" in wanted or "diagonal_sdp" in wanted:
            gf, thf = weighted_norm_fast(
                W, n_iter=fast_iter, smooth_iter=smooth_iter, norm_identity=value["spectral_norm"]
                if "spectral_norm" in wanted else None)
            if metric is not None:  # the model's own metric is one more candidate
                th_m = _per_unit(metric, K, N, owner, "metric", 0.0, None)
                g_m = _norm2(_scaled(W, th_m))
                better = g_m < gf
                gf = torch.where(better, g_m, gf)
                thf = torch.where(better[:, None], th_m / th_m.amax(-1, keepdim=True), thf)
            value["diagonal_fast"], theta["diagonal_fast"] = gf, thf
            rate["diagonal_fast"] = two_norm_rate(gf)
        if sdp and "diagonal_sdp" in wanted:
            gs, _, ths, status = weighted_norm_sdp(W, solver=solver, upper=to_numpy(gf))
            value["diagonal_sdp"] = torch.as_tensor(gs)
            theta["diagonal_sdp"] = torch.as_tensor(ths)
            rate["diagonal_sdp"] = two_norm_rate(value["diagonal_sdp"])
        # abs_spectral_radius: Perron vector of the entrywise majorant
        if "abs_spectral_radius" in wanted:
            Bmaj = torch.diag_embed(A.abs()) + g * W.abs() if form == "plrnn" else W.abs()
            up, v, _ = perron_vectors(Bmaj)
            value["abs_spectral_radius"] = up
            theta["abs_spectral_radius"] = 1.0 / v
            rows = _row_bound(Bmaj, v)
            if form == "map":
                rate["abs_spectral_radius"] = g * up
            elif form == "leaky":
                rate["abs_spectral_radius"] = (1 - a + a * g * rows).amax(-1)
            elif form == "plrnn":
                rate["abs_spectral_radius"] = up
            else:
                rate["abs_spectral_radius"] = ((1 - g * rows) / T).amin(-1)
        if "kozachkov" in wanted and form == "continuous":
            # Kozachkov, Ennis & Slotine 2022, Theorem 1: the Metzler majorant of every Jacobian
            # T^-1 (-I + W D) (and of the rate form's T^-1 (-I + D W)) is
            # Jbar = T^-1 (g |W|_+ - I); its diagonal metric Theta = sqrt(u / v) (left / right
            # Perron vectors) gives mu_2,Theta(J) <= lambda_max(sym(Theta Jbar Theta^-1)).
            Wd = torch.diagonal(W, dim1=-2, dim2=-1)
            Mk = torch.diag_embed(Wd.clamp_min(0)) + _offdiag_abs(W)
            value["kozachkov"] = perron_vectors(Mk)[0]
            Jbar = (g * Mk - eye) / T[..., None]
            shift = (1.0 / T).amax(-1)[:, None, None]
            _, v, u = perron_vectors(Jbar + shift * eye)  # nonnegative, same Perron vectors
            th = (u / v).sqrt()
            th = torch.where(torch.isfinite(th) & (th > 0), th, 1.0)
            th = th / th.amax(-1, keepdim=True)
            Js = _scaled(Jbar, th)
            rate["kozachkov"] = -torch.linalg.eigvalsh((Js + Js.transpose(1, 2)) / 2).amax(-1)
            theta["kozachkov"] = th
        if "symmetric" in wanted and form in ("continuous", "leaky", "map"):
            _symmetric_condition(W, g, form, a, T, rate, value)
    else:
        # the assembly: K = -I + Theta W Theta^-1 D + S in the block metric, S skew-symmetric
        Mw = _scaled(W, th_as)
        S = _scaled(L, th_as)
        gamma = _norm2(Mw)
        S_sym = (S + S.transpose(1, 2)) / 2  # zero up to rounding when M L is skew
        s = torch.linalg.eigvalsh(S_sym).amax(-1).clamp_min(0)
        s_norm = _norm2(S_sym)
        ell_skew = _norm2((S - S.transpose(1, 2)) / 2)
        ell = _norm2(S)
        c = 1 - g * gamma - s  # -mu_2 of the continuous-time Jacobian (times tau)
        value["feedback_metric"] = gamma
        theta["feedback_metric"] = th_as / th_as.amax(-1, keepdim=True)
        if tau is not None and leak is None:
            continuous = True
        if continuous:
            rate["feedback_metric"] = c / T.amax(-1)
        else:
            am, aM = a.amin(-1), a.amax(-1)
            if not bool(torch.allclose(am, aM)):
                raise ValueError(f"form='assembly' of {owner} needs one leak per network.")
            kappa = 1 + g * gamma + ell
            # (1-a) I + a S_skew is normal with |eigenvalues| <= sqrt((1-a)^2 + a^2 ||S||^2)
            r1 = ((1 - aM) ** 2 + aM ** 2 * ell_skew ** 2).sqrt() + aM * (g * gamma + s_norm)
            r2 = (1 - 2 * aM * c + aM ** 2 * kappa ** 2).clamp_min(0).sqrt()
            rate["feedback_metric"] = torch.minimum(r1, r2)
    if form == "continuous":  # the 2-norm metrics are ||Theta T^{1/2} x||_2 (see the rates)
        for c in ("spectral_norm", "diagonal_fast", "diagonal_sdp"):
            th = theta[c] * T.sqrt()
            theta[c] = th / th.amax(-1, keepdim=True)
    return _assemble(rate, value, theta, status, wanted, continuous, form, g, rho_W, K, N)


def _slope(nonlinearity, slope, owner) -> float:
    if nonlinearity is None and slope is None:
        raise ValueError(
            f"{owner} needs the nonlinearity (name) or slope_bound=g (0 <= phi' <= g)."
        )
    return slope_bound(nonlinearity, slope, owner)


def _conditions(conditions, owner) -> tuple[str, ...]:
    if conditions is None:
        return CONDITIONS
    if isinstance(conditions, str):
        conditions = (conditions,)
    out = tuple(check_choice(owner, "conditions", c, CONDITIONS) for c in conditions)
    return tuple(dict.fromkeys(("spectral_radius",) + out))


def _assemble(rate, value, theta, status, wanted, continuous, form, g, rho_W, K, N):
    conds = [c for c in CONDITIONS if c in wanted]
    R = torch.stack([rate[c] for c in conds], 1).numpy()
    V = torch.stack([value[c] for c in conds], 1).numpy()
    TH = torch.stack([theta[c] for c in conds], 1).numpy()
    with np.errstate(invalid="ignore"):
        holds = (R > _TOL) if continuous else (R < 1 - _TOL)
    holds &= np.isfinite(R)
    suff = np.array([_SUFFICIENT[c] for c in conds])
    cert_mat = holds & suff[None, :]
    certified = cert_mat.any(1)
    score = np.where(cert_mat, R if continuous else -R, -np.inf)
    best = score.argmax(1)
    used = np.where(certified, np.asarray(conds, dtype=object)[best], _INCONCLUSIVE)
    best_rate = np.where(certified, R[np.arange(K), best], np.nan)
    necessary = holds[:, conds.index("spectral_radius")]
    verdict = np.where(
        certified, "certified contracting",
        np.where(necessary, _INCONCLUSIVE, "not contracting for all inputs (necessary fails)"),
    )
    ds = xr.Dataset(
        {
            "rate": (("network", "condition"), R),
            "value": (("network", "condition"), V),
            "holds": (("network", "condition"), holds),
            "theta": (("network", "condition", "unit"), TH),
            "certified": ("network", certified),
            "condition_used": ("network", used.astype(str)),
            "contraction_rate": ("network", best_rate),
            "necessary_holds": ("network", necessary),
            "verdict": ("network", verdict.astype(str)),
            "spectral_radius": ("network", to_numpy(rho_W)),
            "solver_status": ("network", np.asarray(status, dtype=str)),
        },
        coords={
            "network": np.arange(K),
            "condition": np.asarray(conds),
            "unit": np.arange(N),
            "sufficient": ("condition", suff),
            "metric_norm": ("condition", np.asarray([_NORM[c] for c in conds])),
            "metric": ("condition", np.asarray([_METRIC[c] for c in conds])),
            "slope_bound": ("network", np.full(K, g)),
        },
    )
    units = ("contraction rate c per time unit: ||d(t)|| <= exp(-c t) ||d(0)||; certified iff "
             "c > 0") if continuous else (
        "per-step contraction factor r: ||d(t+1)|| <= r ||d(t)|| in the condition's metric; "
        "certified iff r < 1")
    ds["rate"].attrs.update(units=units)
    ds["value"].attrs.update(long_name="the condition's matrix quantity (rho(W), ||W||_2, "
                             "min weighted 2-norm, Perron root of the majorant)")
    ds.attrs.update(analysis="stability_certificates", form=form,
                    time="continuous" if continuous else "discrete", rate_units=units,
                    tolerance=_TOL)
    return ds


# ------------------------------------------------------------------------ models
def stability_structure(model: Any, time: str = "discrete") -> dict[str, Any]:
    """What the certificates need of a model: ``{"W", "form", "nonlinearity" or "slope_bound",
    and "leak" / "diag" / "tau" / "coupling" / "metric"}`` (keyword arguments of
    :func:`certify_matrices`).

    Supported: a model with a ``stability_structure(time)`` method (the certified models of
    :mod:`dynrnn.models.contracting`), :class:`~dynrnn.models.RateRNN`,
    :class:`~dynrnn.models.EchoStateNetwork`, :class:`~dynrnn.models.PLRNN` and
    :class:`~dynrnn.models.ALRNN`. ``time="continuous"`` reads the model as the Euler step of the
    ODE it discretises (rate RNN with ``leak_form="outside"`` or tau = 1, leaky ESN: ``tau
    h' = -h + phi(W h + u)`` with tau = dt / a).

    Raises:
        ValueError: a model these certificates do not cover (gated, spiking, shallow PLRNN).
    """
    owner = "stability_certificates"
    time = check_choice(owner, "time", time, ("discrete", "continuous"))
    hook = getattr(model, "stability_structure", None)
    if callable(hook):
        return hook(time)
    name = type(model).__name__
    from ..models import ALRNN, PLRNN, EchoStateNetwork, RateRNN

    with torch.no_grad():
        if isinstance(model, RateRNN):
            c = model.config
            W = model.effective_weights().detach().double()
            alpha = model.alpha()
            out: dict[str, Any] = {"nonlinearity": c.nonlinearity}
            if alpha is None:
                out.update(W=W, form="map")
                if time == "continuous":
                    out.update(form="continuous", tau=torch.as_tensor(network_dts(model)))
                return out
            alpha = alpha[:, 0].detach().double()
            if c.leak_form == "inside":
                if time == "continuous":
                    raise ValueError(
                        "The rate RNN's leak_form='inside' is not the Euler step of an ODE; "
                        "use time='discrete'."
                    )
                Weff = torch.diag_embed(1 - alpha) + alpha[..., None] * W
                out.update(W=Weff, form="map")
                return out
            if time == "continuous":
                dts = torch.as_tensor(network_dts(model), dtype=torch.float64)
                out.update(W=W, form="continuous", tau=dts[:, None] / alpha)
                return out
            out.update(W=W, form="leaky", leak=alpha)
            return out
        if isinstance(model, EchoStateNetwork):
            W = model.W.detach().double()
            if model.has_feedback():
                W = W + model.W_fb.double() @ model.W_out.double()
            leak = model.leak.detach().double()
            out = {"W": W, "nonlinearity": "tanh"}
            if time == "continuous":
                out.update(form="continuous", tau=1.0 / leak)
            elif bool((leak == 1).all()):
                out.update(form="map")
            else:
                out.update(form="leaky", leak=leak)
            return out
        if isinstance(model, (PLRNN, ALRNN)):
            if time == "continuous":
                raise ValueError(f"{name} is a discrete-time map; use time='discrete'.")
            W = model.prepare()["W_T"].transpose(1, 2).detach().double()
            return {"W": W, "form": "plrnn", "diag": model.A.detach().double(),
                    "slope_bound": 1.0}
    raise ValueError(
        f"The 'model' parameter of {owner} is a {name}, which these certificates do not cover: "
        "they need a map h+ = phi(W h + ...) (or its leaky / continuous-time form, or a PLRNN "
        "z+ = A z + W phi(z) + ...) with a monotone phi of known slope bound g "
        "(0 <= phi' <= g). Gated (GRU, LSTM), spiking and shallow-PLRNN models are not of "
        "that form."
    )


def stability_certificates(
    model: Any,
    *,
    time: str = "discrete",
    sdp: bool = False,
    solver: str | None = None,
    conditions: Any = None,
    fast_iter: int = 150,
    smooth_iter: int = 0,
) -> xr.Dataset:
    """Contraction certificates for every network of a model or ensemble, in one call.

    Arguments:
        model: a dynrnn model with K networks (see :func:`stability_structure` for the
            supported ones).
        time: ``"discrete"`` (the map the model runs) or ``"continuous"`` (the ODE it is the
            Euler step of, where there is one).
        sdp: also solve the LMI per network (``diagonal_sdp``; ``pip install dynrnn[stability]``).
        solver: cvxpy solver name; conditions: subset of :data:`CONDITIONS`; fast_iter,
            smooth_iter: steps of ``diagonal_fast`` (:func:`weighted_norm_fast`).

    Returns:
        the Dataset of :func:`certify_matrices` with the networks' hyperparameters as
        coordinates along ``network`` (as in :func:`dynrnn.analyses.lyapunov_spectrum`) and
        ``dt``.
    """
    check_model(model, "stability_certificates")
    struct = stability_structure(model, time)
    ds = certify_matrices(sdp=sdp, solver=solver, conditions=conditions, fast_iter=fast_iter,
                          smooth_iter=smooth_iter, **struct)
    coords = network_coords(model)
    coords.pop("network", None)
    coords.pop("slope_bound", None)
    ds = ds.assign_coords(coords)
    ds = ds.assign_coords(dt=("network", network_dts(model)))
    ds.attrs.update(model=type(model).__name__)
    return ds


# ------------------------------------------------------------------------ echo-state property
def echo_state_property(
    model: Any,
    inputs: Any,
    *,
    n_initial: int = 16,
    h0_scale: float = 1.0,
    tol: float = 1e-6,
    seed: int = 0,
    certificate: bool = True,
    sdp: bool = False,
) -> xr.Dataset:
    """The echo-state property: the certificate (if any) and, separately, an empirical test.

    Empirical: every input trial is run from ``n_initial`` random initial states
    (``h0_scale * N(0, 1)``, float64) through :func:`dynrnn.run`; the spread ``s(t) = max_j
    ||h_j(t) - h_0(t)||_2`` over the initial states is recorded. The test passes for a network
    when ``s(T) <= tol * max(s(0), 1)`` on every trial. It only says that these inputs and
    initial states converged; a certificate (``esp_certified``, from
    :func:`stability_certificates`) says that all trajectories converge for every input.

    Arguments:
        model: a dynrnn model with K networks.
        inputs: ``[B, T, I]`` or ``[K or 1, B, T, I]``.
        n_initial: initial states per trial; h0_scale: their scale; tol: relative final spread.
        seed: seed of the initial states.
        certificate: also compute the certificate (models it covers; else ``esp_certified`` is
            False with ``esp_certificate_condition = "not covered"``).
        sdp: passed to :func:`stability_certificates`.

    Returns:
        ``xarray.Dataset`` with ``esp_empirical [network]`` (bool), ``spread [network, time]``
        (max over trials), ``spread_final [network]``, ``empirical_rate [network]`` (per-step
        factor ``(s(T) / s(0))^(1/T)``, max over trials) and, never mixed with them,
        ``esp_certified [network]``, ``esp_certificate_condition``, ``esp_certificate_rate``.
    """
    owner = "echo_state_property"
    check_model(model, owner)
    n_initial = check_int(owner, "n_initial", n_initial, 2)
    h0_scale = check_float(owner, "h0_scale", h0_scale, 0.0, None, low_inclusive=False)
    tol = check_float(owner, "tol", tol, 0.0, None, low_inclusive=False)
    check_bool(owner, "certificate", certificate)
    m64 = float64_copy(model)
    x = torch.as_tensor(inputs, dtype=torch.float64)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != model.n_inputs:
        raise ValueError(
            f"The 'inputs' parameter of {owner} must be [B, T, I] or [K or 1, B, T, I] with "
            f"I={model.n_inputs}. Got shape {tuple(x.shape)} instead."
        )
    K, N = int(model.n_networks), int(model.n_units)
    B, T = x.shape[1], x.shape[2]
    xr_in = x.repeat_interleave(n_initial, dim=1)
    gen = torch.Generator().manual_seed(int(seed))
    h0 = h0_scale * torch.randn(K, B * n_initial, N, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        S, _ = run(m64, xr_in, h0=h0, backend="reference")
    S = S.reshape(K, B, n_initial, T, N)
    d0 = (h0.reshape(K, B, n_initial, N) - h0.reshape(K, B, n_initial, N)[:, :, :1]).norm(dim=-1)
    s0 = d0.amax(-1)  # [K, B]
    d = (S - S[:, :, :1]).norm(dim=-1).amax(2)  # [K, B, T]
    sT = d[..., -1]
    esp = (sT <= tol * s0.clamp_min(1.0)).all(1)
    with np.errstate(divide="ignore"):
        emp_rate = ((sT.clamp_min(1e-300) / s0) ** (1.0 / T)).amax(1)
    data = {
        "esp_empirical": ("network", to_numpy(esp)),
        "spread": (("network", "time"), to_numpy(d.amax(1))),
        "spread_final": ("network", to_numpy(sT.amax(1))),
        "empirical_rate": ("network", to_numpy(emp_rate)),
    }
    cert_ok = np.zeros(K, dtype=bool)
    cond = np.full(K, "not computed", dtype=object)
    crate = np.full(K, np.nan)
    if certificate:
        try:
            cert = stability_certificates(model, sdp=sdp)
            cert_ok = cert["certified"].values
            cond = cert["condition_used"].values.astype(object)
            crate = cert["contraction_rate"].values
        except ValueError:
            cond = np.full(K, "not covered", dtype=object)
    data.update(
        esp_certified=("network", cert_ok),
        esp_certificate_condition=("network", cond.astype(str)),
        esp_certificate_rate=("network", crate),
    )
    coords = network_coords(model)
    coords["time"] = np.arange(T)
    ds = xr.Dataset(data, coords=coords)
    ds["esp_empirical"].attrs.update(
        long_name="empirical echo-state test (these inputs and initial states converged)")
    ds["esp_certified"].attrs.update(
        long_name="echo-state property certified for every input (a contraction certificate)")
    ds.attrs.update(analysis="echo_state_property", n_initial=n_initial, tol=tol,
                    h0_scale=h0_scale, n_trials=B, n_steps=T)
    return ds
