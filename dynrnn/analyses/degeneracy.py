"""Solution degeneracy across networks trained on one task (Huang et al. 2025).

Three levels, each measured across the networks of an ensemble, several ensembles or a zoo query:

* **behaviour** -- :func:`behavioural_degeneracy`: each network's error on an out-of-distribution
  version of the task (``task.ood()``: doubled delay for delayed discrimination, doubled trial
  length for flip-flop) and the spread (std) of that error across networks;
* **dynamics** -- the mean pairwise DSA distance (:func:`dynrnn.analyses.similarity.dsa`) of the
  networks' trajectories on the same inputs;
* **weights** -- the mean pairwise permutation-invariant weight distance
  (:func:`dynrnn.analyses.similarity.weight_distance`), defined between networks of equal size.

:func:`degeneracy_report` gathers the three into one ``xarray.Dataset`` with the pairwise
matrices, per-network behaviour, the networks' hyperparameters as coordinates, and summary
statistics overall and per group of any coordinate (task complexity, network size, regularisation,
learning regime). :func:`dynrnn.plot.plot_degeneracy` draws the three levels side by side.

Levers that control degeneracy during training (the study's manipulations): network size
(``n_units`` of the model config), structural regularisation (``TrainConfig.l1`` and
``TrainConfig.weight_decay``) and feature-learning strength (the readout scaling; see
:func:`readout_multiplier`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import xarray as xr

from .._validation import ParameterTypeError, check_bool, check_choice, check_int
from ._common import network_coords, to_numpy
from .similarity import dsa, fit_dmd, procrustes_vector_fields, trajectories, weight_distance

__all__ = [
    "behavioural_degeneracy",
    "degeneracy_report",
    "degeneracy_summary",
    "readout_multiplier",
]

LEVELS = ("behaviour", "dynamics", "weights")


def readout_multiplier(n_units: int, regime: str = "standard") -> float:
    """The readout multiplier that sets the feature-learning strength (lazy vs rich).

    With a readout ``y = m W_out h`` and ``W_out ~ O(1/sqrt(N))`` at initialisation, ``m = 1``
    ("standard") gives the usual parametrisation; ``m = 1/sqrt(N)`` ("rich", the mean-field /
    muP-style ``1/N`` overall output scale) forces the hidden representation to move to fit the
    targets (feature learning); ``m = sqrt(N)`` ("lazy") lets the output fit with vanishing
    changes of the recurrent weights (the kernel regime).

    Arguments:
        n_units: N.
        regime: ``"lazy"``, ``"standard"`` or ``"rich"``.

    Returns:
        The multiplier m.
    """
    N = check_int("readout_multiplier", "n_units", n_units, 1)
    check_choice("readout_multiplier", "regime", regime, ("lazy", "standard", "rich"))
    return {"lazy": math.sqrt(N), "standard": 1.0, "rich": 1.0 / math.sqrt(N)}[regime]


# --------------------------------------------------------------------------- sources
@runtime_checkable
class NetworkStore(Protocol):
    """What the degeneracy analyses use of a store of networks, such as :class:`dynrnn.zoo.Zoo`
    (matched by these two methods, so that analyses never import the zoo layer above them).

    ``metadata(ids)`` returns one dict per network id, in the given order, holding at least
    ``"id"`` and ``"model"`` (a ``MODEL_REGISTRY`` name) and the model's structural fields;
    ``load(ids)`` stacks those networks into one model, network ``j`` being ``ids[j]``.
    """

    def metadata(self, ids: Sequence[str]) -> list[dict]: ...

    def load(self, ids: Sequence[str]) -> Any: ...


def _as_models(source: Any, ids: Sequence[str] | None, owner: str) -> tuple[list, list | None]:
    """``(models, rows)`` from a model, a sequence of models, or a network store (a Zoo) plus
    ids. Stored networks are grouped so that networks that can be stacked (same model and
    structural fields) are loaded together; ``rows`` then holds the store's row of every network
    (task fields, outcome, tags) in the order of the models' networks."""
    from ..models.base import MODEL_REGISTRY

    if isinstance(source, NetworkStore) and not hasattr(source, "network_metadata"):
        if not ids:
            raise ValueError(
                f"The 'ids' parameter of {owner} must name networks of the zoo (e.g. a "
                "zoo.query(...) result)."
            )
        groups: dict[str, list[dict]] = {}
        for row in source.metadata(list(ids)):
            cls = MODEL_REGISTRY.get(row.get("model"))
            fields = getattr(cls, "structural_fields", ())
            key = repr((row.get("model"), [row.get(f) for f in fields]))
            groups.setdefault(key, []).append(row)
        models = [source.load([r["id"] for r in g]) for g in groups.values()]
        rows = [r for g in groups.values() for r in g]
        return models, rows
    if ids is not None:
        raise ValueError(f"The 'ids' parameter of {owner} is only used with a Zoo source.")
    models = list(source) if isinstance(source, (list, tuple)) else [source]
    if not models:
        raise ValueError(f"The 'models' parameter of {owner} must not be empty.")
    for m in models:
        if not hasattr(m, "n_networks") or not hasattr(m, "network_metadata"):
            raise ValueError(
                f"The 'models' parameter of {owner} must hold dynrnn models (or be a Zoo with "
                f"ids). Got {type(m).__name__}."
            )
    return models, None


