"""Reconstruct a dynamical system from a recording: :func:`reconstruct`.

One recipe, in Python and in the command line (``dynrnn reconstruct --data FILE`` calls this
function): load -> hold out time (and trials) -> standardise with the training part's
statistics -> settings from the data -> train K networks by teacher forcing, stopping on a
validation criterion or a time budget and keeping each network's best state -> evaluate on
the held-out part -> one ``xarray.Dataset`` (saved to an output directory and / or a zoo when
asked). :func:`dynrnn.plot.plot_reconstruction` draws the result (data against free run: time
series, power spectra, state space).

Settings from the data (each recorded in the result's attrs):

* ``tau``: the first local minimum of the time-delayed mutual information (or of the
  autocorrelation) of the training data, :func:`dynrnn.training.estimate_forcing_interval`
  (Mikhaeil, Monfared & Durstewitz 2022, On the difficulty of learning chaotic dynamics with
  RNNs, NeurIPS 35) -- the sparse-teacher-forcing interval (``forcing="stf"``) and the delay of
  a delay embedding (Fraser & Swinney 1986, Independent coordinates for strange attractors from
  mutual information, Physical Review A 33, 1134).
* delay embedding (``delay_embedding="auto"``): observations of fewer than 3 channels are
  embedded as ``[x_t, x_{t-tau}, ...]`` with ``ceil(3 / N)`` delays, so that the model observes
  at least 3 coordinates (Takens 1981, Detecting strange attractors in turbulence, Lecture
  Notes in Mathematics 898, shows that delay coordinates of a generic observation reconstruct
  the attractor; 3 is the smallest state space a continuous-time chaotic flow needs). The
  metrics are computed on the original channels.
* model sizes from :data:`dynrnn.training.gtf.RECIPES`: shPLRNN / PLRNN latent size M = the
  observed (embedded) dimension, L = 100 hidden units; AL-RNN M = 40 with P = 2 piecewise-
  linear units.

Evaluation on held-out time (:func:`evaluate_heldout`): free run of ``1.25 T`` steps from the
first sample of the longest fully observed held-out stretch (T samples), the first 25% dropped
(Mikhaeil et al. 2022's protocol); D_stsp (Koppe, Toutounji, Kirsch, Lis & Durstewitz 2019,
Identifying nonlinear dynamical systems via generative recurrent neural networks with
applications to fMRI, PLOS Computational Biology 15, e1007263) between the occupation of the
free run and of all fully observed held-out samples; D_H (Hellinger distance of the smoothed
power spectra; Mikhaeil et al. 2022) against the stretch; PE(n), n = 1..20, from start points
of the stretch; the maximal Lyapunov exponent of every network (QR method) and its mean with a
95% Student-t confidence interval over the K seeds.

Spike counts (``observation="poisson"``): the data must be non-negative integers (NaN =
missing; ValueError naming the parameter and the file otherwise) and are not standardised; the
model's observation is the log-linear Poisson GLM ``x ~ Poisson(dt exp(W_out z + b_out))``
(:mod:`dynrnn.models.plrnn`), started from the principal axes of the log rate estimate
(:meth:`~dynrnn.models.PLRNN.init_observation_`) and trained by the Poisson likelihood with the
smoothed counts as the forcing signal (:func:`dynrnn.training.train_gtf`). Free runs generate
expected counts per bin; validation and evaluation compare them with the rate estimate of the
held-out counts (the same Gaussian smoothing, ``rate_smoothing`` samples), so every metric is
in counts per bin, and D_stsp -- for validation and for the final evaluation -- is the
Gaussian-mixture estimate (a binned D_stsp over tens of neurons is degenerate: with ``30^N``
bins the Laplace smoothing swamps every count and the divergence is ~0 whatever the free run).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._progress import stage
from .._validation import (
    ParameterTypeError,
    check_bool,
    check_choice,
    check_float,
    check_int,
)
from ..analyses.dsr_metrics import (
    BestCheckpoint,
    evaluate_reconstruction,
)
from ..tasks.recordings import Recording, load_recording
from ..training.gtf import RECIPES, GTFConfig, GTFHistory, estimate_forcing_interval, train_gtf

__all__ = ["reconstruct", "Reconstruction", "ValidationCheckpoint", "evaluate_heldout",
           "MODELS", "MIN_EMBEDDED_DIM"]

#: model families :func:`reconstruct` builds (keys of ``RECIPES``)
MODELS = tuple(RECIPES)
#: ``delay_embedding="auto"`` embeds observations of fewer channels than this
MIN_EMBEDDED_DIM = 3


class ValidationCheckpoint(BestCheckpoint):
    """:class:`~dynrnn.analyses.BestCheckpoint` on held-out data, in the observed channels,
    with patience.

    Every ``every`` iterations each network runs freely for ``1.25 T`` steps from the first
    sample of ``data [T, N_model]`` (the held-out stretch), the first 25% is dropped, and
    ``metric`` -- D_stsp or D_H -- is computed on the first ``n_observed`` channels (the
    original channels of a delay embedding: a binned D_stsp over all embedded coordinates
    would need far more samples than a held-out stretch has). Each network's best state is
    kept (:meth:`restore`, :meth:`to_xarray` as in BestCheckpoint); training stops once no
    network has improved for ``patience`` evaluations (None: never). Stopping does not change
    the learning-rate schedule of the run. ``dstsp_method``: ``"bins"`` (default) or ``"gmm"``
    (Gaussian mixtures, for many channels such as the rates of tens of neurons; see
    :func:`dynrnn.analyses.state_space_divergence`).
    """

    _stage = "validating"

    def __init__(self, data: Any, every: int, metric: str = "D_stsp",
                 patience: int | None = 5, n_observed: int | None = None,
                 dstsp_method: str = "bins"):
        super().__init__(data, every=every, metric=metric, n_compared=n_observed)
        owner = "ValidationCheckpoint"
        self.patience = None if patience is None else check_int(owner, "patience", patience, 1)
        self.n_observed = self.data.shape[-1] if n_observed is None else self.n_compared
        self.dstsp_method = check_choice(owner, "dstsp_method", dstsp_method, ("bins", "gmm"))
        self.stopped_at: int | None = None

    def __call__(self, iteration: int, model, history=None) -> bool:
        if (iteration + 1) % self.every:
            return False
        if self.dstsp_method == "bins":
            super().__call__(iteration, model, history)  # evaluates and keeps the best states
        else:
            with stage(self._stage):
                ds = evaluate_reconstruction(model, self.data, lyapunov=False, pe_steps=1,
                                             n_compared=self.n_compared,
                                             dstsp_method=self.dstsp_method)
            self._record(iteration, model, ds.D_stsp.values, ds.D_H.values)
        if self.patience is None:
            return False
        last = int(self.best_iteration.max())  # the latest improvement of any network
        waited = len(self.history) if last < 0 else (iteration + 1 - last) // self.every
        if waited >= self.patience:
            self.stopped_at = iteration + 1
            return True
        return False


@dataclass
class Reconstruction:
    """What :func:`reconstruct` returns.

    Attributes:
        model: the K trained networks (each network's best state where a checkpoint kept one).
        result: ``xarray.Dataset`` -- per network ``D_stsp``, ``D_H``, ``PE (network, n)``,
            ``max_lyapunov``, ``diverged``, ``best_iteration``; ``heldout (time, channel)``,
            ``free_run (network, time, channel)`` and ``forecast (network, lead, channel)`` in
            the data's units (the evaluated stretch, each network's free run after the
            transient and its start from the stretch's first sample); ``loss (network,
            iteration)``;
            attrs: every setting (``settings`` as JSON too), the Lyapunov mean and confidence
            interval, the standardisation (``mean``, ``std``; absent for spike counts).
        history: the :class:`~dynrnn.training.GTFHistory`.
        train, heldout: the standardised (and embedded) Recordings trained and evaluated on
            (spike counts: the counts themselves; the evaluation used their rate estimate).
        settings: the choices made (also in ``result.attrs["settings"]``).
    """

    model: Any
    result: xr.Dataset
    history: GTFHistory
    train: Recording
    heldout: Recording
    settings: dict = field(default_factory=dict)
    checkpoint: Any = None

    @property
    def best_network(self) -> int:
        return int(self.result.attrs["best_network"])

    def to_data_units(self, x: Any) -> np.ndarray:
        """Model outputs (standardised) -> the data's units (unchanged for spike counts,
        which are never standardised)."""
        return self.train.to_data_units(x)

    def save(self, out: str | Path) -> list[Path]:
        """Write ``out/model.safetensors`` + ``model.json`` (metadata: the settings and the
        standardisation) and ``out/reconstruction.nc`` (the result); returns the paths."""
        from ..zoo import save_dataset, save_model

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_model(self.model, out / "model", metadata={"reconstruction": self.settings})
        path = save_dataset(self.result, out / "reconstruction.nc")
        return [out / "model.safetensors", out / "model.json", Path(path)]

    def __repr__(self) -> str:
        r = self.result
        return (f"Reconstruction({self.model.n_networks} x {self.settings['model']} "
                f"(M={self.model.n_units}), D_stsp {np.round(r.D_stsp.values, 3).tolist()}, "
                f"D_H {np.round(r.D_H.values, 3).tolist()}, lambda_max "
                f"{r.attrs['max_lyapunov_mean']:.3g} [{r.attrs['max_lyapunov_ci_low']:.3g}, "
                f"{r.attrs['max_lyapunov_ci_high']:.3g}])")


def _longest_finite(rec: Recording) -> np.ndarray:
    """The longest contiguous stretch ``[T, N]`` of samples observed in every channel."""
    best = np.zeros((0, rec.n_channels))
    for a in rec.trials:
        ok = np.isfinite(a).all(1)
        edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        for s, e in zip(starts, ends):
            if e - s > len(best):
                best = a[s:e]
    return best


def _rate_recording(rec: Recording, model) -> Recording:
    """The rate estimate (the model's ``rate_estimate``: Gaussian-smoothed counts per bin) of
    every trial of a recording of spike counts, as a Recording of rates (not counts)."""
    trials = tuple(model.rate_estimate(np.asarray(a, dtype=np.float64), dim=0).numpy()
                   for a in rec.trials)
    return rec._replace(trials=trials, counts=False)


def _build_model(kind: str, M: int, N: int, *, n_hidden, n_pwl, initial_state, dt, K, seed,
                 observation="identity"):
    from ..models import (
        ALRNN,
        PLRNN,
        ALRNNConfig,
        PLRNNConfig,
        ShallowPLRNN,
        ShallowPLRNNConfig,
    )

    learn = initial_state == "learned"
    obs = dict(observation=observation)
    if kind == "alrnn":
        return ALRNN(ALRNNConfig(M, N, n_pwl=n_pwl, dt=dt, learn_initial_state=learn, **obs),
                     n_networks=K, seed=seed)
    if kind == "plrnn":
        return PLRNN(PLRNNConfig(M, N, dt=dt, learn_initial_state=learn, **obs), n_networks=K,
                     seed=seed)
    cfg = ShallowPLRNNConfig(M, N, n_hidden=n_hidden, dt=dt, learn_initial_state=learn,
                             clipped=kind == "clipped-shplrnn", **obs)
    return ShallowPLRNN(cfg, n_networks=K, seed=seed)


def lyapunov_confidence(lam: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and Student-t confidence interval ``mean +- t_{(1+level)/2, n-1} s / sqrt(n)`` of
    the finite exponents (NaN interval for fewer than two)."""
    from scipy.stats import t as student_t

    x = np.asarray(lam, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


@torch.no_grad()
def evaluate_heldout(model, heldout: Recording, n_observed: int | None = None, *,
                     pe_steps: int = 20, lyapunov_steps: int = 20000, lyapunov: bool = True,
                     true_lyapunov: float | None = None, dstsp_method: str = "bins",
                     progress: bool = False) -> xr.Dataset:
    """DSR metrics of K networks on held-out data (the protocol of the module docstring).

    Arguments:
        model: K networks with ``n_outputs = heldout.n_channels``.
        heldout: standardised (and embedded) held-out :class:`Recording`.
        n_observed: the original channels (the first ``n_observed`` of an embedding; None:
            all) on which D_stsp and D_H are computed.
        pe_steps: PE(n) for n = 1..pe_steps; lyapunov_steps: steps of the QR estimate;
        lyapunov: False skips it (``max_lyapunov`` NaN).
        true_lyapunov: the system's exponent (per time unit), stored for comparison.
        dstsp_method: ``"bins"`` (30 bins per dimension; meant for a few channels) or
            ``"gmm"`` (Gaussian mixtures; for many channels, e.g. tens of neurons), see
            :func:`dynrnn.analyses.state_space_divergence`.

    Returns:
        ``xarray.Dataset`` over ``network``: ``D_stsp``, ``D_H``, ``PE (network, n)``,
        ``max_lyapunov`` (per time unit), ``diverged``; ``heldout (time, channel)``,
        ``free_run (network, time, channel)`` (after the transient) and ``forecast (network,
        lead, channel)`` (its first ``min(T, 2000)`` steps, lead ``l`` aligned with
        ``heldout[l]``) in standardised units, original channels; attrs
        ``max_lyapunov_mean``, ``max_lyapunov_ci_low/high`` (95% over the networks),
        ``n_lyapunov``, ``n_heldout_samples``, ``n_evaluated``.
    """
    owner = "evaluate_heldout"
    if heldout.n_channels != model.n_outputs:
        raise ValueError(f"The 'heldout' parameter of {owner} must have {model.n_outputs} "
                         f"channels (the model's n_outputs). Got {heldout.n_channels}.")
    n_obs = heldout.n_channels if n_observed is None else check_int(
        owner, "n_observed", n_observed, 1, heldout.n_channels)
    seg = _longest_finite(heldout)
    if len(seg) <= max(pe_steps, 1) + 1:
        where = "" if heldout.source.startswith("<") else f" (file {heldout.source})"
        raise ValueError(
            f"The 'heldout' parameter of {owner}{where} has no fully observed stretch longer "
            f"than pe_steps + 1 = {pe_steps + 1} samples "
            f"(longest: {len(seg)}); hold out more time."
        )
    pool = heldout.concatenated()[:, :n_obs]
    pool = pool[np.isfinite(pool).all(1)]
    # one free run per network: D_stsp against every observed held-out sample, D_H against
    # the stretch, both in the original channels
    ds = evaluate_reconstruction(model, seg, pe_steps=pe_steps, lyapunov=lyapunov,
                                 lyapunov_steps=lyapunov_steps, true_lyapunov=true_lyapunov,
                                 n_compared=n_obs, reference=pool, return_free_run=True,
                                 dstsp_method=check_choice(owner, "dstsp_method", dstsp_method,
                                                           ("bins", "gmm")),
                                 progress=progress)
    T = len(seg)
    run_all = ds["free_run"].values  # [K, 1.25 T, n_obs]
    mean, lo, hi, n_lam = lyapunov_confidence(ds.max_lyapunov.values)
    ds = ds.drop_vars("free_run")
    ds["D_stsp"].attrs.update(units="nats", long_name="KL(p_heldout || p_free_run)")
    ds["heldout"] = (("time", "channel"), seg[:, :n_obs])
    ds["free_run"] = (("network", "time", "channel"), run_all[:, run_all.shape[1] - T:])
    # the start of the same free run, aligned with the stretch (a forecast from its first sample)
    n_fc = min(T, 2000)
    ds["forecast"] = (("network", "lead", "channel"), run_all[:, :n_fc])
    ds = ds.assign_coords(lead=np.arange(1, n_fc + 1) * heldout.dt)
    ds = ds.assign_coords(time=np.arange(T) * heldout.dt,
                          channel=list(heldout.channels[:n_obs]))
    ds.attrs.update(
        analysis="evaluate_heldout",
        method="held-out data: free run of 1.25 T steps from the longest fully observed stretch "
               "(T samples), 25% transient dropped; D_stsp against all fully observed held-out "
               "samples, D_H against the stretch, on the original channels; PE and lambda_max "
               "in the model's observation space",
        max_lyapunov_mean=mean, max_lyapunov_ci_low=lo, max_lyapunov_ci_high=hi,
        ci_level=0.95, n_lyapunov=n_lam, n_heldout_samples=int(len(pool)), n_evaluated=T,
    )
    return ds


def _options(value, name, owner, kind=int, low=1):
    if value is None:
        return None
    if kind is int:
        return check_int(owner, name, value, low)
    return check_float(owner, name, value, 0.0, math.inf, False, False)


def reconstruct(
    data: Any,
    *,
    model: str = "shplrnn",
    observation: str = "identity",
    dt: float | None = None,
    channels: Any = None,
    variable: str | None = None,
    n_networks: int = 4,
    n_latent: int | None = None,
    n_hidden: int | None = None,
    n_pwl: int | None = None,
    initial_state: str | None = None,
    config: GTFConfig | dict | None = None,
    tau_method: str = "mi",
    delay_embedding: bool | str = "auto",
    n_delays: int | None = None,
    delay: int | None = None,
    heldout: float = 0.2,
    heldout_trials: Any = (),
    validate_every: int | None = None,
    patience: int | None = 5,
    validation_metric: str = "D_stsp",
    keep_best: bool = True,
    pe_steps: int = 20,
    lyapunov_steps: int = 20000,
    lyapunov: bool = True,
    true_lyapunov: float | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    zoo: Any = None,
    progress: bool = False,
) -> Reconstruction:
    """Reconstruct the dynamical system behind a recording with K networks.

    Arguments:
        data: anything :func:`dynrnn.tasks.load_recording` reads -- a file (``.npy``,
            ``.npz``, ``.csv``, netCDF, zarr), an array / tensor ``[T, N]`` or ``[R, T, N]``,
            a list of trials ``[T_r, N]``, an xarray object or a Recording. NaN = missing.
        model: ``"shplrnn"`` (default), ``"clipped-shplrnn"``, ``"plrnn"`` or ``"alrnn"``.
        observation: ``"identity"`` (the observed channels are the first latent units; GTF
            forces them) or ``"affine"`` (a linear-Gaussian observation ``x = W_out z +
            b_out`` of a latent state of any size M, trained by the MSE; GTF forces the whole
            state towards the least-squares inversion ``W_out^+ (x - b_out)``, Hess et al.
            2023; a step with a missing channel is unforced) or ``"poisson"`` (spike counts
            ``x ~ Poisson(dt exp(W_out z + b_out))`` of a latent state of any size M, trained
            by the Poisson likelihood; GTF forces towards ``W_out^+ (log(r + eps) - log(dt) -
            b_out)`` of the smoothed counts ``r``; the data must be non-negative integers and
            are not standardised; free runs and metrics are in expected counts per bin,
            compared with the held-out counts' rate estimate; see the module docstring).
        dt, channels, variable: passed to :func:`~dynrnn.tasks.load_recording`.
        n_networks: K, seeds trained at once (K >= 2 for a Lyapunov confidence interval).
        n_latent, n_hidden, n_pwl, initial_state: model sizes (None: the recipe's,
            :data:`~dynrnn.training.gtf.RECIPES`; ``n_latent`` None = the observed dimension
            for the (sh)PLRNN, 40 for the AL-RNN).
        config: a :class:`~dynrnn.training.GTFConfig`, or a dict of fields overriding the
            recipe's (``GTFConfig.recipe(model, **config)``), e.g. ``{"n_iterations": 3000,
            "time_budget": 420}``. With ``forcing="stf"`` and ``tau`` None the interval comes
            from the data.
        tau_method: ``"mi"`` or ``"ac"`` (first minimum of mutual information / autocorrelation).
        delay_embedding: ``"auto"`` (embed fewer than 3 channels), True or False.
        n_delays, delay: the embedding's size and delay (None: ``ceil(3 / N)`` and tau).
        heldout: fraction of every trial held out at its end; heldout_trials: indices of
            trials held out whole.
        validate_every: iterations between evaluations on the held-out data (None:
            ``n_iterations // 20``, at least 1; 0: no validation and no checkpoint).
        patience: stop when no network improved for this many evaluations (None: never).
        validation_metric: ``"D_stsp"`` or ``"D_H"`` (for ``"poisson"`` D_stsp is estimated
            with Gaussian mixtures).
        keep_best: restore each network's best validated state (default True).
        pe_steps, lyapunov_steps, true_lyapunov: of the final evaluation; lyapunov: False
            skips the Lyapunov exponents (NaN in the result).
        seed: seeds the model's initial weights and the training's window draws.
        out: directory to write the model and ``reconstruction.nc`` to (None: nothing).
        zoo: a :class:`~dynrnn.zoo.Zoo` or path: the networks are added (task
            ``{"kind": "reconstruction", ...}``, outcome the per-network metrics) and the result
            saved as ``reconstruction/<entry>``.
        progress: tqdm bars on stderr.

    Returns:
        :class:`Reconstruction` (``.result`` is the xarray Dataset).
    """
    owner = "reconstruct"
    check_choice(owner, "model", model, MODELS)
    check_choice(owner, "observation", observation, ("identity", "affine", "poisson"))
    poisson = observation == "poisson"
    K = check_int(owner, "n_networks", n_networks, 1)
    check_choice(owner, "tau_method", tau_method, ("mi", "ac"))
    if delay_embedding not in ("auto", True, False):
        raise ValueError(f"The 'delay_embedding' parameter of {owner} must be 'auto', True or "
                         f"False. Got {delay_embedding!r}.")
    check_choice(owner, "validation_metric", validation_metric, ("D_stsp", "D_H"))
    check_bool(owner, "keep_best", keep_best)
    check_bool(owner, "progress", progress)
    seed = check_int(owner, "seed", seed, 0)
    pe_steps = check_int(owner, "pe_steps", pe_steps, 1)
    lyapunov_steps = check_int(owner, "lyapunov_steps", lyapunov_steps, 1)
    if initial_state is not None:
        check_choice(owner, "initial_state", initial_state, ("learned", "zero"))
    recipe = RECIPES[model]
    if config is None:
        cfg = GTFConfig.recipe(model)
    elif isinstance(config, dict):
        cfg = GTFConfig.recipe(model, **config)
    elif isinstance(config, GTFConfig):
        cfg = config
    else:
        raise ParameterTypeError(f"The 'config' parameter of {owner} must be a GTFConfig, a "
                                 f"dict of its fields or None. Got {config!r}.")
    if cfg.seed != seed and (config is None or isinstance(config, dict)):
        cfg = dataclasses.replace(cfg, seed=seed)

    if poisson and cfg.noise_std > 0:
        raise ValueError(f"The 'config' parameter of {owner} must have noise_std 0 for "
                         f"observation='poisson' (counts carry their own noise). Got "
                         f"{cfg.noise_std}.")
    try:
        rec = load_recording(data, dt=dt, channels=channels, variable=variable, counts=poisson)
    except ValueError as exc:
        msg = str(exc)
        if poisson and "spike counts" in msg:  # name reconstruct's own parameter
            for name in ("source", "data"):
                msg = msg.replace(f"The '{name}' parameter of load_recording",
                                  f"The 'data' parameter of {owner}", 1)
            raise ValueError(msg) from None
        raise
    where = f" (file {rec.source})" if not rec.source.startswith("<") else ""
    train_raw, test_raw = rec.split(heldout, heldout_trials)
    if poisson:  # counts stay counts
        train, test = train_raw, test_raw
    else:
        train = train_raw.standardise()
        test = test_raw.standardise(train.mean, train.std)
    N = rec.n_channels

    longest = max(train.lengths)
    max_lag = max(2, min(500, longest // 4))
    if longest < 4:
        raise ValueError(f"The 'data' parameter of {owner}{where} is too short: the longest "
                         f"training trial has {longest} samples.")
    tau_est = estimate_forcing_interval(list(train.trials), method=tau_method, max_lag=max_lag)
    embed = delay_embedding is True or (delay_embedding == "auto" and N < MIN_EMBEDDED_DIM)
    m = (check_int(owner, "n_delays", n_delays, 1) if n_delays is not None
         else max(1, math.ceil(MIN_EMBEDDED_DIM / N))) if embed else 1
    d = check_int(owner, "delay", delay, 1) if delay is not None else tau_est
    if embed and m > 1:
        train, test = train.delay_embed(m, d), test.delay_embed(m, d)
    n_model = train.n_channels

    sizes = dict(recipe["model"])
    M = n_latent if n_latent is not None else (sizes.get("n_latent") or n_model)
    M = check_int(owner, "n_latent", M, n_model if observation == "identity" else 1)
    hidden = check_int(owner, "n_hidden", n_hidden if n_hidden is not None else
                       sizes.get("n_hidden", 100), 1)
    pwl = check_int(owner, "n_pwl", n_pwl if n_pwl is not None else sizes.get("n_pwl", 2), 0, M)
    init = initial_state or sizes.get("initial_state", "learned")
    if cfg.forcing == "stf" and cfg.tau is None:
        cfg = dataclasses.replace(cfg, tau=tau_est)
    if max(train.lengths) < cfg.seq_len + 1:
        raise ValueError(
            f"The 'data' parameter of {owner}{where} is too short for one training window: the "
            f"longest training trial has {max(train.lengths)} samples, a window needs "
            f"seq_len + 1 = {cfg.seq_len + 1} (lower seq_len in 'config' or hold out less)."
        )
    net = _build_model(model, M, n_model, n_hidden=hidden, n_pwl=pwl, initial_state=init,
                       dt=rec.dt, K=K, seed=seed, observation=observation)
    if poisson:  # observation model started from the principal axes of the log rates
        net.init_observation_(list(train.trials))
        eval_test = _rate_recording(test, net)
    else:
        eval_test = test
    every = cfg.n_iterations // 20 if validate_every is None else check_int(
        owner, "validate_every", validate_every, 0, cfg.n_iterations)
    every = max(every, 1) if validate_every is None else every
    ckpt = None
    if every:
        val = _longest_finite(eval_test)
        if len(val) < 2:
            raise ValueError(f"The 'heldout' parameter of {owner}{where} leaves no fully "
                             f"observed held-out stretch to validate on.")
        ckpt = ValidationCheckpoint(val, every=every, metric=validation_metric,
                                    patience=patience, n_observed=N,
                                    dstsp_method="gmm" if poisson else "bins")
    t0 = time.perf_counter()
    hist = train_gtf(net, train, cfg, callback=ckpt, seed=cfg.seed, progress=progress)
    train_s = time.perf_counter() - t0
    if ckpt is not None and keep_best:
        ckpt.restore(net)
    res = evaluate_heldout(net, eval_test, N, pe_steps=pe_steps, lyapunov_steps=lyapunov_steps,
                           lyapunov=check_bool(owner, "lyapunov", lyapunov),
                           true_lyapunov=true_lyapunov, progress=progress,
                           dstsp_method="gmm" if poisson else "bins")
    score = np.where(np.isfinite(res.D_stsp.values), res.D_stsp.values, np.inf)
    best = int(np.argmin(score))
    stop_reason = hist.stop_reason or "n_iterations"
    if ckpt is not None and ckpt.stopped_at is not None:
        stop_reason = f"validation patience ({patience} evaluations without improvement)"
    settings = {
        "model": model, "observation": observation, "n_networks": K, "n_latent": M,
        "n_hidden": hidden if "shplrnn" in model else None,
        "n_pwl": pwl if model == "alrnn" else None, "initial_state": init,
        "gtf": dataclasses.asdict(cfg), "tau_estimate": int(tau_est), "tau_method": tau_method,
        "forcing_interval": cfg.tau if cfg.forcing == "stf" else None,
        "delay_embedding": {"n_delays": m, "delay": d} if m > 1 else None,
        "heldout": float(heldout), "heldout_trials": [int(i) for i in np.ravel(heldout_trials)],
        "validate_every": every, "patience": patience, "validation_metric": validation_metric,
        "keep_best": keep_best, "seed": seed, "iterations_run": len(hist.loss),
        "stop_reason": stop_reason, "train_seconds": round(train_s, 2),
        "best_network": best, "recording": rec.metadata(),
        "mean": None if train.mean is None else train.mean.tolist(),
        "std": None if train.std is None else train.std.tolist(),
    }
    if poisson:
        settings["dstsp_method"] = "gmm"
        settings["rate_smoothing"] = float(net.config.rate_smoothing)
        settings["rate_eps"] = float(net.config.rate_eps)
    res["free_run"] = (res["free_run"].dims, train.to_data_units(res["free_run"].values))
    res["heldout"] = (res["heldout"].dims, train.to_data_units(res["heldout"].values))
    res["forecast"] = (res["forecast"].dims, train.to_data_units(res["forecast"].values))
    units = "expected counts per bin" if poisson else "data units"
    res["free_run"].attrs.update(units=units, long_name="free run after the transient")
    res["forecast"].attrs.update(units=units, long_name="free run from the first sample")
    res["heldout"].attrs.update(
        units="counts per bin (rate estimate)" if poisson else "data units",
        long_name="evaluated held-out stretch" + (
            f" (counts smoothed by a Gaussian of {net.config.rate_smoothing:g} samples)"
            if poisson else ""))
    best_it = (ckpt.best_iteration if ckpt is not None and keep_best and ckpt.best_iteration
               is not None else np.full(K, len(hist.loss)))
    res["best_iteration"] = ("network", np.asarray(best_it, dtype=np.int64))
    loss = np.asarray(hist.loss, dtype=float).reshape(len(hist.loss), K).T
    res["loss"] = (("network", "iteration"), loss)
    res.attrs.update(
        analysis="reconstruct", model=model, best_network=best, stop_reason=stop_reason,
        iterations_run=len(hist.loss), n_iterations=cfg.n_iterations,
        tau_estimate=int(tau_est), forcing=cfg.forcing, dt=rec.dt, source=rec.source,
        embedding_n_delays=m, embedding_delay=d if m > 1 else 0, observation=observation,
        settings=json.dumps(settings, default=float),
    )
    if train.standardised:
        res.attrs.update(mean=train.mean.tolist(), std=train.std.tolist())
    run = Reconstruction(net, res, hist, train, test, settings, ckpt)
    if out is not None:
        run.save(out)
    if zoo is not None:
        from ..zoo import Zoo

        z = zoo if isinstance(zoo, Zoo) else Zoo(zoo, create=True)
        ids = z.add(net, task={"kind": "reconstruction", "source": rec.source, "dt": rec.dt,
                               "channels": list(rec.channels)},
                    outcome={"D_stsp": res.D_stsp.values, "D_H": res.D_H.values,
                             "max_lyapunov": res.max_lyapunov.values,
                             "best": [k == best for k in range(K)]},
                    tags="reconstruction")
        z.save_result(f"reconstruction/{ids[0].split('/')[0]}", res)
        settings["zoo_ids"] = ids
    return run
