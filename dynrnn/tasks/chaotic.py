"""Chaotic benchmark systems for dynamical-systems reconstruction (DSR).

Lorenz-63 (Lorenz 1963), Rössler (Rössler 1976) and Lorenz-96 (Lorenz 1996), integrated with
``scipy.integrate.solve_ivp`` (DOP853, rtol = atol = 1e-10 by default) over a whole batch of
initial conditions at once, standardised per trial and observed with Gaussian noise, as in the
DSR benchmarks of the Durstewitz lab (e.g. Hess et al., ICML 2023: T = 1e5 samples,
standardised, 5% observation noise).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.integrate import solve_ivp

from .._validation import (
    Bool,
    Check,
    Constraint,
    Float,
    Int,
    OrNone,
    check_array,
    check_choice,
    check_float,
    check_int,
    resolve_generator,
    validate_config,
)
from .base import Task, Trials, register_task

__all__ = [
    "MAX_LYAPUNOV",
    "SYSTEMS",
    "ChaoticSystemTask",
    "Lorenz63",
    "Lorenz96",
    "Rossler",
    "integrate",
    "make_system",
]

#: Largest Lyapunov exponent (per unit time) at the standard parameters: Lorenz-63
#: (sigma=10, rho=28, beta=8/3) ~0.906; Rössler (a=b=0.2, c=5.7) ~0.071 (Sprott, "Chaos and
#: Time-Series Analysis", 2003). Reference values for tests of Lyapunov estimators.
MAX_LYAPUNOV: dict[str, float] = {"lorenz63": 0.906, "rossler": 0.071}


def _stack(parts: list, like: Any):
    """Stack along a new last axis with the library of ``like`` (numpy or torch)."""
    if torch.is_tensor(like):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


class _System:
    """Protocol of a chaotic system config: ``dim``, ``rhs(t, x)``, ``initial_conditions``."""

    name: str
    transient_time: ClassVar[float] = 20.0
    max_lyapunov: ClassVar[float | None] = None

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def rhs(self, t: float, x):
        """Vector field ``dx/dt`` for ``x`` of shape ``[..., D]`` (numpy array or torch tensor)."""
        raise NotImplementedError

    def initial_conditions(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        """Random initial states ``[B, D]`` (float64) in the basin of the attractor."""
        raise NotImplementedError


@dataclass(frozen=True)
class Lorenz63(_System):
    """Lorenz-63: ``x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z``.

    Lorenz, J. Atmos. Sci. 1963. At the standard parameters the largest Lyapunov exponent is
    ~0.906 (:data:`MAX_LYAPUNOV`). ``dim`` = 3.
    """

    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0
    name: str = field(default="lorenz63", init=False)

    transient_time: ClassVar[float] = 20.0
    max_lyapunov: ClassVar[float | None] = MAX_LYAPUNOV["lorenz63"]

    constraints: ClassVar[dict[str, Constraint]] = {
        "sigma": Float(-1e6, 1e6),
        "rho": Float(-1e6, 1e6),
        "beta": Float(-1e6, 1e6),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def dim(self) -> int:
        return 3

    def rhs(self, t, x):
        X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
        return _stack([self.sigma * (Y - X), X * (self.rho - Z) - Y, X * Y - self.beta * Z], x)

    def initial_conditions(self, batch_size, gen):
        center = torch.tensor([0.0, 0.0, 25.0], dtype=torch.float64)
        return center + 8.0 * torch.randn(batch_size, 3, generator=gen, dtype=torch.float64)


@dataclass(frozen=True)
class Rossler(_System):
    """Rössler: ``x' = -y - z, y' = x + a y, z' = b + z (x - c)``.

    Rössler, Phys. Lett. A 1976. At the standard parameters the largest Lyapunov exponent is
    ~0.071 (:data:`MAX_LYAPUNOV`). ``dim`` = 3.
    """

    a: float = 0.2
    b: float = 0.2
    c: float = 5.7
    name: str = field(default="rossler", init=False)

    transient_time: ClassVar[float] = 100.0
    max_lyapunov: ClassVar[float | None] = MAX_LYAPUNOV["rossler"]

    constraints: ClassVar[dict[str, Constraint]] = {
        "a": Float(-1e6, 1e6),
        "b": Float(-1e6, 1e6),
        "c": Float(-1e6, 1e6),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def dim(self) -> int:
        return 3

    def rhs(self, t, x):
        X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
        return _stack([-Y - Z, X + self.a * Y, self.b + Z * (X - self.c)], x)

    def initial_conditions(self, batch_size, gen):
        xy = 4.0 * torch.randn(batch_size, 2, generator=gen, dtype=torch.float64)
        z = 0.5 * torch.rand(batch_size, 1, generator=gen, dtype=torch.float64)
        return torch.cat([xy, z], dim=1)


@dataclass(frozen=True)
class Lorenz96(_System):
    """Lorenz-96: ``x_i' = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F`` (indices cyclic).

    Lorenz, Proc. Seminar on Predictability, ECMWF 1996. Chaotic for ``forcing`` = 8 and
    ``n`` >= 5 or so. ``dim`` = ``n``.
    """

    n: int = 20
    forcing: float = 8.0
    name: str = field(default="lorenz96", init=False)

    transient_time: ClassVar[float] = 20.0

    constraints: ClassVar[dict[str, Constraint]] = {"n": Int(4), "forcing": Float(-1e6, 1e6)}

    def __post_init__(self):
        validate_config(self)

    @property
    def dim(self) -> int:
        return self.n

    def rhs(self, t, x):
        if torch.is_tensor(x):
            roll = torch.roll
            return (roll(x, -1, -1) - roll(x, 2, -1)) * roll(x, 1, -1) - x + self.forcing
        return (np.roll(x, -1, -1) - np.roll(x, 2, -1)) * np.roll(x, 1, -1) - x + self.forcing

    def initial_conditions(self, batch_size, gen):
        noise = torch.randn(batch_size, self.n, generator=gen, dtype=torch.float64)
        return self.forcing + noise


SYSTEMS: dict[str, type] = {"lorenz63": Lorenz63, "rossler": Rossler, "lorenz96": Lorenz96}


def make_system(system: str | dict | _System) -> _System:
    """Build a system config from its name, a dict (``{"name": ..., **params}``) or an instance."""
    if isinstance(system, _System):
        return system
    if isinstance(system, dict):
        params = dict(system)
        name = params.pop("name", None)
        check_choice("ChaoticSystemTask", "system", name, SYSTEMS)
        fields = {f.name for f in dataclasses.fields(SYSTEMS[name]) if f.init}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ValueError(
                f"The 'system' parameter of ChaoticSystemTask names parameters {unknown} that "
                f"{name} does not have; it has {sorted(fields)}."
            )
        return SYSTEMS[name](**params)
    check_choice("ChaoticSystemTask", "system", system, SYSTEMS)
    return SYSTEMS[system]()


def _rk4(fun, y0: np.ndarray, n_out: int, dt: float, substeps: int, skip: int) -> np.ndarray:
    h = dt / substeps
    y = y0.copy()
    out = np.empty((n_out,) + y0.shape)
    for k in range(skip + n_out):  # a time loop is inherent to a fixed-step integrator
        if k >= skip:
            out[k - skip] = y
        for _ in range(substeps):
            k1 = fun(0.0, y)
            k2 = fun(0.0, y + 0.5 * h * k1)
            k3 = fun(0.0, y + 0.5 * h * k2)
            k4 = fun(0.0, y + h * k3)
            y = y + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return out


def integrate(
    system: str | dict | _System,
    x0,
    n_steps: int,
    dt: float,
    transient_steps: int = 0,
    *,
    method: str = "DOP853",
    rtol: float = 1e-10,
    atol: float = 1e-10,
    substeps: int = 10,
) -> np.ndarray:
    """Integrate ``system`` from ``x0`` and sample it every ``dt``.

    All initial conditions of a batch are stacked into one ``B * D`` dimensional system and
    integrated by a single ``scipy.integrate.solve_ivp`` call (the vector field is evaluated
    batched). Note that solve_ivp controls the RMS error over all components, so a batch
    shares one adaptive step sequence.

    Arguments:
        system: a system config (:class:`Lorenz63`, :class:`Rossler`, :class:`Lorenz96`), or
            its name.
        x0: initial state(s), ``[D]`` or ``[B, D]`` (array-like or tensor).
        n_steps: number of returned samples.
        dt: sampling interval.
        transient_steps: samples discarded before the first returned one: the output starts
            at time ``transient_steps * dt``.
        method: a ``solve_ivp`` method ("DOP853", "RK45", "LSODA", "Radau") or "rk4" (fixed
            step ``dt / substeps``, a plain-numpy loop over time).
        rtol, atol: tolerances of solve_ivp.
        substeps: RK4 sub-steps per ``dt`` (only for ``method="rk4"``).

    Returns:
        float64 array ``[n_steps, D]`` (or ``[B, n_steps, D]`` for a batch of ``x0``); row k is
        the state at time ``(transient_steps + k) * dt``.
    """
    owner = "integrate"
    system = make_system(system)
    n_steps = check_int(owner, "n_steps", n_steps, 1)
    dt = check_float(owner, "dt", dt, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    transient_steps = check_int(owner, "transient_steps", transient_steps, 0)
    check_choice(owner, "method", method, ("DOP853", "RK45", "LSODA", "Radau", "rk4"))
    rtol = check_float(owner, "rtol", rtol, 0.0, math.inf, False, False)
    atol = check_float(owner, "atol", atol, 0.0, math.inf, True, False)
    substeps = check_int(owner, "substeps", substeps, 1)
    x0 = check_array(owner, "x0", x0, finite=True)
    single = x0.ndim == 1
    x0 = np.atleast_2d(x0)
    if x0.ndim != 2 or x0.shape[1] != system.dim or x0.shape[0] < 1:
        raise ValueError(
            f"The 'x0' parameter of integrate must have shape [{system.dim}] or "
            f"[B, {system.dim}] for {system.name}. Got {x0.shape} instead."
        )
    B, D = x0.shape

    def fun(t, y):
        return system.rhs(t, y.reshape(B, D)).reshape(-1)

    if method == "rk4":
        substeps = check_int(owner, "substeps", substeps, 1)
        out = _rk4(fun, x0.reshape(-1), n_steps, dt, substeps, transient_steps)
    else:
        rtol = check_float(owner, "rtol", rtol, 0.0, 1.0, low_inclusive=False)
        atol = check_float(owner, "atol", atol, 0.0, 1.0, low_inclusive=False)
        t_eval = (transient_steps + np.arange(n_steps)) * dt
        sol = solve_ivp(
            fun,
            (0.0, float(t_eval[-1])),
            x0.reshape(-1),
            method=method,
            t_eval=t_eval,
            rtol=rtol,
            atol=atol,
        )
        if not sol.success:  # pragma: no cover - depends on scipy internals
            raise RuntimeError(f"solve_ivp failed for {system.name}: {sol.message}")
        out = sol.y.T
    out = out.reshape(n_steps, B, D).transpose(1, 0, 2)
    return out[0] if single else out


@register_task("chaotic")
@dataclass(frozen=True)
class ChaoticSystemTask(Task):
    """Noisy observations of a chaotic system, for dynamical-systems reconstruction.

    Random initial conditions are drawn from the generator, a transient of ``transient_steps``
    samples is discarded (default: the system's ``transient_time / dt``), then ``n_steps``
    samples every ``dt`` are kept (:func:`integrate`, DOP853 at rtol = atol = ``tol``). Each
    trajectory is standardised per trial and dimension (if ``standardise``) and observed with
    i.i.d. Gaussian noise of standard deviation ``noise`` times the dimension's standard
    deviation (i.e. ``noise`` itself after standardisation; 5% in the DSR benchmarks).

    Arguments:
        system: "lorenz63", "rossler", "lorenz96", a system config instance (e.g.
            ``Lorenz63(rho=28)``, ``Lorenz96(n=40)``) or its dict form; stored as an instance.
        n_steps: number of samples T.
        dt: sampling interval.
        transient_steps: discarded samples, or None for the system default.
        noise: relative observation noise (>= 0).
        standardise: z-score each trial's trajectory per dimension.
        tol: rtol = atol of solve_ivp.

    ``sample`` returns ``inputs [B, T, 0]`` (no external input), ``targets [B, T, D]`` (the
    noisy observations, float32), ``mask [B, T]`` (all True) and ``info``: ``clean [B, T, D]``
    (noise-free, standardised if ``standardise``), ``mean [B, D]`` and ``std [B, D]`` (of the
    raw trajectory: ``clean = (raw - mean) / std``; raw = clean if not ``standardise``),
    ``x0 [B, D]`` (initial states before the transient), ``dt``, ``system`` (name), ``task``.
    """

    system: Any = "lorenz63"
    n_steps: int = 100_000
    dt: float = 0.01
    transient_steps: int | None = None
    noise: float = 0.05
    standardise: bool = True
    tol: float = 1e-10

    kind = "regression"

    constraints: ClassVar[dict[str, Constraint]] = {
        "system": Check(lambda owner, name, value, config: make_system(value)),
        "n_steps": Int(2),
        "dt": Float(0.0, None, low_inclusive=False),
        "transient_steps": OrNone(Int(0)),
        "noise": Float(0.0),
        "standardise": Bool(),
        "tol": Float(0.0, 1.0, low_inclusive=False),
    }

    def __post_init__(self):
        validate_config(self)

    @property
    def n_inputs(self) -> int:
        return 0

    @property
    def n_outputs(self) -> int:
        return self.system.dim

    @property
    def max_lyapunov(self) -> float | None:
        """Known largest Lyapunov exponent of the system (per unit time), if tabulated."""
        return type(self.system).max_lyapunov if self.system == type(self.system)() else None

    def resolved_transient_steps(self) -> int:
        if self.transient_steps is not None:
            return int(self.transient_steps)
        return int(math.ceil(type(self.system).transient_time / self.dt))

    def sample(self, batch_size: int, seed: int | torch.Generator | None = None, **kw) -> Trials:
        """Integrate ``batch_size`` trajectories; see the class docstring for shapes and info."""
        B = check_int(type(self).__name__, "batch_size", batch_size, 1)
        gen = resolve_generator(seed)
        x0 = self.system.initial_conditions(B, gen)
        raw = integrate(
            self.system,
            x0,
            self.n_steps,
            self.dt,
            self.resolved_transient_steps(),
            rtol=self.tol,
            atol=self.tol,
        )  # [B, T, D] float64
        raw = torch.from_numpy(np.ascontiguousarray(raw))
        mean = raw.mean(dim=1)
        std = raw.std(dim=1)
        if self.standardise:
            clean = (raw - mean.unsqueeze(1)) / std.unsqueeze(1)
            scale = torch.ones_like(std)
        else:
            clean = raw
            scale = std
        eps = torch.randn(raw.shape, generator=gen, dtype=torch.float64)
        observed = clean + self.noise * scale.unsqueeze(1) * eps
        T = self.n_steps
        info = {
            "task": "chaotic",
            "system": self.system.name,
            "dt": float(self.dt),
            "mean": mean.float(),
            "std": std.float(),
            "clean": clean.float(),
            "x0": x0.float(),
        }
        return Trials(
            torch.zeros(B, T, 0), observed.float(), torch.ones(B, T, dtype=torch.bool), info
        )

    def with_system(self, **params) -> ChaoticSystemTask:
        """A copy with some system parameters replaced (e.g. ``rho=24``)."""
        return dataclasses.replace(self, system=dataclasses.replace(self.system, **params))
