"""One multi-panel figure of what a trained network computes: its outputs against the targets,
its state space with the fixed points it computes with, and their linearisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .._validation import check_index
from ._style import PALETTE, panel_letters
from .dynamics import _check_ds, pca_basis, plot_eigenvalues, plot_fixed_points
from .outputs import plot_outputs

__all__ = ["plot_network_summary"]


def plot_network_summary(trials: Any, outputs: Any, states: Any, fixed_points: xr.Dataset,
                         network: int = 0, trial: int = 0, *, title: str | None = None,
                         max_trajectories: int = 12):
    """Outputs vs targets, state space with fixed points, and stable points' spectra.

    Panels: **A** inputs, targets and outputs of ``network`` on ``trial``, one row per output
    channel, one shared y-range; **B** the network's trajectories on the trials (light grey) in
    the plane of their first two principal components, with its fixed points coloured by
    stability (stable points -- the memories of a flip-flop -- blue, saddles orange with
    their unstable directions) and the shown trial's trajectory in black; **C** the Jacobian
    eigenvalues of its *stable* points against the unit circle (discrete time: a stable point
    has all ``|lambda| < 1``). Where the network has no stable fixed point, panel C says so
    instead of drawing an empty plane.

    Arguments:
        trials: :class:`~dynrnn.tasks.Trials` ``[B, T, ...]``.
        outputs: ``[K, B, T, O]``; states: ``[K, B, T, N]`` (from :func:`dynrnn.run`).
        fixed_points: :func:`dynrnn.analyses.find_fixed_points` of the same K networks.
        network, trial: which network and trial to show.
        title: figure title (default: which network and trial are shown).
        max_trajectories: trials drawn in panel B.

    Returns:
        The Figure (constrained layout, about 7.1 x 3.6 inches: a two-column figure).
    """
    import matplotlib.pyplot as plt

    owner = "plot_network_summary"
    _check_ds(fixed_points, ("points", "stability", "valid", "eigenvalues"), owner)
    K = int(fixed_points.sizes["network"])
    network = check_index(owner, "network", network, K)
    st = np.asarray(states.detach().cpu() if hasattr(states, "detach") else states)
    if st.ndim != 4 or st.shape[0] != K:
        raise ValueError(f"The 'states' parameter of {owner} must be [K={K}, B, T, N]; got "
                         f"shape {tuple(st.shape)}.")
    trial = check_index(owner, "trial", trial, st.shape[1])
    n_out = int(np.shape(outputs)[-1])

    fig = plt.figure(figsize=(7.1, 3.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 1.05])
    out_axes = left.subplots(n_out, 1, sharex=True, squeeze=False)[:, 0]
    plot_outputs(trials, outputs, network=network, trial=trial, axes=out_axes)
    ax_ss, ax_eig = right.subplots(1, 2, width_ratios=[1.0, 1.1])

    traj = st[network]
    basis = pca_basis(traj, 2)
    plot_fixed_points(fixed_points, network, traj, ax=ax_ss, basis=basis,
                      max_trajectories=max_trajectories, include_slow_points=False)
    shown = (traj[trial] - basis[0]) @ basis[1][:2].T
    ax_ss.plot(*shown.T, color=PALETTE["black"], lw=0.7, zorder=2.5, label=f"trial {trial}")
    ax_ss.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False,
                 handletextpad=0.3, columnspacing=0.8)
    ax_ss.set_title("state space", loc="left")

    d = fixed_points.isel(network=network)
    stable = (np.asarray(d["stability"]) == 0) & np.asarray(d["valid"], dtype=bool)
    n_stable = int(stable.sum())
    if n_stable:
        plot_eigenvalues(fixed_points, network, ax=ax_eig, kinds=("stable",))
        lam = np.asarray(d["eigenvalues"])[stable]
        lim = 1.15 * max(1.0, float(np.nanmax(np.abs(lam))))
        ax_eig.set_aspect("equal", adjustable="box")
        ax_eig.set_xlim(-lim, lim)
        ax_eig.set_ylim(-lim, lim)
        ax_eig.set_title(f"spectra of the {n_stable} stable points", loc="left")
        ax_eig.get_legend().remove()  # one kind only: the title says which
    else:
        ax_eig.set_axis_off()
        ax_eig.text(0.5, 0.5, "no stable fixed point found\n(no spectrum to show;\n"
                    "memories, if any, are held\non other structures)", ha="center",
                    va="center", transform=ax_eig.transAxes, fontsize=7)
    panel_letters([out_axes[0], ax_ss, ax_eig] if n_stable else [out_axes[0], ax_ss])
    fig.suptitle(title if title is not None else f"network {network}, trial {trial}",
                 x=0.01, ha="left", fontsize=9)
    return fig
