"""Analyses over a zoo: map fixed points, Lyapunov spectra, timescales, behavioural degeneracy
(per network) and CKA, DSA and weight distance (pairwise) over every network of a zoo, chunk
by chunk, into one resumable zarr store per analysis (:mod:`dynrnn.batch.store`).

How a run goes (:func:`analyze`): the networks are grouped by zoo entry (one stacked model
needs one structure) and cut into chunks of at most ``chunk_size``; chunks already done in the
store are skipped; for every other chunk a worker (:func:`dynrnn.batch.executors.map_chunks`:
in process, local processes or Dask) opens the zoo read-only, loads the chunk's networks as one
model, runs the analysis and returns the chunk's Dataset padded to the store's layout; the main
process -- the only writer -- writes it by the store's crash-safety rule. A chunk that raises is
recorded (``errors/<chunk>.json``, :class:`AnalyzeReport.errors`) and the others go on; it is
computed again by the next run.

Failing networks: networks with non-finite parameters are marked ``failed`` and the analysis
runs on the rest of the chunk; if the analysis of the chunk raises (e.g. one network's
trajectory diverges), every network is analysed alone and those that raise are marked
``failed`` with their error while the others are kept with status ``ok_alone``. Only when
every network of a chunk fails does the chunk count as raising.

Determinism: a chunk's result depends only on its networks and the options, so the in-process,
process-pool and Dask runs write identical stores. The fixed-point and Lyapunov analyses draw
their random initial states for all networks of a model at once, so their values depend on the
chunking (a network's initial states depend on its position in its chunk): resuming requires
the same ``chunk_size`` (the store refuses other settings), and the "direct" equivalent of a
chunk is the analysis called on ``zoo.load(chunk ids)``. The timescale and CKA simulations draw
their inputs and initial states per network shape (``[B, T, I]``, ``[B, N]``), so they do not
depend on the chunking.

Defaults of each analysis (override with ``fixed_points={...}`` etc.):

* ``"fixed_points"``: :func:`~dynrnn.analyses.find_fixed_points` with its defaults except
  ``eigenvectors=False`` (they would be ``[F, N, N]`` complex per network); store option
  ``max_fixed_points=32`` (the fixed-point dimension's size in the store; the counts stay exact,
  ``fixed_points_truncated`` flags networks with more).
* ``"lyapunov"``: :func:`~dynrnn.analyses.lyapunov_spectrum` with its defaults.
* ``"timescales"``: :func:`~dynrnn.analyses.network_timescale` of the states of ``run`` from
  ``h0 = h0_std * N(0, 1) [B, N]`` under white-noise inputs ``input_std * N(0, 1) [B, T, I]``
  (seeded; none for models without inputs): ``n_trials=16, n_steps=1000, discard=100,
  input_std=1.0, h0_std=0.5, seed=0``; other keys go to ``network_timescale``.
* ``"degeneracy"``: :func:`~dynrnn.analyses.behavioural_degeneracy` (``error`` and
  ``ood_error`` per network on the entry's stored task and ``task.ood()``; ``n_trials=256,
  seed=0``; the same trials for every network, so chunk-independent). An entry without a
  task raises for its chunks (recorded).
* ``"stability"``: :func:`~dynrnn.analyses.stability_certificates` with its defaults (the
  solver-free certificates; ``sdp=True`` adds the LMI per network and needs the
  ``[stability]`` extra). The per-network text becomes numbers: ``condition_used`` is an index
  along ``condition`` (-1: inconclusive), ``solver_status`` becomes ``sdp_optimal``, and
  ``verdict`` (a function of ``certified`` and ``necessary_holds``) is not stored.
  Deterministic, so chunk-independent; ``theta`` (the metric's diagonal per condition) is
  padded along ``unit`` to the largest ``n_units``.
* ``"cka"`` (pairwise): :func:`~dynrnn.analyses.cka` of those states (``n_trials=8,
  n_steps=200, discard=50``, same input rule), units zero-padded to the largest ``n_units``
  (which leaves linear CKA unchanged), in blocks of ``block_size`` x ``block_size`` pairs
  into a ``[network, network_b]`` matrix.
* ``"dsa"`` (pairwise): :func:`~dynrnn.analyses.dsa` (Ostrow et al. 2023) of the states of
  the same simulation (``n_trials=4, n_steps=500, discard=50``; units zero-padded to the
  largest ``n_units``, which adds zero rows to the delay embedding and leaves its SVD, hence
  the DMD maps, unchanged) with its defaults (``n_delays=10, rank=30, n_starts=8``, the
  eigenvalue-Wasserstein variant included); ``seed`` seeds the simulation and the random
  Procrustes starts. Each pair's optimisation is independent of the others in its batch, so
  the blocked matrix equals one ``dsa`` call on all networks. A block recomputes the DMD maps
  of its ``2 * block_size`` networks (negligible beside the ``block_size**2`` Procrustes
  problems).
* ``"weight_distance"`` (pairwise): :func:`~dynrnn.analyses.weight_distance` (``n_restarts=2,
  seed=0``; each pair seeded by its position in the whole matrix, so blocks equal one call on
  all networks) in the same blocks; every network must have the same model and ``n_units``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._progress import progress_bar
from .._validation import check_bool, check_choice, check_int
from ..analyses import (
    behavioural_degeneracy,
    cka,
    dsa,
    find_fixed_points,
    lyapunov_spectrum,
    network_timescale,
    stability_certificates,
    weight_distance,
)
from ..models import run
from ..zoo import Zoo
from .executors import check_executor, map_chunks
from .store import STATUS, VERIFY, ResultStore, network_table, result_path

__all__ = ["ANALYSES", "PAIRWISE", "AnalyzeReport", "analyze", "simulate_states"]

#: per-network analyses :func:`analyze` knows
ANALYSES = ("fixed_points", "lyapunov", "timescales", "degeneracy", "stability")
#: pairwise analyses (a ``[network, network_b]`` matrix)
PAIRWISE = ("cka", "dsa", "weight_distance")

_SIM_DEFAULTS = {
    "timescales": dict(n_trials=16, n_steps=1000, discard=100, input_std=1.0, h0_std=0.5,
                       seed=0),
    "cka": dict(n_trials=8, n_steps=200, discard=50, input_std=1.0, h0_std=0.5, seed=0),
    "dsa": dict(n_trials=4, n_steps=500, discard=50, input_std=1.0, h0_std=0.5, seed=0),
}
#: options of the pairwise analyses passed to the analysis itself (the rest simulate)
_DSA_OPTIONS = dict(n_delays=10, delay_interval=1, rank=30, lamb=0.0, method="havok",
                    n_starts=8, max_iters=2000, tol=1e-10, wasserstein=True)
_DEFAULTS = {
    "fixed_points": dict(eigenvectors=False, max_fixed_points=32),
    "lyapunov": {},
    "timescales": dict(_SIM_DEFAULTS["timescales"]),
    "degeneracy": dict(n_trials=256, seed=0),
    "stability": {},
    "cka": dict(_SIM_DEFAULTS["cka"]),
    "dsa": dict(_SIM_DEFAULTS["dsa"], **_DSA_OPTIONS),
    "weight_distance": dict(n_restarts=2, seed=0),
}
_FUNCTIONS = {"fixed_points": find_fixed_points, "lyapunov": lyapunov_spectrum,
              "timescales": network_timescale, "degeneracy": behavioural_degeneracy,
              "stability": stability_certificates}
#: options :func:`analyze` fixes itself (not overridable)
_FIXED = {"progress", "model", "states", "inputs_b", "states_b", "trajectories",
          "initial_states", "h0", "model_b", "models", "task", "ood_task", "ids"}
_TRUNCATABLE = {"fixed_points": {"fixed_point"}}

#: test hooks (in process only): called with the work item before a chunk is computed, and
#: with the chunk key after a chunk was written
_before_chunk = None
_after_write = None


@dataclasses.dataclass
class AnalyzeReport:
    """What one :func:`analyze` run did for one analysis.

    Attributes:
        analysis: its name; path: its store.
        computed: keys of the chunks (blocks) computed and written by this run.
        skipped: keys already done (resumed).
        errors: ``{chunk key: "ExceptionType: message"}`` of chunks that raised (not done).
        failed: ``{network id: error}`` of networks marked failed in written chunks.
    """

    analysis: str
    path: Path
    computed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- options
def _resolve_options(name: str, given: Any) -> dict:
    opts = dict(_DEFAULTS[name])
    if given is None:
        return opts
    if not isinstance(given, Mapping):
        raise ValueError(f"The {name!r} option of analyze must be a dict of options. Got "
                         f"{type(given).__name__}.")
    allowed = set(opts)
    if name in _FUNCTIONS:
        allowed |= set(inspect.signature(_FUNCTIONS[name]).parameters)
    if name in PAIRWISE:
        allowed = set(opts)
    for key in given:
        if key in _FIXED or key not in allowed:
            raise ValueError(
                f"The {name!r} options of analyze have no option {key!r}; allowed: "
                f"{sorted(allowed - _FIXED)}."
            )
    opts.update(given)
    if name == "fixed_points":
        check_int("analyze", "fixed_points['max_fixed_points']", opts["max_fixed_points"], 1)
    return json.loads(json.dumps(opts, allow_nan=True))  # JSON types: the store's settings


def _sizes(name: str, rows: Sequence[Mapping], opts: dict) -> dict[str, int]:
    """Padded sizes of the dimensions that vary per network (see the store docstring)."""
    def col_max(col):
        values = [r.get(col) for r in rows]
        values = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        return max(values) if len(values) == len(rows) and values else None

    N, Inp = col_max("n_units"), col_max("n_inputs")
    sizes: dict[str, int | None] = {}
    if name == "fixed_points":
        sizes = {"unit": N, "unit_from": N, "eigen": N, "input": Inp,
                 "fixed_point": int(opts["max_fixed_points"])}
    elif name == "lyapunov":
        sizes = {"exponent": opts.get("n_exponents") or N}
    elif name in ("timescales", "cka", "dsa", "weight_distance", "stability"):
        sizes = {"unit": N}
    return {k: int(v) for k, v in sizes.items() if v is not None}


# --------------------------------------------------------------------------- simulations
def simulate_states(model: Any, *, n_trials: int, n_steps: int, discard: int = 0,
                    input_std: float = 1.0, h0_std: float = 0.5, seed: int = 0
                    ) -> torch.Tensor:
    """States ``[K, B, T - discard, N]`` (float64) of ``run(model)`` from
    ``h0 = h0_std * N(0, 1) [B, N]`` under white-noise inputs ``input_std * N(0, 1) [B, T, I]``
    (none when ``I = 0``), drawn from ``torch.Generator().manual_seed(seed)`` -- the same for
    every network of the same N and I, so a network's states do not depend on which other
    networks share its model. The inputs of the timescale and CKA analyses of :func:`analyze`.
    """
    owner = "simulate_states"
    B = check_int(owner, "n_trials", n_trials, 1)
    T = check_int(owner, "n_steps", n_steps, 1)
    discard = check_int(owner, "discard", discard, 0, T - 1)
    N, Inp = int(model.n_units), int(model.n_inputs)
    gen = torch.Generator().manual_seed(int(seed))
    h0 = (h0_std * torch.randn(B, N, generator=gen, dtype=torch.float64)).to(model.dtype)
    x = None
    if Inp > 0:
        x = (input_std * torch.randn(B, T, Inp, generator=gen, dtype=torch.float64)
             ).to(model.dtype)
    with torch.no_grad():
        if x is None:
            states, _ = run(model, h0=h0, n_steps=T)
        else:
            states, _ = run(model, x, h0)
    return states[:, :, discard:].double()


def _run_analysis(name: str, model: Any, opts: dict, task: Any = None) -> xr.Dataset:
    """The analysis ``name`` of one stacked model with the resolved options (``task``: the
    zoo entry's task, for ``"degeneracy"``)."""
    opts = dict(opts)
    if name == "degeneracy":
        if task is None:
            raise ValueError("the degeneracy analysis needs the task the networks were "
                             "trained on, and their zoo entry stores none")
        return behavioural_degeneracy(model, task, **opts)
    if name == "fixed_points":
        opts.pop("max_fixed_points")
        return find_fixed_points(model, progress=False, **opts)
    if name == "lyapunov":
        return lyapunov_spectrum(model, progress=False, **opts)
    if name == "stability":
        return _numeric_certificates(stability_certificates(model, **opts))
    sim = {k: opts.pop(k) for k in _SIM_DEFAULTS["timescales"]}
    discard = sim.pop("discard")
    states = simulate_states(model, discard=0, **sim)
    return network_timescale(states, model, discard=discard, **opts)


def _numeric_certificates(ds: xr.Dataset) -> xr.Dataset:
    """The per-network text of :func:`~dynrnn.analyses.stability_certificates` as numbers (a
    result store holds numbers and booleans): ``condition_used`` becomes the index of the
    condition along ``condition`` (-1: inconclusive, no sufficient condition holds),
    ``solver_status`` becomes ``sdp_optimal`` (the LMI solved to optimality; False where it was
    not run), and ``verdict`` is dropped, as it is ``certified`` / ``necessary_holds``
    ("certified contracting" / "inconclusive" / "not contracting for all inputs")."""
    conditions = [str(c) for c in ds["condition"].values]
    used = np.array([conditions.index(c) if c in conditions else -1
                     for c in ds["condition_used"].values], dtype=np.int64)
    optimal = np.asarray(ds["solver_status"].values).astype(str) == "optimal"
    out = ds.drop_vars(["condition_used", "solver_status", "verdict"])
    out["condition_used"] = ("network", used)
    out["condition_used"].attrs["description"] = (
        "index along 'condition' of the certificate used; -1: inconclusive")
    out["sdp_optimal"] = ("network", optimal)
    return out


def _nonfinite(model: Any) -> list[int]:
    """Local indices of networks with a non-finite parameter or buffer."""
    K = int(model.n_networks)
    bad = torch.zeros(K, dtype=torch.bool)
    for value in model.state_dict().values():
        if torch.is_tensor(value) and value.is_floating_point() and value.ndim >= 1 \
                and value.shape[0] == K:
            bad |= ~torch.isfinite(value.reshape(K, -1)).all(1)
    return [int(i) for i in torch.nonzero(bad).flatten()]


# --------------------------------------------------------------------------- padding
def _pad_part(ds: xr.Dataset, sizes: dict, truncatable: set) -> tuple[dict, set]:
    """``{var: (dims, array)}`` of one analysis result with every non-network dim padded to
    ``sizes`` (others as they are); the second value names variables truncated."""
    out, truncated = {}, set()
    for name, var in ds.data_vars.items():
        if "network" not in var.dims:
            continue
        var = var.transpose("network", ...)
        arr = np.asarray(var.values)
        target = [arr.shape[0]]
        for d, n in zip(var.dims[1:], arr.shape[1:]):
            want = sizes.get(d, n)
            if n > want:
                if d not in truncatable:
                    raise ValueError(
                        f"The dimension {d!r} of {name!r} has {n} entries, more than the "
                        f"store's {want}."
                    )
                truncated.add(d)
            target.append(want)
        padded = np.full(target, _fill(arr.dtype), dtype=arr.dtype)
        index = tuple(slice(0, min(n, t)) for n, t in zip(arr.shape, target))
        padded[index] = arr[index]
        out[name] = (var.dims, padded)
    return out, truncated


def _fill(dtype: np.dtype):
    from .store import _fill_value

    return _fill_value(np.dtype(dtype))


def _assemble(parts, n: int, C: int, sizes: dict, truncatable: set, codes: list[int]
              ) -> xr.Dataset:
    """One padded chunk ``[C, ...]`` from results of subsets of its ``n`` networks."""
    arrays: dict[str, tuple] = {}
    trunc_rows = np.zeros(C, dtype=bool)
    for local, ds in parts:
        padded, truncated = _pad_part(ds, sizes, truncatable)
        if truncated and "valid" in ds:
            dim = next(iter(sorted(truncated)))
            trunc_rows[np.asarray(local)] |= np.asarray(ds["valid"].sum(dim)) > sizes[dim]
        for name, (dims, arr) in padded.items():
            if name not in arrays:
                full = np.full((C,) + arr.shape[1:], _fill(arr.dtype), dtype=arr.dtype)
                arrays[name] = (dims, full)
            arrays[name][1][np.asarray(local)] = arr
    out = xr.Dataset({k: v for k, v in arrays.items()})
    status = np.zeros(C, dtype=np.int8)
    status[:n] = codes
    out["analysis_status"] = ("network", status)
    if truncatable:
        out[f"{next(iter(sorted(truncatable)))}s_truncated"] = ("network", trunc_rows)
    return out


# --------------------------------------------------------------------------- workers
def _chunk_worker(item: dict) -> dict:
    """Compute one chunk (in a worker): load, screen, analyse, pad. Returns the padded
    Dataset, the per-network status codes and errors."""
    if _before_chunk is not None:
        _before_chunk(item)
    name, ids, C = item["analysis"], item["ids"], item["chunk_size"]
    zoo = Zoo(item["zoo"])
    model = zoo.load(ids, verify=False)  # the main process verified each entry once
    n = int(model.n_networks)
    codes = [STATUS["ok"]] * n
    failed: dict[int, str] = {j: "non-finite parameters (NaN or inf)" for j in _nonfinite(model)}
    good = [j for j in range(n) if j not in failed]
    parts = []
    if not good:
        raise ValueError(f"every network of the chunk has non-finite parameters: {ids}")
    task = zoo.task(ids[0]) if name == "degeneracy" else None
    sub = model if len(good) == n else model.select(good)
    try:
        parts.append((good, _run_analysis(name, sub, item["options"], task)))
    except Exception:
        if len(good) == 1:
            raise
        for j in good:  # isolate the failing networks
            try:
                parts.append(([j], _run_analysis(name, model.select([j]), item["options"],
                                                 task)))
                codes[j] = STATUS["ok_alone"]
            except Exception as err:  # noqa: BLE001 - this network fails, the others go on
                failed[j] = f"{type(err).__name__}: {err}"
        if not parts:
            raise
    for j in failed:
        codes[j] = STATUS["failed"]
    ds = _assemble(parts, n, C, item["sizes"], _TRUNCATABLE.get(name, set()), codes)
    attrs = {k: v for k, v in parts[0][1].attrs.items()}
    return {"dataset": ds, "status": codes, "attrs": attrs,
            "failed": {ids[j]: e for j, e in sorted(failed.items())}}


def _pad_samples(states: torch.Tensor, N: int) -> torch.Tensor:
    X = states.reshape(states.shape[0], -1, states.shape[-1])
    if X.shape[-1] < N:
        X = torch.cat([X, X.new_zeros(*X.shape[:-1], N - X.shape[-1])], -1)
    return X


def _states_of(zoo: Zoo, ids: list[str], opts: dict, N: int, *, trials: bool = False
               ) -> torch.Tensor:
    """Samples ``[len(ids), M, N]`` of the networks ``ids`` (grouped by entry), units
    zero-padded to N; with ``trials`` the trajectories ``[len(ids), B, T, N]``."""
    out = []
    for group in _group_runs(ids):
        model = zoo.load(group, verify=False)
        states = simulate_states(model, **opts)
        padded = _pad_samples(states, N)
        out.append(padded.reshape(*states.shape[:-1], N) if trials else padded)
    return torch.cat(out)


def _block_worker(item: dict) -> dict:
    if _before_chunk is not None:
        _before_chunk(item)
    zoo = Zoo(item["zoo"])
    C, N = item["chunk_size"], item["n_units"]
    if item["analysis"] == "weight_distance":
        A = zoo.load(item["rows"], verify=False)
        B = None if item["diagonal"] else zoo.load(item["cols"], verify=False)
        res = weight_distance(A, B, **item["options"], progress=False,
                              index_offsets=(item["row0"], item["col0"]))
        names = ("weight_distance", "weight_distance_unnormalised")
    elif item["analysis"] == "dsa":
        opts = item["options"]
        sim = {k: opts[k] for k in _SIM_DEFAULTS["dsa"]}
        kw = {k: opts[k] for k in _DSA_OPTIONS}
        X = _states_of(zoo, item["rows"], sim, N, trials=True)
        Y = None if item["diagonal"] else _states_of(zoo, item["cols"], sim, N, trials=True)
        res = dsa(X, Y, seed=opts["seed"], progress=False, **kw)
        names = ("dsa", "dsa_euclidean") + (("wasserstein",) if kw["wasserstein"] else ())
    else:
        X = _states_of(zoo, item["rows"], item["options"], N)
        if item["diagonal"]:
            res = cka(X)
        else:
            res = cka(X, _states_of(zoo, item["cols"], item["options"], N))
        names = ("cka", "cka_distance")
    data = {}
    for name in names:
        full = np.full((C, C), np.nan)
        v = np.asarray(res[name].values)
        full[: v.shape[0], : v.shape[1]] = v
        data[name] = (("network", "network_b"), full)
    return {"dataset": xr.Dataset(data), "attrs": dict(res.attrs)}


def _group_runs(ids: Sequence[str]) -> list[list[str]]:
    """Maximal runs of consecutive ids of one entry."""
    runs: list[list[str]] = []
    for i in ids:
        if runs and runs[-1][0].partition("/")[0] == i.partition("/")[0]:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _chunks(ids: Sequence[str], C: int) -> list[dict]:
    by_entry: dict[str, list[str]] = {}
    for i in ids:
        by_entry.setdefault(i.partition("/")[0], []).append(i)
    out = []
    for entry, members in by_entry.items():
        for a in range(0, len(members), C):
            out.append({"entry": entry, "ids": members[a:a + C]})
    return out


# --------------------------------------------------------------------------- the entry point
def analyze(
    zoo: Zoo | str,
    analyses: str | Iterable[str],
    *,
    ids: Sequence[str] | None = None,
    chunk_size: int = 64,
    block_size: int = 256,
    executor: str = "inprocess",
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_worker: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    verify: str = "size",
    **options: Any,
) -> dict[str, AnalyzeReport]:
    """Run the named analyses over the networks of a zoo into ``<zoo>/results/<name>.zarr``.

    Arguments:
        zoo: a :class:`~dynrnn.zoo.Zoo` or its path (read-only here; the stores are written
            under ``results/``).
        analyses: names from :data:`ANALYSES` (``"fixed_points"``, ``"lyapunov"``,
            ``"timescales"``, ``"degeneracy"``, ``"stability"``) and :data:`PAIRWISE`
            (``"cka"``, ``"dsa"``, ``"weight_distance"``), each its own
            store and stage.
        ids: the networks (default: every network of the zoo); the result's order groups them
            by entry, in order of first appearance.
        chunk_size: networks per chunk C (per-network analyses; at most one entry per chunk).
        block_size: networks per side of a block of pairs (pairwise analyses).
        executor, workers, scheduler, threads_per_worker: where chunks run (see
            :func:`dynrnn.batch.executors.map_chunks`); every executor writes the same store.
        progress: one tqdm bar per analysis (default off: silent).
        overwrite: start the stores again instead of resuming them. Without it a store is
            resumed, or extended when the zoo gained networks since (the old networks first,
            the same options and, per network, the same padded sizes: only the new chunks --
            for a pairwise analysis the new blocks and the old partial last ones -- are
            computed); other settings are refused.
        verify: how done chunks are checked before being skipped (``"size"``, ``"full"``
            sha256, ``"none"``; a damaged one is recomputed).
        options: per analysis a dict overriding its defaults (module docstring), e.g.
            ``fixed_points={"n_initial": 128}``, ``lyapunov={"n_steps": 500}``.

    Returns:
        ``{analysis: AnalyzeReport}``; read the results with
        :func:`dynrnn.batch.open_result` / :func:`dynrnn.batch.open_pairwise`.

    Raises:
        ValueError: an unknown analysis or option, a bad chunk size, a store made with other
            settings (without ``overwrite``), an unknown network id.
        FileNotFoundError: the zoo does not exist.
    """
    owner = "analyze"
    zoo = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    names = [analyses] if isinstance(analyses, str) else list(analyses)
    if not names:
        raise ValueError("The 'analyses' parameter of analyze must name at least one analysis.")
    for n in names:
        check_choice(owner, "analyses", n, ANALYSES + PAIRWISE)
    unknown = sorted(set(options) - set(ANALYSES + PAIRWISE))
    if unknown:
        raise ValueError(f"analyze got unknown options {unknown}; options are given per "
                         f"analysis: {list(ANALYSES + PAIRWISE)}.")
    C = check_int(owner, "chunk_size", chunk_size, 1)
    Bs = check_int(owner, "block_size", block_size, 1)
    check_bool(owner, "progress", progress)
    check_bool(owner, "overwrite", overwrite)
    check_choice(owner, "verify", verify, VERIFY)
    check_executor(executor, workers, scheduler, threads_per_worker)  # before any work
    resolved = {n: _resolve_options(n, options.get(n)) for n in names}

    rows = zoo.networks(as_frame=False) if ids is None else zoo.metadata(list(ids))
    if ids is not None:
        seen: set[str] = set()
        rows = [r for r in rows if not (r["id"] in seen or seen.add(r["id"]))]
    by_id = {r["id"]: r for r in rows}
    chunks = _chunks([r["id"] for r in rows], C)
    ordered = [i for c in chunks for i in c["ids"]]
    rows = [by_id[i] for i in ordered]
    table = network_table(rows)
    verified: dict[str, str | None] = {}

    def verify_entries(entries) -> dict[str, str]:
        """Hash each entry's weights file once (workers load with verify=False); returns
        ``{entry: error}`` of the damaged ones."""
        for e in entries:
            if e not in verified:
                try:
                    zoo.verify_entry(e)
                    verified[e] = None
                except (OSError, ValueError) as err:
                    verified[e] = f"{type(err).__name__}: {err}"
        return {e: verified[e] for e in entries if verified[e] is not None}

    reports = {}
    for name in names:
        path = result_path(zoo, name)
        report = AnalyzeReport(name, path)
        reports[name] = report
        opts = resolved[name]
        sizes = _sizes(name, rows, opts)
        if name in PAIRWISE:
            _pairwise(zoo, name, ordered, rows, table, opts, sizes, Bs, path, report, verify,
                      overwrite, progress, executor, workers, scheduler, threads_per_worker,
                      verify_entries)
            continue
        settings = {"kind": "rows", "analysis": name, "options": opts, "ids": ordered,
                    "chunks": chunks, "chunk_size": C, "sizes": sizes}
        if not ordered:
            continue
        store = ResultStore.create(path, settings, table, overwrite=overwrite)
        todo = []
        for i, chunk in enumerate(chunks):
            key = str(i)
            if store.done(key, chunk["ids"], verify):
                report.skipped.append(key)
            else:
                todo.append((key, i, chunk))
        damaged = verify_entries(dict.fromkeys(c["entry"] for _, _, c in todo))
        for key, _, c in todo:
            if c["entry"] in damaged:  # recorded, not dispatched; the other entries go on
                store.record_error(key, damaged[c["entry"]], None)
                report.errors[key] = damaged[c["entry"]]
        todo = [t for t in todo if t[2]["entry"] not in damaged]
        items = [{"zoo": str(zoo.path), "analysis": name, "ids": c["ids"], "options": opts,
                  "sizes": sizes, "chunk_size": C, "key": key} for key, _, c in todo]
        with progress_bar(progress, total=len(todo), desc=name, unit="chunk") as bar:
            for j, outcome in map_chunks(_chunk_worker, items, executor=executor,
                                         workers=workers, scheduler=scheduler,
                                         threads_per_worker=threads_per_worker):
                key, i, chunk = todo[j]
                if outcome.ok:
                    value = outcome.value
                    ds = _cast_to_store(store, value["dataset"])
                    store.ensure_arrays(ds, value["attrs"])
                    store.write_chunk(key, chunk["ids"], ds,
                                      {"network": slice(i * C, (i + 1) * C)},
                                      extra={"status": value["status"],
                                             "failed": value["failed"]})
                    report.computed.append(key)
                    report.failed.update(value["failed"])
                else:
                    store.record_error(key, outcome.error, outcome.traceback)
                    report.errors[key] = outcome.error
                bar.update(1)
                if _after_write is not None:
                    _after_write(key)
    return reports


def _cast_to_store(store: ResultStore, ds: xr.Dataset) -> xr.Dataset:
    """Cast variables to the dtype the store already holds when only the width differs (an
    analysis may give int64 for one chunk and int32 for another)."""
    arrays = store.manifest.get("arrays") or {}
    out = ds
    for name, var in ds.data_vars.items():
        if name in arrays and str(var.dtype) != arrays[name]["dtype"]:
            want = np.dtype(arrays[name]["dtype"])
            if np.can_cast(var.dtype, want, casting="same_kind"):
                out = out.assign({name: var.astype(want)})
    return out


def _pairwise(zoo, name, ordered, rows, table, opts, sizes, Bs, path, report, verify,
              overwrite, progress, executor, workers, scheduler, threads_per_worker,
              verify_entries) -> None:
    from .store import _block_ids, _blocks

    n = len(ordered)
    if not n:
        return
    N = sizes.get("unit")
    if N is None:
        raise ValueError(f"The pairwise analysis {name!r} needs the n_units of every network.")
    if name == "weight_distance":
        kinds = {(r.get("model"), r.get("n_units")) for r in rows}
        if len(kinds) > 1:
            raise ValueError(
                "The pairwise analysis 'weight_distance' compares networks of one model and one "
                f"n_units; the networks analysed have {sorted(map(str, kinds))} (pass ids= of one "
                "kind)."
            )
    settings = {"kind": "pairwise", "analysis": name, "options": opts, "ids": ordered,
                "chunk_size": Bs, "sizes": sizes}
    store = ResultStore.create(path, settings, table, overwrite=overwrite)
    todo = []
    for key, (bi, bj) in _blocks(n, Bs):
        if store.done(key, _block_ids(ordered, bi, bj, Bs), verify):
            report.skipped.append(key)
        else:
            todo.append((key, bi, bj))
    damaged = verify_entries(dict.fromkeys(r["entry"] for r in rows))
    if damaged:
        raise ValueError(f"The pairwise analysis {name!r} needs every network; damaged zoo "
                         f"entries: {'; '.join(damaged.values())}")
    items = [{"zoo": str(zoo.path), "analysis": name, "options": opts, "chunk_size": Bs,
              "n_units": N, "rows": ordered[bi * Bs:(bi + 1) * Bs],
              "cols": ordered[bj * Bs:(bj + 1) * Bs], "diagonal": bi == bj, "key": key,
              "row0": bi * Bs, "col0": bj * Bs}
             for key, bi, bj in todo]
    with progress_bar(progress, total=len(todo), desc=name, unit="block") as bar:
        for j, outcome in map_chunks(_block_worker, items, executor=executor, workers=workers,
                                     scheduler=scheduler,
                                     threads_per_worker=threads_per_worker):
            key, bi, bj = todo[j]
            if outcome.ok:
                ds = outcome.value["dataset"]
                store.ensure_arrays(ds, outcome.value["attrs"])
                r1 = {"network": slice(bi * Bs, (bi + 1) * Bs),
                      "network_b": slice(bj * Bs, (bj + 1) * Bs)}
                regions = [r1] if bi == bj else [
                    r1, {"network": r1["network_b"], "network_b": r1["network"]}]
                store.write_chunk(key, _block_ids(ordered, bi, bj, Bs), ds, regions)
                report.computed.append(key)
            else:
                store.record_error(key, outcome.error, outcome.traceback)
                report.errors[key] = outcome.error
            bar.update(1)
            if _after_write is not None:
                _after_write(key)
