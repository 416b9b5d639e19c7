"""Continual learning: the accuracy matrix (trained on task i, tested on task j)."""

from __future__ import annotations

import numpy as np

from .._validation import ParameterTypeError
from ._style import new_axes

__all__ = ["plot_accuracy_matrix"]


def plot_accuracy_matrix(result, ax=None, *, title: str | None = None, cmap: str = "viridis"):
    """Heat map of ``accuracy[trained, evaluated]`` with each cell's value written in it.

    Row i is the state after training on task i; column j the test accuracy on task j. The
    lower triangle (j <= i) shows forgetting: without protection of old tasks the first column
    fades down the rows. Upper-triangle cells (tasks not yet trained) are drawn too (chance
    level is expected there).

    Arguments:
        result: a :class:`dynrnn.training.ContinualResult`, its ``to_xarray()`` Dataset, or an
            ``accuracy`` array ``[n_tasks, n_tasks]``.
        ax: Axes (default: a new Figure); title: axes title.
        cmap: colour map (accuracy 0..1).

    Returns:
        The Axes.
    """
    owner = "plot_accuracy_matrix"
    if hasattr(result, "data_vars"):
        if "accuracy" not in result:
            raise ValueError(f"The 'result' parameter of {owner} needs the variable 'accuracy' "
                             f"(trained, evaluated); got {sorted(result.data_vars)}.")
        acc = np.asarray(result["accuracy"].values, dtype=float)
    elif hasattr(result, "accuracy"):
        acc = np.asarray(result.accuracy, dtype=float)
    else:
        try:
            acc = np.asarray(result, dtype=float)
        except (TypeError, ValueError):
            raise ParameterTypeError(
                f"The 'result' parameter of {owner} must be a ContinualResult, its Dataset or an "
                f"accuracy array. Got {type(result).__name__} instead.") from None
    if acc.ndim != 2 or acc.shape[0] != acc.shape[1] or acc.size == 0:
        raise ValueError(f"The accuracy matrix given to {owner} must be square [n_tasks, "
                         f"n_tasks]; got shape {acc.shape}.")
    n = acc.shape[0]
    ax = new_axes(ax, owner=owner)
    im = ax.imshow(acc, vmin=0.0, vmax=1.0, cmap=cmap, origin="upper")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{acc[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if acc[i, j] < 0.6 else "black")
    ticks = np.arange(n)
    ax.set_xticks(ticks, [str(t + 1) for t in ticks])
    ax.set_yticks(ticks, [str(t + 1) for t in ticks])
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after training on task")
    ax.figure.colorbar(im, ax=ax, label="test accuracy", fraction=0.046, pad=0.04)
    if title is not None:
        ax.set_title(title)
    return ax
