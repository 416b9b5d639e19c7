"""Recordings: every file format reads back the array it was written from (NaN kept as
missing, never filled in), standardisation inverts exactly, splits along time and across
trials, delay coordinates, and bad files give a ValueError naming the parameter and the file."""

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from dynrnn.tasks import Recording, load_recording


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]
    x[7, 1] = np.nan  # a missing sample
    x[50] = np.nan  # a missing time step
    return x


def _write(fmt, x, path, dt=0.02):
    if fmt == "npy":
        np.save(path / "d.npy", x)
        return path / "d.npy"
    if fmt == "npz":
        np.savez(path / "d.npz", data=x, dt=dt, channels=np.array(["a", "b", "c"]))
        return path / "d.npz"
    if fmt == "csv":
        t = np.arange(len(x)) * dt
        np.savetxt(path / "d.csv", np.column_stack([t, x]), delimiter=",", fmt="%.17g",
                   header="time,a,b,c", comments="")
        return path / "d.csv"
    da = xr.DataArray(x, dims=("time", "channel"),
                      coords={"time": np.arange(len(x)) * dt, "channel": ["a", "b", "c"]})
    if fmt == "netcdf":
        da.to_netcdf(path / "d.nc")
        return path / "d.nc"
    da.to_dataset(name="v").to_zarr(path / "d.zarr", consolidated=False)
    return path / "d.zarr"


@pytest.mark.filterwarnings("ignore:The data type")  # zarr: string coordinates in format 3
@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "netcdf", "zarr"])
def test_each_format_reads_back_the_array(tmp_path, series, fmt):
    path = _write(fmt, series, tmp_path)
    rec = load_recording(path)
    assert rec.n_trials == 1 and rec.n_channels == 3
    np.testing.assert_array_equal(rec.trials[0], series)  # NaN where NaN, bit for bit
    if fmt != "npy":
        assert rec.dt == pytest.approx(0.02) and rec.dt_source == "file"
        assert rec.channels == ("a", "b", "c")
    else:
        assert rec.dt == 1.0 and rec.dt_source == "default"
    assert rec.source == str(path)


def test_in_memory_sources_agree(series):
    ref = load_recording(series, dt=0.5)
    for src in (torch.as_tensor(series), [series], series[None],
                xr.DataArray(series, dims=("time", "channel"))):
        rec = load_recording(src, dt=0.5)
        np.testing.assert_array_equal(rec.trials[0], ref.trials[0])
    assert load_recording(ref) is ref
    assert load_recording(series[:, 0]).n_channels == 1  # [T]: one channel


def test_trials_of_different_lengths(tmp_path):
    rng = np.random.default_rng(1)
    trials = [rng.standard_normal((n, 2)) for n in (40, 25, 60)]
    rec = load_recording(trials, dt=0.1)
    assert rec.lengths == (40, 25, 60)
    # npz: one array per trial, in the file's order
    np.savez(tmp_path / "t.npz", s0=trials[0], s1=trials[1], s2=trials[2])
    assert load_recording(tmp_path / "t.npz").lengths == (40, 25, 60)
    # [R, T, N] padded with NaN at the end: the padding is dropped, inner NaN kept
    pad = np.full((3, 60, 2), np.nan)
    for i, t in enumerate(trials):
        pad[i, : len(t)] = t
    pad[2, 10, 0] = np.nan
    rec = load_recording(pad)
    assert rec.lengths == (40, 25, 60) and np.isnan(rec.trials[2][10, 0])
    # a trial column in a CSV splits the rows
    rows = np.concatenate([np.column_stack([np.full(len(t), i), t]) for i, t in enumerate(trials)])
    np.savetxt(tmp_path / "t.csv", rows, delimiter=",", fmt="%.17g", header="trial,u,v",
               comments="")
    rec = load_recording(tmp_path / "t.csv")
    assert rec.lengths == (40, 25, 60) and rec.channels == ("u", "v")
    np.testing.assert_array_equal(rec.trials[1], trials[1])
    # netCDF with a trial dim
    xr.DataArray(pad, dims=("trial", "time", "channel")).to_netcdf(tmp_path / "t.nc")
    assert load_recording(tmp_path / "t.nc").lengths == (40, 25, 60)


def test_mask_makes_samples_missing_whatever_their_value(series):
    poisoned = np.nan_to_num(series, nan=1e30)
    rec = load_recording(poisoned, mask=np.isfinite(series))
    np.testing.assert_array_equal(rec.trials[0], series)


def test_csv_without_header_and_channel_subset(tmp_path, series):
    np.savetxt(tmp_path / "n.csv", series, delimiter=",", fmt="%.17g")
    rec = load_recording(tmp_path / "n.csv", dt=0.1)
    assert rec.channels == ("x0", "x1", "x2")
    np.testing.assert_array_equal(rec.trials[0], series)
    sub = load_recording(_write("csv", series, tmp_path), channels=["c", "a"])
    np.testing.assert_array_equal(sub.trials[0], series[:, [2, 0]])
    assert sub.channels == ("c", "a")


