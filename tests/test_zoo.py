"""Tests of dynrnn.zoo: weights as safetensors + JSON, queries, subsets, atomic writes, results."""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from dynrnn.cli import main
from dynrnn.models import (
    Ensemble,
    GRUConfig,
    LSTMConfig,
    RateRNN,
    RateRNNConfig,
    model_from_spec,
    run,
)
from dynrnn.tasks import FlipFlopTask
from dynrnn.zoo import (
    UnknownNetworkError,
    Zoo,
    ZooIntegrityError,
    ZooIntegrityWarning,
    ZooProblem,
    load_model,
    save_dataset,
    save_model,
)
from dynrnn.zoo import _io as zoo_io

RATE_VARIANTS = {
    "vanilla": RateRNNConfig(n_inputs=2, n_units=6, n_outputs=2),
    "train_tau": RateRNNConfig(
        n_inputs=2, n_units=6, n_outputs=2, train_tau=True, tau_init=2.0, tau_jitter=1.0
    ),
    "dale": RateRNNConfig(
        n_inputs=2, n_units=6, n_outputs=2, dale=True, nonlinearity="relu", leak_form="outside",
        tau_init=3.0,
    ),
    "zero_diagonal": RateRNNConfig(
        n_inputs=2, n_units=6, n_outputs=2, zero_diagonal=True, h0_scale=0.1, tau_init=1.5
    ),
}
GATED = {"gru": GRUConfig(n_inputs=2, n_units=5, n_outputs=2),
         "lstm": LSTMConfig(n_inputs=2, n_units=5, n_outputs=2)}


