"""Text and HTML summaries of the package's objects (``__repr__`` / ``_repr_html_`` for
notebooks): a title and a list of (field, value) rows, escaped, as one small table."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["html_table", "text_summary", "describe_values", "SummaryRepr"]


def describe_values(values: Sequence[Any], max_shown: int = 6) -> str:
    """One value, or the distinct values in order of appearance (``"16, 32, 64 (3 values)"``;
    at most ``max_shown`` listed)."""
    distinct = list(dict.fromkeys(_hashable(v) for v in values))
    if len(distinct) == 1:
        return _fmt(distinct[0])
    shown = ", ".join(_fmt(v) for v in distinct[:max_shown])
    more = ", ..." if len(distinct) > max_shown else ""
    return f"{shown}{more} ({len(distinct)} values)"


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def text_summary(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    """``title`` then one indented ``field: value`` line per row."""
    lines = [title]
    lines += [f"  {k}: {v}" for k, v in rows]
    return "\n".join(lines)


def html_table(title: str, rows: Iterable[tuple[str, Any]],
               columns: tuple[str, ...] | None = None,
               body: Sequence[Sequence[Any]] | None = None) -> str:
    """An HTML block: a bold ``title``, a two-column table of ``rows`` (field, value), and
    optionally a second table with header ``columns`` and rows ``body``. Everything is
    escaped (values come from user configs and file names)."""
    esc = html.escape
    out = ['<div class="dynrnn-repr">', f"<strong>{esc(title)}</strong>",
           '<table style="border-collapse:collapse;text-align:left">']
    for k, v in rows:
        out.append(f'<tr><th style="padding:0 1em 0 0">{esc(str(k))}</th>'
                   f"<td>{esc(str(v))}</td></tr>")
    out.append("</table>")
    if columns is not None and body is not None:
        out.append('<table style="border-collapse:collapse;text-align:left;margin-top:0.5em">')
        out.append("<tr>" + "".join(f'<th style="padding:0 1em 0 0">{esc(str(c))}</th>'
                                    for c in columns) + "</tr>")
        for r in body:
            out.append("<tr>" + "".join(f'<td style="padding:0 1em 0 0">{esc(str(x))}</td>'
                                        for x in r) + "</tr>")
        out.append("</table>")
    out.append("</div>")
    return "\n".join(out)


class SummaryRepr:
    """Mixin: ``__repr__`` and ``_repr_html_`` from the class's ``_summary_rows()``, which
    returns ``(title, [(field, value), ...])``. A dataclass using it needs ``repr=False``
    (else the generated ``__repr__`` replaces this one)."""

    def _summary_rows(self) -> tuple[str, list[tuple[str, Any]]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return text_summary(*self._summary_rows())

    def _repr_html_(self) -> str:
        return html_table(*self._summary_rows())
