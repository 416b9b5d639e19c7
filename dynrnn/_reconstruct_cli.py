"""``dynrnn reconstruct``: train PLRNN-family models with teacher forcing on a built-in chaotic
system (``--system``) or on your own recording (``--data FILE``: .npy, .npz, .csv, netCDF,
zarr), evaluate them (D_stsp, D_H, PE, lambda_max), and write the model, metrics and figures.
The training recipes are those of ``dynrnn.training.gtf.RECIPES`` (the defaults of
``dynrnn.reconstruct`` in Python too)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from .cli import check_range, check_writable, reject_given

SYSTEM_DT = {"lorenz63": 0.01, "rossler": 0.05, "lorenz96": 0.02}
#: dimension of each system's data (``ChaoticSystemTask(system).n_outputs``, which a test
#: compares with this copy; kept here so that the options are checked before torch is imported)
SYSTEM_DIM = {"lorenz63": 3, "rossler": 3, "lorenz96": 20}
MODEL_CHOICES = ("alrnn", "shplrnn", "clipped-shplrnn", "plrnn")
#: sparse-teacher-forcing intervals of the AL-RNN per system, as in Brenner et al. 2024's
#: AL-RNN training
ALRNN_TAU = {"lorenz63": 16, "rossler": 8, "lorenz96": 20}

#: config parameters -> options, to name the option in a library error
RECONSTRUCT_OPTIONS = {
    "n_latent": "--latent", "n_pwl": "--pwl", "n_hidden": "--hidden", "n_networks": "--networks",
    "n_iterations": "--iterations", "seq_len": "--seq-len", "batch_size": "--batch-size",
    "forcing": "--forcing", "alpha": "--alpha", "tau": "--tau", "lr": "--lr",
    "lr_end": "--lr-end", "grad_clip": "--grad-clip", "ChaoticSystemTask.n_steps": "--samples",
    "dt": "--dt", "noise": "--noise", "every": "--keep-best-every",
    "lyapunov_steps": "--lyapunov-steps", "seed": "--seed", "heldout": "--heldout",
    "time_budget": "--time-budget", "patience": "--patience", "validate_every": "--validate-every",
    "channels": "--channels", "variable": "--variable", "source": "--data",
}
#: options of ``--data`` only, and of ``--system`` only
DATA_ONLY = ("channels", "variable", "heldout", "validate_every", "patience", "delay_embedding",
             "observation")
SYSTEM_ONLY = ("system", "samples", "noise", "keep_best_every")


def _per_system(values: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def add_parser(sub) -> None:
    r = sub.add_parser(
        "reconstruct",
        help="dynamical-systems reconstruction of a chaotic system (PLRNN family + GTF)",
        description=__doc__.replace("``", ""),
    )
    r.add_argument("--system", choices=tuple(SYSTEM_DT), default="lorenz63",
                   help="the built-in chaotic system whose trajectory is reconstructed")
    r.add_argument("--data", default=None, metavar="FILE",
                   help="reconstruct your own recording instead of --system: .npy, .npz, .csv, "
                        ".nc or .zarr (time x channel, optional trials; NaN = missing sample)")
    r.add_argument("--channels", nargs="+", default=None,
                   help="--data: the channels (columns) to use (default: all)")
    r.add_argument("--variable", default=None,
                   help="--data netCDF / zarr: the data variable (default: the only one)")
    r.add_argument("--heldout", type=float, default=0.2,
                   help="--data: fraction of every trial held out at its end for validation "
                        "and evaluation, in [0, 1)")
    r.add_argument("--validate-every", type=int, default=None,
                   help="--data: iterations between evaluations on the held-out part, keeping "
                        "each network's best state (default: --iterations / 20; 0: none)")
    r.add_argument("--patience", type=int, default=5,
                   help="--data: stop when no network improved for this many evaluations")
    r.add_argument("--delay-embedding", choices=("auto", "on", "off"), default="auto",
                   help="--data: delay coordinates (auto: for fewer than 3 channels; delay = "
                        "first minimum of the mutual information)")
    r.add_argument("--observation", choices=("identity", "affine", "poisson"),
                   default="identity",
                   help="--data: observation model, identity (the first latent units), affine "
                        "(linear-Gaussian x = W z + b of --latent units) or poisson (spike "
                        "counts x ~ Poisson(dt exp(W z + b)) of --latent units; the data must "
                        "be non-negative integers and are not standardised)")
    r.add_argument("--time-budget", type=float, default=None,
                   help="stop training after this many seconds (the learning-rate schedule of "
                        "--iterations is kept)")
    r.add_argument("--model", choices=MODEL_CHOICES, default="clipped-shplrnn",
                   help="AL-RNN, shallow PLRNN, clipped shallow PLRNN or PLRNN")
    r.add_argument("--pwl", type=int, default=2,
                   help="alrnn: number P of piecewise-linear (ReLU) units, 0 to --latent")
    r.add_argument("--latent", type=int, default=None,
                   help="latent dimension M, at least the data dimension (default: 40 for "
                        "alrnn -- with M=20, as in Brenner et al. 2024, most P=2 Lorenz free "
                        "runs collapsed onto a fixed point -- the data dimension else)")
    r.add_argument("--hidden", type=int, default=100,
                   help="shplrnn and clipped-shplrnn: hidden width L")
    r.add_argument("--networks", type=int, default=4, help="seeds trained at once")
    r.add_argument("--iterations", type=int, default=None,
                   help="training iterations; the learning rate decays over them (default: "
                        "20000 for alrnn, 15000 else)")
    r.add_argument("--seq-len", type=int, default=200, help="length of the training windows")
    r.add_argument("--batch-size", type=int, default=16, help="windows per network and iteration")
    r.add_argument("--forcing", choices=("gtf", "agtf", "stf"), default=None,
                   help="teacher forcing: generalized (fixed --alpha), adaptive generalized, or "
                        "sparse (every --tau steps) (default: stf for alrnn, as in Brenner et "
                        "al. 2024's AL-RNN training; gtf else)")
    r.add_argument("--alpha", type=float, default=0.2,
                   help="--forcing gtf: forcing strength in [0, 1]")
    r.add_argument("--tau", type=int, default=None,
                   help="--forcing stf: forcing interval (default: for alrnn the interval of "
                        f"Brenner et al. 2024's AL-RNN training, {_per_system(ALRNN_TAU)}; "
                        "else estimated from the data)")
    r.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (RAdam)")
    r.add_argument("--lr-end", type=float, default=None,
                   help="learning rate at the last planned iteration (exponential decay), at "
                        "most --lr (default: the recipe's, 1e-5)")
    r.add_argument("--grad-clip", type=float, default=None,
                   help="gradient-norm clip per network, 0: off (default: off for alrnn, as in "
                        "Brenner et al. 2024's AL-RNN training; 10 else)")
    r.add_argument("--samples", type=int, default=100_000,
                   help="time steps of the integrated trajectory (more than --seq-len)")
    r.add_argument("--dt", type=float, default=None,
                   help=f"sampling interval of the trajectory (default: "
                        f"{_per_system(SYSTEM_DT)}; --data: from the file, else 1)")
    r.add_argument("--noise", type=float, default=None,
                   help="relative observation noise of the data (default: 0.05 for alrnn, as "
                        "in Brenner et al. 2024's AL-RNN training; 0 else)")
    r.add_argument("--initial-state", choices=("learned", "zero"), default=None,
                   help="--latent above the data dimension: first state of the unobserved "
                        "latent units, learned from the first observation (z0 = [x0; L x0], as "
                        "the reference code of Brenner et al. 2024 does) or 0 (default: zero "
                        "for alrnn, whose free runs collapsed onto a fixed point more often "
                        "with the learned one; learned else)")
    r.add_argument("--keep-best-every", type=int, default=None,
                   help="--system: evaluate every N iterations (N at most --iterations) and "
                        "keep each network's best state by D_stsp, as the AL-RNN tutorial of "
                        "Brenner et al. 2024 does (default: --iterations / 20, as --data's "
                        "--validate-every); 0: keep the last state")
    r.add_argument("--lyapunov-steps", type=int, default=20000,
                   help="steps of the maximal-Lyapunov-exponent estimate")
    r.add_argument("--seed", type=int, default=0, help="seed of the data, weights and windows")
    r.add_argument("--out", default="reconstruction",
                   help="output directory (model, metrics.json, figures)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    r.set_defaults(func=cmd_reconstruct, validate=check_reconstruct,
                   option_names=RECONSTRUCT_OPTIONS)


def check_reconstruct(args) -> None:
    """The options of ``dynrnn reconstruct``: fills the defaults that depend on the model and
    system (from ``dynrnn.training.gtf.RECIPES``), then checks that each option applies and is
    in range and that ``--out`` is writable -- before the trajectory is integrated (``--data``:
    the file is read here, so that its problems are reported before training)."""
    from dynrnn.training.gtf import RECIPES

    recipe = RECIPES[args.model]
    alrnn = args.model == "alrnn"
    data = args.data is not None
    default_note = {}
    if args.forcing is None:
        args.forcing = recipe["gtf"]["forcing"]
        default_note["forcing"] = f" (the default for --model {args.model})"
    if args.iterations is None:
        args.iterations = recipe["gtf"]["n_iterations"]
    if args.grad_clip is None:
        args.grad_clip = recipe["gtf"]["grad_clip"] or 0.0
    if args.lr_end is None:
        args.lr_end = recipe["gtf"]["lr_end"]
    if args.initial_state is None:
        args.initial_state = recipe["model"]["initial_state"]
    if data:
        given = [d for d in SYSTEM_ONLY if d in args.given_options]
        reject_given(args, given, "only to --system, not to --data")
        args.recording = _read_data(args)
        n_obs = args.recording.n_channels
        embed = args.delay_embedding == "on" or (args.delay_embedding == "auto" and n_obs < 3)
        n_model = n_obs * max(1, -(-3 // n_obs)) if embed else n_obs
        where = (f" (the --data file has {n_obs} channels"
                 + (f", {n_model} with the delay embedding)" if n_model != n_obs else ")"))
    else:
        reject_given(args, list(DATA_ONLY), "only to --data FILE, not to --system")
        n_obs = n_model = SYSTEM_DIM[args.system]
        where = (f" (the {args.system} data have {n_obs} dimensions, observed by the first "
                 "latent units)")
        if args.dt is None:
            args.dt = SYSTEM_DT[args.system]
        if args.tau is None and alrnn and args.forcing == "stf":
            args.tau = ALRNN_TAU[args.system]
        if args.noise is None:
            args.noise = 0.05 if alrnn else 0.0
        if args.keep_best_every is None:  # the best state is kept by default
            args.keep_best_every = args.iterations // 20
    if args.latent is None:
        args.latent = recipe["model"]["n_latent"] or n_model

    this_model = f"not to --model {args.model}"
    this_forcing = f"not to --forcing {args.forcing}{default_note.get('forcing', '')}"
    if not alrnn:
        reject_given(args, ["pwl"], f"only to --model alrnn, {this_model}")
    if args.model not in ("shplrnn", "clipped-shplrnn"):
        reject_given(args, ["hidden"], f"only to --model shplrnn and clipped-shplrnn, {this_model}")
    if args.forcing != "gtf":
        reject_given(args, ["alpha"], f"only to --forcing gtf, {this_forcing}")
    if args.forcing != "stf":
        reject_given(args, ["tau"], f"only to --forcing stf, {this_forcing}")
    # affine / poisson: any latent size, all units forced
    affine = data and args.observation in ("affine", "poisson")
    check_range(args, "latent", 1 if affine else n_model, why="" if affine else where)
    if args.latent == n_model and not affine:
        reject_given(args, ["initial_state"], f"only to --latent above the data dimension "
                     f"({n_model}{' for ' + args.system if not data else ''}): there are no "
                     f"unobserved units")
    check_range(args, "pwl", 0, args.latent, why=" (0 to --latent)")
    for dest in ("hidden", "networks", "iterations", "seq_len", "batch_size", "tau",
                 "lyapunov_steps", "patience"):
        check_range(args, dest, 1)
    check_range(args, "alpha", 0.0, 1.0)
    check_range(args, "lr", 0.0, low_open=True)
    check_range(args, "lr_end", 0.0, args.lr, low_open=True, why=" (at most --lr)")
    check_range(args, "grad_clip", 0.0)
    check_range(args, "time_budget", 0.0, low_open=True)
    if data:
        check_range(args, "heldout", 0.0, 1.0, high_open=True)
        check_range(args, "validate_every", 0, args.iterations, why=" (0 to --iterations)")
    else:
        check_range(args, "samples", args.seq_len + 1,
                    why=" (the training windows need --seq-len + 1 time steps)")
        check_range(args, "dt", 0.0, low_open=True)
        check_range(args, "noise", 0.0)
        check_range(args, "keep_best_every", 0, args.iterations, why=" (0 to --iterations)")
    check_range(args, "seed", 0)
    check_writable(args.out)


def _read_data(args):
    """The ``--data`` recording (errors name the option and the file)."""
    from pathlib import Path

    from dynrnn.tasks.recordings import RECORDING_SUFFIXES, load_recording

    from .cli import CLIError

    check_range(args, "dt", 0.0, low_open=True)
    path = Path(args.data)
    known = sorted(x for v in RECORDING_SUFFIXES.values() for x in v)
    if path.suffix.lower() not in known:
        raise CLIError(f"--data must be a file ending in one of {', '.join(known)}; got "
                       f"{args.data}")
    if not path.exists():
        raise CLIError(f"--data {args.data}: no such file")
    channels = None
    if args.channels is not None:
        channels = [int(c) if c.isdigit() else c for c in args.channels]
    return load_recording(path, dt=args.dt, channels=channels, variable=args.variable,
                          counts=args.observation == "poisson")


def build_model(args, n_obs: int, dt: float):
    from dynrnn.models import (
        ALRNN,
        PLRNN,
        ALRNNConfig,
        PLRNNConfig,
        ShallowPLRNN,
        ShallowPLRNNConfig,
    )

    learn = args.initial_state == "learned"  # check_reconstruct filled the defaults
    M = args.latent
    if args.model == "alrnn":
        return ALRNN(ALRNNConfig(M, n_obs, n_pwl=args.pwl, dt=dt, learn_initial_state=learn),
                     n_networks=args.networks, seed=args.seed)
    if args.model == "plrnn":
        return PLRNN(PLRNNConfig(M, n_obs, dt=dt, learn_initial_state=learn),
                     n_networks=args.networks, seed=args.seed)
    cfg = ShallowPLRNNConfig(M, n_obs, n_hidden=args.hidden, dt=dt, learn_initial_state=learn,
                             clipped=args.model == "clipped-shplrnn")
    return ShallowPLRNN(cfg, n_networks=args.networks, seed=args.seed)


def cmd_reconstruct(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from dynrnn.analyses.dsr_metrics import BestCheckpoint, evaluate_reconstruction, generate
    from dynrnn.tasks.chaotic import ChaoticSystemTask
    from dynrnn.training.gtf import GTFConfig, train_gtf
    from dynrnn.zoo import save_model

    if args.data is not None:
        return _cmd_data(args)
    out = Path(args.out)  # main ran check_reconstruct: the defaults are filled in
    dt = args.dt
    task = ChaoticSystemTask(args.system, n_steps=args.samples, dt=dt, noise=args.noise)
    log = (lambda *a: None) if args.quiet else print
    log(f"Integrating {args.system}: {args.samples} samples, dt {dt} ...")
    trials = task.sample(1, seed=args.seed)
    data = trials.targets[0]
    model = build_model(args, data.shape[-1], dt)
    cfg = GTFConfig(n_iterations=args.iterations, seq_len=args.seq_len,
                    batch_size=args.batch_size, forcing=args.forcing, alpha=args.alpha,
                    tau=args.tau, lr=args.lr, lr_end=args.lr_end, grad_clip=args.grad_clip or None,
                    time_budget=args.time_budget, seed=args.seed)
    log(f"Training {model.n_networks} {args.model} networks (M={model.n_units}) with "
        f"{args.forcing} for {args.iterations} iterations ...")
    clean = trials.info.get("clean")
    clean = data if clean is None else clean[0]
    ckpt = BestCheckpoint(clean, every=args.keep_best_every) if args.keep_best_every else None
    t0 = time.perf_counter()
    hist = train_gtf(model, data, cfg, progress=not args.quiet, callback=ckpt)
    if ckpt is not None:
        ckpt.restore(model)
    train_s = time.perf_counter() - t0
    true_lam = task.max_lyapunov  # per time unit; standardising does not change it
    ds = evaluate_reconstruction(model, clean, true_lyapunov=true_lam,
                                 lyapunov_steps=args.lyapunov_steps, progress=not args.quiet)
    score = np.where(np.isfinite(ds.D_stsp.values), ds.D_stsp.values, np.inf)
    best = int(np.argmin(score))
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed run leaves no directory
    save_model(model, out / "model", metadata={"system": args.system, "best_network": best,
                                               "gtf": dataclasses.asdict(cfg)})
    metrics = {
        "system": args.system,
        "model": args.model,
        "networks": model.n_networks,
        "train_seconds": round(train_s, 1),
        "D_stsp": ds.D_stsp.values.tolist(),
        "D_H": ds.D_H.values.tolist(),
        "PE_1": ds.PE.values[:, 0].tolist(),
        "PE_20": ds.PE.values[:, -1].tolist(),
        "max_lyapunov": ds.max_lyapunov.values.tolist(),
        "true_max_lyapunov": true_lam,
        "best_network": best,
        "final_alpha": hist.as_arrays()["alpha"][-1].tolist(),
        "tau": hist.tau,
    }
    if ckpt is not None:
        metrics["best_iteration"] = ckpt.best_iteration.tolist()
    hist_arr = hist.as_arrays()
    figs = _figures(out, model, data, hist_arr, best, generate, np)
    if args.model == "alrnn":
        symbolic = _symbolic(out, model.select(best), data, np)
        figs += symbolic.pop("figures", [])
        metrics.update(symbolic)
    metrics["figures"] = figs
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    log(json.dumps({k: metrics[k] for k in ("D_stsp", "D_H", "max_lyapunov", "best_network",
                                            "train_seconds")}, indent=2))
    log(f"wrote {out / 'model.safetensors'}, {out / 'metrics.json'} and {len(figs)} figures")
    return 0


def _cmd_data(args) -> int:
    """``--data FILE``: :func:`dynrnn.reconstruct` with the options, then the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from dynrnn.batch.reconstruct import reconstruct
    from dynrnn.plot import plot_reconstruction, style

    out = Path(args.out)
    log = (lambda *a: None) if args.quiet else print
    rec = args.recording
    log(f"Read {rec}")
    config = dict(n_iterations=args.iterations, seq_len=args.seq_len, batch_size=args.batch_size,
                  forcing=args.forcing, alpha=args.alpha, tau=args.tau, lr=args.lr,
                  lr_end=args.lr_end, grad_clip=args.grad_clip or None,
                  time_budget=args.time_budget, seed=args.seed)
    embed = {"auto": "auto", "on": True, "off": False}[args.delay_embedding]
    log(f"Training {args.networks} {args.model} networks with {args.forcing} for up to "
        f"{args.iterations} iterations ...")
    run = reconstruct(rec, model=args.model, observation=args.observation,
                      n_networks=args.networks, n_latent=args.latent,
                      n_hidden=args.hidden, n_pwl=args.pwl, initial_state=args.initial_state,
                      config=config, delay_embedding=embed, heldout=args.heldout,
                      validate_every=args.validate_every, patience=args.patience,
                      lyapunov_steps=args.lyapunov_steps, seed=args.seed,
                      progress=not args.quiet)
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed run leaves no directory
    run.save(out)
    res = run.result
    metrics = {
        "data": str(args.data), "model": args.model, "networks": args.networks,
        "D_stsp": res.D_stsp.values.tolist(), "D_H": res.D_H.values.tolist(),
        "PE_1": res.PE.values[:, 0].tolist(), "PE_20": res.PE.values[:, -1].tolist(),
        "max_lyapunov": res.max_lyapunov.values.tolist(),
        "max_lyapunov_mean": res.attrs["max_lyapunov_mean"],
        "max_lyapunov_ci95": [res.attrs["max_lyapunov_ci_low"],
                              res.attrs["max_lyapunov_ci_high"]],
        "best_network": run.best_network, "best_iteration": res.best_iteration.values.tolist(),
        "settings": run.settings,
    }
    files = []
    with style():
        if res.sizes["channel"] >= 2:
            fig = plot_reconstruction(res, dims=tuple(range(min(3, res.sizes["channel"]))))
            fig.suptitle(f"held-out data (black) and network {run.best_network}'s free run "
                         f"(blue), data units", fontsize=8)
            fig.savefig(out / "attractor.png", dpi=120)
            plt.close(fig)
            files.append("attractor.png")
    files = _loss_figure(out, {"loss": res.loss.values.T}, run.best_network, np, plt, files)
    metrics["figures"] = files
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    log(json.dumps({k: metrics[k] for k in ("D_stsp", "D_H", "max_lyapunov", "best_network")},
                   indent=2))
    log(f"wrote {out / 'model.safetensors'}, {out / 'reconstruction.nc'}, "
        f"{out / 'metrics.json'} and {len(files)} figures")
    return 0


