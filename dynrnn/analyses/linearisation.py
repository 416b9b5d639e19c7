"""Linearised dynamics around points and along trajectories, batched over networks.

Around a state ``h*`` (a fixed point or any point of a trajectory) with input ``u*`` the map is

    delta_h[t+1] ~= J delta_h[t] + B delta_u[t],   J = dF/dh,  B = dF/du,

with ``J`` from the protocol's ``model.jacobian`` and ``B`` by forward-mode autodiff through
``input_drive`` and ``step_drive`` (exact, one JVP per input channel). The eigendecomposition
``J = V diag(lambda) V^-1`` gives the modes; the left eigenvectors (columns of ``V^-H``) read out
how strongly an input drives each mode (``left^H B``).

Local time constants (in units of the model's ``dt``):

* discrete map: ``tau_i = -dt / log|lambda_i|`` (positive: decay time; negative: growth time,
  infinite at ``|lambda| = 1``) and oscillation period ``2 pi dt / |arg lambda_i|``;
* continuous flow ``dh/dt = f(h)`` of which the map is the Euler step, ``J = I + dt Df``:
  ``tau_i = -1 / Re(mu_i)`` with ``mu_i = (lambda_i - 1) / dt``, period ``2 pi / |Im mu_i|``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._validation import check_array, check_bool, check_broadcast, check_choice, check_int
from ._common import (
    as_tensor,
    check_finite,
    check_model,
    check_states,
    float64_copy,
    input_series,
    network_coords,
    network_dts,
    to_numpy,
)

__all__ = [
    "jacobians",
    "input_jacobians",
    "local_time_constants",
    "linearise",
    "linearise_trajectory",
]


def _points(model, points, owner, name="points") -> torch.Tensor:
    """``[K, P, N]`` float64 from ``[K or 1, P, N]``, ``[P, N]`` or ``[K or 1, B, T, N]``."""
    K = int(model.n_networks)
    x, layout = check_states(
        model, points, owner, name, (("K|1", "P", "N"), ("P", "N"), ("K|1", "B", "T", "N"))
    )
    if layout == 1:
        x = x.unsqueeze(0)
    if layout == 2:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
    return x.expand(K, -1, -1).to(model.device)


def _point_inputs(model, inputs, n_points, owner) -> torch.Tensor:
    """Inputs per point ``[K, P, I]`` float64 from None / ``[I]`` / ``[K, I]`` / ``[K, P, I]``."""
    K, I = int(model.n_networks), int(model.n_inputs)
    if inputs is None:
        return torch.zeros(K, n_points, I, dtype=torch.float64, device=model.device)
    u = check_finite(as_tensor(inputs, owner, "inputs"), owner, "inputs").to(model.device)
    if u.ndim == 1 and u.shape[0] == I:
        return u.expand(K, n_points, I)
    if u.ndim == 2 and u.shape[-1] == I and u.shape[0] in (1, K):
        return u[:, None, :].expand(K, n_points, I)
    if u.ndim == 4:
        u = u.reshape(u.shape[0], -1, u.shape[-1])
    if u.ndim == 3 and u.shape[-1] == I and u.shape[0] in (1, K) and u.shape[1] == n_points:
        return u.expand(K, n_points, I)
    raise ValueError(
        f"The 'inputs' parameter of {owner} must be None, [I], [K, I], [K or 1, P, I] or "
        f"[K or 1, B, T, I] matching the points, with I={I}. Got {tuple(u.shape)} instead."
    )


def _chunked_jacobian(m64, x, u, chunk) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for s in range(0, x.shape[1], chunk):
            out.append(m64.jacobian(x[:, s : s + chunk], u[:, s : s + chunk]).detach())
    return torch.cat(out, dim=1)


def _chunk(model, chunk_size, owner):
    K, N = int(model.n_networks), int(model.n_units)
    if chunk_size is None:
        return max(1, (1 << 25) // max(1, K * N * N))
    return check_int(owner, "chunk_size", chunk_size, 1)


def jacobians(
    model: Any, points: Any, inputs: Any = None, *, chunk_size: int | None = None
) -> torch.Tensor:
    """Jacobians ``dF/dh`` of the map at many points, float64.

    Arguments:
        model: a dynrnn model with K networks.
        points: ``[K or 1, P, N]`` / ``[P, N]`` states, or a trajectory ``[K, B, T, N]``.
        inputs: None, a constant ``[I]`` / ``[K, I]``, or per point ``[K or 1, P, I]`` /
            ``[K or 1, B, T, I]`` (matching the trajectory).
        chunk_size: points per batched call (memory bound).

    Returns:
        ``[K, P, N, N]`` (or ``[K, B, T, N, N]`` for trajectory input) with
        ``J[..., i, j] = dF_i / dh_j``.
    """
    owner = "jacobians"
    check_model(model, owner)
    shape = tuple(as_tensor(points, owner, "points").shape)
    m64 = float64_copy(model)
    x = _points(m64, points, owner)
    u = _point_inputs(m64, inputs, x.shape[1], owner)
    J = _chunked_jacobian(m64, x, u, _chunk(model, chunk_size, owner))
    if len(shape) == 4:
        J = J.reshape(J.shape[0], shape[1], shape[2], *J.shape[-2:])
    return J


def input_jacobians(
    model: Any, points: Any, inputs: Any = None, *, chunk_size: int | None = None
) -> torch.Tensor:
    """Input Jacobians ``B = dF/du`` at many points, float64, ``[K, P, N, I]``.

    Computed with ``torch.func.jvp`` through ``input_drive`` and ``step_drive`` (one forward
    pass per input channel), so any protocol model works.
    """
    owner = "input_jacobians"
    check_model(model, owner)
    m64 = float64_copy(model)
    x = _points(m64, points, owner)
    u = _point_inputs(m64, inputs, x.shape[1], owner)
    return _input_jacobian(m64, x, u, _chunk(model, chunk_size, owner))


def _input_jacobian(m64, x, u, chunk) -> torch.Tensor:
    K, P, N = x.shape
    I = u.shape[-1]
    if I == 0:
        return torch.zeros(K, P, N, 0, dtype=x.dtype, device=x.device)
    params = {k: v.detach() for k, v in m64.prepare().items()}
    out = []
    eye = torch.eye(I, dtype=x.dtype, device=x.device)
    for s in range(0, P, chunk):
        xs, us = x[:, s : s + chunk], u[:, s : s + chunk].contiguous()

        def f(inp, xs=xs):
            return m64.step_drive(xs, m64.input_drive(inp), params)

        cols = []
        for i in range(I):
            v = eye[i].expand_as(us).contiguous()
            cols.append(torch.func.jvp(f, (us,), (v,))[1].detach())
        out.append(torch.stack(cols, dim=-1))
    return torch.cat(out, dim=1)


def local_time_constants(
    eigenvalues: Any, dt: Any = 1.0, convention: str = "discrete"
) -> tuple[np.ndarray, np.ndarray]:
    """Local time constants and oscillation periods from eigenvalues of the map's Jacobian.

    Arguments:
        eigenvalues: complex ``[..., E]`` eigenvalues of ``J = dF/dh``.
        dt: time step of the map, broadcastable to ``eigenvalues.shape[:-1]``.
        convention: ``"discrete"`` or ``"continuous"`` (module docstring).

    Returns:
        ``(tau [..., E], period [..., E])`` in time units (``inf`` where undefined: a neutral
        direction has infinite tau, a real eigenvalue an infinite period; for the discrete map a
        negative real eigenvalue has period ``2 dt``). Negative tau means growth.
    """
    owner = "local_time_constants"
    check_choice(owner, "convention", convention, ("discrete", "continuous"))
    lam = check_array(owner, "eigenvalues", eigenvalues, complex_ok=True, min_ndim=1)
    lam = lam.astype(np.complex128)
    dt = check_array(owner, "dt", dt, finite=True, low=0.0, low_inclusive=False)
    check_broadcast(owner, "dt", dt.shape, lam.shape[:-1])
    dt = dt[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if convention == "discrete":
            tau = -dt / np.log(np.abs(lam))
            angle = np.abs(np.angle(lam))
            period = np.where(angle > 0, 2 * math.pi * dt / angle, np.inf)
        else:
            mu = (lam - 1.0) / dt
            tau = -1.0 / mu.real
            period = np.where(np.abs(mu.imag) > 0, 2 * math.pi / np.abs(mu.imag), np.inf)
    tau = np.where(np.isfinite(tau) | np.isnan(lam.real), tau, np.inf)
    return tau, period


def _eig_sorted(J: torch.Tensor, key_convention: str, dt: torch.Tensor):
    lam, V = torch.linalg.eig(J)
    if key_convention == "discrete":
        key = lam.abs()
    else:
        key = (lam.real - 1.0) / dt.reshape(*dt.shape, *([1] * (lam.ndim - dt.ndim)))
    order = torch.argsort(key, dim=-1, descending=True)
    lam = lam.gather(-1, order)
    V = V.gather(-1, order.unsqueeze(-2).expand_as(V))
    left = torch.linalg.pinv(V).conj().transpose(-1, -2).resolve_conj()
    return lam, V, left


def linearise(
    model: Any,
    points: Any,
    inputs: Any = None,
    *,
    convention: str = "discrete",
    eigenvectors: bool = True,
    chunk_size: int | None = None,
) -> xr.Dataset:
    """Linearised dynamics around points: Jacobians, modes, time constants, input coupling.

    Arguments:
        model: a dynrnn model with K networks of N units and I inputs.
        points: ``[K or 1, P, N]`` or ``[P, N]`` (e.g. ``ds.points`` of
            :func:`find_fixed_points`, NaN rows allowed and passed through as NaN).
        inputs: None, ``[I]``, ``[K, I]`` or ``[K or 1, P, I]`` (the input at each point).
        convention: ``"discrete"`` or ``"continuous"`` ordering of modes and time constants.
        eigenvectors: store right / left eigenvectors and the input coupling.
        chunk_size: points per batched Jacobian.

    Returns:
        ``xarray.Dataset`` (dims ``network``, ``point``, ``unit``, ``unit_from``, ``eigen``,
        ``input``): ``jacobian``, ``input_jacobian [.., unit, input]`` (B = dF/du),
        ``eigenvalues`` (complex, by decreasing growth), ``time_constants``, ``periods``,
        ``right_eigenvectors`` / ``left_eigenvectors [.., unit, eigen]`` (``left^H right = I``),
        ``input_coupling [.., eigen, input]`` = ``left^H B`` (how much a unit input step moves
        each mode) and ``input_alignment [.., eigen, input]`` = ``|cos|`` between each column
        of B and each right eigenvector.
    """
    owner = "linearise"
    check_model(model, owner)
    check_choice(owner, "convention", convention, ("discrete", "continuous"))
    check_bool(owner, "eigenvectors", eigenvectors)
    m64 = float64_copy(model)
    raw = as_tensor(points, owner, "points")
    if raw.ndim == 2:
        raw = raw.unsqueeze(0)
    nan_rows = torch.isnan(raw).any(-1) if raw.ndim == 3 else None
    if nan_rows is not None:
        raw = torch.nan_to_num(raw, nan=0.0)
    x = _points(m64, raw, owner)
    K, P, N = x.shape
    u = _point_inputs(m64, inputs, P, owner)
    chunk = _chunk(model, chunk_size, owner)
    J = _chunked_jacobian(m64, x, u, chunk)
    Bm = _input_jacobian(m64, x, u, chunk)
    dts = network_dts(model)
    lam, V, left = _eig_sorted(J, convention, torch.as_tensor(dts)[:, None])
    if nan_rows is not None:
        bad = nan_rows.expand(K, P)
        J[bad] = math.nan
        Bm[bad] = math.nan
        lam[bad] = complex(math.nan, math.nan)
        V[bad] = complex(math.nan, math.nan)
        left[bad] = complex(math.nan, math.nan)
    tau, period = local_time_constants(lam, dts[:, None], convention)
    data = {
        "jacobian": (("network", "point", "unit", "unit_from"), to_numpy(J)),
        "input_jacobian": (("network", "point", "unit", "input"), to_numpy(Bm)),
        "eigenvalues": (("network", "point", "eigen"), to_numpy(lam)),
        "time_constants": (("network", "point", "eigen"), tau),
        "periods": (("network", "point", "eigen"), period),
        "points": (("network", "point", "unit"), to_numpy(x)),
    }
    if eigenvectors:
        Bc = Bm.to(V.dtype)
        coupling = left.conj().transpose(-1, -2) @ Bc  # [K, P, E, I]
        Vn = V / V.norm(dim=-2, keepdim=True)
        Bn = Bc / Bc.norm(dim=-2, keepdim=True).clamp_min(1e-300)
        align = (Vn.conj().transpose(-1, -2) @ Bn).abs()
        data["right_eigenvectors"] = (("network", "point", "unit", "eigen"), to_numpy(V))
        data["left_eigenvectors"] = (("network", "point", "unit", "eigen"), to_numpy(left))
        data["input_coupling"] = (("network", "point", "eigen", "input"), to_numpy(coupling))
        data["input_alignment"] = (("network", "point", "eigen", "input"), to_numpy(align))
    coords = network_coords(model)
    coords.update(
        point=np.arange(P), unit=np.arange(N), unit_from=np.arange(N), eigen=np.arange(N),
        input=np.arange(int(model.n_inputs)),
    )
    coords["dt"] = ("network", dts)
    ds = xr.Dataset(data, coords=coords)
    ds["time_constants"].attrs.update(
        units="time (dt units)", long_name=f"local time constants ({convention})"
    )
    ds.attrs.update(analysis="linearisation", convention=convention)
    return ds


def linearise_trajectory(
    model: Any,
    states: Any,
    inputs: Any = None,
    *,
    convention: str = "discrete",
    n_modes: int | None = None,
    chunk_size: int | None = None,
) -> xr.Dataset:
    """Local linearisation along trajectories ``[K, B, T, N]``.

    The Jacobian at step t is taken at state ``states[..., t, :]`` with input ``inputs[..., t,
    :]``: it maps a perturbation of ``h_t`` to one of ``h_{t+1}``. To linearise the transition
    *into* ``states[t]`` pass the states shifted by one step.

    Arguments:
        model: a dynrnn model with K networks.
        states: ``[K or 1, B, T, N]`` (e.g. from :func:`dynrnn.models.run`).
        inputs: None, constant ``[I]`` / ``[K, I]``, or ``[B, T, I]`` / ``[K or 1, B, T, I]``.
        convention: ordering and time-constant convention (see :func:`local_time_constants`).
        n_modes: keep the leading ``n_modes`` eigenvalues (default all).
        chunk_size: points per batched Jacobian.

    Returns:
        ``xarray.Dataset`` (dims ``network``, ``trial``, ``time``, ``eigen``):
        ``eigenvalues``, ``time_constants``, ``spectral_radius``, ``log_abs_det``
        (``log|det J_t|``: the local volume expansion; its mean is the sum of the Lyapunov
        spectrum), ``max_time_constant`` (slowest decaying mode, excluding growth).
    """
    owner = "linearise_trajectory"
    check_model(model, owner)
    check_choice(owner, "convention", convention, ("discrete", "continuous"))
    s, _ = check_states(model, states, owner, "states", (("K|1", "B", "T", "N"),))
    K, N = int(model.n_networks), int(model.n_units)
    B, T = s.shape[1], s.shape[2]
    m64 = float64_copy(model)
    x, series = input_series(m64, inputs, owner, batch=B)
    if series:
        if x.shape[2] != T:
            raise ValueError(
                f"The 'inputs' parameter of {owner} must have T={T} steps like the states. "
                f"Got {x.shape[2]}."
            )
        u = x.expand(K, B, T, -1).reshape(K, B * T, -1)
    else:
        u = x[:, 0, 0][:, None, :].expand(K, B * T, -1)
    pts = s.expand(K, -1, -1, -1).reshape(K, B * T, N).to(m64.device)
    J = _chunked_jacobian(m64, pts, u, _chunk(model, chunk_size, owner))
    dts = network_dts(model)
    lam = torch.linalg.eigvals(J)
    key = lam.abs() if convention == "discrete" else lam.real
    lam = lam.gather(-1, torch.argsort(key, dim=-1, descending=True))
    if n_modes is not None:
        n_modes = check_int(owner, "n_modes", n_modes, 1, N)
        lam = lam[..., :n_modes]
    logdet = torch.linalg.slogdet(J)[1]
    tau, _ = local_time_constants(lam, dts[:, None], convention)
    with np.errstate(invalid="ignore"):
        max_tau = np.where(tau > 0, tau, -np.inf).max(-1)
    max_tau[np.isneginf(max_tau)] = np.nan
    E = lam.shape[-1]
    shape3 = (K, B, T)
    coords = network_coords(model)
    coords.update(trial=np.arange(B), time=np.arange(T), eigen=np.arange(E))
    coords["dt"] = ("network", dts)
    ds = xr.Dataset(
        {
            "eigenvalues": (("network", "trial", "time", "eigen"),
                            to_numpy(lam).reshape(*shape3, E)),
            "time_constants": (("network", "trial", "time", "eigen"), tau.reshape(*shape3, E)),
            "spectral_radius": (("network", "trial", "time"),
                                to_numpy(lam.abs().amax(-1)).reshape(shape3)),
            "log_abs_det": (("network", "trial", "time"), to_numpy(logdet).reshape(shape3)),
            "max_time_constant": (("network", "trial", "time"), max_tau.reshape(shape3)),
        },
        coords=coords,
    )
    ds.attrs.update(analysis="linearise_trajectory", convention=convention)
    return ds
