"""Pure-Python reference of the corpus n-gram engine, written for clarity.

Normalization uses Python's own ``str.split`` / ``unicodedata.category`` / ``str.lower``
(the Rust normalizer must agree with it); counting is plain loops over lists of tokens.
Nothing here imports the compiled module. Also the "pure Python" benchmark baseline.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

__all__ = [
    "cooccurrence",
    "count_ngrams",
    "document_frequency",
    "jsonl_texts",
    "normalize",
    "punct_ranges",
    "stats",
]


def normalize(
    text: str, lowercase: bool = True, strip_punctuation: bool = True, stopwords: Iterable[str] = ()
) -> list[str]:
    """Split on whitespace, delete P*/S* characters, lowercase, drop empty words and stopwords.

    Parameters
    ----------
    text : str
    lowercase, strip_punctuation : bool, default True
    stopwords : iterable of str, default ()

    Returns
    -------
    list of str
    """
    stop = set(stopwords)
    out = []
    for word in text.split():
        if strip_punctuation:
            word = "".join(c for c in word if unicodedata.category(c)[0] not in "PS")
        if lowercase:
            word = word.lower()
        if word and word not in stop:
            out.append(word)
    return out


def punct_ranges() -> list[tuple[int, int]]:
    """Inclusive code-point ranges of categories P* and S* (how the Rust table was made).

    Returns
    -------
    list of (int, int)
    """
    ranges, start = [], None
    for cp in range(0x110000):
        strip = unicodedata.category(chr(cp))[0] in "PS"
        if strip and start is None:
            start = cp
        if not strip and start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))
    return ranges


def _occurrences(doc: Sequence[Hashable], gram: Sequence[Hashable]) -> int:
    n = len(gram)
    found = 0
    for i in range(len(doc) - n + 1):
        if list(doc[i : i + n]) == list(gram):
            found += 1
    return found


def count_ngrams(docs: Sequence[Sequence[Hashable]], queries: Sequence[Sequence[Hashable]]) -> list[int]:
    """Occurrences (overlapping ones too) of each query inside single documents.

    Parameters
    ----------
    docs : sequence of sequence of hashable
        Tokenized documents.
    queries : sequence of sequence of hashable
        The n-grams.

    Returns
    -------
    list of int
    """
    return [sum(_occurrences(d, q) for d in docs) for q in queries]


def document_frequency(docs: Sequence[Sequence[Hashable]], queries: Sequence[Sequence[Hashable]]) -> list[int]:
    """Number of documents containing each query at least once.

    Parameters
    ----------
    docs : sequence of sequence of hashable
        Tokenized documents.
    queries : sequence of sequence of hashable
        The n-grams.

    Returns
    -------
    list of int
    """
    return [sum(1 for d in docs if _occurrences(d, q) > 0) for q in queries]


def cooccurrence(
    docs: Sequence[Sequence[Hashable]], pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]]
) -> list[int]:
    """Number of documents containing both n-grams of each pair.

    Parameters
    ----------
    docs : sequence of sequence of hashable
        Tokenized documents.
    pairs : sequence of (n-gram, n-gram)

    Returns
    -------
    list of int
    """
    return [sum(1 for d in docs if _occurrences(d, a) > 0 and _occurrences(d, b) > 0) for a, b in pairs]


def stats(
    docs: Sequence[Sequence[Hashable]],
    queries: Sequence[Sequence[Hashable]],
    pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]] = (),
) -> dict[str, Any]:
    """All three at once, by a single pass over the documents with dictionaries.

    The benchmark baseline: every n-gram of every document up to the longest query.

    Parameters
    ----------
    docs : sequence of sequence of hashable
    queries : sequence of n-grams
    pairs : sequence of (n-gram, n-gram), default ()

    Returns
    -------
    dict
        ``counts``, ``doc_freq`` and ``cooccurrence`` lists and ``n_documents``.
    """
    qset = {tuple(q) for q in queries} | {tuple(a) for a, _ in pairs} | {tuple(b) for _, b in pairs}
    pairs_by_first: dict[tuple[Hashable, ...], list[tuple[int, tuple[Hashable, ...]]]] = {}
    for k, (a, b) in enumerate(pairs):
        pairs_by_first.setdefault(tuple(a), []).append((k, tuple(b)))
    max_n = max((len(q) for q in qset), default=0)
    counts: dict[tuple[Hashable, ...], int] = {}
    df: dict[tuple[Hashable, ...], int] = {}
    co = [0] * len(pairs)
    for doc in docs:
        seen = set()
        for i in range(len(doc)):
            for n in range(1, max_n + 1):
                if i + n > len(doc):
                    break
                g = tuple(doc[i : i + n])
                if g in qset:
                    counts[g] = counts.get(g, 0) + 1
                    seen.add(g)
        for g in seen:
            df[g] = df.get(g, 0) + 1
        for a in seen:
            for k, b in pairs_by_first.get(a, ()):
                if b in seen:
                    co[k] += 1
    return {
        "counts": [counts.get(tuple(q), 0) for q in queries],
        "doc_freq": [df.get(tuple(q), 0) for q in queries],
        "cooccurrence": co,
        "n_documents": len(docs),
    }


def jsonl_texts(lines: Iterable[str], field: str = "text") -> list[str]:
    """The text field of each non-blank jsonl line.

    Parameters
    ----------
    lines : iterable of str
    field : str, default "text"

    Returns
    -------
    list of str
    """
    return [json.loads(line)[field] for line in lines if line.strip()]