def _check_task(task: Any, models: list, owner: str, name: str = "task") -> None:
    """Raise naming ``name`` unless ``task`` samples trials whose inputs and targets fit every
    model (``n_inputs`` / ``n_outputs`` where the task declares them)."""
    if not callable(getattr(task, "sample", None)):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a dynrnn task (with sample()). Got "
            f"{type(task).__name__} instead."
        )
    for attr in ("n_inputs", "n_outputs"):
        want = getattr(task, attr, None)
        if want is None or (attr == "n_outputs" and getattr(task, "kind", "") == "classification"):
            continue
        bad = sorted({int(getattr(m, attr)) for m in models if int(getattr(m, attr)) != want})
        if bad:
            raise ValueError(
                f"The {name!r} parameter of {owner} has {attr}={want}; the 'models' have "
                f"{attr}={bad}."
            )


def _group_names(by: Any, owner: str, name: str) -> list[str]:
    """``by`` (None, a coordinate name or a sequence of them) as a list of names."""
    if by is None:
        return []
    names = [by] if isinstance(by, str) else by
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be None, a coordinate name or a sequence "
            f"of names. Got {by!r} instead."
        )
    return list(names)


def _concat_coords(models: list, rows: list | None = None) -> dict:
    per = [network_coords(m) for m in models]
    keys: list[str] = []
    for c in per:
        keys.extend(k for k in c if k not in keys and k != "network")
    K = sum(m.n_networks for m in models)
    coords = {"network": ("network", np.arange(K))}
    columns: dict[str, list] = {}
    for key in keys:
        vals: list = []
        for c, m in zip(per, models):
            if key in c:
                vals.extend(np.asarray(c[key][1]).tolist())
            else:
                vals.extend(["None"] * m.n_networks)
        columns[key] = vals
    if rows is not None:  # zoo columns: task fields, outcome, id (scalars only)
        for key in dict.fromkeys(k for r in rows for k in r):
            if key in columns or key in ("created", "tags"):
                continue
            vals = [r.get(key) for r in rows]
            if all(isinstance(v, (bool, int, float, str)) for v in vals):
                columns[key] = vals
    for key, vals in columns.items():
        types = {type(v) for v in vals}
        if len(types) > 1 and not types <= {int, float, bool}:
            vals = [str(v) for v in vals]
        coords[key] = ("network", np.asarray(vals))
    return coords


# --------------------------------------------------------------------------- behaviour
def _errors(model, task, n_trials: int, seed: int) -> np.ndarray:
    from ..functional.losses import masked_mse
    from ..models.base import run

    trials = task.sample(n_trials, seed).to(model.device, model.dtype)
    with torch.no_grad():
        _, out = run(model, trials.inputs, generator=seed)
        return to_numpy(masked_mse(out, trials.targets, trials.mask).double())


