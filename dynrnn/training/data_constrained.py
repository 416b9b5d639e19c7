"""Data-constrained rate RNNs: fit a chosen subset of a network's units to recorded activity.

A data-constrained network is an ordinary rate RNN (:class:`~dynrnn.models.RateRNN`, K networks
at once) of which M chosen units -- ``recorded``, M <= N, so the recording may be sparse -- are
identified with M recorded neurons, and whose weights are fitted so that those units reproduce
the neurons' activity (trial-averaged rates, one "trial" per condition, or single-trial rates),
optionally while the readout also performs a task. The fitted model is an ordinary ensemble, so
every analysis of the package (fixed points, Lyapunov spectra, timescales, DSA) applies to it.

**Mapping of recorded rates to units.** The recorded activity of neuron m is the *state*
``h_i`` of unit ``i = recorded[m]``, i.e. the unit's activity after the nonlinearity (for tanh
units a value in (-1, 1), for ReLU / softplus / sigmoid units a non-negative rate), sampled once
per step of the map. Rates in other units (Hz, dF/F) must be scaled to the range of the chosen
nonlinearity first (e.g. divided by their maximum absolute value, as CURBD does for tanh units);
nothing is rescaled here.

**Alignment.** ``activity[b, t]`` is the state after the network has received ``inputs[b, t]``
(the layout of :func:`~dynrnn.models.run`'s states): ``h_t = F(h_{t-1}, x_t)``, compared with
``activity[b, t]`` for ``t = 0 .. T-1``.

**Initial state per trial** (``h0``):

* ``"zeros"``: ``h_{-1} = 0`` for every trial (the model's default);
* ``"learned"``: one initial state per network ``h_{-1} = s [K, N]``, shared by all trials and
  fitted with the weights (BPTT only);
* ``"data"``: the recorded units start from the first recorded sample, the unrecorded ones from
  ``s`` (fitted by BPTT; zeros for RLS): ``h_0[recorded] = activity[:, 0]``; the network then
  runs on ``inputs[:, 1:]`` and is compared with ``activity[:, 1:]`` (a missing or masked-out
  first sample starts at 0), as CURBD initialises each training run from the data's first
  sample.

**Missing samples.** NaN entries of ``activity`` are missing samples: excluded from the loss
(BPTT), contributing no error (RLS), and left out of the variance explained; never
interpolated. Infinite values are an error.

Two fitting methods:

* :func:`fit_to_activity` -- BPTT with the package's trainer machinery (the optimisers, per-
  network gradient clipping, early stopping, divergence handling and :class:`History` of
  :func:`~dynrnn.training.train`, one simulation loop :func:`~dynrnn.models.run`). Per network
  the loss is::

      L = sum_{b,t,m} w_btm (h_t,recorded[m] - d_btm)^2 / sum w_btm
          + task_weight * masked_mse(y, task_targets, task_mask) + l1 |W|_1

  with ``w = 1`` on observed (non-NaN, ``mask``-ed) samples.
* :func:`fit_to_activity_rls` -- recursive least squares on the incoming weights of the recorded
  units while the network runs freely: PINning (Rajan, K., Harvey, C. D. & Tank, D. W. (2016).
  Recurrent network models of sequence generation and memory. *Neuron* 90(1), 128-142) and
  CURBD (Perich, M. G., Arlt, C., Soares, S., Young, M. E., Mosher, C. P., Minxha, J., Carter,
  E., Rutishauser, U., Rudebeck, P. H., Harvey, C. D. & Rajan, K. (2020). Inferring brain-wide
  interactions using data-constrained recurrent neural network models. *bioRxiv*
  2020.12.18.423348), both built on FORCE (Sussillo, D. & Abbott, L. F. (2009). Generating
  coherent patterns of activity from chaotic neural networks. *Neuron* 63(4), 544-557). See
  :func:`fit_to_activity_rls` for the update.

:func:`activity_variance_explained` evaluates a fitted network on (held-out) trials: the
variance explained per recorded neuron as an ``xarray.Dataset`` with dims ``(network, neuron)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._progress import finish_early, progress_bar, stage
from .._validation import (
    Bool,
    Constraint,
    Float,
    Int,
    ParameterTypeError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_model_tensor,
    check_shape,
    check_tensor,
    resolve_generator,
    validate_config,
)
from ..kernels._threads import adapts_threads
from ..models.base import RecurrentModel, run
from ..models.rate import RateRNN
from .losses import masked_mse
from .supervised import (
    History,
    TrainConfig,
    _check_per_network_settings,
    _finite_per_network,
    _guarded_step,
    _l1_penalty,
    _metadata_coords,
    _optimizer,
    _seeds,
)

__all__ = [
    "ActivityFit",
    "RLSActivityConfig",
    "fit_to_activity",
    "fit_to_activity_rls",
    "activity_variance_explained",
    "rls_block_update",
]

_H0_MODES = ("zeros", "learned", "data")


# --------------------------------------------------------------------------- validation
def _check_recorded(owner: str, recorded: Any, n_units: int, n_neurons: int | None) -> np.ndarray:
    """``recorded`` as an int64 array ``[M]`` of distinct unit indices in ``[0, n_units)``."""
    msg = (
        f"The 'recorded' parameter of {owner} must be a sequence of distinct unit indices in "
        f"[0, {n_units}) (one per recorded neuron). Got {{}} instead."
    )
    if recorded is None or isinstance(recorded, (str, bytes, dict, set, float, bool)):
        raise ParameterTypeError(msg.format(repr(recorded)))
    if torch.is_tensor(recorded):
        recorded = recorded.detach().cpu().numpy()
    try:
        arr = np.asarray(recorded)
    except (TypeError, ValueError):
        raise ParameterTypeError(msg.format(type(recorded).__name__)) from None
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        if arr.dtype.kind in "iu" and arr.ndim == 0:
            raise ParameterTypeError(msg.format(repr(recorded)))
        raise ParameterTypeError(msg.format(f"an array of dtype {arr.dtype}, shape {arr.shape}"))
    arr = arr.astype(np.int64)
    if arr.size == 0:
        raise ValueError(msg.format("an empty sequence"))
    bad = (arr < 0) | (arr >= n_units)
    if bad.any():
        raise ValueError(msg.format(f"index {int(arr[bad][0])} (out of range)"))
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ValueError(msg.format(f"index {int(uniq[counts > 1][0])} more than once"))
    if n_neurons is not None and arr.size != n_neurons:
        raise ValueError(
            f"The 'recorded' parameter of {owner} names {arr.size} units; 'activity' has "
            f"{n_neurons} recorded neurons (its last dim M). They must agree."
        )
    return arr


def _check_activity(owner: str, name: str, activity: Any, model: RecurrentModel,
                    dtype: torch.dtype) -> torch.Tensor:
    """``activity`` as ``[K or 1, B, T, M]`` in ``dtype``; NaN allowed (missing), inf not."""
    t = check_tensor(owner, name, activity, dtype=dtype, detach=True)
    check_shape(owner, name, t, [("B", "T", "M"), ("K|1", "B", "T", "M")], K=model.n_networks)
    if bool(torch.isinf(t).any()):
        raise ValueError(
            f"The {name!r} parameter of {owner} must hold finite rates or NaN (a missing "
            f"sample); it has {int(torch.isinf(t).sum())} infinite entries."
        )
    if bool(torch.isnan(t).all()):
        raise ValueError(f"The {name!r} parameter of {owner} is all NaN (no observed sample).")
    return t.unsqueeze(0) if t.ndim == 3 else t


def _check_inputs(owner: str, name: str, inputs: Any, model: RecurrentModel, B: int, T: int,
                  against: str, dtype: torch.dtype) -> torch.Tensor:
    """Inputs ``[B, T, I]`` or ``[K or 1, B, T, I]`` matching ``activity``'s B and T (None:
    zeros), as ``[K or 1, B, T, I]``."""
    if inputs is None:
        return torch.zeros(1, B, T, model.n_inputs, dtype=dtype, device=model.device)
    x, layout = check_model_tensor(
        owner, name, inputs, model, [("B", "T", "I"), ("K|1", "B", "T", "I")], dtype=dtype,
        finite=True, detach=True,
    )
    x = x.unsqueeze(0) if layout == 0 else x
    if x.shape[1] != B or x.shape[2] != T:
        raise ValueError(
            f"The {name!r} parameter of {owner} has {x.shape[1]} trials of {x.shape[2]} steps; "
            f"{against!r} has {B} trials of {T} steps. The trial counts and lengths must agree."
        )
    return x


def _check_mask(owner: str, name: str, mask: Any, activity: torch.Tensor) -> torch.Tensor:
    """Observed samples ``[K or 1, B, T, M]`` (bool): not NaN and (if given) in ``mask``
    (``[B, T]``, ``[B, T, M]`` or with a leading K or 1)."""
    observed = ~torch.isnan(activity)
    if mask is None:
        return observed
    Kd, B, T, M = activity.shape
    m = check_tensor(owner, name, mask, detach=True)
    lay = check_shape(owner, name, m, [("B", "T"), ("B", "T", "M"), ("K|1", "B", "T", "M")],
                      "activity", B=B, T=T, M=M, K=Kd)
    m = m != 0
    if lay == 0:
        m = m[..., None]
    if m.ndim == 3:
        m = m[None]
    return observed & m


def _check_model(owner: str, model: Any, rls: bool = False) -> None:
    if rls:
        if not isinstance(model, RateRNN):
            raise ParameterTypeError(
                f"The 'model' parameter of {owner} must be a RateRNN (its recurrent weights are "
                f"the ones RLS updates). Got {type(model).__name__} instead."
            )
        if model.config.dale:
            raise ValueError(
                f"The 'model' parameter of {owner} has dale=True; RLS updates do not keep the "
                f"sign constraints of Dale's law. Use fit_to_activity (BPTT) instead."
            )
        return
    if not isinstance(model, RecurrentModel):
        raise ParameterTypeError(
            f"The 'model' parameter of {owner} must be a RecurrentModel. Got "
            f"{type(model).__name__} instead."
        )


@dataclass
class _Data:
    """Validated data of one fit or evaluation (all tensors in the model's dtype)."""

    activity: torch.Tensor  # [K or 1, B, T, M], NaN where missing
    inputs: torch.Tensor  # [K or 1, B, T, I]
    observed: torch.Tensor  # [K or 1, B, T, M] bool
    recorded: np.ndarray  # [M]

    @property
    def n_trials(self) -> int:
        return self.activity.shape[1]

    def trials(self, idx: torch.Tensor | None) -> _Data:
        if idx is None:
            return self
        return _Data(self.activity[:, idx], self.inputs[:, idx], self.observed[:, idx],
                     self.recorded)


def _prepare(owner: str, model: RecurrentModel, activity, inputs, recorded, mask,
             names=("activity", "inputs", "mask")) -> _Data:
    dtype = model.dtype
    a = _check_activity(owner, names[0], activity, model, dtype)
    rec = _check_recorded(owner, recorded, model.n_units, a.shape[-1])
    B, T = a.shape[1], a.shape[2]
    x = _check_inputs(owner, names[1], inputs, model, B, T, names[0], dtype)
    obs = _check_mask(owner, names[2], mask, a)
    return _Data(a.to(model.device), x, obs.to(model.device), rec)


def _initial_states(data: _Data, base: torch.Tensor, from_data: bool) -> torch.Tensor:
    """``h_{-1}`` (or, from data, ``h_0``) ``[K, B, N]``: ``base [K, N]`` for every trial, the
    recorded units replaced by the first sample (0 where it is missing or masked out) when
    ``from_data``."""
    K, N = base.shape
    h = base[:, None, :].expand(K, data.n_trials, N)
    if not from_data:
        return h
    first = torch.where(data.observed[:, :, 0], data.activity[:, :, 0],
                        torch.zeros((), dtype=base.dtype, device=base.device))
    first = first.expand(K, -1, -1)  # [K, B, M]; missing / masked-out -> 0
    rec = torch.as_tensor(data.recorded, device=base.device)
    keep = torch.ones(N, dtype=torch.bool, device=base.device)
    keep[rec] = False
    h = h * keep.to(h.dtype)  # recorded entries carry no gradient into ``base``
    return h.index_add(2, rec, first.to(h.dtype))


def _window(data: _Data, from_data: bool):
    """(inputs, activity, observed) of the simulated steps: all, or from step 1 on."""
    if not from_data:
        return data.inputs, data.activity, data.observed
    return data.inputs[:, :, 1:], data.activity[:, :, 1:], data.observed[:, :, 1:]


def _activity_sse(states: torch.Tensor, target: torch.Tensor, observed: torch.Tensor,
                  recorded: np.ndarray):
    """Per network: (sum of squared errors of the recorded units over observed samples, number
    of observed samples); ``states [K, B, T, N]``."""
    rec = torch.as_tensor(recorded, device=states.device)
    pred = states.index_select(-1, rec)  # [K, B, T, M]
    zero = torch.zeros((), dtype=pred.dtype, device=pred.device)
    err = torch.where(observed, pred - target, zero).pow(2)  # any value behind the mask: 0
    return err.sum((1, 2, 3)), observed.to(pred.dtype).expand_as(err).sum((1, 2, 3))


def _simulate(model, data: _Data, base: torch.Tensor, from_data: bool, *, noise=False,
              generator=None):
    x, target, observed = _window(data, from_data)
    h0 = _initial_states(data, base, from_data)
    S, Y = run(model, x, h0, noise=noise, generator=generator)
    return S, Y, target, observed


# --------------------------------------------------------------------------- result
@dataclass
class ActivityFit:
    """Outcome of :func:`fit_to_activity` / :func:`fit_to_activity_rls` (the weights are fitted
    in the model, in place).

    Attributes:
        model: the fitted ensemble (the object passed in).
        method: ``"bptt"`` or ``"rls"``.
        recorded: ``[M]`` the units identified with the recorded neurons.
        h0_mode: ``"zeros"``, ``"learned"`` or ``"data"`` (module docstring).
        h0: ``[K, N]`` the initial state ``s`` of every trial (learned, or zeros); with
            ``h0_mode="data"`` its recorded entries are replaced by each trial's first sample.
        history: per-network :class:`~dynrnn.training.History`: ``loss [K, steps]`` (BPTT:
            training loss per optimiser step; RLS: mean squared a-priori error per epoch),
            ``eval_loss`` (activity MSE of the free run on the validation trials, or on the
            training trials when none are given), ``reached`` (eval loss below the criterion),
            ``failed`` (diverged).
        P: RLS only: ``[K, F, F]`` the final inverse correlation matrix of the recurrent
            features (``[h[plastic], x, 1]``); None for BPTT.
        plastic: RLS only: ``[K, F_h]`` the presynaptic units whose weights onto the recorded
            units are plastic; None for BPTT.
    """

    model: RecurrentModel
    method: str
    recorded: np.ndarray
    h0_mode: str
    h0: torch.Tensor
    history: History
    P: torch.Tensor | None = None
    plastic: torch.Tensor | None = None

    def initial_state(self, activity: Any) -> torch.Tensor:
        """The initial states ``[K, B, N]`` of trials ``activity [(K,) B, T, M]`` under this
        fit's ``h0_mode`` (the state before the first input; with ``"data"`` the state at
        step 0)."""
        owner = "ActivityFit.initial_state"
        a = _check_activity(owner, "activity", activity, self.model, self.model.dtype)
        _check_recorded(owner, self.recorded, self.model.n_units, a.shape[-1])
        data = _Data(a, a[..., :0], ~torch.isnan(a), self.recorded)  # inputs unused here
        return _initial_states(data, self.h0.to(a.dtype), self.h0_mode == "data")

    def predict(self, activity: Any, inputs: Any = None) -> torch.Tensor:
        """The recorded units' activity ``[K, B, T', M]`` of the free run on ``inputs``, started
        as the fit's ``h0_mode`` says from trials ``activity`` (only its first sample is used,
        and only with ``h0_mode="data"``; then ``T' = T - 1``, the steps after it)."""
        data = _prepare("ActivityFit.predict", self.model, activity, inputs, self.recorded, None)
        with torch.no_grad():
            S, _, _, _ = _simulate(self.model, data, self.h0.to(self.model.dtype),
                                   self.h0_mode == "data")
        return S[..., torch.as_tensor(self.recorded)]

    def variance_explained(self, activity: Any, inputs: Any = None, *, mask: Any = None):
        """:func:`activity_variance_explained` of the fitted model on (held-out) trials, with
        this fit's recorded units and initial state."""
        return activity_variance_explained(
            self.model, activity, inputs, recorded=self.recorded, initial_state=self.h0,
            from_data=self.h0_mode == "data", mask=mask, method=self.method,
        )


# --------------------------------------------------------------------------- evaluation
def activity_variance_explained(
    model: RecurrentModel,
    activity: Any,
    inputs: Any = None,
    *,
    recorded: Any,
    initial_state: Any = None,
    from_data: bool = False,
    mask: Any = None,
    method: str | None = None,
):
    """Variance of each recorded neuron's activity explained by the free-running network.

    The network runs on ``inputs`` from ``initial_state`` (module docstring: ``from_data``
    starts the recorded units at the first sample and compares the steps after it); for
    network k and neuron m, over the observed samples (b, t) (not NaN, in ``mask``)::

        VE_km = 1 - sum_bt (d_btm - h_kbt,recorded[m])^2 / sum_bt (d_btm - mean_bt d_btm)^2

    (NaN for a neuron whose activity is constant over the compared samples), and, pooled over
    the neurons, Perich et al.'s (2020, *bioRxiv* 2020.12.18.423348; also Rajan, Harvey & Tank
    2016, *Neuron* 90(1):128-142) ``pVar_k = 1 - sum_btm (d - h)^2 / (n sigma^2)`` with
    ``sigma^2`` the variance of all n observed samples around their common mean.

    Arguments:
        model: K networks.
        activity: recorded rates ``[B, T, M]`` (or ``[K, B, T, M]``, one recording per
            network); NaN = missing.
        inputs: ``[B, T, I]`` or ``[K or 1, B, T, I]``; None = no input.
        recorded: ``[M]`` distinct unit indices identified with the neurons.
        initial_state: ``[K or 1, N]`` (or ``[N]``) the state ``s`` before the first step;
            None = zeros.
        from_data: start the recorded units at ``activity[:, 0]`` (then steps 1.. compared).
        mask: ``[B, T]`` or ``[B, T, M]`` samples to compare (True), on top of non-NaN.
        method: recorded in the attrs (e.g. ``"bptt"``); None = not stated.

    Returns:
        ``xarray.Dataset`` with ``variance_explained (network, neuron)``, ``mse (network,
        neuron)``, ``n_samples (neuron)``, ``pvar (network)``; coords ``neuron``, ``unit``
        (the recorded unit of each neuron) and the networks' hyperparameters along
        ``network``; attrs ``n_trials``, ``n_steps``, ``from_data``, ``definition``.
    """
    import xarray as xr

    owner = "activity_variance_explained"
    _check_model(owner, model)
    check_bool(owner, "from_data", from_data)
    if method is not None:
        check_choice(owner, "method", method, ("bptt", "rls"))
    data = _prepare(owner, model, activity, inputs, recorded, mask)
    K, N = model.n_networks, model.n_units
    if initial_state is None:
        base = torch.zeros(K, N, dtype=model.dtype, device=model.device)
    else:
        base, lay = check_model_tensor(owner, "initial_state", initial_state, model,
                                       [("K|1", "N"), ("N",)], dtype=model.dtype, finite=True,
                                       detach=True)
        base = (base[None] if lay == 1 else base).expand(K, N)
    if from_data and data.activity.shape[2] < 2:
        raise ValueError(
            f"The 'activity' parameter of {owner} needs T >= 2 steps with from_data=True (step "
            f"0 sets the initial state). Got T={data.activity.shape[2]}."
        )
    with torch.no_grad():
        S, _, target, observed = _simulate(model, data, base, from_data)
    rec = torch.as_tensor(data.recorded, device=S.device)
    pred = S.index_select(-1, rec).double()  # [K, B, T, M]
    obs = observed.expand(K, -1, -1, -1)
    w = obs.double()
    zero = torch.zeros((), dtype=torch.float64)
    d0 = torch.where(obs, target.double().expand(K, -1, -1, -1), zero)
    n = w.sum((1, 2))  # [K, M]
    sse = torch.where(obs, pred - d0, zero).pow(2).sum((1, 2))
    mean = (d0 * w).sum((1, 2)) / n.clamp(min=1)
    sst = ((d0 - mean[:, None, None, :]) ** 2 * w).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        ve = np.where(sst.numpy() > 0, 1.0 - sse.numpy() / sst.numpy(), np.nan)
        mse = np.where(n.numpy() > 0, sse.numpy() / n.numpy(), np.nan)
    n_all = w.sum((1, 2, 3))
    mean_all = (d0 * w).sum((1, 2, 3)) / n_all.clamp(min=1)
    var_all = ((d0 - mean_all[:, None, None, None]) ** 2 * w).sum((1, 2, 3))
    pvar = (1.0 - sse.sum(1) / var_all).numpy()
    coords = {"network": np.arange(K), "neuron": np.arange(len(data.recorded)),
              "unit": (("neuron",), data.recorded.copy())}
    coords.update(_metadata_coords(model.network_metadata(), K))
    attrs = {
        "n_trials": int(data.n_trials),
        "n_steps": int(target.shape[2]),
        "from_data": int(from_data),
        "definition": "VE = 1 - SSE / SST per recorded neuron over observed samples of the "
                      "free run; pvar = 1 - SSE_all / (n var_all) (Perich et al. 2020)",
    }
    if method is not None:
        attrs["method"] = method
    return xr.Dataset(
        {
            "variance_explained": (("network", "neuron"), ve),
            "mse": (("network", "neuron"), mse),
            "n_samples": (("neuron",), n[0].numpy().astype(np.int64)),
            "pvar": (("network",), pvar),
        },
        coords=coords,
        attrs=attrs,
    )


# --------------------------------------------------------------------------- BPTT
def _check_validation(owner: str, validation: Any, model, recorded) -> _Data | None:
    if validation is None:
        return None
    if not isinstance(validation, (tuple, list)) or len(validation) not in (1, 2, 3):
        raise ParameterTypeError(
            f"The 'validation' parameter of {owner} must be (activity,), (activity, inputs) or "
            f"(activity, inputs, mask), or None. Got {type(validation).__name__} instead."
        )
    v = list(validation) + [None] * (3 - len(validation))
    return _prepare(owner, model, v[0], v[1], recorded, v[2],
                    names=("validation[0] (activity)", "validation[1] (inputs)",
                           "validation[2] (mask)"))


def _check_task(owner: str, model, task_targets, task_mask, task_weight, B: int, T: int):
    task_weight = check_float(owner, "task_weight", task_weight, 0.0)
    if task_targets is None:
        if task_mask is not None:
            raise ValueError(f"The 'task_mask' parameter of {owner} needs 'task_targets'.")
        return None, None, task_weight
    y = check_tensor(owner, "task_targets", task_targets, dtype=model.dtype, finite=True,
                     detach=True)
    check_shape(owner, "task_targets", y, [("B", "T", "O")], "activity", B=B, T=T,
                O=model.n_outputs)
    if task_mask is None:
        m = torch.ones(B, T, dtype=torch.bool)
    else:
        m = check_tensor(owner, "task_mask", task_mask, detach=True)
        check_shape(owner, "task_mask", m, [("B", "T"), ("B", "T", "O")], "task_targets", B=B,
                    T=T, O=model.n_outputs)
        m = m != 0
    return y.to(model.device), m.to(model.device), task_weight


@adapts_threads
def fit_to_activity(
    model: RecurrentModel,
    activity: Any,
    inputs: Any = None,
    *,
    recorded: Any,
    mask: Any = None,
    h0: str = "learned",
    task_targets: Any = None,
    task_mask: Any = None,
    task_weight: float = 1.0,
    validation: Any = None,
    config: TrainConfig | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> ActivityFit:
    """Fit the K networks of ``model`` by BPTT so that the units ``recorded`` reproduce
    ``activity`` (module docstring: mapping, alignment, initial state, loss).

    The loop is :func:`~dynrnn.training.train`'s: each iteration draws ``config.batch_size``
    training trials (a fresh permutation per epoch; all trials when there are fewer), runs the
    model with :func:`~dynrnn.models.run` (with the model's noise if ``config.noise``), and
    takes one :class:`~dynrnn.training.EnsembleOptimizer` step per network with per-network
    gradient clipping (``config.grad_clip``); every ``config.eval_every`` steps the noise-free
    activity MSE on ``validation`` (else on all training trials) is recorded, and a network
    whose value is below ``config.criterion`` stops (``config.early_stop``); non-finite or
    huge losses mark a network failed and freeze it. ``config.eval_batch_size`` and
    ``accuracy_threshold`` are not used.

    Arguments:
        model: K networks (any :class:`~dynrnn.models.RecurrentModel`; typically a
            :class:`~dynrnn.models.RateRNN` / ``Ensemble`` of them).
        activity: recorded rates ``[B, T, M]`` (shared by all networks) or ``[K, B, T, M]``
            (one recording per network), NaN = missing sample.
        inputs: ``[B, T, I]`` or ``[K or 1, B, T, I]`` (the stimuli of the trials); None = no
            input.
        recorded: ``[M]`` distinct unit indices of the model identified with the M neurons
            (M <= N; sparse recording when M < N).
        mask: ``[B, T]`` or ``[B, T, M]``: samples used (True), on top of non-NaN.
        h0: ``"learned"`` (default), ``"zeros"`` or ``"data"`` (module docstring).
        task_targets: ``[B, T, O]`` task targets of the readout (optional): the readout is
            trained with ``task_weight * masked_mse`` added to the activity loss.
        task_mask: ``[B, T]`` or ``[B, T, O]``, where the task targets count (default all).
        task_weight: weight of the task loss (>= 0).
        validation: held-out ``(activity, inputs[, mask])`` for the evaluations and the
            criterion (same recorded units).
        config: :class:`~dynrnn.training.TrainConfig` (n_steps, batch_size, optimizer, lr,
            weight_decay, l1, grad_clip, criterion, eval_every, early_stop, noise,
            divergence_threshold, progress).
        seed: seeds the trial order and the noise (same seed -> same result).
        progress: tqdm bar on stderr; None takes ``config.progress``.

    Returns:
        :class:`ActivityFit` (the model is fitted in place).
    """
    owner = "fit_to_activity"
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ParameterTypeError(
            f"The 'config' parameter of {owner} must be a TrainConfig or None. Got "
            f"{type(config).__name__} instead."
        )
    _check_model(owner, model)
    progress = config.progress if progress is None else check_bool(owner, "progress", progress)
    check_int(owner, "seed", seed, 0)
    check_choice(owner, "h0", h0, _H0_MODES)
    data = _prepare(owner, model, activity, inputs, recorded, mask)
    from_data = h0 == "data"
    B, T = data.n_trials, data.activity.shape[2]
    if from_data and T < 2:
        raise ValueError(
            f"The 'activity' parameter of {owner} needs T >= 2 steps with h0='data' (step 0 "
            f"sets the initial state). Got T={T}."
        )
    y_task, m_task, task_weight = _check_task(owner, model, task_targets, task_mask,
                                              task_weight, B, T)
    val = _check_validation(owner, validation, model, data.recorded)
    K, N = model.n_networks, model.n_units
    _check_per_network_settings(config, K)
    device, dtype = model.device, model.dtype
    order_seed, noise_seed = _seeds(seed, 2)
    order_gen = resolve_generator(order_seed)
    noise_gen = resolve_generator(noise_seed)
    base = torch.zeros(K, N, dtype=dtype, device=device)
    params = list(model.parameters())
    if h0 in ("learned", "data"):
        base = torch.nn.Parameter(base)
        params.append(base)
    opt = _optimizer(config, params)
    eval_data = data if val is None else val
    active = torch.ones(K, dtype=torch.bool, device=device)
    reached = np.zeros(K, dtype=bool)
    failed = np.zeros(K, dtype=bool)
    steps_to_criterion = np.full(K, -1, dtype=np.int64)
    losses = np.full((K, config.n_steps), np.nan)
    ev_step, ev_loss, ev_tau = [], [], []
    has_tau = hasattr(model, "tau")
    batch = min(config.batch_size, B)
    perm = torch.empty(0, dtype=torch.long)

    def evaluate(step: int):
        with torch.no_grad():
            S, _, target, observed = _simulate(model, eval_data, base.detach(), from_data)
            sse, n = _activity_sse(S, target, observed, eval_data.recorded)
            el = (sse / n.clamp(min=1)).double().cpu()
        ev_step.append(step)
        ev_loss.append(el.numpy())
        if has_tau:
            ev_tau.append(model.tau.detach().double().cpu().numpy().copy())
        still = active.cpu() & ~torch.as_tensor(failed)
        done = ((el < config.criterion) & still).numpy()
        steps_to_criterion[done & ~reached] = step
        reached[done] = True
        if config.early_stop:
            active[torch.as_tensor(done, device=device)] = False

    with progress_bar(progress, total=config.n_steps, desc=owner, unit="step") as bar:
        for step in range(config.n_steps):
            if batch == B:
                idx = None
            else:
                if perm.numel() < batch:
                    perm = torch.cat([perm, torch.randperm(B, generator=order_gen)])
                idx, perm = perm[:batch], perm[batch:]
            sub = data.trials(idx)
            S, Y, target, observed = _simulate(model, sub, base, from_data, noise=config.noise,
                                               generator=noise_gen)
            sse, n = _activity_sse(S, target, observed, sub.recorded)
            per_net = sse / n.clamp(min=1)
            if y_task is not None and task_weight > 0:
                yt = y_task if idx is None else y_task[idx]
                mt = m_task if idx is None else m_task[idx]
                if from_data:
                    yt, mt = yt[:, 1:], mt[:, 1:]
                per_net = per_net + task_weight * masked_mse(Y, yt, mt)
            total = per_net + config.l1 * _l1_penalty(model) if config.l1 else per_net
            if not _guarded_step(model, opt, config, per_net, total, active, failed,
                                 losses[:, step],
                                 extra_ok=lambda: torch.isfinite(base.detach()).all(1)):
                bar.update(1)
                break
            bar.update(1)
            if (step + 1) % config.eval_every == 0 or step == config.n_steps - 1:
                with stage("evaluating", bar):
                    evaluate(step + 1)
                if not bool(active.any()):
                    break
        if not ev_step or ev_step[-1] != step + 1:
            evaluate(step + 1)
        if step + 1 < config.n_steps:
            finish_early(bar, f"stopped: reached {int(reached.sum())}/{K}")
    reached &= ~failed
    history = History(
        loss=losses[:, : step + 1],
        eval_step=np.asarray(ev_step),
        eval_loss=np.stack(ev_loss, 1),
        eval_accuracy=None,
        level=None,
        tau=np.stack(ev_tau, 1) if has_tau else None,
        reached=reached,
        failed=failed,
        steps_to_criterion=steps_to_criterion,
        network_metadata=model.network_metadata(),
    )
    return ActivityFit(model=model, method="bptt", recorded=data.recorded, h0_mode=h0,
                       h0=base.detach().clone(), history=history)


# --------------------------------------------------------------------------- RLS
def rls_block_update(P: torch.Tensor, W: torch.Tensor, r: torch.Tensor, e: torch.Tensor) -> None:
    """One recursive-least-squares update from B simultaneous samples, in place, per network.

    For B = 1 this is FORCE's update (Sussillo & Abbott 2009, *Neuron* 63(4):544-557; the
    update of :func:`~dynrnn.training.force_train` and :class:`~dynrnn.training.RLSReadout`)::

        k = P r,  c = 1 / (1 + r.k),  P <- P - c k k^T,  W <- W - c e k^T

    and for B samples ``R [B, F]`` with a-priori errors ``E [B, O]`` (computed with the current
    W) its exact block form (Woodbury identity)::

        G = I_B + R P R^T,  Kg = P R^T G^-1,  P <- P - Kg R P,  W <- W - E^T Kg^T

    which equals B single-sample updates applied one after the other (each with its own
    a-priori error) -- the least-squares solution does not depend on the order. A sample with
    ``r = 0`` changes nothing (how masked samples are left out).

    Arguments:
        P: ``[K, F, F]`` inverse correlation matrices (symmetric), updated in place.
        W: ``[K, O, F]`` weights, updated in place (may be a view into a model's weights).
        r: ``[K, B, F]`` features.
        e: ``[K, B, O]`` a-priori errors ``W r - target``.
    """
    owner = "rls_block_update"
    for name, t in (("P", P), ("W", W), ("r", r), ("e", e)):
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be a floating tensor. Got "
                f"{type(t).__name__} instead."
            )
    check_shape(owner, "P", P, [("K", "F", "F")])
    K, F = P.shape[0], P.shape[1]
    if P.shape[2] != F:
        raise ValueError(f"The 'P' parameter of {owner} must be square [K, F, F]. Got "
                         f"{tuple(P.shape)} instead.")
    check_shape(owner, "W", W, [("K", "O", "F")], "P", K=K, F=F)
    check_shape(owner, "r", r, [("K", "B", "F")], "P", K=K, F=F)
    check_shape(owner, "e", e, [("K", "B", "O")], "r and W", K=K, B=r.shape[1], O=W.shape[1])
    _rls_block_update(P, W, r, e)


def _rls_block_update(P, W, r, e) -> None:
    """:func:`rls_block_update` without the checks (the training loop's hot path)."""
    Pr = torch.bmm(P, r.transpose(1, 2))  # [K, F, B]
    G = torch.bmm(r, Pr)  # [K, B, B]
    G = G + torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    gain = torch.linalg.solve(G, Pr.transpose(1, 2)).transpose(1, 2)  # [K, F, B] = Pr G^-1
    P.sub_(torch.bmm(gain, Pr.transpose(1, 2)))
    P.copy_(0.5 * (P + P.transpose(1, 2)))  # keep it symmetric against rounding
    W.sub_(torch.bmm(e.transpose(1, 2), gain.transpose(1, 2)))


@dataclass(frozen=True)
class RLSActivityConfig:
    """Hyperparameters of :func:`fit_to_activity_rls`.

    Attributes:
        n_epochs: passes over the training trials (CURBD's "training runs"; Perich et al. 2020
            use 2000 runs of one long recording by default).
        batch_size: trials run side by side, their samples of one step entering one block RLS
            update (:func:`rls_block_update`); 1 = the classic trial-by-trial update.
        alpha: ``P(0) = I / alpha`` (> 0); CURBD's default ``P0 = 1`` is alpha = 1.
        plastic_fraction: PINning's fraction p of plastic presynaptic units: the weights from a
            random ``round(p N)`` units onto the recorded units learn, the rest stay at their
            initial values (Rajan, Harvey & Tank 2016); 1 = all (CURBD).
        train_inputs: the recorded units' input weights and bias also learn by RLS (their
            features ``x_t`` and 1 are appended to the presynaptic rates). PINning and CURBD
            drive the network with fixed inputs; True here lets a student learn how a task's
            stimuli enter.
        update_every: steps between RLS updates (>= 1).
        criterion: stop a network once the held-out activity MSE after an epoch is below this
            (0 = never).
        noise: use the model's recurrent / input noise during the training runs.
        progress: tqdm bar on stderr over the epochs.
    """

    n_epochs: int = 20
    batch_size: int = 1
    alpha: float = 1.0
    plastic_fraction: float = 1.0
    train_inputs: bool = True
    update_every: int = 1
    criterion: float = 0.0
    noise: bool = False
    progress: bool = True

    constraints: ClassVar[dict[str, Constraint]] = {
        "n_epochs": Int(1),
        "batch_size": Int(1),
        "alpha": Float(0.0, None, low_inclusive=False),
        "plastic_fraction": Float(0.0, 1.0, low_inclusive=False),
        "train_inputs": Bool(),
        "update_every": Int(1),
        "criterion": Float(0.0),
        "noise": Bool(),
        "progress": Bool(),
    }

    def __post_init__(self):
        validate_config(self)


@adapts_threads
def fit_to_activity_rls(
    model: RateRNN,
    activity: Any,
    inputs: Any = None,
    *,
    recorded: Any,
    mask: Any = None,
    h0: str = "data",
    task_targets: Any = None,
    task_mask: Any = None,
    validation: Any = None,
    config: RLSActivityConfig | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> ActivityFit:
    """Fit the recorded units' incoming weights of K rate RNNs by recursive least squares
    while the networks run freely (PINning / CURBD, module docstring), in place.

    At every step t of a training run the network advances with its current weights,
    ``h_t = F(h_{t-1}, x_t)``; the a-priori error of each recorded unit is its new activity
    minus the recorded rate, ``e_t = h_t[recorded] - d_t`` (CURBD's ``trainType='rates'``:
    the error of ``phi(J r)`` against the data, Perich et al. 2020), and the rows
    ``[W_rec[recorded, plastic], W_in[recorded], b[recorded]]`` -- one weight matrix ``W`` per
    network -- take the RLS step :func:`rls_block_update` with the features
    ``r_t = [h_{t-1}[plastic], x_t, 1]`` (inputs and bias only with ``train_inputs``) and one
    ``P`` per network shared by all rows (all recorded units see the same presynaptic rates), as
    in FORCE (Sussillo & Abbott 2009, *Neuron* 63(4):544-557) and PINning (Rajan, Harvey &
    Tank 2016, *Neuron* 90(1):128-142). With ``batch_size`` B > 1, B trials run side by side
    and their samples of a step enter one exact block update. Missing samples (NaN) contribute
    no error (a step where every recorded neuron is missing is left out entirely). The
    unrecorded units keep their weights. With ``task_targets`` the readout ``W_out`` (and
    ``b_out``) is trained at the same time by FORCE's RLS on ``[h_t, 1]`` (errors
    ``y_t - f_t`` where ``task_mask``), its own ``P``.

    Each epoch runs every training trial once (in a fresh random order), then records the
    noise-free activity MSE of a free run on ``validation`` (else the training trials).

    Arguments:
        model: a :class:`~dynrnn.models.RateRNN` (K networks; not Dale).
        activity, inputs, recorded, mask: as :func:`fit_to_activity`.
        h0: ``"data"`` (default: recorded units from the first sample, the others 0) or
            ``"zeros"``.
        task_targets: ``[B, T, O]`` readout targets (optional); task_mask ``[B, T]``.
        validation: held-out ``(activity, inputs[, mask])``.
        config: :class:`RLSActivityConfig`.
        seed: seeds the plastic subset, the trial order and the noise.
        progress: tqdm bar; None takes ``config.progress``.

    Returns:
        :class:`ActivityFit` with ``P`` and ``plastic``.
    """
    owner = "fit_to_activity_rls"
    config = RLSActivityConfig() if config is None else config
    if not isinstance(config, RLSActivityConfig):
        raise ParameterTypeError(
            f"The 'config' parameter of {owner} must be an RLSActivityConfig or None. Got "
            f"{type(config).__name__} instead."
        )
    _check_model(owner, model, rls=True)
    progress = config.progress if progress is None else check_bool(owner, "progress", progress)
    check_int(owner, "seed", seed, 0)
    check_choice(owner, "h0", h0, ("zeros", "data"))
    data = _prepare(owner, model, activity, inputs, recorded, mask)
    from_data = h0 == "data"
    B, T = data.n_trials, data.activity.shape[2]
    if from_data and T < 2:
        raise ValueError(
            f"The 'activity' parameter of {owner} needs T >= 2 steps with h0='data' (step 0 "
            f"sets the initial state). Got T={T}."
        )
    y_task, m_task, _ = _check_task(owner, model, task_targets, task_mask, 1.0, B, T)
    val = _check_validation(owner, validation, model, data.recorded)
    K, N, I = model.n_networks, model.n_units, model.n_inputs
    c = model.config
    device, dtype = model.device, model.dtype
    plastic_seed, order_seed, noise_seed = _seeds(seed, 3)
    g_plastic = resolve_generator(plastic_seed)
    order_gen = resolve_generator(order_seed)
    noise_gen = resolve_generator(noise_seed)
    n_plastic = max(1, int(round(config.plastic_fraction * N)))
    if n_plastic == N:
        plastic = torch.arange(N).expand(K, N).clone()
    else:
        plastic = torch.stack([torch.randperm(N, generator=g_plastic)[:n_plastic].sort().values
                               for _ in range(K)])
    plastic = plastic.to(device)
    rec = torch.as_tensor(data.recorded, device=device)
    use_in = config.train_inputs and I > 0
    use_b = config.train_inputs and c.bias
    F = n_plastic + (I if use_in else 0) + (1 if use_b else 0)
    P = (torch.eye(F, dtype=dtype, device=device) / config.alpha).expand(K, F, F).clone()
    kk = torch.arange(K, device=device)[:, None, None]
    rows = rec[None, :, None]
    cols = plastic[:, None, :]

    def gather_weights() -> torch.Tensor:
        parts = [model.W_rec.detach()[kk, rows, cols]]  # [K, M, n_plastic]
        if use_in:
            parts.append(model.W_in.detach()[:, rec])
        if use_b:
            parts.append(model.b.detach()[:, rec, None])
        return torch.cat(parts, -1).clone()

    def scatter_weights(W: torch.Tensor) -> None:
        with torch.no_grad():
            model.W_rec[kk, rows, cols] = W[..., :n_plastic]
            j = n_plastic
            if use_in:
                model.W_in[:, rec] = W[..., j:j + I]
                j += I
            if use_b:
                model.b[:, rec] = W[..., j]
            model.project_()

    readout_bias = bool(c.readout_bias)
    if y_task is not None:
        Fo = N + (1 if readout_bias else 0)
        P_out = (torch.eye(Fo, dtype=dtype, device=device) / config.alpha).expand(
            K, Fo, Fo).clone()
    eval_data = data if val is None else val
    active = torch.ones(K, dtype=torch.bool, device=device)
    reached = np.zeros(K, dtype=bool)
    failed = np.zeros(K, dtype=bool)
    steps_to_criterion = np.full(K, -1, dtype=np.int64)
    losses = np.full((K, config.n_epochs), np.nan)
    ev_step, ev_loss = [], []
    base = torch.zeros(K, N, dtype=dtype, device=device)

    def evaluate(epoch: int):
        with torch.no_grad():
            S, _, target, observed = _simulate(model, eval_data, base, from_data)
            sse, n = _activity_sse(S, target, observed, eval_data.recorded)
            el = (sse / n.clamp(min=1)).double().cpu()
        el = torch.where(torch.isfinite(el), el, torch.full_like(el, float("inf")))
        ev_step.append(epoch)
        ev_loss.append(el.numpy())
        still = active.cpu() & ~torch.as_tensor(failed)
        done = ((el < config.criterion) & still).numpy() if config.criterion > 0 else (
            np.zeros(K, dtype=bool))
        steps_to_criterion[done & ~reached] = epoch
        reached[done] = True
        active[torch.as_tensor(done, device=device)] = False

    steps_done = 0
    with torch.no_grad(), progress_bar(progress, total=config.n_epochs, desc=owner,
                                       unit="epoch") as bar:
        for epoch in range(config.n_epochs):
            order = torch.randperm(B, generator=order_gen)
            sq_err = torch.zeros(K, dtype=torch.float64, device=device)
            n_err = torch.zeros(K, dtype=torch.float64, device=device)
            for start in range(0, B, config.batch_size):
                idx = order[start:start + config.batch_size]
                sub = data.trials(idx)
                x, target, observed = _window(sub, from_data)
                Bb, Tw = x.shape[1], x.shape[2]
                h = _initial_states(sub, base, from_data).clone()
                x_tm = x.expand(K, -1, -1, -1)
                if config.noise:
                    x_tm = model.perturb_inputs(x_tm, noise_gen)
                    state_noise = model.sample_noise(Bb, Tw, noise_gen)
                else:
                    state_noise = None
                W = gather_weights()
                if y_task is not None:
                    yt, mt = y_task[idx], m_task[idx]
                    if from_data:
                        yt, mt = yt[:, 1:], mt[:, 1:]
                    if mt.ndim == 2:
                        mt = mt[..., None].expand(-1, -1, model.n_outputs)
                for t in range(Tw):
                    params = model.prepare()
                    x_t = x_tm[:, :, t]
                    drive = model.input_drive(x_t)
                    nz = None if state_noise is None else state_noise[:, t]
                    h_new = model.step_drive(h, drive, params, nz)
                    d_t = target[:, :, t].expand(K, -1, -1)
                    obs_t = observed[:, :, t].expand(K, -1, -1)
                    e = torch.where(obs_t, h_new[..., rec] - torch.nan_to_num(d_t, nan=0.0),
                                    torch.zeros((), dtype=dtype, device=device))
                    sq_err += (e.double() ** 2).sum((1, 2))
                    n_err += obs_t.double().sum((1, 2))
                    if (steps_done + t) % config.update_every == 0:
                        parts = [torch.gather(h, 2, plastic[:, None, :].expand(-1, Bb, -1))]
                        if use_in:
                            parts.append(x_t.expand(K, -1, -1))
                        if use_b:
                            parts.append(torch.ones(K, Bb, 1, dtype=dtype, device=device))
                        r = torch.cat(parts, -1)
                        seen = obs_t.any(-1, keepdim=True) & active[:, None, None]
                        r = r * seen.to(dtype)
                        _rls_block_update(P, W, r, e * active[:, None, None].to(dtype))
                        scatter_weights(W)
                        if y_task is not None:
                            z = model.readout(h_new)
                            ro = [h_new] + ([torch.ones(K, Bb, 1, dtype=dtype, device=device)]
                                            if readout_bias else [])
                            ro = torch.cat(ro, -1)
                            m_t = mt[:, t].expand(K, -1, -1)
                            eo = torch.where(m_t, z - yt[:, t], torch.zeros((), dtype=dtype))
                            ro = ro * (m_t.any(-1, keepdim=True)
                                       & active[:, None, None]).to(dtype)
                            Wo = model.W_out.detach().clone()
                            if readout_bias:
                                Wo = torch.cat([Wo, model.b_out.detach()[..., None]], -1)
                            _rls_block_update(P_out, Wo, ro,
                                              eo * active[:, None, None].to(dtype))
                            model.W_out.copy_(Wo[..., :N])
                            if readout_bias:
                                model.b_out.copy_(Wo[..., N])
                    h = h_new
                steps_done += Tw
            losses[:, epoch] = np.where(active.cpu().numpy(),
                                        (sq_err / n_err.clamp(min=1)).cpu().numpy(), np.nan)
            ok = _finite_per_network(model) & torch.isfinite(P).reshape(K, -1).all(1)
            if not bool(ok.all()):
                failed |= ~ok.cpu().numpy()
                active &= ok
            with stage("evaluating", bar):
                evaluate(epoch + 1)
            bar.update(1)
            if not bool(active.any()):
                break
        if epoch + 1 < config.n_epochs:
            finish_early(bar, f"stopped: reached {int(reached.sum())}/{K}")
    reached &= ~failed
    history = History(
        loss=losses[:, : epoch + 1],
        eval_step=np.asarray(ev_step),
        eval_loss=np.stack(ev_loss, 1),
        eval_accuracy=None,
        level=None,
        tau=None,
        reached=reached,
        failed=failed,
        steps_to_criterion=steps_to_criterion,
        network_metadata=model.network_metadata(),
    )
    return ActivityFit(model=model, method="rls", recorded=data.recorded, h0_mode=h0, h0=base,
                       history=history, P=P, plastic=plastic)
