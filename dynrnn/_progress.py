"""Progress bars for the long loops of the library (``tqdm.auto``: a widget in notebooks, text
on stderr in terminals).

Every function with a long loop takes ``progress: bool = True``; ``progress=False`` creates a
disabled bar (nothing is written). The environment variable ``TQDM_DISABLE`` (any value but
``""``, ``"0"``, ``"false"`` or ``"no"``) silences every bar; it is read when a bar is made, so
it can be set at any time. Bars stay on screen when done (``leave=True``); a loop that stops
early sets the bar's total to the steps it ran, so that the bar ends full.

A loop registers its bar while it runs (:func:`progress_bar` is a context manager), so work
done inside it by other code -- the evaluation of a callback, for example -- can show itself on
that bar with :func:`stage` without being handed the bar.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar", "stage", "finish_early", "bars_disabled"]

_ACTIVE: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "dynrnn_progress_bars", default=()
)


def bars_disabled() -> bool:
    """Whether ``TQDM_DISABLE`` asks for no bars at all."""
    value = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return value not in ("", "0", "false", "no")


@contextmanager
def progress_bar(
    progress: bool, *, total: int | None, desc: str, unit: str = "it"
) -> Iterator[Any]:
    """A tqdm bar (disabled when ``progress`` is False or ``TQDM_DISABLE`` is set) that is the
    innermost active bar while the ``with`` block runs and is closed after it."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, desc=desc, unit=unit, leave=True, disable=not progress or bars_disabled()
    )
    token = _ACTIVE.set(_ACTIVE.get() + (bar,))
    try:
        yield bar
    finally:
        _ACTIVE.reset(token)
        bar.close()


@contextmanager
def stage(name: str, bar: Any = None) -> Iterator[None]:
    """Show ``name`` (e.g. ``"evaluating"``) as the postfix of ``bar`` -- default: the innermost
    active bar, if any -- while the block runs; the previous postfix comes back after it."""
    if bar is None:
        active = _ACTIVE.get()
        bar = active[-1] if active else None
    if bar is None or getattr(bar, "disable", True):
        yield
        return
    old = bar.postfix
    bar.set_postfix_str(name, refresh=True)
    try:
        yield
    finally:
        bar.set_postfix_str(old or "", refresh=True)


def finish_early(bar: Any, note: str | None = None) -> None:
    """A loop stopped before its total: make the steps run the total (the bar ends at 100%),
    with an optional postfix saying why."""
    if getattr(bar, "disable", True):
        return
    if bar.total is None or bar.n < bar.total:
        bar.total = bar.n
    if note:
        bar.set_postfix_str(note, refresh=False)
    bar.refresh()
