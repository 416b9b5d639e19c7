"""Timescales of activity: FFT autocorrelation, exponential fits, the network timescale.

Following Khajehabdollahi et al. (ICLR 2024), the *network timescale*
``tau_net`` of a network is read from the autocorrelation of its units' activity: the
autocorrelation function (ACF) of every unit is estimated with the FFT (Wiener--Khinchin,
zero-padded to avoid circular wrap-around, averaged over trials), the unit ACFs are averaged
over units into a population ACF, and a single exponential ``A exp(-lag / tau)`` or a double
exponential ``A1 exp(-lag / tau1) + A2 exp(-lag / tau2)`` is fitted; ``tau_net`` is the slowest
component. The single-neuron time constants of the model (its ``tau`` parameter, when it has
one) are reported alongside, so that slow dynamics built by recurrence can be told apart from
slow single units.

The ACF itself is batched over networks, trials and units (one FFT); the nonlinear least-squares
fits use ``scipy.optimize.curve_fit``, which is not batched -- there is one fit per network (and
per unit only when asked), which is cheap next to simulating the networks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy.optimize import OptimizeWarning, curve_fit

from .._validation import (
    ParameterTypeError,
    check_array,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_shape,
)
from ._common import as_tensor, check_finite, network_coords, network_dts, to_numpy

__all__ = [
    "autocorrelation",
    "fit_exponential",
    "network_timescale",
    "ar1_timescale",
]


def autocorrelation(
    x: Any, max_lag: int | None = None, *, demean: bool = True, normalise: bool = True
) -> torch.Tensor:
    """Autocorrelation along the last axis by FFT (zero-padded, unbiased per lag).

    Arguments:
        x: ``[..., T]`` signals (tensor or array).
        max_lag: largest lag L returned (default ``T // 2``; at most ``T - 1``).
        demean: subtract each signal's mean first.
        normalise: divide by the lag-0 value, so ``acf[..., 0] = 1`` (constant signals give
            NaN).

    Returns:
        ``[..., L + 1]`` float64 tensor: ``acf[l] = mean_t x[t] x[t + l]`` (over the ``T - l``
        available pairs), optionally normalised.
    """
    owner = "autocorrelation"
    check_bool(owner, "demean", demean)
    check_bool(owner, "normalise", normalise)
    s = check_finite(as_tensor(x, owner, "x"), owner, "x")
    if s.ndim < 1 or s.shape[-1] < 2:
        raise ValueError(f"The 'x' parameter of {owner} needs at least 2 time steps.")
    if s.numel() == 0:
        raise ValueError(
            f"The 'x' parameter of {owner} holds no signals; got shape {tuple(s.shape)}."
        )
    T = s.shape[-1]
    L = T // 2 if max_lag is None else check_int(owner, "max_lag", max_lag, 0, T - 1)
    if demean:
        s = s - s.mean(-1, keepdim=True)
    n = 1 << (2 * T - 1).bit_length()
    f = torch.fft.rfft(s, n=n)
    ac = torch.fft.irfft(f * f.conj(), n=n)[..., : L + 1]
    ac = ac / torch.arange(T, T - L - 1, -1, dtype=ac.dtype, device=ac.device)
    if normalise:
        ac = ac / ac[..., :1]
    return ac


def _single(t, a, tau):
    return a * np.exp(-t / tau)


def _double(t, a1, tau1, a2, tau2):
    return a1 * np.exp(-t / tau1) + a2 * np.exp(-t / tau2)


def _fit_range(acf: np.ndarray, min_lag: int, cutoff: float) -> int:
    """Last lag (exclusive) used in the fit: where the ACF first drops below ``cutoff``."""
    below = np.flatnonzero(acf[min_lag:] < cutoff)
    end = min_lag + (int(below[0]) if len(below) else len(acf) - min_lag)
    return max(end, min_lag + 3)


def _fit_one(kind, tt, yy, a0, tau0):
    """One curve_fit; returns (params dict, residual sum of squares) or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            if kind == "single":
                p, _ = curve_fit(_single, tt, yy, p0=(a0, tau0),
                                 bounds=([0.0, 1e-6], [np.inf, np.inf]), maxfev=10000)
                rss = float(np.sum((_single(tt, *p) - yy) ** 2))
                return {"tau": float(p[1]), "amplitude": float(p[0])}, rss
            p, _ = curve_fit(
                _double, tt, yy, p0=(0.5 * a0, 0.3 * tau0, 0.5 * a0, 2.0 * tau0),
                bounds=([0.0, 1e-6, 0.0, 1e-6], [np.inf] * 4), maxfev=20000,
            )
        except (RuntimeError, ValueError):
            return None
    rss = float(np.sum((_double(tt, *p) - yy) ** 2))
    (a1, t1), (a2, t2) = sorted([(p[0], p[1]), (p[2], p[3])], key=lambda z: z[1])
    slow = t2 if a2 > 1e-3 * (a1 + a2) else t1
    return {"tau": float(slow), "amplitude": float(a1 + a2), "tau_fast": float(t1),
            "tau_slow": float(t2), "amplitude_fast": float(a1), "amplitude_slow": float(a2)}, rss


def _identifiable(p: dict, last_lag: float) -> bool:
    """Whether both components of a double fit are resolved by the data: each carries at least
    5% of the amplitude, the timescales differ by at least 1.5x, and the slow one is not longer
    than three times the fitted lag window (else it only models an offset of the noisy tail)."""
    total = p["amplitude_fast"] + p["amplitude_slow"]
    return (
        min(p["amplitude_fast"], p["amplitude_slow"]) >= 0.05 * total
        and p["tau_slow"] >= 1.5 * p["tau_fast"]
        and p["tau_slow"] <= 3.0 * max(last_lag, 1.0)
    )


def fit_exponential(
    acf: Any,
    lags: Any = None,
    *,
    kind: str = "auto",
    min_lag: int = 1,
    cutoff: float = 0.05,
) -> dict[str, float]:
    """Fit an exponential decay to one autocorrelation function.

    Arguments:
        acf: ``[L + 1]`` autocorrelation at lags ``0..L`` (or at ``lags``).
        lags: lag values (default ``0..L``).
        kind: ``"single"`` (``A exp(-l/tau)``), ``"double"``
            (``A1 exp(-l/tau1) + A2 exp(-l/tau2)``, ``tau1 <= tau2``) or ``"auto"`` (both;
            the double is kept only when both components are resolved -- each >= 5% of the
            amplitude, timescales >= 1.5x apart, the slow one <= 3x the fitted window -- and it
            lowers the Bayesian information criterion, so a single-exponential ACF is not
            over-fitted).
        min_lag: first lag fitted (lag 0 holds the noise variance of noisy signals; 1 skips it).
        cutoff: the fit uses lags up to where the ACF first falls below ``cutoff``. An ACF
            that is below ``cutoff`` already at ``min_lag`` decays faster than one lag: it is
            not fitted (``ok = 0``, NaNs).

    Returns:
        dict with ``tau`` (the slowest time constant, in lag units), ``amplitude``,
        ``tau_fast``, ``tau_slow``, ``amplitude_fast``, ``amplitude_slow`` (equal to the single
        component when one exponential is selected), ``n_components``, ``ok`` (1.0 if the fit
        converged, else 0.0 with NaNs) and ``rmse``.
    """
    owner = "fit_exponential"
    check_choice(owner, "kind", kind, ("single", "double", "auto"))
    cutoff = check_float(owner, "cutoff", cutoff, None, 1.0)
    y = check_array(owner, "acf", acf).ravel()
    if len(y) < 2:
        raise ValueError(
            f"The 'acf' parameter of {owner} must hold at least 2 lags. Got {len(y)} instead."
        )
    if lags is None:
        t = np.arange(len(y), dtype=float)
    else:
        t = check_array(owner, "lags", lags).ravel()
        if len(t) != len(y):
            raise ValueError(
                f"The 'lags' parameter of {owner} must hold one lag per acf value ({len(y)}). "
                f"Got {len(t)} instead."
            )
    min_lag = check_int(owner, "min_lag", min_lag, 0, max(0, len(y) - 1))
    keys = ("tau", "amplitude", "tau_fast", "tau_slow", "amplitude_fast", "amplitude_slow",
            "n_components", "ok", "rmse")
    out = dict.fromkeys(keys, math.nan)
    out["ok"] = 0.0
    if not np.isfinite(y).all() or len(y) < min_lag + 3:
        return out
    if y[min_lag] < cutoff:
        # already below the cutoff at the first fitted lag: the decay is faster than the
        # sampling resolves (tau well below one lag); fitting the noise floor beyond it gave
        # arbitrary tau (up to ~1e6) with ok = 1 -- report it as not fitted instead
        return out
    end = _fit_range(y, min_lag, cutoff)
    tt, yy = t[min_lag:end], y[min_lag:end]
    if len(tt) < 3:
        return out
    # initial guess from the log-linear slope over the fitted range
    pos = yy > 0
    if pos.sum() >= 2:
        slope = np.polyfit(tt[pos], np.log(yy[pos]), 1)[0]
        tau0 = -1.0 / slope if slope < 0 else float(tt[-1] - tt[0] + 1)
    else:
        tau0 = 1.0
    tau0 = float(np.clip(tau0, 1e-3, 1e6))
    a0 = float(max(yy[0], 1e-3) * math.exp(min(tt[0] / tau0, 50.0)))
    n = len(tt)
    fits = {}
    if kind in ("single", "auto"):
        fits["single"] = _fit_one("single", tt, yy, a0, tau0)
    if kind in ("double", "auto") and n >= 5:
        fits["double"] = _fit_one("double", tt, yy, a0, tau0)
    fits = {k: v for k, v in fits.items() if v is not None}
    if not fits:
        return out

    def bic(name, rss):
        n_par = 2 if name == "single" else 4
        return n * math.log(max(rss, 1e-300) / n) + n_par * math.log(n)

    if kind == "auto" and "double" in fits and not _identifiable(fits["double"][0], tt[-1]):
        del fits["double"]
    best = min(fits, key=lambda name: bic(name, fits[name][1]))
    params, rss = fits[best]
    if best == "single":
        params.update(tau_fast=params["tau"], tau_slow=params["tau"],
                      amplitude_fast=params["amplitude"], amplitude_slow=params["amplitude"])
    out.update(params)
    out["n_components"] = 1.0 if best == "single" else 2.0
    out["ok"] = 1.0
    out["rmse"] = math.sqrt(rss / n)
    return out


def ar1_timescale(phi: float, dt: float = 1.0) -> float:
    """Time constant of an AR(1) process ``x[t+1] = phi x[t] + noise``: ``-dt / log|phi|``.

    ``phi = 0`` gives 0, ``|phi| = 1`` gives ``inf`` and ``|phi| > 1`` a negative time constant
    (growth), as in :func:`dynrnn.analyses.local_time_constants`; ``dt > 0``.
    """
    owner = "ar1_timescale"
    a = abs(check_float(owner, "phi", phi))
    dt = check_float(owner, "dt", dt, 0.0, None, low_inclusive=False)
    if a == 0.0:
        return 0.0
    if a == 1.0:
        return math.inf
    return -dt / math.log(a)


def network_timescale(
    states: Any,
    model: Any = None,
    *,
    max_lag: int | None = None,
    kind: str = "auto",
    min_lag: int = 1,
    cutoff: float = 0.05,
    per_unit: bool = False,
    discard: int = 0,
    min_std: float = 1e-8,
) -> xr.Dataset:
    """Network timescale ``tau_net`` per network from unit-activity autocorrelations.

    Arguments:
        states: activity ``[K, B, T, N]`` (e.g. states from :func:`dynrnn.models.run`) or
            ``[K, T, N]``.
        model: optional model, for ``network`` coordinates (hyperparameters), ``dt`` and the
            single-neuron time constants (its ``tau`` parameter, clamped at ``tau_min``).
        max_lag: largest lag (default ``T // 2``).
        kind: ``"single"``, ``"double"`` or ``"auto"`` (BIC choice) exponential for
            ``tau_net`` (the slowest component).
        min_lag, cutoff: fitted lag range (see :func:`fit_exponential`).
        per_unit: also fit a single exponential to every unit's ACF (K x N fits).
        discard: initial time steps dropped (transients).
        min_std: units whose activity std is below this are excluded (silent / saturated).

    Returns:
        ``xarray.Dataset``: ``acf [network, lag]`` (population ACF), ``tau_net [network]``
        (steps) and ``tau_net_time`` (times dt), ``tau_fast`` / ``tau_slow`` and amplitudes,
        ``n_components`` (1 or 2), ``fit_ok``, ``fit_rmse``, ``n_active_units``; with ``per_unit``:
        ``unit_acf_tau [network, unit]``; with a model that has single-neuron time constants:
        ``neuron_tau [network, unit]`` and ``neuron_tau_mean [network]``.
    """
    owner = "network_timescale"
    check_choice(owner, "kind", kind, ("single", "double", "auto"))
    check_bool(owner, "per_unit", per_unit)
    discard = check_int(owner, "discard", discard, 0)
    min_std = check_float(owner, "min_std", min_std, 0.0, None)
    if model is not None and not hasattr(model, "n_networks"):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be a dynrnn model or None. Got "
            f"{type(model).__name__} instead."
        )
    s = check_finite(as_tensor(states, owner, "states"), owner, "states")
    if model is not None and s.ndim in (3, 4) and s.shape[0] != int(model.n_networks):
        raise ValueError(
            f"The 'states' parameter of {owner} has {s.shape[0]} networks; the model has "
            f"{model.n_networks}."
        )
    if check_shape(owner, "states", s, [("K", "B", "T0", "N"), ("K", "T0", "N")]) == 1:
        s = s.unsqueeze(1)
    s = s[:, :, discard:]
    K, B, T, N = s.shape
    if T < 4:
        raise ValueError(
            f"The 'states' of {owner} need at least 4 time steps after the first 'discard' "
            f"({discard}) are dropped; they have {T + discard}."
        )
    L = T // 2 if max_lag is None else check_int(owner, "max_lag", max_lag, 1, T - 1)
    sig = s.permute(0, 1, 3, 2)  # [K, B, N, T]
    raw = autocorrelation(sig, L, normalise=False).mean(1)  # [K, N, L+1] (trial average)
    std = raw[..., 0].clamp_min(0).sqrt()
    active = std > min_std
    unit_acf = raw / raw[..., :1].clamp_min(1e-300)
    w = active.to(unit_acf.dtype)
    pop = (unit_acf * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1)
    pop = to_numpy(pop)
    pop[~to_numpy(active.any(1))] = np.nan

    names = ["tau", "amplitude", "ok", "rmse", "n_components", "tau_fast", "tau_slow",
             "amplitude_fast", "amplitude_slow"]
    res = {n: np.full(K, np.nan) for n in names}
    for k in range(K):
        fit = fit_exponential(pop[k], kind=kind, min_lag=min_lag, cutoff=cutoff)
        for n in names:
            res[n][k] = fit[n]
    dts = network_dts(model) if model is not None else np.ones(K)
    data = {
        "acf": (("network", "lag"), pop),
        "tau_net": ("network", res["tau"]),
        "tau_net_time": ("network", res["tau"] * dts),
        "fit_amplitude": ("network", res["amplitude"]),
        "fit_ok": ("network", res["ok"].astype(bool)),
        "fit_rmse": ("network", res["rmse"]),
        "n_active_units": ("network", to_numpy(active.sum(1))),
        "n_components": ("network", res["n_components"]),
    }
    for n in ("tau_fast", "tau_slow", "amplitude_fast", "amplitude_slow"):
        data[n] = ("network", res[n])
    if per_unit:
        ua = to_numpy(unit_acf)
        taus = np.full((K, N), np.nan)
        act = to_numpy(active)
        for k in range(K):
            for i in range(N):
                if act[k, i]:
                    taus[k, i] = fit_exponential(ua[k, i], kind="single", min_lag=min_lag,
                                                 cutoff=cutoff)["tau"]
        data["unit_acf_tau"] = (("network", "unit"), taus)
    neuron_tau = _neuron_taus(model)
    if neuron_tau is not None and neuron_tau.shape == (K, N):
        data["neuron_tau"] = (("network", "unit"), neuron_tau)
        data["neuron_tau_mean"] = ("network", neuron_tau.mean(1))
    coords = network_coords(model) if model is not None else {"network": np.arange(K)}
    coords.update(lag=np.arange(L + 1), unit=np.arange(N))
    coords["dt"] = ("network", dts)
    ds = xr.Dataset(data, coords=coords)
    ds["tau_net"].attrs.update(units="steps", long_name=f"network timescale ({kind} exp. fit)")
    ds.attrs.update(
        analysis="network_timescale",
        kind=kind,
        min_lag=min_lag,
        cutoff=cutoff,
        reference="Khajehabdollahi et al., ICLR 2024",
    )
    return ds


def _neuron_taus(model) -> np.ndarray | None:
    """Single-neuron time constants ``[K, N]`` of a model with a ``tau`` parameter, else None."""
    if model is None or not hasattr(model, "tau") or not torch.is_tensor(model.tau):
        return None
    tau = model.tau.detach()
    tmin = getattr(model, "tau_min", None)
    if torch.is_tensor(tmin):
        tau = torch.maximum(tau, tmin.detach().reshape(-1, *([1] * (tau.ndim - 1))))
    return to_numpy(tau.double())
