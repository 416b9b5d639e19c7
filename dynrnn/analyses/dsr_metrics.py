"""Measures of dynamical-systems reconstruction (DSR) quality, batched over K networks.

* :func:`state_space_divergence` -- D_stsp, the Kullback--Leibler divergence
  ``KL(p_data || p_gen)`` between the occupation measures of data and generated trajectories
  (geometry of the attractor; Koppe et al. 2019, Mikhaeil et al. 2022). Binned version: 30 bins
  per dimension over the data range extended by 0.1 data standard deviations on each side,
  Laplace smoothing ``p = (counts + a) / (n + a * bins)`` with ``a = 1e-5``; generated points
  outside the range (or non-finite) count in ``n`` but fall in no bin, so a trajectory that
  leaves the data range or diverges gets a large divergence. Only occupied bins are stored,
  so any dimension works; for high dimensions use the Gaussian-mixture variant
  (``method="gmm"``: Monte-Carlo KL between mixtures of isotropic Gaussians centred on the
  trajectory points).
* :func:`power_spectrum_distance` -- D_H, the Hellinger distance between the per-dimension power
  spectra (standardised series, ``|rfft|^2`` smoothed with a Gaussian kernel of ``sigma = 20``
  frequency bins, normalised to sum 1), averaged over dimensions (temporal structure).
* :func:`prediction_error` -- PE(n): MSE of n-step free-running predictions started from data.
* :func:`evaluate_reconstruction` -- the evaluation protocol: generate ``1.25 T`` steps from the
  data-inferred first state, drop the first 25% as transient, compare with the T data samples;
  plus PE(n) and the maximal Lyapunov exponent of each reconstruction
  (:func:`dynrnn.analyses.lyapunov.lyapunov_spectrum`) against the data's.

Calibration on Lorenz-63 (1e5 samples, dt 0.01, standardised; see tests): the system against
another trajectory of itself gives ~0.05 / ~0.05 (the floor), with 0.3 sd observation noise
~1.3 / ~0.2, Gaussian noise against Lorenz ~3.7 / ~0.9.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter1d

from .._validation import (
    ParameterTypeError,
    check_array,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_model_tensor,
)
from ._common import check_model, network_coords, network_dts

__all__ = [
    "state_space_divergence",
    "power_spectrum_distance",
    "prediction_error",
    "generate",
    "evaluate_reconstruction",
]


def _series(x: Any, owner: str, name: str) -> np.ndarray:
    """``[T, N]`` or ``[K, T, N]`` -> float64 ``[K, T, N]``; raise on NaN/inf or bad shape."""
    x = check_array(owner, name, x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] < 2 or x.shape[0] < 1 or x.shape[2] < 1:
        raise ValueError(
            f"The {name!r} parameter of {owner} must have shape [T, N] or [K, T, N] with T >= 2"
            f" (and K, N >= 1)."
            f" Got {x.shape} instead."
        )
    return x


def _check_dsr_model(model: Any, owner: str) -> None:
    """The protocol (:func:`check_model`) plus the ``n_outputs`` observations generated."""
    check_model(model, owner)
    if not hasattr(model, "n_outputs") or not hasattr(model, "readout"):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must have observations (n_outputs, readout). Got "
            f"{type(model).__name__} instead."
        )


def _observed(model: Any, data: Any, owner: str) -> np.ndarray:
    """One observed series ``[T, N]`` (float64, finite) with ``N = model.n_outputs``."""
    x = _series(data, owner, "data")
    if x.shape[0] != 1:
        raise ValueError(
            f"The 'data' parameter of {owner} must be one series [T, N]. Got {x.shape} instead."
        )
    x = x[0]
    if x.shape[1] != model.n_outputs:
        raise ValueError(
            f"The 'data' parameter of {owner} must have N={model.n_outputs} dimensions (the "
            f"model's n_outputs). Got {x.shape[1]}."
        )
    if not np.isfinite(x).all():
        raise ValueError(f"The 'data' parameter of {owner} contains NaN or inf values.")
    return x


def _check_pair(x_true, x_gen, owner):
    xt = _series(x_true, owner, "x_true")
    xg = _series(x_gen, owner, "x_gen")
    if xt.shape[0] != 1:
        raise ValueError(
            f"The 'x_true' parameter of {owner} must be one series [T, N]. Got {xt.shape}."
        )
    if xt.shape[-1] != xg.shape[-1]:
        raise ValueError(
            f"The 'x_gen' parameter of {owner} must have N={xt.shape[-1]} dimensions like "
            f"'x_true'. Got {xg.shape[-1]}."
        )
    if not np.isfinite(xt).all():
        raise ValueError(f"The 'x_true' parameter of {owner} contains NaN or inf values.")
    return xt[0], xg


def _bin_codes(x: np.ndarray, lo: np.ndarray, width: np.ndarray, n_bins: int) -> np.ndarray:
    """Linear bin index of each finite in-range point (out-of-range/non-finite dropped)."""
    idx = np.floor((x - lo) / width)
    ok = np.isfinite(idx).all(1) & (idx >= 0).all(1) & (idx < n_bins).all(1)
    idx = idx[ok].astype(np.int64)
    code = np.zeros(len(idx), dtype=np.int64)
    for d in range(x.shape[1]):
        code = code * n_bins + idx[:, d]
    return code


def _binned_kl(xt, xg, n_bins, margin, smoothing):
    std = xt.std(0)
    lo = xt.min(0) - margin * std
    hi = xt.max(0) + margin * std
    width = (hi - lo) / n_bins
    n_cells = float(n_bins) ** xt.shape[1]
    ct = _bin_codes(xt, lo, width, n_bins)
    out = []
    for g in xg:
        cg = _bin_codes(g, lo, width, n_bins)
        union, inv = np.unique(np.concatenate([ct, cg]), return_inverse=True)
        nt = np.bincount(inv[: len(ct)], minlength=len(union))
        ng = np.bincount(inv[len(ct):], minlength=len(union))
        zt = len(ct) + smoothing * n_cells
        zg = len(g) + smoothing * n_cells  # all generated points, in range or not
        p = (nt + smoothing) / zt
        q = (ng + smoothing) / zg
        # bins visited by neither series hold p = a / zt, q = a / zg
        p0 = smoothing / zt
        rest = (n_cells - len(union)) * p0 * np.log(zg / zt)
        out.append(float((p * np.log(p / q)).sum() + rest))
    return np.asarray(out)


def _gmm_kl(xt, xg, sigma, n_points, seed):
    rng = np.random.default_rng(seed)
    std = xt.std(0)
    std = np.where(std > 0, std, 1.0)
    mean = xt.mean(0)

    def sub(x):
        x = (x - mean) / std
        x = x[np.isfinite(x).all(1)]
        if len(x) > n_points:
            x = x[rng.choice(len(x), n_points, replace=False)]
        return x

    t = torch.from_numpy(sub(xt))
    out = []
    for g in xg:
        gg = torch.from_numpy(sub(g))
        if len(gg) == 0:
            out.append(np.inf)
            continue

        def log_mix(samples, centres):
            d2 = torch.cdist(samples, centres).pow(2)
            return torch.logsumexp(-d2 / (2 * sigma**2), dim=1) - np.log(len(centres))

        # Monte-Carlo KL with the data points themselves as samples of p_data
        out.append(float((log_mix(t, t) - log_mix(t, gg)).mean()))
    return np.asarray(out)


def state_space_divergence(
    x_true: Any,
    x_gen: Any,
    *,
    method: str = "bins",
    n_bins: int = 30,
    margin: float = 0.1,
    smoothing: float = 1e-5,
    sigma: float = 1.0,
    n_points: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """D_stsp = KL(p_true || p_gen) of the state-space occupation of two series.

    Arguments:
        x_true: data ``[T, N]`` (finite).
        x_gen: generated series ``[T', N]`` or ``[K, T', N]`` (non-finite points are dropped).
        method: ``"bins"`` (histograms, any N but meant for N <= ~5) or ``"gmm"``.
        n_bins: bins per dimension; margin: range extension beyond the data, in data sd;
        smoothing: Laplace pseudo-count per bin.
        sigma: width of the Gaussians of ``"gmm"`` (in data sd); n_points: subsampled centres.

    Returns:
        ``[K]`` divergences (nats).
    """
    owner = "state_space_divergence"
    check_choice(owner, "method", method, ("bins", "gmm"))
    n_bins = check_int(owner, "n_bins", n_bins, 1)
    check_float(owner, "margin", margin, 0.0, math.inf, high_inclusive=False)
    check_float(owner, "smoothing", smoothing, 0.0, math.inf, False, False)
    check_float(owner, "sigma", sigma, 0.0, math.inf, False, False)
    n_points = check_int(owner, "n_points", n_points, 1)
    seed = check_int(owner, "seed", seed, 0)
    xt, xg = _check_pair(x_true, x_gen, owner)
    if method == "bins":
        return _binned_kl(xt, xg, n_bins, margin, smoothing)
    return _gmm_kl(xt, xg, sigma, n_points, seed)


def _spectra(x: np.ndarray, sigma: float) -> np.ndarray:
    """Smoothed, normalised power spectra ``[N, F]`` of one series ``[T, N]``."""
    std = x.std(0)
    x = (x - x.mean(0)) / np.where(std > 0, std, 1.0)
    ps = np.abs(np.fft.rfft(x, axis=0)) ** 2
    ps = ps[1:]  # drop the DC bin (zero after centring)
    if sigma > 0:
        ps = gaussian_filter1d(ps, sigma, axis=0)
    total = ps.sum(0, keepdims=True)
    flat = np.full_like(ps, 1.0 / len(ps))  # a constant series: no temporal structure
    return np.where(total > 0, ps / np.where(total > 0, total, 1.0), flat).T


def power_spectrum_distance(x_true: Any, x_gen: Any, *, sigma: float = 20.0) -> np.ndarray:
    """D_H: Hellinger distance of smoothed power spectra, averaged over dimensions.

    Arguments:
        x_true: data ``[T, N]``.
        x_gen: generated ``[T, N]`` or ``[K, T, N]`` (same T as the data; a series with
            non-finite values gets distance 1).
        sigma: Gaussian smoothing of the spectra, in frequency bins.

    Returns:
        ``[K]`` distances in [0, 1].
    """
    owner = "power_spectrum_distance"
    check_float(owner, "sigma", sigma, 0.0, math.inf, high_inclusive=False)
    xt, xg = _check_pair(x_true, x_gen, owner)
    if xg.shape[1] != xt.shape[0]:
        raise ValueError(
            f"The 'x_gen' parameter of {owner} must have T={xt.shape[0]} steps like 'x_true' "
            f"(the spectra are compared bin by bin). Got {xg.shape[1]}."
        )
    pt = _spectra(xt, sigma)
    out = []
    for g in xg:
        if not np.isfinite(g).all():
            out.append(1.0)
            continue
        pg = _spectra(g, sigma)
        bc = np.sqrt(pt * pg).sum(1)
        out.append(float(np.sqrt(np.clip(1.0 - bc, 0.0, None)).mean()))
    return np.asarray(out)


def _latent_from_obs(model, x: torch.Tensor) -> torch.Tensor:
    from ..training.gtf import _pad_latent

    return _pad_latent(model, x, initial=True)


@torch.no_grad()
def generate(model, x0: Any, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Free-running generation from observed initial states.

    Arguments:
        model: K-network model (PLRNN family or any model with ``n_outputs`` observations).
        x0: initial observations ``[N]``, ``[B, N]`` or ``[K, B, N]`` (latent state inferred by
            inverting the observation model; unobserved units ``L x0`` if the model learns its
            initial state, else 0).
        n_steps: steps to generate (the first output is the state after one step).

    Returns:
        ``(observations [K, B, n_steps, N], latent [K, B, n_steps, M])`` (float of the model).
    """
    owner = "generate"
    _check_dsr_model(model, owner)
    n_steps = check_int(owner, "n_steps", n_steps, 1)
    K = model.n_networks
    x0, _ = check_model_tensor(
        owner, "x0", x0, model, [("O",), ("B", "O"), ("K|1", "B", "O")], dtype=model.dtype,
        finite=True, detach=True,
    )
    while x0.ndim < 3:
        x0 = x0.unsqueeze(0)
    x0 = x0.expand(K, *x0.shape[1:])
    z = _latent_from_obs(model, x0)
    params = {k: v.detach() for k, v in model.prepare().items()}
    drive = model.input_drive(torch.zeros(1, z.shape[1], model.n_inputs, dtype=model.dtype))
    Z = torch.empty(K, n_steps, *z.shape[1:], dtype=model.dtype)
    for t in range(n_steps):
        z = model.step_drive(z, drive, params)
        Z[:, t] = z
    Z = Z.transpose(1, 2)
    return model.readout(Z), Z


