"""Recorded time series for dynamical-systems reconstruction: :class:`Recording` and
:func:`load_recording`.

A :class:`Recording` holds one or several trajectories (trials, sessions) ``[T_r, N]`` of
possibly different lengths ``T_r`` over the same ``N`` channels, the sampling interval ``dt``,
the channel names and, once standardised, the per-channel mean and standard deviation used, so
that model outputs can be returned in the data's units (:meth:`Recording.to_data_units`).
A recording of spike counts (``counts=True``, for the Poisson observation model) is checked to
hold non-negative integers in every observed sample (:func:`check_counts`) and is never
standardised. Missing samples are NaN and stay NaN: nothing here interpolates them; the training
(:func:`dynrnn.training.train_gtf`) leaves them out of the loss and runs the model unforced
where the forcing signal is missing.

:func:`load_recording` reads

* ``.npy`` -- an array ``[T, N]`` or ``[R, T, N]`` (no pickled objects);
* ``.npz`` -- either an array named ``data`` (``[T, N]`` / ``[R, T, N]``, optional ``mask`` of
  the same shape, True = observed) or one array ``[T_r, N]`` per trial (in the file's order);
  optional scalar ``dt`` and string array ``channels``;
* ``.csv`` -- one column per channel (a header row names them; without one they are
  ``x0, x1, ...``); empty fields and ``nan`` are missing samples; an optional column ``time``
  (or ``t``) gives ``dt`` (uniform steps required) and an optional column ``trial`` splits the
  rows into trials (contiguous runs of equal labels). A non-numeric entry is an error naming
  the column, the row and the file;
* netCDF (``.nc``, ``.nc4``, ``.cdf``) and zarr (``.zarr``) -- an xarray ``DataArray`` (or a
  ``Dataset`` with one data variable, or the one named by ``variable``) with a ``time`` dim, a
  channel dim (any other name; its coordinate names the channels) and optionally a ``trial``
  dim; ``dt`` from a uniform numeric ``time`` coordinate;
* in memory: numpy arrays, torch tensors, xarray DataArrays, lists of ``[T_r, N]`` arrays
  (trials of different lengths) and Recordings.

In 3-D input (``[R, T, N]`` arrays, a ``trial`` dim) shorter trials are padded with NaN at
the end; trailing rows that are NaN in every channel are dropped from each trial.

:meth:`Recording.split` holds out the last fraction of every trial (a split along time) and,
optionally, whole trials (a split across trials); :meth:`Recording.delay_embed` builds delay
coordinates ``[x_t, x_{t-d}, ..., x_{t-(m-1)d}]`` (Takens 1981, Detecting strange attractors in
turbulence, Lecture Notes in Mathematics 898; the delay ``d`` conventionally the first minimum of
the time-delayed mutual information, Fraser & Swinney 1986, Independent coordinates for strange
attractors from mutual information, Physical Review A 33, 1134).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import ParameterTypeError, check_float, check_int

__all__ = ["Recording", "load_recording", "check_counts", "RECORDING_SUFFIXES"]

#: file suffixes :func:`load_recording` reads, by format
RECORDING_SUFFIXES = {
    "npy": (".npy",),
    "npz": (".npz",),
    "csv": (".csv",),
    "netcdf": (".nc", ".nc4", ".cdf"),
    "zarr": (".zarr",),
}


def _where(source: str) -> str:
    return f" (file {source})" if source and not source.startswith("<") else ""


def check_counts(x: Any, owner: str, name: str = "data", source: str = "<array>",
                 channels: Any = None, trial: int | None = None) -> None:
    """Raise ValueError unless every observed (non-NaN) entry of ``x [..., N]`` is a finite
    non-negative integer -- spike counts, as the Poisson observation model needs.

    The message names the parameter ``name`` of ``owner``, the file (``source``, unless it is
    ``"<...>"``), and the first offending value with its channel (``channels`` names them),
    sample and ``trial``.
    """
    a = x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(
        x, dtype=np.float64)
    bad_inf = np.isinf(a)
    seen = ~np.isnan(a)
    with np.errstate(invalid="ignore"):
        bad = bad_inf | (seen & ((a < 0) | (a != np.round(a))))
    if not bad.any():
        return
    idx = np.argwhere(bad)[0]
    value = a[tuple(idx)]
    ch = int(idx[-1]) if a.ndim else 0
    names = list(channels) if channels is not None and len(channels) else None
    chan = repr(names[ch]) if names and ch < len(names) else str(ch)
    where = f"sample {int(idx[-2])}" if a.ndim >= 2 else f"entry {int(idx[0])}"
    if trial is not None:
        where += f" of trial {trial}"
    elif a.ndim >= 3:
        where += f" of trial {int(idx[0])}"
    kind = ("not finite" if not np.isfinite(value) else "negative" if value < 0
            else "not an integer")
    raise ValueError(
        f"The {name!r} parameter of {owner}{_where(source)} must hold spike counts "
        f"(non-negative integers; NaN = missing) for observation='poisson'. Channel {chan}, "
        f"{where}, is {float(value):g} ({kind}; {int(bad.sum())} such entries)."
    )


@dataclass(frozen=True, eq=False)
class Recording:
    """Measured trajectories over the same channels.

    Attributes:
        trials: tuple of float64 arrays ``[T_r, N]`` (NaN = missing sample).
        dt: sampling interval (time units per sample), > 0.
        channels: names of the N channels.
        source: where the data came from (a file path, or ``"<array>"``).
        mean, std: per-channel ``[N]`` standardisation applied to ``trials`` (None: the data's
            own units); ``x_data = mean + std * x``.
        trial_ids: index of each trial in the original data (after a split, pieces of one
            trial keep its index).
        offsets: first sample of each trial within the original trial.
        dt_source: where ``dt`` came from (``"argument"``, ``"file"``, ``"default"``).
        embedding: delay embedding applied, ``(n_delays, delay)``; None if none.
        counts: the trials are spike counts (Poisson observation model): every observed sample
            must be a non-negative integer, and :meth:`standardise` refuses them.

    Raises ValueError naming the parameter (and the file) for trials that are not 2-D, differ
    in their number of channels, are all NaN (or hold inf), or a ``dt`` that is not a positive
    finite number; with ``counts``, for negative or fractional values (:func:`check_counts`;
    the parameter is ``source`` for a file, ``data`` else).
    """

    trials: tuple
    dt: float = 1.0
    channels: tuple = ()
    source: str = "<array>"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    trial_ids: tuple = ()
    offsets: tuple = ()
    dt_source: str = "argument"
    embedding: tuple | None = None
    counts: bool = False
    _owner: str = field(default="Recording", repr=False)

    def __post_init__(self):
        owner = self._owner + _where(self.source)
        set_ = object.__setattr__
        trials = tuple(self.trials) if isinstance(self.trials, (list, tuple)) else (self.trials,)
        if not trials:
            raise ValueError(f"The 'data' parameter of {owner} holds no trial.")
        out = []
        for i, tr in enumerate(trials):
            a = _numeric(tr, owner, "data" if len(trials) == 1 else f"data[{i}]")
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2:
                raise ValueError(
                    f"The 'data' parameter of {owner} must hold trials [T, N] (time x channel). "
                    f"Trial {i} has shape {a.shape}."
                )
            if a.shape[0] < 1 or a.shape[1] < 1:
                raise ValueError(
                    f"The 'data' parameter of {owner} must not be empty. Trial {i} has shape "
                    f"{a.shape}."
                )
            if np.isinf(a).any():
                raise ValueError(
                    f"The 'data' parameter of {owner} holds inf values (trial {i}); use NaN for "
                    f"missing samples."
                )
            out.append(np.ascontiguousarray(a))
        n = {a.shape[1] for a in out}
        if len(n) > 1:
            counts = [a.shape[1] for a in out]
            raise ValueError(
                f"The 'data' parameter of {owner} must have the same number of channels in "
                f"every trial. Got {counts} channels."
            )
        if all(np.isnan(a).all() for a in out):
            raise ValueError(f"The 'data' parameter of {owner} is all NaN: no sample observed.")
        N = out[0].shape[1]
        dt = check_float(owner, "dt", self.dt, 0.0, math.inf, False, False)
        channels = tuple(str(c) for c in self.channels) if len(self.channels) else tuple(
            f"x{i}" for i in range(N))
        if not isinstance(self.counts, (bool, np.bool_)):
            raise ParameterTypeError(f"The 'counts' parameter of {owner} must be a bool. Got "
                                     f"{self.counts!r}.")
        set_(self, "counts", bool(self.counts))
        if self.counts:
            if self.mean is not None:
                raise ValueError(f"The 'counts' parameter of {owner} excludes a "
                                 f"standardisation (mean / std): counts stay counts.")
            from_file = bool(_where(self.source))
            for i, a in enumerate(out):
                check_counts(a, self._owner, "source" if from_file else "data", self.source,
                             channels if len(channels) == N else None,
                             trial=i if len(out) > 1 else None)
        if len(channels) != N:
            raise ValueError(
                f"The 'channels' parameter of {owner} must name the {N} channels. Got "
                f"{len(channels)} names."
            )
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64).reshape(-1)
                # a delay embedding keeps the statistics of the original channels
                n_orig = N // self.embedding[0] if self.embedding else N
                if v.shape != (n_orig,) or not np.isfinite(v).all():
                    raise ValueError(f"The {name!r} parameter of {owner} must be {n_orig} "
                                     f"finite numbers. Got {v!r}.")
                set_(self, name, v)
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"The 'mean' and 'std' parameters of {owner} go together.")
        ids = tuple(int(i) for i in self.trial_ids) if len(self.trial_ids) else tuple(
            range(len(out)))
        offs = tuple(int(i) for i in self.offsets) if len(self.offsets) else (0,) * len(out)
        if len(ids) != len(out) or len(offs) != len(out):
            raise ValueError(f"The 'trial_ids' and 'offsets' parameters of {owner} need one "
                             f"entry per trial ({len(out)}).")
        set_(self, "trials", tuple(out))
        set_(self, "dt", dt)
        set_(self, "channels", channels)
        set_(self, "trial_ids", ids)
        set_(self, "offsets", offs)

    # --- sizes -------------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return self.trials[0].shape[1]

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(a.shape[0] for a in self.trials)

    @property
    def n_observed(self) -> int:
        """Number of observed (finite) entries over all trials and channels."""
        return int(sum(np.isfinite(a).sum() for a in self.trials))

    @property
    def standardised(self) -> bool:
        return self.mean is not None

    def _replace(self, **kw) -> Recording:
        base = dict(trials=self.trials, dt=self.dt, channels=self.channels, source=self.source,
                    mean=self.mean, std=self.std, trial_ids=self.trial_ids,
                    offsets=self.offsets, dt_source=self.dt_source, embedding=self.embedding,
                    counts=self.counts, _owner=self._owner)
        base.update(kw)
        return Recording(**base)

    def masks(self) -> list[np.ndarray]:
        """Per trial ``[T_r, N]`` bool, True where a sample was observed."""
        return [np.isfinite(a) for a in self.trials]

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data [R, T_max, N] float64, NaN after each trial's end; lengths [R])``."""
        T = max(self.lengths)
        out = np.full((self.n_trials, T, self.n_channels), np.nan)
        for i, a in enumerate(self.trials):
            out[i, : len(a)] = a
        return out, np.asarray(self.lengths)

    def concatenated(self) -> np.ndarray:
        """All trials one after the other ``[sum T_r, N]`` (for occupation statistics)."""
        return np.concatenate(self.trials, axis=0)

    # --- standardisation ---------------------------------------------------------------------
    def standardise(self, mean: Any = None, std: Any = None) -> Recording:
        """Per-channel z-scores ``(x - mean) / std`` (NaN-aware statistics over all observed
        samples of all trials, population std), stored so that :meth:`to_data_units` inverts
        them. ``mean``/``std`` given: those are used (e.g. the training part's statistics for
        the held-out part). Raises ValueError for a channel that is constant or has fewer than
        two observed samples."""
        owner = "Recording.standardise" + _where(self.source)
        if self.counts:
            raise ValueError(f"The recording of {owner} holds spike counts (counts=True): "
                             f"counts are not standardised (the Poisson observation model "
                             f"needs them as they are).")
        if self.standardised:
            raise ValueError(f"The recording of {owner} is standardised already.")
        if self.embedding is not None:
            raise ValueError(f"The recording of {owner} is delay-embedded; standardise it "
                             f"before embedding.")
        x = self.concatenated()
        if mean is None:
            mean = np.nanmean(x, axis=0) if np.isfinite(x).any() else np.zeros(x.shape[1])
        if std is None:
            n_obs = np.isfinite(x).sum(0)
            with np.errstate(invalid="ignore"):
                std = np.nanstd(x, axis=0) if n_obs.min() > 0 else np.zeros(x.shape[1])
            bad = [self.channels[i] for i in np.nonzero(~(std > 0) | (n_obs < 2))[0]]
            if bad:
                raise ValueError(
                    f"The 'data' parameter of {owner} has channels {bad} that are constant or "
                    f"observed fewer than twice; they cannot be standardised."
                )
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.shape != (self.n_channels,) or std.shape != (self.n_channels,) or not (
                np.isfinite(mean).all() and (std > 0).all() and np.isfinite(std).all()):
            raise ValueError(f"The 'mean' and 'std' parameters of {owner} must be "
                             f"{self.n_channels} finite numbers (std > 0).")
        return self._replace(trials=tuple((a - mean) / std for a in self.trials), mean=mean,
                             std=std)

    def to_data_units(self, x: Any) -> np.ndarray:
        """Standardised values ``[..., N]`` -> the data's units ``mean + std * x`` (identity
        for a recording that was not standardised). With a delay embedding, ``x`` may have
        ``N * n_delays`` channels (each block in the units of the original channels)."""
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
        if not self.standardised:
            return x
        reps = x.shape[-1] // len(self.mean)
        if reps * len(self.mean) != x.shape[-1]:
            raise ValueError(f"The 'x' parameter of Recording.to_data_units must have a multiple "
                             f"of {len(self.mean)} channels. Got {x.shape[-1]}.")
        return np.tile(self.mean, reps) + np.tile(self.std, reps) * x

    def from_data_units(self, x: Any) -> np.ndarray:
        """The inverse of :meth:`to_data_units`."""
        x = np.asarray(x, dtype=np.float64)
        if not self.standardised:
            return x
        reps = x.shape[-1] // len(self.mean)
        return (x - np.tile(self.mean, reps)) / np.tile(self.std, reps)

    # --- splits and embeddings ---------------------------------------------------------------
    def split(self, heldout: float = 0.2, heldout_trials: Any = ()) -> tuple[Recording,
                                                                             Recording]:
        """Train / held-out parts: the trials listed in ``heldout_trials`` (indices) go wholly
        to the held-out part; of every other trial the last ``heldout`` fraction (rounded down
        to whole samples) is held out along time and the rest trained on.

        Returns:
            ``(train, heldout)`` Recordings (same dt, channels, standardisation; ``trial_ids``
            and ``offsets`` locate each piece in the original trials). Raises ValueError if
            either part would be empty.
        """
        owner = "Recording.split" + _where(self.source)
        heldout = check_float(owner, "heldout", heldout, 0.0, 1.0, True, False)
        try:
            held = sorted({int(i) for i in np.asarray(heldout_trials, dtype=np.int64).ravel()})
        except (TypeError, ValueError):
            raise ParameterTypeError(f"The 'heldout_trials' parameter of {owner} must be trial "
                                     f"indices. Got {heldout_trials!r}.") from None
        for i in held:
            if not 0 <= i < self.n_trials:
                raise ValueError(f"The 'heldout_trials' parameter of {owner} must hold indices "
                                 f"in [0, {self.n_trials - 1}]. Got {i}.")
        train, test = [], []
        for i, a in enumerate(self.trials):
            tid, off = self.trial_ids[i], self.offsets[i]
            if i in held:
                test.append((a, tid, off))
                continue
            n_test = int(math.floor(heldout * len(a)))
            if len(a) - n_test > 0:
                train.append((a[: len(a) - n_test], tid, off))
            if n_test > 0:
                test.append((a[len(a) - n_test:], tid, off + len(a) - n_test))
        for part, name in ((train, "training"), (test, "held-out")):
            if not part or all(np.isnan(a).all() for a, _, _ in part):
                raise ValueError(
                    f"The 'heldout' and 'heldout_trials' parameters of {owner} leave no "
                    f"observed {name} samples (heldout={heldout}, heldout_trials={held})."
                )

        def make(part):
            return self._replace(trials=tuple(p[0] for p in part),
                                 trial_ids=tuple(p[1] for p in part),
                                 offsets=tuple(p[2] for p in part))

        return make(train), make(test)

    def delay_embed(self, n_delays: int, delay: int) -> Recording:
        """Delay coordinates ``y_t = [x_t, x_{t-d}, ..., x_{t-(m-1)d}]`` (m = ``n_delays``,
        d = ``delay`` samples) for ``t >= (m-1) d`` of every trial: ``[T_r - (m-1)d, N m]``.
        Trials shorter than ``(m-1) d + 1`` samples are dropped (ValueError if none is left).
        ``n_delays = 1`` returns the recording unchanged."""
        owner = "Recording.delay_embed" + _where(self.source)
        m = check_int(owner, "n_delays", n_delays, 1)
        d = check_int(owner, "delay", delay, 1)
        if m == 1:
            return self
        if self.embedding is not None:
            raise ValueError(f"The recording of {owner} is delay-embedded already.")
        span = (m - 1) * d
        keep = [i for i, a in enumerate(self.trials) if len(a) > span]
        if not keep:
            raise ValueError(
                f"The 'delay' parameter of {owner} ({d}) with n_delays={m} needs trials longer "
                f"than {span} samples; the longest has {max(self.lengths)}."
            )
        trials = []
        for i in keep:
            a = self.trials[i]
            T = len(a) - span
            trials.append(np.concatenate([a[span - j * d: span - j * d + T] for j in range(m)],
                                         axis=1))
        names = tuple(c if j == 0 else f"{c}(t-{j * d})" for j in range(m) for c in self.channels)
        return self._replace(trials=tuple(trials), channels=names,
                             trial_ids=tuple(self.trial_ids[i] for i in keep),
                             offsets=tuple(self.offsets[i] + span for i in keep),
                             embedding=(m, d))

    def to_xarray(self):
        """The trials as an ``xarray.DataArray`` ``(trial, time, channel)`` (NaN after each
        trial's end), time in units of ``dt`` from each piece's offset; attrs ``dt``,
        ``source``, ``mean`` / ``std`` (if standardised)."""
        import xarray as xr

        data, lengths = self.padded()
        attrs = {"dt": self.dt, "source": self.source}
        if self.standardised:
            attrs.update(mean=self.mean.tolist(), std=self.std.tolist())
        return xr.DataArray(
            data, dims=("trial", "time", "channel"),
            coords={"trial": np.arange(self.n_trials), "time": np.arange(data.shape[1]) * self.dt,
                    "channel": list(self.channels), "length": ("trial", lengths),
                    "trial_id": ("trial", np.asarray(self.trial_ids)),
                    "offset": ("trial", np.asarray(self.offsets))},
            attrs=attrs, name="recording")

    def metadata(self) -> dict:
        """JSON-ready description (stored with a reconstruction)."""
        return {
            "source": self.source, "dt": self.dt, "dt_source": self.dt_source,
            "channels": list(self.channels), "n_trials": self.n_trials,
            "lengths": list(self.lengths), "n_observed": self.n_observed,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "embedding": None if self.embedding is None else list(self.embedding),
            "counts": self.counts,
        }

    def __repr__(self) -> str:
        miss = sum(int((~np.isfinite(a)).sum()) for a in self.trials)
        total = sum(a.size for a in self.trials)
        state = ("counts" if self.counts else "standardised" if self.standardised
                 else "data units")
        return (f"Recording({self.n_trials} trial(s), lengths {list(self.lengths)[:6]}"
                f"{'...' if self.n_trials > 6 else ''}, {self.n_channels} channels "
                f"{list(self.channels)[:6]}, dt={self.dt:g}, {miss} of {total} missing, "
                f"{state}, source {self.source})")


