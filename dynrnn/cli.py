"""The ``dynrnn`` command: ``dynrnn train``, ``dynrnn demo`` and ``dynrnn reconstruct``.

``dynrnn COMMAND --help`` lists a command's options with their defaults. Every option is checked
before any work starts: a value out of range, an option that does not apply to the chosen task
or model, or an ``--out`` that cannot be written is one line on stderr naming the option (exit
status 2); a misspelled option prints the command's usage. Ctrl-C exits with status 130, and a
command that fails leaves no output directory that it created.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

TASK_CHOICES = ("flipflop", "parity", "dms", "delayed_discrimination", "sine", "path_integration")
CLASSIFICATION_TASKS = ("parity", "dms")
#: the rate RNN's nonlinearities (``dynrnn.models.rate.NONLINEARITIES``, which a test compares
#: with this copy; kept here so that ``--help`` and the checks of the options import no torch)
NONLINEARITIES = ("tanh", "relu", "leaky_relu", "softplus", "sigmoid", "identity")
#: ``RateRNNConfig.tau_min``: the smallest time constant ``--tau`` may set
TAU_MIN = 1.0


class CLIError(Exception):
    """Bad command-line input; :func:`main` prints it as one line and exits with status 2."""


def flag(dest: str) -> str:
    """The option of an argparse ``dest``: ``"n_bits"`` -> ``"--n-bits"``."""
    return "--" + dest.replace("_", "-")


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_fmt(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_range(args, dest: str, low=None, high=None, *, low_open: bool = False,
                high_open: bool = False, why: str = "") -> None:
    """Raise :class:`CLIError` naming ``--dest`` unless every value of ``args.dest`` (a number
    or a list of numbers, as argparse typed it) is finite and lies in the range."""
    value = getattr(args, dest)
    if value is None:  # an optional setting left unset
        return
    values = value if isinstance(value, list) else [value]
    ints = all(isinstance(v, int) for v in values)
    ok = all(math.isfinite(v) and (low is None or (v > low if low_open else v >= low))
             and (high is None or (v < high if high_open else v <= high)) for v in values)
    if ok:
        return
    kind = ("ints" if ints else "finite floats") if isinstance(value, list) else (
        "an int" if ints else "a finite float")
    if low is not None and high is not None:
        rng = f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    elif low is not None:
        rng = f"{'>' if low_open else '>='} {_fmt(low)}"
    else:
        rng = f"{'<' if high_open else '<='} {_fmt(high)}"
    raise CLIError(f"{flag(dest)} must be {kind} {rng}{why}; got {_fmt(value)}")


def reject_given(args, dests, reason: str) -> None:
    """Raise :class:`CLIError` if any of the options ``dests`` was given on the command line:
    ``"--pwl applies only to --model alrnn, not to --model plrnn"`` (``reason`` is the part
    after "applies")."""
    given = [flag(d) for d in dests if d in args.given_options]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise CLIError(f"{', '.join(given)} {verb} {reason}")


def check_writable(path, option: str = "--out") -> None:
    """Raise :class:`CLIError` unless ``path`` is a directory that can be written to, or can be
    created: probes with a temporary file in it or in its nearest existing parent (creates
    nothing that stays)."""
    p = Path(path).absolute()
    where = p
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        what = "it" if where == p else str(where)
        raise CLIError(f"cannot write to {option} {path}: {what} exists and is not a directory")
    try:
        fd, name = tempfile.mkstemp(dir=where, prefix=".dynrnn-write-check-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CLIError(f"cannot write to {option} {path}: {reason} ({where})") from None


def _build_task(args):
    from dynrnn import tasks

    if args.task == "flipflop":
        return tasks.FlipFlopTask(n_bits=args.n_bits, n_steps=args.trial_length,
                                  p_pulse=args.p_pulse)
    if args.task in ("parity", "dms"):
        cls = tasks.ParityTask if args.task == "parity" else tasks.DMSTask
        return cls(n_values=tuple(args.n_values))
    if args.task == "delayed_discrimination":
        return tasks.DelayedDiscriminationTask()
    if args.task == "sine":
        return tasks.SineWaveTask()
    return tasks.PathIntegrationTask(n_steps=args.trial_length)


def _build_model(args, task, n_outputs):
    from dynrnn.models import Ensemble, GRUConfig, LSTMConfig, RateRNNConfig

    if args.model == "rate":
        cfg = RateRNNConfig(task.n_inputs, args.units, n_outputs, nonlinearity=args.nonlinearity,
                            tau_init=args.tau, tau_jitter=args.tau_jitter,
                            train_tau=args.train_tau)
    else:
        cls = GRUConfig if args.model == "gru" else LSTMConfig
        cfg = cls(task.n_inputs, args.units, n_outputs)
    return Ensemble(cfg, n_networks=args.networks, seed=args.seed)


def check_train(args) -> None:
    """The options of ``dynrnn train``: each applies to the task and model chosen, each in range,
    ``--out`` writable."""
    task, model = args.task, args.model
    this_task = f"not to --task {task}"
    if task != "flipflop":
        reject_given(args, ["n_bits", "p_pulse"], f"only to --task flipflop, {this_task}")
    if task not in ("flipflop", "path_integration"):
        reject_given(args, ["trial_length"],
                     f"only to --task flipflop and path_integration, {this_task}")
    if task in CLASSIFICATION_TASKS:
        reject_given(args, ["criterion"], f"only to regression tasks, {this_task} (a network "
                     "stops when it has passed every level of the curriculum, each at held-out "
                     "accuracy > 0.98)")
    else:
        reject_given(args, ["n_values", "curriculum"],
                     f"only to --task parity and dms, {this_task}")
    if model != "rate":
        reject_given(args, ["nonlinearity", "tau", "tau_jitter", "train_tau"],
                     f"only to --model rate, not to --model {model}")
    check_range(args, "n_bits", 1)
    check_range(args, "p_pulse", 0.0, 1.0)
    check_range(args, "trial_length", 1)
    check_range(args, "n_values", 1)
    if len(set(args.n_values)) != len(args.n_values):
        raise CLIError(f"--n-values must be distinct; got {_fmt(args.n_values)}")
    for dest in ("networks", "units", "steps", "batch_size", "eval_every"):
        check_range(args, dest, 1)
    check_range(args, "tau", TAU_MIN, why=" (the rate RNN's smallest time constant)")
    check_range(args, "tau_jitter", 0.0)
    check_range(args, "lr", 0.0, low_open=True)
    check_range(args, "criterion", 0.0)
    check_range(args, "seed", 0)
    check_writable(args.out)


#: config parameters of ``dynrnn train`` -> options, to name the option in a library error
TRAIN_OPTIONS = {
    "FlipFlopTask.n_steps": "--trial-length", "PathIntegrationTask.n_steps": "--trial-length",
    "TrainConfig.n_steps": "--steps", "n_bits": "--n-bits", "p_pulse": "--p-pulse",
    "n_values": "--n-values", "Curriculum.kind": "--curriculum", "n_networks": "--networks",
    "n_units": "--units", "nonlinearity": "--nonlinearity", "tau_init": "--tau",
    "tau_jitter": "--tau-jitter", "batch_size": "--batch-size", "lr": "--lr",
    "criterion": "--criterion", "eval_every": "--eval-every", "seed": "--seed",
}


def cmd_train(args) -> int:
    import torch

    from dynrnn.training import Curriculum, TrainConfig, train
    from dynrnn.zoo import Zoo

    task = _build_task(args)
    curriculum = None
    if task.kind == "classification":
        curriculum = Curriculum(args.curriculum, n_levels=len(task.n_values))
        n_outputs = 2 * curriculum.n_output_heads
    else:
        n_outputs = task.n_outputs
    model = _build_model(args, task, n_outputs)
    cfg = TrainConfig(n_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      criterion=args.criterion, eval_every=args.eval_every,
                      progress=not args.quiet)
    t0 = time.perf_counter()
    history = train(model, task, cfg, seed=args.seed, curriculum=curriculum)
    elapsed = time.perf_counter() - t0
    zoo = Zoo(args.out)
    outcome = {
        "reached": history.reached.tolist(),
        "failed": history.failed.tolist(),
        "steps_to_criterion": history.steps_to_criterion.tolist(),
        "final_eval_loss": history.eval_loss[:, -1].tolist(),
    }
    ids = zoo.add(model, task=task, outcome=outcome, tags=list(args.tag or []))
    entry = ids[0].split("/")[0]
    zoo.save_result(f"history/{entry}", history.to_xarray())
    summary = {
        "task": task.to_dict(),
        "networks": model.n_networks,
        "reached_criterion": int(history.reached.sum()),
        "failed": int(history.failed.sum()),
        "median_final_eval_loss": float(torch.tensor(history.eval_loss[:, -1]).median()),
        "seconds": round(elapsed, 1),
        "zoo": str(Path(args.out).resolve()),
        "entry": entry,
    }
    print(json.dumps(summary, indent=2))
    return 0


def check_demo(args) -> None:
    """The options of ``dynrnn demo``: in range, ``--out`` writable."""
    check_range(args, "networks", 1)
    check_range(args, "steps", 1)
    check_range(args, "seed", 0)
    check_writable(args.out)


def cmd_demo(args) -> int:
    """Train a small 3-bit flip-flop ensemble, save it, find its fixed points, and write one
    figure (outputs vs targets, state space with the fixed points, stable points' spectra)
    and a summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from dynrnn.analyses import find_fixed_points
    from dynrnn.models import Ensemble, RateRNNConfig, run
    from dynrnn.plot import plot_network_summary, style
    from dynrnn.tasks import FlipFlopTask
    from dynrnn.training import TrainConfig, masked_mse, train
    from dynrnn.zoo import Zoo

    out = Path(args.out)
    task = FlipFlopTask(n_bits=3, n_steps=100, p_pulse=0.05)
    model = Ensemble(RateRNNConfig(3, 64, 3), n_networks=args.networks, seed=args.seed)
    K = model.n_networks
    cfg = TrainConfig(n_steps=args.steps, batch_size=32, lr=1e-2, eval_every=50, noise=False)
    print(f"Training {K} tanh RNNs (64 units) on the 3-bit flip-flop ...")
    t0 = time.perf_counter()
    history = train(model, task, cfg, seed=args.seed)
    elapsed = time.perf_counter() - t0
    test_seed, n_test = 10_000 + args.seed, 256
    trials = task.sample(n_test, seed=test_seed)
    with torch.no_grad():
        _, outputs = run(model, trials.inputs)
        test_mse = masked_mse(outputs, trials.targets, trials.mask).double().numpy()
    shown = int(np.argmin(np.where(np.isfinite(test_mse), test_mse, np.inf)))

    out.mkdir(parents=True, exist_ok=True)
    zoo = Zoo(out / "zoo")
    ids = zoo.add(model, task=task, outcome={"reached": history.reached.tolist(),
                                             "failed": history.failed.tolist()})
    # what the networks compute with: their fixed points under zero input (the memories of a
    # flip-flop are 2^3 stable points at the corners of the output cube), from states visited
    print("Finding fixed points ...")
    with torch.no_grad():
        states, _ = run(model, trials.inputs[:64])
    fps = find_fixed_points(model, trajectories=states, n_initial=256, seed=args.seed,
                            progress=False)
    n_stable = fps["n_stable"].values.astype(int)
    n_saddles = fps["n_saddles"].values.astype(int)
    figure = out / "flipflop_demo.png"
    with style():  # the package's publication style (dynrnn.plot.style)
        fig = plot_network_summary(
            trials, outputs, states, fps, network=shown, trial=0,
            title=(f"3-bit flip-flop: network {shown} of {K} (lowest test MSE, "
                   f"{test_mse[shown]:.1e}), test trial 0; {n_stable[shown]} stable fixed "
                   f"points, {n_saddles[shown]} saddles"))
        fig.savefig(figure, dpi=200)
        fig.savefig(figure.with_suffix(".pdf"))
        plt.close(fig)
    crit = cfg.criterion
    lines = [
        f"dynrnn demo: 3-bit flip-flop, {K} tanh RNNs (64 units) trained as one batched "
        f"computation in {elapsed:.1f} s",
        f"networks trained: {K} (at most {cfg.n_steps} Adam steps of {cfg.batch_size} trials, "
        f"lr {cfg.lr:g})",
        f"reached the training criterion (MSE < {crit:g} on the {cfg.eval_batch_size} held-out "
        f"evaluation trials, checked every {cfg.eval_every} steps; a network stops training "
        f"when it reaches it): {int(history.reached.sum())}/{K}",
        f"new test set ({n_test} trials, seed {test_seed}, not used in training): median MSE "
        f"{np.median(test_mse):.2e}, max {np.max(test_mse):.2e}, "
        f"{int((test_mse < crit).sum())} of {K} below {crit:g}",
    ]
    if history.failed.any():
        lines.append(f"diverged during training: {int(history.failed.sum())}/{K}")
    lines += [
        "fixed points under zero input (find_fixed_points, 256 initial states per network "
        "from the test trajectories; a trained 3-bit flip-flop network has 8 stable points):",
        *[f"  network {k}: {n_stable[k]} stable, {n_saddles[k]} saddles"
          + ("  <- shown" if k == shown else "") for k in range(K)],
        f"networks with exactly 8 stable fixed points: {int((n_stable == 8).sum())} of {K}",
    ]
    if n_stable[shown] == 0:
        lines.append(f"network {shown} has no stable fixed point: the figure says so instead "
                     "of drawing spectra (its memories, if any, are held on other structures)")
    lines += [
        f"saved to zoo: {out / 'zoo'} ({len(ids)} networks, entry {ids[0].split('/')[0]})",
        f"figure: {figure} (and .pdf): A inputs, targets and outputs of network {shown} (the "
        "lowest test MSE) on test trial 0; B its trajectories in PCA space with its fixed "
        "points; C the eigenvalues of its stable points",
    ]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    return 0


def _show_default(value) -> str:
    if value is None:
        return "none"
    if value is False:
        return "off"
    return _fmt(value)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help text, as ``argparse.ArgumentDefaultsHelpFormatter``
    does, also after :func:`main` has moved the defaults aside (``action.cli_default``) to tell
    given options from defaults. Help that states its default itself (``"(default: ..."``,
    for defaults that depend on other options) is left as it is."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = getattr(action, "cli_default", action.default)
        if not action.option_strings or default is argparse.SUPPRESS or "(default" in text:
            return text
        return f"{text} (default: {_show_default(default).replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """The parser of ``dynrnn`` and of each subcommand: options' defaults in the help, and no
    abbreviated options (an option is either given exactly or not given)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dynrnn", description=__doc__.replace("``", ""))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train an ensemble on a task and add it to a zoo",
                       description="Train an ensemble of networks on a task (all networks in one "
                       "batched loop), add them to a zoo with their outcome and training "
                       "history, and print a JSON summary.")
    t.add_argument("--task", choices=TASK_CHOICES, default="flipflop", help="the task")
    t.add_argument("--n-bits", type=int, default=3, help="flipflop: number of bits (channels)")
    t.add_argument("--p-pulse", type=float, default=0.05,
                   help="flipflop: probability of a pulse per time step and bit")
    t.add_argument("--trial-length", type=int, default=100,
                   help="flipflop and path_integration: time steps per trial")
    t.add_argument("--n-values", type=int, nargs="+", default=[2, 3, 4, 5], metavar="N",
                   help="parity and dms: the N of each output head (one curriculum level each)")
    t.add_argument("--curriculum", choices=("multi", "single", "sliding"), default="multi",
                   help="parity and dms: multi adds one head per level and keeps training the "
                        "earlier ones, single re-uses one head, sliding trains the newest 2")
    t.add_argument("--model", choices=("rate", "gru", "lstm"), default="rate",
                   help="leaky rate RNN, GRU or LSTM")
    t.add_argument("--networks", type=int, default=16, help="networks trained at once")
    t.add_argument("--units", type=int, default=64, help="recurrent units per network")
    t.add_argument("--nonlinearity", choices=NONLINEARITIES, default="tanh",
                   help="rate: the nonlinearity")
    t.add_argument("--tau", type=float, default=1.0,
                   help=f"rate: initial time constant tau0 of every unit (>= {TAU_MIN:g})")
    t.add_argument("--tau-jitter", type=float, default=0.0,
                   help="rate: initial tau = tau0 + jitter * U(0, 1) per unit")
    t.add_argument("--train-tau", action="store_true", help="rate: train the time constants")
    t.add_argument("--steps", type=int, default=2000, help="optimiser (Adam) steps at most")
    t.add_argument("--batch-size", type=int, default=32, help="trials per step")
    t.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    t.add_argument("--criterion", type=float, default=1e-3,
                   help="regression tasks: a network stops training once its held-out MSE is "
                        "below this")
    t.add_argument("--eval-every", type=int, default=50,
                   help="steps between held-out evaluations (criterion, curriculum)")
    t.add_argument("--seed", type=int, default=0, help="seed of weights, trials and noise")
    t.add_argument("--tag", action="append", metavar="TAG",
                   help="tag stored with the networks in the zoo (repeatable)")
    t.add_argument("--out", default="zoo", help="zoo directory (created or appended to)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train, validate=check_train, option_names=TRAIN_OPTIONS)

    d = sub.add_parser("demo", help="train a small flip-flop ensemble and write a figure",
                       description="Train tanh RNNs (64 units) on the 3-bit flip-flop as one "
                       "batched computation, store them in a zoo, plot one network's outputs "
                       "against the targets and write summary.txt.")
    d.add_argument("--networks", type=int, default=8, help="networks trained at once")
    d.add_argument("--steps", type=int, default=800, help="optimiser (Adam) steps at most")
    d.add_argument("--seed", type=int, default=0, help="seed of weights and trials")
    d.add_argument("--out", default="demo_out",
                   help="output directory (zoo/, flipflop_demo.png and .pdf, summary.txt)")
    d.set_defaults(func=cmd_demo, validate=check_demo,
                   option_names={"n_networks": "--networks", "n_steps": "--steps",
                                 "seed": "--seed"})

    from ._analyze_cli import add_parser as add_analyze
    from ._reconstruct_cli import add_parser as add_reconstruct
    from ._sweep_cli import add_parser as add_sweep
    from ._zoo_cli import add_parser as add_zoo

    add_reconstruct(sub)
    add_zoo(sub)
    add_analyze(sub)
    add_sweep(sub)
    return p


def _subcommands(parser: argparse.ArgumentParser) -> tuple[str | None, dict]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.dest, action.choices
    return None, {}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` with ``parser`` (from :func:`build_parser`), usage errors naming the
    subcommand's usage; the result has ``given_options``, the dests of the options given on
    the command line (the others hold their defaults)."""
    dest, subs = _subcommands(parser)
    for sp in subs.values():  # move defaults aside: argparse then sets only what was given
        for action in sp._actions:
            if action.option_strings and not hasattr(action, "cli_default") and (
                    action.default is not argparse.SUPPRESS):
                action.cli_default, action.default = action.default, argparse.SUPPRESS
    args, extra = parser.parse_known_args(argv)
    chain = [parser]
    while dest is not None and getattr(args, dest, None) in subs:
        chain.append(subs[getattr(args, dest)])
        dest, subs = _subcommands(chain[-1])
    if extra:
        options = [o for a in chain[-1]._actions for o in a.option_strings]
        hints = [m[0] for x in extra if x.startswith("-")
                 for m in [difflib.get_close_matches(x.split("=")[0], options, n=1)] if m]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        chain[-1].error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    given = set()
    if len(chain) > 1:
        for action in chain[1]._actions:
            if hasattr(action, "cli_default"):
                if hasattr(args, action.dest):
                    given.add(action.dest)
                else:
                    setattr(args, action.dest, action.cli_default)
    args.given_options = frozenset(given)
    return args


def _name_options(message: str, names: dict) -> str:
    """``"The 'n_bits' parameter of FlipFlopTask ..."`` -> ``"--n-bits (the 'n_bits' parameter
    of FlipFlopTask) ..."`` for the config parameters that an option sets."""
    def sub(m):
        name, owner = m.group(1), m.group(2)
        option = names.get(f"{owner}.{name}", names.get(name))
        return f"{option} (the {name!r} parameter of {owner})" if option else m.group(0)

    return re.sub(r"The '(\w+)' parameter of (\w+)", sub, message)


def _new_top(path) -> Path | None:
    """The outermost directory that creating ``path`` would make (None if it exists)."""
    p = Path(path).absolute()
    if p.exists():
        return None
    while not p.parent.exists():
        p = p.parent
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``dynrnn ARGS``; returns the exit status (0 done, 2 bad input, 130 interrupted)."""
    args = parse_args(build_parser(), argv)
    out = getattr(args, "out", None)
    created = _new_top(out) if isinstance(out, str) else None
    done = False
    try:
        validate = getattr(args, "validate", None)
        if validate is not None:
            validate(args)  # every option, before any heavy work
        status = args.func(args)
        done = status == 0
        return status
    except CLIError as exc:
        print(f"dynrnn: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad input that a config found: one clear line, no traceback
        message = _name_options(str(exc), getattr(args, "option_names", {}))
        print(f"dynrnn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dynrnn: interrupted", file=sys.stderr)
        return 130
    finally:
        if not done and created is not None and created.exists():
            shutil.rmtree(created, ignore_errors=True)  # all of it was made by this command


if __name__ == "__main__":
    sys.exit(main())
