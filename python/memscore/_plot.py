"""Figures and HTML tables every engine's report shares: atomic figure writes, one table
renderer (escaped cells, NaN as a dash, sortable), one stylesheet, small PNG thumbnails
written without matplotlib, and the log-log ROC of membership attacks."""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from ._html import Markup, el, fmt
from ._io import atomic_write

__all__ = ["REPORT_CSS", "cell", "plot_roc_loglog", "png_bytes", "pyplot", "save_figure", "table_html", "write_png"]

REPORT_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}
th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table.sortable th{cursor:pointer}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}input.filter{margin:0.3em 0;padding:2px 6px}
td img.thumb{image-rendering:pixelated;margin:0;vertical-align:middle}
span.example{font-family:ui-monospace,monospace;white-space:pre-wrap}.note{color:#666;font-size:90%}"""


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files, no window).

    Raises
    ------
    ImportError
        matplotlib is not installed (the message says how to get it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("memscore reports need matplotlib: pip install 'memscore[plot]'") from exc
    return plt


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


def cell(value: Any, floats: int = 3) -> Markup:
    """A ``<td>`` of ``value`` (:func:`memscore._html.fmt`); a number also as ``data-v``,
    the key the page's sorting uses (NaN and None sort as text, after the numbers)."""
    if isinstance(value, Markup):
        return el("td", value)
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if number and math.isfinite(float(value)):
        return el("td", fmt(value, floats), data_v=repr(float(value)))
    return el("td", fmt(value, floats))


def table_html(df: pl.DataFrame, floats: int = 3, *, filter: bool = False) -> Markup:
    """``df`` as a sortable HTML table (:mod:`memscore._html`): column names and cells
    escaped, floats to ``floats`` places, NaN and None as a dash; ``filter`` puts a filter
    box before it."""
    head = el("thead", el("tr", *(el("th", c) for c in df.columns)))
    rows = (el("tr", *(cell(v, floats) for v in row)) for row in df.iter_rows())
    table = el("table", head, el("tbody", *rows), class_="sortable")
    if not filter:
        return table
    box = el("input", type="search", class_="filter", placeholder="filter rows", aria_label="filter rows")
    return Markup(box + table)


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG file of an 8-bit grayscale ``(H, W)`` or RGB ``(H, W, 3)`` image (zlib, no
    filter): thumbnails without matplotlib or Pillow.

    Raises
    ------
    ValueError
        ``image`` is not a uint8 array of one of those shapes, or is empty.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or 0 in a.shape:
        raise ValueError(f"image: expected uint8 (H, W) or (H, W, 3), got {a.dtype} {a.shape}")
    h, w = a.shape[:2]
    color = 0 if a.ndim == 2 else 2
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, -1)], axis=1)  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """:func:`png_bytes` of ``image`` written atomically to ``path``."""
    data = png_bytes(image)
    atomic_write(path, lambda f: f.write(data))


#: The FPR levels the membership literature reads a ROC at (Carlini et al. 2022).
LOW_FPR = (0.001, 0.01)


def plot_roc_loglog(
    ax: Any, curves: Sequence[tuple[str, Any]], *, levels: Sequence[float] = LOW_FPR, n_negatives: int | None = None
) -> None:
    """ROC curves on log-log axes with the TPR at each FPR in ``levels`` marked.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    curves : sequence of (label, MembershipMetrics)
        Each attack's :func:`memscore.membership_metrics` (``fpr``, ``tpr``, ``auc``, and
        ``tpr_at_fpr`` holding every level).
    levels : sequence of float, default (0.001, 0.01)
        FPR levels marked by dotted lines and a dot on each curve.
    n_negatives : int, optional
        Non-members scored: the smallest FPR shown is ``1 / n_negatives``.
    """
    low = 1.0 / n_negatives if n_negatives else min(levels) / 10
    for label, m in curves:
        marks = ", ".join(f"{100 * m.tpr_at_fpr[f]:.2g}% @ {100 * f:g}%" for f in levels)
        line = ax.plot(np.maximum(m.fpr, low), np.maximum(m.tpr, low), label=f"{label}: AUC {m.auc:.3f}; TPR {marks}")
        ax.scatter(list(levels), [max(m.tpr_at_fpr[f], low) for f in levels], color=line[0].get_color(), zorder=3)
    grid = np.logspace(math.log10(low), 0, 50)
    ax.plot(grid, grid, color="grey", lw=0.8, ls="--", label="chance")
    for f in levels:
        ax.axvline(f, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, 1)
    ax.set_ylim(low, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
