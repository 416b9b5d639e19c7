"""Tests of dynrnn.batch.analyze / dynrnn.batch.store: analyses over a zoo into chunked zarr
stores -- equal to the direct analyses, identical across executors, resumable, damage detected
and repaired, failures recorded, hyperparameter coordinates, pairwise blocks, the CLI."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from dynrnn.analyses import cka, dsa, weight_distance
from dynrnn.batch.analyze import _resolve_options, _run_analysis, analyze, simulate_states
from dynrnn.batch.store import (
    STATUS,
    ResultIntegrityError,
    ResultIntegrityWarning,
    check_result,
    open_pairwise,
    open_result,
    result_status,
)
from dynrnn.cli import main
from dynrnn.models import Ensemble, RateRNNConfig
from dynrnn.zoo import Zoo

OPTIONS = dict(
    fixed_points=dict(n_initial=12, max_newton_iters=8, first_order_iters=10),
    lyapunov=dict(n_steps=40, burn_in=10, tangent_burn_in=5),
    timescales=dict(n_steps=120, n_trials=2, discard=20),
    cka=dict(n_steps=40, n_trials=2, discard=10),
)
PER_NETWORK = ("fixed_points", "lyapunov", "timescales")
#: the module (not the function of the same name), for its test hooks
analyze_mod = importlib.import_module("dynrnn.batch.analyze")


def _make_zoo(path):
    zoo = Zoo(path, create=True)
    for e, (N, K) in enumerate([(4, 3), (6, 2), (5, 2)]):
        model = Ensemble(RateRNNConfig(2, N, 1, init_gain=1.5), n_networks=K, seed=10 + e)
        if e == 2:  # network 1 of the last entry has diverged: a NaN weight
            with torch.no_grad():
                model.W_rec[1, 0, 0] = float("nan")
        zoo.add(model, outcome={"final_loss": [0.1 * (k + 1) for k in range(K)]},
                tags=["test"])
    return zoo


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "zoo"
    _make_zoo(path)
    return path


@pytest.fixture
def zoo(zoo_dir, tmp_path):
    """A fresh copy of the zoo (no results) for each test."""
    dst = tmp_path / "zoo"
    shutil.copytree(zoo_dir / "entries", dst / "entries")
    return Zoo(dst)


def _values(ds):
    return {name: np.asarray(ds[name].values) for name in ds.data_vars}


def _assert_same(a, b):
    va, vb = _values(a), _values(b)
    assert sorted(va) == sorted(vb)
    for name in va:
        assert va[name].shape == vb[name].shape, name
        assert np.array_equal(va[name], vb[name], equal_nan=va[name].dtype.kind in "fc"), name
    assert list(a["id"].values) == list(b["id"].values)


def _bad_id(zoo):
    entry = zoo.entries()[-1]
    return f"{entry}/1"


# --------------------------------------------------------------------------- results
def test_inprocess_equals_direct_analysis_and_marks_failed_network(zoo):
    reports = analyze(zoo, PER_NETWORK, chunk_size=8, **OPTIONS)
    bad = _bad_id(zoo)
    for name in PER_NETWORK:
        r = reports[name]
        assert r.errors == {} and sorted(r.computed) == ["0", "1", "2"]
        assert list(r.failed) == [bad] and "non-finite" in r.failed[bad]
        ds = open_result(zoo, name).load()
        ids = list(ds["id"].values)
        assert ids == zoo.ids()
        status = dict(zip(ids, ds["analysis_status"].values))
        assert status[bad] == STATUS["failed"]
        assert all(v == STATUS["ok"] for i, v in status.items() if i != bad)
        opts = _resolve_options(name, OPTIONS[name])
        for entry in zoo.entries():
            members = [i for i in ids if i.startswith(entry) and i != bad]
            direct = _run_analysis(name, zoo.load(members), opts)
            for k, nid in enumerate(members):
                row = ds.isel(network=ids.index(nid))
                for var in direct.data_vars:
                    if "network" not in direct[var].dims:
                        continue
                    want = np.asarray(direct[var].transpose("network", ...).values[k])
                    got = np.asarray(row[var].values)
                    got = got[tuple(slice(0, n) for n in want.shape)]
                    assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), (
                        name, var, nid)
                # padding beyond this network's units is NaN
                if name == "lyapunov":
                    n = int(row["n_units"])
                    assert np.isnan(row["exponents"].values[n:]).all()
                    assert np.isfinite(row["exponents"].values[:n]).all()
    st = {s["id"]: s for s in result_status(zoo, "lyapunov")}
    assert st[bad]["status"] == "failed" and "non-finite" in st[bad]["error"]


def test_chunks_smaller_than_entries_and_coordinates(zoo):
    analyze(zoo, "lyapunov", chunk_size=2, lyapunov=OPTIONS["lyapunov"])
    ds = open_result(zoo, "lyapunov")
    assert ds.sizes["network"] == len(zoo)
    assert type(ds["max_exponent"].data).__module__.startswith("dask")  # lazy
    meta = zoo.networks()
    assert list(ds["n_units"].values) == list(meta["n_units"])
    assert list(ds["final_loss"].values) == pytest.approx(list(meta["final_loss"]))
    ok = ds["analysis_status"] == STATUS["ok"]
    means = ds["max_exponent"].where(ok).groupby("n_units").mean()
    assert sorted(means["n_units"].values.tolist()) == [4, 5, 6]
    assert np.isfinite(means.values).all()
    # a chunk's values equal the analysis of that chunk's networks loaded directly
    m = json.loads((zoo.path / "results/lyapunov.zarr/dynrnn.json").read_text())
    first = m["chunks"][0]["ids"]
    direct = _run_analysis("lyapunov", zoo.load(first),
                           _resolve_options("lyapunov", OPTIONS["lyapunov"]))
    got = ds["exponents"].isel(network=[0, 1]).values[:, :4]
    assert np.array_equal(got, direct["exponents"].values)
    # the data is a plain zarr group: slots of chunk_size rows per chunk (padding included)
    raw = xr.open_zarr(zoo.path / "results/lyapunov.zarr/data.zarr", consolidated=False)
    assert raw.sizes["network"] == 2 * len(m["chunks"])
    assert np.array_equal(raw["exponents"].values[:2, :4], got)


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_executors_give_identical_stores(zoo, executor):
    if executor == "dask":
        pytest.importorskip("distributed")
    analyze(zoo, PER_NETWORK, chunk_size=2, **OPTIONS)
    here = {n: open_result(zoo, n).load() for n in PER_NETWORK}
    reports = analyze(zoo, PER_NETWORK, chunk_size=2, executor=executor, workers=2,
                      overwrite=True, **OPTIONS)
    for name in PER_NETWORK:
        assert reports[name].errors == {}
        assert len(reports[name].computed) == 4
        _assert_same(here[name], open_result(zoo, name).load())


# --------------------------------------------------------------------------- crash safety
class _SimulatedCrashError(Exception):
    pass


def test_resume_recomputes_only_missing_chunks(zoo, monkeypatch):
    written = []

    def stop_after_first(key):
        written.append(key)
        raise _SimulatedCrashError("simulated crash after the first chunk")

    monkeypatch.setattr(analyze_mod, "_after_write", stop_after_first)
    with pytest.raises(_SimulatedCrashError):
        analyze(zoo, "timescales", chunk_size=2, timescales=OPTIONS["timescales"])
    assert written == ["0"]
    partial = open_result(zoo, "timescales")
    assert partial.sizes["network"] == 2  # only the finished chunk is shown
    monkeypatch.setattr(analyze_mod, "_after_write", None)
    computed = []
    monkeypatch.setattr(analyze_mod, "_before_chunk", lambda item: computed.append(item["key"]))
    r = analyze(zoo, "timescales", chunk_size=2, timescales=OPTIONS["timescales"])
    assert r["timescales"].skipped == ["0"] and computed == ["1", "2", "3"]
    resumed = open_result(zoo, "timescales").load()
    analyze(zoo, "timescales", chunk_size=2, overwrite=True, timescales=OPTIONS["timescales"])
    _assert_same(resumed, open_result(zoo, "timescales").load())
    # other settings are refused unless overwrite
    with pytest.raises(ValueError, match="chunk_size"):
        analyze(zoo, "timescales", chunk_size=3, timescales=OPTIONS["timescales"])


def test_result_grows_with_the_zoo(zoo, monkeypatch):
    """Networks added to the zoo after an analysis are appended to its store: only their
    chunks are computed, and the result equals a fresh run over the whole zoo."""
    first_two = [i for i in zoo.ids() if not i.startswith(zoo.entries()[-1])]
    analyze(zoo, "timescales", ids=first_two, chunk_size=2, timescales=OPTIONS["timescales"])
    assert open_result(zoo, "timescales").sizes["network"] == len(first_two)
    computed = []
    monkeypatch.setattr(analyze_mod, "_before_chunk", lambda item: computed.append(item["key"]))
    r = analyze(zoo, "timescales", chunk_size=2, timescales=OPTIONS["timescales"])["timescales"]
    assert sorted(r.skipped) == ["0", "1", "2"] and computed == ["3"]  # the new entry only
    grown = open_result(zoo, "timescales").load()
    assert list(grown["id"].values) == zoo.ids()
    monkeypatch.setattr(analyze_mod, "_before_chunk", None)
    analyze(zoo, "timescales", chunk_size=2, overwrite=True, timescales=OPTIONS["timescales"])
    _assert_same(grown, open_result(zoo, "timescales").load())
    assert check_result(zoo, "timescales") == []
    # a subset that is not an extension (other ids first) is still refused
    with pytest.raises(ValueError, match="ids"):
        analyze(zoo, "timescales", ids=zoo.ids()[3:], chunk_size=2,
                timescales=OPTIONS["timescales"])


def test_partial_chunk_without_marker_is_recomputed(zoo):
    analyze(zoo, "lyapunov", chunk_size=2, lyapunov=OPTIONS["lyapunov"])
    before = open_result(zoo, "lyapunov").load()
    store = zoo.path / "results/lyapunov.zarr"
    (store / "markers/1.json").unlink()  # as if the process died after writing chunk 1's data
    f = store / "data.zarr/exponents/c/1/0"
    f.write_bytes(f.read_bytes()[:5])
    n1 = len(_chunk_ids(zoo, "lyapunov", 1))
    assert open_result(zoo, "lyapunov").sizes["network"] == len(zoo) - n1
    r = analyze(zoo, "lyapunov", chunk_size=2, lyapunov=OPTIONS["lyapunov"])
    assert r["lyapunov"].computed == ["1"]
    _assert_same(before, open_result(zoo, "lyapunov").load())


def test_resume_after_sigkill(zoo):
    """A process killed (SIGKILL) once the first chunk's marker exists: the rerun recomputes
    only the chunks without a marker and gives the result of an uninterrupted run."""
    opts = dict(n_steps=3000, burn_in=10, tangent_burn_in=5)
    script = (
        "import sys; from dynrnn.batch.analyze import analyze; "
        f"analyze(sys.argv[1], 'lyapunov', chunk_size=1, lyapunov={opts!r})"
    )
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(zoo.path)], env=env)
    marker = zoo.path / "results/lyapunov.zarr/markers/0.json"
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = {p.stem for p in marker.parent.glob("*.json")}
    assert "0" in done and len(done) < len(zoo)
    r = analyze(zoo, "lyapunov", chunk_size=1, lyapunov=opts)["lyapunov"]
    assert sorted(r.skipped) == sorted(done)
    # the chunk of the NaN network alone raises (every network of it fails): recorded, not done
    assert list(r.errors) == ["6"] and "non-finite" in r.errors["6"]
    assert sorted(r.computed + list(r.errors)) == sorted(set(map(str, range(len(zoo)))) - done)
    resumed = open_result(zoo, "lyapunov").load()
    analyze(zoo, "lyapunov", chunk_size=1, overwrite=True, lyapunov=opts)
    _assert_same(resumed, open_result(zoo, "lyapunov").load())


def _chunk_ids(zoo, name, i):
    m = json.loads((zoo.path / f"results/{name}.zarr/dynrnn.json").read_text())
    return m["chunks"][i]["ids"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_chunk_is_named_rest_readable_and_repaired(zoo, damage):
    analyze(zoo, "lyapunov", chunk_size=2, lyapunov=OPTIONS["lyapunov"])
    before = open_result(zoo, "lyapunov").load()
    f = zoo.path / "results/lyapunov.zarr/data.zarr/max_exponent/c/1"
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
        verify = "size"
    else:
        f.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
        verify = "full"
    problems = check_result(zoo, "lyapunov")
    assert [p.path for p in problems] == [f]
    with pytest.raises(ResultIntegrityError, match=str(f)):
        open_result(zoo, "lyapunov", verify=verify, strict=True)
    with pytest.warns(ResultIntegrityWarning, match=str(f)):
        rest = open_result(zoo, "lyapunov", verify=verify)
    damaged_ids = set(_chunk_ids(zoo, "lyapunov", 1))
    assert damaged_ids
    assert set(rest["id"].values) == set(before["id"].values) - damaged_ids
    keep = [i for i, nid in enumerate(before["id"].values) if nid not in damaged_ids]
    assert np.array_equal(rest["max_exponent"].values, before["max_exponent"].values[keep],
                          equal_nan=True)
    r = analyze(zoo, "lyapunov", chunk_size=2, verify=verify, lyapunov=OPTIONS["lyapunov"])
    assert r["lyapunov"].computed == ["1"]
    assert check_result(zoo, "lyapunov") == []
    _assert_same(before, open_result(zoo, "lyapunov").load())


def test_failing_chunk_is_recorded_and_others_finish(zoo, monkeypatch):
    def boom(item):
        if item["key"] == "1":
            raise RuntimeError("injected failure")

    monkeypatch.setattr(analyze_mod, "_before_chunk", boom)
    r = analyze(zoo, "lyapunov", chunk_size=2, lyapunov=OPTIONS["lyapunov"])["lyapunov"]
    assert r.errors == {"1": "RuntimeError: injected failure"}
    assert sorted(r.computed) == ["0", "2", "3"]
    status = result_status(zoo, "lyapunov")
    assert {s["status"] for s in status if s["chunk"] == "1"} == {"error"}
    assert all("injected" in s["error"] for s in status if s["chunk"] == "1")
    n1 = len(_chunk_ids(zoo, "lyapunov", 1))
    assert open_result(zoo, "lyapunov").sizes["network"] == len(zoo) - n1
    monkeypatch.setattr(analyze_mod, "_before_chunk", None)
    r = analyze(zoo, "lyapunov", chunk_size=2, lyapunov=OPTIONS["lyapunov"])["lyapunov"]
    assert r.computed == ["1"] and r.errors == {}
    assert open_result(zoo, "lyapunov").sizes["network"] == len(zoo)


def test_diverging_network_is_isolated(tmp_path):
    zoo = Zoo(tmp_path / "z", create=True)
    model = Ensemble(RateRNNConfig(1, 3, 1, nonlinearity="identity", init_gain=0.5),
                     n_networks=3, seed=0)
    with torch.no_grad():
        model.W_rec[1] = 40.0 * torch.eye(3)  # linear and explosive: its trajectory overflows
    zoo.add(model)
    r = analyze(zoo, "lyapunov", lyapunov=dict(n_steps=400, burn_in=10))["lyapunov"]
    assert r.errors == {} and list(r.failed) == [f"{zoo.entries()[0]}/1"]
    ds = open_result(zoo, "lyapunov").load()
    assert list(ds["analysis_status"].values) == [STATUS["ok_alone"], STATUS["failed"],
                                         STATUS["ok_alone"]]
    assert np.isfinite(ds["max_exponent"].values[[0, 2]]).all()


def test_bad_options_are_refused(zoo):
    with pytest.raises(ValueError, match="n_initail"):
        analyze(zoo, "fixed_points", fixed_points={"n_initail": 3})
    with pytest.raises(ValueError, match="analyses"):
        analyze(zoo, "fixed_point")
    with pytest.raises(ValueError, match="chunk_size"):
        analyze(zoo, "lyapunov", chunk_size=0)
    with pytest.raises(FileNotFoundError):
        analyze(zoo.path / "nope", "lyapunov")


def test_degeneracy_uses_the_stored_task_and_is_chunk_independent(tmp_path, zoo):
    from dynrnn.analyses import behavioural_degeneracy
    from dynrnn.tasks import FlipFlopTask

    z = Zoo(tmp_path / "z", create=True)
    task = FlipFlopTask(n_bits=2, n_steps=30)
    for e, N in enumerate([3, 5]):
        z.add(Ensemble(RateRNNConfig(2, N, 2), n_networks=3, seed=e), task=task)
    opts = dict(n_trials=8)
    analyze(z, "degeneracy", chunk_size=1, degeneracy=opts)
    one = open_result(z, "degeneracy").load()
    analyze(z, "degeneracy", chunk_size=8, overwrite=True, degeneracy=opts)
    whole = open_result(z, "degeneracy").load()
    _assert_same(one, whole)
    for entry in z.entries():
        members = [i for i in z.ids() if i.startswith(entry)]
        direct = behavioural_degeneracy(z.load(members), task, n_trials=8)
        sel = whole.sel(network=[i.startswith(entry) for i in whole["id"].values])
        assert np.array_equal(sel["ood_error"].values, direct["ood_error"].values)
        assert np.array_equal(sel["error"].values, direct["error"].values)
    # the test zoo's entries store no task: every chunk raises and is recorded
    r = analyze(zoo, "degeneracy", degeneracy=opts)["degeneracy"]
    assert len(r.errors) == 3 and all("task" in e for e in r.errors.values())
    assert r.computed == []


# --------------------------------------------------------------------------- pairwise
def test_pairwise_blocks_equal_direct_and_resume(zoo, monkeypatch):
    bad = _bad_id(zoo)
    ids = [i for i in zoo.ids() if i != bad]
    seen = []

    def stop(key):
        seen.append(key)
        if len(seen) == 2:
            raise _SimulatedCrashError("crash")

    monkeypatch.setattr(analyze_mod, "_after_write", stop)
    with pytest.raises(_SimulatedCrashError):
        analyze(zoo, "cka", ids=ids, block_size=2, cka=OPTIONS["cka"])
    with pytest.warns(UserWarning, match="incomplete"):
        part = open_pairwise(zoo, "cka")
    assert not part.attrs["complete"]
    done_blocks = {k for k in seen}
    vals = part["cka"].values
    for bi in range(3):
        for bj in range(bi, 3):
            block = vals[2 * bi:2 * bi + 2, 2 * bj:2 * bj + 2]
            assert np.isnan(block).all() != (f"{bi}_{bj}" in done_blocks)
    monkeypatch.setattr(analyze_mod, "_after_write", None)
    r = analyze(zoo, "cka", ids=ids, block_size=2, cka=OPTIONS["cka"])["cka"]
    assert sorted(r.skipped) == sorted(seen) and len(r.computed) == 6 - 2
    ds = open_pairwise(zoo, "cka").load()
    assert ds.attrs["complete"]
    # direct: states of every entry, units zero-padded, one cka call
    opts = _resolve_options("cka", OPTIONS["cka"])
    parts = []
    for entry in zoo.entries():
        members = [i for i in ids if i.startswith(entry)]
        X = simulate_states(zoo.load(members), **opts)
        X = X.reshape(X.shape[0], -1, X.shape[-1])
        parts.append(torch.cat([X, X.new_zeros(*X.shape[:-1], 6 - X.shape[-1])], -1))
    direct = cka(torch.cat(parts))
    np.testing.assert_allclose(ds["cka"].values, direct["cka"].values, rtol=1e-10, atol=1e-12)
    assert list(ds["id"].values) == ids and list(ds["n_units_b"].values) == [4, 4, 4, 6, 6, 5]


def test_pairwise_result_grows_with_the_zoo(zoo, monkeypatch):
    """A pairwise store over the first entry grows when the analysis is rerun over the whole
    zoo (networks of a larger n_units added): the finished block whose ids are unchanged is
    kept, the old partial blocks and the new ones are computed, and the matrix equals a fresh
    run (the padded unit count changed from 4 to 6: CKA does not depend on it)."""
    bad = _bad_id(zoo)
    ids = [i for i in zoo.ids() if i != bad]
    first = [i for i in ids if i.startswith(zoo.entries()[0])]
    analyze(zoo, "cka", ids=first, block_size=2, cka=OPTIONS["cka"])
    assert open_pairwise(zoo, "cka").sizes["network"] == 3
    computed = []
    monkeypatch.setattr(analyze_mod, "_after_write", computed.append)
    r = analyze(zoo, "cka", ids=ids, block_size=2, cka=OPTIONS["cka"])["cka"]
    # blocks of 2 over 3 networks: 0_0 full (kept), 0_1 and 1_1 partial (redone), + 3 new
    assert r.skipped == ["0_0"] and sorted(computed) == ["0_1", "0_2", "1_1", "1_2", "2_2"]
    grown = open_pairwise(zoo, "cka").load()
    assert grown.attrs["complete"] and list(grown["id"].values) == ids
    monkeypatch.setattr(analyze_mod, "_after_write", None)
    analyze(zoo, "cka", ids=ids, block_size=2, overwrite=True, cka=OPTIONS["cka"])
    fresh = open_pairwise(zoo, "cka").load()
    np.testing.assert_allclose(grown["cka"].values, fresh["cka"].values, rtol=1e-10,
                               atol=1e-12)
    assert check_result(zoo, "cka") == []
    # other options are still refused, not grown
    with pytest.raises(ValueError, match="options"):
        analyze(zoo, "cka", ids=ids + [bad], block_size=2,
                cka={**OPTIONS["cka"], "n_steps": 41})


def test_weight_distance_blocks_equal_one_call_on_all_networks(tmp_path, zoo):
    """Each pair is seeded by its place in the whole matrix, so the blocked matrix (with pairs
    across entries and blocks) is the matrix of one weight_distance call on all networks."""
    same = Zoo(tmp_path / "same", create=True)
    for e, K in enumerate([3, 2]):
        same.add(Ensemble(RateRNNConfig(2, 4, 1, init_gain=1.5), n_networks=K, seed=20 + 20 * e))
    opts = dict(n_restarts=1, seed=3)
    r = analyze(same, "weight_distance", block_size=2, weight_distance=opts)["weight_distance"]
    assert len(r.computed) == 6 and not r.errors  # 3 x 3 blocks of the upper triangle
    ds = open_pairwise(same, "weight_distance").load()
    direct = weight_distance(same.load(same.ids()), **opts, progress=False)
    for name in ("weight_distance", "weight_distance_unnormalised"):
        np.testing.assert_allclose(ds[name].values, direct[name].values, rtol=1e-12, atol=0)
    assert np.all(ds["weight_distance"].values[~np.eye(5, dtype=bool)] > 0)
    # networks of different sizes cannot be compared: an error naming the analysis
    with pytest.raises(ValueError, match="weight_distance.*n_units"):
        analyze(zoo, "weight_distance", block_size=2)


def test_dsa_blocks_equal_one_call_on_all_networks(zoo):
    """DSA over a zoo of three sizes in 2 x 2 blocks equals one dsa call on every network's
    (zero-padded) trajectories: each pair's Procrustes problem is independent of its block; and
    the zero-padding of the units leaves the distances of the unpadded trajectories."""
    bad = _bad_id(zoo)
    ids = [i for i in zoo.ids() if i != bad]
    opts = dict(n_trials=2, n_steps=60, discard=10, n_delays=3, rank=6, n_starts=4)
    r = analyze(zoo, "dsa", ids=ids, block_size=2, dsa=opts)["dsa"]
    assert len(r.computed) == 6 and not r.errors  # 3 x 3 blocks of the upper triangle
    ds = open_pairwise(zoo, "dsa").load()
    assert ds.attrs["complete"]
    full = _resolve_options("dsa", opts)
    sim = {k: full[k] for k in ("n_trials", "n_steps", "discard", "input_std", "h0_std",
                                "seed")}
    parts = []
    for entry in zoo.entries():
        X = simulate_states(zoo.load([i for i in ids if i.startswith(entry)]), **sim)
        parts.append(torch.cat([X, X.new_zeros(*X.shape[:-1], 6 - X.shape[-1])], -1))
    direct = dsa(torch.cat(parts), n_delays=3, rank=6, n_starts=4, progress=False)
    for name in ("dsa", "dsa_euclidean", "wasserstein"):
        np.testing.assert_allclose(ds[name].values, direct[name].values, rtol=1e-7, atol=1e-9)
    off = ~np.eye(len(ids), dtype=bool)
    assert np.all(ds["dsa"].values[off] > 0) and np.allclose(np.diag(ds["dsa"].values), 0)
    np.testing.assert_allclose(ds["dsa"].values, ds["dsa"].values.T)
    first = [i for i, e in enumerate(ids) if e.startswith(zoo.entries()[0])]
    alone = dsa(parts[0][..., :4], n_delays=3, rank=6, n_starts=4, progress=False)
    np.testing.assert_allclose(ds["dsa"].values[np.ix_(first, first)], alone["dsa"].values,
                               atol=1e-6)
    with pytest.raises(ValueError, match="'dsa' options.*'n_unitz'"):
        analyze(zoo, "dsa", dsa={"n_unitz": 3})


# --------------------------------------------------------------------------- metadata
def test_metadata_table_round_trip(zoo):
    analyze(zoo, "timescales", chunk_size=4, timescales=OPTIONS["timescales"])
    ds = open_result(zoo, "timescales")
    rows = zoo.networks(as_frame=False)
    assert list(ds["seed"].values) == [r["seed"] for r in rows]
    assert list(ds["nonlinearity"].values) == ["tanh"] * len(rows)
    assert list(ds["tags"].values) == ["test"] * len(rows)
    assert ds["init_gain"].dtype.kind == "f"


def test_metadata_column_named_like_a_variable(tmp_path):
    zoo = Zoo(tmp_path / "z", create=True)
    zoo.add(Ensemble(RateRNNConfig(1, 3, 1), n_networks=2, seed=0),
            outcome={"max_exponent": [1.0, 2.0], "status": ["done", "failed"]})
    analyze(zoo, "lyapunov", lyapunov=OPTIONS["lyapunov"])
    ds = open_result(zoo, "lyapunov")
    assert list(ds["zoo.max_exponent"].values) == [1.0, 2.0]
    assert list(ds["status"].values) == ["done", "failed"]  # a sweep's outcome column
    assert np.isfinite(ds["max_exponent"].values).all()


# --------------------------------------------------------------------------- CLI
def _cli(args, capsys):
    code = main(["analyze", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args, named", [
    (["--lyapunov", "--chunk-size", "0"], "--chunk-size"),
    (["--lyapunov", "--workers", "2"], "--workers"),
    (["--lyapunov", "--executor", "dask", "--scheduler", "localhost"], "--scheduler"),
    (["--lyapunov", "--executor", "processes", "--workers", "0"], "--workers"),
    ([], "--fixed-points"),
])
def test_cli_flags_are_checked(zoo, capsys, args, named):
    code, _, err = _cli([str(zoo.path), *args], capsys)
    assert code == 2 and named in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_zoo_paths(tmp_path, zoo, capsys):
    missing = tmp_path / "missing"
    code, _, err = _cli([str(missing), "--lyapunov"], capsys)
    assert code == 2 and str(missing) in err and "does not exist" in err
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = _cli([str(plain), "--lyapunov"], capsys)
    assert code == 2 and str(plain) in err and "not a zoo" in err
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = _cli([str(f), "--lyapunov"], capsys)
    assert code == 2 and str(f) in err
    entry = zoo.entries()[0]
    jpath = zoo.path / "entries" / f"{entry}.json"
    header = json.loads(jpath.read_text())
    header["format_version"] = 99
    jpath.write_text(json.dumps(header))
    code, _, err = _cli([str(zoo.path), "--lyapunov"], capsys)
    assert code == 2 and "format_version" in err and "upgrade" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_runs_and_resumes(zoo, capsys, monkeypatch):
    monkeypatch.setattr(analyze_mod, "_DEFAULTS", {
        **analyze_mod._DEFAULTS, "lyapunov": OPTIONS["lyapunov"],
        "timescales": {**analyze_mod._DEFAULTS["timescales"], **OPTIONS["timescales"]}})
    code, out, err = _cli([str(zoo.path), "--lyapunov", "--timescales", "--chunk-size", "2",
                           "--quiet"], capsys)
    assert code == 0, err
    assert "lyapunov: 4 chunks computed, 0 already done" in out
    code, out, _ = _cli([str(zoo.path), "--lyapunov", "--chunk-size", "2", "--quiet"], capsys)
    assert code == 0 and "0 chunks computed, 4 already done" in out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_result(zoo, "lyapunov").sizes["network"] == len(zoo)


def test_stability_certificates_over_a_zoo_equal_direct_and_are_chunk_independent(zoo, capsys):
    """``analyze(zoo, "stability")`` (and ``dynrnn analyze --stability``) stores each network's
    certificates: the same values as one direct call per entry, whatever the chunking (the
    certificates are deterministic), ``theta`` padded with NaN beyond a network's units, and the
    diverged network marked failed."""
    from dynrnn.analyses import stability_certificates

    analyze(zoo, ["stability"], chunk_size=2, progress=False)
    ds = open_result(zoo, "stability").load()
    ids = list(ds["id"].values)
    bad = _bad_id(zoo)
    assert ds["analysis_status"].values[ids.index(bad)] == STATUS["failed"]
    for entry in zoo.entries():
        members = [i for i in ids if i.startswith(entry) and i != bad]
        direct = stability_certificates(zoo.load(members))
        for k, nid in enumerate(members):
            row = ds.isel(network=ids.index(nid))
            for var in ("rate", "holds", "certified", "contraction_rate", "spectral_radius",
                        "necessary_holds"):
                want = np.asarray(direct[var].values[k])
                got = np.asarray(row[var].values)
                assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"), (var, nid)
            used = int(row["condition_used"])
            want_used = str(direct["condition_used"].values[k])
            assert (want_used == "inconclusive" and used == -1) or (
                str(ds["condition"].values[used]) == want_used), nid
            n = int(row["n_units"])
            theta = row["theta"].transpose("condition", "unit").values
            assert np.array_equal(theta[:, :n], direct["theta"].values[k], equal_nan=True)
            assert np.isnan(theta[:, n:]).all()
    assert main(["analyze", str(zoo.path), "--stability", "--chunk-size", "3", "--overwrite",
                 "--quiet"]) == 0
    again = open_result(zoo, "stability").load()
    ok = again["analysis_status"].values == STATUS["ok"]
    assert np.array_equal(again["rate"].values[ok], ds["rate"].values[ok], equal_nan=True)
