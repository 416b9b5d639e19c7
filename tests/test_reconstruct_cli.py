"""``dynrnn reconstruct`` writes the model, metrics and figures; bad input is one clear line
naming the option, found before the trajectory is integrated."""

import json

import pytest

from dynrnn import _reconstruct_cli as rcli
from dynrnn import cli
from dynrnn.cli import main
from dynrnn.zoo import load_model

TINY = ["reconstruct", "--system", "lorenz63", "--model", "alrnn", "--latent", "6", "--networks",
        "2", "--iterations", "5", "--seq-len", "20", "--batch-size", "4", "--samples", "1500",
        "--lyapunov-steps", "200", "--quiet"]


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Training, GTF and integrating a chaotic system raise if called: a command that must fail
    on its arguments has to fail before any of them starts (checked by behaviour, not time)."""
    import dynrnn.training as training
    from dynrnn.tasks.chaotic import ChaoticSystemTask

    def refuse(*args, **kwargs):
        raise AssertionError("heavy work started before the arguments were checked")

    monkeypatch.setattr(training, "train", refuse)
    monkeypatch.setattr(training, "train_gtf", refuse)
    monkeypatch.setattr(ChaoticSystemTask, "sample", refuse)


def test_reconstruct_cli(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["reconstruct", "--system", "lorenz63", "--model", "alrnn", "--pwl", "2",
               "--latent", "6", "--networks", "2", "--iterations", "5", "--seq-len", "20",
               "--batch-size", "4", "--samples", "1500", "--lyapunov-steps", "200",
               "--keep-best-every", "5", "--out", str(out), "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["D_stsp"]) == 2 and len(metrics["D_H"]) == 2
    assert metrics["best_iteration"] == [5, 5]
    assert metrics["tau"] == 16  # the AL-RNN's sparse-TF interval for Lorenz-63 by default
    assert metrics["subregions_total"] == 4 and metrics["subregions_used"] <= 4
    names = ["attractor.png", "loss.png", "symbolic_graph.png", "attractor_subregions.png"]
    assert metrics["figures"] == names
    for name in names:
        assert (out / name).exists()
    model, meta = load_model(out / "model")
    assert model.n_networks == 2 and meta["system"] == "lorenz63"


def test_reconstruct_cli_bad_input(tmp_path, capsys):
    rc = main(["reconstruct", "--samples", "100", "--seq-len", "200", "--iterations", "1",
               "--out", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("dynrnn: error: --samples must be an int >= 201 (the training "
                          "windows need --seq-len + 1 time steps); got 100")
    assert not (tmp_path / "x").exists()


def test_negative_iterations_fail_before_the_data_are_integrated(tmp_path, capsys, monkeypatch):
    from dynrnn.tasks.chaotic import ChaoticSystemTask

    def no_integration(*a, **k):
        raise AssertionError("the trajectory was integrated before the options were checked")

    monkeypatch.setattr(ChaoticSystemTask, "sample", no_integration)
    assert main(["reconstruct", "--iterations", "-5", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "dynrnn: error: --iterations must be an int >= 1; got -5\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra, option", [
    (["--networks", "0"], "--networks"),
    (["--seq-len", "0"], "--seq-len"),
    (["--batch-size", "0"], "--batch-size"),
    (["--alpha", "1.5"], "--alpha"),
    (["--forcing", "stf", "--tau", "0"], "--tau"),
    (["--lr", "-1"], "--lr"),
    (["--lr-end", "0.01"], "--lr-end"),  # above --lr
    (["--grad-clip", "-1"], "--grad-clip"),
    (["--dt", "0"], "--dt"),
    (["--noise", "-0.1"], "--noise"),
    (["--latent", "2"], "--latent"),  # below the data dimension 3
    (["--model", "alrnn", "--latent", "10", "--pwl", "11"], "--pwl"),
    (["--model", "shplrnn", "--hidden", "0"], "--hidden"),
    (["--iterations", "5", "--keep-best-every", "10"], "--keep-best-every"),
    (["--keep-best-every", "-1"], "--keep-best-every"),
    (["--lyapunov-steps", "0"], "--lyapunov-steps"),
    (["--seed", "-1"], "--seed"),
    (["--system", "lorenz96", "--model", "plrnn", "--latent", "19"], "--latent"),
])
def test_range_errors_name_the_option_and_fail_fast(tmp_path, capsys, extra, option,
                                                    no_heavy_work):
    out = tmp_path / "run"
    assert main(["reconstruct", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynrnn: error: {option} must be ") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("extra, option", [
    (["--model", "plrnn", "--pwl", "3"], "--pwl"),
    (["--model", "alrnn", "--hidden", "10"], "--hidden"),
    (["--model", "plrnn", "--hidden", "10"], "--hidden"),
    (["--forcing", "gtf", "--tau", "5"], "--tau"),
    (["--forcing", "agtf", "--alpha", "0.1"], "--alpha"),
    (["--model", "alrnn", "--alpha", "0.1"], "--alpha"),  # the AL-RNN's default forcing is stf
    (["--model", "plrnn", "--initial-state", "zero"], "--initial-state"),  # no unobserved units
])
def test_option_that_does_not_apply_is_an_error(tmp_path, capsys, extra, option):
    out = tmp_path / "run"
    assert main(["reconstruct", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynrnn: error: {option} applies only to ") and err.count("\n") == 1
    assert not out.exists()


def test_alpha_with_the_default_forcing_says_which_forcing_that_is(tmp_path, capsys):
    assert main(["reconstruct", "--model", "alrnn", "--alpha", "0.1", "--out", str(tmp_path)]) == 2
    assert "not to --forcing stf (the default for --model alrnn)" in capsys.readouterr().err


def test_options_that_apply_are_accepted(tmp_path):
    for extra in (["--model", "alrnn", "--forcing", "gtf", "--alpha", "0.3"],
                  ["--model", "alrnn", "--pwl", "3", "--tau", "10", "--initial-state", "learned"],
                  ["--model", "shplrnn", "--hidden", "20", "--forcing", "stf", "--tau", "5"],
                  ["--model", "plrnn", "--latent", "5", "--initial-state", "zero"]):
        args = cli.parse_args(cli.build_parser(), ["reconstruct", *extra, "--out", str(tmp_path)])
        args.validate(args)


def test_defaults_that_depend_on_the_model_are_filled_in(tmp_path):
    out = ["--out", str(tmp_path)]
    args = cli.parse_args(cli.build_parser(), ["reconstruct", "--model", "alrnn",
                                               "--system", "rossler", *out])
    args.validate(args)
    assert (args.forcing, args.tau, args.latent, args.iterations, args.grad_clip, args.noise,
            args.initial_state, args.dt) == ("stf", 8, 40, 20000, 0.0, 0.05, "zero", 0.05)
    args = cli.parse_args(cli.build_parser(), ["reconstruct", *out])
    args.validate(args)
    assert (args.forcing, args.tau, args.latent, args.iterations, args.grad_clip, args.noise,
            args.initial_state, args.dt) == ("gtf", None, 3, 15000, 10.0, 0.0, "learned", 0.01)


def test_system_dimensions_kept_in_the_cli_match_the_tasks():
    from dynrnn.tasks.chaotic import ChaoticSystemTask

    for system, dim in rcli.SYSTEM_DIM.items():
        assert ChaoticSystemTask(system, n_steps=10).n_outputs == dim
    assert set(rcli.SYSTEM_DIM) == set(rcli.SYSTEM_DT) == set(rcli.ALRNN_TAU)


def test_misspelled_option_shows_the_reconstruct_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct", "--iteratons", "5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: dynrnn reconstruct ")
    assert "unrecognized arguments: --iteratons 5 (did you mean --iterations?)" in err


def test_interrupted_run_exits_130_and_leaves_no_directory(tmp_path, capsys, monkeypatch):
    import dynrnn.training.gtf

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dynrnn.training.gtf, "train_gtf", interrupted)
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 130
    assert capsys.readouterr().err == "dynrnn: interrupted\n"
    assert not out.exists()
