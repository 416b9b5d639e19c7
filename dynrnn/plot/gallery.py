"""Render every plot type of :mod:`dynrnn.plot` to PNG and PDF from small, fast fixtures.

Usage::

    python -m dynrnn.plot.gallery out/            # about half a minute on 2 cores

The fixtures are computed here, seeded: a 2-bit flip-flop ensemble trained briefly (8 tanh
RNNs, 24 units), its training history, fixed points and Lyapunov spectra; rate RNNs of three
sizes for the timescale plot; untrained rate RNNs at three gains for grouped Lyapunov spectra
and a DSA matrix; a small degeneracy report; a chaotic AL-RNN (a tent map) for the symbolic
plots; the Izhikevich (2003) network for a raster; two Lorenz-63 trajectories from different
initial states standing in for truth and reconstruction; the minimal DFA of Tomita grammar 4
with prefix states of an untrained GRU; stability certificates of random tanh maps across gains
and of certified-by-construction RNNs trained briefly on 2-parity; two HMM-emulating ReLU
RNNs (16 units) trained briefly on the 2-state linear chain, with their evaluation and
reverse-engineering analyses. Each
figure is made in :func:`dynrnn.plot.style` and written as ``<name>.png`` and ``<name>.pdf``.
The test suite runs :func:`render` and fails on any warning (``tests/test_gallery.py``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ._style import style

__all__ = ["render", "main", "FIGURES"]


def _flipflop():
    from ..analyses import find_fixed_points, lyapunov_spectrum
    from ..models import Ensemble, RateRNNConfig, run
    from ..tasks import FlipFlopTask
    from ..training import TrainConfig, train

    task = FlipFlopTask(n_bits=2, n_steps=60, p_pulse=0.08)
    model = Ensemble(RateRNNConfig(2, 24, 2), n_networks=8, seed=0)
    history = train(model, task, TrainConfig(n_steps=400, batch_size=32, lr=1e-2,
                                             eval_every=100, noise=False, progress=False),
                    seed=0)
    trials = task.sample(32, seed=1)
    with torch.no_grad():
        states, outputs = run(model, trials.inputs)
    fps = find_fixed_points(model, trajectories=states, n_initial=128, seed=0, progress=False)
    lyap = lyapunov_spectrum(model, n_steps=300, burn_in=100, progress=False)
    best = int(np.argmax(fps["n_stable"].values))
    return {"task": task, "model": model, "trials": trials, "states": states,
            "outputs": outputs, "fps": fps, "lyap": lyap, "best": best, "history": history}


def _timescales():
    import xarray as xr

    from ..analyses import network_timescale
    from ..models import Ensemble, RateRNNConfig, run

    parts = []
    g = torch.Generator().manual_seed(0)
    for n in (8, 16, 32):
        m = Ensemble(RateRNNConfig(1, n, 1, tau_init=3.0, leak_form="outside", train_tau=True,
                                   init_gain=1.2), n_networks=3, seed=n)
        with torch.no_grad():
            s, _ = run(m, torch.randn(4, 300, 1, generator=g))
        parts.append(network_timescale(s, m, kind="single"))
    return xr.concat(parts, dim="network", coords="different", compat="equals", join="outer")


def _degeneracy(task):
    from ..analyses import degeneracy_report
    from ..models import Ensemble, RateRNNConfig

    models = [Ensemble(RateRNNConfig(2, n, 2), n_networks=3, seed=n) for n in (6, 10)]
    return degeneracy_report(models, task, group_by="n_units", n_trials=8, n_dsa_trials=2,
                             dsa_kwargs=dict(n_delays=2, rank=6))


def _tent_alrnn():
    from ..analyses import generate, symbol_sequence, symbolic_graph
    from ..models import ALRNN, ALRNNConfig

    m = ALRNN(ALRNNConfig(2, 2, n_pwl=2)).double()
    with torch.no_grad():
        m.A.zero_()
        m.W.copy_(torch.tensor([[[-1.9, -1.9], [1.9, 1.9]]], dtype=torch.float64))
        m.h.copy_(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
    _, Z = generate(m, torch.tensor([0.1234, -0.1234]), 600)
    z = Z[0, 0]
    return {"graph": symbolic_graph(m, z), "states": z.numpy(),
            "symbols": symbol_sequence(m, z)[0]}


def _zoo_like():
    """Lyapunov spectra and a DSA matrix of 12 untrained rate RNNs at three gains (small)."""
    from ..analyses import dsa, lyapunov_spectrum, trajectories
    from ..models import Ensemble, RateRNNConfig

    cfgs = [RateRNNConfig(1, 16, 1, init_gain=g) for g in (0.6, 0.9, 1.4) for _ in range(4)]
    model = Ensemble(cfgs, seed=0)
    lyap = lyapunov_spectrum(model, n_steps=300, burn_in=100, progress=False)
    x = 0.5 * torch.randn(1, 1, 300, 1, generator=torch.Generator().manual_seed(0))
    states = trajectories(model, x)[:, 0]
    return {"lyap": lyap, "dsa": dsa(states, n_delays=3, rank=8, progress=False)}


def _spiking():
    from ..models import IzhikevichConfig, IzhikevichReservoir

    model = IzhikevichReservoir(IzhikevichConfig(n_inputs=0, n_outputs=0), seed=0)
    return model.to(torch.float64).simulate(1000, seed=0, progress=False)


def _lorenz():
    from ..tasks.chaotic import integrate

    truth = integrate("lorenz63", np.array([1.0, 1.0, 1.05]), 4000, 0.01, transient_steps=500)
    other = integrate("lorenz63", np.array([1.0, 1.2, 1.0]), 4000, 0.01, transient_steps=700)
    return {"truth": truth, "generated": other}


def _automaton():
    """The minimal DFA of Tomita grammar 4 (no 000 substring) and prefix states of an
    untrained GRU on its strings, coloured by the DFA state they belong to."""
    from ..analyses import reference_dfa
    from ..models import GRU, GRUConfig, run
    from ..tasks import TomitaTask

    task = TomitaTask(grammar=4)
    dfa = reference_dfa(task)
    trials = task.sample(64, seed=0)
    model = GRU(GRUConfig(trials.inputs.shape[-1], 8, 1), seed=0)
    with torch.no_grad():
        states, _ = run(model, trials.inputs)
    symbols = trials.info["symbols"]  # [B, T], -1 padding
    after = dfa.run(symbols)[:, 1:]  # the DFA state after every prefix
    valid = symbols.numpy() >= 0
    pts, labels = [states[0].numpy()[valid]], [after[valid]]
    return {"dfa": dfa, "states": pts[0], "dfa_states": labels[0]}


def _certificates(flipflop):
    """Certificates of 60 random tanh maps at gains 0.3-1.5 (bounds vs rho), and of 12
    certified-by-construction RNNs (``ContractingRNN``, bounds on the gain 0.3-0.95) briefly
    trained on 2-parity, against their final training loss: the tighter the bound, the
    faster the certified contraction and the shorter the memory the task can use."""
    from ..analyses import certify_matrices, stability_certificates
    from ..models import ContractingRNN, ContractingRNNConfig
    from ..tasks import ParityTask
    from ..training import TrainConfig, train

    g = torch.Generator().manual_seed(0)
    gains = torch.linspace(0.3, 1.5, 60, dtype=torch.float64)
    W = torch.randn(60, 24, 24, generator=g, dtype=torch.float64) / 24**0.5
    random = certify_matrices(W * gains[:, None, None], nonlinearity="tanh")
    cfgs = [ContractingRNNConfig(1, 16, 2, max_gain=float(x), init_gain=0.5 * float(x))
            for x in np.linspace(0.3, 0.95, 12)]
    model = ContractingRNN(cfgs, seed=0)
    history = train(model, ParityTask(n_values=(2,)), TrainConfig(n_steps=40, batch_size=16,
                                                                   lr=1e-2, eval_every=40,
                                                                   progress=False), seed=0)
    final = np.array([row[np.isfinite(row)][-1] for row in history.loss])
    return {"random": random, "trained": stability_certificates(model), "loss": final}


def _hmm():
    from ..analyses import (
        autonomous_dynamics,
        emission_statistics,
        evaluate_emulation,
        kick_neurons,
        noise_orbits,
        symbol_clusters,
        trajectory_speed,
    )
    from ..tasks import linear_chain_hmm
    from ..training import HMMTrainConfig, hmm_emulator, train_hmm_emulator

    hmm = linear_chain_hmm(2, seq_len=12, n_noise=4)
    model = hmm_emulator(2, 16, 4, seed=0)
    train_hmm_emulator(model, hmm, HMMTrainConfig(n_steps=40, batch_size=64, lr=3e-3), seed=0)
    autonomous = autonomous_dynamics(model, n_trajectories=8, n_steps=60,
                                     fixed_point_kwargs={"n_initial": 32})
    # show a network whose activity stays bounded (one that collapses without input)
    return {
        "network": int(np.argmax(autonomous["collapses"].values)),
        "eval": evaluate_emulation(model, hmm, n_sequences=200, n_restarts=2),
        "reference": emission_statistics(hmm.sample(200, seed=1).info["symbols"], 3),
        "autonomous": autonomous,
        "orbits": noise_orbits(model, n_steps=400),
        "speed": trajectory_speed(model, n_steps=200, n_trajectories=2, min_dwell=2),
        "clusters": symbol_clusters(model, n_steps=200, n_trajectories=2),
        "kick": kick_neurons(model, n_steps=400, n_trajectories=2, min_dwell=2),
    }


def _figures(fx) -> dict[str, Callable[[], object]]:
    """``{name: draw}``; each ``draw()`` returns the Figure it drew."""
    import matplotlib.pyplot as plt

    from . import (
        plot_attractor_subregions,
        plot_automaton,
        plot_automaton_states,
        plot_autonomous_collapse,
        plot_certificate_bounds,
        plot_degeneracy,
        plot_distance_matrix,
        plot_dwell_times,
        plot_eigenvalues,
        plot_fixed_points,
        plot_kick_neurons,
        plot_lyapunov_spectrum,
        plot_network_summary,
        plot_noise_orbit,
        plot_outputs,
        plot_rate_vs_performance,
        plot_reconstruction,
        plot_spike_raster,
        plot_symbol_clusters,
        plot_symbol_statistics,
        plot_symbolic_graph,
        plot_timescales,
        plot_training_history,
        plot_trajectory_speed,
        plot_transition_matrices,
    )

    ff, best = fx["flipflop"], fx["flipflop"]["best"]

    def fixed_points_3d():
        fig = plt.figure(figsize=(3.5, 3.2), layout="constrained")
        ax = fig.add_subplot(projection="3d")
        plot_fixed_points(ff["fps"], best, ff["states"], ax=ax, n_components=3)
        return fig

    def on_new_axes(draw):
        def make():
            fig, ax = plt.subplots(layout="constrained")
            draw(ax)
            return fig
        return make

    return {
        "network_summary": lambda: plot_network_summary(
            ff["trials"], ff["outputs"], ff["states"], ff["fps"], network=best,
            title=f"2-bit flip-flop, network {best}: outputs, state space, stable spectra"),
        "outputs": lambda: plot_outputs(ff["trials"], ff["outputs"], network=best),
        "fixed_points": on_new_axes(
            lambda ax: plot_fixed_points(ff["fps"], best, ff["states"], ax=ax)),
        "fixed_points_3d": fixed_points_3d,
        "eigenvalues": on_new_axes(lambda ax: plot_eigenvalues(ff["fps"], best, ax=ax)),
        "lyapunov_spectrum": on_new_axes(lambda ax: plot_lyapunov_spectrum(ff["lyap"], ax=ax)),
        "timescales": on_new_axes(lambda ax: plot_timescales(fx["timescales"], x="n_units",
                                                             ax=ax)),
        "degeneracy": lambda: plot_degeneracy(fx["degeneracy"]),
        "symbolic_graph": on_new_axes(lambda ax: plot_symbolic_graph(fx["tent"]["graph"],
                                                                     ax=ax)),
        "attractor_subregions": on_new_axes(lambda ax: plot_attractor_subregions(
            fx["tent"]["states"], fx["tent"]["symbols"], ax=ax)),
        "certificate_bounds": on_new_axes(lambda ax: plot_certificate_bounds(
            fx["certificates"]["random"], ax=ax)),
        "rate_vs_performance": on_new_axes(lambda ax: plot_rate_vs_performance(
            fx["certificates"]["trained"], fx["certificates"]["loss"], ax=ax,
            label="final training loss")),
        "automaton": on_new_axes(lambda ax: plot_automaton(
            fx["automaton"]["dfa"], ax=ax, title="Tomita 4: minimal DFA")),
        "automaton_states": on_new_axes(lambda ax: plot_automaton_states(
            fx["automaton"]["states"], fx["automaton"]["dfa_states"], ax=ax)),
        "lyapunov_grouped": on_new_axes(lambda ax: plot_lyapunov_spectrum(
            fx["zoo"]["lyap"], ax=ax, group_by="init_gain")),
        "distance_matrix": on_new_axes(lambda ax: plot_distance_matrix(
            fx["zoo"]["dsa"], "dsa", ax=ax, label="DSA distance (rad)")),
        "training_history": on_new_axes(lambda ax: plot_training_history(ff["history"],
                                                                         ax=ax)),
        "spike_raster": lambda: plot_spike_raster(fx["spiking"], n_excitatory=800),
        "reconstruction": lambda: plot_reconstruction(
            fx["lorenz"]["truth"], fx["lorenz"]["generated"], dt=0.01,
            names=("x", "y", "z")),
        "hmm_symbols": on_new_axes(lambda ax: plot_symbol_statistics(fx["hmm"]["eval"], ax=ax)),
        "hmm_transitions": lambda: plot_transition_matrices(fx["hmm"]["eval"]),
        "hmm_dwell_times": on_new_axes(lambda ax: plot_dwell_times(
            fx["hmm"]["eval"], 0, ax=ax, reference=fx["hmm"]["reference"])),
        "hmm_autonomous": on_new_axes(lambda ax: plot_autonomous_collapse(
            fx["hmm"]["autonomous"], ax=ax)),
        "hmm_orbit": on_new_axes(lambda ax: plot_noise_orbit(
            fx["hmm"]["orbits"], fx["hmm"]["network"], ax=ax)),
        "hmm_speed": on_new_axes(lambda ax: plot_trajectory_speed(
            fx["hmm"]["speed"], fx["hmm"]["network"], ax=ax)),
        "hmm_clusters": on_new_axes(lambda ax: plot_symbol_clusters(
            fx["hmm"]["clusters"], fx["hmm"]["network"], ax=ax)),
        "hmm_kick_neurons": on_new_axes(lambda ax: plot_kick_neurons(
            fx["hmm"]["kick"], fx["hmm"]["network"], ax=ax)),
    }


#: the figures :func:`render` writes, in order
FIGURES = ("network_summary", "outputs", "fixed_points", "fixed_points_3d", "eigenvalues",
           "lyapunov_spectrum", "timescales", "degeneracy", "symbolic_graph",
           "attractor_subregions", "lyapunov_grouped", "distance_matrix", "training_history",
           "spike_raster", "reconstruction", "automaton", "automaton_states",
           "certificate_bounds", "rate_vs_performance", "hmm_symbols", "hmm_transitions",
           "hmm_dwell_times", "hmm_autonomous", "hmm_orbit", "hmm_speed", "hmm_clusters",
           "hmm_kick_neurons")


def render(out_dir: str | Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Compute the fixtures and write every figure (or ``names``) as PNG and PDF into
    ``out_dir`` (created). Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = FIGURES if names is None else tuple(names)
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise ValueError(f"The 'names' parameter of render must name figures of {FIGURES}; "
                         f"got {unknown}.")
    fx = {"flipflop": _flipflop()}
    fx["timescales"] = _timescales() if "timescales" in names else None
    fx["degeneracy"] = _degeneracy(fx["flipflop"]["task"]) if "degeneracy" in names else None
    fx["tent"] = _tent_alrnn()
    fx["zoo"] = _zoo_like() if {"lyapunov_grouped", "distance_matrix"} & set(names) else None
    fx["spiking"] = _spiking() if "spike_raster" in names else None
    fx["lorenz"] = _lorenz() if "reconstruction" in names else None
    fx["automaton"] = _automaton() if {"automaton", "automaton_states"} & set(names) else None
    wanted = {"certificate_bounds", "rate_vs_performance"} & set(names)
    fx["certificates"] = _certificates(fx["flipflop"]) if wanted else None
    fx["hmm"] = _hmm() if any(n.startswith("hmm_") for n in names) else None
    figures = _figures(fx)
    written = []
    for name in names:
        with style():
            fig = figures[name]()
            fig = getattr(fig, "figure", fig)  # an Axes -> its Figure
            for ext in ("png", "pdf"):
                path = out / f"{name}.{ext}"
                fig.savefig(path, dpi=200 if ext == "png" else None)
                written.append(path)
            plt.close(fig)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynrnn.plot.gallery", description=__doc__)
    p.add_argument("out", help="output directory")
    p.add_argument("--only", nargs="+", choices=FIGURES, default=None, help="figures to render")
    a = p.parse_args(argv)
    for path in render(a.out, a.only):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