def _figures(out, model, data, hist, best, generate, np):
    """``attractor.png``: the data against the best network's free run (state space with
    labelled axes and per-dimension power spectra, :func:`dynrnn.plot.plot_reconstruction`;
    the first three dimensions); ``loss.png``: every network's GTF loss, labelled, the kept
    (best) network drawn strongest."""
    import matplotlib.pyplot as plt

    from dynrnn.plot import plot_reconstruction, style

    files = []
    T = len(data)
    with style():
        obs, _ = generate(model.select(best), data[0], int(1.25 * T))
        gen = obs[0, 0, -T:].double().numpy()
        x = data.double().numpy()
        D = min(3, x.shape[1])
        n = min(T, 20000)
        if D < 2:  # a 1-D observation has no state-space panel
            return _loss_figure(out, hist, best, np, plt, files)
        fig = plot_reconstruction(x[:n, :D], gen[:n, :D], dims=tuple(range(D)))
        fig.suptitle(f"data (black) and network {best}'s free run (blue), standardised units",
                     fontsize=8)
        fig.savefig(out / "attractor.png", dpi=120)
        plt.close(fig)
        files.append("attractor.png")
    return _loss_figure(out, hist, best, np, plt, files)


def _loss_figure(out, hist, best, np, plt, files):
    from dynrnn.plot import style

    with style():
        loss = np.asarray(hist["loss"], dtype=float)  # [iterations, K]
        loss = loss[:, None] if loss.ndim == 1 else loss
        fig, ax = plt.subplots(layout="constrained")
        for k in range(loss.shape[1]):
            kept = k == best
            ax.semilogy(loss[:, k], lw=1.2 if kept else 0.6, alpha=1.0 if kept else 0.6,
                        label=f"network {k}" + (" (kept)" if kept else ""))
        ax.set_xlabel("iteration")
        ax.set_ylabel("GTF loss")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the curves
        fig.savefig(out / "loss.png", dpi=120)
        plt.close(fig)
        files.append("loss.png")
    return files


