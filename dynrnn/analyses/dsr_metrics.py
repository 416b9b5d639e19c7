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
* :class:`BestCheckpoint` -- a :func:`dynrnn.training.train_gtf` callback that evaluates the
  networks every so many iterations and keeps each network's best parameters.

Every metric returns an ``xarray.Dataset`` with a ``network`` dimension (K generated series or
K networks; coordinates from ``model.network_metadata()`` where a model is given).

References: Koppe, G., Toutounji, H., Kirsch, P., Lis, S. & Durstewitz, D. (2019). Identifying
nonlinear dynamical systems via generative recurrent neural networks with applications to fMRI.
PLOS Computational Biology 15(8), e1007263 (D_stsp). Mikhaeil, J. M., Monfared, Z. & Durstewitz,
D. (2022). On the difficulty of learning chaotic dynamics with RNNs. Advances in Neural
Information Processing Systems 35 (NeurIPS 2022) (binned D_stsp, D_H and the evaluation
protocol).

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

from .._progress import stage
from .._validation import (
    ParameterTypeError,
    check_array,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_model_tensor,
)
from ..models.base import run
from ..models.protocol import latent_from_observation
from ..training.gtf import check_dsr_data
from ._common import check_model, network_coords, network_dts

__all__ = [
    "state_space_divergence",
    "power_spectrum_distance",
    "prediction_error",
    "generate",
    "evaluate_reconstruction",
    "BestCheckpoint",
]

_KOPPE_2019 = (
    "Koppe, Toutounji, Kirsch, Lis & Durstewitz (2019), Identifying nonlinear dynamical systems "
    "via generative recurrent neural networks with applications to fMRI, PLOS Computational "
    "Biology 15(8), e1007263"
)
_MIKHAEIL_2022 = (
    "Mikhaeil, Monfared & Durstewitz (2022), On the difficulty of learning chaotic dynamics "
    "with RNNs, NeurIPS 35"
)


def _per_series(name: str, values: np.ndarray, **attrs: Any) -> xr.Dataset:
    """One value per generated series: ``name (network)`` with ``network = 0..K-1``."""
    values = np.asarray(values, dtype=np.float64)
    return xr.Dataset({name: ("network", values)},
                      coords={"network": np.arange(len(values))}, attrs=attrs)


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
) -> xr.Dataset:
    """D_stsp = KL(p_true || p_gen) of the state-space occupation of two series.

    ``KL = sum_bins p log(p / q)`` over the smoothed histograms ``p`` (data) and ``q``
    (generated), ``p = (counts + a) / (n + a bins^N)`` (Koppe et al. 2019, PLOS Comput. Biol.;
    binned form of Mikhaeil et al. 2022, NeurIPS); ``"gmm"``: Monte-Carlo estimate
    ``mean_i [log p(x_i) - log q(x_i)]`` over the data points, ``p`` and ``q`` mixtures of
    isotropic Gaussians centred on the (standardised, subsampled) points.

    Arguments:
        x_true: data ``[T, N]`` (finite).
        x_gen: generated series ``[T', N]`` or ``[K, T', N]`` (non-finite points are dropped).
        method: ``"bins"`` (histograms, any N but meant for N <= ~5) or ``"gmm"``.
        n_bins: bins per dimension; margin: range extension beyond the data, in data sd;
        smoothing: Laplace pseudo-count per bin.
        sigma: width of the Gaussians of ``"gmm"`` (in data sd); n_points: subsampled centres.

    Returns:
        ``xarray.Dataset`` with ``D_stsp (network)`` (nats; one per generated series,
        ``network = 0..K-1``); attrs ``analysis``, ``method``, the settings and ``reference``.
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
        d = _binned_kl(xt, xg, n_bins, margin, smoothing)
        settings = dict(n_bins=n_bins, margin=float(margin), smoothing=float(smoothing))
    else:
        d = _gmm_kl(xt, xg, sigma, n_points, seed)
        settings = dict(sigma=float(sigma), n_points=n_points, seed=seed)
    ds = _per_series("D_stsp", d, analysis=owner, method=method, **settings,
                     reference=f"{_KOPPE_2019}; {_MIKHAEIL_2022}")
    ds["D_stsp"].attrs.update(units="nats", long_name="KL(p_data || p_gen)")
    return ds


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


def power_spectrum_distance(x_true: Any, x_gen: Any, *, sigma: float = 20.0) -> xr.Dataset:
    """D_H: Hellinger distance of smoothed power spectra, averaged over dimensions.

    ``D_H = mean_n sqrt(1 - sum_f sqrt(P_n(f) Q_n(f)))`` with ``P_n``, ``Q_n`` the normalised,
    Gaussian-smoothed power spectra ``|rfft|^2`` of dimension n of the standardised data and
    generated series (Mikhaeil et al. 2022, NeurIPS).

    Arguments:
        x_true: data ``[T, N]``.
        x_gen: generated ``[T, N]`` or ``[K, T, N]`` (same T as the data; a series with
            non-finite values gets distance 1).
        sigma: Gaussian smoothing of the spectra, in frequency bins.

    Returns:
        ``xarray.Dataset`` with ``D_H (network)`` in [0, 1] (one per generated series,
        ``network = 0..K-1``); attrs ``analysis``, ``method``, ``sigma`` and ``reference``.
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
    ds = _per_series("D_H", np.asarray(out), analysis=owner,
                     method="Hellinger distance of smoothed power spectra", sigma=float(sigma),
                     reference=_MIKHAEIL_2022)
    ds["D_H"].attrs.update(long_name="Hellinger distance of power spectra (mean over dims)")
    return ds