def _perturbed(model, seed=0):
    """Weights that differ from the seeded initialisation (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
    return model


def _reference_subset(model, picks):
    """Networks ``picks`` of ``model`` rebuilt independently of the zoo (same dtype).

    A subset must be compared with a model of the same composition: torch's batched matmuls
    need not be bitwise equal across different K, so ``run(sub)`` vs ``run(full)[picks]`` can
    differ in the last bit even though the weights are identical.
    """
    spec = model.spec()
    ref = model_from_spec({"model": spec["model"],
                           "configs": [spec["configs"][i] for i in picks],
                           "seeds": [spec["seeds"][i] for i in picks]}).to(model.dtype)
    ref.load_state_dict({k: v[list(picks)] for k, v in model.state_dict().items()})
    return ref


def _outputs(model, x):
    return run(model, x.to(model.dtype), generator=123)


def _assert_same_model(a, b):
    assert type(a) is type(b)
    assert a.spec() == b.spec()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k
    for name, p in a.named_parameters():
        assert dict(b.named_parameters())[name].requires_grad == p.requires_grad


def _assert_bitwise_outputs(a, b, x):
    (sa, ya), (sb, yb) = _outputs(a, x), _outputs(b, x)
    assert torch.equal(sa, sb) and torch.equal(ya, yb)


@pytest.fixture
def x():
    return torch.randn(3, 9, 2, generator=torch.Generator().manual_seed(7))


# ----------------------------------------------------------------------------- roundtrips
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(RATE_VARIANTS) + list(GATED))
def test_roundtrip_bitwise(tmp_path, x, name, dtype):
    config = {**RATE_VARIANTS, **GATED}[name]
    model = _perturbed(Ensemble(config, n_networks=3, seed=5)).to(dtype)
    zoo = Zoo(tmp_path / "zoo")
    ids = zoo.add(model)
    entry = ids[0].split("/")[0]
    assert ids == [f"{entry}/{k}" for k in range(3)]

    for loaded in (zoo.load_entry(entry), zoo.load(ids)):
        assert loaded.dtype == dtype
        _assert_same_model(model, loaded)
        _assert_bitwise_outputs(model, loaded, x)

    save_model(model, tmp_path / "single" / "net", metadata={"note": "hi", "k": np.int64(3)})
    loaded, meta = load_model(tmp_path / "single" / "net.safetensors")
    assert meta == {"note": "hi", "k": 3}
    _assert_same_model(model, loaded)
    _assert_bitwise_outputs(model, loaded, x)
    assert load_model(tmp_path / "single" / "net", dtype=torch.float64)[0].dtype == torch.float64


def test_json_metadata_content(tmp_path):
    model = Ensemble(RATE_VARIANTS["train_tau"], n_networks=2)
    zoo = Zoo(tmp_path)
    task = FlipFlopTask(n_bits=2, n_steps=20)
    ids = zoo.add(model, task=task, outcome={"reached": [True, False], "final_loss": 0.5},
                  tags=["b", "a"])
    entry = ids[0].split("/")[0]
    text = (tmp_path / "entries" / f"{entry}.json").read_text()
    header = json.loads(text)  # plain JSON: no pickle, nothing executable
    assert "\\u0080" not in text and "pickle" not in text
    assert header["spec"] == model.spec()
    assert header["task"] == task.to_dict()
    assert header["outcome"] == {"reached": [True, False], "final_loss": [0.5, 0.5]}
    assert header["tags"] == ["a", "b"]
    assert header["dtype"] == "float32" and header["n_networks"] == 2
    assert header["tensors"]["W_rec"] == {"shape": [2, 6, 6], "dtype": "float32"}
    assert {"created", "dynrnn_version", "torch_version", "weights_sha256"} <= set(header)
    assert zoo.task(ids[1]) == task
    assert zoo.entry_info(entry)["entry"] == entry


def test_bool_buffers_roundtrip(tmp_path, x):
    class MaskedRateRNN(RateRNN):
        """A rate RNN with a bool connectivity mask buffer (exercises bool storage)."""

        model_name = "_test_masked_rate_rnn"

        def _init_network(self, c, g):
            params = super()._init_network(c, g)
            params["keep"] = torch.rand(c.n_units, c.n_units, generator=g) > 0.3
            return params

        def effective_weights(self):
            return super().effective_weights() * self.keep

    model = _perturbed(MaskedRateRNN(RATE_VARIANTS["vanilla"], n_networks=2, seed=3))
    path = save_model(model, tmp_path / "masked")
    loaded, _ = load_model(path)
    assert loaded.keep.dtype == torch.bool
    _assert_same_model(model, loaded)
    _assert_bitwise_outputs(model, loaded, x)
    zoo = Zoo(tmp_path / "zoo")
    ids = zoo.add(model)
    sub = zoo.load(ids[::-1])
    assert sub.keep.dtype == torch.bool and torch.equal(sub.keep, model.keep.flip(0))


# ----------------------------------------------------------------------------- appending/query
def _two_entry_zoo(path):
    zoo = Zoo(path)
    cfg64 = RateRNNConfig(n_inputs=2, n_units=8, n_outputs=1)
    a = _perturbed(Ensemble(cfg64, n_networks=3, seed=0), seed=1)
    b = _perturbed(
        Ensemble([RateRNNConfig(n_inputs=2, n_units=8, n_outputs=1, init_gain=g)
                       for g in (0.5, 1.5)], seed=10),
        seed=2,
    )
    task = FlipFlopTask(n_bits=2)
    ids_a = zoo.add(a, task=task, outcome={"reached": [True, False, True], "final_loss":
                                           np.array([0.1, 0.9, 0.2])}, tags="first")
    ids_b = zoo.add(b, outcome={"reached": torch.tensor([False, True]), "final_loss": [0.8, 0.05]},
                    tags=["second", "gain"])
    return zoo, a, b, ids_a, ids_b


def test_append_and_query_across_entries(tmp_path):
    zoo, a, b, ids_a, ids_b = _two_entry_zoo(tmp_path)
    assert ids_a[0].split("/")[0] != ids_b[0].split("/")[0]
    assert len(zoo) == 5 and len(zoo.entries()) == 2
    assert zoo.ids() == ids_a + ids_b
    assert ids_a[0] in zoo and ids_b in zoo and ids_a[0].split("/")[0] in zoo
    assert "nope/0" not in zoo and f"{ids_a[0].split('/')[0]}/3" not in zoo

    df = zoo.networks()
    assert list(df["id"]) == ids_a + ids_b
    assert list(df.columns[:5]) == ["id", "entry", "k", "model", "seed"]
    assert list(df["seed"]) == [0, 1, 2, 10, 11]
    assert list(df["init_gain"]) == [1.0, 1.0, 1.0, 0.5, 1.5]
    assert list(df["reached"]) == [True, False, True, False, True]
    assert df["task.n_bits"].iloc[0] == 2 and df["task"].iloc[0] == "flipflop"
    rows = zoo.networks(as_frame=False)
    assert "task" not in rows[3] and rows[3]["tags"] == ["gain", "second"]

    assert zoo.query(n_units=8, reached=True) == [ids_a[0], ids_a[2], ids_b[1]]
    assert zoo.query(reached=1) == []  # True does not match 1
    assert zoo.query(tags="gain") == ids_b
    assert zoo.query(tags={"first", "gain"}) == ids_a + ids_b
    assert zoo.query(init_gain=[0.5, 1.5]) == ids_b
    assert zoo.query(final_loss=lambda v: v < 0.15) == [ids_a[0], ids_b[1]]
    assert zoo.query(lambda r: r["k"] == 0, model="rate_rnn") == [ids_a[0], ids_b[0]]
    assert zoo.query(**{"task.n_bits": 2}) == ids_a
    with pytest.raises(ValueError, match="n_unit"):
        zoo.query(n_unit=8)

    meta = zoo.metadata([ids_b[1], ids_a[0]])
    assert [m["id"] for m in meta] == [ids_b[1], ids_a[0]]
    assert meta[0]["final_loss"] == 0.05 and meta[0]["init_gain"] == 1.5


def test_load_subset_across_entries(tmp_path, x):
    zoo, a, b, ids_a, ids_b = _two_entry_zoo(tmp_path)
    ids = [ids_b[1], ids_a[2], ids_a[0], ids_b[1]]
    model = zoo.load(ids)
    assert model.n_networks == 4
    assert model.seeds == [11, 2, 0, 11]
    assert [c.init_gain for c in model.configs] == [1.5, 1.0, 1.0, 1.5]
    sources = [(b, 1), (a, 2), (a, 0), (b, 1)]
    for name, t in model.state_dict().items():  # every weight bitwise from its source network
        for j, (src, k) in enumerate(sources):
            assert torch.equal(t[j], src.state_dict()[name][k]), (name, j)
    ref = Ensemble([src.configs[k] for src, k in sources], seeds=[11, 2, 0, 11])
    ref.load_state_dict({n: torch.stack([src.state_dict()[n][k] for src, k in sources])
                         for n in model.state_dict()})
    _assert_same_model(ref, model)
    _assert_bitwise_outputs(ref, model, x)
    s, y = _outputs(model, x)
    for j, (src, k) in enumerate(sources):  # same trajectories as in the source ensembles
        s_src, y_src = _outputs(src, x)
        torch.testing.assert_close(s[j], s_src[k])
        torch.testing.assert_close(y[j], y_src[k])


def test_load_structural_mismatch_names_field(tmp_path):
    zoo = Zoo(tmp_path)
    small = zoo.add(Ensemble(RateRNNConfig(n_inputs=2, n_units=4, n_outputs=1)))
    big = zoo.add(Ensemble(RateRNNConfig(n_inputs=2, n_units=5, n_outputs=1)))
    gru = zoo.add(Ensemble(GATED["gru"]))
    with pytest.raises(ValueError, match=r"'n_units'.*" + small[0]):
        zoo.load([small[0], big[0]])
    with pytest.raises(ValueError, match="different models"):
        zoo.load([small[0], gru[0]])
    f64 = zoo.add(Ensemble(RateRNNConfig(n_inputs=2, n_units=4, n_outputs=1), seed=9).double())
    with pytest.raises(ValueError, match="dtype"):
        zoo.load([small[0], f64[0]])
    mixed = zoo.load([small[0], f64[0]], dtype=torch.float64)
    assert mixed.dtype == torch.float64 and mixed.seeds == [0, 9]


def test_unknown_ids(tmp_path):
    zoo, _, _, ids_a, _ = _two_entry_zoo(tmp_path)
    entry = ids_a[0].split("/")[0]
    for bad in ("deadbeef0000/0", f"{entry}/3", f"{entry}/x", f"{entry}/-1"):
        with pytest.raises(KeyError, match=bad):
            zoo.load([ids_a[0], bad])
        with pytest.raises(ValueError, match=bad):
            zoo.metadata(bad)
    with pytest.raises(UnknownNetworkError, match="load_entry"):
        zoo.load(entry)
    with pytest.raises(KeyError, match="deadbeef"):
        zoo.load_entry("deadbeef")
    with pytest.raises(ValueError, match="at least one"):
        zoo.load([])


def test_add_idempotent_and_validation(tmp_path):
    zoo = Zoo(tmp_path)
    model = Ensemble(RATE_VARIANTS["vanilla"], n_networks=2)
    ids = zoo.add(model, outcome={"reached": True})
    assert zoo.add(model, outcome={"reached": True}) == ids and len(zoo) == 2
    assert zoo.add(model, outcome={"reached": False}) != ids and len(zoo) == 4
    with pytest.raises(ValueError, match="K=2"):
        zoo.add(model, outcome={"final_loss": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="n_units"):
        zoo.add(model, outcome={"n_units": 3})
    with pytest.raises(ValueError, match="JSON"):
        zoo.add(model, outcome={"obj": object()})
    with pytest.raises(ValueError, match="RecurrentModel"):
        zoo.add(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="tags"):
        zoo.add(model, tags=[1])
    assert len(zoo) == 4


def test_empty_zoo_and_listing_unknown_models(tmp_path):
    zoo = Zoo(tmp_path / "z", create=True)
    assert (tmp_path / "z" / "entries").is_dir()
    assert len(zoo) == 0 and zoo.ids() == [] and zoo.query(n_units=3) == []
    assert list(zoo.networks().columns[:2]) == ["id", "entry"] and zoo.networks().empty
    ids = zoo.add(Ensemble(GATED["gru"], n_networks=2))
    path = tmp_path / "z" / "entries" / f"{ids[0].split('/')[0]}.json"
    header = json.loads(path.read_text())
    header["spec"]["model"] = "plrnn_from_a_newer_dynrnn"
    path.write_text(json.dumps(header))
    assert zoo.query(model="plrnn_from_a_newer_dynrnn") == ids  # listing needs no model class
    with pytest.raises(ValueError, match="unknown model 'plrnn_from_a_newer_dynrnn'"):
        zoo.load(ids)
    with pytest.raises(ValueError, match="unknown model"):
        zoo.load_entry(ids[0])


# ----------------------------------------------------------------------------- safety
class _Boom:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    model = Ensemble(RATE_VARIANTS["vanilla"], n_networks=2)
    stem = save_model(model, tmp_path / "net")
    weights = tmp_path / "net.safetensors"
    weights.write_bytes(pickle.dumps({"W_rec": _Boom(marker)}))
    with pytest.raises(ValueError, match="safetensors"):
        load_model(stem)
    torch.save({"W_rec": _Boom(marker)}, weights)  # a torch pickle archive
    with pytest.raises(ValueError, match="safetensors"):
        load_model(stem)
    assert not marker.exists()

    zoo = Zoo(tmp_path / "zoo")
    entry = zoo.add(model)[0].split("/")[0]
    (tmp_path / "zoo" / "entries" / f"{entry}.safetensors").write_bytes(
        pickle.dumps(_Boom(marker))
    )
    with pytest.raises(ValueError, match="safetensors"):
        zoo.load_entry(entry)
    with pytest.raises(ValueError, match="safetensors"):
        zoo.load([f"{entry}/0"])
    assert not marker.exists()

    # the loaders use only json + safetensors: forbid every pickle-based loader and load again
    def forbidden(*args, **kwargs):
        raise AssertionError("a pickle-based loader was called")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    entry2 = zoo.add(Ensemble(GATED["lstm"], n_networks=2))[0].split("/")[0]
    zoo.load_entry(entry2)
    zoo.load([f"{entry2}/1"])
    save_model(model, tmp_path / "net2")
    load_model(tmp_path / "net2")


def test_wrong_shapes_and_unknown_model_raise(tmp_path):
    model = Ensemble(RATE_VARIANTS["vanilla"], n_networks=2)
    stem = save_model(model, tmp_path / "net")
    state = {k: v.clone() for k, v in model.state_dict().items()}

    bad = dict(state, W_rec=torch.zeros(2, 7, 7))
    save_file(bad, str(tmp_path / "net.safetensors"))
    with pytest.raises(ValueError, match=r"'W_rec' has shape \[2, 7, 7\]"):
        load_model(stem, verify=False)

    missing = {k: v for k, v in state.items() if k != "tau"}
    save_file(missing, str(tmp_path / "net.safetensors"))
    with pytest.raises(ValueError, match="missing tensors"):
        load_model(stem)

    save_file(dict(state, W_rec=torch.zeros(2, 6, 6, dtype=torch.bool)),
              str(tmp_path / "net.safetensors"))
    with pytest.raises(ValueError, match="float"):
        load_model(stem)

    # same shapes, other values: the sha256 in the JSON notices (verify=False accepts them)
    save_file(dict(state, W_rec=torch.zeros(2, 6, 6)), str(tmp_path / "net.safetensors"))
    with pytest.raises(ValueError, match="sha256"):
        load_model(stem)
    assert torch.equal(load_model(stem, verify=False)[0].W_rec, torch.zeros(2, 6, 6))

    zoo = Zoo(tmp_path / "zoo")
    entry = zoo.add(model)[0].split("/")[0]
    save_file(dict(state, W_in=torch.zeros(2, 6, 3)),
              str(tmp_path / "zoo" / "entries" / f"{entry}.safetensors"))
    with pytest.raises(ValueError, match="'W_in' has shape"):
        zoo.load([f"{entry}/1"])

    header = json.loads((tmp_path / "net.json").read_text())
    header["spec"]["model"] = "os.system"
    (tmp_path / "net.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="unknown model 'os.system'"):
        load_model(stem)
    (tmp_path / "net.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(stem)


# ----------------------------------------------------------------------------- atomicity, index
def _files(path):
    return sorted(p.name for p in (path / "entries").iterdir())


def test_interrupted_add_leaves_no_visible_entry(tmp_path, monkeypatch):
    zoo, _, _, ids_a, ids_b = _two_entry_zoo(tmp_path)
    before = zoo.ids()
    model = Ensemble(GATED["gru"], n_networks=2)
    real = zoo_io.atomic_write_bytes

    def dies_on_json(path, data):
        if str(path).endswith(".json"):  # weights already in place, metadata not yet
            raise KeyboardInterrupt("killed mid-save")
        return real(path, data)

    monkeypatch.setattr(zoo_io, "atomic_write_bytes", dies_on_json)
    with pytest.raises(KeyboardInterrupt):
        zoo.add(model)
    monkeypatch.undo()
    assert zoo.ids() == before and len(Zoo(tmp_path)) == 5

    real_replace = os.replace

    def replace_fails(src, dst):  # the crash happens while moving the file into place
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace_fails)
    with pytest.raises(OSError, match="disk full"):
        zoo.add(model, tags="x")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not [f for f in _files(tmp_path) if f.startswith(".")]  # temp files cleaned up

    # a process killed hard leaves a temp file behind: it is ignored
    (tmp_path / "entries" / ".abc.json.0123.tmp").write_text('{"format": "dynrnn.wei')
    assert zoo.ids() == before
    assert zoo.load(before[-1]).n_networks == 1

    new = zoo.add(model)  # the zoo is still usable
    assert zoo.ids() == before + new and zoo.load(new).n_networks == 2


def test_index_is_a_rebuildable_cache(tmp_path):
    zoo, _, _, ids_a, ids_b = _two_entry_zoo(tmp_path)
    index = tmp_path / "index.json"
    expected = zoo.ids()
    assert index.exists()
    index.unlink()
    assert Zoo(tmp_path).ids() == expected and index.exists()
    index.write_text("garbage{")
    assert zoo.ids() == expected

    other = Zoo(tmp_path)  # a second writer: the first sees its entry (stale index refreshed)
    new = other.add(Ensemble(RATE_VARIANTS["dale"]))
    assert zoo.ids() == expected + new
    entry_b = ids_b[0].split("/")[0]
    (tmp_path / "entries" / f"{entry_b}.json").unlink()  # an entry removed behind our back
    assert zoo.ids() == ids_a + new
    cached = json.loads(index.read_text())["entries"]
    assert set(cached) == {i.split("/")[0] for i in ids_a + new}


# ----------------------------------------------------------------------------- results
def test_results_roundtrip_and_resume(tmp_path, monkeypatch):
    zoo = Zoo(tmp_path)
    ds = xr.Dataset(
        {
            "stable": ("network", np.array([True, False, True])),
            "n_fixed_points": ("network", np.array([3, 1, 9], dtype=np.int64)),
            "lyapunov": (("network", "exponent"), np.random.default_rng(0).normal(size=(3, 2))),
        },
        coords={"network": np.arange(3), "model": ("network", ["rate_rnn", "gru", "lstm"]),
                "reached": ("network", np.array([True, True, False]))},
        attrs={"analysis": "lyapunov", "converged": True, "config": {"n_steps": 500},
               "note": None, "seeds": [1, 2], "dt": 0.1},
    )
    ds["lyapunov"].attrs = {"units": "1/step", "normalised": False}
    assert not zoo.has_result("lyapunov/abc")
    path = zoo.save_result("lyapunov/abc", ds)
    assert path.exists() and path.suffix == ".nc"
    assert zoo.has_result("lyapunov/abc") and zoo.results() == ["lyapunov/abc"]
    back = zoo.load_result("lyapunov/abc")
    assert back.identical(ds)
    assert back["stable"].dtype == bool and back["n_fixed_points"].dtype == np.int64
    assert back.attrs["config"] == {"n_steps": 500} and back.attrs["converged"] is True

    with pytest.raises(KeyError, match="missing"):
        zoo.load_result("missing")
    for bad in ("../escape", "/abs", "a//b", ".hidden", ""):
        with pytest.raises(ValueError):
            zoo.has_result(bad)
    with pytest.raises(ValueError, match="int32"):
        zoo.save_result("big", xr.Dataset({"v": ("x", np.array([2**40]))}))

    def crash(self, *args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(RuntimeError):
        zoo.save_result("partial", ds)
    assert not zoo.has_result("partial")
    assert not [p for p in (tmp_path / "results").rglob("*") if p.name.startswith(".")]


# ----------------------------------------------------------------------------- property
@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(["rate", "gru", "lstm"]),
    K=st.integers(1, 4),
    N=st.integers(1, 6),
    I=st.integers(1, 3),
    O=st.integers(1, 3),
    double=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_roundtrip_property(kind, K, N, I, O, double, seed, data):
    config = {
        "rate": RateRNNConfig(n_inputs=I, n_units=N, n_outputs=O, train_tau=True, tau_init=1.5),
        "gru": GRUConfig(n_inputs=I, n_units=N, n_outputs=O),
        "lstm": LSTMConfig(n_inputs=I, n_units=N, n_outputs=O),
    }[kind]
    model = _perturbed(Ensemble(config, n_networks=K, seed=seed % 1000), seed=seed)
    if double:
        model = model.double()
    x = torch.randn(2, 4, I, generator=torch.Generator().manual_seed(seed))
    picks = data.draw(st.lists(st.integers(0, K - 1), min_size=1, max_size=5))
    with tempfile.TemporaryDirectory() as tmp:
        loaded, _ = load_model(save_model(model, Path(tmp) / "m"))
        _assert_same_model(model, loaded)
        _assert_bitwise_outputs(model, loaded, x)
        zoo = Zoo(Path(tmp) / "zoo")
        ids = zoo.add(model)
        sub = zoo.load([ids[i] for i in picks])
        ref = _reference_subset(model, picks)
        _assert_same_model(ref, sub)
        _assert_bitwise_outputs(ref, sub, x)
        s_full, _ = _outputs(model, x)
        torch.testing.assert_close(_outputs(sub, x)[0], s_full[picks])


# ----------------------------------------------------------------------------- integrity
def _flip_tail(path, n=64):
    """Invert the last ``n`` bytes of a file in place (same size: only a hash notices)."""
    data = bytearray(Path(path).read_bytes())
    data[-n:] = bytes(b ^ 0xFF for b in data[-n:])
    Path(path).write_bytes(bytes(data))


def _names(path):
    """A regex matching the file ``path`` literally."""
    return re.escape(str(path))


def test_every_read_path_verifies_weights(tmp_path):
    model = _perturbed(Ensemble(RATE_VARIANTS["train_tau"], n_networks=3, seed=1))
    zoo = Zoo(tmp_path / "zoo")
    ids = zoo.add(model)
    other = zoo.add(Ensemble(RATE_VARIANTS["train_tau"], n_networks=2, seed=7))
    entry = ids[0].split("/")[0]
    weights = tmp_path / "zoo" / "entries" / f"{entry}.safetensors"
    stem = save_model(model, tmp_path / "single" / "net")
    single = tmp_path / "single" / "net.safetensors"
    for path in (weights, single):
        _flip_tail(path)

    for read in (lambda: zoo.load(ids), lambda: zoo.load([ids[2]]), lambda: zoo.load(ids[0]),
                 lambda: zoo.load([other[0], ids[1]]), lambda: zoo.load_entry(entry)):
        with pytest.raises(ZooIntegrityError, match=_names(weights) + ".*sha256"):
            read()
    with pytest.raises(ValueError, match=_names(single) + ".*sha256"):
        load_model(stem)
    assert issubclass(ZooIntegrityError, ValueError)
    assert zoo.load(other).n_networks == 2  # the other entry is untouched and loads

    # verify=False reads the damaged bytes as they are (here they changed stored weights)
    for loaded in (zoo.load(ids, verify=False), zoo.load_entry(entry, verify=False),
                   load_model(stem, verify=False)[0]):
        assert loaded.n_networks == 3
        changed = [n for n, t in loaded.state_dict().items()
                   if not torch.equal(t, model.state_dict()[n])]
        assert changed  # what load would have returned silently before

    _flip_tail(weights)  # flipped back: bitwise the stored network again
    _assert_same_model(_reference_subset(model, [2, 0]), zoo.load([ids[2], ids[0]]))


def test_complex_results_roundtrip_exactly(tmp_path):
    special = np.array([1 + 2j, complex(np.nan, 1), complex(np.inf, -0.0),
                        complex(-0.0, np.nan), complex(-np.inf, np.inf), 0j])
    ds = xr.Dataset(
        {
            "eigenvalues": (("network", "eigen"), np.stack([special, -special[::-1]])),
            "modes": (("network", "unit", "eigen"),
                      (np.arange(36).reshape(2, 3, 6) * (1 - 0.5j)).astype(np.complex64)),
            "scalar": ((), np.complex128(3 - 4j)),
            "real": ("eigen", np.linspace(0, 1, 6)),
            "name": ("network", np.array(["rate", "plrnn"])),
        },
        coords={"eigen": special + special, "network": [0, 1],
                "pole": ("network", np.array([1j, -1j], dtype=np.complex64))},
        attrs={"analysis": "test"},
    )
    ds["eigenvalues"].attrs = {"units": "1/step"}
    zoo = Zoo(tmp_path)
    back = zoo.load_result(zoo.save_result("complex", ds).stem)
    xr.testing.assert_identical(back, ds)
    assert back.indexes["eigen"].equals(ds.indexes["eigen"])
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name
        assert back[name].dims == ds[name].dims, name
        if ds[name].dtype.kind == "c":  # bitwise: NaN payloads, infinities, signed zeros
            assert back[name].values.tobytes() == ds[name].values.tobytes(), name
    assert "_dynrnn_complex" not in back.dims
    with pytest.raises(ValueError, match="_dynrnn_complex"):
        zoo.save_result("bad", xr.Dataset({"v": (("_dynrnn_complex",), [1.0, 2.0])}))


def test_failed_save_leaves_no_file(tmp_path):
    zoo = Zoo(tmp_path)
    good = xr.Dataset({"v": ("x", np.arange(3.0))})
    zoo.save_result("fp/net", good)
    unstorable = {
        "longdouble complex": xr.Dataset({"v": ("x", np.ones(2, dtype=np.clongdouble))}),
        "int beyond int32": xr.Dataset({"v": ("x", np.array([2**40]))}),
        "python objects": xr.Dataset({"v": ("x", np.array([{"a": 1}, None], dtype=object))}),
        "attribute": xr.Dataset({"v": ("x", np.arange(2.0))}, attrs={"f": object()}),
    }
    for why, ds in unstorable.items():
        for name in ("fp/new", "fp/net"):  # a new result and one replacing an existing file
            with pytest.raises(ValueError):
                zoo.save_result(name, ds)
            assert not zoo.has_result("fp/new"), why
            xr.testing.assert_identical(zoo.load_result("fp/net"), good)
            leftovers = sorted(p.name for p in (tmp_path / "results").rglob("*"))
            assert leftovers == ["fp", "net.nc"], (why, leftovers)
    with pytest.raises(ValueError, match="'v'.*clongdouble|'v'.*complex256"):
        save_dataset(unstorable["longdouble complex"], tmp_path / "direct.nc")
    assert not (tmp_path / "direct.nc").exists()


def _result_builders():
    """Every kind of result the package returns, each from a small, fast model."""
    from dynrnn import analyses as A
    from dynrnn.models import (
        ALRNN,
        PLRNN,
        ALRNNConfig,
        IzhikevichConfig,
        IzhikevichReservoir,
        PLRNNConfig,
        ShallowPLRNN,
        ShallowPLRNNConfig,
    )
    from dynrnn.training import GTFConfig, TrainConfig, train, train_gtf

    task = FlipFlopTask(n_bits=2, n_steps=20)

    def rate(N=4, K=2, seed=0):
        return Ensemble(RateRNNConfig(n_inputs=2, n_units=N, n_outputs=2), n_networks=K,
                        seed=seed)

    def states(K=2):
        return run(rate(K=K), torch.zeros(1, 2, 40, 2), generator=1)[0]  # [K, B, T, N]

    def plrnn():
        return _perturbed(PLRNN(PLRNNConfig(3, 3, dt=0.01), n_networks=2, seed=2)).double()

    def alrnn():
        return ALRNN(ALRNNConfig(4, 3, n_pwl=2), n_networks=2, seed=3).double()

    def series():
        return np.cumsum(np.random.default_rng(0).normal(size=(300, 3)), 0) * 0.1

    def gtf_history():
        hist = train_gtf(ShallowPLRNN(ShallowPLRNNConfig(3, 3, n_hidden=8), n_networks=2),
                         series().astype(np.float32),
                         GTFConfig(n_iterations=3, seq_len=10, batch_size=2))
        a = hist.as_arrays()
        return xr.Dataset(
            {"loss": (("iteration", "network"), a["loss"]),
             "alpha": (("iteration", "network"), a["alpha"]),
             "grad_norm": (("iteration", "network"), a["grad_norm"]),
             "lr": ("iteration", a["lr"]), "wall_time": ("iteration", a["wall_time"])},
            attrs={"tau": hist.tau, "stopped": hist.stopped},
        )

    def spiking():
        cfg = IzhikevichConfig(n_excitatory=8, n_inhibitory=2, n_inputs=0, n_outputs=0)
        return IzhikevichReservoir(cfg, seed=0).simulate(20, seed=0, record_rates=True)

    def report():
        return A.degeneracy_report(
            [rate(), rate(N=5, K=1, seed=3)], task, group_by="n_units", n_trials=4,
            n_dsa_trials=2, dsa_kwargs=dict(n_delays=2, rank=4, n_starts=1, max_iters=50),
            weight_kwargs=dict(n_restarts=1), representations=True,
        )

    return {
        "find_fixed_points": lambda: A.find_fixed_points(rate(), n_initial=8, seed=0),
        "lyapunov_spectrum": lambda: A.lyapunov_spectrum(rate(), n_steps=50, burn_in=10,
                                                         tangent_burn_in=10),
        "max_lyapunov_two_trajectory": lambda: A.max_lyapunov_two_trajectory(
            rate(), n_steps=50, burn_in=10, transient=10),
        "linearise": lambda: A.linearise(rate(), torch.randn(2, 3, 4,
                                                              generator=torch.Generator())),
        "linearise_trajectory": lambda: A.linearise_trajectory(rate(), states()[:, :1, :10]),
        "network_timescale": lambda: A.network_timescale(states(), rate(), kind="single"),
        "network_timescale_per_unit": lambda: A.network_timescale(states(), rate(),
                                                                  kind="single", per_unit=True),
        "dsa": lambda: A.dsa(states(K=3)[:, 0], n_delays=2, rank=4, n_starts=1, max_iters=50),
        "procrustes_distance": lambda: A.procrustes_distance(states()[:, 0]),
        "cca_distance": lambda: A.cca_distance(states()[:, 0]),
        "cka": lambda: A.cka(states()[:, 0]),
        "weight_distance": lambda: A.weight_distance(rate(), n_restarts=1,
                                                     return_permutations=True),
        "behavioural_degeneracy": lambda: A.behavioural_degeneracy(rate(), task, n_trials=4),
        "degeneracy_report": report,
        "degeneracy_summary": lambda: A.degeneracy_summary(report()),
        "evaluate_reconstruction": lambda: A.evaluate_reconstruction(plrnn(), series(),
                                                                     lyapunov=False, pe_steps=3),
        "find_cycles": lambda: A.find_cycles(plrnn(), 2, n_restarts=16, n_rounds=1,
                                             max_inner=10),
        "brute_force_cycles": lambda: A.brute_force_cycles(plrnn(), 1),
        "subregion_fixed_points": lambda: A.subregion_fixed_points(alrnn()),
        "train_history": lambda: train(rate(), task, TrainConfig(n_steps=4, batch_size=4,
                                                                 eval_every=2),
                                       seed=0).to_xarray(),
        "train_gtf_history": gtf_history,
        "trials": lambda: task.sample(3, seed=0).to_xarray(),
        "spiking": lambda: spiking().to_xarray(),
    }


@pytest.mark.parametrize("name", list(_result_builders()))
def test_every_analysis_result_roundtrips(tmp_path, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. untrained networks' fits
        ds = _result_builders()[name]()
    assert isinstance(ds, xr.Dataset)
    zoo = Zoo(tmp_path / "zoo")
    zoo.save_result(f"{name}/abc", ds)
    back = Zoo(tmp_path / "zoo").load_result(f"{name}/abc")
    xr.testing.assert_identical(back, ds)
    for var in ds.variables:
        assert back[var].dtype == ds[var].dtype, var
        assert back[var].dims == ds[var].dims, var
    assert set(back.coords) == set(ds.coords) and set(back.indexes) == set(ds.indexes)


def test_reads_of_a_missing_zoo_name_the_path(tmp_path, capsys):
    path = tmp_path / "typo" / "zoo"
    zoo = Zoo(path)
    assert not (tmp_path / "typo").exists()  # constructing creates nothing
    reads = {
        "ids": zoo.ids, "entries": zoo.entries, "networks": zoo.networks,
        "query": lambda: zoo.query(n_units=4), "len": lambda: len(zoo),
        "iter": lambda: list(zoo), "contains": lambda: "abc/0" in zoo,
        "load": lambda: zoo.load(["abc/0"]), "load_entry": lambda: zoo.load_entry("abc"),
        "metadata": lambda: zoo.metadata("abc/0"), "entry_info": lambda: zoo.entry_info("abc"),
        "load_result": lambda: zoo.load_result("x"), "has_result": lambda: zoo.has_result("x"),
        "results": zoo.results, "check": zoo.check,
    }
    for what, read in reads.items():
        with pytest.raises(FileNotFoundError, match=_names(path)):
            read()
        assert not (tmp_path / "typo").exists(), what
    assert main(["zoo", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err

    model = Ensemble(RATE_VARIANTS["vanilla"], n_networks=2)
    ids = zoo.add(model)  # writing creates the directory (README: Zoo("zoo").add(...))
    assert zoo.ids() == ids and Zoo(path).load(ids).n_networks == 2
    other = Zoo(tmp_path / "results_only")
    other.save_result("r", xr.Dataset({"v": ("x", [1.0])}))
    assert other.results() == ["r"] and other.ids() == []
    made = Zoo(tmp_path / "made", create=True)
    assert (tmp_path / "made" / "entries").is_dir() and made.ids() == [] and made.check() == []
    (tmp_path / "plain").mkdir()  # an existing directory without entries/ is an empty zoo
    assert len(Zoo(tmp_path / "plain")) == 0
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        Zoo(tmp_path / "file")


def _three_entry_zoo(path):
    zoo = Zoo(path)
    models = [_perturbed(Ensemble(RATE_VARIANTS["vanilla"], n_networks=2, seed=s), seed=s)
              for s in (0, 10, 20)]
    ids = [zoo.add(m, outcome={"final_loss": [0.1 * s, 0.2]}, tags="t")
           for s, m in enumerate(models)]
    entries = [i[0].split("/")[0] for i in ids]
    return zoo, models, ids, entries


def test_damaged_entries_are_skipped_refused_and_reported(tmp_path, capsys):
    zoo, models, (ids_a, ids_b, ids_c), (a, b, c) = _three_entry_zoo(tmp_path)
    entries = tmp_path / "entries"
    b_json, c_weights = entries / f"{b}.json", entries / f"{c}.safetensors"
    good_json = b_json.read_bytes()
    b_json.write_bytes(good_json[: len(good_json) // 2])  # truncated (a crash mid-copy)
    _flip_tail(c_weights)  # damaged weights, intact JSON

    with pytest.warns(ZooIntegrityWarning, match=rf"{b}.*{_names(b_json)}"):
        assert zoo.ids() == ids_a + ids_c  # c's JSON is fine, so it is listed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZooIntegrityWarning)
        assert zoo.query(tags="t") == ids_a + ids_c and len(zoo) == 4
        assert list(zoo.networks()["id"]) == ids_a + ids_c
        assert ids_b[0] not in zoo and zoo.entries() == [a, c]
        assert Zoo(tmp_path).query(final_loss=0.0) == [ids_a[0]]  # a fresh reader too
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading good networks neither fails nor warns
        _assert_same_model(models[0], zoo.load(ids_a))
        _assert_same_model(models[0], zoo.load_entry(a))
        assert zoo.metadata(ids_a[1])[0]["final_loss"] == 0.2

    for read in (lambda: zoo.load(ids_b), lambda: zoo.load([ids_a[0], ids_b[1]]),
                 lambda: zoo.load_entry(b), lambda: zoo.entry_info(b),
                 lambda: zoo.metadata(ids_b[0])):
        with pytest.raises(ZooIntegrityError, match=_names(b_json)):
            read()
    for read in (lambda: zoo.load(ids_c), lambda: zoo.load([ids_a[0], ids_c[1]]),
                 lambda: zoo.load_entry(c)):
        with pytest.raises(ZooIntegrityError, match=_names(c_weights) + ".*sha256"):
            read()

    problems = {p.entry: p for p in zoo.check()}
    assert len(zoo.check()) == 2 and all(isinstance(p, ZooProblem) for p in problems.values())
    assert (problems[b].path, problems[b].kind) == (b_json, "json")
    assert (problems[c].path, problems[c].kind) == (c_weights, "weights")
    assert "JSON" in problems[b].description and "sha256" in problems[c].description
    assert str(problems[c]).startswith(f"{c_weights}: weights (entry {c}): ")

    assert main(["zoo", "check", str(tmp_path)]) == 1
    out = capsys.readouterr()
    lines = sorted(out.out.strip().splitlines())
    assert lines == sorted([str(problems[b]), str(problems[c])])
    assert str(b_json) in " ".join(lines) and str(c_weights) in " ".join(lines)
    assert "2 problems" in out.err

    b_json.write_bytes(good_json)  # repaired: listed again (the index did not keep it out)
    _flip_tail(c_weights)
    assert zoo.ids() == ids_a + ids_b + ids_c and zoo.check() == []
    assert main(["zoo", "check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path}: ok (3 entries, 6 networks, 0 results)"


def test_check_lists_every_kind_of_problem(tmp_path, capsys):
    zoo, models, ids, (a, b, c) = _three_entry_zoo(tmp_path)
    zoo.save_result("fine", xr.Dataset({"v": ("x", [1.0, 2.0])}))
    bad_result = zoo.save_result("lyapunov/broken", xr.Dataset({"v": ("x", np.arange(50.0))}))
    assert zoo.check() == [] and zoo.check(verify=False) == []
    entries = tmp_path / "entries"
    (entries / f"{a}.safetensors").unlink()  # weights missing
    state = {k: v.clone() for k, v in models[1].state_dict().items()}
    save_file(dict(state, W_rec=torch.zeros(2, 7, 7)), str(entries / f"{b}.safetensors"))
    header = json.loads((entries / f"{c}.json").read_text())
    del header["format"]  # valid JSON, but not a dynrnn entry
    (entries / f"{c}.json").write_text(json.dumps(header))
    extra = Ensemble(RATE_VARIANTS["dale"], n_networks=1)
    orphan = Zoo(tmp_path / "other").add(extra)[0].split("/")[0]
    os.replace(tmp_path / "other" / "entries" / f"{orphan}.safetensors",
               entries / f"{orphan}.safetensors")  # an add killed before its JSON
    bad_result.write_bytes(bad_result.read_bytes()[:40])  # truncated netCDF
    (entries / ".x.json.0123.tmp").write_text("{")  # a write in progress is no problem

    found = {(p.entry, p.path.name, p.kind) for p in zoo.check()}
    assert found == {
        (a, f"{a}.safetensors", "weights"),
        (b, f"{b}.safetensors", "weights"),
        (c, f"{c}.json", "json"),
        (orphan, f"{orphan}.safetensors", "orphan"),
        (None, "broken.nc", "result"),
    }
    by_entry = {p.entry: p.description for p in zoo.check()}
    assert "missing" in by_entry[a]
    assert "'W_rec' is [2, 7, 7] float32, recorded [2, 6, 6] float32" in by_entry[b]
    assert "format" in by_entry[c] and "JSON" in by_entry[orphan]
    assert main(["zoo", "check", str(tmp_path), "--no-verify"]) == 1
    assert len(capsys.readouterr().out.strip().splitlines()) == 5
    with pytest.raises(ValueError, match=_names(bad_result)):
        zoo.load_result("lyapunov/broken")
    with pytest.warns(ZooIntegrityWarning, match=c):
        assert zoo.ids() == ids[0] + ids[1]  # listing needs only the JSONs


def test_remove_stale_temporaries_deletes_only_old_leftovers(tmp_path):
    """A write killed before its os.replace leaves a hidden .tmp file; old ones are removed,
    recent ones (possibly a live write) and committed files are kept."""
    import os
    import time

    zoo = Zoo(tmp_path / "z", create=True)
    assert zoo.remove_stale_temporaries() == []  # no entries/ yet
    ids = zoo.add(Ensemble(RateRNNConfig(2, 4, 1), n_networks=2, seed=0))
    entries = tmp_path / "z" / "entries"
    old = entries / ".abc.safetensors.0123456789ab.tmp"
    new = entries / ".abc.json.0123456789ab.tmp"
    old.write_bytes(b"half a file")
    new.write_bytes(b"being written")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert zoo.remove_stale_temporaries() == [old]
    assert not old.exists() and new.exists()
    assert zoo.remove_stale_temporaries(older_than=0) == [new]
    assert zoo.check() == [] and zoo.ids() == ids
    with pytest.raises(ValueError, match="older_than"):
        zoo.remove_stale_temporaries(older_than=-1)