def _numeric(value: Any, owner: str, name: str) -> np.ndarray:
    """Any array-like of real numbers -> float64 array (NaN kept)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes, dict, set)) or value is None:
        raise ParameterTypeError(f"The {name!r} parameter of {owner} must be an array of real "
                                 f"numbers. Got {type(value).__name__}.")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        raise ParameterTypeError(f"The {name!r} parameter of {owner} must be an array of real "
                                 f"numbers (equal-length rows).") from None
    if a.dtype.kind not in "biuf":
        raise ParameterTypeError(f"The {name!r} parameter of {owner} must hold real numbers. "
                                 f"Got dtype {a.dtype}.")
    return a.astype(np.float64)


def _trim(a: np.ndarray) -> np.ndarray:
    """Drop trailing rows that are NaN in every channel (padding of a shorter trial)."""
    observed = np.nonzero(~np.isnan(a).all(axis=1))[0]
    return a[: observed[-1] + 1] if observed.size else a[:0]


def _from_array(a: np.ndarray, owner: str, mask: Any = None) -> list[np.ndarray]:
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != a.shape or m.dtype.kind not in "bui":
            raise ValueError(f"The 'mask' parameter of {owner} must be a bool array of the "
                             f"data's shape {a.shape}. Got {m.dtype} {m.shape}.")
        a = np.where(m.astype(bool), a, np.nan)
    if a.ndim in (1, 2):
        return [a]
    if a.ndim == 3:
        trials = [_trim(t) for t in a]
        return [t for t in trials if len(t)] or [a[0]]
    raise ValueError(f"The 'data' parameter of {owner} must have shape [T], [T, N] or "
                     f"[R, T, N]. Got {a.shape}.")


def _uniform_dt(t: np.ndarray, owner: str, what: str) -> float | None:
    t = np.asarray(t, dtype=np.float64)
    if t.size < 2:
        return None
    steps = np.diff(t)
    if not np.isfinite(steps).all() or not (steps > 0).all() or (
            np.ptp(steps) > 1e-6 * abs(steps.mean())):
        raise ValueError(f"The 'dt' parameter of {owner} cannot be read from {what}: its "
                         f"steps are not uniform and positive (from {steps.min():g} to "
                         f"{steps.max():g}); pass dt explicitly.")
    return float(steps.mean())


def _read_csv(path: Path, owner: str):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"The 'source' parameter of {owner} is an empty file.")

    def number(s):
        s = s.strip()
        if s == "" or s.lower() in ("nan", "na", "n/a"):
            return math.nan
        return float(s)

    try:
        [number(c) for c in rows[0]]
        header = [f"x{i}" for i in range(len(rows[0]))]
        body = rows
        start = 1
    except ValueError:
        header = [c.strip() for c in rows[0]]
        body = rows[1:]
        start = 2
    width = len(header)
    cols: list[list[float]] = [[] for _ in range(width)]
    lower = [h.lower() for h in header]
    trial_col = lower.index("trial") if "trial" in lower else None
    trial_labels = []
    for r, row in enumerate(body):
        if len(row) != width:
            raise ValueError(f"The 'source' parameter of {owner}: row {r + start} has "
                             f"{len(row)} fields, the header {width}.")
        for j, c in enumerate(row):
            if j == trial_col:
                trial_labels.append(c.strip())
                continue
            try:
                cols[j].append(number(c))
            except ValueError:
                raise ValueError(f"The 'source' parameter of {owner}: column {header[j]!r} is "
                                 f"not numeric (row {r + start}: {c!r}).") from None
    time_col = next((j for j, h in enumerate(lower) if h in ("time", "t")), None)
    channels = [h for j, h in enumerate(header) if j not in (time_col, trial_col)]
    if not channels:
        raise ValueError(f"The 'source' parameter of {owner} has no data column.")
    data = np.asarray([cols[j] for j in range(width) if j not in (time_col, trial_col)]).T
    time = np.asarray(cols[time_col]) if time_col is not None else None
    if trial_col is not None:
        labels = np.asarray(trial_labels)
        cuts = np.nonzero(labels[1:] != labels[:-1])[0] + 1
        bounds = np.concatenate([[0], cuts, [len(labels)]])
        trials = [data[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        times = [time[a:b] for a, b in zip(bounds[:-1], bounds[1:])] if time is not None else []
    else:
        trials, times = [data], [time] if time is not None else []
    dt = None
    for t in times:
        d = _uniform_dt(t, owner, "the 'time' column")
        if d is not None:
            if dt is not None and abs(d - dt) > 1e-6 * dt:
                raise ValueError(f"The 'dt' parameter of {owner} differs between trials of "
                                 f"the 'time' column ({dt:g} and {d:g}).")
            dt = d
    return trials, channels, dt


def _from_xarray(obj, owner: str, variable: str | None):
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        names = list(obj.data_vars)
        if variable is None:
            if len(names) != 1:
                raise ValueError(f"The 'variable' parameter of {owner} must name one of the "
                                 f"data variables {names}.")
            variable = names[0]
        if variable not in obj.data_vars:
            raise ValueError(f"The 'variable' parameter of {owner} must be one of {names}. Got "
                             f"{variable!r}.")
        obj = obj[variable]
    if "time" not in obj.dims:
        raise ValueError(f"The 'data' parameter of {owner} must have a 'time' dim. Got dims "
                         f"{obj.dims}.")
    others = [d for d in obj.dims if d not in ("time", "trial")]
    if len(others) > 1:
        raise ValueError(f"The 'data' parameter of {owner} must have dims time, one channel "
                         f"dim and optionally trial. Got {obj.dims}.")
    order = (["trial"] if "trial" in obj.dims else []) + ["time"] + others
    obj = obj.transpose(*order)
    if obj.dtype.kind not in "biuf":
        raise ParameterTypeError(f"The 'data' parameter of {owner} must hold real numbers. Got "
                                 f"dtype {obj.dtype}.")
    a = np.asarray(obj.values, dtype=np.float64)
    if not others:
        a = a[..., None]
    channels = [str(c) for c in obj[others[0]].values] if others and others[0] in obj.coords \
        else []
    dt = None
    if "time" in obj.coords and obj["time"].dtype.kind in "iuf":
        dt = _uniform_dt(obj["time"].values, owner, "the 'time' coordinate")
    elif "dt" in obj.attrs:
        dt = float(obj.attrs["dt"])
    trials = [_trim(t) for t in a] if a.ndim == 3 else [a]
    return [t for t in trials if len(t)] or [a.reshape(-1, a.shape[-1])[:1]], channels, dt


def load_recording(
    source: Any,
    *,
    dt: float | None = None,
    channels: Any = None,
    mask: Any = None,
    variable: str | None = None,
    counts: bool = False,
) -> Recording:
    """Read measured time series into a :class:`Recording` (formats: see the module docstring).

    Arguments:
        source: a path (``.npy``, ``.npz``, ``.csv``, ``.nc``, ``.zarr``), an array / tensor
            ``[T]``, ``[T, N]`` or ``[R, T, N]``, a list of trials ``[T_r, N]``, an xarray
            ``DataArray`` / ``Dataset``, or a :class:`Recording` (returned as is, unless ``dt``
            or ``channels`` replace its own).
        dt: sampling interval (> 0). None: from the file (time column / coordinate, ``dt``
            entry), else 1 (``dt_source`` says which). Given and different from the file's: an
            error.
        channels: names of the channels (default: from the file, else ``x0, x1, ...``) or,
            for a file with more columns, the subset to keep (names or indices).
        mask: for an array source: bool, same shape, True = observed (False entries become
            missing whatever their value).
        variable: netCDF / zarr / Dataset: the data variable to read.
        counts: the data are spike counts for a Poisson observation model: every observed
            sample must be a non-negative integer (ValueError naming ``source`` and the file,
            or ``data`` for an in-memory source, with the first bad value), and the recording
            is marked so that it is never standardised.

    Returns:
        A :class:`Recording` in the data's units (standardise with
        :meth:`Recording.standardise`; not for counts).
    """
    owner = "load_recording"
    if not isinstance(counts, (bool, np.bool_)):
        raise ParameterTypeError(f"The 'counts' parameter of {owner} must be a bool. Got "
                                 f"{counts!r}.")
    if isinstance(source, Recording):
        kw = {}
        if counts and not source.counts:
            kw["counts"] = True
        if dt is not None:
            kw.update(dt=dt, dt_source="argument")
        if channels is not None:
            kw["channels"] = tuple(channels)
        return source._replace(**kw) if kw else source
    name = "<array>"
    file_dt = None
    names: list[str] = []
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        owner = f"load_recording (file {name})"
        suffix = path.suffix.lower()
        known = sorted(x for v in RECORDING_SUFFIXES.values() for x in v)
        if suffix not in known:
            raise ValueError(f"The 'source' parameter of load_recording must be a file ending "
                             f"in one of {known}. Got {name}.")
        if not path.exists():
            raise ValueError(f"The 'source' parameter of load_recording names a file that does "
                             f"not exist: {name}.")
        if suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise ValueError(f"The 'source' parameter of {owner} is not a numeric .npy "
                                 f"array ({exc}).") from None
            trials = _from_array(_numeric(arr, owner, "data"), owner)
        elif suffix == ".npz":
            try:
                z = np.load(path, allow_pickle=False)
                entries = {k: z[k] for k in z.files}
            except ValueError as exc:
                raise ValueError(f"The 'source' parameter of {owner} holds non-numeric "
                                 f"objects ({exc}).") from None
            if "dt" in entries:
                file_dt = float(np.asarray(entries.pop("dt")).reshape(()))
            if "channels" in entries:
                names = [str(c) for c in np.asarray(entries.pop("channels")).ravel()]
            file_mask = entries.pop("mask", None)
            if "data" in entries:
                rest = [k for k in entries if k != "data"]
                if rest:
                    raise ValueError(f"The 'source' parameter of {owner} has an array 'data' "
                                     f"and others {rest}; use one layout.")
                trials = _from_array(_numeric(entries["data"], owner, "data"), owner, file_mask)
            else:
                if not entries:
                    raise ValueError(f"The 'source' parameter of {owner} holds no array.")
                trials = [_numeric(v, owner, f"data[{k!r}]") for k, v in entries.items()]
        elif suffix == ".csv":
            trials, names, file_dt = _read_csv(path, owner)
        elif suffix in RECORDING_SUFFIXES["netcdf"] + RECORDING_SUFFIXES["zarr"]:
            import xarray as xr

            try:
                if suffix == ".zarr":
                    import warnings

                    with warnings.catch_warnings():  # a store without consolidated metadata
                        warnings.simplefilter("ignore", RuntimeWarning)
                        ds = xr.open_zarr(path, consolidated=None)
                else:
                    ds = xr.open_dataset(path)
                ds = ds.load()
            except Exception as exc:  # a broken or foreign file: one clear message
                raise ValueError(f"The 'source' parameter of {owner} cannot be read as "
                                 f"{suffix[1:]} ({type(exc).__name__}: {exc}).") from None
            trials, names, file_dt = _from_xarray(ds, owner, variable)
        else:  # pragma: no cover - the suffix was checked above
            raise ValueError(f"The 'source' parameter of {owner} has an unknown format.")
        if mask is not None:
            raise ValueError(f"The 'mask' parameter of {owner} applies to array sources only "
                             f"(store missing samples as NaN in the file, or 'mask' in .npz).")
    elif type(source).__module__.startswith("xarray"):
        trials, names, file_dt = _from_xarray(source, owner, variable)
    elif isinstance(source, (list, tuple)) and source and all(
            hasattr(s, "shape") or isinstance(s, (list, tuple)) for s in source) and not all(
            isinstance(s, (int, float)) for s in source):
        try:
            arr = np.asarray(source)  # equal-length lists of rows: one array
            ragged = arr.dtype == object or arr.ndim < 2
        except ValueError:
            ragged = True
        if ragged or hasattr(source[0], "shape"):  # a list of arrays: one trial each
            trials = [_numeric(s, owner, f"data[{i}]") for i, s in enumerate(source)]
            if mask is not None:
                trials = [np.where(np.asarray(m, dtype=bool), t, np.nan)
                          for t, m in zip(trials, mask)]
        else:
            trials = _from_array(_numeric(arr, owner, "data"), owner, mask)
    else:
        trials = _from_array(_numeric(source, owner, "data"), owner, mask)
    dt_source = "argument"
    if dt is not None:
        dt = check_float(owner, "dt", dt, 0.0, math.inf, False, False)
        if file_dt is not None and abs(file_dt - dt) > 1e-6 * dt:
            raise ValueError(f"The 'dt' parameter of {owner} ({dt:g}) differs from the file's "
                             f"sampling interval ({file_dt:g}).")
    elif file_dt is not None:
        dt, dt_source = file_dt, "file"
    else:
        dt, dt_source = 1.0, "default"
    if file_dt is not None and not (file_dt > 0 and math.isfinite(file_dt)):
        raise ValueError(f"The 'dt' parameter of {owner} must be > 0. The file gives {file_dt}.")
    if channels is not None:
        channels = list(channels) if not isinstance(channels, str) else [channels]
        n = trials[0].shape[1] if trials[0].ndim == 2 else 1
        if names and len(channels) < len(names) or (not names and len(channels) < n):
            pool = names or [f"x{i}" for i in range(n)]
            idx = []
            for c in channels:
                if isinstance(c, (int, np.integer)) and 0 <= int(c) < len(pool):
                    idx.append(int(c))
                elif str(c) in pool:
                    idx.append(pool.index(str(c)))
                else:
                    raise ValueError(f"The 'channels' parameter of {owner} names {c!r}, which "
                                     f"is not one of the columns {pool}.")
            trials = [t[:, idx] if t.ndim == 2 else t for t in trials]
            names = [pool[i] for i in idx]
        else:
            names = [str(c) for c in channels]
    return Recording(trials=tuple(trials), dt=dt, channels=tuple(names), source=name,
                     dt_source=dt_source, counts=bool(counts), _owner=owner.split(" (file")[0])