def _latent_from_obs(model, x: torch.Tensor) -> torch.Tensor:
    return latent_from_observation(model, x, initial=True)


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
    Z, X = run(model, h0=z, n_steps=n_steps, backend="reference")
    return X, Z


@torch.no_grad()
def prediction_error(
    model, data: Any, n: int = 20, *, n_starts: int = 1000, seed: int = 0
) -> xr.Dataset:
    """PE(n): mean squared error of n-step free predictions from ``n_starts`` data points.

    ``PE(n) = mean_{s, i} (x^gen_{s+n,i} - x_{s+n,i})^2``, the generated series started from
    the latent state inferred from data point ``x_s`` (Koppe et al. 2019, PLOS Comput. Biol.).

    Arguments:
        model: K-network model with ``n_outputs`` observations.
        data: observations ``[T, N]`` (finite, ``T > n``).
        n: largest prediction horizon; n_starts: start points drawn (without replacement)
            from the data; seed: of that draw.

    Returns:
        ``xarray.Dataset`` with ``PE (network, n)`` (``PE[k, j]`` = PE(j + 1) of network k;
        coordinates ``n = 1..n`` and the networks' metadata); attrs ``analysis``, ``n_starts``,
        ``seed`` and ``reference``.
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
    pe = ((obs - target) ** 2).mean(dim=(1, 3)).double().numpy()
    ds = xr.Dataset({"PE": (("network", "n"), pe)},
                    coords={**network_coords(model), "n": np.arange(1, n + 1)})
    ds["PE"].attrs.update(long_name="n-step free-run prediction MSE")
    ds.attrs.update(analysis=owner, method="free-run from data points", n_starts=len(starts),
                    seed=seed, reference=_KOPPE_2019)
    return ds


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
    n_compared: int | None = None,
    reference: Any = None,
    return_free_run: bool = False,
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
        n_compared: compare D_stsp and D_H on the first ``n_compared`` observed dimensions
            only (e.g. the original channels of a delay embedding; None: all). PE and the
            free run use all of them.
        reference: samples ``[S, n_compared]`` whose state-space occupation D_stsp compares
            the free run with (e.g. all observed held-out samples; None: ``data``).
        return_free_run: also return the whole free run, ``free_run (network, step,
            channel)`` over the ``1.25 T`` generated steps (transient included; attr
            ``transient``) in the compared dimensions.
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
    n_cmp = x.shape[1] if n_compared is None else check_int(owner, "n_compared", n_compared,
                                                              1, x.shape[1])
    ref = x[:, :n_cmp]
    if reference is not None:
        ref = _series(reference, owner, "reference")[0]
        if ref.shape[1] != n_cmp:
            raise ValueError(
                f"The 'reference' parameter of {owner} must have {n_cmp} columns (the compared "
                f"dimensions). Got shape {ref.shape} instead."
            )
    n_gen = int(round(1.25 * T))
    obs, Z = generate(model, x[0], n_gen)
    run_all = obs[:, 0].double().numpy()  # [K, 1.25 T, N]
    gen = run_all[:, n_gen - T:]  # [K, T, N]
    diverged = ~np.isfinite(gen).all(axis=(1, 2))
    d_stsp = state_space_divergence(ref, gen[..., :n_cmp], n_bins=n_bins,
                                    method=dstsp_method)["D_stsp"].values
    d_h = power_spectrum_distance(x[:, :n_cmp], gen[..., :n_cmp], sigma=sigma)["D_H"].values
    pe = prediction_error(model, x, pe_steps)["PE"].values
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
    if return_free_run:
        ds["free_run"] = (("network", "step", "channel"), run_all[..., :n_cmp])
    ds.attrs.update(
        analysis="evaluate_reconstruction",
        n_compared=n_cmp,
        method=f"free run of 1.25 T steps, 25% transient dropped; D_stsp by {dstsp_method}",
        dstsp_method=dstsp_method,
        n_bins=n_bins,
        sigma=sigma,
        n_generated=n_gen,
        transient=n_gen - T,
        true_lyapunov=np.nan if true_lyapunov is None else float(true_lyapunov),
        reference=f"{_KOPPE_2019}; {_MIKHAEIL_2022}",
    )
    return ds


class BestCheckpoint:
    """Keep each network's best parameters during :func:`dynrnn.training.train_gtf` (the
    DurstewitzLab's AL-RNN tutorial accompanying Brenner, Hemmer, Monfared & Durstewitz (2024),
    Almost-linear RNNs yield highly interpretable symbolic codes in dynamical systems
    reconstruction, NeurIPS 37, returns its best model by D_stsp in the same way).

    A callback of the training layer's generic form ``callback(iteration, model, history)``;
    it lives with the metrics it computes (training never imports the analyses).

    Every ``every`` iterations all K networks are evaluated with the DSR protocol
    (:func:`evaluate_reconstruction`: free run of 1.25 T steps
    from the first observation, 25% transient dropped; no Lyapunov exponent) on ``data`` (its
    first ``max_samples`` steps), and every network whose ``metric`` improved has its state
    copied. :meth:`restore` loads the best state of each network into the model; networks
    never evaluated, or never finite, keep their current state. DSR free runs can fall onto a
    fixed point late in training while the loss still falls, so the last iterate is not
    always the best reconstruction. While it evaluates, the progress bar of
    :func:`~dynrnn.training.train_gtf` shows ``evaluating``.

    Use: ``ckpt = BestCheckpoint(clean_data, every=2000); train_gtf(model, data, cfg,
    callback=ckpt); ckpt.restore(model)``. ``ckpt.history`` lists ``(iteration, D_stsp [K],
    D_H [K])``; ``ckpt.best_score [K]`` and ``ckpt.best_iteration [K]`` (-1: none) the best;
    :meth:`to_xarray` gives all of them as a Dataset over ``network``.

    Arguments:
        data: observations ``[T, N]`` to evaluate against (e.g. the clean series).
        every: iterations between evaluations (>= 1).
        metric: ``"D_stsp"`` or ``"D_H"`` (lower is better).
        max_samples: evaluate on the first ``max_samples`` steps only (None: all; the
            tutorial used 10,000).
        stop_below: optional ``(D_stsp, D_H)``: stop training once every network has reached
            both (returns True to :func:`~dynrnn.training.train_gtf`).
        n_compared: score D_stsp / D_H on the first ``n_compared`` observed dimensions only
            (see :func:`evaluate_reconstruction`; None: all).
    """

    #: the stage shown on the training's progress bar while evaluating
    _stage = "evaluating"

    def __init__(self, data: Any, every: int = 1000, metric: str = "D_stsp",
                 max_samples: int | None = None,
                 stop_below: tuple[float, float] | None = None,
                 n_compared: int | None = None):
        owner = type(self).__name__
        self.every = check_int(owner, "every", every, 1)
        self.metric = check_choice(owner, "metric", metric, ("D_stsp", "D_H"))
        x = check_dsr_data(data, None, owner)[0]
        if max_samples is not None:
            x = x[: check_int(owner, "max_samples", max_samples, 2)]
        self.data = x
        self.n_compared = None if n_compared is None else check_int(
            owner, "n_compared", n_compared, 1, x.shape[-1])
        if stop_below is not None:
            if len(stop_below) != 2:
                raise ValueError(f"The 'stop_below' parameter of {owner} must be a pair "
                                 f"(D_stsp, D_H). Got {stop_below!r}.")
            stop_below = (float(stop_below[0]), float(stop_below[1]))
        self.stop_below = stop_below
        self.history: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.best_score: np.ndarray | None = None
        self.best_iteration: np.ndarray | None = None
        self._state: dict[str, torch.Tensor] | None = None
        self._coords: dict[str, Any] | None = None

    def __call__(self, iteration: int, model, history=None) -> bool:
        if (iteration + 1) % self.every:
            return False
        with stage(self._stage):  # on the bar of train_gtf, if one is running
            ds = evaluate_reconstruction(model, self.data, lyapunov=False, pe_steps=1,
                                         n_compared=self.n_compared)
        d_stsp, d_h = ds.D_stsp.values, ds.D_H.values
        self._record(iteration, model, d_stsp, d_h)
        if self.stop_below is None:
            return False
        s_max, h_max = self.stop_below
        return bool(np.all((d_stsp < s_max) & (d_h < h_max)))

    def _record(self, iteration: int, model, d_stsp: np.ndarray, d_h: np.ndarray) -> None:
        """Append one evaluation (``D_stsp [K]``, ``D_H [K]``) to the history and copy the
        state of every network whose ``metric`` improved (non-finite scores never do)."""
        self.history.append((iteration + 1, d_stsp.copy(), d_h.copy()))
        score = d_stsp if self.metric == "D_stsp" else d_h
        score = np.where(np.isfinite(score), score, np.inf)
        K = model.n_networks
        if self._state is None:
            self.best_score = np.full(K, np.inf)
            self.best_iteration = np.full(K, -1)
            self._state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self._coords = network_coords(model)
        better = score < self.best_score
        if better.any():
            idx = torch.as_tensor(np.nonzero(better)[0])
            for k, v in model.state_dict().items():
                self._state[k][idx] = v.detach()[idx]
            self.best_score[better] = score[better]
            self.best_iteration[better] = iteration + 1

    def to_xarray(self) -> xr.Dataset:
        """The evaluations as an ``xarray.Dataset``: ``D_stsp``, ``D_H``
        ``(network, evaluation)`` with coordinate ``iteration (evaluation)``, ``best_score`` and
        ``best_iteration`` ``(network)`` (-1: none); ``network`` coordinates from the model's
        ``network_metadata()``. Empty (no ``network`` dim) before the first evaluation."""
        attrs = dict(analysis="BestCheckpoint", metric=self.metric, every=self.every,
                     n_samples=int(self.data.shape[0]),
                     method="evaluate_reconstruction without Lyapunov exponent")
        if not self.history:
            return xr.Dataset(attrs=attrs)
        its = np.asarray([h[0] for h in self.history])
        d_stsp = np.stack([h[1] for h in self.history], axis=1)  # [K, E]
        d_h = np.stack([h[2] for h in self.history], axis=1)
        data = {
            "D_stsp": (("network", "evaluation"), d_stsp),
            "D_H": (("network", "evaluation"), d_h),
            "best_score": ("network", self.best_score.copy()),
            "best_iteration": ("network", self.best_iteration.copy()),
        }
        coords = {**self._coords, "iteration": ("evaluation", its)}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    @torch.no_grad()
    def restore(self, model) -> np.ndarray:
        """Load each network's best state into ``model``; returns the networks changed
        ``[K]`` bool."""
        if self._state is None:
            return np.zeros(model.n_networks, dtype=bool)
        took = self.best_iteration >= 0
        idx = torch.as_tensor(np.nonzero(took)[0])
        current = model.state_dict()
        for k, v in current.items():
            v[idx] = self._state[k][idx].to(v.dtype)
        return took