def behavioural_degeneracy(
    models: Any,
    task: Any,
    *,
    ood_task: Any = None,
    n_trials: int = 256,
    seed: int = 0,
    ids: Sequence[str] | None = None,
) -> xr.Dataset:
    """In-distribution and out-of-distribution error of every network, and their spread.

    Arguments:
        models: a model (K networks), a sequence of models, or a :class:`~dynrnn.zoo.Zoo` with
            ``ids``.
        task: the training task (regression tasks: masked MSE).
        ood_task: the shifted task; default ``task.ood()`` (doubled delay or trial length).
        n_trials: trials per evaluation; seed: seeds the trials (same trials for all networks).

    Returns:
        ``xarray.Dataset`` with ``error`` and ``ood_error [network]`` and scalars ``ood_error_std``
        (the behavioural degeneracy), ``ood_error_mean``, with hyperparameter coordinates.
    """
    owner = "behavioural_degeneracy"
    n_trials = check_int(owner, "n_trials", n_trials, 1)
    check_int(owner, "seed", seed, 0)
    ms, rows = _as_models(models, ids, owner)
    if ood_task is None:
        if not hasattr(task, "ood"):
            raise ValueError(
                f"The 'task' parameter of {owner} has no ood(); pass 'ood_task' explicitly."
            )
        ood_task = task.ood()
    _check_task(task, ms, owner)
    _check_task(ood_task, ms, owner, "ood_task")
    err = np.concatenate([_errors(m, task, n_trials, seed) for m in ms])
    ood = np.concatenate([_errors(m, ood_task, n_trials, seed + 1) for m in ms])
    ds = xr.Dataset(
        {"error": ("network", err), "ood_error": ("network", ood)},
        coords=_concat_coords(ms, rows),
    )
    ds["ood_error_std"] = ((), float(np.nanstd(ood)))
    ds["ood_error_mean"] = ((), float(np.nanmean(ood)))
    ds["ood_error"].attrs["long_name"] = "masked MSE on the out-of-distribution task"
    ds.attrs.update(analysis="behavioural_degeneracy", references="Huang et al. 2025",
                    n_trials=n_trials, seed=seed)
    return ds


# --------------------------------------------------------------------------- report
def _mean_offdiag(D: np.ndarray, members: np.ndarray | None = None) -> float:
    if members is not None:
        D = D[np.ix_(members, members)]
    K = D.shape[0]
    if K < 2:
        return float("nan")
    vals = D[~np.eye(K, dtype=bool)]
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else float("nan")


def _group_key(key: tuple) -> tuple:
    """Sort numbers numerically and before strings."""
    return tuple(
        (0, float(v), "") if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        else (1, 0.0, str(v))
        for v in key
    )


def degeneracy_summary(report: xr.Dataset, by: str | Sequence[str] | None = None) -> xr.Dataset:
    """Summary statistics of a :func:`degeneracy_report`, overall or per group.

    Arguments:
        report: the Dataset of :func:`degeneracy_report`.
        by: a coordinate name along ``network`` (or several): statistics are computed over the
            networks of each group (pairs within the group only).

    Returns:
        ``xarray.Dataset`` with ``dynamical_degeneracy`` (mean pairwise DSA),
        ``weight_degeneracy`` (mean pairwise weight distance), ``behavioural_degeneracy``
        (std of OOD error), ``representational_degeneracy`` (mean Procrustes distance, when
        present), ``ood_error_mean`` and ``n_networks`` -- scalars, or along dim ``group`` with
        one coordinate per grouping key.
    """
    if not isinstance(report, xr.Dataset) or "network" not in report.dims:
        raise ParameterTypeError(
            "The 'report' parameter of degeneracy_summary must be an xarray.Dataset with a "
            f"'network' dimension (from degeneracy_report). Got {type(report).__name__} instead."
        )
    names = _group_names(by, "degeneracy_summary", "by")
    for n in names:
        if n not in report.coords:
            raise ValueError(
                f"The 'by' parameter of degeneracy_summary must name coordinates along 'network'; "
                f"{n!r} is not one of {sorted(k for k in report.coords if k != 'network')}."
            )
    K = report.sizes["network"]
    if names:
        keys = list(zip(*[report[n].values.tolist() for n in names]))
        uniq = sorted(set(keys), key=_group_key)
        groups = [np.array([i for i in range(K) if keys[i] == u]) for u in uniq]
    else:
        uniq, groups = [()], [np.arange(K)]

    def stat(fn):
        return np.array([fn(g) for g in groups])

    out = {"n_networks": stat(len)}
    if "dsa" in report:
        out["dynamical_degeneracy"] = stat(lambda g: _mean_offdiag(report["dsa"].values, g))
    if "weight_distance" in report:
        out["weight_degeneracy"] = stat(
            lambda g: _mean_offdiag(report["weight_distance"].values, g)
        )
    if "procrustes" in report:
        out["representational_degeneracy"] = stat(
            lambda g: _mean_offdiag(report["procrustes"].values, g)
        )
    if "ood_error" in report:
        ood = report["ood_error"].values
        out["behavioural_degeneracy"] = stat(
            lambda g: float(np.nanstd(ood[g])) if len(g) > 1 else float("nan")
        )
        out["ood_error_mean"] = stat(lambda g: float(np.nanmean(ood[g])))
    if not names:
        return xr.Dataset({k: ((), v[0]) for k, v in out.items()}, attrs={"by": ""})
    coords = {n: ("group", np.asarray([u[i] for u in uniq])) for i, n in enumerate(names)}
    coords["group"] = np.arange(len(uniq))
    return xr.Dataset(
        {k: ("group", v) for k, v in out.items()}, coords=coords, attrs={"by": " ".join(names)}
    )


