"""Pure-Python reference for the task-gram LM (memscore.taskgram.taskgram_logprob and the
document counts it needs), written from the definitions in Wang et al. 2024."""

from __future__ import annotations

import math
from collections.abc import Sequence


def taskgram_logprob_pure(doc_freq: Sequence[int], cooccurrence: Sequence[int], alpha: float = 1.0) -> list[float]:
    """log((C(x,y) + α) / (C(x) + 2α)) per pair, one pair at a time.

    Parameters
    ----------
    doc_freq, cooccurrence : sequence of int
    alpha : float, default 1.0

    Returns
    -------
    list of float
        NaN when the denominator is 0, -inf when only the numerator is 0.
    """
    out = []
    for cx, cxy in zip(doc_freq, cooccurrence, strict=True):
        num, den = cxy + alpha, cx + 2 * alpha
        if den == 0:
            out.append(math.nan)
        elif num == 0:
            out.append(-math.inf)
        else:
            out.append(math.log(num / den))
    return out


def document_counts_pure(
    documents: Sequence[Sequence[str]], pairs: Sequence[tuple[str, str]]
) -> tuple[list[int], list[int]]:
    """C(x) (documents containing x) and C(x, y) (documents containing x and y) for each pair.

    Over already-normalized documents (lists of words); n-grams are space-joined words.

    Parameters
    ----------
    documents : sequence of sequence of str
    pairs : sequence of (str, str)

    Returns
    -------
    c_x, c_xy : list of int
    """

    def contains(doc: Sequence[str], gram: str) -> bool:
        g = gram.split()
        return any(list(doc[i : i + len(g)]) == g for i in range(len(doc) - len(g) + 1))

    cx, cxy = [], []
    for x, y in pairs:
        has_x = [contains(d, x) for d in documents]
        cx.append(sum(has_x))
        cxy.append(sum(1 for d, hx in zip(documents, has_x, strict=True) if hx and contains(d, y)))
    return cx, cxy
