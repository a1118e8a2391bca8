"""Benchmark contamination from a corpus index: for each benchmark item, the share of its
tokens that lie in a verbatim corpus match of at least ``n`` tokens (the union of its
maximal matching spans of that length), and the clean / contaminated split at a threshold.

The matches never span two corpus documents, and a token shuffle of an item, which keeps
its unigrams but breaks its n-grams, finds no match: the tests plant items verbatim and
check recall 1.0 on them and no hit on their shuffled controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from .index import CorpusIndex, covered_by_matches

__all__ = ["contamination"]


def contamination(
    index: CorpusIndex,
    items: Sequence[Sequence[int]],
    *,
    n: int = 13,
    threshold: float = 0.5,
    ids: Sequence[Any] | None = None,
) -> pl.DataFrame:
    """Per benchmark item, the share of its tokens covered by corpus matches of at least
    ``n`` tokens.

    Parameters
    ----------
    index : CorpusIndex
        The corpus's index.
    items : sequence of sequences of int
        The benchmark items as token ids (in the corpus's tokenization).
    n : int, default 13
        The shortest match that counts (13-grams, as GPT-3's contamination study).
    threshold : float, default 0.5
        An item is contaminated when at least this share of its tokens is covered
        (``0 < threshold <= 1``).
    ids : sequence, optional
        A name per item (default: its index), kept as strings.

    Returns
    -------
    polars.DataFrame
        One row per item: ``id``, ``n_tokens``, ``covered`` (tokens in a match),
        ``coverage`` (their share; NaN for an empty item), ``longest_match`` (the longest
        corpus match in the item) and ``contaminated`` (``coverage >= threshold``).

    Raises
    ------
    TypeError
        ``index`` is not a :class:`CorpusIndex`, or an item is not a sequence of ints.
    ValueError
        Bad ``n``, ``threshold``, or ``ids`` of another length.

    Examples
    --------
    >>> import tempfile
    >>> from memscore.ngrams import Corpus, CorpusIndex
    >>> idx = CorpusIndex.build(Corpus.from_tokens(list(range(20)), [0]), tempfile.mkdtemp())
    >>> contamination(idx, [list(range(3, 9)) + [99, 98], [7, 3, 5, 4]], n=4)["coverage"].to_list()
    [0.75, 0.0]
    """
    if not isinstance(index, CorpusIndex):
        raise TypeError(f"index: expected a memscore.ngrams.CorpusIndex, got {type(index).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a number in (0, 1], got {threshold!r}")
    items = list(items)
    names = [str(i) for i in range(len(items))] if ids is None else [str(x) for x in ids]
    if len(names) != len(items):
        raise ValueError(f"ids: expected one per item ({len(items)}), got {len(names)}")
    matches = index.longest_matches(items)
    covered = [int(covered_by_matches(lm, int(n)).sum()) for lm in matches]
    sizes = [len(lm) for lm in matches]
    coverage = [c / s if s else float("nan") for c, s in zip(covered, sizes, strict=True)]
    return pl.DataFrame(
        {
            "id": names,
            "n_tokens": pl.Series(sizes, dtype=pl.Int64),
            "covered": pl.Series(covered, dtype=pl.Int64),
            "coverage": pl.Series(coverage, dtype=pl.Float64),
            "longest_match": pl.Series([int(lm.max()) if len(lm) else 0 for lm in matches], dtype=pl.Int64),
            "contaminated": pl.Series([c >= threshold for c in coverage], dtype=pl.Boolean),
        }
    )
