"""Tracing model outputs back to the corpus: for each generation, its maximal matching
spans with their counts and documents (OLMoTrace's span step, without its reranking), the
longest corpus match at each position (infini-gram's creativity) and the n-novelty, all
from a :class:`~memscore.ngrams.CorpusIndex`; :func:`write_trace_html` shows the spans
highlighted over the text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from .._html import Markup, el, fmt, write_page
from ..ngrams.index import CorpusIndex, covered_by_matches, novelty_from_matches

__all__ = ["trace", "write_trace_html"]

_SPAN_FIELDS: dict[str, pl.DataType | type[pl.DataType]] = {
    "start": pl.Int64,
    "end": pl.Int64,
    "length": pl.Int64,
    "count": pl.Int64,
    "doc_ids": pl.List(pl.Int64),
    "offsets": pl.List(pl.Int64),
}


def trace(
    index: CorpusIndex,
    generations: Sequence[Sequence[int]],
    *,
    ids: Sequence[Any] | None = None,
    min_len: int = 8,
    max_count: int | None = None,
    n_docs: int = 3,
    max_n: int = 8,
) -> pl.DataFrame:
    """Trace each generation to the corpus.

    Parameters
    ----------
    index : CorpusIndex
        The corpus's index.
    generations : sequence of sequences of int
        Token ids, in the corpus's tokenization.
    ids : sequence, optional
        A name per generation (default: its index), kept as strings.
    min_len : int, default 8
        The shortest span kept.
    max_count : int, optional
        Keep spans occurring at most this often.
    n_docs : int, default 3
        Occurrences listed per span.
    max_n : int, default 8
        Novelty for n = 1..max_n.

    Returns
    -------
    polars.DataFrame
        One row per generation: ``id``, ``tokens`` (list of int64), ``longest_match``
        (list of int64, one per token), ``novelty`` (list of float64: the share of the
        generation's n-grams absent from the corpus, n = 1..max_n, NaN where it has
        none), ``spans`` (list of structs ``start``, ``end``, ``length``, ``count``,
        ``doc_ids``, ``offsets``) and ``coverage`` (share of tokens inside a kept span's
        length class, i.e. in a match of at least ``min_len`` tokens).

    Raises
    ------
    TypeError
        ``index`` is not a :class:`CorpusIndex`, or a generation is not token ids.
    ValueError
        Bad ``min_len``, ``max_count``, ``n_docs``, ``max_n``, or ``ids`` of another length.
    """
    if not isinstance(index, CorpusIndex):
        raise TypeError(f"index: expected a memscore.ngrams.CorpusIndex, got {type(index).__name__}")
    gens = [np.asarray(g).tolist() if isinstance(g, np.ndarray) else list(g) for g in generations]
    names = [str(i) for i in range(len(gens))] if ids is None else [str(x) for x in ids]
    if len(names) != len(gens):
        raise ValueError(f"ids: expected one per generation ({len(gens)}), got {len(names)}")
    if isinstance(max_n, bool) or not isinstance(max_n, (int, np.integer)) or max_n < 1:
        raise ValueError(f"max_n: expected an int >= 1, got {max_n!r}")
    matches = index.longest_matches(gens)
    spans = [index.spans(g, min_len=min_len, max_count=max_count, n_docs=n_docs).to_dicts() for g in gens]
    return pl.DataFrame(
        {
            "id": names,
            "tokens": pl.Series([[int(x) for x in g] for g in gens], dtype=pl.List(pl.Int64)),
            "longest_match": pl.Series([lm.tolist() for lm in matches], dtype=pl.List(pl.Int64)),
            "novelty": pl.Series(
                [novelty_from_matches(lm, int(max_n)).tolist() for lm in matches], dtype=pl.List(pl.Float64)
            ),
            "spans": pl.Series(spans, dtype=pl.List(pl.Struct(_SPAN_FIELDS))),
            "coverage": pl.Series(
                [float(covered_by_matches(lm, min_len).mean()) if len(lm) else float("nan") for lm in matches],
                dtype=pl.Float64,
            ),
        }
    )


_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
.gen { margin: 1.5em 0; padding: 0.8em; border: 1px solid #ccc; border-radius: 4px; }
.text { font-family: monospace; line-height: 1.9; white-space: pre-wrap; }
.tok { padding: 1px 0; }
.m1 { background: #fff1b8; } .m2 { background: #ffd666; } .m3 { background: #fa8c16; color: #fff; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 2px 6px; }
"""


