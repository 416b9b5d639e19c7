"""Figures of network outputs against task targets."""

from __future__ import annotations

import numpy as np

from .._validation import ParameterTypeError, check_array, check_index, check_shape
from ._style import check_axes

__all__ = ["plot_outputs"]


def _numpy(x):
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)

# colour-blind-safe palette (Okabe & Ito 2008)
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def plot_outputs(trials, outputs, network: int = 0, trial: int = 0, axes=None):
    """Inputs, targets and outputs of one network on one trial, one panel per output channel.

    Arguments:
        trials: :class:`~dynrnn.tasks.Trials` (``inputs [B, T, I]``, ``targets [B, T, O]``).
        outputs: ``[K, B, T, O]`` from :func:`dynrnn.run`.
        network, trial: which network and trial to show.
        axes: optional sequence of O matplotlib Axes.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    owner = "plot_outputs"
    if not all(hasattr(trials, a) for a in ("inputs", "targets", "mask")):
        raise ParameterTypeError(
            f"The 'trials' parameter of {owner} must be a dynrnn.tasks.Trials (inputs, targets, "
            f"mask). Got {type(trials).__name__} instead."
        )
    B, T = int(trials.inputs.shape[0]), int(trials.inputs.shape[1])
    out = check_array(owner, "outputs", outputs)
    check_shape(owner, "outputs", out, [("K", "B", "T", "O")], B=B, T=T)
    network = check_index(owner, "network", network, out.shape[0])
    trial = check_index(owner, "trial", trial, B)
    y = out[network, trial]
    tgt = np.asarray(_numpy(trials.targets[trial]), dtype=float)
    x = _numpy(trials.inputs[trial])
    mask = _numpy(trials.mask[trial])
    n_out = y.shape[-1]
    if tgt.ndim == 2 and tgt.shape[-1] != n_out:
        raise ValueError(
            f"The 'outputs' parameter of {owner} has O={n_out} channels; the trials' targets "
            f"have {tgt.shape[-1]}."
        )
    if axes is None:
        fig, axes = plt.subplots(n_out, 1, figsize=(6, 1.4 * n_out + 0.4), sharex=True,
                                 squeeze=False)
        axes = axes[:, 0]
    axes = check_axes(owner, "axes", axes, n_out)
    fig = axes[0].figure
    t = np.arange(y.shape[0])
    for i, ax in enumerate(axes):
        if i < x.shape[-1]:
            ax.plot(t, x[:, i], color="0.75", lw=0.8, label="input")
        ax.plot(t, tgt[:, i] if tgt.ndim == 2 else tgt, color=OKABE_ITO[1], lw=2, label="target")
        m = mask[:, i] if mask.ndim == 2 else mask
        ax.plot(t, np.where(m, y[:, i], np.nan), color=OKABE_ITO[0], lw=1.2, label="output")
        ax.set_ylabel(f"ch {i}")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(loc="upper right", frameon=False, ncol=3, fontsize=8)
    axes[-1].set_xlabel("time step")
    fig.tight_layout()
    return fig