@settings(max_examples=25, deadline=None)
@given(T=st.integers(5, 80), N=st.integers(1, 4), frac=st.floats(0.05, 0.9),
       seed=st.integers(0, 10_000))
def test_standardisation_inverts_and_split_partitions(T, N, frac, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N)) * rng.uniform(0.1, 10, N) + rng.uniform(-5, 5, N)
    rec = load_recording(x)
    train, test = rec.split(frac) if int(frac * T) >= 1 else (rec, None)
    if test is not None:
        assert train.lengths[0] + test.lengths[0] == T
        assert test.offsets == (train.lengths[0],)
        np.testing.assert_array_equal(np.concatenate([train.trials[0], test.trials[0]]), x)
    z = rec.standardise()
    np.testing.assert_allclose(np.nanmean(z.trials[0], 0), 0, atol=1e-9)
    np.testing.assert_allclose(np.nanstd(z.trials[0], 0), 1, rtol=1e-9)
    np.testing.assert_allclose(z.to_data_units(z.trials[0]), x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z.from_data_units(x), z.trials[0], rtol=1e-12, atol=1e-12)


def test_split_across_trials():
    rng = np.random.default_rng(2)
    rec = load_recording([rng.standard_normal((30, 2)) for _ in range(4)])
    train, test = rec.split(0.2, heldout_trials=[3])
    assert train.lengths == (24, 24, 24) and test.lengths == (6, 6, 6, 30)
    assert test.trial_ids == (0, 1, 2, 3) and test.offsets == (24, 24, 24, 0)
    with pytest.raises(ValueError, match="heldout_trials"):
        rec.split(0.2, heldout_trials=[4])
    with pytest.raises(ValueError, match="no observed training"):
        rec.split(0.0, heldout_trials=[0, 1, 2, 3])


def test_delay_embedding():
    x = np.arange(20.0).reshape(10, 2)
    rec = load_recording(x, channels=["u", "v"]).delay_embed(3, 2)
    assert rec.lengths == (6,) and rec.embedding == (3, 2)
    assert rec.channels == ("u", "v", "u(t-2)", "v(t-2)", "u(t-4)", "v(t-4)")
    np.testing.assert_array_equal(rec.trials[0][0], [8, 9, 4, 5, 0, 1])  # t = 4
    np.testing.assert_array_equal(rec.trials[0][:, :2], x[4:])
    z = load_recording(x).standardise().delay_embed(2, 1)
    np.testing.assert_allclose(z.to_data_units(z.trials[0])[:, :2], x[1:])
    with pytest.raises(ValueError, match="delay"):
        load_recording(x).delay_embed(3, 5)


def test_errors_name_the_parameter_and_the_file(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("time,a,b\n0,1,2\n1,3,oops\n")
    with pytest.raises(ValueError, match=r"column 'b' is not numeric \(row 3: 'oops'\)") as e:
        load_recording(p)
    assert "bad.csv" in str(e.value)
    np.save(tmp_path / "nan.npy", np.full((50, 2), np.nan))
    with pytest.raises(ValueError, match=r"all NaN") as e:
        load_recording(tmp_path / "nan.npy")
    assert "nan.npy" in str(e.value)
    np.savez(tmp_path / "mix.npz", s0=np.zeros((10, 2)), s1=np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"same number of channels.*\[2, 3\]") as e:
        load_recording(tmp_path / "mix.npz")
    assert "mix.npz" in str(e.value)
    np.save(tmp_path / "ok.npy", np.zeros((10, 2)))
    for bad_dt in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"'dt' parameter of load_recording \(file .*ok\.npy"):
            load_recording(tmp_path / "ok.npy", dt=bad_dt)
    np.savez(tmp_path / "negdt.npz", data=np.zeros((10, 2)), dt=-1.0)
    with pytest.raises(ValueError, match=r"'dt'.*negdt\.npz"):
        load_recording(tmp_path / "negdt.npz")
    np.save(tmp_path / "4d.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"4d\.npy.*shape \[T\]"):
        load_recording(tmp_path / "4d.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy"):
        load_recording(tmp_path / "obj.npy")
    with pytest.raises(ValueError, match="does not exist"):
        load_recording(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="ending in"):
        load_recording(tmp_path / "data.txt")
    p = tmp_path / "jitter.csv"
    p.write_text("t,a\n0,1\n1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"'dt'.*not uniform"):
        load_recording(p)
    with pytest.raises(ValueError, match=r"differs from the file's sampling interval"):
        load_recording(_write("npz", np.zeros((5, 3)), tmp_path), dt=0.5)
    with pytest.raises(ValueError, match="inf"):
        load_recording(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="channels"):
        load_recording(np.zeros((5, 2)), channels=["a", "b", "c"])
    with pytest.raises(TypeError, match="real numbers"):
        load_recording(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="constant"):
        load_recording(np.ones((10, 2))).standardise()
    with pytest.raises(ValueError, match="dt"):
        Recording(trials=(np.zeros((3, 1)),), dt=0.0)