def _symbolic(out, net, data, np):
    import matplotlib.pyplot as plt

    from dynrnn.analyses.dsr_metrics import generate
    from dynrnn.analyses.symbolic import symbol_sequence, symbolic_graph
    from dynrnn.plot import plot_attractor_subregions, plot_symbolic_graph, style

    T = min(len(data), 50000)
    obs, Z = generate(net, data[0], T + T // 4)
    traj = Z[0, 0, T // 4:]
    if not bool(np.isfinite(traj.numpy()).all()):
        return {"symbolic": "trajectory diverged"}
    G = symbolic_graph(net, traj)
    sym = symbol_sequence(net, traj)[0]
    import networkx as nx

    with style():
        ax = plot_symbolic_graph(G)
        ax.figure.savefig(out / "symbolic_graph.png", dpi=120)
        plt.close(ax.figure)
        ax = plot_attractor_subregions(obs[0, 0, T // 4:].numpy(), sym)
        ax.figure.savefig(out / "attractor_subregions.png", dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
    return {
        "figures": ["symbolic_graph.png", "attractor_subregions.png"],
        "subregions_used": G.number_of_nodes(),
        "subregions_total": G.graph["n_subregions"],
        "symbolic_graph_strongly_connected": bool(nx.is_strongly_connected(G)),
        "transition_probabilities": {f"{u}->{v}": p for u, v, p in
                                     G.edges(data="probability")},
    }
