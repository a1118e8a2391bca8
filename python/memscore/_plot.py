"""Figures and HTML tables every engine's report shares: atomic figure writes, one table
renderer (escaped cells, NaN as a dash) and one stylesheet."""

from __future__ import annotations

import os
from typing import Any

import polars as pl

from ._html import Markup, el, fmt
from ._io import atomic_write

__all__ = ["REPORT_CSS", "save_figure", "table_html"]

REPORT_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}
th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"""


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110) -> str:
    """Lay out ``fig``, write it atomically to ``path`` (format from the suffix, PNG by
    default) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
    dpi : int, default 110

    Returns
    -------
    str
        ``path``.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = os.fspath(path)
    fmt = os.path.splitext(out)[1].lstrip(".").lower() or "png"
    try:
        atomic_write(out, lambda f: fig.savefig(f, dpi=dpi, format=fmt))
    finally:
        plt.close(fig)
    return out


def table_html(df: pl.DataFrame, floats: int = 3) -> Markup:
    """``df`` as an HTML table (:mod:`memscore._html`): column names and cells escaped,
    floats to ``floats`` places, NaN and None as a dash."""
    head = el("thead", el("tr", *(el("th", c) for c in df.columns)))
    rows = (el("tr", *(el("td", fmt(v, floats)) for v in row)) for row in df.iter_rows())
    return el("table", head, el("tbody", *rows))
