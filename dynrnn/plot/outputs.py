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

    The target is drawn only where the trial's mask defines it (a stretch outside the mask is
    not a target of 0); the output is drawn everywhere. Every channel gets the same y-range,
    and the legend sits above the first panel.

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
        fig, axes = plt.subplots(n_out, 1, figsize=(6, 1.2 * n_out + 0.6), sharex=True,
                                 squeeze=False, layout="constrained")
        axes = axes[:, 0]
    axes = check_axes(owner, "axes", axes, n_out)
    fig = axes[0].figure
    t = np.arange(y.shape[0])
    m_all = mask if mask.ndim == 2 else np.repeat(mask[:, None], n_out, 1)
    tgt2 = tgt if tgt.ndim == 2 else np.repeat(tgt[:, None], n_out, 1)
    # one y-range for every channel (channels are comparable at a glance), from what is drawn
    drawn = [np.where(m_all, tgt2, np.nan), np.where(m_all, y, np.nan)]
    if x.shape[-1]:
        drawn.append(x[:, : min(n_out, x.shape[-1])])
    lo = np.nanmin([np.nanmin(d) if np.isfinite(d).any() else np.inf for d in drawn])
    hi = np.nanmax([np.nanmax(d) if np.isfinite(d).any() else -np.inf for d in drawn])
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        lo, hi = -1.0, 1.0
    pad = 0.08 * (hi - lo)
    handles = {}
    for i, ax in enumerate(axes):
        if i < x.shape[-1]:
            (handles["input"],) = ax.plot(t, x[:, i], color="0.6", lw=0.8, label="input")
        # the target only where it is defined (the mask); unmasked steps are not a target of 0
        (handles["target"],) = ax.plot(t, np.where(m_all[:, i], tgt2[:, i], np.nan),
                                       color=OKABE_ITO[1], lw=2.2, label="target")
        (handles["output"],) = ax.plot(t, y[:, i], color=OKABE_ITO[0], lw=1.0, label="output")
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(f"channel {i + 1}")
        ax.spines[["top", "right"]].set_visible(False)
    # the legend above the first panel, outside the data
    axes[0].legend(list(handles.values()), list(handles), loc="lower left",
                   bbox_to_anchor=(0.0, 1.02), ncol=len(handles), frameon=False,
                   borderaxespad=0.0)
    axes[-1].set_xlabel("time step")
    return fig
