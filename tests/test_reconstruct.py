"""dynrnn.reconstruct on recordings: every file format gives the result of the in-memory array,
NaN samples are masked (a poisoned value behind the mask changes nothing), training stops on
a validation criterion / budget without reshaping the learning-rate schedule and keeps the best
state, the settings come from the data and are recorded, outputs come back in the data's units,
bad files are errors naming the problem; the slow test reconstructs Lorenz-63 from a noisy
two-dimensional observation stored in a file."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

import dynrnn
from dynrnn import cli
from dynrnn.batch.reconstruct import Reconstruction, lyapunov_confidence, reconstruct
from dynrnn.models import PLRNN, PLRNNConfig
from dynrnn.tasks.chaotic import ChaoticSystemTask
from dynrnn.training.gtf import (
    RECIPES,
    GTFConfig,
    dsr_data,
    gtf_loss,
    sample_windows,
    train_gtf,
)

TINY = dict(n_networks=2, n_hidden=8, config={"n_iterations": 6, "seq_len": 20, "batch_size": 2},
            validate_every=3, lyapunov=False, pe_steps=5)


@pytest.fixture(scope="module")
def lorenz():
    """Lorenz-63 in data units (x, y, z scaled back to their natural ranges), 1500 samples."""
    x = ChaoticSystemTask("lorenz63", n_steps=1500, dt=0.01, noise=0.0).sample(1, seed=0)
    return x.targets[0].double().numpy() * [8.0, 9.0, 9.0] + [0.0, 0.0, 24.0]


def _write(fmt, x, path):
    names = ["x", "y", "z"][: x.shape[1]]
    if fmt == "npy":
        np.save(path / "d.npy", x)
        return path / "d.npy"
    if fmt == "npz":
        np.savez(path / "d.npz", data=x, dt=0.01, channels=np.array(names))
        return path / "d.npz"
    if fmt == "csv":
        np.savetxt(path / "d.csv", np.column_stack([np.arange(len(x)) * 0.01, x]),
                   delimiter=",", fmt="%.17g", header="time," + ",".join(names), comments="")
        return path / "d.csv"
    da = xr.DataArray(x, dims=("time", "channel"),
                      coords={"time": np.arange(len(x)) * 0.01, "channel": names})
    if fmt == "netcdf":
        da.to_netcdf(path / "d.nc")
        return path / "d.nc"
    da.to_dataset(name="v").to_zarr(path / "d.zarr", consolidated=False)
    return path / "d.zarr"


def _same(a: Reconstruction, b: Reconstruction):
    np.testing.assert_array_equal(a.result.loss.values, b.result.loss.values)
    for name in ("D_stsp", "D_H", "PE", "free_run", "heldout"):
        np.testing.assert_array_equal(a.result[name].values, b.result[name].values)
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.fixture(scope="module")
def from_memory(lorenz):
    return reconstruct(lorenz, dt=0.01, **TINY)


@pytest.mark.filterwarnings("ignore:The data type")  # zarr: string coordinates in format 3
@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "netcdf", "zarr"])
def test_each_file_format_gives_the_in_memory_result(tmp_path, lorenz, from_memory, fmt):
    path = _write(fmt, lorenz, tmp_path)
    run = reconstruct(path, dt=0.01, **TINY)
    _same(run, from_memory)
    assert run.result.attrs["source"] == run.settings["recording"]["source"] == str(path)


def test_the_entry_point_is_exported():
    assert dynrnn.reconstruct is reconstruct
    assert dynrnn.batch.reconstruct is reconstruct


def test_torch_tensor_and_dataarray_give_the_same_result(lorenz, from_memory):
    _same(reconstruct(torch.as_tensor(lorenz), dt=0.01, **TINY), from_memory)
    _same(reconstruct(xr.DataArray(lorenz, dims=("time", "channel"),
                                   coords={"time": np.arange(len(lorenz)) * 0.01}), **TINY),
          from_memory)


def test_nan_samples_are_masked_a_poisoned_value_behind_the_mask_changes_nothing(lorenz):
    rng = np.random.default_rng(0)
    missing = rng.random(lorenz.shape) < 0.03
    missing[300] = True  # a whole time step
    missing[1300, 1] = True  # in the held-out part
    with_nan = np.where(missing, np.nan, lorenz)
    ref = reconstruct(with_nan, dt=0.01, **TINY)
    for poison in (1e6, -3e4):
        poisoned = np.where(missing, poison, lorenz)
        run = reconstruct(dynrnn.tasks.load_recording(poisoned, mask=~missing, dt=0.01), **TINY)
        _same(run, ref)
    assert np.isfinite(ref.result.loss.values).all()
    # the mask is doing something: the same data without the missing samples trains differently
    full = reconstruct(lorenz, dt=0.01, **TINY)
    assert not np.array_equal(full.result.loss.values, ref.result.loss.values)
    # standardisation ignores missing samples: the stored mean is the nan-mean of the train part
    np.testing.assert_allclose(ref.settings["mean"], np.nanmean(with_nan[:1200], 0), rtol=1e-12)


def test_gtf_loss_masks_targets_and_leaves_missing_units_unforced():
    torch.manual_seed(0)
    m = PLRNN(PLRNNConfig(3, 3), n_networks=2).double()
    with torch.no_grad():
        m.W.add_(0.3 * torch.randn(m.W.shape, dtype=torch.float64))
    win = torch.randn(2, 3, 9, 3, dtype=torch.float64)
    win[0, 1, 4, 2] = float("nan")
    win[1, 0, 6] = float("nan")
    alpha = torch.tensor([0.4, 0.7], dtype=torch.float64)
    loss = gtf_loss(m, win, alpha, forcing="gtf")
    # the equation, written out: z~ = z + w (x - z) with w = alpha where observed, else 0
    params, drive = m.prepare(), m.input_drive(torch.zeros(1, 3, 0, dtype=torch.float64))
    z, preds = win[:, :, 0], []
    for t in range(1, 9):
        if t > 1:
            x = win[:, :, t - 1]
            w = torch.where(torch.isfinite(x), alpha[:, None, None], torch.zeros(()))
            z = z + w * (torch.nan_to_num(x) - z)
        z = m.step_drive(z, drive, params)
        preds.append(z)
    err = torch.stack(preds, 2) - win[:, :, 1:]
    ok = torch.isfinite(err)
    manual = torch.stack([err[k][ok[k]].pow(2).mean() for k in range(2)])
    torch.testing.assert_close(loss, manual, rtol=1e-12, atol=1e-14)
    loss.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())
    with pytest.raises(ValueError, match="step 0"):
        bad = win.clone()
        bad[0, 0, 0, 0] = float("nan")
        gtf_loss(m, bad, alpha)


def test_windows_stay_inside_trials_of_different_lengths_and_start_observed():
    trials = []
    for r, T in enumerate((30, 55, 41)):
        a = np.column_stack([np.full(T, r, dtype=float), np.arange(T, dtype=float)])
        trials.append(a)
    trials[1][10, 1] = np.nan
    d = dsr_data(trials, 2, "test", length=12)
    win = sample_windows(d, 4, 200, 12, torch.Generator().manual_seed(0))  # [4, 200, 12, 2]
    win = win.reshape(-1, 12, 2).numpy()
    assert np.isfinite(win[:, 0]).all()
    assert (win[:, :, 0] == win[:, :1, 0]).all()  # one trial per window
    t = win[:, :, 1]
    ok = np.isfinite(t)
    steps = np.diff(np.where(ok, t, np.nan), axis=1)
    assert np.all((steps == 1) | np.isnan(steps))
    assert set(np.unique(win[:, 0, 0]).astype(int)) == {0, 1, 2}
    assert np.isnan(win).any()  # windows over the missing sample are drawn, not skipped
    with pytest.raises(ValueError, match="too short for one training window"):
        dsr_data(trials, 2, "test", length=56)


def test_stopping_keeps_the_learning_rate_schedule():
    x = np.random.default_rng(0).standard_normal((200, 3))
    cfg = GTFConfig(n_iterations=40, seq_len=10, batch_size=2, lr=1e-2, lr_end=1e-4)
    full = train_gtf(PLRNN(PLRNNConfig(3, 3)), x, cfg, progress=False)
    cut = train_gtf(PLRNN(PLRNNConfig(3, 3)), x,
                    GTFConfig(**{**cfg.__dict__, "stop_after": 12}), progress=False)
    assert len(cut.lr) == 12 and cut.stopped and cut.stop_reason == "stop_after"
    np.testing.assert_array_equal(cut.lr, full.lr[:12])  # no faster decay
    np.testing.assert_array_equal(np.asarray(cut.loss), np.asarray(full.loss)[:12])
    timed = train_gtf(PLRNN(PLRNNConfig(3, 3)), x,
                      GTFConfig(**{**cfg.__dict__, "time_budget": 1e-9}), progress=False)
    assert len(timed.lr) == 1 and timed.stop_reason == "time budget"
    assert timed.to_xarray().attrs["stop_reason"] == "time budget"


def test_python_defaults_are_the_cli_recipes(tmp_path):
    assert GTFConfig() == GTFConfig.recipe("shplrnn")
    assert GTFConfig.recipe("alrnn").forcing == "stf"
    assert GTFConfig.recipe("alrnn", n_iterations=7).n_iterations == 7
    for model, recipe in RECIPES.items():
        args = cli.parse_args(cli.build_parser(), ["reconstruct", "--model", model,
                                                   "--out", str(tmp_path)])
        args.validate(args)
        g = GTFConfig.recipe(model)
        assert (args.iterations, args.seq_len, args.batch_size, args.forcing, args.lr,
                args.lr_end, args.grad_clip or None) == (
            g.n_iterations, g.seq_len, g.batch_size, g.forcing, g.lr, g.lr_end, g.grad_clip)
        if g.forcing == "gtf":
            assert args.alpha == g.alpha
        assert args.keep_best_every == g.n_iterations // 20  # the best state kept by default
        sizes = recipe["model"]
        assert args.initial_state == sizes["initial_state"]
        assert args.latent == (sizes["n_latent"] or 3)
        assert args.hidden == sizes.get("n_hidden", 100) and args.pwl == sizes.get("n_pwl", 2)


def test_validation_patience_stops_and_the_best_state_is_kept(lorenz):
    run = reconstruct(lorenz, dt=0.01, n_networks=2, n_hidden=8, lyapunov=False, pe_steps=5,
                      config={"n_iterations": 300, "seq_len": 20, "batch_size": 2, "lr": 5e-2},
                      validate_every=2, patience=2)
    s = run.settings
    assert s["stop_reason"].startswith("validation patience")
    assert s["iterations_run"] < 300 and len(run.history.lr) == s["iterations_run"]
    ck = run.checkpoint
    # stopped because no network improved over the last 2 evaluations
    assert s["iterations_run"] - ck.best_iteration.max() == 4
    np.testing.assert_array_equal(run.result.best_iteration.values, ck.best_iteration)
    # one trial, no missing samples: the final D_stsp is the kept state's validation score
    np.testing.assert_allclose(run.result.D_stsp.values, ck.best_score, rtol=1e-10)


def test_settings_from_the_data_are_recorded():
    t = np.arange(3000)
    rng = np.random.default_rng(0)
    x = np.stack([np.sin(2 * np.pi * t / 100), np.cos(2 * np.pi * t / 100)], 1)
    x += 0.01 * rng.standard_normal(x.shape)
    run = reconstruct(x, model="alrnn", n_latent=6, **{k: v for k, v in TINY.items()
                                                      if k != "n_hidden"})
    s = run.settings
    assert 15 <= s["tau_estimate"] <= 35  # first MI minimum near a quarter period
    assert s["delay_embedding"] == {"n_delays": 2, "delay": s["tau_estimate"]}
    assert s["forcing_interval"] == s["tau_estimate"] and s["gtf"]["forcing"] == "stf"
    assert run.model.n_outputs == 4 and s["n_pwl"] == 2 and s["initial_state"] == "zero"
    assert run.result.sizes["channel"] == 2  # metrics on the observed channels
    assert json.loads(run.result.attrs["settings"]) == json.loads(json.dumps(s, default=float))
    three = reconstruct(np.column_stack([x, x[:, 0] * x[:, 1]]), **TINY)
    assert three.settings["delay_embedding"] is None and three.model.n_outputs == 3
    assert three.settings["n_latent"] == 3 and three.settings["n_hidden"] == 8


def test_linear_gaussian_observation_of_a_larger_latent_state(lorenz):
    x = lorenz.copy()
    x[100:110, 1] = np.nan
    run = reconstruct(x, dt=0.01, observation="affine", n_latent=7, **TINY)
    assert run.model.config.observation == "affine" and run.model.n_units == 7
    assert run.settings["observation"] == "affine"
    assert np.isfinite(run.result.loss.values).all()
    with pytest.raises(ValueError, match="observation"):
        reconstruct(x, observation="poisson", **TINY)


def test_outputs_come_back_in_the_data_units(lorenz, from_memory):
    res = from_memory.result
    np.testing.assert_allclose(res.heldout.values, lorenz[1200:], rtol=1e-12, atol=1e-12)
    train = lorenz[:1200]
    np.testing.assert_allclose(res.attrs["mean"], train.mean(0), rtol=1e-12)
    np.testing.assert_allclose(res.attrs["std"], train.std(0), rtol=1e-12)
    z = from_memory.train.from_data_units(res.free_run.values)
    np.testing.assert_allclose(from_memory.to_data_units(z), res.free_run.values, rtol=1e-12)
    assert res.free_run.attrs["units"] == "data units"
    assert res.PE.dims == ("network", "n") and res.sizes["n"] == 5
    assert np.isnan(res.max_lyapunov.values).all()  # lyapunov=False


def test_lyapunov_confidence_interval():
    from scipy.stats import t as student_t

    lam = np.array([0.8, 0.9, np.nan, 1.0])
    mean, lo, hi, n = lyapunov_confidence(lam)
    half = student_t.ppf(0.975, 2) * np.std([0.8, 0.9, 1.0], ddof=1) / np.sqrt(3)
    assert n == 3 and mean == pytest.approx(0.9)
    assert (lo, hi) == (pytest.approx(0.9 - half), pytest.approx(0.9 + half))
    assert np.isnan(lyapunov_confidence([0.5])[1]) and lyapunov_confidence([np.nan])[3] == 0


def test_trials_of_different_lengths_and_a_trial_split(tmp_path, lorenz):
    trials = [lorenz[:700], lorenz[700:1100], lorenz[1100:]]
    np.savez(tmp_path / "sessions.npz", a=trials[0], b=trials[1], c=trials[2], dt=0.01)
    run = reconstruct(tmp_path / "sessions.npz", heldout=0.0, heldout_trials=[2], **TINY)
    assert run.train.lengths == (700, 400) and run.heldout.lengths == (400,)
    np.testing.assert_allclose(run.result.heldout.values, lorenz[1100:], rtol=1e-12)


def test_saved_to_a_directory_and_a_zoo(tmp_path, lorenz):
    from dynrnn.zoo import Zoo, load_dataset, load_model

    run = reconstruct(lorenz, dt=0.01, out=tmp_path / "run", zoo=tmp_path / "zoo", **TINY)
    model, meta = load_model(tmp_path / "run" / "model")
    assert meta["reconstruction"]["mean"] == run.settings["mean"]
    assert torch.equal(model.A, run.model.A)
    ds = load_dataset(tmp_path / "run" / "reconstruction.nc")
    np.testing.assert_array_equal(ds.D_stsp.values, run.result.D_stsp.values)
    z = Zoo(tmp_path / "zoo")
    entry = run.settings["zoo_ids"][0].split("/")[0]
    np.testing.assert_array_equal(z.load_result(f"reconstruction/{entry}").D_H.values,
                                  run.result.D_H.values)


def test_figure_from_the_result(from_memory):
    import matplotlib.pyplot as plt

    from dynrnn.plot import plot_reconstruction

    fig = plot_reconstruction(from_memory.result)
    assert len(fig.axes) == 1 + 2 * 3  # state space, 3 spectra, 3 time series
    plt.close(fig)
    fig = plot_reconstruction(from_memory.result, network=1, dims=(0, 2))
    assert len(fig.axes) == 1 + 2 * 3
    plt.close(fig)
    with pytest.raises(ValueError, match="network"):
        plot_reconstruction(from_memory.result, network=5)


def test_bad_files_are_errors_naming_the_problem(tmp_path, lorenz):
    np.save(tmp_path / "nan.npy", np.full((500, 2), np.nan))
    with pytest.raises(ValueError, match=r"nan\.npy.*all NaN"):
        reconstruct(tmp_path / "nan.npy", **TINY)
    np.save(tmp_path / "short.npy", lorenz[:20])
    with pytest.raises(ValueError, match=r"short\.npy.*too short for one training window"):
        reconstruct(tmp_path / "short.npy", **TINY)
    np.savez(tmp_path / "mixed.npz", a=lorenz[:500], b=lorenz[:500, :2])
    with pytest.raises(ValueError, match=r"mixed\.npz.*same number of channels"):
        reconstruct(tmp_path / "mixed.npz", **TINY)
    np.save(tmp_path / "ok.npy", lorenz)
    with pytest.raises(ValueError, match=r"'dt' parameter of load_recording \(file .*ok\.npy"):
        reconstruct(tmp_path / "ok.npy", dt=-0.01, **TINY)
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,high\n")
    with pytest.raises(ValueError, match=r"text\.csv.*column 'b' is not numeric"):
        reconstruct(tmp_path / "text.csv", **TINY)
    with pytest.raises(ValueError, match="model"):
        reconstruct(lorenz, model="lstm")
    with pytest.raises(ValueError, match="n_latent"):
        reconstruct(lorenz, n_latent=2, **TINY)
    with pytest.raises(ValueError, match="heldout"):
        reconstruct(lorenz, heldout=1.0, **TINY)


def test_cli_reconstructs_a_file(tmp_path, lorenz, capsys):
    path = _write("csv", lorenz[:, [0, 2]], tmp_path)
    out = tmp_path / "run"
    rc = cli.main(["reconstruct", "--data", str(path), "--networks", "2", "--hidden", "8",
                   "--iterations", "6", "--seq-len", "20", "--batch-size", "2",
                   "--validate-every", "3", "--lyapunov-steps", "50", "--out", str(out),
                   "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["delay_embedding"]["n_delays"] == 2
    assert metrics["settings"]["recording"]["dt"] == pytest.approx(0.01)  # the time column
    assert metrics["figures"] == ["attractor.png", "loss.png"]
    # the Lyapunov exponent of each network and their mean with a 95% CI over the 2 seeds
    lam = np.asarray(metrics["max_lyapunov"], dtype=float)
    assert lam.shape == (2,) and np.isfinite(lam).all()
    lo, hi = metrics["max_lyapunov_ci95"]
    assert metrics["max_lyapunov_mean"] == pytest.approx(lam.mean())
    assert lo < lam.mean() < hi
    for name in ("attractor.png", "loss.png", "model.safetensors", "reconstruction.nc"):
        assert (out / name).exists()


@pytest.mark.parametrize("extra, message", [
    (["--samples", "5000"], "--samples applies only to --system, not to --data"),
    (["--noise", "0.1"], "--noise applies only to --system"),
    (["--dt", "0"], "--dt must be a finite float > 0"),
    (["--heldout", "1"], "--heldout must be a finite float in [0, 1)"),
    (["--latent", "3"], "--latent must be an int >= 4 (the --data file has 2 channels, 4 "
                        "with the delay embedding)"),
])
def test_cli_data_option_errors(tmp_path, lorenz, capsys, extra, message):
    path = _write("npy", lorenz[:, [0, 2]], tmp_path)
    out = tmp_path / "run"
    assert cli.main(["reconstruct", "--data", str(path), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynrnn: error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_cli_data_file_errors(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["reconstruct", "--data", str(tmp_path / "none.csv"), "--out", out]) == 2
    assert "--data" in capsys.readouterr().err
    assert cli.main(["reconstruct", "--data", str(tmp_path / "x.txt"), "--out", out]) == 2
    assert "--data must be a file ending in one of" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    assert cli.main(["reconstruct", "--data", str(tmp_path / "bad.csv"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "column 'b' is not numeric" in err and "bad.csv" in err and err.count("\n") == 1
    assert cli.main(["reconstruct", "--heldout", "0.3", "--out", out]) == 2
    assert "--heldout applies only to --data FILE, not to --system" in capsys.readouterr().err
    assert cli.main(["reconstruct", "--observation", "affine", "--out", out]) == 2
    assert "--observation applies only to --data FILE" in capsys.readouterr().err


def _lorenz_xz_file(path):
    """A noisy two-dimensional observation (x, z) of Lorenz-63 in the system's own units, 50,000
    samples at dt 0.01 with 5% observation noise (of each channel's sd), written as a CSV file
    with a time column."""
    x = ChaoticSystemTask("lorenz63", n_steps=50_000, dt=0.01, noise=0.0).sample(1, seed=0)
    obs = x.targets[0].double().numpy()[:, [0, 2]] * [8.0, 9.0] + [0.0, 24.0]
    obs = obs + 0.05 * obs.std(0) * np.random.default_rng(1).standard_normal(obs.shape)
    np.savetxt(path, np.column_stack([np.arange(len(obs)) * 0.01, obs]), delimiter=",",
               fmt="%.17g", header="time,x,z", comments="")
    return path


@pytest.mark.slow
def test_reconstruction_of_a_2d_lorenz_observation_from_a_file(tmp_path):
    """Lorenz-63 seen only through (x, z) with 5% noise, given as a CSV file: ``reconstruct``
    with its defaults (the shPLRNN recipe's full 15,000 iterations, delay embedding
    [x, z, x(t - tau), z(t - tau)] with tau the first minimum of the mutual information, 20%
    held out, the best validated checkpoint kept), validated every 750 iterations. It takes
    6-13 minutes on 2 cores, so, like the reconstructions of tests/test_dsr_reconstruction.py,
    it is run by hand (CI's slow step deselects names containing "reconstruction").

    Criteria on the held-out 10,000 samples (2-D, original channels), fixed before the first
    run, for at least 2 of the 4 networks: D_stsp < 0.5, D_H < 0.1 and lambda_max within 25% of
    0.906 per time unit; and the 95% confidence interval over the 4 seeds contains 0.906.
    Calibration at this length: another trajectory of Lorenz itself gives D_stsp 0.13-0.20,
    D_H 0.02-0.03; a Gaussian with the data's mean and covariance 0.76 / 0.87.

    Measured, per network:

    * AMD EPYC, 2 shared cores, 475 s of training: D_stsp 0.19 / 0.23 / 0.16 / 0.31, D_H
      0.042 / 0.042 / 0.028 / 0.032, lambda_max 0.89 / 0.83 / 0.94 / 0.16 (3 of 4 networks
      meet all three; 95% CI [0.12, 1.29]);
    * Intel Xeon (AVX-512), 2 shared cores, 763 s in all: D_stsp 0.22 / 0.26 / 0.18 / 0.87,
      D_H 0.030 / 0.039 / 0.033 / 0.138, lambda_max 0.97 / 0.28 / 0.95 / 0.14 (2 of 4; 95% CI
      [-0.11, 1.28]).

    Stopped after 2,000 iterations (schedule kept) the same run is not there yet: D_stsp
    1.33 / 9.58 / 1.19 / 8.28.
    """
    run = reconstruct(_lorenz_xz_file(tmp_path / "lorenz_xz.csv"), validate_every=750,
                      patience=None, true_lyapunov=0.906, seed=0)
    res = run.result
    assert run.settings["delay_embedding"]["n_delays"] == 2
    assert run.settings["recording"]["dt"] == pytest.approx(0.01)
    lam = res.max_lyapunov.values
    good = (res.D_stsp.values < 0.5) & (res.D_H.values < 0.1) & (np.abs(lam - 0.906) < 0.25 *
                                                                 0.906)
    assert good.sum() >= 2, res[["D_stsp", "D_H", "max_lyapunov"]]
    assert res.attrs["max_lyapunov_ci_low"] <= 0.906 <= res.attrs["max_lyapunov_ci_high"]