def degeneracy_report(
    models: Any,
    task: Any,
    *,
    ids: Sequence[str] | None = None,
    levels: Sequence[str] = LEVELS,
    group_by: str | Sequence[str] | None = None,
    ood_task: Any = None,
    n_trials: int = 256,
    n_dsa_trials: int = 8,
    dsa_kwargs: dict | None = None,
    weight_kwargs: dict | None = None,
    representations: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Pairwise distances at the levels of behaviour, dynamics and weights, with summaries.

    Arguments:
        models: a model (K networks), a sequence of models (e.g. one per network size), or a
            :class:`~dynrnn.zoo.Zoo` with ``ids`` (e.g. ``zoo.query(task="flipflop")``).
        task: the task the networks were trained on (same inputs are used for every network).
        levels: any of ``"behaviour"``, ``"dynamics"``, ``"weights"``.
        group_by: coordinate(s) along ``network`` for the grouped summary (e.g. ``"n_units"``).
        ood_task: the shifted task of the behaviour level (default ``task.ood()``).
        n_trials: trials of the behaviour evaluation; n_dsa_trials: trials whose trajectories
            enter DSA (and the representational distances).
        dsa_kwargs: options of :func:`~dynrnn.analyses.similarity.dsa` (default ``n_delays=10,
            rank=`` min(30, N * n_delays)).
        weight_kwargs: options of :func:`~dynrnn.analyses.similarity.weight_distance`.
        representations: also compute the Procrustes shape distance of the trajectories
            (networks must share their sample count, which they do on the same trials).
        seed: seeds the trials.

    Returns:
        ``xarray.Dataset`` over ``network`` and ``network_b`` with ``dsa``, ``dsa_euclidean``,
        ``wasserstein``, ``weight_distance`` (NaN between networks of different sizes),
        ``procrustes`` (optional), ``error`` and ``ood_error [network]``, the networks'
        hyperparameters as coordinates, overall summaries (``dynamical_degeneracy``,
        ``weight_degeneracy``, ``behavioural_degeneracy``, ...) and, with ``group_by``, the same
        per group as ``group_*`` variables along dim ``group``.
    """
    owner = "degeneracy_report"
    if isinstance(levels, str):
        levels = (levels,)
    if not isinstance(levels, Sequence):
        raise ParameterTypeError(
            f"The 'levels' parameter of {owner} must be a sequence of {list(LEVELS)}. Got "
            f"{levels!r} instead."
        )
    for lv in levels:
        check_choice(owner, "levels", lv, LEVELS)
    n_trials = check_int(owner, "n_trials", n_trials, 1)
    n_dsa_trials = check_int(owner, "n_dsa_trials", n_dsa_trials, 1)
    check_int(owner, "seed", seed, 0)
    check_bool(owner, "representations", representations)
    group_names = _group_names(group_by, owner, "group_by")
    for name, kw_, fn in (("dsa_kwargs", dsa_kwargs, dsa), ("weight_kwargs", weight_kwargs,
                                                              weight_distance)):
        if kw_ is None:
            continue
        if not isinstance(kw_, dict):
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be a dict of options of {fn.__name__} "
                f"or None. Got {kw_!r} instead."
            )
        known = set(inspect.signature(fn).parameters) - {"states", "states_b", "model",
                                                          "model_b"}
        unknown = sorted(set(kw_) - known)
        if unknown:
            raise ValueError(
                f"The {name!r} parameter of {owner} has options {unknown} that {fn.__name__} "
                f"does not take; it takes {sorted(known)}."
            )
    ms, rows = _as_models(models, ids, owner)
    if "behaviour" in levels or "dynamics" in levels or representations:
        _check_task(task, ms, owner)
    coords = _concat_coords(ms, rows)
    missing = [n for n in group_names if n not in coords]
    if missing:
        raise ValueError(
            f"The 'group_by' parameter of {owner} must name coordinates along 'network'; "
            f"{missing} are not among {sorted(k for k in coords if k != 'network')}."
        )
    K = len(coords["network"][1])
    ds = xr.Dataset(coords=coords).assign_coords(network_b=np.arange(K))
    offsets = np.cumsum([0] + [m.n_networks for m in ms])
    if "behaviour" in levels:
        beh = behavioural_degeneracy(ms, task, ood_task=ood_task, n_trials=n_trials, seed=seed)
        ds["error"] = ("network", beh["error"].values)
        ds["ood_error"] = ("network", beh["ood_error"].values)
    if "dynamics" in levels or representations:
        trials = task.sample(n_dsa_trials, seed + 2)
        states = [trajectories(m, trials, seed=seed) for m in ms]
    if "dynamics" in levels:
        kw = dict(dsa_kwargs or {})
        n_min = min(m.n_units for m in ms)
        kw.setdefault("n_delays", 10)
        kw.setdefault("rank", min(30, n_min * kw["n_delays"]))
        dmd_keys = ("n_delays", "delay_interval", "rank", "lamb", "method")
        dmd_kw = {k: kw.pop(k) for k in dmd_keys if k in kw}
        if len(ms) == 1:
            res = dsa(states[0], **dmd_kw, **kw)
            A = res["dmd"].values
        else:
            A = np.concatenate([to_numpy(fit_dmd(s, **dmd_kw)) for s in states])
            kw.pop("wasserstein", None)
            res = procrustes_vector_fields(A, **kw).rename(
                {"angular": "dsa", "euclidean": "dsa_euclidean"}
            )
            from .similarity import eigenvalue_wasserstein

            res["wasserstein"] = eigenvalue_wasserstein(A)["wasserstein"]
        for name in ("dsa", "dsa_euclidean", "wasserstein"):
            if name in res:
                ds[name] = (("network", "network_b"), res[name].values)
        ds["dmd"] = (("network", "mode", "mode_from"), A)
        ds.attrs.update({f"dsa_{k}": v for k, v in dmd_kw.items()})
    if representations:
        from .similarity import procrustes_distance

        Ns = {s.shape[-1] for s in states}
        flat = [s.reshape(s.shape[0], -1, s.shape[-1]) for s in states]
        P = np.full((K, K), np.nan)
        for a, Xa in enumerate(flat):
            for b, Xb in enumerate(flat):
                if b < a:
                    continue
                sa = slice(offsets[a], offsets[a + 1])
                sb = slice(offsets[b], offsets[b + 1])
                block = procrustes_distance(Xa, None if a == b else Xb)["procrustes"].values
                P[sa, sb] = block
                P[sb, sa] = block.T
        ds["procrustes"] = (("network", "network_b"), P)
        ds.attrs["representation_sizes"] = " ".join(map(str, sorted(Ns)))
    if "weights" in levels:
        Wd = np.full((K, K), np.nan)
        wkw = dict(weight_kwargs or {})
        for a, ma in enumerate(ms):
            for b, mb in enumerate(ms):
                if b < a or ma.n_units != mb.n_units or ma.n_inputs != mb.n_inputs:
                    continue
                sa = slice(offsets[a], offsets[a + 1])
                sb = slice(offsets[b], offsets[b + 1])
                block = weight_distance(ma, None if a == b else mb, **wkw)
                block = block["weight_distance"].values
                Wd[sa, sb] = block
                Wd[sb, sa] = block.T
        ds["weight_distance"] = (("network", "network_b"), Wd)
    overall = degeneracy_summary(ds)
    for name in overall.data_vars:
        ds[name] = overall[name]
    if group_by is not None:
        grouped = degeneracy_summary(ds, group_by)
        ds = ds.assign_coords(
            {f"group_{n}": ("group", grouped[n].values) for n in grouped.attrs["by"].split()}
        )
        ds = ds.assign_coords(group=grouped["group"].values)
        for name in grouped.data_vars:
            ds[f"group_{name}"] = ("group", grouped[name].values)
        ds.attrs["group_by"] = grouped.attrs["by"]
    ds.attrs.update(
        analysis="degeneracy_report",
        references="Huang et al. 2025; Ostrow et al. 2023",
        levels=" ".join(levels),
        seed=seed,
    )
    return ds