def _shade(length: int, min_len: int) -> str:
    """A span's colour class: longer spans darker."""
    return "m3" if length >= 4 * min_len else "m2" if length >= 2 * min_len else "m1"


def _generation_block(row: dict[str, Any], strings: list[str] | None, min_len: int) -> Markup:
    tokens = row["tokens"]
    shown = strings if strings is not None else [f"{t} " for t in tokens]
    # each token shows the longest kept span that covers it (maximal spans may overlap)
    best: list[dict[str, Any] | None] = [None] * len(tokens)
    for sp in row["spans"]:
        for i in range(sp["start"], sp["end"]):
            cur = best[i]
            if cur is None or sp["length"] > cur["length"]:
                best[i] = sp
    parts = []
    for i, s in enumerate(shown):
        sp = best[i]
        if sp is None:
            parts.append(el("span", s, class_="tok"))
        else:
            docs = ", ".join(f"doc {d} @ {o}" for d, o in zip(sp["doc_ids"], sp["offsets"], strict=True))
            tip = f"tokens {sp['start']}..{sp['end']} ({sp['length']}): {sp['count']} in the corpus; {docs}"
            parts.append(el("span", s, class_=f"tok span {_shade(sp['length'], min_len)}", title=tip))
    nov = ", ".join(f"{k + 1}: {fmt(v, 2)}" for k, v in enumerate(row["novelty"]))
    return el(
        "div",
        el("h3", f"generation {row['id']}"),
        el(
            "p",
            f"{len(tokens)} tokens, {len(row['spans'])} spans, coverage {fmt(row['coverage'], 3)}, "
            f"longest match {max(row['longest_match'], default=0)}; novelty by n: {nov}",
        ),
        el("div", Markup("".join(parts)), class_="text"),
        class_="gen",
    )


def write_trace_html(
    table: pl.DataFrame,
    path: str | os.PathLike[str],
    *,
    token_strings: Sequence[Sequence[str]] | None = None,
    min_len: int = 8,
) -> None:
    """Write the trace of :func:`trace` as one HTML page (atomically): a sortable summary
    table, then each generation with its spans highlighted (darker for longer spans; a
    span's count and documents show on hover).

    Parameters
    ----------
    table : polars.DataFrame
        The result of :func:`trace`.
    path : str or path
        The page.
    token_strings : sequence of sequences of str, optional
        The text of each token of each generation (default: the token ids).
    min_len : int, default 8
        The ``min_len`` of the trace (sets the colour scale).

    Raises
    ------
    ValueError
        ``token_strings`` of another shape than the generations.
    """
    rows = table.to_dicts()
    strings = None if token_strings is None else [list(s) for s in token_strings]
    if strings is not None:
        if [len(s) for s in strings] != [len(r["tokens"]) for r in rows]:
            raise ValueError("token_strings: expected one string per token of each generation")
    head = el("tr", *(el("th", h) for h in ("id", "tokens", "spans", "coverage", "longest match")))
    body = [
        el(
            "tr",
            el("td", r["id"]),
            el("td", len(r["tokens"]), data_v=len(r["tokens"])),
            el("td", len(r["spans"]), data_v=len(r["spans"])),
            el("td", fmt(r["coverage"], 3), data_v=r["coverage"]),
            el("td", max(r["longest_match"], default=0), data_v=max(r["longest_match"], default=0)),
        )
        for r in rows
    ]
    summary = [
        el("input", class_="filter", placeholder="filter"),
        el("table", el("thead", head), el("tbody", *body), class_="sortable", id="summary"),
    ]
    blocks = [_generation_block(r, None if strings is None else strings[k], min_len) for k, r in enumerate(rows)]
    write_page(path, "memscore trace", [el("h1", "Generations traced to the corpus"), *summary, *blocks], css=_CSS)
