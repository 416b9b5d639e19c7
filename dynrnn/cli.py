"""The ``dynrnn`` command: ``dynrnn train ...``, ``dynrnn demo`` and ``dynrnn reconstruct``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TASK_CHOICES = ("flipflop", "parity", "dms", "delayed_discrimination", "sine", "path_integration")


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


def cmd_demo(args) -> int:
    """Train a small 3-bit flip-flop ensemble, save it, plot outputs vs targets, summarise."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import torch

    from dynrnn.models import Ensemble, RateRNNConfig, run
    from dynrnn.plot.outputs import plot_outputs
    from dynrnn.tasks import FlipFlopTask
    from dynrnn.training import TrainConfig, masked_mse, train
    from dynrnn.zoo import Zoo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = FlipFlopTask(n_bits=3, n_steps=100, p_pulse=0.05)
    model = Ensemble(RateRNNConfig(3, 64, 3), n_networks=args.networks, seed=args.seed)
    print(f"Training {model.n_networks} tanh RNNs (64 units) on the 3-bit flip-flop ...")
    t0 = time.perf_counter()
    history = train(model, task, TrainConfig(n_steps=args.steps, batch_size=32, lr=1e-2,
                                             eval_every=50, noise=False), seed=args.seed)
    elapsed = time.perf_counter() - t0
    zoo = Zoo(out / "zoo")
    ids = zoo.add(model, task=task, outcome={"reached": history.reached.tolist(),
                                             "failed": history.failed.tolist()})
    trials = task.sample(256, seed=10_000 + args.seed)
    with torch.no_grad():
        _, outputs = run(model, trials.inputs)
        test_mse = masked_mse(outputs, trials.targets, trials.mask).numpy()
    fig = plot_outputs(trials, outputs, network=int(np.argmin(test_mse)), trial=0)
    fig.savefig(out / "flipflop_outputs.png", dpi=120)
    fig.savefig(out / "flipflop_outputs.pdf")
    lines = [
        "dynrnn demo: 3-bit flip-flop ensemble",
        f"networks trained: {model.n_networks} in {elapsed:.1f} s (one batched computation)",
        f"reached held-out MSE < 1e-3: {int(history.reached.sum())}/{model.n_networks}",
        f"held-out MSE on 256 new trials: median {np.median(test_mse):.2e}, "
        f"max {test_mse.max():.2e}",
        f"saved to zoo: {out / 'zoo'} ({len(ids)} networks, entry {ids[0].split('/')[0]})",
        f"figure: {out / 'flipflop_outputs.png'}",
    ]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynrnn", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an ensemble on a task and add it to a zoo")
    t.add_argument("--task", choices=TASK_CHOICES, default="flipflop")
    t.add_argument("--n-bits", type=int, default=3)
    t.add_argument("--p-pulse", type=float, default=0.05)
    t.add_argument("--trial-length", type=int, default=100)
    t.add_argument("--n-values", type=int, nargs="+", default=[2, 3, 4, 5])
    t.add_argument("--curriculum", choices=("multi", "single", "sliding"), default="multi")
    t.add_argument("--model", choices=("rate", "gru", "lstm"), default="rate")
    t.add_argument("--networks", type=int, default=16)
    t.add_argument("--units", type=int, default=64)
    t.add_argument("--nonlinearity", default="tanh")
    t.add_argument("--tau", type=float, default=1.0)
    t.add_argument("--tau-jitter", type=float, default=0.0)
    t.add_argument("--train-tau", action="store_true")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--criterion", type=float, default=1e-3)
    t.add_argument("--eval-every", type=int, default=50)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--tag", action="append")
    t.add_argument("--out", default="zoo")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="train a small flip-flop ensemble and write a figure")
    d.add_argument("--networks", type=int, default=8)
    d.add_argument("--steps", type=int, default=800)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="demo_out")
    d.set_defaults(func=cmd_demo)

    from ._reconstruct_cli import add_parser as add_reconstruct

    add_reconstruct(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad user input: one clear line, no traceback
        print(f"dynrnn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