@torch.no_grad()
def prediction_error(
    model, data: Any, n: int = 20, *, n_starts: int = 1000, seed: int = 0
) -> np.ndarray:
    """PE(n): mean squared error of n-step free predictions from ``n_starts`` data points.

    Returns ``[K, n]``: entry ``[k, j]`` is PE(j + 1) of network k.
    """
    owner = "prediction_error"
    _check_dsr_model(model, owner)
    n = check_int(owner, "n", n, 1)
    n_starts = check_int(owner, "n_starts", n_starts, 1)
    seed = check_int(owner, "seed", seed, 0)
    x = _observed(model, data, owner)
    if len(x) <= n:
        raise ValueError(
            f"The 'n' parameter of {owner} ({n}) must be smaller than the length of 'data' "
            f"(T={len(x)})."
        )
    rng = np.random.default_rng(seed)
    starts = rng.choice(len(x) - n, min(n_starts, len(x) - n), replace=False)
    xt = torch.as_tensor(x, dtype=model.dtype)
    obs, _ = generate(model, xt[starts], n)  # [K, B, n, N]
    target = xt[starts[:, None] + np.arange(1, n + 1)[None, :]]  # [B, n, N]
    return ((obs - target) ** 2).mean(dim=(1, 3)).double().numpy()


def evaluate_reconstruction(
    model,
    data: Any,
    *,
    n_bins: int = 30,
    sigma: float = 20.0,
    pe_steps: int = 20,
    lyapunov: bool = True,
    lyapunov_steps: int = 20000,
    true_lyapunov: float | None = None,
    dstsp_method: str = "bins",
    progress: bool = True,
) -> xr.Dataset:
    """DSR evaluation of all K networks against one observed series.

    Protocol: generate ``1.25 T`` steps from the data-inferred first state, drop the first
    ``0.25 T`` as transient, compare the remaining T steps with the data (D_stsp, D_H); PE(n)
    from data points; maximal Lyapunov exponent (QR method, per time unit using the model's dt)
    from the state at the end of the transient.

    Arguments:
        model: K-network reconstruction model.
        data: observations ``[T, N]`` (finite).
        true_lyapunov: the data's maximal exponent (per time unit), stored for comparison.
        progress: show the Lyapunov computation's tqdm bar on stderr.

    Returns:
        ``xarray.Dataset`` over ``network`` with ``D_stsp``, ``D_H``, ``PE [network, n]``,
        ``max_lyapunov`` (per time unit, NaN if not computed or diverged), ``diverged``;
        attrs hold the settings and ``true_lyapunov``.
    """
    from .lyapunov import lyapunov_spectrum

    owner = "evaluate_reconstruction"
    _check_dsr_model(model, owner)
    n_bins = check_int(owner, "n_bins", n_bins, 1)
    sigma = check_float(owner, "sigma", sigma, 0.0, math.inf, high_inclusive=False)
    pe_steps = check_int(owner, "pe_steps", pe_steps, 1)
    check_bool(owner, "lyapunov", lyapunov)
    lyapunov_steps = check_int(owner, "lyapunov_steps", lyapunov_steps, 1)
    if true_lyapunov is not None:
        true_lyapunov = check_float(owner, "true_lyapunov", true_lyapunov)
    check_choice(owner, "dstsp_method", dstsp_method, ("bins", "gmm"))
    check_bool(owner, "progress", progress)
    x = _observed(model, data, owner)
    if not np.isfinite(x).all():
        raise ValueError(f"The 'data' parameter of {owner} contains NaN or inf values.")
    T = len(x)
    if T <= pe_steps:
        raise ValueError(
            f"The 'pe_steps' parameter of {owner} must be < T={T} (the length of 'data'). "
            f"Got {pe_steps} instead."
        )
    n_gen = int(round(1.25 * T))
    obs, Z = generate(model, x[0], n_gen)
    gen = obs[:, 0, n_gen - T:].double().numpy()  # [K, T, N]
    diverged = ~np.isfinite(gen).all(axis=(1, 2))
    d_stsp = state_space_divergence(x, gen, n_bins=n_bins, method=dstsp_method)
    d_h = power_spectrum_distance(x, gen, sigma=sigma)
    pe = prediction_error(model, x, pe_steps)
    K = model.n_networks
    lam = np.full(K, np.nan)
    if lyapunov:
        z0 = Z[:, 0, n_gen - T].double()[:, None, :]
        ok = torch.isfinite(z0).all(-1).all(-1) & (z0.abs().amax(dim=(1, 2)) < 1e6)
        z0 = torch.where(ok[:, None, None], z0, torch.zeros_like(z0))
        kw = dict(n_steps=lyapunov_steps, burn_in=100, tangent_burn_in=500, n_exponents=1,
                  progress=bool(progress))
        try:  # all networks at once; one by one if some trajectory diverges
            res = lyapunov_spectrum(model, h0=z0, **kw)
            lam = res["exponents_per_time"].values[:, 0].copy()
        except ValueError:
            for k in np.nonzero(ok.numpy())[0]:
                try:
                    res = lyapunov_spectrum(model.select(int(k)), h0=z0[k : k + 1], **kw)
                    lam[k] = float(res["exponents_per_time"].values[0, 0])
                except ValueError:
                    pass
        lam[~ok.numpy()] = np.nan
    ds = xr.Dataset(
        {
            "D_stsp": ("network", d_stsp),
            "D_H": ("network", d_h),
            "PE": (("network", "n"), pe),
            "max_lyapunov": ("network", lam),
            "diverged": ("network", diverged),
        },
        coords={**network_coords(model), "n": np.arange(1, pe_steps + 1)},
    )
    ds["max_lyapunov"].attrs.update(units=f"per time unit (dt = {network_dts(model)[0]})")
    ds.attrs.update(
        analysis="evaluate_reconstruction",
        n_bins=n_bins,
        sigma=sigma,
        n_generated=n_gen,
        transient=n_gen - T,
        true_lyapunov=np.nan if true_lyapunov is None else float(true_lyapunov),
    )
    return ds
