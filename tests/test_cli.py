"""The README entry points `dynrnn demo` and `dynrnn train` write what they promise, and the
command line treats bad input as one clear line naming the option, before any heavy work."""

import argparse
import json
import re

import pytest
import torch

from dynrnn import cli
from dynrnn.analyses import find_fixed_points
from dynrnn.cli import main
from dynrnn.models import run
from dynrnn.tasks import FlipFlopTask
from dynrnn.zoo import Zoo

TINY_TRAIN = ["train", "--n-bits", "2", "--networks", "2", "--units", "8", "--steps", "4",
              "--eval-every", "2", "--quiet"]


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


def test_demo_writes_figure_summary_and_zoo(tmp_path, capsys):
    assert main(["demo", "--networks", "2", "--steps", "60", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "flipflop_demo.png").stat().st_size > 1000
    pdf = (tmp_path / "flipflop_demo.pdf").read_bytes()
    assert len(pdf) > 1000 and b"/Type3" not in pdf  # TrueType fonts (publication style)
    summary = (tmp_path / "summary.txt").read_text()
    assert "networks trained: 2" in summary
    zoo = Zoo(tmp_path / "zoo")
    assert len(zoo) == 2
    # the summary's fixed-point counts are the finder's, on the networks as stored
    counts = [tuple(map(int, m.groups())) for m in
              re.finditer(r"network \d+: (\d+) stable, (\d+) saddles", summary)]
    assert len(counts) == 2
    model = zoo.load(zoo.ids())
    trials = FlipFlopTask(n_bits=3, n_steps=100, p_pulse=0.05).sample(256, seed=10_000)
    with torch.no_grad():
        states, _ = run(model, trials.inputs[:64])
    fps = find_fixed_points(model, trajectories=states, n_initial=256, seed=0, progress=False)
    assert counts == list(zip(fps.n_stable.values.tolist(), fps.n_saddles.values.tolist()))
    # the training criterion (on the fixed held-out evaluation set) and the new test set are
    # reported separately, each with the set it is measured on
    reached = re.search(r"reached the training criterion \(MSE < 0.001 on the 256 held-out "
                        r"evaluation trials, .*\): (\d+)/2", summary)
    assert reached, summary
    test = re.search(r"new test set \(256 trials, .*\): median MSE (\S+), max (\S+), (\d+) of 2 "
                     r"below 0.001", summary)
    assert test, summary
    assert float(test.group(1)) <= float(test.group(2).rstrip(","))


def test_train_adds_to_zoo_and_history(tmp_path, capsys):
    out = tmp_path / "zoo"
    args = ["train", "--task", "flipflop", "--n-bits", "2", "--networks", "3", "--units", "8",
            "--steps", "20", "--eval-every", "10", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["networks"] == 3
    zoo = Zoo(out)
    assert len(zoo.query(n_units=8)) == 3
    assert zoo.has_result(f"history/{summary['entry']}")


def test_bad_value_is_one_clear_line_naming_the_option(tmp_path, capsys):
    assert main(["train", "--n-bits", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "dynrnn: error: --n-bits must be an int >= 1; got 0\n"


def test_unknown_task_is_rejected():
    with pytest.raises(SystemExit):
        main(["train", "--task", "nonsense"])


# ---------------------------------------------------------------- help


def _all_parsers(parser, name="dynrnn"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help_with_its_default():
    parsers = dict(_all_parsers(cli.build_parser()))
    assert {"dynrnn train", "dynrnn demo", "dynrnn reconstruct"} <= set(parsers)
    for name, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            assert "(default" in formatter._get_help_string(action), (
                f"{name} {action.option_strings[0]}: no default in its help")


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--networks NETWORKS networks trained at once (default: 16)" in text
    assert "(default: 2 3 4 5)" in text
    assert "==SUPPRESS==" not in text


# ---------------------------------------------------------------- usage errors


def test_misspelled_option_shows_the_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--netwrks", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: dynrnn train ")
    assert "dynrnn train: error: unrecognized arguments: --netwrks 3" in err
    assert "did you mean --networks?" in err


def test_abbreviated_option_is_not_taken_for_another():
    with pytest.raises(SystemExit):
        main(["train", "--net", "3"])  # argparse would otherwise read it as --networks


@pytest.mark.parametrize("extra, option", [
    (["--task", "parity", "--n-bits", "3"], "--n-bits"),
    (["--task", "dms", "--p-pulse", "0.1"], "--p-pulse"),
    (["--task", "sine", "--trial-length", "50"], "--trial-length"),
    (["--task", "flipflop", "--n-values", "2", "3"], "--n-values"),
    (["--task", "path_integration", "--curriculum", "single"], "--curriculum"),
    (["--task", "parity", "--criterion", "0.01"], "--criterion"),
    (["--model", "gru", "--tau", "2"], "--tau"),
    (["--model", "lstm", "--train-tau"], "--train-tau"),
    (["--model", "gru", "--nonlinearity", "relu"], "--nonlinearity"),
    (["--model", "lstm", "--tau-jitter", "1"], "--tau-jitter"),
])
def test_train_option_that_does_not_apply_is_an_error(tmp_path, capsys, extra, option):
    out = tmp_path / "zoo"
    assert main(["train", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynrnn: error: {option} applies only to ") and err.count("\n") == 1
    assert not out.exists()


def test_options_that_apply_are_accepted(tmp_path):
    for argv in (["train", "--task", "parity", "--n-values", "2", "3", "--curriculum", "single"],
                 ["train", "--task", "path_integration", "--trial-length", "20"],
                 ["train", "--model", "rate", "--tau", "2", "--train-tau", "--tau-jitter", "1"],
                 ["train", "--n-bits", "3"]):  # a given option equal to its default is fine
        args = cli.parse_args(cli.build_parser(), [*argv, "--out", str(tmp_path)])
        args.validate(args)


def test_given_options_are_told_from_defaults():
    args = cli.parse_args(cli.build_parser(), ["train", "--networks", "16", "--train-tau"])
    assert args.given_options == {"networks", "train_tau"}
    assert args.networks == 16 and args.train_tau is True
    assert args.units == 64 and args.n_values == [2, 3, 4, 5] and args.tag is None


# ---------------------------------------------------------------- ranges, before any work


@pytest.mark.parametrize("extra, option", [
    (["--networks", "0"], "--networks"),
    (["--units", "0"], "--units"),
    (["--p-pulse", "1.5"], "--p-pulse"),
    (["--trial-length", "0"], "--trial-length"),
    (["--task", "parity", "--n-values", "0", "3"], "--n-values"),
    (["--task", "dms", "--n-values", "2", "2"], "--n-values"),
    (["--tau", "0.5"], "--tau"),
    (["--tau-jitter", "-1"], "--tau-jitter"),
    (["--steps", "0"], "--steps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--criterion", "-1"], "--criterion"),
    (["--eval-every", "0"], "--eval-every"),
    (["--seed", "-1"], "--seed"),
])
def test_train_range_errors_name_the_option_and_fail_fast(tmp_path, capsys, extra, option,
                                                          no_heavy_work):
    out = tmp_path / "zoo"
    assert main(["train", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynrnn: error: {option} must be ") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("extra, option", [
    (["--networks", "0"], "--networks"), (["--steps", "0"], "--steps"),
    (["--seed", "-3"], "--seed"),
])
def test_demo_range_errors(tmp_path, capsys, extra, option, no_heavy_work):
    out = tmp_path / "demo"
    assert main(["demo", *extra, "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"dynrnn: error: {option} must be ")
    assert not out.exists()


def test_library_error_is_reported_with_the_option(tmp_path, capsys, monkeypatch):
    """A ValueError of a config that the up-front checks did not catch names the option too."""
    monkeypatch.setattr(cli, "check_train", lambda args: None)
    assert main(["train", "--networks", "0", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynrnn: error: --networks (the 'n_networks' parameter of ")
    assert not (tmp_path / "z").exists()


def test_name_options_maps_config_parameters_to_options():
    msg = "The 'n_steps' parameter of FlipFlopTask must be an int in the range [1, inf)."
    assert cli._name_options(msg, cli.TRAIN_OPTIONS).startswith(
        "--trial-length (the 'n_steps' parameter of FlipFlopTask) must be")
    msg = "The 'n_steps' parameter of TrainConfig must be an int."
    assert cli._name_options(msg, cli.TRAIN_OPTIONS).startswith("--steps (")
    assert cli._name_options("The 'dale' parameter of X", cli.TRAIN_OPTIONS) == (
        "The 'dale' parameter of X")


def test_constants_kept_in_the_cli_match_the_library():
    from dynrnn.models import RateRNNConfig
    from dynrnn.models.rate import NONLINEARITIES

    assert cli.NONLINEARITIES == tuple(NONLINEARITIES)
    assert cli.TAU_MIN == RateRNNConfig(1, 1, 1).tau_min


# ---------------------------------------------------------------- --out


@pytest.mark.parametrize("command", [["train"], ["demo"], ["reconstruct"]])
def test_unwritable_out_is_one_line_before_any_work(tmp_path, capsys, command, no_heavy_work):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for out in (blocker / "sub", blocker):
        assert main([*command, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"dynrnn: error: cannot write to --out {out}: ")
        assert err.count("\n") == 1
    assert blocker.read_text() == "not a directory"


def test_read_only_out_is_one_line(tmp_path, capsys):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["demo", "--out", str(ro / "x")]) == 2
        assert "cannot write to --out" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_failed_command_removes_the_out_directory_it_created(tmp_path, capsys, monkeypatch):
    import dynrnn.zoo

    seen = []

    def broken_save_result(self, *a, **k):  # fails after the networks were written
        seen.append(self.path.exists())
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dynrnn.zoo.Zoo, "save_result", broken_save_result)
    new = tmp_path / "new" / "zoo"
    with pytest.raises(RuntimeError):
        main([*TINY_TRAIN, "--out", str(new)])
    assert seen == [True]  # the command had made the directory ...
    assert not (tmp_path / "new").exists()  # ... and removed it, with the parent it made
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        main([*TINY_TRAIN, "--out", str(existing)])
    assert (existing / "keep.txt").read_text() == "mine"  # not made by the command: kept


def test_keyboard_interrupt_exits_130_with_one_line(tmp_path, capsys, monkeypatch):
    import dynrnn.training

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dynrnn.training, "train", interrupted)
    out = tmp_path / "zoo"
    assert main([*TINY_TRAIN, "--out", str(out)]) == 130
    assert capsys.readouterr().err == "dynrnn: interrupted\n"
    assert not out.exists()
