"""Publication style: one context manager and a colour-blind-safe palette (Okabe & Ito 2008)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import matplotlib as mpl
import numpy as np

from .._validation import ParameterTypeError

__all__ = ["PALETTE", "STABILITY_COLOURS", "style", "new_axes", "panel_letters"]

#: Okabe--Ito palette, safe for the common colour-vision deficiencies
PALETTE = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "grey": "#999999",
}

#: colours of fixed points by stability code (see ``dynrnn.analyses.STABILITY_CODES``)
STABILITY_COLOURS = {
    "stable": PALETTE["blue"],
    "saddle": PALETTE["orange"],
    "unstable": PALETTE["vermillion"],
    "slow": PALETTE["grey"],
}

_CYCLE = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky_blue",
                               "yellow", "black")]

_RC = {
    "figure.figsize": (3.5, 2.8),  # one column of a two-column paper
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.format": "pdf",
    "pdf.fonttype": 42,  # embed TrueType: text stays editable in vector output
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def style(**overrides) -> Iterator[None]:
    """Context with dynrnn's publication defaults (vector-friendly fonts, readable sizes,
    colour-blind-safe colour cycle); keyword arguments override rcParams (``.`` -> ``_``
    is not translated: pass ``**{"font.size": 10}``).

    Example::

        with dynrnn.plot.style():
            ax = dynrnn.plot.plot_eigenvalues(ds)
            ax.figure.savefig("eigs.pdf")
    """
    unknown = sorted(k for k in overrides if k not in mpl.rcParams)
    if unknown:
        raise ValueError(
            f"The parameters {unknown} of style are not matplotlib rcParams (pass e.g. "
            f'**{{"font.size": 10}}).'
        )
    rc = dict(_RC)
    rc["axes.prop_cycle"] = mpl.cycler(color=_CYCLE)
    rc.update(overrides)
    with mpl.rc_context(rc):
        yield


def check_axes(owner: str, name: str, ax, n: int | None = None):
    """``ax`` if it is a matplotlib Axes (or, with ``n``, a sequence of ``n`` Axes); else
    :class:`~dynrnn._validation.ParameterTypeError` naming the argument."""
    from matplotlib.axes import Axes

    if n is None:
        if not isinstance(ax, Axes):
            raise ParameterTypeError(
                f"The {name!r} parameter of {owner} must be a matplotlib Axes or None. Got "
                f"{type(ax).__name__} instead."
            )
        return ax
    try:
        axes = list(np.asarray(ax, dtype=object).reshape(-1))
    except (TypeError, ValueError):
        axes = None
    if axes is None or not all(isinstance(a, Axes) for a in axes):
        raise ParameterTypeError(
            f"The {name!r} parameter of {owner} must be a sequence of {n} matplotlib Axes or "
            f"None. Got {type(ax).__name__} instead."
        )
    if len(axes) != n:
        raise ValueError(
            f"The {name!r} parameter of {owner} must hold {n} Axes. Got {len(axes)} instead."
        )
    return axes


def new_axes(ax=None, projection: str | None = None, owner: str = "the plot function"):
    """Return ``ax`` (checked to be an Axes) or a fresh Axes on a new Figure (never shown)."""
    if ax is not None:
        return check_axes(owner, "ax", ax)
    import matplotlib.pyplot as plt

    fig = plt.figure()
    return fig.add_subplot(111, projection=projection)


def panel_letters(axes, *, start: str = "A", x: float = -0.02, y: float = 1.02,
                  size: float | None = None) -> list:
    """Bold panel letters A, B, ... at the top-left corner of each Axes of ``axes`` (a sequence
    of Axes, in reading order), just outside the axes (``x, y`` in axes coordinates, right-
    and bottom-aligned there). Returns the Text objects."""
    import matplotlib as mpl

    axes = check_axes("panel_letters", "axes", axes, len(list(np.ravel(axes))))
    size = size if size is not None else mpl.rcParams["axes.titlesize"]
    texts = []
    for i, ax in enumerate(axes):
        texts.append(ax.text(x, y, chr(ord(start) + i), transform=ax.transAxes,
                             fontweight="bold", fontsize=size, ha="right", va="bottom"))
    return texts
